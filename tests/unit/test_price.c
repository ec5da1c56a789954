/* test_price.c - prices per instance type and the host's share, and the
 * errors ec2.hourly_prices gets at load. */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "unit.h"

/* Loads `text` into cfg; the caller frees it. -1: the error in err. */
static int
load(const char *text, struct config *cfg, struct buf *err)
{
	char *p = unit_write_tmp(text);
	int rc = config_load(cfg, p, err);

	unlink(p);
	free(p);
	return rc;
}

static void
test_hourly(void)
{
	static const char ec2[] =
	        "environments: { hourly_price = 0.05; max_running = 4; };\n"
	        "ec2: { instance_types = \"t3.small,t3a.small,m5.large\";\n"
	        "  hourly_prices = \"t3.small=0.0208, t3a.small = 0.0188\"; };\n";
	static const struct {
		const char *text, *compute, *type;
		double want;
	} cases[] = {
	        /* The type launched, each at its own price. */
	        {ec2, "ec2", "t3.small", 0.0208},
	        {ec2, "ec2", "t3a.small", 0.0188},
	        /* Listed without a price, or another type a launch template
	         * chose: environments.hourly_price. */
	        {ec2, "ec2", "m5.large", 0.05},
	        {ec2, "ec2", "t3.smal", 0.05},
	        /* Not launched yet: the first type's. */
	        {ec2, "ec2", NULL, 0.0208},
	        {ec2, "ec2", "", 0.0208},
	        {"ec2: { instance_types = \"m5.large,t3.small\";"
	         " hourly_prices = \"t3.small=0.02\"; };\n",
	         "ec2", NULL, 0.0208},
	        /* local: the host's share, else the one price. */
	        {ec2, "local", NULL, 0.05},
	        {"environments: { max_running = 4; };\n"
	         "local: { host_hourly_price = 0.2; };\n",
	         "local", NULL, 0.05},
	        {"local: { host_hourly_price = 1; };\n", "local", NULL, 0.1},
	        /* ec2 prices are not the local host's. */
	        {ec2, "local", "t3.small", 0.05},
	        /* Nothing set: the default price. */
	        {"# nothing\n", "ec2", NULL, 0.0208},
	        {"# nothing\n", "local", NULL, 0.0208},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		struct config cfg;
		struct buf err = BUF_INIT;
		double got;

		if (load(cases[i].text, &cfg, &err) == -1) {
			fprintf(stderr, "  case %zu: %s\n", i, buf_str(&err));
			CHECK(!"load");
		} else {
			got = price_hourly(&cfg, cases[i].compute,
			                   cases[i].type);
			if (fabs(got - cases[i].want) > 1e-9) {
				fprintf(stderr, "  case %zu: got %g want %g\n",
				        i, got, cases[i].want);
				CHECK(!"price");
			}
		}
		config_free(&cfg);
		buf_free(&err);
	}
}

static void
test_errors(void)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
	        {"\nec2: { hourly_prices = \"t3.small\"; };\n",
	         ":2: setting 'ec2.hourly_prices': entry 1 (\"t3.small\"): "
	         "must be type=price; write"},
	        {"ec2: {\n hourly_prices = \"t3.small=0.02,,\"; };\n",
	         ":2: setting 'ec2.hourly_prices': entry 2 (\"\"): must be"},
	        {"ec2: { hourly_prices = \"t3.small=0.02,t3a.small=1001\"; };\n",
	         ":1: setting 'ec2.hourly_prices': entry 2 "
	         "(\"t3a.small=1001\"): the price must be a number from 0 "
	         "to 1000"},
	        {"ec2: { hourly_prices = \"t3.small=-1\"; };\n",
	         "entry 1 (\"t3.small=-1\"): the price must be a number like"},
	        {"ec2: { hourly_prices = \"t3.small=inf\"; };\n",
	         "the price must be a number like"},
	        {"ec2: { hourly_prices = \"t3.small=0.0.2\"; };\n",
	         "the price must be a number from 0 to 1000"},
	        {"ec2: { hourly_prices = \"t3.small=\"; };\n",
	         "the price must be a number like"},
	        {"ec2: { hourly_prices = \"T3.Small=0.02\"; };\n",
	         "the type as EC2 spells it"},
	        {"ec2: { hourly_prices = \"=0.02\"; };\n",
	         "the type as EC2 spells it"},
	        {"ec2: { hourly_prices = \"t3.small=0.02,t3.small=0.03\"; };\n",
	         "entry 2 (\"t3.small=0.03\"): t3.small is priced twice"},
	        {"ec2: { hourly_prices = 0.02; };\n",
	         ":1: setting 'ec2.hourly_prices': must be a string"},
	        {"\n\nlocal: { host_hourly_price = 1001; };\n",
	         ":3: setting 'local.host_hourly_price': must be a number from "
	         "0 to 1000 (got 1001)"},
	        {"local: { host_hourly_price = -0.5; };\n",
	         ":1: setting 'local.host_hourly_price': must be a number"},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		struct config cfg;
		struct buf err = BUF_INIT;

		CHECK(load(cases[i].text, &cfg, &err) == -1);
		if (strstr(buf_str(&err), cases[i].want) == NULL) {
			fprintf(stderr, "  case %zu: %s\n", i, buf_str(&err));
			CHECK(!"message");
		}
		config_free(&cfg);
		buf_free(&err);
	}
}

/* An empty list and a trailing comma are fine; the list is searched only
 * as far as asked (the duplicate check's "before"). */
static void
test_list(void)
{
	struct buf why = BUF_INIT;
	double v = -1;

	CHECK(price_list_check("", &why) == 0);
	CHECK(price_list_check("t3.small=0.02,", &why) == 0);
	CHECK(price_list_check("t3.small=0,m5.large=1000", &why) == 0);
	CHECK(why.len == 0);
	CHECK(!price_list_find("", "t3.small", SIZE_MAX, &v));
	CHECK(!price_list_find("t3.small=0.02", "t3.small", 0, &v));
	CHECK(v == -1);
	CHECK(price_list_find("a=1,t3.small=0.02", "t3.small", 2, &v));
	CHECK(v == 0.02);
	buf_free(&why);
}

UNIT_MAIN(TEST(test_hourly), TEST(test_errors), TEST(test_list))
