/*
 * request.c - FastCGI params as plain data, and the response helpers.
 * Everything here is pure over the `envp` array libfcgi hands us, so unit
 * tests build a request from a string array.
 */
#include <ctype.h>
#include <string.h>

#include "app.h"

const char *
request_param(const struct request *req, const char *name)
{
	size_t n = strlen(name);
	char **e;

	for (e = req->envp; e && *e; e++)
		if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

/* "X-GitHub-Event" is passed by nginx as HTTP_X_GITHUB_EVENT. */
const char *
request_header(const struct request *req, const char *name)
{
	char key[128] = "HTTP_";
	size_t i, o = 5;

	for (i = 0; name[i] && o < sizeof(key) - 1; i++)
		key[o++] = name[i] == '-'
		                   ? '_'
		                   : (char)toupper((unsigned char)name[i]);
	key[o] = '\0';
	if (strcmp(name, "Content-Type") == 0)
		return req->content_type;
	return request_param(req, key);
}

/* Percent-decodes [s, s+n), '+' as space (form encoding). */
char *
url_decode(const char *s, size_t n)
{
	struct buf b = BUF_INIT;
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n &&
		    parse_hex_digit(s[i + 1]) >= 0 &&
		    parse_hex_digit(s[i + 2]) >= 0) {
			buf_putc(&b, (char)(parse_hex_digit(s[i + 1]) * 16 +
			                    parse_hex_digit(s[i + 2])));
			i += 2;
		} else {
			buf_putc(&b, s[i] == '+' ? ' ' : s[i]);
		}
	}
	return buf_detach(&b);
}

char *
request_query_arg(const struct request *req, const char *name)
{
	const char *p = req->query;
	size_t n = strlen(name);

	while (p && *p) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);

		if (len > n && strncmp(p, name, n) == 0 && p[n] == '=')
			return url_decode(p + n + 1, len - n - 1);
		if (len == n && strncmp(p, name, n) == 0)
			return xstrdup("");
		p = amp ? amp + 1 : NULL;
	}
	return NULL;
}

void
response_init(struct response *res)
{
	res->status = 200;
	res->content_type = "text/plain; charset=utf-8";
	buf_init(&res->headers, 64 * 1024);
	buf_init(&res->body, 64u * 1024 * 1024);
}

void
response_free(struct response *res)
{
	buf_free(&res->headers);
	buf_free(&res->body);
}

void
response_text(struct response *res, int status, const char *line)
{
	res->status = status;
	res->content_type = "text/plain; charset=utf-8";
	buf_reset(&res->body);
	buf_puts(&res->body, line);
	buf_putc(&res->body, '\n');
}

const char *
status_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 202:
		return "Accepted";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 413:
		return "Payload Too Large";
	case 415:
		return "Unsupported Media Type";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 503:
		return "Service Unavailable";
	default:
		return "Status";
	}
}
