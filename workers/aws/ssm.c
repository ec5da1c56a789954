/*
 * ssm.c - Systems Manager: Run Command (SendCommand, GetCommandInvocation)
 * and Parameter Store, over the JSON 1.1 protocol through json-c. Bodies
 * are built with json-c, never by pasting strings, and the one shell line
 * a command runs quotes every argument (ssm_shell_quote), so a branch
 * name or a title reaches host/ephemera-host as one inert argument.
 *
 * Parameter values are secrets: they travel only in request and response
 * bodies, which are never logged, and the buffers holding them are wiped.
 *
 * json-c ownership, once: json_object_new_* returns a reference the caller
 * owns; json_object_object_add and json_object_array_add take it over;
 * json_object_put on the root frees the tree; strings from
 * json_object_get_string live as long as their object.
 */
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aws.h"

#define SSM_CONTENT_TYPE "application/x-amz-json-1.1"
#define SSM_DELIVERY_TIMEOUT 600
#define SSM_MAX_PAGES 100

void
ssm_invocation_init(struct ssm_invocation *v)
{
	memset(v, 0, sizeof(*v));
	buf_init(&v->out, 1024 * 1024);
	buf_init(&v->err, 1024 * 1024);
	v->response_code = -1;
}

void
ssm_invocation_free(struct ssm_invocation *v)
{
	if (v == NULL)
		return;
	buf_free(&v->out);
	buf_free(&v->err);
}

static const char *const status_names[] = {
        "Pending",       "InProgress", "Delayed",   "Success",
        "Failed",        "TimedOut",   "Cancelled", "Cancelling",
        "Undeliverable", "Terminated", "Unknown"};

const char *
ssm_status_name(enum ssm_status s)
{
	return (size_t)s < NELEM(status_names) ? status_names[s] : "Unknown";
}

/* Case- and space-insensitive comparison ("In Progress" = InProgress). */
static bool
loose_eq(const char *a, const char *b)
{
	for (;;) {
		while (*a == ' ')
			a++;
		while (*b == ' ')
			b++;
		if (*a == '\0' || *b == '\0')
			return *a == *b;
		if ((*a | 0x20) != (*b | 0x20))
			return false;
		a++;
		b++;
	}
}

enum ssm_status
ssm_status_parse(const char *status, const char *details)
{
	size_t i;

	/* StatusDetails is finer: it alone says Undeliverable/Terminated. */
	if (details && details[0]) {
		if (loose_eq(details, "Undeliverable"))
			return SSM_UNDELIVERABLE;
		if (loose_eq(details, "Terminated"))
			return SSM_TERMINATED;
		if (loose_eq(details, "Delivery Timed Out") ||
		    loose_eq(details, "Execution Timed Out"))
			return SSM_TIMED_OUT;
	}
	for (i = 0; status && i < SSM_UNKNOWN; i++)
		if (loose_eq(status, status_names[i]))
			return (enum ssm_status)i;
	return SSM_UNKNOWN;
}

bool
ssm_status_final(enum ssm_status s)
{
	return s != SSM_PENDING && s != SSM_IN_PROGRESS && s != SSM_DELAYED &&
	       s != SSM_CANCELLING && s != SSM_UNKNOWN;
}

static const char *
jstr(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* Characters, not bytes: SSM counts characters. */
static size_t
utf8_chars(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			n++;
	return n;
}

int
ssm_parse_invocation(const char *json, struct ssm_invocation *v)
{
	struct json_object *o = json_tokener_parse(json), *rc;
	const char *out, *err;
	int ret = -1;

	if (o == NULL || !json_object_is_type(o, json_type_object))
		goto out;
	v->status =
	        ssm_status_parse(jstr(o, "Status"), jstr(o, "StatusDetails"));
	/* The script ran past executionTimeout (the agent killed it), as
	 * opposed to a command never delivered. */
	v->exec_timed_out =
	        v->status == SSM_TIMED_OUT &&
	        jstr(o, "StatusDetails") != NULL &&
	        loose_eq(jstr(o, "StatusDetails"), "Execution Timed Out");
	if (json_object_object_get_ex(o, "ResponseCode", &rc) &&
	    json_object_is_type(rc, json_type_int))
		v->response_code = json_object_get_int(rc);
	out = jstr(o, "StandardOutputContent");
	err = jstr(o, "StandardErrorContent");
	buf_reset(&v->out);
	buf_reset(&v->err);
	buf_puts(&v->out, out ? out : "");
	buf_puts(&v->err, err ? err : "");
	v->truncated = (out && utf8_chars(out) >= SSM_OUTPUT_LIMIT) ||
	               (err && utf8_chars(err) >= SSM_OUTPUT_LIMIT);
	ret = 0;
out:
	json_object_put(o);
	return ret;
}

void
ssm_parse_error(const char *json, long status, struct aws_error *e)
{
	struct json_object *o = json_tokener_parse(json ? json : "");
	const char *type = NULL, *msg = NULL;

	e->status = status;
	/* Gateways (and moto's auth layer) answer in the query protocol's XML. */
	if (o == NULL && json && json[strspn(json, " \t\r\n")] == '<') {
		ec2_parse_error(json, strlen(json), status, e);
		return;
	}
	if (o && json_object_is_type(o, json_type_object)) {
		type = jstr(o, "__type");
		msg = jstr(o, "message");
		if (msg == NULL)
			msg = jstr(o, "Message");
	}
	if (type && strchr(type, '#'))
		type = strrchr(type, '#') + 1;
	if (type)
		snprintf(e->code, sizeof(e->code), "%s", type);
	else
		snprintf(e->code, sizeof(e->code), "HTTP%ld", status);
	snprintf(e->message, sizeof(e->message), "%s", msg ? msg : "");
	e->kind = aws_error_classify(status, e->code);
	json_object_put(o);
}

void
ssm_shell_quote(struct buf *b, const char *arg)
{
	buf_putc(b, '\'');
	for (; *arg; arg++) {
		if (*arg == '\'')
			buf_puts(b, "'\\''");
		else
			buf_putc(b, *arg);
	}
	buf_putc(b, '\'');
}

int
ssm_command_body(const char *instance_id, const char *const *argv, size_t argc,
                 int exec_timeout, struct buf *out)
{
	struct json_object *root = json_object_new_object();
	struct json_object *ids = json_object_new_array();
	struct json_object *params = json_object_new_object();
	struct json_object *cmds = json_object_new_array();
	struct json_object *tmo = json_object_new_array();
	struct buf line = BUF_INIT;
	char t[32];
	size_t i;

	for (i = 0; i < argc; i++) {
		if (i > 0)
			buf_putc(&line, ' ');
		ssm_shell_quote(&line, argv[i]);
	}
	snprintf(t, sizeof(t), "%d", exec_timeout);
	json_object_array_add(ids, json_object_new_string(instance_id));
	json_object_array_add(cmds, json_object_new_string(buf_str(&line)));
	json_object_array_add(tmo, json_object_new_string(t));
	json_object_object_add(params, "commands", cmds);
	json_object_object_add(params, "executionTimeout", tmo);
	json_object_object_add(root, "DocumentName",
	                       json_object_new_string("AWS-RunShellScript"));
	json_object_object_add(root, "InstanceIds", ids);
	json_object_object_add(root, "Parameters", params);
	json_object_object_add(root, "TimeoutSeconds",
	                       json_object_new_int(SSM_DELIVERY_TIMEOUT));
	buf_puts(out, json_object_to_json_string_ext(
	                      root, JSON_C_TO_STRING_PLAIN |
	                                    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(root);
	buf_free(&line);
	return out->failed ? -1 : 0;
}

/* One call; 0 on 2xx with the body in `resp`, else -1 with `err`. */
static int
ssm_call(struct aws_client *c, const char *op, const char *body,
         struct buf *resp, struct aws_error *err)
{
	char target[96];
	long status = 0;

	memset(err, 0, sizeof(*err));
	snprintf(err->action, sizeof(err->action), "%s", op);
	snprintf(err->service, sizeof(err->service), "ssm");
	snprintf(target, sizeof(target), "AmazonSSM.%s", op);
	if (aws_post(c, "ssm", SSM_CONTENT_TYPE, target, body, &status, resp,
	             err) == -1)
		return -1;
	if (status >= 200 && status < 300)
		return 0;
	ssm_parse_error(buf_str(resp), status, err);
	/* Not-found answers are ordinary here; the caller decides. */
	if (err->kind != AWS_NOT_FOUND)
		log_warn("ssm_call",
		         "action=%s status=%ld code=%s kind=%s message=%s", op,
		         status, log_q(err->code),
		         aws_error_kind_name(err->kind), log_q(err->message));
	return -1;
}

int
ssm_send_command(struct aws_client *c, const char *instance_id,
                 const char *const *argv, size_t argc, int exec_timeout,
                 char command_id[static 64], struct aws_error *err)
{
	struct buf body = BUF_INIT, resp = BUF_INIT;
	struct json_object *o = NULL, *cmd;
	const char *id;
	int rc = -1;

	command_id[0] = '\0';
	ssm_command_body(instance_id, argv, argc, exec_timeout, &body);
	if (ssm_call(c, "SendCommand", buf_str(&body), &resp, err) == -1)
		goto out;
	o = json_tokener_parse(buf_str(&resp));
	if (o == NULL || !json_object_object_get_ex(o, "Command", &cmd) ||
	    (id = jstr(cmd, "CommandId")) == NULL || strlen(id) >= 64) {
		err->kind = AWS_INVALID;
		snprintf(err->message, sizeof(err->message),
		         "SendCommand answer without a CommandId");
		goto out;
	}
	snprintf(command_id, 64, "%s", id);
	log_info("ssm_send_command", "instance_id=%s command_id=%s",
	         log_q(instance_id), log_q(command_id));
	rc = 0;
out:
	json_object_put(o);
	buf_free(&body);
	buf_free(&resp);
	return rc;
}

/* A body of string members: {"k1":"v1",...}; pairs end with NULL. */
static void
json_body(struct buf *out, ...)
{
	struct json_object *o = json_object_new_object();
	const char *k;
	va_list ap;

	va_start(ap, out);
	while ((k = va_arg(ap, const char *)) != NULL)
		json_object_object_add(
		        o, k, json_object_new_string(va_arg(ap, const char *)));
	va_end(ap);
	buf_puts(out, json_object_to_json_string_ext(
	                      o, JSON_C_TO_STRING_PLAIN |
	                                 JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

int
ssm_get_invocation(struct aws_client *c, const char *command_id,
                   const char *instance_id, struct ssm_invocation *v,
                   struct aws_error *err)
{
	struct buf body = BUF_INIT, resp = BUF_INIT;
	int rc = -1;

	json_body(&body, "CommandId", command_id, "InstanceId", instance_id,
	          NULL);
	if (ssm_call(c, "GetCommandInvocation", buf_str(&body), &resp, err) ==
	    -1)
		goto out;
	if (ssm_parse_invocation(buf_str(&resp), v) == -1) {
		err->kind = AWS_INVALID;
		snprintf(err->message, sizeof(err->message),
		         "GetCommandInvocation answer is not JSON");
		goto out;
	}
	rc = 0;
out:
	buf_free(&body);
	buf_free(&resp);
	return rc;
}

static bool
key_valid(const char *k)
{
	if (k == NULL || k[0] == '\0' || strlen(k) > 128)
		return false;
	for (; *k; k++)
		if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') ||
		      (*k >= '0' && *k <= '9') || *k == '_' || *k == '-' ||
		      *k == '.'))
			return false;
	return true;
}

int
ssm_parameter_name(const struct config *cfg, const char *slug, const char *key,
                   struct buf *out)
{
	if (!key_valid(slug) || !key_valid(cfg->env_instance) ||
	    (key && !key_valid(key)))
		return -1;
	buf_printf(out, "%s/%s/%s", cfg->ec2_ssm_parameter_prefix,
	           cfg->env_instance, slug);
	if (key)
		buf_printf(out, "/%s", key);
	return 0;
}

static void
wipe(struct buf *b)
{
	if (b->data)
		OPENSSL_cleanse(b->data, b->len);
	buf_free(b);
}

/*
 * PutParameter refuses Tags together with Overwrite, so a new parameter
 * is created with its tags and an existing one (already tagged when it
 * was created) is overwritten without them; with `retag`, it is deleted
 * and created again, so it carries these tags and no older ones.
 */
int
ssm_put_parameter(struct aws_client *c, const char *name, const char *value,
                  const struct aws_tag *tags, size_t ntags, bool retag,
                  struct aws_error *err)
{
	struct json_object *o = json_object_new_object();
	struct json_object *tl = json_object_new_array();
	struct buf body = BUF_INIT, resp = BUF_INIT;
	size_t i;
	int rc;

	json_object_object_add(o, "Name", json_object_new_string(name));
	json_object_object_add(o, "Value", json_object_new_string(value));
	json_object_object_add(o, "Type",
	                       json_object_new_string("SecureString"));
	for (i = 0; i < ntags; i++) {
		struct json_object *t = json_object_new_object();

		json_object_object_add(t, "Key",
		                       json_object_new_string(tags[i].key));
		json_object_object_add(t, "Value",
		                       json_object_new_string(tags[i].value));
		json_object_array_add(tl, t);
	}
	json_object_object_add(o, "Tags", tl);
	buf_puts(&body, json_object_to_json_string_ext(
	                        o, JSON_C_TO_STRING_PLAIN |
	                                   JSON_C_TO_STRING_NOSLASHESCAPE));
	rc = ssm_call(c, "PutParameter", buf_str(&body), &resp, err);
	if (rc == -1 && retag &&
	    strcmp(err->code, "ParameterAlreadyExists") == 0) {
		buf_reset(&resp);
		rc = ssm_delete_parameter(c, name, err);
		if (rc == 0)
			rc = ssm_call(c, "PutParameter", buf_str(&body), &resp,
			              err);
	}
	if (rc == -1 && strcmp(err->code, "ParameterAlreadyExists") == 0) {
		json_object_object_del(o, "Tags");
		json_object_object_add(o, "Overwrite",
		                       json_object_new_boolean(1));
		wipe(&body);
		buf_reset(&resp);
		buf_puts(&body,
		         json_object_to_json_string_ext(
		                 o, JSON_C_TO_STRING_PLAIN |
		                            JSON_C_TO_STRING_NOSLASHESCAPE));
		rc = ssm_call(c, "PutParameter", buf_str(&body), &resp, err);
	}
	/* The serialised tree holds the value too: wipe it before freeing. */
	json_object_object_add(o, "Value", json_object_new_string(""));
	json_object_put(o);
	wipe(&body);
	buf_free(&resp);
	if (rc == 0)
		log_info("ssm_put_parameter", "name=%s", log_q(name));
	return rc;
}

int
ssm_get_parameter(struct aws_client *c, const char *name, struct buf *value,
                  struct aws_error *err)
{
	struct buf body = BUF_INIT, resp = BUF_INIT;
	struct json_object *o = NULL, *p;
	struct json_object *dec = json_object_new_object();
	const char *v;
	int rc = -1;

	json_object_object_add(dec, "Name", json_object_new_string(name));
	json_object_object_add(dec, "WithDecryption",
	                       json_object_new_boolean(1));
	buf_puts(&body,
	         json_object_to_json_string_ext(dec, JSON_C_TO_STRING_PLAIN));
	json_object_put(dec);
	if (ssm_call(c, "GetParameter", buf_str(&body), &resp, err) == -1)
		goto out;
	o = json_tokener_parse(buf_str(&resp));
	if (o == NULL || !json_object_object_get_ex(o, "Parameter", &p) ||
	    (v = jstr(p, "Value")) == NULL) {
		err->kind = AWS_INVALID;
		snprintf(err->message, sizeof(err->message),
		         "GetParameter answer without a value");
		goto out;
	}
	buf_puts(value, v);
	rc = 0;
out:
	json_object_put(o);
	buf_free(&body);
	wipe(&resp);
	return rc;
}

int
ssm_delete_parameter(struct aws_client *c, const char *name,
                     struct aws_error *err)
{
	struct buf body = BUF_INIT, resp = BUF_INIT;
	int rc;

	json_body(&body, "Name", name, NULL);
	rc = ssm_call(c, "DeleteParameter", buf_str(&body), &resp, err);
	if (rc == -1 && err->kind == AWS_NOT_FOUND)
		rc = 0;
	buf_free(&body);
	buf_free(&resp);
	return rc;
}

/*
 * DescribeParameters, filtered by path, lists names and never values
 * (GetParametersByPath could decrypt every parameter under the path, a
 * permission the workers need not hold); each name is given to `each`
 * (when set) and then deleted (`remove`) as it comes.
 */
static int
path_walk(struct aws_client *c, const char *path, bool remove, ssm_name_fn each,
          void *arg, size_t *n, struct aws_error *err)
{
	struct buf body = BUF_INIT, resp = BUF_INIT, next = BUF_INIT;
	size_t page, i;
	int rc = -1;

	*n = 0;
	for (page = 0; page < SSM_MAX_PAGES; page++) {
		struct json_object *q = json_object_new_object(), *o, *ps;
		struct json_object *fl = json_object_new_array();
		struct json_object *f = json_object_new_object();
		struct json_object *vals = json_object_new_array();
		const char *tok;

		json_object_array_add(vals, json_object_new_string(path));
		json_object_object_add(f, "Key",
		                       json_object_new_string("Path"));
		json_object_object_add(f, "Option",
		                       json_object_new_string("Recursive"));
		json_object_object_add(f, "Values", vals);
		json_object_array_add(fl, f);
		json_object_object_add(q, "ParameterFilters", fl);
		json_object_object_add(q, "MaxResults",
		                       json_object_new_int(50));
		if (next.len)
			json_object_object_add(
			        q, "NextToken",
			        json_object_new_string(buf_str(&next)));
		buf_reset(&body);
		buf_reset(&resp);
		buf_puts(&body,
		         json_object_to_json_string_ext(
		                 q, JSON_C_TO_STRING_PLAIN |
		                            JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(q);
		if (ssm_call(c, "DescribeParameters", buf_str(&body), &resp,
		             err) == -1)
			goto out;
		o = json_tokener_parse(buf_str(&resp));
		if (o == NULL ||
		    !json_object_object_get_ex(o, "Parameters", &ps) ||
		    !json_object_is_type(ps, json_type_array)) {
			json_object_put(o);
			err->kind = AWS_INVALID;
			goto out;
		}
		for (i = 0; i < json_object_array_length(ps); i++) {
			const char *name =
			        jstr(json_object_array_get_idx(ps, i), "Name");

			if (name == NULL)
				continue;
			if (each != NULL && each(arg, name) == -1) {
				json_object_put(o);
				err->kind = AWS_INVALID;
				snprintf(err->message, sizeof(err->message),
				         "recording %s failed", name);
				goto out;
			}
			if (remove &&
			    ssm_delete_parameter(c, name, err) == -1) {
				json_object_put(o);
				goto out;
			}
			(*n)++;
		}
		tok = jstr(o, "NextToken");
		buf_reset(&next);
		buf_puts(&next, tok ? tok : "");
		json_object_put(o);
		if (next.len == 0) {
			rc = 0;
			goto out;
		}
	}
out:
	wipe(&resp);
	buf_free(&body);
	buf_free(&next);
	return rc;
}

int
ssm_delete_path(struct aws_client *c, const char *path, size_t *n,
                struct aws_error *err)
{
	return path_walk(c, path, true, NULL, NULL, n, err);
}

int
ssm_count_path(struct aws_client *c, const char *path, size_t *n,
               struct aws_error *err)
{
	return path_walk(c, path, false, NULL, NULL, n, err);
}

int
ssm_list_path(struct aws_client *c, const char *path, ssm_name_fn each,
              void *arg, size_t *n, struct aws_error *err)
{
	return path_walk(c, path, false, each, arg, n, err);
}
