/*
 * page_wake.c - what a visitor of an idle-stopped preview sees (issue 20):
 * the waking route (workers/local/route_sleep.c) sends every request of
 * the preview's hostname here, with the slug as a FastCGI parameter.
 *
 * A visit to an environment the sweep stopped as idle sets it running and
 * queues its reconcile, in one transaction; the conditional UPDATE makes
 * that idempotent (of a burst of visits, one finds the row still asleep)
 * and woken_at rate-limits it. Everyone gets a small page that refreshes
 * until the deploy writes the app's route over the waking one. A preview
 * stopped by `/preview stop`, or whose PR changed since (a draft, a label,
 * a push: last_delivery_id moved), is only described, never started.
 *
 * The answer is 503 with Retry-After while the app is not there, so no
 * monitor or crawler mistakes the page for the app.
 */
#include <stdlib.h>
#include <string.h>

#include "app.h"

/* A wake within this long of the last one is not repeated. */
#define WAKE_MIN_INTERVAL_S 30
/* The page's refresh while starting. */
#define WAKE_REFRESH_S 2

enum wake_state {
	WAKE_GONE,     /* no such environment, or destroyed */
	WAKE_STARTING, /* woken now or before, on its way */
	WAKE_FAILED,   /* woken, but the start failed */
	WAKE_WAITING,  /* woken, waiting for a slot or this host's networks */
	WAKE_BUDGET,   /* woken, its repository's monthly budget reached */
	WAKE_STOPPED,  /* stopped for another reason: not ours to start */
};

struct wake {
	const struct config *cfg;
	const char *slug;
	enum wake_state state;
	bool woke;
	char *title, *repo, *pr;
};

static int
wake_tx(struct db *db, void *arg)
{
	struct wake *w = arg;
	struct db_rows *r = NULL;
	struct buf sql = BUF_INIT;
	const char *desired, *phase;
	uint64_t id = 0;
	int rc = -1;

	w->woke = false;
	buf_printf(&sql,
	           "SELECT id, desired, phase, title, repo, pr, "
	           "%s FROM environments WHERE slug = ?",
	           ENV_IDLE_STOPPED);
	if (db_query(db, &r, buf_str(&sql), "s", w->slug) == -1)
		goto out;
	w->state = WAKE_GONE;
	if (db_rows_count(r) == 0 || parse_uint64(db_rows_get(r, 0, 0), &id))
		goto done;
	desired = db_rows_get(r, 0, 1);
	phase = db_rows_get(r, 0, 2);
	free(w->title), free(w->repo), free(w->pr);
	w->title = xstrdup(db_rows_get(r, 0, 3) ? db_rows_get(r, 0, 3) : "");
	w->repo = xstrdup(db_rows_get(r, 0, 4));
	w->pr = xstrdup(db_rows_get(r, 0, 5));
	if (strcmp(desired, "destroyed") == 0)
		goto done;
	if (strcmp(desired, "running") == 0) {
		w->state = strcmp(phase, "failed") == 0   ? WAKE_FAILED
		           : strcmp(phase, "queued") == 0 ? WAKE_WAITING
		           : strcmp(phase, "budget") == 0 ? WAKE_BUDGET
		                                          : WAKE_STARTING;
		goto done;
	}
	w->state = WAKE_STOPPED;
	if (!w->cfg->env_wake_on_visit || strcmp(db_rows_get(r, 0, 6), "1"))
		goto done;
	/* Asleep: starting, now or once the rate limit lets it. */
	w->state = WAKE_STARTING;
	/* Read without a lock, so a burst costs reads; the row lock of the
	 * UPDATE decides which visit wakes it. */
	buf_reset(&sql);
	buf_printf(
	        &sql,
	        "UPDATE environments SET desired = 'running', "
	        "idle_stopped_at = NULL, woken_at = NOW(6), "
	        "last_active_at = NOW(6) WHERE id = ? AND %s AND "
	        "(woken_at IS NULL OR woken_at < NOW(6) - INTERVAL ? SECOND)",
	        ENV_IDLE_STOPPED);
	if (db_exec(db, buf_str(&sql), "ui", id,
	            (int64_t)WAKE_MIN_INTERVAL_S) == -1)
		goto out;
	if (db_affected(db) == 1) {
		if (queue_enqueue(db, "reconcile", id, 0, NULL,
		                  (int)w->cfg->workers_max_attempts) == -1)
			goto out;
		w->woke = true;
	}
done:
	rc = 0;
out:
	db_rows_free(r);
	buf_free(&sql);
	return rc;
}

/* Starting: seconds away. Waiting: until another preview goes, or the
 * budget allows it. */
static int
refresh_of(enum wake_state s)
{
	return s == WAKE_STARTING ? WAKE_REFRESH_S : 10 * WAKE_REFRESH_S;
}

static void
page_render(const struct wake *w, struct buf *b)
{
	static const char *const heading[] = {
	        [WAKE_GONE] = "No preview here",
	        [WAKE_STARTING] = "Waking up this preview\xe2\x80\xa6",
	        [WAKE_FAILED] = "This preview could not start",
	        [WAKE_WAITING] = "This preview is waiting to start",
	        [WAKE_BUDGET] = "This preview waits for its budget",
	        [WAKE_STOPPED] = "This preview is stopped",
	};
	static const char *const text[] = {
	        [WAKE_GONE] = "It was closed, or never deployed.",
	        [WAKE_STARTING] = "It was stopped while nobody used it and is "
	                          "starting again. This page reloads by "
	                          "itself and turns into the app when it is "
	                          "ready.",
	        [WAKE_WAITING] = "Every preview slot of this installation is "
	                         "taken (the pull request's comment says "
	                         "which limit); it starts when one frees up. "
	                         "This page reloads by itself.",
	        [WAKE_BUDGET] = "Its repository has spent this month's preview "
	                        "budget; it starts when the month resets or "
	                        "the budget is raised (the pull request's "
	                        "comment says when). This page reloads by "
	                        "itself.",
	        [WAKE_FAILED] = "The pull request's comment says why; a push "
	                        "or <code>/preview deploy</code> tries again.",
	        [WAKE_STOPPED] = "It was stopped on purpose. Comment "
	                         "<code>/preview deploy</code> on the pull "
	                         "request to start it.",
	};

	buf_puts(b, "<!doctype html>\n<html lang=\"en\"><head>"
	            "<meta charset=\"utf-8\">"
	            "<meta name=\"viewport\" "
	            "content=\"width=device-width, initial-scale=1\">");
	if (w->state == WAKE_STARTING || w->state == WAKE_WAITING ||
	    w->state == WAKE_BUDGET)
		buf_printf(b, "<meta http-equiv=\"refresh\" content=\"%d\">",
		           refresh_of(w->state));
	buf_puts(b, "<title>");
	buf_puts(b, heading[w->state]);
	buf_puts(b, " \xc2\xb7 Ephemera</title><style>body{font:16px/1.5 "
	            "system-ui,sans-serif;max-width:36em;margin:15vh auto;"
	            "padding:0 1em;color:#222}p.pr{color:#666}</style>"
	            "</head>\n<body><h1>");
	buf_puts(b, heading[w->state]);
	buf_puts(b, "</h1>\n");
	if (w->repo != NULL && w->state != WAKE_GONE) {
		/* Titles and repository names are the PR author's. */
		buf_puts(b, "<p class=\"pr\">");
		html_text(b, w->repo);
		buf_puts(b, " #");
		html_text(b, w->pr);
		buf_puts(b, ": ");
		html_text(b, w->title);
		buf_puts(b, "</p>\n");
	}
	buf_printf(b, "<p>%s</p>\n</body></html>\n", text[w->state]);
}

void
page_wake_get(struct app *app, const struct request *req, struct response *res)
{
	struct wake w = {.cfg = app->cfg};

	w.slug = request_param(req, "EPHEMERA_WAKE_SLUG");
	buf_puts(&res->headers, "Cache-Control: no-store\r\n");
	if (w.slug == NULL || !slug_valid(w.slug, strlen(w.slug))) {
		response_text(res, 404, "no preview environment here");
		return;
	}
	if (db_tx(app->db, wake_tx, &w, 3) == -1) {
		buf_puts(&res->headers, "Retry-After: 5\r\n");
		response_text(res, 503,
		              "the preview cannot be woken right now");
		goto out;
	}
	if (w.woke) {
		wake_notify(app->cfg);
		log_info("wake", "slug=%s", w.slug);
	}
	res->status = w.state == WAKE_GONE ? 404 : 503;
	if (w.state == WAKE_STARTING || w.state == WAKE_WAITING ||
	    w.state == WAKE_BUDGET)
		buf_printf(&res->headers, "Retry-After: %d\r\n",
		           refresh_of(w.state));
	res->content_type = "text/html; charset=utf-8";
	page_render(&w, &res->body);
out:
	free(w.title), free(w.repo), free(w.pr);
}
