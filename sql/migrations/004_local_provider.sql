-- 004_local_provider.sql - what the reconcile engine and the local
-- providers keep: the commit last attempted (a failed build waits for a
-- new one), when an environment started waiting for a slot, the exposed
-- services, the admission lock row, and the notification history.

ALTER TABLE environments
	ADD COLUMN IF NOT EXISTS attempted_sha CHAR(40) CHARACTER SET ascii NULL,
	ADD COLUMN IF NOT EXISTS queued_at DATETIME(6) NULL,
	ADD COLUMN IF NOT EXISTS services TEXT NULL;

CREATE TABLE IF NOT EXISTS capacity (
	id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
	note VARCHAR(64) NOT NULL DEFAULT ''
) ENGINE=InnoDB;

INSERT IGNORE INTO capacity (id, note) VALUES (1, 'admission lock');

CREATE TABLE IF NOT EXISTS notifications (
	id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
	env_id BIGINT UNSIGNED NOT NULL,
	phase VARCHAR(32) CHARACTER SET ascii NOT NULL,
	message TEXT NOT NULL,
	created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	KEY notifications_env (env_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
