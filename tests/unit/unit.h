/*
 * unit.h - the unit test harness: CHECK records a failure with file:line
 * and carries on; main() runs the tests in the TESTS table and prints the
 * closing "N passed, N failed" line (a test passes when none of its CHECKs
 * failed). Tests are table-driven where the data allows.
 */
#ifndef EPHEMERA_UNIT_H
#define EPHEMERA_UNIT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/ephemera.h"

static int unit_failures;

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "  %s:%d: CHECK(%s) failed\n",         \
			        __FILE__, __LINE__, #cond);                    \
			unit_failures++;                                       \
		}                                                              \
	} while (0)

#define CHECK_STR(got, want)                                                   \
	do {                                                                   \
		const char *g_ = (got), *w_ = (want);                          \
		if (g_ == NULL || w_ == NULL ? g_ != w_ : strcmp(g_, w_)) {    \
			fprintf(stderr, "  %s:%d: got \"%s\", want \"%s\"\n",  \
			        __FILE__, __LINE__, g_ ? g_ : "(null)",        \
			        w_ ? w_ : "(null)");                           \
			unit_failures++;                                       \
		}                                                              \
	} while (0)

struct unit_test {
	const char *name;
	void (*fn)(void);
};

#define TEST(name)                                                             \
	{                                                                      \
#name, name                                                    \
	}

/* A temp file holding `text`; the caller unlinks and frees the path. */
static inline char *
unit_write_tmp(const char *text)
{
	char *path = xstrdup("/tmp/ephemera-unit-XXXXXX");
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");

	fputs(text, f);
	fclose(f);
	return path;
}

static inline int
unit_run(const struct unit_test *tests, size_t n)
{
	int passed = 0, failed = 0;
	size_t i;

	log_init("unit", LOG_ERROR);
	for (i = 0; i < n; i++) {
		int before = unit_failures;

		tests[i].fn();
		if (unit_failures == before) {
			passed++;
		} else {
			failed++;
			fprintf(stderr, "FAIL %s\n", tests[i].name);
		}
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

#define UNIT_MAIN(...)                                                         \
	int main(void)                                                         \
	{                                                                      \
		static const struct unit_test t_[] = {__VA_ARGS__};            \
		return unit_run(t_, NELEM(t_));                                \
	}

#endif
