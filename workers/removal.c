/*
 * removal.c - the teardown report: what a destroy removed, as checked.
 *
 * A provider's destroy calls removal_found() for each object it sees
 * before it deletes anything, then, once a fresh look (a listing, a
 * describe) shows none of a kind left, removal_gone() for that kind. The
 * rows (teardown_items, 014) outlive a killed worker, so the next one's
 * look confirms what the first removed. The PR comment lists the gone
 * ones; a found one never confirmed is shown as such, never as removed.
 *
 * A NULL removal, or one with env_id 0, records nothing: a stop, the
 * sweep's orphans (no environment row) and the tools use that.
 */
#include <string.h>

#include "workers.h"

void
removal_init(struct removal *rm, struct db *db, uint64_t env_id)
{
	rm->db = db;
	rm->env_id = env_id;
}

static bool
removal_on(const struct removal *rm)
{
	return rm != NULL && rm->db != NULL && rm->env_id != 0;
}

/* A new destroy of the environment: the last one's list goes. */
int
removal_begin(struct removal *rm)
{
	if (!removal_on(rm))
		return 0;
	return db_exec(rm->db, "DELETE FROM teardown_items WHERE env_id = ?",
	               "u", rm->env_id);
}

int
removal_found(struct removal *rm, const char *kind, const char *name,
              size_t len)
{
	char text[256];

	if (!removal_on(rm) || len == 0)
		return 0;
	/* The column's width; longer names (none of ours) are cut. */
	if (len >= sizeof(text))
		len = sizeof(text) - 1;
	memcpy(text, name, len);
	text[len] = '\0';
	return db_exec(rm->db,
	               "INSERT IGNORE INTO teardown_items (env_id, kind, "
	               "name) VALUES (?, ?, ?)",
	               "uss", rm->env_id, kind, text);
}

/* Call only after a look that shows nothing of `kind` left. */
int
removal_gone(struct removal *rm, const char *kind)
{
	if (!removal_on(rm))
		return 0;
	return db_exec(rm->db,
	               "UPDATE teardown_items SET gone_at = NOW(6) WHERE "
	               "env_id = ? AND kind = ? AND gone_at IS NULL",
	               "us", rm->env_id, kind);
}
