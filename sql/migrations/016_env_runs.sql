-- 016_env_runs.sql - when each environment's compute ran, for its cost.
--
-- A run opens when a deploy begins (an instance or containers may start)
-- and closes when a stop, a destroy or a hold has taken the compute down
-- (reconcile.c); a redeploy of a running environment keeps its run. Each
-- run carries the hourly price in force when it opened
-- (environments.hourly_price), so a later price change does not rewrite
-- the past. Cost accrues only inside runs: a stopped preview costs
-- nothing here.
CREATE TABLE IF NOT EXISTS env_runs (
	id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
	env_id BIGINT UNSIGNED NOT NULL,
	started_at DATETIME(6) NOT NULL,
	stopped_at DATETIME(6) NULL,
	hourly_price DECIMAL(12, 6) NOT NULL,
	KEY env_runs_open (env_id, stopped_at),
	CONSTRAINT env_runs_env FOREIGN KEY (env_id)
		REFERENCES environments (id) ON DELETE CASCADE
) ENGINE=InnoDB;

-- Environment-hours and cost per repository and calendar month (UTC: run
-- it in a session with time_zone '+00:00', as `ephemera report` does). A
-- run is cut at month boundaries; an open one counts up to now.
CREATE OR REPLACE VIEW report_cost AS
WITH RECURSIVE months (run_id, month_start) AS (
	SELECT r.id, CAST(DATE_FORMAT(r.started_at, '%Y-%m-01') AS DATETIME)
	FROM env_runs r
	UNION ALL
	SELECT m.run_id, m.month_start + INTERVAL 1 MONTH
	FROM months m
	JOIN env_runs r ON r.id = m.run_id
	WHERE m.month_start + INTERVAL 1 MONTH < COALESCE(r.stopped_at, NOW(6))
)
SELECT CAST(p.month_start AS DATE) AS period, p.repo,
	COUNT(DISTINCT p.env_id) AS environments,
	ROUND(SUM(p.us) / 3.6e9, 2) AS hours,
	ROUND(SUM(p.us / 3.6e9 * p.hourly_price), 2) AS cost
FROM (
	SELECT m.month_start, e.repo, r.env_id, r.hourly_price,
		GREATEST(0, TIMESTAMPDIFF(MICROSECOND,
			GREATEST(r.started_at, m.month_start),
			LEAST(COALESCE(r.stopped_at, NOW(6)),
				m.month_start + INTERVAL 1 MONTH))) AS us
	FROM months m
	JOIN env_runs r ON r.id = m.run_id
	JOIN environments e ON e.id = r.env_id
) p
GROUP BY p.month_start, p.repo;
