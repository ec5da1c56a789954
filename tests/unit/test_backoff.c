/*
 * test_backoff.c - retry delays: a property test over many attempts,
 * bases, caps and random draws (jitter inside [d/2, d], never above the
 * cap, nominal delay doubling until the cap), plus the dispatch table's
 * answer for an unknown kind and the shape of lease tokens.
 */
#include "unit.h"
#include "../../workers/workers.h"

/* A small deterministic generator, so a failure can be replayed. */
static uint64_t
xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* The nominal delay, computed the slow obvious way. */
static int64_t
nominal(int attempt, int64_t base, int64_t cap)
{
	long double d = (long double)base;
	int i;

	for (i = 1; i < attempt; i++)
		d *= 2;
	return d > (long double)cap ? cap : (int64_t)d;
}

static void
test_backoff_properties(void)
{
	static const int64_t bases[] = {1, 2, 3, 100, 1000, 7777, 60000};
	static const int64_t caps[] = {1, 5, 1000, 300000, 86400000};
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	size_t b, c;
	int attempt, k, bad = 0;

	for (b = 0; b < NELEM(bases); b++)
		for (c = 0; c < NELEM(caps); c++) {
			int64_t base = bases[b], cap = caps[c];
			int64_t eff_cap = cap < base ? base : cap;

			for (attempt = 1; attempt <= 200; attempt++) {
				int64_t d = nominal(attempt, base, eff_cap);
				int64_t lo = d - d / 2, seen_lo = INT64_MAX,
				        seen_hi = 0;

				for (k = 0; k < 200; k++) {
					int64_t v = backoff_delay_ms(
					        attempt, base, cap,
					        xorshift(&seed));

					if (v < lo || v > d || v > eff_cap ||
					    v < 1)
						bad++;
					if (v < seen_lo)
						seen_lo = v;
					if (v > seen_hi)
						seen_hi = v;
				}
				/* Jitter really spreads when there is room. */
				if (d >= 16 && seen_hi - seen_lo < (d - lo) / 4)
					bad++;
			}
		}
	CHECK(bad == 0);
	/* The extremes of the random draw hit the ends of the window. */
	CHECK(backoff_delay_ms(1, 1000, 300000, 0) == 500);
	CHECK(backoff_delay_ms(1, 1000, 300000, 500) == 1000);
	CHECK(backoff_delay_ms(4, 1000, 300000, 0) == 4000);
	CHECK(backoff_delay_ms(100, 1000, 300000, 150000) == 300000);
	CHECK(backoff_delay_ms(INT32_MAX, 1000, 300000, 0) == 150000);
	CHECK(backoff_delay_ms(0, 1000, 300000, 0) == 500);
}

static void
test_unknown_kind(void)
{
	struct job job;
	struct job_result res = {.outcome = JOB_DONE, .error = BUF_INIT};

	memset(&job, 0, sizeof(job));
	memcpy(job.kind, "frobnicate", 11);
	dispatch_run(NULL, &job, &res);
	CHECK(res.outcome == JOB_FAIL);
	CHECK_STR(buf_str(&res.error),
	          "unknown job kind \"frobnicate\": no handler in this worker");
	CHECK(dispatch_find("reconcile") != NULL);
	CHECK(dispatch_find("noop") != NULL);
	CHECK(dispatch_find("reconcile")->fails_env);
	buf_free(&res.error);
}

static void
test_token(void)
{
	char a[33], b[33];
	size_t i;

	job_token(a);
	job_token(b);
	CHECK(strlen(a) == 32);
	CHECK(strcmp(a, b) != 0);
	for (i = 0; i < 32; i++)
		CHECK(strchr("0123456789abcdef", a[i]) != NULL);
}

UNIT_MAIN(TEST(test_backoff_properties), TEST(test_unknown_kind),
          TEST(test_token))
