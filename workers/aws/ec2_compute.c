/*
 * ec2_compute.c - the `ec2` compute provider: one EC2 instance per
 * environment, found by its tags (ephemera:instance, ephemera:env), driven
 * without SSH.
 *
 * A deploy fetches and gates the commit on this machine exactly as the
 * local provider does (deploy_gate), puts the gated compose.json into
 * Parameter Store, then: no instance yet → RunInstances with the deploy as
 * user-data (it starts at boot, not waiting for SSM registration; its
 * result is read through Run Command once the agent registers); a stopped
 * one → StartInstances, then Run Command; a running one → Run Command
 * (AWS-RunShellScript running host/ephemera-host), polled until final.
 * The script is the same both ways (ec2_script_render), and every value
 * in it is quoted.
 *
 * A failed AWS call becomes the deploy's outcome through aws_outcome:
 * throttling is retried with backoff, a denied call fails the environment
 * naming the permission.
 */
#include <json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "../workers.h"
#include "aws.h"

#define EC2_EXEC_TIMEOUT 900
#define EC2_POLL_MS 2000
/* cloudflared's image runs as this user (cloudflare.h's CF_CONNECTOR_UID). */
#define EC2_CONNECTOR_UID 65532
/* An instance's SSM agent registers within a minute or two of boot. */
#define EC2_REGISTER_TIMEOUT 300
/*
 * GetCommandInvocation keeps the FIRST 8,000 characters of a command's
 * stderr (24,000 of stdout). A build log's reason is at its end, so a
 * command sends only its last bytes of stderr, within that limit.
 */
#define EC2_STDERR_TAIL 7000

/* ---- the pure part ---------------------------------------------------- */

static void
script_export(struct buf *b, const char *name, const char *value)
{
	buf_printf(b, "export %s=", name);
	ssm_shell_quote(b, value);
	buf_putc(b, '\n');
}

/*
 * `until CONDITION; do` wait and ask again: a first boot may come before
 * the worker has written and tagged a parameter with the instance's ARN
 * (which the instance policy asks for). Five minutes, then the deploy
 * fails.
 */
static void
script_until(struct buf *out, const char *condition)
{
	buf_printf(out,
	           "n=0\n"
	           "until %s; do\n"
	           "\tn=$((n + 1))\n"
	           "\t[ \"$n\" -lt 60 ] || exit 1\n"
	           "\tsleep 5\n"
	           "done\n",
	           condition);
}

/* `var`, a shell variable (not exported), gets the value of `param`. */
static void
script_param_read(struct buf *out, const char *var, const char *param)
{
	struct buf cond = BUF_INIT;

	buf_puts(out, "t=");
	ssm_shell_quote(out, param);
	buf_putc(out, '\n');
	buf_printf(&cond, "%s=$(param_get \"$t\")", var);
	script_until(out, buf_str(&cond));
	buf_free(&cond);
}

int
ec2_script_render(const struct ec2_script *s, struct buf *out)
{
	size_t i;

	if (!s->host || !s->aws || !s->instance || !s->project || !s->dir ||
	    !s->source || !s->sha || !s->region || s->ncompose_parts == 0)
		return -1;
	for (i = 0; i < s->ncompose_parts; i++)
		if (s->compose_parts[i] == NULL)
			return -1;
	buf_puts(out, "#!/bin/bash\n"
	              "# Ephemera: one deploy through host/ephemera-host. "
	              "Every value is\n# single-quoted: none is parsed by "
	              "the shell.\n"
	              "set -euo pipefail\n"
	              "umask 077\n");
	script_export(out, "EPH_INSTANCE", s->instance);
	script_export(out, "EPH_PROJECT", s->project);
	script_export(out, "EPH_DIR", s->dir);
	script_export(out, "EPH_SOURCE", s->source);
	script_export(out, "EPH_SHA", s->sha);
	script_export(out, "EPH_BUILD", s->build ? "1" : "0");
	/* One deploy of the environment at a time: a worker killed while its
	 * command runs leaves that command running here, and the next
	 * worker's must not interleave with it (fetch, compose.json, up).
	 * fd 8 is inherited by `up` and compose, so it is held to the end. */
	buf_puts(out, "mkdir -p \"${EPH_DIR%/*}\"\n"
	              "exec 8>\"$EPH_DIR.lock\"\n"
	              "flock -w 600 8 || { echo \"another deploy of "
	              "$EPH_PROJECT holds its lock\" >&2; exit 1; }\n");
	/* Parameters are read with the instance's own role: what they hold
	 * never travels in user-data or a command. */
	buf_puts(out, "param_get() {\n\t");
	ssm_shell_quote(out, s->aws);
	buf_puts(out, " ssm get-parameter --with-decryption --region ");
	ssm_shell_quote(out, s->region);
	buf_puts(out, " --name \"$1\" --query Parameter.Value --output text\n"
	              "}\n");
	if (s->token_param != NULL) {
		/* The clone token, for `fetch` alone (in its environment,
		 * never in an argument). */
		script_param_read(out, "EPH_GIT_TOKEN", s->token_param);
		buf_puts(out, "EPH_GIT_TOKEN=$EPH_GIT_TOKEN ");
	}
	ssm_shell_quote(out, s->host);
	buf_puts(out, " fetch\n"
	              "unset EPH_GIT_TOKEN\n");
	/* compose.json is the gate's output. Its parts are named here, so a
	 * longer file's leftover parts are never read. */
	buf_puts(out, "compose_get() {\n\tfor p in");
	for (i = 0; i < s->ncompose_parts; i++) {
		buf_putc(out, ' ');
		ssm_shell_quote(out, s->compose_parts[i]);
	}
	buf_puts(out, "; do\n"
	              "\t\tparam_get \"$p\" || return 1\n"
	              "\tdone\n"
	              "}\n");
	if (s->tunnel_param != NULL) {
		/* The connector (uid 65532) reads it from a file mounted
		 * read-only: never its argv or environment. */
		script_param_read(out, "tok", s->tunnel_param);
		buf_printf(
		        out,
		        "printf '%%s' \"$tok\" >\"$EPH_DIR/tunnel-token.new\"\n"
		        "unset tok\n"
		        "chmod 0400 \"$EPH_DIR/tunnel-token.new\"\n"
		        "chown %d:%d \"$EPH_DIR/tunnel-token.new\" 2>/dev/null "
		        "|| true\n"
		        "mv -f \"$EPH_DIR/tunnel-token.new\" "
		        "\"$EPH_DIR/tunnel-token\"\n",
		        EC2_CONNECTOR_UID, EC2_CONNECTOR_UID);
	}
	script_until(out, "compose_get >\"$EPH_DIR/compose.json.gz.b64\"");
	buf_puts(out, "base64 -d <\"$EPH_DIR/compose.json.gz.b64\" | gunzip "
	              ">\"$EPH_DIR/compose.json\"\n"
	              "rm -f \"$EPH_DIR/compose.json.gz.b64\"\n"
	              "exec ");
	ssm_shell_quote(out, s->host);
	buf_puts(out, " up\n");
	return out->failed ? -1 : 0;
}

int
ec2_first_render(const struct ec2_script *s, struct buf *out)
{
	struct buf script = BUF_INIT;

	if (ec2_script_render(s, &script) == -1) {
		buf_free(&script);
		return -1;
	}
	buf_puts(out, "#!/bin/bash\n"
	              "# Ephemera: the first deploy, from user-data. Its "
	              "result is kept for\n# the worker, which reads it "
	              "through Run Command.\n"
	              "umask 077\n"
	              "r=");
	ssm_shell_quote(out, s->dir);
	buf_puts(out, ".first\n"
	              "mkdir -p \"${r%/*}\"\n"
	              "rm -f \"$r.rc\"\n"
	              "/bin/bash -c ");
	ssm_shell_quote(out, buf_str(&script));
	buf_puts(out, " >\"$r.out\" 2>\"$r.err\"\n"
	              "echo \"$?\" >\"$r.rc.new\"\n"
	              "mv \"$r.rc.new\" \"$r.rc\"\n");
	buf_free(&script);
	return out->failed ? -1 : 0;
}

/*
 * What a command may take inside SSM's limit: it stops itself before the
 * agent kills it, whose kill would take the log with it.
 */
static int
inner_limit(int limit)
{
	return limit > 120 ? limit - 30 : limit * 3 / 4;
}

int
ec2_metrics_render(const struct ec2_metrics_ask *m, struct buf *out)
{
	char port[8];

	if (!m->host || !m->instance || !m->project || !m->service ||
	    !m->family || m->port <= 0 || m->port > 65535)
		return -1;
	snprintf(port, sizeof(port), "%d", m->port);
	buf_puts(out, "#!/bin/bash\n"
	              "# Ephemera: one metric family of a service's metrics "
	              "page.\n");
	script_export(out, "EPH_INSTANCE", m->instance);
	script_export(out, "EPH_PROJECT", m->project);
	script_export(out, "EPH_SERVICE", m->service);
	script_export(out, "EPH_PORT", port);
	script_export(out, "EPH_METRIC", m->family);
	buf_puts(out, "exec ");
	ssm_shell_quote(out, m->host);
	buf_puts(out, " metrics\n");
	return out->failed ? -1 : 0;
}

int
ec2_result_render(const struct ec2_script *s, struct buf *out)
{
	int limit = inner_limit(s->exec_timeout > 0 ? s->exec_timeout
	                                            : EC2_EXEC_TIMEOUT);

	if (s->dir == NULL)
		return -1;
	buf_puts(out, "#!/bin/bash\n"
	              "# Ephemera: the first deploy's result, as if this "
	              "command had run it.\n"
	              "set -u\n"
	              "r=");
	ssm_shell_quote(out, s->dir);
	/* Within the command's own time limit (exec_timeout). */
	buf_printf(out,
	           ".first\n"
	           "n=0\n"
	           "until [ -f \"$r.rc\" ]; do\n"
	           "\tn=$((n + 1))\n"
	           "\tif [ \"$n\" -gt %d ]; then\n"
	           "\t\techo \"the first deploy did not end\" >&2\n"
	           "\t\texit 124\n"
	           "\tfi\n"
	           "\tsleep 1\n"
	           "done\n"
	           "tail -c %d \"$r.err\" >&2\n"
	           "cat \"$r.out\"\n"
	           "exit \"$(cat \"$r.rc\")\"\n",
	           limit - 5, EC2_STDERR_TAIL);
	return out->failed ? -1 : 0;
}

int
ec2_compose_pack(const char *text, size_t len, struct buf *out)
{
	z_stream z;
	unsigned char *gz, *enc;
	size_t cap, gzlen, b64;
	int rc;

	memset(&z, 0, sizeof(z));
	/* 15 + 16: a gzip wrapper, which gunzip(1) on the instance reads. */
	if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
	                 Z_DEFAULT_STRATEGY) != Z_OK)
		return -1;
	cap = deflateBound(&z, (uLong)len);
	gz = xmalloc(cap);
	z.next_in = (Bytef *)(uintptr_t)text;
	z.avail_in = (uInt)len;
	z.next_out = gz;
	z.avail_out = (uInt)cap;
	rc = deflate(&z, Z_FINISH);
	gzlen = cap - z.avail_out;
	deflateEnd(&z);
	if (rc != Z_STREAM_END) {
		free(gz);
		return -1;
	}
	b64 = 4 * ((gzlen + 2) / 3);
	enc = xmalloc(b64 + 1);
	EVP_EncodeBlock(enc, gz, (int)gzlen);
	buf_append(out, enc, b64);
	/* It may hold the admin's secrets. */
	OPENSSL_cleanse(gz, cap);
	OPENSSL_cleanse(enc, b64);
	free(gz);
	free(enc);
	return out->failed ? -1 : 0;
}

struct json_object *
ec2_services_parse(const char *out, size_t len)
{
	struct json_object *arr;
	struct buf line = BUF_INIT;
	size_t end = len, start;

	/* The last non-empty line: `up` prints the JSON last. */
	while (end > 0 && (out[end - 1] == '\n' || out[end - 1] == '\r' ||
	                   out[end - 1] == ' '))
		end--;
	start = end;
	while (start > 0 && out[start - 1] != '\n')
		start--;
	buf_append(&line, out + start, end - start);
	arr = end > start ? json_tokener_parse(buf_str(&line)) : NULL;
	buf_free(&line);
	if (arr != NULL && !json_object_is_type(arr, json_type_array)) {
		json_object_put(arr);
		arr = NULL;
	}
	return arr;
}

void
ec2_client_token(const char *instance, uint64_t env_id, uint64_t build_id,
                 char out[static 64])
{
	snprintf(out, 64, "%.15s-%llu-%llu", instance,
	         (unsigned long long)env_id, (unsigned long long)build_id);
}

/*
 * Run Command's line: runs the script given as $0 within inner_limit()
 * and sends only its stderr's tail (EC2_STDERR_TAIL).
 */
static void
command_wrap(struct buf *out, int limit)
{
	int inner = inner_limit(limit);

	buf_printf(out,
	           "e=$(mktemp) || exit 1\n"
	           "timeout -k 10 %d /bin/bash -c \"$0\" 2>\"$e\"\n"
	           "rc=$?\n"
	           "tail -c %d \"$e\" >&2\n"
	           "rm -f \"$e\"\n"
	           "[ \"$rc\" -ne 124 ] || echo \"ephemera: stopped after %d "
	           "s\" >&2\n"
	           "exit \"$rc\"\n",
	           inner, EC2_STDERR_TAIL, inner);
}

/* ---- the shell: AWS calls -------------------------------------------- */

static void
env_tags(const struct config *cfg, const char *slug, struct aws_tag tags[2])
{
	tags[0] = (struct aws_tag){"ephemera:instance", local_instance(cfg)};
	tags[1] = (struct aws_tag){"ephemera:env", slug};
}

/* "<prefix>/<instance>/<slug>/": everything of the environment. */
static int
param_path(const struct config *cfg, const char *slug, struct buf *out)
{
	if (ssm_parameter_name(cfg, slug, NULL, out) == -1)
		return -1;
	buf_putc(out, '/');
	return 0;
}

static bool
state_is(const struct ec2_instance *in, const char *a, const char *b)
{
	return strcmp(in->state, a) == 0 || (b && strcmp(in->state, b) == 0);
}

/* The environment's live instances (not terminated). */
static int
instances_of(struct aws_client *c, const char *slug, struct ec2_instances *l,
             struct buf *why)
{
	struct aws_tag tags[2];
	struct aws_error err;

	env_tags(c->cfg, slug, tags);
	if (ec2_describe_instances(c, tags, NELEM(tags), l, &err) == 0)
		return 0;
	if (why)
		buf_printf(why, "ec2 DescribeInstances: %s %s", err.code,
		           err.message);
	return -1;
}

static int
ec2_leftovers(struct worker *w, const struct job *job, const char *slug,
              bool *any)
{
	struct aws_client c;
	struct ec2_instances l = {0};
	struct buf path = BUF_INIT;
	struct aws_error err;
	size_t n = 0;
	int rc = -1;

	(void)job;
	aws_client_init(&c, w->cfg);
	if (instances_of(&c, slug, &l, NULL) == -1)
		goto out;
	*any = l.n > 0;
	if (!*any) {
		if (param_path(w->cfg, slug, &path) == -1 ||
		    ssm_count_path(&c, buf_str(&path), &n, &err) == -1)
			goto out;
		*any = n > 0;
	}
	rc = 0;
out:
	ec2_instances_free(&l);
	buf_free(&path);
	aws_client_free(&c);
	return rc;
}

/*
 * Running (or on its way there) from EC2; the work dir is the gate's
 * checkout on this machine. Everything should be gone: any instance not
 * terminated, or any parameter, is left over.
 */
static int
ec2_observe(struct worker *w, const struct job *job, const struct env *e,
            struct facts *f)
{
	struct aws_client c;
	struct ec2_instances l = {0};
	size_t i;
	int rc = -1;

	f->workdir = local_workdir_ours(w->cfg, e->slug, 0);
	if (strcmp(e->desired, "destroyed") == 0)
		return ec2_leftovers(w, job, e->slug, &f->leftover);
	aws_client_init(&c, w->cfg);
	if (instances_of(&c, e->slug, &l, NULL) == -1)
		goto out;
	for (i = 0; i < l.n; i++)
		if (state_is(&l.v[i], "running", "pending"))
			f->running = true;
	f->leftover = l.n > 0;
	rc = 0;
out:
	ec2_instances_free(&l);
	aws_client_free(&c);
	return rc;
}

/* An AWS error as the deploy's outcome, with its reason in d->why. */
static enum deploy_rc
deploy_aws_fail(struct deploy *d, const struct aws_error *err,
                double since_launch)
{
	struct job_result res = {.outcome = JOB_DONE, .error = BUF_INIT};
	enum deploy_rc rc;

	aws_outcome(err, d->job ? d->job->attempts : 1, since_launch,
	            d->w->cfg->workers_backoff_base_ms,
	            d->w->cfg->workers_backoff_cap_ms, backoff_random(), &res);
	buf_puts(&d->why, buf_str(&res.error));
	rc = res.outcome == JOB_RETRY ? DEPLOY_RETRY : DEPLOY_FAILED;
	if (rc == DEPLOY_RETRY)
		d->retry_ms = res.retry_after_ms;
	buf_free(&res.error);
	return rc;
}

static char *
file_read(const char *path)
{
	struct buf b = BUF_INIT;
	char chunk[4096];
	size_t n;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return NULL;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, n);
	fclose(f);
	explicit_bzero(chunk, sizeof(chunk));
	return b.data ? buf_detach(&b) : xstrdup("");
}

/* compose.json, packed and cut into its parameters (EC2_PART_MAX). */
struct parts {
	struct buf packed; /* may hold secrets: wiped */
	size_t n;
	struct buf names[EC2_PARTS_MAX];
	const char *v[EC2_PARTS_MAX];
};

static void
parts_init(struct parts *p)
{
	size_t i;

	memset(p, 0, sizeof(*p));
	p->packed = (struct buf)BUF_INIT;
	for (i = 0; i < EC2_PARTS_MAX; i++)
		p->names[i] = (struct buf)BUF_INIT;
}

static void
parts_free(struct parts *p)
{
	size_t i;

	if (p->packed.data)
		OPENSSL_cleanse(p->packed.data, p->packed.len);
	buf_free(&p->packed);
	for (i = 0; i < EC2_PARTS_MAX; i++)
		buf_free(&p->names[i]);
}

static enum deploy_rc
parts_make(struct deploy *d, struct parts *p)
{
	struct buf path = BUF_INIT;
	char key[32], *text;
	size_t i, len;
	int rc;

	buf_printf(&path, "%s/compose.json", d->dir);
	text = file_read(buf_str(&path));
	buf_free(&path);
	if (text == NULL) {
		buf_puts(&d->why, "the gated compose.json is missing");
		return DEPLOY_RETRY;
	}
	len = strlen(text);
	rc = ec2_compose_pack(text, len, &p->packed);
	OPENSSL_cleanse(text, len);
	free(text);
	if (rc == -1) {
		buf_puts(&d->why, "compose.json could not be compressed");
		return DEPLOY_RETRY;
	}
	p->n = (p->packed.len + EC2_PART_MAX - 1) / EC2_PART_MAX;
	if (p->n > EC2_PARTS_MAX) {
		buf_printf(&d->why,
		           "the gated compose file packs into %zu bytes, over "
		           "the %d parameters of %d bytes it may use",
		           p->packed.len, EC2_PARTS_MAX, EC2_PART_MAX);
		return DEPLOY_FAILED;
	}
	for (i = 0; i < p->n; i++) {
		if (i == 0)
			snprintf(key, sizeof(key), "compose");
		else
			snprintf(key, sizeof(key), "compose-%zu", i);
		if (ssm_parameter_name(d->w->cfg, d->e->slug, key,
		                       &p->names[i]) == -1) {
			buf_puts(&d->why, "environments.instance or the slug "
			                  "cannot name a parameter");
			return DEPLOY_FAILED;
		}
		p->v[i] = buf_str(&p->names[i]);
	}
	return DEPLOY_OK;
}

/* A secret for the instance: its parameter's name (NULL: none) and value. */
struct ec2_secret {
	const char *name, *value;
};

/* What the instance reads besides compose.json. */
struct secrets {
	struct buf clone, tunnel; /* wiped */
	struct buf clone_name, tunnel_name;
	struct ec2_secret v[2];
};

static void
secrets_init(struct secrets *x)
{
	memset(x, 0, sizeof(*x));
	x->clone = x->tunnel = (struct buf)BUF_INIT;
	x->clone_name = x->tunnel_name = (struct buf)BUF_INIT;
}

static void
secrets_free(struct secrets *x)
{
	if (x->clone.data)
		OPENSSL_cleanse(x->clone.data, x->clone.len);
	if (x->tunnel.data)
		OPENSSL_cleanse(x->tunnel.data, x->tunnel.len);
	buf_free(&x->clone);
	buf_free(&x->tunnel);
	buf_free(&x->clone_name);
	buf_free(&x->tunnel_name);
}

/*
 * The clone token (GitHub repositories) and the tunnel's token (the
 * Cloudflare exposure wrote it into the work dir here, and mounted
 * <host_dir>/tunnel-token into its connector), each for a parameter.
 */
static enum deploy_rc
secrets_make(struct deploy *d, struct secrets *x)
{
	struct buf path = BUF_INIT;
	enum deploy_rc rc;
	char *text;

	if ((rc = deploy_clone_token(d, &x->clone)) != DEPLOY_OK)
		return rc;
	buf_printf(&path, "%s/tunnel-token", d->dir);
	text = file_read(buf_str(&path));
	buf_free(&path);
	if (text != NULL) {
		buf_puts(&x->tunnel, text);
		OPENSSL_cleanse(text, strlen(text));
		free(text);
	}
	if ((x->clone.len > 0 &&
	     ssm_parameter_name(d->w->cfg, d->e->slug, "clone-token",
	                        &x->clone_name) == -1) ||
	    (x->tunnel.len > 0 &&
	     ssm_parameter_name(d->w->cfg, d->e->slug, "tunnel-token",
	                        &x->tunnel_name) == -1)) {
		buf_puts(&d->why, "the slug cannot name a parameter");
		return DEPLOY_FAILED;
	}
	x->v[0] = (struct ec2_secret){x->clone.len > 0 ? buf_str(&x->clone_name)
	                                               : NULL,
	                              buf_str(&x->clone)};
	x->v[1] = (struct ec2_secret){
	        x->tunnel.len > 0 ? buf_str(&x->tunnel_name) : NULL,
	        buf_str(&x->tunnel)};
	return DEPLOY_OK;
}

/*
 * compose.json's parts, and the secrets (clone and tunnel tokens), into
 * Parameter Store (SecureString: they hold secrets), tagged with the
 * instance's ARN: the instance policy lets an instance read only the
 * parameters that carry its own ARN. An overwrite keeps a parameter's
 * tags, so for a newly launched instance (one that replaced another)
 * they are made again.
 */
static enum deploy_rc
step_ship(struct deploy *d, struct aws_client *c, const struct parts *p,
          const struct ec2_secret *secrets, size_t nsecrets,
          const struct ec2_instance *in, bool launched)
{
	struct aws_tag tags[3];
	struct buf arn = BUF_INIT, value = BUF_INIT;
	struct aws_error err;
	enum deploy_rc rc = DEPLOY_OK;
	size_t i, at;

	env_tags(d->w->cfg, d->e->slug, tags);
	buf_printf(&arn, "arn:aws:ec2:%s:%s:instance/%s", d->w->cfg->aws_region,
	           in->owner_id, in->id);
	tags[2] = (struct aws_tag){"ephemera:instance-arn", buf_str(&arn)};
	for (i = 0; i < p->n && rc == DEPLOY_OK; i++) {
		at = i * EC2_PART_MAX;
		buf_reset(&value);
		buf_append(&value, p->packed.data + at,
		           p->packed.len - at < EC2_PART_MAX
		                   ? p->packed.len - at
		                   : EC2_PART_MAX);
		if (ssm_put_parameter(c, p->v[i], buf_str(&value), tags,
		                      NELEM(tags), launched, &err) == -1)
			rc = deploy_aws_fail(d, &err, -1);
	}
	for (i = 0; i < nsecrets && rc == DEPLOY_OK; i++)
		if (secrets[i].name != NULL &&
		    ssm_put_parameter(c, secrets[i].name, secrets[i].value,
		                      tags, NELEM(tags), launched, &err) == -1)
			rc = deploy_aws_fail(d, &err, -1);
	if (value.data)
		OPENSSL_cleanse(value.data, value.len);
	buf_free(&value);
	buf_free(&arn);
	return rc;
}

/* The instance, found by its tags or launched with the deploy as its
 * user-data; a stopped one is started. */
static enum deploy_rc
step_instance(struct deploy *d, struct aws_client *c, const char *script,
              struct ec2_instance *in, bool *launched)
{
	const struct config *cfg = d->w->cfg;
	struct aws_tag tags[2];
	struct ec2_launch l = {0};
	struct aws_error err;
	char token[64];

	env_tags(cfg, d->e->slug, tags);
	ec2_client_token(local_instance(cfg), d->e->id, d->b.id, token);
	l.ami = cfg->ec2_ami;
	l.launch_template = cfg->ec2_launch_template;
	l.security_group_ids = cfg->ec2_security_group_ids;
	l.instance_profile = cfg->ec2_instance_profile;
	l.user_data = script;
	l.tags = tags;
	l.ntags = NELEM(tags);
	l.client_token = token;
	if (ec2_find_or_launch(c, &l, cfg->ec2_instance_types,
	                       cfg->ec2_subnet_ids, local_instance(cfg),
	                       d->e->slug, in, launched, &err) == -1)
		return deploy_aws_fail(d, &err, -1);
	if (state_is(in, "stopping", NULL)) {
		buf_printf(&d->why, "instance %s is still stopping", in->id);
		return DEPLOY_RETRY;
	}
	if (state_is(in, "stopped", NULL)) {
		if (ec2_instance_action(c, "StartInstances", in->id, &err) ==
		    -1)
			return deploy_aws_fail(d, &err, -1);
		snprintf(in->state, sizeof(in->state), "pending");
	}
	/* The run opened at the first type's price; RunInstances may have
	 * fallen back to another (or an adopted instance be of one). Every
	 * deploy sets it, so a retry after a failed write does too. */
	if (in->type[0] != '\0' &&
	    env_run_reprice(d->w->db, d->e->id,
	                    price_hourly(cfg, "ec2", in->type)) == -1) {
		buf_puts(&d->why, "recording the instance's price failed");
		return DEPLOY_RETRY;
	}
	log_info("ec2_instance",
	         "env=%llu instance_id=%s type=%s state=%s launched=%d",
	         (unsigned long long)d->e->id, in->id, log_q(in->type),
	         in->state, *launched);
	return DEPLOY_OK;
}

/* Sleeps one poll, keeping the job's lease. -1: the lease was lost. */
static int
poll_wait(struct deploy *d)
{
	if ((d->job && job_heartbeat(d->w, d->job) == -1) ||
	    worker_sleep(d->w, EC2_POLL_MS) == -1) {
		buf_puts(&d->why, "the job's lease was lost");
		return -1;
	}
	return 0;
}

/*
 * Run Command with the script, polled until final. An instance whose SSM
 * agent has not registered yet is waited for until `register_until`
 * (now_mono), then left to the queue's retry.
 */
static enum deploy_rc
step_command(struct deploy *d, struct aws_client *c, const char *script,
             const struct ec2_instance *in, double register_until,
             struct json_object **services)
{
	struct buf wrap = BUF_INIT;
	const char *argv[] = {"/bin/bash", "-c", NULL, script};
	struct ssm_invocation v;
	struct json_object *arr = NULL;
	struct aws_error err;
	char command_id[64], *text = NULL;
	int limit = (int)d->w->cfg->ec2_command_timeout_seconds;
	double until = now_mono() + limit + 120;
	enum deploy_rc rc = DEPLOY_RETRY;

	command_wrap(&wrap, limit);
	argv[2] = buf_str(&wrap);
	ssm_invocation_init(&v);
	while (ssm_send_command(c, in->id, argv, NELEM(argv), limit, command_id,
	                        &err) == -1) {
		if (strcmp(err.code, "InvalidInstanceId") != 0) {
			rc = deploy_aws_fail(d, &err, -1);
			goto out;
		}
		if (now_mono() < register_until) {
			if (poll_wait(d) == -1)
				goto out;
			continue;
		}
		/* Just started: its SSM agent has not registered yet (or,
		 * retried until the last attempt, never will: no role). */
		buf_printf(&d->why,
		           "the SSM agent of %s is not registered yet "
		           "(InvalidInstanceId); retrying",
		           in->id);
		d->retry_ms = backoff_delay_ms(d->job ? d->job->attempts : 1,
		                               5000, 60000, backoff_random());
		goto out;
	}
	for (;;) {
		if (ssm_get_invocation(c, command_id, in->id, &v, &err) == -1 &&
		    err.kind != AWS_NOT_FOUND) {
			rc = deploy_aws_fail(d, &err, -1);
			goto out;
		}
		if (err.kind == AWS_OK && ssm_status_final(v.status))
			break;
		if (now_mono() > until) {
			buf_printf(&d->why, "command %s did not finish",
			           command_id);
			goto out;
		}
		if (poll_wait(d) == -1)
			goto out;
		buf_reset(&v.out);
		buf_reset(&v.err);
	}
	deploy_log_append(d, v.err.data, v.err.len);
	log_info("ec2_command", "env=%llu command_id=%s status=%s code=%d",
	         (unsigned long long)d->e->id, command_id,
	         ssm_status_name(v.status), v.response_code);
	/* 124: timeout(1)'s, ours (command_wrap, or the first deploy's
	 * result waiting in vain). */
	if (v.exec_timed_out ||
	    (v.status == SSM_FAILED && v.response_code == 124)) {
		/* A hang is the app's (a build or a health check that never
		 * ends): retrying would hang again. */
		buf_printf(&d->why,
		           "the deploy on %s did not finish within %d s "
		           "(ec2.command_timeout_seconds)",
		           in->id, limit);
		rc = DEPLOY_FAILED;
		goto out;
	}
	if (v.status != SSM_SUCCESS) {
		buf_printf(&d->why, "the deploy on %s ended %s (exit %d)",
		           in->id, ssm_status_name(v.status), v.response_code);
		/* The script's own failure is the app's; delivery is ours. */
		rc = v.status == SSM_FAILED ? DEPLOY_FAILED : DEPLOY_RETRY;
		goto out;
	}
	arr = ec2_services_parse(v.out.data ? v.out.data : "", v.out.len);
	if (arr == NULL) {
		buf_puts(&d->why, "the host did not report its services");
		rc = DEPLOY_FAILED;
		goto out;
	}
	text = xstrdup(
	        json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN));
	rc = deploy_addresses_take(d, text, services) == 0 ? DEPLOY_OK
	                                                   : DEPLOY_FAILED;
out:
	json_object_put(arr);
	free(text);
	ssm_invocation_free(&v);
	buf_free(&wrap);
	return rc;
}

/*
 * A first deploy runs from user-data, started at boot without waiting for
 * SSM; its result is then read through Run Command (ec2_result_render)
 * once the agent registers, which it does while the deploy runs.
 */
static enum deploy_rc
step_up(struct deploy *d, struct aws_client *c, const char *script,
        const char *result, const struct ec2_instance *in, bool launched,
        struct json_object **services)
{
	/* Started from stopped just now: its agent registers again after
	 * the boot, as after a launch. */
	if (!launched)
		return step_command(d, c, script, in,
		                    state_is(in, "pending", NULL)
		                            ? now_mono() + EC2_REGISTER_TIMEOUT
		                            : 0,
		                    services);
	buf_printf(&d->log, "launched %s; the deploy runs from its user-data\n",
	           in->id);
	return step_command(d, c, result, in, now_mono() + EC2_REGISTER_TIMEOUT,
	                    services);
}

static enum deploy_rc
ec2_deploy(struct deploy *d, struct json_object **services)
{
	const struct config *cfg = d->w->cfg;
	struct aws_client c;
	struct ec2_instance in;
	struct ec2_script s = {0};
	struct parts parts;
	struct secrets x;
	struct buf script = BUF_INIT, first = BUF_INIT, result = BUF_INIT;
	struct buf dir = BUF_INIT;
	char project[80];
	bool launched = false;
	enum deploy_rc rc;

	buf_printf(&dir, "%s/%s", cfg->ec2_envs_dir, d->e->slug);
	d->host_dir = buf_str(&dir);
	aws_client_init(&c, cfg);
	memset(&in, 0, sizeof(in));
	parts_init(&parts);
	secrets_init(&x);
	if ((rc = deploy_gate(d)) != DEPLOY_OK)
		goto out;
	/* Before any AWS call: a file too big to ship launches nothing. */
	if ((rc = parts_make(d, &parts)) != DEPLOY_OK ||
	    (rc = secrets_make(d, &x)) != DEPLOY_OK)
		goto out;
	local_project_name(cfg, d->e->slug, project);
	s.host = EC2_HOST_SCRIPT;
	s.aws = "aws";
	s.instance = local_instance(cfg);
	s.project = project;
	s.dir = buf_str(&dir);
	s.source = d->admin && d->admin->source ? d->admin->source
	                                        : d->e->clone_url;
	s.sha = d->e->desired_sha;
	s.region = cfg->aws_region;
	s.compose_parts = parts.v;
	s.ncompose_parts = parts.n;
	s.token_param = x.v[0].name;
	s.tunnel_param = x.v[1].name;
	s.build = d->rs.build;
	s.exec_timeout = (int)cfg->ec2_command_timeout_seconds;
	if (s.source == NULL || ec2_script_render(&s, &script) == -1 ||
	    ec2_first_render(&s, &first) == -1 ||
	    ec2_result_render(&s, &result) == -1) {
		buf_puts(&d->why, "no source to fetch on the instance");
		rc = DEPLOY_FAILED;
		goto out;
	}
	if (build_step_begin(d->w->db, &d->b, "instance") == -1) {
		rc = DEPLOY_RETRY;
		goto out;
	}
	rc = step_instance(d, &c, buf_str(&first), &in, &launched);
	if ((rc = step_run(d, "instance", rc)) != DEPLOY_OK)
		goto out;
	if (build_step_begin(d->w->db, &d->b, "ship") == -1) {
		rc = DEPLOY_RETRY;
		goto out;
	}
	rc = step_ship(d, &c, &parts, x.v, NELEM(x.v), &in, launched);
	if ((rc = step_run(d, "ship", rc)) != DEPLOY_OK)
		goto out;
	if (build_step_begin(d->w->db, &d->b, "up") == -1) {
		rc = DEPLOY_RETRY;
		goto out;
	}
	rc = step_run(d, "up",
	              step_up(d, &c, buf_str(&script), buf_str(&result), &in,
	                      launched, services));
out:
	parts_free(&parts);
	buf_free(&script);
	buf_free(&first);
	buf_free(&result);
	secrets_free(&x);
	d->host_dir = NULL;
	buf_free(&dir);
	aws_client_free(&c);
	return rc;
}

/* StopInstances on each running one: the volumes (and the app's data)
 * stay. */
static int
ec2_stop(struct worker *w, const struct job *job, const char *slug,
         struct buf *why)
{
	struct aws_client c;
	struct ec2_instances l = {0};
	struct aws_error err;
	size_t i;
	int rc = -1;

	(void)job;
	aws_client_init(&c, w->cfg);
	if (instances_of(&c, slug, &l, why) == -1)
		goto out;
	for (i = 0; i < l.n; i++) {
		if (!state_is(&l.v[i], "running", "pending"))
			continue;
		if (ec2_instance_action(&c, "StopInstances", l.v[i].id, &err) ==
		    -1) {
			if (why)
				buf_printf(why, "ec2 StopInstances: %s %s",
				           err.code, err.message);
			goto out;
		}
	}
	rc = 0;
out:
	ec2_instances_free(&l);
	aws_client_free(&c);
	return rc;
}

/* The gate's checkout on this machine (`forget`: no Docker call, so a
 * control plane without Docker can serve ec2 environments). */
static int
checkout_remove(struct worker *w, const struct job *job, const char *slug,
                struct buf *why)
{
	struct host_call c;
	struct proc p;
	char project[80];
	char *dir;
	int rc;

	if (!local_workdir_ours(w->cfg, slug, 0))
		return 0;
	dir = local_env_dir(w->cfg, slug);
	local_project_name(w->cfg, slug, project);
	host_call_init(&c, "forget", project, dir);
	proc_init(&p);
	rc = local_host_run(w, job, &c, &p);
	if (rc == -1 && why)
		buf_printf(why, "removing the checkout failed: %s",
		           buf_str(&p.err));
	proc_free(&p);
	free(dir);
	return rc;
}

/* How long a reported destroy waits for its instances to be terminated
 * and their volumes deleted (EC2 takes about a minute for both). */
#define EC2_GONE_WAIT_S 600

static int
param_record(void *arg, const char *name)
{
	return removal_found(arg, "parameter", name, strlen(name));
}

/*
 * Everything of the environment that EC2 and Parameter Store list, into
 * the report before anything is deleted: its instances (not terminated),
 * the volumes its tags went onto, its parameters.
 */
static int
destroy_record(struct aws_client *c, const char *slug,
               const struct ec2_instances *l, struct removal *rm,
               struct buf *why)
{
	struct aws_tag tags[2];
	struct ec2_volumes v = {0};
	struct buf path = BUF_INIT;
	struct aws_error err;
	size_t i, n;
	int rc = -1;

	for (i = 0; i < l->n; i++)
		if (removal_found(rm, "instance", l->v[i].id,
		                  strlen(l->v[i].id)) == -1)
			goto db;
	env_tags(c->cfg, slug, tags);
	if (ec2_describe_volumes(c, tags, NELEM(tags), &v, &err) == -1)
		goto aws;
	for (i = 0; i < v.n; i++)
		if (removal_found(rm, "ebs_volume", v.id[i], strlen(v.id[i])) ==
		    -1)
			goto db;
	if (param_path(c->cfg, slug, &path) == 0 &&
	    ssm_list_path(c, buf_str(&path), param_record, rm, &n, &err) == -1)
		goto aws;
	rc = 0;
	goto out;
aws:
	buf_printf(why, "%s %s: %s %s", err.service, err.action, err.code,
	           err.message);
	goto out;
db:
	buf_puts(why, "recording what the environment has failed");
out:
	ec2_volumes_free(&v);
	buf_free(&path);
	return rc;
}

/*
 * The report's "gone": no instance of the environment left that is not
 * terminated, and no volume of it left that is not deleted, polled until
 * both hold (or the wait ends: the destroy is retried).
 */
static int
destroy_confirm(struct worker *w, const struct job *job, struct aws_client *c,
                const char *slug, struct removal *rm, struct buf *why)
{
	double until = now_mono() + EC2_GONE_WAIT_S;
	struct aws_tag tags[2];
	struct ec2_instances l = {0};
	struct ec2_volumes v = {0};
	struct aws_error err;
	int rc = -1;

	env_tags(c->cfg, slug, tags);
	for (;;) {
		ec2_instances_free(&l);
		ec2_volumes_free(&v);
		if (instances_of(c, slug, &l, why) == -1)
			goto out;
		if (ec2_describe_volumes(c, tags, NELEM(tags), &v, &err) ==
		    -1) {
			buf_printf(why, "ec2 DescribeVolumes: %s %s", err.code,
			           err.message);
			goto out;
		}
		if (l.n == 0 && v.n == 0)
			break;
		if (now_mono() > until) {
			buf_printf(why,
			           "%zu instance(s) and %zu volume(s) still "
			           "listed after %d s",
			           l.n, v.n, EC2_GONE_WAIT_S);
			goto out;
		}
		if ((job && job_heartbeat(w, job) == -1) ||
		    worker_sleep(w, EC2_POLL_MS) == -1) {
			buf_puts(why, "the job's lease was lost");
			goto out;
		}
	}
	if (removal_gone(rm, "instance") == -1 ||
	    removal_gone(rm, "ebs_volume") == -1) {
		buf_puts(why, "recording the removal failed");
		goto out;
	}
	rc = 0;
out:
	ec2_instances_free(&l);
	ec2_volumes_free(&v);
	return rc;
}

/*
 * TerminateInstances on each, the environment's parameters deleted, and
 * the gate's checkout on this machine removed. With a report, what was
 * there is recorded first and each kind confirmed gone by a fresh look.
 */
static int
ec2_destroy(struct worker *w, const struct job *job, const char *slug,
            struct removal *rm, struct buf *why)
{
	struct aws_client c;
	struct ec2_instances l = {0};
	struct buf path = BUF_INIT, ignored = BUF_INIT;
	struct aws_error err;
	bool report = rm != NULL && rm->env_id != 0;
	size_t i, n = 0;
	int rc = -1;

	if (why == NULL)
		why = &ignored;
	aws_client_init(&c, w->cfg);
	if (instances_of(&c, slug, &l, why) == -1)
		goto out;
	if (report && destroy_record(&c, slug, &l, rm, why) == -1)
		goto out;
	for (i = 0; i < l.n; i++) {
		if (state_is(&l.v[i], "shutting-down", "terminated"))
			continue;
		if (ec2_instance_action(&c, "TerminateInstances", l.v[i].id,
		                        &err) == -1)
			goto fail;
	}
	if (param_path(w->cfg, slug, &path) == -1) {
		buf_puts(why, "the slug cannot name a parameter path");
		goto out;
	}
	if (ssm_delete_path(&c, buf_str(&path), &n, &err) == -1)
		goto fail;
	log_info("ec2_destroy", "slug=%s instances=%zu parameters=%zu",
	         log_q(slug), l.n, n);
	if (report) {
		/* DescribeParameters is read right after the deletes. */
		if (ssm_count_path(&c, buf_str(&path), &n, &err) == -1)
			goto fail;
		if (n > 0) {
			buf_printf(why, "%zu parameter(s) still listed", n);
			goto out;
		}
		if (removal_gone(rm, "parameter") == -1) {
			buf_puts(why, "recording the removal failed");
			goto out;
		}
		if (destroy_confirm(w, job, &c, slug, rm, why) == -1)
			goto out;
	}
	rc = checkout_remove(w, job, slug, why);
	goto out;
fail:
	buf_printf(why, "%s %s: %s %s", err.service, err.action, err.code,
	           err.message);
out:
	ec2_instances_free(&l);
	buf_free(&path);
	buf_free(&ignored);
	aws_client_free(&c);
	return rc;
}

/*
 * A service's metrics through Run Command: the running instance runs
 * ephemera-host metrics, which prints only the family's samples (SSM keeps
 * 24,000 characters of a command's output). The sweep asks this of each
 * idle candidate, so it is short: a stopped or unregistered instance, or
 * no final answer within EC2_METRICS_WAIT_S, is no answer.
 */
#define EC2_METRICS_TIMEOUT 30
#define EC2_METRICS_WAIT_S 40
#define EC2_METRICS_POLL_MS 500

static int
ec2_service_metrics(struct worker *w, const char *slug, const char *service,
                    int port, const char *family, struct buf *out)
{
	struct ec2_metrics_ask m = {EC2_HOST_SCRIPT,
	                            local_instance(w->cfg),
	                            NULL,
	                            service,
	                            family,
	                            port};
	const char *argv[] = {"/bin/bash", "-c", NULL};
	struct buf script = BUF_INIT;
	struct ec2_instances l = {0};
	struct ssm_invocation v;
	struct aws_client c;
	struct aws_error err;
	char project[80], command_id[64];
	const char *id = NULL;
	double until = now_mono() + EC2_METRICS_WAIT_S;
	size_t i;
	int rc = -1;

	local_project_name(w->cfg, slug, project);
	m.project = project;
	ssm_invocation_init(&v);
	aws_client_init(&c, w->cfg);
	if (ec2_metrics_render(&m, &script) == -1 ||
	    instances_of(&c, slug, &l, NULL) == -1)
		goto out;
	for (i = 0; i < l.n && id == NULL; i++)
		if (state_is(&l.v[i], "running", NULL))
			id = l.v[i].id;
	argv[2] = buf_str(&script);
	if (id == NULL ||
	    ssm_send_command(&c, id, argv, NELEM(argv), EC2_METRICS_TIMEOUT,
	                     command_id, &err) == -1)
		goto out;
	for (;;) {
		if (worker_sleep(w, EC2_METRICS_POLL_MS) == -1 ||
		    now_mono() > until)
			goto out;
		buf_reset(&v.out);
		buf_reset(&v.err);
		if (ssm_get_invocation(&c, command_id, id, &v, &err) == -1 &&
		    err.kind != AWS_NOT_FOUND)
			goto out;
		if (err.kind == AWS_OK && ssm_status_final(v.status))
			break;
	}
	if (v.status == SSM_SUCCESS) {
		buf_append(out, v.out.data, v.out.len);
		rc = 0;
	} else {
		log_warn("ec2_metrics", "slug=%s instance=%s status=%s err=%s",
		         log_q(slug), id, ssm_status_name(v.status),
		         log_q(buf_str(&v.err)));
	}
out:
	ssm_invocation_free(&v);
	ec2_instances_free(&l);
	aws_client_free(&c);
	buf_free(&script);
	return rc;
}

/* Slugs with a tagged instance of this installation launched longer ago
 * than the sweep's grace period. */
static int
ec2_list_owned(struct worker *w, const struct job *job, slug_fn add, void *arg)
{
	struct aws_tag tag = {"ephemera:instance", local_instance(w->cfg)};
	struct aws_client c;
	struct ec2_instances l = {0};
	struct aws_error err;
	time_t now = time(NULL), at;
	size_t i;
	int rc = -1;

	(void)job;
	aws_client_init(&c, w->cfg);
	if (ec2_describe_instances(&c, &tag, 1, &l, &err) == -1)
		goto out;
	for (i = 0; i < l.n; i++) {
		size_t n = strlen(l.v[i].tag_env);

		if (parse_iso8601(l.v[i].launch_time, &at) == -1)
			at = now; /* unknown age: not yet */
		if (slug_valid(l.v[i].tag_env, n) &&
		    difftime(now, at) >=
		            (double)w->cfg->workers_sweep_grace_seconds)
			add(arg, l.v[i].tag_env, n);
	}
	rc = 0;
out:
	ec2_instances_free(&l);
	aws_client_free(&c);
	return rc;
}

const struct compute_ops compute_ec2 = {
        .name = "ec2",
        .observe = ec2_observe,
        .deploy = ec2_deploy,
        .stop = ec2_stop,
        .destroy = ec2_destroy,
        .leftovers = ec2_leftovers,
        .list_owned = ec2_list_owned,
        .service_metrics = ec2_service_metrics,
};
