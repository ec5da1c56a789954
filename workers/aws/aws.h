/*
 * aws.h - the workers' AWS adapter (workers/aws/), sectioned by file like
 * workers.h. Kept as its own header while the workers' tree is re-laid out;
 * it is the AWS part of the workers' private header.
 *
 * Pure core: sigv4.c (signing) and the parsers take buffers and the time
 * and touch no network. Only aws_http.c includes curl, only the XML parser
 * includes libxml2. Credentials are secrets: they never reach a log line,
 * argv or the database; _free functions wipe them.
 */
#ifndef EPHEMERA_AWS_H
#define EPHEMERA_AWS_H

#include "../../lib/ephemera.h"

/* ---- credentials.c: the credentials chain ------------------------------ */

struct aws_credentials {
	char *access_key_id;
	char *secret_access_key;
	char *session_token; /* NULL: long-term keys */
	time_t expiration;   /* 0: does not expire */
	const char *source;  /* "file", "env", "imds": for logs, not secret */
};

/* Wipes and frees the strings; the struct itself is the caller's. */
void aws_credentials_clear(struct aws_credentials *);
/*
 * Pure parsers, tested without files or network. The shared credentials
 * file is INI: [profile] sections with aws_access_key_id,
 * aws_secret_access_key and optionally aws_session_token. IMDS answers a
 * JSON document {Code, AccessKeyId, SecretAccessKey, Token, Expiration}.
 */
int credentials_parse_ini(const char *text, const char *profile,
                          struct aws_credentials *);
int credentials_parse_imds(const char *json, struct aws_credentials *);
/*
 * The chain, first found wins: aws.credentials_file (profile aws.profile),
 * then AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, then the
 * instance role through IMDSv2 (AWS_EC2_METADATA_SERVICE_ENDPOINT, the
 * SDKs' variable, points it elsewhere; AWS_EC2_METADATA_DISABLED=true
 * skips it). -1 when none is found.
 */
int credentials_resolve(const struct config *, struct aws_credentials *);
/* Refresh this long before Expiration (IMDS offers new ones 5 min before). */
#define CREDENTIALS_REFRESH_MARGIN (15 * 60)
bool credentials_stale(const struct aws_credentials *, time_t now);

/* ---- aws_http.c: signed requests over libcurl -------------------------- */

/* What kind of answer came back, for the callers' decisions. */
enum aws_error_kind {
	AWS_OK,
	AWS_THROTTLED, /* RequestLimitExceeded, Throttling*, 5xx: back off */
	AWS_CAPACITY,  /* InsufficientInstanceCapacity: next type/subnet */
	AWS_NOT_FOUND, /* InvalidInstanceID.NotFound, ParameterNotFound... */
	AWS_DENIED,    /* UnauthorizedOperation, AccessDenied*: policy */
	AWS_INVALID,   /* any other 4xx: our request or the setup is wrong */
	AWS_TRANSPORT, /* no answer: connection, TLS, timeout */
	AWS_NO_CREDENTIALS,
};

struct aws_error {
	enum aws_error_kind kind;
	long status;
	char code[96];
	char message[512];
	char action[64]; /* the operation that failed, e.g. "RunInstances" */
	char service[8]; /* "ec2", "ssm": the IAM prefix of the action */
};

struct aws_client {
	const struct config *cfg;
	struct aws_credentials creds;
	void *curl;          /* CURL *, kept for connection reuse */
	unsigned long calls; /* requests sent, for bench/aws */
	long timeout;        /* seconds per request */
};

void aws_client_init(struct aws_client *, const struct config *);
void aws_client_free(struct aws_client *);
/* https://<service>.<region>.amazonaws.com/, or aws.endpoint_url. */
void aws_endpoint(const struct config *, const char *service, struct buf *);
/*
 * One signed POST to `service` with `body` of `content_type`, plus
 * X-Amz-Target when `target` is set (JSON protocols). Fills `status` and
 * `resp`; -1 with err->kind AWS_TRANSPORT or AWS_NO_CREDENTIALS when no
 * HTTP answer came back.
 */
int aws_post(struct aws_client *, const char *service, const char *content_type,
             const char *target, const char *body, long *status,
             struct buf *resp, struct aws_error *err);
/*
 * An unsigned request (IMDS). `headers` is NULL-terminated "Name: value"
 * strings. 0 with the status and body, -1 on no answer.
 */
int http_plain(const char *method, const char *url, const char *const *headers,
               long timeout_ms, long *status, struct buf *body);
/* Sorts an error code into a kind (pure). */
enum aws_error_kind aws_error_classify(long status, const char *code);
const char *aws_error_kind_name(enum aws_error_kind);

/* ---- sigv4.c: AWS Signature Version 4, a pure function -----------------
 *
 * sigv4_sign(request, credentials, region, service, time) fills `out` with
 * the headers the caller adds to the request (X-Amz-Date when the request
 * has none, X-Amz-Security-Token for session credentials, Authorization),
 * plus the canonical request and string to sign for tests. Nothing here
 * reads a clock or the network.
 */
struct sigv4_header {
	const char *name;
	const char *value;
};

struct sigv4_request {
	const char *method;
	const char *path;  /* as sent, without the query: "/", "/a%20b" */
	const char *query; /* as sent, after '?'; "" or NULL: none */
	const struct sigv4_header *headers; /* to sign; must include host */
	size_t nheaders;
	const char *payload_sha256; /* lowercase hex; NULL: empty body */
	bool keep_path;      /* true: S3-style, no RFC 3986 normalisation */
	bool token_unsigned; /* the token header is added after signing */
};

#define SIGV4_MAX_OUT 3

struct sigv4_output {
	char amz_date[17]; /* YYYYMMDDTHHMMSSZ */
	struct buf canonical;
	struct buf string_to_sign;
	struct buf authorization; /* the header's value */
	/* "Name: value" lines to add to the request, in this order. */
	struct buf headers[SIGV4_MAX_OUT];
	size_t nheaders;
};

void sigv4_output_init(struct sigv4_output *);
void sigv4_output_free(struct sigv4_output *);
int sigv4_sign(const struct sigv4_request *, const struct aws_credentials *,
               const char *region, const char *service, time_t now,
               struct sigv4_output *);
/* Lowercase hex SHA-256 of `len` bytes into out (65 bytes). */
void sigv4_sha256_hex(const void *, size_t len, char out[static 65]);
/* Appends `s` percent-encoded: all but A-Za-z0-9-._~ (and '/' if keep). */
void sigv4_uri_encode(struct buf *, const char *s, size_t len, bool keep_slash);

/* ---- ec2.c: the EC2 Query API (XML answers through libxml2) ------------ */

#define EC2_API_VERSION "2016-11-15"

struct aws_tag {
	const char *key;
	const char *value;
};

struct ec2_launch {
	const char *ami;             /* NULL/"": the launch template's */
	const char *launch_template; /* "lt-..." id or a name; may be "" */
	const char *instance_type;
	const char *subnet_id;
	const char *security_group_ids; /* comma-separated */
	const char *instance_profile;   /* name or ARN; may be "" */
	const char *user_data;          /* raw; sent base64-encoded */
	const struct aws_tag *tags;     /* on the instance and its volumes */
	size_t ntags;
	const char *client_token; /* idempotency: same token, same launch */
};

struct ec2_instance {
	char id[32];
	char state[16]; /* pending, running, stopping, stopped, ... */
	char type[32];
	char private_ip[48];
	char subnet_id[32];
	char launch_time[32];
	char owner_id[16];      /* the account, for the instance's ARN */
	char tag_instance[256]; /* ephemera:instance */
	char tag_env[256];      /* ephemera:env */
};

struct ec2_instances {
	struct ec2_instance *v;
	size_t n;
};

void ec2_instances_free(struct ec2_instances *);
/* Pure: the form body of one call ("Action=...&Version=...&..."). */
void ec2_form_add(struct buf *, const char *key, const char *value);
int ec2_launch_form(const struct ec2_launch *, struct buf *);
/*
 * Pure: instances of a RunInstances/DescribeInstances answer appended to
 * `out`; the next page's token (or "") into `next`.
 */
int ec2_parse_instances(const char *xml, size_t len, struct ec2_instances *,
                        struct buf *next);
/* Pure: an error answer's code and message into `err` (kind classified). */
void ec2_parse_error(const char *xml, size_t len, long status,
                     struct aws_error *);

int ec2_run_instances(struct aws_client *, const struct ec2_launch *,
                      struct ec2_instance *, struct aws_error *);
/*
 * Tries each instance type, then each subnet, while the answer is
 * InsufficientInstanceCapacity; any other error ends the search.
 */
int ec2_run_with_fallback(struct aws_client *, struct ec2_launch *,
                          const char *types, const char *subnets,
                          struct ec2_instance *, struct aws_error *);
/*
 * The environment's instance: a live one tagged ephemera:instance =
 * `instance` and ephemera:env = `slug` is adopted (a worker that died
 * between RunInstances and its database write must not launch a second),
 * else one is launched with ec2_run_with_fallback. *launched says which.
 */
int ec2_find_or_launch(struct aws_client *, struct ec2_launch *,
                       const char *types, const char *subnets,
                       const char *instance, const char *slug,
                       struct ec2_instance *, bool *launched,
                       struct aws_error *);
/* Every page of instances with all these tags (not terminated). */
int ec2_describe_instances(struct aws_client *, const struct aws_tag *,
                           size_t ntags, struct ec2_instances *,
                           struct aws_error *);
/* Volumes by id: what an instance's tags went onto (its root volume). */
struct ec2_volumes {
	char (*id)[32];
	size_t n;
};

/* Pure: the volumes of a DescribeVolumes answer appended to `out`; the
 * next page's token (or "") into `next`. */
int ec2_parse_volumes(const char *xml, size_t len, struct ec2_volumes *,
                      struct buf *next);
/* Every page of volumes with all these tags (not deleted). */
int ec2_describe_volumes(struct aws_client *, const struct aws_tag *,
                         size_t ntags, struct ec2_volumes *,
                         struct aws_error *);
void ec2_volumes_free(struct ec2_volumes *);
/* "StartInstances", "StopInstances" or "TerminateInstances" on one id. */
int ec2_instance_action(struct aws_client *, const char *action, const char *id,
                        struct aws_error *);

/* ---- ssm.c: Run Command and Parameter Store (JSON 1.1 through json-c) -- */

enum ssm_status {
	SSM_PENDING,
	SSM_IN_PROGRESS,
	SSM_DELAYED,
	SSM_SUCCESS,
	SSM_FAILED,
	SSM_TIMED_OUT,
	SSM_CANCELLED,
	SSM_CANCELLING,
	SSM_UNDELIVERABLE,
	SSM_TERMINATED,
	SSM_UNKNOWN,
};

/* GetCommandInvocation cuts each output at this many characters. */
#define SSM_OUTPUT_LIMIT 24000

struct ssm_invocation {
	enum ssm_status status;
	int response_code;   /* the script's exit code; -1: not run */
	struct buf out;      /* StandardOutputContent */
	struct buf err;      /* StandardErrorContent */
	bool truncated;      /* an output reached SSM_OUTPUT_LIMIT */
	bool exec_timed_out; /* TimedOut past executionTimeout, not delivery */
};

void ssm_invocation_init(struct ssm_invocation *);
void ssm_invocation_free(struct ssm_invocation *);
/* Lenient: "InProgress", "In Progress", "Delivery Timed Out"... */
enum ssm_status ssm_status_parse(const char *status, const char *details);
const char *ssm_status_name(enum ssm_status);
/* True once the status can no longer change (Success, Failed, ...). */
bool ssm_status_final(enum ssm_status);
/* Pure: a GetCommandInvocation answer; a JSON error's __type/message. */
int ssm_parse_invocation(const char *json, struct ssm_invocation *);
void ssm_parse_error(const char *json, long status, struct aws_error *);
/* Appends `arg` single-quoted for sh: nothing in it is interpreted. */
void ssm_shell_quote(struct buf *, const char *arg);
/*
 * Pure: SendCommand's body running argv (each argument quoted) through
 * AWS-RunShellScript; `exec_timeout` is the script's limit (the
 * document's executionTimeout; TimeoutSeconds is only for delivery).
 */
int ssm_command_body(const char *instance_id, const char *const *argv,
                     size_t argc, int exec_timeout, struct buf *out);
int ssm_send_command(struct aws_client *, const char *instance_id,
                     const char *const *argv, size_t argc, int exec_timeout,
                     char command_id[static 64], struct aws_error *);
/* AWS_NOT_FOUND in err: InvocationDoesNotExist (normal right after). */
int ssm_get_invocation(struct aws_client *, const char *command_id,
                       const char *instance_id, struct ssm_invocation *,
                       struct aws_error *);
/* "<ec2.ssm_parameter_prefix>/<instance>/<slug>/<key>"; -1: bad key. */
int ssm_parameter_name(const struct config *, const char *slug, const char *key,
                       struct buf *);
/* A SecureString, tagged; an existing one is overwritten (keeping the
 * tags it was created with), or with `retag` made again with these. */
int ssm_put_parameter(struct aws_client *, const char *name, const char *value,
                      const struct aws_tag *, size_t, bool retag,
                      struct aws_error *);
int ssm_get_parameter(struct aws_client *, const char *name, struct buf *,
                      struct aws_error *);
/* Idempotent: a parameter already gone is success. */
int ssm_delete_parameter(struct aws_client *, const char *name,
                         struct aws_error *);
/* Deletes every parameter under `path` (recursively); count in *n. */
int ssm_delete_path(struct aws_client *, const char *path, size_t *n,
                    struct aws_error *);
/* The parameters under `path` (names only, DescribeParameters) in *n. */
int ssm_count_path(struct aws_client *, const char *path, size_t *n,
                   struct aws_error *);
/* Each name under `path` to `each` (-1 from it ends the walk). */
typedef int (*ssm_name_fn)(void *arg, const char *name);
int ssm_list_path(struct aws_client *, const char *path, ssm_name_fn each,
                  void *arg, size_t *n, struct aws_error *);

/* ---- ec2_compute.c: the `ec2` compute provider (compute_ec2) ----------
 *
 * The worker fetches and gates the commit as for `local` and puts the
 * gated compose.json into Parameter Store (SecureString: it may hold the
 * admin's secrets); the instance runs ec2_script_render's script, on its
 * first boot as user-data, later through SSM Run Command.
 */
struct json_object;

#define EC2_HOST_SCRIPT "/opt/ephemera/host/ephemera-host"

struct ec2_script {
	const char *host;     /* ephemera-host's path: EC2_HOST_SCRIPT */
	const char *aws;      /* the AWS CLI: "aws" */
	const char *instance; /* EPH_INSTANCE */
	const char *project;  /* EPH_PROJECT */
	const char *dir;      /* EPH_DIR on the instance */
	const char *source;   /* EPH_SOURCE: a clone URL, hostile */
	const char *sha;      /* EPH_SHA */
	const char *region;
	/* The parameters holding compose.json (ec2_compose_pack), in order. */
	const char *const *compose_parts;
	size_t ncompose_parts;
	/* The parameter holding the clone token, or NULL: none. */
	const char *token_param;
	/* The parameter holding the Cloudflare tunnel's token, written to
	 * <dir>/tunnel-token for its connector; NULL: none. */
	const char *tunnel_param;
	bool build;
	int exec_timeout; /* the script's limit, seconds; 0: EC2_EXEC_TIMEOUT */
};

/*
 * compose.json travels gzipped, then base64-encoded, split into
 * parameters of at most EC2_PART_MAX characters (the standard tier's
 * limit, 4 KB a value): "compose", then "compose-1", "compose-2"... A
 * 20-service file packs into about 1 KB; EC2_PARTS_MAX parts hold
 * hundreds of KB of compose file.
 */
#define EC2_PART_MAX 4096
#define EC2_PARTS_MAX 8
/* Pure: gzip, then base64 with no line breaks, of `len` bytes of text.
 * -1: zlib failed. */
int ec2_compose_pack(const char *text, size_t len, struct buf *out);

/*
 * Pure: the bash script that fetches the commit, reads compose.json's
 * parts from Parameter Store, unpacks them and runs `up`. Every value is
 * single-quoted (ssm_shell_quote), so a hostile one is never parsed. -1:
 * a value is missing.
 */
int ec2_script_render(const struct ec2_script *, struct buf *out);
/*
 * Pure: the user-data of a first boot. It runs the deploy script and keeps
 * its standard output, standard error and exit code beside the work dir
 * (<dir>.first.out, .err, .rc), so the deploy starts without waiting for
 * SSM and the worker still gets its result: ec2_result_render's command,
 * sent once the agent has registered, waits for them and reports them as
 * its own.
 */
int ec2_first_render(const struct ec2_script *, struct buf *out);
int ec2_result_render(const struct ec2_script *, struct buf *out);
/* Pure: the command that prints the samples of one metric family from a
 * service's metrics page (ephemera-host metrics); -1: a value missing. */
struct ec2_metrics_ask {
	const char *host, *instance, *project; /* as in ec2_script */
	const char *service, *family;
	int port;
};
int ec2_metrics_render(const struct ec2_metrics_ask *, struct buf *out);
/*
 * Pure: the services JSON array `up` printed as its last line of
 * standard output (SSM's StandardOutputContent), or NULL. Caller puts.
 */
struct json_object *ec2_services_parse(const char *out, size_t len);
/* "<instance>-<env id>-<build id>": a crashed launch retried with the
 * same build sends the same ClientToken; a later build a new one. */
void ec2_client_token(const char *instance, uint64_t env_id, uint64_t build_id,
                      char out[static 64]);

/* ---- aws_outcome.c: what a failed call means for the job (pure) -------- */

/* AWS may answer InvalidInstanceID.NotFound this long after a launch. */
#define AWS_NOT_FOUND_GRACE 120
/* Capacity tends to come back within minutes, not seconds. */
#define AWS_CAPACITY_RETRY_MS (5 * 60 * 1000)

struct job_result;

/*
 * Throttling, no answer and missing credentials: rescheduled with the
 * queue's backoff (never a sleeping worker); capacity after every
 * fallback: retried in minutes; not found within `AWS_NOT_FOUND_GRACE`
 * seconds of the launch: retried soon; a denied call: the environment
 * fails, naming the permission the policy lacks; anything else fails
 * with AWS's code and message. `since_launch` < 0: no launch just now.
 */
void aws_outcome(const struct aws_error *, int attempt, double since_launch,
                 int64_t base_ms, int64_t cap_ms, uint64_t rnd,
                 struct job_result *);

#endif
