-- 017_wake.sql - wake on visit (issue 20).
--
-- An environment the sweep stopped for idleness (and only such a one)
-- keeps its hostname: its route answers a "waking up" page from the
-- fcgi-app, and a visit sets desired back to running (fcgi-app/page_wake.c).
--
-- idle_stopped_at: when the sweep stopped it as idle; NULL for any other
-- stop. `/preview stop` clears it, so a preview stopped by command stays
-- stopped whatever visits it gets.
-- idle_stop_delivery: the PR's last applied delivery when the sweep
-- stopped it. A webhook applied since (a draft, a removed label, a
-- push) changes last_delivery_id and with it the decision: then only
-- the PR's own events start it again, never a visit.
-- woken_at: the last wake, for its rate limit.
ALTER TABLE environments
	ADD COLUMN IF NOT EXISTS idle_stopped_at DATETIME(6) NULL,
	ADD COLUMN IF NOT EXISTS idle_stop_delivery BIGINT UNSIGNED NULL,
	ADD COLUMN IF NOT EXISTS woken_at DATETIME(6) NULL;
