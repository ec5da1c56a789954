/*
 * credentials.c - the AWS credentials chain, first found wins: the shared
 * credentials file named in the config, the AWS_* environment variables,
 * the instance role through IMDSv2. The parsers are pure; only
 * imds_fetch talks to the network (through http_plain).
 *
 * Keys are secrets: they are read from a file, the environment or IMDS,
 * never from argv; no log line carries them (only the source's name); the
 * strings are wiped when dropped.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aws.h"

#define IMDS_DEFAULT "http://169.254.169.254"
#define IMDS_TIMEOUT_MS 1000
#define CREDENTIALS_FILE_MAX (256 * 1024)

static void
secret_free(char **s)
{
	if (*s) {
		OPENSSL_cleanse(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

void
aws_credentials_clear(struct aws_credentials *c)
{
	if (c == NULL)
		return;
	secret_free(&c->access_key_id);
	secret_free(&c->secret_access_key);
	secret_free(&c->session_token);
	c->expiration = 0;
	c->source = NULL;
}

bool
credentials_stale(const struct aws_credentials *c, time_t now)
{
	return c->expiration != 0 &&
	       now + CREDENTIALS_REFRESH_MARGIN >= c->expiration;
}

static char *
trimmed(const char *s, size_t n)
{
	while (n > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	while (n > 0 && strchr(" \t\r", s[n - 1]))
		n--;
	return xstrndup(s, n);
}

/*
 * [name] opens a profile; key = value inside it; '#' and ';' start
 * comment lines. Keys are matched case-insensitively like the CLI does.
 */
int
credentials_parse_ini(const char *text, const char *profile,
                      struct aws_credentials *out)
{
	const char *p = text;
	bool in = false;

	aws_credentials_clear(out);
	while (p && *p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		char *line = trimmed(p, len);

		if (line[0] == '[') {
			char *end = strchr(line, ']');
			char *name = end ? trimmed(line + 1,
			                           (size_t)(end - line - 1))
			                 : xstrdup("");

			in = strcmp(name, profile) == 0;
			free(name);
		} else if (in && line[0] != '#' && line[0] != ';') {
			char *eq = strchr(line, '=');

			if (eq) {
				char *k = trimmed(line, (size_t)(eq - line));
				char *v = trimmed(eq + 1, strlen(eq + 1));
				char **slot = NULL;

				if (strcasecmp(k, "aws_access_key_id") == 0)
					slot = &out->access_key_id;
				else if (strcasecmp(k,
				                    "aws_secret_access_key") ==
				         0)
					slot = &out->secret_access_key;
				else if (strcasecmp(k, "aws_session_token") ==
				         0)
					slot = &out->session_token;
				if (slot && v[0]) {
					secret_free(slot);
					*slot = v;
					v = NULL;
				}
				secret_free(&v);
				free(k);
			}
		}
		OPENSSL_cleanse(line, strlen(line));
		free(line);
		p = nl ? nl + 1 : NULL;
	}
	if (out->access_key_id == NULL || out->secret_access_key == NULL) {
		aws_credentials_clear(out);
		return -1;
	}
	out->source = "file";
	return 0;
}

static char *
json_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return xstrdup(json_object_get_string(v));
}

int
credentials_parse_imds(const char *json, struct aws_credentials *out)
{
	/* Owns the parsed tree; every string taken from it is copied. */
	struct json_object *o = json_tokener_parse(json);
	char *code = NULL, *exp = NULL;
	int rc = -1;

	aws_credentials_clear(out);
	if (o == NULL || !json_object_is_type(o, json_type_object))
		goto out;
	code = json_str(o, "Code");
	if (code && strcmp(code, "Success") != 0)
		goto out;
	out->access_key_id = json_str(o, "AccessKeyId");
	out->secret_access_key = json_str(o, "SecretAccessKey");
	out->session_token = json_str(o, "Token");
	exp = json_str(o, "Expiration");
	if (out->access_key_id == NULL || out->secret_access_key == NULL ||
	    exp == NULL || parse_iso8601(exp, &out->expiration) == -1)
		goto out;
	out->source = "imds";
	rc = 0;
out:
	if (rc == -1)
		aws_credentials_clear(out);
	free(code);
	free(exp);
	json_object_put(o);
	return rc;
}

static int
file_load(const struct config *cfg, struct aws_credentials *out)
{
	struct buf b = BUF_INIT;
	char chunk[4096];
	size_t n;
	FILE *f;
	int rc = -1;

	b.max = CREDENTIALS_FILE_MAX;
	f = fopen(cfg->aws_credentials_file, "r");
	if (f == NULL) {
		log_warn("aws_credentials", "source=file path=%s error=%s",
		         log_q(cfg->aws_credentials_file),
		         log_q(strerror(errno)));
		return -1;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, n);
	fclose(f);
	if (!b.failed && b.data &&
	    credentials_parse_ini(b.data, cfg->aws_profile, out) == 0)
		rc = 0;
	else
		log_warn("aws_credentials",
		         "source=file path=%s profile=%s error=no_keys",
		         log_q(cfg->aws_credentials_file),
		         log_q(cfg->aws_profile));
	if (b.data)
		OPENSSL_cleanse(b.data, b.len);
	buf_free(&b);
	return rc;
}

static int
env_load(struct aws_credentials *out)
{
	const char *id = getenv("AWS_ACCESS_KEY_ID");
	const char *secret = getenv("AWS_SECRET_ACCESS_KEY");
	const char *token = getenv("AWS_SESSION_TOKEN");

	if (id == NULL || secret == NULL || !id[0] || !secret[0])
		return -1;
	out->access_key_id = xstrdup(id);
	out->secret_access_key = xstrdup(secret);
	out->session_token = token && token[0] ? xstrdup(token) : NULL;
	out->source = "env";
	return 0;
}

/*
 * IMDSv2: PUT a session token, then GET the role name and the role's
 * credentials with it. Timeouts are short: off EC2 nothing answers.
 */
static int
imds_fetch(struct aws_credentials *out)
{
	const char *base = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	const char *off = getenv("AWS_EC2_METADATA_DISABLED");
	struct buf url = BUF_INIT, token = BUF_INIT, hdr = BUF_INIT,
	           role = BUF_INIT, doc = BUF_INIT;
	const char *put_h[] = {"X-aws-ec2-metadata-token-ttl-seconds: 21600",
	                       NULL};
	const char *get_h[] = {NULL, NULL};
	long status = 0;
	int rc = -1;

	if (off && strcasecmp(off, "true") == 0)
		return -1;
	if (base == NULL || base[0] == '\0')
		base = IMDS_DEFAULT;
	buf_printf(&url, "%s/latest/api/token", base);
	if (http_plain("PUT", buf_str(&url), put_h, IMDS_TIMEOUT_MS, &status,
	               &token) == -1 ||
	    status != 200 || token.len == 0)
		goto out;
	buf_printf(&hdr, "X-aws-ec2-metadata-token: %s", buf_str(&token));
	get_h[0] = buf_str(&hdr);
	buf_reset(&url);
	buf_printf(&url, "%s/latest/meta-data/iam/security-credentials/", base);
	if (http_plain("GET", buf_str(&url), get_h, IMDS_TIMEOUT_MS, &status,
	               &role) == -1 ||
	    status != 200 || role.len == 0)
		goto out;
	/* One role per instance profile; the first line names it. */
	role.len = strcspn(role.data, "\r\n");
	role.data[role.len] = '\0';
	buf_reset(&url);
	buf_printf(&url, "%s/latest/meta-data/iam/security-credentials/", base);
	sigv4_uri_encode(&url, role.data, role.len, false);
	if (http_plain("GET", buf_str(&url), get_h, IMDS_TIMEOUT_MS, &status,
	               &doc) == -1 ||
	    status != 200 || doc.data == NULL)
		goto out;
	rc = credentials_parse_imds(doc.data, out);
	if (rc == -1)
		log_warn("aws_credentials", "source=imds error=bad_document");
out:
	if (token.data)
		OPENSSL_cleanse(token.data, token.len);
	if (hdr.data)
		OPENSSL_cleanse(hdr.data, hdr.len);
	if (doc.data)
		OPENSSL_cleanse(doc.data, doc.len);
	buf_free(&url);
	buf_free(&token);
	buf_free(&hdr);
	buf_free(&role);
	buf_free(&doc);
	return rc;
}

int
credentials_resolve(const struct config *cfg, struct aws_credentials *out)
{
	aws_credentials_clear(out);
	if ((cfg->aws_credentials_file[0] && file_load(cfg, out) == 0) ||
	    env_load(out) == 0 || imds_fetch(out) == 0) {
		log_info("aws_credentials", "source=%s expires=%lld",
		         out->source, (long long)out->expiration);
		return 0;
	}
	log_error("aws_credentials", "error=none_found");
	return -1;
}
