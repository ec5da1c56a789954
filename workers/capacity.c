/*
 * capacity.c - the cap on running environments (environments.max_running).
 * Admission is one short transaction serialised on the single row of the
 * `capacity` table, so two workers can never both take the last slot.
 * Waiting is first come, first served: an environment is admitted only if
 * a slot is free and none has been queued longer.
 */
#include <string.h>

#include "workers.h"

struct admit {
	uint64_t env_id;
	int64_t max;
	int outcome;
};

static int
admit_tx(struct db *db, void *arg)
{
	struct admit *a = arg;
	struct db_rows *r = NULL;
	int64_t running = 0, older = 0;
	int rc = -1;

	if (db_query(db, &r, "SELECT id FROM capacity WHERE id = 1 FOR UPDATE",
	             "") == -1)
		return -1;
	db_rows_free(r);
	r = NULL;
	if (db_query(db, &r,
	             "SELECT (SELECT COUNT(*) FROM environments WHERE phase IN "
	             "('deploying', 'ready') AND id <> ?), "
	             "(SELECT COUNT(*) FROM environments o, environments me "
	             "WHERE me.id = ? AND o.phase = 'queued' AND o.id <> me.id "
	             "AND o.queued_at < COALESCE(me.queued_at, NOW(6)))",
	             "uu", a->env_id, a->env_id) == -1)
		goto out;
	parse_int64(db_rows_get(r, 0, 0), 0, INT64_MAX, &running);
	parse_int64(db_rows_get(r, 0, 1), 0, INT64_MAX, &older);
	if (running < a->max && older == 0) {
		a->outcome = 0;
		rc = db_exec(db,
		             "UPDATE environments SET phase = 'deploying', "
		             "queued_at = NULL, error = NULL WHERE id = ?",
		             "u", a->env_id);
	} else {
		a->outcome = 1;
		rc = db_exec(db,
		             "UPDATE environments SET phase = 'queued', "
		             "queued_at = COALESCE(queued_at, NOW(6)) "
		             "WHERE id = ?",
		             "u", a->env_id);
	}
out:
	db_rows_free(r);
	return rc;
}

int
capacity_admit(struct db *db, uint64_t env_id, int64_t max_running)
{
	struct admit a = {env_id, max_running, -1};

	if (db_tx(db, admit_tx, &a, 5) == -1)
		return -1;
	return a.outcome;
}

/* Every queued environment gets a reconcile; the oldest one wins the slot. */
int
capacity_release(struct db *db, int max_attempts)
{
	struct db_rows *r = NULL;
	size_t i;
	int rc = 0;

	if (db_query(db, &r,
	             "SELECT id FROM environments WHERE phase = 'queued' "
	             "ORDER BY queued_at, id",
	             "") == -1)
		return -1;
	for (i = 0; i < db_rows_count(r); i++) {
		uint64_t id = 0;

		parse_uint64(db_rows_get(r, i, 0), &id);
		if (queue_enqueue(db, "reconcile", id, 0, NULL, max_attempts) ==
		    -1)
			rc = -1;
	}
	db_rows_free(r);
	return rc;
}
