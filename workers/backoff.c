/*
 * backoff.c - retry delays: capped exponential growth with jitter. Pure:
 * the randomness comes in as an argument so tests can sweep it.
 */
#include <stdlib.h>
#include <sys/random.h>

#include "workers.h"

int64_t
backoff_delay_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint64_t rnd)
{
	int64_t d = base_ms < 1 ? 1 : base_ms, lo, span;
	int i;

	if (cap_ms < d)
		cap_ms = d;
	/* Doubling stops at the cap, so there is no overflow to fear. */
	for (i = 1; i < attempt && d < cap_ms; i++)
		d = d > cap_ms / 2 ? cap_ms : d * 2;
	if (d > cap_ms)
		d = cap_ms;
	lo = d - d / 2;
	span = d - lo + 1;
	return lo + (int64_t)(rnd % (uint64_t)span);
}

uint64_t
backoff_random(void)
{
	uint64_t r = 0;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
		r = (uint64_t)random();
	return r;
}
