/*
 * slug.c - an environment's DNS name. The repository name is attacker-
 * chosen (any fork can be named anything GitHub allows), so the slug keeps
 * only [a-z0-9-] and is always a valid single label: the PR number comes
 * first and is never cut, the repository part (after the owner's slash) is cut to fit 63 bytes.
 */
#include <openssl/sha.h>
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

/*
 * Two repositories with the same name under different owners ("a/app" and
 * "b/app") give the same slug for the same PR number. The later one gets
 * "-" and the first `hexlen` hex digits of SHA-256 of its lower-cased full
 * name, cutting the name part so that the label still fits 63 bytes.
 */
void
slug_make_suffixed(const char *repo, uint64_t pr, size_t hexlen,
                   char out[static 64])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[SHA256_DIGEST_LENGTH];
	struct buf lower = BUF_INIT;
	size_t n, i, keep;

	if (hexlen < 1)
		hexlen = 1;
	if (hexlen > 2 * SHA256_DIGEST_LENGTH || hexlen > 40)
		hexlen = 40;
	for (i = 0; repo[i]; i++) {
		char c = repo[i];

		buf_putc(&lower,
		         c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c);
	}
	SHA256((const unsigned char *)buf_str(&lower), lower.len, md);
	buf_free(&lower);
	slug_make(repo, pr, out);
	keep = 63 - 1 - hexlen;
	n = strlen(out);
	if (n > keep)
		n = keep;
	while (n > 0 && out[n - 1] == '-')
		n--;
	out[n++] = '-';
	for (i = 0; i < hexlen; i++)
		out[n++] = hex[(md[i / 2] >> (i % 2 ? 0 : 4)) & 15];
	out[n] = '\0';
}

bool
slug_valid(const char *s, size_t n)
{
	size_t i;

	if (n < 4 || n > 63 || strncmp(s, "pr-", 3) != 0 || s[3] < '0' ||
	    s[3] > '9' || s[n - 1] == '-')
		return false;
	for (i = 3; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}
