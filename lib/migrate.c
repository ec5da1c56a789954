/*
 * migrate.c - numbered, forward-only schema migrations.
 *
 * sql/migrations/NNN_name.sql files are applied in number order, each once,
 * and recorded in schema_migrations. MariaDB commits DDL implicitly, so a
 * migration cannot be rolled back as a whole: write each statement so that
 * running it again after a partial failure is harmless (IF NOT EXISTS).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ephemera.h"

struct migration {
	int64_t version;
	char *file;
};

static bool
blank_statement(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		if (s[i] == '-' && i + 1 < n && s[i + 1] == '-') {
			while (i < n && s[i] != '\n')
				i++;
		} else if (strchr(" \t\r\n", s[i])) {
			i++;
		} else {
			return false;
		}
	}
	return true;
}

/*
 * "DELIMITER $$" alone on a line switches the terminator, as in the mariadb
 * client, so a procedure body can hold ';'. The line itself is not sent.
 */
static bool
delimiter_line(const char *s, size_t n, const char **d, size_t *dlen,
               size_t *line)
{
	size_t i, e;

	*line = n;
	for (i = 0; i < n; i++)
		if (s[i] == '\n') {
			*line = i + 1;
			break;
		}
	if (n < 10 || strncasecmp(s, "DELIMITER ", 10) != 0)
		return false;
	for (i = 10; i < *line && strchr(" \t", s[i]); i++)
		;
	for (e = i; e < *line && !strchr(" \t\r\n", s[e]); e++)
		;
	if (e == i || e - i > 8)
		return false;
	*d = s + i;
	*dlen = e - i;
	return true;
}

static void
statement_add(const char *s, size_t n, char ***stmts, size_t *count,
              size_t *cap)
{
	if (blank_statement(s, n))
		return;
	if (*count == *cap) {
		*cap = *cap ? *cap * 2 : 8;
		*stmts = xrealloc(*stmts, *cap * sizeof(char *));
	}
	(*stmts)[(*count)++] = xstrndup(s, n);
}

/* A statement ends at a terminator (';' unless a DELIMITER line says
 * otherwise) that is the last non-blank text of its line. */
int
migrate_split(const char *sql, size_t len, char ***stmts, size_t *n)
{
	const char *delim = ";";
	size_t dlen = 1, start = 0, i, j, cap = 0, line;

	*stmts = NULL;
	*n = 0;
	for (i = 0; i <= len; i++) {
		bool end = i == len;

		if (!end && (i == 0 || sql[i - 1] == '\n') &&
		    delimiter_line(sql + i, len - i, &delim, &dlen, &line)) {
			statement_add(sql + start, i - start, stmts, n, &cap);
			start = i + line;
			i = start - 1;
			continue;
		}
		if (!end && len - i >= dlen &&
		    memcmp(sql + i, delim, dlen) == 0) {
			for (j = i + dlen; j < len && strchr(" \t\r", sql[j]);
			     j++)
				;
			end = j == len || sql[j] == '\n';
		}
		if (!end)
			continue;
		statement_add(sql + start, i - start, stmts, n, &cap);
		start = i + dlen;
		i = start - 1;
	}
	return 0;
}

static int
migration_cmp(const void *a, const void *b)
{
	const struct migration *x = a, *y = b;

	return (x->version > y->version) - (x->version < y->version);
}

static int
file_read(const char *path, struct buf *b)
{
	char chunk[8192];
	size_t n;
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		log_error("migrate_read", "file=%s errno=%m", log_q(path));
		return -1;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(b, chunk, n);
	fclose(f);
	return b->failed ? -1 : 0;
}

static int
migration_run(struct db *db, const char *dir, const struct migration *m)
{
	struct buf path = BUF_INIT, sql = BUF_INIT;
	char **stmts = NULL;
	size_t n = 0, i;
	int rc = -1;

	buf_printf(&path, "%s/%s", dir, m->file);
	if (file_read(buf_str(&path), &sql) == -1)
		goto out;
	migrate_split(sql.data, sql.len, &stmts, &n);
	for (i = 0; i < n; i++)
		if (db_raw(db, stmts[i]) == -1) {
			log_error("migrate_failed", "file=%s statement=%zu",
			          log_q(m->file), i + 1);
			goto out;
		}
	if (db_exec(db,
	            "INSERT INTO schema_migrations (version, name) "
	            "VALUES (?, ?)",
	            "is", m->version, m->file) == -1)
		goto out;
	log_info("migrate_applied", "file=%s statements=%zu", log_q(m->file),
	         n);
	rc = 0;
out:
	for (i = 0; i < n; i++)
		free(stmts[i]);
	free(stmts);
	buf_free(&path);
	buf_free(&sql);
	return rc;
}

int
migrate_apply(struct db *db, const char *dir, int *applied)
{
	struct migration *list = NULL;
	size_t n = 0, cap = 0, i;
	struct db_rows *done = NULL;
	struct dirent *de;
	DIR *d;
	int rc = -1;

	*applied = 0;
	if (db_raw(db, "CREATE TABLE IF NOT EXISTS schema_migrations ("
	               "version BIGINT NOT NULL PRIMARY KEY, "
	               "name VARCHAR(255) NOT NULL, "
	               "applied_at DATETIME(6) NOT NULL DEFAULT "
	               "CURRENT_TIMESTAMP(6)) ENGINE=InnoDB") == -1)
		return -1;
	d = opendir(dir);
	if (d == NULL) {
		log_error("migrate_dir", "dir=%s errno=%m", log_q(dir));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name), digits = 0;
		char num[32];
		int64_t v;

		while (de->d_name[digits] >= '0' && de->d_name[digits] <= '9')
			digits++;
		if (digits == 0 || digits >= sizeof(num) ||
		    de->d_name[digits] != '_' || len < 5 ||
		    strcmp(de->d_name + len - 4, ".sql") != 0)
			continue;
		memcpy(num, de->d_name, digits);
		num[digits] = '\0';
		if (parse_int64(num, 1, INT64_MAX, &v) == -1)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			list = xrealloc(list, cap * sizeof(*list));
		}
		list[n].version = v;
		list[n].file = xstrdup(de->d_name);
		n++;
	}
	closedir(d);
	qsort(list, n, sizeof(*list), migration_cmp);
	if (db_query(db, &done, "SELECT version FROM schema_migrations", "") ==
	    -1)
		goto out;
	for (i = 0; i < n; i++) {
		size_t r;
		bool seen = false;

		for (r = 0; r < db_rows_count(done); r++) {
			int64_t v;

			if (parse_int64(db_rows_get(done, r, 0), 0, INT64_MAX,
			                &v) == 0 &&
			    v == list[i].version)
				seen = true;
		}
		if (seen)
			continue;
		if (migration_run(db, dir, &list[i]) == -1)
			goto out;
		(*applied)++;
	}
	rc = 0;
out:
	db_rows_free(done);
	for (i = 0; i < n; i++)
		free(list[i].file);
	free(list);
	return rc;
}
