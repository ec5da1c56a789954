/*
 * github_sync.c - the notifier: brings GitHub's view of one environment in
 * line with the database, idempotently (job kind "notify").
 *
 * Everything is read from the database at the start of the run; every
 * GitHub action is recorded right after GitHub accepts it, in its own
 * autocommit statement (no transaction is open across a request). A crash
 * between an action and its record is healed on the next run by looking
 * first: the Deployment by its payload's build id, the comment by its
 * hidden marker through every page of the PR's comments. So one build has
 * one Deployment and one PR has one comment, whatever happened.
 *
 * db_rows cells are owned by the rows; the view borrows them until the
 * rows are freed at the end of the run.
 */
#include <json-c/json.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../workers.h"

#define BUILDS_SYNCED 5
#define COMMENT_PAGES_MAX 200

enum env_col {
	E_REPO,
	E_PR,
	E_SLUG,
	E_INST,
	E_TITLE,
	E_HEAD_REF,
	E_AUTHOR,
	E_DESIRED,
	E_DESIRED_SHA,
	E_PHASE,
	E_DEPLOYED_SHA,
	E_URL,
	E_TRUSTED,
	E_APPROVED_BY,
	E_LABELS,
	E_DRAFT,
	E_ERROR,
	E_IDLE,
	E_UPDATED, /* not "now": an unchanged state must render the same */
	E_QUEUE_POS,
	E_SERVICES,
	E_BUDGET_RESETS, /* "YYYY-MM-DD HH:MM": the next month's start */
};

enum build_col {
	B_ID,
	B_SHA,
	B_STATUS,
	B_ERROR,
	B_LOG,
	B_DEPLOYMENT,
	B_DSTATE,
	B_CSTATE,
	B_CTARGET,
	B_CDESC,
};

struct sync {
	struct worker *w;
	const struct config *cfg;
	struct github gh;
	uint64_t env_id;
	struct db_rows *env, *builds;
	const char *repo, *slug;
	uint64_t pr;
	struct buf status_url, env_name;
};

static const char *
env_get(const struct sync *s, enum env_col c)
{
	return db_rows_get(s->env, 0, c);
}

bool
github_repo_ok(const char *repo)
{
	const char *slash = repo ? strchr(repo, '/') : NULL;
	const char *p;

	if (slash == NULL || slash == repo || slash[1] == '\0' ||
	    strchr(slash + 1, '/') != NULL || strlen(repo) > 200)
		return false;
	for (p = repo; *p; p++)
		if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		           "0123456789-_./",
		           *p) == NULL)
			return false;
	return strstr(repo, "..") == NULL;
}

/*
 * False for a URL GitHub's users cannot follow: one on this machine's
 * loopback (localhost, *.localhost, 127.0.0.0/8, [::1], 0.0.0.0), or
 * anything that is not http(s). Such links are never sent to GitHub.
 */
bool
github_url_public(const char *url)
{
	const char *host, *end;
	size_t n;

	if (url == NULL)
		return false;
	if (strncmp(url, "https://", 8) == 0)
		host = url + 8;
	else if (strncmp(url, "http://", 7) == 0)
		host = url + 7;
	else
		return false;
	if (host[0] == '[')
		return strncmp(host, "[::1]", 5) != 0 && host[1] != ']';
	end = host + strcspn(host, ":/?#");
	n = (size_t)(end - host);
	if (n > 0 && host[n - 1] == '.')
		n--; /* "localhost." is localhost */
	if (n == 0 || (n == 9 && strncasecmp(host, "localhost", 9) == 0) ||
	    (n > 10 && strncasecmp(host + n - 10, ".localhost", 10) == 0) ||
	    strncmp(host, "127.", 4) == 0 ||
	    (n == 7 && strncmp(host, "0.0.0.0", 7) == 0))
		return false;
	return true;
}

/* Empty without http.public_url: loopback links are never sent. */
void
github_status_url(const struct config *cfg, const char *slug, struct buf *out)
{
	const char *base = cfg->public_url;
	size_t n = strlen(base);

	while (n > 0 && base[n - 1] == '/')
		n--;
	if (n == 0)
		return;
	buf_append(out, base, n);
	buf_printf(out, "/env/%s", slug);
	if (!github_url_public(buf_str(out)))
		buf_reset(out);
}

/* The preview's URL, when it is one GitHub's users can follow. */
static const char *
env_url(const struct sync *s)
{
	const char *url = env_get(s, E_URL);

	return url != NULL && url[0] && github_url_public(url) ? url : NULL;
}

/* True when the comma/space/JSON list `labels` holds `label` whole. */
static bool
labels_have(const char *labels, const char *label)
{
	size_t n = strlen(label);
	const char *p = labels;

	if (labels == NULL || n == 0)
		return false;
	while ((p = strstr(p, label)) != NULL) {
		bool left = p == labels || strchr("\",[ \n\t", p[-1]);
		bool right = strchr("\",] \n\t", p[n]) != NULL;

		if (left && right)
			return true;
		p += n;
	}
	return false;
}

/* ---- deployments ------------------------------------------------------- */

/* Ours for `key` = `value`: {"ephemera_build": id} or {"ephemera_queued":
 * env id} (a commit's Deployment made while it waited behind the cap). */
static bool
payload_has(struct json_object *dep, const char *key, uint64_t value)
{
	struct json_object *p, *b;
	bool found = false;

	if (!json_object_object_get_ex(dep, "payload", &p))
		return false;
	/* Older API versions echo the payload as a JSON string. */
	if (json_object_is_type(p, json_type_string)) {
		struct json_object *o =
		        json_tokener_parse(json_object_get_string(p));

		if (o != NULL && json_object_object_get_ex(o, key, &b))
			found = (uint64_t)json_object_get_int64(b) == value;
		json_object_put(o);
		return found;
	}
	return json_object_object_get_ex(p, key, &b) &&
	       (uint64_t)json_object_get_int64(b) == value;
}

/* A Deployment made for this build by a run that died before recording. */
static int
deployment_find(struct sync *s, const char *key, uint64_t build_id,
                const char *sha, uint64_t *out)
{
	struct github_response res;
	struct buf path = BUF_INIT;
	struct json_object *arr = NULL;
	size_t i;
	int rc = -1;

	*out = 0;
	github_response_init(&res);
	buf_printf(&path,
	           "/repos/%s/deployments?sha=%s&environment=%s"
	           "&per_page=100",
	           s->repo, sha, buf_str(&s->env_name));
	if (github_request(&s->gh, "GET", buf_str(&path), NULL, &res) !=
	    GH_OK) {
		if (s->gh.stop == GH_OK)
			github_fail(&s->gh, "listing deployments: %ld",
			            res.status);
		goto out;
	}
	arr = github_json(&res);
	for (i = 0; arr && json_object_is_type(arr, json_type_array) &&
	            i < json_object_array_length(arr);
	     i++) {
		struct json_object *d = json_object_array_get_idx(arr, i), *id;

		if (payload_has(d, key, build_id) &&
		    json_object_object_get_ex(d, "id", &id)) {
			*out = (uint64_t)json_object_get_int64(id);
			break;
		}
	}
	rc = 0;
out:
	json_object_put(arr);
	github_response_free(&res);
	buf_free(&path);
	return rc;
}

static int
deployment_create(struct sync *s, const char *key, uint64_t build_id,
                  const char *sha, uint64_t *out)
{
	struct github_response res;
	struct buf path = BUF_INIT, body = BUF_INIT;
	struct json_object *o = NULL, *id;
	enum github_verdict v;
	int rc = -1;

	if (deployment_find(s, key, build_id, sha, out) == -1)
		return -1;
	if (*out != 0) {
		log_info("github_deployment_found",
		         "env=%llu build=%llu id=%llu",
		         (unsigned long long)s->env_id,
		         (unsigned long long)build_id,
		         (unsigned long long)*out);
		return 0;
	}
	github_response_init(&res);
	buf_printf(&path, "/repos/%s/deployments", s->repo);
	/*
	 * No auto-merge and no required contexts: the preview deploys the
	 * PR's commit as it is. One environment per PR, transient, so GitHub
	 * retires it on close and previews never mark each other inactive.
	 */
	buf_printf(&body,
	           "{\"ref\":\"%s\",\"task\":\"deploy\",\"auto_merge\":false,"
	           "\"required_contexts\":[],\"environment\":\"%s\","
	           "\"transient_environment\":true,"
	           "\"production_environment\":false,"
	           "\"description\":\"Ephemera preview\","
	           "\"payload\":{\"%s\":%llu}}",
	           sha, buf_str(&s->env_name), key,
	           (unsigned long long)build_id);
	v = github_request(&s->gh, "POST", buf_str(&path), buf_str(&body),
	                   &res);
	if (v != GH_OK) {
		if (s->gh.stop == GH_OK) {
			log_error("github_deployment",
			          "env=%llu build=%llu status=%ld",
			          (unsigned long long)s->env_id,
			          (unsigned long long)build_id, res.status);
			github_fail(&s->gh, "creating the deployment: %ld %s",
			            res.status, buf_str(&res.body));
		}
		goto out;
	}
	o = github_json(&res);
	if (o == NULL || !json_object_object_get_ex(o, "id", &id) ||
	    json_object_get_int64(id) <= 0) {
		github_fail(&s->gh, "deployment answer without an id");
		log_error("github_deployment", "env=%llu error=\"no id\"",
		          (unsigned long long)s->env_id);
		goto out;
	}
	*out = (uint64_t)json_object_get_int64(id);
	log_info("github_deployment_created", "env=%llu build=%llu id=%llu",
	         (unsigned long long)s->env_id, (unsigned long long)build_id,
	         (unsigned long long)*out);
	rc = 0;
out:
	json_object_put(o);
	github_response_free(&res);
	buf_free(&path);
	buf_free(&body);
	return rc;
}

static int
deployment_status(struct sync *s, uint64_t build_id, uint64_t dep,
                  const char *state)
{
	struct github_response res;
	struct buf path = BUF_INIT, body = BUF_INIT;
	const char *url = env_url(s);
	const char *waiting = strcmp(env_get(s, E_PHASE), "budget") == 0
	                              ? "Waiting for the monthly budget"
	                              : "Waiting for a free slot";
	enum github_verdict v;
	int rc = -1;

	github_response_init(&res);
	buf_printf(&path, "/repos/%s/deployments/%llu/statuses", s->repo,
	           (unsigned long long)dep);
	buf_printf(&body, "{\"state\":\"%s\"", state);
	if (s->status_url.len > 0) {
		buf_puts(&body, ",\"log_url\":");
		buf_append_json_string(&body, s->status_url.data,
		                       s->status_url.len);
	}
	if (strcmp(state, "success") == 0 && url != NULL) {
		buf_puts(&body, ",\"environment_url\":");
		buf_append_json_string(&body, url, strlen(url));
	}
	buf_printf(&body, ",\"description\":\"%s\",\"auto_inactive\":true}",
	           strcmp(state, "queued") == 0        ? waiting
	           : strcmp(state, "in_progress") == 0 ? "Deploying"
	           : strcmp(state, "success") == 0     ? "Preview ready"
	           : strcmp(state, "failure") == 0     ? "Deploy failed"
	                                               : "Preview removed");
	v = github_request(&s->gh, "POST", buf_str(&path), buf_str(&body),
	                   &res);
	if (v == GH_NOT_FOUND) {
		/* Deleted on GitHub: forget it; the next run makes a new one. */
		log_warn("github_deployment_gone", "env=%llu id=%llu",
		         (unsigned long long)s->env_id,
		         (unsigned long long)dep);
		if (db_exec(s->w->db,
		            "UPDATE github_builds SET deployment_id = NULL, "
		            "deployment_state = NULL WHERE build_id = ?",
		            "u", build_id) == -1) {
			github_db_error(&s->gh);
			goto out;
		}
		s->gh.stop = GH_RETRY;
		s->gh.retry_ms = 1000;
		buf_reset(&s->gh.error);
		buf_puts(&s->gh.error, "deployment deleted on GitHub");
		goto out;
	}
	if (v != GH_OK) {
		if (s->gh.stop == GH_OK) {
			log_error("github_deployment_status",
			          "env=%llu id=%llu state=%s status=%ld",
			          (unsigned long long)s->env_id,
			          (unsigned long long)dep, state, res.status);
			github_fail(&s->gh, "deployment status %s: %ld %s",
			            state, res.status, buf_str(&res.body));
		}
		goto out;
	}
	/* Build 0: a waiting commit's, recorded by its caller. */
	if (build_id != 0 &&
	    db_exec(s->w->db,
	            "UPDATE github_builds SET deployment_state = ? "
	            "WHERE build_id = ?",
	            "su", state, build_id) == -1) {
		github_db_error(&s->gh);
		goto out;
	}
	log_info("github_deployment_status", "env=%llu id=%llu state=%s",
	         (unsigned long long)s->env_id, (unsigned long long)dep, state);
	rc = 0;
out:
	github_response_free(&res);
	buf_free(&path);
	buf_free(&body);
	return rc;
}

/*
 * The Deployment a commit got while it waited behind the cap becomes its
 * build's: *dep is its id, or 0 when there is none.
 */
static int
deployment_adopt(struct sync *s, uint64_t build_id, const char *sha,
                 uint64_t *dep)
{
	struct db_rows *r = NULL;
	int rc = -1;

	*dep = 0;
	if (db_query(s->w->db, &r,
	             "SELECT waiting_deployment_id FROM github_comments WHERE "
	             "env_id = ? AND waiting_deployment_sha = ? AND "
	             "waiting_deployment_state = 'queued'",
	             "us", s->env_id, sha) == -1) {
		github_db_error(&s->gh);
		goto out;
	}
	if (db_rows_count(r) == 0 || db_rows_get(r, 0, 0) == NULL ||
	    parse_uint64(db_rows_get(r, 0, 0), dep) == -1) {
		*dep = 0;
		rc = 0;
		goto out;
	}
	if (db_exec(s->w->db,
	            "INSERT INTO github_builds (build_id, env_id, "
	            "deployment_id, deployment_state) VALUES (?, ?, ?, "
	            "'queued') ON DUPLICATE KEY UPDATE deployment_id = "
	            "VALUES(deployment_id), deployment_state = "
	            "VALUES(deployment_state)",
	            "uuu", build_id, s->env_id, *dep) == -1 ||
	    db_exec(s->w->db,
	            "UPDATE github_comments SET waiting_deployment_id = NULL, "
	            "waiting_deployment_sha = NULL, waiting_deployment_state "
	            "= NULL WHERE env_id = ?",
	            "u", s->env_id) == -1) {
		github_db_error(&s->gh);
		goto out;
	}
	log_info("github_deployment_adopted", "env=%llu build=%llu id=%llu",
	         (unsigned long long)s->env_id, (unsigned long long)build_id,
	         (unsigned long long)*dep);
	rc = 0;
out:
	db_rows_free(r);
	return rc;
}

/* One build's Deployment: created for the latest build only. */
static int
sync_deployment(struct sync *s, size_t row, bool latest)
{
	const char *sha = db_rows_get(s->builds, row, B_SHA);
	const char *status = db_rows_get(s->builds, row, B_STATUS);
	const char *dep_s = db_rows_get(s->builds, row, B_DEPLOYMENT);
	const char *last = db_rows_get(s->builds, row, B_DSTATE);
	const char *target, *steps[3];
	uint64_t build_id = 0, dep = 0;
	size_t n, i;

	parse_uint64(db_rows_get(s->builds, row, B_ID), &build_id);
	if (dep_s != NULL)
		parse_uint64(dep_s, &dep);
	target = github_deploy_target(status, latest, env_get(s, E_PHASE));
	n = github_deploy_steps(last, target, status, steps);
	if (n == 0)
		return 0;
	if (dep == 0) {
		/* Never announce a deploy that is already over and gone. */
		if (!latest || strcmp(target, "inactive") == 0)
			return 0;
		/* The commit's Deployment from its wait in the queue. */
		if (deployment_adopt(s, build_id, sha, &dep) == -1)
			return -1;
		if (dep != 0)
			n = github_deploy_steps("queued", target, status,
			                        steps);
	}
	if (dep == 0) {
		if (deployment_create(s, "ephemera_build", build_id, sha,
		                      &dep) == -1)
			return -1;
		if (db_exec(s->w->db,
		            "INSERT INTO github_builds (build_id, env_id, "
		            "deployment_id) VALUES (?, ?, ?) ON DUPLICATE KEY "
		            "UPDATE deployment_id = VALUES(deployment_id)",
		            "uuu", build_id, s->env_id, dep) == -1)
			return github_db_error(&s->gh);
	}
	for (i = 0; i < n; i++)
		if (deployment_status(s, build_id, dep, steps[i]) == -1)
			return -1;
	return 0;
}

/* True while the env waits behind the cap or for its budget with a
 * commit of no build. */
static bool
env_waiting(const struct sync *s)
{
	const char *sha = env_get(s, E_DESIRED_SHA);
	const char *phase = env_get(s, E_PHASE);

	return (strcmp(phase, "queued") == 0 || strcmp(phase, "budget") == 0) &&
	       sha != NULL && strlen(sha) == 40 &&
	       (db_rows_count(s->builds) == 0 ||
	        strcmp(db_rows_get(s->builds, 0, B_SHA), sha) != 0);
}

static int
waiting_record(struct sync *s, uint64_t dep, const char *sha, const char *state)
{
	if (db_exec(s->w->db,
	            "INSERT INTO github_comments (env_id, "
	            "waiting_deployment_id, waiting_deployment_sha, "
	            "waiting_deployment_state) VALUES (?, NULLIF(?, 0), ?, ?) "
	            "ON DUPLICATE KEY UPDATE waiting_deployment_id = "
	            "VALUES(waiting_deployment_id), waiting_deployment_sha = "
	            "VALUES(waiting_deployment_sha), waiting_deployment_state "
	            "= VALUES(waiting_deployment_state)",
	            "uuss", s->env_id, dep, sha, state) == -1)
		return github_db_error(&s->gh);
	return 0;
}

/*
 * A commit waiting behind the cap has a Deployment in state `queued`
 * (its build adopts it, deployment_adopt). One that stops waiting without
 * a build (stopped, closed, overtaken by a push) is retired: inactive.
 */
static int
sync_waiting_deployment(struct sync *s)
{
	struct db_rows *r = NULL;
	const char *sha = env_get(s, E_DESIRED_SHA);
	const char *had_sha = NULL, *had_state = NULL;
	uint64_t dep = 0;
	bool want = env_waiting(s);
	int rc = -1;

	if (db_query(s->w->db, &r,
	             "SELECT waiting_deployment_id, waiting_deployment_sha, "
	             "waiting_deployment_state FROM github_comments WHERE "
	             "env_id = ? AND waiting_deployment_id IS NOT NULL",
	             "u", s->env_id) == -1) {
		github_db_error(&s->gh);
		goto out;
	}
	if (db_rows_count(r) == 1) {
		parse_uint64(db_rows_get(r, 0, 0), &dep);
		had_sha = db_rows_get(r, 0, 1);
		had_state = db_rows_get(r, 0, 2);
	}
	if (dep != 0 && want && had_sha != NULL && strcmp(had_sha, sha) == 0) {
		if (had_state == NULL || strcmp(had_state, "queued") != 0) {
			if (deployment_status(s, 0, dep, "queued") == -1 ||
			    waiting_record(s, dep, sha, "queued") == -1)
				goto out;
		}
		rc = 0;
		goto out;
	}
	if (dep != 0) {
		if ((had_state == NULL || strcmp(had_state, "inactive") != 0) &&
		    deployment_status(s, 0, dep, "inactive") == -1)
			goto out;
		if (waiting_record(s, 0, NULL, NULL) == -1)
			goto out;
	}
	if (want) {
		if (deployment_create(s, "ephemera_queued", s->env_id, sha,
		                      &dep) == -1 ||
		    waiting_record(s, dep, sha, NULL) == -1 ||
		    deployment_status(s, 0, dep, "queued") == -1 ||
		    waiting_record(s, dep, sha, "queued") == -1)
			goto out;
	}
	rc = 0;
out:
	db_rows_free(r);
	return rc;
}

/* ---- commit status ----------------------------------------------------- */

/* One commit status on `sha`; 0 when GitHub accepted it. */
static int
commit_status_post(struct sync *s, const char *sha, const char *state,
                   const char *desc, const char *target)
{
	struct github_response res;
	struct buf path = BUF_INIT, body = BUF_INIT;
	int rc = -1;

	github_response_init(&res);
	buf_printf(&path, "/repos/%s/statuses/%s", s->repo, sha);
	buf_printf(&body,
	           "{\"state\":\"%s\",\"context\":\"ephemera/preview\","
	           "\"description\":",
	           state);
	buf_append_json_string(&body, desc, strlen(desc));
	if (target != NULL && target[0]) {
		buf_puts(&body, ",\"target_url\":");
		buf_append_json_string(&body, target, strlen(target));
	}
	buf_putc(&body, '}');
	if (github_request(&s->gh, "POST", buf_str(&path), buf_str(&body),
	                   &res) != GH_OK) {
		if (s->gh.stop == GH_OK) {
			log_error("github_commit_status", "env=%llu status=%ld",
			          (unsigned long long)s->env_id, res.status);
			github_fail(&s->gh, "commit status: %ld", res.status);
		}
		goto out;
	}
	log_info("github_commit_status", "env=%llu state=%s sha=%.12s",
	         (unsigned long long)s->env_id, state, sha);
	rc = 0;
out:
	github_response_free(&res);
	buf_free(&path);
	buf_free(&body);
	return rc;
}

/*
 * The latest build's commit status follows the build and what became of
 * it: pending while it runs, failure, or success, whose description and
 * link change when the preview is stopped or removed (the commit did
 * deploy, but the link must not promise a live preview).
 */
static int
sync_commit_status(struct sync *s, size_t row)
{
	const char *status = db_rows_get(s->builds, row, B_STATUS);
	const char *sha = db_rows_get(s->builds, row, B_SHA);
	const char *phase = env_get(s, E_PHASE);
	const char *url = env_url(s);
	const char *last_state = db_rows_get(s->builds, row, B_CSTATE);
	const char *last_target = db_rows_get(s->builds, row, B_CTARGET);
	const char *last_desc = db_rows_get(s->builds, row, B_CDESC);
	const char *state, *desc, *target = buf_str(&s->status_url);
	uint64_t build_id = 0;

	parse_uint64(db_rows_get(s->builds, row, B_ID), &build_id);
	if (strcmp(status, "succeeded") == 0) {
		state = "success";
		if (strcmp(phase, "stopped") == 0 ||
		    strcmp(phase, "stopping") == 0) {
			desc = "Deployed; the preview is stopped";
		} else if (strcmp(phase, "budget") == 0) {
			desc = "Deployed; waiting for the monthly budget";
		} else if (strcmp(phase, "destroyed") == 0 ||
		           strcmp(phase, "destroying") == 0 ||
		           strcmp(phase, "awaiting_approval") == 0) {
			desc = "Deployed; the preview was removed";
		} else {
			desc = "Preview ready";
			if (url != NULL)
				target = url;
		}
	} else if (strcmp(status, "failed") == 0) {
		state = "failure";
		desc = "Preview deploy failed";
	} else if (strcmp(status, "running") == 0) {
		state = "pending";
		desc = strcmp(phase, "queued") == 0 ? "Waiting for a free slot"
		       : strcmp(phase, "budget") == 0
		               ? "Waiting for the monthly budget"
		               : "Deploying the preview";
	} else {
		return 0; /* cancelled: a newer build speaks for the PR */
	}
	if (last_state != NULL && strcmp(last_state, state) == 0 &&
	    last_target != NULL && strcmp(last_target, target) == 0 &&
	    last_desc != NULL && strcmp(last_desc, desc) == 0)
		return 0;
	if (commit_status_post(s, sha, state, desc, target) == -1)
		return -1;
	if (db_exec(s->w->db,
	            "INSERT INTO github_builds (build_id, env_id, "
	            "commit_state, commit_target, commit_description) VALUES "
	            "(?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE commit_state = "
	            "VALUES(commit_state), commit_target = "
	            "VALUES(commit_target), commit_description = "
	            "VALUES(commit_description)",
	            "uusss", build_id, s->env_id, state, target, desc) == -1)
		return github_db_error(&s->gh);
	return 0;
}

/*
 * A commit with no build yet still shows why it waits: queued behind the
 * cap, or awaiting approval. Remembered per environment (012). When it
 * stops waiting without a build (stopped, closed), the pending status is
 * settled, so no check stays pending for ever.
 */
static int
sync_waiting_status(struct sync *s)
{
	const char *phase = env_get(s, E_PHASE);
	const char *sha = env_get(s, E_DESIRED_SHA);
	const char *state = "pending", *desc, *last;
	struct db_rows *r = NULL;
	struct buf key = BUF_INIT, pending = BUF_INIT, budget = BUF_INIT;
	int rc = -1;

	if (sha == NULL || strlen(sha) != 40)
		return 0;
	if (db_rows_count(s->builds) > 0 &&
	    strcmp(db_rows_get(s->builds, 0, B_SHA), sha) == 0)
		return 0; /* the build's own status speaks */
	if (db_query(s->w->db, &r,
	             "SELECT waiting_status FROM github_comments WHERE "
	             "env_id = ?",
	             "u", s->env_id) == -1) {
		github_db_error(&s->gh);
		goto out;
	}
	last = db_rows_count(r) == 1 ? db_rows_get(r, 0, 0) : NULL;
	buf_printf(&pending, "%s pending ", sha);
	if (strcmp(phase, "queued") == 0) {
		desc = "Waiting for a free preview slot";
	} else if (strcmp(phase, "budget") == 0) {
		/* Under 140 characters whatever the repository's name. */
		buf_printf(&budget,
		           "Monthly budget reached: waits until %s UTC or a "
		           "higher budget",
		           env_get(s, E_BUDGET_RESETS));
		desc = buf_str(&budget);
	} else if (strcmp(phase, "awaiting_approval") == 0) {
		desc = "Awaiting approval: /preview approve";
	} else if (last != NULL &&
	           strncmp(last, buf_str(&pending), pending.len) == 0 &&
	           (strcmp(phase, "stopped") == 0 ||
	            strcmp(phase, "destroyed") == 0)) {
		state = "success";
		desc = strcmp(phase, "stopped") == 0
		               ? "No preview: stopped before it was deployed"
		               : "No preview: the pull request was closed";
	} else {
		rc = 0;
		goto out;
	}
	buf_printf(&key, "%s %s %s", sha, state, desc);
	if (last != NULL && strcmp(last, buf_str(&key)) == 0) {
		rc = 0;
		goto out;
	}
	if (commit_status_post(s, sha, state, desc, buf_str(&s->status_url)) ==
	    -1)
		goto out;
	if (db_exec(s->w->db,
	            "INSERT INTO github_comments (env_id, waiting_status) "
	            "VALUES (?, ?) ON DUPLICATE KEY UPDATE waiting_status = "
	            "VALUES(waiting_status)",
	            "us", s->env_id, buf_str(&key)) == -1) {
		github_db_error(&s->gh);
		goto out;
	}
	rc = 0;
out:
	db_rows_free(r);
	buf_free(&key);
	buf_free(&pending);
	buf_free(&budget);
	return rc;
}

/* ---- the sticky comment ------------------------------------------------ */

/* Ours: carries the marker and was written by this App (or a bot). */
static bool
comment_is_ours(const struct sync *s, struct json_object *c, const char *marker)
{
	struct json_object *body, *app, *id, *user, *type;

	if (!json_object_object_get_ex(c, "body", &body) ||
	    strstr(json_object_get_string(body), marker) == NULL)
		return false;
	if (json_object_object_get_ex(c, "performed_via_github_app", &app) &&
	    json_object_is_type(app, json_type_object) &&
	    json_object_object_get_ex(app, "id", &id))
		return json_object_get_int64(id) == s->cfg->github_app_id;
	/* A human pasting the marker must not get their comment edited. */
	return json_object_object_get_ex(c, "user", &user) &&
	       json_object_object_get_ex(user, "type", &type) &&
	       strcmp(json_object_get_string(type), "Bot") == 0;
}

/* Walks every page of the PR's comments for the marker. */
static int
comment_find(struct sync *s, const char *marker, uint64_t *out)
{
	struct github_response res;
	struct buf next = BUF_INIT;
	struct json_object *arr = NULL;
	int pages = 0, rc = -1;
	size_t i;

	*out = 0;
	github_response_init(&res);
	buf_printf(&next, "/repos/%s/issues/%llu/comments?per_page=100",
	           s->repo, (unsigned long long)s->pr);
	while (next.len > 0 && *out == 0) {
		if (++pages > COMMENT_PAGES_MAX) {
			log_warn("github_comment_find",
			         "env=%llu pages=%d "
			         "error=\"too many pages\"",
			         (unsigned long long)s->env_id, pages);
			break;
		}
		if (github_request(&s->gh, "GET", buf_str(&next), NULL, &res) !=
		    GH_OK) {
			if (s->gh.stop == GH_OK)
				github_fail(&s->gh, "listing comments: %ld",
				            res.status);
			goto out;
		}
		json_object_put(arr);
		arr = github_json(&res);
		for (i = 0; arr && json_object_is_type(arr, json_type_array) &&
		            i < json_object_array_length(arr) && *out == 0;
		     i++) {
			struct json_object *c = json_object_array_get_idx(arr,
			                                                  i),
			                   *id;

			if (comment_is_ours(s, c, marker) &&
			    json_object_object_get_ex(c, "id", &id))
				*out = (uint64_t)json_object_get_int64(id);
		}
		if (!github_link_next(res.link, &next))
			buf_reset(&next);
	}
	log_info("github_comment_find", "env=%llu pages=%d found=%llu",
	         (unsigned long long)s->env_id, pages,
	         (unsigned long long)*out);
	rc = 0;
out:
	json_object_put(arr);
	github_response_free(&res);
	buf_free(&next);
	return rc;
}

static void
sha256_hex(const struct buf *b, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n = 0, i;

	EVP_Digest(b->data, b->len, md, &n, EVP_sha256(), NULL);
	for (i = 0; i < n && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[64] = '\0';
}

/* PATCH (id known) or POST; GH_NOT_FOUND when the comment is gone. */
static enum github_verdict
comment_write(struct sync *s, uint64_t id, const struct buf *text,
              uint64_t *created)
{
	struct github_response res;
	struct buf path = BUF_INIT, body = BUF_INIT;
	struct json_object *o = NULL, *jid;
	enum github_verdict v;

	github_response_init(&res);
	if (id != 0)
		buf_printf(&path, "/repos/%s/issues/comments/%llu", s->repo,
		           (unsigned long long)id);
	else
		buf_printf(&path, "/repos/%s/issues/%llu/comments", s->repo,
		           (unsigned long long)s->pr);
	buf_puts(&body, "{\"body\":");
	buf_append_json_string(&body, text->data, text->len);
	buf_putc(&body, '}');
	v = github_request(&s->gh, id ? "PATCH" : "POST", buf_str(&path),
	                   buf_str(&body), &res);
	if (v == GH_OK && id == 0) {
		o = github_json(&res);
		if (o != NULL && json_object_object_get_ex(o, "id", &jid))
			*created = (uint64_t)json_object_get_int64(jid);
		if (*created == 0) {
			github_fail(&s->gh, "comment answer without an id");
			v = GH_FAIL;
		}
	} else if (v != GH_OK && v != GH_NOT_FOUND && s->gh.stop == GH_OK) {
		log_error("github_comment", "env=%llu status=%ld",
		          (unsigned long long)s->env_id, res.status);
		github_fail(&s->gh, "writing the comment: %ld", res.status);
	}
	json_object_put(o);
	github_response_free(&res);
	buf_free(&path);
	buf_free(&body);
	return v;
}

static int
sync_comment(struct sync *s, const struct buf *text)
{
	struct db_rows *row = NULL;
	struct buf marker = BUF_INIT;
	char hash[65];
	uint64_t id = 0, created = 0;
	enum github_verdict v;
	int rc = -1;

	sha256_hex(text, hash);
	if (db_query(s->w->db, &row,
	             "SELECT comment_id, body_sha256 FROM github_comments "
	             "WHERE env_id = ?",
	             "u", s->env_id) == -1)
		return github_db_error(&s->gh);
	if (db_rows_count(row) == 1 && db_rows_get(row, 0, 0) != NULL) {
		parse_uint64(db_rows_get(row, 0, 0), &id);
		if (db_rows_get(row, 0, 1) != NULL &&
		    strcmp(db_rows_get(row, 0, 1), hash) == 0) {
			rc = 0; /* GitHub already shows this text */
			goto out;
		}
	}
	github_comment_marker(s->slug, &marker);
	if (id != 0) {
		v = comment_write(s, id, text, &created);
		if (v == GH_OK)
			goto record;
		if (v != GH_NOT_FOUND)
			goto out;
		/* Deleted by someone: find another of ours, or start over. */
		log_warn("github_comment_gone", "env=%llu id=%llu",
		         (unsigned long long)s->env_id, (unsigned long long)id);
		id = 0;
	}
	if (comment_find(s, buf_str(&marker), &id) == -1)
		goto out;
	v = comment_write(s, id, text, &created);
	if (v == GH_NOT_FOUND)
		github_fail(&s->gh, "the PR's comments are not found");
	if (v != GH_OK)
		goto out;
	if (id == 0) {
		id = created;
		log_info("github_comment_created", "env=%llu id=%llu",
		         (unsigned long long)s->env_id, (unsigned long long)id);
	}
record:
	if (db_exec(s->w->db,
	            "INSERT INTO github_comments (env_id, comment_id, "
	            "body_sha256) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE "
	            "comment_id = VALUES(comment_id), body_sha256 = "
	            "VALUES(body_sha256)",
	            "uus", s->env_id, id, hash) == -1) {
		github_db_error(&s->gh);
		goto out;
	}
	rc = 0;
out:
	db_rows_free(row);
	buf_free(&marker);
	return rc;
}

/* ---- the run ----------------------------------------------------------- */

/*
 * environments.services, as reconcile writes it: [{"name", "primary",
 * "url"}, ...]. The view borrows the strings from `*json`, which the
 * caller puts after rendering. Anything else is ignored (no services).
 */
static struct github_service *
services_parse(const char *text, struct json_object **json, size_t *n)
{
	struct github_service *sv;
	size_t i, len;

	*n = 0;
	*json = text ? json_tokener_parse(text) : NULL;
	if (*json == NULL || !json_object_is_type(*json, json_type_array))
		return NULL;
	len = json_object_array_length(*json);
	sv = xcalloc(len ? len : 1, sizeof(*sv));
	for (i = 0; i < len; i++) {
		struct json_object *o = json_object_array_get_idx(*json, i);
		struct json_object *name, *url, *primary;

		if (!json_object_object_get_ex(o, "name", &name) ||
		    !json_object_object_get_ex(o, "url", &url) ||
		    !json_object_is_type(url, json_type_string) ||
		    !github_url_public(json_object_get_string(url)))
			continue;
		sv[*n].name = json_object_get_string(name);
		sv[*n].url = json_object_get_string(url);
		sv[*n].primary =
		        json_object_object_get_ex(o, "primary", &primary) &&
		        json_object_get_boolean(primary);
		(*n)++;
	}
	return sv;
}

/* The teardown report's rows (removal.c), by kind and name. */
/*
 * A route is named by its hostname; one on this machine's loopback
 * (*.localhost) is shown by its first label alone, since GitHub never
 * holds this machine's loopback names (github_url_public).
 */
static const char *
removed_name(const char *kind, const char *name, struct buf *keep)
{
	size_t dot = strcspn(name, ".");

	buf_reset(keep);
	buf_printf(keep, "http://%s/", name);
	if (strcmp(kind, "route") != 0 || github_url_public(buf_str(keep)))
		return name;
	buf_reset(keep);
	buf_append(keep, name, dot);
	return buf_str(keep);
}

static int
removed_load(struct sync *s, struct db_rows **rows, struct github_removed **out,
             struct buf **names, size_t *n)
{
	size_t i;

	if (db_query(s->w->db, rows,
	             "SELECT kind, name, gone_at IS NOT NULL FROM "
	             "teardown_items WHERE env_id = ? ORDER BY kind, name "
	             "LIMIT 500",
	             "u", s->env_id) == -1)
		return -1;
	*n = db_rows_count(*rows);
	*out = xcalloc(*n ? *n : 1, sizeof(**out));
	*names = xcalloc(*n ? *n : 1, sizeof(**names));
	for (i = 0; i < *n; i++) {
		(*names)[i] = (struct buf)BUF_INIT;
		(*out)[i].kind = db_rows_get(*rows, i, 0);
		(*out)[i].name = removed_name(
		        (*out)[i].kind, db_rows_get(*rows, i, 1), &(*names)[i]);
		(*out)[i].gone = strcmp(db_rows_get(*rows, i, 2), "1") == 0;
	}
	return 0;
}

/*
 * What the environment's compute ran and cost (env_runs, migration 016),
 * shown only while no run is open: an open run's figure would grow
 * between updates. Leaves -1 when there is nothing to show.
 */
static int
compute_load(struct sync *s, double *hours, double *cost)
{
	struct db_rows *r = NULL;
	const char *h, *c, *open;

	*hours = *cost = -1;
	if (db_query(s->w->db, &r,
	             "SELECT SUM(TIMESTAMPDIFF(MICROSECOND, started_at, "
	             "stopped_at)) / 3.6e9, SUM(TIMESTAMPDIFF(MICROSECOND, "
	             "started_at, stopped_at) / 3.6e9 * hourly_price), "
	             "SUM(stopped_at IS NULL) FROM env_runs WHERE env_id = ?",
	             "u", s->env_id) == -1)
		return -1;
	h = db_rows_get(r, 0, 0);
	c = db_rows_get(r, 0, 1);
	open = db_rows_get(r, 0, 2);
	if (h != NULL && c != NULL && open != NULL && strcmp(open, "0") == 0) {
		*hours = strtod(h, NULL);
		*cost = strtod(c, NULL);
	}
	db_rows_free(r);
	return 0;
}

static int
render(struct sync *s, struct buf *text)
{
	struct db_rows *steps = NULL, *removed_rows = NULL;
	struct github_removed *removed = NULL;
	struct buf *removed_names = NULL;
	struct github_step *st = NULL;
	struct github_view v;
	struct github_service *services;
	struct json_object *services_json = NULL;
	const char *bstatus = NULL;
	bool trusted = strcmp(env_get(s, E_TRUSTED), "1") == 0;
	/* E_IDLE "2": the sweep stopped it as idle (017_wake.sql). */
	bool label_missing, idle = strcmp(env_get(s, E_IDLE), "0") != 0;
	const struct exposure_ops *exposure = exposure_for(s->cfg, s->repo);
	bool draft = strcmp(env_get(s, E_DRAFT), "1") == 0 &&
	             !s->cfg->policy_deploy_drafts;
	size_t i, n = 0;
	int64_t pos = 0;
	int rc;

	label_missing =
	        strcmp(s->cfg->policy_trigger, "label") == 0 &&
	        !labels_have(env_get(s, E_LABELS), s->cfg->policy_label);
	memset(&v, 0, sizeof(v));
	if (db_rows_count(s->builds) > 0) {
		bstatus = db_rows_get(s->builds, 0, B_STATUS);
		if (db_query(s->w->db, &steps,
		             "SELECT name, status, IF(finished_at IS NULL, -1, "
		             "TIMESTAMPDIFF(MICROSECOND, started_at, "
		             "finished_at) / 1000000) FROM build_steps WHERE "
		             "build_id = ? ORDER BY id",
		             "s", db_rows_get(s->builds, 0, B_ID)) == -1)
			return github_db_error(&s->gh);
		n = db_rows_count(steps);
		st = xcalloc(n ? n : 1, sizeof(*st));
		for (i = 0; i < n; i++) {
			st[i].name = db_rows_get(steps, i, 0);
			st[i].status = db_rows_get(steps, i, 1);
			st[i].seconds = strtod(db_rows_get(steps, i, 2), NULL);
		}
		v.build_status = bstatus;
		v.build_error = db_rows_get(s->builds, 0, B_ERROR);
		v.log_tail = db_rows_get(s->builds, 0, B_LOG);
	}
	v.slug = s->slug;
	v.title = env_get(s, E_TITLE);
	v.head_ref = env_get(s, E_HEAD_REF);
	v.author = env_get(s, E_AUTHOR);
	v.phase = env_get(s, E_PHASE);
	v.sha = env_get(s, E_DEPLOYED_SHA) ? env_get(s, E_DEPLOYED_SHA)
	                                   : env_get(s, E_DESIRED_SHA);
	if (bstatus != NULL && strcmp(v.phase, "ready") != 0)
		v.sha = db_rows_get(s->builds, 0, B_SHA);
	v.url = env_url(s);
	services = services_parse(env_get(s, E_SERVICES), &services_json,
	                          &v.nservices);
	v.services = services;
	v.log_url = buf_str(&s->status_url);
	v.approved_by = env_get(s, E_APPROVED_BY);
	v.why = github_why_of(v.phase, env_get(s, E_DESIRED), trusted,
	                      label_missing, draft, idle, bstatus);
	parse_int64(env_get(s, E_QUEUE_POS), 0, INT64_MAX, &pos);
	v.queue_position = pos > 0 ? pos : 1;
	v.max_running = s->cfg->env_max_running;
	v.idle_minutes = s->cfg->env_idle_stop_minutes;
	if (strcmp(env_get(s, E_IDLE), "2") == 0 &&
	    exposure_wakes(s->cfg, exposure))
		v.wake_url = v.url;
	v.label = s->cfg->policy_label;
	v.trusted_label = s->cfg->policy_trusted_label;
	if (v.build_error == NULL && v.why == WHY_FAILED)
		v.build_error = env_get(s, E_ERROR);
	if (v.why == WHY_QUEUED && env_get(s, E_ERROR) &&
	    env_get(s, E_ERROR)[0])
		v.queued_reason = env_get(s, E_ERROR);
	if (v.why == WHY_BUDGET && env_get(s, E_ERROR) &&
	    env_get(s, E_ERROR)[0])
		v.budget_reason = env_get(s, E_ERROR);
	v.steps = st;
	v.nsteps = n;
	v.log_lines = (size_t)s->cfg->github_comment_lines;
	v.updated = env_get(s, E_UPDATED);
	if (compute_load(s, &v.compute_hours, &v.compute_cost) == -1 ||
	    (v.why == WHY_CLOSED &&
	     removed_load(s, &removed_rows, &removed, &removed_names,
	                  &v.nremoved) == -1)) {
		rc = github_db_error(&s->gh);
		goto out;
	}
	v.removed = removed;
	rc = github_comment_render(&v, text) == -1
	             ? github_fail(&s->gh, "comment too large")
	             : 0;
out:
	free(services);
	json_object_put(services_json);
	free(st);
	db_rows_free(steps);
	for (i = 0; removed_names != NULL && i < v.nremoved; i++)
		buf_free(&removed_names[i]);
	free(removed_names);
	free(removed);
	db_rows_free(removed_rows);
	return rc;
}

static int
load(struct sync *s)
{
	uint64_t inst = 0;

	if (db_query(s->w->db, &s->env,
	             "SELECT repo, pr, slug, installation_id, title, "
	             "head_ref, author, desired, desired_sha, phase, "
	             "deployed_sha, url, trusted, approved_by, labels, draft, "
	             "error, "
	             "IF(" ENV_IDLE_STOPPED ", 2, IF(? > 0 AND "
	             "last_active_at IS NOT NULL AND "
	             "last_active_at < NOW(6) - INTERVAL ? MINUTE, 1, 0)), "
	             "DATE_FORMAT(e.updated_at, '%Y-%m-%dT%H:%i:%sZ'), "
	             "(SELECT COUNT(*) FROM environments q WHERE "
	             "q.phase = 'queued' AND q.queued_at <= e.queued_at), "
	             "services, "
	             "DATE_FORMAT(" BUDGET_RESETS_SQL ", '%Y-%m-%d %H:%i') "
	             "FROM environments e WHERE id = ?",
	             "iiu", s->cfg->env_idle_stop_minutes,
	             s->cfg->env_idle_stop_minutes, s->env_id) == -1)
		return github_db_error(&s->gh);
	if (db_rows_count(s->env) == 0)
		return 0;
	s->repo = env_get(s, E_REPO);
	s->slug = env_get(s, E_SLUG);
	parse_uint64(env_get(s, E_PR), &s->pr);
	if (!github_repo_ok(s->repo)) {
		log_error("github_sync", "env=%llu error=\"bad repo\" repo=%s",
		          (unsigned long long)s->env_id, log_q(s->repo));
		return github_fail(&s->gh, "not a repository name");
	}
	buf_printf(&s->env_name, "pr-%llu", (unsigned long long)s->pr);
	github_status_url(s->cfg, s->slug, &s->status_url);
	if (env_get(s, E_INST) != NULL)
		parse_uint64(env_get(s, E_INST), &inst);
	if (inst == 0) {
		if (github_installation_find(&s->gh, s->repo, &inst) == -1)
			return -1;
		if (db_exec(s->w->db,
		            "UPDATE environments SET installation_id = ? WHERE "
		            "id = ? AND installation_id IS NULL",
		            "uu", inst, s->env_id) == -1)
			return github_db_error(&s->gh);
	}
	s->gh.installation = inst;
	if (db_query(
	            s->w->db, &s->builds,
	            "SELECT b.id, b.sha, b.status, b.error, b.log_tail, "
	            "g.deployment_id, g.deployment_state, g.commit_state, "
	            "g.commit_target, g.commit_description FROM builds b LEFT JOIN github_builds g "
	            "ON g.build_id = b.id WHERE b.env_id = ? "
	            "ORDER BY b.id DESC LIMIT ?",
	            "ui", s->env_id, (int64_t)BUILDS_SYNCED) == -1)
		return github_db_error(&s->gh);
	return 0;
}

void
github_sync_run(struct worker *w, const struct job *job, uint64_t env_id,
                struct job_result *res)
{
	struct sync s;
	struct github_job gj;
	struct buf text = BUF_INIT;
	size_t i, n;

	memset(&s, 0, sizeof(s));
	s.w = w;
	s.cfg = w->cfg;
	s.env_id = env_id;
	buf_init(&s.status_url, 2048);
	buf_init(&s.env_name, 64);
	github_init(&s.gh, w->cfg, 0, job ? job->attempts : 1);
	if (job != NULL)
		github_bind(&s.gh, &gj, w, job);
	if (!w->cfg->github_enabled)
		goto out;
	if (load(&s) == -1 || db_rows_count(s.env) == 0)
		goto out;
	/* Oldest first, so GitHub's auto-inactive sees them in order. */
	n = db_rows_count(s.builds);
	for (i = n; i-- > 0;)
		if (sync_deployment(&s, i, i == 0) == -1)
			goto out;
	if (n > 0 && sync_commit_status(&s, 0) == -1)
		goto out;
	if (sync_waiting_deployment(&s) == -1 || sync_waiting_status(&s) == -1)
		goto out;
	if (render(&s, &text) == -1 || sync_comment(&s, &text) == -1)
		goto out;
out:
	github_result(&s.gh, res);
	github_free(&s.gh);
	db_rows_free(s.env);
	db_rows_free(s.builds);
	buf_free(&s.status_url);
	buf_free(&s.env_name);
	buf_free(&text);
}

void
github_sync(struct worker *w, uint64_t env_id, struct job_result *res)
{
	github_sync_run(w, NULL, env_id, res);
}

void
github_notify_job(struct worker *w, const struct job *job,
                  struct job_result *res)
{
	github_sync_run(w, job, job->env_id, res);
}
