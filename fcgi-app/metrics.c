/*
 * metrics.c - GET /metrics in the Prometheus text format (version 0.0.4),
 * computed from the database on every scrape: the database is the only
 * state, and any fcgi child can answer. Histograms are bucketed by SQL
 * (one grouped scan each) with bounds fixed here at compile time, so the
 * SQL text stays constant and no row is fetched per job or build.
 * Durations stay integer microseconds until they are printed: db.c
 * fetches every value as text, and the client library reports no text
 * length for a DOUBLE column fetched that way.
 *
 * Families (docs/api.md lists them):
 *   ephemera_deliveries_total{event,result}   counter
 *   ephemera_jobs{kind,state}                 gauge
 *   ephemera_job_duration_seconds{kind}       histogram (finished jobs)
 *   ephemera_environments{phase}              gauge
 *   ephemera_reconcile_failures_total         counter (failed attempts)
 *   ephemera_builds_total{status}             counter
 *   ephemera_build_duration_seconds{status}   histogram (finished builds)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

/* Bucket bounds, as SQL literals and as label text, from one list. */
#define JOB_BUCKETS(X)                                                         \
	X(0.1)                                                                 \
	X(0.5) X(1) X(2.5) X(5) X(10) X(30) X(60) X(120) X(300) X(600) X(1800)
#define BUILD_BUCKETS(X)                                                       \
	X(10) X(30) X(60) X(120) X(180) X(300) X(600) X(900) X(1800) X(3600)
/* d is in integer microseconds; d <= bound is d - 1 < bound. */
#define SQL_BOUND(v) ", " #v " * 1000000"
#define LE_TEXT(v) #v,

static const char *const job_le[] = {JOB_BUCKETS(LE_TEXT)};
static const char *const build_le[] = {BUILD_BUCKETS(LE_TEXT)};

static const char *const known_phases[] = {
        "pending",    "awaiting_approval", "budget",
        "queued",     "deploying",         "ready",
        "failed",     "stopping",          "stopped",
        "destroying", "destroyed"};

void
metrics_label(struct buf *b, const char *v)
{
	for (; v && *v; v++) {
		if (*v == '\\')
			buf_puts(b, "\\\\");
		else if (*v == '"')
			buf_puts(b, "\\\"");
		else if (*v == '\n')
			buf_puts(b, "\\n");
		else
			buf_putc(b, *v);
	}
}

static void
family(struct buf *b, const char *name, const char *type, const char *help)
{
	buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{l0="v0",l1="v1"} from the row's first columns */
static void
series(struct buf *b, const char *name, const char *const *labels,
       const struct db_rows *rows, size_t row, size_t nlabels)
{
	size_t i;

	buf_puts(b, name);
	if (nlabels == 0) {
		buf_putc(b, ' ');
		return;
	}
	buf_putc(b, '{');
	for (i = 0; i < nlabels; i++) {
		buf_printf(b, "%s%s=\"", i ? "," : "", labels[i]);
		metrics_label(b, db_rows_get(rows, row, i));
		buf_putc(b, '"');
	}
	buf_puts(b, "} ");
}

/* A value from SQL text; NULL (an empty SUM) is 0. */
static const char *
num(const char *v)
{
	return v ? v : "0";
}

/* Rows of (label..., count) → one sample each. */
static int
counts(struct db *db, struct buf *b, const char *name, const char *type,
       const char *help, const char *sql, const char *const *labels,
       size_t nlabels)
{
	struct db_rows *rows = NULL;
	size_t i;

	if (db_query(db, &rows, sql, "") == -1)
		return -1;
	family(b, name, type, help);
	for (i = 0; i < db_rows_count(rows); i++) {
		series(b, name, labels, rows, i, nlabels);
		buf_printf(b, "%s\n", num(db_rows_get(rows, i, nlabels)));
	}
	db_rows_free(rows);
	return 0;
}

static void
histogram_emit(struct buf *b, const char *name, const char *label,
               const char *value, const char *const *le, size_t nle,
               const int64_t *n, int64_t sum_us)
{
	int64_t cum = 0;
	size_t k;

	for (k = 0; k <= nle; k++) {
		cum += n[k];
		buf_printf(b, "%s_bucket{%s=\"", name, label);
		metrics_label(b, value);
		buf_printf(b, "\",le=\"%s\"} %lld\n", k < nle ? le[k] : "+Inf",
		           (long long)cum);
	}
	buf_printf(b, "%s_sum{%s=\"", name, label);
	metrics_label(b, value);
	buf_printf(b, "\"} %s%lld.%06lld\n", sum_us < 0 ? "-" : "",
	           (long long)(sum_us < 0 ? -sum_us : sum_us) / 1000000,
	           (long long)(sum_us < 0 ? -sum_us : sum_us) % 1000000);
	buf_printf(b, "%s_count{%s=\"", name, label);
	metrics_label(b, value);
	buf_printf(b, "\"} %lld\n", (long long)cum);
}

/*
 * Rows of (label, bucket index, count, sum of microseconds), ordered by
 * label, where the index is how many bounds lie below the duration (SQL's
 * INTERVAL): the per-bucket counts are summed up into Prometheus's
 * cumulative buckets here. One INTERVAL per row is much cheaper in SQL
 * than one comparison per row and bucket.
 */
static int
histogram(struct db *db, struct buf *b, const char *name, const char *help,
          const char *sql, const char *label, const char *const *le, size_t nle)
{
	struct db_rows *rows = NULL;
	int64_t *n = xcalloc(nle + 1, sizeof(*n)), sum = 0, k, v;
	size_t i, nrows;

	if (db_query(db, &rows, sql, "") == -1) {
		free(n);
		return -1;
	}
	family(b, name, "histogram", help);
	nrows = db_rows_count(rows);
	for (i = 0; i < nrows; i++) {
		const char *value = db_rows_get(rows, i, 0);

		if (parse_int64(db_rows_get(rows, i, 1), INT64_MIN, INT64_MAX,
		                &k) == -1 ||
		    k < 0)
			k = 0; /* INTERVAL(NULL) is -1; a NULL time ran 0s */
		if (k > (int64_t)nle)
			k = (int64_t)nle;
		if (parse_int64(db_rows_get(rows, i, 2), 0, INT64_MAX, &v) == 0)
			n[k] += v;
		if (parse_int64(num(db_rows_get(rows, i, 3)), INT64_MIN,
		                INT64_MAX, &v) == 0)
			sum += v;
		if (i + 1 < nrows &&
		    strcmp(value, db_rows_get(rows, i + 1, 0)) == 0)
			continue;
		histogram_emit(b, name, label, value, le, nle, n, sum);
		memset(n, 0, (nle + 1) * sizeof(*n));
		sum = 0;
	}
	free(n);
	db_rows_free(rows);
	return 0;
}

/* Every known phase appears, 0 when empty, so series do not vanish. */
static int
environments(struct db *db, struct buf *b)
{
	struct db_rows *rows = NULL;
	size_t i, j;

	if (db_query(db, &rows,
	             "SELECT phase, COUNT(*) FROM environments GROUP BY phase"
	             " ORDER BY phase",
	             "") == -1)
		return -1;
	family(b, "ephemera_environments", "gauge", "Environments by phase.");
	for (j = 0; j < NELEM(known_phases); j++) {
		const char *n = "0";

		for (i = 0; i < db_rows_count(rows); i++)
			if (strcmp(db_rows_get(rows, i, 0), known_phases[j]) ==
			    0)
				n = db_rows_get(rows, i, 1);
		buf_printf(b, "ephemera_environments{phase=\"%s\"} %s\n",
		           known_phases[j], n);
	}
	for (i = 0; i < db_rows_count(rows); i++) {
		const char *p = db_rows_get(rows, i, 0);

		for (j = 0; j < NELEM(known_phases); j++)
			if (strcmp(p, known_phases[j]) == 0)
				break;
		if (j < NELEM(known_phases))
			continue;
		buf_puts(b, "ephemera_environments{phase=\"");
		metrics_label(b, p);
		buf_printf(b, "\"} %s\n", db_rows_get(rows, i, 1));
	}
	db_rows_free(rows);
	return 0;
}

static int
metrics_render(struct db *db, struct buf *b)
{
	static const char *const ev_res[] = {"event", "result"};
	static const char *const kind_state[] = {"kind", "state"};
	static const char *const status[] = {"status"};

	if (counts(db, b, "ephemera_deliveries_total", "counter",
	           "Webhook deliveries recorded, by event and result.",
	           /* The log is pruned; what it counted is kept. */
	           "SELECT event, result, SUM(n) FROM (SELECT event, result,"
	           " n FROM delivery_totals UNION ALL SELECT event, result,"
	           " COUNT(*) FROM deliveries GROUP BY event, result) t"
	           " GROUP BY event, result ORDER BY event, result",
	           ev_res, 2) == -1 ||
	    counts(db, b, "ephemera_jobs", "gauge",
	           "Jobs in the queue table, by kind and state.",
	           "SELECT kind, state, COUNT(*) FROM jobs"
	           " GROUP BY kind, state ORDER BY kind, state",
	           kind_state, 2) == -1 ||
	    histogram(
	            db, b, "ephemera_job_duration_seconds",
	            "Run time of finished jobs, from claim to finish.",
	            "SELECT kind, INTERVAL(d - 1" JOB_BUCKETS(
	                    SQL_BOUND) ") AS k, COUNT(*), SUM(d)"
	                               " FROM (SELECT kind,"
	                               " TIMESTAMPDIFF(MICROSECOND, started_at,"
	                               " finished_at) AS d FROM jobs"
	                               " WHERE started_at IS NOT NULL AND"
	                               " finished_at IS NOT NULL) j"
	                               " GROUP BY kind, k ORDER BY kind, k",
	            "kind", job_le, NELEM(job_le)) == -1 ||
	    environments(db, b) == -1)
		return -1;
	/*
	 * A failed attempt leaves the job queued for a retry, dead, or (if a
	 * later attempt succeeded) done: every attempt but a running or
	 * successful last one failed.
	 */
	if (counts(db, b, "ephemera_reconcile_failures_total", "counter",
	           "Failed reconcile attempts.",
	           "SELECT COALESCE(SUM(IF(state IN ('done', 'running'),"
	           " GREATEST(attempts, 1) - 1, attempts)), 0)"
	           " FROM jobs WHERE kind = 'reconcile'",
	           NULL, 0) == -1 ||
	    counts(db, b, "ephemera_builds_total", "counter",
	           "Builds by status.",
	           "SELECT status, COUNT(*) FROM builds GROUP BY status"
	           " ORDER BY status",
	           status, 1) == -1 ||
	    histogram(
	            db, b, "ephemera_build_duration_seconds",
	            "Wall time of finished builds, by outcome.",
	            "SELECT status, INTERVAL(d - 1" BUILD_BUCKETS(
	                    SQL_BOUND) ") AS k, COUNT(*), SUM(d)"
	                               " FROM (SELECT status,"
	                               " TIMESTAMPDIFF(MICROSECOND, started_at,"
	                               " finished_at) AS d FROM builds"
	                               " WHERE finished_at IS NOT NULL) x"
	                               " GROUP BY status, k ORDER BY status, k",
	            "status", build_le, NELEM(build_le)) == -1)
		return -1;
	return 0;
}

void
metrics_get(struct app *app, const struct request *req, struct response *res)
{
	(void)req;
	if (metrics_render(app->db, &res->body) == -1) {
		response_text(res, 503, "database unavailable");
		return;
	}
	res->content_type = "text/plain; version=0.0.4; charset=utf-8";
	buf_puts(&res->headers, "Cache-Control: no-store\r\n");
}
