/*
 * utf8.c - attacker-supplied text made safe to store and show. Titles,
 * branch names and comment bodies come from anyone who can open a PR; the
 * database columns are utf8mb4 under strict mode, so a stray byte would
 * fail the whole delivery. Invalid sequences become U+FFFD, NUL bytes are
 * dropped, and the result is cut at a code point boundary.
 */
#include <string.h>

#include "app.h"

size_t
utf8_seq(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	unsigned c = s[0];
	size_t len, i;
	unsigned cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, UTF-16 surrogates and beyond U+10FFFF. */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

bool
utf8_valid(const char *s, size_t n)
{
	size_t i = 0, k;

	while (i < n) {
		k = utf8_seq(s + i, n - i);
		if (k == 0)
			return false;
		i += k;
	}
	return true;
}

char *
utf8_clean(const char *s, size_t n, size_t max_chars)
{
	struct buf b = BUF_INIT;
	size_t i = 0, chars = 0, k;

	buf_append(&b, "", 0);
	while (i < n && chars < max_chars) {
		k = utf8_seq(s + i, n - i);
		if (k == 0) {
			buf_puts(&b, "\xef\xbf\xbd");
			k = 1;
		} else if (s[i] != '\0') {
			buf_append(&b, s + i, k);
		} else {
			chars--; /* a dropped NUL takes no room */
		}
		i += k;
		chars++;
	}
	return buf_detach(&b);
}
