/*
 * cloudflare_deploy.c - what reconcile.c calls when exposure.provider is
 * "cloudflare". A minimal dispatch until the provider seam (issue 10)
 * replaces these calls with its exposure operation table (route, unroute,
 * exists, url, list owned): each function here is one of those operations
 * in the shape reconcile needs today.
 *
 * Results: 0 done; -1 the environment failed (`why` says why); 1 retry
 * later (`why`, and *retry_ms when Cloudflare named a time, 0: backoff).
 */
#include <errno.h>
#include <json.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "cloudflare.h"

#define CF_CONNECTOR_SERVICE "ephemera-cloudflared"
/*
 * The sweep leaves Cloudflare objects younger than this alone: a route
 * in progress has made them and its environment row may not be visible
 * to the sweep's snapshot yet.
 */
#define CF_SWEEP_GRACE_SECONDS 600

static int
client_result(struct cf_client *c, struct buf *why, int64_t *retry_ms)
{
	struct job_result res;
	int rc;

	memset(&res, 0, sizeof(res));
	buf_init(&res.error, 4096);
	cf_result(c, &res);
	buf_puts(why, buf_str(&res.error));
	*retry_ms = res.retry_after_ms;
	rc = res.outcome == JOB_FAIL ? -1 : 1;
	buf_free(&res.error);
	return rc;
}

/* The connector's compose service, with the token file mounted. */
static int
connector_add(const struct config *cfg, const char *token_path,
              struct json_object *model, struct buf *why)
{
	struct json_object *services, *svc, *vols, *v;
	struct buf text = BUF_INIT;
	const char *standin = getenv("EPHEMERA_CF_STANDIN_DIR");
	int rc = -1;

	if (!json_object_object_get_ex(model, "services", &services) ||
	    json_object_object_get_ex(services, CF_CONNECTOR_SERVICE, &v)) {
		buf_puts(why, "the compose file may not define a service "
		              "named " CF_CONNECTOR_SERVICE);
		goto out;
	}
	cf_connector_service(cfg->cf_connector_image, token_path, &text);
	svc = json_tokener_parse(buf_str(&text));
	if (svc == NULL)
		fatal("cf_connector", "what=render");
	/*
	 * Tests only: the stand-in connector (tests/connector/) reaches the
	 * fake Cloudflare through Unix sockets in this directory.
	 */
	if (standin != NULL && standin[0] == '/' &&
	    json_object_object_get_ex(svc, "volumes", &vols)) {
		v = json_object_new_object();
		json_object_object_add(v, "type",
		                       json_object_new_string("bind"));
		json_object_object_add(v, "source",
		                       json_object_new_string(standin));
		json_object_object_add(v, "target",
		                       json_object_new_string("/run/cf"));
		json_object_array_add(vols, v);
	}
	/* services takes over svc's reference. */
	json_object_object_add(services, CF_CONNECTOR_SERVICE, svc);
	rc = 0;
out:
	buf_free(&text);
	return rc;
}

int
cloudflare_deploy_route(struct worker *w, int attempt, const char *slug,
                        const char *dir, const struct route_target *t, size_t n,
                        struct json_object *model, char tunnel[40],
                        struct buf *why, int64_t *retry_ms)
{
	struct cf_client c;
	struct cf_env env = {0};
	struct cf_service *s = xcalloc(n ? n : 1, sizeof(*s));
	struct buf path = BUF_INIT;
	size_t i;
	int rc = 1;

	*retry_ms = 0;
	for (i = 0; i < n; i++)
		s[i] = (struct cf_service){t[i].service, t[i].port,
		                           t[i].primary, false};
	/* A push: the connector keeps the token it has (one call less). */
	env.token_known = cloudflare_routed(dir);
	if (cf_client_init(&c, w->cfg, attempt) == -1 ||
	    cloudflare_route(&c, slug, s, n, NULL, 0, &env) == -1) {
		rc = client_result(&c, why, retry_ms);
		goto out;
	}
	memcpy(tunnel, env.tunnel_id, 40);
	buf_printf(&path, "%s/tunnel-token", dir);
	if (env.token != NULL &&
	    cf_connector_token_write(buf_str(&path), env.token) == -1) {
		buf_puts(why, "cannot write the connector's token file");
		goto out;
	}
	rc = connector_add(w->cfg, buf_str(&path), model, why) == 0 ? 0 : -1;
out:
	cf_env_free(&env);
	cf_client_free(&c);
	buf_free(&path);
	free(s);
	return rc;
}

int
cloudflare_deploy_verify(struct worker *w, int attempt, const char *slug,
                         const char *tunnel, double seconds, struct buf *why,
                         int64_t *retry_ms)
{
	double until = now_mono() + seconds;
	struct cf_client c;
	long status = 0;
	int r, rc = 1;

	*retry_ms = 0;
	if (cf_client_init(&c, w->cfg, attempt) == -1) {
		rc = client_result(&c, why, retry_ms);
		goto out;
	}
	for (;;) {
		/* The CI service token is wired with the seam; without one
		 * Access's login redirect is the answer expected. */
		r = cloudflare_ready(&c, slug, tunnel, NULL, NULL, &status);
		if (r == 1) {
			rc = 0;
			break;
		}
		if (r == -1) {
			rc = client_result(&c, why, retry_ms);
			break;
		}
		if (now_mono() > until) {
			buf_printf(
			        why,
			        "the preview did not answer through "
			        "Cloudflare (tunnel connected: %s, last edge "
			        "status %ld)",
			        status ? "yes" : "no", status);
			rc = -1;
			break;
		}
		if (worker_sleep(w, 500) == -1)
			break;
	}
out:
	cf_client_free(&c);
	return rc;
}

int
cloudflare_teardown(struct worker *w, int attempt, const char *slug,
                    const char *dir, struct buf *why, int64_t *retry_ms)
{
	struct cf_client c;
	struct buf path = BUF_INIT;
	int rc = 0;

	*retry_ms = 0;
	if (cf_client_init(&c, w->cfg, attempt) == -1 ||
	    cloudflare_unroute(&c, slug) == -1)
		rc = client_result(&c, why, retry_ms);
	cf_client_free(&c);
	/* Gone on Cloudflare: the token and the route fact go too. */
	buf_printf(&path, "%s/tunnel-token", dir);
	if (rc == 0 && unlink(buf_str(&path)) == -1 && errno != ENOENT) {
		buf_printf(why, "cannot remove %s", buf_str(&path));
		rc = 1;
	}
	buf_free(&path);
	return rc;
}

bool
cloudflare_routed(const char *dir)
{
	struct buf path = BUF_INIT;
	struct stat st;
	bool yes;

	buf_printf(&path, "%s/tunnel-token", dir);
	yes = lstat(buf_str(&path), &st) == 0;
	buf_free(&path);
	return yes;
}

int
cloudflare_sweep_slugs(struct worker *w, void (*add)(void *, const char *),
                       void *arg)
{
	struct cf_client c;
	char **slugs = NULL;
	size_t n = 0, i;
	int rc = -1;

	if (cf_client_init(&c, w->cfg, 1) == 0 &&
	    cloudflare_list_owned(&c, time(NULL) - CF_SWEEP_GRACE_SECONDS,
	                          &slugs, &n) == 0)
		rc = 0;
	for (i = 0; i < n; i++) {
		add(arg, slugs[i]);
		free(slugs[i]);
	}
	free(slugs);
	cf_client_free(&c);
	return rc;
}

int
cloudflare_orphan_remove(struct worker *w, const char *slug)
{
	struct cf_client c;
	int rc = -1;

	if (cf_client_init(&c, w->cfg, 1) == 0 &&
	    cloudflare_unroute(&c, slug) == 0)
		rc = 0;
	cf_client_free(&c);
	return rc;
}
