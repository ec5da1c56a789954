/*
 * cloudflare.h - the `cloudflare` exposure provider, sectioned by file:
 * every preview reached through its own Cloudflare Tunnel at
 * <slug>.<cloudflare.zone>, behind Cloudflare Access.
 *
 * Kept beside workers.h while the provider seam is built on another
 * branch; its sections move into workers.h when the two meet. Pure files
 * (reply, ingress, connector) never touch the network; only
 * cloudflare_http.c includes curl.h.
 */
#ifndef EPHEMERA_CLOUDFLARE_H
#define EPHEMERA_CLOUDFLARE_H

#include "../workers.h"

/* ---- cloudflare_reply.c: the v4 envelope and what it means, pure -------
 *
 * Every answer is {"success", "errors", "messages", "result"} (+
 * "result_info" on lists). A cf_reply owns the parsed body (`root`);
 * `result` is borrowed from it and lives as long as the reply.
 */
enum cf_verdict {
	CF_OK,
	CF_RETRY,     /* 429, 5xx, transport: try again at retry_ms */
	CF_DENIED,    /* 401/403 code 10000: token or permission */
	CF_NOT_FOUND, /* 404 */
	CF_CONFLICT,  /* duplicate tunnel name (1013) or DNS record (81053) */
	CF_BUSY,      /* tunnel still has connections (1022) */
	CF_INVALID,   /* 400: the request was refused as written */
	CF_FAIL,      /* anything else */
};

struct cf_reply {
	long status;  /* HTTP status; 0: no answer; -1: ours (message) */
	bool success; /* the envelope's */
	int code;     /* the first error's code; 0: none */
	struct buf message;
	struct json_object *root;   /* owned */
	struct json_object *result; /* borrowed from root; may be NULL */
	int64_t page, per_page, total_pages, total_count; /* -1: absent */
	int64_t retry_after; /* Retry-After seconds; -1: absent */
};

void cf_reply_init(struct cf_reply *);
void cf_reply_free(struct cf_reply *);
/* Parses `body`; -1 (and `message` says why) when it is no envelope. */
int cf_reply_parse(struct cf_reply *, const char *body, size_t len);
/* What the answer means; *retry_ms is set for CF_RETRY. */
enum cf_verdict cf_classify(const struct cf_reply *, int attempt,
                            int64_t base_ms, int64_t cap_ms, int64_t *retry_ms);
/*
 * One sentence for the environment's error: what `step` was doing, what
 * Cloudflare said and what to do. Cloudflare answers a missing permission
 * with the same 10000 "Authentication error" as a bad token, so the
 * caller names the permission its endpoint needs.
 */
void cf_explain(const struct cf_reply *, const char *step,
                const char *permission, struct buf *out);
/* True when there is a page after this one (result_info). */
bool cf_reply_more(const struct cf_reply *);

/* ---- cloudflare_ingress.c: names, hostnames and ingress, pure -------- */

struct cf_service {
	const char *name; /* compose service name, checked by compose.c */
	int port;         /* the container's port */
	bool primary;     /* served at / */
	bool own_host;    /* also at <slug>-<name>.<zone> */
};

/* One DNS label: [a-z0-9-], 1-63 bytes, no leading or trailing '-'. */
bool cf_label_valid(const char *);
/* A zone: dot-separated valid labels, at most 253 bytes. */
bool cf_zone_valid(const char *);
/* "<label>.<zone>" into out; -1 (why in err) if label is not one label. */
int cf_hostname(const char *zone, const char *label, struct buf *out,
                struct buf *err);
/* "<instance>-<slug>", the tunnel's name. */
void cf_tunnel_name(const char *instance, const char *slug, struct buf *out);
/* The DNS record comment: "ephemera:<instance>:<slug>". */
void cf_comment(const char *instance, const char *slug, struct buf *out);
/* The slug a comment names when it is this instance's; false otherwise. */
bool cf_comment_slug(const char *comment, const char *instance,
                     char slug[static 64]);
/* "^/<name>(/|$)": cloudflared's paths are unanchored regexes. */
void cf_path_anchor(const char *service, struct buf *out);
/*
 * The PUT .../configurations body: per-service hostnames, then the
 * anchored path rules and the primary at <slug>.<zone>, then
 * http_status:404. -1 (why in err) when a name or hostname is unusable.
 */
int cf_ingress_render(const char *zone, const char *slug,
                      const struct cf_service *, size_t n, struct buf *out,
                      struct buf *err);

/* ---- cloudflare_connector.c: the cloudflared service, pure -----------
 *
 * The connector joins the compose project through the override file. Its
 * token reaches it as a file (cloudflared --token-file, >= 2025.4.0),
 * mounted read-only, owned by uid 65532 (the image's user) with mode 0400:
 * never argv, never an environment variable docker inspect would show.
 */
#define CF_CONNECTOR_UID 65532
/* Where its metrics server listens in its container (cloudflared's own
 * first default port), for the idle sweep's visit count. */
#define CF_CONNECTOR_METRICS_PORT 20241
/* The family that counts the requests it proxied. */
#define CF_CONNECTOR_REQUESTS "cloudflared_tunnel_total_requests"
/* The compose service (JSON object text) for the override file. */
void cf_connector_service(const char *image, const char *token_path,
                          struct buf *out);
/* Writes the token file (0400, owner 65532 when we may chown). */
int cf_connector_token_write(const char *path, const char *token);
/* The requests the connector proxied since it started, from its metrics
 * page (cloudflared_tunnel_total_requests); -1: not on the page. */
int cf_connector_requests(const char *metrics, int64_t *n);

/* ---- cloudflare_http.c: the libcurl adapter -------------------------- */

/* One request; fills status, body and Retry-After. -1: no HTTP answer. */
int cf_http_request(const char *method, const char *url, const char *bearer,
                    const char *json_body, const char *host_header,
                    const char *const *extra_headers, long timeout_seconds,
                    long *status, struct buf *body, int64_t *retry_after);
/* Whether the last request's answer redirected to Cloudflare Access's
 * login (a team's <team>.cloudflareaccess.com). */
bool cf_http_redirected_to_login(void);

/* ---- cloudflare_api.c: calls on behalf of one job --------------------
 *
 * A cf_client lives for one job run. When an answer means "stop this
 * run", the reason stays in `stop`/`retry_ms`/`error` and cf_result()
 * turns it into the job's result: a 429 reschedules the job at
 * Retry-After, the worker never sleeps. `calls` counts API requests.
 */
struct cf_client {
	const struct config *cfg;
	char *token; /* read from cloudflare.api_token_file; wiped on free */
	int attempt;
	enum cf_verdict stop;
	int64_t retry_ms;
	struct buf error;
	unsigned calls;
};

int cf_client_init(struct cf_client *, const struct config *, int attempt);
void cf_client_free(struct cf_client *);
/*
 * One API call: `path` relative to cloudflare.api_url. Returns the
 * verdict; on anything but CF_OK the reply says why, and for verdicts the
 * caller does not handle itself it calls cf_stop().
 */
enum cf_verdict cf_call(struct cf_client *, const char *method,
                        const char *path, const char *body, struct cf_reply *);
/* Records why the run stops (logs once); returns -1. */
int cf_stop(struct cf_client *, const struct cf_reply *, enum cf_verdict,
            const char *step, const char *permission);
void cf_result(const struct cf_client *, struct job_result *);

/* ---- cloudflare_exposure.c: one environment's tunnel, record, Access --
 *
 * Every operation finds before it creates (tunnels by name, records by
 * name and comment), so a crash between a call and the database write is
 * adopted by the rerun: never a second tunnel or record.
 */
struct cf_env {
	char tunnel_id[40];
	char record_id[40];
	char *token; /* the connector's; owned, wiped on free */
	/* In: the connector already has its token (a push), so an adopted
	 * tunnel's is not read again; `token` may then stay NULL. */
	bool token_known;
	/* In: the hostname points at the waking page (an idle stop) and
	 * stays so until cloudflare_wake, once the connector is up, so a
	 * waiting visitor's page refreshes into the app, not into an error
	 * of a tunnel with no connection yet. */
	bool asleep;
};

void cf_env_free(struct cf_env *);
/* Tunnel, ingress, CNAME and Access bypass apps; idempotent. `out` is
 * cleared except for its token_known input. */
int cloudflare_route(struct cf_client *, const char *slug,
                     const struct cf_service *, size_t n,
                     const char *const *bypass, size_t nbypass,
                     struct cf_env *out);
/* Records, connections, tunnel, Access apps: each gone and verified;
 * with `rm` (may be NULL), each found, then confirmed gone, reported. */
int cloudflare_unroute(struct cf_client *, const char *slug,
                       struct removal *rm);
/* The hostname's record points at cloudflare.wake_tunnel_id (the control
 * plane's waking page); other records of `slug` go; idempotent. */
int cloudflare_sleep(struct cf_client *, const char *slug);
/* The hostname's record points at the preview's own tunnel again. */
int cloudflare_wake(struct cf_client *, const char *slug,
                    const char *tunnel_id);
/* 1: the tunnel and record exist; 0: not; -1: error. */
int cloudflare_exists(struct cf_client *, const char *slug);
/* "https://<slug>.<zone><path>"; caller frees. */
char *cloudflare_url(const struct config *, const char *slug, const char *path);
/*
 * 1 when the tunnel has a connection and the hostname answers through
 * the edge (cloudflare.edge_url, with the preview's Host); 0 not yet.
 * `client_id`/`client_secret`: an Access service token, or NULL.
 */
int cloudflare_ready(struct cf_client *, const char *slug,
                     const char *tunnel_id, const char *client_id,
                     const char *client_secret, long *edge_status);
/*
 * The slugs owning a tunnel, record or Access app of this instance that
 * was created before `before` (the sweep's grace period; 0: any age).
 */
int cloudflare_list_owned(struct cf_client *, time_t before, char ***slugs,
                          size_t *n);

/*
 * A service token for a repository's CI to reach its previews, allowed
 * by a Service Auth policy on the zone-wide Access application. The
 * secret is shown once, to the admin; never on a PR, a log or the
 * database. Callers wipe `client_secret`.
 */
int cloudflare_service_token(struct cf_client *, const char *repo,
                             struct buf *client_id, struct buf *client_secret);

/* cloudflare_provider.c: the table, exposure_cloudflare, is in workers.h. */

#endif
