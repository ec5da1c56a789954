-- 014_teardown_items.sql - what a teardown removed, as checked.
--
-- A destroy records each object it finds (found_at) before it deletes
-- anything, and marks it gone (gone_at) only once a later look shows the
-- object absent. The PR comment lists the gone ones, so the report says
-- what was checked gone, not what was asked for. A worker killed midway
-- leaves its finds here for the next one to check. A new destroy of the
-- environment (a reopened PR closed again) starts a fresh list.
CREATE TABLE teardown_items (
	env_id BIGINT UNSIGNED NOT NULL,
	kind VARCHAR(24) CHARACTER SET ascii NOT NULL,
	name VARCHAR(255) NOT NULL,
	found_at DATETIME(6) NOT NULL DEFAULT NOW(6),
	gone_at DATETIME(6) NULL,
	PRIMARY KEY (env_id, kind, name),
	CONSTRAINT teardown_items_env FOREIGN KEY (env_id)
		REFERENCES environments (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
