/*
 * github_comment.c - the one PR comment Ephemera keeps current, rendered
 * from a plain view of the environment. Pure: no I/O, the time comes in
 * as text. Also the small decisions the notifier makes from the database
 * state (why there is no preview, which deployment statuses to send),
 * kept here because they are what the comment and the Deployment show.
 *
 * Hostile text (title, branch, author, errors, logs) never reaches the
 * output raw: inline text becomes character references for every ASCII
 * punctuation byte, so Markdown and HTML see only literal characters;
 * '@' is followed by a zero-width space so nobody gets mentioned; log
 * lines go into a <pre> block, HTML-escaped.
 */
#include <string.h>

#include "../workers.h"

#define TITLE_MAX 200
#define LOG_BYTES_MAX 6000

void
github_comment_marker(const char *slug, struct buf *out)
{
	/* The slug is one DNS label (slug.c), safe inside a comment. */
	buf_printf(out, "<!-- ephemera:preview %s -->", slug);
}

/* Cuts at most `max` bytes without splitting a UTF-8 sequence. */
static size_t
utf8_cut(const char *s, size_t n, size_t max)
{
	if (n <= max)
		return n;
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return n;
}

void
github_md_text(struct buf *b, const char *s, size_t max)
{
	size_t n, i;

	if (s == NULL)
		return;
	n = utf8_cut(s, strlen(s), max);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f) {
			buf_putc(b, ' ');
		} else if (c == '@') {
			buf_puts(b, "@&#8203;");
		} else if (c < 0x80 && strchr("\\`*_{}[]()<>#+-.!|&\"'~=:$%^/"
		                              ";?,",
		                              c) != NULL) {
			buf_printf(b, "&#%u;", c);
		} else {
			buf_putc(b, (char)c);
		}
	}
	if (n < strlen(s))
		buf_puts(b, "…");
}

/* A URL as a Markdown link destination: <...>, unsafe bytes %-encoded. */
static void
md_url(struct buf *b, const char *url)
{
	const char *p;

	buf_putc(b, '<');
	for (p = url; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c <= 0x20 || c >= 0x7f || strchr("<>\"`|\\{}^", c))
			buf_printf(b, "%%%02X", c);
		else
			buf_putc(b, (char)c);
	}
	buf_putc(b, '>');
}

/* [url](<url>), the visible text escaped like any other text. */
static void
md_link(struct buf *b, const char *text, const char *url)
{
	buf_putc(b, '[');
	github_md_text(b, text, 1024);
	buf_puts(b, "](");
	md_url(b, url);
	buf_putc(b, ')');
}

/* The commit as 12 hex digits; anything else was never a SHA. */
static void
md_sha(struct buf *b, const char *sha)
{
	size_t i;

	if (sha == NULL || strlen(sha) < 7) {
		buf_puts(b, "—");
		return;
	}
	for (i = 0; sha[i] && i < 40; i++)
		if (strchr("0123456789abcdef", sha[i]) == NULL) {
			buf_puts(b, "—");
			return;
		}
	buf_puts(b, "`");
	buf_append(b, sha, i < 12 ? i : 12);
	buf_puts(b, "`");
}

static const char *
headline(const struct github_view *v)
{
	switch (v->why) {
	case WHY_APPROVAL:
		return "⏸️ Preview awaiting approval";
	case WHY_LABEL:
		return "➖ No preview (label missing)";
	case WHY_DRAFT:
		return "➖ No preview (draft)";
	case WHY_QUEUED:
		return "⏳ Preview queued";
	case WHY_BUDGET:
		return "💰 Preview waiting for budget";
	case WHY_FAILED:
		return "❌ Preview failed";
	case WHY_IDLE:
	case WHY_STOPPED:
		return "💤 Preview stopped";
	case WHY_CLOSED:
		return "🗑️ Preview removed";
	case WHY_NONE:
		break;
	}
	if (v->phase != NULL && strcmp(v->phase, "ready") == 0)
		return "✅ Preview ready";
	return "🔨 Preview deploying";
}

static void
render_why(const struct github_view *v, struct buf *b)
{
	switch (v->why) {
	case WHY_NONE:
		return;
	case WHY_APPROVAL:
		buf_puts(b,
		         "This pull request comes from a fork or from someone "
		         "without write access, so its code is not deployed "
		         "until a collaborator with write access comments "
		         "`/preview approve`");
		if (v->trusted_label != NULL && v->trusted_label[0]) {
			/* Bold, not a code span: code shows &#..; literally. */
			buf_puts(b, " or adds the label **");
			github_md_text(b, v->trusted_label, 100);
			buf_puts(b, "**");
		}
		buf_puts(b, ". It never receives repository secrets without "
		            "that approval.\n\n");
		return;
	case WHY_LABEL:
		buf_puts(b, "Previews are made for pull requests labelled **");
		github_md_text(b, v->label, 100);
		buf_puts(b, "**; add the label to get one.\n\n");
		return;
	case WHY_DRAFT:
		buf_puts(b, "Draft pull requests are not previewed; mark it "
		            "ready for review to get one.\n\n");
		return;
	case WHY_QUEUED:
		if (v->queued_reason != NULL) {
			buf_puts(b, "Waiting: ");
			github_md_text(b, v->queued_reason, 500);
			buf_puts(b, ".\n\n");
			return;
		}
		buf_printf(b,
		           "All %lld preview slots are in use; this one is "
		           "number %lld in the queue and starts when a slot "
		           "frees up.\n\n",
		           (long long)v->max_running,
		           (long long)v->queue_position);
		return;
	case WHY_BUDGET:
		/* The reason names the repository: escaped like any text. */
		buf_puts(b, "Not started: ");
		if (v->budget_reason != NULL)
			github_md_text(b, v->budget_reason, 500);
		else
			buf_puts(b, "this repository's monthly budget is "
			            "spent");
		buf_puts(b, ". Previews already running keep running; this "
		            "one starts by itself once the budget allows "
		            "it.\n\n");
		return;
	case WHY_FAILED:
		buf_puts(b, "The last deploy failed");
		if (v->build_error != NULL && v->build_error[0]) {
			buf_puts(b, ": ");
			github_md_text(b, v->build_error, 500);
		}
		buf_puts(b, ". Push a fix, or comment `/preview redeploy` to "
		            "try again.\n\n");
		return;
	case WHY_IDLE:
		buf_printf(
		        b,
		        "Stopped after %lld minutes without traffic, to save "
		        "cost. ",
		        (long long)v->idle_minutes);
		if (v->wake_url != NULL) {
			/* The waking page answers there (route_sleep.c). */
			buf_puts(b, "Opening ");
			md_link(b, "its URL", v->wake_url);
			buf_puts(b, " starts it again and shows the app once "
			            "it is up; so does a push or `/preview "
			            "deploy`.\n\n");
			return;
		}
		buf_puts(b, "Comment `/preview deploy` (or push) to start it "
		            "again.\n\n");
		return;
	case WHY_STOPPED:
		buf_puts(b, "Stopped on request. Comment `/preview deploy` to "
		            "start it again.\n\n");
		return;
	case WHY_CLOSED:
		if (v->phase != NULL && strcmp(v->phase, "destroyed") == 0)
			buf_puts(b, "The pull request is closed; its preview "
			            "and everything it used have been "
			            "removed.\n\n");
		else
			buf_puts(b, "The pull request is closed; its preview "
			            "is being removed.\n\n");
		return;
	}
}

static void
render_steps(const struct github_view *v, struct buf *b)
{
	double total = 0;
	size_t i;

	if (v->nsteps == 0)
		return;
	for (i = 0; i < v->nsteps; i++)
		if (v->steps[i].seconds > 0)
			total += v->steps[i].seconds;
	buf_printf(b, "<details><summary>Last deploy: %.1f s</summary>\n\n",
	           total);
	buf_puts(b, "| Step | Status | Time |\n| --- | --- | ---: |\n");
	for (i = 0; i < v->nsteps; i++) {
		const struct github_step *s = &v->steps[i];

		buf_puts(b, "| ");
		github_md_text(b, s->name, 64);
		buf_puts(b, " | ");
		github_md_text(b, s->status, 32);
		if (s->seconds < 0)
			buf_puts(b, " | … |\n");
		else
			buf_printf(b, " | %.1f s |\n", s->seconds);
	}
	buf_puts(b, "\n</details>\n\n");
}

/* The last `lines` lines of the log, HTML-escaped in a <pre> block. */
static void
render_log(const struct github_view *v, struct buf *b)
{
	const char *t = v->log_tail, *p;
	size_t n, lines = 0;

	if (v->why != WHY_FAILED || t == NULL || t[0] == '\0' ||
	    v->log_lines == 0)
		return;
	n = strlen(t);
	while (n > 0 && (t[n - 1] == '\n' || t[n - 1] == '\r'))
		n--;
	if (n == 0)
		return; /* only blank lines */
	p = t + n;
	while (p > t && lines < v->log_lines) {
		p--;
		if (*p == '\n')
			lines++;
	}
	if (p < t + n && *p == '\n')
		p++;
	if ((size_t)(t + n - p) > LOG_BYTES_MAX) {
		p = t + n - LOG_BYTES_MAX;
		while (((unsigned char)*p & 0xC0) == 0x80)
			p++;
	}
	buf_puts(b, "<details open><summary>Last log lines</summary>\n\n<pre>");
	/* HTML-escaped, and no '@' left to mention anyone. */
	while (p < t + n) {
		const char *at = memchr(p, '@', (size_t)(t + n - p));
		const char *stop = at ? at : t + n;

		buf_append_html(b, p, (size_t)(stop - p));
		if (at != NULL)
			buf_puts(b, "@&#8203;");
		p = at ? at + 1 : stop;
	}
	buf_puts(b, "</pre>\n</details>\n\n");
}

/* What the report's kinds are called on the PR. */
static const char *
kind_label(const char *kind)
{
	static const char *const labels[][2] = {
	        {"instance", "EC2 instance"},
	        {"ebs_volume", "EBS volume"},
	        {"parameter", "Parameter Store parameter"},
	        {"tunnel", "Cloudflare tunnel"},
	        {"dns_record", "DNS record"},
	        {"access_app", "Access application"},
	        {"route", "proxy route"},
	        {"container", "container"},
	        {"network", "Docker network"},
	        {"volume", "Docker volume"},
	        {"image", "built image"},
	};
	size_t i;

	for (i = 0; i < NELEM(labels); i++)
		if (strcmp(kind, labels[i][0]) == 0)
			return labels[i][1];
	return kind;
}

/*
 * A resource name: in a code span when it is made only of characters that
 * cannot end one or mean anything inside it (ours all are: ids, hosts,
 * parameter paths, compose names), else as neutralised text.
 */
static void
md_name(struct buf *b, const char *name)
{
	size_t n = strlen(name);

	if (n > 0 && n <= 255 &&
	    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                 "0123456789._:/_-") == n) {
		buf_printf(b, "`%s`", name);
		return;
	}
	github_md_text(b, name, 255);
}

/* Names shown per kind and state; the rest are counted. */
#define REMOVED_NAMES_MAX 10

/* One line per kind of the rows in state `gone`: "label (n): a, b". */
static void
removed_lines(const struct github_view *v, bool gone, struct buf *b)
{
	size_t i = 0, j, n, shown;

	while (i < v->nremoved) {
		const char *kind = v->removed[i].kind;

		for (n = 0, j = i;
		     j < v->nremoved && strcmp(v->removed[j].kind, kind) == 0;
		     j++)
			n += v->removed[j].gone == gone;
		if (n > 0) {
			buf_puts(b, "- ");
			github_md_text(b, kind_label(kind), 64);
			buf_printf(b, " (%zu): ", n);
			for (shown = 0; i < j; i++) {
				if (v->removed[i].gone != gone)
					continue;
				if (shown == REMOVED_NAMES_MAX) {
					buf_printf(b, ", and %zu more",
					           n - shown);
					break;
				}
				if (shown++ > 0)
					buf_puts(b, ", ");
				md_name(b, v->removed[i].name);
			}
			buf_puts(b, "\n");
		}
		i = j;
	}
}

/*
 * The teardown report: what was checked gone after the delete, and apart
 * from it anything found that no look has confirmed gone yet.
 */
static void
render_removed(const struct github_view *v, struct buf *b)
{
	size_t i, pending = 0;

	if (v->why != WHY_CLOSED || v->nremoved == 0)
		return;
	for (i = 0; i < v->nremoved; i++)
		pending += !v->removed[i].gone;
	if (pending < v->nremoved) {
		buf_puts(b, "<details><summary>Removed, each checked gone "
		            "after the delete</summary>\n\n");
		removed_lines(v, true, b);
		buf_puts(b, "\n</details>\n\n");
	}
	if (pending > 0) {
		buf_puts(b, "Not yet confirmed gone:\n\n");
		removed_lines(v, false, b);
		buf_puts(b, "\n");
	}
}

int
github_comment_render(const struct github_view *v, struct buf *b)
{
	size_t i;

	github_comment_marker(v->slug, b);
	buf_printf(b, "\n### %s\n\n", headline(v));
	buf_puts(b, "| | |\n| --- | --- |\n");
	if (v->url != NULL && v->url[0] && v->why == WHY_NONE) {
		buf_puts(b, "| **Preview** | ");
		md_link(b, v->url, v->url);
		buf_puts(b, " |\n");
		/* The other services, each at its own path or hostname. */
		for (i = 0; i < v->nservices; i++) {
			const struct github_service *sv = &v->services[i];

			if (sv->primary || sv->url == NULL ||
			    strcmp(sv->url, v->url) == 0)
				continue;
			buf_puts(b, "| ");
			github_md_text(b, sv->name, 64);
			buf_puts(b, " | ");
			md_link(b, sv->url, sv->url);
			buf_puts(b, " |\n");
		}
	}
	buf_puts(b, "| **Commit** | ");
	md_sha(b, v->sha);
	buf_puts(b, " |\n| **State** | ");
	github_md_text(b, v->phase, 32);
	buf_puts(b, " |\n| **Branch** | ");
	github_md_text(b, v->head_ref, 255);
	buf_puts(b, " |\n| **Title** | ");
	github_md_text(b, v->title, TITLE_MAX);
	buf_puts(b, " |\n");
	if (v->approved_by != NULL && v->approved_by[0]) {
		buf_puts(b, "| **Approved by** | ");
		github_md_text(b, v->approved_by, 100);
		buf_puts(b, " |\n");
	}
	if (v->compute_hours > 0) {
		/* Only with no run open, so the figure does not change
		 * between two updates that change nothing else. */
		buf_printf(b, "| **Compute** | %.2f h, $%.*f |\n",
		           v->compute_hours,
		           v->compute_cost > 0 && v->compute_cost < 0.01 ? 4
		                                                         : 2,
		           v->compute_cost);
	}
	buf_puts(b, "\n");
	render_why(v, b);
	render_removed(v, b);
	render_steps(v, b);
	render_log(v, b);
	buf_puts(b, "<sub>");
	if (v->log_url != NULL && v->log_url[0]) {
		md_link(b, "Status and logs", v->log_url);
		buf_puts(b, " · ");
	}
	buf_puts(b, "Updated ");
	github_md_text(b, v->updated, 32);
	buf_puts(b, " by Ephemera · commands: `/preview approve`, `deploy`, "
	            "`redeploy`, `stop`, `destroy`, `keep`</sub>\n");
	return b->failed ? -1 : 0;
}

static bool
is(const char *s, const char *want)
{
	return s != NULL && strcmp(s, want) == 0;
}

enum github_why
github_why_of(const char *phase, const char *desired, bool trusted,
              bool label_missing, bool draft, bool idle,
              const char *build_status)
{
	if (is(desired, "destroyed") || is(phase, "destroyed"))
		return WHY_CLOSED;
	if (is(phase, "awaiting_approval") ||
	    (is(desired, "awaiting_approval") && !trusted))
		return WHY_APPROVAL;
	/* Holding for approval tears down through "destroying" too: the
	 * notifier runs beside the teardown and may see it. */
	if (is(phase, "destroying"))
		return WHY_CLOSED;
	if (label_missing && !is(phase, "ready") && !is(phase, "deploying"))
		return WHY_LABEL;
	if (draft && is(desired, "stopped") && !is(phase, "ready") &&
	    !is(phase, "deploying"))
		return WHY_DRAFT;
	if (is(phase, "queued"))
		return WHY_QUEUED;
	if (is(phase, "budget"))
		return WHY_BUDGET;
	if (is(phase, "failed") ||
	    (is(build_status, "failed") && !is(phase, "deploying")))
		return WHY_FAILED;
	if (is(phase, "stopped") || is(phase, "stopping") ||
	    is(desired, "stopped"))
		return idle ? WHY_IDLE : WHY_STOPPED;
	return WHY_NONE;
}

/*
 * GitHub's auto_inactive skips transient environments, so an older build's
 * Deployment in the PR's environment is retired by us once a newer build
 * exists, and the latest one when the environment is torn down.
 */
const char *
github_deploy_target(const char *build_status, bool latest, const char *phase)
{
	if (!latest || is(phase, "stopping") || is(phase, "stopped") ||
	    is(phase, "budget") || is(phase, "awaiting_approval") ||
	    is(phase, "destroying") || is(phase, "destroyed"))
		return "inactive";
	if (is(build_status, "succeeded"))
		return "success";
	if (is(build_status, "failed"))
		return "failure";
	if (is(build_status, "cancelled"))
		return "inactive";
	return "in_progress";
}

/* queued < in_progress < success = failure < inactive */
static int
deploy_rank(const char *s)
{
	if (s == NULL)
		return 0;
	if (is(s, "queued"))
		return 1;
	if (is(s, "in_progress"))
		return 2;
	if (is(s, "success") || is(s, "failure"))
		return 3;
	if (is(s, "inactive"))
		return 4;
	return 0;
}

size_t
github_deploy_steps(const char *last, const char *target,
                    const char *build_status, const char *out[3])
{
	int from = deploy_rank(last), to = deploy_rank(target), r;
	size_t n = 0;

	/* `queued` is only ever said of a waiting commit (github_sync.c). */
	for (r = from + 1; r <= to; r++) {
		if (r == 2)
			out[n++] = "in_progress";
		else if (r == 3 && is(build_status, "succeeded"))
			out[n++] = "success";
		else if (r == 3 && is(build_status, "failed"))
			out[n++] = "failure";
		else if (r == 4)
			out[n++] = "inactive";
	}
	return n;
}
