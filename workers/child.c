/*
 * child.c - one worker process: claim a job, run its handler with no
 * transaction open, settle it; between jobs, take a turn at the reaper;
 * when idle, sleep on the wake-up socket with a poll interval that backs
 * off toward workers.poll_max_ms.
 *
 * Shutdown: the first TERM stops claiming and lets the current job finish.
 * If it is still running when most of workers.shutdown_timeout has passed,
 * or a second TERM arrives, worker_interrupted() turns true; a handler
 * that returns then without finishing has its lease released, so another
 * worker resumes the job at once instead of after the lease expires.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "workers.h"

/* When the first TERM arrived (monotonic seconds); set in the handler. */
static volatile double term_at;

static void
child_on_stop(void)
{
	struct timespec ts;

	/* clock_gettime is async-signal-safe. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (term_at == 0)
		term_at = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

bool
worker_interrupted(struct worker *w)
{
	if (!supervisor_stopping())
		return false;
	if (w->stop_at == 0) {
		double t = term_at != 0 ? term_at : now_mono();

		/* Leave a quarter of the timeout to release and exit. */
		w->stop_at =
		        t + 0.75 * (double)w->cfg->workers_shutdown_timeout;
	}
	return supervisor_term_count() >= 2 || now_mono() >= w->stop_at;
}

int
worker_sleep(struct worker *w, int64_t ms)
{
	double end = now_mono() + (double)ms / 1000.0, left;

	while ((left = end - now_mono()) > 0) {
		if (worker_interrupted(w))
			return -1;
		poll(NULL, 0, left > 0.05 ? 50 : (int)(left * 1000) + 1);
	}
	return worker_interrupted(w) ? -1 : 0;
}

static void
job_run(struct worker *w, struct job *job)
{
	struct job_result res = {.outcome = JOB_DONE, .error = BUF_INIT};
	double t0 = now_mono();

	res.error.max = 16 * 1024;
	dispatch_run(w, job, &res);
	if (res.outcome != JOB_DONE && worker_interrupted(w))
		job_release(w, job);
	else
		job_settle(w, job, &res);
	w->jobs_done++;
	log_debug("job_ran", "job=%llu kind=%s outcome=%d ms=%.1f",
	          (unsigned long long)job->id, job->kind, (int)res.outcome,
	          (now_mono() - t0) * 1000);
	buf_free(&res.error);
}

static void
worker_id_init(struct worker *w)
{
	if (w->cfg->workers_host[0])
		snprintf(w->host, sizeof(w->host), "%s", w->cfg->workers_host);
	else if (gethostname(w->host, sizeof(w->host)) == -1)
		memcpy(w->host, "localhost", 10);
	w->host[sizeof(w->host) - 1] = '\0';
	snprintf(w->id, sizeof(w->id), "%s:%ld", w->host, (long)getpid());
}

/*
 * The host's row in worker_hosts, beaten by its first worker every
 * HOST_BEAT_S: the status page's "last heartbeat" of each host. A failed
 * beat is only logged (the next one retries).
 */
#define HOST_BEAT_S 5

static void
host_beat(struct worker *w)
{
	if (w->slot != 0 || now_mono() < w->beat_at)
		return;
	w->beat_at = now_mono() + HOST_BEAT_S;
	/* started_at first: it compares the old supervisor_pid. */
	if (db_exec(w->db,
	            "INSERT INTO worker_hosts (name, supervisor_pid, workers, "
	            "started_at, heartbeat_at) VALUES (?, ?, ?, NOW(6), "
	            "NOW(6)) ON DUPLICATE KEY UPDATE started_at = "
	            "IF(supervisor_pid = VALUES(supervisor_pid), started_at, "
	            "NOW(6)), supervisor_pid = VALUES(supervisor_pid), "
	            "workers = VALUES(workers), heartbeat_at = NOW(6)",
	            "sii", w->host, (int64_t)getppid(),
	            w->cfg->workers_count) == -1)
		log_warn("host_beat", "host=%s", log_q(w->host));
}

/*
 * Whether to leave so the supervisor forks a fresh worker: one that has
 * loaded libcurl or libxml2 keeps them, and what they set up, for good
 * (7.6 MB a worker, README), and once the work that needed them is over
 * a fresh fork maps neither. Unloading them instead (dlclose) would rely on every library
 * they pull in unloading cleanly.
 */
static bool
worker_recycle_due(struct worker *w)
{
	int64_t after = w->cfg->workers_recycle_idle_seconds;

	if (after <= 0 || w->idle_since == 0 || !lazylib_loaded() ||
	    now_mono() - w->idle_since < (double)after)
		return false;
	log_info("worker_recycle", "slot=%d idle_s=%.0f jobs=%lu", w->slot,
	         now_mono() - w->idle_since, w->jobs_done);
	return true;
}

/*
 * Claims while there is work; when idle, waits for a nudge, the earliest
 * scheduled job or the poll interval (doubling toward poll_max_ms while
 * nothing turns up), and the reaper's next turn, whichever comes first.
 */
static void
worker_loop(struct worker *w)
{
	const struct config *cfg = w->cfg;
	int64_t interval = cfg->workers_poll_interval_ms, wait, next;
	double claim_at = 0, now;
	struct job job;

	memset(&job, 0, sizeof(job));
	while (!supervisor_stopping()) {
		reaper_tick(w);
		host_beat(w);
		if ((cfg->workers_max_jobs > 0 &&
		     w->jobs_done >= (unsigned long)cfg->workers_max_jobs) ||
		    worker_recycle_due(w))
			break;
		if (now_mono() >= claim_at) {
			switch (job_claim(w, &job, &next)) {
			case CLAIM_OK:
				job_run(w, &job);
				job_clear(&job);
				interval = cfg->workers_poll_interval_ms;
				w->idle_since = 0;
				continue;
			case CLAIM_NONE:
				if (w->idle_since == 0)
					w->idle_since = now_mono();
				wait = interval;
				if (next >= 0 && next < wait)
					wait = next > 0 ? next : 1;
				else
					interval =
					        interval * 2 > cfg->workers_poll_max_ms
					                ? cfg->workers_poll_max_ms
					                : interval * 2;
				break;
			case CLAIM_ERROR:
			default:
				wait = interval;
				interval =
				        interval * 2 > cfg->workers_poll_max_ms
				                ? cfg->workers_poll_max_ms
				                : interval * 2;
				break;
			}
			claim_at = now_mono() + (double)wait / 1000.0;
		}
		now = now_mono();
		wait = (int64_t)((claim_at - now) * 1000.0) + 1;
		if (reaper_due_ms(w) < wait)
			wait = reaper_due_ms(w);
		if (w->slot == 0 && (w->beat_at - now) * 1000.0 < (double)wait)
			wait = (int64_t)((w->beat_at - now) * 1000.0) + 1;
		if (wakeup_wait(w->wake_fd, wait < 0 ? 0 : wait) == 1) {
			claim_at = 0;
			interval = cfg->workers_poll_interval_ms;
		}
	}
}

int
worker_child_main(int slot, void *arg)
{
	struct pool *pool = arg;
	struct worker w;

	memset(&w, 0, sizeof(w));
	w.cfg = pool->cfg;
	w.slot = slot;
	w.wake_fd = pool->wake_fd;
	supervisor_child_signals(child_on_stop);
	worker_id_init(&w);
	w.db = db_open(w.cfg);
	/*
	 * Workers keep the server's REPEATABLE READ, unlike the fcgi-app:
	 * measured with bench/queue, the claim loop at READ COMMITTED is
	 * about 12 % slower, and the gap lock a claim of an empty queue takes
	 * holds an enqueue back only until that short claim commits.
	 */
	if (db_connect(w.db, (double)w.cfg->db_connect_timeout) == -1) {
		db_close(w.db);
		return 1;
	}
	w.reaper = reaper_new();
	log_info("worker_ready", "slot=%d worker=%s", slot, log_q(w.id));
	worker_loop(&w);
	reaper_stop(&w);
	log_info("worker_exit", "slot=%d jobs=%lu", slot, w.jobs_done);
	reaper_free(w.reaper);
	db_close(w.db);
	return 0;
}
