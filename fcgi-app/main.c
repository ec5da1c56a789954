/*
 * main.c - ephemera-fcgi: the FastCGI program behind nginx.
 *
 * The supervisor opens the unix socket once and forks a prefork pool; each
 * child runs fcgi.threads threads that accept on the shared socket, each
 * owning one database connection and answering one request at a time.
 * Threads rather than more processes so that webhook deliveries arriving
 * together can share a transaction (batch.c). Nothing here calls a remote
 * service: the slow work is the workers'.
 *
 * Signals: only the child's main thread takes SIGTERM. It sets `stop`,
 * which a thread reads before each accept, and interrupts the threads
 * with SIGUSR1 (FCGI_FAIL_ACCEPT_ON_INTR makes a blocked accept return),
 * again every 20 ms until all are done: a thread takes SIGUSR1 only while
 * it waits in accept, so no request's reads or writes see EINTR (but for
 * one just accepted as the stop comes, whose connection nginx sees
 * closed, as it would any left in the backlog of a stopping pool).
 */
#include <fcgiapp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
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

/* One child process: its threads and what they share. */
struct fcgi_proc {
	struct fcgi_ctx *ctx;
	struct batch *batch;
	pthread_t main_thread;
	atomic_bool stop;
	atomic_ulong requests;
};

struct fcgi_thread {
	struct fcgi_proc *proc;
	pthread_t id;
	atomic_bool done;
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

static void
on_interrupt(int sig)
{
	(void)sig; /* only to make a blocking call return EINTR */
}

static void *
fcgi_thread_main(void *arg)
{
	struct fcgi_thread *t = arg;
	struct fcgi_proc *p = t->proc;
	struct config *cfg = p->ctx->cfg;
	struct app app = {cfg, NULL, 0, p->batch};
	unsigned long max = (unsigned long)cfg->fcgi_max_requests;
	FCGX_Request fr;
	sigset_t usr1;
	int rc;

	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	app.db = db_open(cfg);
	db_read_committed(app.db); /* see delivery.c */
	FCGX_InitRequest(&fr, p->ctx->listen_fd, FCGI_FAIL_ACCEPT_ON_INTR);
	while (!atomic_load(&p->stop)) {
		/* Interruptible only here: never a request's reads and writes. */
		pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
		rc = FCGX_Accept_r(&fr);
		pthread_sigmask(SIG_BLOCK, &usr1, NULL);
		if (rc < 0)
			break;
		request_serve(&app, &fr);
		FCGX_Finish_r(&fr);
		/* Recycle the process after max_requests (bounds leaks). */
		if (max > 0 && atomic_fetch_add(&p->requests, 1) + 1 >= max) {
			atomic_store(&p->stop, true);
			pthread_kill(p->main_thread, SIGUSR1);
		}
	}
	FCGX_Free(&fr, 1);
	db_close(app.db);
	atomic_store(&t->done, true);
	pthread_kill(p->main_thread, SIGUSR1);
	return NULL;
}

/* Interrupts every thread still running until all are done. */
static void
threads_stop(struct fcgi_thread *ts, size_t n)
{
	struct timespec pause = {0, 20 * 1000 * 1000};
	size_t i, left;

	do {
		left = 0;
		for (i = 0; i < n; i++)
			if (!atomic_load(&ts[i].done)) {
				pthread_kill(ts[i].id, SIGUSR1);
				left++;
			}
		if (left > 0)
			nanosleep(&pause, NULL);
	} while (left > 0);
	for (i = 0; i < n; i++)
		pthread_join(ts[i].id, NULL);
}

static int
fcgi_child(int slot, void *arg)
{
	struct fcgi_proc p = {.ctx = arg};
	size_t n = (size_t)p.ctx->cfg->fcgi_threads, i, started = 0;
	struct fcgi_thread *ts = xcalloc(n, sizeof(*ts));
	struct sigaction sa;
	sigset_t term, none;
	struct db *probe;
	int err;

	supervisor_child_signals(fcgi_on_stop);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_interrupt; /* no SA_RESTART */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	/* Say so at start if MariaDB is down; /healthz must still answer. */
	probe = db_open(p.ctx->cfg);
	if (db_connect(probe, 0) == -1)
		log_warn("db_unavailable_at_start", "slot=%d", slot);
	db_close(probe);
	/* A lone thread has nothing to share a transaction with. */
	if (n > 1)
		p.batch = batch_new(p.ctx->cfg);
	p.main_thread = pthread_self();
	atomic_init(&p.stop, false);
	atomic_init(&p.requests, 0);
	/* The threads inherit a mask with SIGTERM blocked: it comes here. */
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, NULL);
	for (i = 0; i < n; i++) {
		ts[i].proc = &p;
		atomic_init(&ts[i].done, false);
		err = pthread_create(&ts[i].id, NULL, fcgi_thread_main, &ts[i]);
		if (err != 0) {
			log_error("fcgi_thread", "slot=%d error=%s", slot,
			          log_q(strerror(err)));
			break;
		}
		started++;
	}
	/*
	 * Here both stay blocked but inside sigsuspend, so that one arriving
	 * between the checks and the wait is not lost.
	 */
	sigaddset(&term, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &term, NULL);
	sigemptyset(&none);
	/* Until told to stop, or a thread ended (recycling, or an error). */
	while (!supervisor_stopping() && !atomic_load(&p.stop) &&
	       started == n) {
		for (i = 0; i < n && !atomic_load(&ts[i].done); i++)
			;
		if (i < n)
			break;
		sigsuspend(&none);
	}
	atomic_store(&p.stop, true);
	threads_stop(ts, started);
	batch_free(p.batch);
	free(ts);
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
