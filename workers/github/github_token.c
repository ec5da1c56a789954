/*
 * github_token.c - installation access tokens: fetched with the App's JWT,
 * kept in this process's memory until shortly before they expire, and
 * never written anywhere. Workers are single-threaded processes, so the
 * cache is a small static table, like log.c's ring.
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "../workers.h"

#define TOKEN_SLOTS 32

struct token_slot {
	uint64_t installation;
	char *scope; /* NULL: the App's whole grant; else a repository */
	char *token;
	time_t expires_at;
	time_t used_at;
};

static struct token_slot slots[TOKEN_SLOTS];

static bool
scope_eq(const char *a, const char *b)
{
	return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

static void
slot_clear(struct token_slot *s)
{
	if (s->token != NULL) {
		explicit_bzero(s->token, strlen(s->token));
		free(s->token);
	}
	free(s->scope);
	memset(s, 0, sizeof(*s));
}

void
github_token_clear(void)
{
	size_t i;

	for (i = 0; i < TOKEN_SLOTS; i++)
		slot_clear(&slots[i]);
}

static struct token_slot *
slot_find(uint64_t inst, const char *scope)
{
	size_t i;

	for (i = 0; i < TOKEN_SLOTS; i++)
		if (slots[i].token != NULL && slots[i].installation == inst &&
		    scope_eq(slots[i].scope, scope))
			return &slots[i];
	return NULL;
}

void
github_token_forget(uint64_t inst, const char *scope)
{
	struct token_slot *s;
	size_t i;

	if (inst != 0) {
		if ((s = slot_find(inst, scope)) != NULL)
			slot_clear(s);
		return;
	}
	/* Installation 0: this scope under whichever installation. */
	for (i = 0; i < TOKEN_SLOTS; i++)
		if (slots[i].token != NULL && scope_eq(slots[i].scope, scope))
			slot_clear(&slots[i]);
}

/* A free slot, or the least recently used one. */
static struct token_slot *
slot_take(void)
{
	struct token_slot *best = &slots[0];
	size_t i;

	for (i = 0; i < TOKEN_SLOTS; i++) {
		if (slots[i].token == NULL)
			return &slots[i];
		if (slots[i].used_at < best->used_at)
			best = &slots[i];
	}
	slot_clear(best);
	return best;
}

/* The request body: the clone token is one repository, contents:read. */
static void
token_body(const char *scope, struct buf *body)
{
	const char *name;

	if (scope == NULL) {
		buf_puts(body, "{}");
		return;
	}
	name = strchr(scope, '/');
	name = name ? name + 1 : scope;
	buf_puts(body, "{\"repositories\":[");
	buf_append_json_string(body, name, strlen(name));
	buf_puts(body, "],\"permissions\":{\"contents\":\"read\"}}");
}

static int
token_fetch(struct github *gh, const char *scope, struct token_slot *out)
{
	struct github_backoff bo = {gh->cfg->workers_backoff_base_ms,
	                            gh->cfg->workers_backoff_cap_ms};
	struct buf jwt = BUF_INIT, url = BUF_INIT, body = BUF_INIT;
	struct github_response res;
	struct json_object *o = NULL, *t, *e;
	enum github_verdict v;
	int64_t retry_ms = 0;
	time_t exp;
	int rc = -1;

	github_response_init(&res);
	if (github_app_jwt(gh->cfg, &jwt) == -1) {
		github_fail(gh, "cannot sign the App's JWT (see the log)");
		goto out;
	}
	buf_printf(&url, "%s/app/installations/%llu/access_tokens",
	           gh->cfg->github_api_url,
	           (unsigned long long)gh->installation);
	token_body(scope, &body);
	github_http_request("POST", buf_str(&url), buf_str(&jwt),
	                    buf_str(&body), (long)gh->cfg->github_timeout,
	                    &res);
	v = github_classify(&res, time(NULL), gh->attempt, &bo, &retry_ms);
	if (v == GH_RETRY) {
		log_warn("github_token",
		         "installation=%llu status=%ld "
		         "verdict=retry retry_ms=%lld",
		         (unsigned long long)gh->installation, res.status,
		         (long long)retry_ms);
		gh->stop = GH_RETRY;
		gh->retry_ms = retry_ms;
		buf_reset(&gh->error);
		if (res.status == 0 && res.transport_error != NULL)
			buf_printf(&gh->error,
			           "installation token: no answer (%s)",
			           res.transport_error);
		else
			buf_printf(&gh->error, "installation token: %ld",
			           res.status);
		goto out;
	}
	if (v != GH_OK) {
		/*
		 * 401: our JWT is refused (wrong key or App id, clock);
		 * 404: the App is not installed there any more; 422: the
		 * installation does not grant what we ask. None heals alone.
		 */
		log_error("github_token",
		          "installation=%llu status=%ld "
		          "scope=%s verdict=%s",
		          (unsigned long long)gh->installation, res.status,
		          log_q(scope ? scope : "all"), github_verdict_name(v));
		github_fail(gh, "installation %llu: token refused (%ld)",
		            (unsigned long long)gh->installation, res.status);
		goto out;
	}
	o = github_json(&res);
	if (o == NULL || !json_object_object_get_ex(o, "token", &t) ||
	    !json_object_is_type(t, json_type_string) ||
	    !json_object_object_get_ex(o, "expires_at", &e) ||
	    parse_iso8601(json_object_get_string(e), &exp) == -1) {
		log_error("github_token",
		          "installation=%llu error=\"answer "
		          "without token or expires_at\"",
		          (unsigned long long)gh->installation);
		github_fail(gh, "installation token: malformed answer");
		goto out;
	}
	out->installation = gh->installation;
	out->scope = scope ? xstrdup(scope) : NULL;
	out->token = xstrdup(json_object_get_string(t));
	out->expires_at = exp;
	log_info("github_token", "installation=%llu scope=%s expires_at=%s",
	         (unsigned long long)gh->installation,
	         log_q(scope ? scope : "all"), json_object_get_string(e));
	rc = 0;
out:
	if (jwt.data != NULL)
		explicit_bzero(jwt.data, jwt.len);
	if (res.body.data != NULL)
		explicit_bzero(res.body.data, res.body.len);
	json_object_put(o);
	github_response_free(&res);
	buf_free(&jwt);
	buf_free(&url);
	buf_free(&body);
	return rc;
}

int
github_token_get(struct github *gh, const char *scope, struct buf *token)
{
	time_t now = time(NULL);
	struct token_slot *s = slot_find(gh->installation, scope);

	if (s != NULL && now >= s->expires_at - gh->cfg->github_token_margin) {
		slot_clear(s);
		s = NULL;
	}
	if (s == NULL) {
		struct token_slot fresh;

		memset(&fresh, 0, sizeof(fresh));
		if (token_fetch(gh, scope, &fresh) == -1)
			return -1;
		s = slot_take();
		*s = fresh;
	}
	s->used_at = now;
	buf_reset(token);
	buf_puts(token, s->token);
	return 0;
}

int
github_installation_find(struct github *gh, const char *repo, uint64_t *out)
{
	struct buf jwt = BUF_INIT, url = BUF_INIT;
	struct github_backoff bo = {gh->cfg->workers_backoff_base_ms,
	                            gh->cfg->workers_backoff_cap_ms};
	struct github_response res;
	struct json_object *o = NULL, *id;
	enum github_verdict v;
	int64_t retry_ms = 0;
	int rc = -1;

	github_response_init(&res);
	if (github_app_jwt(gh->cfg, &jwt) == -1) {
		github_fail(gh, "cannot sign the App's JWT (see the log)");
		goto out;
	}
	buf_printf(&url, "%s/repos/%s/installation", gh->cfg->github_api_url,
	           repo);
	github_http_request("GET", buf_str(&url), buf_str(&jwt), NULL,
	                    (long)gh->cfg->github_timeout, &res);
	v = github_classify(&res, time(NULL), gh->attempt, &bo, &retry_ms);
	if (v == GH_RETRY) {
		gh->stop = GH_RETRY;
		gh->retry_ms = retry_ms;
		buf_reset(&gh->error);
		buf_printf(&gh->error, "repository installation: %ld",
		           res.status);
		goto out;
	}
	o = v == GH_OK ? github_json(&res) : NULL;
	if (o == NULL || !json_object_object_get_ex(o, "id", &id) ||
	    json_object_get_int64(id) <= 0) {
		log_error("github_installation", "repo=%s status=%ld",
		          log_q(repo), res.status);
		github_fail(gh, "the App is not installed on %s", repo);
		goto out;
	}
	*out = (uint64_t)json_object_get_int64(id);
	gh->installation = *out;
	rc = 0;
out:
	if (jwt.data != NULL)
		explicit_bzero(jwt.data, jwt.len);
	json_object_put(o);
	github_response_free(&res);
	buf_free(&jwt);
	buf_free(&url);
	return rc;
}

int
github_clone_token(const struct config *cfg, uint64_t installation,
                   const char *repo, struct buf *token, struct job_result *res)
{
	struct github gh;
	int rc = -1;

	github_init(&gh, cfg, installation, 1);
	if (!github_repo_ok(repo)) {
		log_error("github_clone_token", "error=\"bad repo\" repo=%s",
		          log_q(repo));
		github_fail(&gh, "not a repository name");
		goto out;
	}
	if (installation == 0 &&
	    github_installation_find(&gh, repo, &installation) == -1)
		goto out;
	gh.installation = installation;
	rc = github_token_get(&gh, repo, token);
out:
	if (res != NULL)
		github_result(&gh, res);
	github_free(&gh);
	return rc;
}
