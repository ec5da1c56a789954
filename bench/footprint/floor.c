/*
 * bench/footprint/floor.c - the least the workers can weigh on this stack.
 * Like bin/ephemera-workers it links the workers' libraries and forks N
 * children that wait; bench/footprint reads this tree's memory beside
 * the real one's. Where MariaDB Connector/C (and with it OpenSSL) is
 * initialised, as every worker holding a connection has it:
 *
 *   floor none N     nowhere: the libraries loaded, nothing called
 *   floor child N    in each child, as the workers did before
 *                    db_library_init
 *   floor parent N   once, in the parent before the forks, as the
 *                    workers' supervisor does now
 *
 * No connection is opened and nothing else is set up, so real workers
 * are never below these figures. It prints "ready" once every child is
 * set up, and ends on SIGTERM.
 */
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int
library_init(void)
{
	if (mysql_library_init(0, NULL, NULL) != 0 ||
	    mysql_init(NULL) == NULL) {
		fprintf(stderr, "floor: mysql_init failed\n");
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	const char *where = argc > 1 ? argv[1] : "none";
	long n = argc > 2 ? strtol(argv[2], NULL, 10) : 8;
	pid_t pids[64];
	int ready[2];
	sigset_t set;
	char c;
	int sig;

	/* Blocked before the forks, so the children inherit it. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (n < 1 || n > 64 || pipe(ready) == -1)
		return 1;
	if (strcmp(where, "parent") == 0 && library_init() == -1)
		return 1;
	for (long i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid == -1)
			return 1;
		pids[i] = pid;
		if (pid == 0) {
			close(ready[0]);
			if (strcmp(where, "none") != 0 && library_init() == -1)
				_exit(1);
			if (write(ready[1], "r", 1) != 1)
				_exit(1);
			sigwait(&set, &sig);
			_exit(0);
		}
	}
	close(ready[1]);
	for (long i = 0; i < n; i++)
		if (read(ready[0], &c, 1) != 1)
			return 1;
	printf("ready\n");
	fflush(stdout);
	sigwait(&set, &sig);
	for (long i = 0; i < n; i++)
		kill(pids[i], SIGTERM);
	while (wait(NULL) > 0)
		;
	return 0;
}
