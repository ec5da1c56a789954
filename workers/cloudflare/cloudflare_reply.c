/*
 * cloudflare_reply.c - the API v4 envelope and what an answer means, pure.
 * Parsing and classifying are kept apart from the network so the tests
 * can feed them the recorded bodies in tests/fixtures/cloudflare/.
 */
#include <json-c/json.h>
#include <string.h>

#include "cloudflare.h"

/* A failure's message is quoted into job errors; keep it short. */
#define CF_MESSAGE_MAX 512

void
cf_reply_init(struct cf_reply *r)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->message, CF_MESSAGE_MAX);
	r->page = r->per_page = r->total_pages = r->total_count = -1;
	r->retry_after = -1;
}

void
cf_reply_free(struct cf_reply *r)
{
	if (r == NULL)
		return;
	buf_free(&r->message);
	/* root owns result and everything under it. */
	json_object_put(r->root);
	r->root = NULL;
	r->result = NULL;
}

static int64_t
info_int(struct json_object *info, const char *key)
{
	struct json_object *v;

	if (info == NULL || !json_object_object_get_ex(info, key, &v) ||
	    !json_object_is_type(v, json_type_int))
		return -1;
	return json_object_get_int64(v);
}

int
cf_reply_parse(struct cf_reply *r, const char *body, size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *v, *errs, *info = NULL;
	int rc = -1;

	if (tok == NULL)
		fatal("out_of_memory", "what=json_tokener_new");
	json_object_put(r->root);
	r->root = json_tokener_parse_ex(tok, body, (int)len);
	r->result = NULL;
	if (json_tokener_get_error(tok) != json_tokener_success ||
	    !json_object_is_type(r->root, json_type_object)) {
		buf_reset(&r->message);
		buf_puts(&r->message, "the answer is not a JSON envelope");
		goto out;
	}
	if (!json_object_object_get_ex(r->root, "success", &v) ||
	    !json_object_is_type(v, json_type_boolean)) {
		buf_reset(&r->message);
		buf_puts(&r->message, "the answer has no \"success\" field");
		goto out;
	}
	r->success = json_object_get_boolean(v);
	/* "result" may be absent (connections DELETE, auth errors). */
	if (json_object_object_get_ex(r->root, "result", &v) &&
	    !json_object_is_type(v, json_type_null))
		r->result = v;
	if (json_object_object_get_ex(r->root, "errors", &errs) &&
	    json_object_is_type(errs, json_type_array) &&
	    json_object_array_length(errs) > 0) {
		struct json_object *e = json_object_array_get_idx(errs, 0), *f;

		if (json_object_object_get_ex(e, "code", &f))
			r->code = json_object_get_int(f);
		if (json_object_object_get_ex(e, "message", &f)) {
			buf_reset(&r->message);
			buf_puts(&r->message, json_object_get_string(f));
		}
	}
	if (!r->success && r->code == 0 && r->message.len == 0)
		buf_puts(&r->message, "failed without an error item");
	json_object_object_get_ex(r->root, "result_info", &info);
	r->page = info_int(info, "page");
	r->per_page = info_int(info, "per_page");
	r->total_pages = info_int(info, "total_pages");
	r->total_count = info_int(info, "total_count");
	rc = 0;
out:
	json_tokener_free(tok);
	return rc;
}

bool
cf_reply_more(const struct cf_reply *r)
{
	if (r->page < 1)
		return false;
	if (r->total_pages >= 0)
		return r->page < r->total_pages;
	/* Some lists give only total_count (README: "sometimes"). */
	if (r->total_count >= 0 && r->per_page > 0)
		return r->page * r->per_page < r->total_count;
	return false;
}

static int64_t
backoff_ms(int attempt, int64_t base, int64_t cap)
{
	int64_t d = base;

	while (--attempt > 0 && d < cap)
		d *= 2;
	return d < cap ? d : cap;
}

enum cf_verdict
cf_classify(const struct cf_reply *r, int attempt, int64_t base_ms,
            int64_t cap_ms, int64_t *retry_ms)
{
	*retry_ms = 0;
	if (r->status >= 200 && r->status < 300 && r->success)
		return CF_OK;
	if (r->status == 429 || r->code == 10100 || r->code == 971) {
		/*
		 * Cloudflare blocks every call for the rest of the window;
		 * its Retry-After (seconds, rounded up) says when.
		 */
		*retry_ms = r->retry_after >= 0
		                    ? r->retry_after * 1000
		                    : backoff_ms(attempt, 60000, 300000);
		if (*retry_ms < 1000)
			*retry_ms = 1000;
		return CF_RETRY;
	}
	if (r->status == 0 || r->status >= 500) {
		*retry_ms = backoff_ms(attempt, base_ms, cap_ms);
		return CF_RETRY;
	}
	if (r->status == 401 || r->status == 403 || r->code == 10000)
		return CF_DENIED;
	if (r->code == 1013 || r->code == 81053 || r->code == 81057 ||
	    r->status == 409)
		return CF_CONFLICT;
	if (r->code == 1022)
		return CF_BUSY;
	if (r->status == 404 || r->code == 81044 || r->code == 1003)
		return CF_NOT_FOUND;
	if (r->status == 400)
		return CF_INVALID;
	return CF_FAIL;
}

void
cf_explain(const struct cf_reply *r, const char *step, const char *permission,
           struct buf *out)
{
	const char *said = r->message.len ? buf_str(&r->message) : "no message";

	buf_printf(out, "cloudflare: %s: ", step);
	if (r->status < 0) {
		/* Found by us in a good answer (a foreign record, say). */
		buf_puts(out, said);
		return;
	}
	if (r->status == 0) {
		buf_printf(out, "no answer from the API (%s)", said);
		return;
	}
	if (r->status == 401) {
		buf_printf(
		        out,
		        "the API token was refused (HTTP 401, code %d \"%s\"):"
		        " check cloudflare.api_token_file holds a valid, "
		        "unexpired token",
		        r->code, said);
		return;
	}
	if (r->status == 403 || r->code == 10000) {
		buf_printf(
		        out,
		        "the API token lacks the permission \"%s\" or is not "
		        "scoped to this account/zone (HTTP %ld, code %d "
		        "\"%s\")",
		        permission ? permission : "?", r->status, r->code,
		        said);
		return;
	}
	switch (r->code) {
	case 1013:
		buf_puts(out, "a live tunnel already has this name");
		break;
	case 1022:
		buf_puts(out, "the tunnel still has active connections (is "
		              "its connector still running?)");
		break;
	case 81053:
	case 81057:
		buf_puts(out, "a DNS record with this name already exists");
		break;
	case 81044:
		buf_puts(out, "the DNS record does not exist");
		break;
	case 7003:
		buf_puts(out, "no such route: check cloudflare.account_id and "
		              "cloudflare.zone_id");
		break;
	case 10100:
	case 971:
		buf_puts(out, "rate limited by Cloudflare (1200 requests per "
		              "5 minutes per user)");
		break;
	default:
		buf_printf(out, "HTTP %ld", r->status);
		break;
	}
	if (r->code != 0)
		buf_printf(out, " (code %d \"%s\")", r->code, said);
	else
		buf_printf(out, " (%s)", said);
}
