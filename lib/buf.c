/*
 * buf.c - the one growable byte buffer (like curl's dynbuf and git's strbuf)
 * and the borrowed slice. See ephemera.h for the ownership rules.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ephemera.h"

void
buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
	b->failed = false;
}

void
buf_free(struct buf *b)
{
	if (b == NULL)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->failed = false;
}

/* Empties the buffer but keeps its memory and clears the failure. */
void
buf_reset(struct buf *b)
{
	b->len = 0;
	b->failed = false;
	if (b->data)
		b->data[0] = '\0';
}

/* Makes room for `extra` more bytes plus the NUL, or fails stickily. */
static int
buf_grow(struct buf *b, size_t extra)
{
	size_t need, cap;

	if (b->failed)
		return -1;
	if (extra > b->max || b->len > b->max - extra) {
		b->failed = true;
		return -1;
	}
	need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
	return 0;
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
	if (buf_grow(b, n) == -1)
		return -1;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
buf_puts(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int
buf_putc(struct buf *b, char c)
{
	return buf_append(b, &c, 1);
}

int
buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	int n;

	if (b->failed)
		return -1;
	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0 || buf_grow(b, (size_t)n) == -1) {
		b->failed = true;
		return -1;
	}
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

/* Never NULL: an empty buffer reads as "". */
const char *
buf_str(const struct buf *b)
{
	return b->data ? b->data : "";
}

/* Hands the bytes to the caller (free() them) and leaves the buf empty. */
char *
buf_detach(struct buf *b)
{
	char *p = b->data ? b->data : xstrdup("");

	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

void
buf_keep_tail(struct buf *b, size_t keep)
{
	size_t cut;
	char *nl;

	if (b->len <= keep)
		return;
	cut = b->len - keep;
	nl = memchr(b->data + cut, '\n', keep);
	if (nl != NULL && (size_t)(nl - b->data) + 1 < b->len)
		cut = (size_t)(nl - b->data) + 1;
	memmove(b->data, b->data + cut, b->len - cut);
	b->len -= cut;
	b->data[b->len] = '\0';
}

/* Text into HTML element or quoted-attribute context. */
int
buf_append_html(struct buf *b, const char *s, size_t n)
{
	size_t i, run = 0;
	const char *rep;

	for (i = 0; i < n; i++) {
		switch (s[i]) {
		case '&':
			rep = "&amp;";
			break;
		case '<':
			rep = "&lt;";
			break;
		case '>':
			rep = "&gt;";
			break;
		case '"':
			rep = "&quot;";
			break;
		case '\'':
			rep = "&#39;";
			break;
		default:
			rep = NULL;
			break;
		}
		if (rep == NULL)
			continue;
		buf_append(b, s + run, i - run);
		buf_puts(b, rep);
		run = i + 1;
	}
	buf_append(b, s + run, n - run);
	return b->failed ? -1 : 0;
}

/*
 * A JSON string literal with its quotes. Bytes >= 0x80 pass through, so
 * valid UTF-8 stays readable; '<' is escaped too so that JSON embedded in a
 * <script> can never close it. Runs of plain bytes are copied at once (the
 * status API writes thousands of strings per response).
 */
int
buf_append_json_string(struct buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, run = 0;
	unsigned char c;

	buf_putc(b, '"');
	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != 0x7f)
			continue;
		buf_append(b, s + run, i - run);
		run = i + 1;
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};

			buf_append(b, e, 2);
		} else if (c == '\n') {
			buf_puts(b, "\\n");
		} else if (c == '\r') {
			buf_puts(b, "\\r");
		} else if (c == '\t') {
			buf_puts(b, "\\t");
		} else {
			char u[6] = {'\\', 'u',         '0',
			             '0',  hex[c >> 4], hex[c & 15]};

			buf_append(b, u, sizeof(u));
		}
	}
	buf_append(b, s + run, n - run);
	buf_putc(b, '"');
	return b->failed ? -1 : 0;
}

struct slice
slice_of(const char *s)
{
	struct slice sl = {s, s ? strlen(s) : 0};

	return sl;
}

bool
slice_eq(struct slice sl, const char *s)
{
	size_t n = strlen(s);

	return sl.ptr != NULL && sl.len == n && memcmp(sl.ptr, s, n) == 0;
}

char *
slice_dup(struct slice sl)
{
	return xstrndup(sl.ptr ? sl.ptr : "", sl.len);
}
