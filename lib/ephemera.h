/*
 * ephemera.h - the shared library of both programs (fcgi-app, workers) and
 * the ops command. Sectioned by file, like OpenBSD's httpd.h: each section
 * says what its file does and who owns what it hands out.
 *
 * Only lib/db.c includes MariaDB's header and only lib/config.c includes
 * libconfig's; everything else here is pure C over buffers and structs.
 */
#ifndef EPHEMERA_H
#define EPHEMERA_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#define PRINTFLIKE(f, a) __attribute__((format(printf, f, a)))
#define NORETURN __attribute__((noreturn))
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- xmalloc.c: allocation that cannot fail (out of memory is fatal) --- */

void *xmalloc(size_t);
void *xcalloc(size_t, size_t);
void *xrealloc(void *, size_t);
char *xstrdup(const char *);
char *xstrndup(const char *, size_t);

/* ---- buf.c: the growable byte buffer and the borrowed slice ------------
 *
 * A buf owns its bytes, is always NUL-terminated, and never grows beyond
 * `max` bytes. Failure is sticky: once an append would exceed `max`,
 * `failed` is set, further appends do nothing and return -1, and the caller
 * checks once at the end. Unlike allocation failure, hitting the cap is
 * ordinary (a 1 MB title, an endless log) and must not kill the process.
 */
struct buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;
	bool failed;
};

#define BUF_MAX_DEFAULT (64u * 1024 * 1024)
#define BUF_INIT                                                               \
	{                                                                      \
		NULL, 0, 0, BUF_MAX_DEFAULT, false                             \
	}

/* A borrowed run of bytes; never owns, never NUL-terminated by contract. */
struct slice {
	const char *ptr;
	size_t len;
};

void buf_init(struct buf *, size_t max);
void buf_free(struct buf *);
void buf_reset(struct buf *);
int buf_append(struct buf *, const void *, size_t);
int buf_puts(struct buf *, const char *);
int buf_putc(struct buf *, char);
int buf_printf(struct buf *, const char *, ...) PRINTFLIKE(2, 3);
int buf_vprintf(struct buf *, const char *, va_list) PRINTFLIKE(2, 0);
const char *buf_str(const struct buf *);
char *buf_detach(struct buf *);
/* Keep only the last `keep` bytes (a log tail), cutting at a line start. */
void buf_keep_tail(struct buf *, size_t keep);
int buf_append_html(struct buf *, const char *, size_t);
int buf_append_json_string(struct buf *, const char *, size_t);

struct slice slice_of(const char *);
bool slice_eq(struct slice, const char *);
char *slice_dup(struct slice);

/* ---- parse.c: numbers and times from text, with errors, never atoi ----- */

int parse_int64(const char *, int64_t min, int64_t max, int64_t *out);
int parse_uint64(const char *, uint64_t *out);
/* 0-15 for a hex digit of either case, else -1. */
int parse_hex_digit(char);
/*
 * Whether `fn` holds for an item of the comma-separated `list` (NULL or
 * empty: none), each item trimmed of spaces and never empty: the admin's
 * lists of image prefixes and bypass paths.
 */
bool parse_list_any(const char *list,
                    bool (*fn)(const char *item, size_t n, const char *arg),
                    const char *arg);
/* ISO 8601 "2019-05-15T15:20:33Z" (GitHub's form) → seconds since epoch. */
int parse_iso8601(const char *, time_t *out);
/* Formats into `out` (at least 21 bytes) as "YYYY-MM-DDTHH:MM:SSZ". */
void format_iso8601(time_t, char out[static 21]);
/* Seconds since the epoch as a double, from CLOCK_REALTIME. */
double now_real(void);
/* Monotonic seconds, for durations and timeouts. */
double now_mono(void);

/* ---- log.c: one logfmt line per event, to stderr -----------------------
 *
 * log_info("db_connect", "socket=%s tries=%d", log_q(path), n) prints
 *   ts=... level=info prog=workers pid=12 event=db_connect socket=... tries=3
 * Values that may hold spaces, quotes or newlines go through log_q(), which
 * quotes and escapes them into one of a few rotating static buffers (the
 * processes are single-threaded), truncating long values. Never pass a
 * secret to a log call.
 */
enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_init(const char *program, enum log_level);
void log_set_level(enum log_level);
int log_level_parse(const char *, enum log_level *);
void log_msg(enum log_level, const char *event, const char *, ...)
        PRINTFLIKE(3, 4);
#define log_debug(ev, ...) log_msg(LOG_DEBUG, ev, __VA_ARGS__)
#define log_info(ev, ...) log_msg(LOG_INFO, ev, __VA_ARGS__)
#define log_warn(ev, ...) log_msg(LOG_WARN, ev, __VA_ARGS__)
#define log_error(ev, ...) log_msg(LOG_ERROR, ev, __VA_ARGS__)
void fatal(const char *event, const char *, ...) PRINTFLIKE(2, 3) NORETURN;
const char *log_q(const char *);
const char *log_qn(const char *, size_t);

/* ---- config.c: the settings table and the loaded configuration --------
 *
 * Every setting is one row of a table in config.c (name, type, default,
 * bounds, where it goes). Paths in the file are taken as written; relative
 * ones resolve against the working directory. A `*_file` secret setting
 * names a file whose contents are loaded into the matching field; the
 * secret itself never sits in the config file, argv, a log or the database.
 */
struct repo_config {
	char *name;         /* "owner/repo" */
	char *source;       /* git URL or local path; NULL: GitHub's URL */
	char *secrets_file; /* .env lines for trusted environments */
	char *compose_file; /* NULL: the repository's own choice */
	char *primary_service;
	char *allowed_services; /* "web,api": the only services it may run */
	char *allowed_images; /* image prefixes, added to the installation's */
	char *compute_provider;  /* NULL: compute.provider */
	char *exposure_provider; /* NULL: exposure.provider */
	/* "/oauth/callback,/webhooks/" + "*": the paths its .ephemera.conf
	 * may exempt from Access (a final star allows narrower ones) */
	char *access_bypass;
	/* Its own budget per UTC month, instead of
	 * environments.monthly_budget (0: none); only with has_budget. */
	double monthly_budget;
	bool has_budget;
};

struct config {
	char *path; /* the file this came from */

	/* paths */
	char *var_dir;
	char *migrations_dir;
	char *host_dir;
	char *web_dir;

	/* log */
	char *log_level;

	/* http: where nginx listens (used by the stack and for URLs) */
	int64_t http_port;
	char *public_url;

	/* database */
	char *db_socket; /* "" : <var_dir>/run/mysqld.sock */
	char *db_host;
	int64_t db_port;
	char *db_name;
	char *db_user;
	char *db_password_file;
	char *db_password;     /* loaded from db_password_file */
	char *db_tls_ca_file;  /* set: TCP over TLS, the server verified */
	char *db_migrate_user; /* "": migrate as db_user */
	char *db_migrate_password_file;
	char *db_migrate_password;
	int64_t db_connect_timeout;

	/* fcgi */
	char *fcgi_socket; /* "" : <var_dir>/run/fcgi.sock */
	int64_t fcgi_processes;
	int64_t fcgi_threads;
	int64_t fcgi_max_requests;

	/* workers */
	int64_t workers_count;
	char *workers_host; /* "": the machine's name (gethostname) */
	int64_t workers_shutdown_timeout;
	int64_t workers_poll_interval_ms;
	int64_t workers_poll_max_ms;
	int64_t workers_lease_seconds;
	int64_t workers_max_attempts;
	int64_t workers_backoff_base_ms;
	int64_t workers_backoff_cap_ms;
	int64_t workers_max_jobs;
	int64_t workers_recycle_idle_seconds; /* see workers/lazylib.c */
	char *workers_wake_socket;            /* "" : <var_dir>/run/wake.sock */
	int64_t workers_prune_interval_seconds; /* the recurring prune job */
	int64_t workers_sweep_interval_seconds; /* idle stop, orphans */
	int64_t workers_sweep_grace_seconds;    /* younger orphans are left */
	int64_t workers_keep_finished_hours;    /* done/cancelled jobs kept */
	int64_t workers_keep_deliveries_days;   /* the delivery log kept */

	/* github */
	char *github_webhook_secret_file;
	char *github_webhook_secret; /* loaded */
	int64_t github_app_id;
	char *github_private_key_file;
	char *github_api_url;
	/* github App notifier and commands (workers/github/) */
	bool github_enabled;         /* false: notify/command do nothing */
	int64_t github_timeout;      /* seconds per API request */
	int64_t github_token_margin; /* refresh tokens this long before expiry */
	int64_t github_comment_lines; /* log lines quoted for a failed build */
	/* content-creating requests per installation: one per spacing (0:
	 * unpaced) after a burst of this many (workers/github/github_pace.c) */
	int64_t github_write_spacing_ms;
	int64_t github_write_burst;

	/* policy */
	char *policy_trigger;       /* "all" | "label" */
	char *policy_label;         /* opt-in label */
	char *policy_trusted_label; /* approval label */
	bool policy_deploy_drafts;
	bool policy_deploy_untrusted; /* forks/outsiders without approval */
	bool policy_untrusted_secrets;

	/* environments */
	char *preview_domain;
	int64_t env_max_running;
	int64_t env_idle_stop_minutes;
	bool env_wake_on_visit;
	char *local_subnet_pool;     /* "": Docker's default address pools */
	int64_t local_subnet_prefix; /* each preview network's size */
	/* 0: unset. The host's own price per hour; a local environment
	 * costs its share, this / env_max_running (price.c). */
	double local_host_hourly_price;
	double env_hourly_price; /* whatever has no price of its own */
	/* Per repository and UTC month, unless its repos entry says otherwise;
	 * 0: none. Reached, new previews wait (workers/budget.c). */
	double env_monthly_budget;
	int64_t env_max_services;
	bool env_allow_build;
	/* The installation's identity: configured or <var_dir>/instance;
	 * its compose projects are <instance>-<slug>, and its Docker objects,
	 * work dirs and routes carry it. */
	char *env_instance;
	char *env_allowed_images; /* "postgres:,redis:": prefixes of images
	                             a compose file may run without building */
	int64_t env_max_networks;
	int64_t env_max_volumes;
	int64_t env_memory_default_mb, env_memory_max_mb;
	int64_t env_pids_default, env_pids_max;
	double env_cpus_default, env_cpus_max;

	/* status pages (issue 6) */
	char *status_clock; /* "": the real clock; ISO 8601 pins it (tests) */
	int64_t status_refresh_seconds; /* 0: the page does not refresh */

	/* providers and AWS (issue 10; workers/aws/) */
	char *compute_provider;  /* "local" | "ec2" */
	char *exposure_provider; /* "nginx" | "cloudflare" */
	char *aws_region;
	char *aws_endpoint_url;     /* "": the real regional endpoints */
	char *aws_credentials_file; /* "": skip the shared file */
	char *aws_profile;
	int64_t aws_timeout; /* seconds per API request */
	char *ec2_ami;
	char *ec2_launch_template; /* id "lt-..." or name */
	char *ec2_instance_types;  /* "t3.small,t3a.small": first preferred */
	char *ec2_hourly_prices;   /* "t3.small=0.0208,...": checked at load */
	char *ec2_subnet_ids;      /* comma-separated, tried in order */
	char *ec2_security_group_ids;   /* comma-separated */
	char *ec2_instance_profile;     /* name or ARN */
	char *ec2_ssm_parameter_prefix; /* "" or "/x": before /<instance>/ */
	char *ec2_envs_dir; /* on the instance: one work dir per slug below */
	int64_t ec2_command_timeout_seconds; /* a deploy's Run Command limit */

	/* Cloudflare (issue 11; workers/cloudflare/) */
	char *cf_api_token_file; /* read by the workers when they call */
	char *cf_account_id;
	char *cf_zone_id;
	char *cf_zone; /* previews are <slug>.<zone> */
	char *cf_api_url;
	char *cf_edge_url; /* "": https://<hostname> */
	char *cf_connector_image;
	/* The control plane's own tunnel (terraform output wake_tunnel_id):
	 * an idle preview's record points at it, so a visit reaches the
	 * waking page; "": an idle preview's hostname goes with it. */
	char *cf_wake_tunnel_id;
	bool cf_access;
	/* "": none. The workers' own Access service token, the pair
	 * `ephemera cloudflare service-token` writes: the ready check gets
	 * through login to the preview itself. */
	char *cf_access_token_file;
	int64_t cf_timeout; /* seconds per API request */

	/* repos: a list, not a table row (see config.c) */
	struct repo_config *repos;
	size_t nrepos;
};

/*
 * Loads and validates `path` into `cfg`. On error prints one line
 * "file:line: setting 'x.y': what is allowed" into `err` and returns -1.
 */
int config_load(struct config *, const char *path, struct buf *err);
void config_free(struct config *);
/* Prints the effective value of one setting by name (for scripts). */
int config_get(const struct config *, const char *name, struct buf *out);
/* The private runtime path `<var_dir>/<rel>`; caller frees. */
char *config_var_path(const struct config *, const char *rel);

/*
 * The start both daemons share (config.c): logging as `name`, options
 * `-c config` (default config/example.conf) and `-t` (check the config
 * and exit). Exits 2 on a usage error. Returns 0 with `cfg` loaded, 1 when
 * the caller should exit with `*rc` (a config error, printed, or -t).
 * Free `cfg` with config_free in every case.
 */
/* Valid but probably not meant (-t): one line each on `out`. */
void config_warnings(const struct config *, const char *name, FILE *out);
int program_start(const char *name, int argc, char **argv, struct config *,
                  int *rc);
const struct repo_config *config_repo(const struct config *, const char *);
/* The repository's monthly budget: its repos entry's monthly_budget, else
 * environments.monthly_budget; 0: none. */
double config_budget(const struct config *, const char *repo);

/* ---- db.c: MariaDB access, prepared statements only --------------------
 *
 * Values travel as text both ways: parameters are bound by a format string
 * ('s' const char *, NULL for SQL NULL; 'i' int64_t; 'u' uint64_t; 'd'
 * double; 'b' a const struct slice *), results are fetched whole into a
 * db_rows that owns its strings (NULL cells stay NULL). Statements are
 * prepared, executed and closed inside one call, so no MYSQL_STMT outlives
 * the function that made it.
 *
 * Errors: the call logs once and returns -1; db_error() tells the kind.
 * DB_RETRY kinds (deadlock 1213, lock wait timeout 1205, 1020 record changed)
 * mean "run the whole transaction again"; db_tx does that. DB_GONE means the
 * connection broke: the handle reconnects on its next use.
 */
struct db;
struct db_rows;

enum db_error { DB_OK, DB_FAILED, DB_RETRY, DB_GONE, DB_DUPLICATE };

/*
 * Initialises MariaDB Connector/C, and with it OpenSSL, in this process.
 * A supervisor calls it before forking: the children then share those
 * pages instead of each writing its own copy (4 MB a worker, measured by
 * bench/footprint). Without it the first connection does the same work.
 */
void db_library_init(void);
struct db *db_open(const struct config *);
/* The handle `migrate` uses: database.migrate_user when set. */
struct db *db_open_migrate(const struct config *);
/*
 * Makes this handle's sessions READ COMMITTED (call before db_connect):
 * a locking read of a missing row then takes no gap lock, so concurrent
 * first inserts of one key wait and see a duplicate instead of
 * deadlocking. The fcgi-app's webhook transaction relies on it.
 */
void db_read_committed(struct db *);
/* Connects, retrying with backoff for up to `wait_seconds`. */
int db_connect(struct db *, double wait_seconds);
void db_close(struct db *);
bool db_ping(struct db *);
enum db_error db_error(const struct db *);
unsigned db_errno(const struct db *);

int db_exec(struct db *, const char *sql, const char *fmt, ...);
int db_query(struct db *, struct db_rows **, const char *sql, const char *fmt,
             ...);
uint64_t db_affected(const struct db *);
uint64_t db_insert_id(const struct db *);
/* Runs one statement with no parameters (DDL, SET, BEGIN). */
int db_raw(struct db *, const char *sql);

size_t db_rows_count(const struct db_rows *);
size_t db_rows_columns(const struct db_rows *);
const char *db_rows_get(const struct db_rows *, size_t row, size_t col);
const char *db_rows_name(const struct db_rows *, size_t col);
void db_rows_free(struct db_rows *);

/*
 * Runs fn inside BEGIN ... COMMIT, retrying the whole transaction on
 * DB_RETRY errors up to `tries` times. fn returns 0 to commit, -1 to roll
 * back. A fn must not call remote services: the transaction is open.
 */
typedef int (*db_tx_fn)(struct db *, void *);
int db_tx(struct db *, db_tx_fn, void *, int tries);
/*
 * The same, but fn's first statement opens the transaction itself (a
 * procedure beginning with START TRANSACTION, or db_raw) and its last may
 * commit it; whatever is still open when fn returns 0 is committed.
 */
int db_tx_self(struct db *, db_tx_fn, void *, int tries);
/* For tests: make the next n statements fail with MariaDB error `code`. */
void db_inject_error(struct db *, unsigned code, int n);

/* ---- migrate.c: forward-only numbered migrations ----------------------- */

int migrate_apply(struct db *, const char *dir, int *applied);
/* Splits an SQL file into statements (on ';' ending a line). */
int migrate_split(const char *sql, size_t len, char ***stmts, size_t *n);

/* ---- supervisor.c: the process supervisor both programs share ----------
 *
 * Forks `children` copies of child_main, restarts any that die (throttled
 * so a crash loop cannot spin), and on TERM/INT asks children to finish
 * (TERM), waits up to `shutdown_timeout` seconds, then KILLs stragglers.
 * Signals are handled synchronously with sigtimedwait. Children get
 * PR_SET_PDEATHSIG so that a KILLed supervisor leaves none behind.
 */
struct supervisor {
	const char *name;
	int children;
	double shutdown_timeout;
	const char *pidfile; /* may be NULL */
	/* Runs in each child with its slot number; returns the exit status. */
	int (*child_main)(int slot, void *arg);
	void *arg;
	/* Called in the parent every tick (may be NULL). */
	void (*tick)(void *arg);
};

int supervisor_run(struct supervisor *);
/* In a child: true once the supervisor asked it to stop. */
bool supervisor_stopping(void);
/*
 * In a child: installs the TERM handler that sets supervisor_stopping() and
 * then calls on_stop (may be NULL; must be async-signal-safe), ignores INT
 * (the supervisor coordinates Ctrl-C) and PIPE, and unblocks signals.
 */
void supervisor_child_signals(void (*on_stop)(void));
/* In a child: how many TERMs arrived (a second one means "hurry"). */
int supervisor_term_count(void);

/*
 * Stopped by the idle sweep, and its PR unchanged since (a draft, a label
 * or a push is the PR's own decision, and a visit must not undo it):
 * 017_wake.sql's meaning in SQL, for the workers and the waking page
 * alike.
 */
#define ENV_IDLE_STOPPED                                                       \
	"(desired = 'stopped' AND idle_stopped_at IS NOT NULL AND "            \
	"last_delivery_id <=> idle_stop_delivery)"

/* ---- subnet.c: local.subnet_pool's arithmetic -------------------------- */

#define SUBNET_MAX 19 /* "255.255.255.255/32" */
/* "10.230.0.0/16" into its address and prefix length; -1 if malformed
 * or with host bits set. */
int subnet_pool_parse(const char *cidr, uint32_t *base, int *bits);
/* Subnets of local.subnet_prefix in the pool; 0: no pool configured. */
int64_t subnet_pool_size(const struct config *);
/* The idx'th subnet ("10.230.0.16/28"); -1 outside the pool. */
int subnet_format(const struct config *, int64_t idx, char out[SUBNET_MAX]);

/* ---- price.c: an hour of an environment's compute (pure) --------------
 *
 * ec2.hourly_prices is "type=price,..."; a type without an entry, or an
 * ec2 environment launched through a template of another type, costs
 * environments.hourly_price.
 */

/* -1 with "entry N (\"...\"): what is wrong" appended to `why`. */
int price_list_check(const char *list, struct buf *why);
/* The price of `type` among the list's first `before` entries (SIZE_MAX:
 * all); false if it has none there. */
bool price_list_find(const char *list, const char *type, size_t before,
                     double *out);
/*
 * Per hour, for an environment on `compute` ("local" | "ec2"): for ec2,
 * of `instance_type`, or (NULL: not launched yet) of the first of
 * ec2.instance_types; for local, the host's share.
 */
double price_hourly(const struct config *, const char *compute,
                    const char *instance_type);

/* ---- queue.c: the jobs table (docs/architecture.md section 3) ---------
 *
 * queue_enqueue runs inside the caller's transaction. A reconcile for an
 * environment that already has one queued is coalesced into it (the UNIQUE
 * key jobs_one_queued), keeping the earlier run_at.
 */
int queue_enqueue(struct db *, const char *kind, uint64_t env_id,
                  int64_t delay_ms, const char *payload, int max_attempts);

/* ---- wake.c: nudging local workers after a COMMIT ----------------------
 *
 * One datagram to the workers' unix socket; best effort (workers on other
 * hosts, or none listening, fall back to polling).
 */
void wake_notify(const struct config *);
char *wake_socket_path(const struct config *);

/* ---- pidfile.c ---------------------------------------------------------- */

int pidfile_write(const char *path);
void pidfile_remove(const char *path);

/* ---- slug.c: environment names ---------------------------------------- */

/*
 * "pr-<number>-<repo name>" reduced to one DNS label: lowercase letters,
 * digits and '-', at most 63 bytes, no leading or trailing '-'. Writes into
 * out (64 bytes). Safe for any repository name, hostile or not.
 */
void slug_make(const char *repo, uint64_t pr, char out[static 64]);
/* Is s[0..n) a slug slug_make could have made? (For names read back from
 * disk or Docker, before they become paths or project names.) */
bool slug_valid(const char *s, size_t n);
/*
 * The slug when slug_make's is taken by another repository: slug_make's,
 * cut to fit, then "-" and `hexlen` (1-40) hex digits of SHA-256 of the
 * lower-cased full name. Still one DNS label of at most 63 bytes.
 */
void slug_make_suffixed(const char *repo, uint64_t pr, size_t hexlen,
                        char out[static 64]);

#include "banned.h"

#endif
