/*
 * test_webhook.c - POST /webhook up to the database: everything refused
 * before a transaction starts (no secret, signatures, content types,
 * headers, bodies) and the form encoding. The app has no database here,
 * so a request that got as far as recording would crash the test.
 */
#include "unit.h"
#include "../../fcgi-app/app.h"

#define SECRET "s3cret"

static void
post(struct app *app, const char *ct, const char *event, const char *guid,
     const char *sig, const char *body, int want, const char *text)
{
	char h1[128], h2[128], h3[128];
	char *envp[4] = {NULL, NULL, NULL, NULL};
	struct request req = {.method = "POST",
	                      .path = "/webhook",
	                      .query = "",
	                      .content_type = ct,
	                      .body = slice_of(body),
	                      .envp = envp};
	struct response res;
	size_t n = 0;

	if (event) {
		snprintf(h1, sizeof(h1), "HTTP_X_GITHUB_EVENT=%s", event);
		envp[n++] = h1;
	}
	if (guid) {
		snprintf(h2, sizeof(h2), "HTTP_X_GITHUB_DELIVERY=%s", guid);
		envp[n++] = h2;
	}
	if (sig) {
		snprintf(h3, sizeof(h3), "HTTP_X_HUB_SIGNATURE_256=%s", sig);
		envp[n++] = h3;
	}
	response_init(&res);
	route_dispatch(app, &req, &res);
	if (res.status != want)
		fprintf(stderr, "  %s: got %d %s", body, res.status,
		        buf_str(&res.body));
	CHECK(res.status == want);
	CHECK(strstr(buf_str(&res.body), text) != NULL);
	response_free(&res);
}

static void
test_refusals(void)
{
	struct config cfg;
	struct app app = {&cfg, NULL, 0, NULL};
	char hex[65], sig[80], form_sig[80];
	const char *body = "{\"zen\":\"x\"}";
	const char *form = "a=1&payload=%7B+%22zen%22%3A1+%7D&b=2";
	const char *guid = "72d3162e-cc78-11e3-81ab-4c9367dc0958";

	memset(&cfg, 0, sizeof(cfg));
	post(&app, "application/json", "ping", guid, "sha256=00", body, 503,
	     "webhook secret not configured");
	cfg.github_webhook_secret = SECRET;
	signature_hex(SECRET, slice_of(body), hex);
	snprintf(sig, sizeof(sig), "sha256=%s", hex);
	signature_hex(SECRET, slice_of(form), hex);
	snprintf(form_sig, sizeof(form_sig), "sha256=%s", hex);
	post(&app, "application/json", "ping", guid, NULL, body, 401,
	     "missing X-Hub-Signature-256");
	post(&app, "application/json", "ping", guid, "sha256=zz", body, 401,
	     "malformed");
	post(&app, "application/json", "ping", guid, form_sig, body, 401,
	     "wrong signature");
	/* Content type is looked at only once the signature holds. */
	post(&app, "text/plain", "ping", guid, NULL, body, 401, "missing");
	post(&app, "text/plain", "ping", guid, sig, body, 415,
	     "unsupported content type");
	post(&app, NULL, "ping", guid, sig, body, 415, "unsupported");
	post(&app, "application/jsonx", "ping", guid, sig, body, 415,
	     "unsupported");
	post(&app, "application/json", NULL, guid, sig, body, 400,
	     "missing X-GitHub-Event");
	post(&app, "application/json", "ping", NULL, sig, body, 400,
	     "X-GitHub-Delivery");
	post(&app, "application/json", "ping", "a b", sig, body, 400,
	     "X-GitHub-Delivery");
	post(&app, "application/json", "ping",
	     "0123456789012345678901234567890123456789012345678901234567890"
	     "12345",
	     sig, body, 400, "X-GitHub-Delivery");
	post(&app, "application/x-www-form-urlencoded", "ping", guid, sig, body,
	     400, "payload=");
	signature_hex(SECRET, slice_of("{\"zen\":"), hex);
	snprintf(sig, sizeof(sig), "sha256=%s", hex);
	post(&app, "Application/JSON; charset=utf-8", "ping", guid, sig,
	     "{\"zen\":", 400, "invalid JSON");
}

static void
test_form_payload(void)
{
	static const struct {
		const char *body, *want;
	} cases[] = {
	        {"payload=%7B%22a%22%3A1%7D", "{\"a\":1}"},
	        {"x=1&payload=a+b%20c&y=2", "a b c"},
	        {"payloadx=1", NULL},
	        {"xpayload=1", NULL},
	        {"", NULL},
	        {"payload=", ""},
	        {"payload=%zz%4", "%zz%4"},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		char *got = form_payload(slice_of(cases[i].body));

		CHECK_STR(got, cases[i].want);
		free(got);
	}
}

UNIT_MAIN(TEST(test_refusals), TEST(test_form_payload))
