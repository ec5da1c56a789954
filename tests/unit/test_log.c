/*
 * test_log.c - log lines stay one line whatever a value holds: branch
 * names, titles and error texts reach the log through log_q().
 */
#include <fcntl.h>
#include <unistd.h>

#include "unit.h"

/* The whole of a small file, NUL-terminated; NULL if it cannot be read. */
static char *
file_slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *s = xmalloc(16384);
	size_t n;

	if (f == NULL) {
		free(s);
		return NULL;
	}
	n = fread(s, 1, 16383, f);
	s[n] = '\0';
	fclose(f);
	return s;
}

static void
test_quote_hostile(void)
{
	CHECK_STR(log_q("plain"), "\"plain\"");
	CHECK_STR(log_q("a\"b\\c"), "\"a\\\"b\\\\c\"");
	/* A forged second line becomes part of the value. */
	CHECK_STR(log_q("x\nlevel=error event=forged"),
	          "\"x\\x0alevel=error event=forged\"");
	CHECK_STR(log_q("\r\t\x1b[31m\x7f"), "\"\\x0d\\x09\\x1b[31m\\x7f\"");
	CHECK_STR(log_q("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
	CHECK_STR(log_q(""), "\"\"");
	CHECK_STR(log_q(NULL), "\"\"");
	/* A length, not a terminator, bounds log_qn. */
	CHECK_STR(log_qn("abc\0def", 7), "\"abc\\x00def\"");
	CHECK_STR(log_qn("abcdef", 3), "\"abc\"");
}

static void
test_quote_long(void)
{
	char s[1001];
	const char *q;
	size_t n;

	memset(s, 'a', 1000);
	s[1000] = '\0';
	q = log_q(s);
	n = strlen(q);
	CHECK(n < 256 && n > 200);
	CHECK(strcmp(q + n - 4, "...\"") == 0);
	/* Every byte escaped to four: still bounded, still closed. */
	memset(s, '\n', 1000);
	q = log_q(s);
	n = strlen(q);
	CHECK(n < 256);
	CHECK(strcmp(q + n - 8, "\\x0a...\"") == 0);
}

static void
test_quote_ring(void)
{
	/* One log call may quote eight values; each keeps its own. */
	const char *q[8];
	char v[8][16];
	int i;

	for (i = 0; i < 8; i++) {
		snprintf(v[i], sizeof(v[i]), "v%d", i);
		q[i] = log_q(v[i]);
	}
	for (i = 0; i < 8; i++) {
		char want[24];
		snprintf(want, sizeof(want), "\"v%d\"", i);
		CHECK_STR(q[i], want);
	}
}

static void
test_line_whole(void)
{
	char *path = unit_write_tmp("");
	char *text, big[6000];
	int saved = dup(STDERR_FILENO), fd = open(path, O_WRONLY);
	size_t i, lines = 0;

	memset(big, 'b', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	dup2(fd, STDERR_FILENO);
	close(fd);
	log_set_level(LOG_INFO);
	log_info("unit_event", "branch=%s n=%d", log_q("a\nb \"c\""), 7);
	log_debug("unit_hidden", "n=%d", 1);
	log_info("unit_long", "v=%s", big);
	log_set_level(LOG_ERROR);
	dup2(saved, STDERR_FILENO);
	close(saved);
	text = file_slurp(path);
	CHECK(text != NULL);
	if (text == NULL)
		goto out;
	for (i = 0; text[i]; i++)
		lines += text[i] == '\n';
	CHECK(lines == 2);
	CHECK(strstr(text, "level=info prog=unit ") != NULL);
	CHECK(strstr(text, " event=unit_event branch=\"a\\x0ab \\\"c\\\"\" "
	                   "n=7\n") != NULL);
	CHECK(strstr(text, "unit_hidden") == NULL);
	/* The long one is cut to the line buffer, and still ends its line. */
	CHECK(strlen(strchr(text, '\n') + 1) == 4095);
	CHECK(text[strlen(text) - 1] == '\n');
	free(text);
out:
	unlink(path);
	free(path);
}

UNIT_MAIN(TEST(test_quote_hostile), TEST(test_quote_long),
          TEST(test_quote_ring), TEST(test_line_whole))
