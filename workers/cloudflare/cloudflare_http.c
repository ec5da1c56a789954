/*
 * cloudflare_http.c - the libcurl adapter for the Cloudflare API and the
 * ready check through the edge: the only Cloudflare file that includes
 * curl.h. One request, no retry and no sleep; cloudflare_reply.c decides
 * what the answer means. No redirect is followed (it would carry the
 * Authorization header elsewhere, and an Access login redirect is an
 * answer the ready check wants to see).
 */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cloudflare.h"

static CURL *cf_handle;
/* The last answer redirected to Access's login. */
static bool to_login;

static size_t
http_on_body(char *p, size_t size, size_t n, void *arg)
{
	if (buf_append(arg, p, size * n) == -1)
		return 0;
	return size * n;
}

static size_t
http_on_header(char *p, size_t size, size_t n, void *arg)
{
	int64_t *retry_after = arg;
	size_t len = size * n;
	char v[32];
	size_t k = 0;

	if (len > 12 && strncasecmp(p, "retry-after:", 12) == 0) {
		const char *s = p + 12;

		while (s < p + len && (*s == ' ' || *s == '\t'))
			s++;
		while (s < p + len && k < sizeof(v) - 1 && *s >= '0' &&
		       *s <= '9')
			v[k++] = *s++;
		v[k] = '\0';
		if (k > 0 && parse_int64(v, 0, 86400, retry_after) != 0)
			*retry_after = -1;
	}
	return len;
}

/* https://<team>.cloudflareaccess.com/... */
static bool
login_url(const char *url)
{
	const char *host, *end;
	size_t n;

	if (url == NULL || strncmp(url, "https://", 8) != 0)
		return false;
	host = url + 8;
	end = host + strcspn(host, "/?#:");
	n = (size_t)(end - host);
	return n > 21 && memcmp(end - 21, ".cloudflareaccess.com", 21) == 0;
}

bool
cf_http_redirected_to_login(void)
{
	return to_login;
}

int
cf_http_request(const char *method, const char *url, const char *bearer,
                const char *json_body, const char *host_header,
                const char *const *extra_headers, long timeout_seconds,
                long *status, struct buf *body, int64_t *retry_after)
{
	struct curl_slist *hdrs = NULL;
	struct buf auth = BUF_INIT, host = BUF_INIT;
	CURLcode cc;
	int rc = -1;

	if (cf_handle == NULL) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
			fatal("curl_init", "what=curl_global_init");
		cf_handle = curl_easy_init();
		if (cf_handle == NULL)
			fatal("out_of_memory", "what=curl_easy_init");
	}
	curl_easy_reset(cf_handle);
	*status = 0;
	*retry_after = -1;
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	if (json_body != NULL)
		hdrs = curl_slist_append(hdrs,
		                         "Content-Type: application/json");
	if (bearer != NULL) {
		buf_printf(&auth, "Authorization: Bearer %s", bearer);
		hdrs = curl_slist_append(hdrs, buf_str(&auth));
	}
	if (host_header != NULL) {
		buf_printf(&host, "Host: %s", host_header);
		hdrs = curl_slist_append(hdrs, buf_str(&host));
	}
	for (; extra_headers != NULL && *extra_headers != NULL; extra_headers++)
		hdrs = curl_slist_append(hdrs, *extra_headers);
	if (hdrs == NULL)
		fatal("out_of_memory", "what=curl_slist_append");
	curl_easy_setopt(cf_handle, CURLOPT_URL, url);
	curl_easy_setopt(cf_handle, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(cf_handle, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(cf_handle, CURLOPT_USERAGENT, "ephemera");
	curl_easy_setopt(cf_handle, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(cf_handle, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(cf_handle, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(cf_handle, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(cf_handle, CURLOPT_TIMEOUT, timeout_seconds);
	curl_easy_setopt(cf_handle, CURLOPT_WRITEFUNCTION, http_on_body);
	curl_easy_setopt(cf_handle, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(cf_handle, CURLOPT_HEADERFUNCTION, http_on_header);
	curl_easy_setopt(cf_handle, CURLOPT_HEADERDATA, retry_after);
	if (json_body != NULL) {
		curl_easy_setopt(cf_handle, CURLOPT_POSTFIELDS, json_body);
		curl_easy_setopt(cf_handle, CURLOPT_POSTFIELDSIZE,
		                 (long)strlen(json_body));
	}
	cc = curl_easy_perform(cf_handle);
	if (cc != CURLE_OK) {
		/* URLs carry ids and names, never the token. */
		log_warn("cf_http", "method=%s url=%s error=%s", method,
		         log_q(url), log_q(curl_easy_strerror(cc)));
		buf_reset(body);
		buf_puts(body, curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(cf_handle, CURLINFO_RESPONSE_CODE, status);
	rc = 0;
out:
	to_login = false;
	if (rc == 0 && *status >= 300 && *status < 400) {
		char *to = NULL;

		curl_easy_getinfo(cf_handle, CURLINFO_REDIRECT_URL, &to);
		to_login = login_url(to);
	}
	curl_slist_free_all(hdrs);
	if (auth.data != NULL)
		explicit_bzero(auth.data, auth.len);
	buf_free(&auth);
	buf_free(&host);
	return rc;
}
