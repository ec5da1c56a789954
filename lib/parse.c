/*
 * parse.c - numbers and times from outside text, with range checks and an
 * error instead of atoi's silent zero.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ephemera.h"

int
parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = (int64_t)v;
	return 0;
}

int
parse_uint64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = (uint64_t)v;
	return 0;
}

static bool
is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days from 1970-01-01 to y-m-d, proleptic Gregorian, without timegm's TZ. */
static int64_t
days_from_civil(int y, int m, int d)
{
	static const int before[] = {0,   31,  59,  90,  120, 151,
	                             181, 212, 243, 273, 304, 334};
	int64_t days = 0;
	int i;

	for (i = 1970; i < y; i++)
		days += is_leap(i) ? 366 : 365;
	for (i = y; i < 1970; i++)
		days -= is_leap(i) ? 366 : 365;
	days += before[m - 1] + (m > 2 && is_leap(y)) + d - 1;
	return days;
}

/*
 * Accepts "YYYY-MM-DDTHH:MM:SS" followed by "Z", or by an offset "+HH:MM"
 * / "-HH:MM" (GitHub sends both forms in different payloads), with an
 * optional fraction that is ignored.
 */
int
parse_iso8601(const char *s, time_t *out)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30,
	                            31, 31, 30, 31, 30, 31};
	int y, mo, d, h, mi, sec, oh = 0, om = 0, n = 0, sign = 0;
	const char *p;

	if (s == NULL || strlen(s) < 19)
		return -1;
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec,
	           &n) != 6 ||
	    n != 19)
		return -1;
	if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 ||
	    d > mdays[mo - 1] || (mo == 2 && d == 29 && !is_leap(y)) ||
	    h > 23 || mi > 59 || sec > 60)
		return -1;
	p = s + 19;
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'Z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '+' ? 1 : -1;
		if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &n) != 2 || n != 5 ||
		    oh > 23 || om > 59)
			return -1;
		p += 6;
	} else {
		return -1;
	}
	if (*p != '\0')
		return -1;
	*out = (time_t)(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 +
	                sec - sign * (oh * 3600 + om * 60));
	return 0;
}

void
format_iso8601(time_t t, char out[static 21])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

double
now_real(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double
now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
parse_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool
parse_list_any(const char *list,
               bool (*fn)(const char *item, size_t n, const char *arg),
               const char *arg)
{
	const char *p = list;

	while (p && *p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		while (len > 0 && *p == ' ')
			p++, len--;
		while (len > 0 && p[len - 1] == ' ')
			len--;
		if (len > 0 && fn(p, len, arg))
			return true;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	return false;
}
