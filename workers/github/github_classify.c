/*
 * github_classify.c - what a GitHub API answer means for the job that made
 * the request. Pure: the answer, the time and the attempt number in; a
 * verdict and, for a retry, when out. The worker never sleeps on these
 * delays: the job is rescheduled with them (docs/architecture.md section 3).
 *
 * The rules follow GitHub's "Rate limits for the REST API":
 * - primary limit: 403/429 with x-ratelimit-remaining 0 → not before
 *   x-ratelimit-reset (epoch seconds);
 * - secondary limit: 403/429 with Retry-After → that many seconds; without
 *   it, a 429 or a body saying "secondary rate limit" (or the older
 *   "abuse") waits at least a minute, doubling on repeats;
 * - 5xx and no answer at all → exponential backoff by attempt.
 */
#include <string.h>

#include "../workers.h"

#define SECONDARY_MIN_MS 60000

static int64_t
backoff_ms(int64_t base, int64_t cap, int attempt)
{
	int64_t ms = base;
	int i;

	for (i = 1; i < attempt && ms < cap; i++)
		ms *= 2;
	return ms < cap ? ms : cap;
}

static bool
body_says_secondary(const struct github_response *r)
{
	const char *b = buf_str(&r->body);

	return strstr(b, "secondary rate limit") != NULL ||
	       strstr(b, "abuse") != NULL;
}

enum github_verdict
github_classify(const struct github_response *r, time_t now, int attempt,
                const struct github_backoff *bo, int64_t *retry_ms)
{
	*retry_ms = 0;
	if (attempt < 1)
		attempt = 1;
	if (r->status == 0 || r->status >= 500) {
		*retry_ms = backoff_ms(bo->base_ms, bo->cap_ms, attempt);
		return GH_RETRY;
	}
	if (r->status >= 200 && r->status < 400)
		return GH_OK;
	if (r->status == 401)
		return GH_REAUTH;
	if (r->status == 403 || r->status == 429) {
		if (r->retry_after >= 0) {
			*retry_ms = r->retry_after * 1000;
			if (*retry_ms < 1000)
				*retry_ms = 1000;
			return GH_RETRY;
		}
		if (r->ratelimit_remaining == 0) {
			/* One second past the reset: its clock is not ours. */
			int64_t wait = r->ratelimit_reset - (int64_t)now + 1;

			*retry_ms = (wait < 1 ? 1 : wait) * 1000;
			return GH_RETRY;
		}
		if (r->status == 429 || body_says_secondary(r)) {
			int64_t cap = bo->cap_ms > SECONDARY_MIN_MS
			                      ? bo->cap_ms
			                      : SECONDARY_MIN_MS;

			*retry_ms = backoff_ms(SECONDARY_MIN_MS, cap, attempt);
			return GH_RETRY;
		}
		return GH_FAIL;
	}
	if (r->status == 404)
		return GH_NOT_FOUND;
	if (r->status == 422)
		return GH_INVALID;
	return GH_FAIL;
}

const char *
github_verdict_name(enum github_verdict v)
{
	static const char *const names[] = {"ok",        "retry",   "reauth",
	                                    "not_found", "invalid", "fail"};

	return (size_t)v < NELEM(names) ? names[v] : "unknown";
}
