/*
 * cloudflare_provider.c - the `cloudflare` exposure provider's operation
 * table (workers.h, the provider seam). The tunnel is made in prepare,
 * because its connector is a service of the environment's compose
 * project; verify asks through the edge; unroute runs once the app (and
 * with it the connector) is down. The connector's token file in the work
 * dir stands for the route (no API call per look).
 *
 * The helpers' results: 0 done; -1 the environment failed (`why` says
 * why); 1 retry later (`why`, and *retry_ms when Cloudflare named a time,
 * 0: backoff).
 */
#include <errno.h>
#include <fcntl.h>
#include <json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "cloudflare.h"

#define CF_CONNECTOR_SERVICE "ephemera-cloudflared"

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
	/*
	 * The gate's labels, as on every other service of the project: the
	 * sweep finds a project by io.ephemera.instance, so a connector left
	 * by a crash is found and removed with the rest.
	 */
	json_object_object_foreach(services, name, other)
	{
		struct json_object *labels;

		(void)name;
		if (json_object_object_get_ex(other, "labels", &labels)) {
			struct json_object *copy = NULL;

			if (json_object_deep_copy(labels, &copy, NULL) != 0)
				fatal("cf_connector", "what=labels");
			json_object_object_add(svc, "labels", copy);
			break;
		}
	}
	/* services takes over svc's reference. */
	json_object_object_add(services, CF_CONNECTOR_SERVICE, svc);
	rc = 0;
out:
	buf_free(&text);
	return rc;
}

static enum deploy_rc
deploy_rc_of(int r)
{
	return r == 0 ? DEPLOY_OK : r == 1 ? DEPLOY_RETRY : DEPLOY_FAILED;
}

static bool
token_file_exists(const char *dir)
{
	struct buf path = BUF_INIT;
	struct stat st;
	bool yes;

	buf_printf(&path, "%s/tunnel-token", dir);
	yes = lstat(buf_str(&path), &st) == 0;
	buf_free(&path);
	return yes;
}

/* The control plane's waking route of an idle-stopped preview: its
 * record points at the control plane until the wake's verify. */
static bool
asleep(const struct config *cfg, const char *slug)
{
	return exposure_local_present(cfg, slug) &&
	       !exposure_local_exists(cfg, slug);
}

/* The tunnel, its ingress and record first; the connector joins the
 * project, so compose starts it with the app. */
static enum deploy_rc
cf_prepare(struct deploy *d, struct json_object *model)
{
	struct cf_client c;
	struct cf_env env = {0};
	struct cf_service *s =
	        xcalloc(d->ntargets ? d->ntargets : 1, sizeof(*s));
	struct buf path = BUF_INIT;
	size_t i;
	int rc = 1;

	d->retry_ms = 0;
	for (i = 0; i < d->ntargets; i++)
		s[i] = (struct cf_service){d->targets[i].service,
		                           d->targets[i].port,
		                           d->targets[i].primary, false};
	/* A push: the connector keeps the token it has (one call less). */
	env.token_known = token_file_exists(d->dir);
	env.asleep = asleep(d->w->cfg, d->e->slug);
	if (cf_client_init(&c, d->w->cfg, d->job ? d->job->attempts : 1) ==
	            -1 ||
	    cloudflare_route(&c, d->e->slug, s, d->ntargets,
	                     (const char *const *)d->rs.bypass, d->rs.nbypass,
	                     &env) == -1) {
		rc = client_result(&c, &d->why, &d->retry_ms);
		goto out;
	}
	memcpy(d->tunnel_id, env.tunnel_id, sizeof(d->tunnel_id));
	buf_printf(&path, "%s/tunnel-token", d->dir);
	if (env.token != NULL &&
	    cf_connector_token_write(buf_str(&path), env.token) == -1) {
		buf_puts(&d->why, "cannot write the connector's token file");
		goto out;
	}
	/* Mounted from where compose runs: an ec2 instance gets the file
	 * through Parameter Store (ec2_compute.c). */
	if (d->host_dir != NULL) {
		buf_reset(&path);
		buf_printf(&path, "%s/tunnel-token", d->host_dir);
	}
	rc = connector_add(d->w->cfg, buf_str(&path), model, &d->why) == 0 ? 0
	                                                                   : -1;
out:
	cf_env_free(&env);
	cf_client_free(&c);
	buf_free(&path);
	free(s);
	return deploy_rc_of(rc);
}

/*
 * The pair in cloudflare.access_service_token_file ("CF-Access-Client-Id:
 * ..." and "CF-Access-Client-Secret: ..." lines, as `ephemera cloudflare
 * service-token` writes it), read at each verify so a rotated token is
 * taken without a restart. -1: unreadable or incomplete.
 */
static int
access_pair_read(const char *path, struct buf *id, struct buf *secret)
{
	static const char idk[] = "CF-Access-Client-Id: ",
	                  seck[] = "CF-Access-Client-Secret: ";
	FILE *f = fopen(path, "re");
	char line[1024];

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		if (strncmp(line, idk, sizeof(idk) - 1) == 0)
			buf_puts(id, line + sizeof(idk) - 1);
		else if (strncmp(line, seck, sizeof(seck) - 1) == 0)
			buf_puts(secret, line + sizeof(seck) - 1);
	}
	explicit_bzero(line, sizeof(line));
	fclose(f);
	return id->len > 0 && secret->len > 0 ? 0 : -1;
}

/* ---- visits: the connector's request count -------------------------
 *
 * cloudflared counts the requests it proxied from 0 when it starts
 * (cloudflared_tunnel_total_requests). A count other than the last one
 * seen means visits since that look: seen now. The last count is kept
 * beside the token (tunnel-requests), first written by the deploy's
 * verify after its own ready check, so that
 * check is not taken for a visit. Where the compute cannot reach the
 * connector (no service_metrics), visits are unknown, as before.
 */
static int
requests_now(struct worker *w, const struct compute_ops *cp, const char *slug,
             int64_t *n)
{
	struct buf page = BUF_INIT;
	int rc = -1;

	if (cp == NULL || cp->service_metrics == NULL)
		return -1;
	if (cp->service_metrics(w, slug, CF_CONNECTOR_SERVICE,
	                        CF_CONNECTOR_METRICS_PORT,
	                        CF_CONNECTOR_REQUESTS, &page) == 0)
		rc = cf_connector_requests(buf_str(&page), n);
	if (rc == -1)
		log_warn("cf_visits_unknown", "slug=%s", log_q(slug));
	buf_free(&page);
	return rc;
}

static void
requests_path(const struct config *cfg, const char *slug, struct buf *path)
{
	char *dir = local_env_dir(cfg, slug);

	buf_printf(path, "%s/tunnel-requests", dir);
	free(dir);
}

/* 0: read; -1: no record (or not one of ours to read). */
static int
requests_read(const struct config *cfg, const char *slug, int64_t *n)
{
	struct buf path = BUF_INIT;
	char text[64];
	long long v;
	ssize_t len = -1;
	int fd;

	requests_path(cfg, slug, &path);
	fd = open(buf_str(&path), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd != -1) {
		len = read(fd, text, sizeof(text) - 1);
		close(fd);
	}
	buf_free(&path);
	if (len <= 0)
		return -1;
	text[len] = '\0';
	if (sscanf(text, "%lld", &v) != 1)
		return -1;
	*n = v;
	return 0;
}

static void
requests_write(const struct config *cfg, const char *slug, int64_t n)
{
	struct buf path = BUF_INIT, tmp = BUF_INIT, text = BUF_INIT;
	int fd;

	requests_path(cfg, slug, &path);
	buf_printf(&tmp, "%s.tmp", buf_str(&path));
	buf_printf(&text, "%lld\n", (long long)n);
	(void)unlink(buf_str(&tmp));
	fd = open(buf_str(&tmp),
	          O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd == -1 || write(fd, text.data, text.len) != (ssize_t)text.len ||
	    rename(buf_str(&tmp), buf_str(&path)) == -1)
		log_warn("cf_visits_record", "path=%s errno=%m",
		         log_q(buf_str(&path)));
	if (fd != -1)
		close(fd);
	buf_free(&path);
	buf_free(&tmp);
	buf_free(&text);
}

static int
cf_last_visit(struct worker *w, const char *repo, const char *slug, time_t *at)
{
	int64_t n, seen;
	int known;

	if (requests_now(w, compute_for(w->cfg, repo), slug, &n) == -1)
		return -1;
	known = requests_read(w->cfg, slug, &seen) == 0;
	if (known && seen == n)
		return 0;
	requests_write(w->cfg, slug, n);
	if (!known)
		return 0; /* a first look: the count to compare with next */
	*at = time(NULL);
	return 1;
}

/* Until the tunnel has a connection and the hostname answers at the
 * edge. `token` (nginx's route mark) has no meaning here. */
static enum deploy_rc
cf_verify(struct deploy *d, const char *token)
{
	const char *pair = d->w->cfg->cf_access_token_file;
	double until = now_mono() + 60;
	struct buf id = BUF_INIT, secret = BUF_INIT;
	struct cf_client c;
	long status = 0;
	int64_t n;
	int r, rc = 1;

	(void)token;
	d->retry_ms = 0;
	memset(&c, 0, sizeof(c));
	if (pair[0] != '\0' && access_pair_read(pair, &id, &secret) == -1) {
		buf_printf(&d->why,
		           "cannot read the Access service token pair in %s "
		           "(cloudflare.access_service_token_file)",
		           pair);
		goto out;
	}
	if (cf_client_init(&c, d->w->cfg, d->job ? d->job->attempts : 1) ==
	    -1) {
		rc = client_result(&c, &d->why, &d->retry_ms);
		goto out;
	}
	/* Woken: the connector is up, so the hostname leaves the waking
	 * page for the preview's tunnel, and the waking route goes. */
	if (asleep(d->w->cfg, d->e->slug)) {
		if (cloudflare_wake(&c, d->e->slug, d->tunnel_id) == -1) {
			rc = client_result(&c, &d->why, &d->retry_ms);
			goto out;
		}
		if (exposure_local_remove(d->w->cfg, d->e->slug) == -1) {
			buf_puts(&d->why, "the waking route could not be "
			                  "removed");
			goto out;
		}
	}
	for (;;) {
		/* Without the workers' service token, with Access on, its
		 * login redirect is the answer expected. */
		r = cloudflare_ready(&c, d->e->slug, d->tunnel_id,
		                     id.len ? buf_str(&id) : NULL,
		                     id.len ? buf_str(&secret) : NULL, &status);
		if (r == 1) {
			rc = 0;
			break;
		}
		if (r == -1) {
			rc = client_result(&c, &d->why, &d->retry_ms);
			break;
		}
		if (now_mono() > until) {
			if (id.len && cf_http_redirected_to_login())
				buf_printf(&d->why,
				           "Access sent the ready check to its "
				           "login: the service token in %s is "
				           "not let through (add it to the "
				           "application's Service Auth policy)",
				           pair);
			else
				buf_printf(&d->why,
				           "the preview did not answer through "
				           "Cloudflare (tunnel connected: %s, "
				           "last edge status %ld)",
				           status ? "yes" : "no", status);
			rc = -1;
			break;
		}
		if (worker_sleep(d->w, 500) == -1)
			break;
	}
	/* The count from here on is visits (a wake's included). */
	if (rc == 0 && requests_now(d->w, d->compute, d->e->slug, &n) == 0)
		requests_write(d->w->cfg, d->e->slug, n);
out:
	cf_client_free(&c);
	if (secret.data != NULL)
		explicit_bzero(secret.data, secret.len);
	buf_free(&id);
	buf_free(&secret);
	return deploy_rc_of(rc);
}

/* Tunnel, record and Access apps of `slug`, then the token file. */
static int
cf_unroute(struct worker *w, const struct job *job, const char *slug,
           struct removal *rm, struct buf *why, int64_t *retry_ms)
{
	struct cf_client c;
	struct buf path = BUF_INIT, ignored = BUF_INIT;
	char *dir = local_env_dir(w->cfg, slug);
	int rc = 0;

	*retry_ms = 0;
	if (why == NULL)
		why = &ignored;
	if (cf_client_init(&c, w->cfg, job ? job->attempts : 1) == -1 ||
	    cloudflare_unroute(&c, slug, rm) == -1)
		rc = client_result(&c, why, retry_ms);
	cf_client_free(&c);
	/* Gone on Cloudflare: the token and the route fact go too, and
	 * the waking route of one that was asleep. */
	buf_printf(&path, "%s/tunnel-token", dir);
	if (rc == 0 && unlink(buf_str(&path)) == -1 && errno != ENOENT) {
		buf_printf(why, "cannot remove %s", buf_str(&path));
		rc = 1;
	}
	buf_reset(&path);
	requests_path(w->cfg, slug, &path);
	if (rc == 0 && unlink(buf_str(&path)) == -1 && errno != ENOENT) {
		buf_printf(why, "cannot remove %s", buf_str(&path));
		rc = 1;
	}
	if (rc == 0 && asleep(w->cfg, slug) &&
	    exposure_local_remove(w->cfg, slug) == -1) {
		buf_puts(why, "the waking route could not be removed");
		rc = 1;
	}
	buf_free(&path);
	buf_free(&ignored);
	free(dir);
	return rc == 0 ? 0 : -1;
}

/* Wake on visit needs the control plane's tunnel to send visits to. */
static bool
cf_can_sleep(const struct config *cfg)
{
	return cfg->cf_wake_tunnel_id[0] != '\0';
}

/*
 * An idle stop: the waking route on this machine's nginx first, then the
 * hostname's record to the control plane's tunnel (whose ingress sends
 * preview hostnames here), so no visit meets nothing. The token file
 * goes: it is the route fact (cf_exists), and the wake reads the token
 * again. The tunnel stays; the connector holds it until the compute
 * stops, and the wake adopts it.
 */
static int
cf_sleep(struct worker *w, const struct job *job, const char *slug,
         struct buf *why)
{
	struct cf_client c;
	struct buf host = BUF_INIT, path = BUF_INIT;
	char *dir = local_env_dir(w->cfg, slug);
	int64_t retry_ms = 0;
	int rc = -1;

	memset(&c, 0, sizeof(c));
	if (cf_hostname(w->cfg->cf_zone, slug, &host, why) == -1 ||
	    route_sleep_host(w, slug, buf_str(&host), why) == -1)
		goto out;
	if (cf_client_init(&c, w->cfg, job ? job->attempts : 1) == -1 ||
	    cloudflare_sleep(&c, slug) == -1) {
		client_result(&c, why, &retry_ms);
		goto out;
	}
	buf_printf(&path, "%s/tunnel-token", dir);
	if (unlink(buf_str(&path)) == -1 && errno != ENOENT) {
		buf_printf(why, "cannot remove %s", buf_str(&path));
		goto out;
	}
	rc = 0;
out:
	cf_client_free(&c);
	buf_free(&host);
	buf_free(&path);
	free(dir);
	return rc;
}

static bool
cf_exists(const struct config *cfg, const char *slug)
{
	char *dir = local_env_dir(cfg, slug);
	bool yes = token_file_exists(dir);

	free(dir);
	return yes;
}

/*
 * This instance's tunnels, records and Access apps older than the sweep's
 * grace: a route in progress has made younger ones, and its environment
 * row may not be visible to the sweep's snapshot yet.
 */
static int
cf_list_owned(struct worker *w, const struct job *job, slug_fn add, void *arg)
{
	struct cf_client c;
	char **slugs = NULL;
	size_t n = 0, i;
	int rc = -1;

	if (cf_client_init(&c, w->cfg, job ? job->attempts : 1) == 0 &&
	    cloudflare_list_owned(
	            &c,
	            time(NULL) - (time_t)w->cfg->workers_sweep_grace_seconds,
	            &slugs, &n) == 0)
		rc = 0;
	for (i = 0; i < n; i++) {
		add(arg, slugs[i], strlen(slugs[i]));
		free(slugs[i]);
	}
	free(slugs);
	cf_client_free(&c);
	return rc;
}

/* The exposure_ops of `cloudflare` (see workers.h, the provider seam). */
const struct exposure_ops exposure_cloudflare = {
        .name = "cloudflare",
        .prepare = cf_prepare,
        .verify = cf_verify,
        .unroute = cf_unroute,
        .unroute_after_compute = true,
        .exists = cf_exists,
        .url = cloudflare_url,
        .list_owned = cf_list_owned,
        .sleep = cf_sleep,
        .can_sleep = cf_can_sleep,
        .last_visit = cf_last_visit,
};
