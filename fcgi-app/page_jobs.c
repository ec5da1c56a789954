/*
 * page_jobs.c - GET /jobs (queue health for people) and GET /api/v1/jobs
 * (the same for scripts). Errors are the workers' words about remote
 * services and are escaped like everything else.
 */
#include <stdio.h>
#include <string.h>

#include "app.h"

static void
json_str_value(struct buf *b, const char *v)
{
	if (v == NULL)
		buf_puts(b, "null");
	else
		buf_append_json_string(b, v, strlen(v));
}

static void
json_str(struct buf *b, const char *key, const char *v)
{
	buf_printf(b, ",\"%s\":", key);
	json_str_value(b, v);
}

void
jobs_view_json(const struct jobs_view *v, struct buf *b)
{
	size_t i;

	buf_printf(b,
	           "{\"queued\":%lld,\"running\":%lld,\"done\":%lld,"
	           "\"dead\":%lld,\"cancelled\":%lld,",
	           (long long)v->queued, (long long)v->running,
	           (long long)v->done, (long long)v->dead,
	           (long long)v->cancelled);
	if (v->oldest_wait < 0)
		buf_puts(b, "\"oldest_wait_seconds\":null");
	else
		buf_printf(b, "\"oldest_wait_seconds\":%.3f", v->oldest_wait);
	buf_puts(b, ",\"by_kind\":[");
	for (i = 0; i < v->ncounts; i++) {
		buf_puts(b, i ? ",{\"kind\":" : "{\"kind\":");
		buf_append_json_string(b, v->counts[i].kind,
		                       strlen(v->counts[i].kind));
		json_str(b, "state", v->counts[i].state);
		buf_printf(b, ",\"count\":%lld}", (long long)v->counts[i].n);
	}
	buf_puts(b, "],\"recent_failures\":[");
	for (i = 0; i < v->nfailures; i++) {
		const struct job_failure *f = &v->failures[i];

		buf_printf(b, "%s{\"id\":%s", i ? "," : "", f->id);
		json_str(b, "kind", f->kind);
		buf_printf(b, ",\"env_id\":%s", f->env_id ? f->env_id : "null");
		json_str(b, "state", f->state);
		buf_printf(b, ",\"attempts\":%s,\"max_attempts\":%s",
		           f->attempts, f->max_attempts);
		json_str(b, "error", f->last_error);
		json_str(b, "at", f->at);
		buf_putc(b, '}');
	}
	buf_puts(b, "],\"hosts\":[");
	for (i = 0; i < db_rows_count(v->hosts); i++) {
		buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
		json_str_value(b, db_rows_get(v->hosts, i, 0));
		buf_printf(b, ",\"workers\":%s", db_rows_get(v->hosts, i, 1));
		json_str(b, "heartbeat_at", db_rows_get(v->hosts, i, 2));
		buf_printf(b, ",\"running\":%s}", db_rows_get(v->hosts, i, 3));
	}
	buf_puts(b, "],\"running_jobs\":[");
	for (i = 0; i < db_rows_count(v->running_jobs); i++) {
		const char *env = db_rows_get(v->running_jobs, i, 2);

		buf_printf(b, "%s{\"id\":%s", i ? "," : "",
		           db_rows_get(v->running_jobs, i, 0));
		json_str(b, "kind", db_rows_get(v->running_jobs, i, 1));
		buf_printf(b, ",\"env_id\":%s", env ? env : "null");
		json_str(b, "worker", db_rows_get(v->running_jobs, i, 3));
		json_str(b, "lease_until", db_rows_get(v->running_jobs, i, 4));
		buf_putc(b, '}');
	}
	buf_puts(b, "]}\n");
}

static void
tile(struct buf *b, const char *cls, const char *label, const char *value)
{
	buf_printf(b,
	           "<div class=\"tile %s\"><div class=\"n\">%s</div>"
	           "<div class=\"l\">%s</div></div>",
	           cls, value, label);
}

/* Kinds down, states across: the queue at a glance. */
static void
kinds_table(const struct jobs_view *v, struct buf *b)
{
	static const char *const states[] = {"queued", "running", "done",
	                                     "dead", "cancelled"};
	size_t i, j, k;

	if (v->ncounts == 0) {
		buf_puts(b, "<p class=\"empty\">No jobs yet.</p>\n");
		return;
	}
	buf_puts(b, "<table id=\"kinds\" class=\"compact\"><thead><tr>"
	            "<th>Kind</th>");
	for (j = 0; j < NELEM(states); j++)
		buf_printf(b, "<th class=\"num\">%s</th>", states[j]);
	buf_puts(b, "</tr></thead><tbody>\n");
	/* counts are ordered by kind, so each kind is one run of rows. */
	for (i = 0; i < v->ncounts; i = k) {
		for (k = i; k < v->ncounts &&
		            strcmp(v->counts[k].kind, v->counts[i].kind) == 0;
		     k++)
			;
		buf_puts(b, "<tr><td>");
		html_text(b, v->counts[i].kind);
		buf_puts(b, "</td>");
		for (j = 0; j < NELEM(states); j++) {
			int64_t n = 0;
			size_t r;

			for (r = i; r < k; r++)
				if (strcmp(v->counts[r].state, states[j]) == 0)
					n = v->counts[r].n;
			if (n == 0)
				buf_puts(b, "<td class=\"num zero\">0</td>");
			else
				buf_printf(
				        b,
				        "<td class=\"num\"><span class=\"state "
				        "j-%s\">%lld</span></td>",
				        states[j], (long long)n);
		}
		buf_puts(b, "</tr>\n");
	}
	buf_puts(b, "</tbody></table>\n");
}

/* The worker hosts (last heartbeat, running count), then who runs what. */
static void
hosts_table(const struct jobs_view *v, double now, struct buf *b)
{
	size_t i, n = db_rows_count(v->hosts);

	buf_puts(b, "<h2>Worker hosts</h2>\n");
	if (n == 0) {
		buf_puts(b, "<p class=\"empty\">No worker host has reported "
		            "yet.</p>\n");
	} else {
		buf_puts(b, "<table id=\"hosts\" class=\"compact\"><thead><tr>"
		            "<th>Host</th><th class=\"num\">Workers</th>"
		            "<th class=\"num\">Running</th><th>Last "
		            "heartbeat</th></tr></thead><tbody>\n");
		for (i = 0; i < n; i++) {
			buf_puts(b, "<tr><td>");
			html_text(b, db_rows_get(v->hosts, i, 0));
			buf_puts(b, "</td><td class=\"num\">");
			html_text(b, db_rows_get(v->hosts, i, 1));
			buf_puts(b, "</td><td class=\"num\">");
			html_text(b, db_rows_get(v->hosts, i, 3));
			buf_puts(b, "</td><td>");
			html_age(b, db_rows_get(v->hosts, i, 2), now);
			buf_puts(b, "</td></tr>\n");
		}
		buf_puts(b, "</tbody></table>\n");
	}
	n = db_rows_count(v->running_jobs);
	if (n == 0)
		return;
	buf_puts(b, "<h2>Running now</h2>\n<table id=\"running\" "
	            "class=\"compact\"><thead><tr><th>Job</th><th>Kind</th>"
	            "<th>Environment</th><th>Worker</th><th>Lease until</th>"
	            "</tr></thead><tbody>\n");
	for (i = 0; i < n; i++) {
		const char *env = db_rows_get(v->running_jobs, i, 2);

		buf_puts(b, "<tr><td class=\"num\">");
		html_text(b, db_rows_get(v->running_jobs, i, 0));
		buf_puts(b, "</td><td>");
		html_text(b, db_rows_get(v->running_jobs, i, 1));
		buf_puts(b, "</td><td>");
		if (env) {
			buf_puts(b, "<a href=\"/env/");
			html_text(b, env);
			buf_puts(b, "\">");
			html_text(b, env);
			buf_puts(b, "</a>");
		}
		buf_puts(b, "</td><td>");
		html_text(b, db_rows_get(v->running_jobs, i, 3));
		buf_puts(b, "</td><td>");
		html_text(b, db_rows_get(v->running_jobs, i, 4));
		buf_puts(b, "</td></tr>\n");
	}
	buf_puts(b, "</tbody></table>\n");
}

void
jobs_view_html(const struct jobs_view *v, double now, struct buf *b)
{
	char n[32], d[32];
	size_t i;

	html_head(b, "Jobs", "/jobs", 0, now);
	buf_puts(b, "<div class=\"tiles\" id=\"queue\">");
	snprintf(n, sizeof(n), "%lld", (long long)v->queued);
	tile(b, v->queued ? "t-queued" : "", "queued", n);
	snprintf(n, sizeof(n), "%lld", (long long)v->running);
	tile(b, v->running ? "t-running" : "", "running", n);
	snprintf(n, sizeof(n), "%lld", (long long)v->dead);
	tile(b, v->dead ? "t-dead" : "", "dead", n);
	if (v->oldest_wait < 0)
		snprintf(d, sizeof(d), "\xe2\x80\x94");
	else
		duration_format(v->oldest_wait, d);
	tile(b, v->oldest_wait > 60 ? "t-dead" : "", "oldest waiting", d);
	buf_puts(b, "</div>\n<h2>By kind</h2>\n");
	kinds_table(v, b);
	hosts_table(v, now, b);
	buf_puts(b, "<h2>Recent failures</h2>\n");
	if (v->nfailures == 0) {
		buf_puts(b, "<p class=\"empty\">No failures recorded.</p>\n");
		goto out;
	}
	buf_puts(b, "<table id=\"failures\"><thead><tr><th>Job</th>"
	            "<th>Kind</th><th>Environment</th><th>State</th>"
	            "<th>Attempts</th><th>When</th><th>Error</th></tr>"
	            "</thead><tbody>\n");
	for (i = 0; i < v->nfailures; i++) {
		const struct job_failure *f = &v->failures[i];

		buf_puts(b, "<tr><td class=\"num\">");
		html_text(b, f->id);
		buf_puts(b, "</td><td>");
		html_text(b, f->kind);
		buf_puts(b, "</td><td>");
		if (f->env_id) {
			buf_puts(b, "<a href=\"/env/");
			html_text(b, f->env_id);
			buf_puts(b, "\">");
			html_text(b, f->env_id);
			buf_puts(b, "</a>");
		}
		buf_printf(b, "</td><td><span class=\"state j-%s\">",
		           html_state_class(f->state));
		html_text(b, f->state);
		buf_puts(b, "</span></td><td class=\"num\">");
		html_text(b, f->attempts);
		buf_puts(b, "/");
		html_text(b, f->max_attempts);
		buf_puts(b, "</td><td>");
		html_age(b, f->at, now);
		buf_puts(b, "</td><td class=\"error\">");
		html_text(b, f->last_error);
		buf_puts(b, "</td></tr>\n");
	}
	buf_puts(b, "</tbody></table>\n");
out:
	html_foot(b);
}

void
page_jobs_get(struct app *app, const struct request *req, struct response *res)
{
	struct jobs_view v;
	double now = clock_now(app->cfg);

	(void)req;
	if (jobs_view_load(app->db, now, &v) == -1) {
		response_text(res, 503, "database unavailable");
		return;
	}
	res->content_type = "text/html; charset=utf-8";
	page_headers(res);
	jobs_view_html(&v, now, &res->body);
	jobs_view_free(&v);
}

void
api_jobs_get(struct app *app, const struct request *req, struct response *res)
{
	struct jobs_view v;

	(void)req;
	if (jobs_view_load(app->db, clock_now(app->cfg), &v) == -1) {
		response_text(res, 503, "database unavailable");
		return;
	}
	res->content_type = "application/json";
	buf_puts(&res->headers, "Cache-Control: no-store\r\n"
	                        "X-Content-Type-Options: nosniff\r\n");
	jobs_view_json(&v, &res->body);
	jobs_view_free(&v);
}
