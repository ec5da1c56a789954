/*
 * app.h - the FastCGI program's private header, sectioned by file.
 *
 * Only main.c and request.c include libfcgi's header: every handler is a
 * function of (app, request) → response over plain structs, so the unit
 * tests call handlers directly with a made-up request.
 */
#ifndef EPHEMERA_APP_H
#define EPHEMERA_APP_H

#include "../lib/ephemera.h"

/* GitHub sends at most 25 MB; nginx enforces the same cap in front. */
#define REQUEST_BODY_MAX (25u * 1024 * 1024)

struct app {
	struct config *cfg;
	struct db *db;
	unsigned long requests;
};

/* ---- request.c: one FastCGI request as plain data ---------------------- */

struct request {
	const char *method;
	const char *path;  /* without the query string */
	const char *query; /* "" when absent */
	const char *content_type;
	struct slice body;
	char **envp; /* FastCGI params, "NAME=value" */
	char *path_owned;
};

/* A header by its HTTP name ("X-GitHub-Event"), or NULL. */
const char *request_header(const struct request *, const char *name);
const char *request_param(const struct request *, const char *name);
/* A query argument's first value, percent-decoded; caller frees. */
char *request_query_arg(const struct request *, const char *name);

struct response {
	int status;
	const char *content_type;
	struct buf headers; /* extra "Name: value\r\n" lines */
	struct buf body;
};

void response_init(struct response *);
void response_free(struct response *);
/* A short text/plain answer: status and one line. */
void response_text(struct response *, int status, const char *);
const char *status_reason(int status);

/* ---- route.c: method and path → handler ------------------------------- */

typedef void (*handler_fn)(struct app *, const struct request *,
                           struct response *);

void route_dispatch(struct app *, const struct request *, struct response *);

/* ---- health.c ----------------------------------------------------------- */

void health_get(struct app *, const struct request *, struct response *);

/* ---- env_list.c: environments as the API and pages show them ---------- */

struct env_view {
	char *id, *repo, *pr, *slug, *title, *author, *desired, *phase;
	char *sha, *deployed_sha, *url, *error, *created_at, *updated_at;
};

struct env_list {
	struct env_view *items;
	size_t n;
};

int env_list_load(struct db *, struct env_list *);
void env_list_free(struct env_list *);

/* ---- api_environments.c ------------------------------------------------- */

void env_list_json(const struct env_list *, struct buf *);
void api_environments_get(struct app *, const struct request *,
                          struct response *);

/* ---- page_index.c ------------------------------------------------------- */

void env_list_html(const struct env_list *, struct buf *);
void page_index_get(struct app *, const struct request *, struct response *);

#endif
