/*
 * usage.c - how long an environment's compute has run, and what it has
 * cost, from its runs (env_runs). See app.h.
 */
#include "app.h"

/* The open run's seconds to `now`; a clock behind it counts nothing. */
static double
open_seconds(const struct usage_runs *r, double now)
{
	return r->open_start >= 0 && now > r->open_start ? now - r->open_start
	                                                 : 0;
}

double
usage_run_seconds(const struct usage_runs *r, double now)
{
	return r->closed_seconds + open_seconds(r, now);
}

double
usage_run_cost(const struct usage_runs *r, double now)
{
	return r->closed_cost + open_seconds(r, now) / 3600.0 * r->open_price;
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
