/*
 * jobs.c - `ephemera jobs`: look at the queue and act on single jobs.
 *
 *   ephemera jobs list [STATE]   newest 100 jobs (optionally of one state)
 *   ephemera jobs show ID        every column of one job
 *   ephemera jobs retry ID       dead/cancelled → queued afresh; queued → now
 *   ephemera jobs cancel ID      queued or running → cancelled (a running
 *                                job's worker loses its lease and stops)
 *
 * Errors and payloads may hold text from webhooks (branch names, titles),
 * so control characters are replaced before they reach the terminal.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* Appends s with control characters replaced, cut at max bytes. */
static void
clean_append(struct buf *b, const char *s, size_t max)
{
	size_t i;

	if (s == NULL) {
		buf_putc(b, '-');
		return;
	}
	for (i = 0; s[i] != '\0' && i < max; i++)
		buf_putc(b, (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?'
		                                                       : s[i]);
	if (s[i] != '\0')
		buf_puts(b, "...");
}

static void
put_clean(const char *s, size_t max)
{
	struct buf b = BUF_INIT;

	clean_append(&b, s, max);
	fputs(buf_str(&b), stdout);
	buf_free(&b);
}

static int
jobs_list(struct db *db, const char *state)
{
	static const int width[] = {7, 10, 6, 9, 6, 26, 20, 80};
	struct db_rows *r = NULL;
	struct buf line = BUF_INIT, cell = BUF_INIT;
	size_t i, c;

	if (db_query(db, &r,
	             "SELECT id, kind, IFNULL(env_id, '-'), state, "
	             "CONCAT(attempts, '/', max_attempts), run_at, "
	             "IFNULL(worker, '-'), last_error FROM jobs "
	             "WHERE ? IS NULL OR state = ? ORDER BY id DESC LIMIT 100",
	             "ss", state, state) == -1)
		return 1;
	printf("%-7s %-10s %-6s %-9s %-6s %-26s %-20s %s\n", "ID", "KIND",
	       "ENV", "STATE", "TRIES", "RUN_AT", "WORKER", "LAST_ERROR");
	for (i = 0; i < db_rows_count(r); i++) {
		buf_reset(&line);
		for (c = 0; c < NELEM(width); c++) {
			buf_reset(&cell);
			clean_append(&cell, db_rows_get(r, i, c),
			             (size_t)width[c]);
			buf_printf(&line, "%-*s ", width[c], buf_str(&cell));
		}
		while (line.len > 0 && line.data[line.len - 1] == ' ')
			line.data[--line.len] = '\0';
		puts(buf_str(&line));
	}
	db_rows_free(r);
	buf_free(&line);
	buf_free(&cell);
	return 0;
}

static int
jobs_show(struct db *db, uint64_t id)
{
	struct db_rows *r = NULL;
	size_t c;
	int rc = 1;

	if (db_query(db, &r,
	             "SELECT id, kind, env_id, state, attempts, max_attempts, "
	             "run_at, lease_until, worker, created_at, started_at, "
	             "finished_at, payload, last_error FROM jobs WHERE id = ?",
	             "u", id) == -1)
		goto out;
	if (db_rows_count(r) == 0) {
		fprintf(stderr, "ephemera: no job %llu\n",
		        (unsigned long long)id);
		goto out;
	}
	for (c = 0; c < db_rows_columns(r); c++) {
		printf("%-13s ", db_rows_name(r, c));
		put_clean(db_rows_get(r, 0, c), 4096);
		putchar('\n');
	}
	rc = 0;
out:
	db_rows_free(r);
	return rc;
}

static int
jobs_retry(struct config *cfg, struct db *db, uint64_t id)
{
	/* A fresh start: the attempts of the dead run are spent. */
	if (db_exec(db,
	            "UPDATE jobs SET state = 'queued', run_at = NOW(6), "
	            "attempts = IF(state = 'queued', attempts, 0), "
	            "lease_until = NULL, worker = NULL, finished_at = NULL "
	            "WHERE id = ? AND state IN ('queued', 'dead', 'cancelled')",
	            "u", id) == -1) {
		if (db_error(db) == DB_DUPLICATE)
			fprintf(stderr,
			        "ephemera: job %llu: a job of the same kind is "
			        "already queued for its environment\n",
			        (unsigned long long)id);
		return 1;
	}
	if (db_affected(db) == 0) {
		fprintf(stderr,
		        "ephemera: job %llu: no such job, or it is running or "
		        "done\n",
		        (unsigned long long)id);
		return 1;
	}
	wake_notify(cfg);
	printf("ephemera: job %llu queued\n", (unsigned long long)id);
	return 0;
}

static int
jobs_cancel(struct db *db, uint64_t id)
{
	if (db_exec(db,
	            "UPDATE jobs SET state = 'cancelled', lease_until = NULL, "
	            "finished_at = NOW(6), last_error = CONCAT('cancelled by "
	            "an operator', IF(state = 'running', ' while running', "
	            "'')) WHERE id = ? AND state IN ('queued', 'running')",
	            "u", id) == -1)
		return 1;
	if (db_affected(db) == 0) {
		fprintf(stderr,
		        "ephemera: job %llu: no such job, or it already ended\n",
		        (unsigned long long)id);
		return 1;
	}
	printf("ephemera: job %llu cancelled\n", (unsigned long long)id);
	return 0;
}

int
jobs_command(struct config *cfg, int argc, char **argv)
{
	struct db *db = NULL;
	uint64_t id = 0;
	int rc = 2;

	if (argc < 2)
		goto usage;
	if (strcmp(argv[1], "list") == 0 && argc <= 3) {
		/* fine */
	} else if ((strcmp(argv[1], "show") == 0 ||
	            strcmp(argv[1], "retry") == 0 ||
	            strcmp(argv[1], "cancel") == 0) &&
	           argc == 3) {
		if (parse_uint64(argv[2], &id) == -1) {
			fprintf(stderr, "ephemera: not a job id: %s\n",
			        log_q(argv[2]));
			return 2;
		}
	} else {
		goto usage;
	}
	db = db_open(cfg);
	rc = 1;
	if (db_connect(db, (double)cfg->db_connect_timeout) == -1)
		goto out;
	if (strcmp(argv[1], "list") == 0)
		rc = jobs_list(db, argc == 3 ? argv[2] : NULL);
	else if (strcmp(argv[1], "show") == 0)
		rc = jobs_show(db, id);
	else if (strcmp(argv[1], "retry") == 0)
		rc = jobs_retry(cfg, db, id);
	else
		rc = jobs_cancel(db, id);
out:
	db_close(db);
	return rc;
usage:
	fprintf(stderr, "usage: ephemera jobs list [STATE]\n"
	                "       ephemera jobs show|retry|cancel ID\n");
	return 2;
}
