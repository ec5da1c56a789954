/*
 * budget.c - a repository's monthly budget (environments.monthly_budget,
 * or its repos entry's monthly_budget). Once its previews' compute cost
 * this UTC month (view budget_spend, 021: the arithmetic of report_cost) has
 * reached the budget, a preview that would start waits in phase `budget`
 * with the reason on the PR, until the month resets or the budget is
 * raised. It is a threshold for starting, not a cap on spend: running
 * previews are never stopped for it (their cost still accrues), and two
 * previews admitted at once may both start just under it.
 */
#include <stdlib.h>
#include <string.h>

#include "workers.h"

bool
budget_reached(double budget, double spent)
{
	return budget > 0 && spent >= budget;
}

void
budget_reason(struct buf *b, const char *repo, double spent, double budget,
              const char *resets)
{
	buf_printf(b,
	           "%s has spent $%.2f of its $%.2f monthly budget; previews "
	           "wait until %s UTC or a higher budget",
	           repo, spent, budget, resets);
}

/*
 * Only a preview that would start a run is held: one whose run is still
 * open (its containers died, a worker died mid-deploy) already counts
 * against the budget and goes on. One read: the repository's spend and
 * when the month resets (no row: nothing spent this month), and whether
 * the environment has an open run.
 */
int
budget_admit(struct worker *w, const struct env *e)
{
	double budget = config_budget(w->cfg, e->repo), spent = 0;
	struct db_rows *r = NULL;
	struct buf why = BUF_INIT;
	int rc = -1;

	if (budget <= 0)
		return 0;
	if (db_query(w->db, &r,
	             "SELECT b.spent, DATE_FORMAT(b.resets_at, "
	             "'%Y-%m-%d %H:%i'), EXISTS (SELECT 1 FROM env_runs r "
	             "WHERE r.env_id = ? AND r.stopped_at IS NULL) "
	             "FROM budget_spend b WHERE b.repo = ?",
	             "us", e->id, e->repo) == -1)
		goto out;
	if (db_rows_count(r) == 1)
		spent = strtod(db_rows_get(r, 0, 0), NULL);
	if (db_rows_count(r) == 0 || strcmp(db_rows_get(r, 0, 2), "1") == 0 ||
	    !budget_reached(budget, spent)) {
		rc = 0;
		goto out;
	}
	budget_reason(&why, e->repo, spent, budget, db_rows_get(r, 0, 1));
	/* Waiting for money holds no place in the queue for a slot. */
	if (db_exec(w->db,
	            "UPDATE environments SET phase = 'budget', queued_at = "
	            "NULL, error = ? WHERE id = ?",
	            "su", buf_str(&why), e->id) == -1 ||
	    notify_env(w, e->id, "budget", buf_str(&why)) == -1)
		goto out;
	log_info("budget_reached", "env=%llu repo=%s spent=%.2f budget=%.2f",
	         (unsigned long long)e->id, log_q(e->repo), spent, budget);
	rc = 1;
out:
	db_rows_free(r);
	buf_free(&why);
	return rc;
}

/*
 * The sweep's pass: a reconcile for each environment waiting in `budget`
 * that its budget now admits (raised, removed, or a new month), with none
 * on the way. The rest cost this one read per sweep, not a reconcile and
 * a PR update every minute until the month ends. Returns how many got
 * one, or -1.
 */
int
budget_release(struct worker *w)
{
	struct db_rows *r = NULL;
	size_t i;
	int n = 0;

	if (db_query(w->db, &r,
	             "SELECT e.id, e.repo, COALESCE(b.spent, 0) FROM "
	             "environments e LEFT JOIN budget_spend b ON b.repo = "
	             "e.repo WHERE e.phase = 'budget' AND e.desired = "
	             "'running' AND NOT EXISTS (SELECT 1 FROM jobs j WHERE "
	             "j.env_id = e.id AND j.kind = 'reconcile' AND j.state "
	             "IN ('queued', 'running')) LIMIT 100",
	             "") == -1)
		return -1;
	for (i = 0; i < db_rows_count(r); i++) {
		uint64_t id;

		if (parse_uint64(db_rows_get(r, i, 0), &id) == -1 ||
		    budget_reached(config_budget(w->cfg, db_rows_get(r, i, 1)),
		                   strtod(db_rows_get(r, i, 2), NULL)))
			continue;
		if (queue_enqueue(w->db, "reconcile", id, 0, NULL,
		                  (int)w->cfg->workers_max_attempts) == -1) {
			n = -1;
			break;
		}
		log_info("budget_recheck", "env=%llu", (unsigned long long)id);
		n++;
	}
	db_rows_free(r);
	return n;
}
