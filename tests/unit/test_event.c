/*
 * test_event.c - payload parsing under hostile input: shell
 * metacharacters, quotes and newlines in branch names and titles, a 1 MB
 * title, missing and mistyped fields, deep nesting, invalid UTF-8, NUL
 * bytes. Nothing may crash, everything stored must be valid UTF-8 within
 * its column's size, and a payload missing what a decision needs is
 * ignored rather than guessed at.
 */
#include "unit.h"
#include "../../fcgi-app/app.h"

static const struct policy pol = {false, "preview", "preview-approved", false,
                                  false};

/* A trusted pull_request payload with `title`, `ref` and `extra` spliced
 * in verbatim (they are JSON fragments, so tests can break the types). */
static void
payload(struct buf *b, const char *number, const char *title, const char *ref,
        const char *sha, const char *updated)
{
	buf_reset(b);
	buf_printf(b,
	           "{\"action\":\"opened\",\"pull_request\":{\"number\":%s,"
	           "\"state\":\"open\",\"title\":%s,\"updated_at\":%s,"
	           "\"user\":{\"login\":\"u\"},\"author_association\":"
	           "\"OWNER\",\"draft\":false,\"labels\":[],"
	           "\"head\":{\"ref\":%s,\"sha\":%s,\"repo\":{\"full_name\":"
	           "\"o/r\"}},\"base\":{\"ref\":\"main\",\"repo\":"
	           "{\"full_name\":\"o/r\"}}},\"repository\":{\"full_name\":"
	           "\"o/r\"},\"sender\":{\"login\":\"u\"}}",
	           number, title, updated, ref, sha);
}

#define SHA "\"0123456789abcdef0123456789abcdef01234567\""
#define UPD "\"2026-01-01T00:00:00Z\""

static int
parse(const struct buf *b, struct event *ev)
{
	struct buf err = BUF_INIT;
	struct slice s = {b->data, b->len};
	int rc = event_parse(ev, "pull_request", s, &err);

	buf_free(&err);
	return rc;
}

static bool
clean(const char *s, size_t max_chars)
{
	size_t chars = 0, i;

	for (i = 0; s[i]; i++)
		chars += ((unsigned char)s[i] & 0xc0) != 0x80;
	return utf8_valid(s, strlen(s)) && chars <= max_chars;
}

static void
test_metacharacters_survive_verbatim(void)
{
	static const char *const refs[] = {
	        "\"$(rm -rf /)\"",
	        "\"`id`;echo pwned|nc x 1&&\"",
	        "\"a'b\\\"c\\\\d\"",
	        "\"line\\nbreak\\r\\n--\"",
	        "\"../../etc/passwd\"",
	        "\"<script>alert(1)</script>\"",
	        "\"'; DROP TABLE environments; --\"",
	};
	struct buf b = BUF_INIT;
	size_t i;

	for (i = 0; i < NELEM(refs); i++) {
		struct event ev;
		struct change ch;

		payload(&b, "1", refs[i], refs[i], SHA, UPD);
		CHECK(parse(&b, &ev) == 0);
		CHECK(ev.missing == NULL);
		CHECK(clean(ev.title, 1024) && clean(ev.head_ref, 255));
		/* Stored as given: escaping is each output's job. */
		CHECK(strcmp(ev.title, ev.head_ref) == 0);
		decide(&ev, NULL, 1, &pol, &ch);
		CHECK(ch.op == CHANGE_ENV);
		CHECK_STR(ch.desired, "running");
		event_free(&ev);
	}
	payload(&b, "1", "\"x\"", "\"$(reboot)\\n\"", SHA, UPD);
	{
		struct event ev;

		CHECK(parse(&b, &ev) == 0);
		CHECK_STR(ev.head_ref, "$(reboot)\n");
		event_free(&ev);
	}
	buf_free(&b);
}

static void
test_huge_title_is_cut(void)
{
	struct buf b = BUF_INIT, t = BUF_INIT;
	struct event ev;
	size_t i;

	buf_putc(&t, '"');
	for (i = 0; i < 1024 * 1024 / 4; i++)
		buf_puts(&t, "\xc3\xa9"
		             "ab"); /* 3 chars, 4 bytes */
	buf_putc(&t, '"');
	payload(&b, "1", buf_str(&t), "\"r\"", SHA, UPD);
	CHECK(b.len > 1024 * 1024);
	CHECK(parse(&b, &ev) == 0);
	CHECK(clean(ev.title, 1024));
	CHECK(strlen(ev.title) > 1024);  /* cut by characters... */
	CHECK(strlen(ev.title) <= 4096); /* ...not left at 1 MB */
	event_free(&ev);
	buf_free(&b);
	buf_free(&t);
}

static void
test_missing_and_mistyped(void)
{
	static const struct {
		const char *number, *title, *sha, *updated, *missing;
	} cases[] = {
	        {"\"7\"", "\"t\"", SHA, UPD, "pull_request.number"},
	        {"-1", "\"t\"", SHA, UPD, "pull_request.number"},
	        {"0", "\"t\"", SHA, UPD, "pull_request.number"},
	        {"99999999999", "\"t\"", SHA, UPD, "pull_request.number"},
	        {"1.5", "\"t\"", SHA, UPD, "pull_request.number"},
	        {"null", "\"t\"", SHA, UPD, "pull_request.number"},
	        {"1", "\"t\"", "null", UPD, "pull_request.head.sha"},
	        {"1", "\"t\"", "\"abc\"", UPD, "pull_request.head.sha"},
	        {"1", "\"t\"", "\"0123456789abcdef0123456789abcdef012345678\"",
	         UPD, "pull_request.head.sha"},
	        {"1", "\"t\"", "\"0123456789ABCDEF0123456789abcdef01234567\"",
	         UPD, "pull_request.head.sha"},
	        {"1", "\"t\"", "7", UPD, "pull_request.head.sha"},
	        {"1", "\"t\"", SHA, "\"yesterday\"", "pull_request.updated_at"},
	        {"1", "\"t\"", SHA, "12345", "pull_request.updated_at"},
	        {"1", "\"t\"", SHA, "\"2026-02-30T00:00:00Z\"",
	         "pull_request.updated_at"},
	        /* A mistyped optional field is only dropped. */
	        {"1", "{\"a\":[1,2]}", SHA, UPD, NULL},
	        {"1", "null", SHA, UPD, NULL},
	        {"1", "42", SHA, UPD, NULL},
	};
	struct buf b = BUF_INIT;
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		struct event ev;
		struct change ch;

		payload(&b, cases[i].number, cases[i].title, "\"r\"",
		        cases[i].sha, cases[i].updated);
		CHECK(parse(&b, &ev) == 0);
		CHECK_STR(ev.missing, cases[i].missing);
		decide(&ev, NULL, 1, &pol, &ch);
		if (cases[i].missing) {
			CHECK(ch.op == CHANGE_IGNORE);
			CHECK_STR(ch.reason, "malformed payload");
		} else {
			CHECK(ch.op == CHANGE_ENV);
			CHECK_STR(ev.title, "");
		}
		event_free(&ev);
	}
	buf_free(&b);
}

static void
test_wrong_shapes(void)
{
	static const char *const bodies[] = {
	        "{}",
	        "{\"action\":\"opened\"}",
	        "{\"action\":\"opened\",\"pull_request\":[]}",
	        "{\"action\":\"opened\",\"pull_request\":\"x\","
	        "\"repository\":{\"full_name\":\"o/r\"}}",
	        "{\"action\":7,\"pull_request\":{}}",
	        "{\"action\":\"opened\",\"repository\":{\"full_name\":\"o/r\"},"
	        "\"pull_request\":{\"number\":1,\"head\":\"x\"}}",
	        "{\"action\":\"opened\",\"repository\":\"o/r\"}",
	};
	struct buf err = BUF_INIT;
	size_t i;

	for (i = 0; i < NELEM(bodies); i++) {
		struct event ev;
		struct change ch;

		CHECK(event_parse(&ev, "pull_request", slice_of(bodies[i]),
		                  &err) == 0);
		CHECK(ev.missing != NULL);
		decide(&ev, NULL, 1, &pol, &ch);
		CHECK(ch.op == CHANGE_IGNORE);
		event_free(&ev);
	}
	buf_free(&err);
}

static void
test_not_json(void)
{
	static const char *const bodies[] = {
	        "",
	        "null",
	        "[]",
	        "\"x\"",
	        "{",
	        "{\"a\":1} trailing",
	        "{\"a\":1}{\"b\":2}",
	        "{\"a\":\"\xff\xfe\"}",
	        "{\"a\":tru}",
	};
	/*
	 * json-c's UTF-8 check lets overlong forms and encoded surrogates
	 * through, and its strict mode single quotes: whatever it accepts,
	 * the strings that come out are clean.
	 */
	static const char *const lax[] = {
	        "{\"repository\":{\"full_name\":\"\xc0\xaf\"}}",
	        "{\"repository\":{\"full_name\":\"\xed\xa0\x80\"}}",
	        "{'repository':{'full_name':'o/r'}}",
	};
	struct buf err = BUF_INIT, deep = BUF_INIT;
	size_t i;
	struct event ev;

	for (i = 0; i < NELEM(bodies); i++) {
		buf_reset(&err);
		CHECK(event_parse(&ev, "pull_request", slice_of(bodies[i]),
		                  &err) == -1);
		CHECK(strncmp(buf_str(&err), "invalid JSON", 12) == 0);
		event_free(&ev);
	}
	for (i = 0; i < NELEM(lax); i++) {
		buf_reset(&err);
		if (event_parse(&ev, "pull_request", slice_of(lax[i]), &err) ==
		    0)
			CHECK(ev.repo == NULL ||
			      utf8_valid(ev.repo, strlen(ev.repo)));
		event_free(&ev);
	}
	/* Deep nesting is refused, not recursed into. */
	buf_puts(&deep, "{\"a\":");
	for (i = 0; i < 100000; i++)
		buf_putc(&deep, '[');
	for (i = 0; i < 100000; i++)
		buf_putc(&deep, ']');
	buf_putc(&deep, '}');
	buf_reset(&err);
	CHECK(event_parse(&ev, "pull_request",
	                  (struct slice){deep.data, deep.len}, &err) == -1);
	event_free(&ev);
	/* Moderate nesting somewhere irrelevant is fine. */
	buf_reset(&deep);
	buf_puts(&deep, "{\"x\":");
	for (i = 0; i < 40; i++)
		buf_puts(&deep, "{\"y\":");
	buf_puts(&deep, "1");
	for (i = 0; i < 41; i++)
		buf_putc(&deep, '}');
	CHECK(event_parse(&ev, "ping", (struct slice){deep.data, deep.len},
	                  &err) == 0);
	event_free(&ev);
	buf_free(&deep);
	buf_free(&err);
}

static void
test_escapes_and_nul(void)
{
	struct buf b = BUF_INIT;
	struct event ev;

	/* A lone surrogate, a NUL and a 4-byte character via escapes. */
	payload(&b, "1", "\"a\\ud800b\\u0000c\\ud83d\\ude00\"",
	        "\"\\u0000\\u0000\"", SHA, UPD);
	if (parse(&b, &ev) == 0) {
		CHECK(clean(ev.title, 1024));
		CHECK(strchr(ev.title, 'c') != NULL);
		CHECK(strstr(ev.title, "\xf0\x9f\x98\x80") != NULL);
		CHECK_STR(ev.head_ref, "");
		event_free(&ev);
	}
	/* Names with odd bytes are reduced to [a-z0-9_]. */
	{
		struct buf err = BUF_INIT;

		CHECK(event_parse(&ev, "pull_request\n; rm -rf",
		                  slice_of("{\"action\":\"op ened\\n\"}"),
		                  &err) == 0);
		CHECK_STR(ev.name, "pull_requestrmrf");
		CHECK_STR(ev.action, "opened");
		CHECK(ev.kind == EVENT_OTHER);
		event_free(&ev);
		buf_free(&err);
	}
	buf_free(&b);
}

static void
test_utf8_clean(void)
{
	static const struct {
		const char *in;
		size_t n, max;
		const char *out;
	} cases[] = {
	        {"abc", 3, 10, "abc"},
	        {"abc", 3, 2, "ab"},
	        {"\xc3\xa9\xc3\xa9", 4, 1, "\xc3\xa9"},
	        {"a\xff"
	         "b",
	         3, 10,
	         "a\xef\xbf\xbd"
	         "b"},
	        {"\xe2\x82", 2, 10, "\xef\xbf\xbd\xef\xbf\xbd"},
	        {"a\0b", 3, 10, "ab"},
	        {"\xf4\x90\x80\x80", 4, 10,
	         "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
	        {"\xf0\x9f\x98\x80", 4, 10, "\xf0\x9f\x98\x80"},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		char *s = utf8_clean(cases[i].in, cases[i].n, cases[i].max);

		CHECK_STR(s, cases[i].out);
		free(s);
	}
}

UNIT_MAIN(TEST(test_metacharacters_survive_verbatim),
          TEST(test_huge_title_is_cut), TEST(test_missing_and_mistyped),
          TEST(test_wrong_shapes), TEST(test_not_json),
          TEST(test_escapes_and_nul), TEST(test_utf8_clean))
