/* test_signature.c - X-Hub-Signature-256 against GitHub's published
 * vector and three real signed deliveries, and everything that must fail. */
#include "fixture.h"
#include "../../fcgi-app/app.h"

#define DOCS_SECRET "It's a Secret to Everybody"
#define CAPTURE_SECRET                                                         \
	"402786017574bd28f9d8f7a18648939751c47fe09077d56e10f0444f14fbb73b"

static void
test_documented_vector(void)
{
	struct slice body = slice_of("Hello, World!");
	char hex[65];

	signature_hex(DOCS_SECRET, body, hex);
	CHECK_STR(hex, "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f437"
	               "9c8b043e17");
	CHECK(signature_check(DOCS_SECRET, body,
	                      "sha256=757107ea0eb2509fc211221cce984b8a37570b6"
	                      "d7586c22c46f4379c8b043e17") == SIGNATURE_OK);
	/* Upper-case hex is the same digest. */
	CHECK(signature_check(DOCS_SECRET, body,
	                      "sha256=757107EA0EB2509FC211221CCE984B8A37570B6"
	                      "D7586C22C46F4379C8B043E17") == SIGNATURE_OK);
}

static void
test_captured_deliveries(void)
{
	static const struct {
		const char *file, *sig;
	} cases[] = {
	        {"github/webhooks/signed/pull_request.opened.body",
	         "sha256=34ba640e32d8041774b4467ed7327d21281b890ae177f4bab6e60"
	         "9bcf775fa17"},
	        {"github/webhooks/signed/pull_request.synchronize.body",
	         "sha256=7086595536b8530c5ae0c2ec9bf9d05ec150c0e5a3d5952cb5900"
	         "e89ff5b433a"},
	        {"github/webhooks/signed/pull_request.closed.merged.body",
	         "sha256=19334763b6ab6b5c6491b28836ab5fd311e2bbc2e0c66dd2a0216"
	         "0822dff245c"},
	};
	size_t i, pos;

	for (i = 0; i < NELEM(cases); i++) {
		struct buf b = BUF_INIT;
		struct slice body;

		if (fixture_read(cases[i].file, &b) == -1)
			continue;
		body.ptr = b.data;
		body.len = b.len;
		CHECK(signature_check(CAPTURE_SECRET, body, cases[i].sig) ==
		      SIGNATURE_OK);
		/* One changed byte anywhere fails: first, middle, last. */
		for (pos = 0; pos < 3; pos++) {
			size_t at = pos == 0   ? 0
			            : pos == 1 ? b.len / 2
			                       : b.len - 1;

			b.data[at] ^= 0x01;
			CHECK(signature_check(CAPTURE_SECRET, body,
			                      cases[i].sig) == SIGNATURE_WRONG);
			b.data[at] ^= 0x01;
		}
		/* A truncated body and a wrong secret fail too. */
		body.len--;
		CHECK(signature_check(CAPTURE_SECRET, body, cases[i].sig) ==
		      SIGNATURE_WRONG);
		body.len++;
		CHECK(signature_check("other", body, cases[i].sig) ==
		      SIGNATURE_WRONG);
		buf_free(&b);
	}
}

static void
test_malformed_headers(void)
{
	static const struct {
		const char *header;
		enum signature_result want;
	} cases[] = {
	        {NULL, SIGNATURE_MISSING},
	        {"", SIGNATURE_MISSING},
	        {"sha1=7d38cdd689735b008b3c702edd92eea23791c5f6",
	         SIGNATURE_MALFORMED},
	        {"sha256=", SIGNATURE_MALFORMED},
	        {"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f43"
	         "79c8b043e1",
	         SIGNATURE_MALFORMED},
	        {"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f43"
	         "79c8b043e17 ",
	         SIGNATURE_MALFORMED},
	        {"sha256=zz7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f43"
	         "79c8b043e17",
	         SIGNATURE_MALFORMED},
	        {"SHA256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f43"
	         "79c8b043e17",
	         SIGNATURE_MALFORMED},
	        {"sha256=0000000000000000000000000000000000000000000000000000"
	         "000000000000",
	         SIGNATURE_WRONG},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++)
		CHECK(signature_check(DOCS_SECRET, slice_of("Hello, World!"),
		                      cases[i].header) == cases[i].want);
	CHECK(signature_check(DOCS_SECRET, slice_of(""),
	                      "sha256=757107ea0eb2509fc211221cce984b8a37570b6"
	                      "d7586c22c46f4379c8b043e17") == SIGNATURE_WRONG);
}

UNIT_MAIN(TEST(test_documented_vector), TEST(test_captured_deliveries),
          TEST(test_malformed_headers))
