/*
 * build_list.c - an environment's newest builds with their steps, for
 * /env/<id> and its JSON. Two queries: the builds, then every step of
 * those builds in (build, id) order, matched up in one pass.
 */
#include <stdlib.h>
#include <string.h>

#include "app.h"

static double
epoch(const char *v)
{
	return v ? strtod(v, NULL) : -1;
}

static char *
dup_or_null(const char *v)
{
	return v ? xstrdup(v) : NULL;
}

static void
steps_take(struct build_list *l, const struct db_rows *rows)
{
	size_t i, n = db_rows_count(rows), b = 0;

	for (i = 0; i < n; i++) {
		const char *bid = db_rows_get(rows, i, 0);
		struct build_view *v;
		struct step_view *s;

		/* Builds are newest first; look the build up by id. */
		for (b = 0; b < l->n && strcmp(l->items[b].id, bid) != 0; b++)
			;
		if (b == l->n)
			continue;
		v = &l->items[b];
		v->steps =
		        xrealloc(v->steps, (v->nsteps + 1) * sizeof(*v->steps));
		s = &v->steps[v->nsteps++];
		s->name = dup_or_null(db_rows_get(rows, i, 1));
		s->status = dup_or_null(db_rows_get(rows, i, 2));
		s->detail = dup_or_null(db_rows_get(rows, i, 3));
		s->started_at = dup_or_null(db_rows_get(rows, i, 4));
		s->finished_at = dup_or_null(db_rows_get(rows, i, 5));
		s->started = epoch(db_rows_get(rows, i, 6));
		s->finished = epoch(db_rows_get(rows, i, 7));
	}
}

int
build_list_load(struct db *db, uint64_t env_id, struct build_list *l)
{
	struct db_rows *rows = NULL;
	size_t i;
	int rc = -1;

	memset(l, 0, sizeof(*l));
	if (db_query(db, &rows,
	             "SELECT id, sha, status, error, log_tail,"
	             " DATE_FORMAT(started_at, '%Y-%m-%dT%H:%i:%sZ'),"
	             " DATE_FORMAT(finished_at, '%Y-%m-%dT%H:%i:%sZ'),"
	             " UNIX_TIMESTAMP(started_at), UNIX_TIMESTAMP(finished_at)"
	             " FROM builds WHERE env_id = ? ORDER BY id DESC LIMIT ?",
	             "ui", env_id, (int64_t)BUILD_LIST_MAX) == -1)
		goto out;
	l->n = db_rows_count(rows);
	l->items = xcalloc(l->n ? l->n : 1, sizeof(*l->items));
	for (i = 0; i < l->n; i++) {
		struct build_view *v = &l->items[i];

		v->id = dup_or_null(db_rows_get(rows, i, 0));
		v->sha = dup_or_null(db_rows_get(rows, i, 1));
		v->status = dup_or_null(db_rows_get(rows, i, 2));
		v->error = dup_or_null(db_rows_get(rows, i, 3));
		v->log_tail = dup_or_null(db_rows_get(rows, i, 4));
		v->started_at = dup_or_null(db_rows_get(rows, i, 5));
		v->finished_at = dup_or_null(db_rows_get(rows, i, 6));
		v->started = epoch(db_rows_get(rows, i, 7));
		v->finished = epoch(db_rows_get(rows, i, 8));
	}
	db_rows_free(rows);
	rows = NULL;
	if (l->n == 0) {
		rc = 0;
		goto out;
	}
	if (db_query(db, &rows,
	             "SELECT s.build_id, s.name, s.status, s.detail,"
	             " DATE_FORMAT(s.started_at, '%Y-%m-%dT%H:%i:%sZ'),"
	             " DATE_FORMAT(s.finished_at, '%Y-%m-%dT%H:%i:%sZ'),"
	             " UNIX_TIMESTAMP(s.started_at),"
	             " UNIX_TIMESTAMP(s.finished_at)"
	             " FROM build_steps s JOIN (SELECT id FROM builds"
	             " WHERE env_id = ? ORDER BY id DESC LIMIT ?) b"
	             " ON b.id = s.build_id ORDER BY s.build_id, s.id",
	             "ui", env_id, (int64_t)BUILD_LIST_MAX) == -1)
		goto out;
	steps_take(l, rows);
	rc = 0;
out:
	db_rows_free(rows);
	if (rc == -1)
		build_list_free(l);
	return rc;
}

void
build_list_free(struct build_list *l)
{
	size_t i, j;

	if (l == NULL)
		return;
	for (i = 0; i < l->n; i++) {
		struct build_view *v = &l->items[i];

		for (j = 0; j < v->nsteps; j++) {
			struct step_view *s = &v->steps[j];

			free(s->name), free(s->status), free(s->detail);
			free(s->started_at), free(s->finished_at);
		}
		free(v->steps);
		free(v->id), free(v->sha), free(v->status), free(v->error);
		free(v->log_tail), free(v->started_at), free(v->finished_at);
	}
	free(l->items);
	memset(l, 0, sizeof(*l));
}
