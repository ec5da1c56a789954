/*
 * sweep.c - the reaper's recurring `sweep` job: what webhooks alone would
 * never clean up (DESIGN.md section 1, "idle stop, orphan sweep"). Each
 * pass is safe to run twice, or beside webhooks and reconciles, because it
 * only changes desired state and enqueues reconciles, which the queue runs
 * one at a time per environment:
 *
 *  - idle stop: a running environment with no push, deploy or command for
 *    environments.idle_stop_minutes, and no `/preview keep`, is asked to
 *    stop; the next push or `/preview deploy` starts it again;
 *  - converge: an environment that should be stopped or destroyed but is
 *    not, and has no job to get it there (its teardown died while Docker
 *    was down, say), gets a reconcile;
 *  - orphans: compose projects, routes and work dirs of this installation
 *    that no live environment owns are removed.
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "workers.h"
#include "cloudflare/cloudflare.h"

/*
 * Running, converged and quiet. Converged (nothing pending) matters: a push
 * that just arrived for an environment idle since yesterday is activity.
 */
#define IDLE_WHERE                                                             \
	"desired = 'running' AND ((phase = 'ready' AND deployed_sha = "        \
	"desired_sha) OR (phase = 'failed' AND attempted_sha = desired_sha)) " \
	"AND (keep_until IS NULL OR keep_until < NOW(6)) AND "                 \
	"COALESCE(last_active_at, updated_at) < NOW(6) - INTERVAL ? MINUTE"

struct env_tx {
	const struct worker *w;
	uint64_t env_id;
	bool changed;
};

static int
reconcile_tx(struct db *db, void *arg)
{
	struct env_tx *t = arg;

	t->changed = true;
	return queue_enqueue(db, "reconcile", t->env_id, 0, NULL,
	                     (int)t->w->cfg->workers_max_attempts);
}

/* Still idle under the row lock the UPDATE takes: then stop it. */
static int
idle_stop_tx(struct db *db, void *arg)
{
	struct env_tx *t = arg;

	t->changed = false;
	if (db_exec(db,
	            "UPDATE environments SET desired = 'stopped' WHERE id = ? "
	            "AND " IDLE_WHERE,
	            "ui", t->env_id, t->w->cfg->env_idle_stop_minutes) == -1)
		return -1;
	return db_affected(db) == 0 ? 0 : reconcile_tx(db, arg);
}

/* Runs `fn` for every environment id the query returns; -1 on error. */
static int
each_env(struct worker *w, db_tx_fn fn, const char *what,
         const struct db_rows *r)
{
	size_t i;
	int n = 0;

	for (i = 0; i < db_rows_count(r); i++) {
		struct env_tx t = {w, 0, false};

		if (parse_uint64(db_rows_get(r, i, 0), &t.env_id) == -1)
			continue;
		if (db_tx(w->db, fn, &t, 3) == -1)
			return -1;
		if (t.changed) {
			log_info(what, "env=%llu",
			         (unsigned long long)t.env_id);
			n++;
		}
	}
	return n;
}

static int
idle_stop(struct worker *w)
{
	struct db_rows *r = NULL;
	int n;

	if (w->cfg->env_idle_stop_minutes == 0)
		return 0;
	if (db_query(w->db, &r,
	             "SELECT id FROM environments WHERE " IDLE_WHERE
	             " LIMIT 100",
	             "i", w->cfg->env_idle_stop_minutes) == -1)
		return -1;
	n = each_env(w, idle_stop_tx, "idle_stop", r);
	db_rows_free(r);
	return n;
}

/*
 * Not where it should be and nothing on the way. A teardown that keeps
 * dying (Docker down) is tried again at most every 15 minutes, so dead
 * jobs do not pile up once a minute.
 */
static int
converge(struct worker *w)
{
	struct db_rows *r = NULL;
	int n;

	if (db_query(w->db, &r,
	             "SELECT e.id FROM environments e WHERE e.desired IN "
	             "('stopped', 'destroyed', 'awaiting_approval') AND "
	             "e.phase <> e.desired AND NOT EXISTS (SELECT 1 FROM "
	             "jobs j WHERE j.env_id = e.id AND j.kind = 'reconcile' "
	             "AND (j.state IN ('queued', 'running') OR (j.state = "
	             "'dead' AND j.finished_at > NOW(6) - INTERVAL 15 "
	             "MINUTE))) LIMIT 100",
	             "") == -1)
		return -1;
	n = each_env(w, reconcile_tx, "converge", r);
	db_rows_free(r);
	return n;
}

struct slugs {
	char **v;
	size_t n, cap;
};

static void
slugs_add(struct slugs *s, const char *slug, size_t n)
{
	size_t i;

	if (!slug_valid(slug, n))
		return;
	for (i = 0; i < s->n; i++)
		if (strlen(s->v[i]) == n && memcmp(s->v[i], slug, n) == 0)
			return;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 16;
		s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n++] = xstrndup(slug, n);
}

static void
slugs_free(struct slugs *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
}

/* Cloudflare exposure (issue 11), until the provider seam: its slugs. */
static void
slugs_add_str(void *s, const char *slug)
{
	slugs_add(s, slug, strlen(slug));
}

static bool
cf_exposure(const struct config *cfg)
{
	return strcmp(cfg->exposure_provider, "cloudflare") == 0;
}

/* Entries of `dir` named <slug><suffix>. */
static void
slugs_from_dir(struct slugs *s, const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t k = strlen(suffix);

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);

		if (n > k && strcmp(de->d_name + n - k, suffix) == 0)
			slugs_add(s, de->d_name, n - k);
	}
	closedir(d);
}

/* Projects named "<instance>-<slug>" that Docker still has. */
static int
slugs_from_docker(struct worker *w, const struct job *job, struct slugs *s)
{
	struct buf prefix = BUF_INIT;
	struct host_call c;
	struct proc p;
	const char *line;
	int rc = -1;

	buf_printf(&prefix, "%s-", local_instance(w->cfg));
	memset(&c, 0, sizeof(c));
	c.action = "projects";
	c.prefix = buf_str(&prefix);
	proc_init(&p);
	if (local_host_run(w, job, &c, &p) == 0) {
		for (line = buf_str(&p.out); *line != '\0';) {
			size_t n = strcspn(line, "\n");

			if (n > prefix.len)
				slugs_add(s, line + prefix.len, n - prefix.len);
			line += n + (line[n] == '\n');
		}
		rc = 0;
	}
	proc_free(&p);
	buf_free(&prefix);
	return rc;
}

/*
 * No environment row at all: nothing can reconcile it, so tear it down
 * here, route first (as teardown does).
 */
static int
orphan_remove(struct worker *w, const struct job *job, const char *slug)
{
	struct host_call c;
	struct proc p;
	char project[80];
	char *dir = local_env_dir(w->cfg, slug);
	int rc = -1;

	local_project_name(w->cfg, slug, project);
	memset(&c, 0, sizeof(c));
	c.action = "down";
	c.project = project;
	c.dir = dir;
	proc_init(&p);
	if ((cf_exposure(w->cfg) ? cloudflare_orphan_remove(w, slug)
	                         : exposure_local_remove(w->cfg, slug)) == 0 &&
	    local_host_run(w, job, &c, &p) == 0) {
		log_info("orphan_removed", "slug=%s", log_q(slug));
		rc = 0;
	}
	proc_free(&p);
	free(dir);
	return rc;
}

/*
 * One slug found on disk or in Docker. Its environment is live (nothing
 * to do), destroyed with something left (a reconcile destroys it again,
 * in turn with any other job of that environment), or gone.
 */
static int
orphan_check(struct worker *w, const struct job *job, const char *slug)
{
	struct db_rows *r = NULL;
	struct env_tx t = {w, 0, false};
	int rc = 0;

	if (db_query(w->db, &r,
	             "SELECT id, desired = 'destroyed' AND phase = "
	             "'destroyed' FROM environments WHERE slug = ?",
	             "s", slug) == -1)
		return -1;
	if (db_rows_count(r) == 0)
		rc = orphan_remove(w, job, slug);
	else if (strcmp(db_rows_get(r, 0, 1), "1") == 0 &&
	         parse_uint64(db_rows_get(r, 0, 0), &t.env_id) == 0) {
		rc = db_tx(w->db, reconcile_tx, &t, 3);
		if (rc == 0)
			log_info("orphan_reconcile", "env=%llu slug=%s",
			         (unsigned long long)t.env_id, log_q(slug));
	}
	db_rows_free(r);
	return rc;
}

static int
orphans(struct worker *w, const struct job *job)
{
	struct slugs s = {0};
	struct buf dir = BUF_INIT;
	size_t i;
	int rc = 0;

	if (slugs_from_docker(w, job, &s) == -1)
		rc = -1;
	if (cf_exposure(w->cfg) &&
	    cloudflare_sweep_slugs(w, slugs_add_str, &s) == -1)
		rc = -1;
	buf_printf(&dir, "%s/nginx/previews", w->cfg->var_dir);
	slugs_from_dir(&s, buf_str(&dir), ".conf");
	buf_reset(&dir);
	buf_printf(&dir, "%s/envs", w->cfg->var_dir);
	slugs_from_dir(&s, buf_str(&dir), "");
	for (i = 0; i < s.n; i++)
		if (orphan_check(w, job, s.v[i]) == -1)
			rc = -1;
	slugs_free(&s);
	buf_free(&dir);
	return rc;
}

void
sweep_run(struct worker *w, const struct job *job, struct job_result *res)
{
	int idle = idle_stop(w), stuck = converge(w);
	int orphan = orphans(w, job);

	if (idle > 0 || stuck > 0)
		wake_notify(w->cfg);
	if (idle == -1 || stuck == -1 || orphan == -1) {
		res->outcome = JOB_RETRY;
		buf_puts(&res->error, "sweep: a pass failed (see the log)");
		return;
	}
	res->outcome = JOB_DONE;
}
