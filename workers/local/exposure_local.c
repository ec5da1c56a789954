/*
 * exposure_local.c - the `local` exposure provider: one nginx server block
 * per environment in <var_dir>/nginx/previews/<slug>.conf, routing
 * <slug>.<preview domain> to the primary service at / and to every other
 * exposed service at /<service>/, then a graceful reload (SIGHUP to the
 * master). Service names are checked by compose.c and addresses come from
 * Docker, so nothing in the file can come from a pull request unchecked.
 * Each route logs its visits to <var_dir>/log/previews/<slug>.log, which
 * the idle sweep reads (route_sleep.c, with the waking route).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../workers.h"

/* The line that says whose route it is: the sweep reads it back. */
#define ROUTE_INSTANCE "# instance: "

static char *
route_path(const struct config *cfg, const char *slug)
{
	struct buf b = BUF_INIT;

	buf_printf(&b, "%s/nginx/previews/%s.conf", cfg->var_dir, slug);
	return buf_detach(&b);
}

char *
exposure_local_visits_path(const struct config *cfg, const char *slug)
{
	struct buf b = BUF_INIT;

	buf_printf(&b, "%s/log/previews/%s.log", cfg->var_dir, slug);
	return buf_detach(&b);
}

/*
 * `path` as nginx must be given it: absolute. var_dir may be relative
 * (`make run`'s "var", from the checkout), and nginx would read a
 * relative one against its own prefix. Caller frees.
 */
char *
exposure_local_abs(const char *path)
{
	struct buf b = BUF_INIT;
	char cwd[4096];

	if (path[0] != '/' && getcwd(cwd, sizeof(cwd)) != NULL)
		buf_printf(&b, "%s/", cwd);
	buf_puts(&b, path);
	return buf_detach(&b);
}

/* A path nginx reads as one token: no quoting, so no space, quote, ';',
 * brace, '$' (a variable) or '#'. */
bool
exposure_local_path_valid(const char *p)
{
	if (p == NULL || p[0] != '/')
		return false;
	for (; *p; p++)
		if (*p <= ' ' || strchr("\"';{}$#\\", *p) != NULL)
			return false;
	return true;
}

static bool
domain_valid(const char *d)
{
	for (; *d; d++)
		if (!((*d >= 'a' && *d <= 'z') || (*d >= '0' && *d <= '9') ||
		      *d == '-' || *d == '.'))
			return false;
	return true;
}

char *
exposure_local_url(const struct config *cfg, const char *slug, const char *path)
{
	struct buf b = BUF_INIT;

	buf_printf(&b, "http://%s.%s", slug, cfg->preview_domain);
	if (cfg->http_port != 80)
		buf_printf(&b, ":%lld", (long long)cfg->http_port);
	buf_puts(&b, path ? path : "/");
	return buf_detach(&b);
}

void
exposure_local_render(const struct config *cfg, const char *slug,
                      const char *token, const struct route_target *t, size_t n,
                      struct buf *b)
{
	char *var = exposure_local_abs(cfg->var_dir);
	size_t i;

	buf_printf(b,
	           "# Ephemera preview route for %s; generated, do not "
	           "edit.\n" ROUTE_INSTANCE "%s\nserver {\n"
	           "\tlisten 127.0.0.1:%lld;\n\tserver_name %s.%s;\n"
	           "\tproxy_http_version 1.1;\n"
	           "\tproxy_set_header Host $host;\n"
	           "\tproxy_set_header X-Forwarded-For "
	           "$proxy_add_x_forwarded_for;\n"
	           "\tproxy_set_header X-Forwarded-Proto $scheme;\n"
	           "\tproxy_set_header Upgrade $http_upgrade;\n"
	           "\tproxy_read_timeout 300s;\n"
	           "\tadd_header X-Ephemera-Route \"%s\" always;\n"
	           "\taccess_log %s/log/previews/%s.log ephemera_visit;\n",
	           slug, local_instance(cfg), (long long)cfg->http_port, slug,
	           cfg->preview_domain, token, var, slug);
	free(var);
	for (i = 0; i < n; i++) {
		if (t[i].primary) {
			buf_printf(b,
			           "\tlocation / {\n\t\tproxy_pass "
			           "http://%s:%d;\n\t}\n",
			           t[i].address, t[i].port);
			continue;
		}
		buf_printf(b,
		           "\tlocation = /%s {\n\t\treturn 301 /%s/;\n\t}\n"
		           "\tlocation /%s/ {\n\t\tproxy_pass "
		           "http://%s:%d/;\n\t}\n",
		           t[i].service, t[i].service, t[i].service,
		           t[i].address, t[i].port);
	}
	buf_puts(b, "}\n");
}

static int
nginx_reload(const struct config *cfg)
{
	char *pidfile = config_var_path(cfg, "run/nginx.pid");
	FILE *f = fopen(pidfile, "r");
	long pid = 0;
	int rc = -1;

	if (f == NULL || fscanf(f, "%ld", &pid) != 1 || pid <= 1) {
		log_error("nginx_reload", "pidfile=%s reason=unreadable",
		          log_q(pidfile));
		goto out;
	}
	if (kill((pid_t)pid, SIGHUP) == -1) {
		log_error("nginx_reload", "pid=%ld errno=%m", pid);
		goto out;
	}
	rc = 0;
out:
	if (f)
		fclose(f);
	free(pidfile);
	return rc;
}

static bool
address_valid(const char *a)
{
	unsigned x[4];
	char tail;

	return sscanf(a, "%u.%u.%u.%u%c", &x[0], &x[1], &x[2], &x[3], &tail) ==
	               4 &&
	       x[0] < 256 && x[1] < 256 && x[2] < 256 && x[3] < 256;
}

/*
 * The visits log is created here, by us, before nginx opens it: a file
 * nginx's master made would be root's, and the sweep could not empty it.
 */
static int
visits_create(const struct config *cfg, const char *slug)
{
	struct buf dir = BUF_INIT;
	char *path = exposure_local_visits_path(cfg, slug);
	int fd, rc = -1;

	buf_printf(&dir, "%s/log/previews", cfg->var_dir);
	if (mkdir(buf_str(&dir), 0755) == -1 && errno != EEXIST) {
		log_error("route_write", "path=%s errno=%m",
		          log_q(buf_str(&dir)));
		goto out;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC,
	          0644);
	if (fd == -1) {
		log_error("route_write", "path=%s errno=%m", log_q(path));
		goto out;
	}
	close(fd);
	rc = 0;
out:
	buf_free(&dir);
	free(path);
	return rc;
}

int
exposure_local_install(const struct config *cfg, const char *slug,
                       const struct buf *text)
{
	struct buf tmp = BUF_INIT;
	char *path = route_path(cfg, slug);
	FILE *f = NULL;
	int rc = -1;

	if (visits_create(cfg, slug) == -1)
		goto out;
	buf_printf(&tmp, "%s.tmp", path);
	f = fopen(buf_str(&tmp), "w");
	if (f == NULL || fwrite(text->data, 1, text->len, f) != text->len) {
		log_error("route_write", "path=%s errno=%m", log_q(path));
		goto out;
	}
	if (fclose(f) != 0 || rename(buf_str(&tmp), path) != 0) {
		f = NULL;
		log_error("route_write", "path=%s errno=%m", log_q(path));
		goto out;
	}
	f = NULL;
	rc = nginx_reload(cfg);
out:
	if (f)
		fclose(f);
	buf_free(&tmp);
	free(path);
	return rc;
}

int
exposure_local_write(const struct config *cfg, const char *slug,
                     const char *token, const struct route_target *t, size_t n)
{
	struct buf text = BUF_INIT;
	char *var = exposure_local_abs(cfg->var_dir);
	size_t i;
	int rc = -1;

	if (!domain_valid(cfg->preview_domain)) {
		log_error("route_write", "reason=invalid_preview_domain");
		goto out;
	}
	if (!exposure_local_path_valid(var)) {
		log_error("route_write", "reason=invalid_var_dir");
		goto out;
	}
	for (i = 0; i < n; i++)
		if (!address_valid(t[i].address) || t[i].port <= 0 ||
		    !compose_name_valid(t[i].service)) {
			log_error("route_write",
			          "slug=%s service=%s "
			          "reason=invalid_target",
			          slug, log_q(t[i].service));
			goto out;
		}
	for (i = 0; token[i]; i++)
		if (!(token[i] >= '0' && token[i] <= '9') &&
		    !(token[i] >= 'a' && token[i] <= 'z') && token[i] != '-') {
			log_error("route_write", "reason=invalid_token");
			goto out;
		}
	exposure_local_render(cfg, slug, token, t, n, &text);
	rc = exposure_local_install(cfg, slug, &text);
out:
	buf_free(&text);
	free(var);
	return rc;
}

/* The route (either kind) and, once nginx has let go of it, its log. */
int
exposure_local_remove(const struct config *cfg, const char *slug)
{
	char *path = route_path(cfg, slug);
	char *visits = exposure_local_visits_path(cfg, slug);
	int rc = 0;

	if (unlink(path) == 0)
		rc = nginx_reload(cfg);
	else if (errno != ENOENT) {
		log_error("route_remove", "path=%s errno=%m", log_q(path));
		rc = -1;
	}
	if (rc == 0 && unlink(visits) == -1 && errno != ENOENT)
		log_error("route_remove", "path=%s errno=%m", log_q(visits));
	free(visits);
	free(path);
	return rc;
}

/* A route file of either kind: the app's or the waking page's. */
bool
exposure_local_present(const struct config *cfg, const char *slug)
{
	char *path = route_path(cfg, slug);
	bool yes = access(path, F_OK) == 0;

	free(path);
	return yes;
}

/* A route to the app: a waking route is no route to the app, so a stopped
 * environment that has one is stopped, and a running one needs its own. */
bool
exposure_local_exists(const struct config *cfg, const char *slug)
{
	char *path = route_path(cfg, slug);
	bool yes = access(path, F_OK) == 0 &&
	           !local_file_marked(path, 0, ROUTE_ASLEEP, 4);

	free(path);
	return yes;
}

/*
 * A route file this installation wrote (its instance line) at least
 * `age` seconds ago: only such a file is the sweep's to remove.
 */
bool
exposure_local_ours(const struct config *cfg, const char *slug, double age)
{
	char *path = route_path(cfg, slug);
	struct buf want = BUF_INIT;
	bool ours;

	/* The instance line is the second; look at the first few. */
	buf_printf(&want, ROUTE_INSTANCE "%s", local_instance(cfg));
	ours = local_file_marked(path, age, buf_str(&want), 3);
	buf_free(&want);
	free(path);
	return ours;
}

/*
 * Routes <var_dir>/nginx/previews/<slug>.conf that this installation wrote
 * longer than the sweep's grace period ago: nothing else is ours to remove.
 */
static int
nginx_list_owned(struct worker *w, const struct job *job, slug_fn add,
                 void *arg)
{
	const struct config *cfg = w->cfg;
	struct buf dir = BUF_INIT;
	struct dirent *de;
	DIR *d;

	(void)job;
	buf_printf(&dir, "%s/nginx/previews", cfg->var_dir);
	d = opendir(buf_str(&dir));
	buf_free(&dir);
	if (d == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);

		char *slug;

		if (n <= 5 || de->d_name[0] == '.' ||
		    strcmp(de->d_name + n - 5, ".conf") != 0)
			continue;
		slug = xstrndup(de->d_name, n - 5);
		if (slug_valid(slug, n - 5) &&
		    exposure_local_ours(
		            cfg, slug,
		            (double)cfg->workers_sweep_grace_seconds))
			add(arg, slug, n - 5);
		free(slug);
	}
	closedir(d);
	return 0;
}

static enum deploy_rc
nginx_route(struct deploy *d, const char *token)
{
	if (exposure_local_write(d->w->cfg, d->e->slug, token, d->targets,
	                         d->ntargets) == 0)
		return DEPLOY_OK;
	buf_puts(&d->why, "the proxy route could not be written");
	return DEPLOY_RETRY;
}

/* Until nginx answers with this deploy's route (its token) and the app
 * with a 2xx/3xx at the health path, and no worker of an older nginx
 * generation takes connections (nginx_generation.c says why). */
static enum deploy_rc
nginx_verify(struct deploy *d, const char *token)
{
	struct buf host = BUF_INIT;
	enum deploy_rc rc = DEPLOY_OK;
	long status = 0;
	int r;

	buf_printf(&host, "%s.%s", d->e->slug, d->w->cfg->preview_domain);
	r = probe_wait(d->w, d->job, buf_str(&host), d->rs.health_path, token,
	               60, &status);
	if (r == 1) {
		buf_printf(&d->why,
		           "the preview URL did not answer (last "
		           "status %ld at %s)",
		           status, d->rs.health_path);
		rc = DEPLOY_FAILED;
	} else if (r == -1) {
		/* nginx down, or a reload it refused: never the PR's doing. */
		buf_printf(&d->why,
		           "the proxy never answered through this build's "
		           "route (last status %ld): ours, retried",
		           status);
		rc = DEPLOY_RETRY;
	} else if (nginx_generation_wait(d->w, d->job, 60) == -1) {
		buf_puts(&d->why, "the proxy's reload did not take over");
		rc = DEPLOY_RETRY;
	}
	buf_free(&host);
	return rc;
}

static int
nginx_unroute(struct worker *w, const struct job *job, const char *slug,
              struct removal *rm, struct buf *why, int64_t *retry_ms)
{
	struct buf host = BUF_INIT;
	int rc = -1;

	(void)job;
	*retry_ms = 0;
	buf_printf(&host, "%s.%s", slug, w->cfg->preview_domain);
	if (exposure_local_present(w->cfg, slug) &&
	    removal_found(rm, "route", buf_str(&host), host.len) == -1) {
		if (why)
			buf_puts(why, "recording the route failed");
		goto out;
	}
	if (exposure_local_remove(w->cfg, slug) == -1 ||
	    exposure_local_present(w->cfg, slug)) {
		if (why)
			buf_puts(why, "the proxy route could not be removed");
		goto out;
	}
	if (removal_gone(rm, "route") == -1) {
		if (why)
			buf_puts(why, "recording the route's removal failed");
		goto out;
	}
	rc = 0;
out:
	buf_free(&host);
	return rc;
}

/* nginx logs every visit of a route: the log is its own record. */
static int
nginx_last_visit(struct worker *w, const char *repo, const char *slug,
                 time_t *at)
{
	(void)repo;
	return route_last_visit(w->cfg, slug, at);
}

/* The exposure_ops of `nginx` (see workers.h, the provider seam). */
const struct exposure_ops exposure_nginx = {
        .name = "nginx",
        .route = nginx_route,
        .verify = nginx_verify,
        .unroute = nginx_unroute,
        .exists = exposure_local_exists,
        .url = exposure_local_url,
        .list_owned = nginx_list_owned,
        .sleep = route_sleep,
        .last_visit = nginx_last_visit,
};
