/*
 * github_jwt.c - the GitHub App's JSON Web Token: RS256 over the App's
 * private key with OpenSSL's EVP interface. Pure: the time is passed in,
 * nothing is read from disk or the network here, so the tests verify the
 * claims and the signature with the public key directly.
 */
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#include "../workers.h"

/* RFC 4648 section 5, without padding (RFC 7515 section 2). */
void
github_base64url(const unsigned char *p, size_t n, struct buf *out)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
	                          "qrstuvwxyz0123456789-_";
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 |
		             p[i + 2];
		char q[4] = {abc[v >> 18], abc[(v >> 12) & 63],
		             abc[(v >> 6) & 63], abc[v & 63]};

		buf_append(out, q, 4);
	}
	if (n - i == 1) {
		unsigned v = (unsigned)p[i] << 16;
		char q[2] = {abc[v >> 18], abc[(v >> 12) & 63]};

		buf_append(out, q, 2);
	} else if (n - i == 2) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
		char q[3] = {abc[v >> 18], abc[(v >> 12) & 63],
		             abc[(v >> 6) & 63]};

		buf_append(out, q, 3);
	}
}

/* OpenSSL keeps an error queue; log its first entry once, then clear it. */
static void
jwt_openssl_error(const char *what)
{
	char msg[256];

	ERR_error_string_n(ERR_get_error(), msg, sizeof(msg));
	ERR_clear_error();
	log_error("github_jwt", "step=%s error=%s", what, log_q(msg));
}

int
github_jwt_sign(const char *pem, size_t pem_len, int64_t app_id, time_t now,
                struct buf *out)
{
	static const char header[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
	struct buf claims = BUF_INIT, input = BUF_INIT;
	EVP_PKEY *key = NULL;
	EVP_MD_CTX *md = NULL;
	unsigned char *sig = NULL;
	size_t siglen = 0;
	BIO *bio = NULL;
	int rc = -1;

	ERR_clear_error();
	if (pem_len > INT32_MAX) {
		log_error("github_jwt", "step=key error=\"key too large\"");
		goto out;
	}
	bio = BIO_new_mem_buf(pem, (int)pem_len);
	if (bio == NULL)
		fatal("out_of_memory", "what=BIO_new_mem_buf");
	key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	if (key == NULL) {
		jwt_openssl_error("read_key");
		goto out;
	}
	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
		log_error("github_jwt",
		          "step=read_key error=\"not an RSA key\"");
		goto out;
	}
	/* iss as a string: RFC 7519 makes it a StringOrURI. */
	buf_printf(&claims, "{\"iat\":%lld,\"exp\":%lld,\"iss\":\"%lld\"}",
	           (long long)now - 60, (long long)now + 540,
	           (long long)app_id);
	github_base64url((const unsigned char *)header, strlen(header), &input);
	buf_putc(&input, '.');
	github_base64url((const unsigned char *)claims.data, claims.len,
	                 &input);
	md = EVP_MD_CTX_new();
	if (md == NULL)
		fatal("out_of_memory", "what=EVP_MD_CTX_new");
	if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(md, NULL, &siglen, (const unsigned char *)input.data,
	                   input.len) != 1) {
		jwt_openssl_error("sign_init");
		goto out;
	}
	sig = xmalloc(siglen);
	if (EVP_DigestSign(md, sig, &siglen, (const unsigned char *)input.data,
	                   input.len) != 1) {
		jwt_openssl_error("sign");
		goto out;
	}
	buf_reset(out);
	buf_append(out, input.data, input.len);
	buf_putc(out, '.');
	github_base64url(sig, siglen, out);
	rc = out->failed ? -1 : 0;
out:
	free(sig);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(key);
	BIO_free(bio);
	buf_free(&claims);
	buf_free(&input);
	return rc;
}
