/*
 * fuzz_github.c - libFuzzer over what GitHub (or a PR author) can make
 * the GitHub App code read: Link headers, API answers through the
 * classifier, and hostile PR text through the comment renderer. The first
 * byte chooses the target; the rest is the input.
 *
 * Invariants beyond "no crash, no leak, no UB": a next-page URL is a
 * substring of the header between '<' and '>'; a retry always comes with
 * a positive delay; a rendered comment has exactly one marker, and no '<'
 * from the input survives outside the <pre> block (which escapes it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../workers/workers.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static void
must(bool ok)
{
	if (!ok)
		abort();
}

static void
fuzz_link(const char *s)
{
	struct buf out = BUF_INIT;

	if (github_link_next(s, &out)) {
		must(out.len > 0 && strstr(s, out.data) != NULL);
		must(memchr(out.data, '>', out.len) == NULL);
	}
	buf_free(&out);
}

static void
fuzz_classify(const unsigned char *data, size_t size)
{
	struct github_backoff bo = {1000, 300000};
	struct github_response r;
	int64_t ms;
	enum github_verdict v;

	if (size < 4)
		return;
	github_response_init(&r);
	r.status = 100 + (data[0] | data[1] << 8) % 500;
	r.ratelimit_remaining = data[2] % 3 - 1;
	r.retry_after = data[3] % 5 == 0 ? -1 : data[3];
	r.ratelimit_reset = 1000000 + (int64_t)data[2] * 7 - 500;
	buf_append(&r.body, data + 4, size - 4);
	v = github_classify(&r, 1000000, data[3] % 40, &bo, &ms);
	must(v != GH_RETRY || ms > 0);
	must(v == GH_RETRY || ms == 0);
	github_response_free(&r);
}

/* Fields separated by NUL: title, branch, error, log, phase, sha. */
static void
fuzz_comment(const unsigned char *data, size_t size)
{
	char *copy = xmalloc(size + 1), *f[6] = {"", "", "", "", "ready", ""};
	struct github_view v;
	struct buf b = BUF_INIT;
	const char *p, *pre, *end;
	size_t i, n = 0;

	memcpy(copy, data, size);
	copy[size] = '\0';
	for (p = copy; n < NELEM(f) && p <= copy + size; n++) {
		f[n] = (char *)p;
		p += strlen(p) + 1;
	}
	memset(&v, 0, sizeof(v));
	v.slug = "pr-1-app";
	v.title = f[0];
	v.head_ref = f[1];
	v.build_error = f[2];
	v.log_tail = f[3];
	v.phase = f[4];
	v.sha = f[5];
	v.why = (enum github_why)(size % (WHY_CLOSED + 1));
	v.log_lines = 20;
	v.url = "http://pr-1-app.localhost/";
	v.updated = "2026-01-01T00:00:00Z";
	must(github_comment_render(&v, &b) == 0);
	p = strstr(b.data, "<!-- ephemera:preview pr-1-app -->");
	must(p == b.data && strstr(p + 1, "<!-- ephemera") == NULL);
	/* The input's '<' may only appear escaped: count the template's. */
	pre = strstr(b.data, "<pre>");
	if (pre != NULL)
		pre += strlen("<pre>");
	end = pre ? strstr(pre, "</pre>") : NULL;
	must(pre == NULL || end != NULL);
	for (i = 0; i < b.len; i++) {
		if (pre != NULL && b.data + i >= pre && b.data + i < end)
			must(b.data[i] != '<' && b.data[i] != '>');
	}
	must(strstr(b.data, "<script") == NULL &&
	     strstr(b.data, "<img") == NULL);
	buf_free(&b);
	free(copy);
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	char *s;

	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		s = xstrndup((const char *)data + 1, size - 1);
		fuzz_link(s);
		free(s);
		break;
	case 1:
		fuzz_classify(data + 1, size - 1);
		break;
	default:
		fuzz_comment(data + 1, size - 1);
		break;
	}
	return 0;
}
