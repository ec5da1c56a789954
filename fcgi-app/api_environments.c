/*
 * api_environments.c - GET /api/v1/environments (a JSON array, newest
 * first, filtered by ?repo= and ?state=) and GET /api/v1/environments/<id>
 * (one object with its builds and their steps). Fields are documented in
 * docs/api.md and docs/schema/; fields are only ever added, never renamed.
 */
#include <stdlib.h>
#include <string.h>

#include "app.h"

static void
json_str(struct buf *b, const char *key, const char *v)
{
	/* No printf here: this runs for every field of every row. */
	buf_puts(b, ",\"");
	buf_puts(b, key);
	buf_puts(b, "\":");
	if (v == NULL)
		buf_puts(b, "null");
	else
		buf_append_json_string(b, v, strlen(v));
}

/* Numbers come from our own integer columns, so they are digits only. */
static void
json_num(struct buf *b, const char *key, const char *v)
{
	buf_puts(b, ",\"");
	buf_puts(b, key);
	buf_puts(b, "\":");
	buf_puts(b, v ? v : "null");
}

/* Seconds with millisecond precision; negative means "none" (null). */
static void
json_seconds(struct buf *b, const char *key, double v)
{
	if (v < 0)
		buf_printf(b, ",\"%s\":null", key);
	else
		buf_printf(b, ",\"%s\":%.3f", key, v);
}

/* The object's members without the closing brace, so that the detail
 * view can add its builds. */
static void
env_members(const struct env_view *e, const char *github_web, struct buf *b)
{
	size_t i;

	buf_printf(b, "{\"id\":%s", e->id);
	json_str(b, "repo", e->repo);
	json_num(b, "pr", e->pr);
	json_str(b, "slug", e->slug);
	json_str(b, "title", e->title);
	json_str(b, "author", e->author);
	json_str(b, "desired", e->desired);
	json_str(b, "phase", e->phase);
	json_str(b, "sha", e->sha);
	json_str(b, "deployed_sha", e->deployed_sha);
	json_str(b, "url", e->url);
	json_str(b, "error", e->error);
	json_str(b, "created_at", e->created_at);
	json_str(b, "updated_at", e->updated_at);
	json_str(b, "branch", e->branch);
	buf_puts(b, ",\"services\":[");
	for (i = 0; i < e->nservices; i++) {
		buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
		buf_append_json_string(b, e->services[i].name,
		                       strlen(e->services[i].name));
		buf_printf(b, ",\"primary\":%s",
		           e->services[i].primary ? "true" : "false");
		json_str(b, "url", e->services[i].url);
		buf_putc(b, '}');
	}
	buf_putc(b, ']');
	buf_puts(b, ",\"pr_url\":");
	if (github_web != NULL && e->repo != NULL && e->pr != NULL) {
		struct buf u = BUF_INIT;

		buf_printf(&u, "%s/%s/pull/%s", github_web, e->repo, e->pr);
		buf_append_json_string(b, u.data, u.len);
		buf_free(&u);
	} else {
		buf_puts(b, "null");
	}
	buf_printf(b, ",\"instance_hours\":%.4f,\"cost\":%.4f",
	           e->instance_seconds / 3600.0, e->cost);
	if (e->build_id == NULL) {
		buf_puts(b, ",\"last_build\":null");
		return;
	}
	buf_printf(b, ",\"last_build\":{\"id\":%s", e->build_id);
	json_str(b, "status", e->build_status);
	json_str(b, "started_at", e->build_started_at);
	json_str(b, "finished_at", e->build_finished_at);
	json_seconds(b, "duration_seconds", e->build_seconds);
	buf_putc(b, '}');
}

void
env_view_json(const struct env_view *e, const char *github_web, struct buf *b)
{
	env_members(e, github_web, b);
	buf_putc(b, '}');
}

void
env_list_json(const struct env_list *l, const char *github_web, struct buf *b)
{
	size_t i;

	buf_putc(b, '[');
	for (i = 0; i < l->n; i++) {
		if (i)
			buf_putc(b, ',');
		env_view_json(&l->items[i], github_web, b);
	}
	buf_puts(b, "]\n");
}

static void
step_json(const struct step_view *s, double now, struct buf *b)
{
	buf_puts(b, "{\"name\":");
	buf_append_json_string(b, s->name, strlen(s->name));
	json_str(b, "status", s->status);
	json_str(b, "detail", s->detail);
	json_str(b, "started_at", s->started_at);
	json_str(b, "finished_at", s->finished_at);
	json_seconds(b, "duration_seconds",
	             usage_build_seconds(s->started, s->finished, now));
	buf_putc(b, '}');
}

void
build_list_json(const struct build_list *l, double now, struct buf *b)
{
	size_t i, j;

	buf_putc(b, '[');
	for (i = 0; i < l->n; i++) {
		const struct build_view *v = &l->items[i];

		buf_printf(b, "%s{\"id\":%s", i ? "," : "", v->id);
		json_str(b, "sha", v->sha);
		json_str(b, "status", v->status);
		json_str(b, "error", v->error);
		json_str(b, "log_tail", v->log_tail);
		json_str(b, "started_at", v->started_at);
		json_str(b, "finished_at", v->finished_at);
		json_seconds(b, "duration_seconds",
		             usage_build_seconds(v->started, v->finished, now));
		buf_puts(b, ",\"steps\":[");
		for (j = 0; j < v->nsteps; j++) {
			if (j)
				buf_putc(b, ',');
			step_json(&v->steps[j], now, b);
		}
		buf_puts(b, "]}");
	}
	buf_putc(b, ']');
}

static void
json_headers(struct response *res)
{
	res->content_type = "application/json";
	buf_puts(&res->headers, "Cache-Control: no-store\r\n"
	                        "X-Content-Type-Options: nosniff\r\n");
}

/* GitHub-style paging: the array stays an array; the headers say more. */
static void
paging_headers(const struct env_filter *flt, int64_t total,
               struct response *res)
{
	int64_t last = total ? (total + flt->per_page - 1) / flt->per_page : 1;
	struct buf q = BUF_INIT;

	buf_printf(&res->headers, "X-Total-Count: %lld\r\n", (long long)total);
	if (flt->page >= last && flt->page == 1)
		return;
	buf_puts(&res->headers, "Link: ");
	if (flt->page < last) {
		env_filter_query(flt, flt->page + 1, &q);
		buf_printf(&res->headers,
		           "</api/v1/environments%s>; rel=\"next\"",
		           buf_str(&q));
		buf_reset(&q);
	}
	if (flt->page > 1) {
		env_filter_query(flt, flt->page - 1, &q);
		buf_printf(&res->headers,
		           "%s</api/v1/environments%s>; rel=\"prev\"",
		           flt->page < last ? ", " : "", buf_str(&q));
	}
	buf_puts(&res->headers, "\r\n");
	buf_free(&q);
}

void
api_environments_get(struct app *app, const struct request *req,
                     struct response *res)
{
	struct env_filter flt;
	struct env_counts counts = {0, NULL, NULL, 0};
	struct env_list l = {NULL, 0};
	struct buf web = BUF_INIT, why = BUF_INIT;

	if (env_filter_parse(req, &flt, &why) == -1) {
		response_text(res, 400, buf_str(&why));
		goto out;
	}
	if (env_list_load(app->db, &flt, clock_now(app->cfg), &l) == -1 ||
	    env_list_count(app->db, &flt, &counts) == -1) {
		response_text(res, 503, "database unavailable");
		goto out;
	}
	json_headers(res);
	paging_headers(&flt, counts.total, res);
	html_github_web(app->cfg->github_api_url, &web);
	env_list_json(&l, buf_str(&web), &res->body);
out:
	env_list_free(&l);
	env_counts_free(&counts);
	env_filter_free(&flt);
	buf_free(&web);
	buf_free(&why);
}

void
api_environment_get(struct app *app, const struct request *req,
                    struct response *res)
{
	struct env_detail d;

	if (env_detail_load(app, req, "/api/v1/environments/", &d, res) == 0) {
		json_headers(res);
		env_members(&d.env.items[0], buf_str(&d.github_web),
		            &res->body);
		buf_puts(&res->body, ",\"builds\":");
		build_list_json(&d.builds, d.now, &res->body);
		buf_puts(&res->body, "}\n");
	}
	env_detail_free(&d);
}
