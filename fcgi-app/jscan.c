/*
 * jscan.c - one validating pass over JSON text that notes where a few
 * wanted fields are, without building a tree. Pure: no I/O, and no
 * allocation but the result lists.
 *
 * Why: a pull_request delivery is ~24 KB of JSON of which event.c needs
 * about thirty values; building json-c's tree of it was more than half of
 * the fcgi-app's instructions per delivery. This scanner reads each byte
 * once and copies nothing: a field is a (type, pointer, length) into the
 * body, and only the strings event.c keeps are decoded (jscan_string).
 *
 * What it accepts is RFC 8259 JSON, which is a subset of what json-c's
 * strict mode took before (json-c also let through leading zeros, "1.",
 * NaN and Infinity, raw control characters in strings and overlong UTF-8;
 * GitHub sends none of them). Where both accept, the fields are the same,
 * and test_jscan.c and fuzz_webhook.c check exactly that against json-c:
 *  - duplicate keys: the last one wins, wholly (an object given twice is
 *    replaced, not merged), as in json-c;
 *  - nesting: a value more than 63 containers deep is refused, as with
 *    json_tokener_new_ex(64);
 *  - integers beyond 64 bits saturate (json-c's int64 getter did);
 *  - \u escapes: a surrogate pair is one character, a lone surrogate is
 *    U+FFFD, \u0000 is a NUL byte (utf8_clean drops it later);
 *  - a key is compared up to a NUL it may contain (json-c kept keys as C
 *    strings).
 */
#include <stdlib.h>
#include <string.h>

#include "app.h"

#define JSCAN_DEPTH 64 /* as json_tokener_new_ex(64): values at depth < 64 */
#define JSCAN_NODES 128
#define JSCAN_KEY_MAX 64 /* no wanted key is longer */

/*
 * The wanted paths as a tree, a node per step. A "[]" step is an element
 * node: it stands for each element of its parent's array and is never
 * matched by a key. `field` is the jscan_field this node's value is, or
 * -1; fields below an element node keep one item per element, for the
 * first `max_items` elements.
 */
struct node {
	const char *name;
	size_t len;
	int child, sibling;
	bool elements;
	int field;
	size_t max_items;
};

struct scan {
	const char *p, *end;
	const char *why; /* the first error */
	struct node nodes[JSCAN_NODES];
	int nnodes;
	const struct jscan_field *fields;
	struct jscan_result *out;
	size_t nfields;
};

/* Byte classes inside a string. */
enum { C_PLAIN, C_QUOTE, C_ESCAPE, C_CONTROL, C_HIGH };

static const unsigned char string_class[256] = {
        [0x00 ... 0x1f] = C_CONTROL,
        ['"'] = C_QUOTE,
        ['\\'] = C_ESCAPE,
        [0x80 ... 0xff] = C_HIGH,
};

static bool
fail(struct scan *s, const char *why)
{
	if (s->why == NULL)
		s->why = why;
	return false;
}

static int
node_child(const struct scan *s, int n, const char *name, size_t len,
           bool elements)
{
	int c;

	for (c = s->nodes[n].child; c != -1; c = s->nodes[c].sibling)
		if (s->nodes[c].elements == elements &&
		    s->nodes[c].len == len &&
		    memcmp(s->nodes[c].name, name, len) == 0)
			return c;
	return -1;
}

static int
node_add(struct scan *s, int parent, const char *name, size_t len,
         bool elements)
{
	int c = node_child(s, parent, name, len, elements);
	struct node *n;

	if (c != -1)
		return c;
	if (s->nnodes == JSCAN_NODES)
		fatal("jscan_bug", "reason=too_many_paths");
	c = s->nnodes++;
	n = &s->nodes[c];
	memset(n, 0, sizeof(*n));
	n->name = name;
	n->len = len;
	n->child = -1;
	n->elements = elements;
	n->field = -1;
	n->sibling = s->nodes[parent].child;
	s->nodes[parent].child = c;
	return c;
}

/* "a.b[].c" → nodes a, b, [], c; the field hangs on the last. */
static void
tree_build(struct scan *s)
{
	size_t i;

	memset(&s->nodes[0], 0, sizeof(s->nodes[0]));
	s->nodes[0].child = s->nodes[0].sibling = s->nodes[0].field = -1;
	s->nnodes = 1;
	for (i = 0; i < s->nfields; i++) {
		const char *p = s->fields[i].path;
		int n = 0, elem = -1;

		while (*p) {
			const char *dot = strchr(p, '.');
			size_t len = dot ? (size_t)(dot - p) : strlen(p);

			if (len > 2 && memcmp(p + len - 2, "[]", 2) == 0) {
				if (elem != -1 || s->fields[i].max_items == 0)
					fatal("jscan_bug", "path=%s",
					      s->fields[i].path);
				n = node_add(s, n, p, len - 2, false);
				n = elem = node_add(s, n, "", 0, true);
				if (s->nodes[n].max_items == 0 ||
				    s->nodes[n].max_items >
				            s->fields[i].max_items)
					s->nodes[n].max_items =
					        s->fields[i].max_items;
			} else {
				n = node_add(s, n, p, len, false);
			}
			p += len + (dot != NULL);
		}
		if (elem == -1 && s->fields[i].max_items != 0)
			fatal("jscan_bug", "path=%s", s->fields[i].path);
		s->nodes[n].field = (int)i;
	}
}

/* Where the value of `field` now starting goes: its item, if listed. */
static struct jscan_value *
slot_of(struct scan *s, int field)
{
	struct jscan_result *r = &s->out[field];

	if (s->fields[field].max_items == 0)
		return &r->value;
	return r->nitems > 0 ? &r->items[r->nitems - 1] : NULL;
}

enum items_op { ITEMS_RESET, ITEMS_PUSH };

/* Every listed field below element node n: a new array, or element. */
static void
items_each(struct scan *s, int n, enum items_op op)
{
	int c, f = s->nodes[n].field;

	if (f != -1) {
		struct jscan_result *r = &s->out[f];

		if (op == ITEMS_RESET) {
			r->nitems = 0;
		} else {
			if (r->nitems == r->cap) {
				r->cap = r->cap ? r->cap * 2 : 8;
				r->items = xrealloc(r->items,
				                    r->cap * sizeof(*r->items));
			}
			memset(&r->items[r->nitems++], 0, sizeof(*r->items));
		}
	}
	for (c = s->nodes[n].child; c != -1; c = s->nodes[c].sibling)
		items_each(s, c, op);
}

/* A key given again replaces everything its earlier value held. */
static void
subtree_clear(struct scan *s, int n)
{
	int c;

	if (s->nodes[n].field != -1) {
		struct jscan_value *v = slot_of(s, s->nodes[n].field);

		if (v != NULL)
			memset(v, 0, sizeof(*v));
	}
	for (c = s->nodes[n].child; c != -1; c = s->nodes[c].sibling) {
		if (s->nodes[c].elements)
			items_each(s, c, ITEMS_RESET);
		else
			subtree_clear(s, c);
	}
}

static void
record(struct scan *s, int n, enum jscan_type type, const char *ptr, size_t len,
       bool escaped)
{
	struct jscan_value *v;

	if (n == -1 || s->nodes[n].field == -1)
		return;
	v = slot_of(s, s->nodes[n].field);
	if (v == NULL)
		return;
	v->type = type;
	v->ptr = ptr;
	v->len = len;
	v->escaped = escaped;
}

static void
ws_skip(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' ||
	                         *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static bool
hex4(const char *p, unsigned *out)
{
	unsigned v = 0;
	int i, h;

	for (i = 0; i < 4; i++) {
		h = parse_hex_digit(p[i]);
		if (h < 0)
			return false;
		v = v << 4 | (unsigned)h;
	}
	*out = v;
	return true;
}

/*
 * Checks a string from just after its opening quote and steps past the
 * closing one. This loop is where the scanner spends its time: plain
 * bytes are skipped by table, UTF-8 is checked where it is not ASCII.
 */
static bool
string_skip(struct scan *s, bool *escaped)
{
	const char *p = s->p, *end = s->end;
	unsigned cp;
	size_t k;

	*escaped = false;
	for (;;) {
		while (p < end && string_class[(unsigned char)*p] == C_PLAIN)
			p++;
		if (p == end)
			return fail(s, "truncated");
		switch (string_class[(unsigned char)*p]) {
		case C_QUOTE:
			s->p = p + 1;
			return true;
		case C_CONTROL:
			return fail(s, "control character in a string");
		case C_ESCAPE:
			*escaped = true;
			if (end - p < 2)
				return fail(s, "truncated");
			if (p[1] == 'u') {
				if (end - p < 6 || !hex4(p + 2, &cp))
					return fail(s, "invalid \\u escape");
				p += 6;
			} else if (strchr("\"\\/bfnrt", p[1]) != NULL &&
			           p[1] != '\0') {
				p += 2;
			} else {
				return fail(s, "invalid escape");
			}
			break;
		default: /* C_HIGH */
			k = utf8_seq(p, (size_t)(end - p));
			if (k == 0)
				return fail(s, "invalid UTF-8");
			p += k;
			break;
		}
	}
}

static bool
digits_skip(struct scan *s)
{
	const char *start = s->p;

	while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
		s->p++;
	return s->p > start || fail(s, "invalid number");
}

/* RFC 8259's number; `integer` unless it has a fraction or exponent. */
static bool
number_skip(struct scan *s, bool *integer)
{
	*integer = true;
	if (*s->p == '-')
		s->p++;
	if (s->p < s->end && *s->p == '0')
		s->p++;
	else if (s->p == s->end || *s->p < '1' || *s->p > '9')
		return fail(s, "invalid number");
	else
		digits_skip(s);
	if (s->p < s->end && *s->p == '.') {
		*integer = false;
		s->p++;
		if (!digits_skip(s))
			return false;
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
		*integer = false;
		s->p++;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		if (!digits_skip(s))
			return false;
	}
	return true;
}

static bool
literal_skip(struct scan *s, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return fail(s, "invalid literal");
	s->p += n;
	return true;
}

/* The wanted child of n named by a key (its text still escaped), or -1. */
static int
key_lookup(struct scan *s, int n, const char *key, size_t len, bool escaped)
{
	char name[JSCAN_KEY_MAX];
	struct jscan_value v = {JSCAN_STRING, key, len, true};
	struct buf b = BUF_INIT;
	int c = -1;

	if (!escaped)
		return node_child(s, n, key, len, false);
	if (len > 6 * JSCAN_KEY_MAX)
		return -1;
	jscan_string(&v, &b);
	/* json-c kept keys as C strings: a NUL ends one. */
	len = strnlen(buf_str(&b), b.len);
	if (len <= sizeof(name)) {
		memcpy(name, buf_str(&b), len);
		c = node_child(s, n, name, len, false);
	}
	buf_free(&b);
	return c;
}

static bool value_scan(struct scan *, int n, int depth);

static bool
object_scan(struct scan *s, int n, int depth)
{
	s->p++; /* '{' */
	ws_skip(s);
	if (s->p < s->end && *s->p == '}') {
		s->p++;
		return true;
	}
	for (;;) {
		const char *key;
		bool escaped;
		int c = -1;

		ws_skip(s);
		if (s->p == s->end)
			return fail(s, "truncated");
		if (*s->p != '"')
			return fail(s, "a key must be a string");
		key = ++s->p;
		if (!string_skip(s, &escaped))
			return false;
		if (n != -1 && s->nodes[n].child != -1)
			c = key_lookup(s, n, key, (size_t)(s->p - 1 - key),
			               escaped);
		ws_skip(s);
		if (s->p == s->end || *s->p != ':')
			return fail(s, "':' expected");
		s->p++;
		if (!value_scan(s, c, depth + 1))
			return false;
		ws_skip(s);
		if (s->p == s->end)
			return fail(s, "truncated");
		if (*s->p == '}') {
			s->p++;
			return true;
		}
		if (*s->p++ != ',')
			return fail(s, "',' or '}' expected");
	}
}

static bool
array_scan(struct scan *s, int n, int depth)
{
	int elem = n != -1 ? node_child(s, n, "", 0, true) : -1;
	size_t i;

	s->p++; /* '[' */
	ws_skip(s);
	if (s->p < s->end && *s->p == ']') {
		s->p++;
		return true;
	}
	for (i = 0;; i++) {
		int e = -1;

		if (elem != -1 && i < s->nodes[elem].max_items) {
			items_each(s, elem, ITEMS_PUSH);
			e = elem;
		}
		if (!value_scan(s, e, depth + 1))
			return false;
		ws_skip(s);
		if (s->p == s->end)
			return fail(s, "truncated");
		if (*s->p == ']') {
			s->p++;
			return true;
		}
		if (*s->p++ != ',')
			return fail(s, "',' or ']' expected");
	}
}

/* Recursion is bounded by JSCAN_DEPTH. */
static bool
value_scan(struct scan *s, int n, int depth)
{
	const char *start;
	bool flag;

	if (depth >= JSCAN_DEPTH)
		return fail(s, "nesting too deep");
	ws_skip(s);
	if (s->p == s->end)
		return fail(s, "truncated");
	if (n != -1)
		subtree_clear(s, n);
	start = s->p;
	switch (*s->p) {
	case '{':
		record(s, n, JSCAN_OBJECT, start, 0, false);
		return object_scan(s, n, depth);
	case '[':
		record(s, n, JSCAN_ARRAY, start, 0, false);
		return array_scan(s, n, depth);
	case '"':
		s->p++;
		if (!string_skip(s, &flag))
			return false;
		record(s, n, JSCAN_STRING, start + 1,
		       (size_t)(s->p - 1 - (start + 1)), flag);
		return true;
	case 't':
		record(s, n, JSCAN_TRUE, start, 4, false);
		return literal_skip(s, "true");
	case 'f':
		record(s, n, JSCAN_FALSE, start, 5, false);
		return literal_skip(s, "false");
	case 'n':
		record(s, n, JSCAN_NULL, start, 4, false);
		return literal_skip(s, "null");
	default:
		if (*s->p != '-' && (*s->p < '0' || *s->p > '9'))
			return fail(s, "unexpected character");
		if (!number_skip(s, &flag))
			return false;
		record(s, n, flag ? JSCAN_INT : JSCAN_NUMBER, start,
		       (size_t)(s->p - start), false);
		return true;
	}
}

int
jscan_parse(struct slice json, const struct jscan_field *fields, size_t n,
            struct jscan_result *out, const char **why)
{
	struct scan s;
	bool object;

	memset(out, 0, n * sizeof(*out));
	s.p = json.ptr;
	s.end = json.ptr + json.len;
	s.why = NULL;
	s.fields = fields;
	s.out = out;
	s.nfields = n;
	tree_build(&s);
	ws_skip(&s);
	if (s.p == s.end) {
		*why = "empty";
		return -1;
	}
	object = *s.p == '{';
	if (!value_scan(&s, 0, 0)) {
		*why = s.why;
		return -1;
	}
	ws_skip(&s);
	if (s.p != s.end) {
		*why = "trailing bytes";
		return -1;
	}
	if (!object) {
		*why = "not an object";
		return -1;
	}
	return 0;
}

static void
utf8_put(struct buf *b, unsigned cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | cp >> 12);
		u[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | cp >> 18);
		u[1] = (char)(0x80 | (cp >> 12 & 0x3f));
		u[2] = (char)(0x80 | (cp >> 6 & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	buf_append(b, u, n);
}

/* Only ever called on text string_skip accepted. */
void
jscan_string(const struct jscan_value *v, struct buf *out)
{
	const char *p = v->ptr, *end = v->ptr + v->len, *run;
	unsigned cp, lo;

	buf_append(out, "", 0);
	while (p < end) {
		run = p;
		while (p < end && *p != '\\')
			p++;
		buf_append(out, run, (size_t)(p - run));
		if (p == end)
			break;
		switch (p[1]) {
		case 'b':
			buf_putc(out, '\b');
			break;
		case 'f':
			buf_putc(out, '\f');
			break;
		case 'n':
			buf_putc(out, '\n');
			break;
		case 'r':
			buf_putc(out, '\r');
			break;
		case 't':
			buf_putc(out, '\t');
			break;
		case 'u':
			/* The scan checked the digits; never trust that. */
			if (!hex4(p + 2, &cp))
				cp = 0xfffd;
			p += 4;
			if (cp >= 0xd800 && cp <= 0xdbff && end - p >= 8 &&
			    p[2] == '\\' && p[3] == 'u' && hex4(p + 4, &lo) &&
			    lo >= 0xdc00 && lo <= 0xdfff) {
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				     (lo - 0xdc00);
				p += 6;
			} else if (cp >= 0xd800 && cp <= 0xdfff) {
				cp = 0xfffd; /* a lone surrogate */
			}
			utf8_put(out, cp);
			break;
		default: /* " \ / */
			buf_putc(out, p[1]);
			break;
		}
		p += 2;
	}
}

/* Saturating beyond 64 bits, as json-c's json_object_get_int64 did. */
bool
jscan_int(const struct jscan_value *v, int64_t *out)
{
	const char *p, *end;
	uint64_t u = 0;
	bool neg, over = false;

	if (v->type != JSCAN_INT)
		return false;
	p = v->ptr;
	end = v->ptr + v->len;
	neg = *p == '-';
	for (p += neg; p < end; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (u > (UINT64_MAX - d) / 10)
			over = true;
		else
			u = u * 10 + d;
	}
	if (neg)
		*out = over || u > (uint64_t)INT64_MAX ? INT64_MIN
		                                       : -(int64_t)u;
	else
		*out = over || u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)u;
	return true;
}

void
jscan_results_free(struct jscan_result *r, size_t n)
{
	size_t i;

	for (i = 0; r && i < n; i++)
		free(r[i].items);
}
