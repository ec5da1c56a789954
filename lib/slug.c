/*
 * slug.c - an environment's DNS name. The repository name is attacker-
 * chosen (any fork can be named anything GitHub allows), so the slug keeps
 * only [a-z0-9-] and is always a valid single label: the PR number comes
 * first and is never cut, the repository part (after the owner's slash) is cut to fit 63 bytes.
 */
#include <stdio.h>
#include <string.h>

#include "ephemera.h"

void
slug_make(const char *repo, uint64_t pr, char out[static 64])
{
	const char *name = strchr(repo, '/');
	size_t n;
	bool dash = true; /* suppresses leading and doubled '-' */
	int len;

	name = name ? name + 1 : repo;
	len = snprintf(out, 64, "pr-%llu", (unsigned long long)pr);
	n = (size_t)len;
	if (n < 62) {
		out[n++] = '-';
		for (; *name != '\0' && n < 63; name++) {
			char c = *name;

			if (c >= 'A' && c <= 'Z')
				c = (char)(c - 'A' + 'a');
			if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
				out[n++] = c;
				dash = false;
			} else if (!dash) {
				out[n++] = '-';
				dash = true;
			}
		}
		while (n > 0 && out[n - 1] == '-')
			n--;
	}
	out[n] = '\0';
}
