/*
 * reconcile.c - the `reconcile` job: move one environment toward its
 * desired state. Each turn observes the host, asks plan_next() for the one
 * next step, runs it, and asks again, until the plan says there is nothing
 * left to do. Every step is idempotent, so a worker killed anywhere leaves
 * a state the next reconcile finishes from (docs/architecture.md section 2).
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
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "workers.h"

#define RECONCILE_MAX_TURNS 8
#define LOG_TAIL_MAX (16u * 1024)

/* Compute facts from the environment's compute provider, the route's
 * from its exposure provider. */
static int
observe(struct worker *w, const struct job *job, const struct env *e,
        const struct compute_ops *compute, const struct exposure_ops *exposure,
        struct facts *f)
{
	memset(f, 0, sizeof(*f));
	if (compute->observe(w, job, e, f) == -1)
		return -1;
	f->route = exposure->exists(w->cfg, e->slug);
	return 0;
}

/*
 * Build progress redraws lines with \r; keep each state as a line. The
 * host's output passes log_filter() (compose_vars.c) first: it is shown on
 * the status page and quoted to the PR.
 */
void
deploy_log_append(struct deploy *d, const char *text, size_t len)
{
	size_t i, start = d->log.len;

	log_filter(text ? text : "", len, d->dir, &d->log);
	for (i = start; i < d->log.len; i++)
		if (d->log.data[i] == '\r')
			d->log.data[i] = '\n';
	if (d->log.len > LOG_TAIL_MAX)
		buf_keep_tail(&d->log, LOG_TAIL_MAX);
}

static void
log_take(struct deploy *d, const struct proc *p)
{
	deploy_log_append(d, p->err.data, p->err.len);
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
enum deploy_rc
deploy_clone_token(struct deploy *d, struct buf *token)
{
	struct job_result res = {.outcome = JOB_DONE, .error = BUF_INIT};
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
	if ((rc = deploy_clone_token(d, &token)) != DEPLOY_OK)
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

/*
 * The variables the compose file may use: EPHEMERA_COMMIT, and for a
 * trusted environment the admin's secrets file (NAME=value lines). The
 * gate interpolates them itself; compose gets no .env and no environment
 * of ours to read.
 */
static int
vars_load(struct deploy *d, struct buf *text, char ***vars)
{
	size_t n = 1, i = 0;
	char *line, *save = NULL;
	FILE *in;
	char chunk[4096];
	size_t got;

	buf_printf(text, "EPHEMERA_COMMIT=%s\n", d->e->desired_sha);
	if (d->admin && d->admin->secrets_file &&
	    (d->e->trusted || d->w->cfg->policy_untrusted_secrets)) {
		in = fopen(d->admin->secrets_file, "r");
		if (in == NULL) {
			log_error("secrets_read", "repo=%s errno=%m",
			          log_q(d->e->repo));
			buf_puts(&d->why,
			         "the repository's secrets file cannot "
			         "be read (see the worker log)");
			return -1;
		}
		while ((got = fread(chunk, 1, sizeof(chunk), in)) > 0)
			buf_append(text, chunk, got);
		fclose(in);
		explicit_bzero(chunk, sizeof(chunk));
	}
	for (got = 0; got < text->len; got++)
		n += text->data[got] == '\n';
	*vars = xcalloc(n + 1, sizeof(char *));
	for (line = strtok_r(text->data, "\n", &save); line && i < n;
	     line = strtok_r(NULL, "\n", &save))
		if (line[0] != '#' && strchr(line, '=') != NULL)
			(*vars)[i++] = line;
	return 0;
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
	int fd, rc = -1;

	/* 0600: it may hold the admin's secrets, interpolated. */
	buf_printf(&path, "%s/compose.json", d->dir);
	unlink(buf_str(&path));
	fd = open(buf_str(&path), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	          0600);
	f = fd == -1 ? NULL : fdopen(fd, "w");
	if (f != NULL && fputs(text, f) >= 0 && fclose(f) == 0)
		rc = 0;
	else
		log_error("compose_write", "path=%s errno=%m",
		          log_q(buf_str(&path)));
	buf_free(&path);
	return rc;
}

static void
policy_fill(struct deploy *d, struct compose_policy *pol, const char *src,
            struct buf *images, struct buf *run_src)
{
	const struct config *cfg = d->w->cfg;

	buf_puts(images, cfg->env_allowed_images);
	if (d->admin && d->admin->allowed_images)
		buf_printf(images, ",%s", d->admin->allowed_images);
	memset(pol, 0, sizeof(*pol));
	pol->project = d->project;
	pol->instance = local_instance(cfg);
	pol->env_id = d->e->id;
	pol->src_dir = src;
	if (d->host_dir != NULL) {
		buf_printf(run_src, "%s/src", d->host_dir);
		pol->run_src = buf_str(run_src);
	}
	pol->allowed_services = d->admin ? d->admin->allowed_services : NULL;
	pol->allowed_images = buf_str(images);
	pol->max_services = (int)cfg->env_max_services;
	pol->max_networks = (int)cfg->env_max_networks;
	pol->max_volumes = (int)cfg->env_max_volumes;
	pol->allow_build = cfg->env_allow_build && d->rs.build;
	pol->mem_default = cfg->env_memory_default_mb << 20;
	pol->mem_max = cfg->env_memory_max_mb << 20;
	pol->pids_default = cfg->env_pids_default;
	pol->pids_max = cfg->env_pids_max;
	pol->cpus_default = cfg->env_cpus_default;
	pol->cpus_max = cfg->env_cpus_max;
}

/*
 * The gate reads the PR's files itself (compose_load_gate); compose is not
 * started here, and later reads only the compose.json written from the
 * gate's output.
 */

/*
 * Whether the checkout vanished or changed under a step (a crash, an
 * operator, a sweep): then a failure is ours, never the repository's.
 * Files half removed are caught too: the gate fails in a millisecond,
 * long before a removal that began reaches .git, so the tracked files are
 * compared with the commit (git diff --quiet HEAD: 0 only when they match).
 */
#define WORKDIR_LOST "the work dir vanished during the deploy"

static bool
workdir_lost(struct deploy *d)
{
	struct buf git = BUF_INIT;
	struct stat st;
	struct proc p;
	bool lost;

	buf_printf(&git, "%s/.git", d->src);
	lost = stat(buf_str(&git), &st) != 0 ||
	       !local_workdir_ours(d->w->cfg, d->e->slug, 0);
	if (!lost) {
		const char *argv[] = {"/usr/bin/git", "--git-dir",
		                      buf_str(&git),  "--work-tree",
		                      d->src,         "diff",
		                      "--quiet",      "HEAD",
		                      "--",           NULL};
		const char *envp[] = {"PATH=/usr/bin:/bin",
		                      "GIT_CONFIG_NOSYSTEM=1",
		                      "HOME=/nonexistent", NULL};

		proc_init(&p);
		p.argv = argv;
		p.envp = envp;
		p.timeout = 30;
		lost = proc_run(&p) == -1 || p.exit_code != 0;
		proc_free(&p);
	}
	buf_free(&git);
	return lost;
}

/*
 * Whether a host step failed because of the host or of us rather than of
 * the repository: the step was killed (timeout, lost lease), the checkout
 * vanished under it (a crash, an operator, a sweep), or Docker does not
 * answer. Then it is retried by the queue, and `why` says so: never "the
 * compose file is not valid", never a failure that waits for a push.
 */
static bool
failure_ours(struct deploy *d, const struct proc *p)
{
	struct host_call c;
	struct proc q;
	bool ours = true;

	buf_reset(&d->why);
	proc_init(&q);
	if (p->cancelled)
		buf_puts(&d->why, "the job's lease was lost");
	else if (p->exit_code < 0)
		buf_printf(&d->why, "the host step was killed%s",
		           p->timed_out ? " (timed out)" : "");
	else if (workdir_lost(d))
		buf_puts(&d->why, WORKDIR_LOST);
	else {
		host_call_init(&c, "status", d->project, NULL);
		if (local_host_run(d->w, d->job, &c, &q) == -1)
			buf_puts(&d->why, "Docker does not answer");
		else
			ours = false;
	}
	if (ours) {
		buf_puts(&d->why, " (ours, not the repository's: retried)");
		log_warn("deploy_host_failure", "env=%llu reason=%s",
		         (unsigned long long)d->e->id, log_q(buf_str(&d->why)));
	}
	proc_free(&q);
	return ours;
}

static enum deploy_rc
step_configure(struct deploy *d)
{
	struct buf conf = BUF_INIT, vtext = BUF_INIT, images = BUF_INIT;
	struct buf run_src = BUF_INIT;
	struct json_object *model = NULL;
	struct compose_policy pol;
	struct compose_load load;
	char **vars = NULL, *src = realpath(d->src, NULL);
	enum deploy_rc rc = DEPLOY_FAILED;
	double t0 = now_mono();

	if (src == NULL) {
		buf_puts(&d->why, "the checkout is missing");
		rc = DEPLOY_RETRY;
		goto out;
	}
	if (repo_settings_load(src, &d->rs, &d->why) == -1 ||
	    repo_settings_cap(&d->rs, d->admin, &d->why) == -1 ||
	    vars_load(d, &vtext, &vars) == -1)
		goto out;
	policy_fill(d, &pol, src, &images, &run_src);
	load.compose_file =
	        d->rs.compose_file ? d->rs.compose_file
	                           : (d->admin ? d->admin->compose_file : NULL);
	load.vars = (const char *const *)vars;
	if (compose_load_gate(&load, &pol, &model, &d->cr, &d->why) == -1 ||
	    targets_choose(d) == -1) {
		if (workdir_lost(d)) {
			buf_reset(&d->why);
			buf_puts(&d->why,
			         WORKDIR_LOST " (ours, not the "
			                      "repository's: retried)");
			rc = DEPLOY_RETRY;
		}
		goto out;
	}
	/* The exposure's own part of the project (a tunnel's connector). */
	if (d->exposure->prepare &&
	    (rc = d->exposure->prepare(d, model)) != DEPLOY_OK)
		goto out;
	/* This host's networks come from local.subnet_pool, if set. */
	if (d->compute == &compute_local && subnet_apply(d, model) == -1) {
		rc = DEPLOY_RETRY;
		goto out;
	}
	rc = DEPLOY_FAILED;
	if (compose_write(d, model) == -1) {
		rc = DEPLOY_RETRY;
		goto out;
	}
	rc = DEPLOY_OK;
out:
	log_info("gate", "env=%llu ok=%d ms=%.1f", (unsigned long long)d->e->id,
	         rc == DEPLOY_OK, (now_mono() - t0) * 1000);
	json_object_put(model);
	free(vars);
	if (vtext.data)
		explicit_bzero(vtext.data, vtext.len);
	buf_free(&vtext);
	buf_free(&images);
	buf_free(&run_src);
	buf_free(&conf);
	free(src);
	return rc;
}

/* Fills each target's address from `up`'s JSON. */
int
deploy_addresses_take(struct deploy *d, const char *json,
                      struct json_object **keep)
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
		if (failure_ours(d, &p)) {
			rc = DEPLOY_RETRY;
		} else {
			buf_puts(&d->why, "the app did not start "
			                  "(build or health check failed)");
			rc = DEPLOY_FAILED;
		}
	} else if (deploy_addresses_take(d, buf_str(&p.out), services) == -1) {
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
		url = d->exposure->url(d->w->cfg, d->e->slug, buf_str(&path));
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
enum deploy_rc
step_run(struct deploy *d, const char *name, enum deploy_rc rc_of_step)
{
	char *detail;

	if (rc_of_step == DEPLOY_OK) {
		if (build_step_end(d->w->db, &d->b, true, NULL) == -1) {
			buf_printf(&d->why, "recording step %s failed", name);
			return DEPLOY_RETRY;
		}
		return DEPLOY_OK;
	}
	detail = d->why.len ? xstrdup(buf_str(&d->why))
	                    : log_last(&d->log, 2048);
	if (build_step_end(d->w->db, &d->b, false, detail) == -1)
		rc_of_step = DEPLOY_RETRY; /* the retry records it */
	log_warn("deploy_step_failed", "env=%llu step=%s reason=%s",
	         (unsigned long long)d->e->id, name, log_q(detail));
	free(detail);
	return rc_of_step;
}

enum deploy_rc
deploy_gate(struct deploy *d)
{
	enum deploy_rc rc;

	if (build_step_begin(d->w->db, &d->b, "fetch") == -1)
		return DEPLOY_RETRY;
	if ((rc = step_run(d, "fetch", step_fetch(d))) != DEPLOY_OK)
		return rc;
	/* Announced once the commit is here: nothing claims to build what
	 * cannot even be fetched. */
	if (notify_env(d->w, d->e->id, "deploying", d->e->desired_sha) == -1) {
		buf_puts(&d->why, "the notification could not be recorded");
		return DEPLOY_RETRY;
	}
	if (build_step_begin(d->w->db, &d->b, "configure") == -1)
		return DEPLOY_RETRY;
	return step_run(d, "configure", step_configure(d));
}

enum deploy_rc
local_deploy(struct deploy *d, struct json_object **services)
{
	enum deploy_rc rc;

	if ((rc = deploy_gate(d)) != DEPLOY_OK)
		return rc;
	if (build_step_begin(d->w->db, &d->b, "up") == -1)
		return DEPLOY_RETRY;
	return step_run(d, "up", step_up(d, services));
}

static enum deploy_rc
deploy_steps(struct deploy *d)
{
	struct json_object *services = NULL;
	enum deploy_rc rc;
	char *url = NULL, *svc = NULL;
	char token[32];

	if ((rc = d->compute->deploy(d, &services)) != DEPLOY_OK)
		goto out;
	if (build_step_begin(d->w->db, &d->b, "route") == -1)
		return DEPLOY_RETRY;
	snprintf(token, sizeof(token), "b%llu", (unsigned long long)d->b.id);
	/* No route hook: the exposure routed in prepare. */
	rc = d->exposure->route ? d->exposure->route(d, token) : DEPLOY_OK;
	if ((rc = step_run(d, "route", rc)) != DEPLOY_OK)
		goto out;
	if (build_step_begin(d->w->db, &d->b, "verify") == -1)
		return DEPLOY_RETRY;
	if ((rc = step_run(d, "verify", d->exposure->verify(d, token))) !=
	    DEPLOY_OK)
		goto out;
	url = d->exposure->url(d->w->cfg, d->e->slug, "/");
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
	free(url);
	free(svc);
	return rc;
}

/*
 * A local environment lives on one host's Docker engine: its first deploy
 * binds it to this host, and from then on only this host claims its
 * reconciles (job.c CLAIMABLE). 1: another host holds it.
 */
static int
host_bind(struct worker *w, const struct env *e)
{
	if (db_exec(w->db,
	            "UPDATE environments SET compute_host = ? WHERE id = ? AND "
	            "(compute_host IS NULL OR compute_host = ?)",
	            "sus", w->host, e->id, w->host) == -1)
		return -1;
	return db_affected(w->db) == 1 ? 0 : 1;
}

static enum deploy_rc
deploy(struct worker *w, const struct job *job, const struct env *e,
       const struct compute_ops *compute, const struct exposure_ops *exposure,
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
	d.compute = compute;
	d.exposure = exposure;
	local_project_name(w->cfg, e->slug, d.project);
	d.dir = local_env_dir(w->cfg, e->slug);
	buf_init(&d.log, LOG_TAIL_MAX * 2);
	buf_init(&d.why, 4096);
	{
		struct buf s = BUF_INIT;

		buf_printf(&s, "%s/src", d.dir);
		d.src = buf_detach(&s);
	}
	if (strcmp(compute->name, "local") == 0 && host_bind(w, e) != 0) {
		buf_puts(&res->error,
		         "the environment is on another worker host");
		rc = DEPLOY_RETRY;
		goto out;
	}
	/* The compute runs (and costs) from here until a teardown: a run
	 * already open (a redeploy) is kept. ec2 reprices it once its
	 * instance type is known (ec2_compute.c). */
	if (build_begin(w->db, e->id, e->desired_sha, &d.b) == -1 ||
	    env_run_open(w->db, e->id,
	                 price_hourly(w->cfg, compute->name, NULL)) == -1) {
		rc = DEPLOY_RETRY;
		goto out;
	}
	rc = deploy_steps(&d);
	tail = log_last(&d.log, LOG_TAIL_MAX);
	/*
	 * A database error here is the job's: it is retried, and the
	 * retry's reconcile_settled() finishes what was not recorded. The
	 * last attempt's failure is told by the queue (job.c settle_dead).
	 */
	if (rc == DEPLOY_OK) {
		if (build_end(w->db, &d.b, "succeeded", NULL, tail) == -1 ||
		    notify_env(w, e->id, "ready", NULL) == -1) {
			buf_puts(&d.why, "recording the ready deploy failed");
			rc = DEPLOY_RETRY;
		} else {
			log_info("deploy_ready", "env=%llu sha=%.12s",
			         (unsigned long long)e->id, e->desired_sha);
		}
	} else if (rc == DEPLOY_FAILED) {
		if (build_end(w->db, &d.b, "failed", buf_str(&d.why), tail) ==
		            -1 ||
		    db_exec(w->db,
		            "UPDATE environments SET phase = 'failed', "
		            "attempted_sha = ?, error = ? WHERE id = ?",
		            "ssu", e->desired_sha, buf_str(&d.why),
		            e->id) == -1 ||
		    notify_env(w, e->id, "failed", buf_str(&d.why)) == -1) {
			buf_puts(&d.why, " (and recording the failure failed)");
			rc = DEPLOY_RETRY;
		}
	}
	/* Ours to retry: the build stays running and resumes. */
	if (rc == DEPLOY_RETRY) {
		buf_printf(&res->error, "%s", buf_str(&d.why));
		res->retry_after_ms = d.retry_ms;
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

/* STOP, DESTROY and HOLD: the route down first (or, for an exposure that
 * needs it, last), and the app. */
static int
teardown(struct worker *w, const struct job *job, const struct env *e,
         const struct compute_ops *compute, const struct exposure_ops *exposure,
         enum step step, struct job_result *res)
{
	const char *during = step == STEP_STOP ? "stopping" : "destroying";
	const char *after = step == STEP_STOP   ? "stopped"
	                    : step == STEP_HOLD ? "awaiting_approval"
	                                        : "destroyed";
	struct removal report, *rm = NULL;
	/* An idle stop keeps the hostname: the route turns to the waking
	 * page first, so no visit meets a dead app. */
	bool sleep = step == STEP_STOP && e->idle_stopped &&
	             exposure_wakes(w->cfg, exposure);
	int rc = -1;

	/* Only a destroy is reported on the PR (a stop keeps everything). A
	 * destroy resumed after a crash is already `destroying`, and one
	 * the sweep finishes is `destroyed`: both keep what was found. */
	if (step == STEP_DESTROY) {
		removal_init(&report, w->db, e->id);
		rm = &report;
		if (strcmp(e->phase, "destroying") != 0 &&
		    strcmp(e->phase, "destroyed") != 0 &&
		    removal_begin(rm) == -1)
			goto out;
	}
	if (env_phase_set(w->db, e->id, during, NULL) == -1)
		goto out;
	if (sleep) {
		if (exposure->sleep(w, job, e->slug, &res->error) == -1)
			goto out;
	} else if (!exposure->unroute_after_compute &&
	           exposure->unroute(w, job, e->slug, rm, &res->error,
	                             &res->retry_after_ms) == -1)
		goto out;
	if ((step == STEP_STOP ? compute->stop(w, job, e->slug, &res->error)
	                       : compute->destroy(w, job, e->slug, rm,
	                                          &res->error)) == -1)
		goto out;
	if (exposure->unroute_after_compute && !sleep &&
	    exposure->unroute(w, job, e->slug, rm, &res->error,
	                      &res->retry_after_ms) == -1)
		goto out;
	if (db_exec(w->db,
	            "UPDATE builds SET status = 'cancelled', finished_at = "
	            "NOW(6) WHERE env_id = ? AND status = 'running'",
	            "u", e->id) == -1 ||
	    env_run_close(w->db, e->id) == -1 ||
	    /* Its networks are gone (a stop keeps them, and their subnets). */
	    (step != STEP_STOP &&
	     db_exec(w->db, "DELETE FROM env_subnets WHERE env_id = ?", "u",
	             e->id) == -1) ||
	    db_exec(w->db,
	            "UPDATE environments SET phase = ?, url = IF(? = 'stopped', "
	            "url, NULL), error = NULL WHERE id = ?",
	            "ssu", after, after, e->id) == -1)
		goto out;
	if (capacity_release(w->db, (int)w->cfg->workers_max_attempts) == -1) {
		buf_puts(&res->error, "nudging the queued environments failed");
		goto out;
	}
	/* A sweep clearing leftovers of a destroyed one is no news. */
	if (strcmp(e->phase, after) != 0 &&
	    notify_env(w, e->id, after, NULL) == -1) {
		buf_printf(&res->error,
		           "%s: the notification could not be "
		           "recorded",
		           after);
		goto out;
	}
	log_info("teardown", "env=%llu phase=%s", (unsigned long long)e->id,
	         after);
	rc = 0;
out:
	return rc;
}

/*
 * Admitted to a slot, but this host has no networks left for it: it
 * waits queued, the reason on the PR, until a teardown frees some
 * (capacity_release nudges every queued one). 0 admitted, 1 waiting.
 */
static int
networks_admit(struct worker *w, const struct env *e)
{
	struct buf why = BUF_INIT;
	int r = subnet_reserve(w, e->id, &why);

	if (r == 1 &&
	    (db_exec(w->db,
	             "UPDATE environments SET phase = 'queued', queued_at = "
	             "COALESCE(queued_at, NOW(6)), error = ? WHERE id = ?",
	             "su", buf_str(&why), e->id) == -1 ||
	     notify_env(w, e->id, "queued", buf_str(&why)) == -1))
		r = -1;
	if (r == 1)
		log_info("networks_full", "env=%llu",
		         (unsigned long long)e->id);
	buf_free(&why);
	return r;
}

static int
queued_notify(struct worker *w, const struct env *e)
{
	struct db_rows *r = NULL;
	struct buf msg = BUF_INIT;
	int rc;

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
	rc = notify_env(w, e->id, "queued", buf_str(&msg));
	db_rows_free(r);
	buf_free(&msg);
	return rc;
}

/*
 * Nothing left to do: what a retried job could not record is finished
 * here. A deploy whose build could not be closed after the environment
 * went ready leaves that build running (GitHub would show it in progress
 * forever); a teardown that could not nudge the queue would leave the
 * queued ones waiting for a slot that is free; a change whose
 * notification was lost is told now.
 */
static int
reconcile_settled(struct worker *w, const struct env *e)
{
	bool freed = strcmp(e->phase, "stopped") == 0 ||
	             strcmp(e->phase, "destroyed") == 0 ||
	             strcmp(e->phase, "awaiting_approval") == 0;

	if (strcmp(e->phase, "ready") == 0 && e->deployed_sha != NULL &&
	    db_exec(w->db,
	            "UPDATE builds SET status = 'succeeded', finished_at = "
	            "NOW(6) WHERE env_id = ? AND sha = ? AND "
	            "status = 'running'",
	            "us", e->id, e->deployed_sha) == -1)
		return -1;
	if (freed &&
	    capacity_release(w->db, (int)w->cfg->workers_max_attempts) == -1)
		return -1;
	return notify_catch_up(w, e->id, e->phase, NULL);
}

static void reconcile_turns(struct worker *, const struct job *,
                            struct job_result *);

/*
 * Every turn runs under the environment's lock (provider_local.c), which
 * the sweep takes too before it removes an orphan of the same slug: so a
 * teardown never runs under this fetch or `up`. The sweep holds it for
 * one `down` at most; a reconcile that cannot have it soon is retried.
 */
void
reconcile_run(struct worker *w, const struct job *job, struct job_result *res)
{
	struct env e;
	int lock, r = env_load(w->db, job->env_id, &e);

	res->outcome = JOB_DONE;
	if (r == 1)
		return; /* gone: nothing to reconcile */
	if (r == -1) {
		buf_puts(&res->error, "cannot load the environment");
		res->outcome = JOB_RETRY;
		return;
	}
	/* Slugs are made valid (slug.c); the test keeps the lock path ours. */
	lock = e.slug && slug_valid(e.slug, strlen(e.slug))
	               ? local_env_lock(w->cfg, e.slug, 10)
	               : -1;
	env_free(&e);
	if (lock == -1) {
		buf_puts(&res->error, "the environment is busy (the sweep "
		                      "holds its lock)");
		res->outcome = JOB_RETRY;
		return;
	}
	reconcile_turns(w, job, res);
	local_env_unlock(lock);
}

static void
reconcile_turns(struct worker *w, const struct job *job, struct job_result *res)
{
	const struct compute_ops *compute;
	const struct exposure_ops *exposure;
	struct env e;
	struct facts f;
	enum step step;
	int turn, r;
	bool observed = false;

	for (turn = 0; turn < RECONCILE_MAX_TURNS; turn++) {
		r = env_load(w->db, job->env_id, &e);
		if (r == 1)
			return; /* gone: nothing to reconcile */
		compute = r == 0 ? compute_for(w->cfg, e.repo) : NULL;
		exposure = r == 0 ? exposure_for(w->cfg, e.repo) : NULL;
		if (r == 0 && (compute == NULL || exposure == NULL)) {
			/* Config checks the names; a provider missing from
			 * this build is the environment's failure, said so. */
			env_phase_set(
			        w->db, e.id, "failed",
			        "the configured provider is not available "
			        "in this build");
			env_free(&e);
			return;
		}
		/* Admission changes no host fact: the last look still holds,
		 * and each look costs a few Docker calls on the way to a URL. */
		if (r == -1 || (!observed && observe(w, job, &e, compute,
		                                     exposure, &f) == -1)) {
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
			if (reconcile_settled(w, &e) == -1) {
				buf_puts(&res->error, "recording the settled "
				                      "state failed");
				res->outcome = JOB_RETRY;
			}
			env_free(&e);
			return;
		case STEP_ADMIT:
			/* Within its repository's budget, then a slot: one
			 * that waits for money takes no place in the queue. */
			r = budget_admit(w, &e);
			if (r == 0) {
				r = capacity_admit(w->db, e.id,
				                   w->cfg->env_max_running);
				if (r == 1 && queued_notify(w, &e) == -1)
					r = -1;
			}
			/* A slot, and networks for it on this host. */
			if (r == 0 && compute == &compute_local)
				r = networks_admit(w, &e);
			if (r != 0) {
				if (r == -1)
					res->outcome = JOB_RETRY;
				env_free(&e);
				return;
			}
			observed = true;
			break;
		case STEP_DEPLOY:
			if (deploy(w, job, &e, compute, exposure, res) ==
			    DEPLOY_RETRY) {
				res->outcome = JOB_RETRY;
				env_free(&e);
				return;
			}
			break;
		case STEP_STOP:
		case STEP_DESTROY:
		case STEP_HOLD:
			if (teardown(w, job, &e, compute, exposure, step,
			             res) == -1) {
				res->outcome = JOB_RETRY;
				env_free(&e);
				return;
			}
			break;
		}
		env_free(&e);
	}
}
