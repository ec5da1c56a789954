/*
 * aws.h - the workers' AWS adapter (workers/aws/), sectioned by file like
 * workers.h. Kept as its own header while the workers' tree is re-laid out;
 * it is the AWS part of the workers' private header.
 *
 * Pure core: sigv4.c (signing) and the parsers take buffers and the time
 * and touch no network. Only aws_http.c includes curl, only the XML parser
 * includes libxml2. Credentials are secrets: they never reach a log line,
 * argv or the database; _free functions wipe them.
 */
#ifndef EPHEMERA_AWS_H
#define EPHEMERA_AWS_H

#include "../../lib/ephemera.h"

/* ---- credentials.c: the credentials chain ------------------------------ */

struct aws_credentials {
	char *access_key_id;
	char *secret_access_key;
	char *session_token; /* NULL: long-term keys */
	time_t expiration;   /* 0: does not expire */
	const char *source;  /* "file", "env", "imds": for logs, not secret */
};

/* Wipes and frees the strings; the struct itself is the caller's. */
void aws_credentials_clear(struct aws_credentials *);

/* ---- sigv4.c: AWS Signature Version 4, a pure function -----------------
 *
 * sigv4_sign(request, credentials, region, service, time) fills `out` with
 * the headers the caller adds to the request (X-Amz-Date when the request
 * has none, X-Amz-Security-Token for session credentials, Authorization),
 * plus the canonical request and string to sign for tests. Nothing here
 * reads a clock or the network.
 */
struct sigv4_header {
	const char *name;
	const char *value;
};

struct sigv4_request {
	const char *method;
	const char *path;  /* as sent, without the query: "/", "/a%20b" */
	const char *query; /* as sent, after '?'; "" or NULL: none */
	const struct sigv4_header *headers; /* to sign; must include host */
	size_t nheaders;
	const char *payload_sha256; /* lowercase hex; NULL: empty body */
	bool keep_path;      /* true: S3-style, no RFC 3986 normalisation */
	bool token_unsigned; /* the token header is added after signing */
};

#define SIGV4_MAX_OUT 3

struct sigv4_output {
	char amz_date[17]; /* YYYYMMDDTHHMMSSZ */
	struct buf canonical;
	struct buf string_to_sign;
	struct buf authorization; /* the header's value */
	/* "Name: value" lines to add to the request, in this order. */
	struct buf headers[SIGV4_MAX_OUT];
	size_t nheaders;
};

void sigv4_output_init(struct sigv4_output *);
void sigv4_output_free(struct sigv4_output *);
int sigv4_sign(const struct sigv4_request *, const struct aws_credentials *,
               const char *region, const char *service, time_t now,
               struct sigv4_output *);
/* Lowercase hex SHA-256 of `len` bytes into out (65 bytes). */
void sigv4_sha256_hex(const void *, size_t len, char out[static 65]);
/* Appends `s` percent-encoded: all but A-Za-z0-9-._~ (and '/' if keep). */
void sigv4_uri_encode(struct buf *, const char *s, size_t len, bool keep_slash);

#endif
