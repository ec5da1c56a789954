-- 005_github.sql - what the GitHub notifier has told GitHub, so that every
-- notify run can bring GitHub's view in line with the database without
-- repeating itself: the Deployment and the last statuses sent per build,
-- and the one sticky comment per environment. (What a PR comment command
-- did is recorded on its `commands` row, 002.) No token is ever stored here (installation tokens live in worker
-- memory only).

CREATE TABLE IF NOT EXISTS github_builds (
	build_id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
	env_id BIGINT UNSIGNED NOT NULL,
	-- The GitHub Deployment for this build's commit; NULL until created.
	deployment_id BIGINT UNSIGNED NULL,
	-- The last deployment status GitHub accepted (in_progress, success,
	-- failure, inactive), and the last commit status (pending, success,
	-- failure, error) with its target URL.
	deployment_state VARCHAR(16) CHARACTER SET ascii NULL,
	commit_state VARCHAR(16) CHARACTER SET ascii NULL,
	commit_target VARCHAR(1024) NULL,
	updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
		ON UPDATE CURRENT_TIMESTAMP(6),
	KEY github_builds_env (env_id, build_id),
	CONSTRAINT github_builds_build_fk FOREIGN KEY (build_id)
		REFERENCES builds (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The sticky PR comment. comment_id is only a cache: the comment is always
-- found by its hidden marker first when the id is unknown, so a crash
-- between creating it and recording it here cannot make a second one.
CREATE TABLE IF NOT EXISTS github_comments (
	env_id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
	comment_id BIGINT UNSIGNED NULL,
	-- SHA-256 of the body last written, to skip edits that change nothing.
	body_sha256 CHAR(64) CHARACTER SET ascii NULL,
	updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
		ON UPDATE CURRENT_TIMESTAMP(6),
	CONSTRAINT github_comments_env_fk FOREIGN KEY (env_id)
		REFERENCES environments (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- When the bot answered a decided command on GitHub (a reaction). The
-- command worker handles every open command of an environment in one run,
-- so a command whose job was coalesced into another's is still answered.
ALTER TABLE commands ADD COLUMN IF NOT EXISTS answered_at DATETIME(6) NULL;
