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
	return db_exec(
	        db,
	        "INSERT INTO env_runs (env_id, started_at, hourly_price) "
	        "SELECT ?, NOW(6), ? FROM DUAL WHERE NOT EXISTS (SELECT "
	        "1 FROM env_runs WHERE env_id = ? AND stopped_at IS "
	        "NULL)",
	        "udu", env_id, price, env_id);
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
