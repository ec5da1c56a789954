/*
 * config.c - the configuration, as one table of settings walked by one
 * loader (Redis config.c, nginx directive tables): adding a setting is one
 * row. The file is libconfig syntax; every value is checked against its
 * row's type and bounds, unknown names are errors (a typo must not silently
 * fall back to a default), and an error names file:line, the setting and
 * what is allowed. This is the only file that includes libconfig.h.
 */
#include <errno.h>
#include <libconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>

#include "ephemera.h"

enum setting_type { T_STR, T_INT, T_BOOL, T_DOUBLE, T_ENUM, T_SECRET };

struct setting {
	const char *name;
	enum setting_type type;
	size_t offset;
	const char *def;      /* default, as text for every type */
	int64_t min, max;     /* T_INT bounds; T_DOUBLE uses them too */
	const char *allowed;  /* T_ENUM: "a|b|c" */
	size_t secret_offset; /* T_SECRET: where the file's contents go */
};

#define OFF(f) offsetof(struct config, f)
#define STR(n, f, d)                                                           \
	{                                                                      \
		n, T_STR, OFF(f), d, 0, 0, NULL, 0                             \
	}
#define INT(n, f, d, lo, hi)                                                   \
	{                                                                      \
		n, T_INT, OFF(f), #d, lo, hi, NULL, 0                          \
	}
#define BOOL(n, f, d)                                                          \
	{                                                                      \
		n, T_BOOL, OFF(f), #d, 0, 0, NULL, 0                           \
	}
#define DBL(n, f, d, lo, hi)                                                   \
	{                                                                      \
		n, T_DOUBLE, OFF(f), #d, lo, hi, NULL, 0                       \
	}
#define ENUM(n, f, d, a)                                                       \
	{                                                                      \
		n, T_ENUM, OFF(f), d, 0, 0, a, 0                               \
	}
#define SECRET(n, f, s)                                                        \
	{                                                                      \
		n, T_SECRET, OFF(f), "", 0, 0, NULL, OFF(s)                    \
	}

static const struct setting settings[] = {
        STR("var_dir", var_dir, "var"),
        STR("migrations_dir", migrations_dir, "sql/migrations"),
        STR("host_dir", host_dir, "host"),
        STR("web_dir", web_dir, "web"),
        ENUM("log.level", log_level, "info", "debug|info|warn|error"),

        INT("http.port", http_port, 8080, 1, 65535),
        STR("http.public_url", public_url, ""),

        STR("database.socket", db_socket, ""),
        STR("database.host", db_host, ""),
        INT("database.port", db_port, 3306, 1, 65535),
        STR("database.name", db_name, "ephemera"),
        STR("database.user", db_user, "root"),
        SECRET("database.password_file", db_password_file, db_password),
        STR("database.tls_ca_file", db_tls_ca_file, ""),
        STR("database.migrate_user", db_migrate_user, ""),
        SECRET("database.migrate_password_file", db_migrate_password_file,
               db_migrate_password),
        INT("database.connect_timeout", db_connect_timeout, 10, 1, 600),

        STR("fcgi.socket", fcgi_socket, ""),
        INT("fcgi.processes", fcgi_processes, 1, 1, 256),
        INT("fcgi.threads", fcgi_threads, 24, 1, 256),
        INT("fcgi.max_requests", fcgi_max_requests, 0, 0, 100000000),

        INT("workers.count", workers_count, 2, 1, 64),
        STR("workers.host", workers_host, ""),
        INT("workers.shutdown_timeout", workers_shutdown_timeout, 30, 1, 3600),
        INT("workers.poll_interval_ms", workers_poll_interval_ms, 200, 1,
            60000),
        INT("workers.poll_max_ms", workers_poll_max_ms, 2000, 1, 600000),
        INT("workers.lease_seconds", workers_lease_seconds, 60, 2, 86400),
        INT("workers.max_attempts", workers_max_attempts, 5, 1, 100),
        INT("workers.backoff_base_ms", workers_backoff_base_ms, 1000, 1,
            3600000),
        INT("workers.backoff_cap_ms", workers_backoff_cap_ms, 300000, 1,
            86400000),
        INT("workers.max_jobs", workers_max_jobs, 0, 0, 100000000),
        INT("workers.recycle_idle_seconds", workers_recycle_idle_seconds, 60, 0,
            86400),
        STR("workers.wake_socket", workers_wake_socket, ""),
        INT("workers.prune_interval_seconds", workers_prune_interval_seconds,
            3600, 1, 604800),
        INT("workers.sweep_interval_seconds", workers_sweep_interval_seconds,
            60, 1, 86400),
        INT("workers.sweep_grace_seconds", workers_sweep_grace_seconds, 300, 0,
            86400),
        INT("workers.keep_finished_hours", workers_keep_finished_hours, 168, 0,
            87600),
        INT("workers.keep_deliveries_days", workers_keep_deliveries_days, 30, 1,
            36500),

        SECRET("github.webhook_secret_file", github_webhook_secret_file,
               github_webhook_secret),
        INT("github.app_id", github_app_id, 0, 0, INT64_MAX),
        STR("github.private_key_file", github_private_key_file, ""),
        STR("github.api_url", github_api_url, "https://api.github.com"),
        BOOL("github.enabled", github_enabled, false),
        INT("github.timeout_seconds", github_timeout, 30, 1, 600),
        INT("github.token_refresh_margin", github_token_margin, 300, 0, 3000),
        INT("github.comment_log_lines", github_comment_lines, 20, 0, 500),
        INT("github.write_spacing_ms", github_write_spacing_ms, 1000, 0, 60000),
        INT("github.write_burst", github_write_burst, 5, 1, 100),

        ENUM("policy.trigger", policy_trigger, "all", "all|label"),
        STR("policy.label", policy_label, "preview"),
        STR("policy.trusted_label", policy_trusted_label, "preview-approved"),
        BOOL("policy.deploy_drafts", policy_deploy_drafts, false),
        BOOL("policy.deploy_untrusted", policy_deploy_untrusted, false),
        BOOL("policy.untrusted_secrets", policy_untrusted_secrets, false),

        STR("environments.preview_domain", preview_domain, "localhost"),
        INT("environments.max_running", env_max_running, 10, 1, 10000),
        INT("environments.idle_stop_minutes", env_idle_stop_minutes, 240, 0,
            525600),
        BOOL("environments.wake_on_visit", env_wake_on_visit, true),
        STR("local.subnet_pool", local_subnet_pool, ""),
        INT("local.subnet_prefix", local_subnet_prefix, 28, 16, 29),
        DBL("environments.hourly_price", env_hourly_price, 0.0208, 0, 1000),
        DBL("local.host_hourly_price", local_host_hourly_price, 0, 0, 1000),
        DBL("environments.monthly_budget", env_monthly_budget, 0, 0,
            1000000000),
        INT("environments.max_services", env_max_services, 20, 1, 200),
        BOOL("environments.allow_build", env_allow_build, true),
        STR("environments.instance", env_instance, ""),
        STR("environments.allowed_images", env_allowed_images, ""),
        INT("environments.max_networks", env_max_networks, 3, 1, 30),
        INT("environments.max_volumes", env_max_volumes, 8, 0, 100),
        INT("environments.memory_default_mb", env_memory_default_mb, 512, 4,
            1048576),
        INT("environments.memory_max_mb", env_memory_max_mb, 2048, 4, 1048576),
        INT("environments.pids_default", env_pids_default, 512, 1, 1000000),
        INT("environments.pids_max", env_pids_max, 4096, 1, 1000000),
        DBL("environments.cpus_default", env_cpus_default, 1, 0.01, 1024),
        DBL("environments.cpus_max", env_cpus_max, 2, 0.01, 1024),

        /* Exposure and Cloudflare (issue 11): their own block. */
        ENUM("exposure.provider", exposure_provider, "nginx",
             "nginx|cloudflare"),
        STR("cloudflare.api_token_file", cf_api_token_file, ""),
        STR("cloudflare.account_id", cf_account_id, ""),
        STR("cloudflare.zone_id", cf_zone_id, ""),
        STR("cloudflare.zone", cf_zone, ""),
        STR("cloudflare.api_url", cf_api_url,
            "https://api.cloudflare.com/client/v4"),
        STR("cloudflare.edge_url", cf_edge_url, ""),
        STR("cloudflare.connector_image", cf_connector_image,
            "cloudflare/cloudflared:2025.4.0"),
        BOOL("cloudflare.access", cf_access, true),
        STR("cloudflare.wake_tunnel_id", cf_wake_tunnel_id, ""),
        STR("cloudflare.access_service_token_file", cf_access_token_file, ""),
        INT("cloudflare.timeout_seconds", cf_timeout, 30, 1, 600),

        STR("status.clock", status_clock, ""),
        INT("status.refresh_seconds", status_refresh_seconds, 10, 0, 3600),

        /* Providers and AWS (workers/aws/); checked by aws_check. */
        ENUM("compute.provider", compute_provider, "local", "local|ec2"),
        STR("aws.region", aws_region, ""),
        STR("aws.endpoint_url", aws_endpoint_url, ""),
        STR("aws.credentials_file", aws_credentials_file, ""),
        STR("aws.profile", aws_profile, "default"),
        INT("aws.timeout_seconds", aws_timeout, 30, 1, 600),
        STR("ec2.ami", ec2_ami, ""),
        STR("ec2.launch_template", ec2_launch_template, ""),
        STR("ec2.instance_types", ec2_instance_types, "t3.small"),
        STR("ec2.hourly_prices", ec2_hourly_prices, ""),
        STR("ec2.subnet_ids", ec2_subnet_ids, ""),
        STR("ec2.security_group_ids", ec2_security_group_ids, ""),
        STR("ec2.instance_profile", ec2_instance_profile, ""),
        STR("ec2.ssm_parameter_prefix", ec2_ssm_parameter_prefix, ""),
        STR("ec2.envs_dir", ec2_envs_dir, "/var/lib/ephemera/envs"),
        /* SSM's executionTimeout: at most 48 hours. */
        INT("ec2.command_timeout_seconds", ec2_command_timeout_seconds, 900, 10,
            172800),
};

/* In the order of struct repo_config's fields, all strings. */
static const char *const repo_keys[] = {
        "name",           "source",           "secrets_file",
        "compose_file",   "primary_service",  "allowed_services",
        "allowed_images", "compute_provider", "exposure_provider",
        "access_bypass"};

static void *
field(struct config *cfg, size_t off)
{
	return (char *)cfg + off;
}

static const void *
cfield(const struct config *cfg, size_t off)
{
	return (const char *)cfg + off;
}

static const struct setting *
setting_find(const char *name)
{
	size_t i;

	for (i = 0; i < NELEM(settings); i++)
		if (strcmp(settings[i].name, name) == 0)
			return &settings[i];
	return NULL;
}

static bool
enum_allows(const char *allowed, const char *v)
{
	size_t n = strlen(v);
	const char *p = allowed;

	while (*p) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);

		if (len == n && strncmp(p, v, n) == 0)
			return true;
		p += len + (bar != NULL);
	}
	return false;
}

/* "file:line: setting 'name': message" */
static void
config_error(struct buf *err, const char *file, int line, const char *name,
             const char *fmt, ...)
{
	va_list ap;

	buf_reset(err);
	buf_printf(err, "%s:%d: setting '%s': ", file, line, name);
	va_start(ap, fmt);
	buf_vprintf(err, fmt, ap);
	va_end(ap);
}

static void
allowed_text(const struct setting *s, struct buf *b)
{
	switch (s->type) {
	case T_INT:
		buf_printf(b, "an integer from %lld to %lld", (long long)s->min,
		           (long long)s->max);
		break;
	case T_DOUBLE:
		buf_printf(b, "a number from %lld to %lld", (long long)s->min,
		           (long long)s->max);
		break;
	case T_BOOL:
		buf_puts(b, "true or false");
		break;
	case T_ENUM:
		buf_printf(b, "one of \"%s\"", s->allowed);
		break;
	case T_STR:
	case T_SECRET:
		buf_puts(b, "a string");
		break;
	}
}

/* Applies a textual value (a default) to a row; defaults are trusted. */
static void
setting_apply_text(struct config *cfg, const struct setting *s, const char *v)
{
	switch (s->type) {
	case T_STR:
	case T_ENUM:
	case T_SECRET:
		free(*(char **)field(cfg, s->offset));
		*(char **)field(cfg, s->offset) = xstrdup(v);
		break;
	case T_INT:
		parse_int64(v, INT64_MIN, INT64_MAX,
		            (int64_t *)field(cfg, s->offset));
		break;
	case T_BOOL:
		*(bool *)field(cfg, s->offset) = strcmp(v, "true") == 0;
		break;
	case T_DOUBLE:
		*(double *)field(cfg, s->offset) = strtod(v, NULL);
		break;
	}
}

/* Reads a secret file, trimming trailing whitespace. Caller frees. */
static char *
secret_read(const char *path, struct buf *why)
{
	struct buf b = BUF_INIT;
	char chunk[4096];
	size_t n;
	FILE *f;

	b.max = 64 * 1024;
	f = fopen(path, "r");
	if (f == NULL) {
		buf_printf(why, "cannot read \"%s\": %s", path,
		           strerror(errno));
		return NULL;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, n);
	fclose(f);
	if (b.failed) {
		buf_printf(why, "\"%s\" is larger than 64 KiB", path);
		buf_free(&b);
		return NULL;
	}
	while (b.len > 0 && strchr(" \t\r\n", b.data[b.len - 1]))
		b.data[--b.len] = '\0';
	if (b.len == 0) {
		buf_printf(why, "\"%s\" is empty", path);
		buf_free(&b);
		return NULL;
	}
	return buf_detach(&b);
}

/* Checks and stores one value from the file. */
static int
setting_load(struct config *cfg, const struct setting *s, config_setting_t *cs,
             const char *file, struct buf *err)
{
	int line = (int)config_setting_source_line(cs);
	int t = config_setting_type(cs);
	struct buf allowed = BUF_INIT;
	int rc = -1;

	allowed_text(s, &allowed);
	switch (s->type) {
	case T_STR:
	case T_SECRET:
	case T_ENUM: {
		const char *v;

		if (t != CONFIG_TYPE_STRING) {
			config_error(err, file, line, s->name, "must be %s",
			             buf_str(&allowed));
			goto out;
		}
		v = config_setting_get_string(cs);
		if (s->type == T_ENUM && !enum_allows(s->allowed, v)) {
			config_error(err, file, line, s->name,
			             "must be %s (got \"%s\")",
			             buf_str(&allowed), v);
			goto out;
		}
		setting_apply_text(cfg, s, v);
		break;
	}
	case T_INT: {
		long long v;

		if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) {
			config_error(err, file, line, s->name, "must be %s",
			             buf_str(&allowed));
			goto out;
		}
		v = config_setting_get_int64(cs);
		if (v < s->min || v > s->max) {
			config_error(err, file, line, s->name,
			             "must be %s (got %lld)", buf_str(&allowed),
			             v);
			goto out;
		}
		*(int64_t *)field(cfg, s->offset) = v;
		break;
	}
	case T_DOUBLE: {
		double v;

		if (t == CONFIG_TYPE_FLOAT)
			v = config_setting_get_float(cs);
		else if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64)
			v = (double)config_setting_get_int64(cs);
		else {
			config_error(err, file, line, s->name, "must be %s",
			             buf_str(&allowed));
			goto out;
		}
		if (v < (double)s->min || v > (double)s->max) {
			config_error(err, file, line, s->name,
			             "must be %s (got %g)", buf_str(&allowed),
			             v);
			goto out;
		}
		*(double *)field(cfg, s->offset) = v;
		break;
	}
	case T_BOOL:
		if (t != CONFIG_TYPE_BOOL) {
			config_error(err, file, line, s->name, "must be %s",
			             buf_str(&allowed));
			goto out;
		}
		*(bool *)field(cfg, s->offset) = config_setting_get_bool(cs);
		break;
	}
	rc = 0;
out:
	buf_free(&allowed);
	return rc;
}

/* A repos entry's monthly_budget: a number in environments.monthly_budget's
 * range, this repository's own budget instead of that one (0: none). */
static int
repo_budget_load(struct repo_config *r, config_setting_t *e, int i,
                 const char *file, struct buf *err)
{
	const struct setting *s = setting_find("environments.monthly_budget");
	struct buf allowed = BUF_INIT;
	int t = config_setting_type(e);
	double v = t == CONFIG_TYPE_FLOAT ? config_setting_get_float(e)
	           : t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64
	                   ? (double)config_setting_get_int64(e)
	                   : -1;

	if (v < (double)s->min || v > (double)s->max) {
		allowed_text(s, &allowed);
		config_error(err, file, (int)config_setting_source_line(e),
		             "repos", "entry %d: monthly_budget must be %s", i,
		             buf_str(&allowed));
		buf_free(&allowed);
		return -1;
	}
	r->monthly_budget = v;
	r->has_budget = true;
	return 0;
}

static int
repos_load(struct config *cfg, config_setting_t *list, const char *file,
           struct buf *err)
{
	int n, i, line = (int)config_setting_source_line(list);
	size_t k;

	if (!config_setting_is_list(list) && !config_setting_is_array(list)) {
		config_error(err, file, line, "repos",
		             "must be a list of groups: ( { name = \"owner/"
		             "repo\"; ... } )");
		return -1;
	}
	n = config_setting_length(list);
	cfg->repos = xcalloc((size_t)n, sizeof(*cfg->repos));
	for (i = 0; i < n; i++) {
		config_setting_t *g =
		        config_setting_get_elem(list, (unsigned)i);
		struct repo_config *r = &cfg->repos[cfg->nrepos++];
		int gl = (int)config_setting_source_line(g);
		int j, m;

		if (!config_setting_is_group(g)) {
			config_error(err, file, gl, "repos",
			             "entry %d must be a group { name = ... }",
			             i);
			return -1;
		}
		m = config_setting_length(g);
		for (j = 0; j < m; j++) {
			config_setting_t *e =
			        config_setting_get_elem(g, (unsigned)j);
			const char *key = config_setting_name(e);
			char **slot = NULL;

			/* The one number among the strings. */
			if (strcmp(key, "monthly_budget") == 0) {
				if (repo_budget_load(r, e, i, file, err) == -1)
					return -1;
				continue;
			}
			for (k = 0; k < NELEM(repo_keys); k++)
				if (strcmp(key, repo_keys[k]) == 0)
					slot = (char **)r + k;
			if (slot == NULL ||
			    config_setting_type(e) != CONFIG_TYPE_STRING) {
				config_error(
				        err, file,
				        (int)config_setting_source_line(e),
				        "repos",
				        "%s \"%s\" in entry %d: "
				        "allowed are string settings name,"
				        " source, secrets_file, "
				        "compose_file, primary_service, "
				        "allowed_services, allowed_images, "
				        "compute_provider, "
				        "exposure_provider, access_bypass "
				        "(and the number monthly_budget)",
				        slot ? "non-string" : "unknown", key,
				        i);
				return -1;
			}
			free(*slot);
			*slot = xstrdup(config_setting_get_string(e));
		}
		if (r->name == NULL || strchr(r->name, '/') == NULL) {
			config_error(err, file, gl, "repos",
			             "entry %d needs name = \"owner/repo\"", i);
			return -1;
		}
		/* GitHub's names ignore case, so config_repo() does: a
		 * second entry for one repository would never be read. */
		for (k = 0; k + 1 < cfg->nrepos; k++)
			if (strcasecmp(cfg->repos[k].name, r->name) == 0) {
				config_error(err, file, gl, "repos",
				             "entry %d: \"%s\" is entry %zu "
				             "again (names ignore case)",
				             i, r->name, k);
				return -1;
			}
		if ((r->compute_provider &&
		     !enum_allows(setting_find("compute.provider")->allowed,
		                  r->compute_provider)) ||
		    (r->exposure_provider &&
		     !enum_allows(setting_find("exposure.provider")->allowed,
		                  r->exposure_provider))) {
			config_error(
			        err, file, gl, "repos",
			        "entry %d: compute_provider must be one of "
			        "\"%s\", exposure_provider one of \"%s\"",
			        i, setting_find("compute.provider")->allowed,
			        setting_find("exposure.provider")->allowed);
			return -1;
		}
	}
	return 0;
}

/* Recursively finds settings the table does not know. */
static int
unknown_check(config_setting_t *group, const char *prefix, const char *file,
              struct buf *err)
{
	int n = config_setting_length(group), i;
	struct buf name = BUF_INIT;
	int rc = 0;

	for (i = 0; i < n && rc == 0; i++) {
		config_setting_t *e =
		        config_setting_get_elem(group, (unsigned)i);

		buf_reset(&name);
		if (prefix[0])
			buf_printf(&name, "%s.", prefix);
		buf_puts(&name, config_setting_name(e));
		if (strcmp(buf_str(&name), "repos") == 0)
			continue;
		if (config_setting_is_group(e) &&
		    setting_find(buf_str(&name)) == NULL) {
			rc = unknown_check(e, buf_str(&name), file, err);
			continue;
		}
		if (setting_find(buf_str(&name)) == NULL) {
			config_error(err, file,
			             (int)config_setting_source_line(e),
			             buf_str(&name), "unknown setting");
			rc = -1;
		}
	}
	buf_free(&name);
	return rc;
}

static int
secrets_load(struct config *cfg, config_t *cf, const char *file,
             struct buf *err)
{
	struct buf why = BUF_INIT;
	size_t i;
	int rc = 0;

	for (i = 0; i < NELEM(settings) && rc == 0; i++) {
		const struct setting *s = &settings[i];
		const char *path;
		char *dflt = NULL;
		config_setting_t *cs;

		if (s->type != T_SECRET)
			continue;
		path = *(char **)field(cfg, s->offset);
		/*
		 * The webhook secret defaults to <var_dir>/webhook-secret,
		 * the file the demo generates; missing is fine there.
		 */
		if (path[0] == '\0' &&
		    strcmp(s->name, "github.webhook_secret_file") == 0) {
			struct stat st;

			dflt = config_var_path(cfg, "webhook-secret");
			if (stat(dflt, &st) == 0)
				path = dflt;
		}
		if (path[0] != '\0') {
			char *v;

			buf_reset(&why);
			v = secret_read(path, &why);
			if (v == NULL) {
				cs = config_lookup(cf, s->name);
				config_error(
				        err, file,
				        cs ? (int)config_setting_source_line(cs)
				           : 0,
				        s->name, "%s", buf_str(&why));
				rc = -1;
			}
			*(char **)field(cfg, s->secret_offset) = v;
		}
		free(dflt);
	}
	buf_free(&why);
	return rc;
}

static bool
instance_valid(const char *v)
{
	size_t n = strlen(v);

	return n >= 1 && n <= 15 &&
	       strspn(v, "abcdefghijklmnopqrstuvwxyz"
	                 "0123456789") == n;
}

/*
 * The installation's identity: configured, or else the one `make run`
 * generated at first start into <var_dir>/instance. Unset is allowed
 * here (the CLI reads settings before there is one); the workers refuse
 * to start without it.
 */
static int
instance_load(struct config *cfg, config_t *cf, const char *file,
              struct buf *err)
{
	config_setting_t *cs = config_lookup(cf, "environments.instance");
	struct buf why = BUF_INIT;
	char *path = NULL, *v;
	struct stat st;
	int rc = 0;

	if (cfg->env_instance[0] == '\0') {
		path = config_var_path(cfg, "instance");
		if (stat(path, &st) == 0) {
			v = secret_read(path, &why);
			if (v == NULL) {
				config_error(err, file, 0,
				             "environments.instance", "%s",
				             buf_str(&why));
				rc = -1;
				goto out;
			}
			free(cfg->env_instance);
			cfg->env_instance = v;
		}
	}
	if (cfg->env_instance[0] != '\0' &&
	    !instance_valid(cfg->env_instance)) {
		config_error(err, file,
		             cs ? (int)config_setting_source_line(cs) : 0,
		             "environments.instance",
		             "must be 1 to 15 of [a-z0-9]%s%s",
		             path ? ", in " : "", path ? path : "");
		rc = -1;
	}
out:
	free(path);
	buf_free(&why);
	return rc;
}

/*
 * EPHEMERA_HTTP_PORT (what `make run PORT=9000` sets) overrides http.port
 * for every program of the installation alike: they all read it here.
 */
static int
port_override(struct config *cfg, struct buf *err)
{
	const char *v = getenv("EPHEMERA_HTTP_PORT");
	int64_t port;

	if (v == NULL || v[0] == '\0')
		return 0;
	if (parse_int64(v, 1, 65535, &port) == -1) {
		buf_reset(err);
		buf_printf(err,
		           "EPHEMERA_HTTP_PORT (PORT): must be a port number, "
		           "1 to 65535 (got \"%.32s\")",
		           v);
		return -1;
	}
	cfg->http_port = port;
	return 0;
}

/*
 * With GitHub enabled the workers sign JWTs as the App, so the App id and
 * the key file must be there; the key itself is read by the workers only
 * (the fcgi-app never holds it).
 */
static int
github_check(struct config *cfg, config_t *cf, const char *path,
             struct buf *err)
{
	config_setting_t *cs = config_lookup(cf, "github.enabled");
	int line = cs ? (int)config_setting_source_line(cs) : 0;

	if (!cfg->github_enabled)
		return 0;
	if (cfg->github_app_id <= 0) {
		config_error(err, path, line, "github.app_id",
		             "must be set when github.enabled is true");
		return -1;
	}
	if (cfg->github_private_key_file[0] == '\0') {
		config_error(err, path, line, "github.private_key_file",
		             "must name the App's PEM key when github.enabled "
		             "is true");
		return -1;
	}
	if (strncmp(cfg->github_api_url, "https://", 8) != 0 &&
	    strncmp(cfg->github_api_url, "http://127.0.0.1", 16) != 0) {
		config_error(err, path, line, "github.api_url",
		             "must be an https:// URL (or http://127.0.0.1 for "
		             "a local fake)");
		return -1;
	}
	return 0;
}

/* ec2.envs_dir: absolute, plain characters, no "..", no trailing '/'. */
static bool
envs_dir_ok(const char *d)
{
	size_t n = strlen(d);

	if (n < 2 || d[0] != '/' || d[n - 1] == '/' || strstr(d, "/..") != NULL)
		return false;
	return strspn(d, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                 "0123456789/._-") == n;
}

/* local.subnet_pool: a block, and subnets no larger than it. */
static int
subnet_check(struct config *cfg, config_t *cf, const char *path,
             struct buf *err)
{
	config_setting_t *cs = config_lookup(cf, "local.subnet_pool");
	int line = cs ? (int)config_setting_source_line(cs) : 0;
	uint32_t base;
	int bits;

	if (cfg->local_subnet_pool[0] == '\0')
		return 0;
	if (subnet_pool_parse(cfg->local_subnet_pool, &base, &bits) == -1) {
		config_error(err, path, line, "local.subnet_pool",
		             "must be an IPv4 block like \"10.230.0.0/16\" "
		             "(no host bits set)");
		return -1;
	}
	if (cfg->local_subnet_prefix < bits) {
		config_error(err, path, line, "local.subnet_prefix",
		             "must be at least the pool's own prefix length");
		return -1;
	}
	return 0;
}

/* ec2.hourly_prices: checked whichever provider runs, as a typo in a
 * price is wrong either way. */
static int
prices_check(struct config *cfg, config_t *cf, const char *path,
             struct buf *err)
{
	config_setting_t *cs = config_lookup(cf, "ec2.hourly_prices");
	struct buf why = BUF_INIT;
	int rc = 0;

	if (price_list_check(cfg->ec2_hourly_prices, &why) == -1) {
		config_error(err, path,
		             cs ? (int)config_setting_source_line(cs) : 0,
		             "ec2.hourly_prices",
		             "%s; write \"t3.small=0.0208,t3a.small=0.0188\"",
		             buf_str(&why));
		rc = -1;
	}
	buf_free(&why);
	return rc;
}

/*
 * The ec2 provider cannot launch anything without a region, an image (AMI
 * or launch template), a subnet and a security group: say which is missing
 * at compute.provider's line, not at the first launch.
 */
static int
aws_check(struct config *cfg, config_t *cf, const char *path, struct buf *err)
{
	config_setting_t *cs = config_lookup(cf, "compute.provider");
	int line = cs ? (int)config_setting_source_line(cs) : 0;
	const char *prefix = cfg->ec2_ssm_parameter_prefix;
	const char *url = cfg->aws_endpoint_url;

	bool ec2 = strcmp(cfg->compute_provider, "ec2") == 0;
	size_t i;

	for (i = 0; i < cfg->nrepos; i++)
		if (cfg->repos[i].compute_provider &&
		    strcmp(cfg->repos[i].compute_provider, "ec2") == 0)
			ec2 = true;
	if (!ec2)
		return 0;
	if (cfg->aws_region[0] == '\0') {
		config_error(err, path, line, "aws.region",
		             "must be set when compute.provider is \"ec2\"");
		return -1;
	}
	if (cfg->ec2_ami[0] == '\0' && cfg->ec2_launch_template[0] == '\0') {
		config_error(err, path, line, "ec2.ami",
		             "ec2.ami or ec2.launch_template must be set when "
		             "compute.provider is \"ec2\"");
		return -1;
	}
	if (cfg->ec2_subnet_ids[0] == '\0') {
		config_error(err, path, line, "ec2.subnet_ids",
		             "must name at least one subnet when "
		             "compute.provider is \"ec2\"");
		return -1;
	}
	if (cfg->ec2_security_group_ids[0] == '\0') {
		config_error(err, path, line, "ec2.security_group_ids",
		             "must name at least one security group when "
		             "compute.provider is \"ec2\"");
		return -1;
	}
	if (cfg->ec2_instance_types[0] == '\0') {
		config_error(err, path, line, "ec2.instance_types",
		             "must name at least one instance type");
		return -1;
	}
	if (prefix[0] != '\0' &&
	    (prefix[0] != '/' || prefix[strlen(prefix) - 1] == '/')) {
		cs = config_lookup(cf, "ec2.ssm_parameter_prefix");
		config_error(err, path,
		             cs ? (int)config_setting_source_line(cs) : line,
		             "ec2.ssm_parameter_prefix",
		             "must start with '/' and not end with one");
		return -1;
	}
	/* Quoted in every script, but a bind mount's source too: an
	 * absolute path of plain characters, so compose reads it as one. */
	if (!envs_dir_ok(cfg->ec2_envs_dir)) {
		cs = config_lookup(cf, "ec2.envs_dir");
		config_error(err, path,
		             cs ? (int)config_setting_source_line(cs) : line,
		             "ec2.envs_dir",
		             "must be an absolute path of letters, digits and "
		             "\"/._-\", not ending in '/'");
		return -1;
	}
	if (url[0] != '\0' && strncmp(url, "https://", 8) != 0 &&
	    strncmp(url, "http://127.0.0.1", 16) != 0) {
		cs = config_lookup(cf, "aws.endpoint_url");
		config_error(err, path,
		             cs ? (int)config_setting_source_line(cs) : line,
		             "aws.endpoint_url",
		             "must be an https:// URL (or http://127.0.0.1 for "
		             "a local emulator)");
		return -1;
	}
	return 0;
}

/* Lowercase DNS labels of [a-z0-9-], dot-separated, like "example.com". */
static bool
zone_name_valid(const char *z)
{
	size_t label = 0, total = 0;

	for (; *z; z++, total++) {
		if (*z == '.') {
			if (label == 0 || z[-1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!((*z >= 'a' && *z <= 'z') || (*z >= '0' && *z <= '9') ||
		      *z == '-'))
			return false;
		if (label == 0 && *z == '-')
			return false;
		if (++label > 63)
			return false;
	}
	return total > 0 && total <= 253 && label > 0 && z[-1] != '-';
}

/* 8-4-4-4-12 lowercase hex digits: how Cloudflare writes a tunnel's id. */
static bool
uuid_valid(const char *s)
{
	size_t i;

	for (i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-'
		         : !((s[i] >= '0' && s[i] <= '9') ||
		             (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return s[36] == '\0';
}

static bool
hex32_valid(const char *s)
{
	size_t n = 0;

	for (; *s; s++, n++)
		if (parse_hex_digit(*s) < 0)
			return false;
	return n == 32;
}

/*
 * Cloudflare exposure needs a zone: <tunnel-id>.cfargotunnel.com is only
 * a CNAME target Cloudflare serves for records in the same account, not
 * an address anyone can open, so every preview gets <slug>.<zone>.
 */
static int
cloudflare_check(struct config *cfg, config_t *cf, const char *path,
                 struct buf *err)
{
	config_setting_t *cs = config_lookup(cf, "exposure.provider");
	int line = cs ? (int)config_setting_source_line(cs) : 0;
	struct stat st;
	bool cloudflare = strcmp(cfg->exposure_provider, "cloudflare") == 0;
	size_t i;

	/* A repository's own exposure_provider needs the same keys. */
	for (i = 0; i < cfg->nrepos; i++)
		if (cfg->repos[i].exposure_provider &&
		    strcmp(cfg->repos[i].exposure_provider, "cloudflare") == 0)
			cloudflare = true;
	if (!cloudflare)
		return 0;
	if (cfg->cf_zone[0] == '\0' || cfg->cf_zone_id[0] == '\0') {
		config_error(
		        err, path, line, "cloudflare.zone",
		        "cloudflare.zone and cloudflare.zone_id must be set "
		        "when exposure.provider is \"cloudflare\": "
		        "<tunnel-id>.cfargotunnel.com is only a CNAME target "
		        "Cloudflare serves for DNS records in the same "
		        "account, so each preview needs a hostname "
		        "<slug>.<zone> on a zone of yours");
		return -1;
	}
	if (cfg->cf_account_id[0] == '\0') {
		config_error(err, path, line, "cloudflare.account_id",
		             "must be set when exposure.provider is "
		             "\"cloudflare\" (tunnels and Access belong to the "
		             "account)");
		return -1;
	}
	if (cfg->cf_api_token_file[0] == '\0') {
		config_error(err, path, line, "cloudflare.api_token_file",
		             "must name the file holding the API token when "
		             "exposure.provider is \"cloudflare\"");
		return -1;
	}
	cs = config_lookup(cf, "cloudflare.zone");
	line = cs ? (int)config_setting_source_line(cs) : line;
	if (!zone_name_valid(cfg->cf_zone)) {
		config_error(err, path, line, "cloudflare.zone",
		             "must be a lowercase DNS name such as "
		             "\"example-previews.com\"; previews get one label "
		             "directly under it, because Universal SSL and "
		             "Access wildcards cover one level only");
		return -1;
	}
	cs = config_lookup(cf, "cloudflare.account_id");
	if (!hex32_valid(cfg->cf_account_id)) {
		config_error(err, path,
		             cs ? (int)config_setting_source_line(cs) : line,
		             "cloudflare.account_id",
		             "must be the account's 32 hex digit id");
		return -1;
	}
	cs = config_lookup(cf, "cloudflare.wake_tunnel_id");
	if (cfg->cf_wake_tunnel_id[0] && !uuid_valid(cfg->cf_wake_tunnel_id)) {
		config_error(err, path,
		             cs ? (int)config_setting_source_line(cs) : line,
		             "cloudflare.wake_tunnel_id",
		             "must be the control plane tunnel's id, a UUID "
		             "(terraform output wake_tunnel_id)");
		return -1;
	}
	cs = config_lookup(cf, "cloudflare.zone_id");
	if (!hex32_valid(cfg->cf_zone_id)) {
		config_error(err, path,
		             cs ? (int)config_setting_source_line(cs) : line,
		             "cloudflare.zone_id",
		             "must be the zone's 32 hex digit id");
		return -1;
	}
	cs = config_lookup(cf, "cloudflare.api_token_file");
	errno = 0;
	if (stat(cfg->cf_api_token_file, &st) != 0 || !S_ISREG(st.st_mode)) {
		const char *why =
		        errno ? strerror(errno) : "not a regular file";

		config_error(err, path,
		             cs ? (int)config_setting_source_line(cs) : line,
		             "cloudflare.api_token_file", "cannot read %s: %s",
		             cfg->cf_api_token_file, why);
		return -1;
	}
	cs = config_lookup(cf, "cloudflare.access_service_token_file");
	errno = 0;
	if (cfg->cf_access_token_file[0] != '\0' &&
	    (stat(cfg->cf_access_token_file, &st) != 0 ||
	     !S_ISREG(st.st_mode))) {
		config_error(err, path,
		             cs ? (int)config_setting_source_line(cs) : line,
		             "cloudflare.access_service_token_file",
		             "cannot read %s: %s", cfg->cf_access_token_file,
		             errno ? strerror(errno) : "not a regular file");
		return -1;
	}
	cs = config_lookup(cf, "cloudflare.api_url");
	if (strncmp(cfg->cf_api_url, "https://", 8) != 0 &&
	    strncmp(cfg->cf_api_url, "http://127.0.0.1", 16) != 0) {
		config_error(err, path,
		             cs ? (int)config_setting_source_line(cs) : line,
		             "cloudflare.api_url",
		             "must be an https:// URL (or http://127.0.0.1 for "
		             "a local fake)");
		return -1;
	}
	return 0;
}

int
config_load(struct config *cfg, const char *path, struct buf *err)
{
	config_t cf;
	size_t i;
	int rc = -1;
	config_setting_t *repos;
	enum log_level lvl;

	memset(cfg, 0, sizeof(*cfg));
	cfg->path = xstrdup(path);
	for (i = 0; i < NELEM(settings); i++)
		setting_apply_text(cfg, &settings[i], settings[i].def);

	config_init(&cf);
	if (config_read_file(&cf, path) != CONFIG_TRUE) {
		buf_reset(err);
		if (config_error_type(&cf) == CONFIG_ERR_FILE_IO)
			buf_printf(err, "%s:0: cannot read the file: %s", path,
			           strerror(errno));
		else
			buf_printf(
			        err, "%s:%d: syntax: %s",
			        config_error_file(&cf) ? config_error_file(&cf)
			                               : path,
			        config_error_line(&cf), config_error_text(&cf));
		goto out;
	}
	if (unknown_check(config_root_setting(&cf), "", path, err) == -1)
		goto out;
	for (i = 0; i < NELEM(settings); i++) {
		config_setting_t *cs = config_lookup(&cf, settings[i].name);

		if (cs != NULL &&
		    setting_load(cfg, &settings[i], cs, path, err) == -1)
			goto out;
	}
	repos = config_lookup(&cf, "repos");
	if (repos != NULL && repos_load(cfg, repos, path, err) == -1)
		goto out;
	if (cfg->workers_backoff_cap_ms < cfg->workers_backoff_base_ms) {
		config_setting_t *cs =
		        config_lookup(&cf, "workers.backoff_cap_ms");

		config_error(err, path,
		             cs ? (int)config_setting_source_line(cs) : 0,
		             "workers.backoff_cap_ms",
		             "must be at least workers.backoff_base_ms (%lld)",
		             (long long)cfg->workers_backoff_base_ms);
		goto out;
	}
	if (github_check(cfg, &cf, path, err) == -1)
		goto out;
	if (subnet_check(cfg, &cf, path, err) == -1)
		goto out;
	if (aws_check(cfg, &cf, path, err) == -1)
		goto out;
	if (prices_check(cfg, &cf, path, err) == -1)
		goto out;
	if (cloudflare_check(cfg, &cf, path, err) == -1)
		goto out;
	if (secrets_load(cfg, &cf, path, err) == -1)
		goto out;
	if (instance_load(cfg, &cf, path, err) == -1)
		goto out;
	if (port_override(cfg, err) == -1)
		goto out;
	if (log_level_parse(cfg->log_level, &lvl) == 0)
		log_set_level(lvl);
	rc = 0;
out:
	config_destroy(&cf);
	return rc;
}

void
config_free(struct config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	for (i = 0; i < NELEM(settings); i++) {
		const struct setting *s = &settings[i];

		if (s->type == T_STR || s->type == T_ENUM ||
		    s->type == T_SECRET)
			free(*(char **)field(cfg, s->offset));
		if (s->type == T_SECRET)
			free(*(char **)field(cfg, s->secret_offset));
	}
	for (i = 0; i < cfg->nrepos; i++) {
		free(cfg->repos[i].name);
		free(cfg->repos[i].source);
		free(cfg->repos[i].secrets_file);
		free(cfg->repos[i].compose_file);
		free(cfg->repos[i].primary_service);
		free(cfg->repos[i].allowed_services);
		free(cfg->repos[i].allowed_images);
		free(cfg->repos[i].compute_provider);
		free(cfg->repos[i].exposure_provider);
		free(cfg->repos[i].access_bypass);
	}
	free(cfg->repos);
	free(cfg->path);
	memset(cfg, 0, sizeof(*cfg));
}

/* Secrets are not printable through this: only their file names are. */
int
config_get(const struct config *cfg, const char *name, struct buf *out)
{
	const struct setting *s = setting_find(name);

	if (s == NULL)
		return -1;
	switch (s->type) {
	case T_STR:
	case T_ENUM:
	case T_SECRET:
		buf_puts(out, *(char *const *)cfield(cfg, s->offset));
		break;
	case T_INT:
		buf_printf(out, "%lld",
		           (long long)*(const int64_t *)cfield(cfg, s->offset));
		break;
	case T_BOOL:
		buf_puts(out, *(const bool *)cfield(cfg, s->offset) ? "true"
		                                                    : "false");
		break;
	case T_DOUBLE:
		buf_printf(out, "%g", *(const double *)cfield(cfg, s->offset));
		break;
	}
	return 0;
}

char *
config_var_path(const struct config *cfg, const char *rel)
{
	struct buf b = BUF_INIT;

	buf_printf(&b, "%s/%s", cfg->var_dir, rel);
	return buf_detach(&b);
}

/*
 * GitHub's owner and repository names ignore case, and a webhook carries
 * the repository's own spelling ("Acme/App"), which a config may not
 * ("acme/app"): matching exactly would put that repository on the
 * default providers and budget without a word.
 */
const struct repo_config *
config_repo(const struct config *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->nrepos; i++)
		if (strcasecmp(cfg->repos[i].name, name) == 0)
			return &cfg->repos[i];
	return NULL;
}

double
config_budget(const struct config *cfg, const char *repo)
{
	const struct repo_config *r = repo ? config_repo(cfg, repo) : NULL;

	return r && r->has_budget ? r->monthly_budget : cfg->env_monthly_budget;
}

/*
 * What is valid but probably not meant, said at -t (and by `ephemera
 * check`) without failing: GitHub cannot follow a link to this machine's
 * loopback, so without http.public_url the PR gets no links at all.
 */
void
config_warnings(const struct config *cfg, const char *name, FILE *out)
{
	if (cfg->github_enabled && cfg->public_url[0] == '\0')
		fprintf(out,
		        "%s: warning: http.public_url is not set: with "
		        "github.enabled, the PR's comment, Deployments and "
		        "commit statuses carry no link to the preview or its "
		        "status page (loopback URLs are never sent to "
		        "GitHub)\n",
		        name);
	/* Over a network, the database link is plaintext without a CA. */
	if (cfg->db_host[0] && cfg->db_tls_ca_file[0] == '\0' &&
	    strcmp(cfg->db_host, "127.0.0.1") != 0 &&
	    strcmp(cfg->db_host, "::1") != 0 &&
	    strcmp(cfg->db_host, "localhost") != 0)
		fprintf(out,
		        "%s: warning: database.host is set without "
		        "database.tls_ca_file: the connection to the "
		        "database is not encrypted\n",
		        name);
}

int
program_start(const char *name, int argc, char **argv, struct config *cfg,
              int *rc)
{
	struct buf err = BUF_INIT;
	const char *path = "config/example.conf";
	bool check = false;
	int ch;

	/* "ephemera-fcgi" logs as "fcgi". */
	log_init(strncmp(name, "ephemera-", 9) == 0 ? name + 9 : name,
	         LOG_INFO);
	while ((ch = getopt(argc, argv, "c:th")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 't':
			check = true;
			break;
		default:
			fprintf(stderr, "usage: %s [-t] [-c config]\n", name);
			exit(2);
		}
	}
	*rc = 1;
	if (config_load(cfg, path, &err) == -1) {
		fprintf(stderr, "%s: %s\n", name, buf_str(&err));
		buf_free(&err);
		return 1;
	}
	buf_free(&err);
	if (check) {
		config_warnings(cfg, name, stderr);
		printf("%s: %s: configuration ok\n", name, path);
		*rc = 0;
		return 1;
	}
	*rc = 0;
	return 0;
}
