/*
 * main.c - ephemera-fcgi: the FastCGI program behind nginx.
 *
 * The supervisor opens the unix socket once and forks a prefork pool; each
 * child accepts on the shared socket, owns one database connection, and
 * answers one request at a time. Nothing here calls a remote service: the
 * slow work is the workers'.
 */
#include <fcgiapp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"

struct fcgi_ctx {
	struct config *cfg;
	int listen_fd;
};

/* Signal context: make a blocked FCGX_Accept_r return. */
static void
fcgi_on_stop(void)
{
	FCGX_ShutdownPending();
}

static int
body_read(FCGX_Request *fr, struct request *req, struct buf *body,
          struct response *res)
{
	const char *cl = FCGX_GetParam("CONTENT_LENGTH", fr->envp);
	int64_t len = 0;
	char chunk[16384];
	int n;

	if (cl != NULL && cl[0] != '\0' &&
	    parse_int64(cl, 0, INT64_MAX, &len) == -1) {
		response_text(res, 400, "bad Content-Length");
		return -1;
	}
	if (len > (int64_t)REQUEST_BODY_MAX) {
		response_text(res, 413, "body larger than 25 MB");
		return -1;
	}
	while (len > 0 &&
	       (n = FCGX_GetStr(chunk, (int)sizeof(chunk), fr->in)) > 0) {
		buf_append(body, chunk, (size_t)n);
		len -= n;
	}
	req->body.ptr = body->data ? body->data : "";
	req->body.len = body->len;
	return 0;
}

/* Headers are formatted by us: libfcgi's own printf knows no %zu. */
static void
response_write(FCGX_Request *fr, struct response *res, bool head)
{
	struct buf h = BUF_INIT;

	buf_printf(&h,
	           "Status: %d %s\r\nContent-Type: %s\r\n"
	           "Content-Length: %zu\r\n%s\r\n",
	           res->status, status_reason(res->status), res->content_type,
	           res->body.len, buf_str(&res->headers));
	FCGX_PutStr(h.data, (int)h.len, fr->out);
	if (!head && res->body.len)
		FCGX_PutStr(res->body.data, (int)res->body.len, fr->out);
	buf_free(&h);
}

static void
request_serve(struct app *app, FCGX_Request *fr)
{
	struct request req;
	struct response res;
	struct buf body = BUF_INIT;
	const char *uri, *q;

	memset(&req, 0, sizeof(req));
	response_init(&res);
	body.max = REQUEST_BODY_MAX;
	req.envp = fr->envp;
	req.method = FCGX_GetParam("REQUEST_METHOD", fr->envp);
	uri = FCGX_GetParam("REQUEST_URI", fr->envp);
	req.content_type = FCGX_GetParam("CONTENT_TYPE", fr->envp);
	if (req.method == NULL || uri == NULL) {
		response_text(&res, 400, "missing request line");
		goto out;
	}
	q = strchr(uri, '?');
	req.path_owned = q ? xstrndup(uri, (size_t)(q - uri)) : xstrdup(uri);
	req.path = req.path_owned;
	req.query = q ? q + 1 : "";
	if (body_read(fr, &req, &body, &res) == -1)
		goto out;
	route_dispatch(app, &req, &res);
out:
	response_write(fr, &res, req.method && strcmp(req.method, "HEAD") == 0);
	log_debug("request", "method=%s path=%s status=%d", log_q(req.method),
	          log_q(req.path), res.status);
	free(req.path_owned);
	buf_free(&body);
	response_free(&res);
}

static int
fcgi_child(int slot, void *arg)
{
	struct fcgi_ctx *ctx = arg;
	struct app app = {ctx->cfg, NULL, 0};
	FCGX_Request fr;

	supervisor_child_signals(fcgi_on_stop);
	app.db = db_open(ctx->cfg);
	db_read_committed(app.db); /* see delivery.c */
	/* Connect lazily: with MariaDB down, /healthz must still say 503. */
	if (db_connect(app.db, 0) == -1)
		log_warn("db_unavailable_at_start", "slot=%d", slot);
	FCGX_InitRequest(&fr, ctx->listen_fd, FCGI_FAIL_ACCEPT_ON_INTR);
	while (!supervisor_stopping()) {
		if (FCGX_Accept_r(&fr) < 0)
			break;
		request_serve(&app, &fr);
		FCGX_Finish_r(&fr);
		app.requests++;
		if (ctx->cfg->fcgi_max_requests > 0 &&
		    app.requests >= (unsigned long)ctx->cfg->fcgi_max_requests)
			break;
	}
	FCGX_Free(&fr, 1);
	db_close(app.db);
	return 0;
}

int
main(int argc, char **argv)
{
	struct config cfg;
	char *sock = NULL, *pidfile = NULL;
	struct fcgi_ctx ctx;
	struct supervisor sv;
	int rc;

	if (program_start("ephemera-fcgi", argc, argv, &cfg, &rc) != 0)
		goto out;
	rc = 1;
	sock = cfg.fcgi_socket[0] ? xstrdup(cfg.fcgi_socket)
	                          : config_var_path(&cfg, "run/fcgi.sock");
	pidfile = config_var_path(&cfg, "run/fcgi.pid");
	if (FCGX_Init() != 0)
		fatal("fcgi_init", "reason=FCGX_Init");
	unlink(sock);
	ctx.cfg = &cfg;
	ctx.listen_fd = FCGX_OpenSocket(sock, 1024);
	if (ctx.listen_fd < 0) {
		log_error("fcgi_socket", "path=%s errno=%m", log_q(sock));
		goto out;
	}
	/* nginx workers may run as another user; the directory guards it. */
	chmod(sock, 0666);
	memset(&sv, 0, sizeof(sv));
	sv.name = "fcgi";
	sv.children = (int)cfg.fcgi_processes;
	sv.shutdown_timeout = 10;
	sv.pidfile = pidfile;
	sv.child_main = fcgi_child;
	sv.arg = &ctx;
	rc = supervisor_run(&sv);
	close(ctx.listen_fd);
	unlink(sock);
out:
	free(sock);
	free(pidfile);
	config_free(&cfg);
	return rc;
}
