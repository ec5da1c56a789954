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
	struct batch *batch; /* NULL: one thread, each delivery alone */
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
/* Percent-decodes [s, s+n), '+' as space; caller frees. */
char *url_decode(const char *s, size_t n);

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
/* The positive id after `prefix` ("/env/42" → 42), or -1. */
int route_id(const char *path, const char *prefix, uint64_t *id);

/* ---- health.c ----------------------------------------------------------- */

void health_get(struct app *, const struct request *, struct response *);

/* ---- clock.c: "now" for the status pages ------------------------------
 *
 * The real clock, unless status.clock pins it (golden tests, screenshots).
 */
double clock_now(const struct config *);

/* ---- duration.c: durations and money for people (pure) ---------------- */

/* "42s", "3m 05s", "2h 14m", "3d 04h"; negative reads as "0s". */
void duration_format(double seconds, char out[static 32]);
/* "$0.00", "$12.34"; more decimals below one cent so a cost shows. */
void money_format(double amount, char out[static 32]);

/* ---- html.c: the pages' shared frame and escaping helpers (pure) ------ */

/* `now` goes into <body data-now> so the script counts ages from the
 * server's clock, not the browser's. */
void html_head(struct buf *, const char *title, const char *active,
               int64_t refresh_seconds, double now);
void html_foot(struct buf *);
/* Security and caching headers every page sends (a strict CSP: our own
 * script and style only, so even a missed escape could not run code). */
void page_headers(struct response *);
/* Escaped text; NULL writes nothing. */
void html_text(struct buf *, const char *);
/* <time> with the absolute time as its title and "3h 10m ago" as text. */
void html_age(struct buf *, const char *iso, double now);
/* A link only for http(s) URLs; anything else is written as text. */
void html_link(struct buf *, const char *url, const char *text);
/* A phase or status as words ("awaiting approval"), escaped. */
void html_state_text(struct buf *, const char *state);
/* The preview links: every service (the primary by its URL, the others
 * by name), or the environment's URL when it has no services recorded. */
struct env_view;
void html_previews(struct buf *, const struct env_view *);
/* The CSS class suffix for a phase or status; unknown values → "unknown". */
const char *html_state_class(const char *state);
/* "https://github.com" from the API URL (GitHub Enterprise: its host). */
void html_github_web(const char *api_url, struct buf *out);

/* ---- usage.c: compute time and cost of an environment (pure) ----------
 *
 * From its runs (env_runs, migration 016): a run opens when a deploy
 * begins and closes when a stop, destroy or hold has taken the compute
 * down, each at its own hourly price (lib/price.c). The closed ones are
 * summed on the environment's row as they close (migration 020); the
 * open one counts up to `now` here, so a pinned status.clock pins it too.
 */
struct usage_runs {
	double closed_seconds, closed_cost;
	double open_start; /* epoch seconds; < 0: no run is open */
	double open_price; /* per hour */
};

double usage_run_seconds(const struct usage_runs *, double now);
double usage_run_cost(const struct usage_runs *, double now);

/* The last build's wall time: to its end, or to now while it runs. */
double usage_build_seconds(double started, double finished, double now);

/* ---- services.c: an environment's exposed services (pure) -------------
 *
 * environments.services is the reconcile engine's JSON array of
 * {"name", "primary", "url"}. Only those three members are taken, and only
 * string names and URLs; anything else (or text that is not JSON) reads
 * as no services. The primary service comes first.
 */
struct service_view {
	char *name, *url;
	bool primary;
};

int services_parse(const char *json, struct service_view **out, size_t *n);
void services_free(struct service_view *, size_t n);

/* ---- env_list.c: environments as the API and pages show them ---------- */

struct env_view {
	char *id, *repo, *pr, *slug, *title, *author, *desired, *phase;
	char *sha, *deployed_sha, *url, *error, *created_at, *updated_at;
	/* added by issue 6 */
	char *branch;
	char *build_id, *build_status, *build_started_at, *build_finished_at;
	double build_seconds;    /* the last build's duration, -1: none */
	double instance_seconds; /* its runs' time, see usage.c */
	double cost;             /* each run's hours × that run's price */
	struct service_view *services; /* from environments.services */
	size_t nservices;
};

struct env_list {
	struct env_view *items;
	size_t n;
};

/* ---- env_filter.c: which environments a list shows (pure) ------------
 *
 * ?repo=, ?state= (exact; empty or absent: all), ?page= (from 1) and
 * ?per_page= (1..ENV_PAGE_MAX). The strings are owned by the filter.
 */
#define ENV_PAGE_DEFAULT 50
#define ENV_PAGE_MAX 500

struct env_filter {
	char *repo;  /* NULL: all */
	char *phase; /* NULL: all */
	int64_t page, per_page;
};

/* -1 with the reason in `why` for a bad page or per_page. */
int env_filter_parse(const struct request *, struct env_filter *,
                     struct buf *why);
void env_filter_free(struct env_filter *);
/* "?repo=a%2Fb&state=ready&page=2" for another page of the same list;
 * page 1 and default values are left out. */
void env_filter_query(const struct env_filter *, int64_t page, struct buf *);
/* Percent-encodes a query value (RFC 3986 unreserved bytes pass). */
void url_query_value(struct buf *, const char *);

/* One page of environments, newest change first. */
int env_list_load(struct db *, const struct env_filter *, double now,
                  struct env_list *);
/* One environment by id: 0 and n == 1, 0 and n == 0 (none), or -1. */
int env_list_load_one(struct db *, uint64_t id, double now, struct env_list *);
/* Distinct repositories, sorted, for the filter. */
int env_list_repos(struct db *, char ***repos, size_t *n);

/* How many environments match the filter, in all and per phase. */
struct env_counts {
	int64_t total;
	char **phase;
	int64_t *n;
	size_t nphases;
};

int env_list_count(struct db *, const struct env_filter *, struct env_counts *);
void env_counts_free(struct env_counts *);
void env_list_free(struct env_list *);
void env_view_free(struct env_view *);

/* ---- build_list.c: an environment's builds and their steps ------------ */

struct step_view {
	char *name, *status, *detail, *started_at, *finished_at;
	double started, finished; /* epoch seconds; finished -1: running */
};

struct build_view {
	char *id, *sha, *status, *error, *log_tail, *started_at, *finished_at;
	double started, finished;
	struct step_view *steps;
	size_t nsteps;
};

struct build_list {
	struct build_view *items;
	size_t n;
};

#define BUILD_LIST_MAX 20

/* The newest BUILD_LIST_MAX builds, newest first, with steps in order. */
int build_list_load(struct db *, uint64_t env_id, struct build_list *);
void build_list_free(struct build_list *);

/* ---- env_detail.c: one environment with its builds, for its page ------ */

struct env_detail {
	struct env_list env; /* one item once loaded */
	struct build_list builds;
	struct buf github_web;
	double now;
};

/*
 * Loads the environment whose id follows `prefix` in the request path.
 * 0: loaded; -1: `res` already holds the answer (404, or 503 without the
 * database). Free with env_detail_free either way.
 */
int env_detail_load(struct app *, const struct request *, const char *prefix,
                    struct env_detail *, struct response *res);
void env_detail_free(struct env_detail *);

/* ---- chart.c: a build's steps as an inline SVG timing chart (pure) ---- */

void chart_svg(struct buf *, const struct build_view *, double now);

/* ---- api_environments.c ------------------------------------------------- */

/* github_web: "https://github.com" or an Enterprise host, for pr_url. */
void env_view_json(const struct env_view *, const char *github_web,
                   struct buf *);
void env_list_json(const struct env_list *, const char *github_web,
                   struct buf *);
void build_list_json(const struct build_list *, double now, struct buf *);
void api_environments_get(struct app *, const struct request *,
                          struct response *);
void api_environment_get(struct app *, const struct request *,
                         struct response *);

/* ---- page_index.c ------------------------------------------------------- */

struct index_view {
	const struct env_list *envs;
	const struct env_filter *filter;
	const struct env_counts *counts;
	char **repos; /* for the filter's choices */
	size_t nrepos;
	const char *github_web;
	double now;
	int64_t refresh_seconds;
};

void env_list_html(const struct index_view *, struct buf *);
void page_index_get(struct app *, const struct request *, struct response *);

/* ---- page_wake.c: an idle-stopped preview's visitors -------------------- */

void page_wake_get(struct app *, const struct request *, struct response *);

/* ---- page_env.c --------------------------------------------------------- */

void env_page_html(const struct env_view *, const struct build_list *,
                   const char *github_web, double now, struct buf *);
void page_env_get(struct app *, const struct request *, struct response *);

/* ---- jobs_view.c: queue health from the jobs table -------------------- */

struct job_count {
	char *kind, *state;
	int64_t n;
};

struct job_failure {
	char *id, *kind, *env_id, *state, *attempts, *max_attempts;
	char *last_error, *at;
};

struct jobs_view {
	int64_t queued, running, done, dead, cancelled;
	double oldest_wait; /* seconds the oldest runnable job waits; -1 */
	struct job_count *counts;
	size_t ncounts;
	struct job_failure *failures;
	size_t nfailures;
	/* name, workers, heartbeat_at, running: one row per worker host */
	struct db_rows *hosts;
	/* id, kind, env_id, worker, lease_until: what runs now, by whom */
	struct db_rows *running_jobs;
};

#define JOBS_FAILURES_MAX 20
#define JOBS_RUNNING_MAX 100

int jobs_view_load(struct db *, double now, struct jobs_view *);
void jobs_view_free(struct jobs_view *);
void jobs_view_json(const struct jobs_view *, struct buf *);
void jobs_view_html(const struct jobs_view *, double now, struct buf *);
void page_jobs_get(struct app *, const struct request *, struct response *);
void api_jobs_get(struct app *, const struct request *, struct response *);

/* ---- metrics.c: GET /metrics, Prometheus text format 0.0.4 ------------ */

/* A label value escaped as the format asks (\\, \", \n). */
void metrics_label(struct buf *, const char *);
void metrics_get(struct app *, const struct request *, struct response *);

/* ==== webhook ingestion (issue 2): utf8, signature, event, decide,
 * delivery, webhook ======================================================= */

/* ---- utf8.c: attacker text made safe to store -------------------------- */

bool utf8_valid(const char *, size_t);
/* Length of the valid UTF-8 sequence at s (1-4), or 0 if it is not. */
size_t utf8_seq(const char *s, size_t n);
/*
 * A copy of [s, s+n) that is valid UTF-8 (invalid bytes become U+FFFD),
 * without NUL bytes, cut to at most max_chars code points. Caller frees.
 */
char *utf8_clean(const char *s, size_t n, size_t max_chars);

/* ---- jscan.c: JSON text → a few wanted fields, in one pass (pure) -----
 *
 * Validates the whole text (RFC 8259, nesting below 64) and notes, for
 * each wanted path, where its last value is: pointers into the text, which
 * must outlive the results. A path is dotted object keys ("a.b.c"); one
 * step may be "name[]" with max_items > 0: then the field has one item per
 * element of that array (the first max_items elements), absent where the
 * element has no such member.
 */
enum jscan_type {
	JSCAN_ABSENT,
	JSCAN_NULL,
	JSCAN_FALSE,
	JSCAN_TRUE,
	JSCAN_INT,    /* no fraction or exponent */
	JSCAN_NUMBER, /* any other number */
	JSCAN_STRING,
	JSCAN_OBJECT,
	JSCAN_ARRAY
};

struct jscan_value {
	enum jscan_type type;
	const char *ptr; /* STRING: between the quotes, still escaped */
	size_t len;
	bool escaped; /* STRING: holds a backslash */
};

struct jscan_field {
	const char *path;
	size_t max_items;
};

struct jscan_result {
	struct jscan_value value;  /* plain paths */
	struct jscan_value *items; /* "[]" paths; owned, jscan_results_free */
	size_t nitems, cap;
};

/* 0, or -1 with a static reason; out[n] is filled either way. */
int jscan_parse(struct slice json, const struct jscan_field *, size_t n,
                struct jscan_result *out, const char **why);
/* A STRING's text with its escapes decoded (appended to out). */
void jscan_string(const struct jscan_value *, struct buf *out);
/* An INT's value (saturated to the int64 range); false for other types. */
bool jscan_int(const struct jscan_value *, int64_t *);
void jscan_results_free(struct jscan_result *, size_t n);

/* ---- signature.c: X-Hub-Signature-256 ---------------------------------- */

enum signature_result {
	SIGNATURE_OK,
	SIGNATURE_MISSING,
	SIGNATURE_MALFORMED,
	SIGNATURE_WRONG
};

/* Constant-time check of "sha256=<hex>" over the exact body bytes. */
enum signature_result signature_check(const char *secret, struct slice body,
                                      const char *header);
/* The lower-case hex HMAC-SHA256 (for tests and benches). */
void signature_hex(const char *secret, struct slice body, char out[static 65]);
const char *signature_reason(enum signature_result);

/* ---- event.c: a payload as plain owned data ----------------------------
 *
 * Every string is owned by the event, valid UTF-8, capped to its database
 * column, and never NULL for the fields marked "" below. `missing` names
 * the first required field that was absent or mistyped (a static string);
 * the decision ignores such a delivery instead of guessing.
 */
enum event_kind {
	EVENT_OTHER,
	EVENT_PING,
	EVENT_PULL_REQUEST,
	EVENT_ISSUE_COMMENT,
	EVENT_INSTALLATION,
	EVENT_INSTALLATION_REPOS
};

struct event {
	enum event_kind kind;
	char *name;               /* X-GitHub-Event, [a-z0-9_] only */
	char *action;             /* "" when absent, [a-z0-9_] only */
	char *repo;               /* repository.full_name, NULL when absent */
	uint64_t installation_id; /* 0: none */
	char *sender;             /* "" */
	/* pull_request, or the issue of an issue_comment */
	uint64_t pr;
	bool is_pr; /* issue_comment: the issue is a pull request */
	char *title, *author, *author_association, *state; /* "" */
	char *head_ref, *head_repo, *base_ref, *base_repo; /* "" */
	char *clone_url;                                   /* "" */
	char *head_sha; /* 40 hex when `missing` is NULL (pull_request) */
	bool draft, merged;
	time_t updated_at;
	bool has_updated_at;
	char **labels;
	size_t nlabels;
	char *label;       /* labeled/unlabeled: that label; else NULL */
	bool base_changed; /* edited: changes.base present */
	/* issue_comment */
	uint64_t comment_id;
	char *comment_body, *commenter, *commenter_association; /* "" */
	bool commenter_bot;
	/* installation (repositories), installation_repositories (removed) */
	char **repos;
	size_t nrepos;
	const char *missing;
};

enum event_kind event_kind_of(const char *name);
/* Parses JSON text; -1 with a short reason in err if it is not JSON. */
int event_parse(struct event *, const char *name, struct slice json,
                struct buf *err);
void event_free(struct event *);
bool event_has_label(const struct event *, const char *);
/* Head repository is the base and the author OWNER/MEMBER/COLLABORATOR. */
bool event_trusted(const struct event *);
/* event_parse's steps after the JSON, shared with the json-c reference
 * parser the tests compare the scanner against: [a-z0-9_] only, at most
 * 64 (owned); 40 lower-case hex; "" for every text field left NULL. */
char *event_word_clean(const char *);
bool event_sha_valid(const char *);
void event_fill_empty(struct event *);

/* ---- decide.c: (event, environment, order, policy) → change, pure ------ */

struct policy {
	bool label_trigger; /* policy.trigger = "label" */
	const char *label;
	const char *trusted_label;
	bool deploy_drafts;
	bool deploy_untrusted;
};

/* What decide needs of the environment row (NULL: there is none). */
struct env_state {
	uint64_t id;
	char desired[24];
	char desired_sha[41]; /* "" when none */
	time_t pr_updated_at;
	bool has_updated_at;
	uint64_t last_delivery_id;
	bool approved; /* approved_by is set */
};

enum change_op {
	CHANGE_IGNORE,    /* record the delivery only */
	CHANGE_PING,      /* record it, answer 200 */
	CHANGE_ENV,       /* insert or update the environment */
	CHANGE_COMMAND,   /* record a command (and a placeholder env) */
	CHANGE_UNINSTALL, /* destroy every environment the event covers */
};

/* Strings are static or borrowed from the event. */
struct change {
	enum change_op op;
	const char *result;  /* deliveries.result */
	const char *reason;  /* deliveries.reason, the log, the answer */
	bool create;         /* no environment yet: insert one */
	bool metadata;       /* write title, refs, labels, the stale guard */
	const char *desired; /* NULL: keep */
	bool set_sha;        /* desired_sha = the head commit */
	bool trusted;
	bool reconcile;             /* queue (or coalesce into) a reconcile */
	const char *command;        /* also record this command (NULL: none) */
	const char *command_source; /* "comment" | "label" */
	char command_args[65];
};

void policy_from_config(struct policy *, const struct config *);
void decide(const struct event *, const struct env_state *cur,
            uint64_t delivery_id, const struct policy *, struct change *);
const char *command_parse(const char *body, char args[static 65],
                          bool *unknown);

/* ---- delivery.c: one delivery, one transaction ------------------------- */

enum delivery_outcome {
	DELIVERY_DONE,      /* committed: see change.result */
	DELIVERY_DUPLICATE, /* the guid was recorded before; nothing changed */
	DELIVERY_FAILED     /* the database failed; nothing committed */
};

struct delivery {
	const char *guid;
	const struct event *ev;
	const struct policy *policy;
	int max_attempts;
	/* results */
	uint64_t id, env_id, command_id;
	unsigned reconciles; /* reconcile jobs queued or coalesced */
	struct change change;
	bool duplicate;
	/* delivery_batch.c: left to delivery_record, after the batch */
	bool direct;
	bool env_new; /* delivery_batch.c: its environment is the batch's new one */
};

enum delivery_outcome delivery_record(struct db *, struct delivery *);
/* Whether the delivery concerns one environment (a PR, or its comment). */
bool event_env_scoped(const struct event *);
/* An env_state from the columns delivery_lock answers, from `col` on:
 * id, desired, sha, pr_updated_at, last_delivery_id, approved. */
void env_state_read(const struct db_rows *, size_t row, size_t col,
                    struct env_state *);
/* The labels as a JSON array of strings (the labels column). */
void event_labels_json(const struct event *, struct buf *);
/* "YYYY-MM-DD HH:MM:SS" of updated_at for a DATETIME column, or NULL. */
const char *event_sql_time(const struct event *, char out[static 21]);

/* ---- delivery_batch.c: several deliveries, one transaction -------------
 *
 * Records what it can of ds[0..n) together, in that order, exactly as
 * delivery_record would one by one; marks the rest `direct` (a new
 * environment, a command, an uninstall, and any later delivery for the
 * same environment; all of them when the batch fails), for the caller
 * to record one at a time after this returns. Never answers duplicate.
 */
void delivery_batch_record(struct db *, struct delivery **ds, size_t n);

/* ---- batch.c: group commit across the fcgi-app's threads ---------------
 *
 * A thread with a delivery queues it; the first thread to find no batch
 * running takes everything queued and records it for all of them
 * (delivery_batch_record), while the next deliveries queue behind it. So
 * the batch grows with the load and a lone delivery waits for nobody.
 */
struct batch;
struct batch *batch_new(const struct config *);
void batch_free(struct batch *);
/* delivery_record's answer; `own` is the caller's connection, for what
 * the batch leaves to it. */
enum delivery_outcome batch_record(struct batch *, struct db *own,
                                   struct delivery *);

/* ---- webhook.c: POST /webhook ------------------------------------------ */

void webhook_post(struct app *, const struct request *, struct response *);
/* The JSON of a form-encoded body's `payload=` field; caller frees. */
char *form_payload(struct slice body);

#endif
