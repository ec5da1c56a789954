/*
 * test_decide.c - the webhook's decision table: every recorded delivery in
 * the shared fixtures, sequences over a current environment row (stale
 * events, closed PRs, approval, drafts, the opt-in label), and the policy.
 */
#include <dirent.h>

#include "fixture.h"
#include "../../fcgi-app/app.h"

static const struct policy default_policy = {false, "preview",
                                             "preview-approved", false, false};

/* The event name is the fixture's file name up to the first dot. */
static int
event_from_fixture(const char *rel, struct event *ev)
{
	struct buf b = BUF_INIT, err = BUF_INIT;
	const char *base = strrchr(rel, '/');
	char name[64];
	size_t n;
	int rc = -1;

	base = base ? base + 1 : rel;
	n = strcspn(base, ".");
	snprintf(name, sizeof(name), "%.*s", (int)n, base);
	if (fixture_read(rel, &b) == 0) {
		struct slice s = {b.data, b.len};

		rc = event_parse(ev, name, s, &err);
		if (rc == -1)
			fprintf(stderr, "  %s: %s\n", rel, buf_str(&err));
	}
	buf_free(&b);
	buf_free(&err);
	return rc;
}

static const struct fixture_case {
	const char *file;
	enum change_op op;
	const char *result, *reason, *desired;
	bool trusted, reconcile;
} fixture_cases[] = {
        {"installation.created.json", CHANGE_IGNORE, "ignored",
         "installation action not handled", NULL, false, false},
        {"installation.deleted.json", CHANGE_UNINSTALL, "applied",
         "installation deleted", "destroyed", false, true},
        {"installation_repositories.added.json", CHANGE_IGNORE, "ignored",
         "installation action not handled", NULL, false, false},
        {"installation_repositories.removed.json", CHANGE_UNINSTALL, "applied",
         "repositories removed", "destroyed", false, true},
        {"issue_comment.created.issue.json", CHANGE_IGNORE, "ignored",
         "comment on an issue", NULL, false, false},
        {"issue_comment.created.pull_request.app.json", CHANGE_IGNORE,
         "ignored", "no /preview command", NULL, false, false},
        {"issue_comment.created.pull_request.json", CHANGE_IGNORE, "ignored",
         "no /preview command", NULL, false, false},
        {"ping.app.json", CHANGE_PING, "ping", "ping", NULL, false, false},
        {"ping.json", CHANGE_PING, "ping", "ping", NULL, false, false},
        {"pull_request.closed.merged.json", CHANGE_IGNORE, "ignored",
         "closed, never deployed", NULL, false, false},
        {"pull_request.closed.not-merged.json", CHANGE_IGNORE, "ignored",
         "closed, never deployed", NULL, false, false},
        {"pull_request.labeled.json", CHANGE_ENV, "applied", "deploy",
         "running", true, true},
        {"pull_request.opened.fork.json", CHANGE_ENV, "applied",
         "awaiting approval", "awaiting_approval", false, true},
        {"pull_request.opened.json", CHANGE_ENV, "applied", "deploy", "running",
         true, true},
        {"pull_request.opened.null-body.json", CHANGE_ENV, "applied", "deploy",
         "running", true, true},
        {"pull_request.reopened.json", CHANGE_ENV, "applied", "deploy",
         "running", true, true},
        {"pull_request.synchronize.fork.json", CHANGE_ENV, "applied",
         "awaiting approval", "awaiting_approval", false, true},
        {"pull_request.synchronize.json", CHANGE_ENV, "applied", "deploy",
         "running", true, true},
        {"pull_request.unlabeled.json", CHANGE_ENV, "applied", "deploy",
         "running", true, true},
        {"signed/pull_request.opened.body", CHANGE_ENV, "applied", "deploy",
         "running", true, true},
        {"signed/pull_request.synchronize.body", CHANGE_ENV, "applied",
         "deploy", "running", true, true},
        {"signed/pull_request.closed.merged.body", CHANGE_IGNORE, "ignored",
         "closed, never deployed", NULL, false, false},
};

static void
check_case(const struct fixture_case *c, const struct change *ch)
{
	if (ch->op != c->op)
		fprintf(stderr, "  %s: op %d, want %d\n", c->file, ch->op,
		        c->op);
	CHECK(ch->op == c->op);
	CHECK_STR(ch->result, c->result);
	CHECK_STR(ch->reason, c->reason);
	CHECK_STR(ch->desired, c->desired);
	CHECK(ch->trusted == c->trusted);
	CHECK(ch->reconcile == c->reconcile);
	CHECK(ch->command == NULL);
}

/* Every file in the fixture directory must have a row above. */
static void
test_every_fixture(void)
{
	char dir[1024], rel[1200];
	struct dirent *de;
	size_t i, seen = 0;
	DIR *d;

	for (i = 0; i < NELEM(fixture_cases); i++) {
		struct event ev;
		struct change ch;

		snprintf(rel, sizeof(rel), "github/webhooks/%s",
		         fixture_cases[i].file);
		if (event_from_fixture(rel, &ev) == -1) {
			CHECK(!"fixture parses");
			continue;
		}
		CHECK(ev.missing == NULL);
		/* The fields app.h promises are never NULL. */
		CHECK(ev.sender && ev.title && ev.author && ev.state &&
		      ev.author_association && ev.head_ref && ev.head_repo &&
		      ev.base_ref && ev.base_repo && ev.clone_url &&
		      ev.comment_body && ev.commenter &&
		      ev.commenter_association && ev.action && ev.name);
		decide(&ev, NULL, 1, &default_policy, &ch);
		check_case(&fixture_cases[i], &ch);
		if (ch.op == CHANGE_ENV)
			CHECK(ch.create && ch.set_sha && ch.metadata);
		event_free(&ev);
	}
	snprintf(dir, sizeof(dir), "%s/github/webhooks", fixture_dir());
	d = opendir(dir);
	CHECK(d != NULL);
	while (d && (de = readdir(d)) != NULL) {
		bool known = false;

		if (strstr(de->d_name, ".json") == NULL)
			continue;
		for (i = 0; i < NELEM(fixture_cases); i++)
			known |= strcmp(fixture_cases[i].file, de->d_name) == 0;
		if (!known)
			fprintf(stderr, "  fixture %s has no case\n",
			        de->d_name);
		CHECK(known);
		seen++;
	}
	if (d)
		closedir(d);
	CHECK(seen == 19);
}

static void
test_fixture_fields(void)
{
	struct event ev;

	if (event_from_fixture("github/webhooks/pull_request.opened.fork.json",
	                       &ev) == -1)
		return;
	CHECK_STR(ev.repo, "packit-service/packit");
	CHECK(ev.pr == 342);
	CHECK_STR(ev.head_repo, "lbarcziova/packit");
	CHECK_STR(ev.author_association, "CONTRIBUTOR");
	CHECK(!event_trusted(&ev));
	event_free(&ev);
	if (event_from_fixture("github/webhooks/pull_request.opened.json",
	                       &ev) == -1)
		return;
	CHECK_STR(ev.head_sha, "ec26c3e57ca3a959ca5aad62de7213c562f8c821");
	CHECK_STR(ev.head_ref, "changes");
	CHECK(ev.installation_id == 1);
	CHECK(ev.nlabels == 1 && strcmp(ev.labels[0], "bug") == 0);
	CHECK(ev.updated_at == 1557933633);
	CHECK(event_trusted(&ev));
	event_free(&ev);
	if (event_from_fixture("github/webhooks/installation.deleted.json",
	                       &ev) == -1)
		return;
	CHECK(ev.installation_id == 2);
	CHECK(ev.nrepos == 1 &&
	      strcmp(ev.repos[0], "octocat/Hello-World") == 0);
	event_free(&ev);
	if (event_from_fixture(
	            "github/webhooks/installation_repositories.removed.json",
	            &ev) == -1)
		return;
	CHECK(ev.nrepos == 1 &&
	      strcmp(ev.repos[0], "octocat/Hello-World") == 0);
	event_free(&ev);
	if (event_from_fixture(
	            "github/webhooks/issue_comment.created.pull_request.app.json",
	            &ev) == -1)
		return;
	CHECK(ev.is_pr && ev.pr == 1418 && ev.comment_id == 3296937722u);
	CHECK_STR(ev.commenter_association, "MEMBER");
	CHECK(ev.installation_id == 1924121);
	event_free(&ev);
}

/* A pull_request payload built from parts, for sequences and variants. */
static void
pr_json(struct buf *b, const char *action, const char *updated, const char *sha,
        bool fork, bool draft, const char *labels, const char *label)
{
	buf_reset(b);
	buf_printf(b,
	           "{\"action\":\"%s\",\"number\":7,"
	           "\"pull_request\":{\"number\":7,\"state\":\"%s\","
	           "\"title\":\"t\",\"draft\":%s,\"updated_at\":\"%s\","
	           "\"user\":{\"login\":\"%s\"},"
	           "\"author_association\":\"%s\",\"labels\":[%s],"
	           "\"head\":{\"ref\":\"b\",\"sha\":\"%s\",\"repo\":"
	           "{\"full_name\":\"%s\",\"clone_url\":\"https://x\"}},"
	           "\"base\":{\"ref\":\"main\",\"repo\":{\"full_name\":"
	           "\"o/app\"}}},%s%s%s"
	           "\"repository\":{\"full_name\":\"o/app\"},"
	           "\"sender\":{\"login\":\"s\"},\"installation\":{\"id\":5}}",
	           action, strcmp(action, "closed") == 0 ? "closed" : "open",
	           draft ? "true" : "false", updated, fork ? "f" : "o",
	           fork ? "CONTRIBUTOR" : "MEMBER", labels, sha,
	           fork ? "f/app" : "o/app",
	           label ? "\"label\":{\"name\":\"" : "", label ? label : "",
	           label ? "\"}," : "");
}

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define T1 "2026-01-01T10:00:00Z"
#define T2 "2026-01-01T10:05:00Z"
#define T3 "2026-01-01T10:09:00Z"

struct step {
	const char *action, *updated, *sha;
	bool fork, draft;
	const char *labels, *label;
	/* what should happen */
	enum change_op op;
	const char *result, *desired; /* desired NULL: unchanged */
	bool reconcile;
	const char *command;
};

/*
 * Runs steps against one environment row that the test keeps the way
 * delivery.c would (desired, sha, the stale guard), delivery ids 1, 2...
 */
static void
run_steps(const char *name, const struct step *steps, size_t n,
          const struct policy *pol)
{
	struct env_state cur;
	bool exists = false;
	struct buf b = BUF_INIT, err = BUF_INIT;
	size_t i;

	memset(&cur, 0, sizeof(cur));
	for (i = 0; i < n; i++) {
		const struct step *s = &steps[i];
		struct event ev;
		struct change ch;
		struct slice js;

		pr_json(&b, s->action, s->updated, s->sha, s->fork, s->draft,
		        s->labels ? s->labels : "", s->label);
		js.ptr = b.data;
		js.len = b.len;
		if (event_parse(&ev, "pull_request", js, &err) == -1) {
			fprintf(stderr, "  %s step %zu: %s\n", name, i,
			        buf_str(&err));
			CHECK(!"parses");
			continue;
		}
		decide(&ev, exists ? &cur : NULL, i + 1, pol, &ch);
		if (ch.op != s->op || strcmp(ch.result, s->result) != 0 ||
		    (s->desired &&
		     !(ch.desired && strcmp(ch.desired, s->desired) == 0)) ||
		    ch.reconcile != s->reconcile ||
		    (s->command == NULL) != (ch.command == NULL))
			fprintf(stderr,
			        "  %s step %zu (%s): op=%d result=%s "
			        "reason=%s desired=%s reconcile=%d\n",
			        name, i, s->action, ch.op, ch.result, ch.reason,
			        ch.desired ? ch.desired : "-", ch.reconcile);
		CHECK(ch.op == s->op);
		CHECK_STR(ch.result, s->result);
		if (s->desired)
			CHECK_STR(ch.desired, s->desired);
		CHECK(ch.reconcile == s->reconcile);
		if (s->command)
			CHECK_STR(ch.command, s->command);
		else
			CHECK(ch.command == NULL);
		if (ch.op == CHANGE_ENV) {
			exists = true;
			if (ch.desired)
				snprintf(cur.desired, sizeof(cur.desired), "%s",
				         ch.desired);
			if (ch.set_sha)
				snprintf(cur.desired_sha,
				         sizeof(cur.desired_sha), "%s",
				         ev.head_sha);
			cur.pr_updated_at = ev.updated_at;
			cur.has_updated_at = true;
			cur.last_delivery_id = i + 1;
		}
		event_free(&ev);
	}
	buf_free(&b);
	buf_free(&err);
}

#define RUN(steps, pol) run_steps(#steps, steps, NELEM(steps), pol)

static void
test_lifecycle_and_stale(void)
{
	static const struct step closed_then_old_sync[] = {
	        {"opened", T1, SHA_A, 0, 0, 0, 0, CHANGE_ENV, "applied",
	         "running", true, 0},
	        {"closed", T3, SHA_B, 0, 0, 0, 0, CHANGE_ENV, "applied",
	         "destroyed", true, 0},
	        /* The push happened before the close; it arrives late. */
	        {"synchronize", T2, SHA_B, 0, 0, 0, 0, CHANGE_IGNORE, "stale",
	         NULL, false, 0},
	        /* Even a newer-looking one does not resurrect it. */
	        {"synchronize", "2026-01-02T00:00:00Z", SHA_B, 0, 0, 0, 0,
	         CHANGE_IGNORE, "ignored", NULL, false, 0},
	        /* A closed redelivery changes nothing more. */
	        {"closed", "2026-01-02T00:00:00Z", SHA_B, 0, 0, 0, 0,
	         CHANGE_ENV, "applied", "destroyed", false, 0},
	        {"reopened", "2026-01-03T00:00:00Z", SHA_B, 0, 0, 0, 0,
	         CHANGE_ENV, "applied", "running", true, 0},
	};
	static const struct step pushes[] = {
	        {"opened", T1, SHA_A, 0, 0, 0, 0, CHANGE_ENV, "applied",
	         "running", true, 0},
	        {"synchronize", T2, SHA_B, 0, 0, 0, 0, CHANGE_ENV, "applied",
	         "running", true, 0},
	        /* The same updated_at again (a second delivery): applied,
	         * but nothing to reconcile. */
	        {"synchronize", T2, SHA_B, 0, 0, 0, 0, CHANGE_ENV, "applied",
	         "running", false, 0},
	        /* An older event loses. */
	        {"synchronize", T1, SHA_A, 0, 0, 0, 0, CHANGE_IGNORE, "stale",
	         NULL, false, 0},
	        {"edited", T3, SHA_B, 0, 0, 0, 0, CHANGE_ENV, "applied",
	         "running", false, 0},
	};

	RUN(closed_then_old_sync, &default_policy);
	RUN(pushes, &default_policy);
}

/* Same updated_at: the later delivery id wins, an earlier one is stale. */
static void
test_delivery_order(void)
{
	struct buf b = BUF_INIT, err = BUF_INIT;
	struct env_state cur = {.id = 1,
	                        .desired = "running",
	                        .desired_sha = SHA_B,
	                        .has_updated_at = true,
	                        .last_delivery_id = 10};
	struct event ev;
	struct change ch;
	struct slice js;

	pr_json(&b, "synchronize", T2, SHA_A, 0, 0, "", NULL);
	js.ptr = b.data;
	js.len = b.len;
	CHECK(event_parse(&ev, "pull_request", js, &err) == 0);
	cur.pr_updated_at = ev.updated_at;
	decide(&ev, &cur, 9, &default_policy, &ch);
	CHECK_STR(ch.result, "stale");
	decide(&ev, &cur, 11, &default_policy, &ch);
	CHECK_STR(ch.result, "applied");
	CHECK(ch.reconcile);
	event_free(&ev);
	buf_free(&b);
	buf_free(&err);
}

static void
test_trust_and_approval(void)
{
	static const struct step fork[] = {
	        {"opened", T1, SHA_A, 1, 0, 0, 0, CHANGE_ENV, "applied",
	         "awaiting_approval", true, 0},
	        {"synchronize", T2, SHA_B, 1, 0, 0, 0, CHANGE_ENV, "applied",
	         "awaiting_approval", true, 0},
	        /* The trusted label is recorded for a worker to authorise. */
	        {"labeled", T3, SHA_B, 1, 0, "{\"name\":\"preview-approved\"}",
	         "preview-approved", CHANGE_ENV, "applied", "awaiting_approval",
	         false, "approve"},
	};
	struct policy open = default_policy;
	static const struct step fork_open[] = {
	        {"opened", T1, SHA_A, 1, 0, 0, 0, CHANGE_ENV, "applied",
	         "running", true, 0},
	};

	RUN(fork, &default_policy);
	open.deploy_untrusted = true;
	RUN(fork_open, &open);
}

static void
test_approved_env_stays_trusted(void)
{
	struct buf b = BUF_INIT, err = BUF_INIT;
	struct env_state cur = {.id = 1,
	                        .desired = "running",
	                        .desired_sha = SHA_A,
	                        .approved = true};
	struct event ev;
	struct change ch;
	struct slice js;

	pr_json(&b, "synchronize", T2, SHA_B, 1, 0, "", NULL);
	js.ptr = b.data;
	js.len = b.len;
	CHECK(event_parse(&ev, "pull_request", js, &err) == 0);
	decide(&ev, &cur, 2, &default_policy, &ch);
	CHECK_STR(ch.desired, "running");
	CHECK(ch.trusted && ch.reconcile);
	event_free(&ev);
	buf_free(&b);
	buf_free(&err);
}

static void
test_drafts(void)
{
	static const struct step drafts[] = {
	        /* A draft with no environment: nothing to create. */
	        {"opened", T1, SHA_A, 0, 1, 0, 0, CHANGE_IGNORE, "ignored",
	         NULL, false, 0},
	        {"ready_for_review", T2, SHA_A, 0, 0, 0, 0, CHANGE_ENV,
	         "applied", "running", true, 0},
	        {"converted_to_draft", T3, SHA_A, 0, 1, 0, 0, CHANGE_ENV,
	         "applied", "stopped", true, 0},
	};
	static const struct step drafts_allowed[] = {
	        {"opened", T1, SHA_A, 0, 1, 0, 0, CHANGE_ENV, "applied",
	         "running", true, 0},
	};
	struct policy p = default_policy;

	RUN(drafts, &default_policy);
	p.deploy_drafts = true;
	RUN(drafts_allowed, &p);
}

static void
test_label_trigger(void)
{
	static const struct step opt_in[] = {
	        {"opened", T1, SHA_A, 0, 0, 0, 0, CHANGE_IGNORE, "ignored",
	         NULL, false, 0},
	        {"labeled", T2, SHA_A, 0, 0, "{\"name\":\"preview\"}",
	         "preview", CHANGE_ENV, "applied", "running", true, 0},
	        /* Another label on a running env: nothing to do. */
	        {"labeled", T2, SHA_A, 0, 0,
	         "{\"name\":\"preview\"},{\"name\":\"bug\"}", "bug", CHANGE_ENV,
	         "applied", "running", false, 0},
	        {"unlabeled", T3, SHA_A, 0, 0, "{\"name\":\"bug\"}", "preview",
	         CHANGE_ENV, "applied", "stopped", true, 0},
	        /* An unrelated label does not wake it... */
	        {"labeled", "2026-01-01T11:00:00Z", SHA_A, 0, 0,
	         "{\"name\":\"bug\"},{\"name\":\"x\"}", "x", CHANGE_ENV,
	         "applied", "stopped", false, 0},
	        /* ...a push without the label neither. */
	        {"synchronize", "2026-01-01T12:00:00Z", SHA_B, 0, 0,
	         "{\"name\":\"bug\"}", 0, CHANGE_ENV, "applied", "stopped",
	         true, 0},
	};
	struct policy p = default_policy;

	p.label_trigger = true;
	RUN(opt_in, &p);
}

/* A stopped (idle) environment wakes on activity, not on a label. */
static void
test_stopped_wakes_on_push(void)
{
	struct buf b = BUF_INIT, err = BUF_INIT;
	struct env_state cur = {
	        .id = 1, .desired = "stopped", .desired_sha = SHA_A};
	struct event ev;
	struct change ch;
	struct slice js;

	pr_json(&b, "labeled", T2, SHA_A, 0, 0, "{\"name\":\"x\"}", "x");
	js = (struct slice){b.data, b.len};
	CHECK(event_parse(&ev, "pull_request", js, &err) == 0);
	decide(&ev, &cur, 2, &default_policy, &ch);
	CHECK_STR(ch.desired, "stopped");
	CHECK(!ch.reconcile);
	event_free(&ev);
	pr_json(&b, "synchronize", T2, SHA_B, 0, 0, "", NULL);
	js = (struct slice){b.data, b.len};
	CHECK(event_parse(&ev, "pull_request", js, &err) == 0);
	decide(&ev, &cur, 3, &default_policy, &ch);
	CHECK_STR(ch.desired, "running");
	CHECK(ch.reconcile);
	event_free(&ev);
	buf_free(&b);
	buf_free(&err);
}

static void
test_edited_base(void)
{
	struct buf b = BUF_INIT, err = BUF_INIT;
	struct env_state cur = {
	        .id = 1, .desired = "running", .desired_sha = SHA_A};
	struct event ev;
	struct change ch;
	struct slice js;
	char *p;

	pr_json(&b, "edited", T2, SHA_A, 0, 0, "", NULL);
	p = strstr(b.data, "\"repository\"");
	CHECK(p != NULL);
	{
		struct buf c = BUF_INIT;

		buf_append(&c, b.data, (size_t)(p - b.data));
		buf_puts(
		        &c,
		        "\"changes\":{\"base\":{\"ref\":{\"from\":\"old\"}}},");
		buf_puts(&c, p);
		js = (struct slice){c.data, c.len};
		CHECK(event_parse(&ev, "pull_request", js, &err) == 0);
		buf_free(&c);
	}
	CHECK(ev.base_changed);
	decide(&ev, &cur, 2, &default_policy, &ch);
	CHECK(ch.op == CHANGE_ENV && ch.reconcile);
	event_free(&ev);
	buf_free(&b);
	buf_free(&err);
}

static void
test_installation_actions(void)
{
	static const struct {
		const char *name, *action;
		enum change_op op;
	} cases[] = {
	        {"installation", "deleted", CHANGE_UNINSTALL},
	        {"installation", "suspend", CHANGE_UNINSTALL},
	        {"installation", "unsuspend", CHANGE_IGNORE},
	        {"installation", "created", CHANGE_IGNORE},
	        {"installation_repositories", "removed", CHANGE_UNINSTALL},
	        {"installation_repositories", "added", CHANGE_IGNORE},
	};
	struct buf b = BUF_INIT, err = BUF_INIT;
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		struct event ev;
		struct change ch;

		buf_reset(&b);
		buf_printf(
		        &b,
		        "{\"action\":\"%s\",\"installation\":{\"id\":7},"
		        "\"repositories\":[{\"full_name\":\"o/a\"}],"
		        "\"repositories_removed\":[{\"full_name\":\"o/b\"}]}",
		        cases[i].action);
		CHECK(event_parse(&ev, cases[i].name,
		                  (struct slice){b.data, b.len}, &err) == 0);
		decide(&ev, NULL, 1, &default_policy, &ch);
		CHECK(ch.op == cases[i].op);
		CHECK(ev.installation_id == 7 && ev.nrepos == 1);
		CHECK_STR(ev.repos[0],
		          ev.kind == EVENT_INSTALLATION ? "o/a" : "o/b");
		event_free(&ev);
	}
	/* Without an installation id nothing can be scoped: ignored. */
	{
		struct event ev;
		struct change ch;

		CHECK(event_parse(&ev, "installation",
		                  slice_of("{\"action\":\"deleted\"}"),
		                  &err) == 0);
		decide(&ev, NULL, 1, &default_policy, &ch);
		CHECK(ch.op == CHANGE_IGNORE);
		CHECK_STR(ch.reason, "malformed payload");
		event_free(&ev);
	}
	buf_free(&b);
	buf_free(&err);
}

static void
comment_json(struct buf *b, const char *body, const char *type,
             const char *state, bool on_pr)
{
	buf_reset(b);
	buf_puts(b, "{\"action\":\"created\",\"issue\":{\"number\":7,");
	if (on_pr)
		buf_puts(b, "\"pull_request\":{\"url\":\"x\"},");
	buf_printf(b,
	           "\"title\":\"t\",\"state\":\"%s\",\"user\":{\"login\":"
	           "\"a\"},\"author_association\":\"NONE\"},"
	           "\"comment\":{\"id\":99,\"body\":",
	           state);
	buf_append_json_string(b, body, strlen(body));
	buf_printf(b,
	           ",\"user\":{\"login\":\"c\",\"type\":\"%s\"},"
	           "\"author_association\":\"MEMBER\"},"
	           "\"repository\":{\"full_name\":\"o/app\"},"
	           "\"sender\":{\"login\":\"c\"}}",
	           type);
}

static void
test_comment_commands(void)
{
	static const struct {
		const char *body, *type, *state;
		bool on_pr;
		const char *command, *args, *reason;
	} cases[] = {
	        {"/preview deploy", "User", "open", true, "deploy", "", NULL},
	        {"looks good\n  /preview approve\nthanks", "User", "open", true,
	         "approve", "", NULL},
	        {"/preview keep 48h", "User", "open", true, "keep", "48h",
	         NULL},
	        {"/preview redeploy\r\n", "User", "open", true, "redeploy", "",
	         NULL},
	        {"/preview stop", "User", "open", true, "stop", "", NULL},
	        {"/preview destroy", "User", "open", true, "destroy", "", NULL},
	        {"/preview explode", "User", "open", true, NULL, NULL,
	         "unknown /preview command"},
	        {"/preview deployx", "User", "open", true, NULL, NULL,
	         "unknown /preview command"},
	        {"> /preview deploy", "User", "open", true, NULL, NULL,
	         "no /preview command"},
	        {"please /preview deploy", "User", "open", true, NULL, NULL,
	         "no /preview command"},
	        {"/previewdeploy", "User", "open", true, NULL, NULL,
	         "no /preview command"},
	        {"/preview deploy", "Bot", "open", true, NULL, NULL,
	         "comment by a bot"},
	        {"/preview deploy", "User", "closed", true, NULL, NULL,
	         "pull request closed"},
	        {"/preview deploy", "User", "open", false, NULL, NULL,
	         "comment on an issue"},
	        {"/preview keep $(rm -rf /);\x01\"'`", "User", "open", true,
	         "keep", "$(rm -rf /);\"'`", NULL},
	};
	struct buf b = BUF_INIT, err = BUF_INIT;
	struct env_state cur = {.id = 3, .desired = "running"};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		struct event ev;
		struct change ch;
		struct slice js;

		comment_json(&b, cases[i].body, cases[i].type, cases[i].state,
		             cases[i].on_pr);
		js = (struct slice){b.data, b.len};
		if (event_parse(&ev, "issue_comment", js, &err) == -1) {
			CHECK(!"parses");
			continue;
		}
		decide(&ev, &cur, 1, &default_policy, &ch);
		if (cases[i].command) {
			CHECK(ch.op == CHANGE_COMMAND);
			CHECK_STR(ch.command, cases[i].command);
			CHECK_STR(ch.command_args, cases[i].args);
			CHECK_STR(ch.command_source, "comment");
			CHECK(!ch.create && ch.desired == NULL);
			/* Unknown PR: a placeholder row, stopped. */
			decide(&ev, NULL, 1, &default_policy, &ch);
			CHECK(ch.create);
			CHECK_STR(ch.desired, "stopped");
		} else {
			if (ch.op != CHANGE_IGNORE)
				fprintf(stderr, "  case %zu: op %d\n", i,
				        ch.op);
			CHECK(ch.op == CHANGE_IGNORE);
			CHECK_STR(ch.reason, cases[i].reason);
		}
		event_free(&ev);
	}
	buf_free(&b);
	buf_free(&err);
}

UNIT_MAIN(TEST(test_every_fixture), TEST(test_fixture_fields),
          TEST(test_lifecycle_and_stale), TEST(test_delivery_order),
          TEST(test_trust_and_approval), TEST(test_approved_env_stays_trusted),
          TEST(test_drafts), TEST(test_label_trigger),
          TEST(test_stopped_wakes_on_push), TEST(test_edited_base),
          TEST(test_comment_commands), TEST(test_installation_actions))
