/*
 * child.c - one worker process: connects to the database and runs until
 * the supervisor asks it to stop. The queue (claiming and running jobs)
 * plugs in here.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include "workers.h"

int
worker_child_main(int slot, void *arg)
{
	struct worker w = {arg, NULL, slot, 0};

	w.db = db_open(w.cfg);
	if (db_connect(w.db, (double)w.cfg->db_connect_timeout) == -1) {
		db_close(w.db);
		return 1;
	}
	log_info("worker_ready", "slot=%d", slot);
	while (!supervisor_stopping())
		poll(NULL, 0, (int)w.cfg->workers_poll_interval_ms);
	log_info("worker_exit", "slot=%d jobs=%lu", slot, w.jobs_done);
	db_close(w.db);
	return 0;
}
