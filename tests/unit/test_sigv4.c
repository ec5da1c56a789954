/*
 * test_sigv4.c - the parts of workers/aws/sigv4.c the suite does not
 * reach: the date made from the time passed in, the token added signed or
 * unsigned, S3-style paths kept, encoding. The suite itself runs through
 * `make sigv4-suite`.
 */
#include "unit.h"

#include "../../workers/aws/aws.h"

static const struct sigv4_header ec2_headers[] = {
        {"Host", "ec2.us-east-1.amazonaws.com"},
        {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
};

static void
sign(struct sigv4_request *r, const char *token, struct sigv4_output *o)
{
	struct aws_credentials cr = {0};

	cr.access_key_id = "AKIDEXAMPLE";
	cr.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
	cr.session_token = (char *)token;
	sigv4_output_init(o);
	CHECK(sigv4_sign(r, &cr, "us-east-1", "ec2", 1440938160, o) == 0);
}

static void
test_date_from_time(void)
{
	struct sigv4_request r = {.method = "POST",
	                          .path = "/",
	                          .headers = ec2_headers,
	                          .nheaders = 2};
	struct sigv4_output o;

	sign(&r, NULL, &o);
	CHECK_STR(o.amz_date, "20150830T123600Z");
	CHECK(o.nheaders == 2);
	CHECK_STR(buf_str(&o.headers[0]), "X-Amz-Date: 20150830T123600Z");
	CHECK(strncmp(buf_str(&o.headers[1]),
	              "Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"
	              "20150830/us-east-1/ec2/aws4_request, SignedHeaders="
	              "content-type;host;x-amz-date, Signature=",
	              140) == 0);
	sigv4_output_free(&o);
}

static void
test_token_signed_and_unsigned(void)
{
	struct sigv4_request r = {.method = "POST",
	                          .path = "/",
	                          .headers = ec2_headers,
	                          .nheaders = 2};
	struct sigv4_output o;

	sign(&r, "TOKEN", &o);
	CHECK(o.nheaders == 3);
	CHECK_STR(buf_str(&o.headers[1]), "X-Amz-Security-Token: TOKEN");
	CHECK(strstr(buf_str(&o.canonical), "x-amz-security-token:TOKEN\n"));
	CHECK(strstr(buf_str(&o.authorization),
	             "content-type;host;x-amz-date;x-amz-security-token"));
	sigv4_output_free(&o);

	r.token_unsigned = true;
	sign(&r, "TOKEN", &o);
	CHECK(o.nheaders == 3);
	CHECK_STR(buf_str(&o.headers[1]), "X-Amz-Security-Token: TOKEN");
	CHECK(strstr(buf_str(&o.canonical), "security-token") == NULL);
	sigv4_output_free(&o);
}

static void
test_paths_and_queries(void)
{
	static const struct {
		const char *path, *query;
		bool keep;
		const char *want; /* the canonical request's lines 2 and 3 */
	} cases[] = {
	        {"/a/b/../../c/./d//", "", false, "/c/d/\n"},
	        {"/a/..", "", false, "/\n"},
	        {"/a%20b", "", false, "/a%2520b\n"},
	        {"/a//b/../c", "", true, "/a//b/../c\n"},
	        {"/", "b=2&a=1&a=0&c", false, "/\na=0&a=1&b=2&c="},
	        {"/", "k=a%2fb+c%zz", false, "/\nk=a%2Fb%2Bc%25zz"},
	        {"/", "f oo=b ar", false, "/\nf%20oo=b%20ar"},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		struct sigv4_request r = {.method = "GET",
		                          .path = cases[i].path,
		                          .query = cases[i].query,
		                          .headers = ec2_headers,
		                          .nheaders = 1};
		struct sigv4_output o;
		const char *c;

		r.keep_path = cases[i].keep;
		sign(&r, NULL, &o);
		c = strchr(buf_str(&o.canonical), '\n') + 1;
		if (strncmp(c, cases[i].want, strlen(cases[i].want)) != 0) {
			fprintf(stderr, "  case %zu: %s\n", i, c);
			CHECK(0);
		}
		sigv4_output_free(&o);
	}
}

static void
test_bad_date_header(void)
{
	struct sigv4_header h[] = {{"Host", "x"}, {"X-Amz-Date", "yesterday"}};
	struct sigv4_request r = {
	        .method = "GET", .path = "/", .headers = h, .nheaders = 2};
	struct aws_credentials cr = {.access_key_id = "A",
	                             .secret_access_key = "S"};
	struct sigv4_output o;

	sigv4_output_init(&o);
	CHECK(sigv4_sign(&r, &cr, "us-east-1", "ec2", 0, &o) == -1);
	sigv4_output_free(&o);
}

UNIT_MAIN(TEST(test_date_from_time), TEST(test_token_signed_and_unsigned),
          TEST(test_paths_and_queries), TEST(test_bad_date_header))
