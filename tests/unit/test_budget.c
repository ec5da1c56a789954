/* test_budget.c - when a repository's budget holds a preview back, and
 * what the PR and the status page are told (workers/budget.c). */
#include "unit.h"
#include "../../workers/workers.h"

static void
test_budget_reached(void)
{
	static const struct {
		double budget, spent;
		bool want;
	} cases[] = {
	        {0, 0, false},         /* no budget: never */
	        {0, 1e6, false},       /* no budget, whatever was spent */
	        {50, 0, false},        /* nothing spent this month */
	        {50, 49.99, false},    /* a cent short */
	        {50, 50, true},        /* reached exactly */
	        {50, 50.12, true},     /* running previews went past it */
	        {0.1, 0.1, true},      /* "0.10" from SQL, 0.1 from the file */
	        {50.005, 50.01, true}, /* budgets finer than a cent */
	        {-1, 5, false},        /* never configured so; none */
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++)
		if (budget_reached(cases[i].budget, cases[i].spent) !=
		    cases[i].want) {
			fprintf(stderr, "  case %zu\n", i);
			CHECK(!"budget_reached");
		}
}

static void
test_budget_reason(void)
{
	struct buf b = BUF_INIT;

	budget_reason(&b, "acme/shop", 50.123, 50, "2027-01-01 00:00");
	CHECK_STR(buf_str(&b), "acme/shop has spent $50.12 of its $50.00 "
	                       "monthly budget; previews wait until "
	                       "2027-01-01 00:00 UTC or a higher budget");
	buf_free(&b);
}

UNIT_MAIN(TEST(test_budget_reached), TEST(test_budget_reason))
