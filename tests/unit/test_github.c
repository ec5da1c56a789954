/*
 * test_github.c - the pure parts of the GitHub App code: the JWT (claims
 * and an RS256 signature verified with the public key), the answer
 * classifier, Link headers, and the sticky comment with hostile input.
 */
#include <json-c/json.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "unit.h"
#include "../../workers/workers.h"

/* base64url back to bytes (test helper; no padding expected). */
static size_t
b64url_decode(const char *s, size_t n, unsigned char *out)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
	                          "qrstuvwxyz0123456789-_";
	unsigned acc = 0;
	int bits = 0;
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		const char *p = strchr(abc, s[i]);

		if (p == NULL || s[i] == '\0')
			return (size_t)-1;
		acc = acc << 6 | (unsigned)(p - abc);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	return o;
}

static void
test_base64url(void)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
	        {"", ""},        {"f", "Zg"},        {"fo", "Zm8"},
	        {"foo", "Zm9v"}, {"foob", "Zm9vYg"}, {"\xfb\xff", "-_8"},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		struct buf b = BUF_INIT;

		github_base64url((const unsigned char *)cases[i].in,
		                 strlen(cases[i].in), &b);
		CHECK_STR(buf_str(&b), cases[i].want);
		buf_free(&b);
	}
}

static void
test_jwt(void)
{
	EVP_PKEY *key = EVP_RSA_gen(2048), *pub = NULL;
	BIO *bio = BIO_new(BIO_s_mem()), *pbio = BIO_new(BIO_s_mem());
	struct buf jwt = BUF_INIT;
	char *pem, *ppem;
	long pem_len, ppem_len;
	const char *dot1, *dot2;
	unsigned char dec[1024];
	size_t n;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	struct json_object *o, *v;

	CHECK(key != NULL);
	PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL);
	pem_len = BIO_get_mem_data(bio, &pem);
	PEM_write_bio_PUBKEY(pbio, key);
	ppem_len = BIO_get_mem_data(pbio, &ppem);
	CHECK(github_jwt_sign(pem, (size_t)pem_len, 123456, 1700000000, &jwt) ==
	      0);
	dot1 = strchr(buf_str(&jwt), '.');
	dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	CHECK(dot1 != NULL && dot2 != NULL);
	if (dot2 == NULL)
		goto out;
	/* Header and claims. */
	n = b64url_decode(jwt.data, (size_t)(dot1 - jwt.data), dec);
	dec[n] = '\0';
	CHECK_STR((char *)dec, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}");
	n = b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), dec);
	dec[n] = '\0';
	o = json_tokener_parse((char *)dec);
	CHECK(o != NULL);
	CHECK(json_object_object_get_ex(o, "iat", &v) &&
	      json_object_get_int64(v) == 1700000000 - 60);
	CHECK(json_object_object_get_ex(o, "exp", &v) &&
	      json_object_get_int64(v) <= 1700000000 + 600 &&
	      json_object_get_int64(v) > 1700000000);
	CHECK(json_object_object_get_ex(o, "iss", &v) &&
	      strcmp(json_object_get_string(v), "123456") == 0);
	json_object_put(o);
	/* The signature verifies with the public key alone. */
	{
		BIO *rb = BIO_new_mem_buf(ppem, (int)ppem_len);

		pub = PEM_read_bio_PUBKEY(rb, NULL, NULL, NULL);
		BIO_free(rb);
	}
	CHECK(pub != NULL);
	n = b64url_decode(dot2 + 1, strlen(dot2 + 1), dec);
	CHECK(n == 256);
	CHECK(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) == 1);
	CHECK(EVP_DigestVerify(md, dec, n, (const unsigned char *)jwt.data,
	                       (size_t)(dot2 - jwt.data)) == 1);
	/* A flipped byte in the claims must not verify. */
	jwt.data[dot1 - jwt.data + 3] ^= 1;
	EVP_MD_CTX_reset(md);
	EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub);
	CHECK(EVP_DigestVerify(md, dec, n, (const unsigned char *)jwt.data,
	                       (size_t)(dot2 - jwt.data)) != 1);
	/* Garbage is an error, not a crash. */
	CHECK(github_jwt_sign("nope", 4, 1, 0, &jwt) == -1);
out:
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(key);
	BIO_free(bio);
	BIO_free(pbio);
	buf_free(&jwt);
}

static void
test_classify(void)
{
	static const struct {
		long status;
		int64_t remaining, reset, retry_after;
		const char *body;
		int attempt;
		enum github_verdict want;
		int64_t want_ms;
	} cases[] = {
	        {200, 4999, 0, -1, "{}", 1, GH_OK, 0},
	        {201, -1, 0, -1, "{}", 1, GH_OK, 0},
	        {204, -1, 0, -1, "", 1, GH_OK, 0},
	        /* A 200 with the budget spent still succeeded. */
	        {200, 0, 1000100, -1, "{}", 1, GH_OK, 0},
	        {401, -1, 0, -1, "{\"message\":\"Bad credentials\"}", 1,
	         GH_REAUTH, 0},
	        /* Primary limit: wait for the reset (+1 s). */
	        {403, 0, 1000100, -1, "{\"message\":\"API rate limit\"}", 1,
	         GH_RETRY, 101000},
	        {429, 0, 1000030, -1, "{}", 4, GH_RETRY, 31000},
	        /* A reset already past still waits a second. */
	        {403, 0, 999000, -1, "{}", 1, GH_RETRY, 1000},
	        /* Secondary limit with Retry-After. */
	        {403, 4000, 0, 60, "{\"message\":\"abuse\"}", 1, GH_RETRY,
	         60000},
	        {429, -1, 0, 7, "{}", 1, GH_RETRY, 7000},
	        /* Retry-After wins over remaining 0 (GitHub's order). */
	        {403, 0, 1000500, 5, "{}", 1, GH_RETRY, 5000},
	        /* Secondary without Retry-After: a minute, doubling. */
	        {403, 10, 0, -1,
	         "{\"message\":\"You have exceeded a secondary rate limit\"}",
	         1, GH_RETRY, 60000},
	        {403, 10, 0, -1,
	         "{\"message\":\"You have exceeded a secondary rate limit\"}",
	         3, GH_RETRY, 240000},
	        {429, -1, 0, -1, "{}", 1, GH_RETRY, 60000},
	        /* A plain 403 is a permission problem: no retry. */
	        {403, 4000, 0, -1,
	         "{\"message\":\"Resource not accessible by integration\"}", 1,
	         GH_FAIL, 0},
	        {404, -1, 0, -1, "{\"message\":\"Not Found\"}", 1, GH_NOT_FOUND,
	         0},
	        {422, -1, 0, -1, "{\"message\":\"Validation Failed\"}", 1,
	         GH_INVALID, 0},
	        {400, -1, 0, -1, "{}", 1, GH_FAIL, 0},
	        {410, -1, 0, -1, "{}", 1, GH_FAIL, 0},
	        /* 5xx and no answer: exponential backoff, capped. */
	        {500, -1, 0, -1, "", 1, GH_RETRY, 1000},
	        {502, -1, 0, -1, "", 2, GH_RETRY, 2000},
	        {503, -1, 0, -1, "", 3, GH_RETRY, 4000},
	        {500, -1, 0, -1, "", 30, GH_RETRY, 300000},
	        {0, -1, 0, -1, "", 1, GH_RETRY, 1000},
	};
	struct github_backoff bo = {1000, 300000};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		struct github_response r;
		int64_t ms = -7;
		enum github_verdict v;

		github_response_init(&r);
		r.status = cases[i].status;
		r.ratelimit_remaining = cases[i].remaining;
		r.ratelimit_reset = cases[i].reset;
		r.retry_after = cases[i].retry_after;
		buf_puts(&r.body, cases[i].body);
		v = github_classify(&r, 1000000, cases[i].attempt, &bo, &ms);
		if (v != cases[i].want || ms != cases[i].want_ms) {
			fprintf(stderr, "  case %zu: got %s %lld\n", i,
			        github_verdict_name(v), (long long)ms);
			CHECK(!"classify");
		}
		github_response_free(&r);
	}
}

static void
test_link(void)
{
	static const struct {
		const char *link, *want;
	} cases[] = {
	        /* GitHub's own, from the recordings. */
	        {"<https://api.github.com/repos/PyGithub/PyGithub/issues/"
	         "comments?page=2>; rel=\"next\", <https://api.github.com/repos/"
	         "PyGithub/PyGithub/issues/comments?page=7>; rel=\"last\"",
	         "https://api.github.com/repos/PyGithub/PyGithub/issues/"
	         "comments?page=2"},
	        {"<https://a/x?page=3>; rel=\"next\", <https://a/x?page=7>; "
	         "rel=\"last\", <https://a/x?page=1>; rel=\"first\", "
	         "<https://a/x?page=1>; rel=\"prev\"",
	         "https://a/x?page=3"},
	        /* next not first in the list; last page has none. */
	        {"<https://a/x?page=1>; rel=\"prev\", <https://a/x?page=3>; "
	         "rel=\"next\"",
	         "https://a/x?page=3"},
	        {"<https://a/x?page=1>; rel=\"first\", <https://a/x?page=6>; "
	         "rel=\"prev\"",
	         NULL},
	        {"<https://a/x?page=2>;rel=next", "https://a/x?page=2"},
	        {"<https://a/x?page=2>; title=\"a\"; rel=\"prev next\"",
	         "https://a/x?page=2"},
	        {"<https://a/next>; rel=\"nextish\"", NULL},
	        {"", NULL},
	        {"<https://a/x", NULL},
	        {"garbage; rel=\"next\"", NULL},
	};
	size_t i;

	CHECK(!github_link_next(NULL, NULL));
	for (i = 0; i < NELEM(cases); i++) {
		struct buf b = BUF_INIT;
		bool got = github_link_next(cases[i].link, &b);

		if (got != (cases[i].want != NULL)) {
			fprintf(stderr, "  case %zu: got %d\n", i, got);
			CHECK(!"link");
		}
		if (got)
			CHECK_STR(buf_str(&b), cases[i].want);
		buf_free(&b);
	}
}

static void
test_md_text(void)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
	        {"Fix bug", "Fix bug"},
	        {"<img src=x onerror=alert(1)>",
	         "&#60;img src&#61;x onerror&#61;alert&#40;1&#41;&#62;"},
	        {"[click](javascript:evil)",
	         "&#91;click&#93;&#40;javascript&#58;evil&#41;"},
	        {"| a | b |", "&#124; a &#124; b &#124;"},
	        {"cc @octocat", "cc @&#8203;octocat"},
	        {"line\nbreak\r\t", "line break  "},
	        {"**bold** `code` <!-- x -->",
	         "&#42;&#42;bold&#42;&#42; &#96;code&#96; &#60;&#33;&#45;&#45; "
	         "x &#45;&#45;&#62;"},
	        {"héllo ✓", "héllo ✓"},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		struct buf b = BUF_INIT;

		github_md_text(&b, cases[i].in, 1000);
		CHECK_STR(buf_str(&b), cases[i].want);
		buf_free(&b);
	}
}

/* No hostile byte sequence survives anywhere in a rendered comment. */
static void
check_clean(const char *body)
{
	static const char *const bad[] = {
	        "<img",     "<script", "](javascript",
	        "@octocat", "<!-- x",  "</details><script",
	        "\n# ",     "<b>",     "-->\n<",
	};
	size_t i;

	for (i = 0; i < NELEM(bad); i++)
		if (strstr(body, bad[i]) != NULL) {
			fprintf(stderr, "  found %s in:\n%s\n", bad[i], body);
			CHECK(!"hostile text survived");
		}
	/* Exactly one marker, on the first line. */
	CHECK(strncmp(body, "<!-- ephemera:preview pr-7-app -->\n", 35) == 0);
	CHECK(strstr(body + 1, "<!-- ephemera:preview") == NULL);
}

static void
test_comment_render(void)
{
	struct github_step steps[] = {
	        {"clone", "succeeded", 1.25},
	        {"build", "succeeded", 12.0},
	        {"start<b>", "running", -1},
	};
	struct github_service svc[] = {
	        {"web", "http://pr-7-app.localhost:8080/", true},
	        {"api<x>", "http://pr-7-app.localhost:8080/api/", false},
	};
	struct github_view v;
	struct buf b = BUF_INIT;

	memset(&v, 0, sizeof(v));
	v.services = svc;
	v.nservices = NELEM(svc);
	v.slug = "pr-7-app";
	v.title = "<img src=x onerror=alert(1)> [x](javascript:alert(1)) "
	          "@octocat <!-- x -->\n# heading";
	v.head_ref = "feature/<script>alert(1)</script>";
	v.author = "mallory";
	v.phase = "ready";
	v.sha = "0123456789abcdef0123456789abcdef01234567";
	v.url = "http://pr-7-app.localhost:8080/";
	v.log_url = "http://127.0.0.1:8080/environments/pr-7-app";
	v.steps = steps;
	v.nsteps = NELEM(steps);
	v.updated = "2026-11-27T08:00:00Z";
	CHECK(github_comment_render(&v, &b) == 0);
	check_clean(buf_str(&b));
	CHECK(strstr(buf_str(&b), "### ✅ Preview ready") != NULL);
	CHECK(strstr(buf_str(&b), "[http&#58;&#47;&#47;pr&#45;7&#45;app&#46;"
	                          "localhost&#58;8080&#47;](<http://pr-7-app."
	                          "localhost:8080/>)") != NULL);
	CHECK(strstr(buf_str(&b), "`0123456789ab`") != NULL);
	CHECK(strstr(buf_str(&b),
	             "| api&#60;x&#62; | [http&#58;&#47;&#47;pr&#45;7&#45;app&#46;"
	             "localhost&#58;8080&#47;api&#47;](<http://pr-7-app."
	             "localhost:8080/api/>) |") != NULL);
	CHECK(strstr(buf_str(&b), "| web |") == NULL);
	CHECK(strstr(buf_str(&b), "| clone | succeeded | 1.2 s |") != NULL);
	CHECK(strstr(buf_str(&b), "| start&#60;b&#62; | running | … |") !=
	      NULL);
	CHECK(strstr(buf_str(&b), "Last deploy: 13.2 s") != NULL);

	/* A failed build: the reason and the log's last lines, escaped. */
	buf_reset(&b);
	v.phase = "failed";
	v.why = WHY_FAILED;
	v.build_error = "compose up: exit 1 </details><script>";
	v.log_tail = "one\ntwo\nthree </pre><b>x</b>\nfour @octocat\n";
	v.log_lines = 3;
	CHECK(github_comment_render(&v, &b) == 0);
	check_clean(buf_str(&b));
	CHECK(strstr(buf_str(&b),
	             "<pre>two\nthree &lt;/pre&gt;&lt;b&gt;x&lt;"
	             "/b&gt;\nfour @&#8203;octocat</pre>") != NULL);
	CHECK(strstr(buf_str(&b), "one\n") == NULL);
	/* No preview link when there is no preview. */
	CHECK(strstr(buf_str(&b), "**Preview**") == NULL);
	/* A log of blank lines only (found by fuzz_github): no block. */
	buf_reset(&b);
	v.log_tail = "\n\r\n\n";
	CHECK(github_comment_render(&v, &b) == 0);
	CHECK(strstr(buf_str(&b), "<pre>") == NULL);
	v.log_tail = "x";
	buf_reset(&b);
	CHECK(github_comment_render(&v, &b) == 0);
	CHECK(strstr(buf_str(&b), "<pre>x</pre>") != NULL);

	/* Awaiting approval says how to approve. */
	buf_reset(&b);
	v.phase = "awaiting_approval";
	v.why = WHY_APPROVAL;
	v.trusted_label = "preview-approved";
	v.nsteps = 0;
	CHECK(github_comment_render(&v, &b) == 0);
	check_clean(buf_str(&b));
	CHECK(strstr(buf_str(&b), "awaiting approval") != NULL);
	CHECK(strstr(buf_str(&b), "`/preview approve`") != NULL);
	CHECK(strstr(buf_str(&b), "**preview&#45;approved**") != NULL);

	buf_reset(&b);
	v.phase = "queued";
	v.why = WHY_QUEUED;
	v.queue_position = 3;
	v.max_running = 10;
	CHECK(github_comment_render(&v, &b) == 0);
	CHECK(strstr(buf_str(&b), "number 3 in the queue") != NULL);
	/* Queued for this host's networks: the reason, not the slots. */
	buf_reset(&b);
	v.queued_reason = "this host's preview networks are all taken";
	CHECK(github_comment_render(&v, &b) == 0);
	CHECK(strstr(buf_str(&b), "Waiting: this host&#39;s preview networks "
	                          "are all taken.") != NULL);
	CHECK(strstr(buf_str(&b), "in the queue") == NULL);
	v.queued_reason = NULL;
	/* Waiting for its budget: the reason (which names the repository,
	 * the attacker's text) escaped, and no place in any queue. */
	buf_reset(&b);
	v.phase = "budget";
	v.why = WHY_BUDGET;
	v.budget_reason = "o/<b>r</b> @x has spent $50.12 of its $50.00 "
	                  "monthly budget; previews wait until 2027-01-01 "
	                  "00:00 UTC or a higher budget";
	CHECK(github_comment_render(&v, &b) == 0);
	check_clean(buf_str(&b));
	CHECK(strstr(buf_str(&b), "### 💰 Preview waiting for budget") != NULL);
	CHECK(strstr(buf_str(&b),
	             "Not started: o&#47;&#60;b&#62;r&#60;&#47;b&#62; "
	             "@&#8203;x has spent &#36;50&#46;12 of its &#36;50&#46;00 "
	             "monthly budget&#59; previews wait until 2027&#45;01&#45;01 "
	             "00&#58;00 UTC or a higher budget. Previews already "
	             "running keep running") != NULL);
	CHECK(strstr(buf_str(&b), "in the queue") == NULL);
	v.budget_reason = NULL;
	buf_reset(&b);
	v.phase = "stopped";
	v.why = WHY_IDLE;
	v.idle_minutes = 240;
	CHECK(github_comment_render(&v, &b) == 0);
	CHECK(strstr(buf_str(&b), "after 240 minutes without traffic") != NULL);
	CHECK(strstr(buf_str(&b), "Comment `/preview deploy` (or push)") !=
	      NULL);
	/* Behind an exposure that wakes on a visit: the URL says so. */
	buf_reset(&b);
	v.wake_url = "https://pr-1-app.preview.example/";
	CHECK(github_comment_render(&v, &b) == 0);
	CHECK(strstr(buf_str(&b), "Opening [its URL](<https://pr-1-app.preview."
	                          "example/>) starts it again") != NULL);
	v.wake_url = NULL;
	buf_reset(&b);
	v.why = WHY_DRAFT;
	CHECK(github_comment_render(&v, &b) == 0);
	CHECK(strstr(buf_str(&b), "ready for review") != NULL);
	buf_reset(&b);
	v.why = WHY_LABEL;
	v.label = "preview";
	CHECK(github_comment_render(&v, &b) == 0);
	CHECK(strstr(buf_str(&b), "labelled **preview**") != NULL);
	/* A SHA that is not hex is not shown. */
	buf_reset(&b);
	v.sha = "`; rm -rf / #aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	CHECK(github_comment_render(&v, &b) == 0);
	CHECK(strstr(buf_str(&b), "rm -rf") == NULL);
	buf_free(&b);
}

static void
test_why(void)
{
	static const struct {
		const char *phase, *desired;
		bool trusted, label_missing, draft, idle;
		const char *build;
		enum github_why want;
	} cases[] = {
	        {"pending", "stopped", true, false, true, false, NULL,
	         WHY_DRAFT},
	        {"stopped", "stopped", true, false, true, false, "succeeded",
	         WHY_DRAFT},
	        {"ready", "running", true, false, true, false, "succeeded",
	         WHY_NONE},
	        {"ready", "running", true, false, false, false, "succeeded",
	         WHY_NONE},
	        {"deploying", "running", true, false, false, false, "running",
	         WHY_NONE},
	        {"awaiting_approval", "awaiting_approval", false, false, false,
	         false, NULL, WHY_APPROVAL},
	        {"pending", "awaiting_approval", false, false, false, false,
	         NULL, WHY_APPROVAL},
	        /* Held: torn down through "destroying", still not closed. */
	        {"destroying", "awaiting_approval", false, false, false, false,
	         "succeeded", WHY_APPROVAL},
	        {"destroying", "destroyed", true, false, false, false,
	         "succeeded", WHY_CLOSED},
	        {"pending", "stopped", true, true, false, false, NULL,
	         WHY_LABEL},
	        {"queued", "running", true, false, false, false, NULL,
	         WHY_QUEUED},
	        {"budget", "running", true, false, false, false, NULL,
	         WHY_BUDGET},
	        /* Stopped as idle, woken, and over budget: waiting. */
	        {"budget", "running", true, false, false, true, "succeeded",
	         WHY_BUDGET},
	        {"budget", "destroyed", true, false, false, false, NULL,
	         WHY_CLOSED},
	        {"failed", "running", true, false, false, false, "failed",
	         WHY_FAILED},
	        {"deploying", "running", true, false, false, false, "failed",
	         WHY_NONE},
	        {"stopped", "stopped", true, false, false, true, "succeeded",
	         WHY_IDLE},
	        {"stopped", "stopped", true, false, false, false, "succeeded",
	         WHY_STOPPED},
	        {"destroyed", "destroyed", true, false, false, false,
	         "succeeded", WHY_CLOSED},
	        {"ready", "destroyed", true, false, false, false, "succeeded",
	         WHY_CLOSED},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		enum github_why w = github_why_of(
		        cases[i].phase, cases[i].desired, cases[i].trusted,
		        cases[i].label_missing, cases[i].draft, cases[i].idle,
		        cases[i].build);

		if (w != cases[i].want) {
			fprintf(stderr, "  case %zu: got %d\n", i, (int)w);
			CHECK(!"why");
		}
	}
}

static void
test_deploy_steps(void)
{
	static const struct {
		const char *build, *phase;
		bool latest;
		const char *last, *want;
	} cases[] = {
	        {"running", "deploying", true, NULL, "in_progress"},
	        {"running", "deploying", true, "in_progress", ""},
	        {"succeeded", "ready", true, NULL, "in_progress success"},
	        {"succeeded", "ready", true, "in_progress", "success"},
	        {"succeeded", "ready", true, "success", ""},
	        {"failed", "failed", true, "in_progress", "failure"},
	        {"succeeded", "stopped", true, "success", "inactive"},
	        {"succeeded", "destroyed", true, "in_progress",
	         "success inactive"},
	        {"succeeded", "destroyed", true, "inactive", ""},
	        /* An older build is retired once a newer one exists. */
	        {"succeeded", "ready", false, "success", "inactive"},
	        {"running", "deploying", false, "in_progress", "inactive"},
	        {"failed", "ready", false, "in_progress", "failure inactive"},
	        {"cancelled", "deploying", false, "in_progress", "inactive"},
	        {"cancelled", "deploying", true, NULL, "in_progress inactive"},
	        /* Adopted from the queue: `queued` is never said again. */
	        {"running", "deploying", true, "queued", "in_progress"},
	        {"succeeded", "ready", true, "queued", "in_progress success"},
	        {"running", "queued", true, NULL, "in_progress"},
	        /* Held for approval: the app is gone. */
	        {"succeeded", "awaiting_approval", true, "success", "inactive"},
	        /* Waiting for its budget: its last deploy is not running. */
	        {"succeeded", "budget", true, "inactive", ""},
	        {"succeeded", "budget", true, "success", "inactive"},
	};
	size_t i, j, n;

	for (i = 0; i < NELEM(cases); i++) {
		const char *out[3];
		struct buf got = BUF_INIT;
		const char *target = github_deploy_target(
		        cases[i].build, cases[i].latest, cases[i].phase);

		n = github_deploy_steps(cases[i].last, target, cases[i].build,
		                        out);
		for (j = 0; j < n; j++)
			buf_printf(&got, "%s%s", j ? " " : "", out[j]);
		CHECK_STR(buf_str(&got), cases[i].want);
		buf_free(&got);
	}
}

static void
test_permission(void)
{
	static const struct {
		const char *permission, *role;
		bool want;
	} cases[] = {
	        {"admin", "admin", true},    {"write", "write", true},
	        {"write", "maintain", true}, {"read", "triage", false},
	        {"read", "read", false},     {"none", "none", false},
	        {NULL, NULL, false},         {"WRITE", NULL, false},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++)
		CHECK(github_permission_writes(cases[i].permission,
		                               cases[i].role) == cases[i].want);
}

static void
test_url_public(void)
{
	static const struct {
		const char *url;
		bool want;
	} cases[] = {
	        {"https://ephemera.example.com/env/pr-1-app", true},
	        {"http://pr-1-app.preview.example.com:8080/", true},
	        {"https://[2001:db8::1]/x", true},
	        {"http://127.0.0.1:8080/env/pr-1-app", false},
	        {"http://127.1.2.3/", false},
	        {"http://localhost:8080/", false},
	        {"http://LOCALHOST/", false},
	        {"http://localhost./", false},
	        {"http://pr-1-app.localhost:8080/", false},
	        {"http://pr-1-app.localhost./", false},
	        {"http://[::1]:8080/", false},
	        {"http://0.0.0.0/", false},
	        {"javascript:alert(1)", false},
	        {"ftp://example.com/", false},
	        {"https:///nohost", false},
	        {"", false},
	        {NULL, false},
	        /* Only the host counts, not a path that mentions one. */
	        {"https://example.com/localhost", true},
	        {"https://localhost.example.com/", true},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		if (github_url_public(cases[i].url) != cases[i].want)
			fprintf(stderr, "url=%s\n",
			        cases[i].url ? cases[i].url : "(null)");
		CHECK(github_url_public(cases[i].url) == cases[i].want);
	}
}

static void
test_repo_ok(void)
{
	CHECK(github_repo_ok("octo/app"));
	CHECK(github_repo_ok("Octo-Org/my.app_2"));
	CHECK(!github_repo_ok("octo"));
	CHECK(!github_repo_ok("/app"));
	CHECK(!github_repo_ok("octo/"));
	CHECK(!github_repo_ok("octo/app/x"));
	CHECK(!github_repo_ok("octo/../x"));
	CHECK(!github_repo_ok("octo/app?x=1"));
	CHECK(!github_repo_ok("octo/app#"));
	CHECK(!github_repo_ok("octo/a b"));
	CHECK(!github_repo_ok(NULL));
}

/* The teardown report: checked-gone rows by kind, names neutralised,
 * long lists counted, unconfirmed rows apart and never called removed. */
static void
test_comment_removed(void)
{
	struct github_removed rows[16] = {
	        {"dns_record", "pr-7.example.com", true},
	        {"instance", "i-0abc", true},
	        {"tunnel", "eph-pr-7", false},
	        {"volume", "eph-pr-7_data<script>@team", true},
	};
	struct github_view v;
	struct buf b = BUF_INIT;
	size_t i;

	for (i = 4; i < 16; i++)
		rows[i] = (struct github_removed){"volume", "v", true};
	memset(&v, 0, sizeof(v));
	v.slug = "pr-7";
	v.phase = "destroyed";
	v.why = WHY_CLOSED;
	v.removed = rows;
	v.nremoved = 16;
	CHECK(github_comment_render(&v, &b) == 0);
	CHECK(strstr(buf_str(&b), "have been removed") != NULL);
	CHECK(strstr(buf_str(&b), "- DNS record (1): `pr-7.example.com`\n"));
	CHECK(strstr(buf_str(&b), "- EC2 instance (1): `i-0abc`\n"));
	CHECK(strstr(buf_str(&b), "- Docker volume (13): ") != NULL);
	CHECK(strstr(buf_str(&b), ", and 3 more\n") != NULL);
	CHECK(strstr(buf_str(&b), "<script>") == NULL);
	CHECK(strstr(buf_str(&b), "@team") == NULL);
	/* Found, not confirmed: listed apart, after the removed ones. */
	CHECK(strstr(buf_str(&b), "Not yet confirmed gone:\n\n- Cloudflare "
	                          "tunnel (1): `eph-pr-7`\n") != NULL);
	CHECK(strstr(buf_str(&b), "Not yet confirmed") >
	      strstr(buf_str(&b), "checked gone after the delete"));
	/* Not shown outside a closed PR, nor while it is being removed with
	 * nothing found yet. */
	buf_reset(&b);
	v.why = WHY_STOPPED;
	CHECK(github_comment_render(&v, &b) == 0);
	CHECK(strstr(buf_str(&b), "i-0abc") == NULL);
	buf_reset(&b);
	v.why = WHY_CLOSED;
	v.phase = "destroying";
	v.nremoved = 0;
	CHECK(github_comment_render(&v, &b) == 0);
	CHECK(strstr(buf_str(&b), "is being removed") != NULL);
	CHECK(strstr(buf_str(&b), "checked gone") == NULL);
	buf_free(&b);
}

/* The compute row: hours and cost, a small cost with four decimals; none
 * when the caller has nothing settled to show (hours <= 0). */
static void
test_comment_compute(void)
{
	struct github_view v;
	struct buf b = BUF_INIT;

	memset(&v, 0, sizeof(v));
	v.slug = "pr-7";
	v.phase = "stopped";
	v.why = WHY_STOPPED;
	v.compute_hours = 1.5;
	v.compute_cost = 0.0312;
	CHECK(github_comment_render(&v, &b) == 0);
	CHECK(strstr(buf_str(&b), "| **Compute** | 1.50 h, $0.03 |\n") != NULL);
	buf_reset(&b);
	v.compute_hours = 0.25;
	v.compute_cost = 0.005;
	CHECK(github_comment_render(&v, &b) == 0);
	CHECK(strstr(buf_str(&b), "| **Compute** | 0.25 h, $0.0050 |\n") !=
	      NULL);
	buf_reset(&b);
	v.compute_hours = -1;
	CHECK(github_comment_render(&v, &b) == 0);
	CHECK(strstr(buf_str(&b), "Compute") == NULL);
	buf_free(&b);
}

UNIT_MAIN(TEST(test_permission), TEST(test_repo_ok), TEST(test_base64url),
          TEST(test_jwt), TEST(test_classify), TEST(test_link),
          TEST(test_md_text), TEST(test_comment_render), TEST(test_why),
          TEST(test_deploy_steps), TEST(test_url_public),
          TEST(test_comment_removed), TEST(test_comment_compute))
