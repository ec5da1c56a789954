/*
 * workers.h - the worker program's private header, sectioned by file.
 */
#ifndef EPHEMERA_WORKERS_H
#define EPHEMERA_WORKERS_H

#include "../lib/ephemera.h"

/* ---- child.c: one worker process -------------------------------------- */

struct worker {
	struct config *cfg;
	struct db *db;
	int slot;
	unsigned long jobs_done;
};

int worker_child_main(int slot, void *cfg);

#endif
