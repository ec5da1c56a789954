/*
 * page_index.c - GET /: the environments table. Every value from the
 * database is HTML-escaped where it is written; titles, branch and repo
 * names are attacker-controlled.
 */
#include <string.h>

#include "app.h"

static void
cell(struct buf *b, const char *v)
{
	buf_puts(b, "<td>");
	if (v)
		buf_append_html(b, v, strlen(v));
	buf_puts(b, "</td>");
}

void
env_list_html(const struct env_list *l, struct buf *b)
{
	size_t i;

	buf_puts(b, "<!doctype html>\n<html lang=\"en\"><head>"
	            "<meta charset=\"utf-8\"><title>Ephemera</title>"
	            "<link rel=\"stylesheet\" href=\"/static/style.css\">"
	            "</head><body><h1>Ephemera</h1>\n");
	if (l->n == 0) {
		buf_puts(b, "<p class=\"empty\">No environments yet.</p>\n");
		goto out;
	}
	buf_puts(b, "<table id=\"environments\"><thead><tr><th>Repository</th>"
	            "<th>PR</th><th>Title</th><th>State</th><th>URL</th>"
	            "<th>Commit</th><th>Updated</th></tr></thead><tbody>\n");
	for (i = 0; i < l->n; i++) {
		const struct env_view *e = &l->items[i];

		buf_puts(b, "<tr>");
		cell(b, e->repo);
		cell(b, e->pr);
		cell(b, e->title);
		cell(b, e->phase);
		buf_puts(b, "<td>");
		if (e->url) {
			buf_puts(b, "<a href=\"");
			buf_append_html(b, e->url, strlen(e->url));
			buf_puts(b, "\">");
			buf_append_html(b, e->url, strlen(e->url));
			buf_puts(b, "</a>");
		}
		buf_puts(b, "</td>");
		cell(b, e->sha ? (const char *)e->sha : "");
		cell(b, e->updated_at);
		buf_puts(b, "</tr>\n");
	}
	buf_puts(b, "</tbody></table>\n");
out:
	buf_puts(b, "</body></html>\n");
}

void
page_index_get(struct app *app, const struct request *req, struct response *res)
{
	struct env_list l;

	(void)req;
	if (env_list_load(app->db, &l) == -1) {
		response_text(res, 503, "database unavailable");
		return;
	}
	res->content_type = "text/html; charset=utf-8";
	env_list_html(&l, &res->body);
	env_list_free(&l);
}
