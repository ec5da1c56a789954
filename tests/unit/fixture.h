/*
 * fixture.h - reading the shared recorded payloads in unit tests. They
 * live in tests/fixtures (recorded third-party data, each with its source); set
 * EPHEMERA_FIXTURES to point elsewhere. A missing file fails the test.
 */
#ifndef EPHEMERA_FIXTURE_H
#define EPHEMERA_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include "unit.h"

static inline const char *
fixture_dir(void)
{
	const char *d = getenv("EPHEMERA_FIXTURES");

	return d && d[0] ? d : "tests/fixtures";
}

/* Reads fixtures/<rel> into b; -1 (and a failed CHECK) if it cannot. */
static inline int
fixture_read(const char *rel, struct buf *b)
{
	char path[1024];
	char chunk[8192];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", fixture_dir(), rel);
	f = fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "  cannot read fixture %s\n", path);
		unit_failures++;
		return -1;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(b, chunk, n);
	fclose(f);
	return 0;
}

#endif
