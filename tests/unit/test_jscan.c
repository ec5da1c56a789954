/*
 * test_jscan.c - the one-pass field scanner against the json-c parser it
 * replaced (tests/reference/event_jsonc.c): every recorded payload under
 * every event name, and hostile variants, must give the same event. Where
 * the input is not RFC 8259 JSON the scanner may refuse what json-c took,
 * never the other way round.
 */
#include <dirent.h>

#include "fixture.h"
#include "unit.h"
#include "../../fcgi-app/app.h"
#include "../reference/event_jsonc.c"

static const char *const names[] = {
        "pull_request", "issue_comment",
        "installation", "installation_repositories",
        "ping",         "push",
};

enum expect { SAME, STRICTER };

/* Both parsers on one body: same acceptance and event, or only ours
 * refusing when `stricter` allows it. */
static void
compare(const char *what, const char *name, struct slice body, enum expect want)
{
	struct event a, b;
	struct buf ea = BUF_INIT, eb = BUF_INIT;
	int ra = event_parse(&a, name, body, &ea);
	int rb = ref_event_parse(&b, name, body, &eb);
	const char *diff;

	if (ra == 0 && rb == 0) {
		diff = ref_event_diff(&a, &b);
		if (diff != NULL)
			fprintf(stderr, "  %s as %s: %s differs\n", what, name,
			        diff);
		CHECK(diff == NULL);
	} else if (ra != rb) {
		if (!(want == STRICTER && ra == -1))
			fprintf(stderr,
			        "  %s as %s: scanner %s (%s), json-c %s (%s)\n",
			        what, name, ra ? "refused" : "accepted",
			        buf_str(&ea), rb ? "refused" : "accepted",
			        buf_str(&eb));
		CHECK(want == STRICTER && ra == -1);
	} else {
		CHECK(strncmp(buf_str(&ea), "invalid JSON", 12) == 0);
	}
	event_free(&a);
	event_free(&b);
	buf_free(&ea);
	buf_free(&eb);
}

static void
fixtures_in(const char *sub, const char *suffix, size_t *count)
{
	char dir[512], rel[512];
	struct dirent *e;
	DIR *d;
	size_t i, n = strlen(suffix);

	snprintf(dir, sizeof(dir), "%s/%s", fixture_dir(), sub);
	d = opendir(dir);
	CHECK(d != NULL);
	while (d && (e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		struct buf b = BUF_INIT;

		if (len <= n || strcmp(e->d_name + len - n, suffix) != 0)
			continue;
		snprintf(rel, sizeof(rel), "%s/%s", sub, e->d_name);
		if (fixture_read(rel, &b) == 0) {
			for (i = 0; i < NELEM(names); i++)
				compare(rel, names[i],
				        (struct slice){b.data, b.len}, SAME);
			(*count)++;
		}
		buf_free(&b);
	}
	if (d)
		closedir(d);
}

static void
test_every_fixture_same_event(void)
{
	size_t n = 0;

	fixtures_in("github/webhooks", ".json", &n);
	fixtures_in("github/webhooks/signed", ".body", &n);
	CHECK(n >= 20);
}

/* A pull_request around `inner` (spliced in the pull_request object). */
static void
pr_with(struct buf *b, const char *inner)
{
	buf_reset(b);
	buf_printf(b,
	           "{\"action\":\"opened\",\"repository\":{\"full_name\":"
	           "\"o/r\"},\"installation\":{\"id\":9},\"pull_request\":{"
	           "\"number\":3,\"updated_at\":\"2026-01-01T00:00:00Z\","
	           "\"head\":{\"sha\":\"0123456789abcdef0123456789abcdef0123"
	           "4567\",\"ref\":\"f\",\"repo\":{\"full_name\":\"o/r\"}},"
	           "%s}}",
	           inner);
}

static void
test_hostile_variants(void)
{
	static const struct {
		const char *inner;
		enum expect want;
	} cases[] = {
	        /* Escapes: pairs, lone surrogates, NUL, every short one. */
	        {"\"title\":\"\\ud83d\\ude00 \\ud800 \\udc00x \\ud800\\u0041\"",
	         SAME},
	        {"\"title\":\"a\\u0000b\\/\\\"\\\\\\b\\f\\n\\r\\t\\u00e9\"",
	         SAME},
	        {"\"title\":\"\\uD83D\\uDE00\\uDBFF\\uDFFF\\uFFFF\"", SAME},
	        {"\"title\":\"\\x\"", SAME},
	        {"\"title\":\"\\u12\"", SAME},
	        {"\"title\":\"\\uD800\\\"", SAME},
	        /* Raw invalid UTF-8 is refused; overlong forms by us only. */
	        {"\"title\":\"\xff\"", SAME},
	        {"\"title\":\"\xe2\x82\"", SAME},
	        {"\"title\":\"\xc0\x80\"", STRICTER},
	        {"\"title\":\"\xed\xa0\x80\"", STRICTER},
	        {"\"title\":\"\xf4\x90\x80\x80\"", STRICTER},
	        {"\"title\":\"tab\there\"", STRICTER},
	        /* Duplicate keys: the last wins, wholly. */
	        {"\"title\":\"one\",\"title\":\"two\"", SAME},
	        {"\"user\":{\"login\":\"a\"},\"user\":{}", SAME},
	        {"\"user\":{\"login\":\"a\"},\"user\":7", SAME},
	        {"\"labels\":[{\"name\":\"a\"}],\"labels\":[{\"name\":\"b\"}]",
	         SAME},
	        {"\"labels\":[{\"name\":\"a\",\"name\":\"b\"},{\"x\":1},7,"
	         "{\"name\":null},{\"name\":\"c\"}]",
	         SAME},
	        {"\"head\":{\"sha\":\"x\"}", SAME},
	        /* Escaped keys, a NUL in a key, near-miss keys. */
	        {"\"\\u0074itle\":\"escaped key\"", SAME},
	        {"\"title\\u0000junk\":\"nul key\"", SAME},
	        {"\"Title\":\"x\",\"title \":\"y\",\"titl\":\"z\"", SAME},
	        /* Mistyped fields. */
	        {"\"title\":[\"x\"],\"draft\":\"true\",\"merged\":1", SAME},
	        {"\"draft\":true,\"merged\":true,\"state\":null", SAME},
	        {"\"labels\":{\"name\":\"x\"}", SAME},
	        {"\"labels\":\"x\"", SAME},
	        /* Numbers. */
	        {"\"number\":1.0", SAME},
	        {"\"number\":1e0", SAME},
	        {"\"number\":-0", SAME},
	        {"\"number\":4294967295", SAME},
	        {"\"number\":4294967296", SAME},
	        {"\"number\":99999999999999999999999", SAME},
	        {"\"number\":-99999999999999999999999", SAME},
	        {"\"number\":01", STRICTER},
	        {"\"number\":1.", STRICTER},
	        {"\"x\":NaN", STRICTER},
	        {"\"x\":[1,]", SAME},
	        {"\"x\":tru", SAME},
	        /* Nesting. */
	        {"\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
	         "[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
	         "]]]]]]]]]]]]]]]]",
	         SAME},
	        {"\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
	         "[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
	         "]]]]]]]]]]]]]]]]]",
	         SAME},
	};
	struct buf b = BUF_INIT;
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		pr_with(&b, cases[i].inner);
		compare(cases[i].inner, "pull_request",
		        (struct slice){b.data, b.len}, cases[i].want);
	}
	buf_free(&b);
}

/* Depth: 62 containers below the root still parse, 63 do not. */
static void
test_nesting_limit(void)
{
	struct buf b = BUF_INIT;
	size_t depth, i;

	for (depth = 60; depth <= 66; depth++) {
		buf_reset(&b);
		buf_puts(&b, "{\"x\":");
		for (i = 0; i < depth; i++)
			buf_puts(&b, "{\"y\":");
		buf_puts(&b, "1");
		for (i = 0; i <= depth; i++)
			buf_putc(&b, '}');
		compare("nesting", "ping", (struct slice){b.data, b.len}, SAME);
	}
	buf_free(&b);
}

static void
test_many_labels_and_repos(void)
{
	struct buf b = BUF_INIT, inner = BUF_INIT;
	size_t i;

	buf_puts(&inner, "\"labels\":[");
	for (i = 0; i < 150; i++)
		buf_printf(&inner, "%s{\"name\":\"l%zu\"}", i ? "," : "", i);
	buf_putc(&inner, ']');
	pr_with(&b, buf_str(&inner));
	compare("150 labels", "pull_request", (struct slice){b.data, b.len},
	        SAME);
	buf_reset(&b);
	buf_puts(&b, "{\"action\":\"deleted\",\"installation\":{\"id\":5},"
	             "\"repositories\":[");
	for (i = 0; i < 10010; i++)
		buf_printf(&b, "%s{\"full_name\":\"o/r%zu\"}", i ? "," : "", i);
	buf_puts(&b, "]}");
	compare("10010 repos", "installation", (struct slice){b.data, b.len},
	        SAME);
	buf_free(&b);
	buf_free(&inner);
}

static void
test_not_json_either_way(void)
{
	static const char *const bodies[] = {
	        "",
	        " ",
	        "null",
	        "[]",
	        "\"x\"",
	        "{",
	        "{}x",
	        "{} {}",
	        "{\"a\"}",
	        "{\"a\":}",
	        "{,}",
	        "{\"a\":1,}",
	        "{a:1}",
	        "\xef\xbb\xbf{}",
	        "{}\n",
	        "\t{}\r\n ",
	        "{\"a\":\"\0\"}",
	};
	size_t i;

	for (i = 0; i < NELEM(bodies); i++)
		compare(bodies[i], "ping", slice_of(bodies[i]), SAME);
}

static void
test_int_and_string(void)
{
	static const struct {
		const char *text;
		int64_t want;
	} ints[] = {
	        {"0", 0},
	        {"-0", 0},
	        {"42", 42},
	        {"9223372036854775807", INT64_MAX},
	        {"9223372036854775808", INT64_MAX},
	        {"99999999999999999999999", INT64_MAX},
	        {"-9223372036854775808", INT64_MIN},
	        {"-9223372036854775809", INT64_MIN},
	};
	size_t i;
	int64_t v;

	for (i = 0; i < NELEM(ints); i++) {
		struct jscan_value jv = {JSCAN_INT, ints[i].text,
		                         strlen(ints[i].text), false};

		CHECK(jscan_int(&jv, &v) && v == ints[i].want);
	}
	{
		struct jscan_value jv = {JSCAN_NUMBER, "1.5", 3, false};

		CHECK(!jscan_int(&jv, &v));
	}
	{
		const char *t = "a\\u00e9\\ud83d\\ude00\\ud800\\n";
		struct jscan_value jv = {JSCAN_STRING, t, strlen(t), true};
		struct buf b = BUF_INIT;

		jscan_string(&jv, &b);
		CHECK_STR(buf_str(&b),
		          "a\xc3\xa9\xf0\x9f\x98\x80\xef\xbf\xbd\n");
		buf_free(&b);
	}
}

UNIT_MAIN(TEST(test_every_fixture_same_event), TEST(test_hostile_variants),
          TEST(test_nesting_limit), TEST(test_many_labels_and_repos),
          TEST(test_not_json_either_way), TEST(test_int_and_string))
