/*
 * github_run.c - runs one GitHub job handler once, the way a worker would,
 * and prints its result as one logfmt line. For the integration tests and
 * for operators debugging an App setup:
 *
 *   github_run -c CONF notify ENV_ID [ATTEMPT]
 *   github_run -c CONF command COMMAND_ID [ATTEMPT]
 *   github_run -c CONF clone-token INSTALLATION OWNER/REPO
 *
 * clone-token prints the token's length, never the token.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../workers/workers.h"

static void
usage(void)
{
	fprintf(stderr,
	        "usage: github_run -c CONF notify|command ID [ATTEMPT]\n"
	        "       github_run -c CONF clone-token INST REPO\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const char *const outcomes[] = {"done", "retry", "fail",
	                                       "defer"};
	struct config cfg;
	struct buf err = BUF_INIT, token = BUF_INIT;
	struct worker w;
	struct job job;
	struct job_result res;
	const char *path = NULL;
	uint64_t id = 0;
	int64_t attempt = 1;
	int ch, rc = 1;

	log_init("github_run", LOG_INFO);
	while ((ch = getopt(argc, argv, "c:")) != -1) {
		if (ch != 'c')
			usage();
		path = optarg;
	}
	argc -= optind;
	argv += optind;
	if (path == NULL || argc < 2 || parse_uint64(argv[1], &id) == -1)
		usage();
	if (argc > 2 && strcmp(argv[0], "clone-token") != 0 &&
	    parse_int64(argv[2], 1, 1000, &attempt) == -1)
		usage();
	if (config_load(&cfg, path, &err) == -1) {
		fprintf(stderr, "github_run: %s\n", buf_str(&err));
		buf_free(&err);
		return 1;
	}
	memset(&w, 0, sizeof(w));
	w.cfg = &cfg;
	/* No queue here: a lease that never runs out, so no heartbeat. */
	w.lease_local = 1e18;
	memset(&res, 0, sizeof(res));
	buf_init(&res.error, 4096);
	if (strcmp(argv[0], "clone-token") == 0) {
		if (argc < 3)
			usage();
		rc = github_clone_token(&cfg, id, argv[2], &token, &res);
		printf("outcome=%s token_len=%zu\n", rc == 0 ? "done" : "fail",
		       token.len);
		explicit_bzero(token.data ? token.data : "", 0);
		rc = rc == 0 ? 0 : 1;
		goto out;
	}
	w.db = db_open(&cfg);
	if (db_connect(w.db, 10) == -1)
		goto out;
	memset(&job, 0, sizeof(job));
	job.id = 1;
	job.attempts = (int)attempt;
	job.max_attempts = 5;
	if (strcmp(argv[0], "notify") == 0) {
		job.env_id = id;
		github_notify_job(&w, &job, &res);
	} else if (strcmp(argv[0], "command") == 0) {
		job.payload = argv[1];
		github_command_job(&w, &job, &res);
	} else {
		usage();
	}
	printf("outcome=%s retry_after_ms=%lld error=%s\n",
	       outcomes[res.outcome], (long long)res.retry_after_ms,
	       log_q(buf_str(&res.error)));
	rc = 0;
out:
	fflush(stdout);
	db_close(w.db);
	buf_free(&res.error);
	buf_free(&token);
	buf_free(&err);
	config_free(&cfg);
	return rc;
}
