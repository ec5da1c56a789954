-- 012_notify_lanes.sql - telling the PR does not wait behind the deploy.
--
-- 001 allowed one running job per environment (jobs_one_running), so a
-- `notify` job queued while a deploy ran waited until the deploy was over
-- and the PR showed nothing for the whole build. Jobs now run in lanes:
-- `notify` and `command` each have their own lane per environment, every
-- other kind shares the environment's lane. One running job per
-- (environment, lane): two notifiers of one PR still never race each other
-- (one comment, in order), but neither waits for a 40 s build.
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS running_lane VARCHAR(16)
	CHARACTER SET ascii AS
	(IF(kind IN ('notify', 'command'), kind, 'env')) PERSISTENT;

ALTER TABLE jobs DROP INDEX IF EXISTS jobs_one_running;
ALTER TABLE jobs ADD UNIQUE KEY IF NOT EXISTS jobs_one_running
	(running_env, running_lane);

-- The content-creating requests (POST, PATCH, PUT, DELETE) sent to GitHub
-- per installation, as a GCRA schedule: `tat` is the theoretical arrival
-- time of the next request. A request may go when tat is at most the
-- burst allowance ahead of now, and moves tat one interval on. GitHub asks
-- for about one such request per second per App installation (secondary
-- limits); a single PR's few writes fit in the burst, many PRs at once are
-- spaced. A notify job that finds no room is rescheduled by the queue for
-- the moment there is; no worker ever sleeps for it.
CREATE TABLE IF NOT EXISTS github_pace (
	installation_id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
	tat DATETIME(6) NOT NULL DEFAULT '1970-01-01 00:00:01'
) ENGINE=InnoDB;

-- The commit status's description is remembered with its state and target:
-- "ready" and "stopped" differ only in it when there is no public URL.
ALTER TABLE github_builds ADD COLUMN IF NOT EXISTS commit_description
	VARCHAR(140) NULL;

-- The commit status of a commit that has no build yet (queued behind the
-- cap, awaiting approval): "<sha> <state> <description>", last sent.
ALTER TABLE github_comments ADD COLUMN IF NOT EXISTS waiting_status
	VARCHAR(255) NULL;

-- The Deployment made for a commit while it waits behind the cap (state
-- `queued`), before it has a build; its build adopts it when it starts.
ALTER TABLE github_comments
	ADD COLUMN IF NOT EXISTS waiting_deployment_id BIGINT UNSIGNED NULL,
	ADD COLUMN IF NOT EXISTS waiting_deployment_sha CHAR(40)
		CHARACTER SET ascii NULL,
	ADD COLUMN IF NOT EXISTS waiting_deployment_state VARCHAR(16)
		CHARACTER SET ascii NULL;
