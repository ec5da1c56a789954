/*
 * test_aws_ssm.c - SSM without a network: invocation answers (recorded and
 * every status), the 24,000-character cut, error bodies, the quoting of
 * command arguments (proved by running the quoted line through sh), the
 * SendCommand body and parameter names.
 */
#include <stdio.h>

#include "fixture.h"

#include "../../workers/aws/aws.h"

static void
test_invocation_recorded(void)
{
	struct buf b = BUF_INIT;
	struct ssm_invocation v;

	ssm_invocation_init(&v);
	if (fixture_read("aws/ssm/get-command-invocation.success.cli.json",
	                 &b) == 0) {
		CHECK(ssm_parse_invocation(b.data, &v) == 0);
		CHECK(v.status == SSM_SUCCESS);
		CHECK(v.response_code == 0);
		CHECK(strstr(buf_str(&v.out), "update skipped\n"));
		CHECK(!v.truncated);
	}
	CHECK(ssm_parse_invocation("{", &v) == -1);
	/* A script past executionTimeout, told from a command undelivered. */
	CHECK(ssm_parse_invocation(
	              "{\"Status\":\"TimedOut\",\"StatusDetails\":"
	              "\"Execution Timed Out\",\"ResponseCode\":-1}",
	              &v) == 0);
	CHECK(v.status == SSM_TIMED_OUT && v.exec_timed_out);
	CHECK(ssm_parse_invocation("{\"Status\":\"TimedOut\",\"StatusDetails\":"
	                           "\"Delivery Timed Out\"}",
	                           &v) == 0);
	CHECK(v.status == SSM_TIMED_OUT && !v.exec_timed_out);
	ssm_invocation_free(&v);
	buf_free(&b);
}

static void
test_statuses(void)
{
	static const struct {
		const char *status, *details;
		enum ssm_status want;
		bool final;
	} cases[] = {
	        {"Pending", "Pending", SSM_PENDING, false},
	        {"InProgress", "In Progress", SSM_IN_PROGRESS, false},
	        {"Delayed", "Delayed", SSM_DELAYED, false},
	        {"Success", "Success", SSM_SUCCESS, true},
	        {"Failed", "Failed", SSM_FAILED, true},
	        {"TimedOut", "Execution Timed Out", SSM_TIMED_OUT, true},
	        {"Failed", "Delivery Timed Out", SSM_TIMED_OUT, true},
	        {"Cancelled", "Cancelled", SSM_CANCELLED, true},
	        {"Cancelling", "", SSM_CANCELLING, false},
	        {"Failed", "Undeliverable", SSM_UNDELIVERABLE, true},
	        {"Failed", "Terminated", SSM_TERMINATED, true},
	        {"Weird", NULL, SSM_UNKNOWN, false},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		enum ssm_status s =
		        ssm_status_parse(cases[i].status, cases[i].details);

		if (s != cases[i].want)
			fprintf(stderr, "  case %zu: %s\n", i,
			        ssm_status_name(s));
		CHECK(s == cases[i].want);
		CHECK(ssm_status_final(s) == cases[i].final);
	}
}

static void
test_truncated(void)
{
	struct buf j = BUF_INIT;
	struct ssm_invocation v;
	int i;

	ssm_invocation_init(&v);
	buf_puts(&j, "{\"Status\":\"Failed\",\"ResponseCode\":2,"
	             "\"StandardOutputContent\":\"");
	/* 24,000 characters of two bytes each: characters count, not bytes. */
	for (i = 0; i < SSM_OUTPUT_LIMIT; i++)
		buf_puts(&j, "\xc3\xa9");
	buf_puts(&j, "\"}");
	CHECK(ssm_parse_invocation(j.data, &v) == 0);
	CHECK(v.truncated);
	CHECK(v.response_code == 2);
	CHECK(v.status == SSM_FAILED);
	buf_reset(&j);
	buf_puts(&j, "{\"Status\":\"Success\",\"StandardOutputContent\":\"");
	for (i = 0; i < SSM_OUTPUT_LIMIT / 2 - 1; i++)
		buf_puts(&j, "\xc3\xa9");
	buf_puts(&j, "\"}");
	CHECK(ssm_parse_invocation(j.data, &v) == 0);
	CHECK(!v.truncated);
	ssm_invocation_free(&v);
	buf_free(&j);
}

static void
test_errors(void)
{
	struct aws_error e = {0};

	ssm_parse_error("{\"__type\":\"InvocationDoesNotExist\"}", 400, &e);
	CHECK_STR(e.code, "InvocationDoesNotExist");
	CHECK(e.kind == AWS_NOT_FOUND);
	ssm_parse_error("{\"__type\":\"com.amazon.coral.service#AccessDenied"
	                "Exception\",\"Message\":\"User: x is not authorized "
	                "to perform: ssm:SendCommand\"}",
	                400, &e);
	CHECK_STR(e.code, "AccessDeniedException");
	CHECK(e.kind == AWS_DENIED);
	CHECK(strstr(e.message, "ssm:SendCommand"));
	ssm_parse_error(
	        "<?xml version=\"1.0\"?>\n<ErrorResponse><Errors><Error>"
	        "<Code>SignatureDoesNotMatch</Code><Message>m</Message>"
	        "</Error></Errors></ErrorResponse>",
	        403, &e);
	CHECK_STR(e.code, "SignatureDoesNotMatch");
	CHECK(e.kind == AWS_DENIED);
	ssm_parse_error("<html>", 503, &e);
	CHECK(e.kind == AWS_THROTTLED);
}

/* The quoted line, run by sh, must print each argument back unchanged. */
static void
test_quote_through_sh(void)
{
	static const char *const args[] = {
	        "printf",
	        "%s|",
	        "a b",
	        "it's",
	        "$(touch /tmp/pwned)",
	        "`id`;rm -rf /",
	        "\"\\n\"",
	        "",
	};
	struct buf line = BUF_INIT, got = BUF_INIT;
	char chunk[512];
	size_t i, n;
	FILE *p;

	for (i = 0; i < NELEM(args); i++) {
		if (i)
			buf_putc(&line, ' ');
		ssm_shell_quote(&line, args[i]);
	}
	p = popen(buf_str(&line), "r");
	CHECK(p != NULL);
	while (p && (n = fread(chunk, 1, sizeof(chunk), p)) > 0)
		buf_append(&got, chunk, n);
	if (p)
		pclose(p);
	CHECK_STR(buf_str(&got),
	          "a b|it's|$(touch /tmp/pwned)|`id`;rm -rf /|\"\\n\"||");
	buf_free(&line);
	buf_free(&got);
}

static void
test_command_body(void)
{
	static const char *const argv[] = {"/opt/ephemera/host/ephemera-host",
	                                   "deploy", "o-r-7", "x'y"};
	struct buf b = BUF_INIT;

	CHECK(ssm_command_body("i-1", argv, 4, 3600, &b) == 0);
	CHECK_STR(buf_str(&b),
	          "{\"DocumentName\":\"AWS-RunShellScript\",\"InstanceIds\":"
	          "[\"i-1\"],\"Parameters\":{\"commands\":[\"'/opt/ephemera/"
	          "host/ephemera-host' 'deploy' 'o-r-7' 'x'\\\\''y'\"],"
	          "\"executionTimeout\":[\"3600\"]},\"TimeoutSeconds\":600}");
	buf_free(&b);
}

static void
test_parameter_name(void)
{
	struct config cfg = {0};
	struct buf b = BUF_INIT;

	cfg.env_instance = "eph";
	cfg.ec2_ssm_parameter_prefix = "";
	CHECK(ssm_parameter_name(&cfg, "o-r-7", "DB_URL", &b) == 0);
	CHECK_STR(buf_str(&b), "/eph/o-r-7/DB_URL");
	buf_reset(&b);
	cfg.ec2_ssm_parameter_prefix = "/ephemera";
	CHECK(ssm_parameter_name(&cfg, "o-r-7", NULL, &b) == 0);
	CHECK_STR(buf_str(&b), "/ephemera/eph/o-r-7");
	CHECK(ssm_parameter_name(&cfg, "o-r-7", "../x", &b) == -1);
	CHECK(ssm_parameter_name(&cfg, "a/b", "X", &b) == -1);
	buf_free(&b);
}

UNIT_MAIN(TEST(test_invocation_recorded), TEST(test_statuses),
          TEST(test_truncated), TEST(test_errors), TEST(test_quote_through_sh),
          TEST(test_command_body), TEST(test_parameter_name))
