/*
 * env_filter.c - the query arguments that choose which environments a
 * list shows, and the query string that asks for another page of the same
 * list. Pure: a request in, a filter out.
 */
#include <stdlib.h>
#include <string.h>

#include "app.h"

static int
arg_int(const struct request *req, const char *name, int64_t lo, int64_t hi,
        int64_t dflt, int64_t *out, struct buf *why)
{
	char *v = request_query_arg(req, name);
	int rc = 0;

	*out = dflt;
	if (v != NULL && v[0] != '\0' && parse_int64(v, lo, hi, out) == -1) {
		buf_printf(why, "%s must be an integer from %lld to %lld", name,
		           (long long)lo, (long long)hi);
		rc = -1;
	}
	free(v);
	return rc;
}

/* An empty value (the form's "all") is no filter. */
static char *
arg_str(const struct request *req, const char *name)
{
	char *v = request_query_arg(req, name);

	if (v != NULL && v[0] == '\0') {
		free(v);
		v = NULL;
	}
	return v;
}

int
env_filter_parse(const struct request *req, struct env_filter *f,
                 struct buf *why)
{
	memset(f, 0, sizeof(*f));
	f->repo = arg_str(req, "repo");
	f->phase = arg_str(req, "state");
	if (arg_int(req, "page", 1, 1000000, 1, &f->page, why) == -1 ||
	    arg_int(req, "per_page", 1, ENV_PAGE_MAX, ENV_PAGE_DEFAULT,
	            &f->per_page, why) == -1) {
		env_filter_free(f);
		return -1;
	}
	return 0;
}

void
env_filter_free(struct env_filter *f)
{
	if (f == NULL)
		return;
	free(f->repo);
	free(f->phase);
	memset(f, 0, sizeof(*f));
}

void
url_query_value(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~') {
			buf_putc(b, (char)c);
		} else {
			buf_putc(b, '%');
			buf_putc(b, hex[c >> 4]);
			buf_putc(b, hex[c & 15]);
		}
	}
}

void
env_filter_query(const struct env_filter *f, int64_t page, struct buf *b)
{
	char sep = '?';

	if (f->repo) {
		buf_puts(b, "?repo=");
		url_query_value(b, f->repo);
		sep = '&';
	}
	if (f->phase) {
		buf_printf(b, "%cstate=", sep);
		url_query_value(b, f->phase);
		sep = '&';
	}
	if (page > 1) {
		buf_printf(b, "%cpage=%lld", sep, (long long)page);
		sep = '&';
	}
	if (f->per_page != ENV_PAGE_DEFAULT)
		buf_printf(b, "%cper_page=%lld", sep, (long long)f->per_page);
}
