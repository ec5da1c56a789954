/*
 * decide.c - the webhook's whole judgement as one pure function:
 * (event, current environment row, delivery order, policy) → change.
 * No I/O and no clock, so every rule below is a row in test_decide.c.
 *
 * Rules (docs/architecture.md sections 2 and 5):
 *  - Desired state, not steps: a PR event sets what the environment should
 *    be (running at the head commit, stopped, awaiting approval,
 *    destroyed); a reconcile job is queued only when that changed.
 *  - Stale events never win: an event whose PR updated_at is older than
 *    the applied one, or equal but delivered earlier, changes nothing.
 *  - A closed PR stays destroyed; only `opened`/`reopened` revive it.
 *  - Trust: the head repository must be the base repository and the
 *    author OWNER, MEMBER or COLLABORATOR; otherwise the environment waits
 *    for approval (unless the policy deploys untrusted code). Approval is
 *    never decided here: a command or the trusted label is recorded for a
 *    worker to check against GitHub's permission API.
 *  - Only activity (a push, opening, ready for review, the opt-in label,
 *    a new base) raises an environment to running; any event may lower it.
 */
#include <string.h>
#include <strings.h>

#include "app.h"

static const char *const pr_actions[] = {
        "opened",  "reopened",  "ready_for_review",   "synchronize", "closed",
        "labeled", "unlabeled", "converted_to_draft", "edited",
};

static const char *const commands[] = {
        "deploy", "redeploy", "stop", "destroy", "approve", "keep",
};

static const char *const trusted_associations[] = {
        "OWNER",
        "MEMBER",
        "COLLABORATOR",
};

static bool
one_of(const char *s, const char *const *set, size_t n)
{
	size_t i;

	for (i = 0; s && i < n; i++)
		if (strcmp(s, set[i]) == 0)
			return true;
	return false;
}

static bool
eq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

void
policy_from_config(struct policy *p, const struct config *cfg)
{
	p->label_trigger = strcmp(cfg->policy_trigger, "label") == 0;
	p->label = cfg->policy_label;
	p->trusted_label = cfg->policy_trusted_label;
	p->deploy_drafts = cfg->policy_deploy_drafts;
	p->deploy_untrusted = cfg->policy_deploy_untrusted;
}

/* Repository names compare like GitHub's: without regard to case. */
static bool
same_repo(const char *a, const char *b)
{
	return a[0] != '\0' && strcasecmp(a, b) == 0;
}

bool
event_trusted(const struct event *ev)
{
	return same_repo(ev->head_repo, ev->base_repo) &&
	       same_repo(ev->base_repo, ev->repo) &&
	       one_of(ev->author_association, trusted_associations,
	              NELEM(trusted_associations));
}

static bool
stale(const struct event *ev, const struct env_state *cur, uint64_t delivery)
{
	if (!cur->has_updated_at)
		return false;
	if (ev->updated_at != cur->pr_updated_at)
		return ev->updated_at < cur->pr_updated_at;
	return delivery < cur->last_delivery_id;
}

static void
ignore(struct change *ch, const char *result, const char *reason)
{
	ch->op = CHANGE_IGNORE;
	ch->result = result;
	ch->reason = reason;
}

static void
decide_pull_request(const struct event *ev, const struct env_state *cur,
                    uint64_t delivery, const struct policy *pol,
                    struct change *ch)
{
	const char *a = ev->action, *target, *why;
	bool reopen, activating, approve_label;

	if (!one_of(a, pr_actions, NELEM(pr_actions))) {
		ignore(ch, "ignored", "pull_request action not handled");
		return;
	}
	if (ev->missing) {
		ignore(ch, "ignored", "malformed payload");
		return;
	}
	if (cur && stale(ev, cur, delivery)) {
		ignore(ch, "stale", "older than the applied event");
		return;
	}
	reopen = eq(a, "opened") || eq(a, "reopened");
	if (eq(a, "closed") || eq(ev->state, "closed")) {
		if (cur == NULL) {
			ignore(ch, "ignored", "closed, never deployed");
			return;
		}
		ch->op = CHANGE_ENV;
		ch->result = "applied";
		ch->reason = "closed";
		ch->metadata = true;
		ch->desired = "destroyed";
		ch->reconcile = !eq(cur->desired, "destroyed");
		return;
	}
	if (cur && eq(cur->desired, "destroyed") && !reopen) {
		ignore(ch, "ignored", "closed; only reopened revives it");
		return;
	}
	ch->trusted = event_trusted(ev) || (cur && cur->approved);
	activating = reopen || eq(a, "synchronize") ||
	             eq(a, "ready_for_review") ||
	             (eq(a, "labeled") && pol->label_trigger &&
	              eq(ev->label, pol->label)) ||
	             (eq(a, "edited") && ev->base_changed);
	approve_label = eq(a, "labeled") && eq(ev->label, pol->trusted_label) &&
	                !ch->trusted;
	if (pol->label_trigger && !event_has_label(ev, pol->label)) {
		target = "stopped";
		why = "label missing";
	} else if (ev->draft && !pol->deploy_drafts) {
		target = "stopped";
		why = "draft";
	} else if (!ch->trusted && !pol->deploy_untrusted) {
		target = "awaiting_approval";
		why = "awaiting approval";
	} else {
		target = "running";
		why = "deploy";
	}
	if (cur == NULL && eq(target, "stopped") && !approve_label) {
		ignore(ch, "ignored", why);
		return;
	}
	/* A label or title change never wakes a stopped environment. */
	if (cur && !activating && eq(target, "running") &&
	    !eq(cur->desired, "running")) {
		target = cur->desired;
		why = "no activity";
	}
	ch->op = CHANGE_ENV;
	ch->result = "applied";
	ch->reason = why;
	ch->create = cur == NULL;
	ch->metadata = true;
	ch->desired = target;
	ch->set_sha = true;
	ch->reconcile = cur == NULL || !eq(cur->desired, target) ||
	                !eq(cur->desired_sha, ev->head_sha) || reopen ||
	                (eq(a, "edited") && ev->base_changed);
	if (approve_label) {
		ch->command = "approve";
		ch->command_source = "label";
	}
}

/*
 * Finds "/preview <word> [args]" at the start of a line (after blanks);
 * quoted lines ("> /preview ...") start with '>' and so never match.
 * Returns the command from the table, or NULL; *unknown says whether a
 * "/preview" line was there with a word we do not know.
 */
const char *
command_parse(const char *body, char args[static 65], bool *unknown)
{
	const char *p = body, *w, *e;
	size_t n, i, o = 0;

	*unknown = false;
	args[0] = '\0';
	while (p && *p) {
		const char *line = p;

		p = strchr(p, '\n');
		p = p ? p + 1 : NULL;
		while (*line == ' ' || *line == '\t')
			line++;
		if (strncmp(line, "/preview", 8) != 0 ||
		    (line[8] != ' ' && line[8] != '\t'))
			continue;
		for (w = line + 8; *w == ' ' || *w == '\t'; w++)
			;
		for (e = w; *e >= 'a' && *e <= 'z'; e++)
			;
		n = (size_t)(e - w);
		for (i = 0; i < NELEM(commands); i++) {
			if (strlen(commands[i]) != n ||
			    strncmp(commands[i], w, n) != 0)
				continue;
			if (*e != '\0' && *e != '\n' && *e != ' ' &&
			    *e != '\t' && *e != '\r')
				break;
			while (*e == ' ' || *e == '\t')
				e++;
			for (; *e && *e != '\n' && *e != '\r' && o < 64; e++)
				if (*e >= 0x20 && *e < 0x7f)
					args[o++] = *e;
			while (o > 0 && args[o - 1] == ' ')
				o--;
			args[o] = '\0';
			return commands[i];
		}
		*unknown = true;
		return NULL;
	}
	return NULL;
}

static void
decide_comment(const struct event *ev, const struct env_state *cur,
               struct change *ch)
{
	const char *cmd;
	bool unknown;

	if (!eq(ev->action, "created")) {
		ignore(ch, "ignored", "comment action not handled");
		return;
	}
	if (ev->missing) {
		ignore(ch, "ignored", "malformed payload");
		return;
	}
	if (!ev->is_pr) {
		ignore(ch, "ignored", "comment on an issue");
		return;
	}
	/* Our own bot's comment explains the commands; never obey it. */
	if (ev->commenter_bot) {
		ignore(ch, "ignored", "comment by a bot");
		return;
	}
	cmd = command_parse(ev->comment_body, ch->command_args, &unknown);
	if (cmd == NULL) {
		ignore(ch, "ignored",
		       unknown ? "unknown /preview command"
		               : "no /preview command");
		return;
	}
	if (eq(ev->state, "closed")) {
		ignore(ch, "ignored", "pull request closed");
		return;
	}
	ch->op = CHANGE_COMMAND;
	ch->result = "command";
	ch->reason = "command recorded";
	ch->command = cmd;
	ch->command_source = "comment";
	/* Unknown PR (opened before we were installed): a placeholder row. */
	ch->create = cur == NULL;
	ch->metadata = cur == NULL;
	ch->desired = cur == NULL ? "stopped" : NULL;
}

static void
decide_installation(const struct event *ev, struct change *ch)
{
	bool removal =
	        ev->kind == EVENT_INSTALLATION
	                ? eq(ev->action, "deleted") || eq(ev->action, "suspend")
	                : eq(ev->action, "removed");

	if (!removal) {
		ignore(ch, "ignored", "installation action not handled");
		return;
	}
	if (ev->missing) {
		ignore(ch, "ignored", "malformed payload");
		return;
	}
	ch->op = CHANGE_UNINSTALL;
	ch->result = "applied";
	ch->reason = ev->kind == EVENT_INSTALLATION_REPOS
	                     ? "repositories removed"
	             : eq(ev->action, "deleted") ? "installation deleted"
	                                         : "installation suspended";
	ch->desired = "destroyed";
	ch->reconcile = true;
}

void
decide(const struct event *ev, const struct env_state *cur, uint64_t delivery,
       const struct policy *pol, struct change *ch)
{
	memset(ch, 0, sizeof(*ch));
	switch (ev->kind) {
	case EVENT_PING:
		ch->op = CHANGE_PING;
		ch->result = "ping";
		ch->reason = "ping";
		return;
	case EVENT_PULL_REQUEST:
		decide_pull_request(ev, cur, delivery, pol, ch);
		return;
	case EVENT_ISSUE_COMMENT:
		decide_comment(ev, cur, ch);
		return;
	case EVENT_INSTALLATION:
	case EVENT_INSTALLATION_REPOS:
		decide_installation(ev, ch);
		return;
	case EVENT_OTHER:
		break;
	}
	ignore(ch, "ignored", "event not handled");
}
