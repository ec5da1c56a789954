/*
 * provider_local.c - the `local` compute provider: runs host/ephemera-host
 * on this machine, the same script the ec2 provider runs on an instance.
 * Each input goes into the child's environment; the child's argv is only
 * the script path and a fixed action word.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "workers.h"

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
local_workdir_ours(const struct config *cfg, const char *slug, double age)
{
	char *dir = local_env_dir(cfg, slug);
	struct buf path = BUF_INIT;
	char line[32];
	struct stat st;
	bool ours = false;
	FILE *f;

	buf_printf(&path, "%s/.ephemera-instance", dir);
	f = fopen(buf_str(&path), "r");
	if (f != NULL && fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) &&
	    difftime(time(NULL), st.st_mtime) >= age &&
	    fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		ours = strcmp(line, local_instance(cfg)) == 0;
	}
	if (f)
		fclose(f);
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
	char *envp[16];
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
