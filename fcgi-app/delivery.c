/*
 * delivery.c - the MariaDB side of one webhook delivery, all in one
 * transaction (db_tx_self): lock the environment row, ask decide() what to do,
 * record the delivery with that outcome (its GUID is UNIQUE, so a
 * duplicate stops there and changes nothing), write the environment and
 * queue at most one reconcile per environment. Nothing is visible until
 * COMMIT, and the caller answers 202 only after it: a delivery that never
 * committed left no trace, so GitHub's redelivery of it is processed as
 * new.
 *
 * The session is READ COMMITTED (db_read_committed in main.c): locking
 * reads of a missing environment take no gap lock, so two first
 * deliveries of one PR do not deadlock; the second's insert waits for the
 * first and fails as a duplicate, and delivery_record runs it again
 * against the row that now exists.
 *
 * Round trips are what a delivery costs on a small machine (each is a
 * wake-up and a few system calls on both sides), so the usual case, an
 * existing environment, is two: CALL delivery_lock (START TRANSACTION and
 * the locking read), decide() here, then CALL delivery_apply (record,
 * update, queue, COMMIT); see sql/migrations/007_delivery_calls.sql. The
 * rare cases (a new environment, a command, an uninstall) record the
 * delivery with the same call, do the rest statement by statement, and
 * db_tx_self commits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

#define DELIVERY_TX_TRIES 5

struct tx {
	struct delivery *d;
	bool env_dup; /* a concurrent first insert won: run again */
};

void
env_state_read(const struct db_rows *r, size_t row, size_t col,
               struct env_state *st)
{
	const char *v = db_rows_get(r, row, col + 3);

	memset(st, 0, sizeof(*st));
	parse_uint64(db_rows_get(r, row, col), &st->id);
	snprintf(st->desired, sizeof(st->desired), "%s",
	         db_rows_get(r, row, col + 1));
	snprintf(st->desired_sha, sizeof(st->desired_sha), "%s",
	         db_rows_get(r, row, col + 2));
	st->has_updated_at =
	        v != NULL && parse_iso8601(v, &st->pr_updated_at) == 0;
	parse_uint64(db_rows_get(r, row, col + 4), &st->last_delivery_id);
	st->approved = strcmp(db_rows_get(r, row, col + 5), "1") == 0;
}

bool
event_env_scoped(const struct event *ev)
{
	return ev->repo != NULL && ev->pr != 0 &&
	       (ev->kind == EVENT_PULL_REQUEST ||
	        ev->kind == EVENT_ISSUE_COMMENT);
}

/* The environment row, locked, in a transaction the call opens. */
static int
env_load(struct db *db, const char *repo, uint64_t pr, struct env_state *st,
         bool *found)
{
	struct db_rows *r = NULL;

	*found = false;
	memset(st, 0, sizeof(*st));
	if (db_query(db, &r, "CALL delivery_lock(?, ?)", "su", repo, pr) == -1)
		return -1;
	if (db_rows_count(r) == 1) {
		*found = true;
		env_state_read(r, 0, 0, st);
	}
	db_rows_free(r);
	return 0;
}

/*
 * slug_make's name, or, when another repository holds it, the suffixed
 * one (longer suffixes only if someone squats the shorter: a repository
 * name is attacker-chosen). Locking reads, so two first inserts race into
 * a deadlock that db_tx retries rather than into a duplicate.
 */
static int
slug_pick(struct db *db, const char *repo, uint64_t pr, char out[static 64])
{
	static const size_t hexlens[] = {0, 6, 12, 24};
	struct db_rows *r = NULL;
	size_t i;
	bool taken;

	for (i = 0; i < NELEM(hexlens); i++) {
		if (hexlens[i] == 0)
			slug_make(repo, pr, out);
		else
			slug_make_suffixed(repo, pr, hexlens[i], out);
		if (db_query(db, &r,
		             "SELECT id FROM environments WHERE slug = ? "
		             "FOR UPDATE",
		             "s", out) == -1)
			return -1;
		taken = db_rows_count(r) > 0;
		db_rows_free(r);
		if (!taken)
			return 0;
	}
	log_error("slug_exhausted", "repo=%s pr=%llu", log_q(repo),
	          (unsigned long long)pr);
	return -1;
}

void
event_labels_json(const struct event *ev, struct buf *b)
{
	size_t i;

	buf_putc(b, '[');
	for (i = 0; i < ev->nlabels; i++) {
		if (i)
			buf_putc(b, ',');
		buf_append_json_string(b, ev->labels[i], strlen(ev->labels[i]));
	}
	buf_putc(b, ']');
}

const char *
event_sql_time(const struct event *ev, char out[static 21])
{
	if (!ev->has_updated_at)
		return NULL;
	format_iso8601(ev->updated_at, out);
	out[10] = ' ';
	out[19] = '\0';
	return out;
}

static int
env_insert(struct db *db, struct tx *t)
{
	struct delivery *d = t->d;
	const struct event *ev = d->ev;
	const struct change *ch = &d->change;
	struct buf labels = BUF_INIT;
	char slug[64], when[21];
	int rc = -1;

	if (slug_pick(db, ev->repo, ev->pr, slug) == -1)
		goto out;
	event_labels_json(ev, &labels);
	if (db_exec(db,
	            "INSERT INTO environments (repo, pr, slug, "
	            "installation_id, title, author, author_association, "
	            "head_ref, head_repo, base_ref, clone_url, desired, "
	            "desired_sha, trusted, draft, labels, pr_updated_at, "
	            "last_delivery_id) VALUES (?, ?, ?, NULLIF(?, 0), ?, ?, ?, "
	            "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
	            "susu"
	            "sssssss"
	            "ss"
	            "ii"
	            "ss"
	            "u",
	            ev->repo, ev->pr, slug, ev->installation_id, ev->title,
	            ev->author, ev->author_association, ev->head_ref,
	            ev->head_repo, ev->base_ref, ev->clone_url, ch->desired,
	            ch->set_sha ? ev->head_sha : NULL, (int64_t)ch->trusted,
	            (int64_t)ev->draft, buf_str(&labels),
	            event_sql_time(ev, when), d->id) == -1) {
		t->env_dup = db_error(db) == DB_DUPLICATE;
		goto out;
	}
	d->env_id = db_insert_id(db);
	rc = 0;
out:
	buf_free(&labels);
	return rc;
}

/* A command for a worker to authorise, and the job that makes it look. */
static int
command_insert(struct db *db, struct delivery *d)
{
	const struct event *ev = d->ev;
	struct change *ch = &d->change;
	bool label = strcmp(ch->command_source, "label") == 0;
	char id[24];

	if (db_exec(db,
	            "INSERT INTO commands (env_id, delivery_id, repo, pr, "
	            "command, args, source, commenter, author_association, "
	            "comment_id, installation_id) VALUES (?, ?, ?, ?, ?, ?, "
	            "?, ?, ?, NULLIF(?, 0), NULLIF(?, 0))",
	            "uususssssuu", d->env_id, d->id, ev->repo, ev->pr,
	            ch->command, ch->command_args, ch->command_source,
	            label ? ev->sender : ev->commenter,
	            label ? "" : ev->commenter_association,
	            label ? (uint64_t)0 : ev->comment_id,
	            ev->installation_id) == -1) {
		if (db_error(db) != DB_DUPLICATE)
			return -1;
		/* The same comment through a new delivery id: once only. */
		ch->result = "ignored";
		ch->reason = "command already recorded";
		return 0;
	}
	d->command_id = db_insert_id(db);
	snprintf(id, sizeof(id), "%llu", (unsigned long long)d->command_id);
	return queue_enqueue(db, "command", d->env_id, 0, id, d->max_attempts);
}

static int
ids_add(struct db_rows *r, uint64_t **ids, size_t *n)
{
	size_t i, j;
	uint64_t id;

	for (i = 0; i < db_rows_count(r); i++) {
		if (parse_uint64(db_rows_get(r, i, 0), &id) == -1)
			continue;
		for (j = 0; j < *n && (*ids)[j] != id; j++)
			;
		if (j < *n)
			continue;
		*ids = xrealloc(*ids, (*n + 1) * sizeof(**ids));
		(*ids)[(*n)++] = id;
	}
	return 0;
}

/* Every live environment of the installation, or of the removed repos. */
static int
uninstall(struct db *db, struct delivery *d)
{
	const struct event *ev = d->ev;
	struct db_rows *r = NULL;
	uint64_t *ids = NULL;
	size_t n = 0, i;
	int rc = -1;

	if (ev->kind == EVENT_INSTALLATION) {
		if (db_query(db, &r,
		             "SELECT id FROM environments WHERE "
		             "installation_id = ? AND desired <> 'destroyed' "
		             "FOR UPDATE",
		             "u", ev->installation_id) == -1)
			goto out;
		ids_add(r, &ids, &n);
		db_rows_free(r);
		r = NULL;
	}
	for (i = 0; i < ev->nrepos; i++) {
		if (db_query(db, &r,
		             "SELECT id FROM environments WHERE repo = ? AND "
		             "(installation_id IS NULL OR installation_id = ?) "
		             "AND desired <> 'destroyed' FOR UPDATE",
		             "su", ev->repos[i], ev->installation_id) == -1)
			goto out;
		ids_add(r, &ids, &n);
		db_rows_free(r);
		r = NULL;
	}
	for (i = 0; i < n; i++) {
		if (db_exec(db,
		            "UPDATE environments SET desired = 'destroyed', "
		            "last_delivery_id = ? WHERE id = ?",
		            "uu", d->id, ids[i]) == -1 ||
		    queue_enqueue(db, "reconcile", ids[i], 0, NULL,
		                  d->max_attempts) == -1)
			goto out;
		d->reconciles++;
	}
	if (n == 1)
		d->env_id = ids[0];
	rc = 0;
out:
	db_rows_free(r);
	free(ids);
	return rc;
}

/* The outcome, when it is known only after the row went in (rare paths). */
static int
delivery_note(struct db *db, const struct delivery *d)
{
	return db_exec(db,
	               "UPDATE deliveries SET result = ?, reason = ?, "
	               "env_id = NULLIF(?, 0) WHERE id = ?",
	               "ssuu", d->change.result, d->change.reason, d->env_id,
	               d->id);
}

/*
 * Records the delivery and, in the same call, writes an existing
 * environment and queues its reconcile as the change asks; `commit` when
 * that is all the delivery does (the usual path).
 */
static int
delivery_apply(struct db *db, struct delivery *d, bool commit)
{
	const struct event *ev = d->ev;
	const struct change *ch = &d->change;
	bool existing = !ch->create &&
	                (ch->op == CHANGE_ENV || ch->op == CHANGE_COMMAND);
	bool update = existing && ch->metadata;
	bool reconcile = existing && ch->reconcile;
	struct buf labels = BUF_INIT;
	struct db_rows *r = NULL;
	char when[21];
	int rc = -1;

	if (update)
		event_labels_json(ev, &labels);
	if (db_query(db, &r,
	             "CALL delivery_apply(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
	             "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
	             "ssssuuss"
	             "iusssssss"
	             "ssiiss"
	             "iii",
	             d->guid, ev->name, ev->action, ev->repo, ev->pr, d->env_id,
	             ch->result, ch->reason, (int64_t)update,
	             ev->installation_id, ev->title, ev->author,
	             ev->author_association, ev->head_ref, ev->head_repo,
	             ev->base_ref, ev->clone_url, ch->desired,
	             ch->set_sha ? ev->head_sha : NULL, (int64_t)ch->trusted,
	             (int64_t)ev->draft, update ? buf_str(&labels) : NULL,
	             update ? event_sql_time(ev, when) : NULL,
	             (int64_t)reconcile, (int64_t)d->max_attempts,
	             (int64_t)commit) == -1) {
		if (db_error(db) == DB_DUPLICATE) {
			/* Seen before (or a twin committed first). */
			d->duplicate = true;
			rc = 0;
		}
		goto out;
	}
	if (db_rows_count(r) != 1 ||
	    parse_uint64(db_rows_get(r, 0, 0), &d->id) == -1) {
		log_error("delivery_apply", "reason=no_id guid=%s",
		          log_q(d->guid));
		goto out;
	}
	if (reconcile)
		d->reconciles++;
	rc = 0;
out:
	db_rows_free(r);
	buf_free(&labels);
	return rc;
}

static int
delivery_tx(struct db *db, void *arg)
{
	struct tx *t = arg;
	struct delivery *d = t->d;
	const struct event *ev = d->ev;
	struct change *ch = &d->change;
	const char *result;
	struct env_state cur;
	bool found = false, all;

	d->id = d->env_id = d->command_id = 0;
	d->reconciles = 0;
	d->duplicate = false;
	if (event_env_scoped(ev)) {
		if (env_load(db, ev->repo, ev->pr, &cur, &found) == -1)
			return -1;
	} else if (db_raw(db, "START TRANSACTION") == -1) {
		return -1;
	}
	/*
	 * Deliveries for one environment are decided one at a time, in the
	 * order they lock its row, and each gets its id after the lock: so
	 * this one is the newest yet to reach the row, and only the PR's
	 * updated_at can make it stale.
	 */
	decide(ev, found ? &cur : NULL, UINT64_MAX, d->policy, ch);
	if (found)
		d->env_id = cur.id;
	result = ch->result;
	/* The usual path: nothing to do that the call cannot. */
	all = ch->op == CHANGE_IGNORE || ch->op == CHANGE_PING ||
	      (ch->op == CHANGE_ENV && !ch->create && ch->command == NULL);
	if (delivery_apply(db, d, all) == -1)
		return -1;
	if (d->duplicate || all)
		return 0;
	switch (ch->op) {
	case CHANGE_IGNORE:
	case CHANGE_PING:
		return 0;
	case CHANGE_ENV:
	case CHANGE_COMMAND:
		if (ch->create && env_insert(db, t) == -1)
			return -1;
		/* An existing environment was written by delivery_apply. */
		if (ch->create && ch->reconcile) {
			if (queue_enqueue(db, "reconcile", d->env_id, 0, NULL,
			                  d->max_attempts) == -1)
				return -1;
			d->reconciles++;
		}
		if (ch->command && command_insert(db, d) == -1)
			return -1;
		break;
	case CHANGE_UNINSTALL:
		if (uninstall(db, d) == -1)
			return -1;
		break;
	}
	if (ch->create || ch->result != result)
		return delivery_note(db, d);
	return 0;
}

enum delivery_outcome
delivery_record(struct db *db, struct delivery *d)
{
	struct tx t = {d, false};
	int attempt;

	for (attempt = 0; attempt < 3; attempt++) {
		t.env_dup = false;
		if (db_tx_self(db, delivery_tx, &t, DELIVERY_TX_TRIES) == 0)
			return d->duplicate ? DELIVERY_DUPLICATE
			                    : DELIVERY_DONE;
		if (!t.env_dup)
			break;
	}
	return DELIVERY_FAILED;
}
