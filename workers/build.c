/*
 * build.c - every deploy attempt is a builds row, every step of it a
 * build_steps row with its start, end and outcome: the record of where the
 * time went, shown on the status page and in the PR comment.
 */
#include <stdio.h>
#include <string.h>

#include "workers.h"

/*
 * Resumes the running build of this commit (a worker died mid-deploy and
 * another took over), or starts one; a running build of another commit
 * was overtaken by a push and is marked cancelled.
 */
int
build_begin(struct db *db, uint64_t env_id, const char *sha, struct build *b)
{
	struct db_rows *r = NULL;
	int rc = -1;

	memset(b, 0, sizeof(*b));
	if (db_exec(db,
	            "UPDATE builds SET status = 'cancelled', finished_at = "
	            "NOW(6), error = 'superseded by a newer commit' "
	            "WHERE env_id = ? AND status = 'running' AND sha <> ?",
	            "us", env_id, sha) == -1)
		return -1;
	if (db_query(db, &r,
	             "SELECT id FROM builds WHERE env_id = ? AND sha = ? AND "
	             "status = 'running' ORDER BY id DESC LIMIT 1",
	             "us", env_id, sha) == -1)
		return -1;
	if (db_rows_count(r) > 0) {
		parse_uint64(db_rows_get(r, 0, 0), &b->id);
		/* Steps left open by the dead worker end as failed. */
		rc = db_exec(db,
		             "UPDATE build_steps SET status = 'failed', "
		             "finished_at = NOW(6), detail = 'worker lost' "
		             "WHERE build_id = ? AND status = 'running'",
		             "u", b->id);
		goto out;
	}
	if (db_exec(db, "INSERT INTO builds (env_id, sha) VALUES (?, ?)", "us",
	            env_id, sha) == -1)
		goto out;
	b->id = db_insert_id(db);
	rc = 0;
out:
	db_rows_free(r);
	return rc;
}

int
build_step_begin(struct db *db, struct build *b, const char *name)
{
	if (db_exec(db,
	            "INSERT INTO build_steps (build_id, name) VALUES (?, ?)",
	            "us", b->id, name) == -1)
		return -1;
	b->step_id = db_insert_id(db);
	b->step_started = now_mono();
	return 0;
}

int
build_step_end(struct db *db, struct build *b, bool ok, const char *detail)
{
	return db_exec(db,
	               "UPDATE build_steps SET status = ?, finished_at = "
	               "NOW(6), detail = ? WHERE id = ?",
	               "ssu", ok ? "succeeded" : "failed", detail, b->step_id);
}

int
build_end(struct db *db, struct build *b, const char *status, const char *error,
          const char *log_tail)
{
	return db_exec(
	        db,
	        "UPDATE builds SET status = ?, error = ?, log_tail = "
	        "COALESCE(?, log_tail), finished_at = NOW(6) WHERE id = ?",
	        "sssu", status, error, log_tail, b->id);
}
