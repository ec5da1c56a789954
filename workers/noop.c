/*
 * noop.c - the job kind that does nothing, on request slowly or badly: the
 * tests and the bench drive the queue with it. Each execution that reaches
 * its end records itself in noop_runs, keyed by (job, lease token), so a
 * test can count executions and find any job that ran twice.
 */
#include <json-c/json.h>
#include <unistd.h>

#include "workers.h"

struct noop_args {
	int64_t sleep_ms, retry_after_ms, fail_attempts;
	bool heartbeat, record;
	const char *fail, *retry;
};

/* json-c: the strings point into `root`, which the caller frees. */
static void
noop_parse(json_object *root, struct noop_args *a)
{
	json_object *v;

	a->sleep_ms = a->retry_after_ms = a->fail_attempts = 0;
	a->heartbeat = a->record = true;
	a->fail = a->retry = NULL;
	if (root == NULL || !json_object_is_type(root, json_type_object))
		return;
	if (json_object_object_get_ex(root, "sleep_ms", &v))
		a->sleep_ms = json_object_get_int64(v);
	if (json_object_object_get_ex(root, "retry_after_ms", &v))
		a->retry_after_ms = json_object_get_int64(v);
	if (json_object_object_get_ex(root, "fail_attempts", &v))
		a->fail_attempts = json_object_get_int64(v);
	if (json_object_object_get_ex(root, "heartbeat", &v))
		a->heartbeat = json_object_get_boolean(v);
	if (json_object_object_get_ex(root, "record", &v))
		a->record = json_object_get_boolean(v);
	if (json_object_object_get_ex(root, "fail", &v))
		a->fail = json_object_get_string(v);
	if (json_object_object_get_ex(root, "retry", &v))
		a->retry = json_object_get_string(v);
}

/* Sleeps, heartbeating a few times per lease; -1 if the job must stop. */
static int
noop_sleep(struct worker *w, const struct job *job, const struct noop_args *a)
{
	int64_t beat = w->cfg->workers_lease_seconds * 1000 / 3, left;

	for (left = a->sleep_ms; left > 0; left -= beat) {
		if (worker_sleep(w, left < beat ? left : beat) == -1)
			return -1;
		if (a->heartbeat && left > beat && job_heartbeat(w, job) == -1)
			return -1;
	}
	return 0;
}

/*
 * Records this execution, inside the settling transaction (job_result's
 * in_settle): the record commits with the job's new state under our lease
 * or not at all. A worker cut off from the database whose job was rescued
 * meanwhile is fenced out of both, so a second row for a job is a real
 * second execution, never a stale one.
 */
static int
noop_record(struct db *db, const struct worker *w, const struct job *job,
            const struct job_result *res)
{
	return db_exec(db,
	               "INSERT INTO noop_runs (job_id, env_id, lease_token, "
	               "worker, attempt, started_at) VALUES (?, NULLIF(?, 0), "
	               "?, ?, ?, FROM_UNIXTIME(?))",
	               "uussid", job->id, job->env_id, job->lease_token, w->id,
	               (int64_t)job->attempts, res->started);
}

void
noop_run(struct worker *w, const struct job *job, struct job_result *res)
{
	json_object *root = NULL;
	struct noop_args a;

	res->started = now_real();
	if (job->payload != NULL)
		root = json_tokener_parse(job->payload);
	noop_parse(root, &a);
	res->outcome = JOB_DONE;
	if (a.sleep_ms > 0 && noop_sleep(w, job, &a) == -1) {
		res->outcome = JOB_RETRY;
		buf_puts(&res->error, "noop: interrupted");
		goto out;
	}
	if (a.fail_attempts > 0 && job->attempts <= a.fail_attempts) {
		res->outcome = JOB_RETRY;
		buf_printf(&res->error, "noop: planned failure %d of %lld",
		           job->attempts, (long long)a.fail_attempts);
	} else if (a.fail != NULL) {
		res->outcome = JOB_FAIL;
		buf_puts(&res->error, a.fail);
	} else if (a.retry != NULL) {
		res->outcome = JOB_RETRY;
		res->retry_after_ms = a.retry_after_ms;
		buf_puts(&res->error, a.retry);
	}
	if (a.record)
		res->in_settle = noop_record;
out:
	json_object_put(root);
}
