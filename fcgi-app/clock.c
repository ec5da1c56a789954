/*
 * clock.c - "now" for the status pages. Ages, running durations and costs
 * depend on it; pinning it (status.clock) makes pages reproducible for the
 * golden tests and screenshots. Everything below it takes `now` as an
 * argument, so only this file reads a clock.
 */
#include "app.h"

double
clock_now(const struct config *cfg)
{
	static bool warned;
	time_t t;

	if (cfg == NULL || cfg->status_clock == NULL ||
	    cfg->status_clock[0] == '\0')
		return now_real();
	if (parse_iso8601(cfg->status_clock, &t) == 0)
		return (double)t;
	if (!warned)
		log_warn("status_clock_invalid", "value=%s using=real",
		         log_q(cfg->status_clock));
	warned = true;
	return now_real();
}
