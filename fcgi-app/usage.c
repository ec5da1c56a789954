/*
 * usage.c - how long an environment has held compute, and so what it has
 * cost. See app.h for the definition and its known over-count.
 */
#include <string.h>

#include "app.h"

/* Phases in which an instance (or local containers) may be up. */
bool
usage_phase_holds_compute(const char *phase)
{
	static const char *const idle[] = {"pending", "stopped", "destroyed",
	                                   "awaiting_approval"};
	size_t i;

	if (phase == NULL)
		return false;
	for (i = 0; i < NELEM(idle); i++)
		if (strcmp(phase, idle[i]) == 0)
			return false;
	return true;
}

double
usage_instance_seconds(const char *phase, double first_start, double updated,
                       double now)
{
	double end;

	if (first_start < 0)
		return 0;
	end = usage_phase_holds_compute(phase) ? now : updated;
	return end > first_start ? end - first_start : 0;
}

double
usage_build_seconds(double started, double finished, double now)
{
	double end;

	if (started < 0)
		return -1;
	end = finished >= 0 ? finished : now;
	return end > started ? end - started : 0;
}
