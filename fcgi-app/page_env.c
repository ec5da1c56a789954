/*
 * page_env.c - GET /env/<id>: one environment, its newest builds, each
 * with the SVG timing chart of its steps, its error and the captured log
 * tail (escaped: logs print whatever the app's build prints).
 */
#include <stdio.h>
#include <string.h>

#include "app.h"

/* One fact of the <dl>, grouped so the grid keeps name over value. */
static void
fact(struct buf *b, const char *name)
{
	buf_printf(b, "<div><dt>%s</dt><dd>", name);
}

static void
fact_end(struct buf *b)
{
	buf_puts(b, "</dd></div>");
}

/* The short commit, linked to GitHub, the full hash on hover. */
static void
sha_link(struct buf *b, const char *github_web, const char *repo,
         const char *sha)
{
	struct buf u = BUF_INIT;

	if (sha == NULL) {
		buf_puts(b, "\xe2\x80\x94");
		return;
	}
	buf_printf(&u, "%s/%s/commit/%s", github_web, repo, sha);
	buf_puts(b, "<code title=\"");
	html_text(b, sha);
	buf_puts(b, "\">");
	buf_puts(b, "<a href=\"");
	html_text(b, u.data);
	buf_puts(b, "\">");
	buf_append_html(b, sha, strnlen(sha, 7));
	buf_puts(b, "</a></code>");
	buf_free(&u);
}

static void
env_header(const struct env_view *e, const char *github_web, double now,
           struct buf *b)
{
	struct buf u = BUF_INIT, t = BUF_INIT;
	char d[32], money[32];

	buf_puts(b, "<p class=\"crumbs\"><a href=\"/\">Environments</a> / ");
	html_text(b, e->slug);
	buf_puts(b, "</p>\n<h2 class=\"envtitle\">");
	html_text(b, e->title);
	buf_printf(b, " <span class=\"state s-%s\">",
	           html_state_class(e->phase));
	html_state_text(b, e->phase);
	buf_puts(b, "</span></h2>\n<p class=\"links\">");
	buf_printf(&u, "%s/%s/pull/%s", github_web, e->repo, e->pr);
	html_text(b, e->repo);
	buf_puts(b, " ");
	buf_printf(&t, "pull request #%s", e->pr);
	html_link(b, u.data, t.data);
	buf_puts(b, " \xc2\xb7 branch <code>");
	html_text(b, e->branch);
	buf_puts(b, "</code> \xc2\xb7 by ");
	html_text(b, e->author);
	if (e->url || e->nservices) {
		buf_puts(b, " \xc2\xb7 preview: <span class=\"url\">");
		html_previews(b, e);
		buf_puts(b, "</span>");
	}
	buf_puts(b, "</p>\n");
	if (e->error) {
		buf_puts(b, "<p class=\"errorbox\">");
		html_text(b, e->error);
		buf_puts(b, "</p>\n");
	}
	buf_puts(b, "<dl class=\"facts\">");
	fact(b, "Desired");
	html_state_text(b, e->desired);
	fact_end(b);
	fact(b, "Wanted commit");
	sha_link(b, github_web, e->repo, e->sha);
	fact_end(b);
	fact(b, "Deployed commit");
	sha_link(b, github_web, e->repo, e->deployed_sha);
	fact_end(b);
	fact(b, "Created");
	html_age(b, e->created_at, now);
	fact_end(b);
	fact(b, "Updated");
	html_age(b, e->updated_at, now);
	fact_end(b);
	duration_format(e->instance_seconds, d);
	money_format(e->cost, money);
	fact(b, "Instance time");
	buf_printf(b, "%s (%.2f h)", d, e->instance_seconds / 3600.0);
	fact_end(b);
	fact(b, "Cost so far");
	buf_puts(b, money);
	fact_end(b);
	buf_puts(b, "</dl>\n");
	buf_free(&u);
	buf_free(&t);
}

static void
build_html(const struct build_view *v, bool newest, double now, struct buf *b)
{
	char d[32];

	buf_puts(b, "<section class=\"build\" id=\"build-");
	html_text(b, v->id);
	buf_puts(b, "\"><h3>Build ");
	html_text(b, v->id);
	buf_printf(b, " <span class=\"state b-%s\">",
	           html_state_class(v->status));
	html_text(b, v->status);
	buf_puts(b, "</span> <span class=\"muted\"><code>");
	if (v->sha)
		buf_append_html(b, v->sha, strnlen(v->sha, 7));
	buf_puts(b, "</code> \xc2\xb7 started ");
	html_age(b, v->started_at, now);
	duration_format(usage_build_seconds(v->started, v->finished, now), d);
	buf_printf(b, " \xc2\xb7 %s%s</span></h3>\n",
	           v->finished >= 0 ? "took " : "running for ", d);
	chart_svg(b, v, now);
	if (v->error) {
		buf_puts(b, "<p class=\"errorbox\">");
		html_text(b, v->error);
		buf_puts(b, "</p>\n");
	}
	if (v->log_tail && v->log_tail[0]) {
		buf_printf(b,
		           "<details%s><summary>Log tail</summary>"
		           "<pre class=\"log\">",
		           newest ? " open" : "");
		html_text(b, v->log_tail);
		buf_puts(b, "</pre></details>\n");
	}
	buf_puts(b, "</section>\n");
}

void
env_page_html(const struct env_view *e, const struct build_list *bl,
              const char *github_web, double now, struct buf *b)
{
	struct buf title = BUF_INIT;
	size_t i;

	buf_printf(&title, "%s #%s", e->repo, e->pr);
	/* The environment page does not refresh itself: reading a log
	 * while it jumps is worse than a stale page. */
	html_head(b, buf_str(&title), "", 0, now);
	env_header(e, github_web, now, b);
	buf_printf(b, "<h2>Builds</h2>\n");
	if (bl->n == 0)
		buf_puts(b, "<p class=\"empty\">No builds yet.</p>\n");
	for (i = 0; i < bl->n; i++)
		build_html(&bl->items[i], i == 0, now, b);
	if (bl->n == BUILD_LIST_MAX)
		buf_printf(b,
		           "<p class=\"muted\">Showing the newest %d "
		           "builds.</p>\n",
		           BUILD_LIST_MAX);
	html_foot(b);
	buf_free(&title);
}

void
page_env_get(struct app *app, const struct request *req, struct response *res)
{
	struct env_detail d;

	if (env_detail_load(app, req, "/env/", &d, res) == 0) {
		res->content_type = "text/html; charset=utf-8";
		page_headers(res);
		env_page_html(&d.env.items[0], &d.builds,
		              buf_str(&d.github_web), d.now, &res->body);
	}
	env_detail_free(&d);
}
