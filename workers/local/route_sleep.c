/*
 * route_sleep.c - wake on visit for the `nginx` exposure (issue 20).
 *
 * An environment the sweep stopped as idle keeps its hostname: its route
 * file becomes a waking route that hands every request to the fcgi-app
 * (fcgi-app/page_wake.c), which answers a "waking up" page and asks for
 * a start. The slug travels as a FastCGI parameter that this file sets,
 * never read from the visitor's Host header. The next deploy writes the
 * app's route over it (exposure_local.c), and the page's refresh lands in
 * the app.
 *
 * The cloudflare exposure writes the same route for its own hostname
 * (<slug>.<cloudflare.zone>) on the control plane, whose tunnel brings
 * the visits while the preview's record points at it.
 *
 * The app's route logs each visit's time to <var_dir>/log/previews/
 * <slug>.log; route_last_visit hands the idle sweep the last one and
 * empties the file, so it stays small and "not empty" means "visited
 * since the sweep last looked".
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../workers.h"

void
route_sleep_render(const struct config *cfg, const char *slug, const char *host,
                   const char *fcgi_socket, struct buf *b)
{
	/* Only what page_wake.c reads: the method, a path of its own and
	 * the slug. The visitor's body is not forwarded. */
	buf_printf(b,
	           "# Ephemera preview route for %s; generated, do not "
	           "edit.\n# instance: %s\n" ROUTE_ASLEEP "\nserver {\n"
	           "\tlisten 127.0.0.1:%lld;\n\tserver_name %s;\n"
	           "\tlocation / {\n"
	           "\t\tfastcgi_pass unix:%s;\n"
	           "\t\tfastcgi_pass_request_body off;\n"
	           "\t\tfastcgi_param REQUEST_METHOD $request_method;\n"
	           "\t\tfastcgi_param REQUEST_URI /_wake;\n"
	           "\t\tfastcgi_param EPHEMERA_WAKE_SLUG %s;\n"
	           "\t}\n}\n",
	           slug, local_instance(cfg), (long long)cfg->http_port, host,
	           fcgi_socket, slug);
}

int
route_sleep_host(struct worker *w, const char *slug, const char *host,
                 struct buf *why)
{
	struct buf text = BUF_INIT;
	char *rel = w->cfg->fcgi_socket[0]
	                    ? xstrdup(w->cfg->fcgi_socket)
	                    : config_var_path(w->cfg, "run/fcgi.sock");
	char *sock = exposure_local_abs(rel);
	int rc = -1;

	/* A server_name nginx reads as one name: a DNS name, nothing else. */
	if (host[0] == '\0' || strspn(host, "abcdefghijklmnopqrstuvwxyz"
	                                    "0123456789-.") != strlen(host)) {
		buf_puts(why, "the waking route's hostname is not a DNS name");
		goto out;
	}
	if (!exposure_local_path_valid(sock)) {
		buf_puts(why, "fcgi.socket is not a path nginx can read as is");
		goto out;
	}
	route_sleep_render(w->cfg, slug, host, sock, &text);
	if (exposure_local_install(w->cfg, slug, &text) == -1) {
		buf_puts(why, "the waking route could not be written");
		goto out;
	}
	rc = 0;
out:
	buf_free(&text);
	free(sock);
	free(rel);
	return rc;
}

int
route_sleep(struct worker *w, const struct job *job, const char *slug,
            struct buf *why)
{
	struct buf host = BUF_INIT;
	int rc;

	(void)job;
	buf_printf(&host, "%s.%s", slug, w->cfg->preview_domain);
	rc = route_sleep_host(w, slug, buf_str(&host), why);
	buf_free(&host);
	return rc;
}

int
route_last_visit(const struct config *cfg, const char *slug, time_t *at)
{
	char *path = exposure_local_visits_path(cfg, slug);
	struct stat st;
	int rc = -1;

	if (stat(path, &st) == -1) {
		rc = errno == ENOENT ? 0 : -1;
		goto out;
	}
	rc = 0;
	if (st.st_size == 0)
		goto out;
	*at = st.st_mtime;
	/* nginx appends (O_APPEND): after this it writes from 0 again. */
	if (truncate(path, 0) == -1)
		log_error("route_last_visit", "path=%s errno=%m", log_q(path));
	rc = 1;
out:
	free(path);
	return rc;
}
