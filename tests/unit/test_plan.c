/* test_plan.c - the pure plan function, as a table. */
#include "unit.h"
#include "../../workers/workers.h"

#define A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static void
test_plan_table(void)
{
	static const struct {
		const char *desired, *sha, *phase, *deployed, *attempted;
		bool running, route, workdir;
		enum step want;
	} cases[] = {
	        /* a new PR: ask for a slot, then deploy */
	        {"running", A, "pending", NULL, NULL, 0, 0, 0, STEP_ADMIT},
	        {"running", A, "queued", NULL, NULL, 0, 0, 0, STEP_ADMIT},
	        /* waiting for its budget: asks again (budget_admit decides) */
	        {"running", A, "budget", NULL, NULL, 0, 0, 0, STEP_ADMIT},
	        {"running", B, "budget", A, A, 0, 0, 1, STEP_ADMIT},
	        {"stopped", A, "budget", NULL, NULL, 0, 0, 0, STEP_STOP},
	        {"destroyed", A, "budget", NULL, NULL, 0, 0, 0, STEP_DESTROY},
	        {"running", A, "deploying", NULL, NULL, 0, 0, 0, STEP_DEPLOY},
	        /* converged */
	        {"running", A, "ready", A, A, 1, 1, 1, STEP_NONE},
	        /* a push while running: deploy without a new slot */
	        {"running", B, "ready", A, A, 1, 1, 1, STEP_DEPLOY},
	        /* the route vanished: redo the deploy (idempotent) */
	        {"running", A, "ready", A, A, 1, 0, 1, STEP_DEPLOY},
	        /* containers died: ask for the slot again */
	        {"running", A, "ready", A, A, 0, 1, 1, STEP_ADMIT},
	        /* a failed commit waits for a new one */
	        {"running", A, "failed", NULL, A, 0, 0, 1, STEP_NONE},
	        {"running", B, "failed", NULL, A, 0, 0, 1, STEP_ADMIT},
	        {"running", B, "failed", NULL, A, 1, 0, 1, STEP_DEPLOY},
	        /* worker died mid-deploy: deploying again */
	        {"running", A, "deploying", NULL, NULL, 1, 0, 1, STEP_DEPLOY},
	        {"running", NULL, "pending", NULL, NULL, 0, 0, 0, STEP_NONE},
	        /* closing */
	        {"destroyed", A, "ready", A, A, 1, 1, 1, STEP_DESTROY},
	        {"destroyed", A, "destroying", A, A, 0, 0, 1, STEP_DESTROY},
	        {"destroyed", A, "queued", NULL, NULL, 0, 0, 0, STEP_DESTROY},
	        {"destroyed", A, "destroyed", NULL, NULL, 0, 0, 0, STEP_NONE},
	        /* idle stop */
	        {"stopped", A, "ready", A, A, 1, 1, 1, STEP_STOP},
	        {"stopped", A, "stopped", A, A, 0, 0, 1, STEP_NONE},
	        /* untrusted */
	        {"awaiting_approval", A, "pending", NULL, NULL, 0, 0, 0,
	         STEP_HOLD},
	        {"awaiting_approval", A, "awaiting_approval", NULL, NULL, 0, 0,
	         0, STEP_NONE},
	        {"awaiting_approval", B, "ready", A, A, 1, 1, 1, STEP_HOLD},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		struct env e = {0};
		struct facts f = {cases[i].running, cases[i].route,
		                  cases[i].workdir, false};
		enum step got;

		e.desired = (char *)cases[i].desired;
		e.desired_sha = (char *)cases[i].sha;
		e.phase = (char *)cases[i].phase;
		e.deployed_sha = (char *)cases[i].deployed;
		e.attempted_sha = (char *)cases[i].attempted;
		got = plan_next(&e, &f);
		if (got != cases[i].want) {
			fprintf(stderr, "  case %zu: got %s want %s\n", i,
			        step_name(got), step_name(cases[i].want));
			CHECK(!"plan");
		}
	}
}

/* Stopped containers, networks, volumes or images left of a destroyed
 * environment (the orphan sweep finds them): destroyed again. A stopped
 * environment keeps its stopped containers. */
static void
test_plan_leftovers(void)
{
	struct env e = {0};
	struct facts f = {0};

	f.leftover = true;
	e.desired = (char *)"destroyed";
	e.desired_sha = (char *)A;
	e.phase = (char *)"destroyed";
	CHECK(plan_next(&e, &f) == STEP_DESTROY);
	f.leftover = false;
	CHECK(plan_next(&e, &f) == STEP_NONE);
	f.leftover = true;
	e.desired = (char *)"stopped";
	e.phase = (char *)"stopped";
	CHECK(plan_next(&e, &f) == STEP_NONE);
}

UNIT_MAIN(TEST(test_plan_table), TEST(test_plan_leftovers))
