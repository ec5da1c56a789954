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
        {"GET", "/api/v1/environments", false, api_environments_get},
};

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
