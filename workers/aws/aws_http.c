/*
 * aws_http.c - the libcurl adapter for AWS: builds the endpoint, asks
 * credentials.c for keys (refreshed well before they expire), signs with
 * sigv4.c and sends. It does not interpret bodies; ec2.c and ssm.c do,
 * and aws_error_classify sorts their error codes into what the caller
 * does next.
 *
 * One easy handle per client keeps the connection alive between calls.
 * Redirects are never followed (the Authorization header must not travel),
 * and no header or body is ever logged: they carry the session token and,
 * for Parameter Store, secret values.
 */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aws.h"

#define AWS_BODY_MAX (8u * 1024 * 1024)

static void
curl_once(void)
{
	static bool done;

	if (!done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
			fatal("curl_init", "what=curl_global_init");
		done = true;
	}
}

void
aws_client_init(struct aws_client *c, const struct config *cfg)
{
	memset(c, 0, sizeof(*c));
	c->cfg = cfg;
	c->timeout = cfg->aws_timeout;
}

void
aws_client_free(struct aws_client *c)
{
	if (c == NULL)
		return;
	aws_credentials_clear(&c->creds);
	if (c->curl)
		curl_easy_cleanup(c->curl);
	c->curl = NULL;
}

void
aws_endpoint(const struct config *cfg, const char *service, struct buf *out)
{
	const char *u = cfg->aws_endpoint_url;

	if (u && u[0]) {
		buf_puts(out, u);
		if (out->len == 0 || out->data[out->len - 1] != '/')
			buf_putc(out, '/');
		return;
	}
	buf_printf(out, "https://%s.%s.amazonaws.com/", service,
	           cfg->aws_region);
}

/* "https://host:port/path" -> host:port and /path (pure). */
static int
url_split(const char *url, struct buf *host, struct buf *path)
{
	const char *p = strstr(url, "://"), *slash;

	if (p == NULL)
		return -1;
	p += 3;
	slash = strchr(p, '/');
	buf_append(host, p, slash ? (size_t)(slash - p) : strlen(p));
	buf_puts(path, slash ? slash : "/");
	return host->len > 0 ? 0 : -1;
}

static size_t
on_body(char *p, size_t size, size_t n, void *arg)
{
	if (buf_append(arg, p, size * n) == -1)
		return 0;
	return size * n;
}

static CURL *
handle_get(void **slot)
{
	curl_once();
	if (*slot == NULL) {
		*slot = curl_easy_init();
		if (*slot == NULL)
			fatal("curl_init", "what=curl_easy_init");
	}
	curl_easy_reset(*slot);
	return *slot;
}

int
http_plain(const char *method, const char *url, const char *const *headers,
           long timeout_ms, long *status, struct buf *body)
{
	static void *h;
	struct curl_slist *hl = NULL;
	CURL *c = handle_get(&h);
	CURLcode rc;

	for (; headers && *headers; headers++)
		hl = curl_slist_append(hl, *headers);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "PUT") == 0) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
	rc = curl_easy_perform(c);
	curl_slist_free_all(hl);
	if (rc != CURLE_OK)
		return -1;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	return 0;
}

static int
creds_ready(struct aws_client *c, struct aws_error *err)
{
	time_t now = time(NULL);

	if (c->creds.access_key_id && !credentials_stale(&c->creds, now))
		return 0;
	aws_credentials_clear(&c->creds);
	if (credentials_resolve(c->cfg, &c->creds) == 0)
		return 0;
	err->kind = AWS_NO_CREDENTIALS;
	snprintf(err->code, sizeof(err->code), "NoCredentials");
	snprintf(err->message, sizeof(err->message),
	         "no AWS credentials: set aws.credentials_file, AWS_* or run "
	         "with an instance role");
	return -1;
}

int
aws_post(struct aws_client *cl, const char *service, const char *content_type,
         const char *target, const char *body, long *status, struct buf *resp,
         struct aws_error *err)
{
	struct buf url = BUF_INIT, host = BUF_INIT, path = BUF_INIT,
	           ct = BUF_INIT, tg = BUF_INIT;
	struct sigv4_header hs[3];
	struct sigv4_request r = {0};
	struct sigv4_output o;
	struct curl_slist *hl = NULL;
	char hash[65];
	size_t i, n = 0;
	CURL *c;
	CURLcode cc;
	int rc = -1;

	sigv4_output_init(&o);
	*status = 0;
	if (creds_ready(cl, err) == -1)
		goto out;
	aws_endpoint(cl->cfg, service, &url);
	if (url_split(buf_str(&url), &host, &path) == -1) {
		err->kind = AWS_INVALID;
		snprintf(err->message, sizeof(err->message),
		         "bad endpoint URL");
		goto out;
	}
	hs[n].name = "Host";
	hs[n++].value = buf_str(&host);
	hs[n].name = "Content-Type";
	hs[n++].value = content_type;
	if (target) {
		hs[n].name = "X-Amz-Target";
		hs[n++].value = target;
	}
	sigv4_sha256_hex(body, strlen(body), hash);
	r.method = "POST";
	r.path = buf_str(&path);
	r.headers = hs;
	r.nheaders = n;
	r.payload_sha256 = hash;
	if (sigv4_sign(&r, &cl->creds, cl->cfg->aws_region, service, time(NULL),
	               &o) == -1) {
		err->kind = AWS_INVALID;
		goto out;
	}
	buf_printf(&tg, "Host: %s", buf_str(&host));
	hl = curl_slist_append(hl, buf_str(&tg));
	buf_reset(&tg);
	buf_printf(&ct, "Content-Type: %s", content_type);
	hl = curl_slist_append(hl, buf_str(&ct));
	if (target) {
		buf_printf(&tg, "X-Amz-Target: %s", target);
		hl = curl_slist_append(hl, buf_str(&tg));
	}
	for (i = 0; i < o.nheaders; i++)
		hl = curl_slist_append(hl, buf_str(&o.headers[i]));
	/* curl would add "Expect: 100-continue" for big bodies: unsigned. */
	hl = curl_slist_append(hl, "Expect:");
	c = handle_get(&cl->curl);
	curl_easy_setopt(c, CURLOPT_URL, buf_str(&url));
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, cl->timeout);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
	cl->calls++;
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		err->kind = AWS_TRANSPORT;
		snprintf(err->code, sizeof(err->code), "Transport");
		snprintf(err->message, sizeof(err->message), "%s",
		         curl_easy_strerror(cc));
		log_warn("aws_http", "service=%s error=%s", service,
		         log_q(curl_easy_strerror(cc)));
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	rc = 0;
out:
	curl_slist_free_all(hl);
	sigv4_output_free(&o);
	buf_free(&url);
	buf_free(&host);
	buf_free(&path);
	buf_free(&ct);
	buf_free(&tg);
	return rc;
}

enum aws_error_kind
aws_error_classify(long status, const char *code)
{
	static const struct {
		const char *code;
		enum aws_error_kind kind;
	} codes[] = {
	        {"RequestLimitExceeded", AWS_THROTTLED},
	        {"Throttling", AWS_THROTTLED},
	        {"ThrottlingException", AWS_THROTTLED},
	        {"TooManyRequestsException", AWS_THROTTLED},
	        {"RequestThrottled", AWS_THROTTLED},
	        {"ServiceUnavailable", AWS_THROTTLED},
	        {"InternalError", AWS_THROTTLED},
	        {"InternalServerError", AWS_THROTTLED},
	        {"InsufficientInstanceCapacity", AWS_CAPACITY},
	        {"InsufficientCapacity", AWS_CAPACITY},
	        {"Unsupported", AWS_CAPACITY}, /* type not offered in this AZ */
	        {"InvalidInstanceID.NotFound", AWS_NOT_FOUND},
	        {"ParameterNotFound", AWS_NOT_FOUND},
	        {"InvocationDoesNotExist", AWS_NOT_FOUND},
	        {"UnauthorizedOperation", AWS_DENIED},
	        {"AccessDenied", AWS_DENIED},
	        {"AccessDeniedException", AWS_DENIED},
	        {"AuthFailure", AWS_DENIED},
	        {"InvalidClientTokenId", AWS_DENIED},
	        {"SignatureDoesNotMatch", AWS_DENIED},
	        {"IncompleteSignature", AWS_DENIED},
	};
	size_t i;

	if (status >= 200 && status < 300)
		return AWS_OK;
	for (i = 0; code && i < NELEM(codes); i++)
		if (strcmp(code, codes[i].code) == 0)
			return codes[i].kind;
	/* JSON protocols may send "prefix#Code". */
	if (code && strchr(code, '#'))
		return aws_error_classify(status, strrchr(code, '#') + 1);
	if (status >= 500 || status == 429)
		return AWS_THROTTLED;
	if (status == 401 || status == 403)
		return AWS_DENIED;
	return AWS_INVALID;
}

const char *
aws_error_kind_name(enum aws_error_kind k)
{
	static const char *const names[] = {
	        "ok",     "throttled", "capacity",  "not_found",
	        "denied", "invalid",   "transport", "no_credentials"};

	return (size_t)k < NELEM(names) ? names[k] : "?";
}
