/*
 * lease.c - named leases in the `leases` table: leadership for singletons
 * (the reaper) and the clock of recurring jobs. Not GET_LOCK: a lock tied
 * to a connection is unsafe on Galera and vanishes with the connection,
 * while a row with an expiry and a term number is plain replicated data.
 *
 * Taking an expired lease increments its term, and renewal is fenced on
 * (holder, term), so a paused leader that wakes up after being replaced
 * learns it on its next renewal instead of acting on stale authority.
 */
#include "workers.h"

static int
lease_take(struct db *db, const char *name, const char *holder, int64_t ms,
           uint64_t *term)
{
	/* LAST_INSERT_ID(expr) hands the new term back with the UPDATE. */
	if (db_exec(db,
	            "UPDATE leases SET holder = ?, term = "
	            "LAST_INSERT_ID(term + 1), lease_until = NOW(6) + "
	            "INTERVAL ? MICROSECOND, acquired_at = NOW(6) "
	            "WHERE name = ? AND lease_until < NOW(6)",
	            "sis", holder, ms * 1000, name) == -1)
		return -1;
	if (db_affected(db) == 0)
		return 0;
	*term = db_insert_id(db);
	return 1;
}

int
lease_hold(struct db *db, const char *name, const char *holder, int64_t ms,
           uint64_t *term)
{
	int rc;

	if (*term != 0) {
		if (db_exec(db,
		            "UPDATE leases SET lease_until = NOW(6) + "
		            "INTERVAL ? MICROSECOND WHERE name = ? AND "
		            "holder = ? AND term = ?",
		            "issu", ms * 1000, name, holder, *term) == -1)
			return -1;
		if (db_affected(db) == 1)
			return 1;
		*term = 0;
	}
	rc = lease_take(db, name, holder, ms, term);
	if (rc != 0)
		return rc;
	/* The row may not exist yet (a name no migration seeded). */
	if (db_exec(db, "INSERT IGNORE INTO leases (name) VALUES (?)", "s",
	            name) == -1)
		return -1;
	if (db_affected(db) == 0)
		return 0;
	return lease_take(db, name, holder, ms, term);
}

int
lease_release(struct db *db, const char *name, const char *holder,
              uint64_t term)
{
	return db_exec(db,
	               "UPDATE leases SET lease_until = NOW(6) - INTERVAL 1 "
	               "MICROSECOND WHERE name = ? AND holder = ? AND term = ?",
	               "ssu", name, holder, term);
}
