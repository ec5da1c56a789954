/* test_buf.c - the byte buffer, its escapers, and the slice. */
#include "unit.h"

static void
test_append_and_cap(void)
{
	struct buf b;

	buf_init(&b, 8);
	CHECK(buf_puts(&b, "abcd") == 0);
	CHECK(buf_printf(&b, "%d", 123) == 0);
	CHECK_STR(buf_str(&b), "abcd123");
	/* Exceeding the cap fails stickily and keeps what was there. */
	CHECK(buf_puts(&b, "xy") == -1);
	CHECK(b.failed);
	CHECK(buf_puts(&b, "") == -1);
	CHECK_STR(buf_str(&b), "abcd123");
	buf_reset(&b);
	CHECK(!b.failed && b.len == 0);
	CHECK(buf_puts(&b, "12345678") == 0);
	buf_free(&b);
	CHECK_STR(buf_str(&b), "");
}

static void
test_grow_large(void)
{
	struct buf b = BUF_INIT;
	int i;

	for (i = 0; i < 10000; i++)
		buf_putc(&b, 'x');
	CHECK(b.len == 10000 && b.data[10000] == '\0');
	buf_free(&b);
}

static void
test_html(void)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	        {"plain", "plain"},
	        {"<script>alert(1)</script>",
	         "&lt;script&gt;alert(1)&lt;/script&gt;"},
	        {"a&b \"q\" 'r'", "a&amp;b &quot;q&quot; &#39;r&#39;"},
	        {"", ""},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		struct buf b = BUF_INIT;

		buf_append_html(&b, cases[i].in, strlen(cases[i].in));
		CHECK_STR(buf_str(&b), cases[i].out);
		buf_free(&b);
	}
}

static void
test_json_string(void)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	        {"x", "\"x\""},
	        {"a\"b\\c", "\"a\\\"b\\\\c\""},
	        {"line\nnext\t", "\"line\\nnext\\t\""},
	        {"</script>", "\"\\u003c/script>\""},
	        {"\x01", "\"\\u0001\""},
	        {"caf\xc3\xa9", "\"caf\xc3\xa9\""},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		struct buf b = BUF_INIT;

		buf_append_json_string(&b, cases[i].in, strlen(cases[i].in));
		CHECK_STR(buf_str(&b), cases[i].out);
		buf_free(&b);
	}
}

static void
test_keep_tail(void)
{
	struct buf b = BUF_INIT;

	buf_puts(&b, "one\ntwo\nthree\nfour\n");
	buf_keep_tail(&b, 12);
	/* Cut at the next line start inside the kept window. */
	CHECK_STR(buf_str(&b), "three\nfour\n");
	buf_reset(&b);
	buf_puts(&b, "short");
	buf_keep_tail(&b, 100);
	CHECK_STR(buf_str(&b), "short");
	buf_free(&b);
}

static void
test_slice(void)
{
	struct slice s = slice_of("hello");
	char *d;

	CHECK(slice_eq(s, "hello"));
	CHECK(!slice_eq(s, "hell"));
	s.len = 4;
	CHECK(slice_eq(s, "hell"));
	d = slice_dup(s);
	CHECK_STR(d, "hell");
	free(d);
}

UNIT_MAIN(TEST(test_append_and_cap), TEST(test_grow_large), TEST(test_html),
          TEST(test_json_string), TEST(test_keep_tail), TEST(test_slice))
