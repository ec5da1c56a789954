/*
 * signature.c - X-Hub-Signature-256: "sha256=" and the lower-case hex
 * HMAC-SHA256 of the exact body bytes, keyed with the webhook secret.
 * Pure: (secret, body, header) → verdict. The comparison is constant-time
 * over the decoded digest so that timing reveals nothing about how many
 * leading bytes of a forged signature were right.
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#include "app.h"

#define SIG_PREFIX "sha256="
#define SIG_PREFIX_LEN (sizeof(SIG_PREFIX) - 1)

static void
hmac_sha256(const char *secret, struct slice body, unsigned char out[32])
{
	unsigned len = 32;
	static const unsigned char empty = 0;

	if (HMAC(EVP_sha256(), secret, (int)strlen(secret),
	         body.len ? (const unsigned char *)body.ptr : &empty, body.len,
	         out, &len) == NULL)
		fatal("hmac", "reason=HMAC_failed");
}

void
signature_hex(const char *secret, struct slice body, char out[static 65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[32];
	size_t i;

	hmac_sha256(secret, body, md);
	for (i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

enum signature_result
signature_check(const char *secret, struct slice body, const char *header)
{
	unsigned char want[32], got[32];
	size_t i;

	if (header == NULL || header[0] == '\0')
		return SIGNATURE_MISSING;
	if (strncmp(header, SIG_PREFIX, SIG_PREFIX_LEN) != 0 ||
	    strlen(header) != SIG_PREFIX_LEN + 64)
		return SIGNATURE_MALFORMED;
	for (i = 0; i < 32; i++) {
		int hi = parse_hex_digit(header[SIG_PREFIX_LEN + 2 * i]);
		int lo = parse_hex_digit(header[SIG_PREFIX_LEN + 2 * i + 1]);

		if (hi < 0 || lo < 0)
			return SIGNATURE_MALFORMED;
		got[i] = (unsigned char)(hi << 4 | lo);
	}
	hmac_sha256(secret, body, want);
	return CRYPTO_memcmp(want, got, sizeof(want)) == 0 ? SIGNATURE_OK
	                                                   : SIGNATURE_WRONG;
}

const char *
signature_reason(enum signature_result r)
{
	switch (r) {
	case SIGNATURE_OK:
		return "ok";
	case SIGNATURE_MISSING:
		return "missing X-Hub-Signature-256";
	case SIGNATURE_MALFORMED:
		return "malformed X-Hub-Signature-256";
	case SIGNATURE_WRONG:
		return "wrong signature";
	}
	return "bad signature";
}
