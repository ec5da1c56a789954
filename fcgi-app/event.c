/*
 * event.c - a webhook payload (JSON text) → struct event, plain owned C
 * strings. Pure: no I/O. The text is validated and the wanted fields found
 * in one pass by jscan.c (no tree: see why there); each is copied out and
 * made safe on the way (utf8_clean, length caps that match the database
 * columns), so nothing downstream ever sees raw attacker bytes.
 *
 * tests/reference/event_jsonc.c is the json-c parser this replaced;
 * test_jscan.c and fuzz_webhook.c check that both give the same event.
 */
#include <stdlib.h>
#include <string.h>

#include "app.h"

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

/* Every field any kind of event reads; one scan finds them all. */
enum field {
	F_ACTION,
	F_REPO,
	F_INSTALLATION,
	F_SENDER,
	F_PR,
	F_PR_NUMBER,
	F_PR_TITLE,
	F_PR_AUTHOR,
	F_PR_ASSOCIATION,
	F_PR_STATE,
	F_PR_DRAFT,
	F_PR_MERGED,
	F_PR_HEAD_REF,
	F_PR_HEAD_SHA,
	F_PR_HEAD_REPO,
	F_PR_CLONE_URL,
	F_PR_BASE_REF,
	F_PR_BASE_REPO,
	F_PR_UPDATED,
	F_PR_LABELS,
	F_LABEL,
	F_CHANGES_BASE,
	F_ISSUE_PR,
	F_ISSUE_NUMBER,
	F_ISSUE_TITLE,
	F_ISSUE_AUTHOR,
	F_ISSUE_ASSOCIATION,
	F_ISSUE_STATE,
	F_ISSUE_LABELS,
	F_COMMENT_ID,
	F_COMMENT_BODY,
	F_COMMENT_AUTHOR,
	F_COMMENT_ASSOCIATION,
	F_COMMENT_TYPE,
	F_REPOS,
	F_REPOS_REMOVED,
	F_COUNT
};

static const struct jscan_field fields[F_COUNT] = {
        [F_ACTION] = {"action", 0},
        [F_REPO] = {"repository.full_name", 0},
        [F_INSTALLATION] = {"installation.id", 0},
        [F_SENDER] = {"sender.login", 0},
        [F_PR] = {"pull_request", 0},
        [F_PR_NUMBER] = {"pull_request.number", 0},
        [F_PR_TITLE] = {"pull_request.title", 0},
        [F_PR_AUTHOR] = {"pull_request.user.login", 0},
        [F_PR_ASSOCIATION] = {"pull_request.author_association", 0},
        [F_PR_STATE] = {"pull_request.state", 0},
        [F_PR_DRAFT] = {"pull_request.draft", 0},
        [F_PR_MERGED] = {"pull_request.merged", 0},
        [F_PR_HEAD_REF] = {"pull_request.head.ref", 0},
        [F_PR_HEAD_SHA] = {"pull_request.head.sha", 0},
        [F_PR_HEAD_REPO] = {"pull_request.head.repo.full_name", 0},
        [F_PR_CLONE_URL] = {"pull_request.head.repo.clone_url", 0},
        [F_PR_BASE_REF] = {"pull_request.base.ref", 0},
        [F_PR_BASE_REPO] = {"pull_request.base.repo.full_name", 0},
        [F_PR_UPDATED] = {"pull_request.updated_at", 0},
        [F_PR_LABELS] = {"pull_request.labels[].name", EVENT_MAX_LABELS},
        [F_LABEL] = {"label.name", 0},
        [F_CHANGES_BASE] = {"changes.base", 0},
        [F_ISSUE_PR] = {"issue.pull_request", 0},
        [F_ISSUE_NUMBER] = {"issue.number", 0},
        [F_ISSUE_TITLE] = {"issue.title", 0},
        [F_ISSUE_AUTHOR] = {"issue.user.login", 0},
        [F_ISSUE_ASSOCIATION] = {"issue.author_association", 0},
        [F_ISSUE_STATE] = {"issue.state", 0},
        [F_ISSUE_LABELS] = {"issue.labels[].name", EVENT_MAX_LABELS},
        [F_COMMENT_ID] = {"comment.id", 0},
        [F_COMMENT_BODY] = {"comment.body", 0},
        [F_COMMENT_AUTHOR] = {"comment.user.login", 0},
        [F_COMMENT_ASSOCIATION] = {"comment.author_association", 0},
        [F_COMMENT_TYPE] = {"comment.user.type", 0},
        [F_REPOS] = {"repositories[].full_name", EVENT_MAX_REPOS},
        [F_REPOS_REMOVED] = {"repositories_removed[].full_name",
                             EVENT_MAX_REPOS},
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

/* A string value, cleaned and capped; NULL if absent, null or not text. */
static char *
text_of(const struct jscan_value *v, size_t max_chars)
{
	struct buf b = BUF_INIT;
	char *s;

	if (v->type != JSCAN_STRING)
		return NULL;
	if (!v->escaped)
		return utf8_clean(v->ptr, v->len, max_chars);
	jscan_string(v, &b);
	s = utf8_clean(buf_str(&b), b.len, max_chars);
	buf_free(&b);
	return s;
}

static char *
fstr(const struct jscan_result *r, enum field f, size_t max_chars)
{
	return text_of(&r[f].value, max_chars);
}

static char *
fstr_or_empty(const struct jscan_result *r, enum field f, size_t max_chars)
{
	char *s = fstr(r, f, max_chars);

	return s ? s : xstrdup("");
}

/* A positive integer field within [1, max]; false if absent or mistyped. */
static bool
fuint(const struct jscan_result *r, enum field f, uint64_t max, uint64_t *out)
{
	int64_t v;

	if (!jscan_int(&r[f].value, &v) || v <= 0 || (uint64_t)v > max)
		return false;
	*out = (uint64_t)v;
	return true;
}

static bool
ftrue(const struct jscan_result *r, enum field f)
{
	return r[f].value.type == JSCAN_TRUE;
}

/* The string items of a listed field ("labels[].name"). */
static char **
fnames(const struct jscan_result *r, enum field f, size_t max_chars, size_t *n)
{
	char **out;
	size_t i;

	*n = 0;
	out = xcalloc(r[f].nitems + 1, sizeof(*out));
	for (i = 0; i < r[f].nitems; i++) {
		char *s = text_of(&r[f].items[i], max_chars);

		if (s != NULL)
			out[(*n)++] = s;
	}
	return out;
}

/* Keeps [a-z0-9_] only: actions go into an ASCII column and the logs. */
char *
event_word_clean(const char *s)
{
	struct buf b = BUF_INIT;

	buf_append(&b, "", 0);
	for (; s && *s && b.len < 64; s++)
		if ((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		    *s == '_')
			buf_putc(&b, *s);
	return buf_detach(&b);
}

bool
event_sha_valid(const char *s)
{
	size_t i;

	for (i = 0; s && s[i]; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s && i == 40;
}

static void
pull_request_parse(struct event *ev, const struct jscan_result *r)
{
	enum jscan_type base = r[F_CHANGES_BASE].value.type;
	char *t;

	ev->title = fstr_or_empty(r, F_PR_TITLE, 1024);
	ev->author = fstr_or_empty(r, F_PR_AUTHOR, 255);
	ev->author_association = fstr_or_empty(r, F_PR_ASSOCIATION, 32);
	ev->state = fstr_or_empty(r, F_PR_STATE, 16);
	ev->draft = ftrue(r, F_PR_DRAFT);
	ev->merged = ftrue(r, F_PR_MERGED);
	ev->head_ref = fstr_or_empty(r, F_PR_HEAD_REF, 255);
	ev->head_repo = fstr_or_empty(r, F_PR_HEAD_REPO, 255);
	ev->base_ref = fstr_or_empty(r, F_PR_BASE_REF, 255);
	ev->base_repo = fstr_or_empty(r, F_PR_BASE_REPO, 255);
	ev->clone_url = fstr_or_empty(r, F_PR_CLONE_URL, 1024);
	ev->labels = fnames(r, F_PR_LABELS, 100, &ev->nlabels);
	ev->label = fstr(r, F_LABEL, 100);
	ev->base_changed = base != JSCAN_ABSENT && base != JSCAN_NULL;
	ev->is_pr = true;
	ev->head_sha = fstr(r, F_PR_HEAD_SHA, 64);
	t = fstr(r, F_PR_UPDATED, 40);
	ev->has_updated_at = t && parse_iso8601(t, &ev->updated_at) == 0;
	free(t);
	if (ev->repo == NULL)
		ev->missing = "repository.full_name";
	else if (r[F_PR].value.type != JSCAN_OBJECT)
		ev->missing = "pull_request";
	else if (!fuint(r, F_PR_NUMBER, UINT32_MAX, &ev->pr))
		ev->missing = "pull_request.number";
	else if (!event_sha_valid(ev->head_sha))
		ev->missing = "pull_request.head.sha";
	else if (!ev->has_updated_at)
		ev->missing = "pull_request.updated_at";
}

static void
issue_comment_parse(struct event *ev, const struct jscan_result *r)
{
	char *type;

	ev->is_pr = r[F_ISSUE_PR].value.type == JSCAN_OBJECT;
	ev->title = fstr_or_empty(r, F_ISSUE_TITLE, 1024);
	ev->author = fstr_or_empty(r, F_ISSUE_AUTHOR, 255);
	ev->author_association = fstr_or_empty(r, F_ISSUE_ASSOCIATION, 32);
	ev->state = fstr_or_empty(r, F_ISSUE_STATE, 16);
	ev->labels = fnames(r, F_ISSUE_LABELS, 100, &ev->nlabels);
	/* Commands sit in the first lines; a huge body is cut, not refused. */
	ev->comment_body = fstr_or_empty(r, F_COMMENT_BODY, 4096);
	ev->commenter = fstr_or_empty(r, F_COMMENT_AUTHOR, 255);
	ev->commenter_association = fstr_or_empty(r, F_COMMENT_ASSOCIATION, 32);
	type = fstr(r, F_COMMENT_TYPE, 32);
	ev->commenter_bot = type && strcmp(type, "Bot") == 0;
	free(type);
	if (ev->repo == NULL)
		ev->missing = "repository.full_name";
	else if (!fuint(r, F_ISSUE_NUMBER, UINT32_MAX, &ev->pr))
		ev->missing = "issue.number";
	else if (!fuint(r, F_COMMENT_ID, INT64_MAX, &ev->comment_id))
		ev->missing = "comment.id";
}

static void
installation_parse(struct event *ev, const struct jscan_result *r)
{
	enum field list =
	        ev->kind == EVENT_INSTALLATION ? F_REPOS : F_REPOS_REMOVED;

	/* Absent or not an array: no list, as before. */
	if (r[list].nitems > 0)
		ev->repos = fnames(r, list, 255, &ev->nrepos);
	if (ev->installation_id == 0)
		ev->missing = "installation.id";
}

/* The fields app.h promises are never NULL, for every kind of event. */
void
event_fill_empty(struct event *ev)
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
	struct jscan_result r[F_COUNT];
	const char *why;
	int rc = -1;

	memset(ev, 0, sizeof(*ev));
	ev->name = event_word_clean(name);
	ev->kind = event_kind_of(ev->name);
	if (jscan_parse(json, fields, F_COUNT, r, &why) == -1) {
		buf_printf(err, "invalid JSON: %s", why);
		goto out;
	}
	{
		char *action = fstr(r, F_ACTION, 64);

		ev->action = event_word_clean(action);
		free(action);
	}
	ev->repo = fstr(r, F_REPO, 255);
	if (!fuint(r, F_INSTALLATION, INT64_MAX, &ev->installation_id))
		ev->installation_id = 0;
	ev->sender = fstr_or_empty(r, F_SENDER, 255);
	switch (ev->kind) {
	case EVENT_PULL_REQUEST:
		pull_request_parse(ev, r);
		break;
	case EVENT_ISSUE_COMMENT:
		issue_comment_parse(ev, r);
		break;
	case EVENT_INSTALLATION:
	case EVENT_INSTALLATION_REPOS:
		installation_parse(ev, r);
		break;
	case EVENT_PING:
	case EVENT_OTHER:
		break;
	}
	event_fill_empty(ev);
	rc = 0;
out:
	jscan_results_free(r, F_COUNT);
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
