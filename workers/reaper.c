/*
 * reaper.c - the housekeeping pass, run by whichever worker holds the
 * `reaper` lease (lease.c): rescue jobs whose lease expired and enqueue
 * recurring jobs when their period comes round. Every worker calls
 * reaper_tick between jobs, so leadership moves on by itself when the
 * leader dies or is stuck in a long job.
 *
 * Rescue is safe to run twice or concurrently (each rescue is fenced on
 * the job's token and expiry), so the lease is about not wasting work and
 * about recurring jobs being enqueued once per period, not about safety.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workers.h"

struct reaper {
	uint64_t term;
	double next_at;
};

/* Jobs enqueued by the leader every `period` (from the config). */
struct recurring {
	const char *kind;
	size_t period_offset; /* seconds, an int64_t in struct config */
};

static const struct recurring recurring[] = {
        {"prune", offsetof(struct config, workers_prune_interval_seconds)},
        {"sweep", offsetof(struct config, workers_sweep_interval_seconds)},
};

struct reaper *
reaper_new(void)
{
	return xcalloc(1, sizeof(struct reaper));
}

void
reaper_free(struct reaper *r)
{
	free(r);
}

static int64_t
lease_ms(const struct worker *w)
{
	return w->cfg->workers_lease_seconds * 1000;
}

/*
 * A job whose lease ran out while the database itself was down was not
 * abandoned: its worker could not heartbeat. After a server restart, give
 * every worker two lease lengths to reconnect and settle before rescuing.
 */
static bool
db_recently_started(struct worker *w)
{
	struct db_rows *r = NULL;
	int64_t up = INT64_MAX;
	bool recent;

	if (db_query(w->db, &r,
	             "SELECT VARIABLE_VALUE FROM "
	             "information_schema.GLOBAL_STATUS WHERE "
	             "VARIABLE_NAME = 'UPTIME'",
	             "") == 0 &&
	    db_rows_get(r, 0, 0) != NULL)
		parse_int64(db_rows_get(r, 0, 0), 0, INT64_MAX, &up);
	db_rows_free(r);
	recent = up < 2 * w->cfg->workers_lease_seconds;
	if (recent)
		log_debug("rescue_wait", "db_uptime=%lld", (long long)up);
	return recent;
}

static int
rescue_row(struct worker *w, const struct db_rows *r, size_t i,
           const char *token_override)
{
	struct job job;
	int64_t v;
	const char *kind = db_rows_get(r, i, 2), *env = db_rows_get(r, i, 3);
	const char *token =
	        token_override ? token_override : db_rows_get(r, i, 1);

	memset(&job, 0, sizeof(job));
	if (parse_uint64(db_rows_get(r, i, 0), &job.id) == -1 ||
	    token == NULL || strlen(token) != 32 ||
	    strlen(kind) >= sizeof(job.kind) ||
	    (env != NULL && parse_uint64(env, &job.env_id) == -1))
		return -1;
	memcpy(job.kind, kind, strlen(kind) + 1);
	memcpy(job.lease_token, token, 33);
	if (parse_int64(db_rows_get(r, i, 4), 0, INT32_MAX, &v) == -1)
		return -1;
	job.attempts = (int)v;
	if (parse_int64(db_rows_get(r, i, 5), 0, INT32_MAX, &v) == -1)
		return -1;
	job.max_attempts = (int)v;
	return job_rescue(w, &job, db_rows_get(r, i, 6));
}

#define RESCUE_COLUMNS                                                         \
	"SELECT id, lease_token, kind, env_id, attempts, max_attempts, "       \
	"worker FROM jobs "

int
reaper_rescue(struct worker *w, uint64_t id, const char *token)
{
	struct db_rows *r = NULL;
	int rc = -1;

	if (db_query(w->db, &r, RESCUE_COLUMNS "WHERE id = ?", "u", id) == 0 &&
	    db_rows_count(r) == 1)
		rc = rescue_row(w, r, 0, token);
	db_rows_free(r);
	return rc;
}

static int
rescue_expired(struct worker *w)
{
	struct db_rows *r = NULL;
	size_t i;
	int n = 0;

	if (db_query(w->db, &r,
	             RESCUE_COLUMNS "WHERE state = 'running' AND "
	                            "lease_until < NOW(6) ORDER BY "
	                            "lease_until LIMIT 100",
	             "") == -1)
		return -1;
	for (i = 0; i < db_rows_count(r); i++)
		if (rescue_row(w, r, i, NULL) == 1)
			n++;
	db_rows_free(r);
	return n;
}

/*
 * One recurring job: enqueued when its lease (its period) has run out, unless
 * one of its kind still waits in the queue. When the workers are all busy
 * (a burst of deploys), each period would otherwise add another, and the
 * workers would then run every one of them back to back: a sweep looks at
 * each idle-looking preview, on ec2 by a Run Command, which is worker time
 * the deploys waiting behind it do not get.
 */
struct recur_tx {
	const struct recurring *rec;
	const struct worker *w;
	bool due;
};

static int
recur_tx(struct db *db, void *arg)
{
	struct recur_tx *t = arg;
	const struct config *cfg = t->w->cfg;
	int64_t period =
	        *(const int64_t *)((const char *)cfg + t->rec->period_offset);
	char name[64];
	uint64_t term = 0;
	struct db_rows *r = NULL;
	bool waiting;
	int held;

	snprintf(name, sizeof(name), "recurring:%s", t->rec->kind);
	t->due = false;
	held = lease_hold(db, name, t->w->id, period * 1000, &term);
	if (held != 1)
		return held == 0 ? 0 : -1;
	if (db_query(db, &r,
	             "SELECT 1 FROM jobs WHERE kind = ? AND env_id IS NULL AND "
	             "state = 'queued' LIMIT 1",
	             "s", t->rec->kind) == -1)
		return -1;
	waiting = db_rows_count(r) > 0;
	db_rows_free(r);
	if (waiting)
		return 0;
	t->due = true;
	return queue_enqueue(db, t->rec->kind, 0, 0, NULL,
	                     (int)cfg->workers_max_attempts);
}

static void
recurring_enqueue(struct worker *w)
{
	size_t i;

	for (i = 0; i < NELEM(recurring); i++) {
		struct recur_tx t = {&recurring[i], w, false};

		if (db_tx(w->db, recur_tx, &t, 3) == 0 && t.due) {
			log_info("recurring_enqueued", "kind=%s",
			         recurring[i].kind);
			wake_notify(w->cfg);
		}
	}
}

int
reaper_pass(struct worker *w)
{
	int n;

	recurring_enqueue(w);
	if (db_recently_started(w))
		return 0;
	n = rescue_expired(w);
	if (n > 0)
		log_info("reaper_rescued", "jobs=%d", n);
	return n;
}

int64_t
reaper_due_ms(const struct worker *w)
{
	double left = w->reaper->next_at - now_mono();

	return left <= 0 ? 0 : (int64_t)(left * 1000.0) + 1;
}

void
reaper_tick(struct worker *w)
{
	struct reaper *r = w->reaper;
	uint64_t before = r->term;
	int held;

	if (now_mono() < r->next_at)
		return;
	/* Three renewals per lease: a missed tick does not lose it. */
	r->next_at = now_mono() + (double)lease_ms(w) / 3000.0;
	held = lease_hold(w->db, "reaper", w->id, lease_ms(w), &r->term);
	if (held == 1 && r->term != before)
		log_info("reaper_leader", "term=%llu holder=%s",
		         (unsigned long long)r->term, log_q(w->id));
	else if (held != 1 && before != 0)
		log_info("reaper_follower", "term=%llu",
		         (unsigned long long)before);
	if (held == 1)
		reaper_pass(w);
}

void
reaper_stop(struct worker *w)
{
	if (w->reaper == NULL || w->reaper->term == 0)
		return;
	if (lease_release(w->db, "reaper", w->id, w->reaper->term) == 0)
		log_info("reaper_released", "term=%llu",
		         (unsigned long long)w->reaper->term);
	w->reaper->term = 0;
}
