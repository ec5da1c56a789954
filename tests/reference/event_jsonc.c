/*
 * event_jsonc.c - the json-c payload parser that fcgi-app/event.c used
 * before jscan.c, kept verbatim (but for its names) as the reference the
 * new parser is compared with: test_jscan.c over every recorded fixture
 * and hostile variants, fuzz_webhook.c over whatever libFuzzer makes.
 * Test code only; it is #included by those two files, and never linked
 * into a program.
 *
 * json-c ownership, once: json_tokener_parse_ex hands us the one reference
 * to the root; every object reached through json_object_object_get_ex or
 * json_object_array_get_idx is borrowed from it and dies with it. The root
 * is put before ref_event_parse returns.
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "../../fcgi-app/app.h"

/* Enough for any GitHub payload (they nest about 6 deep), and bounded. */
#define REF_JSON_DEPTH 64
#define REF_MAX_LABELS 100
#define REF_MAX_REPOS 10000

/* Follows a dotted path of object keys; NULL if any step is missing. */
static struct json_object *
ref_jget(struct json_object *o, const char *path)
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
ref_jstr(struct json_object *root, const char *path, size_t max_chars)
{
	struct json_object *o = ref_jget(root, path);

	if (o == NULL || !json_object_is_type(o, json_type_string))
		return NULL;
	return utf8_clean(json_object_get_string(o),
	                  (size_t)json_object_get_string_len(o), max_chars);
}

static char *
ref_jstr_or_empty(struct json_object *root, const char *path, size_t max_chars)
{
	char *s = ref_jstr(root, path, max_chars);

	return s ? s : xstrdup("");
}

/* A positive integer field within [1, max]; false if absent or mistyped. */
static bool
ref_juint(struct json_object *root, const char *path, uint64_t max,
          uint64_t *out)
{
	struct json_object *o = ref_jget(root, path);
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
ref_jbool(struct json_object *root, const char *path)
{
	struct json_object *o = ref_jget(root, path);

	return o != NULL && json_object_is_type(o, json_type_boolean) &&
	       json_object_get_boolean(o);
}

/* The `key` string of each object in the array at `path`. */
static char **
ref_jnames(struct json_object *root, const char *path, const char *key,
           size_t max_items, size_t max_chars, size_t *n)
{
	struct json_object *a = ref_jget(root, path);
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
		char *s = ref_jstr(json_object_array_get_idx(a, i), key,
		                   max_chars);

		if (s != NULL)
			out[(*n)++] = s;
	}
	return out;
}

static void
ref_pull_request_parse(struct event *ev, struct json_object *root)
{
	struct json_object *pr = ref_jget(root, "pull_request");
	char *t;

	ev->title = ref_jstr_or_empty(pr, "title", 1024);
	ev->author = ref_jstr_or_empty(pr, "user.login", 255);
	ev->author_association =
	        ref_jstr_or_empty(pr, "author_association", 32);
	ev->state = ref_jstr_or_empty(pr, "state", 16);
	ev->draft = ref_jbool(pr, "draft");
	ev->merged = ref_jbool(pr, "merged");
	ev->head_ref = ref_jstr_or_empty(pr, "head.ref", 255);
	ev->head_repo = ref_jstr_or_empty(pr, "head.repo.full_name", 255);
	ev->base_ref = ref_jstr_or_empty(pr, "base.ref", 255);
	ev->base_repo = ref_jstr_or_empty(pr, "base.repo.full_name", 255);
	ev->clone_url = ref_jstr_or_empty(pr, "head.repo.clone_url", 1024);
	ev->labels = ref_jnames(pr, "labels", "name", REF_MAX_LABELS, 100,
	                        &ev->nlabels);
	ev->label = ref_jstr(root, "label.name", 100);
	ev->base_changed = ref_jget(root, "changes.base") != NULL;
	ev->is_pr = true;
	ev->head_sha = ref_jstr(pr, "head.sha", 64);
	t = ref_jstr(pr, "updated_at", 40);
	ev->has_updated_at = t && parse_iso8601(t, &ev->updated_at) == 0;
	free(t);
	if (ev->repo == NULL)
		ev->missing = "repository.full_name";
	else if (pr == NULL || !json_object_is_type(pr, json_type_object))
		ev->missing = "pull_request";
	else if (!ref_juint(pr, "number", UINT32_MAX, &ev->pr))
		ev->missing = "pull_request.number";
	else if (!event_sha_valid(ev->head_sha))
		ev->missing = "pull_request.head.sha";
	else if (!ev->has_updated_at)
		ev->missing = "pull_request.updated_at";
}

static void
ref_issue_comment_parse(struct event *ev, struct json_object *root)
{
	struct json_object *issue = ref_jget(root, "issue");
	struct json_object *p = ref_jget(issue, "pull_request");

	ev->is_pr = p != NULL && json_object_is_type(p, json_type_object);
	ev->title = ref_jstr_or_empty(issue, "title", 1024);
	ev->author = ref_jstr_or_empty(issue, "user.login", 255);
	ev->author_association =
	        ref_jstr_or_empty(issue, "author_association", 32);
	ev->state = ref_jstr_or_empty(issue, "state", 16);
	ev->labels = ref_jnames(issue, "labels", "name", REF_MAX_LABELS, 100,
	                        &ev->nlabels);
	/* Commands sit in the first lines; a huge body is cut, not refused. */
	ev->comment_body = ref_jstr_or_empty(root, "comment.body", 4096);
	ev->commenter = ref_jstr_or_empty(root, "comment.user.login", 255);
	ev->commenter_association =
	        ref_jstr_or_empty(root, "comment.author_association", 32);
	{
		char *type = ref_jstr(root, "comment.user.type", 32);

		ev->commenter_bot = type && strcmp(type, "Bot") == 0;
		free(type);
	}
	if (ev->repo == NULL)
		ev->missing = "repository.full_name";
	else if (!ref_juint(issue, "number", UINT32_MAX, &ev->pr))
		ev->missing = "issue.number";
	else if (!ref_juint(root, "comment.id", INT64_MAX, &ev->comment_id))
		ev->missing = "comment.id";
}

static void
ref_installation_parse(struct event *ev, struct json_object *root)
{
	const char *list = ev->kind == EVENT_INSTALLATION
	                           ? "repositories"
	                           : "repositories_removed";

	ev->repos = ref_jnames(root, list, "full_name", REF_MAX_REPOS, 255,
	                       &ev->nrepos);
	if (ev->installation_id == 0)
		ev->missing = "installation.id";
}

static int
ref_event_parse(struct event *ev, const char *name, struct slice json,
                struct buf *err)
{
	struct json_tokener *tok;
	struct json_object *root;
	enum json_tokener_error jerr;
	int rc = -1;

	memset(ev, 0, sizeof(*ev));
	ev->name = event_word_clean(name);
	ev->kind = event_kind_of(ev->name);
	tok = json_tokener_new_ex(REF_JSON_DEPTH);
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
		char *action = ref_jstr(root, "action", 64);

		ev->action = event_word_clean(action);
		free(action);
	}
	ev->repo = ref_jstr(root, "repository.full_name", 255);
	if (!ref_juint(root, "installation.id", INT64_MAX,
	               &ev->installation_id))
		ev->installation_id = 0;
	ev->sender = ref_jstr_or_empty(root, "sender.login", 255);
	switch (ev->kind) {
	case EVENT_PULL_REQUEST:
		ref_pull_request_parse(ev, root);
		break;
	case EVENT_ISSUE_COMMENT:
		ref_issue_comment_parse(ev, root);
		break;
	case EVENT_INSTALLATION:
	case EVENT_INSTALLATION_REPOS:
		ref_installation_parse(ev, root);
		break;
	case EVENT_PING:
	case EVENT_OTHER:
		break;
	}
	event_fill_empty(ev);
	rc = 0;
out:
	json_object_put(root);
	json_tokener_free(tok);
	return rc;
}

static bool
ref_str_same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	       (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool
ref_strv_same(char **a, size_t na, char **b, size_t nb)
{
	size_t i;

	if (na != nb)
		return false;
	for (i = 0; i < na; i++)
		if (!ref_str_same(a[i], b[i]))
			return false;
	return true;
}

/* The first field in which two parsed events differ, or NULL. */
static const char *
ref_event_diff(const struct event *a, const struct event *b)
{
	const struct {
		const char *name, *x, *y;
	} strs[] = {
	        {"name", a->name, b->name},
	        {"action", a->action, b->action},
	        {"repo", a->repo, b->repo},
	        {"sender", a->sender, b->sender},
	        {"title", a->title, b->title},
	        {"author", a->author, b->author},
	        {"author_association", a->author_association,
	         b->author_association},
	        {"state", a->state, b->state},
	        {"head_ref", a->head_ref, b->head_ref},
	        {"head_repo", a->head_repo, b->head_repo},
	        {"base_ref", a->base_ref, b->base_ref},
	        {"base_repo", a->base_repo, b->base_repo},
	        {"clone_url", a->clone_url, b->clone_url},
	        {"head_sha", a->head_sha, b->head_sha},
	        {"label", a->label, b->label},
	        {"comment_body", a->comment_body, b->comment_body},
	        {"commenter", a->commenter, b->commenter},
	        {"commenter_association", a->commenter_association,
	         b->commenter_association},
	        {"missing", a->missing, b->missing},
	};
	size_t i;

	for (i = 0; i < NELEM(strs); i++)
		if (!ref_str_same(strs[i].x, strs[i].y))
			return strs[i].name;
	if (a->kind != b->kind)
		return "kind";
	if (a->installation_id != b->installation_id)
		return "installation_id";
	if (a->pr != b->pr)
		return "pr";
	if (a->is_pr != b->is_pr)
		return "is_pr";
	if (a->draft != b->draft || a->merged != b->merged)
		return "draft/merged";
	if (a->has_updated_at != b->has_updated_at ||
	    (a->has_updated_at && a->updated_at != b->updated_at))
		return "updated_at";
	if (a->base_changed != b->base_changed)
		return "base_changed";
	if (a->comment_id != b->comment_id)
		return "comment_id";
	if (a->commenter_bot != b->commenter_bot)
		return "commenter_bot";
	if (!ref_strv_same(a->labels, a->nlabels, b->labels, b->nlabels))
		return "labels";
	if (!ref_strv_same(a->repos, a->nrepos, b->repos, b->nrepos))
		return "repos";
	return NULL;
}
