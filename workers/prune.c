/*
 * prune.c - the recurring job that keeps the tables that only grow small:
 * finished jobs older than workers.keep_finished_hours (dead jobs are
 * kept: they are the visible record of a failure until an operator
 * retries or cancels them), and deliveries older than
 * workers.keep_deliveries_days, whose counts move to delivery_totals.
 */
#include "workers.h"

#define PRUNE_BATCH 1000

/* One batch of up to PRUNE_BATCH rows; *n: how many went. */
typedef int (*prune_step)(struct worker *, uint64_t *n);

/* Batch after batch until one comes short, telling the lease we live. */
static int
prune_batches(struct worker *w, const struct job *job, prune_step step,
              uint64_t *total)
{
	uint64_t n;

	do {
		if (step(w, &n) == -1)
			return -1;
		*total += n;
	} while (n >= PRUNE_BATCH && job_heartbeat(w, job) == 0);
	return 0;
}

static int
jobs_prune(struct worker *w, uint64_t *n)
{
	if (db_exec(w->db,
	            "DELETE FROM jobs WHERE state IN ('done', 'cancelled') AND "
	            "finished_at < NOW(6) - INTERVAL ? HOUR LIMIT 1000",
	            "i", w->cfg->workers_keep_finished_hours) == -1)
		return -1;
	*n = db_affected(w->db);
	return 0;
}

struct deliveries_prune {
	int64_t days;
	uint64_t deleted;
};

/*
 * Up to PRUNE_BATCH old deliveries: counted into delivery_totals and
 * deleted in one transaction, so ephemera_deliveries_total never moves.
 * The rows are locked first and locked ones skipped, so two prunes at
 * once (a rescued job and its slow first run) never count one twice.
 * A GitHub redelivery of a pruned delivery is then accepted again; the
 * stale guard (the PR's updated_at) keeps it from undoing anything newer.
 */
static int
deliveries_prune_tx(struct db *db, void *arg)
{
	struct deliveries_prune *p = arg;
	struct db_rows *r = NULL;
	struct buf ids = BUF_INIT;
	size_t i;
	int rc = -1;

	p->deleted = 0;
	if (db_query(db, &r,
	             "SELECT id FROM deliveries WHERE received_at < NOW(6) - "
	             "INTERVAL ? DAY ORDER BY received_at LIMIT 1000 "
	             "FOR UPDATE SKIP LOCKED",
	             "i", p->days) == -1)
		goto out;
	if (db_rows_count(r) == 0) {
		rc = 0;
		goto out;
	}
	buf_putc(&ids, '[');
	for (i = 0; i < db_rows_count(r); i++)
		buf_printf(&ids, "%s%s", i ? "," : "", db_rows_get(r, i, 0));
	buf_putc(&ids, ']');
	if (db_exec(db,
	            "INSERT INTO delivery_totals (event, result, n) "
	            "SELECT d.event, d.result, COUNT(*) FROM JSON_TABLE(?, "
	            "'$[*]' COLUMNS (id BIGINT UNSIGNED PATH '$')) k "
	            "STRAIGHT_JOIN deliveries d ON d.id = k.id "
	            "GROUP BY d.event, d.result "
	            "ON DUPLICATE KEY UPDATE n = n + VALUES(n)",
	            "s", buf_str(&ids)) == -1 ||
	    db_exec(db,
	            "DELETE d FROM JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT "
	            "UNSIGNED PATH '$')) k STRAIGHT_JOIN deliveries d "
	            "ON d.id = k.id",
	            "s", buf_str(&ids)) == -1)
		goto out;
	p->deleted = db_affected(db);
	rc = 0;
out:
	db_rows_free(r);
	buf_free(&ids);
	return rc;
}

static int
deliveries_prune(struct worker *w, uint64_t *n)
{
	struct deliveries_prune p = {w->cfg->workers_keep_deliveries_days, 0};

	if (db_tx(w->db, deliveries_prune_tx, &p, 3) == -1)
		return -1;
	*n = p.deleted;
	return 0;
}

void
prune_run(struct worker *w, const struct job *job, struct job_result *res)
{
	uint64_t jobs = 0, deliveries = 0;

	if (prune_batches(w, job, jobs_prune, &jobs) == -1 ||
	    prune_batches(w, job, deliveries_prune, &deliveries) == -1) {
		res->outcome = JOB_RETRY;
		buf_puts(&res->error, "prune: database error");
		return;
	}
	if (jobs > 0)
		log_info("jobs_pruned", "count=%llu", (unsigned long long)jobs);
	if (deliveries > 0)
		log_info("deliveries_pruned", "count=%llu",
		         (unsigned long long)deliveries);
	res->outcome = JOB_DONE;
}
