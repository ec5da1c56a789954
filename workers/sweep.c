/*
 * sweep.c - the reaper's recurring `sweep` job: what webhooks alone would
 * never clean up (docs/architecture.md section 4). Each
 * pass is safe to run twice, or beside webhooks and reconciles, because it
 * only changes desired state and enqueues reconciles, which the queue runs
 * one at a time per environment:
 *
 *  - idle stop: a running environment with no push, deploy or command for
 *    environments.idle_stop_minutes, no visit its exposure saw, and no
 *    `/preview keep`, is asked to stop; the next push, `/preview deploy`
 *    or (where the exposure can) a visit starts it again;
 *  - converge: an environment that should be stopped or destroyed but is
 *    not, and has no job to get it there (its teardown died while Docker
 *    was down, say), gets a reconcile; so does one whose deploy job died
 *    of our failures (failed, but not at a commit it attempted): it does
 *    not wait for a push; and one waiting in `budget` that its budget now
 *    admits (budget_release, budget.c);
 *  - orphans: compose projects, instances, routes, tunnels and work dirs
 *    that carry this installation's identity (a Docker label, a tag, a
 *    marker file, a line of the route; never a name alone), are older
 *    than workers.sweep_grace_seconds, and that no environment owns are
 *    removed, each under its slug's lock (see orphan_remove), by every
 *    provider in use; a destroyed environment's are torn down again.
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "workers.h"

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
	/* idle_stopped_at and idle_stop_delivery make it wakeable by a
	 * visit (017_wake.sql); no other stop sets them. */
	if (db_exec(db,
	            "UPDATE environments SET desired = 'stopped', "
	            "idle_stopped_at = NOW(6), idle_stop_delivery = "
	            "last_delivery_id WHERE id = ? AND " IDLE_WHERE,
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

/*
 * Visits the exposure saw (nginx's per-route log, the tunnel connector's
 * request count) are activity: a preview
 * in use is not idle because nobody pushed. Each candidate's last visit
 * moves last_active_at forward before the stop looks again. A look may
 * take a few seconds (on ec2, a Run Command), so the job's lease is kept
 * after each.
 */
static int
visits_record(struct worker *w, const struct job *job, const struct db_rows *r)
{
	size_t i;

	for (i = 0; i < db_rows_count(r); i++) {
		const struct exposure_ops *x =
		        exposure_for(w->cfg, db_rows_get(r, i, 1));
		uint64_t id;
		time_t at = 0;
		int seen;

		if (x == NULL || x->last_visit == NULL ||
		    parse_uint64(db_rows_get(r, i, 0), &id) == -1)
			continue;
		seen = x->last_visit(w, db_rows_get(r, i, 1),
		                     db_rows_get(r, i, 2), &at);
		if (job != NULL && job_heartbeat(w, job) == -1)
			return -1;
		if (seen <= 0)
			continue;
		if (db_exec(w->db,
		            "UPDATE environments SET last_active_at = "
		            "FROM_UNIXTIME(?) WHERE id = ? AND "
		            "COALESCE(last_active_at, updated_at) < "
		            "FROM_UNIXTIME(?)",
		            "iui", (int64_t)at, id, (int64_t)at) == -1)
			return -1;
		if (db_affected(w->db) > 0)
			log_info("idle_visited", "env=%llu",
			         (unsigned long long)id);
	}
	return 0;
}

static int
idle_stop(struct worker *w, const struct job *job)
{
	struct db_rows *r = NULL;
	int n;

	if (w->cfg->env_idle_stop_minutes == 0)
		return 0;
	if (db_query(w->db, &r,
	             "SELECT id, repo, slug FROM environments WHERE " IDLE_WHERE
	             " LIMIT 100",
	             "i", w->cfg->env_idle_stop_minutes) == -1)
		return -1;
	if (visits_record(w, job, r) == -1) {
		db_rows_free(r);
		return -1;
	}
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
	             "SELECT e.id FROM environments e WHERE ((e.desired IN "
	             "('stopped', 'destroyed', 'awaiting_approval') AND "
	             "e.phase <> e.desired) OR (e.desired = 'running' AND "
	             "e.phase = 'failed' AND NOT e.attempted_sha <=> "
	             "e.desired_sha)) AND NOT EXISTS (SELECT 1 FROM "
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

/* Who listed a slug: the compute or the exposure being swept. */
enum { BY_COMPUTE = 1, BY_EXPOSURE = 2 };

struct slugs {
	char **v;
	unsigned *by; /* BY_* of each */
	size_t n, cap;
	unsigned bit; /* what the list_owned being run adds */
};

static void
slugs_add(struct slugs *s, const char *slug, size_t n)
{
	size_t i;

	if (!slug_valid(slug, n))
		return;
	for (i = 0; i < s->n; i++)
		if (strlen(s->v[i]) == n && memcmp(s->v[i], slug, n) == 0) {
			s->by[i] |= s->bit;
			return;
		}
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 16;
		s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
		s->by = xrealloc(s->by, s->cap * sizeof(*s->by));
	}
	s->by[s->n] = s->bit;
	s->v[s->n++] = xstrndup(slug, n);
}

static void
slugs_free(struct slugs *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	free(s->by);
	memset(s, 0, sizeof(*s));
}

/* A slug_fn for the providers' list_owned (see workers.h). */
static void
slugs_take(void *arg, const char *slug, size_t n)
{
	slugs_add(arg, slug, n);
}

/* What the row of `slug` says now. */
enum slug_row { ROW_ERROR = -1, ROW_NONE, ROW_DESTROYED, ROW_LIVE };

static enum slug_row
slug_row(struct worker *w, const char *slug)
{
	struct db_rows *r = NULL;
	enum slug_row row;

	if (db_query(w->db, &r,
	             "SELECT desired = 'destroyed' AND phase = 'destroyed' "
	             "FROM environments WHERE slug = ?",
	             "s", slug) == -1)
		return ROW_ERROR;
	row = db_rows_count(r) == 0                    ? ROW_NONE
	      : strcmp(db_rows_get(r, 0, 0), "1") == 0 ? ROW_DESTROYED
	                                               : ROW_LIVE;
	db_rows_free(r);
	return row;
}

/*
 * Tear down what `compute` and `exposure` (either may be NULL) hold of
 * `slug`, route first as teardown does. Under the slug's lock, and only
 * if the row is still as the caller saw it once we hold it: no row, or
 * (`destroyed_too`) a destroyed one. A delivery may have created or
 * reopened the environment since we looked, and its reconcile (which
 * takes the same lock) must never find its work dir removed under its
 * fetch.
 */
static int
orphan_remove(struct worker *w, const struct job *job, const char *slug,
              const struct compute_ops *compute,
              const struct exposure_ops *exposure, bool destroyed_too)
{
	int64_t retry_ms; /* the sweep's next pass is its retry */
	bool after = exposure && exposure->unroute_after_compute;
	enum slug_row row;
	int rc = -1, lock;

	lock = local_env_lock(w->cfg, slug, 0);
	if (lock == -1) {
		log_info("orphan_busy", "slug=%s", log_q(slug));
		return 0; /* its reconcile runs: not an orphan, or next time */
	}
	row = slug_row(w, slug);
	if (row != ROW_NONE && !(destroyed_too && row == ROW_DESTROYED)) {
		local_env_unlock(lock);
		return row == ROW_ERROR ? -1 : 0;
	}
	if ((!exposure || after ||
	     exposure->unroute(w, job, slug, NULL, NULL, &retry_ms) == 0) &&
	    (!compute || compute->destroy(w, job, slug, NULL, NULL) == 0) &&
	    (!after ||
	     exposure->unroute(w, job, slug, NULL, NULL, &retry_ms) == 0)) {
		log_info("orphan_removed", "slug=%s compute=%s exposure=%s",
		         log_q(slug), compute ? compute->name : "-",
		         exposure ? exposure->name : "-");
		rc = 0;
	}
	local_env_unlock(lock);
	return rc;
}

/*
 * One slug found on disk, in Docker or at an exposure. Its environment is
 * live (nothing to do), gone (removed here), or destroyed with something
 * left. A destroyed one is reconciled, which tears down again in turn with
 * any other job of it, through its repository's providers. What a
 * provider that is not its repository's holds (the repository moved to
 * another provider; a test's emulated EC2 hosts share this Docker
 * engine) that reconcile would never reach: it is removed here, by the
 * provider that listed it, or every sweep would reconcile it again.
 */
static int
orphan_check(struct worker *w, const struct job *job, const char *slug,
             unsigned by, const struct compute_ops *compute,
             const struct exposure_ops *exposure)
{
	struct db_rows *r = NULL;
	struct env_tx t = {w, 0, false};
	const char *repo;
	bool own_c, own_x;
	int rc = 0;

	if (db_query(w->db, &r,
	             "SELECT id, desired = 'destroyed' AND phase = "
	             "'destroyed', repo FROM environments WHERE slug = ?",
	             "s", slug) == -1)
		return -1;
	if (db_rows_count(r) == 0) {
		db_rows_free(r);
		return orphan_remove(w, job, slug, compute, exposure, false);
	}
	repo = db_rows_get(r, 0, 2);
	own_c = compute_for(w->cfg, repo) == compute;
	own_x = exposure_for(w->cfg, repo) == exposure;
	if (strcmp(db_rows_get(r, 0, 1), "1") != 0 ||
	    parse_uint64(db_rows_get(r, 0, 0), &t.env_id) == -1) {
		db_rows_free(r);
		return 0;
	}
	db_rows_free(r);
	if (((by & BY_COMPUTE) && !own_c) || ((by & BY_EXPOSURE) && !own_x))
		rc = orphan_remove(
		        w, job, slug,
		        (by & BY_COMPUTE) && !own_c ? compute : NULL,
		        (by & BY_EXPOSURE) && !own_x ? exposure : NULL, true);
	if (rc == 0 &&
	    (((by & BY_COMPUTE) && own_c) || ((by & BY_EXPOSURE) && own_x))) {
		rc = db_tx(w->db, reconcile_tx, &t, 3);
		if (rc == 0)
			log_info("orphan_reconcile", "env=%llu slug=%s",
			         (unsigned long long)t.env_id, log_q(slug));
	}
	return rc;
}

static const void *
compute_of(const struct config *cfg, const char *repo)
{
	return compute_for(cfg, repo);
}

static const void *
exposure_of(const struct config *cfg, const char *repo)
{
	return exposure_for(cfg, repo);
}

/*
 * The providers of a kind (`of`) in use: the default first, then every
 * repository's own, once each (a repository on Cloudflare leaves tunnels
 * even when nginx is the default; one on ec2, instances when local is).
 */
static size_t
in_use(const struct config *cfg,
       const void *(*of)(const struct config *, const char *), const void **out,
       size_t max)
{
	size_t n = 0, i, j;

	for (i = 0; i <= cfg->nrepos; i++) {
		const void *p = of(cfg, i ? cfg->repos[i - 1].name : NULL);

		for (j = 0; j < n && out[j] != p; j++)
			;
		if (p != NULL && j == n && n < max)
			out[n++] = p;
	}
	return n;
}

/* Every slug `compute` (with `by` BY_COMPUTE) or `exposure` lists, checked. */
static int
orphans_of(struct worker *w, const struct job *job,
           const struct compute_ops *compute,
           const struct exposure_ops *exposure, unsigned by)
{
	struct slugs s = {0};
	size_t i;
	int rc = 0;

	s.bit = BY_COMPUTE;
	if ((by & BY_COMPUTE) &&
	    compute->list_owned(w, job, slugs_take, &s) == -1)
		rc = -1;
	s.bit = BY_EXPOSURE;
	if ((by & BY_EXPOSURE) &&
	    exposure->list_owned(w, job, slugs_take, &s) == -1)
		rc = -1;
	for (i = 0; i < s.n; i++)
		if (orphan_check(w, job, s.v[i], s.by[i], compute, exposure) ==
		    -1)
			rc = -1;
	slugs_free(&s);
	return rc;
}

/*
 * What the providers hold that no environment owns, or a destroyed one
 * still has. The default compute and exposure are paired: a slug only
 * compute holds is unrouted through the default exposure too. Another
 * exposure's slug is removed through it and the default compute (which
 * holds its work dir); another compute's, through that compute alone.
 */
static int
orphans(struct worker *w, const struct job *job)
{
	const void *c[4], *x[4];
	size_t k, nc, nx;
	int rc = 0;

	nc = in_use(w->cfg, compute_of, c, NELEM(c));
	nx = in_use(w->cfg, exposure_of, x, NELEM(x));
	if (nc == 0 || nx == 0 || c[0] != compute_for(w->cfg, NULL) ||
	    x[0] != exposure_for(w->cfg, NULL))
		return 0; /* a default not in this build: config said so */
	if (orphans_of(w, job, c[0], x[0], BY_COMPUTE | BY_EXPOSURE) == -1)
		rc = -1;
	for (k = 1; k < nx; k++)
		if (orphans_of(w, job, c[0], x[k], BY_EXPOSURE) == -1)
			rc = -1;
	for (k = 1; k < nc; k++)
		if (orphans_of(w, job, c[k], NULL, BY_COMPUTE) == -1)
			rc = -1;
	return rc;
}

void
sweep_run(struct worker *w, const struct job *job, struct job_result *res)
{
	int idle = idle_stop(w, job), stuck = converge(w);
	int budget = budget_release(w); /* budget.c: raised, or a new month */
	int orphan = orphans(w, job);

	if (idle > 0 || stuck > 0 || budget > 0)
		wake_notify(w->cfg);
	if (idle == -1 || stuck == -1 || budget == -1 || orphan == -1) {
		res->outcome = JOB_RETRY;
		buf_puts(&res->error, "sweep: a pass failed (see the log)");
		return;
	}
	res->outcome = JOB_DONE;
}
