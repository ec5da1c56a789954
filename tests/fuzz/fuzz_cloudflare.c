/*
 * fuzz_cloudflare.c - libFuzzer over what the Cloudflare API (or a record
 * someone else made in the zone) can make the provider read: envelopes
 * through the parser, classifier and explainer; DNS record comments; and
 * service names through the ingress renderer. The first byte chooses the
 * target; the rest is the input.
 *
 * Invariants beyond "no crash, no leak, no UB": a retry always comes with
 * a positive delay; a comment yields a slug only if it is a valid one; a
 * rendered ingress is JSON whose last rule is the 404 catch-all.
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "../../workers/cloudflare/cloudflare.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static void
must(bool ok)
{
	if (!ok)
		abort();
}

static void
fuzz_reply(const char *s, size_t n, unsigned char status)
{
	static const long statuses[] = {200, 400, 401, 403, 404, 409, 429, 500};
	struct cf_reply r;
	struct buf out = BUF_INIT;
	int64_t ms = -1;
	enum cf_verdict v;

	cf_reply_init(&r);
	r.status = statuses[status % NELEM(statuses)];
	r.retry_after = status & 8 ? status : -1;
	if (cf_reply_parse(&r, s, n) == 0) {
		(void)cf_reply_more(&r);
		v = cf_classify(&r, 1 + status % 5, 1000, 60000, &ms);
		must(v != CF_RETRY || ms > 0);
		cf_explain(&r, "step", "perm", &out);
		must(out.len > 0);
	}
	buf_free(&out);
	cf_reply_free(&r);
}

static void
fuzz_comment(const char *s)
{
	char slug[64];

	if (cf_comment_slug(s, "eph", slug))
		must(slug_valid(slug, strlen(slug)));
}

static void
fuzz_ingress(const char *s)
{
	struct cf_service svc[2] = {{"web", 80, true, false},
	                            {s, 8080, false, true}};
	struct buf out = BUF_INIT, err = BUF_INIT;

	if (cf_ingress_render("example-previews.com", "pr-1-app", svc, 2, &out,
	                      &err) == 0) {
		struct json_object *o = json_tokener_parse(buf_str(&out));

		must(o != NULL);
		must(strstr(buf_str(&out),
		            "{\"service\":\"http_status:404\"}]}}") != NULL);
		json_object_put(o);
	}
	buf_free(&out);
	buf_free(&err);
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	char *s;

	if (size < 1)
		return 0;
	s = xstrndup((const char *)data + 1, size - 1);
	switch (data[0] % 3) {
	case 0:
		fuzz_reply(s, strlen(s), data[0]);
		break;
	case 1:
		fuzz_comment(s);
		break;
	default:
		fuzz_ingress(s);
		break;
	}
	free(s);
	return 0;
}
