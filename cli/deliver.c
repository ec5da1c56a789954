/*
 * deliver.c - `ephemera deliver EVENT FILE`: posts a webhook delivery to
 * this installation's own /webhook, signed with the configured secret the
 * way GitHub signs (X-Hub-Signature-256: HMAC-SHA256 of the exact body).
 * For the demo, for replaying a saved delivery, and for smoke tests. The
 * secret is read from its file by the config loader, never from argv.
 */
#include <curl/curl.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int
file_slurp(const char *path, struct buf *b)
{
	char chunk[8192];
	size_t n;
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");

	if (f == NULL) {
		fprintf(stderr, "ephemera: cannot read %s\n", path);
		return -1;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(b, chunk, n);
	if (f != stdin)
		fclose(f);
	return b->failed ? -1 : 0;
}

static size_t
collect(char *p, size_t size, size_t n, void *arg)
{
	buf_append(arg, p, size * n);
	return size * n;
}

int
cmd_deliver(struct config *cfg, const char *event, const char *path)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char mac[32], id[16];
	unsigned int maclen = 0;
	char sig[7 + 64 + 1] = "sha256=", guid[33];
	struct buf body = BUF_INIT, url = BUF_INIT, h = BUF_INIT,
	           answer = BUF_INIT;
	struct curl_slist *headers = NULL;
	long status = 0;
	CURL *c = NULL;
	int i, rc = 1;

	if (cfg->github_webhook_secret == NULL) {
		fprintf(stderr, "ephemera: no webhook secret configured\n");
		return 1;
	}
	if (file_slurp(path, &body) == -1)
		goto out;
	HMAC(EVP_sha256(), cfg->github_webhook_secret,
	     (int)strlen(cfg->github_webhook_secret),
	     (const unsigned char *)buf_str(&body), body.len, mac, &maclen);
	for (i = 0; i < 32; i++) {
		sig[7 + 2 * i] = hex[mac[i] >> 4];
		sig[8 + 2 * i] = hex[mac[i] & 15];
	}
	sig[71] = '\0';
	RAND_bytes(id, sizeof(id));
	for (i = 0; i < 16; i++) {
		guid[2 * i] = hex[id[i] >> 4];
		guid[2 * i + 1] = hex[id[i] & 15];
	}
	guid[32] = '\0';
	buf_printf(&url, "http://127.0.0.1:%lld/webhook",
	           (long long)cfg->http_port);
	headers = curl_slist_append(headers, "Content-Type: application/json");
	headers = curl_slist_append(
	        headers, "User-Agent: GitHub-Hookshot/ephemera-deliver");
	buf_printf(&h, "X-GitHub-Event: %s", event);
	headers = curl_slist_append(headers, buf_str(&h));
	buf_reset(&h);
	buf_printf(&h, "X-GitHub-Delivery: %s", guid);
	headers = curl_slist_append(headers, buf_str(&h));
	buf_reset(&h);
	buf_printf(&h, "X-Hub-Signature-256: %s", sig);
	headers = curl_slist_append(headers, buf_str(&h));
	c = curl_easy_init();
	curl_easy_setopt(c, CURLOPT_URL, buf_str(&url));
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, buf_str(&body));
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body.len);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &answer);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	if (curl_easy_perform(c) != CURLE_OK) {
		fprintf(stderr, "ephemera: cannot reach %s\n", buf_str(&url));
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	printf("%ld %s", status, buf_str(&answer));
	rc = status >= 200 && status < 300 ? 0 : 1;
out:
	curl_slist_free_all(headers);
	if (c)
		curl_easy_cleanup(c);
	buf_free(&body);
	buf_free(&url);
	buf_free(&h);
	buf_free(&answer);
	return rc;
}
