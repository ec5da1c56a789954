/*
 * subnet.c - local.subnet_pool: an IPv4 block of the admin's, cut into
 * subnets of local.subnet_prefix bits, one per preview network. Docker's
 * default address pools hold about 30 bridge networks and every compose
 * project takes at least one; subnets of our own, reserved in the database
 * (workers/local/subnet_pool.c), let one host run hundreds and let
 * admission say "full" before a build fails on it.
 */
#include <stdio.h>
#include <string.h>

#include "ephemera.h"

int
subnet_pool_parse(const char *cidr, uint32_t *base, int *bits)
{
	unsigned a, b, c, d, n;
	char tail;

	if (cidr == NULL ||
	    sscanf(cidr, "%u.%u.%u.%u/%u%c", &a, &b, &c, &d, &n, &tail) != 5 ||
	    a > 255 || b > 255 || c > 255 || d > 255 || n < 8 || n > 30)
		return -1;
	*base = a << 24 | b << 16 | c << 8 | d;
	*bits = (int)n;
	/* The block's own address, with no host bits: a typo, said so. */
	if ((*base & (n == 32 ? 0xffffffffu : ~(0xffffffffu >> n))) != *base)
		return -1;
	return 0;
}

int64_t
subnet_pool_size(const struct config *cfg)
{
	uint32_t base;
	int bits, sub = (int)cfg->local_subnet_prefix;

	if (cfg->local_subnet_pool[0] == '\0' ||
	    subnet_pool_parse(cfg->local_subnet_pool, &base, &bits) == -1 ||
	    sub < bits)
		return 0;
	/* At most 65,536: the table's index and any host's needs. */
	return sub - bits > 16 ? 65536 : (int64_t)1 << (sub - bits);
}

int
subnet_format(const struct config *cfg, int64_t idx, char out[SUBNET_MAX])
{
	uint32_t base, net;
	int bits, sub = (int)cfg->local_subnet_prefix;

	if (idx < 0 || idx >= subnet_pool_size(cfg) ||
	    subnet_pool_parse(cfg->local_subnet_pool, &base, &bits) == -1)
		return -1;
	net = base + ((uint32_t)idx << (32 - sub));
	snprintf(out, SUBNET_MAX, "%u.%u.%u.%u/%d", net >> 24, net >> 16 & 255,
	         net >> 8 & 255, net & 255, sub);
	return 0;
}
