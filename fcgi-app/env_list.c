/*
 * env_list.c - loads environments for the API and the pages, each with
 * its last build and its usage. The rows are the database's text, owned by
 * the env_list; times come out of SQL already in ISO 8601 UTC so that no
 * view has to reformat them, and as epoch seconds where usage needs them.
 *
 * A list is one page (env_filter.c): the page's ids are chosen first, then
 * each environment's first build start and last build come from index
 * dives on builds (env_id, started_at) and (env_id, id), so the cost
 * grows with the page, not with the number of builds (bench/status).
 * The dives are written ORDER BY ... LIMIT 1: MariaDB runs a correlated
 * MIN()/MAX() as a scan of the environment's whole index range instead,
 * measured 3-4 times slower. The page is read in index order (FORCE
 * INDEX): with the optional filters written as (? IS NULL OR ...) the
 * optimizer otherwise sorts the whole table for every page.
 */
#include <stdlib.h>
#include <string.h>

#include "app.h"

/* The columns, in the order env_row() reads them. */
static const char env_columns[] =
        "SELECT e.id, e.repo, e.pr, e.slug, e.title, e.author, e.desired,"
        " e.phase, e.desired_sha, e.deployed_sha, e.url, e.error,"
        " DATE_FORMAT(e.created_at, '%Y-%m-%dT%H:%i:%sZ'),"
        " DATE_FORMAT(e.updated_at, '%Y-%m-%dT%H:%i:%sZ'),"
        " e.head_ref, lb.id, lb.status,"
        " DATE_FORMAT(lb.started_at, '%Y-%m-%dT%H:%i:%sZ'),"
        " DATE_FORMAT(lb.finished_at, '%Y-%m-%dT%H:%i:%sZ'),"
        " UNIX_TIMESTAMP((SELECT started_at FROM builds"
        " WHERE env_id = e.id ORDER BY started_at LIMIT 1)),"
        " UNIX_TIMESTAMP(e.updated_at),"
        " UNIX_TIMESTAMP(lb.started_at), UNIX_TIMESTAMP(lb.finished_at),"
        " e.services ";

static const char env_list_sql_tail[] =
        "FROM (SELECT id, updated_at FROM environments"
        " FORCE INDEX (environments_updated)"
        " WHERE (? IS NULL OR repo = ?) AND (? IS NULL OR phase = ?)"
        " ORDER BY updated_at DESC, id DESC LIMIT ? OFFSET ?) p"
        " JOIN environments e ON e.id = p.id"
        " LEFT JOIN builds lb ON lb.id ="
        " (SELECT id FROM builds WHERE env_id = e.id"
        " ORDER BY id DESC LIMIT 1)"
        " ORDER BY p.updated_at DESC, p.id DESC";

static const char env_one_sql_tail[] =
        "FROM environments e"
        " LEFT JOIN builds lb ON lb.id ="
        " (SELECT id FROM builds WHERE env_id = e.id"
        " ORDER BY id DESC LIMIT 1)"
        " WHERE e.id = ?";

/* Epoch seconds from SQL text; NULL (no build, still running) is -1. */
static double
epoch(const char *v)
{
	return v ? strtod(v, NULL) : -1;
}

static char *
dup_or_null(const char *v)
{
	return v ? xstrdup(v) : NULL;
}

static void
env_row(const struct db_rows *rows, size_t i, double now, double price,
        struct env_view *e)
{
	char **f[] = {&e->id,
	              &e->repo,
	              &e->pr,
	              &e->slug,
	              &e->title,
	              &e->author,
	              &e->desired,
	              &e->phase,
	              &e->sha,
	              &e->deployed_sha,
	              &e->url,
	              &e->error,
	              &e->created_at,
	              &e->updated_at,
	              &e->branch,
	              &e->build_id,
	              &e->build_status,
	              &e->build_started_at,
	              &e->build_finished_at};
	size_t c;

	for (c = 0; c < NELEM(f); c++)
		*f[c] = dup_or_null(db_rows_get(rows, i, c));
	e->instance_seconds =
	        usage_instance_seconds(e->phase, epoch(db_rows_get(rows, i, c)),
	                               epoch(db_rows_get(rows, i, c + 1)), now);
	e->build_seconds =
	        usage_build_seconds(epoch(db_rows_get(rows, i, c + 2)),
	                            epoch(db_rows_get(rows, i, c + 3)), now);
	e->cost = e->instance_seconds / 3600.0 * price;
	/* Unreadable services show as none; the URL column still shows. */
	if (services_parse(db_rows_get(rows, i, c + 4), &e->services,
	                   &e->nservices) == -1)
		log_warn("env_services_unreadable", "env=%s", e->id);
}

static void
env_rows_take(const struct db_rows *rows, double now, double price,
              struct env_list *out)
{
	size_t i;

	out->n = db_rows_count(rows);
	out->items = xcalloc(out->n ? out->n : 1, sizeof(*out->items));
	for (i = 0; i < out->n; i++)
		env_row(rows, i, now, price, &out->items[i]);
}

static char *
sql_join(const char *a, const char *b)
{
	struct buf s = BUF_INIT;

	buf_puts(&s, a);
	buf_puts(&s, b);
	return buf_detach(&s);
}

int
env_list_load(struct db *db, const struct env_filter *flt, double now,
              double price, struct env_list *out)
{
	struct db_rows *rows = NULL;
	char *sql = sql_join(env_columns, env_list_sql_tail);
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (db_query(db, &rows, sql, "ssssii", flt->repo, flt->repo, flt->phase,
	             flt->phase, flt->per_page,
	             (flt->page - 1) * flt->per_page) == -1)
		goto out;
	env_rows_take(rows, now, price, out);
	rc = 0;
out:
	db_rows_free(rows);
	free(sql);
	return rc;
}

int
env_list_load_one(struct db *db, uint64_t id, double now, double price,
                  struct env_list *out)
{
	struct db_rows *rows = NULL;
	char *sql = sql_join(env_columns, env_one_sql_tail);
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (db_query(db, &rows, sql, "u", id) == -1)
		goto out;
	env_rows_take(rows, now, price, out);
	rc = 0;
out:
	db_rows_free(rows);
	free(sql);
	return rc;
}

int
env_list_repos(struct db *db, char ***repos, size_t *n)
{
	struct db_rows *rows = NULL;
	size_t i;

	*repos = NULL;
	*n = 0;
	if (db_query(db, &rows,
	             "SELECT DISTINCT repo FROM environments ORDER BY repo",
	             "") == -1)
		return -1;
	*n = db_rows_count(rows);
	*repos = xcalloc(*n ? *n : 1, sizeof(char *));
	for (i = 0; i < *n; i++)
		(*repos)[i] = xstrdup(db_rows_get(rows, i, 0));
	db_rows_free(rows);
	return 0;
}

int
env_list_count(struct db *db, const struct env_filter *flt,
               struct env_counts *c)
{
	struct db_rows *rows = NULL;
	size_t i;

	memset(c, 0, sizeof(*c));
	if (db_query(
	            db, &rows,
	            "SELECT phase, COUNT(*) FROM environments"
	            " WHERE (? IS NULL OR repo = ?) AND (? IS NULL OR phase = ?)"
	            " GROUP BY phase",
	            "ssss", flt->repo, flt->repo, flt->phase, flt->phase) == -1)
		return -1;
	c->nphases = db_rows_count(rows);
	c->phase = xcalloc(c->nphases ? c->nphases : 1, sizeof(char *));
	c->n = xcalloc(c->nphases ? c->nphases : 1, sizeof(int64_t));
	for (i = 0; i < c->nphases; i++) {
		c->phase[i] = xstrdup(db_rows_get(rows, i, 0));
		parse_int64(db_rows_get(rows, i, 1), 0, INT64_MAX, &c->n[i]);
		c->total += c->n[i];
	}
	db_rows_free(rows);
	return 0;
}

void
env_counts_free(struct env_counts *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < c->nphases; i++)
		free(c->phase[i]);
	free(c->phase);
	free(c->n);
	memset(c, 0, sizeof(*c));
}

void
env_view_free(struct env_view *e)
{
	if (e == NULL)
		return;
	free(e->id), free(e->repo), free(e->pr), free(e->slug);
	free(e->title), free(e->author), free(e->desired);
	free(e->phase), free(e->sha), free(e->deployed_sha);
	free(e->url), free(e->error), free(e->created_at);
	free(e->updated_at), free(e->branch), free(e->build_id);
	free(e->build_status), free(e->build_started_at);
	free(e->build_finished_at);
	services_free(e->services, e->nservices);
}

void
env_list_free(struct env_list *l)
{
	size_t i;

	if (l == NULL)
		return;
	for (i = 0; i < l->n; i++)
		env_view_free(&l->items[i]);
	free(l->items);
	memset(l, 0, sizeof(*l));
}
