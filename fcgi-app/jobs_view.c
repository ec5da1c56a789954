/*
 * jobs_view.c - queue health from the jobs table: counts by kind and
 * state, how long the oldest runnable job has waited, and the newest jobs
 * that recorded an error; each worker host's last heartbeat and the
 * running jobs with the worker (host:pid) that holds each. The payload and the lease token are never read:
 * neither belongs on a page.
 */
#include <stdlib.h>
#include <string.h>

#include "app.h"

static int
counts_load(struct db *db, struct jobs_view *v)
{
	struct db_rows *rows = NULL;
	size_t i;

	if (db_query(db, &rows,
	             "SELECT kind, state, COUNT(*) FROM jobs"
	             " GROUP BY kind, state ORDER BY kind, state",
	             "") == -1)
		return -1;
	v->ncounts = db_rows_count(rows);
	v->counts = xcalloc(v->ncounts ? v->ncounts : 1, sizeof(*v->counts));
	for (i = 0; i < v->ncounts; i++) {
		struct job_count *c = &v->counts[i];
		int64_t n = 0;

		c->kind = xstrdup(db_rows_get(rows, i, 0));
		c->state = xstrdup(db_rows_get(rows, i, 1));
		parse_int64(db_rows_get(rows, i, 2), 0, INT64_MAX, &n);
		c->n = n;
		if (strcmp(c->state, "queued") == 0)
			v->queued += n;
		else if (strcmp(c->state, "running") == 0)
			v->running += n;
		else if (strcmp(c->state, "done") == 0)
			v->done += n;
		else if (strcmp(c->state, "dead") == 0)
			v->dead += n;
		else if (strcmp(c->state, "cancelled") == 0)
			v->cancelled += n;
	}
	db_rows_free(rows);
	return 0;
}

static int
oldest_load(struct db *db, double now, struct jobs_view *v)
{
	struct db_rows *rows = NULL;
	const char *t;

	/* Runnable and waiting: queued with run_at already passed. */
	if (db_query(db, &rows,
	             "SELECT UNIX_TIMESTAMP(MIN(run_at)) FROM jobs"
	             " WHERE state = 'queued' AND run_at <= FROM_UNIXTIME(?)",
	             "d", now) == -1)
		return -1;
	t = db_rows_count(rows) ? db_rows_get(rows, 0, 0) : NULL;
	v->oldest_wait = t ? now - strtod(t, NULL) : -1;
	if (t && v->oldest_wait < 0)
		v->oldest_wait = 0;
	db_rows_free(rows);
	return 0;
}

static int
failures_load(struct db *db, struct jobs_view *v)
{
	struct db_rows *rows = NULL;
	size_t i, c;

	if (db_query(db, &rows,
	             "SELECT id, kind, env_id, state, attempts, max_attempts,"
	             " last_error, DATE_FORMAT(COALESCE(finished_at,"
	             " started_at, created_at), '%Y-%m-%dT%H:%i:%sZ')"
	             " FROM jobs WHERE last_error IS NOT NULL"
	             " ORDER BY id DESC LIMIT ?",
	             "i", (int64_t)JOBS_FAILURES_MAX) == -1)
		return -1;
	v->nfailures = db_rows_count(rows);
	v->failures =
	        xcalloc(v->nfailures ? v->nfailures : 1, sizeof(*v->failures));
	for (i = 0; i < v->nfailures; i++) {
		struct job_failure *f = &v->failures[i];
		char **dst[] = {&f->id,         &f->kind,     &f->env_id,
		                &f->state,      &f->attempts, &f->max_attempts,
		                &f->last_error, &f->at};

		for (c = 0; c < NELEM(dst); c++) {
			const char *s = db_rows_get(rows, i, c);

			*dst[c] = s ? xstrdup(s) : NULL;
		}
	}
	db_rows_free(rows);
	return 0;
}

/* Each worker host's last heartbeat, and which host runs what. */
static int
hosts_load(struct db *db, struct jobs_view *v)
{
	if (db_query(db, &v->hosts,
	             "SELECT h.name, h.workers, DATE_FORMAT(h.heartbeat_at,"
	             " '%Y-%m-%dT%H:%i:%sZ'), (SELECT COUNT(*) FROM jobs j"
	             " WHERE j.state = 'running' AND"
	             " SUBSTRING_INDEX(j.worker, ':', 1) = h.name)"
	             " FROM worker_hosts h ORDER BY h.name",
	             "") == -1)
		return -1;
	return db_query(db, &v->running_jobs,
	                "SELECT id, kind, env_id, worker, DATE_FORMAT("
	                "lease_until, '%Y-%m-%dT%H:%i:%sZ') FROM jobs"
	                " WHERE state = 'running' ORDER BY id LIMIT ?",
	                "i", (int64_t)JOBS_RUNNING_MAX);
}

int
jobs_view_load(struct db *db, double now, struct jobs_view *v)
{
	memset(v, 0, sizeof(*v));
	v->oldest_wait = -1;
	if (counts_load(db, v) == -1 || oldest_load(db, now, v) == -1 ||
	    failures_load(db, v) == -1 || hosts_load(db, v) == -1) {
		jobs_view_free(v);
		return -1;
	}
	return 0;
}

void
jobs_view_free(struct jobs_view *v)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < v->ncounts; i++)
		free(v->counts[i].kind), free(v->counts[i].state);
	for (i = 0; i < v->nfailures; i++) {
		struct job_failure *f = &v->failures[i];

		free(f->id), free(f->kind), free(f->env_id), free(f->state);
		free(f->attempts), free(f->max_attempts);
		free(f->last_error), free(f->at);
	}
	free(v->counts);
	free(v->failures);
	db_rows_free(v->hosts);
	db_rows_free(v->running_jobs);
	memset(v, 0, sizeof(*v));
}
