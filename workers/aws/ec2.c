/*
 * ec2.c - the EC2 Query API: form bodies in, XML answers out (libxml2;
 * this is the only file that includes it). Building forms and parsing
 * answers are pure and tested on recorded responses; the calls are thin.
 *
 * Answers are parsed with the network disabled and without entity
 * substitution or DTD loading (XML_PARSE_NONET, no XML_PARSE_NOENT).
 * Element names are matched by local name: success bodies carry the
 * ec2 namespace, error bodies none.
 */
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws.h"

#define EC2_CONTENT_TYPE "application/x-www-form-urlencoded; charset=utf-8"
#define EC2_MAX_PAGES 100

void
ec2_instances_free(struct ec2_instances *l)
{
	if (l == NULL)
		return;
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

void
ec2_form_add(struct buf *b, const char *key, const char *value)
{
	if (b->len > 0)
		buf_putc(b, '&');
	sigv4_uri_encode(b, key, strlen(key), false);
	buf_putc(b, '=');
	sigv4_uri_encode(b, value, strlen(value), false);
}

static void form_addf(struct buf *b, const char *value, const char *fmt, ...)
        PRINTFLIKE(3, 4);

static void
form_addf(struct buf *b, const char *value, const char *fmt, ...)
{
	char key[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(key, sizeof(key), fmt, ap);
	va_end(ap);
	ec2_form_add(b, key, value);
}

static void
form_start(struct buf *b, const char *action)
{
	ec2_form_add(b, "Action", action);
	ec2_form_add(b, "Version", EC2_API_VERSION);
}

static bool
set(const char *s)
{
	return s && s[0];
}

int
ec2_launch_form(const struct ec2_launch *l, struct buf *b)
{
	static const char *const kinds[] = {"instance", "volume"};
	size_t i, k, sg = 0;
	const char *p;

	if (!set(l->ami) && !set(l->launch_template))
		return -1;
	form_start(b, "RunInstances");
	ec2_form_add(b, "MinCount", "1");
	ec2_form_add(b, "MaxCount", "1");
	if (set(l->ami))
		ec2_form_add(b, "ImageId", l->ami);
	if (set(l->launch_template))
		ec2_form_add(b,
		             strncmp(l->launch_template, "lt-", 3) == 0
		                     ? "LaunchTemplate.LaunchTemplateId"
		                     : "LaunchTemplate.LaunchTemplateName",
		             l->launch_template);
	if (set(l->instance_type))
		ec2_form_add(b, "InstanceType", l->instance_type);
	if (set(l->subnet_id))
		ec2_form_add(b, "SubnetId", l->subnet_id);
	for (p = l->security_group_ids; set(p);) {
		size_t len = strcspn(p, ",");
		char *id = xstrndup(p, len);

		if (id[0])
			form_addf(b, id, "SecurityGroupId.%zu", ++sg);
		free(id);
		p += len + (p[len] == ',');
	}
	if (set(l->instance_profile))
		ec2_form_add(b,
		             strncmp(l->instance_profile, "arn:", 4) == 0
		                     ? "IamInstanceProfile.Arn"
		                     : "IamInstanceProfile.Name",
		             l->instance_profile);
	if (set(l->user_data)) {
		size_t n = strlen(l->user_data);
		unsigned char *enc = xmalloc(4 * ((n + 2) / 3) + 1);

		EVP_EncodeBlock(enc, (const unsigned char *)l->user_data,
		                (int)n);
		ec2_form_add(b, "UserData", (const char *)enc);
		free(enc);
	}
	for (k = 0; k < NELEM(kinds) && l->ntags > 0; k++) {
		form_addf(b, kinds[k], "TagSpecification.%zu.ResourceType",
		          k + 1);
		for (i = 0; i < l->ntags; i++) {
			form_addf(b, l->tags[i].key,
			          "TagSpecification.%zu.Tag.%zu.Key", k + 1,
			          i + 1);
			form_addf(b, l->tags[i].value,
			          "TagSpecification.%zu.Tag.%zu.Value", k + 1,
			          i + 1);
		}
	}
	if (set(l->client_token))
		ec2_form_add(b, "ClientToken", l->client_token);
	return b->failed ? -1 : 0;
}

static bool
named(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE &&
	       strcmp((const char *)n->name, name) == 0;
}

static xmlNode *
child(const xmlNode *n, const char *name)
{
	xmlNode *c;

	for (c = n ? n->children : NULL; c; c = c->next)
		if (named(c, name))
			return c;
	return NULL;
}

/*
 * The text of a child element into a fixed field (cut to fit). EC2's
 * values are leaves: their text and CDATA children, joined, are the
 * value (entities are already replaced by the parser). Read from the
 * tree, not with xmlNodeGetContent, whose result needs xmlFree, a
 * variable of libxml2's that lazylib.c cannot stand in for.
 */
static void
child_text(const xmlNode *n, const char *name, char *out, size_t size)
{
	const xmlNode *c = child(n, name), *t;
	size_t len = 0;

	out[0] = '\0';
	if (c == NULL)
		return;
	for (t = c->children; t != NULL && len + 1 < size; t = t->next) {
		if ((t->type == XML_TEXT_NODE ||
		     t->type == XML_CDATA_SECTION_NODE) &&
		    t->content != NULL) {
			snprintf(out + len, size - len, "%s",
			         (const char *)t->content);
			len += strlen(out + len);
		}
	}
}

static void
instance_read(const xmlNode *item, struct ec2_instance *in)
{
	xmlNode *tags = child(item, "tagSet"), *t;

	memset(in, 0, sizeof(*in));
	child_text(item, "instanceId", in->id, sizeof(in->id));
	child_text(child(item, "instanceState"), "name", in->state,
	           sizeof(in->state));
	child_text(item, "instanceType", in->type, sizeof(in->type));
	child_text(item, "privateIpAddress", in->private_ip,
	           sizeof(in->private_ip));
	child_text(item, "subnetId", in->subnet_id, sizeof(in->subnet_id));
	child_text(item, "launchTime", in->launch_time,
	           sizeof(in->launch_time));
	for (t = tags ? tags->children : NULL; t; t = t->next) {
		char key[128], value[256];

		if (!named(t, "item"))
			continue;
		child_text(t, "key", key, sizeof(key));
		child_text(t, "value", value, sizeof(value));
		if (strcmp(key, "ephemera:instance") == 0)
			snprintf(in->tag_instance, sizeof(in->tag_instance),
			         "%s", value);
		else if (strcmp(key, "ephemera:env") == 0)
			snprintf(in->tag_env, sizeof(in->tag_env), "%s", value);
	}
}

static void
instances_add(struct ec2_instances *l, const xmlNode *owner,
              const xmlNode *set_node)
{
	xmlNode *item;
	char account[16];

	child_text(owner, "ownerId", account, sizeof(account));

	for (item = set_node ? set_node->children : NULL; item;
	     item = item->next) {
		if (!named(item, "item"))
			continue;
		l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
		instance_read(item, &l->v[l->n]);
		memcpy(l->v[l->n].owner_id, account, sizeof(account));
		if (l->v[l->n].id[0])
			l->n++;
	}
}

static xmlDoc *
xml_read(const char *xml, size_t len)
{
	if (len > (size_t)INT32_MAX)
		return NULL;
	return xmlReadMemory(xml, (int)len, "aws.xml", NULL,
	                     XML_PARSE_NONET | XML_PARSE_NOERROR |
	                             XML_PARSE_NOWARNING);
}

/* A response's root handed to `take`, and its nextToken into `next`. */
static int
response_parse(const char *xml, size_t len,
               void (*take)(xmlNode *root, void *out), void *out,
               struct buf *next)
{
	xmlDoc *doc = xml_read(xml, len);
	xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
	char token[2048];

	if (root == NULL) {
		xmlFreeDoc(doc);
		return -1;
	}
	take(root, out);
	if (next) {
		buf_reset(next);
		child_text(root, "nextToken", token, sizeof(token));
		buf_puts(next, token);
	}
	xmlFreeDoc(doc);
	return 0;
}

static void
instances_take(xmlNode *root, void *out)
{
	struct ec2_instances *l = out;
	xmlNode *r;

	/* RunInstances: instancesSet at the top; Describe: per reservation. */
	instances_add(l, root, child(root, "instancesSet"));
	r = child(root, "reservationSet");
	for (r = r ? r->children : NULL; r; r = r->next)
		if (named(r, "item"))
			instances_add(l, r, child(r, "instancesSet"));
}

int
ec2_parse_instances(const char *xml, size_t len, struct ec2_instances *l,
                    struct buf *next)
{
	return response_parse(xml, len, instances_take, l, next);
}

void
ec2_parse_error(const char *xml, size_t len, long status, struct aws_error *err)
{
	xmlDoc *doc = xml_read(xml, len);
	xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
	xmlNode *e = child(child(root, "Errors"), "Error");

	err->code[0] = err->message[0] = '\0';
	err->status = status;
	/* Query protocols other than EC2's wrap it in ErrorResponse. */
	if (e == NULL && root && named(root, "ErrorResponse"))
		e = child(root, "Error");
	if (e) {
		child_text(e, "Code", err->code, sizeof(err->code));
		child_text(e, "Message", err->message, sizeof(err->message));
	}
	/* No body, not XML, or an Error without a Code (found by fuzzing). */
	if (err->code[0] == '\0')
		snprintf(err->code, sizeof(err->code), "HTTP%ld", status);
	err->kind = aws_error_classify(status, err->code);
	if (doc)
		xmlFreeDoc(doc);
}

/* One call; 0 on a 2xx answer in `resp`, else -1 with `err` filled. */
static int
ec2_call(struct aws_client *c, const char *action, const struct buf *form,
         struct buf *resp, struct aws_error *err)
{
	long status = 0;

	memset(err, 0, sizeof(*err));
	snprintf(err->action, sizeof(err->action), "%s", action);
	snprintf(err->service, sizeof(err->service), "ec2");
	if (aws_post(c, "ec2", EC2_CONTENT_TYPE, NULL, buf_str(form), &status,
	             resp, err) == -1)
		return -1;
	if (status >= 200 && status < 300) {
		err->kind = AWS_OK;
		return 0;
	}
	ec2_parse_error(buf_str(resp), resp->len, status, err);
	log_warn("ec2_call", "action=%s status=%ld code=%s kind=%s message=%s",
	         action, status, log_q(err->code),
	         aws_error_kind_name(err->kind), log_q(err->message));
	return -1;
}

int
ec2_run_instances(struct aws_client *c, const struct ec2_launch *l,
                  struct ec2_instance *out, struct aws_error *err)
{
	struct buf form = BUF_INIT, resp = BUF_INIT;
	struct ec2_instances got = {0};
	int rc = -1;

	if (ec2_launch_form(l, &form) == -1) {
		memset(err, 0, sizeof(*err));
		err->kind = AWS_INVALID;
		snprintf(err->message, sizeof(err->message),
		         "neither ec2.ami nor ec2.launch_template is set");
		goto out;
	}
	if (ec2_call(c, "RunInstances", &form, &resp, err) == -1)
		goto out;
	if (ec2_parse_instances(buf_str(&resp), resp.len, &got, NULL) == -1 ||
	    got.n != 1) {
		err->kind = AWS_INVALID;
		snprintf(err->message, sizeof(err->message),
		         "RunInstances answer without one instance");
		goto out;
	}
	*out = got.v[0];
	log_info("ec2_run_instances", "instance_id=%s type=%s subnet=%s",
	         out->id, log_q(l->instance_type), log_q(l->subnet_id));
	rc = 0;
out:
	ec2_instances_free(&got);
	buf_free(&form);
	buf_free(&resp);
	return rc;
}

/* The i-th comma-separated item of `list` into `out`; false past the end. */
static bool
list_item(const char *list, size_t i, char *out, size_t size)
{
	const char *p = list;

	while (p && *p) {
		size_t len = strcspn(p, ",");

		if (i-- == 0) {
			snprintf(out, size, "%.*s", (int)len, p);
			return true;
		}
		p += len + (p[len] == ',');
	}
	return false;
}

int
ec2_run_with_fallback(struct aws_client *c, struct ec2_launch *l,
                      const char *types, const char *subnets,
                      struct ec2_instance *out, struct aws_error *err)
{
	char type[64], subnet[64];
	size_t s, t;

	for (s = 0; list_item(subnets, s, subnet, sizeof(subnet)); s++) {
		for (t = 0; list_item(types, t, type, sizeof(type)); t++) {
			int rc;

			l->instance_type = type;
			l->subnet_id = subnet;
			rc = ec2_run_instances(c, l, out, err);
			/* Not left pointing at this frame's arrays. */
			l->instance_type = l->subnet_id = NULL;
			if (rc == 0)
				return 0;
			if (err->kind != AWS_CAPACITY)
				return -1;
			log_info("ec2_fallback", "type=%s subnet=%s code=%s",
			         log_q(type), log_q(subnet), log_q(err->code));
		}
	}
	return -1;
}

/* Tag filters, then the state filter (`state_key` in any of `states`). */
static void
filters_add(struct buf *form, const struct aws_tag *tags, size_t ntags,
            const char *state_key, const char *const *states, size_t nstates)
{
	size_t i;

	for (i = 0; i < ntags; i++) {
		char name[160];

		snprintf(name, sizeof(name), "tag:%s", tags[i].key);
		form_addf(form, name, "Filter.%zu.Name", i + 1);
		form_addf(form, tags[i].value, "Filter.%zu.Value.1", i + 1);
	}
	form_addf(form, state_key, "Filter.%zu.Name", ntags + 1);
	for (i = 0; i < nstates; i++)
		form_addf(form, states[i], "Filter.%zu.Value.%zu", ntags + 1,
		          i + 1);
}

/* One Describe* call's page, parsed into `out`; the next token in `next`. */
typedef int (*page_parse)(const char *xml, size_t len, void *out,
                          struct buf *next);

/* Every page of a Describe* `action` filtered by tags and states. */
static int
describe_all(struct aws_client *c, const char *action,
             const struct aws_tag *tags, size_t ntags, const char *state_key,
             const char *const *states, size_t nstates, page_parse parse,
             void *out, struct aws_error *err)
{
	struct buf form = BUF_INIT, resp = BUF_INIT, next = BUF_INIT;
	size_t page;
	int rc = -1;

	for (page = 0; page < EC2_MAX_PAGES; page++) {
		buf_reset(&form);
		buf_reset(&resp);
		form_start(&form, action);
		filters_add(&form, tags, ntags, state_key, states, nstates);
		ec2_form_add(&form, "MaxResults", "100");
		if (next.len)
			ec2_form_add(&form, "NextToken", buf_str(&next));
		if (ec2_call(c, action, &form, &resp, err) == -1)
			goto out;
		if (parse(buf_str(&resp), resp.len, out, &next) == -1) {
			err->kind = AWS_INVALID;
			snprintf(err->message, sizeof(err->message),
			         "%s answer is not XML", action);
			goto out;
		}
		if (next.len == 0) {
			rc = 0;
			goto out;
		}
	}
	err->kind = AWS_INVALID;
	snprintf(err->message, sizeof(err->message), "more than %d pages",
	         EC2_MAX_PAGES);
out:
	buf_free(&form);
	buf_free(&resp);
	buf_free(&next);
	return rc;
}

static int
instances_page(const char *xml, size_t len, void *out, struct buf *next)
{
	return ec2_parse_instances(xml, len, out, next);
}

int
ec2_describe_instances(struct aws_client *c, const struct aws_tag *tags,
                       size_t ntags, struct ec2_instances *out,
                       struct aws_error *err)
{
	static const char *const live[] = {"pending", "running", "stopping",
	                                   "stopped", "shutting-down"};

	return describe_all(c, "DescribeInstances", tags, ntags,
	                    "instance-state-name", live, NELEM(live),
	                    instances_page, out, err);
}

static void
volumes_take(xmlNode *root, void *out)
{
	struct ec2_volumes *l = out;
	xmlNode *item = child(root, "volumeSet");

	for (item = item ? item->children : NULL; item; item = item->next) {
		if (!named(item, "item"))
			continue;
		l->id = xrealloc(l->id, (l->n + 1) * sizeof(*l->id));
		child_text(item, "volumeId", l->id[l->n], sizeof(l->id[0]));
		if (l->id[l->n][0])
			l->n++;
	}
}

int
ec2_parse_volumes(const char *xml, size_t len, struct ec2_volumes *l,
                  struct buf *next)
{
	return response_parse(xml, len, volumes_take, l, next);
}

static int
volumes_page(const char *xml, size_t len, void *out, struct buf *next)
{
	return ec2_parse_volumes(xml, len, out, next);
}

int
ec2_describe_volumes(struct aws_client *c, const struct aws_tag *tags,
                     size_t ntags, struct ec2_volumes *out,
                     struct aws_error *err)
{
	/* "deleted" is gone; "deleting" is not yet. */
	static const char *const live[] = {"creating", "available", "in-use",
	                                   "deleting", "error"};

	return describe_all(c, "DescribeVolumes", tags, ntags, "status", live,
	                    NELEM(live), volumes_page, out, err);
}

void
ec2_volumes_free(struct ec2_volumes *l)
{
	if (l == NULL)
		return;
	free(l->id);
	l->id = NULL;
	l->n = 0;
}

int
ec2_instance_action(struct aws_client *c, const char *action, const char *id,
                    struct aws_error *err)
{
	struct buf form = BUF_INIT, resp = BUF_INIT;
	int rc;

	form_start(&form, action);
	ec2_form_add(&form, "InstanceId.1", id);
	rc = ec2_call(c, action, &form, &resp, err);
	if (rc == 0)
		log_info("ec2_instance_action", "action=%s instance_id=%s",
		         action, log_q(id));
	buf_free(&form);
	buf_free(&resp);
	return rc;
}

/* Running or on its way there beats stopped, which beats going away. */
static int
state_rank(const char *state)
{
	if (strcmp(state, "running") == 0 || strcmp(state, "pending") == 0)
		return 0;
	if (strcmp(state, "stopped") == 0 || strcmp(state, "stopping") == 0)
		return 1;
	return 2;
}

int
ec2_find_or_launch(struct aws_client *c, struct ec2_launch *l,
                   const char *types, const char *subnets, const char *instance,
                   const char *slug, struct ec2_instance *out, bool *launched,
                   struct aws_error *err)
{
	struct aws_tag tags[] = {{"ephemera:instance", instance},
	                         {"ephemera:env", slug}};
	struct ec2_instances found = {0};
	size_t i, best = 0;
	int rc = -1;

	*launched = false;
	if (ec2_describe_instances(c, tags, NELEM(tags), &found, err) == -1)
		goto out;
	for (i = 0; i < found.n; i++)
		if (state_rank(found.v[i].state) <
		    state_rank(found.v[best].state))
			best = i;
	/* shutting-down is on its way out: launch a new one beside it. */
	if (found.n > 0 && state_rank(found.v[best].state) < 2) {
		*out = found.v[best];
		if (found.n > 1)
			log_warn("ec2_adopt", "slug=%s instances=%zu kept=%s",
			         log_q(slug), found.n, out->id);
		log_info("ec2_adopt", "slug=%s instance_id=%s state=%s",
		         log_q(slug), out->id, out->state);
		rc = 0;
		goto out;
	}
	rc = ec2_run_with_fallback(c, l, types, subnets, out, err);
	*launched = rc == 0;
out:
	ec2_instances_free(&found);
	return rc;
}
