/*
 * job.c - claiming and settling jobs (docs/architecture.md section 3).
 *
 * The claim is one short transaction: lock the next due queued row with
 * SKIP LOCKED (rivals skip it instead of queueing behind it), mark it
 * running under a fresh random lease token, commit. Every later change is
 * a single statement fenced on (id, lease_token, state = 'running'): if the
 * reaper rescued the job, or an operator cancelled it, the statement
 * matches no row and the worker learns it lost the lease.
 *
 * Tokens are kept in the row after settling (only state changes), so an
 * ambiguous failure (the connection broke around a COMMIT) can be resolved
 * by looking at the row: still our token, no longer running, means our
 * statement did land.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "workers.h"

/* How long a job whose environment is busy waits before another look. */
#define DEFER_MS 100
/* How many busy-environment jobs one claim call steps over. */
#define CLAIM_DEFERS 8

void
job_token(char out[static 33])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char r[16];
	size_t i;

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		fatal("getrandom", "errno=%m");
	for (i = 0; i < sizeof(r); i++) {
		out[2 * i] = hex[r[i] >> 4];
		out[2 * i + 1] = hex[r[i] & 15];
	}
	out[32] = '\0';
}

void
job_clear(struct job *job)
{
	if (job == NULL)
		return;
	free(job->payload);
	memset(job, 0, sizeof(*job));
}

static int64_t
lease_us(const struct worker *w)
{
	return w->cfg->workers_lease_seconds * 1000000;
}

struct claim {
	struct worker *w;
	struct job *job;
	bool got, deferred;
};

static int
job_parse_row(const struct db_rows *r, struct job *job)
{
	int64_t v;
	const char *kind = db_rows_get(r, 0, 1), *env = db_rows_get(r, 0, 2);

	memset(job, 0, sizeof(*job));
	if (parse_uint64(db_rows_get(r, 0, 0), &job->id) == -1 ||
	    strlen(kind) >= sizeof(job->kind))
		return -1;
	memcpy(job->kind, kind, strlen(kind) + 1);
	if (env != NULL && parse_uint64(env, &job->env_id) == -1)
		return -1;
	if (parse_int64(db_rows_get(r, 0, 3), 0, INT32_MAX, &v) == -1)
		return -1;
	job->attempts = (int)v + 1; /* the claim counts this attempt */
	if (parse_int64(db_rows_get(r, 0, 4), 0, INT32_MAX, &v) == -1)
		return -1;
	job->max_attempts = (int)v;
	if (db_rows_get(r, 0, 5) != NULL)
		job->payload = xstrdup(db_rows_get(r, 0, 5));
	return 0;
}

/*
 * What this host may claim: anything but a reconcile of a local
 * environment whose containers another host's Docker engine holds
 * (environments.compute_host, migration 015). A locking read does not
 * lock what its subquery reads, so environments rows stay unlocked.
 */
#define CLAIMABLE                                                              \
	"state = 'queued' AND (kind <> 'reconcile' OR env_id IS NULL OR "      \
	"NOT EXISTS (SELECT 1 FROM environments e WHERE e.id = jobs.env_id "   \
	"AND e.compute_host <> ?))"

static int
claim_tx(struct db *db, void *arg)
{
	struct claim *c = arg;
	struct db_rows *r = NULL;
	int rc = -1;

	c->got = c->deferred = false;
	job_clear(c->job);
	if (db_query(db, &r,
	             "SELECT id, kind, env_id, attempts, max_attempts, "
	             "payload FROM jobs WHERE " CLAIMABLE " AND "
	             "run_at <= NOW(6) ORDER BY run_at, id LIMIT 1 "
	             "FOR UPDATE SKIP LOCKED",
	             "s", c->w->host) == -1)
		goto out;
	if (db_rows_count(r) == 0) {
		rc = 0;
		goto out;
	}
	if (job_parse_row(r, c->job) == -1) {
		log_error("job_row", "id=%s", log_q(db_rows_get(r, 0, 0)));
		goto out;
	}
	job_token(c->job->lease_token);
	if (db_exec(db,
	            "UPDATE jobs SET state = 'running', lease_token = ?, "
	            "lease_until = NOW(6) + INTERVAL ? MICROSECOND, "
	            "attempts = attempts + 1, worker = ?, "
	            "started_at = NOW(6), finished_at = NULL WHERE id = ?",
	            "sisu", c->job->lease_token, lease_us(c->w), c->w->id,
	            c->job->id) == 0) {
		c->got = true;
		rc = 0;
		goto out;
	}
	if (db_error(db) != DB_DUPLICATE)
		goto out;
	/*
	 * jobs_one_running: its environment already has a running job. Push
	 * this one back a little (with jitter so waiters spread) instead of
	 * claiming it again at once.
	 */
	if (db_exec(db,
	            "UPDATE jobs SET run_at = NOW(6) + INTERVAL ? "
	            "MICROSECOND WHERE id = ?",
	            "iu",
	            (int64_t)(DEFER_MS +
	                      (int64_t)(backoff_random() % DEFER_MS)) *
	                    1000,
	            c->job->id) == -1)
		goto out;
	log_debug("job_deferred", "job=%llu env=%llu",
	          (unsigned long long)c->job->id,
	          (unsigned long long)c->job->env_id);
	c->deferred = true;
	rc = 0;
out:
	db_rows_free(r);
	return rc;
}

/* Milliseconds until the earliest queued job is due; -1 if none. */
static int64_t
next_due_ms(struct worker *w)
{
	struct db_rows *r = NULL;
	int64_t us = -1;
	const char *v;

	if (db_query(w->db, &r,
	             "SELECT TIMESTAMPDIFF(MICROSECOND, NOW(6), MIN(run_at)) "
	             "FROM jobs WHERE " CLAIMABLE,
	             "s", w->host) == 0 &&
	    (v = db_rows_get(r, 0, 0)) != NULL &&
	    parse_int64(v, INT64_MIN, INT64_MAX, &us) == 0)
		us = us < 0 ? 0 : (us + 999) / 1000;
	else
		us = -1;
	db_rows_free(r);
	return us;
}

enum claim_result
job_claim(struct worker *w, struct job *job, int64_t *next_ms)
{
	struct claim c = {w, job, false, false};
	int i;

	*next_ms = -1;
	for (i = 0; i < CLAIM_DEFERS; i++) {
		if (db_tx(w->db, claim_tx, &c, 5) == -1) {
			job_clear(job);
			return CLAIM_ERROR;
		}
		if (c.got) {
			w->lease_local = now_mono() +
			                 (double)w->cfg->workers_lease_seconds;
			log_debug("job_claimed", "job=%llu kind=%s attempt=%d",
			          (unsigned long long)job->id, job->kind,
			          job->attempts);
			return CLAIM_OK;
		}
		if (!c.deferred)
			break;
	}
	job_clear(job);
	*next_ms = next_due_ms(w);
	return CLAIM_NONE;
}

int
job_heartbeat(struct worker *w, const struct job *job)
{
	if (db_exec(w->db,
	            "UPDATE jobs SET lease_until = NOW(6) + INTERVAL ? "
	            "MICROSECOND WHERE id = ? AND lease_token = ? AND "
	            "state = 'running'",
	            "ius", lease_us(w), job->id, job->lease_token) == -1) {
		/* Unknown, not lost: carry on while our lease surely holds. */
		return now_mono() < w->lease_local ? 0 : -1;
	}
	if (db_affected(w->db) == 0) {
		log_warn("lease_lost", "job=%llu kind=%s at=heartbeat",
		         (unsigned long long)job->id, job->kind);
		return -1;
	}
	w->lease_local = now_mono() + (double)w->cfg->workers_lease_seconds;
	return 0;
}

/* ---- settling ---------------------------------------------------------- */

enum settle_kind { SETTLE_DONE, SETTLE_REQUEUE, SETTLE_DEAD, SETTLE_RELEASE };

struct settle {
	const struct worker *w;
	const struct job *job;
	const struct job_result *res; /* NULL: the reaper's */
	enum settle_kind kind;
	int64_t delay_ms;
	const char *error;
	bool expired; /* the reaper: only while the lease is expired */
	bool matched;
};

/*
 * Queued again, fenced. If the environment already has a queued job of
 * this kind (jobs_one_queued), that one will do the work: this one is
 * marked superseded instead, so nothing waits twice.
 */
static int
settle_requeue(struct db *db, struct settle *s)
{
	const struct job *job = s->job;
	bool release = s->kind == SETTLE_RELEASE;

	if (db_exec(db,
	            "UPDATE jobs SET state = 'queued', run_at = NOW(6) + "
	            "INTERVAL ? MICROSECOND, lease_until = NULL, "
	            "worker = NULL, last_error = ?, attempts = IF(?, "
	            "attempts - 1, attempts) WHERE id = ? AND "
	            "lease_token = ? AND state = 'running' AND attempts > 0 "
	            "AND (? = 0 OR lease_until < NOW(6))",
	            "isiusi", s->delay_ms * 1000, s->error, (int64_t)release,
	            job->id, job->lease_token, (int64_t)s->expired) == 0) {
		s->matched = db_affected(db) > 0;
		return 0;
	}
	if (db_error(db) != DB_DUPLICATE)
		return -1;
	if (db_exec(db,
	            "UPDATE jobs SET state = 'cancelled', lease_until = NULL, "
	            "finished_at = NOW(6), last_error = CONCAT('superseded "
	            "by a queued job of the same kind; last error: ', "
	            "IFNULL(?, 'none')) WHERE id = ? AND lease_token = ? AND "
	            "state = 'running' AND (? = 0 OR lease_until < NOW(6))",
	            "susi", s->error, job->id, job->lease_token,
	            (int64_t)s->expired) == -1)
		return -1;
	s->matched = db_affected(db) > 0;
	return 0;
}

static int
settle_dead(struct db *db, struct settle *s)
{
	const struct job *job = s->job;
	const struct job_kind *k = dispatch_find(job->kind);
	struct buf why = BUF_INIT;
	int rc = -1;

	if (db_exec(db,
	            "UPDATE jobs SET state = 'dead', lease_until = NULL, "
	            "finished_at = NOW(6), last_error = ? WHERE id = ? AND "
	            "lease_token = ? AND state = 'running' AND "
	            "(? = 0 OR lease_until < NOW(6))",
	            "susi", s->error, job->id, job->lease_token,
	            (int64_t)s->expired) == -1)
		goto out;
	s->matched = db_affected(db) > 0;
	if (!s->matched || job->env_id == 0 || (k != NULL && !k->fails_env)) {
		rc = 0;
		goto out;
	}
	/* Visible on the status page and, through notify, on the PR. */
	buf_printf(&why, "job %llu (%s) failed after %d attempt%s: %s",
	           (unsigned long long)job->id, job->kind, job->attempts,
	           job->attempts == 1 ? "" : "s",
	           s->error ? s->error : "unknown error");
	if (db_exec(db,
	            "UPDATE environments SET phase = 'failed', error = ? "
	            "WHERE id = ?",
	            "su", buf_str(&why), job->env_id) == -1 ||
	    db_exec(db,
	            "INSERT INTO notifications (env_id, phase, message) "
	            "VALUES (?, 'failed', ?)",
	            "us", job->env_id, buf_str(&why)) == -1)
		goto out;
	/* In the same transaction: the PR hears of it, or nothing changed. */
	if (s->w->cfg->github_enabled &&
	    queue_enqueue(db, "notify", job->env_id, 0, NULL,
	                  (int)s->w->cfg->workers_max_attempts) == -1)
		goto out;
	rc = 0;
out:
	buf_free(&why);
	return rc;
}

static int
settle_change(struct db *db, struct settle *s)
{
	switch (s->kind) {
	case SETTLE_DONE:
		if (db_exec(db,
		            "UPDATE jobs SET state = 'done', lease_until = "
		            "NULL, finished_at = NOW(6), last_error = NULL "
		            "WHERE id = ? AND lease_token = ? AND "
		            "state = 'running'",
		            "us", s->job->id, s->job->lease_token) == -1)
			return -1;
		s->matched = db_affected(db) > 0;
		return 0;
	case SETTLE_REQUEUE:
	case SETTLE_RELEASE:
		return settle_requeue(db, s);
	case SETTLE_DEAD:
		return settle_dead(db, s);
	}
	return -1;
}

static bool
settle_hooked(const struct settle *s)
{
	return s->res != NULL && s->res->in_settle != NULL;
}

static int
settle_tx(struct db *db, void *arg)
{
	struct settle *s = arg;

	s->matched = false;
	if (settle_change(db, s) == -1)
		return -1;
	if (s->matched && settle_hooked(s))
		return s->res->in_settle(db, s->w, s->job, s->res);
	return 0;
}

/* After an ambiguous failure: did one of our statements land after all? */
static bool
settled_by_us(struct db *db, const struct job *job)
{
	struct db_rows *r = NULL;
	bool ours = false;

	if (db_query(db, &r,
	             "SELECT state FROM jobs WHERE id = ? AND "
	             "lease_token = ? AND state <> 'running'",
	             "us", job->id, job->lease_token) == 0)
		ours = db_rows_count(r) == 1;
	db_rows_free(r);
	return ours;
}

/*
 * Runs the settling statement(s) until they go through. A broken
 * connection or a deadlock is not a reason to give up: a job left running
 * would be rescued after its lease and run again. The statements are
 * fenced, so running them again after an ambiguous COMMIT is harmless.
 */
static int
settle_run(struct worker *w, struct settle *s)
{
	double deadline =
	        now_mono() + 10.0 * (double)w->cfg->workers_lease_seconds + 60;
	double pause = 0.05;
	bool ambiguous = false;
	int rc;

	for (;;) {
		/* DONE alone is one statement: autocommit, no transaction. */
		if (s->kind == SETTLE_DONE && !settle_hooked(s))
			rc = settle_tx(w->db, s);
		else
			rc = db_tx(w->db, settle_tx, s, 5);
		if (rc == 0)
			break;
		ambiguous = true;
		/* Only a lost connection or a lock conflict is worth a retry. */
		if (db_error(w->db) != DB_GONE && db_error(w->db) != DB_RETRY)
			return -1;
		if (now_mono() > deadline || supervisor_term_count() >= 3) {
			log_error("job_settle_gave_up", "job=%llu",
			          (unsigned long long)s->job->id);
			return -1;
		}
		usleep((useconds_t)(pause * 1e6));
		if (pause < 1.0)
			pause *= 2;
	}
	if (s->matched)
		return 0;
	if (ambiguous && settled_by_us(w->db, s->job))
		return 0;
	log_warn("lease_lost", "job=%llu kind=%s at=settle",
	         (unsigned long long)s->job->id, s->job->kind);
	return -1;
}

int
job_settle(struct worker *w, const struct job *job,
           const struct job_result *res)
{
	struct settle s = {w, job, res, SETTLE_DONE, 0, NULL, false, false};
	const struct config *cfg = w->cfg;

	if (res->outcome != JOB_DONE)
		s.error = res->error.len ? buf_str(&res->error)
		                         : "no reason given";
	switch (res->outcome) {
	case JOB_DONE:
		break;
	case JOB_RETRY:
		if (job->attempts >= job->max_attempts) {
			s.kind = SETTLE_DEAD;
			break;
		}
		s.kind = SETTLE_REQUEUE;
		s.delay_ms =
		        res->retry_after_ms > 0
		                ? res->retry_after_ms
		                : backoff_delay_ms(job->attempts,
		                                   cfg->workers_backoff_base_ms,
		                                   cfg->workers_backoff_cap_ms,
		                                   backoff_random());
		break;
	case JOB_FAIL:
		s.kind = SETTLE_DEAD;
		break;
	case JOB_DEFER:
		/* Not a failure: queued again, the attempt given back. */
		s.kind = SETTLE_RELEASE;
		s.delay_ms = res->retry_after_ms;
		break;
	}
	if (settle_run(w, &s) == -1)
		return -1;
	if (s.kind == SETTLE_DEAD)
		log_warn("job_dead",
		         "job=%llu kind=%s env=%llu attempts=%d "
		         "error=%s",
		         (unsigned long long)job->id, job->kind,
		         (unsigned long long)job->env_id, job->attempts,
		         log_q(s.error));
	else if (s.kind == SETTLE_REQUEUE)
		log_info("job_retry",
		         "job=%llu kind=%s attempt=%d "
		         "delay_ms=%lld error=%s",
		         (unsigned long long)job->id, job->kind, job->attempts,
		         (long long)s.delay_ms, log_q(s.error));
	return 0;
}

int
job_release(struct worker *w, const struct job *job)
{
	struct settle s = {w, job, NULL, SETTLE_RELEASE, 0, NULL, false, false};
	char why[192];

	snprintf(why, sizeof(why), "released at shutdown by %s", w->id);
	s.error = why;
	if (settle_run(w, &s) == -1)
		return -1;
	log_info("job_released", "job=%llu kind=%s",
	         (unsigned long long)job->id, job->kind);
	return 0;
}

int
job_rescue(struct worker *w, const struct job *job, const char *holder)
{
	struct settle s = {w, job, NULL, SETTLE_REQUEUE, 0, NULL, true, false};
	const struct config *cfg = w->cfg;
	char why[192];

	snprintf(why, sizeof(why),
	         "lease expired: worker %s stopped "
	         "heartbeating",
	         holder ? holder : "(unknown)");
	s.error = why;
	if (job->attempts >= job->max_attempts)
		s.kind = SETTLE_DEAD;
	else
		s.delay_ms = backoff_delay_ms(
		        job->attempts, cfg->workers_backoff_base_ms,
		        cfg->workers_backoff_cap_ms, backoff_random());
	if (db_tx(w->db, settle_tx, &s, 5) == -1)
		return -1;
	if (!s.matched) {
		log_info("rescue_skipped",
		         "job=%llu reason=\"settled or renewed "
		         "meanwhile\"",
		         (unsigned long long)job->id);
		return 0;
	}
	log_warn("job_rescued",
	         "job=%llu kind=%s attempt=%d state=%s "
	         "worker=%s",
	         (unsigned long long)job->id, job->kind, job->attempts,
	         s.kind == SETTLE_DEAD ? "dead" : "queued", log_q(holder));
	return 1;
}
