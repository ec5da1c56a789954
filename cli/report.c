/*
 * report.c - `ephemera report [NAME [--since DATE] [--csv]]`: the
 * reporting views of migrations 013 and 016 (docs/reports.md) as an aligned table
 * or as CSV (RFC 4180). Values come from the database, where titles,
 * authors and error texts are the PRs' own: a table cell is printed with
 * its control characters replaced, a CSV cell quoted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const struct report {
	const char *name, *order, *about;
} reports[] = {
        {"time_to_ready", "period, repo",
         "PR opened to its first ready build, p50/p95 per repository and "
         "week"},
        {"step_failures", "period, failed DESC, step",
         "each deploy step's runs and failures per month, with the "
         "commonest error"},
        {"queue_health", "period, kind",
         "jobs per hour and kind: how they ended, waited and ran"},
        {"authors", "period, builds DESC, author",
         "PRs, builds, failures and build hours per author and month"},
        {"cost", "period, cost DESC, repo",
         "environment-hours and cost per repository and month, from when "
         "compute ran"},
};

static const struct report *
report_find(const char *name)
{
	size_t i;

	for (i = 0; i < NELEM(reports); i++)
		if (strcmp(reports[i].name, name) == 0)
			return &reports[i];
	return NULL;
}

static void
csv_cell(const char *v)
{
	if (v == NULL)
		return;
	if (strpbrk(v, ",\"\r\n") == NULL) {
		fputs(v, stdout);
		return;
	}
	putchar('"');
	for (; *v; v++) {
		if (*v == '"')
			putchar('"');
		putchar(*v);
	}
	putchar('"');
}

/* A cell for the table: one line, control characters as '?'. */
static size_t
cell_width(const char *v)
{
	size_t n = 0;

	for (; v != NULL && *v; v++)
		n += ((unsigned char)*v & 0xc0) != 0x80; /* UTF-8 starts */
	return n;
}

static void
table_cell(const char *v, size_t width, bool last)
{
	size_t n = cell_width(v);

	for (; v != NULL && *v; v++)
		putchar((unsigned char)*v < 0x20 || *v == 0x7f ? '?' : *v);
	if (!last)
		for (; n < width + 2; n++)
			putchar(' ');
}

static void
print_rows(const struct db_rows *r, bool csv)
{
	size_t nc = db_rows_columns(r), nr = db_rows_count(r), i, j;
	size_t *w = xcalloc(nc ? nc : 1, sizeof(*w));

	for (j = 0; j < nc; j++) {
		w[j] = cell_width(db_rows_name(r, j));
		for (i = 0; i < nr; i++)
			if (cell_width(db_rows_get(r, i, j)) > w[j])
				w[j] = cell_width(db_rows_get(r, i, j));
	}
	for (j = 0; j < nc; j++) {
		if (csv) {
			if (j)
				putchar(',');
			csv_cell(db_rows_name(r, j));
		} else {
			table_cell(db_rows_name(r, j), w[j], j + 1 == nc);
		}
	}
	fputs(csv ? "\r\n" : "\n", stdout);
	for (i = 0; i < nr; i++) {
		for (j = 0; j < nc; j++) {
			if (csv) {
				if (j)
					putchar(',');
				csv_cell(db_rows_get(r, i, j));
			} else {
				table_cell(db_rows_get(r, i, j), w[j],
				           j + 1 == nc);
			}
		}
		fputs(csv ? "\r\n" : "\n", stdout);
	}
	free(w);
}

static int
report_usage(void)
{
	fprintf(stderr, "usage: ephemera [-c config] report [NAME "
	                "[--since YYYY-MM-DD] [--csv]]\n");
	return 2;
}

int
report_command(struct config *cfg, int argc, char **argv)
{
	const struct report *rep;
	const char *since = "1970-01-01";
	struct db_rows *r = NULL;
	struct buf sql = BUF_INIT;
	struct db *db;
	bool csv = false;
	int i, rc = 1;

	if (argc == 1) {
		for (i = 0; i < (int)NELEM(reports); i++)
			printf("%-14s %s\n", reports[i].name, reports[i].about);
		return 0;
	}
	rep = report_find(argv[1]);
	if (rep == NULL) {
		fprintf(stderr,
		        "ephemera: no report '%s' (ephemera report "
		        "lists them)\n",
		        argv[1]);
		return 2;
	}
	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--csv") == 0)
			csv = true;
		else if (strcmp(argv[i], "--since") == 0 && i + 1 < argc)
			since = argv[++i];
		else
			return report_usage();
	}
	if (strlen(since) != 10 || since[4] != '-' || since[7] != '-') {
		fprintf(stderr, "ephemera: --since wants YYYY-MM-DD\n");
		return 2;
	}
	/* The name and order are ours (the table above), never the user's. */
	buf_printf(&sql,
	           "SELECT * FROM report_%s WHERE period >= ? ORDER BY %s",
	           rep->name, rep->order);
	db = db_open(cfg);
	if (db_connect(db, (double)cfg->db_connect_timeout) == 0 &&
	    db_query(db, &r, buf_str(&sql), "s", since) == 0) {
		print_rows(r, csv);
		rc = 0;
	}
	db_rows_free(r);
	db_close(db);
	buf_free(&sql);
	return rc;
}
