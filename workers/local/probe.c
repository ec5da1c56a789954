/*
 * probe.c - "does the URL serve yet?": an HTTP GET through our own nginx
 * with the preview's Host header, so the check covers the route as a user
 * would hit it, not just the container.
 */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../workers.h"

static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

/* Keeps the value of X-Ephemera-Route, the route's build token. */
static size_t
header_take(char *p, size_t size, size_t n, void *arg)
{
	static const char name[] = "x-ephemera-route:";
	size_t len = size * n, k = sizeof(name) - 1, i;
	struct buf *route = arg;

	if (len > k && strncasecmp(p, name, k) == 0) {
		buf_reset(route);
		for (i = k; i < len; i++)
			if (p[i] != ' ' && p[i] != '"' && p[i] != '\r' &&
			    p[i] != '\n')
				buf_putc(route, p[i]);
	}
	return len;
}

/* The HTTP status, or 0 when nothing answered. */
long
probe_once(const struct config *cfg, const char *host, const char *path,
           struct buf *route)
{
	struct buf url = BUF_INIT, hdr = BUF_INIT;
	struct curl_slist *headers = NULL;
	long status = 0;
	CURL *c = curl_easy_init();

	if (c == NULL)
		fatal("out_of_memory", "what=curl_easy_init");
	buf_printf(&url, "http://127.0.0.1:%lld%s", (long long)cfg->http_port,
	           path);
	buf_printf(&hdr, "Host: %s", host);
	headers = curl_slist_append(headers, buf_str(&hdr));
	curl_easy_setopt(c, CURLOPT_URL, buf_str(&url));
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	if (route != NULL) {
		buf_reset(route);
		curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_take);
		curl_easy_setopt(c, CURLOPT_HEADERDATA, route);
	}
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(headers);
	curl_easy_cleanup(c);
	buf_free(&url);
	buf_free(&hdr);
	return status;
}

/*
 * Polls until a 2xx/3xx that came through the route with `token`, or the
 * deadline. A 502/404, or the previous route's token, right after the
 * reload is expected: old nginx workers finish, the app warms up. At the
 * deadline, whose failure it was: the route answered and the app did not
 * (1), or the route never answered (-1: the proxy, ours).
 */
int
probe_wait(struct worker *w, const struct job *job, const char *host,
           const char *path, const char *token, double seconds, long *last)
{
	double deadline = now_mono() + seconds, beat = now_mono();
	struct buf route = BUF_INIT;
	bool routed = false;

	for (;;) {
		*last = probe_once(w->cfg, host, path, &route);
		if (*last > 0 &&
		    (token == NULL || strcmp(buf_str(&route), token) == 0)) {
			routed = true;
			if (*last >= 200 && *last < 400) {
				buf_free(&route);
				return 0;
			}
		}
		if (now_mono() > deadline)
			break;
		if (job && now_mono() - beat > 5) {
			beat = now_mono();
			if (job_heartbeat(w, job) == -1)
				break;
		}
		usleep(100 * 1000);
	}
	buf_free(&route);
	return routed ? 1 : -1;
}
