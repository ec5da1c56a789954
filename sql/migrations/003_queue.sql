-- 003_queue.sql - what the worker pool needs beyond 001's jobs table:
-- coalescing for every job kind, the leader lease of the reaper (and of
-- recurring jobs), and the table the `noop` job kind records into.

-- At most one queued job per (environment, kind) for every kind, not only
-- reconcile: a second notify or command for an environment that already
-- has one waiting is folded into it by queue_enqueue's ON DUPLICATE KEY.
ALTER TABLE jobs MODIFY COLUMN queued_env BIGINT UNSIGNED AS
	(IF(state = 'queued' AND env_id IS NOT NULL, env_id, NULL)) PERSISTENT;

-- The reaper prunes finished jobs by age; the ops command lists by state.
ALTER TABLE jobs ADD KEY IF NOT EXISTS jobs_finished (state, finished_at);

-- Named leases with a term number: the reaper's singleton leadership and
-- the schedule of each recurring job. A holder keeps a lease by renewing
-- it (fenced on holder and term); anyone may take an expired one, which
-- increments the term. Unlike GET_LOCK this is ordinary replicated row
-- data, so it is safe on Galera and survives a server restart.
CREATE TABLE IF NOT EXISTS leases (
	name VARCHAR(64) CHARACTER SET ascii NOT NULL PRIMARY KEY,
	holder VARCHAR(128) NOT NULL DEFAULT '',
	term BIGINT UNSIGNED NOT NULL DEFAULT 0,
	lease_until DATETIME(6) NOT NULL DEFAULT '1970-01-01 00:00:01',
	acquired_at DATETIME(6) NULL,
	updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
		ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB;

INSERT IGNORE INTO leases (name) VALUES ('reaper');

-- Each execution of a `noop` job that asked to be recorded: the tests
-- and the bench count these to prove every job ran exactly once. Unique
-- on (job, lease) so a retried insert after a lost connection is not a
-- second execution, while a real second run (a new lease) is.
CREATE TABLE IF NOT EXISTS noop_runs (
	id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
	job_id BIGINT UNSIGNED NOT NULL,
	env_id BIGINT UNSIGNED NULL,
	lease_token CHAR(32) CHARACTER SET ascii NOT NULL,
	worker VARCHAR(128) NOT NULL,
	attempt INT UNSIGNED NOT NULL,
	started_at DATETIME(6) NOT NULL,
	finished_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	UNIQUE KEY noop_runs_lease (job_id, lease_token),
	KEY noop_runs_env (env_id, started_at)
) ENGINE=InnoDB;
