/*
 * github_app.c - `ephemera github-app create`: GitHub's App manifest flow
 * from the operator's browser in one click. It serves a page on loopback
 * whose button posts the manifest (manifest.c) to GitHub; GitHub creates
 * the App and redirects back here with a one-time code, which this
 * exchanges (POST /app-manifests/{code}/conversions) for the App id,
 * private key and webhook secret. Those go into files of mode 0600 and a
 * github.conf naming them, which ephemera.conf includes.
 *
 *   ephemera [-c CONF] github-app create --webhook-url URL [--dir DIR]
 *       [--name NAME] [--org ORG] [--port N] [--chown USER]
 *       [--github-url URL] [--api-url URL] [--timeout SECONDS]
 *
 * Nothing is overwritten: the key and secret files must not exist, and
 * github.conf may only replace the default one `make install` put there.
 * Secrets are never printed, logged or passed in argv.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "cli.h"

/* The first line of the github.conf `make install` ships. */
#define GITHUB_CONF_DEFAULT "# ephemera: default github settings"

struct app_flow {
	const char *dir, *name, *org, *webhook_url, *github_url, *api_url;
	const char *chown_user;
	long port, timeout;
	char state[33];
	char *pem_path, *secret_path, *conf_path;
	int listen_fd;
};

static void
usage_github_app(void)
{
	fprintf(stderr,
	        "usage: ephemera [-c CONF] github-app create --webhook-url URL\n"
	        "           [--dir DIR] [--name NAME] [--org ORG] [--port N]\n"
	        "           [--chown USER] [--github-url URL] [--api-url URL]\n"
	        "           [--timeout SECONDS]\n");
}

static char *
path_join(const char *dir, const char *name)
{
	struct buf b = BUF_INIT;

	buf_printf(&b, "%s/%s", dir, name);
	return buf_detach(&b);
}

/* Safe inside a libconfig string and a shell-free path: no quotes,
 * backslashes or control characters. */
static bool
path_plain(const char *p)
{
	for (; *p; p++)
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
			return false;
	return true;
}

static bool
name_plain(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' ||
		      *s == ' ' || *s == '.'))
			return false;
	return true;
}

static bool
url_ok(const char *u)
{
	return (strncmp(u, "https://", 8) == 0 ||
	        strncmp(u, "http://", 7) == 0) &&
	       strpbrk(u, "\"<> \t\r\n") == NULL;
}

/* Before GitHub is involved: nothing of ours would be overwritten. */
static int
flow_check_files(struct app_flow *f)
{
	char line[64] = "";
	FILE *conf;

	if (access(f->pem_path, F_OK) == 0 ||
	    access(f->secret_path, F_OK) == 0) {
		fprintf(stderr,
		        "ephemera: %s or %s exists; move it away first (an App "
		        "key is never overwritten)\n",
		        f->pem_path, f->secret_path);
		return -1;
	}
	conf = fopen(f->conf_path, "r");
	if (conf != NULL) {
		bool dflt = fgets(line, sizeof(line), conf) != NULL &&
		            strncmp(line, GITHUB_CONF_DEFAULT,
		                    strlen(GITHUB_CONF_DEFAULT)) == 0;

		fclose(conf);
		if (!dflt) {
			fprintf(stderr,
			        "ephemera: %s exists and is not the default; "
			        "move it away first\n",
			        f->conf_path);
			return -1;
		}
	}
	if (access(f->dir, W_OK) != 0) {
		fprintf(stderr, "ephemera: cannot write in %s: %s\n", f->dir,
		        strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Writes `data` to `path` with mode 0600 through a temporary file in the
 * same directory. replace=false: link(2) refuses an existing file, so a
 * key that appeared meanwhile is never replaced.
 */
static int
file_write_private(const struct app_flow *f, const char *path, const char *data,
                   bool replace)
{
	struct buf tmp = BUF_INIT;
	size_t len = strlen(data), off = 0;
	int fd, rc = -1;

	buf_printf(&tmp, "%s.XXXXXX", path);
	fd = mkstemp((char *)buf_str(&tmp)); /* mode 0600 */
	if (fd == -1) {
		fprintf(stderr, "ephemera: cannot create %s: %s\n",
		        buf_str(&tmp), strerror(errno));
		goto out;
	}
	if (fchmod(fd, 0600) == -1)
		goto fail;
	if (f->chown_user != NULL) {
		struct passwd *pw = getpwnam(f->chown_user);

		if (pw == NULL || fchown(fd, pw->pw_uid, pw->pw_gid) == -1)
			goto fail;
	}
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);

		if (n <= 0)
			goto fail;
		off += (size_t)n;
	}
	if (fsync(fd) == -1)
		goto fail;
	if (replace ? rename(buf_str(&tmp), path) : link(buf_str(&tmp), path))
		goto fail;
	if (!replace)
		unlink(buf_str(&tmp));
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "ephemera: cannot write %s: %s\n", path,
	        strerror(errno));
	unlink(buf_str(&tmp));
out:
	if (fd != -1)
		close(fd);
	buf_free(&tmp);
	return rc;
}

static int
flow_write(const struct app_flow *f, const struct app_credentials *c)
{
	struct buf conf = BUF_INIT, secret = BUF_INIT;
	int rc = -1;

	buf_printf(&secret, "%s\n", c->webhook_secret);
	buf_printf(&conf,
	           "# Written by `ephemera github-app create` for the App "
	           "\"%s\" (id %lld).\ngithub: {\n\tenabled = true;\n"
	           "\tapp_id = %lld;\n\tprivate_key_file = \"%s\";\n"
	           "\twebhook_secret_file = \"%s\";\n};\n",
	           c->slug, (long long)c->id, (long long)c->id, f->pem_path,
	           f->secret_path);
	if (file_write_private(f, f->pem_path, c->pem, false) == -1 ||
	    file_write_private(f, f->secret_path, buf_str(&secret), false) ==
	            -1 ||
	    file_write_private(f, f->conf_path, buf_str(&conf), true) == -1)
		goto out;
	rc = 0;
out:
	if (secret.data != NULL)
		explicit_bzero(secret.data, secret.len);
	buf_free(&secret);
	buf_free(&conf);
	return rc;
}

static size_t
collect(char *p, size_t size, size_t n, void *arg)
{
	buf_append(arg, p, size * n);
	return size * n;
}

/* POST /app-manifests/{code}/conversions: needs no authentication; the
 * code is good once, for an hour. */
static int
flow_exchange(const struct app_flow *f, const char *code,
              struct app_credentials *c)
{
	struct buf url = BUF_INIT, answer = BUF_INIT, err = BUF_INIT;
	struct curl_slist *h = NULL;
	long status = 0;
	CURLcode cc;
	CURL *curl = curl_easy_init();
	int rc = -1;

	buf_printf(&url, "%s/app-manifests/%s/conversions", f->api_url, code);
	h = curl_slist_append(h, "Accept: application/vnd.github+json");
	h = curl_slist_append(h, "X-GitHub-Api-Version: 2022-11-28");
	h = curl_slist_append(h, "User-Agent: ephemera-github-app-create");
	curl_easy_setopt(curl, CURLOPT_URL, buf_str(&url));
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https,http");
	cc = curl_easy_perform(curl);
	if (cc != CURLE_OK) {
		fprintf(stderr, "ephemera: %s: %s\n", buf_str(&url),
		        curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	if (status != 201) {
		/* An error answer carries no secret: show GitHub's message. */
		fprintf(stderr,
		        "ephemera: GitHub answered %ld to the code "
		        "exchange: %.300s\n",
		        status, buf_str(&answer));
		goto out;
	}
	if (manifest_conversion_parse(buf_str(&answer), answer.len, c, &err) ==
	    -1) {
		fprintf(stderr, "ephemera: %s\n", buf_str(&err));
		goto out;
	}
	rc = 0;
out:
	if (answer.data != NULL)
		explicit_bzero(answer.data, answer.len);
	buf_free(&answer);
	buf_free(&url);
	buf_free(&err);
	curl_slist_free_all(h);
	curl_easy_cleanup(curl);
	return rc;
}

static void
reply(int fd, int status, const char *type, const char *body)
{
	struct buf r = BUF_INIT;
	size_t off = 0;

	buf_printf(&r,
	           "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	           "Content-Length: %zu\r\nCache-Control: no-store\r\n"
	           "X-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n"
	           "Connection: close\r\n\r\n%s",
	           status, status == 200 ? "OK" : "Error", type, strlen(body),
	           body);
	while (off < r.len) {
		ssize_t n = write(fd, r.data + off, r.len - off);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	buf_free(&r);
}

/* Reads a request head (GET only; 8 KB is plenty for a redirect). */
static int
request_read(int fd, char *line, size_t cap)
{
	char head[8192];
	size_t got = 0;
	char *eol;

	while (got < sizeof(head) - 1) {
		struct pollfd p = {fd, POLLIN, 0};
		ssize_t n;

		if (poll(&p, 1, 10000) <= 0)
			return -1;
		n = read(fd, head + got, sizeof(head) - 1 - got);
		if (n <= 0)
			return -1;
		got += (size_t)n;
		head[got] = '\0';
		if (strstr(head, "\r\n\r\n") != NULL)
			break;
	}
	eol = strstr(head, "\r\n");
	if (eol == NULL || (size_t)(eol - head) >= cap)
		return -1;
	memcpy(line, head, (size_t)(eol - head));
	line[eol - head] = '\0';
	return 0;
}

/* 1: done, 0: keep serving, -1: failed for good. */
static int
flow_serve_one(struct app_flow *f, int fd, const char *page)
{
	char line[4096], *path, *sp, *query;
	struct buf code = BUF_INIT, state = BUF_INIT;
	struct app_credentials c;
	int rc = 0;

	memset(&c, 0, sizeof(c));
	if (request_read(fd, line, sizeof(line)) == -1 ||
	    strncmp(line, "GET ", 4) != 0) {
		reply(fd, 400, "text/plain", "bad request\n");
		goto out;
	}
	path = line + 4;
	sp = strchr(path, ' ');
	if (sp != NULL)
		*sp = '\0';
	query = strchr(path, '?');
	if (query != NULL)
		*query++ = '\0';
	if (strcmp(path, "/") == 0) {
		reply(fd, 200, "text/html; charset=utf-8", page);
		goto out;
	}
	if (strcmp(path, "/redirect") != 0) {
		reply(fd, 404, "text/plain", "not found\n");
		goto out;
	}
	/* The state ties the redirect to the page we served. */
	if (query == NULL || manifest_query_get(query, "state", &state) == -1 ||
	    strcmp(buf_str(&state), f->state) != 0) {
		reply(fd, 400, "text/plain", "state does not match\n");
		goto out;
	}
	if (manifest_query_get(query, "code", &code) == -1 ||
	    !manifest_code_valid(buf_str(&code))) {
		reply(fd, 400, "text/plain", "no valid code\n");
		goto out;
	}
	if (flow_exchange(f, buf_str(&code), &c) == -1 ||
	    flow_write(f, &c) == -1) {
		reply(fd, 500, "text/plain",
		      "the App could not be set up; see the terminal\n");
		rc = -1;
		goto out;
	}
	reply(fd, 200, "text/plain; charset=utf-8",
	      "Done: the App exists and Ephemera's files are written. You "
	      "can close this tab and install the App.\n");
	printf("ephemera: created the GitHub App %s (id %lld): %s\n"
	       "ephemera: wrote %s, %s and %s (mode 0600)\n"
	       "ephemera: install it on your repositories: "
	       "%s/installations/new\n",
	       c.slug, (long long)c.id, c.html_url, f->pem_path, f->secret_path,
	       f->conf_path, c.html_url);
	rc = 1;
out:
	app_credentials_free(&c);
	buf_free(&code);
	buf_free(&state);
	return rc;
}

static int
flow_listen(struct app_flow *f)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	int one = 1;

	f->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (f->listen_fd == -1)
		return -1;
	setsockopt(f->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)f->port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(f->listen_fd, (struct sockaddr *)&a, sizeof(a)) == -1 ||
	    listen(f->listen_fd, 8) == -1 ||
	    getsockname(f->listen_fd, (struct sockaddr *)&a, &alen) == -1) {
		fprintf(stderr,
		        "ephemera: cannot listen on 127.0.0.1:%ld: %s\n",
		        f->port, strerror(errno));
		return -1;
	}
	f->port = ntohs(a.sin_port);
	return 0;
}

static int
flow_run(struct app_flow *f)
{
	struct buf manifest = BUF_INIT, page = BUF_INIT, action = BUF_INIT,
	           redirect = BUF_INIT, home = BUF_INIT;
	struct manifest_opts o;
	unsigned char rnd[16];
	time_t deadline;
	size_t i;
	int rc = 1, r = 0;

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return 1;
	for (i = 0; i < sizeof(rnd); i++) {
		f->state[2 * i] = "0123456789abcdef"[rnd[i] >> 4];
		f->state[2 * i + 1] = "0123456789abcdef"[rnd[i] & 15];
	}
	f->state[32] = '\0';
	if (flow_listen(f) == -1)
		goto out;
	buf_printf(&redirect, "http://127.0.0.1:%ld/redirect", f->port);
	/* The App's homepage: the control plane, i.e. the webhook's origin. */
	buf_puts(&home, f->webhook_url);
	{
		char *slash = strchr(home.data + 8, '/');

		if (slash != NULL) {
			home.len = (size_t)(slash - home.data);
			*slash = '\0';
		}
	}
	o.name = f->name;
	o.url = buf_str(&home);
	o.webhook_url = f->webhook_url;
	o.redirect_url = buf_str(&redirect);
	manifest_render(&o, &manifest);
	if (f->org != NULL)
		buf_printf(&action,
		           "%s/organizations/%s/settings/apps/new?state=%s",
		           f->github_url, f->org, f->state);
	else
		buf_printf(&action, "%s/settings/apps/new?state=%s",
		           f->github_url, f->state);
	manifest_page(buf_str(&action), buf_str(&manifest), &page);
	printf("ephemera: open http://127.0.0.1:%ld/ in a browser on this "
	       "machine and press the button (ssh -L %ld:127.0.0.1:%ld if "
	       "it is remote)\n",
	       f->port, f->port, f->port);
	fflush(stdout);
	deadline = time(NULL) + f->timeout;
	while (r == 0) {
		struct pollfd p = {f->listen_fd, POLLIN, 0};
		time_t left = deadline - time(NULL);
		int fd;

		if (left <= 0) {
			fprintf(stderr,
			        "ephemera: no redirect from GitHub "
			        "within %ld seconds\n",
			        f->timeout);
			goto out;
		}
		if (poll(&p, 1, (int)(left > 60 ? 60000 : left * 1000)) <= 0)
			continue;
		fd = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd == -1)
			continue;
		r = flow_serve_one(f, fd, buf_str(&page));
		close(fd);
	}
	rc = r == 1 ? 0 : 1;
out:
	if (f->listen_fd != -1)
		close(f->listen_fd);
	buf_free(&manifest);
	buf_free(&page);
	buf_free(&action);
	buf_free(&redirect);
	buf_free(&home);
	return rc;
}

static char *
dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? xstrndup(path, (size_t)(slash - path)) : xstrdup(".");
}

int
github_app_command(const char *config_path, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"dir", required_argument, NULL, 'd'},
	        {"name", required_argument, NULL, 'n'},
	        {"org", required_argument, NULL, 'o'},
	        {"port", required_argument, NULL, 'p'},
	        {"webhook-url", required_argument, NULL, 'w'},
	        {"github-url", required_argument, NULL, 'g'},
	        {"api-url", required_argument, NULL, 'a'},
	        {"chown", required_argument, NULL, 'u'},
	        {"timeout", required_argument, NULL, 't'},
	        {NULL, 0, NULL, 0}};
	struct app_flow f;
	char *dir = NULL, real[PATH_MAX];
	int64_t v;
	int ch, rc = 2;

	memset(&f, 0, sizeof(f));
	f.listen_fd = -1;
	f.name = "Ephemera";
	f.github_url = "https://github.com";
	f.api_url = "https://api.github.com";
	f.timeout = 900;
	if (argc < 2 || strcmp(argv[1], "create") != 0) {
		usage_github_app();
		return 2;
	}
	optind = 2;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			f.dir = optarg;
			break;
		case 'n':
			f.name = optarg;
			break;
		case 'o':
			f.org = optarg;
			break;
		case 'w':
			f.webhook_url = optarg;
			break;
		case 'g':
			f.github_url = optarg;
			break;
		case 'a':
			f.api_url = optarg;
			break;
		case 'u':
			f.chown_user = optarg;
			break;
		case 'p':
			if (parse_int64(optarg, 0, 65535, &v) == -1)
				goto bad;
			f.port = (long)v;
			break;
		case 't':
			if (parse_int64(optarg, 1, 86400, &v) == -1)
				goto bad;
			f.timeout = (long)v;
			break;
		default:
			goto bad;
		}
	}
	if (optind != argc || f.webhook_url == NULL)
		goto bad;
	if (!url_ok(f.webhook_url) || !url_ok(f.github_url) ||
	    !url_ok(f.api_url)) {
		fprintf(stderr, "ephemera: URLs are http(s):// without quotes, "
		                "spaces or angle brackets\n");
		goto out;
	}
	if (!name_plain(f.name, 34) ||
	    (f.org != NULL && !name_plain(f.org, 39))) {
		fprintf(stderr, "ephemera: --name (at most 34) and --org are "
		                "letters, digits, - _ . and spaces\n");
		goto out;
	}
	if (f.chown_user != NULL && getpwnam(f.chown_user) == NULL) {
		fprintf(stderr, "ephemera: no user %s\n", f.chown_user);
		goto out;
	}
	dir = f.dir ? xstrdup(f.dir) : dir_of(config_path);
	if (realpath(dir, real) == NULL || !path_plain(real)) {
		fprintf(stderr, "ephemera: %s: not a usable directory\n", dir);
		goto out;
	}
	f.dir = real;
	f.pem_path = path_join(real, "github-app.pem");
	f.secret_path = path_join(real, "webhook-secret");
	f.conf_path = path_join(real, "github.conf");
	rc = 1;
	if (flow_check_files(&f) == -1)
		goto out;
	rc = flow_run(&f);
	goto out;
bad:
	usage_github_app();
out:
	free(dir);
	free(f.pem_path);
	free(f.secret_path);
	free(f.conf_path);
	return rc;
}
