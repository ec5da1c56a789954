/*
 * reconcile.c - the `reconcile` job: move one environment toward its
 * desired state. Each turn observes the host, asks plan_next() for the one
 * next step, runs it, and asks again, until the plan says there is nothing
 * left to do. Every step is idempotent, so a worker killed anywhere leaves
 * a state the next reconcile finishes from (DESIGN.md section 2).
 *
 * Outcomes: a deploy that fails because of the repository (a compose file
 * that does not build, a refused setting) is the environment's failure,
 * recorded and shown, and the job is done; a failure of ours or of the
 * host (Docker down, a fetch that timed out) is retried by the queue.
 */
#include <json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "workers.h"
#include "cloudflare/cloudflare.h"

#define RECONCILE_MAX_TURNS 8
#define LOG_TAIL_MAX (16u * 1024)

enum deploy_rc { DEPLOY_OK, DEPLOY_FAILED, DEPLOY_RETRY };

struct deploy {
	struct worker *w;
	const struct job *job;
	const struct env *e;
	const struct repo_config *admin;
	struct build b;
	char project[80];
	char *dir, *src;
	struct repo_settings rs;
	struct compose_result cr;
	struct route_target *targets;
	size_t ntargets;
	struct buf log;
	struct buf why;
	/* Cloudflare exposure (issue 11), until the provider seam. */
	char cf_tunnel[40];
	int64_t retry_ms; /* DEPLOY_RETRY: when Cloudflare said; 0 backoff */
};

/*
 * ---- Cloudflare exposure: a minimal dispatch (issue 11) ----------------
 * Until the provider seam (issue 10) puts the exposure providers behind
 * an operation table, reconcile asks this one question and calls
 * workers/cloudflare/cloudflare_deploy.c when it is yes.
 */
static bool
cf_exposure(const struct config *cfg)
{
	return strcmp(cfg->exposure_provider, "cloudflare") == 0;
}

static char *
env_url(const struct config *cfg, const char *slug, const char *path)
{
	return cf_exposure(cfg) ? cloudflare_url(cfg, slug, path)
	                        : exposure_local_url(cfg, slug, path);
}

static void
host_call_init(struct host_call *c, const char *action, const char *project,
               const char *dir)
{
	memset(c, 0, sizeof(*c));
	c->action = action;
	c->project = project;
	c->dir = dir;
	c->build = true;
}

/*
 * What runs, from Docker's labels; the route and work dir from disk. When
 * everything should be gone, the question is rather whether any object of
 * the project is left, running or not (which includes running ones).
 */
static int
observe(struct worker *w, const struct job *job, const struct env *e,
        struct facts *f)
{
	struct host_call c;
	struct proc p;
	struct json_object *arr;
	char project[80];
	char *dir = local_env_dir(w->cfg, e->slug);
	struct stat st;
	bool gone = strcmp(e->desired, "destroyed") == 0;
	int rc = -1;

	memset(f, 0, sizeof(*f));
	local_project_name(w->cfg, e->slug, project);
	host_call_init(&c, gone ? "leftovers" : "status", project, NULL);
	proc_init(&p);
	if (local_host_run(w, job, &c, &p) == -1)
		goto out;
	if (gone) {
		f->leftover = strtol(buf_str(&p.out), NULL, 10) > 0;
	} else {
		arr = json_tokener_parse(buf_str(&p.out));
		f->running = arr != NULL &&
		             json_object_is_type(arr, json_type_array) &&
		             json_object_array_length(arr) > 0;
		json_object_put(arr);
	}
	/* Cloudflare: the connector's token file stands for the route
	 * (no API call per look; unroute is idempotent either way). */
	f->route = cf_exposure(w->cfg) ? cloudflare_routed(dir)
	                               : exposure_local_exists(w->cfg, e->slug);
	f->workdir = stat(dir, &st) == 0;
	rc = 0;
out:
	proc_free(&p);
	free(dir);
	return rc;
}

/* Build progress redraws lines with \r; keep each state as a line. */
static void
log_take(struct deploy *d, const struct proc *p)
{
	size_t i, start = d->log.len;

	buf_append(&d->log, p->err.data ? p->err.data : "", p->err.len);
	for (i = start; i < d->log.len; i++)
		if (d->log.data[i] == '\r')
			d->log.data[i] = '\n';
	if (d->log.len > LOG_TAIL_MAX)
		buf_keep_tail(&d->log, LOG_TAIL_MAX);
}

/* The last lines of the log, for a step's detail or a message. */
static char *
log_last(const struct buf *log, size_t bytes)
{
	struct buf t = BUF_INIT;

	buf_append(&t, log->data ? log->data : "", log->len);
	buf_keep_tail(&t, bytes);
	return buf_detach(&t);
}

/*
 * GitHub's own clone URL (from the signed event) gets an installation
 * token: contents:read on this one repository, valid an hour. An admin's
 * `source` (a mirror, a local path) never sees it.
 */
static enum deploy_rc
clone_token(struct deploy *d, struct buf *token)
{
	struct job_result res = {JOB_DONE, 0, BUF_INIT};
	enum deploy_rc rc = DEPLOY_OK;

	if (!d->w->cfg->github_enabled || (d->admin && d->admin->source))
		return DEPLOY_OK;
	if (github_clone_token(d->w->cfg, d->e->installation_id, d->e->repo,
	                       token, &res) == -1) {
		buf_printf(&d->why, "no clone token from GitHub: %s",
		           res.error.len ? buf_str(&res.error) : "unknown");
		/* Refused for good (App uninstalled, no access) is the
		 * environment's failure; anything else is retried. */
		rc = res.outcome == JOB_FAIL ? DEPLOY_FAILED : DEPLOY_RETRY;
	}
	buf_free(&res.error);
	return rc;
}

static enum deploy_rc
step_fetch(struct deploy *d)
{
	struct host_call c;
	struct proc p;
	struct buf token = BUF_INIT;
	enum deploy_rc rc = DEPLOY_OK;
	char *abs = NULL;

	host_call_init(&c, "fetch", d->project, d->dir);
	c.sha = d->e->desired_sha;
	c.source = d->admin && d->admin->source ? d->admin->source
	                                        : d->e->clone_url;
	if (c.source == NULL || c.source[0] == '\0') {
		buf_puts(&d->why, "no source to fetch: the repository is not "
		                  "configured and the event had no clone URL");
		return DEPLOY_FAILED;
	}
	if ((rc = clone_token(d, &token)) != DEPLOY_OK)
		return rc;
	c.git_token = token.len ? buf_str(&token) : NULL;
	/* A relative local path is the admin's, relative to our cwd. */
	if (c.source[0] != '/' && strstr(c.source, "://") == NULL &&
	    (abs = realpath(c.source, NULL)) != NULL)
		c.source = abs;
	proc_init(&p);
	if (local_host_run(d->w, d->job, &c, &p) == -1) {
		buf_printf(&d->why, "fetching %.12s failed", d->e->desired_sha);
		rc = DEPLOY_RETRY;
		/* The App may have lost the repository since the token was
		 * cached: the retry asks GitHub again, and hears why. */
		if (c.git_token != NULL)
			github_token_forget(0, d->e->repo);
	}
	log_take(d, &p);
	proc_free(&p);
	free(abs);
	if (token.data)
		explicit_bzero(token.data, token.len);
	buf_free(&token);
	return rc;
}

/* Copies the admin's secrets file into the checkout as .env (trusted). */
static int
secrets_write(struct deploy *d)
{
	struct buf path = BUF_INIT, text = BUF_INIT;
	char chunk[4096];
	size_t n;
	FILE *in = NULL, *out = NULL;
	int rc = -1;

	in = fopen(d->admin->secrets_file, "r");
	if (in == NULL) {
		log_error("secrets_read", "repo=%s errno=%m",
		          log_q(d->e->repo));
		buf_puts(&d->why, "the repository's secrets file cannot be "
		                  "read (see the worker log)");
		goto out;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), in)) > 0)
		buf_append(&text, chunk, n);
	buf_printf(&path, "%s/.env", d->src);
	unlink(buf_str(&path));
	out = fopen(buf_str(&path), "wx");
	if (out == NULL || fwrite(text.data, 1, text.len, out) != text.len) {
		log_error("secrets_write", "env=%llu errno=%m",
		          (unsigned long long)d->e->id);
		goto out;
	}
	rc = 0;
out:
	if (in)
		fclose(in);
	if (out && fclose(out) != 0)
		rc = -1;
	if (text.data)
		explicit_bzero(text.data, text.len);
	buf_free(&text);
	buf_free(&path);
	return rc;
}

/* The primary service: asked for, configured, "web", or the first. */
static const char *
primary_choose(struct deploy *d)
{
	size_t i;

	if (d->rs.primary_service)
		return d->rs.primary_service;
	if (d->admin && d->admin->primary_service)
		return d->admin->primary_service;
	if (compose_service_find(&d->cr, "web") &&
	    compose_service_find(&d->cr, "web")->port > 0)
		return "web";
	for (i = 0; i < d->cr.n; i++)
		if (d->cr.services[i].port > 0)
			return d->cr.services[i].name;
	return NULL;
}

static int
targets_choose(struct deploy *d)
{
	const char *primary = primary_choose(d);
	const struct compose_service *s;
	size_t i;

	if (primary == NULL) {
		buf_puts(&d->why, "no service exposes a port to route to "
		                  "(add `expose:` or `ports:`)");
		return -1;
	}
	s = compose_service_find(&d->cr, primary);
	if (s == NULL || s->port == 0) {
		buf_printf(&d->why, "primary service \"%s\" %s", primary,
		           s ? "exposes no port"
		             : "is not in the compose file");
		return -1;
	}
	d->targets = xcalloc(d->cr.n + 1, sizeof(*d->targets));
	d->targets[d->ntargets++] =
	        (struct route_target){s->name, NULL, s->port, true};
	if (d->rs.expose != NULL) {
		for (i = 0; i < d->rs.nexpose; i++) {
			s = compose_service_find(&d->cr, d->rs.expose[i]);
			if (s == NULL || s->port == 0) {
				buf_printf(&d->why,
				           "exposed service \"%s\" "
				           "%s",
				           d->rs.expose[i],
				           s ? "has no port"
				             : "is not in the compose file");
				return -1;
			}
			if (strcmp(s->name, primary) != 0)
				d->targets[d->ntargets++] =
				        (struct route_target){s->name, NULL,
				                              s->port, false};
		}
		return 0;
	}
	for (i = 0; i < d->cr.n; i++) {
		s = &d->cr.services[i];
		if (s->port > 0 && strcmp(s->name, primary) != 0)
			d->targets[d->ntargets++] = (struct route_target){
			        s->name, NULL, s->port, false};
	}
	return 0;
}

static int
compose_write(struct deploy *d, struct json_object *model)
{
	struct buf path = BUF_INIT;
	const char *text = json_object_to_json_string_ext(
	        model,
	        JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	FILE *f;
	int rc = -1;

	buf_printf(&path, "%s/compose.json", d->dir);
	f = fopen(buf_str(&path), "w");
	if (f != NULL && fputs(text, f) >= 0 && fclose(f) == 0)
		rc = 0;
	else
		log_error("compose_write", "path=%s errno=%m",
		          log_q(buf_str(&path)));
	buf_free(&path);
	return rc;
}

static enum deploy_rc
step_configure(struct deploy *d)
{
	struct buf conf = BUF_INIT;
	struct host_call c;
	struct proc p;
	struct json_object *model = NULL;
	struct compose_policy pol;
	enum deploy_rc rc = DEPLOY_FAILED;

	proc_init(&p);
	buf_printf(&conf, "%s/.ephemera.conf", d->src);
	if (repo_settings_load(buf_str(&conf), &d->rs, &d->why) == -1)
		goto out;
	host_call_init(&c, "config", d->project, d->dir);
	c.sha = d->e->desired_sha;
	c.compose_file = d->rs.compose_file
	                         ? d->rs.compose_file
	                         : (d->admin ? d->admin->compose_file : NULL);
	if (local_host_run(d->w, d->job, &c, &p) == -1) {
		log_take(d, &p);
		buf_puts(&d->why, "the compose file is not valid");
		goto out;
	}
	model = yaml_to_json(p.out.data ? p.out.data : "", p.out.len, &d->why);
	if (model == NULL)
		goto out;
	memset(&pol, 0, sizeof(pol));
	pol.project = d->project;
	pol.instance = d->w->cfg->env_instance;
	pol.env_id = d->e->id;
	pol.src_dir = d->src;
	pol.allowed_services = d->admin ? d->admin->allowed_services : NULL;
	pol.max_services = (int)d->w->cfg->env_max_services;
	pol.allow_build = d->w->cfg->env_allow_build && d->rs.build;
	if (compose_sanitize(model, &pol, &d->cr, &d->why) == -1 ||
	    targets_choose(d) == -1)
		goto out;
	/* Cloudflare: the tunnel first, its connector joins the project. */
	if (cf_exposure(d->w->cfg)) {
		int r = cloudflare_deploy_route(
		        d->w, d->job->attempts, d->e->slug, d->dir, d->targets,
		        d->ntargets, model, d->cf_tunnel, &d->why,
		        &d->retry_ms);

		if (r != 0) {
			rc = r == 1 ? DEPLOY_RETRY : DEPLOY_FAILED;
			goto out;
		}
	}
	if (compose_write(d, model) == -1) {
		rc = DEPLOY_RETRY;
		goto out;
	}
	/* Secrets only ever reach trusted environments. */
	if (d->admin && d->admin->secrets_file &&
	    (d->e->trusted || d->w->cfg->policy_untrusted_secrets) &&
	    secrets_write(d) == -1)
		goto out;
	rc = DEPLOY_OK;
out:
	json_object_put(model);
	proc_free(&p);
	buf_free(&conf);
	return rc;
}

/* Fills each target's address from `up`'s JSON. */
static int
addresses_take(struct deploy *d, const char *json, struct json_object **keep)
{
	struct json_object *arr = json_tokener_parse(json);
	size_t i, j;

	*keep = arr;
	if (arr == NULL || !json_object_is_type(arr, json_type_array)) {
		buf_puts(&d->why, "the host did not report its services");
		return -1;
	}
	for (i = 0; i < d->ntargets; i++) {
		for (j = 0; j < json_object_array_length(arr); j++) {
			struct json_object *s =
			        json_object_array_get_idx(arr, j);
			struct json_object *name, *addr;

			if (json_object_object_get_ex(s, "name", &name) &&
			    json_object_object_get_ex(s, "address", &addr) &&
			    strcmp(json_object_get_string(name),
			           d->targets[i].service) == 0 &&
			    json_object_get_string_len(addr) > 0)
				d->targets[i].address =
				        json_object_get_string(addr);
		}
		if (d->targets[i].address == NULL) {
			buf_printf(&d->why, "service \"%s\" is not running",
			           d->targets[i].service);
			return -1;
		}
	}
	return 0;
}

static enum deploy_rc
step_up(struct deploy *d, struct json_object **services)
{
	struct host_call c;
	struct proc p;
	enum deploy_rc rc = DEPLOY_OK;

	host_call_init(&c, "up", d->project, d->dir);
	c.sha = d->e->desired_sha;
	c.build = d->rs.build;
	proc_init(&p);
	if (local_host_run(d->w, d->job, &c, &p) == -1) {
		buf_puts(&d->why, p.cancelled
		                          ? "the job's lease was lost"
		                          : "the app did not start "
		                            "(build or health check failed)");
		rc = p.cancelled ? DEPLOY_RETRY : DEPLOY_FAILED;
	} else if (addresses_take(d, buf_str(&p.out), services) == -1) {
		rc = DEPLOY_FAILED;
	}
	log_take(d, &p);
	proc_free(&p);
	return rc;
}

static char *
services_json(struct deploy *d)
{
	struct buf b = BUF_INIT;
	size_t i;

	buf_putc(&b, '[');
	for (i = 0; i < d->ntargets; i++) {
		struct buf path = BUF_INIT;
		char *url;

		buf_printf(&path, "/%s%s",
		           d->targets[i].primary ? "" : d->targets[i].service,
		           d->targets[i].primary ? "" : "/");
		url = env_url(d->w->cfg, d->e->slug, buf_str(&path));
		buf_printf(&b, "%s{\"name\":", i ? "," : "");
		buf_append_json_string(&b, d->targets[i].service,
		                       strlen(d->targets[i].service));
		buf_printf(&b, ",\"primary\":%s,\"url\":",
		           d->targets[i].primary ? "true" : "false");
		buf_append_json_string(&b, url, strlen(url));
		buf_putc(&b, '}');
		free(url);
		buf_free(&path);
	}
	buf_putc(&b, ']');
	return buf_detach(&b);
}

/* Runs one named step with its build_steps row. */
static enum deploy_rc
step_run(struct deploy *d, const char *name, enum deploy_rc rc_of_step)
{
	char *detail;

	if (rc_of_step == DEPLOY_OK) {
		build_step_end(d->w->db, &d->b, true, NULL);
		return DEPLOY_OK;
	}
	detail = d->why.len ? xstrdup(buf_str(&d->why))
	                    : log_last(&d->log, 2048);
	build_step_end(d->w->db, &d->b, false, detail);
	log_warn("deploy_step_failed", "env=%llu step=%s reason=%s",
	         (unsigned long long)d->e->id, name, log_q(detail));
	free(detail);
	return rc_of_step;
}

static enum deploy_rc
deploy_steps(struct deploy *d)
{
	struct json_object *services = NULL;
	struct buf host = BUF_INIT;
	enum deploy_rc rc;
	long status = 0;
	char *url = NULL, *svc = NULL;
	char token[32];

	if (build_step_begin(d->w->db, &d->b, "fetch") == -1)
		return DEPLOY_RETRY;
	if ((rc = step_run(d, "fetch", step_fetch(d))) != DEPLOY_OK)
		goto out;
	/* Announced once the commit is here: nothing claims to build what
	 * cannot even be fetched. */
	notify_env(d->w, d->e->id, "deploying", d->e->desired_sha);
	if (build_step_begin(d->w->db, &d->b, "configure") == -1)
		return DEPLOY_RETRY;
	if ((rc = step_run(d, "configure", step_configure(d))) != DEPLOY_OK)
		goto out;
	if (build_step_begin(d->w->db, &d->b, "up") == -1)
		return DEPLOY_RETRY;
	if ((rc = step_run(d, "up", step_up(d, &services))) != DEPLOY_OK)
		goto out;
	if (build_step_begin(d->w->db, &d->b, "route") == -1)
		return DEPLOY_RETRY;
	snprintf(token, sizeof(token), "b%llu", (unsigned long long)d->b.id);
	rc = cf_exposure(d->w->cfg) || /* routed in configure */
	                     exposure_local_write(d->w->cfg, d->e->slug, token,
	                                          d->targets, d->ntargets) == 0
	             ? DEPLOY_OK
	             : DEPLOY_RETRY;
	if (rc != DEPLOY_OK)
		buf_puts(&d->why, "the proxy route could not be written");
	if ((rc = step_run(d, "route", rc)) != DEPLOY_OK)
		goto out;
	if (build_step_begin(d->w->db, &d->b, "verify") == -1)
		return DEPLOY_RETRY;
	buf_printf(&host, "%s.%s", d->e->slug, d->w->cfg->preview_domain);
	rc = DEPLOY_OK;
	if (cf_exposure(d->w->cfg)) {
		int r = cloudflare_deploy_verify(d->w, d->job->attempts,
		                                 d->e->slug, d->cf_tunnel, 60,
		                                 &d->why, &d->retry_ms);

		rc = r == 0 ? DEPLOY_OK : r == 1 ? DEPLOY_RETRY : DEPLOY_FAILED;
	} else if (probe_wait(d->w, d->job, buf_str(&host), d->rs.health_path,
	                      token, 60, &status) == -1) {
		buf_printf(&d->why,
		           "the preview URL did not answer (last "
		           "status %ld at %s)",
		           status, d->rs.health_path);
		rc = DEPLOY_FAILED;
	}
	if ((rc = step_run(d, "verify", rc)) != DEPLOY_OK)
		goto out;
	url = env_url(d->w->cfg, d->e->slug, "/");
	svc = services_json(d);
	if (db_exec(d->w->db,
	            "UPDATE environments SET phase = 'ready', deployed_sha = ?, "
	            "attempted_sha = ?, url = ?, services = ?, error = NULL, "
	            "ready_at = NOW(6), last_active_at = NOW(6) WHERE id = ?",
	            "ssssu", d->e->desired_sha, d->e->desired_sha, url, svc,
	            d->e->id) == -1) {
		rc = DEPLOY_RETRY;
		goto out;
	}
out:
	json_object_put(services);
	buf_free(&host);
	free(url);
	free(svc);
	return rc;
}

static enum deploy_rc
deploy(struct worker *w, const struct job *job, const struct env *e,
       struct job_result *res)
{
	struct deploy d;
	enum deploy_rc rc;
	char *tail;

	memset(&d, 0, sizeof(d));
	d.w = w;
	d.job = job;
	d.e = e;
	d.admin = config_repo(w->cfg, e->repo);
	local_project_name(w->cfg, e->slug, d.project);
	d.dir = local_env_dir(w->cfg, e->slug);
	buf_init(&d.log, LOG_TAIL_MAX * 2);
	buf_init(&d.why, 4096);
	{
		struct buf s = BUF_INIT;

		buf_printf(&s, "%s/src", d.dir);
		d.src = buf_detach(&s);
	}
	if (build_begin(w->db, e->id, e->desired_sha, &d.b) == -1) {
		rc = DEPLOY_RETRY;
		goto out;
	}
	rc = deploy_steps(&d);
	tail = log_last(&d.log, LOG_TAIL_MAX);
	if (rc == DEPLOY_OK) {
		build_end(w->db, &d.b, "succeeded", NULL, tail);
		notify_env(w, e->id, "ready", NULL);
		log_info("deploy_ready", "env=%llu sha=%.12s",
		         (unsigned long long)e->id, e->desired_sha);
	} else if (rc == DEPLOY_FAILED) {
		build_end(w->db, &d.b, "failed", buf_str(&d.why), tail);
		db_exec(w->db,
		        "UPDATE environments SET phase = 'failed', "
		        "attempted_sha = ?, error = ? WHERE id = ?",
		        "ssu", e->desired_sha, buf_str(&d.why), e->id);
		notify_env(w, e->id, "failed", buf_str(&d.why));
	} else {
		/* Ours to retry: the build stays running and resumes. */
		buf_printf(&res->error, "%s", buf_str(&d.why));
		res->retry_after_ms = d.retry_ms;
		/* The last attempt: the queue marks it failed; say so. */
		if (job->attempts >= job->max_attempts)
			notify_env(w, e->id, "failed", buf_str(&d.why));
	}
	free(tail);
out:
	repo_settings_free(&d.rs);
	compose_result_free(&d.cr);
	free(d.targets);
	free(d.dir);
	free(d.src);
	buf_free(&d.log);
	buf_free(&d.why);
	return rc;
}

/* STOP, DESTROY and HOLD: take the route down first, then the app. */
static int
teardown(struct worker *w, const struct job *job, const struct env *e,
         enum step step, struct job_result *res)
{
	const char *during = step == STEP_STOP ? "stopping" : "destroying";
	const char *after = step == STEP_STOP   ? "stopped"
	                    : step == STEP_HOLD ? "awaiting_approval"
	                                        : "destroyed";
	struct host_call c;
	struct proc p;
	char project[80];
	char *dir = local_env_dir(w->cfg, e->slug);
	int rc = -1;

	local_project_name(w->cfg, e->slug, project);
	proc_init(&p);
	if (env_phase_set(w->db, e->id, during, NULL) == -1 ||
	    (!cf_exposure(w->cfg) &&
	     exposure_local_remove(w->cfg, e->slug) == -1))
		goto out;
	host_call_init(&c, step == STEP_STOP ? "stop" : "down", project,
	               step == STEP_STOP ? NULL : dir);
	if (local_host_run(w, job, &c, &p) == -1) {
		buf_printf(&res->error, "%s failed: %s", c.action,
		           buf_str(&p.err));
		goto out;
	}
	/* Cloudflare: after the connector is gone, the tunnel can go. */
	if (cf_exposure(w->cfg) &&
	    cloudflare_teardown(w, job->attempts, e->slug, dir, &res->error,
	                        &res->retry_after_ms) != 0)
		goto out;
	if (db_exec(w->db,
	            "UPDATE builds SET status = 'cancelled', finished_at = "
	            "NOW(6) WHERE env_id = ? AND status = 'running'",
	            "u", e->id) == -1 ||
	    db_exec(w->db,
	            "UPDATE environments SET phase = ?, url = IF(? = 'stopped', "
	            "url, NULL), error = NULL WHERE id = ?",
	            "ssu", after, after, e->id) == -1)
		goto out;
	capacity_release(w->db, (int)w->cfg->workers_max_attempts);
	/* A sweep clearing leftovers of a destroyed one is no news. */
	if (strcmp(e->phase, after) != 0)
		notify_env(w, e->id, after, NULL);
	log_info("teardown", "env=%llu phase=%s", (unsigned long long)e->id,
	         after);
	rc = 0;
out:
	proc_free(&p);
	free(dir);
	return rc;
}

static void
queued_notify(struct worker *w, const struct env *e)
{
	struct db_rows *r = NULL;
	struct buf msg = BUF_INIT;

	if (db_query(w->db, &r,
	             "SELECT COUNT(*) FROM environments o, environments me "
	             "WHERE me.id = ? AND o.phase = 'queued' AND "
	             "o.queued_at <= me.queued_at",
	             "u", e->id) == 0 &&
	    db_rows_count(r) == 1)
		buf_printf(&msg,
		           "waiting for a free slot (position %s, limit "
		           "%lld running)",
		           db_rows_get(r, 0, 0),
		           (long long)w->cfg->env_max_running);
	notify_env(w, e->id, "queued", buf_str(&msg));
	db_rows_free(r);
	buf_free(&msg);
}

void
reconcile_run(struct worker *w, const struct job *job, struct job_result *res)
{
	struct env e;
	struct facts f;
	enum step step;
	int turn, r;
	bool observed = false;

	res->outcome = JOB_DONE;
	for (turn = 0; turn < RECONCILE_MAX_TURNS; turn++) {
		r = env_load(w->db, job->env_id, &e);
		if (r == 1)
			return; /* gone: nothing to reconcile */
		/* Admission changes no host fact: the last look still holds,
		 * and each look costs a few Docker calls on the way to a URL. */
		if (r == -1 || (!observed && observe(w, job, &e, &f) == -1)) {
			buf_puts(&res->error, "cannot observe the environment");
			res->outcome = JOB_RETRY;
			env_free(&e);
			return;
		}
		step = plan_next(&e, &f);
		log_info("reconcile_step",
		         "env=%llu desired=%s phase=%s step=%s",
		         (unsigned long long)e.id, e.desired, e.phase,
		         step_name(step));
		observed = false;
		switch (step) {
		case STEP_NONE:
			env_free(&e);
			return;
		case STEP_ADMIT:
			r = capacity_admit(w->db, e.id,
			                   w->cfg->env_max_running);
			if (r == 1)
				queued_notify(w, &e);
			if (r != 0) {
				if (r == -1)
					res->outcome = JOB_RETRY;
				env_free(&e);
				return;
			}
			observed = true;
			break;
		case STEP_DEPLOY:
			if (deploy(w, job, &e, res) == DEPLOY_RETRY) {
				res->outcome = JOB_RETRY;
				env_free(&e);
				return;
			}
			break;
		case STEP_STOP:
		case STEP_DESTROY:
		case STEP_HOLD:
			if (teardown(w, job, &e, step, res) == -1) {
				res->outcome = JOB_RETRY;
				env_free(&e);
				return;
			}
			break;
		}
		env_free(&e);
	}
}
