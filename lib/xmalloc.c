/*
 * xmalloc.c - allocation that cannot fail. Running out of memory in a small
 * control-plane process is not a condition we can recover from sensibly, so
 * it ends the process with one log line (STYLE.md: out of memory is fatal,
 * bad input never is).
 */
#include <stdlib.h>
#include <string.h>

#include "ephemera.h"

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		fatal("out_of_memory", "bytes=%zu", n);
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		fatal("out_of_memory", "bytes=%zu", n * size);
	return p;
}

void *
xrealloc(void *old, size_t n)
{
	void *p = realloc(old, n ? n : 1);

	if (p == NULL)
		fatal("out_of_memory", "bytes=%zu", n);
	return p;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}
