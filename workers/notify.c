/*
 * notify.c - what the PR should be told, through one interface. Every
 * change is recorded in `notifications` (the history the status page and
 * tests read); when a GitHub App is configured, a `notify` job is queued
 * too, whose handler brings the PR's comment, statuses and deployments in
 * line with the database. GitHub's slowness or rate limits therefore never
 * hold up a deploy, and the notify job runs in its own lane (012), beside
 * the environment's reconcile, so it never waits for one either.
 */
#include <string.h>

#include "workers.h"

int
notify_env(struct worker *w, uint64_t env_id, const char *phase,
           const char *message)
{
	/* The history says what happened even when there is nothing more
	 * to say than the phase: message is NOT NULL (004). */
	if (db_exec(w->db,
	            "INSERT INTO notifications (env_id, phase, message) "
	            "VALUES (?, ?, ?)",
	            "uss", env_id, phase, message ? message : "") == -1)
		return -1;
	if (w->cfg->github_enabled &&
	    queue_enqueue(w->db, "notify", env_id, 0, NULL,
	                  (int)w->cfg->workers_max_attempts) == -1)
		return -1;
	return 0;
}

/* The phases a user sees change; the passing ones are announced where
 * they begin (deploying), or not at all (stopping, destroying). */
static bool
phase_told(const char *phase)
{
	static const char *const told[] = {
	        "queued", "budget",  "deploying", "ready",
	        "failed", "stopped", "destroyed", "awaiting_approval"};
	size_t i;

	for (i = 0; i < NELEM(told); i++)
		if (strcmp(phase, told[i]) == 0)
			return true;
	return false;
}

/*
 * A reconcile that ends with nothing left to do makes sure the PR was
 * told the phase the environment is in: when the notification of a change
 * could not be recorded (its job was retried), this is where it lands.
 */
int
notify_catch_up(struct worker *w, uint64_t env_id, const char *phase,
                const char *message)
{
	struct db_rows *r = NULL;
	int rc = -1;

	if (phase == NULL || !phase_told(phase))
		return 0;
	if (db_query(w->db, &r,
	             "SELECT phase FROM notifications WHERE env_id = ? "
	             "ORDER BY id DESC LIMIT 1",
	             "u", env_id) == -1)
		goto out;
	if (db_rows_count(r) == 1 && strcmp(db_rows_get(r, 0, 0), phase) == 0) {
		rc = 0;
		goto out;
	}
	log_info("notify_catch_up", "env=%llu phase=%s",
	         (unsigned long long)env_id, phase);
	rc = notify_env(w, env_id, phase, message);
out:
	db_rows_free(r);
	return rc;
}
