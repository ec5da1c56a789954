-- 021_budgets.sql - what each repository has spent this month, for its
-- monthly budget (environments.monthly_budget, `budgets` in the config).
--
-- The arithmetic of report_cost (016), for the current UTC month only:
-- each run cut at the month's start, an open one counted up to now, hours
-- times the run's own price, rounded to cents. report_cost walks every
-- month of every run; this reads only the runs that touch this month
-- (open, or stopped since it began: a range of the index below), however
-- many environments and months went before. The month comes from NOW(6)
-- (UTC: every connection sets time_zone '+00:00'), and INTERVAL 1 MONTH
-- carries December into January, so `resets_at` is right across a year's
-- end.
--
-- A preview that would start while its repository's spend has reached
-- its budget waits in phase 'budget' (environments.phase, a string, needs
-- no change) with the reason in environments.error; running previews are
-- never stopped for it (workers/budget.c).
CREATE INDEX IF NOT EXISTS env_runs_stopped ON env_runs (stopped_at);

CREATE OR REPLACE VIEW budget_spend AS
SELECT e.repo,
	CAST(m.month_start AS DATE) AS month,
	ROUND(SUM(GREATEST(0, TIMESTAMPDIFF(MICROSECOND,
		GREATEST(r.started_at, m.month_start),
		COALESCE(r.stopped_at, NOW(6)))) / 3.6e9 * r.hourly_price), 2)
		AS spent,
	m.month_start + INTERVAL 1 MONTH AS resets_at
FROM (SELECT CAST(DATE_FORMAT(NOW(6), '%Y-%m-01') AS DATETIME(6))
		AS month_start) m
JOIN env_runs r ON r.stopped_at IS NULL OR r.stopped_at > m.month_start
JOIN environments e ON e.id = r.env_id
GROUP BY e.repo, m.month_start;
