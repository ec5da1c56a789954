/*
 * github_http.c - the libcurl adapter for the GitHub API: the only file
 * that includes curl.h. It makes one request and reports what came back;
 * deciding what an answer means (retry when, refresh the token, give up)
 * is github_classify.c's, pure and tested without a network.
 *
 * One easy handle per process is kept between requests so connections to
 * the API are reused (workers are single-threaded processes). No redirect
 * is followed: a redirect would carry the Authorization header elsewhere.
 */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../workers.h"

/* GitHub answers are small; a list page of 100 comments stays well under. */
#define GITHUB_BODY_MAX (16u * 1024 * 1024)

static CURL *http_handle;

void
github_response_init(struct github_response *r)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->body, GITHUB_BODY_MAX);
	r->ratelimit_remaining = -1;
	r->retry_after = -1;
}

void
github_response_free(struct github_response *r)
{
	if (r == NULL)
		return;
	buf_free(&r->body);
	free(r->link);
	r->link = NULL;
}

static size_t
http_on_body(char *p, size_t size, size_t n, void *arg)
{
	struct github_response *r = arg;

	/* A short count makes curl stop with CURLE_WRITE_ERROR. */
	if (buf_append(&r->body, p, size * n) == -1)
		return 0;
	return size * n;
}

/* Copies a header's value, trimmed, when `line` is that header. */
static char *
http_header_value(const char *line, size_t n, const char *name)
{
	size_t k = strlen(name);

	if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
		return NULL;
	line += k + 1;
	n -= k + 1;
	while (n > 0 && (*line == ' ' || *line == '\t')) {
		line++;
		n--;
	}
	while (n > 0 && strchr(" \t\r\n", line[n - 1]))
		n--;
	return xstrndup(line, n);
}

static void
http_header_int(const char *v, int64_t *out)
{
	int64_t x;

	if (v != NULL && parse_int64(v, 0, INT64_MAX, &x) == 0)
		*out = x;
}

static size_t
http_on_header(char *p, size_t size, size_t n, void *arg)
{
	struct github_response *r = arg;
	size_t len = size * n;
	char *v;

	/* A new status line (after a 100 Continue) starts a fresh set. */
	if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		free(r->link);
		r->link = NULL;
		r->ratelimit_remaining = -1;
		r->ratelimit_reset = 0;
		r->retry_after = -1;
		return len;
	}
	if ((v = http_header_value(p, len, "x-ratelimit-remaining")) != NULL)
		http_header_int(v, &r->ratelimit_remaining);
	else if ((v = http_header_value(p, len, "x-ratelimit-reset")) != NULL)
		http_header_int(v, &r->ratelimit_reset);
	else if ((v = http_header_value(p, len, "retry-after")) != NULL)
		http_header_int(v, &r->retry_after);
	else if ((v = http_header_value(p, len, "link")) != NULL) {
		free(r->link);
		r->link = v;
		v = NULL;
	}
	free(v);
	return len;
}

int
github_http_request(const char *method, const char *url, const char *bearer,
                    const char *json_body, long timeout_seconds,
                    struct github_response *r)
{
	struct curl_slist *hdrs = NULL;
	struct buf auth = BUF_INIT;
	CURLcode cc;
	int rc = -1;

	if (http_handle == NULL) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
			fatal("curl_init", "what=curl_global_init");
		http_handle = curl_easy_init();
		if (http_handle == NULL)
			fatal("out_of_memory", "what=curl_easy_init");
	}
	curl_easy_reset(http_handle);
	hdrs = curl_slist_append(hdrs, "Accept: application/vnd.github+json");
	hdrs = curl_slist_append(hdrs, "X-GitHub-Api-Version: 2022-11-28");
	if (json_body != NULL)
		hdrs = curl_slist_append(hdrs,
		                         "Content-Type: application/json");
	if (bearer != NULL) {
		buf_printf(&auth, "Authorization: Bearer %s", bearer);
		hdrs = curl_slist_append(hdrs, buf_str(&auth));
	}
	if (hdrs == NULL)
		fatal("out_of_memory", "what=curl_slist_append");
	curl_easy_setopt(http_handle, CURLOPT_URL, url);
	curl_easy_setopt(http_handle, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(http_handle, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(http_handle, CURLOPT_USERAGENT, "ephemera");
	curl_easy_setopt(http_handle, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(http_handle, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(http_handle, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(http_handle, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(http_handle, CURLOPT_TIMEOUT, timeout_seconds);
	curl_easy_setopt(http_handle, CURLOPT_WRITEFUNCTION, http_on_body);
	curl_easy_setopt(http_handle, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(http_handle, CURLOPT_HEADERFUNCTION, http_on_header);
	curl_easy_setopt(http_handle, CURLOPT_HEADERDATA, r);
	if (json_body != NULL) {
		curl_easy_setopt(http_handle, CURLOPT_POSTFIELDS, json_body);
		curl_easy_setopt(http_handle, CURLOPT_POSTFIELDSIZE,
		                 (long)strlen(json_body));
	}
	cc = curl_easy_perform(http_handle);
	if (cc != CURLE_OK) {
		/* Query strings carry no secrets; the token is in a header. */
		log_warn("github_http", "method=%s url=%s error=%s", method,
		         log_q(url), log_q(curl_easy_strerror(cc)));
		r->status = 0;
		r->transport_error = curl_easy_strerror(cc);
		goto out;
	}
	curl_easy_getinfo(http_handle, CURLINFO_RESPONSE_CODE, &r->status);
	rc = 0;
out:
	/* The header list held the token; wipe our copy of it too. */
	curl_slist_free_all(hdrs);
	if (auth.data != NULL)
		explicit_bzero(auth.data, auth.len);
	buf_free(&auth);
	return rc;
}
