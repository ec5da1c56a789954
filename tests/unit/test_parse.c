/* test_parse.c - numbers, ISO 8601 times, slugs, SQL splitting. */
#include <stdlib.h>

#include "unit.h"

static void
test_int64(void)
{
	static const struct {
		const char *in;
		int rc;
		int64_t want;
	} cases[] = {
	        {"0", 0, 0},     {"42", 0, 42},
	        {"-5", -1, 0},   {"", -1, 0},
	        {"12x", -1, 0},  {"101", -1, 0},
	        {"100", 0, 100}, {"99999999999999999999", -1, 0},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		int64_t v = -1;

		CHECK(parse_int64(cases[i].in, 0, 100, &v) == cases[i].rc);
		if (cases[i].rc == 0)
			CHECK(v == cases[i].want);
	}
}

static void
test_iso8601(void)
{
	static const struct {
		const char *in;
		int rc;
		time_t want;
	} cases[] = {
	        {"1970-01-01T00:00:00Z", 0, 0},
	        {"2019-05-15T15:20:33Z", 0, 1557933633},
	        {"2019-05-15T17:20:33+02:00", 0, 1557933633},
	        {"2019-05-15T15:20:33.123Z", 0, 1557933633},
	        {"2024-02-29T00:00:00Z", 0, 1709164800},
	        {"2023-02-29T00:00:00Z", -1, 0},
	        {"2019-05-15 15:20:33", -1, 0},
	        {"2019-13-15T15:20:33Z", -1, 0},
	        {"2019-05-15T15:20:33Zjunk", -1, 0},
	        {"", -1, 0},
	};
	size_t i;
	char out[21];

	for (i = 0; i < NELEM(cases); i++) {
		time_t t = 0;

		CHECK(parse_iso8601(cases[i].in, &t) == cases[i].rc);
		if (cases[i].rc == 0)
			CHECK(t == cases[i].want);
	}
	format_iso8601(1557933633, out);
	CHECK_STR(out, "2019-05-15T15:20:33Z");
}

static void
test_slug(void)
{
	static const struct {
		const char *repo;
		uint64_t pr;
		const char *want;
	} cases[] = {
	        {"octo/Hello-World", 42, "pr-42-hello-world"},
	        {"a/$(touch /tmp/pwned)", 1, "pr-1-touch-tmp-pwned"},
	        {"a/---", 7, "pr-7"},
	        {"noslash", 3, "pr-3-noslash"},
	        {"o/\xc3\xa9t\xc3\xa9", 9, "pr-9-t"},
	        {"o/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	         "aaaaaaaaaa",
	         18446744073709551615u,
	         "pr-18446744073709551615-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		char s[64];

		slug_make(cases[i].repo, cases[i].pr, s);
		CHECK_STR(s, cases[i].want);
		CHECK(strlen(s) <= 63);
	}
}

static void
test_migrate_split(void)
{
	const char *sql = "-- a comment;\nCREATE TABLE a (x INT);\n\n"
	                  "INSERT INTO a VALUES (';');  \n"
	                  "-- only a comment\n";
	char **st;
	size_t n, i;

	migrate_split(sql, strlen(sql), &st, &n);
	CHECK(n == 2);
	if (n == 2) {
		CHECK(strstr(st[0], "CREATE TABLE a (x INT)") != NULL);
		CHECK_STR(st[1], "\n\nINSERT INTO a VALUES (';')");
	}
	for (i = 0; i < n; i++)
		free(st[i]);
	free(st);
}

/* A procedure body holds ';': DELIMITER lines switch the terminator. */
static void
test_migrate_split_delimiter(void)
{
	const char *sql = "CREATE TABLE a (x INT);\n"
	                  "DELIMITER $$\n"
	                  "CREATE PROCEDURE p()\nBEGIN\n\tSELECT 1;\n"
	                  "\tSELECT 2;\nEND$$\n"
	                  "delimiter ;\n"
	                  "INSERT INTO a VALUES (1);\n";
	char **st;
	size_t n, i;

	migrate_split(sql, strlen(sql), &st, &n);
	CHECK(n == 3);
	if (n == 3) {
		CHECK_STR(st[0], "CREATE TABLE a (x INT)");
		CHECK_STR(st[1], "CREATE PROCEDURE p()\nBEGIN\n\tSELECT 1;\n"
		                 "\tSELECT 2;\nEND");
		CHECK_STR(st[2], "INSERT INTO a VALUES (1)");
	}
	for (i = 0; i < n; i++)
		free(st[i]);
	free(st);
}

UNIT_MAIN(TEST(test_int64), TEST(test_iso8601), TEST(test_slug),
          TEST(test_migrate_split), TEST(test_migrate_split_delimiter))
