-- 020_env_run_totals.sql - each environment's closed compute runs
-- (env_runs, 016) summed on its row: the seconds they ran and what they
-- cost, each at its own hourly price. The status page and the API read an
-- environment's hours and cost from these and its one open run, so a page
-- costs the same however many times its previews were stopped and woken.
-- workers/env_run.c adds a run here in the statement that closes it.
ALTER TABLE environments
	ADD COLUMN IF NOT EXISTS runs_seconds DOUBLE NOT NULL DEFAULT 0,
	ADD COLUMN IF NOT EXISTS runs_cost DOUBLE NOT NULL DEFAULT 0;

-- The runs closed before this migration. Setting (not adding) makes a
-- second run of it harmless; updated_at is kept (the row did not change).
UPDATE environments e
JOIN (SELECT env_id,
		SUM(TIMESTAMPDIFF(MICROSECOND, started_at, stopped_at)) / 1e6
			AS s,
		SUM(TIMESTAMPDIFF(MICROSECOND, started_at, stopped_at) / 3.6e9
			* hourly_price) AS c
	FROM env_runs WHERE stopped_at IS NOT NULL GROUP BY env_id) r
	ON r.env_id = e.id
SET e.runs_seconds = r.s, e.runs_cost = r.c, e.updated_at = e.updated_at;
