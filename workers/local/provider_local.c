/*
 * provider_local.c - the `local` compute provider: runs host/ephemera-host
 * on this machine, the same script the ec2 provider runs on an instance.
 * Each input goes into the child's environment; the child's argv is only
 * the script path and a fixed action word.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../workers.h"

struct tick_ctx {
	struct worker *w;
	const struct job *job;
};

static int
host_tick(void *arg)
{
	struct tick_ctx *t = arg;

	return t->job ? job_heartbeat(t->w, t->job) : 0;
}

/*
 * The compose project: <instance>-<slug>. The instance prefix keeps two
 * installations sharing one Docker engine (a test run beside `make run`)
 * apart; an invalid one falls back to "eph".
 */
const char *
local_instance(const struct config *cfg)
{
	const char *inst = cfg->env_instance ? cfg->env_instance : "";
	size_t i, n = strlen(inst);
	bool ok = n > 0 && n <= 15;

	for (i = 0; i < n && ok; i++)
		ok = (inst[i] >= 'a' && inst[i] <= 'z') ||
		     (inst[i] >= '0' && inst[i] <= '9');
	return ok ? inst : "eph";
}

void
local_project_name(const struct config *cfg, const char *slug, char out[80])
{
	snprintf(out, 80, "%s-%s", local_instance(cfg), slug);
}

char *
local_env_dir(const struct config *cfg, const char *slug)
{
	struct buf b = BUF_INIT;
	char *var = realpath(cfg->var_dir, NULL);

	/* Absolute: the host script refuses relative work dirs. */
	buf_printf(&b, "%s/envs/%s", var ? var : cfg->var_dir, slug);
	free(var);
	return buf_detach(&b);
}

bool
local_file_marked(const char *path, double age, const char *want, int lines)
{
	char line[256];
	struct stat st;
	bool ours = false;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	FILE *f = fd == -1 ? NULL : fdopen(fd, "r");

	if (f == NULL) {
		if (fd != -1)
			close(fd);
		return false;
	}
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    difftime(time(NULL), st.st_mtime) >= age)
		for (int i = 0; i < lines && fgets(line, sizeof(line), f);
		     i++) {
			line[strcspn(line, "\n")] = '\0';
			if (strcmp(line, want) == 0)
				ours = true;
		}
	fclose(f);
	return ours;
}

bool
local_workdir_ours(const struct config *cfg, const char *slug, double age)
{
	char *dir = local_env_dir(cfg, slug);
	struct buf path = BUF_INIT;
	bool ours;

	buf_printf(&path, "%s/.ephemera-instance", dir);
	ours = local_file_marked(buf_str(&path), age, local_instance(cfg), 1);
	buf_free(&path);
	free(dir);
	return ours;
}

int
local_env_lock(const struct config *cfg, const char *slug, double wait_s)
{
	struct buf path = BUF_INIT;
	double until = now_mono() + wait_s;
	int fd;

	buf_printf(&path, "%s/run", cfg->var_dir);
	mkdir(buf_str(&path), 0700); /* EEXIST as a rule; open says the rest */
	buf_printf(&path, "/env-%s.lock", slug);
	fd = open(buf_str(&path), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd == -1) {
		log_error("env_lock", "path=%s errno=%m",
		          log_q(buf_str(&path)));
		goto out;
	}
	while (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if ((errno != EWOULDBLOCK && errno != EINTR) ||
		    now_mono() >= until) {
			if (errno != EWOULDBLOCK)
				log_error("env_lock", "path=%s errno=%m",
				          log_q(buf_str(&path)));
			close(fd);
			fd = -1;
			goto out;
		}
		poll(NULL, 0, 50);
	}
out:
	buf_free(&path);
	return fd;
}

void
local_env_unlock(int fd)
{
	/* Closing the only descriptor of the open file releases the lock. */
	if (fd != -1)
		close(fd);
}

static void
env_add(char **envp, size_t *n, const char *name, const char *value)
{
	struct buf b = BUF_INIT;

	if (value == NULL)
		return;
	buf_printf(&b, "%s=%s", name, value);
	envp[(*n)++] = buf_detach(&b);
}

int
local_host_run(struct worker *w, const struct job *job,
               const struct host_call *c, struct proc *p)
{
	struct buf script = BUF_INIT;
	const char *argv[3];
	char *envp[20]; /* 16 variables at most, and the NULL */
	size_t n = 0, i;
	struct tick_ctx tick = {w, job};
	int rc;

	buf_printf(&script, "%s/ephemera-host", w->cfg->host_dir);
	env_add(envp, &n, "PATH",
	        "/usr/local/sbin:/usr/local/bin:/usr/sbin:"
	        "/usr/bin:/sbin:/bin");
	env_add(envp, &n, "HOME", getenv("HOME") ? getenv("HOME") : "/tmp");
	env_add(envp, &n, "DOCKER_HOST", getenv("DOCKER_HOST"));
	env_add(envp, &n, "LANG", "C.UTF-8");
	env_add(envp, &n, "EPH_PROJECT", c->project);
	env_add(envp, &n, "EPH_PREFIX", c->prefix);
	/* The label and work-dir marker that say "this installation's". */
	env_add(envp, &n, "EPH_INSTANCE", local_instance(w->cfg));
	env_add(envp, &n, "EPH_DIR", c->dir);
	env_add(envp, &n, "EPH_SOURCE", c->source);
	env_add(envp, &n, "EPH_SHA", c->sha);
	env_add(envp, &n, "EPH_COMPOSE_FILE", c->compose_file);
	env_add(envp, &n, "EPH_GIT_TOKEN", c->git_token);
	env_add(envp, &n, "EPH_SERVICE", c->service);
	env_add(envp, &n, "EPH_PORT", c->port);
	env_add(envp, &n, "EPH_METRIC", c->metric);
	env_add(envp, &n, "EPH_BUILD", c->build ? "1" : "0");
	envp[n] = NULL;
	argv[0] = buf_str(&script);
	argv[1] = c->action;
	argv[2] = NULL;
	p->argv = argv;
	p->envp = (const char *const *)envp;
	p->timeout = strcmp(c->action, "up") == 0 ? 900 : 180;
	p->tick = host_tick;
	p->tick_arg = &tick;
	rc = proc_run(p);
	if (rc == 0 && p->exit_code != 0 && !p->cancelled)
		log_warn("host_failed", "env=%llu action=%s exit=%d timeout=%d",
		         (unsigned long long)(job ? job->env_id : 0), c->action,
		         p->exit_code, p->timed_out);
	for (i = 0; i < n; i++) {
		/* The token must not linger in freed memory. */
		explicit_bzero(envp[i], strlen(envp[i]));
		free(envp[i]);
	}
	buf_free(&script);
	return rc == 0 && p->exit_code == 0 && !p->cancelled ? 0 : -1;
}

/* ---- the compute_ops of `local` (see workers.h, the provider seam) ---- */

void
host_call_init(struct host_call *c, const char *action, const char *project,
               const char *dir)
{
	memset(c, 0, sizeof(*c));
	c->action = action;
	c->project = project;
	c->dir = dir;
	c->build = true;
}

static int
local_leftovers(struct worker *w, const struct job *job, const char *slug,
                bool *any)
{
	struct host_call c;
	struct proc p;
	char project[80];
	int rc;

	local_project_name(w->cfg, slug, project);
	host_call_init(&c, "leftovers", project, NULL);
	proc_init(&p);
	rc = local_host_run(w, job, &c, &p);
	if (rc == 0)
		*any = strtol(buf_str(&p.out), NULL, 10) > 0;
	proc_free(&p);
	return rc;
}

/*
 * What runs, from Docker's labels; the work dir from disk. When
 * everything should be gone, the question is rather whether any object of
 * the project is left, running or not (which includes running ones).
 */
static int
local_observe(struct worker *w, const struct job *job, const struct env *e,
              struct facts *f)
{
	struct host_call c;
	struct proc p;
	struct json_object *arr;
	char project[80];
	char *dir = local_env_dir(w->cfg, e->slug);
	struct stat st;
	int rc = -1;

	/* A work dir counts only with this installation's marker: nothing
	 * else is ours to remove (ephemera-host down refuses it too). */
	f->workdir =
	        stat(dir, &st) == 0 && local_workdir_ours(w->cfg, e->slug, 0);
	free(dir);
	if (strcmp(e->desired, "destroyed") == 0)
		return local_leftovers(w, job, e->slug, &f->leftover);
	local_project_name(w->cfg, e->slug, project);
	host_call_init(&c, "status", project, NULL);
	proc_init(&p);
	if (local_host_run(w, job, &c, &p) == 0) {
		arr = json_tokener_parse(buf_str(&p.out));
		f->running = arr != NULL &&
		             json_object_is_type(arr, json_type_array) &&
		             json_object_array_length(arr) > 0;
		json_object_put(arr);
		rc = 0;
	}
	proc_free(&p);
	return rc;
}

/* `stop` keeps containers and volumes; `down` removes them and the dir. */
static int
local_stop_or_down(struct worker *w, const struct job *job, const char *slug,
                   bool down, struct buf *why)
{
	struct host_call c;
	struct proc p;
	char project[80];
	char *dir = down && local_workdir_ours(w->cfg, slug, 0)
	                    ? local_env_dir(w->cfg, slug)
	                    : NULL;
	int rc;

	local_project_name(w->cfg, slug, project);
	host_call_init(&c, down ? "down" : "stop", project, dir);
	proc_init(&p);
	rc = local_host_run(w, job, &c, &p);
	if (rc == -1 && why)
		buf_printf(why, "%s failed: %s", c.action, buf_str(&p.err));
	proc_free(&p);
	free(dir);
	return rc;
}

static int
local_stop(struct worker *w, const struct job *job, const char *slug,
           struct buf *why)
{
	return local_stop_or_down(w, job, slug, false, why);
}

static const char *const local_kinds[] = {"container", "network", "volume",
                                          "image"};

/* Each "<kind> <name>" line of `ephemera-host inventory` into `rm`. */
static int
inventory_record(struct worker *w, const struct job *job, const char *project,
                 struct removal *rm)
{
	struct host_call c;
	struct proc p;
	const char *line, *end, *sp;
	int rc;

	host_call_init(&c, "inventory", project, NULL);
	proc_init(&p);
	rc = local_host_run(w, job, &c, &p);
	for (line = buf_str(&p.out); rc == 0 && *line; line = end) {
		end = strchr(line, '\n');
		end = end ? end + 1 : line + strlen(line);
		sp = memchr(line, ' ', (size_t)(end - line));
		if (sp == NULL)
			continue;
		for (size_t k = 0; k < NELEM(local_kinds); k++)
			if ((size_t)(sp - line) == strlen(local_kinds[k]) &&
			    memcmp(line, local_kinds[k], (size_t)(sp - line)) ==
			            0)
				rc = removal_found(rm, local_kinds[k], sp + 1,
				                   (size_t)(end - sp - 1) -
				                           (end[-1] == '\n'));
	}
	proc_free(&p);
	return rc;
}

/*
 * What the project has is recorded, `down` removes it, and only when a
 * fresh count finds nothing left is it reported gone: an object that
 * survived (or was made meanwhile by a killed worker's compose) fails
 * the destroy, which is retried.
 */
static int
local_destroy(struct worker *w, const struct job *job, const char *slug,
              struct removal *rm, struct buf *why)
{
	char project[80];
	bool any = false;
	size_t k;
	int counted;

	local_project_name(w->cfg, slug, project);
	if (rm != NULL && rm->env_id != 0 &&
	    inventory_record(w, job, project, rm) == -1) {
		if (why)
			buf_puts(why, "listing the project's objects failed");
		return -1;
	}
	if (local_stop_or_down(w, job, slug, true, why) == -1)
		return -1;
	counted = local_leftovers(w, job, slug, &any);
	if (counted == -1 || any) {
		if (why)
			buf_puts(why,
			         counted == -1
			                 ? "counting the project's objects "
			                   "failed"
			                 : "objects of the project are left "
			                   "after down");
		return -1;
	}
	for (k = 0; k < NELEM(local_kinds); k++)
		if (removal_gone(rm, local_kinds[k]) == -1) {
			if (why)
				buf_puts(why, "recording the removal failed");
			return -1;
		}
	return 0;
}

/* Work dirs that carry this installation's marker, past the grace. */
static void
workdirs_owned(const struct config *cfg, slug_fn add, void *arg)
{
	struct buf path = BUF_INIT;
	struct dirent *de;
	DIR *d;

	buf_printf(&path, "%s/envs", cfg->var_dir);
	d = opendir(buf_str(&path));
	buf_free(&path);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);

		if (de->d_name[0] != '.' && slug_valid(de->d_name, n) &&
		    local_workdir_ours(
		            cfg, de->d_name,
		            (double)cfg->workers_sweep_grace_seconds))
			add(arg, de->d_name, n);
	}
	closedir(d);
}

/*
 * Compose projects "<instance>-<slug>" whose Docker objects carry this
 * installation's label (the host script lists only those, with the age of
 * each project's newest object) past the grace period, and our work dirs.
 */
static int
local_list_owned(struct worker *w, const struct job *job, slug_fn add,
                 void *arg)
{
	struct buf prefix = BUF_INIT;
	struct host_call c;
	struct proc p;
	const char *line;
	int rc = -1;

	buf_printf(&prefix, "%s-", local_instance(w->cfg));
	memset(&c, 0, sizeof(c));
	c.action = "projects";
	c.prefix = buf_str(&prefix);
	proc_init(&p);
	if (local_host_run(w, job, &c, &p) == 0) {
		for (line = buf_str(&p.out); *line != '\0';) {
			size_t n = strcspn(line, "\n"),
			       name = strcspn(line, " ");
			long age = name < n ? strtol(line + name + 1, NULL, 10)
			                    : -1;

			if (name < n && name > prefix.len &&
			    strncmp(line, prefix.data, prefix.len) == 0 &&
			    age >= w->cfg->workers_sweep_grace_seconds)
				add(arg, line + prefix.len, name - prefix.len);
			line += n + (line[n] == '\n');
		}
		rc = 0;
	}
	workdirs_owned(w->cfg, add, arg);
	proc_free(&p);
	buf_free(&prefix);
	return rc;
}

/*
 * A service's metrics page, read on this machine's Docker by the address
 * of the service's container on its project network (ephemera-host
 * metrics): no port of the preview is published for it.
 */
static int
local_service_metrics(struct worker *w, const char *slug, const char *service,
                      int port, const char *family, struct buf *out)
{
	struct host_call c;
	struct proc p;
	char project[80], portstr[8];
	int rc;

	local_project_name(w->cfg, slug, project);
	snprintf(portstr, sizeof(portstr), "%d", port);
	host_call_init(&c, "metrics", project, NULL);
	c.service = service;
	c.port = portstr;
	c.metric = family;
	proc_init(&p);
	rc = local_host_run(w, NULL, &c, &p);
	if (rc == 0)
		buf_append(out, p.out.data, p.out.len);
	proc_free(&p);
	return rc;
}

const struct compute_ops compute_local = {
        .name = "local",
        .observe = local_observe,
        .deploy = local_deploy,
        .stop = local_stop,
        .destroy = local_destroy,
        .leftovers = local_leftovers,
        .list_owned = local_list_owned,
        .service_metrics = local_service_metrics,
};
