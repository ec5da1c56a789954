/*
 * log.c - logfmt lines to stderr: one line per event, key=value pairs,
 * always starting with ts, level, prog, pid and event so that a line can be
 * grepped or parsed without knowing the event.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ephemera.h"

static const char *log_program = "ephemera";
static enum log_level log_min = LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void
log_init(const char *program, enum log_level level)
{
	log_program = program;
	log_min = level;
}

void
log_set_level(enum log_level level)
{
	log_min = level;
}

int
log_level_parse(const char *s, enum log_level *out)
{
	size_t i;

	for (i = 0; i < NELEM(level_names); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

static void
log_vmsg(enum log_level level, const char *event, const char *fmt, va_list ap)
{
	char line[4096], ts[21];
	struct timespec now;
	int n, m;

	clock_gettime(CLOCK_REALTIME, &now);
	format_iso8601(now.tv_sec, ts);
	/* One write(2) per line so concurrent children never interleave. */
	n = snprintf(line, sizeof(line),
	             "ts=%.19s.%03ldZ level=%s prog=%s "
	             "pid=%ld event=%s",
	             ts, now.tv_nsec / 1000000, level_names[level], log_program,
	             (long)getpid(), event);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = sizeof(line) - 2;
	if (fmt != NULL && fmt[0] != '\0') {
		line[n++] = ' ';
		m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
		if (m < 0)
			m = 0;
		n += m;
		if ((size_t)n > sizeof(line) - 2)
			n = sizeof(line) - 2;
	}
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* Nowhere left to report it. */
	}
}

void
log_msg(enum log_level level, const char *event, const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	if (level < log_min)
		return;
	va_start(ap, fmt);
	log_vmsg(level, event, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
fatal(const char *event, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_ERROR, event, fmt, ap);
	va_end(ap);
	exit(1);
}

/*
 * Quotes a value for logfmt: wraps it in double quotes, escapes quotes,
 * backslashes and control bytes, and cuts it at 200 bytes. Returns one of
 * eight rotating buffers so a log call can quote several values.
 */
const char *
log_qn(const char *s, size_t n)
{
	/* Per thread: the fcgi-app's threads log at once. */
	static _Thread_local char ring[8][256];
	static _Thread_local unsigned next;
	char *out = ring[next++ % 8];
	size_t i, o = 0;
	unsigned char c;

	if (s == NULL)
		return "\"\"";
	out[o++] = '"';
	for (i = 0; i < n && o < 240; i++) {
		c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			o += (size_t)snprintf(out + o, 8, "\\x%02x", c);
		} else {
			out[o++] = (char)c;
		}
	}
	if (i < n) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}

const char *
log_q(const char *s)
{
	return log_qn(s, s ? strlen(s) : 0);
}
