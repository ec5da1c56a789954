/*
 * env.c - loading and updating an environment row. Only the columns the
 * reconcile engine needs; the webhook side owns the desired-state columns
 * and this side owns phase, deployed_sha, attempted_sha, url and error.
 */
#include <stdlib.h>
#include <string.h>

#include "workers.h"

static char *
dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

int
env_load(struct db *db, uint64_t id, struct env *e)
{
	struct db_rows *r = NULL;
	int rc = -1;

	memset(e, 0, sizeof(*e));
	if (db_query(db, &r,
	             "SELECT id, repo, pr, slug, desired, desired_sha, phase, "
	             "deployed_sha, attempted_sha, clone_url, url, "
	             "installation_id, trusted, " ENV_IDLE_STOPPED
	             " FROM environments WHERE id = ?",
	             "u", id) == -1)
		return -1;
	if (db_rows_count(r) == 0) {
		rc = 1;
		goto out;
	}
	parse_uint64(db_rows_get(r, 0, 0), &e->id);
	e->repo = dup_or_null(db_rows_get(r, 0, 1));
	parse_uint64(db_rows_get(r, 0, 2), &e->pr);
	e->slug = dup_or_null(db_rows_get(r, 0, 3));
	e->desired = dup_or_null(db_rows_get(r, 0, 4));
	e->desired_sha = dup_or_null(db_rows_get(r, 0, 5));
	e->phase = dup_or_null(db_rows_get(r, 0, 6));
	e->deployed_sha = dup_or_null(db_rows_get(r, 0, 7));
	e->attempted_sha = dup_or_null(db_rows_get(r, 0, 8));
	e->clone_url = dup_or_null(db_rows_get(r, 0, 9));
	e->url = dup_or_null(db_rows_get(r, 0, 10));
	if (db_rows_get(r, 0, 11))
		parse_uint64(db_rows_get(r, 0, 11), &e->installation_id);
	e->trusted = db_rows_get(r, 0, 12) && db_rows_get(r, 0, 12)[0] == '1';
	e->idle_stopped =
	        db_rows_get(r, 0, 13) && db_rows_get(r, 0, 13)[0] == '1';
	rc = 0;
out:
	db_rows_free(r);
	return rc;
}

void
env_free(struct env *e)
{
	if (e == NULL)
		return;
	free(e->repo), free(e->slug), free(e->desired), free(e->desired_sha);
	free(e->phase), free(e->deployed_sha), free(e->attempted_sha);
	free(e->clone_url), free(e->url);
	memset(e, 0, sizeof(*e));
}

int
env_phase_set(struct db *db, uint64_t id, const char *phase, const char *error)
{
	return db_exec(db,
	               "UPDATE environments SET phase = ?, error = ? "
	               "WHERE id = ?",
	               "ssu", phase, error, id);
}
