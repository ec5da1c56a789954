-- 001_init.sql - the first schema: desired state, builds, the queue and the
-- delivery log. InnoDB throughout (row locks, SKIP LOCKED), utf8mb4 so any
-- title or branch name GitHub accepts is stored as it is. Times are UTC
-- (every connection sets time_zone '+00:00') with microseconds.

CREATE TABLE IF NOT EXISTS environments (
	id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
	repo VARCHAR(255) NOT NULL,
	pr INT UNSIGNED NOT NULL,
	slug VARCHAR(63) CHARACTER SET ascii NOT NULL,
	installation_id BIGINT UNSIGNED NULL,
	title VARCHAR(1024) NOT NULL DEFAULT '',
	author VARCHAR(255) NOT NULL DEFAULT '',
	author_association VARCHAR(32) NOT NULL DEFAULT '',
	head_ref VARCHAR(255) NOT NULL DEFAULT '',
	head_repo VARCHAR(255) NOT NULL DEFAULT '',
	base_ref VARCHAR(255) NOT NULL DEFAULT '',
	clone_url VARCHAR(1024) NOT NULL DEFAULT '',
	-- What the webhooks asked for; workers move `phase` toward it.
	desired ENUM('running', 'stopped', 'destroyed', 'awaiting_approval')
		NOT NULL DEFAULT 'running',
	desired_sha CHAR(40) CHARACTER SET ascii NULL,
	-- Where the environment is: pending, queued, deploying, ready,
	-- failed, stopping, stopped, destroying, destroyed, awaiting_approval.
	phase VARCHAR(32) CHARACTER SET ascii NOT NULL DEFAULT 'pending',
	deployed_sha CHAR(40) CHARACTER SET ascii NULL,
	url VARCHAR(1024) NULL,
	trusted TINYINT(1) NOT NULL DEFAULT 0,
	approved_by VARCHAR(255) NULL,
	draft TINYINT(1) NOT NULL DEFAULT 0,
	labels TEXT NULL,
	-- Stale-event guard: the PR's updated_at, then delivery order.
	pr_updated_at DATETIME(6) NULL,
	last_delivery_id BIGINT UNSIGNED NULL,
	error TEXT NULL,
	keep_until DATETIME(6) NULL,
	last_active_at DATETIME(6) NULL,
	ready_at DATETIME(6) NULL,
	created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
		ON UPDATE CURRENT_TIMESTAMP(6),
	UNIQUE KEY environments_repo_pr (repo, pr),
	UNIQUE KEY environments_slug (slug),
	KEY environments_phase (phase),
	KEY environments_updated (updated_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS builds (
	id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
	env_id BIGINT UNSIGNED NOT NULL,
	sha CHAR(40) CHARACTER SET ascii NOT NULL,
	status ENUM('running', 'succeeded', 'failed', 'cancelled')
		NOT NULL DEFAULT 'running',
	error TEXT NULL,
	log_tail MEDIUMTEXT NULL,
	started_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	finished_at DATETIME(6) NULL,
	KEY builds_env (env_id, id),
	CONSTRAINT builds_env_fk FOREIGN KEY (env_id)
		REFERENCES environments (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS build_steps (
	id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
	build_id BIGINT UNSIGNED NOT NULL,
	name VARCHAR(64) CHARACTER SET ascii NOT NULL,
	status ENUM('running', 'succeeded', 'failed', 'skipped')
		NOT NULL DEFAULT 'running',
	detail TEXT NULL,
	started_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	finished_at DATETIME(6) NULL,
	KEY build_steps_build (build_id, id),
	CONSTRAINT build_steps_build_fk FOREIGN KEY (build_id)
		REFERENCES builds (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The queue. `queued_env` and `running_env` are NULL except for the one
-- queued reconcile and the one running job of an environment, so the
-- UNIQUE keys on them enforce "coalesce to one queued reconcile" and "one
-- running job per environment" inside the database, race-free.
CREATE TABLE IF NOT EXISTS jobs (
	id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
	kind VARCHAR(32) CHARACTER SET ascii NOT NULL,
	env_id BIGINT UNSIGNED NULL,
	state ENUM('queued', 'running', 'done', 'dead', 'cancelled')
		NOT NULL DEFAULT 'queued',
	run_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	attempts INT UNSIGNED NOT NULL DEFAULT 0,
	max_attempts INT UNSIGNED NOT NULL DEFAULT 5,
	lease_token CHAR(32) CHARACTER SET ascii NULL,
	lease_until DATETIME(6) NULL,
	worker VARCHAR(128) NULL,
	payload TEXT NULL,
	last_error TEXT NULL,
	created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	started_at DATETIME(6) NULL,
	finished_at DATETIME(6) NULL,
	queued_env BIGINT UNSIGNED AS
		(IF(state = 'queued' AND kind = 'reconcile', env_id, NULL))
		PERSISTENT,
	running_env BIGINT UNSIGNED AS
		(IF(state = 'running', env_id, NULL)) PERSISTENT,
	KEY jobs_claim (state, run_at, id),
	KEY jobs_lease (state, lease_until),
	KEY jobs_env (env_id, state),
	UNIQUE KEY jobs_one_queued (queued_env, kind),
	UNIQUE KEY jobs_one_running (running_env)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Every accepted delivery, once (X-GitHub-Delivery is unique), with what
-- it did. The id gives delivery order for the stale-event guard.
CREATE TABLE IF NOT EXISTS deliveries (
	id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
	guid VARCHAR(64) CHARACTER SET ascii NOT NULL,
	event VARCHAR(64) CHARACTER SET ascii NOT NULL,
	action VARCHAR(64) CHARACTER SET ascii NULL,
	repo VARCHAR(255) NULL,
	pr INT UNSIGNED NULL,
	env_id BIGINT UNSIGNED NULL,
	result VARCHAR(32) CHARACTER SET ascii NOT NULL,
	reason VARCHAR(255) NULL,
	received_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	UNIQUE KEY deliveries_guid (guid),
	KEY deliveries_received (received_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
