/*
 * github_command.c - PR comment commands (job kind "command"): who may,
 * what it changes, and the answer on the PR.
 *
 * The webhook recorded the command (002_commands.sql) without deciding
 * anything. Here the commenter's permission is asked of GitHub's
 * collaborator-permission API: write, maintain or admin may command;
 * author_association is not trusted (it says nothing about write access
 * for outside collaborators, and nothing current). The decision and its
 * effect on the environment's desired state are one transaction with the
 * reconcile it enqueues, guarded by the command's state, so a retried job
 * never applies a command twice. The answer (a reaction) comes after the
 * commit: +1 applied, -1 refused. GitHub answers an existing reaction with
 * 200, so repeating it is harmless.
 *
 * States: pending → accepted → done, or pending → refused; failed when
 * the command cannot be judged (GitHub App disabled). answered_at (005)
 * records that the reaction was made.
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "../workers.h"

enum cmd_col {
	C_ID,
	C_ENV,
	C_REPO,
	C_COMMAND,
	C_ARGS,
	C_SOURCE,
	C_USER,
	C_COMMENT,
	C_INST,
	C_STATE,
};

struct decision {
	uint64_t command_id, env_id;
	const char *command, *args, *user;
	bool allowed;
	const char *reason;
	const struct config *cfg;
	bool applied; /* set by the transaction: it was still pending */
};

bool
github_permission_writes(const char *permission, const char *role)
{
	static const char *const ok[] = {"admin", "maintain", "write"};
	size_t i;

	for (i = 0; i < NELEM(ok); i++)
		if ((permission != NULL && strcmp(permission, ok[i]) == 0) ||
		    (role != NULL && strcmp(role, ok[i]) == 0))
			return true;
	return false;
}

/* GitHub logins: letters, digits, '-', and "[bot]" for Apps. */
static bool
login_ok(const char *u)
{
	size_t n = u ? strlen(u) : 0, i;

	if (n == 0 || n > 64)
		return false;
	if (n > 5 && strcmp(u + n - 5, "[bot]") == 0)
		n -= 5;
	for (i = 0; i < n; i++)
		if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		           "0123456789-",
		           u[i]) == NULL)
			return false;
	return true;
}

/* "", "36h", "7d" → hours to keep; -1 when the text is not a duration. */
static int64_t
keep_hours(const char *args)
{
	int64_t n;
	size_t len = args ? strlen(args) : 0;
	char unit, num[24];

	if (len == 0)
		return 0;
	if (len < 2 || len >= sizeof(num))
		return -1;
	unit = args[len - 1];
	memcpy(num, args, len - 1);
	num[len - 1] = '\0';
	if (parse_int64(num, 1, 100000, &n) == -1)
		return -1;
	if (unit == 'h')
		return n;
	if (unit == 'd')
		return n * 24;
	return -1;
}

/* Applies an allowed command to the environment; inside the transaction. */
static int
command_apply(struct db *db, const struct decision *d)
{
	const char *c = d->command;

	if (strcmp(c, "approve") == 0)
		return db_exec(db,
		               "UPDATE environments SET trusted = 1, "
		               "approved_by = ?, desired = IF(desired = "
		               "'destroyed', desired, 'running') WHERE id = ?",
		               "su", d->user, d->env_id);
	if (strcmp(c, "deploy") == 0 || strcmp(c, "redeploy") == 0)
		/*
		 * An untrusted environment stays awaiting approval: deploy
		 * is not approve. redeploy forgets the deployed and the
		 * attempted commit so that reconcile builds it again, even
		 * after a failed build.
		 */
		return db_exec(db,
		               "UPDATE environments SET desired = CASE WHEN "
		               "desired = 'destroyed' THEN desired WHEN "
		               "trusted = 0 AND desired = 'awaiting_approval' "
		               "THEN desired ELSE 'running' END, deployed_sha "
		               "= IF(?, NULL, deployed_sha), attempted_sha = "
		               "IF(?, NULL, attempted_sha) WHERE id = ?",
		               "iiu", (int64_t)(strcmp(c, "redeploy") == 0),
		               (int64_t)(strcmp(c, "redeploy") == 0),
		               d->env_id);
	/* Stopped by command: never woken by a visit (017_wake.sql). */
	if (strcmp(c, "stop") == 0)
		return db_exec(db,
		               "UPDATE environments SET desired = IF(desired = "
		               "'destroyed', desired, 'stopped'), "
		               "idle_stopped_at = NULL WHERE id = ?",
		               "u", d->env_id);
	if (strcmp(c, "destroy") == 0)
		return db_exec(db,
		               "UPDATE environments SET desired = 'destroyed' "
		               "WHERE id = ?",
		               "u", d->env_id);
	if (strcmp(c, "keep") == 0) {
		int64_t h = keep_hours(d->args);

		/* No duration: kept until told otherwise (no idle stop). */
		if (h == 0)
			return db_exec(db,
			               "UPDATE environments SET keep_until = "
			               "'9999-12-31 00:00:00' WHERE id = ?",
			               "u", d->env_id);
		return db_exec(db,
		               "UPDATE environments SET keep_until = NOW(6) + "
		               "INTERVAL ? HOUR WHERE id = ?",
		               "iu", h, d->env_id);
	}
	return -1;
}

static int
decide_tx(struct db *db, void *arg)
{
	struct decision *d = arg;
	struct db_rows *r = NULL;
	bool pending;

	d->applied = false;
	if (db_query(db, &r,
	             "SELECT state FROM commands WHERE id = ? FOR "
	             "UPDATE",
	             "u", d->command_id) == -1)
		return -1;
	pending = db_rows_count(r) == 1 &&
	          strcmp(db_rows_get(r, 0, 0), "pending") == 0;
	db_rows_free(r);
	if (!pending)
		return 0; /* decided by an earlier run of this job */
	if (d->allowed) {
		if (command_apply(db, d) == -1 ||
		    queue_enqueue(db, "reconcile", d->env_id, 0, NULL,
		                  (int)d->cfg->workers_max_attempts) == -1)
			return -1;
	}
	if (db_exec(db,
	            "UPDATE commands SET state = ?, reason = ?, decided_at = "
	            "NOW(6) WHERE id = ?",
	            "ssu", d->allowed ? "accepted" : "refused", d->reason,
	            d->command_id) == -1)
		return -1;
	d->applied = true;
	return 0;
}

/* Asks GitHub; sets d->allowed/reason, or stops the run (gh->stop). */
static int
permission_check(struct github *gh, const char *repo, struct decision *d)
{
	struct github_response res;
	struct buf path = BUF_INIT;
	struct json_object *o = NULL, *p, *r;
	enum github_verdict v;
	int rc = -1;

	d->allowed = false;
	github_response_init(&res);
	buf_printf(&path, "/repos/%s/collaborators/%s/permission", repo,
	           d->user);
	v = github_request(gh, "GET", buf_str(&path), NULL, &res);
	if (v == GH_NOT_FOUND) {
		d->reason = "not a collaborator";
		rc = 0;
		goto out;
	}
	if (v != GH_OK) {
		if (gh->stop == GH_OK)
			github_fail(gh, "permission check: %ld", res.status);
		goto out;
	}
	o = github_json(&res);
	if (o == NULL || !json_object_object_get_ex(o, "permission", &p)) {
		github_fail(gh, "permission answer without permission");
		log_error("github_permission", "error=\"no permission field\"");
		goto out;
	}
	if (!json_object_object_get_ex(o, "role_name", &r))
		r = NULL;
	d->allowed =
	        github_permission_writes(json_object_get_string(p),
	                                 r ? json_object_get_string(r) : NULL);
	d->reason = d->allowed ? NULL : "no write access";
	log_info("github_permission",
	         "user=%s permission=%s role=%s "
	         "allowed=%d",
	         log_q(d->user), log_q(json_object_get_string(p)),
	         log_q(r ? json_object_get_string(r) : ""), d->allowed);
	rc = 0;
out:
	json_object_put(o);
	github_response_free(&res);
	buf_free(&path);
	return rc;
}

static int
react(struct github *gh, const char *repo, const char *comment_id,
      const char *content)
{
	struct github_response res;
	struct buf path = BUF_INIT, body = BUF_INIT;
	enum github_verdict v;
	int rc = 0;

	github_response_init(&res);
	buf_printf(&path, "/repos/%s/issues/comments/%s/reactions", repo,
	           comment_id);
	buf_printf(&body, "{\"content\":\"%s\"}", content);
	v = github_request(gh, "POST", buf_str(&path), buf_str(&body), &res);
	if (v == GH_NOT_FOUND) {
		/* The comment was deleted: nobody left to answer. */
		log_info("github_reaction", "comment=%s gone=1", comment_id);
	} else if (v != GH_OK) {
		if (gh->stop == GH_OK)
			github_fail(gh, "reaction: %ld", res.status);
		rc = -1;
	}
	github_response_free(&res);
	buf_free(&path);
	buf_free(&body);
	return rc;
}

static bool
known_command(const char *c)
{
	static const char *const known[] = {"approve", "deploy",  "redeploy",
	                                    "stop",    "destroy", "keep"};
	size_t i;

	for (i = 0; i < NELEM(known); i++)
		if (strcmp(c, known[i]) == 0)
			return true;
	return false;
}

/*
 * One command: decide (once) and answer (once). 0 to go on with the next
 * command, -1 when the run must stop (gh->stop says why).
 */
static int
command_one(struct worker *w, struct github *gh, const struct db_rows *r,
            size_t i, struct decision *last)
{
	struct decision d;
	const char *state = db_rows_get(r, i, C_STATE);
	const char *repo = db_rows_get(r, i, C_REPO);
	const char *comment = db_rows_get(r, i, C_COMMENT);
	uint64_t inst = 0;

	memset(&d, 0, sizeof(d));
	d.cfg = w->cfg;
	parse_uint64(db_rows_get(r, i, C_ID), &d.command_id);
	parse_uint64(db_rows_get(r, i, C_ENV), &d.env_id);
	d.command = db_rows_get(r, i, C_COMMAND);
	d.args = db_rows_get(r, i, C_ARGS);
	d.user = db_rows_get(r, i, C_USER);
	if (!github_repo_ok(repo)) {
		log_error("github_command", "command=%llu error=\"bad repo\"",
		          (unsigned long long)d.command_id);
		return github_fail(gh, "not a repository name");
	}
	if (db_rows_get(r, i, C_INST) != NULL)
		parse_uint64(db_rows_get(r, i, C_INST), &inst);
	gh->installation = inst;
	if (inst == 0 && github_installation_find(gh, repo, &inst) == -1)
		return -1;
	if (strcmp(state, "pending") == 0) {
		if (!known_command(d.command)) {
			d.reason = "unknown command";
		} else if (strcmp(d.command, "keep") == 0 &&
		           keep_hours(d.args) < 0) {
			d.reason = "keep takes a duration like 48h or 7d";
		} else if (!login_ok(d.user)) {
			d.reason = "not a GitHub login";
		} else if (last->user != NULL &&
		           strcmp(last->user, d.user) == 0) {
			/* Same commenter in this run: GitHub already said. */
			d.allowed = last->allowed;
			d.reason = last->reason;
		} else if (permission_check(gh, repo, &d) == -1) {
			return -1;
		} else {
			last->user = d.user;
			last->allowed = d.allowed;
			last->reason = d.reason;
		}
		if (db_tx(w->db, decide_tx, &d, 5) == -1)
			return github_db_error(gh);
		if (!d.applied)
			return 0; /* decided elsewhere; its own run answers */
		log_info("github_command",
		         "command=%llu env=%llu verb=%s user=%s outcome=%s "
		         "reason=%s",
		         (unsigned long long)d.command_id,
		         (unsigned long long)d.env_id, d.command, log_q(d.user),
		         d.allowed ? "accepted" : "refused",
		         log_q(d.reason ? d.reason : ""));
		if (d.allowed)
			wake_notify(w->cfg);
		state = d.allowed ? "accepted" : "refused";
	}
	if (comment != NULL &&
	    strcmp(db_rows_get(r, i, C_SOURCE), "comment") == 0 &&
	    react(gh, repo, comment,
	          strcmp(state, "refused") == 0 ? "-1" : "+1") == -1)
		return -1;
	if (db_exec(w->db,
	            "UPDATE commands SET answered_at = NOW(6), state = IF("
	            "state = 'accepted', 'done', state) WHERE id = ?",
	            "u", d.command_id) == -1)
		return github_db_error(gh);
	return 0;
}

/*
 * The job names one command, but the queue folds a second job for the
 * same environment into the first: so every open command of that
 * environment is handled, oldest first.
 */
void
github_command_job(struct worker *w, const struct job *job,
                   struct job_result *res)
{
	struct db_rows *r = NULL;
	struct github gh;
	struct github_job gj;
	struct decision last;
	uint64_t command_id = 0, env_id = job->env_id;
	size_t i;

	github_init(&gh, w->cfg, 0, job->attempts);
	github_bind(&gh, &gj, w, job);
	memset(&last, 0, sizeof(last));
	if (job->payload == NULL ||
	    parse_uint64(job->payload, &command_id) == -1) {
		log_error("github_command",
		          "job=%llu error=\"payload is not a command id\"",
		          (unsigned long long)job->id);
		github_fail(&gh, "payload is not a command id");
		goto out;
	}
	if (env_id == 0) {
		if (db_query(w->db, &r,
		             "SELECT env_id FROM commands WHERE id = ?", "u",
		             command_id) == -1) {
			github_db_error(&gh);
			goto out;
		}
		if (db_rows_count(r) == 0)
			goto out; /* gone with its environment */
		parse_uint64(db_rows_get(r, 0, 0), &env_id);
		db_rows_free(r);
		r = NULL;
	}
	if (!w->cfg->github_enabled) {
		if (db_exec(w->db,
		            "UPDATE commands SET state = 'failed', reason = ?, "
		            "decided_at = NOW(6) WHERE env_id = ? AND state = "
		            "'pending'",
		            "su", "the GitHub App is not configured",
		            env_id) == -1)
			github_db_error(&gh);
		goto out;
	}
	if (db_query(w->db, &r,
	             "SELECT c.id, c.env_id, c.repo, c.command, c.args, "
	             "c.source, c.commenter, c.comment_id, "
	             "COALESCE(c.installation_id, e.installation_id), c.state "
	             "FROM commands c JOIN environments e ON e.id = c.env_id "
	             "WHERE c.env_id = ? AND (c.state = 'pending' OR "
	             "(c.state IN ('accepted', 'refused') AND c.answered_at IS "
	             "NULL)) ORDER BY c.id LIMIT 50",
	             "u", env_id) == -1) {
		github_db_error(&gh);
		goto out;
	}
	for (i = 0; i < db_rows_count(r); i++)
		if (command_one(w, &gh, r, i, &last) == -1)
			break;
out:
	github_result(&gh, res);
	github_free(&gh);
	db_rows_free(r);
}
