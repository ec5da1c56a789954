/*
 * plan.c - the pure plan function (docs/architecture.md section 2): from
 * what the webhooks asked for (the environment row) and what the host
 * shows (the facts) to the one next step. No I/O here; reconcile.c executes the step
 * and asks again, so a crash anywhere simply leads to the same question.
 */
#include <string.h>

#include "workers.h"

static bool
is(const char *v, const char *want)
{
	return v != NULL && strcmp(v, want) == 0;
}

static bool
same(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

enum step
plan_next(const struct env *e, const struct facts *f)
{
	bool anything = f->running || f->route || f->workdir;

	if (is(e->desired, "destroyed"))
		return anything || f->leftover || !is(e->phase, "destroyed")
		               ? STEP_DESTROY
		               : STEP_NONE;
	if (is(e->desired, "stopped"))
		return f->running || f->route || !is(e->phase, "stopped")
		               ? STEP_STOP
		               : STEP_NONE;
	if (is(e->desired, "awaiting_approval"))
		return anything || !is(e->phase, "awaiting_approval")
		               ? STEP_HOLD
		               : STEP_NONE;
	/* desired running */
	if (e->desired_sha == NULL)
		return STEP_NONE;
	if (is(e->phase, "ready") && same(e->deployed_sha, e->desired_sha) &&
	    f->running && f->route)
		return STEP_NONE;
	/* A failed build waits for a new commit (or a redeploy command). */
	if (is(e->phase, "failed") && same(e->attempted_sha, e->desired_sha))
		return STEP_NONE;
	/* Not holding a slot yet: ask for one (or keep waiting for it). */
	if (!f->running && !is(e->phase, "deploying"))
		return STEP_ADMIT;
	return STEP_DEPLOY;
}

const char *
step_name(enum step s)
{
	static const char *const names[] = {"none", "admit",   "deploy",
	                                    "stop", "destroy", "hold"};

	return (size_t)s < NELEM(names) ? names[s] : "unknown";
}
