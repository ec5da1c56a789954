/*
 * github_api.c - one authenticated GitHub request on behalf of a job run:
 * URL building under github.api_url, the installation token with one
 * refresh on a 401, classification, and turning "stop" answers into the
 * job's result. json-c objects returned by github_json() belong to the
 * caller, who releases them with json_object_put().
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../workers.h"

void
github_init(struct github *gh, const struct config *cfg, uint64_t inst,
            int attempt)
{
	memset(gh, 0, sizeof(*gh));
	gh->cfg = cfg;
	gh->installation = inst;
	gh->attempt = attempt < 1 ? 1 : attempt;
	gh->stop = GH_OK;
	buf_init(&gh->error, 4096);
}

void
github_free(struct github *gh)
{
	if (gh == NULL)
		return;
	buf_free(&gh->error);
}

static int
github_keepalive(void *arg)
{
	struct github_job *gj = arg;
	double half = (double)gj->w->cfg->workers_lease_seconds / 2;

	if (worker_interrupted(gj->w)) {
		log_info("github_interrupted", "job=%llu",
		         (unsigned long long)gj->job->id);
		return -1;
	}
	if (gj->w->lease_local - now_mono() < half &&
	    job_heartbeat(gj->w, gj->job) == -1)
		return -1; /* the lease is lost: touch nothing more */
	return 0;
}

void
github_bind(struct github *gh, struct github_job *gj, struct worker *w,
            const struct job *job)
{
	gj->w = w;
	gj->job = job;
	gh->keepalive = github_keepalive;
	gh->keepalive_arg = gj;
	gh->paced = true;
}

/*
 * A content-creating request waits for its slot in the installation's
 * schedule; not here, but as its job, rescheduled by the queue. 0: go.
 */
static int
github_pace(struct github *gh, const char *method)
{
	struct github_job *gj = gh->keepalive_arg;
	int64_t wait_ms = 0;

	if (!gh->paced || gh->installation == 0 || !github_pace_method(method))
		return 0;
	if (github_pace_take(gh->cfg, gj->w->db, gh->installation, &wait_ms) ==
	    -1) {
		gh->stop = GH_RETRY;
		gh->retry_ms = 0;
		buf_reset(&gh->error);
		buf_puts(&gh->error, "database error while spacing writes");
		return -1;
	}
	if (wait_ms == 0)
		return 0;
	gh->stop = GH_RETRY;
	gh->deferred = true;
	gh->retry_ms = wait_ms;
	buf_reset(&gh->error);
	buf_printf(&gh->error,
	           "spacing writes to GitHub: installation %llu has its next "
	           "slot in %lld ms",
	           (unsigned long long)gh->installation, (long long)wait_ms);
	log_info("github_paced", "installation=%llu job=%llu wait_ms=%lld",
	         (unsigned long long)gh->installation,
	         (unsigned long long)gj->job->id, (long long)wait_ms);
	return -1;
}

int
github_fail(struct github *gh, const char *fmt, ...)
{
	va_list ap;

	gh->stop = GH_FAIL;
	gh->retry_ms = 0;
	buf_reset(&gh->error);
	va_start(ap, fmt);
	buf_vprintf(&gh->error, fmt, ap);
	va_end(ap);
	return -1;
}

/*
 * The database failed under a run (lib/db.c logged it): not GitHub's
 * answer and not for good, so the job is retried with backoff, and after
 * its last attempt is dead with this reason, not silently done.
 */
int
github_db_error(struct github *gh)
{
	gh->stop = GH_RETRY;
	gh->retry_ms = 0;
	buf_reset(&gh->error);
	buf_puts(&gh->error, "database error (see the worker log)");
	return -1;
}

void
github_result(const struct github *gh, struct job_result *res)
{
	buf_reset(&res->error);
	switch (gh->stop) {
	case GH_OK:
		res->outcome = JOB_DONE;
		res->retry_after_ms = 0;
		return;
	case GH_RETRY:
		res->outcome = gh->deferred ? JOB_DEFER : JOB_RETRY;
		res->retry_after_ms = gh->retry_ms;
		break;
	default:
		res->outcome = JOB_FAIL;
		res->retry_after_ms = 0;
		break;
	}
	buf_puts(&res->error, buf_str(&gh->error));
}

struct json_object *
github_json(const struct github_response *r)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o;

	if (tok == NULL)
		fatal("out_of_memory", "what=json_tokener_new");
	o = json_tokener_parse_ex(tok, buf_str(&r->body), (int)r->body.len);
	if (json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

/* GitHub's own explanation, for logs and job errors. */
static void
github_message(const struct github_response *r, struct buf *out)
{
	struct json_object *o = github_json(r), *m;

	if (r->status == 0 && r->transport_error != NULL)
		buf_printf(out, "no answer (%s)", r->transport_error);
	if (o != NULL && json_object_object_get_ex(o, "message", &m))
		buf_puts(out, json_object_get_string(m));
	json_object_put(o);
}

static int
github_url(const struct github *gh, const char *path, struct buf *url)
{
	const char *api = gh->cfg->github_api_url;
	size_t n = strlen(api);

	while (n > 0 && api[n - 1] == '/')
		n--;
	buf_reset(url);
	if (path[0] == '/') {
		buf_append(url, api, n);
		buf_puts(url, path);
		return 0;
	}
	/* A next-page URL must stay on the API host, or no token goes. */
	if (strncmp(path, api, n) == 0 && (path[n] == '/' || path[n] == '?')) {
		buf_puts(url, path);
		return 0;
	}
	log_error("github_url", "error=\"not under github.api_url\" url=%s",
	          log_q(path));
	return -1;
}

enum github_verdict
github_request(struct github *gh, const char *method, const char *path,
               const char *body, struct github_response *res)
{
	struct buf url = BUF_INIT, token = BUF_INIT, msg = BUF_INIT;
	struct github_backoff bo = {gh->cfg->workers_backoff_base_ms,
	                            gh->cfg->workers_backoff_cap_ms};
	enum github_verdict v = GH_FAIL;
	int64_t retry_ms = 0;
	int tries;

	if (gh->keepalive != NULL && gh->keepalive(gh->keepalive_arg) == -1) {
		gh->stop = GH_RETRY;
		gh->retry_ms = 0;
		buf_reset(&gh->error);
		buf_puts(&gh->error, "interrupted");
		v = GH_RETRY;
		goto out;
	}
	if (github_url(gh, path, &url) == -1) {
		github_fail(gh, "refused to follow %s", path);
		goto out;
	}
	if (github_pace(gh, method) == -1) {
		v = GH_RETRY;
		goto out;
	}
	for (tries = 0; tries < 2; tries++) {
		github_response_free(res);
		github_response_init(res);
		buf_reset(&token);
		if (github_token_get(gh, NULL, &token) == -1) {
			v = gh->stop;
			goto out;
		}
		github_http_request(method, buf_str(&url), buf_str(&token),
		                    body, (long)gh->cfg->github_timeout, res);
		v = github_classify(res, time(NULL), gh->attempt, &bo,
		                    &retry_ms);
		if (v != GH_REAUTH)
			break;
		/* Expired or revoked early: a fresh token, once. */
		log_info("github_token_rejected", "installation=%llu",
		         (unsigned long long)gh->installation);
		github_token_forget(gh->installation, NULL);
	}
	if (v == GH_REAUTH)
		v = GH_FAIL;
	if (v == GH_RETRY || v == GH_FAIL) {
		github_message(res, &msg);
		log_msg(v == GH_RETRY ? LOG_WARN : LOG_ERROR, "github_request",
		        "method=%s path=%s status=%ld verdict=%s retry_ms=%lld "
		        "message=%s",
		        method, log_q(path), res->status,
		        github_verdict_name(v), (long long)retry_ms,
		        log_q(buf_str(&msg)));
		gh->stop = v;
		gh->retry_ms = retry_ms;
		buf_reset(&gh->error);
		buf_printf(&gh->error, "GitHub %s %s: %ld %s", method, path,
		           res->status, buf_str(&msg));
	}
out:
	if (token.data != NULL)
		explicit_bzero(token.data, token.len);
	buf_free(&token);
	buf_free(&url);
	buf_free(&msg);
	return v;
}

int
github_app_jwt(const struct config *cfg, struct buf *jwt)
{
	struct buf pem = BUF_INIT;
	char chunk[4096];
	size_t n;
	FILE *f;
	int rc = -1;

	pem.max = 64 * 1024;
	f = fopen(cfg->github_private_key_file, "r");
	if (f == NULL) {
		log_error("github_key", "error=\"cannot read\" file=%s",
		          log_q(cfg->github_private_key_file));
		goto out;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&pem, chunk, n);
	fclose(f);
	explicit_bzero(chunk, sizeof(chunk));
	if (pem.failed) {
		log_error("github_key", "error=\"larger than 64 KiB\" file=%s",
		          log_q(cfg->github_private_key_file));
		goto out;
	}
	rc = github_jwt_sign(pem.data, pem.len, cfg->github_app_id, time(NULL),
	                     jwt);
out:
	if (pem.data != NULL)
		explicit_bzero(pem.data, pem.len);
	buf_free(&pem);
	return rc;
}
