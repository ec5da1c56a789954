/*
 * connector.c - a stand-in for cloudflared, for tests only: a static
 * program the image tests/connector/image.sh builds FROM scratch. It takes
 * cloudflared's own arguments (`tunnel --no-autoupdate run --token-file
 * FILE`; TUNNEL_TOKEN when there is no file), so the compose service the
 * provider renders runs it unchanged.
 *
 * Instead of Cloudflare's edge it talks to tests/fakes/cloudflare.py over
 * Unix sockets in the mounted directory $CF_STANDIN_DIR (default /run/cf):
 * it registers at api.sock with its token (the tunnel becomes healthy),
 * re-registers every few seconds as cloudflared reconnects, and serves
 * conn-<container id>.sock, where the fake edge hands it requests with the
 * chosen ingress service in X-Ephemera-Ingress ("http://<service>:<port>"). It
 * carries each one to that compose service by name, as cloudflared does.
 * The token never reaches argv, stdout or stderr.
 *
 * With `--metrics ADDR:PORT` (before `run`, as cloudflared takes it) it
 * serves GET /metrics there in Prometheus' text format with the one
 * series the workers read, cloudflared_tunnel_total_requests: the
 * requests the edge handed it since it started.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define HEAD_MAX 65536

static char token[8192];
/* Requests proxied, counted by the forked children that serve them: a
 * page shared across fork. A bare connect (the fake's liveness check) is
 * not a request. */
static unsigned long long *requests;

static void
say(const char *msg)
{
	fprintf(stderr, "standin-connector: %s\n", msg);
}

static int
token_load(int argc, char **argv)
{
	const char *file = NULL, *env;
	size_t n = 0;
	int i, fd;
	ssize_t r;

	for (i = 1; i < argc - 1; i++)
		if (strcmp(argv[i], "--token-file") == 0)
			file = argv[i + 1];
	if (file == NULL) {
		env = getenv("TUNNEL_TOKEN");
		if (env == NULL || strlen(env) >= sizeof(token))
			return -1;
		memcpy(token, env, strlen(env) + 1);
		return 0;
	}
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return -1;
	while (n < sizeof(token) - 1 &&
	       (r = read(fd, token + n, sizeof(token) - 1 - n)) > 0)
		n += (size_t)r;
	close(fd);
	while (n > 0 && strchr(" \r\n\t", token[n - 1]))
		n--;
	token[n] = '\0';
	return n > 0 ? 0 : -1;
}

/* The TCP listener `--metrics ADDR:PORT` asks for; -1 when not asked. */
static int
metrics_listen(int argc, char **argv)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_PASSIVE},
	                *res;
	char addr[128], *colon;
	int i, fd, one = 1;

	for (i = 1; i < argc - 1; i++)
		if (strcmp(argv[i], "--metrics") == 0)
			break;
	if (i >= argc - 1 || strlen(argv[i + 1]) >= sizeof(addr))
		return -1;
	strcpy(addr, argv[i + 1]);
	colon = strrchr(addr, ':');
	if (colon == NULL)
		return -1;
	*colon = '\0';
	if (getaddrinfo(addr[0] ? addr : NULL, colon + 1, &hints, &res) != 0)
		return -1;
	fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, 0);
	if (fd != -1 && (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
	                            sizeof(one)) == -1 ||
	                 bind(fd, res->ai_addr, res->ai_addrlen) == -1 ||
	                 listen(fd, 16) == -1)) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

static int write_all(int fd, const char *p, size_t n);

/* One scrape, answered inline: the head is read (up to 2 s), any path
 * but /metrics is a 404. */
static void
metrics_serve(int c, unsigned long long requests)
{
	char head[2048], body[512], resp[1024];
	size_t n = 0;
	int len;

	while (n < sizeof(head) - 1) {
		struct pollfd p = {.fd = c, .events = POLLIN};
		ssize_t r;

		if (poll(&p, 1, 2000) <= 0 ||
		    (r = read(c, head + n, sizeof(head) - 1 - n)) <= 0)
			return;
		n += (size_t)r;
		head[n] = '\0';
		if (strstr(head, "\r\n\r\n") != NULL)
			break;
	}
	if (strncmp(head, "GET /metrics ", 13) != 0) {
		static const char nf[] = "HTTP/1.0 404 Not Found\r\n"
		                         "Content-Length: 0\r\n\r\n";

		(void)write_all(c, nf, sizeof(nf) - 1);
		return;
	}
	len = snprintf(body, sizeof(body),
	               "# HELP cloudflared_tunnel_total_requests Amount of "
	               "requests proxied through all the tunnels\n"
	               "# TYPE cloudflared_tunnel_total_requests counter\n"
	               "cloudflared_tunnel_total_requests %llu\n",
	               requests);
	n = (size_t)snprintf(resp, sizeof(resp),
	                     "HTTP/1.0 200 OK\r\nContent-Type: text/plain; "
	                     "version=0.0.4\r\nContent-Length: %d\r\n\r\n%s",
	                     len, body);
	(void)write_all(c, resp, n);
}

static int
unix_connect(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd == -1 || strlen(path) >= sizeof(a.sun_path))
		return -1;
	memcpy(a.sun_path, path, strlen(path) + 1);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w <= 0) {
			if (w == -1 && errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* POSTs {"token", "address"} to the fake; 0 when it answered 200. */
static int
register_once(const char *dir, const char *name)
{
	static char req[16384], body[12288];
	char path[256], resp[64];
	int fd, n, len;
	ssize_t r;

	snprintf(path, sizeof(path), "%s/api.sock", dir);
	fd = unix_connect(path);
	if (fd == -1)
		return -1;
	len = snprintf(body, sizeof(body),
	               "{\"token\":\"%s\",\"address\":\"unix:%s\"}", token,
	               name);
	n = snprintf(req, sizeof(req),
	             "POST /_fake/connector/register HTTP/1.0\r\n"
	             "Host: api\r\nContent-Type: application/json\r\n"
	             "Content-Length: %d\r\n\r\n%s",
	             len, body);
	memset(body, 0, sizeof(body));
	if (write_all(fd, req, (size_t)n) == -1) {
		close(fd);
		memset(req, 0, sizeof(req));
		return -1;
	}
	memset(req, 0, sizeof(req));
	r = read(fd, resp, sizeof(resp) - 1);
	close(fd);
	if (r <= 0)
		return -1;
	resp[r] = '\0';
	return strncmp(resp + 8, " 200", 4) == 0 ? 0 : -1;
}

/* "http://name:port" from the X-Ephemera-Ingress header. */
static int
ingress_target(const char *head, char *host, size_t hl, char *port, size_t pl)
{
	const char *p = head, *e, *c;

	while ((p = strchr(p, '\n')) != NULL) {
		p++;
		if (strncasecmp(p, "X-Ephemera-Ingress:", 19) != 0)
			continue;
		p += 19;
		while (*p == ' ')
			p++;
		if (strncmp(p, "http://", 7) != 0)
			return -1;
		p += 7;
		e = strpbrk(p, "\r\n/");
		c = strchr(p, ':');
		if (e == NULL || c == NULL || c > e || (size_t)(c - p) >= hl ||
		    (size_t)(e - c - 1) >= pl)
			return -1;
		memcpy(host, p, (size_t)(c - p));
		host[c - p] = '\0';
		memcpy(port, c + 1, (size_t)(e - c - 1));
		port[e - c - 1] = '\0';
		return 0;
	}
	return -1;
}

static int
tcp_connect(const char *host, const char *port)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
	int fd = -1;

	if (getaddrinfo(host, port, &hints, &res) != 0)
		return -1;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
		if (fd != -1 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (fd != -1)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

static void
serve(int c)
{
	static char head[HEAD_MAX + 1];
	static const char bad[] =
	        "HTTP/1.1 502 Bad Gateway\r\n"
	        "Content-Length: 0\r\nConnection: close\r\n\r\n";
	char host[256], port[16], buf[16384];
	size_t n = 0;
	ssize_t r;
	int o;
	struct pollfd p[2];

	while (n < HEAD_MAX) {
		r = read(c, head + n, HEAD_MAX - n);
		if (r <= 0)
			_exit(0);
		n += (size_t)r;
		head[n] = '\0';
		if (strstr(head, "\r\n\r\n") != NULL)
			break;
	}
	__atomic_add_fetch(requests, 1, __ATOMIC_RELAXED);
	if (ingress_target(head, host, sizeof(host), port, sizeof(port)) ==
	            -1 ||
	    (o = tcp_connect(host, port)) == -1) {
		(void)write_all(c, bad, sizeof(bad) - 1);
		_exit(0);
	}
	if (write_all(o, head, n) == -1)
		_exit(0);
	p[0] = (struct pollfd){.fd = c, .events = POLLIN};
	p[1] = (struct pollfd){.fd = o, .events = POLLIN};
	for (;;) {
		if (poll(p, 2, 300000) <= 0)
			break;
		if (p[0].revents) {
			r = read(c, buf, sizeof(buf));
			if (r <= 0 || write_all(o, buf, (size_t)r) == -1)
				break;
		}
		if (p[1].revents) {
			r = read(o, buf, sizeof(buf));
			if (r <= 0 || write_all(c, buf, (size_t)r) == -1)
				break;
		}
	}
	_exit(0);
}

int
main(int argc, char **argv)
{
	const char *dir = getenv("CF_STANDIN_DIR");
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	char name[96], host[64];
	int l, m, i, registered = 0;

	if (dir == NULL)
		dir = "/run/cf";
	signal(SIGCHLD, SIG_IGN);
	if (token_load(argc, argv) == -1) {
		say("no token: give --token-file FILE or TUNNEL_TOKEN");
		return 1;
	}
	/*
	 * Named by the container's hostname (its ID), not the PID: every
	 * connector is PID 1 in its container, and they share the directory.
	 */
	if (gethostname(host, sizeof(host)) == -1)
		snprintf(host, sizeof(host), "%ld", (long)getpid());
	host[sizeof(host) - 1] = '\0';
	for (i = 0; host[i]; i++)
		if (!isalnum((unsigned char)host[i]) && host[i] != '-')
			host[i] = '_';
	snprintf(name, sizeof(name), "conn-%s.sock", host);
	if (snprintf(a.sun_path, sizeof(a.sun_path), "%s/%s", dir, name) >=
	    (int)sizeof(a.sun_path))
		return 1;
	unlink(a.sun_path);
	l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l == -1 || bind(l, (struct sockaddr *)&a, sizeof(a)) == -1 ||
	    listen(l, 64) == -1) {
		say("cannot listen");
		return 1;
	}
	chmod(a.sun_path, 0666);
	m = metrics_listen(argc, argv);
	requests = mmap(NULL, sizeof(*requests), PROT_READ | PROT_WRITE,
	                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (requests == MAP_FAILED) {
		say("cannot map the request count");
		return 1;
	}
	for (;;) {
		struct pollfd p[2] = {{.fd = l, .events = POLLIN},
		                      {.fd = m, .events = POLLIN}};
		int rc = poll(p, m == -1 ? 1 : 2, registered ? 3000 : 500);

		if (rc == 0) {
			int ok = register_once(dir, name) == 0;

			if (ok != registered)
				say(ok ? "registered" : "registration refused");
			registered = ok;
			continue;
		}
		if (rc > 0 && m != -1 && p[1].revents) {
			int c = accept4(m, NULL, NULL, SOCK_CLOEXEC);

			if (c != -1) {
				metrics_serve(
				        c, __atomic_load_n(requests,
				                           __ATOMIC_RELAXED));
				close(c);
			}
		}
		if (rc > 0 && p[0].revents) {
			int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);

			if (c == -1)
				continue;
			if (fork() == 0) {
				close(l);
				serve(c);
			}
			close(c);
		}
	}
}
