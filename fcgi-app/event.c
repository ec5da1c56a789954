/*
 * event.c - a webhook payload (JSON text) → struct event, plain owned C
 * strings. Pure: no I/O. Everything is copied out of the json-c tree and
 * made safe on the way (utf8_clean, length caps that match the database
 * columns), so nothing downstream ever sees json-c or raw attacker bytes.
 *
 * json-c ownership, once: json_tokener_parse_ex hands us the one reference
 * to the root; every object reached through json_object_object_get_ex or
 * json_object_array_get_idx is borrowed from it and dies with it. The root
 * is put before event_parse returns.
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

/* Enough for any GitHub payload (they nest about 6 deep), and bounded. */
#define EVENT_JSON_DEPTH 64
#define EVENT_MAX_LABELS 100
#define EVENT_MAX_REPOS 10000

static const struct {
	const char *name;
	enum event_kind kind;
} kinds[] = {
        {"ping", EVENT_PING},
        {"pull_request", EVENT_PULL_REQUEST},
        {"issue_comment", EVENT_ISSUE_COMMENT},
        {"installation", EVENT_INSTALLATION},
        {"installation_repositories", EVENT_INSTALLATION_REPOS},
};

enum event_kind
event_kind_of(const char *name)
{
	size_t i;

	for (i = 0; i < NELEM(kinds); i++)
		if (strcmp(kinds[i].name, name) == 0)
			return kinds[i].kind;
	return EVENT_OTHER;
}

/* Follows a dotted path of object keys; NULL if any step is missing. */
static struct json_object *
jget(struct json_object *o, const char *path)
{
	char key[64];
	const char *p = path, *dot;
	size_t n;

	while (o != NULL && *p) {
		dot = strchr(p, '.');
		n = dot ? (size_t)(dot - p) : strlen(p);
		if (n >= sizeof(key) ||
		    !json_object_is_type(o, json_type_object))
			return NULL;
		memcpy(key, p, n);
		key[n] = '\0';
		if (!json_object_object_get_ex(o, key, &o))
			return NULL;
		p += n + (dot != NULL);
	}
	return o;
}

/* A string field, cleaned and capped; NULL if absent, null or not text. */
static char *
jstr(struct json_object *root, const char *path, size_t max_chars)
{
	struct json_object *o = jget(root, path);

	if (o == NULL || !json_object_is_type(o, json_type_string))
		return NULL;
	return utf8_clean(json_object_get_string(o),
	                  (size_t)json_object_get_string_len(o), max_chars);
}

static char *
jstr_or_empty(struct json_object *root, const char *path, size_t max_chars)
{
	char *s = jstr(root, path, max_chars);

	return s ? s : xstrdup("");
}

/* A positive integer field within [1, max]; false if absent or mistyped. */
static bool
juint(struct json_object *root, const char *path, uint64_t max, uint64_t *out)
{
	struct json_object *o = jget(root, path);
	int64_t v;

	if (o == NULL || !json_object_is_type(o, json_type_int))
		return false;
	v = json_object_get_int64(o);
	if (v <= 0 || (uint64_t)v > max)
		return false;
	*out = (uint64_t)v;
	return true;
}

static bool
jbool(struct json_object *root, const char *path)
{
	struct json_object *o = jget(root, path);

	return o != NULL && json_object_is_type(o, json_type_boolean) &&
	       json_object_get_boolean(o);
}

/* Keeps [a-z0-9_] only: actions go into an ASCII column and the logs. */
static char *
word_clean(const char *s)
{
	struct buf b = BUF_INIT;

	buf_append(&b, "", 0);
	for (; s && *s && b.len < 64; s++)
		if ((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		    *s == '_')
			buf_putc(&b, *s);
	return buf_detach(&b);
}

static bool
sha_valid(const char *s)
{
	size_t i;

	for (i = 0; s && s[i]; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s && i == 40;
}

/* The `key` string of each object in the array at `path`. */
static char **
jnames(struct json_object *root, const char *path, const char *key,
       size_t max_items, size_t max_chars, size_t *n)
{
	struct json_object *a = jget(root, path);
	size_t len, i;
	char **out;

	*n = 0;
	if (a == NULL || !json_object_is_type(a, json_type_array))
		return NULL;
	len = json_object_array_length(a);
	if (len > max_items)
		len = max_items;
	out = xcalloc(len + 1, sizeof(*out));
	for (i = 0; i < len; i++) {
		char *s = jstr(json_object_array_get_idx(a, i), key, max_chars);

		if (s != NULL)
			out[(*n)++] = s;
	}
	return out;
}

static void
pull_request_parse(struct event *ev, struct json_object *root)
{
	struct json_object *pr = jget(root, "pull_request");
	char *t;

	ev->title = jstr_or_empty(pr, "title", 1024);
	ev->author = jstr_or_empty(pr, "user.login", 255);
	ev->author_association = jstr_or_empty(pr, "author_association", 32);
	ev->state = jstr_or_empty(pr, "state", 16);
	ev->draft = jbool(pr, "draft");
	ev->merged = jbool(pr, "merged");
	ev->head_ref = jstr_or_empty(pr, "head.ref", 255);
	ev->head_repo = jstr_or_empty(pr, "head.repo.full_name", 255);
	ev->base_ref = jstr_or_empty(pr, "base.ref", 255);
	ev->base_repo = jstr_or_empty(pr, "base.repo.full_name", 255);
	ev->clone_url = jstr_or_empty(pr, "head.repo.clone_url", 1024);
	ev->labels = jnames(pr, "labels", "name", EVENT_MAX_LABELS, 100,
	                    &ev->nlabels);
	ev->label = jstr(root, "label.name", 100);
	ev->base_changed = jget(root, "changes.base") != NULL;
	ev->is_pr = true;
	ev->head_sha = jstr(pr, "head.sha", 64);
	t = jstr(pr, "updated_at", 40);
	ev->has_updated_at = t && parse_iso8601(t, &ev->updated_at) == 0;
	free(t);
	if (ev->repo == NULL)
		ev->missing = "repository.full_name";
	else if (pr == NULL || !json_object_is_type(pr, json_type_object))
		ev->missing = "pull_request";
	else if (!juint(pr, "number", UINT32_MAX, &ev->pr))
		ev->missing = "pull_request.number";
	else if (!sha_valid(ev->head_sha))
		ev->missing = "pull_request.head.sha";
	else if (!ev->has_updated_at)
		ev->missing = "pull_request.updated_at";
}

static void
issue_comment_parse(struct event *ev, struct json_object *root)
{
	struct json_object *issue = jget(root, "issue");
	struct json_object *p = jget(issue, "pull_request");

	ev->is_pr = p != NULL && json_object_is_type(p, json_type_object);
	ev->title = jstr_or_empty(issue, "title", 1024);
	ev->author = jstr_or_empty(issue, "user.login", 255);
	ev->author_association = jstr_or_empty(issue, "author_association", 32);
	ev->state = jstr_or_empty(issue, "state", 16);
	ev->labels = jnames(issue, "labels", "name", EVENT_MAX_LABELS, 100,
	                    &ev->nlabels);
	/* Commands sit in the first lines; a huge body is cut, not refused. */
	ev->comment_body = jstr_or_empty(root, "comment.body", 4096);
	ev->commenter = jstr_or_empty(root, "comment.user.login", 255);
	ev->commenter_association =
	        jstr_or_empty(root, "comment.author_association", 32);
	{
		char *type = jstr(root, "comment.user.type", 32);

		ev->commenter_bot = type && strcmp(type, "Bot") == 0;
		free(type);
	}
	if (ev->repo == NULL)
		ev->missing = "repository.full_name";
	else if (!juint(issue, "number", UINT32_MAX, &ev->pr))
		ev->missing = "issue.number";
	else if (!juint(root, "comment.id", INT64_MAX, &ev->comment_id))
		ev->missing = "comment.id";
}

static void
installation_parse(struct event *ev, struct json_object *root)
{
	const char *list = ev->kind == EVENT_INSTALLATION
	                           ? "repositories"
	                           : "repositories_removed";

	ev->repos = jnames(root, list, "full_name", EVENT_MAX_REPOS, 255,
	                   &ev->nrepos);
	if (ev->installation_id == 0)
		ev->missing = "installation.id";
}

/* The fields app.h promises are never NULL, for every kind of event. */
static void
empty_fill(struct event *ev)
{
	char **f[] = {&ev->sender,
	              &ev->title,
	              &ev->author,
	              &ev->author_association,
	              &ev->state,
	              &ev->head_ref,
	              &ev->head_repo,
	              &ev->base_ref,
	              &ev->base_repo,
	              &ev->clone_url,
	              &ev->comment_body,
	              &ev->commenter,
	              &ev->commenter_association};
	size_t i;

	for (i = 0; i < NELEM(f); i++)
		if (*f[i] == NULL)
			*f[i] = xstrdup("");
}

int
event_parse(struct event *ev, const char *name, struct slice json,
            struct buf *err)
{
	struct json_tokener *tok;
	struct json_object *root;
	enum json_tokener_error jerr;
	int rc = -1;

	memset(ev, 0, sizeof(*ev));
	ev->name = word_clean(name);
	ev->kind = event_kind_of(ev->name);
	tok = json_tokener_new_ex(EVENT_JSON_DEPTH);
	if (tok == NULL)
		fatal("out_of_memory", "what=json_tokener");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
	                                    JSON_TOKENER_VALIDATE_UTF8);
	root = json.len > (size_t)INT32_MAX
	               ? NULL
	               : json_tokener_parse_ex(tok, json.ptr, (int)json.len);
	jerr = json_tokener_get_error(tok);
	if (root == NULL || jerr != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != json.len) {
		buf_printf(err, "invalid JSON: %s",
		           root == NULL && jerr == json_tokener_success
		                   ? "empty"
		           : jerr == json_tokener_continue ? "truncated"
		           : jerr == json_tokener_success
		                   ? "trailing bytes"
		                   : json_tokener_error_desc(jerr));
		goto out;
	}
	if (!json_object_is_type(root, json_type_object)) {
		buf_puts(err, "invalid JSON: not an object");
		goto out;
	}
	{
		char *action = jstr(root, "action", 64);

		ev->action = word_clean(action);
		free(action);
	}
	ev->repo = jstr(root, "repository.full_name", 255);
	if (!juint(root, "installation.id", INT64_MAX, &ev->installation_id))
		ev->installation_id = 0;
	ev->sender = jstr_or_empty(root, "sender.login", 255);
	switch (ev->kind) {
	case EVENT_PULL_REQUEST:
		pull_request_parse(ev, root);
		break;
	case EVENT_ISSUE_COMMENT:
		issue_comment_parse(ev, root);
		break;
	case EVENT_INSTALLATION:
	case EVENT_INSTALLATION_REPOS:
		installation_parse(ev, root);
		break;
	case EVENT_PING:
	case EVENT_OTHER:
		break;
	}
	empty_fill(ev);
	rc = 0;
out:
	json_object_put(root);
	json_tokener_free(tok);
	return rc;
}

static void
strv_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

void
event_free(struct event *ev)
{
	if (ev == NULL)
		return;
	free(ev->name), free(ev->action), free(ev->repo), free(ev->sender);
	free(ev->title), free(ev->author), free(ev->author_association);
	free(ev->state), free(ev->head_sha), free(ev->head_ref);
	free(ev->head_repo), free(ev->base_ref), free(ev->base_repo);
	free(ev->clone_url), free(ev->label), free(ev->comment_body);
	free(ev->commenter), free(ev->commenter_association);
	strv_free(ev->labels, ev->nlabels);
	strv_free(ev->repos, ev->nrepos);
	memset(ev, 0, sizeof(*ev));
}

bool
event_has_label(const struct event *ev, const char *name)
{
	size_t i;

	for (i = 0; i < ev->nlabels; i++)
		if (strcmp(ev->labels[i], name) == 0)
			return true;
	return false;
}
