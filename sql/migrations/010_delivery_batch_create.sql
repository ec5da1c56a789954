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
-- for each environment that asks, and commits. Any duplicate (a delivery
-- id seen before, an environment or slug another connection created
-- meanwhile) fails the whole call; the caller then records the deliveries
-- one at a time, and delivery.c knows how to lose those races. Answers
-- [id, guid, env] of every delivery, after the COMMIT.
--
--   p_new         [[repo, pr, slug]]: the environments to create, in lock
--                 order; "new" below is a 1-based place in it (0: none)
--   p_deliveries  [[guid, event, action, repo, pr, env, result, reason,
--                   new]]
--   p_envs        [[env, guid of its last delivery, installation, title,
--                   author, association, head_ref, head_repo, base_ref,
--                   clone_url, desired, sha, trusted, draft, labels,
--                   updated_at, reconcile, write, new]]
--                 (write 0: only queue its reconcile)
--
-- A new environment is inserted bare, its id kept in v_ids, and from then
-- on written like every other: an upsert on its id. (Looking the id up in
-- the upsert would read environments while writing it, which MariaDB does
-- through a temporary table, on every batch; and a loop over p_envs pays
-- a JSON_VALUE parse of it per item: 10 % of MariaDB's time when the
-- reconciles were queued that way.) The rows are locked (or just
-- inserted) and exist, so every row takes the update branch, and a
-- single-table statement over JSON_TABLE costs a third of a multi-table
-- UPDATE, which sorts its targets through a temporary table. desired and
-- sha are final values ('' for no sha), not "keep": the caller read the
-- row under the lock and applied the batch's changes in order.
--
-- Reconciles: an insert that coalesces into the environment's queued one
-- (jobs_one_queued), bringing a backed-off run_at forward. A worker
-- claiming that job holds its index record until it commits; the insert
-- waits for it and then queues a new one, so no change is missed.
CREATE PROCEDURE IF NOT EXISTS delivery_batch_apply(IN p_new LONGTEXT,
	IN p_deliveries LONGTEXT, IN p_envs LONGTEXT,
	IN p_max_attempts INT UNSIGNED)
BEGIN
	DECLARE i INT DEFAULT 0;
	DECLARE n INT DEFAULT JSON_LENGTH(p_new);
	DECLARE v_ids TEXT DEFAULT '[]';

	WHILE i < n DO
		INSERT INTO environments (repo, pr, slug)
		VALUES (JSON_VALUE(p_new, CONCAT('$[', i, '][0]')),
			JSON_VALUE(p_new, CONCAT('$[', i, '][1]')),
			JSON_VALUE(p_new, CONCAT('$[', i, '][2]')));
		SET v_ids = JSON_ARRAY_APPEND(v_ids, '$', LAST_INSERT_ID());
		SET i = i + 1;
	END WHILE;

	INSERT INTO deliveries (guid, event, action, repo, pr, env_id, result,
		reason)
	SELECT d.guid, d.event, d.action, d.repo, NULLIF(d.pr, 0),
		IF(d.new > 0, JSON_VALUE(v_ids, CONCAT('$[', d.new - 1, ']')),
			NULLIF(d.env, 0)),
		d.result, d.reason
	FROM JSON_TABLE(p_deliveries, '$[*]' COLUMNS (
		guid VARCHAR(64) CHARACTER SET ascii PATH '$[0]',
		event VARCHAR(64) CHARACTER SET ascii PATH '$[1]',
		action VARCHAR(64) CHARACTER SET ascii PATH '$[2]',
		repo VARCHAR(255) PATH '$[3]', pr INT UNSIGNED PATH '$[4]',
		env BIGINT UNSIGNED PATH '$[5]',
		result VARCHAR(32) CHARACTER SET ascii PATH '$[6]',
		reason VARCHAR(255) PATH '$[7]',
		new INT UNSIGNED PATH '$[8]')) d;

	INSERT INTO environments (id, repo, pr, slug, installation_id, title,
		author, author_association, head_ref, head_repo, base_ref,
		clone_url, desired, desired_sha, trusted, draft, labels,
		pr_updated_at, last_delivery_id)
	SELECT IF(t.new > 0, JSON_VALUE(v_ids, CONCAT('$[', t.new - 1, ']')),
			t.id),
		'', 0, '', NULLIF(t.installation, 0), t.title, t.author,
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
		wr TINYINT PATH '$[17]',
		new INT UNSIGNED PATH '$[18]')) t
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

	INSERT INTO jobs (kind, env_id, run_at, max_attempts)
	SELECT 'reconcile',
		IF(t.new > 0, JSON_VALUE(v_ids, CONCAT('$[', t.new - 1, ']')),
			t.id),
		NOW(6), p_max_attempts
	FROM JSON_TABLE(p_envs, '$[*]' COLUMNS (
		id BIGINT UNSIGNED PATH '$[0]',
		reconcile TINYINT PATH '$[16]',
		new INT UNSIGNED PATH '$[18]')) t
	WHERE t.reconcile = 1
	ON DUPLICATE KEY UPDATE run_at = LEAST(run_at, VALUES(run_at));
	COMMIT;
	-- Only now: an error above comes before any result set.
	SELECT d.id, d.guid, COALESCE(d.env_id, 0)
	FROM JSON_TABLE(p_deliveries, '$[*]' COLUMNS (
		guid VARCHAR(64) CHARACTER SET ascii PATH '$[0]')) g
	STRAIGHT_JOIN deliveries d ON d.guid = g.guid;
END$$

DELIMITER ;
