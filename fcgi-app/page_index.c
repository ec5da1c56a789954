/*
 * page_index.c - GET /: the environments table, filterable by repository
 * and state (?repo=, ?state=). web/status.js refreshes the rows from the
 * JSON API with the same markup, so this file and renderRow() there are
 * kept in step. Every value from the database is HTML-escaped where it is
 * written; titles, branch and repo names are attacker-controlled.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

/* The phases a filter offers, in the order an environment moves. */
static const char *const phases[] = {
        "pending",    "awaiting_approval", "budget",
        "queued",     "deploying",         "ready",
        "failed",     "stopping",          "stopped",
        "destroying", "destroyed"};

static void
options(struct buf *b, const char *const *vals, size_t n, const char *chosen,
        bool states)
{
	size_t i;

	buf_puts(b, "<option value=\"\">all</option>");
	for (i = 0; i < n; i++) {
		buf_puts(b, "<option value=\"");
		html_text(b, vals[i]);
		buf_puts(b, "\"");
		if (chosen && strcmp(chosen, vals[i]) == 0)
			buf_puts(b, " selected");
		buf_puts(b, ">");
		if (states)
			html_state_text(b, vals[i]);
		else
			html_text(b, vals[i]);
		buf_puts(b, "</option>");
	}
}

static void
filter_form(const struct index_view *v, struct buf *b)
{
	buf_puts(b, "<form class=\"filter\" method=\"get\" action=\"/\">"
	            "<label>Repository <select name=\"repo\">");
	options(b, (const char *const *)v->repos, v->nrepos, v->filter->repo,
	        false);
	buf_puts(b, "</select></label> <label>State <select name=\"state\">");
	options(b, phases, NELEM(phases), v->filter->phase, true);
	buf_puts(b, "</select></label> <button type=\"submit\">Filter</button>"
	            "</form>\n");
}

/* "7 environments · 3 ready · 1 failed · $1.23 so far" */
static void
summary(const struct index_view *v, struct buf *b)
{
	const struct env_counts *c = v->counts;
	size_t i, j;
	double cost = 0;
	char money[32];

	for (i = 0; i < v->envs->n; i++)
		cost += v->envs->items[i].cost;
	money_format(cost, money);
	buf_printf(b,
	           "<p class=\"summary\" id=\"summary\"><strong>%lld</strong> "
	           "environment%s",
	           (long long)c->total, c->total == 1 ? "" : "s");
	for (j = 0; j < NELEM(phases); j++) {
		for (i = 0; i < c->nphases; i++) {
			if (strcmp(c->phase[i], phases[j]) != 0)
				continue;
			buf_printf(b, " <span class=\"state s-%s\">%lld ",
			           phases[j], (long long)c->n[i]);
			html_state_text(b, phases[j]);
			buf_puts(b, "</span>");
		}
	}
	buf_printf(b, " <span class=\"cost\">%s %s</span></p>\n", money,
	           (int64_t)v->envs->n < c->total ? "on this page" : "so far");
}

/* "101–200 of 1000 · ‹ newer · older ›" when there is more than a page. */
static void
pager(const struct index_view *v, struct buf *b)
{
	const struct env_filter *f = v->filter;
	int64_t first = (f->page - 1) * f->per_page;
	struct buf q = BUF_INIT;

	if (f->page == 1 && v->counts->total <= f->per_page)
		return;
	buf_printf(b, "<p class=\"pager\">%lld\xe2\x80\x93%lld of %lld",
	           (long long)(v->envs->n ? first + 1 : 0),
	           (long long)(first + (int64_t)v->envs->n),
	           (long long)v->counts->total);
	if (f->page > 1) {
		env_filter_query(f, f->page - 1, &q);
		buf_puts(b, " <a rel=\"prev\" href=\"/");
		html_text(b, buf_str(&q));
		buf_puts(b, "\">\xe2\x80\xb9 newer</a>");
		buf_reset(&q);
	}
	if (first + f->per_page < v->counts->total) {
		env_filter_query(f, f->page + 1, &q);
		buf_puts(b, " <a rel=\"next\" href=\"/");
		html_text(b, buf_str(&q));
		buf_puts(b, "\">older \xe2\x80\xba</a>");
	}
	buf_puts(b, "</p>\n");
	buf_free(&q);
}

static void
short_sha(struct buf *b, const char *github_web, const char *repo,
          const char *sha)
{
	struct buf u = BUF_INIT;
	char s[8];

	if (sha == NULL) {
		buf_puts(b, "\xe2\x80\x94");
		return;
	}
	snprintf(s, sizeof(s), "%.7s", sha);
	buf_printf(&u, "%s/%s/commit/%s", github_web, repo, sha);
	buf_puts(b, "<code>");
	html_link(b, u.data, s);
	buf_puts(b, "</code>");
	buf_free(&u);
}

static void
row(const struct index_view *v, const struct env_view *e, struct buf *b)
{
	const char *sha = e->deployed_sha ? e->deployed_sha : e->sha;
	struct buf u = BUF_INIT, t = BUF_INIT;
	char d[32], money[32];

	buf_puts(b, "<tr data-id=\"");
	html_text(b, e->id);
	buf_puts(b, "\"><td class=\"repo\">");
	html_text(b, e->repo);
	buf_printf(&u, "%s/%s/pull/%s", v->github_web, e->repo, e->pr);
	buf_printf(&t, "#%s", e->pr);
	buf_puts(b, "</td><td class=\"pr\">");
	html_link(b, u.data, t.data);
	buf_puts(b, "</td><td class=\"title\"><a href=\"/env/");
	html_text(b, e->id);
	buf_puts(b, "\">");
	html_text(b, e->title);
	buf_puts(b, "</a><div class=\"branch\">");
	html_text(b, e->branch);
	buf_puts(b, "</div></td><td class=\"author\">");
	html_text(b, e->author);
	buf_printf(b, "</td><td><span class=\"state s-%s\" title=\"desired: ",
	           html_state_class(e->phase));
	html_text(b, e->desired);
	buf_puts(b, "\">");
	html_state_text(b, e->phase);
	buf_puts(b, "</span>");
	/* Say where it is heading when it is being put away. */
	if (e->desired && e->phase && strcmp(e->desired, "running") != 0 &&
	    strcmp(e->desired, e->phase) != 0) {
		buf_puts(b, " <span class=\"heading\">\xe2\x86\x92 ");
		html_state_text(b, e->desired);
		buf_puts(b, "</span>");
	}
	if (e->error) {
		buf_puts(b, "<div class=\"error\" title=\"");
		html_text(b, e->error);
		buf_puts(b, "\">");
		html_text(b, e->error);
		buf_puts(b, "</div>");
	}
	buf_puts(b, "</td><td class=\"url\">");
	html_previews(b, e);
	buf_puts(b, "</td><td class=\"sha\">");
	short_sha(b, v->github_web, e->repo, sha);
	buf_puts(b, "</td><td class=\"age\">");
	html_age(b, e->created_at, v->now);
	buf_puts(b, "</td><td class=\"deploy\">");
	if (e->build_id) {
		duration_format(e->build_seconds, d);
		buf_printf(b, "<span class=\"b-%s\">%s%s</span>",
		           html_state_class(e->build_status),
		           e->build_finished_at ? "" : "running ", d);
	} else {
		buf_puts(b, "\xe2\x80\x94");
	}
	money_format(e->cost, money);
	buf_printf(b,
	           "</td><td class=\"cost\" title=\"%.2f instance hours\">"
	           "%s</td></tr>\n",
	           e->instance_seconds / 3600.0, money);
	buf_free(&u);
	buf_free(&t);
}

void
env_list_html(const struct index_view *v, struct buf *b)
{
	size_t i;

	html_head(b, "Environments", "/", v->refresh_seconds, v->now);
	buf_puts(b, "<div class=\"bar\">");
	filter_form(v, b);
	summary(v, b);
	buf_puts(b, "</div>\n<table id=\"environments\"><thead><tr>"
	            "<th>Repository</th><th>PR</th><th>Title</th>"
	            "<th>Author</th><th>State</th><th>Preview</th>"
	            "<th>Commit</th><th>Age</th><th>Last deploy</th>"
	            "<th>Cost</th></tr></thead>\n<tbody>\n");
	for (i = 0; i < v->envs->n; i++)
		row(v, &v->envs->items[i], b);
	buf_puts(b, "</tbody></table>\n");
	pager(v, b);
	buf_printf(b, "<p class=\"empty\" id=\"empty\"%s>%s</p>\n",
	           v->envs->n ? " hidden" : "",
	           v->filter->repo || v->filter->phase
	                   ? "No environments match this filter."
	                   : "No environments yet.");
	html_foot(b);
}

void
page_index_get(struct app *app, const struct request *req, struct response *res)
{
	struct env_filter flt;
	struct env_counts counts = {0, NULL, NULL, 0};
	struct env_list l = {NULL, 0};
	struct index_view v;
	struct buf web = BUF_INIT, why = BUF_INIT;
	size_t i;

	memset(&v, 0, sizeof(v));
	if (env_filter_parse(req, &flt, &why) == -1) {
		response_text(res, 400, buf_str(&why));
		goto out;
	}
	v.now = clock_now(app->cfg);
	if (env_list_load(app->db, &flt, v.now, &l) == -1 ||
	    env_list_count(app->db, &flt, &counts) == -1 ||
	    env_list_repos(app->db, &v.repos, &v.nrepos) == -1) {
		response_text(res, 503, "database unavailable");
		goto out;
	}
	html_github_web(app->cfg->github_api_url, &web);
	v.envs = &l;
	v.filter = &flt;
	v.counts = &counts;
	v.github_web = buf_str(&web);
	v.refresh_seconds = app->cfg->status_refresh_seconds;
	res->content_type = "text/html; charset=utf-8";
	page_headers(res);
	env_list_html(&v, &res->body);
out:
	for (i = 0; i < v.nrepos; i++)
		free(v.repos[i]);
	free(v.repos);
	env_list_free(&l);
	env_counts_free(&counts);
	env_filter_free(&flt);
	buf_free(&web);
	buf_free(&why);
}
