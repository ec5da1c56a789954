/*
 * delivery_batch.c - several webhook deliveries in one transaction: the
 * fcgi-app's threads hand what arrives together to one of them (batch.c),
 * which records it all in two round trips and one COMMIT (see
 * sql/migrations/010_delivery_batch_create.sql). On two cores a round
 * trip and a commit cost MariaDB more than a delivery's rows, so sharing
 * them is what lets ingestion keep up with a burst.
 *
 * Each delivery gets exactly what delivery.c would have given it alone,
 * in the order the batch holds them: the environment rows are locked
 * first, decide() runs for each delivery in turn against the row as the
 * batch's earlier deliveries left it, and every environment is written
 * once with its final state. A PR's first delivery creates its
 * environment here too, under the slug slug_make gives, when no other
 * environment holds that slug (checked under the lock, and among the
 * batch's own new ones). A delivery that needs more (a suffixed slug, a
 * command, an uninstall) is marked `direct`, and so is every later one
 * for the same environment: after this batch commits, its thread records
 * it one at a time with delivery_record. When the batch fails as a whole
 * (a duplicate delivery id among them, an environment or slug another
 * connection created meanwhile, a broken connection), all of it is
 * direct: a delivery that did commit then reads as a duplicate, never
 * twice.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

/* A lost race with a worker's lock is retried; anything else goes direct. */
#define BATCH_TX_TRIES 3

struct batch_env {
	const char *repo;
	uint64_t pr;
	char slug[64];       /* the one it is created with, if it is */
	bool slug_taken;     /* by another environment, when locked */
	bool found;          /* it exists, or the batch creates it */
	bool created;        /* the batch creates it */
	unsigned new_place;  /* created: its place in p_new, from 1 */
	bool direct;         /* its deliveries from here on go one at a time */
	struct env_state st; /* as locked, then as the batch changes it */
	uint64_t installation;
	struct delivery *last; /* the last delivery that writes the row */
	bool reconcile;
};

struct batch_tx {
	struct delivery **ds;
	size_t n;
	struct batch_env *envs;
	size_t nenvs;
};

static int
env_cmp(const void *a, const void *b)
{
	const struct batch_env *x = a, *y = b;
	int c = strcmp(x->repo, y->repo);

	if (c != 0)
		return c;
	return x->pr < y->pr ? -1 : x->pr > y->pr;
}

static struct batch_env *
env_find(const struct batch_tx *t, const struct event *ev)
{
	struct batch_env key = {.repo = ev->repo, .pr = ev->pr};

	if (!event_env_scoped(ev))
		return NULL;
	return bsearch(&key, t->envs, t->nenvs, sizeof(key), env_cmp);
}

/* The distinct environments of the batch, sorted: the lock order. */
static void
envs_collect(struct batch_tx *t)
{
	size_t i, j;

	t->envs = xcalloc(t->n, sizeof(*t->envs));
	t->nenvs = 0;
	for (i = 0; i < t->n; i++) {
		const struct event *ev = t->ds[i]->ev;

		if (!event_env_scoped(ev))
			continue;
		t->envs[t->nenvs].repo = ev->repo;
		t->envs[t->nenvs].pr = ev->pr;
		t->nenvs++;
	}
	qsort(t->envs, t->nenvs, sizeof(*t->envs), env_cmp);
	for (i = j = 0; i < t->nenvs; i++)
		if (j == 0 || env_cmp(&t->envs[j - 1], &t->envs[i]) != 0)
			t->envs[j++] = t->envs[i];
	t->nenvs = j;
}

static void
json_str(struct buf *b, const char *s)
{
	if (s == NULL)
		buf_puts(b, "null");
	else
		buf_append_json_string(b, s, strlen(s));
}

/* Opens the transaction and reads the locked rows into t->envs. */
static int
envs_lock(struct db *db, struct batch_tx *t)
{
	struct buf keys = BUF_INIT;
	struct db_rows *r = NULL;
	size_t i, j;
	uint64_t n;
	int rc = -1;

	buf_putc(&keys, '[');
	for (i = 0; i < t->nenvs; i++) {
		buf_puts(&keys, i ? ",[" : "[");
		json_str(&keys, t->envs[i].repo);
		buf_printf(&keys, ",%llu,", (unsigned long long)t->envs[i].pr);
		json_str(&keys, t->envs[i].slug);
		buf_putc(&keys, ']');
	}
	buf_putc(&keys, ']');
	if (db_query(db, &r, "CALL delivery_batch_lock(?)", "s",
	             buf_str(&keys)) == -1)
		goto out;
	for (i = 0; i < db_rows_count(r); i++) {
		struct batch_env *e;

		if (parse_uint64(db_rows_get(r, i, 0), &n) == -1 || n == 0 ||
		    n > t->nenvs)
			continue;
		e = &t->envs[n - 1];
		if (db_rows_get(r, i, 1) == NULL) {
			const char *taken = db_rows_get(r, i, 8);

			e->slug_taken =
			        taken == NULL || strcmp(taken, "1") == 0;
			continue;
		}
		e->found = true;
		env_state_read(r, i, 1, &e->st);
		parse_uint64(db_rows_get(r, i, 7), &e->installation);
	}
	/*
	 * Two spellings of one repository ("Org/App", "org/app") are one row
	 * to the collation: decided apart they would each miss the other's
	 * change, so both go one at a time.
	 */
	for (i = 0; i < t->nenvs; i++)
		for (j = i + 1; t->envs[i].found && j < t->nenvs; j++)
			if (t->envs[j].found &&
			    t->envs[j].st.id == t->envs[i].st.id)
				t->envs[i].direct = t->envs[j].direct = true;
	rc = 0;
out:
	db_rows_free(r);
	buf_free(&keys);
	return rc;
}

/* What delivery_apply's call or env_insert does, nothing more. */
static bool
batchable(const struct change *ch)
{
	return ch->op == CHANGE_IGNORE || ch->op == CHANGE_PING ||
	       (ch->op == CHANGE_ENV && ch->command == NULL);
}

/*
 * Whether the batch may insert e under slug_make's slug: no environment
 * held it when locked, and none of the batch's own new ones takes it
 * ("a/app" and "b/app", or "Org/App" and "org/app", give one slug).
 * Otherwise delivery.c's slug_pick finds a free one, after the batch.
 */
static bool
env_creatable(const struct batch_tx *t, const struct batch_env *e)
{
	size_t i;

	if (e->slug_taken)
		return false;
	for (i = 0; i < t->nenvs; i++)
		if (t->envs[i].created && strcmp(t->envs[i].slug, e->slug) == 0)
			return false;
	return true;
}

/* decide() for each delivery in turn, against the rows as they evolve. */
static size_t
batch_decide(struct batch_tx *t)
{
	size_t i, kept = 0;

	for (i = 0; i < t->n; i++) {
		struct delivery *d = t->ds[i];
		const struct event *ev = d->ev;
		struct change *ch = &d->change;
		struct batch_env *e = env_find(t, ev);

		d->id = d->env_id = d->command_id = 0;
		d->reconciles = 0;
		d->duplicate = false;
		d->env_new = false;
		d->direct = e != NULL && e->direct;
		if (d->direct)
			continue;
		decide(ev, e && e->found ? &e->st : NULL, UINT64_MAX, d->policy,
		       ch);
		if (!batchable(ch) ||
		    (ch->create && (e == NULL || !env_creatable(t, e)))) {
			d->direct = true;
			if (e != NULL)
				e->direct = true;
			continue;
		}
		kept++;
		/* From here on, as if found (e->st is still blank); the
		 * row's id is known only once delivery_batch_apply inserts it. */
		if (ch->create)
			e->found = e->created = true;
		if (e == NULL || !e->found)
			continue;
		d->env_id = e->st.id;
		d->env_new = e->created;
		if (ch->op != CHANGE_ENV)
			continue;
		if (ch->metadata) {
			e->last = d;
			if (ch->desired != NULL)
				snprintf(e->st.desired, sizeof(e->st.desired),
				         "%s", ch->desired);
			if (ch->set_sha)
				snprintf(e->st.desired_sha,
				         sizeof(e->st.desired_sha), "%s",
				         ev->head_sha);
			e->st.has_updated_at = ev->has_updated_at;
			e->st.pr_updated_at = ev->updated_at;
			if (ev->installation_id != 0)
				e->installation = ev->installation_id;
		}
		if (ch->reconcile) {
			e->reconcile = true;
			d->reconciles = 1;
		}
	}
	return kept;
}

static void
deliveries_json(const struct batch_tx *t, struct buf *b)
{
	size_t i, j;
	bool first = true;

	buf_putc(b, '[');
	for (i = 0; i < t->n; i++) {
		const struct delivery *d = t->ds[i];
		const struct event *ev = d->ev;
		const char *text[] = {d->guid, ev->name, ev->action, ev->repo};

		if (d->direct)
			continue;
		buf_puts(b, first ? "[" : ",[");
		first = false;
		for (j = 0; j < NELEM(text); j++) {
			json_str(b, text[j]);
			buf_putc(b, ',');
		}
		buf_printf(b, "%llu,%llu,", (unsigned long long)ev->pr,
		           (unsigned long long)d->env_id);
		json_str(b, d->change.result);
		buf_putc(b, ',');
		json_str(b, d->change.reason);
		buf_printf(b, ",%u]",
		           d->env_new ? env_find(t, ev)->new_place : 0);
	}
	buf_putc(b, ']');
}

/* One environment's final row, written from its last delivery. */
static void
env_json(const struct batch_env *e, struct buf *b)
{
	const struct delivery *d = e->last;
	const struct event *ev = d->ev;
	struct buf labels = BUF_INIT;
	const char *text[] = {
	        ev->title,     ev->author,    ev->author_association,
	        ev->head_ref,  ev->head_repo, ev->base_ref,
	        ev->clone_url, e->st.desired, e->st.desired_sha};
	char when[21];
	size_t i;

	buf_printf(b, "[%llu,", (unsigned long long)e->st.id);
	json_str(b, d->guid);
	buf_printf(b, ",%llu", (unsigned long long)e->installation);
	for (i = 0; i < NELEM(text); i++) {
		buf_putc(b, ',');
		json_str(b, text[i]);
	}
	buf_printf(b, ",%d,%d,", d->change.trusted ? 1 : 0, ev->draft ? 1 : 0);
	event_labels_json(ev, &labels);
	json_str(b, buf_str(&labels));
	buf_putc(b, ',');
	json_str(b, event_sql_time(ev, when));
	buf_printf(b, ",%d,1,%u]", e->reconcile ? 1 : 0, e->new_place);
	buf_free(&labels);
}

/* The environments to create, in lock order: their places in it. */
static void
news_json(struct batch_tx *t, struct buf *b)
{
	unsigned place = 0;
	size_t i;

	buf_putc(b, '[');
	for (i = 0; i < t->nenvs; i++) {
		struct batch_env *e = &t->envs[i];

		if (!e->created)
			continue;
		e->new_place = ++place;
		buf_puts(b, place > 1 ? ",[" : "[");
		json_str(b, e->repo);
		buf_printf(b, ",%llu,", (unsigned long long)e->pr);
		json_str(b, e->slug);
		buf_putc(b, ']');
	}
	buf_putc(b, ']');
}

static void
envs_json(const struct batch_tx *t, struct buf *b)
{
	size_t i;
	bool first = true;

	buf_putc(b, '[');
	for (i = 0; i < t->nenvs; i++) {
		const struct batch_env *e = &t->envs[i];

		if (e->last == NULL && !e->reconcile)
			continue;
		if (!first)
			buf_putc(b, ',');
		first = false;
		if (e->last != NULL) {
			env_json(e, b);
			continue;
		}
		/* A reconcile without a write (of a row that exists): only
		 * [16] is read. */
		buf_printf(b,
		           "[%llu,null,0,null,null,null,null,null,null,"
		           "null,null,null,0,0,null,null,1,0,0]",
		           (unsigned long long)e->st.id);
	}
	buf_putc(b, ']');
}

static int
batch_apply(struct db *db, struct batch_tx *t)
{
	struct buf news = BUF_INIT, dels = BUF_INIT, envs = BUF_INIT;
	struct db_rows *r = NULL;
	size_t i, j;
	int rc = -1;

	news_json(t, &news); /* first: the others name its places */
	deliveries_json(t, &dels);
	envs_json(t, &envs);
	if (db_query(db, &r, "CALL delivery_batch_apply(?, ?, ?, ?)", "sssi",
	             buf_str(&news), buf_str(&dels), buf_str(&envs),
	             (int64_t)t->ds[0]->max_attempts) == -1)
		goto out;
	for (i = 0; i < db_rows_count(r); i++) {
		const char *guid = db_rows_get(r, i, 1);

		for (j = 0; j < t->n; j++) {
			struct delivery *d = t->ds[j];

			if (d->direct || strcmp(d->guid, guid) != 0)
				continue;
			parse_uint64(db_rows_get(r, i, 0), &d->id);
			if (d->env_new)
				parse_uint64(db_rows_get(r, i, 2), &d->env_id);
		}
	}
	rc = 0;
out:
	db_rows_free(r);
	buf_free(&news);
	buf_free(&dels);
	buf_free(&envs);
	return rc;
}

static int
batch_tx_run(struct db *db, void *arg)
{
	struct batch_tx *t = arg;
	size_t i;

	/* Each try starts from the keys alone. */
	for (i = 0; i < t->nenvs; i++) {
		struct batch_env *e = &t->envs[i];

		*e = (struct batch_env){.repo = e->repo, .pr = e->pr};
		slug_make(e->repo, e->pr, e->slug);
	}
	if (t->nenvs > 0 && envs_lock(db, t) == -1)
		return -1;
	/* Nothing left for the batch: end the transaction, release the rows. */
	if (batch_decide(t) == 0)
		return 0;
	return batch_apply(db, t);
}

void
delivery_batch_record(struct db *db, struct delivery **ds, size_t n)
{
	struct batch_tx t = {ds, n, NULL, 0};
	size_t i;

	envs_collect(&t);
	if (db_tx_self(db, batch_tx_run, &t, BATCH_TX_TRIES) == -1) {
		/* A duplicate is GitHub redelivering, or a race lost to
		 * another connection's insert: expected, but every delivery
		 * of the batch then costs its own commit, so say so. */
		if (db_error(db) == DB_DUPLICATE)
			log_info("delivery_batch_alone",
			         "deliveries=%zu reason=duplicate", n);
		else
			log_warn("delivery_batch_failed",
			         "deliveries=%zu errno=%u", n, db_errno(db));
		for (i = 0; i < n; i++)
			ds[i]->direct = true;
	}
	free(t.envs);
}
