/*
 * github_pace.c - spacing of content-creating requests (POST, PATCH, PUT,
 * DELETE) per App installation, as GitHub's best practices for secondary
 * rate limits ask: about one a second. The schedule is one row per
 * installation (012 github_pace) holding the theoretical arrival time of
 * the next request (GCRA): a request may go while that time is no more
 * than the burst allowance ahead of now, and moves it one interval on.
 *
 * A single PR's handful of writes fits in the burst, so one PR changing is
 * told at once; many PRs changing together are spaced. A run that finds no
 * room does not wait: its job is rescheduled by the queue for the moment
 * there is room (JOB_DEFER, no attempt counted), so no worker sleeps and
 * other installations are not held up.
 */
#include <string.h>

#include "../workers.h"

bool
github_pace_method(const char *method)
{
	return strcmp(method, "POST") == 0 || strcmp(method, "PATCH") == 0 ||
	       strcmp(method, "PUT") == 0 || strcmp(method, "DELETE") == 0;
}

int
github_pace_take(const struct config *cfg, struct db *db, uint64_t inst,
                 int64_t *wait_ms)
{
	struct db_rows *r = NULL;
	const int64_t step = cfg->github_write_spacing_ms * 1000;
	const int64_t tau = (cfg->github_write_burst - 1) * step;
	int64_t us = 0;
	int rc = -1;

	*wait_ms = 0;
	if (step == 0)
		return 0;
	if (db_exec(db,
	            "INSERT IGNORE INTO github_pace (installation_id) "
	            "VALUES (?)",
	            "u", inst) == -1)
		return -1;
	/* One statement: two workers never take the same slot. */
	if (db_exec(db,
	            "UPDATE github_pace SET tat = GREATEST(tat, NOW(6)) + "
	            "INTERVAL ? MICROSECOND WHERE installation_id = ? AND "
	            "tat <= NOW(6) + INTERVAL ? MICROSECOND",
	            "iui", step, inst, tau) == -1)
		return -1;
	if (db_affected(db) == 1)
		return 0;
	if (db_query(db, &r,
	             "SELECT TIMESTAMPDIFF(MICROSECOND, NOW(6), tat - "
	             "INTERVAL ? MICROSECOND) FROM github_pace WHERE "
	             "installation_id = ?",
	             "iu", tau, inst) == -1)
		goto out;
	if (db_rows_count(r) == 1 && db_rows_get(r, 0, 0) != NULL)
		parse_int64(db_rows_get(r, 0, 0), INT64_MIN, INT64_MAX, &us);
	/* A little past the moment, so the retry finds room. */
	*wait_ms = (us > 0 ? us / 1000 : 0) + 20;
	rc = 0;
out:
	db_rows_free(r);
	return rc;
}
