/*
 * env_list.c - loads environments for the API and the pages, each with
 * its last build and its usage. The rows are the database's text, owned by
 * the env_list; times come out of SQL already in ISO 8601 UTC so that no
 * view has to reformat them, and as epoch seconds where usage needs them.
 *
 * A list is one page (env_filter.c): the page's ids are chosen first, then
 * each environment's last build comes from an index dive on builds
 * (env_id, id), so the cost grows with the page, not with the number of
 * builds (bench/status). The dive is written ORDER BY ... LIMIT 1:
 * MariaDB runs a correlated MIN()/MAX() as a scan of the environment's
 * whole index range instead, measured 3-4 times slower. The page is read
 * in index order (FORCE INDEX): with the optional filters written as
 * (? IS NULL OR ...) the optimizer otherwise sorts the whole table for
 * every page.
 *
 * Usage is the environment's closed runs, summed on its row (runs_seconds,
 * runs_cost: migration 020), and its open run, found by one more dive on
 * env_runs (env_id, stopped_at): so it costs the same however many runs
 * there were. (A join on env_runs grouped by env_id was tried: MariaDB
 * ran it as a LATERAL DERIVED dive per row for a page of 50, but a page
 * of 500 took 10 to 16 s as the app's prepared statement.)
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
        " e.runs_seconds, e.runs_cost, UNIX_TIMESTAMP(o.started_at),"
        " o.hourly_price,"
        " UNIX_TIMESTAMP(lb.started_at), UNIX_TIMESTAMP(lb.finished_at),"
        " e.services ";

/* The open run: one at most (reconcile.c opens one only when none is). */
#define ENV_RUN_OPEN_JOIN                                                      \
	" LEFT JOIN env_runs o ON o.id ="                                      \
	" (SELECT id FROM env_runs WHERE env_id = e.id"                        \
	" AND stopped_at IS NULL ORDER BY id DESC LIMIT 1)"

static const char env_list_sql_tail[] =
        "FROM (SELECT id, updated_at FROM environments"
        " FORCE INDEX (environments_updated)"
        " WHERE (? IS NULL OR repo = ?) AND (? IS NULL OR phase = ?)"
        " ORDER BY updated_at DESC, id DESC LIMIT ? OFFSET ?) p"
        " JOIN environments e ON e.id = p.id"
        " LEFT JOIN builds lb ON lb.id ="
        " (SELECT id FROM builds WHERE env_id = e.id"
        " ORDER BY id DESC LIMIT 1)" ENV_RUN_OPEN_JOIN
        " ORDER BY p.updated_at DESC, p.id DESC";

static const char env_one_sql_tail[] =
        "FROM environments e"
        " LEFT JOIN builds lb ON lb.id ="
        " (SELECT id FROM builds WHERE env_id = e.id"
        " ORDER BY id DESC LIMIT 1)" ENV_RUN_OPEN_JOIN " WHERE e.id = ?";

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

/* A number from SQL text; NULL (no run) is `none`. */
static double
number(const char *v, double none)
{
	return v ? strtod(v, NULL) : none;
}

static void
env_row(const struct db_rows *rows, size_t i, double now, struct env_view *e)
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
	struct usage_runs runs;
	size_t c;

	for (c = 0; c < NELEM(f); c++)
		*f[c] = dup_or_null(db_rows_get(rows, i, c));
	runs.closed_seconds = number(db_rows_get(rows, i, c), 0);
	runs.closed_cost = number(db_rows_get(rows, i, c + 1), 0);
	runs.open_start = number(db_rows_get(rows, i, c + 2), -1);
	runs.open_price = number(db_rows_get(rows, i, c + 3), 0);
	e->instance_seconds = usage_run_seconds(&runs, now);
	e->cost = usage_run_cost(&runs, now);
	e->build_seconds =
	        usage_build_seconds(epoch(db_rows_get(rows, i, c + 4)),
	                            epoch(db_rows_get(rows, i, c + 5)), now);
	/* Unreadable services show as none; the URL column still shows. */
	if (services_parse(db_rows_get(rows, i, c + 6), &e->services,
	                   &e->nservices) == -1)
		log_warn("env_services_unreadable", "env=%s", e->id);
}

static void
env_rows_take(const struct db_rows *rows, double now, struct env_list *out)
{
	size_t i;

	out->n = db_rows_count(rows);
	out->items = xcalloc(out->n ? out->n : 1, sizeof(*out->items));
	for (i = 0; i < out->n; i++)
		env_row(rows, i, now, &out->items[i]);
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
              struct env_list *out)
{
	struct db_rows *rows = NULL;
	char *sql = sql_join(env_columns, env_list_sql_tail);
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (db_query(db, &rows, sql, "ssssii", flt->repo, flt->repo, flt->phase,
	             flt->phase, flt->per_page,
	             (flt->page - 1) * flt->per_page) == -1)
		goto out;
	env_rows_take(rows, now, out);
	rc = 0;
out:
	db_rows_free(rows);
	free(sql);
	return rc;
}

int
env_list_load_one(struct db *db, uint64_t id, double now, struct env_list *out)
{
	struct db_rows *rows = NULL;
	char *sql = sql_join(env_columns, env_one_sql_tail);
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (db_query(db, &rows, sql, "u", id) == -1)
		goto out;
	env_rows_take(rows, now, out);
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
