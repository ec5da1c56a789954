/*
 * prune.c - the recurring job that deletes old finished jobs, so the queue
 * table stays small. Dead jobs are kept: they are the visible record of a
 * failure until an operator retries or cancels them.
 */
#include "workers.h"

#define PRUNE_BATCH 1000

void
prune_run(struct worker *w, const struct job *job, struct job_result *res)
{
	uint64_t total = 0;

	for (;;) {
		if (db_exec(w->db,
		            "DELETE FROM jobs WHERE state IN ('done', "
		            "'cancelled') AND finished_at < NOW(6) - INTERVAL ? "
		            "HOUR LIMIT 1000",
		            "i", w->cfg->workers_keep_finished_hours) == -1) {
			res->outcome = JOB_RETRY;
			buf_puts(&res->error, "prune: database error");
			return;
		}
		total += db_affected(w->db);
		if (db_affected(w->db) < PRUNE_BATCH ||
		    job_heartbeat(w, job) == -1)
			break;
	}
	if (total > 0)
		log_info("jobs_pruned", "count=%llu",
		         (unsigned long long)total);
	res->outcome = JOB_DONE;
}
