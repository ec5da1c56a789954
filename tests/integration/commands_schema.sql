CREATE TABLE IF NOT EXISTS commands (
	id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
	env_id BIGINT UNSIGNED NOT NULL,
	delivery_id BIGINT UNSIGNED NULL,
	repo VARCHAR(255) NOT NULL,
	pr INT UNSIGNED NOT NULL,
	command VARCHAR(16) CHARACTER SET ascii NOT NULL,
	-- The rest of the command line, printable ASCII only ("48h" for keep).
	args VARCHAR(64) CHARACTER SET ascii NOT NULL DEFAULT '',
	source VARCHAR(16) CHARACTER SET ascii NOT NULL DEFAULT 'comment',
	commenter VARCHAR(255) NOT NULL,
	author_association VARCHAR(32) NOT NULL DEFAULT '',
	comment_id BIGINT UNSIGNED NULL,
	installation_id BIGINT UNSIGNED NULL,
	state VARCHAR(16) CHARACTER SET ascii NOT NULL DEFAULT 'pending',
	reason VARCHAR(255) NULL,
	created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	decided_at DATETIME(6) NULL,
	-- A comment is one command, however often its delivery is replayed.
	UNIQUE KEY commands_comment (comment_id),
	KEY commands_env (env_id, id),
	KEY commands_state (state, id),
	CONSTRAINT commands_env_fk FOREIGN KEY (env_id)
		REFERENCES environments (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
