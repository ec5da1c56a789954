/*
 * manifest.c - the pure half of `ephemera github-app create`: the App
 * manifest (exactly the permissions and events the README lists), the
 * one-button page that posts it to GitHub, the redirect's query, and the
 * answer of POST /app-manifests/{code}/conversions. No sockets, no files:
 * github_app.c does those.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* README, "Create the App": repository permissions, nothing more. */
static const struct {
	const char *name, *access;
} manifest_permissions[] = {
        {"contents", "read"},     {"pull_requests", "write"},
        {"deployments", "write"}, {"statuses", "write"},
        {"issues", "write"},      {"metadata", "read"},
};

/* Installation events reach every App without a subscription. */
static const char *const manifest_events[] = {"pull_request", "issue_comment"};

void
manifest_render(const struct manifest_opts *o, struct buf *out)
{
	/* json-c: `m` owns every object added to it; one put frees all. */
	json_object *m = json_object_new_object();
	json_object *hook = json_object_new_object();
	json_object *perms = json_object_new_object();
	json_object *events = json_object_new_array();
	size_t i;

	json_object_object_add(m, "name", json_object_new_string(o->name));
	json_object_object_add(m, "url", json_object_new_string(o->url));
	json_object_object_add(hook, "url",
	                       json_object_new_string(o->webhook_url));
	json_object_object_add(hook, "active", json_object_new_boolean(1));
	json_object_object_add(m, "hook_attributes", hook);
	json_object_object_add(m, "redirect_url",
	                       json_object_new_string(o->redirect_url));
	json_object_object_add(m, "public", json_object_new_boolean(0));
	for (i = 0; i < NELEM(manifest_permissions); i++)
		json_object_object_add(
		        perms, manifest_permissions[i].name,
		        json_object_new_string(manifest_permissions[i].access));
	json_object_object_add(m, "default_permissions", perms);
	for (i = 0; i < NELEM(manifest_events); i++)
		json_object_array_add(
		        events, json_object_new_string(manifest_events[i]));
	json_object_object_add(m, "default_events", events);
	buf_puts(out, json_object_to_json_string_ext(
	                      m, JSON_C_TO_STRING_PLAIN |
	                                 JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(m);
}

void
manifest_page(const char *action, const char *manifest, struct buf *out)
{
	buf_puts(out, "<!doctype html>\n<html lang=\"en\"><head>"
	              "<meta charset=\"utf-8\">"
	              "<title>Ephemera: create the GitHub App</title></head>\n"
	              "<body><h1>Create Ephemera's GitHub App</h1>\n"
	              "<p>GitHub will ask you to confirm the name; the App "
	              "gets only the permissions Ephemera uses.</p>\n"
	              "<form method=\"post\" action=\"");
	buf_append_html(out, action, strlen(action));
	buf_puts(out, "\">\n<input type=\"hidden\" name=\"manifest\" value=\"");
	buf_append_html(out, manifest, strlen(manifest));
	buf_puts(out, "\">\n<button type=\"submit\">Create GitHub App</button>"
	              "\n</form></body></html>\n");
}

int
manifest_query_get(const char *query, const char *key, struct buf *out)
{
	size_t klen = strlen(key);
	const char *p = query;

	while (p != NULL && *p != '\0') {
		const char *end = strchr(p, '&');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len > klen && strncmp(p, key, klen) == 0 &&
		    p[klen] == '=') {
			size_t i;

			buf_reset(out);
			for (i = klen + 1; i < len; i++) {
				int hi, lo;

				if (p[i] == '+') {
					buf_putc(out, ' ');
				} else if (p[i] == '%' && i + 2 < len &&
				           (hi = parse_hex_digit(p[i + 1])) >=
				                   0 &&
				           (lo = parse_hex_digit(p[i + 2])) >=
				                   0) {
					buf_putc(out, (char)(hi * 16 + lo));
					i += 2;
				} else {
					buf_putc(out, p[i]);
				}
			}
			return out->failed ? -1 : 0;
		}
		p = end ? end + 1 : NULL;
	}
	return -1;
}

bool
manifest_code_valid(const char *code)
{
	size_t n = strlen(code), i;

	if (n == 0 || n > 128)
		return false;
	for (i = 0; i < n; i++) {
		char c = code[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
	}
	return true;
}

static const char *
json_str(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

void
app_credentials_free(struct app_credentials *c)
{
	if (c == NULL)
		return;
	free(c->slug);
	free(c->html_url);
	if (c->pem != NULL)
		explicit_bzero(c->pem, strlen(c->pem));
	free(c->pem);
	if (c->webhook_secret != NULL)
		explicit_bzero(c->webhook_secret, strlen(c->webhook_secret));
	free(c->webhook_secret);
	memset(c, 0, sizeof(*c));
}

int
manifest_conversion_parse(const char *text, size_t len,
                          struct app_credentials *c, struct buf *err)
{
	json_tokener *tok = json_tokener_new();
	json_object *o = json_tokener_parse_ex(tok, text, (int)len), *id;
	const char *pem, *secret, *slug, *html;
	int rc = -1;

	memset(c, 0, sizeof(*c));
	if (o == NULL || !json_object_is_type(o, json_type_object)) {
		buf_puts(err, "GitHub's answer is not a JSON object");
		goto out;
	}
	if (!json_object_object_get_ex(o, "id", &id) ||
	    !json_object_is_type(id, json_type_int) ||
	    json_object_get_int64(id) <= 0) {
		buf_puts(err, "GitHub's answer has no App id");
		goto out;
	}
	pem = json_str(o, "pem");
	secret = json_str(o, "webhook_secret");
	slug = json_str(o, "slug");
	html = json_str(o, "html_url");
	if (pem == NULL || strncmp(pem, "-----BEGIN ", 11) != 0) {
		buf_puts(err, "GitHub's answer has no private key (pem)");
		goto out;
	}
	if (secret == NULL || secret[0] == '\0') {
		buf_puts(err, "GitHub's answer has no webhook secret");
		goto out;
	}
	c->id = json_object_get_int64(id);
	c->pem = xstrdup(pem);
	c->webhook_secret = xstrdup(secret);
	c->slug = xstrdup(slug ? slug : "");
	c->html_url = xstrdup(html ? html : "");
	rc = 0;
out:
	/* The object holds the key: dropped here, its copies wiped later. */
	json_object_put(o);
	json_tokener_free(tok);
	return rc;
}
