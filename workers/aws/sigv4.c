/*
 * sigv4.c - AWS Signature Version 4 as a pure function: request parts,
 * credentials, region, service and time in; the headers to add out. Our own
 * code rather than CURLOPT_AWS_SIGV4, whose canonicalisation has varied
 * between curl releases (curl #9717, #11794) and so between distributions.
 *
 * The canonical form follows AWS's "Create a canonical request": the path
 * normalised per RFC 3986 (except for S3) and each byte outside the
 * unreserved set percent-encoded; query parameters decoded, re-encoded and
 * sorted by name then value; header names lowercased, values trimmed with
 * inner runs of whitespace collapsed, repeated names joined with commas in
 * the order they came, sorted by name.
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aws.h"

#define EMPTY_SHA256                                                           \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

void
sigv4_output_init(struct sigv4_output *o)
{
	size_t i;

	memset(o, 0, sizeof(*o));
	buf_init(&o->canonical, 1024 * 1024);
	buf_init(&o->string_to_sign, 4096);
	buf_init(&o->authorization, 4096);
	for (i = 0; i < SIGV4_MAX_OUT; i++)
		buf_init(&o->headers[i], 8192);
}

void
sigv4_output_free(struct sigv4_output *o)
{
	size_t i;

	if (o == NULL)
		return;
	buf_free(&o->canonical);
	buf_free(&o->string_to_sign);
	buf_free(&o->authorization);
	for (i = 0; i < SIGV4_MAX_OUT; i++)
		buf_free(&o->headers[i]);
}

void
sigv4_sha256_hex(const void *data, size_t len, char out[static 65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[32];
	unsigned int mdlen = 0;
	size_t i;

	if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen != 32)
		fatal("sha256", "reason=EVP_Digest_failed");
	for (i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

static bool
is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	       c == '~';
}

void
sigv4_uri_encode(struct buf *b, const char *s, size_t len, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (is_unreserved(c) || (keep_slash && c == '/')) {
			buf_putc(b, (char)c);
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};

			buf_append(b, e, 3);
		}
	}
}

/* Decodes valid %XX escapes; anything else (a lone '%') stays as is. */
static void
uri_decode(struct buf *b, const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		int hi, lo;

		if (s[i] == '%' && i + 2 < len &&
		    (hi = parse_hex_digit(s[i + 1])) >= 0 &&
		    (lo = parse_hex_digit(s[i + 2])) >= 0) {
			buf_putc(b, (char)(hi << 4 | lo));
			i += 2;
		} else {
			buf_putc(b, s[i]);
		}
	}
}

/*
 * RFC 3986 remove_dot_segments plus collapsing empty segments ("//"), then
 * encoded once. The path as sent is already encoded, so a '%' in it is
 * encoded again: AWS signs every service but S3 over the doubly encoded
 * path.
 */
static void
path_canonical(struct buf *out, const char *path, bool keep)
{
	const char **seg = NULL;
	size_t *seglen = NULL;
	size_t n = 0, cap = 0, plen = strlen(path), i;
	const char *p = path;
	bool trailing;

	if (plen == 0) {
		buf_putc(out, '/');
		return;
	}
	if (keep) {
		sigv4_uri_encode(out, path, plen, true);
		return;
	}
	trailing = path[plen - 1] == '/';
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);

		if (len == 0 || (len == 1 && p[0] == '.')) {
			/* nothing: an empty or "." segment */
		} else if (len == 2 && p[0] == '.' && p[1] == '.') {
			if (n > 0)
				n--;
		} else {
			if (n == cap) {
				cap = cap ? cap * 2 : 8;
				seg = xrealloc(seg, cap * sizeof(*seg));
				seglen =
				        xrealloc(seglen, cap * sizeof(*seglen));
			}
			seg[n] = p;
			seglen[n++] = len;
		}
		p += len + (slash != NULL);
	}
	/* "/a/.." and "/a/." name a directory: keep the slash. */
	if (plen >= 2 && path[plen - 1] == '.' &&
	    (path[plen - 2] == '/' ||
	     (path[plen - 2] == '.' && plen >= 3 && path[plen - 3] == '/')))
		trailing = true;
	for (i = 0; i < n; i++) {
		buf_putc(out, '/');
		sigv4_uri_encode(out, seg[i], seglen[i], false);
	}
	if (n == 0 || trailing)
		buf_putc(out, '/');
	free(seg);
	free(seglen);
}

struct param {
	struct buf key;
	struct buf value;
};

static int
param_cmp(const void *a, const void *b)
{
	const struct param *x = a, *y = b;
	int c = strcmp(buf_str(&x->key), buf_str(&y->key));

	return c ? c : strcmp(buf_str(&x->value), buf_str(&y->value));
}

static void
param_encode(struct buf *out, const char *s, size_t len)
{
	struct buf raw = BUF_INIT;

	uri_decode(&raw, s, len);
	sigv4_uri_encode(out, raw.data ? raw.data : "", raw.len, false);
	buf_free(&raw);
}

static void
query_canonical(struct buf *out, const char *query)
{
	struct param *ps = NULL;
	size_t n = 0, i;
	const char *p = query ? query : "";

	while (*p) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		size_t klen = eq ? (size_t)(eq - p) : len;

		if (len > 0) {
			ps = xrealloc(ps, (n + 1) * sizeof(*ps));
			buf_init(&ps[n].key, BUF_MAX_DEFAULT);
			buf_init(&ps[n].value, BUF_MAX_DEFAULT);
			param_encode(&ps[n].key, p, klen);
			if (eq)
				param_encode(&ps[n].value, eq + 1,
				             len - klen - 1);
			n++;
		}
		p += len + (amp != NULL);
	}
	if (n > 1)
		qsort(ps, n, sizeof(*ps), param_cmp);
	for (i = 0; i < n; i++) {
		if (i > 0)
			buf_putc(out, '&');
		buf_printf(out, "%s=%s", buf_str(&ps[i].key),
		           buf_str(&ps[i].value));
		buf_free(&ps[i].key);
		buf_free(&ps[i].value);
	}
	free(ps);
}

struct chead {
	char *name; /* lowercase */
	struct buf value;
	size_t order; /* first appearance, to keep the sort stable */
};

static int
chead_cmp(const void *a, const void *b)
{
	const struct chead *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Trimmed, with each run of whitespace (folded lines too) one space. */
static void
value_canonical(struct buf *out, const char *v)
{
	bool space = false, any = false;

	for (; *v; v++) {
		if (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n') {
			space = true;
			continue;
		}
		if (space && any)
			buf_putc(out, ' ');
		space = false;
		any = true;
		buf_putc(out, *v);
	}
}

static char *
name_lower(const char *name)
{
	struct buf b = BUF_INIT;
	const char *e = name + strlen(name);

	while (*name == ' ' || *name == '\t')
		name++;
	while (e > name && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	for (; name < e; name++)
		buf_putc(&b, (char)((*name >= 'A' && *name <= 'Z')
		                            ? *name - 'A' + 'a'
		                            : *name));
	return b.data ? buf_detach(&b) : xstrdup("");
}

/* Adds one header, joining a repeated name's values with commas. */
static void
heads_add(struct chead **hs, size_t *n, const char *name, const char *value)
{
	char *lname = name_lower(name);
	size_t i;

	for (i = 0; i < *n; i++) {
		if (strcmp((*hs)[i].name, lname) == 0) {
			buf_putc(&(*hs)[i].value, ',');
			value_canonical(&(*hs)[i].value, value);
			free(lname);
			return;
		}
	}
	*hs = xrealloc(*hs, (*n + 1) * sizeof(**hs));
	(*hs)[*n].name = lname;
	buf_init(&(*hs)[*n].value, BUF_MAX_DEFAULT);
	buf_puts(&(*hs)[*n].value, "");
	value_canonical(&(*hs)[*n].value, value);
	(*hs)[*n].order = *n;
	(*n)++;
}

static const char *
header_find(const struct sigv4_request *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->nheaders; i++)
		if (strcasecmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	return NULL;
}

static void
hmac(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
	unsigned int len = 0;

	if (HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg,
	         strlen(msg), out, &len) == NULL ||
	    len != 32)
		fatal("hmac", "reason=HMAC_failed");
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" secret, date), region), svc), ...) */
static void
signing_key(const char *secret, const char *date, const char *region,
            const char *service, unsigned char key[32])
{
	struct buf k0 = BUF_INIT;
	unsigned char a[32], b[32];

	buf_printf(&k0, "AWS4%s", secret);
	hmac(k0.data, k0.len, date, a);
	hmac(a, 32, region, b);
	hmac(b, 32, service, a);
	hmac(a, 32, "aws4_request", key);
	OPENSSL_cleanse(k0.data, k0.len);
	OPENSSL_cleanse(a, sizeof(a));
	OPENSSL_cleanse(b, sizeof(b));
	buf_free(&k0);
}

static bool
amz_date_valid(const char *d)
{
	size_t i;

	if (d == NULL || strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z')
		return false;
	for (i = 0; i < 15; i++)
		if (i != 8 && (d[i] < '0' || d[i] > '9'))
			return false;
	return true;
}

int
sigv4_sign(const struct sigv4_request *r, const struct aws_credentials *cr,
           const char *region, const char *service, time_t now,
           struct sigv4_output *o)
{
	struct chead *hs = NULL;
	size_t nh = 0, i;
	const char *date_hdr = header_find(r, "x-amz-date");
	const char *token = cr->session_token;
	bool add_token;
	char date[9], hash[65];
	unsigned char key[32], sig[32];
	struct buf signed_names = BUF_INIT;
	struct tm tm;
	int rc = -1;

	if (date_hdr != NULL) {
		if (!amz_date_valid(date_hdr)) {
			log_error("sigv4_sign", "reason=bad_x_amz_date");
			goto out;
		}
		memcpy(o->amz_date, date_hdr, 17);
	} else {
		if (gmtime_r(&now, &tm) == NULL ||
		    strftime(o->amz_date, sizeof(o->amz_date), "%Y%m%dT%H%M%SZ",
		             &tm) != 16) {
			log_error("sigv4_sign", "reason=bad_time");
			goto out;
		}
	}
	memcpy(date, o->amz_date, 8);
	date[8] = '\0';
	add_token = token && token[0] &&
	            header_find(r, "x-amz-security-token") == NULL;

	for (i = 0; i < r->nheaders; i++)
		heads_add(&hs, &nh, r->headers[i].name, r->headers[i].value);
	if (date_hdr == NULL)
		heads_add(&hs, &nh, "x-amz-date", o->amz_date);
	if (add_token && !r->token_unsigned)
		heads_add(&hs, &nh, "x-amz-security-token", token);
	qsort(hs, nh, sizeof(*hs), chead_cmp);

	buf_printf(&o->canonical, "%s\n", r->method);
	path_canonical(&o->canonical, r->path, r->keep_path);
	buf_putc(&o->canonical, '\n');
	query_canonical(&o->canonical, r->query);
	buf_putc(&o->canonical, '\n');
	for (i = 0; i < nh; i++) {
		buf_printf(&o->canonical, "%s:%s\n", hs[i].name,
		           buf_str(&hs[i].value));
		buf_printf(&signed_names, "%s%s", i ? ";" : "", hs[i].name);
	}
	buf_printf(&o->canonical, "\n%s\n%s", buf_str(&signed_names),
	           r->payload_sha256 ? r->payload_sha256 : EMPTY_SHA256);

	sigv4_sha256_hex(o->canonical.data, o->canonical.len, hash);
	buf_printf(&o->string_to_sign,
	           "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s",
	           o->amz_date, date, region, service, hash);

	signing_key(cr->secret_access_key, date, region, service, key);
	hmac(key, 32, buf_str(&o->string_to_sign), sig);
	OPENSSL_cleanse(key, sizeof(key));
	buf_printf(&o->authorization,
	           "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, "
	           "SignedHeaders=%s, Signature=",
	           cr->access_key_id, date, region, service,
	           buf_str(&signed_names));
	for (i = 0; i < 32; i++)
		buf_printf(&o->authorization, "%02x", sig[i]);

	o->nheaders = 0;
	if (date_hdr == NULL)
		buf_printf(&o->headers[o->nheaders++], "X-Amz-Date: %s",
		           o->amz_date);
	if (add_token)
		buf_printf(&o->headers[o->nheaders++],
		           "X-Amz-Security-Token: %s", token);
	buf_printf(&o->headers[o->nheaders++], "Authorization: %s",
	           buf_str(&o->authorization));
	rc = 0;
	for (i = 0; i < o->nheaders; i++)
		if (o->headers[i].failed)
			rc = -1;
	if (o->canonical.failed || o->authorization.failed) {
		log_error("sigv4_sign", "reason=request_too_large");
		rc = -1;
	}
out:
	for (i = 0; i < nh; i++) {
		free(hs[i].name);
		buf_free(&hs[i].value);
	}
	free(hs);
	buf_free(&signed_names);
	return rc;
}
