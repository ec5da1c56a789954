/*
 * api_environments.c - GET /api/v1/environments: a JSON array, one object
 * per environment, newest first. Fields are documented in docs/api.md.
 */
#include <string.h>

#include "app.h"

static void
json_field_str(struct buf *b, const char *key, const char *v, bool comma)
{
	buf_printf(b, "%s\"%s\":", comma ? "," : "", key);
	if (v == NULL)
		buf_puts(b, "null");
	else
		buf_append_json_string(b, v, strlen(v));
}

/* Numbers come from our own BIGINT columns, so they are digits only. */
static void
json_field_num(struct buf *b, const char *key, const char *v)
{
	buf_printf(b, ",\"%s\":%s", key, v ? v : "null");
}

void
env_list_json(const struct env_list *l, struct buf *b)
{
	size_t i;

	buf_putc(b, '[');
	for (i = 0; i < l->n; i++) {
		const struct env_view *e = &l->items[i];

		buf_puts(b, i ? ",{" : "{");
		buf_printf(b, "\"id\":%s", e->id);
		json_field_str(b, "repo", e->repo, true);
		json_field_num(b, "pr", e->pr);
		json_field_str(b, "slug", e->slug, true);
		json_field_str(b, "title", e->title, true);
		json_field_str(b, "author", e->author, true);
		json_field_str(b, "desired", e->desired, true);
		json_field_str(b, "phase", e->phase, true);
		json_field_str(b, "sha", e->sha, true);
		json_field_str(b, "deployed_sha", e->deployed_sha, true);
		json_field_str(b, "url", e->url, true);
		json_field_str(b, "error", e->error, true);
		json_field_str(b, "created_at", e->created_at, true);
		json_field_str(b, "updated_at", e->updated_at, true);
		buf_putc(b, '}');
	}
	buf_puts(b, "]\n");
}

void
api_environments_get(struct app *app, const struct request *req,
                     struct response *res)
{
	struct env_list l;

	(void)req;
	if (env_list_load(app->db, &l) == -1) {
		response_text(res, 503, "database unavailable");
		return;
	}
	res->content_type = "application/json";
	buf_puts(&res->headers, "Cache-Control: no-store\r\n");
	env_list_json(&l, &res->body);
	env_list_free(&l);
}
