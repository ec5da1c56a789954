/*
 * notify.c - what the PR should be told, through one interface. Every
 * change is recorded in `notifications` (the history the status page and
 * tests read); when a GitHub App is configured, a `notify` job is queued
 * too, whose handler brings the PR's comment, statuses and deployments in
 * line with the database. GitHub's slowness or rate limits therefore never
 * hold up a deploy.
 */
#include "workers.h"

int
notify_env(struct worker *w, uint64_t env_id, const char *phase,
           const char *message)
{
	if (db_exec(w->db,
	            "INSERT INTO notifications (env_id, phase, message) "
	            "VALUES (?, ?, ?)",
	            "uss", env_id, phase, message) == -1)
		return -1;
	if (w->cfg->github_enabled &&
	    queue_enqueue(w->db, "notify", env_id, 0, NULL,
	                  (int)w->cfg->workers_max_attempts) == -1)
		return -1;
	return 0;
}
