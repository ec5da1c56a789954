/*
 * route.c - the routing table: one row per route. A path that exists under
 * another method answers 405 with Allow, as HTTP asks.
 */
#include <string.h>

#include "app.h"

struct route {
	const char *method;
	const char *path;
	bool prefix; /* path matches as a prefix ("/env/") */
	handler_fn fn;
};

static const struct route routes[] = {
        {"GET", "/healthz", false, health_get},
        {"GET", "/", false, page_index_get},
        {"GET", "/env/", true, page_env_get},
        {"GET", "/jobs", false, page_jobs_get},
        {"GET", "/metrics", false, metrics_get},
        {"GET", "/api/v1/environments", false, api_environments_get},
        {"GET", "/api/v1/environments/", true, api_environment_get},
        {"GET", "/api/v1/jobs", false, api_jobs_get},
        {"POST", "/webhook", false, webhook_post},
        /* Only waking routes pass this path (site.conf does not). */
        {"GET", "/_wake", false, page_wake_get},
        {"POST", "/_wake", false, page_wake_get},
};

int
route_id(const char *path, const char *prefix, uint64_t *id)
{
	size_t n = strlen(prefix), i;
	uint64_t v = 0;

	if (strncmp(path, prefix, n) != 0 || path[n] < '1' || path[n] > '9')
		return -1;
	for (i = n; path[i] != '\0'; i++) {
		if (path[i] < '0' || path[i] > '9' || i - n >= 18)
			return -1;
		v = v * 10 + (uint64_t)(path[i] - '0');
	}
	*id = v;
	return 0;
}

void
route_dispatch(struct app *app, const struct request *req, struct response *res)
{
	const char *method = req->method;
	struct buf allow = BUF_INIT;
	size_t i;

	/* HEAD is GET without the body; the body is dropped in main.c. */
	if (strcmp(method, "HEAD") == 0)
		method = "GET";
	for (i = 0; i < NELEM(routes); i++) {
		const struct route *r = &routes[i];
		bool match = r->prefix ? strncmp(req->path, r->path,
		                                 strlen(r->path)) == 0
		                       : strcmp(req->path, r->path) == 0;

		if (!match)
			continue;
		if (strcmp(r->method, method) == 0) {
			r->fn(app, req, res);
			goto out;
		}
		buf_printf(&allow, "%s%s", allow.len ? ", " : "", r->method);
	}
	if (allow.len > 0) {
		response_text(res, 405, "method not allowed");
		buf_printf(&res->headers, "Allow: %s\r\n", buf_str(&allow));
	} else {
		response_text(res, 404, "not found");
	}
out:
	buf_free(&allow);
}
