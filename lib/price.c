/*
 * price.c - what an hour of an environment's compute costs (issue 20). An
 * ec2 environment costs its instance type's price from ec2.hourly_prices
 * ("t3.small=0.0208,t3a.small=0.0188"); a local one a share of the host,
 * local.host_hourly_price / environments.max_running, when the host's
 * price is set. Anything unpriced costs environments.hourly_price. Pure:
 * config.c checks the list at load, the workers price each run with it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ephemera.h"

/* The bounds of environments.hourly_price (config.c), for every price. */
#define PRICE_MAX 1000.0
#define PRICE_TYPE_MAX 31 /* struct ec2_instance's type[32] */

static size_t
trimmed(const char **p, size_t n)
{
	while (n > 0 && **p == ' ') {
		(*p)++;
		n--;
	}
	while (n > 0 && (*p)[n - 1] == ' ')
		n--;
	return n;
}

/*
 * One "type=price" entry of n bytes: the type (lowercase letters, digits,
 * '.' and '-', as EC2 spells them) into `type`, its price into *price.
 * -1 with what is wrong in `why`.
 */
static int
entry_parse(const char *e, size_t n, char type[PRICE_TYPE_MAX + 1],
            double *price, struct buf *why)
{
	const char *eq = memchr(e, '=', n), *v;
	char num[32], *end;
	size_t tn, vn;

	if (eq == NULL) {
		buf_puts(why, "must be type=price");
		return -1;
	}
	v = eq + 1;
	vn = trimmed(&v, n - (size_t)(v - e));
	tn = trimmed(&e, (size_t)(eq - e));
	if (tn == 0 || tn > PRICE_TYPE_MAX ||
	    strspn(e, "abcdefghijklmnopqrstuvwxyz0123456789.-") < tn) {
		buf_puts(why, "must be type=price, the type as EC2 spells it");
		return -1;
	}
	/* Plain decimals only: strtod would take "inf", "nan" and hex. */
	if (vn == 0 || vn >= sizeof(num) || strspn(v, "0123456789.") < vn) {
		buf_puts(why, "the price must be a number like 0.0208");
		return -1;
	}
	memcpy(num, v, vn);
	num[vn] = '\0';
	*price = strtod(num, &end);
	if (*end != '\0' || *price < 0 || *price > PRICE_MAX) {
		buf_printf(why, "the price must be a number from 0 to %g",
		           PRICE_MAX);
		return -1;
	}
	memcpy(type, e, tn);
	type[tn] = '\0';
	return 0;
}

/* The i-th comma-separated entry of `list`; false past the end. */
static bool
entry_at(const char *list, size_t i, const char **e, size_t *n)
{
	const char *p = list;

	while (p && *p) {
		size_t len = strcspn(p, ",");

		if (i-- == 0) {
			*e = p;
			*n = len;
			return true;
		}
		p += len + (p[len] == ',');
	}
	return false;
}

int
price_list_check(const char *list, struct buf *why)
{
	char type[PRICE_TYPE_MAX + 1];
	struct buf what = BUF_INIT;
	const char *e;
	size_t i, n;
	double v, seen;
	int rc = 0;

	for (i = 0; entry_at(list, i, &e, &n) && rc == 0; i++) {
		if (entry_parse(e, n, type, &v, &what) == 0 &&
		    price_list_find(list, type, i, &seen))
			buf_printf(&what, "%s is priced twice", type);
		if (what.len > 0) {
			buf_printf(why, "entry %zu (\"%.*s\"): %s", i + 1,
			           (int)(n < 64 ? n : 64), e, buf_str(&what));
			rc = -1;
		}
	}
	buf_free(&what);
	return rc;
}

bool
price_list_find(const char *list, const char *type, size_t before, double *out)
{
	char t[PRICE_TYPE_MAX + 1];
	struct buf why = BUF_INIT;
	const char *e;
	size_t i, n;
	double v;
	bool found = false;

	for (i = 0; i < before && !found && entry_at(list, i, &e, &n); i++) {
		buf_reset(&why);
		if (entry_parse(e, n, t, &v, &why) == 0 &&
		    strcmp(t, type) == 0) {
			*out = v;
			found = true;
		}
	}
	buf_free(&why);
	return found;
}

double
price_hourly(const struct config *cfg, const char *compute,
             const char *instance_type)
{
	char first[PRICE_TYPE_MAX + 1];
	double v;

	if (strcmp(compute, "local") == 0)
		return cfg->local_host_hourly_price > 0
		               ? cfg->local_host_hourly_price /
		                         (double)cfg->env_max_running
		               : cfg->env_hourly_price;
	if (strcmp(compute, "ec2") != 0)
		return cfg->env_hourly_price;
	/* Not launched yet: the type RunInstances tries first. */
	if (instance_type == NULL || instance_type[0] == '\0') {
		snprintf(first, sizeof(first), "%.*s",
		         (int)strcspn(cfg->ec2_instance_types, ","),
		         cfg->ec2_instance_types);
		instance_type = first;
	}
	if (price_list_find(cfg->ec2_hourly_prices, instance_type, SIZE_MAX,
	                    &v))
		return v;
	return cfg->env_hourly_price;
}
