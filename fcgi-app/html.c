/*
 * html.c - the frame every page shares (head, navigation, foot) and the
 * small helpers that write values into HTML. Every value that came from
 * the database goes through buf_append_html here or in the page; titles,
 * branch and repository names are attacker-controlled.
 */
#include <string.h>

#include "app.h"

void
html_head(struct buf *b, const char *title, const char *active,
          int64_t refresh_seconds, double now)
{
	char iso[21];

	static const struct {
		const char *path, *label;
	} nav[] = {{"/", "Environments"},
	           {"/jobs", "Jobs"},
	           {"/metrics", "Metrics"}};
	size_t i;

	buf_puts(b, "<!doctype html>\n<html lang=\"en\"><head>"
	            "<meta charset=\"utf-8\">"
	            "<meta name=\"viewport\" "
	            "content=\"width=device-width, initial-scale=1\">"
	            "<title>");
	html_text(b, title);
	buf_puts(b, " \xc2\xb7 Ephemera</title>"
	            "<link rel=\"icon\" href=\"/static/favicon.svg\" "
	            "type=\"image/svg+xml\">"
	            "<link rel=\"stylesheet\" href=\"/static/style.css\">"
	            "<script src=\"/static/status.js\" defer></script>"
	            "</head>\n");
	format_iso8601((time_t)now, iso);
	buf_printf(b, "<body data-refresh=\"%lld\" data-now=\"%s\">\n",
	           (long long)refresh_seconds, iso);
	buf_puts(b, "<header class=\"top\"><h1>Ephemera</h1><nav>");
	for (i = 0; i < NELEM(nav); i++)
		buf_printf(b, "<a href=\"%s\"%s>%s</a>", nav[i].path,
		           strcmp(nav[i].path, active) == 0
		                   ? " class=\"on\" aria-current=\"page\""
		                   : "",
		           nav[i].label);
	buf_puts(b, "</nav><span id=\"live\" class=\"live\"></span>"
	            "</header>\n<main>\n");
}

void
html_foot(struct buf *b)
{
	buf_puts(b, "</main>\n</body></html>\n");
}

void
html_text(struct buf *b, const char *s)
{
	if (s != NULL)
		buf_append_html(b, s, strlen(s));
}

void
html_age(struct buf *b, const char *iso, double now)
{
	char d[32];
	time_t t;

	if (iso == NULL || parse_iso8601(iso, &t) == -1) {
		buf_puts(b, "\xe2\x80\x94"); /* an em dash: no time */
		return;
	}
	duration_format(now - (double)t, d);
	buf_puts(b, "<time class=\"ago\" datetime=\"");
	html_text(b, iso);
	buf_puts(b, "\" title=\"");
	html_text(b, iso);
	buf_printf(b, "\">%s ago</time>", d);
}

static bool
url_is_http(const char *url)
{
	return strncmp(url, "https://", 8) == 0 ||
	       strncmp(url, "http://", 7) == 0;
}

void
html_link(struct buf *b, const char *url, const char *text)
{
	if (url == NULL || !url_is_http(url)) {
		html_text(b, text);
		return;
	}
	buf_puts(b, "<a href=\"");
	html_text(b, url);
	buf_puts(b, "\">");
	html_text(b, text);
	buf_puts(b, "</a>");
}

void
html_state_text(struct buf *b, const char *state)
{
	size_t i, run = 0;

	for (i = 0; state && state[i]; i++) {
		if (state[i] != '_')
			continue;
		buf_append_html(b, state + run, i - run);
		buf_putc(b, ' ');
		run = i + 1;
	}
	if (state)
		buf_append_html(b, state + run, strlen(state + run));
}

const char *
html_state_class(const char *state)
{
	static const char *const known[] = {"pending",   "queued",
	                                    "deploying", "ready",
	                                    "failed",    "stopping",
	                                    "stopped",   "destroying",
	                                    "destroyed", "awaiting_approval",
	                                    "running",   "succeeded",
	                                    "cancelled", "skipped",
	                                    "done",      "dead",
	                                    "budget"};
	size_t i;

	for (i = 0; state != NULL && i < NELEM(known); i++)
		if (strcmp(state, known[i]) == 0)
			return known[i];
	return "unknown";
}

void
html_github_web(const char *api_url, struct buf *out)
{
	const char *host, *end;
	size_t scheme;

	buf_reset(out);
	if (api_url == NULL || !url_is_http(api_url)) {
		buf_puts(out, "https://github.com");
		return;
	}
	scheme = api_url[4] == 's' ? 8 : 7;
	host = api_url + scheme;
	if (strncmp(host, "api.", 4) == 0)
		host += 4;
	end = strchr(host, '/');
	buf_append(out, api_url, scheme);
	buf_append(out, host, end ? (size_t)(end - host) : strlen(host));
}

void
page_headers(struct response *res)
{
	buf_puts(&res->headers,
	         "Cache-Control: no-store\r\n"
	         "X-Content-Type-Options: nosniff\r\n"
	         "Referrer-Policy: same-origin\r\n"
	         "Content-Security-Policy: default-src 'none'; "
	         "script-src 'self'; style-src 'self'; img-src 'self'; "
	         "connect-src 'self'; base-uri 'none'; form-action 'self'; "
	         "frame-ancestors 'none'\r\n");
}

void
html_previews(struct buf *b, const struct env_view *e)
{
	size_t i;

	if (e->nservices == 0) {
		if (e->url)
			html_link(b, e->url, e->url);
		return;
	}
	for (i = 0; i < e->nservices; i++) {
		const struct service_view *s = &e->services[i];

		if (i)
			buf_putc(b, ' ');
		if (s->primary) {
			html_link(b, s->url, s->url);
			continue;
		}
		buf_puts(b, "<span class=\"svc\">");
		html_link(b, s->url, s->name);
		buf_puts(b, "</span>");
	}
}
