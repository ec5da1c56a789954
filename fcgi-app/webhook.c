/*
 * webhook.c - POST /webhook, the adapter between HTTP and the pure core:
 * check the signature over the exact body first (nothing else about the
 * request is believed before it), then the content type and headers,
 * parse, and hand the event to delivery_record's one transaction, or,
 * with several threads, to batch.c, which shares one with the deliveries
 * that arrive at the same time. The answer comes after COMMIT, so 202
 * means "durably recorded"; then the local workers are nudged.
 *
 *   401  missing, malformed or wrong signature (nothing recorded)
 *   415  neither application/json nor application/x-www-form-urlencoded
 *   400  no event or delivery header, or a body that is not JSON
 *   503  no webhook secret configured, or the database is unavailable
 *   200  ping, or a delivery seen before ("duplicate")
 *   202  recorded: "accepted", or "ignored: <reason>"
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "app.h"

enum body_type { BODY_OTHER, BODY_JSON, BODY_FORM };

/* The media type without parameters ("application/json; charset=..."). */
static enum body_type
body_type_of(const char *ct)
{
	size_t n;

	if (ct == NULL)
		return BODY_OTHER;
	while (*ct == ' ')
		ct++;
	n = strcspn(ct, "; ");
	if (n == 16 && strncasecmp(ct, "application/json", n) == 0)
		return BODY_JSON;
	if (n == 33 &&
	    strncasecmp(ct, "application/x-www-form-urlencoded", n) == 0)
		return BODY_FORM;
	return BODY_OTHER;
}

char *
form_payload(struct slice body)
{
	const char *p = body.ptr, *end = body.ptr + body.len;

	while (p != NULL && p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		size_t len = amp ? (size_t)(amp - p) : (size_t)(end - p);

		if (len >= 8 && memcmp(p, "payload=", 8) == 0)
			return url_decode(p + 8, len - 8);
		p = amp ? amp + 1 : NULL;
	}
	return NULL;
}

/* GitHub's GUIDs; anything else is refused before it reaches a column. */
static bool
guid_valid(const char *s)
{
	size_t i;

	for (i = 0; s && s[i]; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '-'))
			return false;
	return s && i > 0 && i <= 64;
}

static void
answer(struct response *res, int status, const char *prefix, const char *reason)
{
	res->status = status;
	res->content_type = "text/plain; charset=utf-8";
	buf_reset(&res->body);
	buf_puts(&res->body, prefix);
	if (reason) {
		buf_puts(&res->body, ": ");
		buf_puts(&res->body, reason);
	}
	buf_putc(&res->body, '\n');
}

static void
delivery_log(const struct delivery *d, const char *guid)
{
	const struct event *ev = d->ev;

	log_info("webhook",
	         "delivery=%s event=%s action=%s repo=%s pr=%llu "
	         "result=%s reason=%s env=%llu jobs=%u%s%s",
	         log_q(guid), ev->name, ev->action, log_q(ev->repo),
	         (unsigned long long)ev->pr, d->change.result,
	         log_q(d->change.reason), (unsigned long long)d->env_id,
	         d->reconciles + (d->command_id != 0),
	         ev->missing ? " missing=" : "",
	         ev->missing ? ev->missing : "");
}

/*
 * A COMMIT whose answer was lost (MariaDB shut down or the connection
 * died under it) may have recorded the delivery anyway. Answering 503
 * then would tell GitHub "not taken" about a delivery that was: so the
 * delivery's row is looked for, for up to RECORD_CHECK_MS while the
 * database comes back. A process-wide outage clock keeps a long outage
 * from holding every request that long: once the database has been gone
 * for longer than that, no COMMIT can still be in doubt, and failures
 * are answered at once. 1: recorded; 0: not, or unknown.
 */
#define RECORD_CHECK_MS 10000

/* Milliseconds of now_mono() when the outage began; 0: none seen. */
static int64_t outage_since_ms;

static int
recorded_after_failure(struct app *app, const char *guid)
{
	int64_t t0 = (int64_t)(now_mono() * 1000),
	        since = __atomic_load_n(&outage_since_ms, __ATOMIC_RELAXED);
	struct db_rows *r = NULL;

	if (since == 0)
		__atomic_compare_exchange_n(&outage_since_ms, &since, t0, false,
		                            __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	else if (t0 - since > RECORD_CHECK_MS)
		return 0;
	for (;;) {
		if (db_query(app->db, &r,
		             "SELECT 1 FROM deliveries WHERE guid = ?", "s",
		             guid) == 0) {
			int found = db_rows_count(r) > 0;

			db_rows_free(r);
			__atomic_store_n(&outage_since_ms, 0, __ATOMIC_RELAXED);
			return found;
		}
		if ((int64_t)(now_mono() * 1000) - t0 > RECORD_CHECK_MS)
			return 0;
		usleep(200 * 1000);
	}
}

void
webhook_post(struct app *app, const struct request *req, struct response *res)
{
	const char *secret = app->cfg->github_webhook_secret;
	const char *name = request_header(req, "X-GitHub-Event");
	const char *guid = request_header(req, "X-GitHub-Delivery");
	enum signature_result sig;
	struct slice json = req->body;
	struct event ev;
	struct delivery d;
	struct policy pol;
	struct buf err = BUF_INIT;
	char *form = NULL;

	memset(&ev, 0, sizeof(ev));
	if (secret == NULL || secret[0] == '\0') {
		log_error("webhook_refused", "reason=no_secret_configured");
		response_text(res, 503, "webhook secret not configured");
		goto out;
	}
	sig = signature_check(secret, req->body,
	                      request_header(req, "X-Hub-Signature-256"));
	if (sig != SIGNATURE_OK) {
		log_warn("webhook_refused", "reason=%s delivery=%s",
		         log_q(signature_reason(sig)), log_q(guid));
		response_text(res, 401, signature_reason(sig));
		goto out;
	}
	switch (body_type_of(req->content_type)) {
	case BODY_JSON:
		break;
	case BODY_FORM:
		form = form_payload(req->body);
		if (form == NULL) {
			response_text(res, 400, "form body without payload=");
			goto out;
		}
		json = slice_of(form);
		break;
	case BODY_OTHER:
		log_warn("webhook_refused", "reason=content_type type=%s",
		         log_q(req->content_type));
		response_text(res, 415, "unsupported content type");
		goto out;
	}
	if (name == NULL || name[0] == '\0') {
		response_text(res, 400, "missing X-GitHub-Event");
		goto out;
	}
	if (!guid_valid(guid)) {
		log_warn("webhook_refused", "reason=bad_delivery_id id=%s",
		         log_q(guid));
		response_text(res, 400, "missing or invalid X-GitHub-Delivery");
		goto out;
	}
	if (event_parse(&ev, name, json, &err) == -1) {
		log_warn("webhook_refused", "reason=%s delivery=%s",
		         log_q(buf_str(&err)), log_q(guid));
		response_text(res, 400, buf_str(&err));
		goto out;
	}
	policy_from_config(&pol, app->cfg);
	memset(&d, 0, sizeof(d));
	d.guid = guid;
	d.ev = &ev;
	d.policy = &pol;
	d.max_attempts = (int)app->cfg->workers_max_attempts;
	switch (app->batch ? batch_record(app->batch, app->db, &d)
	                   : delivery_record(app->db, &d)) {
	case DELIVERY_FAILED:
		if (recorded_after_failure(app, guid) == 1) {
			log_info("webhook",
			         "delivery=%s event=%s "
			         "result=recorded_before_failure",
			         log_q(guid), ev.name);
			response_text(res, 200, "recorded");
			goto out;
		}
		log_error("webhook_not_recorded", "delivery=%s event=%s",
		          log_q(guid), ev.name);
		response_text(res, 503, "database unavailable");
		goto out;
	case DELIVERY_DUPLICATE:
		log_info("webhook", "delivery=%s event=%s result=duplicate",
		         log_q(guid), ev.name);
		response_text(res, 200, "duplicate");
		goto out;
	case DELIVERY_DONE:
		break;
	}
	/* Recorded: any outage is over (a read, unless one was seen). */
	if (__atomic_load_n(&outage_since_ms, __ATOMIC_RELAXED) != 0)
		__atomic_store_n(&outage_since_ms, 0, __ATOMIC_RELAXED);
	delivery_log(&d, guid);
	if (d.reconciles > 0 || d.command_id != 0)
		wake_notify(app->cfg);
	if (d.change.op == CHANGE_PING)
		response_text(res, 200, "pong");
	else if (strcmp(d.change.result, "applied") == 0 ||
	         strcmp(d.change.result, "command") == 0)
		answer(res, 202, "accepted", d.change.reason);
	else
		answer(res, 202, "ignored", d.change.reason);
out:
	buf_puts(&res->headers, "Cache-Control: no-store\r\n");
	event_free(&ev);
	free(form);
	buf_free(&err);
}
