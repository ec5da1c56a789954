-- 015_worker_hosts.sql - worker hosts sharing one database.
--
-- worker_hosts: a row per host's worker pool (workers.host, else the
-- machine's name), beaten every few seconds by its first worker, so the
-- status page shows each host's last heartbeat beside what it runs.
--
-- environments.compute_host: the host whose Docker engine holds a local
-- environment's containers, set by its first deploy. A reconcile of such
-- an environment is claimed only by that host (job.c); ec2 environments
-- leave it NULL and any host takes their jobs.
CREATE TABLE IF NOT EXISTS worker_hosts (
	name VARCHAR(64) CHARACTER SET ascii NOT NULL PRIMARY KEY,
	supervisor_pid INT UNSIGNED NOT NULL,
	workers INT UNSIGNED NOT NULL,
	started_at DATETIME(6) NOT NULL,
	heartbeat_at DATETIME(6) NOT NULL
) ENGINE=InnoDB;

ALTER TABLE environments
	ADD COLUMN IF NOT EXISTS compute_host VARCHAR(64) CHARACTER SET ascii NULL;
