-- 006_status_indexes.sql - indexes for the read-only status pages.
-- The environments table groups builds per environment for the first
-- build's start (instance hours) and the last build's id; this index
-- covers both (InnoDB secondary indexes carry the primary key), so the
-- summary is one index scan however wide the builds rows are.
CREATE INDEX IF NOT EXISTS builds_env_started ON builds (env_id, started_at);
-- /jobs, /api/v1/jobs and /metrics count jobs by (kind, state).
CREATE INDEX IF NOT EXISTS jobs_kind_state ON jobs (kind, state);
-- /metrics buckets the wall time of finished builds by status: a
-- covering index keeps that scan off the wide rows (log tails).
CREATE INDEX IF NOT EXISTS builds_status_times
	ON builds (status, started_at, finished_at);
