/*
 * cloudflare_ingress.c - names, hostnames and the tunnel's ingress, pure.
 *
 * Hostnames are one label directly under the zone: Universal SSL and an
 * Access wildcard app cover *.<zone> and no deeper. cloudflared matches
 * an ingress `path` as an unanchored regex (so "/api" would also match
 * "/v1/api/x"), hence every path rule is anchored here. Service URLs
 * carry no path: cloudflared cannot rewrite one, so a service behind
 * /<name>/ sees the full path.
 */
#include <string.h>

#include "cloudflare.h"

bool
cf_label_valid(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

bool
cf_zone_valid(const char *z)
{
	const char *dot;
	char label[64];
	size_t n;

	if (strlen(z) > 253 || z[0] == '\0')
		return false;
	for (;;) {
		dot = strchr(z, '.');
		n = dot ? (size_t)(dot - z) : strlen(z);
		if (n == 0 || n > 63)
			return false;
		memcpy(label, z, n);
		label[n] = '\0';
		if (!cf_label_valid(label))
			return false;
		if (dot == NULL)
			return true;
		z = dot + 1;
	}
}

int
cf_hostname(const char *zone, const char *label, struct buf *out,
            struct buf *err)
{
	if (!cf_label_valid(label)) {
		buf_printf(
		        err,
		        "hostname label \"%s\" is not one DNS label of at "
		        "most 63 lowercase letters, digits and '-' (previews "
		        "sit directly under %s: Universal SSL and Access "
		        "wildcards cover one level only)",
		        log_q(label), zone);
		return -1;
	}
	buf_printf(out, "%s.%s", label, zone);
	return 0;
}

void
cf_tunnel_name(const char *instance, const char *slug, struct buf *out)
{
	buf_printf(out, "%s-%s", instance, slug);
}

void
cf_comment(const char *instance, const char *slug, struct buf *out)
{
	buf_printf(out, "ephemera:%s:%s", instance, slug);
}

bool
cf_comment_slug(const char *comment, const char *instance, char slug[static 64])
{
	size_t k = strlen(instance), n;

	if (comment == NULL || strncmp(comment, "ephemera:", 9) != 0)
		return false;
	comment += 9;
	if (strncmp(comment, instance, k) != 0 || comment[k] != ':')
		return false;
	comment += k + 1;
	n = strlen(comment);
	if (n == 0 || n > 63 || !slug_valid(comment, n))
		return false;
	memcpy(slug, comment, n + 1);
	return true;
}

void
cf_path_anchor(const char *service, struct buf *out)
{
	const char *p;

	buf_puts(out, "^/");
	for (p = service; *p; p++) {
		/* Compose names are [a-zA-Z0-9._-]; only '.' is special. */
		if (strchr(".\\+*?()[]{}|^$", *p))
			buf_putc(out, '\\');
		buf_putc(out, *p);
	}
	buf_puts(out, "(/|$)");
}

static void
rule_put(struct buf *b, const char *host, const char *path, const char *name,
         int port)
{
	buf_puts(b, "{\"hostname\":");
	buf_append_json_string(b, host, strlen(host));
	if (path != NULL) {
		buf_puts(b, ",\"path\":");
		buf_append_json_string(b, path, strlen(path));
	}
	buf_printf(b, ",\"service\":\"http://%s:%d\"},", name, port);
}

int
cf_ingress_render(const char *zone, const char *slug,
                  const struct cf_service *s, size_t n, struct buf *out,
                  struct buf *err)
{
	struct buf host = BUF_INIT, h = BUF_INIT, label = BUF_INIT,
	           path = BUF_INIT;
	const struct cf_service *primary = NULL;
	size_t i;
	int rc = -1;

	if (cf_hostname(zone, slug, &host, err) == -1)
		goto out;
	buf_puts(out, "{\"config\":{\"ingress\":[");
	for (i = 0; i < n; i++) {
		if (!compose_name_valid(s[i].name) || s[i].port <= 0 ||
		    s[i].port > 65535) {
			buf_printf(err, "service \"%s\" cannot be routed",
			           log_q(s[i].name));
			goto out;
		}
		if (s[i].primary && primary == NULL)
			primary = &s[i];
		if (!s[i].own_host)
			continue;
		buf_reset(&label);
		buf_reset(&h);
		buf_printf(&label, "%s-%s", slug, s[i].name);
		if (cf_hostname(zone, buf_str(&label), &h, err) == -1)
			goto out;
		rule_put(out, buf_str(&h), NULL, s[i].name, s[i].port);
	}
	for (i = 0; i < n; i++) {
		if (&s[i] == primary)
			continue;
		buf_reset(&path);
		cf_path_anchor(s[i].name, &path);
		rule_put(out, buf_str(&host), buf_str(&path), s[i].name,
		         s[i].port);
	}
	if (primary != NULL)
		rule_put(out, buf_str(&host), NULL, primary->name,
		         primary->port);
	buf_puts(out, "{\"service\":\"http_status:404\"}]}}");
	rc = out->failed ? -1 : 0;
out:
	buf_free(&host);
	buf_free(&h);
	buf_free(&label);
	buf_free(&path);
	return rc;
}
