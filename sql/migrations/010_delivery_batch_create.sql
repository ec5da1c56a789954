-- 010_delivery_batch_create.sql - a batch of webhook deliveries may also
-- create environments (fcgi-app/delivery_batch.c). In 009 a PR's first
-- delivery left the batch and was recorded alone after it, with its own
-- COMMIT: a burst of new PRs (a bot opening dozens at once, or the first
-- minutes after installing the app) then cost one commit each, and
-- those deliveries were the slowest 1 % at 32 connections. 009's two
-- procedures are replaced by these under new names; a fcgi-app still
-- calling the old ones during an upgrade gets an error, and its batch
-- falls back to recording each delivery alone.
--
-- As in 009, items arrive as JSON arrays read with JSON_TABLE, every value
-- a bound parameter, and text columns name their character set so that
-- joins and lookups use the tables' indexes.

DROP PROCEDURE IF EXISTS delivery_lock_batch;
DROP PROCEDURE IF EXISTS delivery_apply_batch;

DELIMITER $$

-- Opens the transaction and locks the environment rows of the given
-- [repo, pr, slug] keys, in the order given (sorted by the caller, so two
-- batches never wait on each other in a cycle). Answers one row per key:
-- its position (1-based), then 007's delivery_lock columns and the
-- installation (NULL id: no such environment; READ COMMITTED takes no
-- gap lock for it), then whether the slug the key would be created with
-- already belongs to another environment (the caller leaves that key to
-- delivery.c, which picks a suffixed one).
CREATE PROCEDURE IF NOT EXISTS delivery_batch_lock(IN p_keys LONGTEXT)
BEGIN
	START TRANSACTION;
	SELECT k.n, e.id, e.desired, COALESCE(e.desired_sha, ''),
		DATE_FORMAT(e.pr_updated_at, '%Y-%m-%dT%H:%i:%sZ'),
		COALESCE(e.last_delivery_id, 0), e.approved_by IS NOT NULL,
		COALESCE(e.installation_id, 0),
		e.id IS NULL AND EXISTS (SELECT 1 FROM environments s
			WHERE s.slug = k.slug)
	FROM JSON_TABLE(p_keys, '$[*]' COLUMNS (n FOR ORDINALITY,
		repo VARCHAR(255) CHARACTER SET utf8mb4
			COLLATE utf8mb4_unicode_ci PATH '$[0]',
		pr INT UNSIGNED PATH '$[1]',
		slug VARCHAR(63) CHARACTER SET ascii PATH '$[2]')) k
	LEFT JOIN environments e ON e.repo = k.repo AND e.pr = k.pr
	FOR UPDATE;
END$$

-- Creates the batch's new environments, records the deliveries, writes
-- each environment's final state once, makes sure one reconcile is queued
-- for each environment that asks, and commits. Any duplicate (a delivery id seen
-- before, an environment or slug another connection created meanwhile)
-- fails the whole call; the caller then records the deliveries one at a
-- time, and delivery.c knows how to lose those races. Answers [id, guid,
-- env] of every delivery, after the COMMIT.
--
--   p_deliveries  [[guid, event, action, repo, pr, env, result, reason,
--                   new]]  (new 1: env is the one this batch creates for
--                   repo and pr)
--   p_envs        [[env, guid of its last delivery, installation, title,
--                   author, association, head_ref, head_repo, base_ref,
--                   clone_url, desired, sha, trusted, draft, labels,
--                   updated_at, reconcile, write, repo, pr, slug]]
--                 (env 0: create it from repo, pr and slug; write 0: only
--                 queue its reconcile)
--
-- A new environment is inserted bare, its id put in its place in p_envs,
-- and from then on it is written like every other: an upsert on its id
-- (an upsert that looked the id up would read environments while writing
-- it, which MariaDB does through a temporary table, on every batch). The
-- rows are locked (or just inserted) and exist, so every row takes the
-- update branch, and a single-table statement over JSON_TABLE costs a
-- third of a multi-table UPDATE, which sorts its targets through a
-- temporary table. desired and sha are final values
-- ('' for no sha), not "keep": the caller read the row under the lock and
-- applied the batch's changes in order. Reconciles are queued as in 007's
-- delivery_apply: a locking read of the queued job first, then an insert
-- or bringing a backed-off one forward.
CREATE PROCEDURE IF NOT EXISTS delivery_batch_apply(
	IN p_deliveries LONGTEXT, IN p_envs LONGTEXT,
	IN p_max_attempts INT UNSIGNED)
BEGIN
	DECLARE i INT DEFAULT 0;
	DECLARE n INT;
	DECLARE v_env BIGINT UNSIGNED;
	DECLARE v_job BIGINT UNSIGNED DEFAULT NULL;
	DECLARE v_run_at DATETIME(6);
	DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_job = NULL;

	SET n = JSON_LENGTH(p_envs);
	WHILE i < n DO
		IF JSON_VALUE(p_envs, CONCAT('$[', i, '][0]')) = 0 THEN
			INSERT INTO environments (repo, pr, slug)
			VALUES (JSON_VALUE(p_envs, CONCAT('$[', i, '][18]')),
				JSON_VALUE(p_envs, CONCAT('$[', i, '][19]')),
				JSON_VALUE(p_envs, CONCAT('$[', i, '][20]')));
			SET p_envs = JSON_SET(p_envs, CONCAT('$[', i, '][0]'),
				LAST_INSERT_ID());
		END IF;
		SET i = i + 1;
	END WHILE;

	INSERT INTO deliveries (guid, event, action, repo, pr, env_id, result,
		reason)
	SELECT d.guid, d.event, d.action, d.repo, NULLIF(d.pr, 0),
		IF(d.new = 1, (SELECT e.id FROM environments e
			WHERE e.repo = d.repo AND e.pr = d.pr), NULLIF(d.env, 0)),
		d.result, d.reason
	FROM JSON_TABLE(p_deliveries, '$[*]' COLUMNS (
		guid VARCHAR(64) CHARACTER SET ascii PATH '$[0]',
		event VARCHAR(64) CHARACTER SET ascii PATH '$[1]',
		action VARCHAR(64) CHARACTER SET ascii PATH '$[2]',
		repo VARCHAR(255) CHARACTER SET utf8mb4
			COLLATE utf8mb4_unicode_ci PATH '$[3]',
		pr INT UNSIGNED PATH '$[4]',
		env BIGINT UNSIGNED PATH '$[5]',
		result VARCHAR(32) CHARACTER SET ascii PATH '$[6]',
		reason VARCHAR(255) PATH '$[7]',
		new TINYINT PATH '$[8]')) d;

	INSERT INTO environments (id, repo, pr, slug, installation_id, title,
		author, author_association, head_ref, head_repo, base_ref,
		clone_url, desired, desired_sha, trusted, draft, labels,
		pr_updated_at, last_delivery_id)
	SELECT t.id, '', 0, '', NULLIF(t.installation, 0), t.title, t.author,
		t.association, t.head_ref, t.head_repo, t.base_ref,
		t.clone_url, t.desired, NULLIF(t.sha, ''), t.trusted, t.draft,
		t.labels, t.updated_at,
		(SELECT d.id FROM deliveries d WHERE d.guid = t.guid)
	FROM JSON_TABLE(p_envs, '$[*]' COLUMNS (
		id BIGINT UNSIGNED PATH '$[0]',
		guid VARCHAR(64) CHARACTER SET ascii PATH '$[1]',
		installation BIGINT UNSIGNED PATH '$[2]',
		title VARCHAR(1024) PATH '$[3]',
		author VARCHAR(255) PATH '$[4]',
		association VARCHAR(32) PATH '$[5]',
		head_ref VARCHAR(255) PATH '$[6]',
		head_repo VARCHAR(255) PATH '$[7]',
		base_ref VARCHAR(255) PATH '$[8]',
		clone_url VARCHAR(1024) PATH '$[9]',
		desired VARCHAR(24) CHARACTER SET ascii PATH '$[10]',
		sha CHAR(40) CHARACTER SET ascii PATH '$[11]',
		trusted TINYINT PATH '$[12]', draft TINYINT PATH '$[13]',
		labels TEXT PATH '$[14]',
		updated_at DATETIME(6) PATH '$[15]',
		wr TINYINT PATH '$[17]')) t
	WHERE t.wr = 1
	ON DUPLICATE KEY UPDATE
		installation_id = VALUES(installation_id),
		title = VALUES(title), author = VALUES(author),
		author_association = VALUES(author_association),
		head_ref = VALUES(head_ref), head_repo = VALUES(head_repo),
		base_ref = VALUES(base_ref), clone_url = VALUES(clone_url),
		desired = VALUES(desired), desired_sha = VALUES(desired_sha),
		trusted = VALUES(trusted), draft = VALUES(draft),
		labels = VALUES(labels), pr_updated_at = VALUES(pr_updated_at),
		last_delivery_id = VALUES(last_delivery_id);

	SET i = 0;
	WHILE i < n DO
		IF JSON_VALUE(p_envs, CONCAT('$[', i, '][16]')) = 1 THEN
			SET v_env = JSON_VALUE(p_envs, CONCAT('$[', i, '][0]'));
			SET v_job = NULL;
			SELECT id, run_at INTO v_job, v_run_at FROM jobs
			WHERE queued_env = v_env AND kind = 'reconcile'
			FOR UPDATE;
			IF v_job IS NULL THEN
				INSERT INTO jobs (kind, env_id, run_at,
					max_attempts)
				VALUES ('reconcile', v_env, NOW(6),
					p_max_attempts)
				ON DUPLICATE KEY UPDATE
					run_at = LEAST(run_at, VALUES(run_at));
			ELSEIF v_run_at > NOW(6) THEN
				UPDATE jobs SET run_at = NOW(6) WHERE id = v_job;
			END IF;
		END IF;
		SET i = i + 1;
	END WHILE;
	COMMIT;
	-- Only now: an error above comes before any result set.
	SELECT d.id, d.guid, COALESCE(d.env_id, 0)
	FROM JSON_TABLE(p_deliveries, '$[*]' COLUMNS (
		guid VARCHAR(64) CHARACTER SET ascii PATH '$[0]')) g
	STRAIGHT_JOIN deliveries d ON d.guid = g.guid;
END$$

DELIMITER ;
