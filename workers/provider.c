/*
 * provider.c - which compute and exposure provider serves an environment:
 * its repository's `compute_provider` / `exposure_provider` in `repos`,
 * else compute.provider / exposure.provider. The names were checked when
 * the config was loaded; a name with no table in this build gives NULL,
 * and the caller fails the environment saying so.
 */
#include <string.h>

#include "workers.h"

static const struct compute_ops *const computes[] = {&compute_local,
                                                     &compute_ec2};
static const struct exposure_ops *const exposures[] = {&exposure_nginx,
                                                       &exposure_cloudflare};

const struct compute_ops *
compute_for(const struct config *cfg, const char *repo)
{
	const struct repo_config *r = repo ? config_repo(cfg, repo) : NULL;
	const char *name = r && r->compute_provider ? r->compute_provider
	                                            : cfg->compute_provider;
	size_t i;

	for (i = 0; i < NELEM(computes); i++)
		if (strcmp(computes[i]->name, name) == 0)
			return computes[i];
	return NULL;
}

const struct exposure_ops *
exposure_for(const struct config *cfg, const char *repo)
{
	const struct repo_config *r = repo ? config_repo(cfg, repo) : NULL;
	const char *name = r && r->exposure_provider ? r->exposure_provider
	                                             : cfg->exposure_provider;
	size_t i;

	for (i = 0; i < NELEM(exposures); i++)
		if (strcmp(exposures[i]->name, name) == 0)
			return exposures[i];
	return NULL;
}

bool
exposure_wakes(const struct config *cfg, const struct exposure_ops *x)
{
	return cfg->env_wake_on_visit && x != NULL && x->sleep != NULL &&
	       (x->can_sleep == NULL || x->can_sleep(cfg));
}
