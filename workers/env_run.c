/*
 * env_run.c - when an environment's compute runs, and at what price
 * (env_runs, migration 016): the PR comment, the status page and the
 * reports sum each run's hours times its own price, so cost accrues
 * while compute runs and a stopped preview costs nothing.
 */
#include "workers.h"

/*
 * Opens a run at `price` when none is open: a deploy begins and the
 * compute may start. A redeploy of a running environment keeps its run
 * (and its price).
 */
int
env_run_open(struct db *db, uint64_t env_id, double price)
{
	struct db_rows *r = NULL;
	bool open;

	/*
	 * A look, then a plain INSERT; not INSERT ... SELECT from env_runs,
	 * which holds the table's AUTO-INC lock while it reads: two deploys
	 * opening runs at once deadlocked on it (MariaDB 1467, "Failed to
	 * read auto-increment value", seen in CI). Only the environment's
	 * reconcile job opens its run, one job at a time, so the look
	 * cannot go stale before the insert.
	 */
	if (db_query(db, &r,
	             "SELECT 1 FROM env_runs WHERE env_id = ? AND "
	             "stopped_at IS NULL LIMIT 1",
	             "u", env_id) == -1)
		return -1;
	open = db_rows_count(r) > 0;
	db_rows_free(r);
	if (open)
		return 0;
	return db_exec(db,
	               "INSERT INTO env_runs (env_id, started_at, "
	               "hourly_price) VALUES (?, NOW(6), ?)",
	               "ud", env_id, price);
}

/*
 * The open run at the price of what actually runs: an ec2 run opens
 * before RunInstances has chosen among ec2.instance_types, and an
 * instance adopted after a worker died may be of any of them.
 */
int
env_run_reprice(struct db *db, uint64_t env_id, double price)
{
	return db_exec(db,
	               "UPDATE env_runs SET hourly_price = ? WHERE env_id = ? "
	               "AND stopped_at IS NULL",
	               "du", price, env_id);
}

/*
 * Closes the open run: the compute is down (a stop, a destroy or a hold).
 * Its hours and cost are added to the environment's totals in the same
 * statement (migration 020), so the status page reads them from the row,
 * however many runs there were, and a retried close adds nothing twice.
 */
int
env_run_close(struct db *db, uint64_t env_id)
{
	return db_exec(
	        db,
	        "UPDATE environments e JOIN env_runs r ON r.env_id = e.id AND "
	        "r.stopped_at IS NULL SET e.runs_seconds = e.runs_seconds + "
	        "GREATEST(0, TIMESTAMPDIFF(MICROSECOND, r.started_at, NOW(6)))"
	        " / 1e6, e.runs_cost = e.runs_cost + GREATEST(0, "
	        "TIMESTAMPDIFF(MICROSECOND, r.started_at, NOW(6))) / 3.6e9 * "
	        "r.hourly_price, e.updated_at = e.updated_at, r.stopped_at = "
	        "NOW(6) WHERE e.id = ?",
	        "u", env_id);
}
