/*
 * aws_outcome.c - turns a failed AWS call into the job's outcome. Pure:
 * the attempt, the time since launch and the randomness come in.
 *
 * A throttled call is never slept on in the worker: the job goes back to
 * the queue with a delay, so the worker serves other environments
 * meanwhile and a burst of throttling spreads out (jitter).
 */
#include <stdio.h>

#include "../workers.h"
#include "aws.h"

void
aws_outcome(const struct aws_error *e, int attempt, double since_launch,
            int64_t base_ms, int64_t cap_ms, uint64_t rnd,
            struct job_result *res)
{
	const char *svc = e->service[0] ? e->service : "aws";

	buf_reset(&res->error);
	switch (e->kind) {
	case AWS_OK:
		res->outcome = JOB_DONE;
		return;
	case AWS_THROTTLED:
	case AWS_TRANSPORT:
	case AWS_NO_CREDENTIALS:
		res->outcome = JOB_RETRY;
		res->retry_after_ms =
		        backoff_delay_ms(attempt, base_ms, cap_ms, rnd);
		buf_printf(&res->error, "%s %s: %s (retrying)", svc,
		           e->action[0] ? e->action : "call", e->code);
		return;
	case AWS_CAPACITY:
		res->outcome = JOB_RETRY;
		res->retry_after_ms = AWS_CAPACITY_RETRY_MS;
		buf_printf(&res->error,
		           "no capacity for any configured instance type in "
		           "any configured subnet (%s); retrying",
		           e->code);
		return;
	case AWS_NOT_FOUND:
		if (since_launch >= 0 && since_launch < AWS_NOT_FOUND_GRACE) {
			/* Eventual consistency: the launch is not visible to
			 * every endpoint yet. */
			res->outcome = JOB_RETRY;
			res->retry_after_ms =
			        backoff_delay_ms(attempt, 2000, 15000, rnd);
			buf_printf(&res->error,
			           "%s %s: %s just after launch (retrying)",
			           svc, e->action, e->code);
			return;
		}
		res->outcome = JOB_FAIL;
		buf_printf(&res->error, "%s %s: %s: %s", svc, e->action,
		           e->code, e->message);
		return;
	case AWS_DENIED:
		res->outcome = JOB_FAIL;
		buf_printf(&res->error,
		           "the IAM policy does not allow %s:%s (%s); see "
		           "infra/aws/iam/worker-policy.json",
		           svc, e->action[0] ? e->action : "?", e->code);
		return;
	case AWS_INVALID:
		break;
	}
	res->outcome = JOB_FAIL;
	buf_printf(&res->error, "%s %s: %s: %s", svc,
	           e->action[0] ? e->action : "call", e->code, e->message);
}
