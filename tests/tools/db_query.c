/*
 * db_query.c - runs one SQL query through lib/db.c and prints each value
 * as `row col len value` lines (NULL as "NULL"), so the integration tests
 * can check what the library itself reads back, type by type.
 *
 *   db_query -c CONFIG SQL
 */
#include <stdio.h>
#include <string.h>

#include "../../lib/ephemera.h"

int
main(int argc, char **argv)
{
	struct config cfg;
	struct buf err = BUF_INIT;
	struct db_rows *r = NULL;
	struct db *db;
	size_t i, j;
	int rc = 1;

	log_init("db_query", LOG_ERROR);
	if (argc != 4 || strcmp(argv[1], "-c") != 0) {
		fprintf(stderr, "usage: db_query -c config SQL\n");
		return 2;
	}
	if (config_load(&cfg, argv[2], &err) == -1) {
		fprintf(stderr, "db_query: %s\n", buf_str(&err));
		goto out;
	}
	db = db_open(&cfg);
	if (db_connect(db, 10) == 0 && db_query(db, &r, argv[3], "") == 0) {
		for (i = 0; i < db_rows_count(r); i++)
			for (j = 0; j < db_rows_columns(r); j++) {
				const char *v = db_rows_get(r, i, j);

				printf("%zu %zu %zu %s\n", i, j,
				       v ? strlen(v) : 0, v ? v : "NULL");
			}
		rc = 0;
	}
	db_rows_free(r);
	db_close(db);
out:
	buf_free(&err);
	config_free(&cfg);
	return rc;
}
