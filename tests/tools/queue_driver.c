/*
 * queue_driver.c - drives the worker library's queue functions one step
 * at a time against a real database, for tests/integration/test_queue.py:
 * the interleavings a test must force (a stale worker settling after a
 * rescue, a reaper acting on a row it read before the worker finished,
 * injected deadlocks) cannot be produced by timing real workers alone.
 *
 *   queue_driver -c CONF claim                    → "ID TOKEN ATTEMPT" | "none"
 *   queue_driver -c CONF settle ID TOKEN done|retry|fail
 *   queue_driver -c CONF release ID TOKEN
 *   queue_driver -c CONF heartbeat ID TOKEN
 *   queue_driver -c CONF rescue ID TOKEN          → "rescued" | "skipped"
 *   queue_driver -c CONF lease NAME HOLDER MS [TERM] → "held TERM" | "free"
 *   queue_driver -c CONF reap                     → one reaper pass
 *   queue_driver -c CONF run N ISOLATION INJECT   → claim/run/settle N jobs
 *   queue_driver -c CONF insert N ISOLATION       → enqueue N noop jobs
 *   queue_driver -c CONF enqueue KIND ENV DELAY_MS PAYLOAD [ERRNO N]
 *                                  (then nudges; ERRNO N: the first N
 *                                  statements fail with that error)
 *
 * settle/release/heartbeat print "ok" or "lost" (exit status 3).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../workers/workers.h"

static int
job_load(struct db *db, const char *id, const char *token, struct job *job)
{
	struct db_rows *r = NULL;
	int64_t v;
	int rc = -1;

	memset(job, 0, sizeof(*job));
	if (parse_uint64(id, &job->id) == -1 || strlen(token) != 32)
		return -1;
	memcpy(job->lease_token, token, 33);
	if (db_query(db, &r,
	             "SELECT kind, IFNULL(env_id, 0), attempts, max_attempts "
	             "FROM jobs WHERE id = ?",
	             "u", job->id) == -1 ||
	    db_rows_count(r) != 1)
		goto out;
	snprintf(job->kind, sizeof(job->kind), "%s", db_rows_get(r, 0, 0));
	parse_uint64(db_rows_get(r, 0, 1), &job->env_id);
	parse_int64(db_rows_get(r, 0, 2), 0, INT32_MAX, &v);
	job->attempts = (int)v;
	parse_int64(db_rows_get(r, 0, 3), 0, INT32_MAX, &v);
	job->max_attempts = (int)v;
	rc = 0;
out:
	db_rows_free(r);
	return rc;
}

static int
isolation_set(struct db *db, const char *iso)
{
	if (strcmp(iso, "rc") == 0)
		return db_raw(db, "SET SESSION TRANSACTION ISOLATION LEVEL "
		                  "READ COMMITTED");
	if (strcmp(iso, "rr") == 0)
		return db_raw(db, "SET SESSION TRANSACTION ISOLATION LEVEL "
		                  "REPEATABLE READ");
	return 0;
}

static const unsigned inject_codes[] = {1213, 1205, 1020};

/* Claims and runs jobs like a worker, injecting retryable errors. */
static int
cmd_run(struct worker *w, long n, const char *iso, bool inject)
{
	long ran = 0, claim_errors = 0, settle_errors = 0, injected = 0;
	double idle_since = now_mono();
	struct job job;
	int64_t next;

	memset(&job, 0, sizeof(job));
	if (isolation_set(w->db, iso) == -1)
		return 1;
	while (ran < n && now_mono() - idle_since < 2.0) {
		struct job_result res = {.outcome = JOB_DONE,
		                         .error = BUF_INIT};
		enum claim_result c;

		if (inject && random() % 3 == 0) {
			db_inject_error(w->db, inject_codes[random() % 3],
			                1 + (int)(random() % 3));
			injected++;
		}
		c = job_claim(w, &job, &next);
		db_inject_error(w->db, 0, 0);
		if (c == CLAIM_ERROR)
			claim_errors++;
		if (c != CLAIM_OK) {
			usleep(2000);
			continue;
		}
		idle_since = now_mono();
		dispatch_run(w, &job, &res);
		if (inject && random() % 3 == 0) {
			db_inject_error(w->db, inject_codes[random() % 3],
			                1 + (int)(random() % 2));
			injected++;
		}
		if (job_settle(w, &job, &res) == -1)
			settle_errors++;
		db_inject_error(w->db, 0, 0);
		buf_free(&res.error);
		job_clear(&job);
		ran++;
	}
	printf("ran=%ld claim_errors=%ld settle_errors=%ld injected=%ld\n", ran,
	       claim_errors, settle_errors, injected);
	return claim_errors || settle_errors ? 1 : 0;
}

struct insert_tx {
	int batch;
};

static int
insert_tx(struct db *db, void *arg)
{
	struct insert_tx *t = arg;
	int i;

	for (i = 0; i < t->batch; i++)
		if (queue_enqueue(db, "noop", 0, 0, "{\"tag\":\"insert\"}",
		                  5) == -1)
			return -1;
	return 0;
}

static int
cmd_insert(struct worker *w, long n, const char *iso)
{
	struct insert_tx t = {5};
	long done = 0, errors = 0;

	if (isolation_set(w->db, iso) == -1)
		return 1;
	while (done < n) {
		if (db_tx(w->db, insert_tx, &t, 10) == -1) {
			errors++;
			continue;
		}
		done += t.batch;
		wake_notify(w->cfg);
	}
	printf("inserted=%ld errors=%ld\n", done, errors);
	return errors ? 1 : 0;
}

static int
cmd_step(struct worker *w, int argc, char **argv)
{
	struct job job;
	int64_t next;
	int rc;

	if (strcmp(argv[0], "claim") == 0) {
		memset(&job, 0, sizeof(job));
		if (job_claim(w, &job, &next) != CLAIM_OK) {
			puts("none");
			return 0;
		}
		printf("%llu %s %d\n", (unsigned long long)job.id,
		       job.lease_token, job.attempts);
		job_clear(&job);
		return 0;
	}
	if (argc < 3 || job_load(w->db, argv[1], argv[2], &job) == -1) {
		fprintf(stderr, "queue_driver: no such job\n");
		return 2;
	}
	if (strcmp(argv[0], "settle") == 0 && argc == 4) {
		struct job_result res = {.outcome = JOB_DONE,
		                         .error = BUF_INIT};

		if (strcmp(argv[3], "retry") == 0)
			res.outcome = JOB_RETRY;
		else if (strcmp(argv[3], "fail") == 0)
			res.outcome = JOB_FAIL;
		buf_puts(&res.error, "from queue_driver");
		rc = job_settle(w, &job, &res);
		buf_free(&res.error);
	} else if (strcmp(argv[0], "run") == 0) {
		/* The handler runs and settles as this holder (noop records). */
		struct job_result res = {.outcome = JOB_DONE,
		                         .error = BUF_INIT};

		dispatch_run(w, &job, &res);
		rc = job_settle(w, &job, &res);
		buf_free(&res.error);
	} else if (strcmp(argv[0], "release") == 0) {
		rc = job_release(w, &job);
	} else if (strcmp(argv[0], "heartbeat") == 0) {
		rc = job_heartbeat(w, &job);
	} else if (strcmp(argv[0], "rescue") == 0) {
		rc = reaper_rescue(w, job.id, job.lease_token);
		puts(rc == 1 ? "rescued" : rc == 0 ? "skipped" : "error");
		return rc == -1 ? 1 : 0;
	} else {
		return 2;
	}
	puts(rc == 0 ? "ok" : "lost");
	return rc == 0 ? 0 : 3;
}

int
main(int argc, char **argv)
{
	struct config cfg;
	struct buf err = BUF_INIT;
	struct worker w;
	int rc = 2;

	log_init("queue_driver", LOG_WARN);
	if (argc < 4 || strcmp(argv[1], "-c") != 0)
		return 2;
	if (config_load(&cfg, argv[2], &err) == -1) {
		fprintf(stderr, "queue_driver: %s\n", buf_str(&err));
		buf_free(&err);
		return 2;
	}
	log_set_level(LOG_WARN);
	srandom((unsigned)getpid());
	memset(&w, 0, sizeof(w));
	w.cfg = &cfg;
	w.wake_fd = -1;
	snprintf(w.id, sizeof(w.id), "driver:%ld", (long)getpid());
	w.reaper = reaper_new();
	w.db = db_open(&cfg);
	if (db_connect(w.db, 10) == -1)
		goto out;
	argc -= 3;
	argv += 3;
	if (strcmp(argv[0], "run") == 0 && argc == 4)
		rc = cmd_run(&w, strtol(argv[1], NULL, 10), argv[2],
		             strcmp(argv[3], "inject") == 0);
	else if (strcmp(argv[0], "insert") == 0 && argc == 3)
		rc = cmd_insert(&w, strtol(argv[1], NULL, 10), argv[2]);
	else if (strcmp(argv[0], "enqueue") == 0 && (argc == 5 || argc == 7)) {
		uint64_t env = 0;
		int64_t delay = 0, code = 0, n = 0;

		parse_uint64(argv[2], &env);
		parse_int64(argv[3], 0, INT64_MAX, &delay);
		if (argc == 7 && (parse_int64(argv[5], 1, 65535, &code) == -1 ||
		                  parse_int64(argv[6], 1, 100, &n) == -1)) {
			fprintf(stderr, "queue_driver: bad ERRNO N\n");
			goto out;
		}
		if (n > 0)
			db_inject_error(w.db, (unsigned)code, (int)n);
		rc = queue_enqueue(w.db, argv[1], env, delay,
		                   argv[4][0] ? argv[4] : NULL, 5) == -1;
		if (rc == 0)
			wake_notify(&cfg);
		puts(rc == 0 ? "ok" : "error");
	} else if (strcmp(argv[0], "reap") == 0 && argc == 1) {
		int n = reaper_pass(&w);

		printf("rescued=%d\n", n);
		rc = n == -1;
	} else if (strcmp(argv[0], "lease") == 0 && argc >= 4) {
		uint64_t term = 0;
		int held;

		if (argc == 5)
			parse_uint64(argv[4], &term);
		held = lease_hold(w.db, argv[1], argv[2],
		                  strtol(argv[3], NULL, 10), &term);
		if (held == 1)
			printf("held %llu\n", (unsigned long long)term);
		else
			puts(held == 0 ? "free" : "error");
		rc = held == -1;
	} else
		rc = cmd_step(&w, argc, argv);
out:
	reaper_free(w.reaper);
	db_close(w.db);
	config_free(&cfg);
	buf_free(&err);
	return rc;
}
