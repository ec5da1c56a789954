-- 011_delivery_totals.sql - the delivery log is pruned (workers/prune.c,
-- workers.keep_deliveries_days); what it counted is kept here, so that
-- ephemera_deliveries_total stays a counter that never goes down, and the
-- metrics page counts a bounded table instead of every delivery ever.
CREATE TABLE IF NOT EXISTS delivery_totals (
	event VARCHAR(64) CHARACTER SET ascii NOT NULL,
	result VARCHAR(32) CHARACTER SET ascii NOT NULL,
	n BIGINT UNSIGNED NOT NULL,
	PRIMARY KEY (event, result)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
