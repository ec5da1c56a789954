-- 013_reports.sql - reporting in plain SQL (docs/reports.md).
--
-- One view per question an operator asks after the first week. Each has a
-- `period` column first (the start of its week, month or hour), which
-- `ephemera report NAME --since DATE` filters on; anyone can run them with
-- the mariadb client instead. Only what the tables hold is reported:
-- finished jobs are pruned after workers.keep_finished_hours, so the
-- queue's report undercounts older done jobs.

-- Time from the PR's first event (its environment's creation) to its first
-- successful build, per repository and week (weeks start on Monday).
CREATE OR REPLACE VIEW report_time_to_ready AS
SELECT DISTINCT t.week AS period, t.repo,
	COUNT(*) OVER (PARTITION BY t.week, t.repo) AS prs,
	ROUND(PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY t.seconds)
		OVER (PARTITION BY t.week, t.repo), 1) AS p50_seconds,
	ROUND(PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY t.seconds)
		OVER (PARTITION BY t.week, t.repo), 1) AS p95_seconds
FROM (
	SELECT e.repo,
		CAST(e.created_at - INTERVAL WEEKDAY(e.created_at) DAY AS DATE)
			AS week,
		TIMESTAMPDIFF(MICROSECOND, e.created_at, MIN(b.finished_at))
			/ 1e6 AS seconds
	FROM environments e
	JOIN builds b ON b.env_id = e.id AND b.status = 'succeeded'
	GROUP BY e.id, e.repo, e.created_at
) t;

-- Each deploy step's runs and failures per month, with the failure text
-- seen most often (ties: the alphabetically first).
CREATE OR REPLACE VIEW report_step_failures AS
SELECT g.period, g.step, g.runs, g.failed,
	ROUND(100 * g.failed / g.runs, 1) AS failed_pct,
	(SELECT LEFT(s.detail, 200) FROM build_steps s
	 WHERE s.name = g.step AND s.status = 'failed'
		AND s.started_at >= g.period
		AND s.started_at < g.period + INTERVAL 1 MONTH
	 GROUP BY s.detail ORDER BY COUNT(*) DESC, s.detail LIMIT 1)
		AS commonest_error
FROM (
	SELECT CAST(DATE_FORMAT(started_at, '%Y-%m-01') AS DATE) AS period,
		name AS step, COUNT(*) AS runs, SUM(status = 'failed') AS failed
	FROM build_steps
	GROUP BY 1, 2
) g;

-- The queue per hour and kind: how many jobs, how they ended, how long
-- they waited past their run_at (a retried job's latest) and ran.
CREATE OR REPLACE VIEW report_queue_health AS
SELECT CAST(DATE_FORMAT(created_at, '%Y-%m-%d %H:00:00') AS DATETIME)
		AS period,
	kind, COUNT(*) AS jobs, SUM(state = 'done') AS done,
	SUM(state = 'dead') AS dead, SUM(state IN ('queued', 'running'))
		AS open,
	ROUND(AVG(TIMESTAMPDIFF(MICROSECOND, run_at, started_at)) / 1e6, 3)
		AS avg_wait_seconds,
	ROUND(MAX(TIMESTAMPDIFF(MICROSECOND, run_at, started_at)) / 1e6, 3)
		AS max_wait_seconds,
	ROUND(AVG(TIMESTAMPDIFF(MICROSECOND, started_at, finished_at)) / 1e6,
		3) AS avg_run_seconds
FROM jobs
GROUP BY 1, 2;

-- Who keeps the builders busy, per month: PRs built, builds, failures and
-- build hours per PR author.
CREATE OR REPLACE VIEW report_authors AS
SELECT CAST(DATE_FORMAT(b.started_at, '%Y-%m-01') AS DATE) AS period,
	e.author, COUNT(DISTINCT e.id) AS prs, COUNT(*) AS builds,
	SUM(b.status = 'failed') AS failed_builds,
	ROUND(SUM(TIMESTAMPDIFF(MICROSECOND, b.started_at,
		COALESCE(b.finished_at, b.started_at))) / 3.6e9, 2) AS build_hours
FROM builds b
JOIN environments e ON e.id = b.env_id
GROUP BY 1, 2;
