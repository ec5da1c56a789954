/*
 * cloudflare_api.c - authenticated API calls on behalf of one job run.
 * The token is read from cloudflare.api_token_file at the start of every
 * run (so a rotated token is picked up without a restart), sent only in
 * the Authorization header, and wiped when the run ends.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloudflare.h"

/* An API token is 40 characters; anything near this cap is not one. */
#define CF_TOKEN_MAX 4096
#define CF_BODY_MAX (8u * 1024 * 1024)

static char *
token_read(const char *path, struct buf *why)
{
	struct buf b = BUF_INIT;
	char chunk[512];
	FILE *f = fopen(path, "re");
	size_t n;

	buf_init(&b, CF_TOKEN_MAX);
	if (f == NULL) {
		buf_printf(why, "cannot read cloudflare.api_token_file %s: %s",
		           path, strerror(errno));
		return NULL;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, n);
	explicit_bzero(chunk, sizeof(chunk));
	fclose(f);
	while (b.len > 0 && strchr(" \t\r\n", b.data[b.len - 1]))
		b.data[--b.len] = '\0';
	if (b.failed || b.len == 0 || strpbrk(buf_str(&b), " \t\r\n")) {
		buf_printf(why,
		           "cloudflare.api_token_file %s does not hold "
		           "one token",
		           path);
		if (b.data != NULL)
			explicit_bzero(b.data, b.cap);
		buf_free(&b);
		return NULL;
	}
	return buf_detach(&b);
}

int
cf_client_init(struct cf_client *c, const struct config *cfg, int attempt)
{
	memset(c, 0, sizeof(*c));
	c->cfg = cfg;
	c->attempt = attempt;
	buf_init(&c->error, 4096);
	c->token = token_read(cfg->cf_api_token_file, &c->error);
	if (c->token == NULL) {
		log_error("cf_token", "error=%s", log_q(buf_str(&c->error)));
		c->stop = CF_FAIL;
		return -1;
	}
	return 0;
}

void
cf_client_free(struct cf_client *c)
{
	if (c == NULL)
		return;
	if (c->token != NULL) {
		explicit_bzero(c->token, strlen(c->token));
		free(c->token);
		c->token = NULL;
	}
	buf_free(&c->error);
}

enum cf_verdict
cf_call(struct cf_client *c, const char *method, const char *path,
        const char *body, struct cf_reply *r)
{
	struct buf url = BUF_INIT, raw = BUF_INIT;
	enum cf_verdict v;
	int64_t retry_ms;

	buf_init(&raw, CF_BODY_MAX);
	buf_printf(&url, "%s%s", c->cfg->cf_api_url, path);
	c->calls++;
	cf_reply_free(r);
	cf_reply_init(r);
	if (cf_http_request(method, buf_str(&url), c->token, body, NULL, NULL,
	                    (long)c->cfg->cf_timeout, &r->status, &raw,
	                    &r->retry_after) == -1) {
		buf_puts(&r->message, buf_str(&raw));
	} else if (cf_reply_parse(r, raw.data ? raw.data : "", raw.len) == -1) {
		/* A proxy's HTML error page: keep the status, say so. */
		if (r->status >= 200 && r->status < 300)
			r->status = 502;
	}
	v = cf_classify(r, c->attempt, c->cfg->workers_backoff_base_ms,
	                c->cfg->workers_backoff_cap_ms, &retry_ms);
	log_debug("cf_call", "method=%s path=%s status=%ld code=%d", method,
	          log_q(path), r->status, r->code);
	if (v == CF_RETRY)
		c->retry_ms = retry_ms;
	buf_free(&url);
	buf_free(&raw);
	return v;
}

int
cf_stop(struct cf_client *c, const struct cf_reply *r, enum cf_verdict v,
        const char *step, const char *permission)
{
	buf_reset(&c->error);
	cf_explain(r, step, permission, &c->error);
	c->stop = v == CF_OK ? CF_FAIL : v;
	if (v != CF_RETRY)
		c->retry_ms = 0;
	log_warn("cf_stop", "step=%s verdict=%d retry_ms=%lld error=%s",
	         log_q(step), (int)v, (long long)c->retry_ms,
	         log_q(buf_str(&c->error)));
	return -1;
}

void
cf_result(const struct cf_client *c, struct job_result *res)
{
	switch (c->stop) {
	case CF_OK:
		res->outcome = JOB_DONE;
		return;
	case CF_RETRY:
	case CF_BUSY:
	case CF_CONFLICT:
		/* Transient: rate limits, 5xx, a record not yet listed. */
		res->outcome = JOB_RETRY;
		res->retry_after_ms = c->retry_ms;
		break;
	default:
		/* Denied, invalid, not found where it must exist: a human. */
		res->outcome = JOB_FAIL;
		res->retry_after_ms = 0;
		break;
	}
	buf_puts(&res->error, buf_str(&c->error));
}
