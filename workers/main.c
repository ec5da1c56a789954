/*
 * main.c - ephemera-workers: the supervisor of the worker pool.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "workers.h"

int
main(int argc, char **argv)
{
	struct config cfg;
	struct supervisor sv;
	struct pool pool = {&cfg, -1};
	char *pidfile = NULL, *wake = NULL;
	int rc;

	if (program_start("ephemera-workers", argc, argv, &cfg, &rc) != 0)
		goto out;
	/* Without an identity the sweep could not tell our Docker objects
	 * from another installation's: refuse rather than guess. */
	if (cfg.env_instance[0] == '\0') {
		log_error("config", "reason=%s",
		          log_q("environments.instance is not set and "
		                "<var_dir>/instance does not exist (make run "
		                "and scripts/stack.sh up generate it)"));
		rc = 1;
		goto out;
	}
	pidfile = config_var_path(&cfg, "run/workers.pid");
	/*
	 * Bound before the fork so every child inherits it. Without it the
	 * children still work, by polling (like workers on other hosts).
	 */
	wake = wake_socket_path(&cfg);
	pool.wake_fd = wakeup_bind(wake);
	/*
	 * Done once here rather than in each child's first connection, so
	 * the eight children share what it sets up (OpenSSL's tables and
	 * heap) instead of each holding a copy: bench/footprint's idle RSS.
	 */
	db_library_init();
	memset(&sv, 0, sizeof(sv));
	sv.name = "workers";
	sv.children = (int)cfg.workers_count;
	sv.shutdown_timeout = (double)cfg.workers_shutdown_timeout;
	sv.pidfile = pidfile;
	sv.child_main = worker_child_main;
	sv.arg = &pool;
	rc = supervisor_run(&sv);
	if (pool.wake_fd != -1) {
		close(pool.wake_fd);
		unlink(wake);
	}
out:
	free(wake);
	free(pidfile);
	config_free(&cfg);
	return rc;
}
