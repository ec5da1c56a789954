/*
 * workers.h - the worker program's private header, sectioned by file.
 *
 * A worker is one forked process with one database connection. It claims a
 * job (a short transaction that leaves the row `running` under a fresh
 * random lease token), commits, runs the kind's handler with no
 * transaction open, and then settles the job with a statement fenced on
 * that token: zero rows matched means another worker or the reaper took the
 * job over, and this worker must not touch it again.
 */
#ifndef EPHEMERA_WORKERS_H
#define EPHEMERA_WORKERS_H

#include "../lib/ephemera.h"

struct json_object;

/* ---- child.c: one worker process -------------------------------------- */

/* What the supervisor hands every child (set up before the fork). */
struct pool {
	struct config *cfg;
	int wake_fd; /* the bound wake-up socket, or -1: poll only */
};

struct worker {
	struct config *cfg;
	struct db *db;
	int slot;
	unsigned long jobs_done;
	int wake_fd;
	char host[64];      /* workers.host, else the machine's name */
	char id[128];       /* "host:pid", stored in jobs.worker */
	double beat_at;     /* monotonic time of the next host_beat */
	double stop_at;     /* monotonic deadline after TERM; 0: none yet */
	double lease_local; /* monotonic end of the current job's lease */
	double idle_since;  /* monotonic time the queue was last found empty
	                       after a job; 0 while there is work */
	struct reaper *reaper;
};

int worker_child_main(int slot, void *pool);
/*
 * For handlers: true once the worker must give up the current job now (a
 * second TERM, or the shutdown timeout is nearly over). The handler should
 * return at once; unless it returns JOB_DONE its lease is released, so
 * another worker resumes the job without counting this attempt.
 */
bool worker_interrupted(struct worker *);
/* Sleeps up to ms; -1 if interrupted (see above), else 0. */
int worker_sleep(struct worker *, int64_t ms);

/* ---- job.c: claiming and settling jobs, fenced on the lease token ------ */

/* JOB_DEFER: run again after retry_after_ms, the attempt not counted. */
enum job_outcome { JOB_DONE, JOB_RETRY, JOB_FAIL, JOB_DEFER };

struct job {
	uint64_t id;
	char kind[33];
	uint64_t env_id; /* 0: none */
	int attempts;    /* including this one */
	int max_attempts;
	char lease_token[33];
	char *payload; /* may be NULL; owned by the job */
};

struct job_result {
	enum job_outcome outcome;
	int64_t retry_after_ms; /* JOB_RETRY: 0 means use the backoff */
	struct buf error;       /* why, for JOB_RETRY and JOB_FAIL */
	/*
	 * A write that must commit with the settling or not at all: run in
	 * the settling transaction once the job's row changed under our
	 * lease, so a worker fenced out (its lease rescued while it was cut
	 * off) writes nothing. noop's record of its run.
	 */
	int (*in_settle)(struct db *, const struct worker *, const struct job *,
	                 const struct job_result *);
	double started; /* wall clock, when the handler began */
};

typedef void (*job_handler)(struct worker *, const struct job *,
                            struct job_result *);

enum claim_result { CLAIM_OK, CLAIM_NONE, CLAIM_ERROR };

/*
 * Claims the next due job into `job` (CLAIM_OK), or reports that none is
 * due (CLAIM_NONE, with *next_ms the wait until the earliest scheduled
 * one, or -1 when the queue is empty). A job whose environment is busy
 * with another running job is deferred by a moment, not spun on.
 */
enum claim_result job_claim(struct worker *, struct job *, int64_t *next_ms);
void job_clear(struct job *);
/* Extends the lease; -1: lost, the handler must stop touching the job. */
int job_heartbeat(struct worker *, const struct job *);
/*
 * Settles a claimed job by the handler's result: done; queued again after
 * a delay; or dead (last attempt, or JOB_FAIL), which also marks its
 * environment failed with the error. -1: the lease was lost (nothing was
 * changed) or the database stayed unreachable.
 */
int job_settle(struct worker *, const struct job *, const struct job_result *);
/* Puts a job back to queued without counting the attempt (shutdown). */
int job_release(struct worker *, const struct job *);
/*
 * The reaper's side: a job whose lease expired goes back to queued (with
 * backoff) or, after its last attempt, dead. Fenced on the token and on
 * the lease still being expired, so a worker that finished or heartbeat
 * meanwhile wins. 1: rescued, 0: it was not ours to rescue, -1: error.
 */
int job_rescue(struct worker *, const struct job *, const char *holder);
/* A fresh random lease token: 32 hex digits. */
void job_token(char out[static 33]);

/* ---- backoff.c: capped exponential backoff with jitter (pure) ---------- */

/*
 * The delay before retry number `attempt` (1 = after the first failure):
 * d = min(cap, base * 2^(attempt-1)), then a uniformly random point of
 * [d/2, d] chosen by `rnd`, so rivals spread out but never wait less
 * than half the nominal delay, and never more than the cap.
 */
int64_t backoff_delay_ms(int attempt, int64_t base_ms, int64_t cap_ms,
                         uint64_t rnd);
uint64_t backoff_random(void);

/* ---- dispatch.c: job kind → handler ------------------------------------ */

struct job_kind {
	const char *kind;
	job_handler handler;
	/* When a job of this kind dies, its environment is marked failed. */
	bool fails_env;
};

const struct job_kind *dispatch_find(const char *kind);
/* Runs the kind's handler; an unknown kind fails with a clear error. */
void dispatch_run(struct worker *, const struct job *, struct job_result *);

/* ---- noop.c: the job kind of tests and benches ------------------------- */

/*
 * Payload (JSON, every key optional): {"sleep_ms": N, "heartbeat": bool,
 * "record": bool (default true), "fail": "msg", "retry": "msg",
 * "retry_after_ms": N, "fail_attempts": N (retry until attempt N+1)}.
 */
void noop_run(struct worker *, const struct job *, struct job_result *);

/* ---- prune.c: deletes finished jobs older than workers.keep_finished_hours */

void prune_run(struct worker *, const struct job *, struct job_result *);

/* ---- sweep.c: idle stop, stuck teardowns, orphaned projects ------------ */

void sweep_run(struct worker *, const struct job *, struct job_result *);

/* ---- reconcile.c: the environment reconciler (see plan.c) -------------- */

void reconcile_run(struct worker *, const struct job *, struct job_result *);

/* ---- lease.c: named leases with a term number (table `leases`) --------- */

/*
 * Takes the named lease if it is free or expired (incrementing its term)
 * or renews it if `holder` holds it at `*term`. Returns 1 and sets *term
 * while held, 0 when someone else holds it, -1 on a database error.
 */
int lease_hold(struct db *, const char *name, const char *holder, int64_t ms,
               uint64_t *term);
/* Gives the lease up early so the next holder need not wait. */
int lease_release(struct db *, const char *name, const char *holder,
                  uint64_t term);

/* ---- reaper.c: the singleton housekeeping pass ------------------------- */

/*
 * Every worker calls reaper_tick between jobs; the one that holds the
 * `reaper` lease rescues expired job leases (queued again with backoff, or
 * dead after the last attempt), enqueues due recurring jobs and prunes old
 * finished jobs.
 */
struct reaper *reaper_new(void);
void reaper_free(struct reaper *);
void reaper_tick(struct worker *);
/* Milliseconds until this worker's next reaper turn. */
int64_t reaper_due_ms(const struct worker *);
/* Releases leadership at exit. */
void reaper_stop(struct worker *);
/* Rescues one expired job if its lease is still `token`; for tests. */
int reaper_rescue(struct worker *, uint64_t id, const char *token);
/* One full pass regardless of leadership; returns jobs rescued or -1. */
int reaper_pass(struct worker *);

/* ---- wakeup.c: the local nudge socket ---------------------------------- */

/* Binds the DGRAM socket the fcgi-app nudges (lib/wake.c); -1 on error. */
int wakeup_bind(const char *path);
/* Waits up to ms for a nudge; drains them. 1: nudged, 0: timeout. */
int wakeup_wait(int fd, int64_t ms);

/* ---- github_jwt.c: the App's JWT (RS256), pure ------------------------
 *
 * Signs {"iat": now-60, "exp": now+540, "iss": "<app_id>"} with the PEM
 * private key into `out` (header.payload.signature, base64url). The 60 s
 * back-dating absorbs clock drift; 9 minutes stays under GitHub's 10.
 */
int github_jwt_sign(const char *pem, size_t pem_len, int64_t app_id, time_t now,
                    struct buf *out);
void github_base64url(const unsigned char *, size_t, struct buf *out);

/* ---- github_http.c: the libcurl adapter (the only curl.h includer) ----
 *
 * One request, no retries and no sleeping: the caller classifies the
 * answer. `bearer` (a JWT or installation token) goes into the
 * Authorization header only; it is never logged. The response owns its
 * body and the few headers the classifier and pagination need.
 */
struct github_response {
	long status;                 /* 0: no HTTP answer (transport error) */
	struct buf body;             /* capped; see github_http.c */
	int64_t ratelimit_remaining; /* -1: header absent */
	int64_t ratelimit_reset;     /* epoch seconds; 0: absent */
	int64_t retry_after;         /* seconds; -1: absent */
	char *link;                  /* Link header or NULL */
	const char *transport_error; /* status 0: curl's reason (static) */
};

void github_response_init(struct github_response *);
void github_response_free(struct github_response *);
/* 0 when an HTTP answer arrived (any status), -1 on transport failure. */
int github_http_request(const char *method, const char *url, const char *bearer,
                        const char *json_body, long timeout_seconds,
                        struct github_response *);

/* ---- github_classify.c: what an answer means, pure ---------------------
 *
 * GH_RETRY carries *retry_ms: the primary limit waits for
 * x-ratelimit-reset, the secondary limit for Retry-After (else a minute,
 * doubling), 5xx and transport errors back off exponentially by attempt.
 */
enum github_verdict {
	GH_OK,
	GH_RETRY,
	GH_REAUTH,    /* 401: refresh the token once */
	GH_NOT_FOUND, /* 404: the caller decides */
	GH_INVALID,   /* 422: validation failed */
	GH_FAIL,      /* anything else: do not retry */
};

struct github_backoff {
	int64_t base_ms, cap_ms;
};

enum github_verdict github_classify(const struct github_response *, time_t now,
                                    int attempt, const struct github_backoff *,
                                    int64_t *retry_ms);
const char *github_verdict_name(enum github_verdict);

/* ---- github_link.c: RFC 8288 Link headers, pure ------------------------ */

/* Finds rel="next" in a Link header; true and `out` set when there is one. */
bool github_link_next(const char *link, struct buf *out);

/* ---- github_api.c: authenticated requests on behalf of one job ---------
 *
 * A struct github lives for one job run. Requests use the installation's
 * token (github_token.c), refresh it once on a 401, and classify the
 * answer. When an answer means "stop this run" (GH_RETRY, GH_FAIL, or a
 * caller's github_fail), the reason is kept in the struct and
 * github_result() turns it into the job's result: the worker reschedules,
 * it never sleeps.
 */
struct github {
	const struct config *cfg;
	uint64_t installation;
	int attempt;
	enum github_verdict stop; /* GH_OK while the run may go on */
	int64_t retry_ms;
	struct buf error;
	/*
	 * Asked before every request (may be NULL): -1 means stop now (the
	 * lease was lost, or the worker is shutting down); the run ends
	 * with a retry so another worker resumes it.
	 */
	int (*keepalive)(void *);
	void *keepalive_arg;
	/* Bound to a job: writes are spaced (github_pace.c), and a write
	 * that must wait ends the run as deferred (JOB_DEFER). */
	bool paced, deferred;
};

void github_init(struct github *, const struct config *, uint64_t inst,
                 int attempt);
void github_free(struct github *);
/*
 * `path` is relative to github.api_url ("/repos/o/r/...") or an absolute
 * URL under it (a Link header's next page); anything else is refused so a
 * token is never sent to another host. The response is reset first.
 */
enum github_verdict github_request(struct github *, const char *method,
                                   const char *path, const char *body,
                                   struct github_response *);
/*
 * Ties a run to its claimed job: before each request the lease is
 * extended when half of it is gone, and a worker told to give up the job
 * stops the run (it ends as a retry; the queue releases it).
 */
struct github_job {
	struct worker *w;
	const struct job *job;
};

/* ---- github_pace.c: content-creating requests spaced per installation */

/* POST, PATCH, PUT and DELETE: what GitHub's secondary limits count. */
bool github_pace_method(const char *method);
/*
 * Takes a slot for one such request of installation `inst`: 0 with
 * *wait_ms 0 (go), or 0 with *wait_ms > 0 (no room: come back then);
 * -1 on a database error.
 */
int github_pace_take(const struct config *, struct db *, uint64_t inst,
                     int64_t *wait_ms);
void github_bind(struct github *, struct github_job *, struct worker *,
                 const struct job *);
/* Marks the run failed (not retried) with a reason; returns -1. */
int github_fail(struct github *, const char *fmt, ...) PRINTFLIKE(2, 3);
void github_result(const struct github *, struct job_result *);
/* A database error under a run: the job is retried. Returns -1. */
int github_db_error(struct github *);
/* The body parsed as JSON (caller puts it), or NULL. */
struct json_object *github_json(const struct github_response *);
/* The App's JWT from github.private_key_file. */
int github_app_jwt(const struct config *, struct buf *jwt);

/* ---- github_token.c: installation access tokens ------------------------
 *
 * Cached in this process's memory only (never a file, the database or a
 * log), per (installation, scope), until github.token_refresh_margin
 * seconds before expires_at. Scope NULL is the App's whole grant; a repo
 * name asks for a token limited to that repository and contents:read, the
 * one handed to the host scripts for cloning.
 */
int github_token_get(struct github *, const char *clone_repo,
                     struct buf *token);
/* Drops a cached token; installation 0: clone_repo's under any. */
void github_token_forget(uint64_t installation, const char *clone_repo);
/* Drops every cached token (tests, and after a fork). */
void github_token_clear(void);
/* The installation of "owner/repo" via GET /repos/{o}/{r}/installation. */
int github_installation_find(struct github *, const char *repo, uint64_t *out);

/* ---- github_comment.c: the sticky PR comment, rendered (pure) -----------
 *
 * Everything that came from a webhook (title, branch, author, error text,
 * log lines) is hostile: it is rendered so that it can neither inject
 * Markdown or HTML nor mention anyone. The marker is the hidden first line
 * that finds the comment again.
 */
enum github_why {
	WHY_NONE,     /* there is a preview (or one is being deployed) */
	WHY_APPROVAL, /* untrusted: waits for someone with write access */
	WHY_LABEL,    /* policy.trigger "label" and the label is missing */
	WHY_DRAFT,    /* a draft, and policy.deploy_drafts is false */
	WHY_QUEUED,   /* environments.max_running reached */
	WHY_BUDGET,   /* its repository's monthly budget reached */
	WHY_FAILED,   /* the last deploy failed */
	WHY_IDLE,     /* stopped after idle_stop_minutes without traffic */
	WHY_STOPPED,  /* stopped by a command */
	WHY_CLOSED,   /* the PR is closed: removed */
};

struct github_step {
	const char *name;
	const char *status;
	double seconds; /* < 0: still running */
};

/* One row of the teardown report (teardown_items). */
struct github_removed {
	const char *kind; /* "instance", "tunnel", "container", ... */
	const char *name;
	bool gone; /* checked gone; else found and not (yet) confirmed */
};

struct github_service {
	const char *name;
	const char *url;
	bool primary;
};

struct github_view {
	const char *slug;
	const char *title, *head_ref, *author;
	const char *phase;
	const char *sha; /* the commit shown: deployed, else desired */
	const char *url; /* the preview, NULL when none */
	const struct github_service *services; /* every exposed service */
	size_t nservices;
	const char *log_url;
	const char *approved_by;
	enum github_why why;
	int64_t queue_position, max_running, idle_minutes;
	/* Stopped as idle behind an exposure that wakes on a visit: the
	 * URL that does it; NULL otherwise. */
	const char *wake_url;
	/* Queued for a reason other than the slots (environments.error:
	 * this host's networks are all taken); NULL otherwise. */
	const char *queued_reason;
	/* Waiting for its budget: why and until when (environments.error,
	 * budget_reason); NULL otherwise. */
	const char *budget_reason;
	const char *label, *trusted_label;
	const char *build_status, *build_error, *log_tail;
	const struct github_step *steps;
	size_t nsteps;
	const struct github_removed *removed; /* by kind, then name */
	size_t nremoved;
	/* Compute hours and cost (env_runs) once no run is open; < 0: none */
	double compute_hours, compute_cost;
	size_t log_lines;
	const char *updated; /* ISO 8601 */
};

void github_comment_marker(const char *slug, struct buf *out);
int github_comment_render(const struct github_view *, struct buf *out);
/* Inline text, neutralised for Markdown and HTML and mentions. */
void github_md_text(struct buf *, const char *s, size_t max_bytes);
/*
 * The reason shown when there is no preview, from the environment's state.
 * phase/desired are environments columns; label_missing, draft (a draft
 * the policy does not deploy) and idle are decided by the caller.
 */
enum github_why github_why_of(const char *phase, const char *desired,
                              bool trusted, bool label_missing, bool draft,
                              bool idle, const char *build_status);
/*
 * The deployment status a build should show now: in_progress, success,
 * failure or inactive; and the ones to send, in order, after `last`
 * (NULL: none sent yet). Returns how many (at most 3) went into `out`.
 */
const char *github_deploy_target(const char *build_status, bool latest,
                                 const char *phase);
size_t github_deploy_steps(const char *last, const char *target,
                           const char *build_status, const char *out[3]);

/* ---- github_sync.c: the notifier (job kind "notify") ---------------------
 *
 * Reads the environment, its latest builds and steps and what GitHub was
 * last told (github_builds, github_comments) and brings GitHub in line:
 * a Deployment per deployed commit with its statuses in order, the commit
 * status, and the one sticky comment. Idempotent: running it twice, or
 * after a crash anywhere, leaves one Deployment per build and one comment.
 */
void github_sync(struct worker *, uint64_t env_id, struct job_result *);
void github_sync_run(struct worker *, const struct job *, uint64_t env_id,
                     struct job_result *);
void github_notify_job(struct worker *, const struct job *,
                       struct job_result *);
/* "owner/repo" made only of the characters GitHub allows in names. */
bool github_repo_ok(const char *repo);
/* The status page of an environment (log_url / target_url). */
/* Pure: may this URL be shown on GitHub (not loopback, http or https)? */
bool github_url_public(const char *url);
void github_status_url(const struct config *, const char *slug,
                       struct buf *out);

/* ---- github_command.c: PR comment commands (job kind "command") --------
 *
 * Loads the commands row named by the job's payload, asks GitHub whether
 * the commenter has write access (write, maintain or admin), applies the
 * command to the environment's desired state and enqueues a reconcile in
 * one transaction, then answers on GitHub with a reaction (+1 applied,
 * -1 refused).
 */
void github_command_job(struct worker *, const struct job *,
                        struct job_result *);
/* Pure: does a collaborator-permission answer grant write access? */
bool github_permission_writes(const char *permission, const char *role);

/*
 * An installation token limited to `repo` and contents:read, for the host
 * scripts' clone (hand it over through a file or stdin, never argv).
 * 0, or -1 with the reason in `res` (JOB_RETRY/JOB_FAIL).
 */
int github_clone_token(const struct config *, uint64_t installation,
                       const char *repo, struct buf *token,
                       struct job_result *res);
/* ==== the reconcile engine and the local providers (issue 4) ========== */

/* ---- lazylib.c: libcurl's and libxml2's functions the workers call,
 * defined here with their own signatures; each loads its library at its
 * first call (workers link neither) --------------------------------------- */

/* Whether this process has loaded either library. */
bool lazylib_loaded(void);

/* ---- proc.c: running host programs ------------------------------------ */

struct proc {
	const char *const *argv; /* argv[0] is a path; no shell */
	const char *const *envp;
	const char *stdin_data;
	size_t stdin_len;
	double timeout; /* seconds; 0: none */
	/* Called every few seconds; -1 stops the program (lease lost). */
	int (*tick)(void *);
	void *tick_arg;
	struct buf out; /* stdout, capped */
	struct buf err; /* stderr, tail kept */
	int exit_code;  /* -1: killed or not run */
	bool timed_out;
	bool cancelled;
};

void proc_init(struct proc *);
int proc_run(struct proc *);
void proc_free(struct proc *);

/* ---- yaml.c ------------------------------------------------------------ */

#define YAML_MAX_BYTES (1024 * 1024)

struct json_object;
struct json_object *yaml_to_json(const char *, size_t, struct buf *err);

/* ---- compose.c: the allow-list gate for a PR's compose project ------- */

struct compose_policy {
	const char *project;  /* <instance>-<slug> */
	const char *instance; /* environments.instance, a label for stops */
	uint64_t env_id;
	const char *src_dir; /* the checkout, absolute and real */
	/* The same checkout where compose runs, when that is another host
	 * (ec2: <host_dir>/src on the instance); NULL: src_dir. */
	const char *run_src;
	const char *allowed_services; /* "a,b" or NULL: any */
	const char *allowed_images;   /* "prefix,prefix" or NULL: built only */
	int max_services;
	int max_networks; /* the default network counts */
	int max_volumes;
	bool allow_build;
	int64_t mem_default, mem_max; /* bytes */
	int64_t pids_default, pids_max;
	double cpus_default, cpus_max;
};

struct compose_service {
	char *name;
	int port; /* 0: exposes nothing */
};

struct compose_result {
	struct compose_service *services;
	size_t n;
};

/* One run of the gate (compose.c, compose_service.c, compose_image.c). */
struct gate {
	const struct compose_policy *pol;
	struct json_object *in_services;
	struct json_object *networks; /* the output's, for service checks */
	struct json_object *volumes;
	struct buf *why;
	const char *svc; /* the service being read, for messages */
};

bool compose_name_valid(const char *);
/*
 * `in` is the PR's file as yaml_to_json() read it, variables already
 * interpolated (json_interpolate); `*out` the model compose runs.
 */
int compose_gate(struct json_object *in, const struct compose_policy *,
                 struct json_object **out, struct compose_result *,
                 struct buf *why);
const struct compose_service *
compose_service_find(const struct compose_result *, const char *);
void compose_result_free(struct compose_result *);
/* "services.<svc>.<key>: <rule>"; always -1. */
int gate_refuse(struct gate *, const char *key, const char *fmt, ...)
        PRINTFLIKE(3, 4);
void gate_labels(struct gate *, struct json_object *labels);
int service_gate(struct gate *, const char *name, struct json_object *svc,
                 struct json_object **out, struct compose_service *);
int service_image(struct gate *, const char *name, struct json_object *svc,
                  struct json_object *out);
int service_limits(struct gate *, struct json_object *svc,
                   struct json_object *out);

/* ---- compose_dockerfile.c: the images a Dockerfile builds from -------- */

/* One image a Dockerfile names (`what`: FROM, COPY, syntax...): 0 if
 * allowed, else -1 with the reason written by the callee. */
typedef int (*dockerfile_ref_fn)(void *arg, const char *what, const char *ref);
/*
 * Calls `fn` for every image `text` builds from or copies out of (stage
 * names, their indexes and scratch are not images), ARGs substituted from
 * `build_args` (the compose file's, may be NULL) and the ARG defaults.
 * -1 with `why` for what it cannot resolve, or if `fn` said -1.
 */
int dockerfile_refs(const char *text, struct json_object *build_args,
                    dockerfile_ref_fn fn, void *arg, struct buf *why);

/* ---- compose_fs.c: the checkout as the gate reads it ------------------ */

bool path_under(const char *path, const char *dir);
/* realpath of src/rel if inside src (malloc'd), else NULL. */
char *checkout_path(const char *src, const char *rel);
/* -1 with the reason if any symlink in the checkout leaves it. */
int checkout_check(const char *src, struct buf *why);
int checkout_read(const char *src, const char *rel, size_t max, struct buf *out,
                  struct buf *why);

/* ---- compose_vars.c: interpolation, escaping, env files, log filter --- */

int vars_interpolate(const char *, const char *const *vars, struct buf *out,
                     struct buf *why);
struct json_object *json_interpolate(struct json_object *,
                                     const char *const *vars, struct buf *why);
void json_dollar_escape(struct json_object *);
int env_file_parse(const char *text, struct json_object *env, struct buf *why);
void log_filter(const char *in, size_t len, const char *workdir,
                struct buf *out);

/* ---- compose_load.c: from a checkout to the model compose runs -------- */

struct compose_load {
	const char *compose_file; /* NULL: the usual names */
	const char *const *vars;  /* "NAME=value", NULL-terminated */
};

/*
 * Checks the checkout's symlinks, reads the compose file (or the usual
 * names), interpolates and gates it. 0, or -1 with `why`.
 */
int compose_load_gate(const struct compose_load *,
                      const struct compose_policy *, struct json_object **out,
                      struct compose_result *, struct buf *why);

/* ---- repo_conf.c: the repository's .ephemera.conf ---------------------- */

struct repo_settings {
	char *compose_file;    /* NULL: the usual names */
	char *primary_service; /* NULL: chosen (route.c) */
	char **expose;         /* NULL: every service with a port */
	size_t nexpose;
	char *health_path;
	bool build;
	char **bypass; /* access_bypass: paths that skip Access login */
	size_t nbypass;
};

int repo_settings_load(const char *src_dir, struct repo_settings *,
                       struct buf *why);
/*
 * The admin's caps on what the file asked for: every access_bypass path
 * must be one of the repos entry's access_bypass (or under one that ends
 * in *). -1 with the reason, naming the path and the rule.
 */
int repo_settings_cap(const struct repo_settings *,
                      const struct repo_config *admin, struct buf *why);
void repo_settings_free(struct repo_settings *);

/* ---- env.c: an environment row ----------------------------------------- */

struct env {
	uint64_t id;
	char *repo;
	uint64_t pr;
	char *slug;
	char *desired;
	char *desired_sha;
	char *phase;
	char *deployed_sha;
	char *attempted_sha;
	char *clone_url;
	char *url;
	uint64_t installation_id;
	bool trusted;
	/* Stopped by the idle sweep: a stop leaves a waking route where the
	 * exposure has one (017_wake.sql). */
	bool idle_stopped;
};

/* 0: loaded; 1: no such environment; -1: database error. */
int env_load(struct db *, uint64_t id, struct env *);
void env_free(struct env *);
int env_phase_set(struct db *, uint64_t id, const char *phase,
                  const char *error);

/* ---- plan.c: the pure plan function ------------------------------------ */

enum step {
	STEP_NONE,    /* desired and actual agree */
	STEP_ADMIT,   /* take a running slot or wait in the queue */
	STEP_DEPLOY,  /* fetch, configure, up, route, verify */
	STEP_STOP,    /* stop containers, keep the work dir */
	STEP_DESTROY, /* remove everything */
	STEP_HOLD,    /* tear down and wait for approval */
};

struct facts {
	bool running; /* containers of the project are running */
	bool route;   /* the proxy route exists */
	bool workdir; /* the work dir exists */
	/* Any Docker object of the project, running or not: looked at,
	 * instead of `running`, when everything should be gone (desired
	 * destroyed). */
	bool leftover;
};

enum step plan_next(const struct env *, const struct facts *);
const char *step_name(enum step);

/* ---- build.c: builds and build_steps rows ------------------------------ */

struct build {
	uint64_t id;
	uint64_t step_id;
	double step_started;
};

int build_begin(struct db *, uint64_t env_id, const char *sha, struct build *);
int build_step_begin(struct db *, struct build *, const char *name);
int build_step_end(struct db *, struct build *, bool ok, const char *detail);
int build_end(struct db *, struct build *, const char *status,
              const char *error, const char *log_tail);

/* ---- env_run.c: when compute runs, and its price (table env_runs) ----- */

/* A run at `price` unless one is open (a redeploy keeps its run). */
int env_run_open(struct db *, uint64_t env_id, double price);
/* The open run's price, once what runs is known (ec2's instance type). */
int env_run_reprice(struct db *, uint64_t env_id, double price);
/* Closes the open run (if any), adding it to the environment's totals. */
int env_run_close(struct db *, uint64_t env_id);

/* ---- capacity.c: the cap on running environments ---------------------- */

/* 0: admitted (phase deploying); 1: queued; -1: error. */
int capacity_admit(struct db *, uint64_t env_id, int64_t max_running);
/* Nudges the queued environments after a slot frees up. */
int capacity_release(struct db *, int max_attempts);

/* ---- budget.c: a repository's monthly budget --------------------------- */

/* Has `spent` reached `budget`? Never when there is none (<= 0). */
bool budget_reached(double budget, double spent);
/* The reason a preview waits, for environments.error and the PR;
 * `resets` is "YYYY-MM-DD HH:MM", the next month's start (UTC). */
void budget_reason(struct buf *, const char *repo, double spent, double budget,
                   const char *resets);
/* 0: within budget (or its run is open); 1: waits, phase budget, the PR
 * told; -1: error. */
int budget_admit(struct worker *, const struct env *);
/* Reconciles those waiting in budget that it now admits; n or -1. */
int budget_release(struct worker *);
/* SQL: the next UTC month's start, when budgets reset (budget_spend's
 * resets_at); INTERVAL 1 MONTH carries December into January. */
#define BUDGET_RESETS_SQL                                                      \
	"(CAST(DATE_FORMAT(NOW(6), '%Y-%m-01') AS DATETIME) + INTERVAL 1 "     \
	"MONTH)"

/* ---- notify.c: telling the PR ------------------------------------------ */

/* Records the change and queues a `notify` job; 0 or -1 (database). */
int notify_env(struct worker *, uint64_t env_id, const char *phase,
               const char *message);
/* notify_env, unless the last notification already told this phase. */
int notify_catch_up(struct worker *, uint64_t env_id, const char *phase,
                    const char *message);

/* ---- removal.c: the teardown report (table teardown_items) ------------- */

/* NULL, or env_id 0: nothing recorded (a stop, an orphan, a tool). */
struct removal {
	struct db *db;
	uint64_t env_id;
};

void removal_init(struct removal *, struct db *, uint64_t env_id);
/* A new destroy of the environment: the last one's list goes. */
int removal_begin(struct removal *);
/* Seen before the delete: `kind` ("instance", "tunnel", ...) and its
 * name (not NUL-terminated; len bytes). 0, or -1 (database). */
int removal_found(struct removal *, const char *kind, const char *name,
                  size_t len);
/* Only after a fresh look shows nothing of `kind` left: every found
 * object of that kind is confirmed gone. */
int removal_gone(struct removal *, const char *kind);

/* ---- provider_local.c: compute on this machine's Docker ---------------- */

struct host_call {
	const char *action; /* fetch, config, up, stop, down, status,
	                       leftovers, projects, metrics */
	const char *project;
	const char *prefix; /* projects: "<instance>-" */
	const char *dir;
	const char *source;
	const char *sha;
	const char *compose_file;
	const char *git_token;
	const char *service; /* metrics: the compose service, its port */
	const char *port;
	const char *metric; /* and the metric family */
	bool build;
};

/* A call of `action` on `project` (work dir `dir` or NULL), building. */
void host_call_init(struct host_call *, const char *action, const char *project,
                    const char *dir);
int local_host_run(struct worker *, const struct job *,
                   const struct host_call *, struct proc *);
char *local_env_dir(const struct config *, const char *slug);
/* "<instance>-<slug>"; the instance is [a-z0-9]{1,15} or "eph". */
const char *local_instance(const struct config *);
void local_project_name(const struct config *, const char *slug, char out[80]);
/*
 * The work dir's marker names this installation and is `age` s old: only
 * such a dir is the sweep's (the host script checks it again).
 */
bool local_workdir_ours(const struct config *, const char *slug, double age);
/*
 * `path` is a regular file (not a link), at least `age` s old, with the
 * line `want` among its first `lines`: how the sweep knows a work dir's
 * marker or a route as this installation's.
 */
bool local_file_marked(const char *path, double age, const char *want,
                       int lines);
/*
 * One environment's lock (<var_dir>/run/env-<slug>.lock): a reconcile
 * holds it from its first look to its last step, the sweep while it
 * re-checks and removes an orphan, so a teardown never runs under a
 * fetch or `up` of the same slug. `wait_s` 0: try once. The fd, or -1
 * (busy, or an error, logged).
 */
int local_env_lock(const struct config *, const char *slug, double wait_s);
void local_env_unlock(int fd);

/* ---- exposure_local.c: nginx routes ------------------------------------ */

struct route_target {
	const char *service;
	const char *address; /* IPv4 */
	int port;
	bool primary;
};

/*
 * `token` (the build id) is sent back as X-Ephemera-Route by every answer
 * through the route, so a check can tell the new route from the old one
 * while nginx reloads.
 */
int exposure_local_write(const struct config *, const char *slug,
                         const char *token, const struct route_target *,
                         size_t n);
/* Writes `text` as slug's route (tmp + rename) and reloads nginx. */
int exposure_local_install(const struct config *, const char *slug,
                           const struct buf *text);
int exposure_local_remove(const struct config *, const char *slug);
bool exposure_local_exists(const struct config *, const char *slug);
bool exposure_local_present(const struct config *, const char *slug);
/* <var_dir>/log/previews/<slug>.log, the route's visits; caller frees. */
char *exposure_local_visits_path(const struct config *, const char *slug);
bool exposure_local_path_valid(const char *path);
/* `path` made absolute against the working directory; caller frees. */
char *exposure_local_abs(const char *path);
/* The route carries this installation's identity and is `age` s old. */
bool exposure_local_ours(const struct config *, const char *slug, double age);
char *exposure_local_url(const struct config *, const char *slug,
                         const char *path);
void exposure_local_render(const struct config *, const char *slug,
                           const char *token, const struct route_target *,
                           size_t n, struct buf *);

/* ---- subnet_pool.c: local.subnet_pool's reservations ------------------- */

/* Reserves environments.max_networks subnets for env_id unless it holds
 * them: 0 done (or no pool), 1 the pool is full (`why` says so), -1. */
int subnet_reserve(struct worker *, uint64_t env_id, struct buf *why);
/* Gives each network of the gated model its reserved subnet (ipam). */
struct deploy;
int subnet_apply(struct deploy *, struct json_object *model);

/* ---- route_sleep.c: the waking route and the visits log -------------- */

/* The line that marks a waking route (its fourth at most). */
#define ROUTE_ASLEEP "# asleep: visits get the waking page"
void route_sleep_render(const struct config *, const char *slug,
                        const char *host, const char *fcgi_socket,
                        struct buf *);
/* The nginx exposure's sleep: the waking route for <slug>.<preview_domain>. */
int route_sleep(struct worker *, const struct job *, const char *slug,
                struct buf *why);
/* The waking route for `host` (a name already checked), for any exposure
 * whose visits reach this machine's nginx while the preview sleeps. */
int route_sleep_host(struct worker *, const char *slug, const char *host,
                     struct buf *why);
int route_last_visit(const struct config *, const char *slug, time_t *at);

/* ---- nginx_generation.c: when a reload has taken over ----------------- */

/* worker_processes in an nginx.conf ("auto": ncpu; absent: 1), or -1. */
long nginx_conf_workers(const char *text, long ncpu);
/* The parent pid in a /proc/<pid>/stat line, or -1. */
long nginx_stat_ppid(const char *stat);
/* A /proc/<pid>/cmdline of a worker that still accepts connections. */
bool nginx_title_accepting(const char *cmdline, size_t len);
/*
 * Until no old generation of our nginx accepts connections (no more
 * accepting workers than worker_processes); call it once the new route
 * has answered. 0, or -1 (logged) at `seconds` or if it cannot tell.
 */
int nginx_generation_wait(struct worker *, const struct job *, double seconds);

/* ---- probe.c: HTTP checks through our own proxy ----------------------- */

/* The status (0: no answer); `route` gets X-Ephemera-Route if non-NULL. */
long probe_once(const struct config *, const char *host, const char *path,
                struct buf *route);
/* Until a 2xx/3xx carrying X-Ephemera-Route `token` (NULL: any): 0; 1 if
 * the route answered but never so; -1 if the route never answered. */
int probe_wait(struct worker *, const struct job *, const char *host,
               const char *path, const char *token, double seconds, long *last);

/* ==== provider.c: THE PROVIDER SEAM ======================================
 *
 * reconcile.c and sweep.c reach compute and exposure only through these two
 * operation tables. A provider is one table; which one serves an
 * environment is compute.provider / exposure.provider, or its repository's
 * `compute_provider` / `exposure_provider` in `repos`. plan.c stays pure
 * and knows none of them: it sees only struct facts.
 *
 *   compute:  local (this machine's Docker, provider_local.c), ec2 (EC2
 *             and SSM, workers/aws/ec2_compute.c)
 *   exposure: nginx (exposure_local.c), cloudflare (workers/cloudflare/)
 *
 * Every operation is idempotent (a worker may die anywhere, the next
 * reconcile repeats it) and acts only on what carries this installation's
 * instance name and the environment's slug.
 */

enum deploy_rc { DEPLOY_OK, DEPLOY_FAILED, DEPLOY_RETRY };

/* Called with each slug (not NUL-terminated) a provider holds. */
typedef void (*slug_fn)(void *arg, const char *slug, size_t n);

struct compute_ops;
struct exposure_ops;

/* One deploy, shared by reconcile.c and the compute provider's deploy. */
struct deploy {
	struct worker *w;
	const struct job *job;
	const struct env *e;
	const struct repo_config *admin;
	const struct compute_ops *compute;
	const struct exposure_ops *exposure;
	struct build b;
	char project[80];
	char *dir, *src;
	/* d->dir as the host that runs compose sees it (the ec2 instance's
	 * work dir); NULL: this machine's d->dir. */
	const char *host_dir;
	struct repo_settings rs;
	struct compose_result cr;
	struct route_target *targets; /* addresses filled by deploy */
	size_t ntargets;
	struct buf log; /* the log tail kept with the build */
	struct buf why; /* the reason, when a step fails */
	/* The exposure's own, from prepare to verify (Cloudflare's tunnel). */
	char tunnel_id[40];
	/* DEPLOY_RETRY: when the provider's API said to (429 Retry-After);
	 * 0: the queue's backoff. */
	int64_t retry_ms;
};

struct compute_ops {
	const char *name;
	/* Fills f->running, f->workdir and (desired destroyed) f->leftover. */
	int (*observe)(struct worker *, const struct job *, const struct env *,
	               struct facts *);
	/*
	 * Gets d->e->desired_sha running: its own build_steps rows (with
	 * step_run's timings), targets' addresses filled, the services'
	 * answer in *services (owned by the caller).
	 */
	enum deploy_rc (*deploy)(struct deploy *,
	                         struct json_object **services);
	/* Stops the app, keeping its data (idle stop). */
	int (*stop)(struct worker *, const struct job *, const char *slug,
	            struct buf *why);
	/* Removes everything of the environment; what it found and then
	 * checked gone goes into `rm` (may be NULL). */
	int (*destroy)(struct worker *, const struct job *, const char *slug,
	               struct removal *rm, struct buf *why);
	/* *any: something of `slug` is left, running or not. */
	int (*leftovers)(struct worker *, const struct job *, const char *slug,
	                 bool *any);
	/* Every slug this installation has compute for. */
	int (*list_owned)(struct worker *, const struct job *, slug_fn,
	                  void *arg);
	/* Optional (wake on visit): replaces the app's route with one to
	 * the control plane's waking page, for an idle stop; idempotent. */
	int (*sleep)(struct worker *, const struct job *, const char *slug,
	             struct buf *why);
	/* Optional: the samples of metric `family` (Prometheus text) on
	 * the page GET /metrics of the running service `service` of slug's
	 * project answers on `port`, into `out` (nothing: no such family);
	 * where it runs is the compute's to know. -1: no answer. */
	int (*service_metrics)(struct worker *, const char *slug,
	                       const char *service, int port,
	                       const char *family, struct buf *out);
};

/*
 * A deploy calls prepare (configure, before compose.json is written), then
 * route (after up) and verify; a teardown calls unroute before the compute
 * is stopped, or after it when unroute_after_compute says so. Optional
 * hooks are NULL.
 */
struct exposure_ops {
	const char *name;
	/* Optional: may add services to the gated compose model (a tunnel
	 * connector joins the project) and route from here. */
	enum deploy_rc (*prepare)(struct deploy *, struct json_object *model);
	/* Optional: routes d->targets; `token` comes back as
	 * X-Ephemera-Route through the new route. */
	enum deploy_rc (*route)(struct deploy *, const char *token);
	/* Until the preview answers through this exposure (d->why if not). */
	enum deploy_rc (*verify)(struct deploy *, const char *token);
	/* Idempotent; `why` and *retry_ms (0: backoff) when it fails. What
	 * it found and checked gone goes into `rm` (NULL for a stop). */
	int (*unroute)(struct worker *, const struct job *, const char *slug,
	               struct removal *rm, struct buf *why, int64_t *retry_ms);
	/* A route that goes only once the app is down (a tunnel cannot be
	 * deleted while its connector, a service of the app, holds it). */
	bool unroute_after_compute;
	bool (*exists)(const struct config *, const char *slug);
	/* The public URL of `path`; caller frees. */
	char *(*url)(const struct config *, const char *slug, const char *path);
	/* Slugs with routes of this installation older than the sweep's
	 * grace period (workers.sweep_grace_seconds). */
	int (*list_owned)(struct worker *, const struct job *, slug_fn,
	                  void *arg);
	/* Optional (wake on visit): replaces the app's route with one to
	 * the control plane's waking page, for an idle stop; idempotent.
	 * Called before the compute stops; unroute is not called then. */
	int (*sleep)(struct worker *, const struct job *, const char *slug,
	             struct buf *why);
	/* Optional: whether `sleep` can be used with this configuration
	 * (NULL: whenever it is there). */
	bool (*can_sleep)(const struct config *);
	/* Optional: the last visit it saw through the route of slug (of
	 * repository `repo`) in *at; 1 seen, 0 none since the last look,
	 * -1 unknown. */
	int (*last_visit)(struct worker *, const char *repo, const char *slug,
	                  time_t *at);
};

/* An idle stop of `e` leaves a waking page (environments.wake_on_visit
 * and an exposure that can sleep): reconcile's teardown, the PR comment. */
bool exposure_wakes(const struct config *, const struct exposure_ops *);

extern const struct compute_ops compute_local;
extern const struct compute_ops compute_ec2; /* aws/ec2_compute.c */
extern const struct exposure_ops exposure_nginx;
extern const struct exposure_ops exposure_cloudflare; /* cloudflare/ */

/* The providers of `repo` ("owner/name"; NULL: the defaults); NULL when the
 * configured one is not built in. */
const struct compute_ops *compute_for(const struct config *, const char *repo);
const struct exposure_ops *exposure_for(const struct config *,
                                        const char *repo);
/* The local provider's deploy (fetch, configure, up), in reconcile.c until
 * the re-layout moves it to workers/local/. */
enum deploy_rc local_deploy(struct deploy *, struct json_object **services);
/*
 * For every compute provider's deploy (reconcile.c): fetch the commit into
 * d->src on this machine and gate it into d->dir/compose.json, each step
 * with its build_steps row; the ec2 provider ships that file on.
 */
enum deploy_rc deploy_gate(struct deploy *);
/* Ends the step begun last with its build_steps row: `rc_of_step` back,
 * or DEPLOY_RETRY when the row cannot be written. */
enum deploy_rc step_run(struct deploy *, const char *name,
                        enum deploy_rc rc_of_step);
/* A GitHub clone of the environment's repository gets an installation
 * token (contents:read, that repository, an hour) into `token`; left
 * empty without GitHub or for an admin's `source`. */
enum deploy_rc deploy_clone_token(struct deploy *, struct buf *token);
/* Host output into the build's log tail (filtered, \r made lines). */
void deploy_log_append(struct deploy *, const char *text, size_t len);
/* Each target's address from the services JSON `json`; *keep owns the
 * parsed array (caller puts it). -1 with d->why. */
int deploy_addresses_take(struct deploy *, const char *json,
                          struct json_object **keep);

/* ==== end of the provider seam ========================================== */

#endif
