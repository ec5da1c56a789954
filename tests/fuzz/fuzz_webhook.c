/*
 * fuzz_webhook.c - libFuzzer over what a signed delivery can carry:
 * body bytes → (form decoding) → event_parse → decide, against no
 * environment and against a few existing ones, plus the comment command
 * parser on the raw bytes. Two leading bytes choose the event name, the
 * encoding and the environment row; the rest is the body.
 *
 * Invariants checked beyond "no crash, no leak, no UB": every string the
 * event hands out is valid UTF-8, a change never asks for an unknown
 * desired state, and a stale or ignored change writes nothing. And the
 * one-pass scanner (jscan.c) agrees with the json-c parser it replaced
 * (tests/reference/event_jsonc.c): whatever it accepts json-c accepted,
 * with the same event.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../fcgi-app/app.h"
#include "../reference/event_jsonc.c"

static const char *const names[] = {
        "pull_request", "issue_comment",
        "installation", "installation_repositories",
        "ping",         "push",
};

static void
must(bool ok)
{
	if (!ok)
		abort();
}

static void
str_ok(const char *s)
{
	if (s != NULL)
		must(utf8_valid(s, strlen(s)));
}

static void
change_ok(const struct change *ch)
{
	static const char *const states[] = {"running", "stopped", "destroyed",
	                                     "awaiting_approval"};
	size_t i;
	bool known = ch->desired == NULL;

	for (i = 0; i < NELEM(states) && !known; i++)
		known = strcmp(ch->desired, states[i]) == 0;
	must(known);
	must(ch->result != NULL && ch->reason != NULL);
	if (ch->op == CHANGE_IGNORE)
		must(!ch->create && !ch->reconcile && ch->command == NULL);
	must(strlen(ch->command_args) <= 64);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	struct policy pol = {false, "preview", "preview-approved", false,
	                     false};
	struct env_state cur;
	struct event ev, ref;
	struct change ch;
	const char *name;
	int rc, ref_rc;
	struct buf err = BUF_INIT;
	struct slice body;
	char *form = NULL, *text, args[65];
	bool unknown;
	size_t i;

	if (!init) {
		log_init("fuzz", LOG_ERROR + 1);
		init = true;
	}
	if (size < 2)
		return 0;
	body.ptr = (const char *)data + 2;
	body.len = size - 2;
	if (data[0] & 0x80) {
		form = form_payload(body);
		if (form == NULL)
			return 0;
		body = slice_of(form);
	}
	pol.label_trigger = data[1] & 0x10;
	pol.deploy_drafts = data[1] & 0x20;
	pol.deploy_untrusted = data[1] & 0x40;
	name = names[(data[0] & 0x7f) % NELEM(names)];
	rc = event_parse(&ev, name, body, &err);
	ref_rc = ref_event_parse(&ref, name, body, &err);
	/* Stricter than json-c (RFC 8259 only), never laxer. */
	must(rc == -1 || ref_rc == 0);
	if (rc == 0 && ref_rc == 0 && ref_event_diff(&ev, &ref) != NULL) {
		fprintf(stderr, "jscan and json-c differ: %s\n",
		        ref_event_diff(&ev, &ref));
		abort();
	}
	event_free(&ref);
	if (rc == 0) {
		char **strs[] = {&ev.name,      &ev.action,      &ev.repo,
		                 &ev.title,     &ev.author,      &ev.head_ref,
		                 &ev.head_repo, &ev.base_ref,    &ev.clone_url,
		                 &ev.label,     &ev.comment_body};

		for (i = 0; i < NELEM(strs); i++)
			str_ok(*strs[i]);
		for (i = 0; i < ev.nlabels; i++)
			str_ok(ev.labels[i]);
		for (i = 0; i < ev.nrepos; i++)
			str_ok(ev.repos[i]);
		decide(&ev, NULL, 5, &pol, &ch);
		change_ok(&ch);
		memset(&cur, 0, sizeof(cur));
		cur.id = 1;
		cur.has_updated_at = data[1] & 1;
		cur.pr_updated_at = ev.updated_at + (data[1] & 2 ? 1 : -1);
		cur.last_delivery_id = 5;
		cur.approved = data[1] & 4;
		snprintf(cur.desired, sizeof(cur.desired), "%s",
		         (data[1] & 8) ? "destroyed" : "running");
		decide(&ev, &cur, 5 + (data[1] & 1), &pol, &ch);
		change_ok(&ch);
	}
	event_free(&ev);
	/* The command parser sees comment bodies as raw text. */
	text = xstrndup(body.ptr, body.len);
	(void)command_parse(text, args, &unknown);
	must(strlen(args) <= 64);
	free(text);
	free(form);
	buf_free(&err);
	return 0;
}
