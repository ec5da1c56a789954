/*
 * fuzz_manifest.c - libFuzzer over what reaches `ephemera github-app
 * create` from outside: the redirect's query string (any local page can
 * send the browser there) and GitHub's answer to the code exchange. The
 * first byte chooses the target; the rest is the input.
 *
 * Invariants beyond "no crash, no leak, no UB": a decoded value is never
 * longer than the query; a code that passes manifest_code_valid holds no
 * '/', '.', '%' or '?'; parsed credentials have a positive id, a PEM
 * header and a non-empty secret.
 */
#include <stdlib.h>
#include <string.h>

#include "../../cli/cli.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static void
must(bool ok)
{
	if (!ok)
		abort();
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct buf b = BUF_INIT;
	struct app_credentials c;
	char *s;

	if (size < 1)
		return 0;
	s = xstrndup((const char *)data + 1, size - 1);
	if (data[0] & 1) {
		if (manifest_query_get(s, "code", &b) == 0) {
			must(b.len <= strlen(s));
			if (manifest_code_valid(buf_str(&b)))
				must(strpbrk(buf_str(&b), "/.%?&") == NULL);
		}
	} else if (manifest_conversion_parse(s, strlen(s), &c, &b) == 0) {
		must(c.id > 0 && strncmp(c.pem, "-----BEGIN ", 11) == 0 &&
		     c.webhook_secret[0] != '\0');
		app_credentials_free(&c);
	}
	free(s);
	buf_free(&b);
	return 0;
}
