/*
 * queue.c - the job queue in MariaDB. This file holds what both programs
 * need (enqueueing, from the fcgi-app's delivery transaction and from
 * workers); claiming and leases live with the workers.
 */
#include "ephemera.h"

int
queue_enqueue(struct db *db, const char *kind, uint64_t env_id,
              int64_t delay_ms, const char *payload, int max_attempts)
{
	/*
	 * env_id 0 means "no environment" (NULL). On a duplicate of the one
	 * queued reconcile, keep the earlier run_at: a nudge never delays.
	 */
	return db_exec(db,
	               "INSERT INTO jobs (kind, env_id, run_at, max_attempts, "
	               "payload) VALUES (?, NULLIF(?, 0), "
	               "NOW(6) + INTERVAL ? MICROSECOND, ?, ?) "
	               "ON DUPLICATE KEY UPDATE run_at = LEAST(run_at, "
	               "VALUES(run_at))",
	               "suiis", kind, env_id, delay_ms * 1000,
	               (int64_t)max_attempts, payload);
}
