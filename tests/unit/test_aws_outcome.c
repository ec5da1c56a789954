/*
 * test_aws_outcome.c - each kind of AWS failure becomes the right job
 * outcome: rescheduled with backoff, retried in the not-found grace,
 * failed naming the permission the policy lacks.
 */
#include "unit.h"

#include "../../workers/workers.h"
#include "../../workers/aws/aws.h"

static struct aws_error
err(enum aws_error_kind k, const char *svc, const char *action,
    const char *code)
{
	struct aws_error e = {0};

	e.kind = k;
	snprintf(e.service, sizeof(e.service), "%s", svc);
	snprintf(e.action, sizeof(e.action), "%s", action);
	snprintf(e.code, sizeof(e.code), "%s", code);
	snprintf(e.message, sizeof(e.message), "msg");
	return e;
}

static void
test_outcomes(void)
{
	struct job_result r = {.outcome = JOB_DONE, .error = BUF_INIT};
	struct aws_error e;

	e = err(AWS_THROTTLED, "ec2", "RunInstances", "RequestLimitExceeded");
	aws_outcome(&e, 3, -1, 1000, 300000, 0, &r);
	CHECK(r.outcome == JOB_RETRY);
	CHECK(r.retry_after_ms >= 2000 && r.retry_after_ms <= 4000);
	aws_outcome(&e, 30, -1, 1000, 300000, ~0ull, &r);
	CHECK(r.retry_after_ms <= 300000);

	e = err(AWS_DENIED, "ssm", "SendCommand", "AccessDeniedException");
	aws_outcome(&e, 1, -1, 1000, 300000, 0, &r);
	CHECK(r.outcome == JOB_FAIL);
	CHECK(strstr(buf_str(&r.error), "does not allow ssm:SendCommand"));

	e = err(AWS_NOT_FOUND, "ec2", "StartInstances",
	        "InvalidInstanceID.NotFound");
	aws_outcome(&e, 1, 5, 1000, 300000, 0, &r);
	CHECK(r.outcome == JOB_RETRY);
	CHECK(r.retry_after_ms >= 1000 && r.retry_after_ms <= 15000);
	aws_outcome(&e, 1, AWS_NOT_FOUND_GRACE + 1, 1000, 300000, 0, &r);
	CHECK(r.outcome == JOB_FAIL);
	aws_outcome(&e, 1, -1, 1000, 300000, 0, &r);
	CHECK(r.outcome == JOB_FAIL);

	e = err(AWS_CAPACITY, "ec2", "RunInstances",
	        "InsufficientInstanceCapacity");
	aws_outcome(&e, 1, -1, 1000, 300000, 0, &r);
	CHECK(r.outcome == JOB_RETRY);
	CHECK(r.retry_after_ms == AWS_CAPACITY_RETRY_MS);

	e = err(AWS_INVALID, "ec2", "RunInstances", "InvalidAMIID.NotFound");
	aws_outcome(&e, 1, -1, 1000, 300000, 0, &r);
	CHECK(r.outcome == JOB_FAIL);
	CHECK(strstr(buf_str(&r.error), "InvalidAMIID.NotFound"));

	e = err(AWS_TRANSPORT, "", "", "Transport");
	aws_outcome(&e, 1, -1, 1000, 300000, 0, &r);
	CHECK(r.outcome == JOB_RETRY);
	buf_free(&r.error);
}

UNIT_MAIN(TEST(test_outcomes))
