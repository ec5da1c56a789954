/*
 * env_detail.c - one environment and its builds, as both the page
 * (/env/<id>) and the API (/api/v1/environments/<id>) show it.
 */
#include <string.h>

#include "app.h"

int
env_detail_load(struct app *app, const struct request *req, const char *prefix,
                struct env_detail *d, struct response *res)
{
	uint64_t id;

	memset(d, 0, sizeof(*d));
	d->github_web = (struct buf)BUF_INIT;
	d->now = clock_now(app->cfg);
	if (route_id(req->path, prefix, &id) == -1) {
		response_text(res, 404, "not found");
		return -1;
	}
	if (env_list_load_one(app->db, id, d->now, &d->env) == -1 ||
	    (d->env.n == 1 && build_list_load(app->db, id, &d->builds) == -1)) {
		response_text(res, 503, "database unavailable");
		return -1;
	}
	if (d->env.n == 0) {
		response_text(res, 404, "no such environment");
		return -1;
	}
	html_github_web(app->cfg->github_api_url, &d->github_web);
	return 0;
}

void
env_detail_free(struct env_detail *d)
{
	env_list_free(&d->env);
	build_list_free(&d->builds);
	buf_free(&d->github_web);
}
