/*
 * test_aws_credentials.c - the credentials chain's pure parts: the shared
 * file's profiles, the IMDS document, the refresh margin, and the error
 * codes sorted into what the caller does next.
 */
#include "unit.h"

#include "../../workers/aws/aws.h"

static void
test_ini_profiles(void)
{
	static const char text[] = "[default]\n"
	                           "aws_access_key_id = AKIDDEFAULT\n"
	                           "aws_secret_access_key=secretdefault\n"
	                           "\n"
	                           "[ ci ]\n"
	                           "# a comment = no\n"
	                           "AWS_ACCESS_KEY_ID = AKIDCI \r\n"
	                           "aws_secret_access_key = s/ci+key\n"
	                           "aws_session_token = tok==\n"
	                           "[broken]\n"
	                           "aws_access_key_id = AKIDONLY\n";
	struct aws_credentials c = {0};

	CHECK(credentials_parse_ini(text, "default", &c) == 0);
	CHECK_STR(c.access_key_id, "AKIDDEFAULT");
	CHECK_STR(c.secret_access_key, "secretdefault");
	CHECK(c.session_token == NULL);
	CHECK(credentials_parse_ini(text, "ci", &c) == 0);
	CHECK_STR(c.access_key_id, "AKIDCI");
	CHECK_STR(c.secret_access_key, "s/ci+key");
	CHECK_STR(c.session_token, "tok==");
	CHECK_STR(c.source, "file");
	CHECK(credentials_parse_ini(text, "broken", &c) == -1);
	CHECK(c.access_key_id == NULL);
	CHECK(credentials_parse_ini(text, "missing", &c) == -1);
	aws_credentials_clear(&c);
}

static void
test_imds_document(void)
{
	struct aws_credentials c = {0};

	CHECK(credentials_parse_imds(
	              "{\"Code\":\"Success\",\"LastUpdated\":\"2026-12-02T00:"
	              "00:00Z\",\"Type\":\"AWS-HMAC\",\"AccessKeyId\":\"ASIA1\","
	              "\"SecretAccessKey\":\"sec\",\"Token\":\"tok\","
	              "\"Expiration\":\"2026-12-02T06:00:00Z\"}",
	              &c) == 0);
	CHECK_STR(c.access_key_id, "ASIA1");
	CHECK_STR(c.session_token, "tok");
	CHECK(c.expiration == 1796191200);
	CHECK(!credentials_stale(&c, 1796191200 - 16 * 60));
	CHECK(credentials_stale(&c, 1796191200 - 14 * 60));
	CHECK(credentials_parse_imds("{\"Code\":\"Failure\"}", &c) == -1);
	CHECK(credentials_parse_imds("not json", &c) == -1);
	CHECK(credentials_parse_imds("{\"Code\":\"Success\",\"AccessKeyId\":"
	                             "\"A\",\"SecretAccessKey\":\"S\"}",
	                             &c) == -1);
	CHECK(c.access_key_id == NULL);
	aws_credentials_clear(&c);
}

static void
test_error_classify(void)
{
	CHECK(aws_error_classify(200, NULL) == AWS_OK);
	CHECK(aws_error_classify(503, "RequestLimitExceeded") == AWS_THROTTLED);
	CHECK(aws_error_classify(400, "ThrottlingException") == AWS_THROTTLED);
	CHECK(aws_error_classify(500, "InsufficientInstanceCapacity") ==
	      AWS_CAPACITY);
	CHECK(aws_error_classify(400, "InvalidInstanceID.NotFound") ==
	      AWS_NOT_FOUND);
	CHECK(aws_error_classify(403, "UnauthorizedOperation") == AWS_DENIED);
	CHECK(aws_error_classify(400,
	                         "com.amazon.coral#AccessDeniedException") ==
	      AWS_DENIED);
	CHECK(aws_error_classify(400, "InvalidParameterValue") == AWS_INVALID);
	CHECK(aws_error_classify(502, NULL) == AWS_THROTTLED);
}

UNIT_MAIN(TEST(test_ini_profiles), TEST(test_imds_document),
          TEST(test_error_classify))
