/*
 * main.c - ephemera-workers: the supervisor of the worker pool.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "workers.h"

static void
usage(void)
{
	fprintf(stderr, "usage: ephemera-workers [-t] [-c config]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct config cfg;
	struct buf err = BUF_INIT;
	const char *path = "config/example.conf";
	struct supervisor sv;
	struct pool pool = {&cfg, -1};
	char *pidfile = NULL, *wake = NULL;
	bool check = false;
	int ch, rc = 1;

	log_init("workers", LOG_INFO);
	while ((ch = getopt(argc, argv, "c:th")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 't':
			check = true;
			break;
		default:
			usage();
		}
	}
	if (config_load(&cfg, path, &err) == -1) {
		fprintf(stderr, "ephemera-workers: %s\n", buf_str(&err));
		goto out;
	}
	if (check) {
		printf("ephemera-workers: %s: configuration ok\n", path);
		rc = 0;
		goto out;
	}
	pidfile = config_var_path(&cfg, "run/workers.pid");
	/*
	 * Bound before the fork so every child inherits it. Without it the
	 * children still work, by polling (like workers on other hosts).
	 */
	wake = wake_socket_path(&cfg);
	pool.wake_fd = wakeup_bind(wake);
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
	buf_free(&err);
	config_free(&cfg);
	return rc;
}
