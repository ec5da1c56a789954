/*
 * cloudflare_exposure.c - one environment on Cloudflare: a remotely
 * managed tunnel <instance>-<slug>, its ingress, a proxied CNAME
 * <slug>.<zone> -> <tunnel-id>.cfargotunnel.com marked with a comment
 * naming the environment, and the Access applications that let chosen
 * paths bypass login.
 *
 * Nothing here trusts the database to know what exists: every step finds
 * before it creates, so a crash between a Cloudflare call and the write
 * that would have recorded it is adopted by the rerun. Only live tunnels
 * are adopted (a name lookup also returns deleted ones unless
 * is_deleted=false, and the answer is checked again here).
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "cloudflare.h"

#define PERM_TUNNEL_READ "Account: Cloudflare Tunnel Read"
#define PERM_TUNNEL_EDIT "Account: Cloudflare Tunnel Edit"
#define PERM_DNS_READ "Zone: DNS Read"
#define PERM_DNS_EDIT "Zone: DNS Edit"
#define PERM_ACCESS_APPS "Account: Access: Apps and Policies Edit"
/* A DNS record just created may take a moment to enter lists. */
#define CF_LIST_LAG_MS 3000
/* A stopped connector's connections linger briefly at the edge. */
#define CF_BUSY_RETRY_MS 5000

void
cf_env_free(struct cf_env *e)
{
	if (e == NULL)
		return;
	if (e->token != NULL) {
		explicit_bzero(e->token, strlen(e->token));
		free(e->token);
	}
	e->token = NULL;
}

static const char *
jstr(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static bool
jnull(struct json_object *o, const char *key)
{
	struct json_object *v;

	return !json_object_object_get_ex(o, key, &v) ||
	       json_object_is_type(v, json_type_null);
}

static void
id_copy(char dst[40], const char *src)
{
	size_t n = src ? strlen(src) : 0;

	if (n >= 40)
		n = 0; /* not an id we make sense of */
	memcpy(dst, src ? src : "", n);
	dst[n] = '\0';
}

/*
 * Walks every page of a list; `each` sees every item and returns -1 to
 * stop with an error, 1 to stop early, 0 to go on.
 */
typedef int (*cf_each_fn)(struct json_object *item, void *arg);

static int
list_all(struct cf_client *c, const char *path, const char *step,
         const char *perm, cf_each_fn each, void *arg)
{
	struct cf_reply r;
	struct buf p = BUF_INIT;
	enum cf_verdict v;
	int64_t page = 1;
	int rc = -1, stop = 0;
	size_t i;

	cf_reply_init(&r);
	for (;;) {
		buf_reset(&p);
		buf_printf(&p, "%s%spage=%lld&per_page=50", path,
		           strchr(path, '?') ? "&" : "?", (long long)page);
		v = cf_call(c, "GET", buf_str(&p), NULL, &r);
		if (v != CF_OK) {
			cf_stop(c, &r, v, step, perm);
			goto out;
		}
		if (!json_object_is_type(r.result, json_type_array)) {
			buf_reset(&r.message);
			buf_puts(&r.message, "a list answer without a list");
			cf_stop(c, &r, CF_FAIL, step, perm);
			goto out;
		}
		for (i = 0; i < json_object_array_length(r.result) && !stop;
		     i++) {
			stop = each(json_object_array_get_idx(r.result, i),
			            arg);
			if (stop == -1)
				goto out;
		}
		if (stop || !cf_reply_more(&r))
			break;
		page++;
	}
	rc = 0;
out:
	cf_reply_free(&r);
	buf_free(&p);
	return rc;
}

/* ---- tunnels ----------------------------------------------------------- */

struct tunnel_find {
	const char *name;
	char *id;
	bool connected;
};

static int
tunnel_match(struct json_object *t, void *arg)
{
	struct tunnel_find *f = arg;
	const char *name = jstr(t, "name"), *id = jstr(t, "id");
	struct json_object *conns;

	/* Never adopt a deleted tunnel, whatever the filter did. */
	if (name == NULL || id == NULL || strcmp(name, f->name) != 0 ||
	    !jnull(t, "deleted_at"))
		return 0;
	id_copy(f->id, id);
	f->connected = json_object_object_get_ex(t, "connections", &conns) &&
	               json_object_is_type(conns, json_type_array) &&
	               json_object_array_length(conns) > 0;
	return 1;
}

/* 1 found (id set), 0 not, -1 error. */
static int
tunnel_find(struct cf_client *c, const char *name, char id[40])
{
	struct buf p = BUF_INIT;
	struct tunnel_find f = {name, id, false};
	int rc;

	id[0] = '\0';
	buf_printf(&p, "/accounts/%s/cfd_tunnel?name=%s&is_deleted=false",
	           c->cfg->cf_account_id, name);
	rc = list_all(c, buf_str(&p), "find the tunnel", PERM_TUNNEL_READ,
	              tunnel_match, &f);
	buf_free(&p);
	return rc == -1 ? -1 : id[0] != '\0';
}

static int
tunnel_token_get(struct cf_client *c, const char *id, struct cf_env *out)
{
	struct cf_reply r;
	struct buf p = BUF_INIT;
	enum cf_verdict v;
	int rc = -1;

	cf_reply_init(&r);
	buf_printf(&p, "/accounts/%s/cfd_tunnel/%s/token",
	           c->cfg->cf_account_id, id);
	v = cf_call(c, "GET", buf_str(&p), NULL, &r);
	if (v != CF_OK || !json_object_is_type(r.result, json_type_string)) {
		cf_stop(c, &r, v == CF_OK ? CF_FAIL : v,
		        "read the tunnel's token", PERM_TUNNEL_READ);
		goto out;
	}
	out->token = xstrdup(json_object_get_string(r.result));
	rc = 0;
out:
	cf_reply_free(&r);
	buf_free(&p);
	return rc;
}

static int
tunnel_ensure(struct cf_client *c, const char *slug, struct cf_env *out)
{
	struct buf name = BUF_INIT, p = BUF_INIT, body = BUF_INIT;
	struct cf_reply r;
	enum cf_verdict v;
	int rc = -1, found;
	const char *tok;

	cf_reply_init(&r);
	cf_tunnel_name(local_instance(c->cfg), slug, &name);
	found = tunnel_find(c, buf_str(&name), out->tunnel_id);
	if (found == -1)
		goto out;
	if (found == 0) {
		buf_printf(&p, "/accounts/%s/cfd_tunnel",
		           c->cfg->cf_account_id);
		/* config_src cloudflare: our ingress drives the connector. */
		buf_printf(&body,
		           "{\"name\":\"%s\",\"config_src\":"
		           "\"cloudflare\"}",
		           buf_str(&name));
		v = cf_call(c, "POST", buf_str(&p), buf_str(&body), &r);
		if (v == CF_CONFLICT) {
			/* Made by a run that crashed before recording it. */
			found = tunnel_find(c, buf_str(&name), out->tunnel_id);
			if (found != 1) {
				if (found == 0)
					cf_stop(c, &r, CF_RETRY,
					        "create the tunnel", NULL);
				goto out;
			}
		} else if (v != CF_OK) {
			cf_stop(c, &r, v, "create the tunnel",
			        PERM_TUNNEL_EDIT);
			goto out;
		} else {
			id_copy(out->tunnel_id, jstr(r.result, "id"));
			tok = jstr(r.result, "token");
			if (out->tunnel_id[0] == '\0') {
				cf_stop(c, &r, CF_FAIL, "create the tunnel",
				        NULL);
				goto out;
			}
			log_info("cf_tunnel_created", "slug=%s tunnel=%s", slug,
			         out->tunnel_id);
			if (tok != NULL) {
				out->token = xstrdup(tok);
				rc = 0;
				goto out;
			}
		}
	}
	rc = out->token_known ? 0 : tunnel_token_get(c, out->tunnel_id, out);
out:
	cf_reply_free(&r);
	buf_free(&name);
	buf_free(&p);
	buf_free(&body);
	return rc;
}

static int
tunnel_configure(struct cf_client *c, const char *slug, const char *id,
                 const struct cf_service *s, size_t n)
{
	struct buf body = BUF_INIT, p = BUF_INIT;
	struct cf_reply r;
	enum cf_verdict v;
	int rc = -1;

	cf_reply_init(&r);
	if (cf_ingress_render(c->cfg->cf_zone, slug, s, n, &body, &c->error) ==
	    -1) {
		c->stop = CF_INVALID;
		log_warn("cf_stop", "step=ingress error=%s",
		         log_q(buf_str(&c->error)));
		goto out;
	}
	buf_printf(&p, "/accounts/%s/cfd_tunnel/%s/configurations",
	           c->cfg->cf_account_id, id);
	/* PUT replaces the ingress in place: a push never recreates. */
	v = cf_call(c, "PUT", buf_str(&p), buf_str(&body), &r);
	if (v != CF_OK) {
		cf_stop(c, &r, v, "put the tunnel's ingress", PERM_TUNNEL_EDIT);
		goto out;
	}
	rc = 0;
out:
	cf_reply_free(&r);
	buf_free(&body);
	buf_free(&p);
	return rc;
}

/* ---- DNS records ------------------------------------------------------- */

struct record_find {
	const char *name;
	char id[40];
	char *content;
	char *comment;
	int n;
};

static int
record_match(struct json_object *o, void *arg)
{
	struct record_find *f = arg;
	const char *name = jstr(o, "name");

	if (name == NULL || strcmp(name, f->name) != 0)
		return 0;
	f->n++;
	id_copy(f->id, jstr(o, "id"));
	free(f->content);
	free(f->comment);
	f->content = xstrdup(jstr(o, "content") ? jstr(o, "content") : "");
	f->comment = xstrdup(jstr(o, "comment") ? jstr(o, "comment") : "");
	return 1;
}

static void
record_find_free(struct record_find *f)
{
	free(f->content);
	free(f->comment);
	f->content = f->comment = NULL;
}

/* Any record (of any type) at `host`: 1 found, 0 not, -1 error. */
static int
record_find(struct cf_client *c, const char *host, struct record_find *f)
{
	struct buf p = BUF_INIT;
	int rc;

	record_find_free(f);
	memset(f, 0, sizeof(*f));
	f->name = host;
	buf_printf(&p, "/zones/%s/dns_records?name=%s", c->cfg->cf_zone_id,
	           host);
	rc = list_all(c, buf_str(&p), "find the DNS record", PERM_DNS_READ,
	              record_match, f);
	buf_free(&p);
	return rc == -1 ? -1 : f->n > 0;
}

static int
record_delete(struct cf_client *c, const char *id)
{
	struct buf p = BUF_INIT;
	struct cf_reply r;
	enum cf_verdict v;
	int rc = 0;

	cf_reply_init(&r);
	buf_printf(&p, "/zones/%s/dns_records/%s", c->cfg->cf_zone_id, id);
	v = cf_call(c, "DELETE", buf_str(&p), NULL, &r);
	if (v != CF_OK && v != CF_NOT_FOUND)
		rc = cf_stop(c, &r, v, "delete the DNS record", PERM_DNS_EDIT);
	cf_reply_free(&r);
	buf_free(&p);
	return rc;
}

static int
record_ensure(struct cf_client *c, const char *slug, const char *host,
              const char *tunnel_id, char rid[40])
{
	struct buf target = BUF_INIT, comment = BUF_INIT, body = BUF_INIT,
	           p = BUF_INIT;
	struct record_find f = {0};
	struct cf_reply r;
	enum cf_verdict v;
	int rc = -1, found, tries;

	cf_reply_init(&r);
	buf_printf(&target, "%s.cfargotunnel.com", tunnel_id);
	cf_comment(local_instance(c->cfg), slug, &comment);
	for (tries = 0; tries < 2; tries++) {
		found = record_find(c, host, &f);
		if (found == -1)
			goto out;
		if (found && strcmp(f.comment, buf_str(&comment)) != 0) {
			r.status = -1; /* our finding, not an answer */
			buf_reset(&r.message);
			buf_printf(&r.message,
			           "%s already has a DNS record that is not "
			           "this environment's (another installation "
			           "or a manual record); Ephemera leaves it "
			           "alone",
			           host);
			cf_stop(c, &r, CF_FAIL, "create the DNS record", NULL);
			goto out;
		}
		if (found && strcmp(f.content, buf_str(&target)) == 0) {
			id_copy(rid, f.id);
			rc = 0;
			goto out;
		}
		/* Ours, but for a tunnel that is gone: point it anew. */
		if (found && record_delete(c, f.id) == -1)
			goto out;
		buf_reset(&body);
		buf_puts(&body, "{\"type\":\"CNAME\",\"proxied\":true,"
		                "\"ttl\":1,\"name\":");
		buf_append_json_string(&body, host, strlen(host));
		buf_printf(&body, ",\"content\":\"%s\",\"comment\":",
		           buf_str(&target));
		buf_append_json_string(&body, comment.data, comment.len);
		buf_puts(&body, "}");
		buf_reset(&p);
		buf_printf(&p, "/zones/%s/dns_records", c->cfg->cf_zone_id);
		v = cf_call(c, "POST", buf_str(&p), buf_str(&body), &r);
		if (v == CF_OK) {
			id_copy(rid, jstr(r.result, "id"));
			rc = 0;
			goto out;
		}
		if (v != CF_CONFLICT) {
			cf_stop(c, &r, v, "create the DNS record",
			        PERM_DNS_EDIT);
			goto out;
		}
		/* Made by an earlier run; look once more (lists lag). */
	}
	c->retry_ms = CF_LIST_LAG_MS;
	cf_stop(c, &r, CF_CONFLICT, "create the DNS record", NULL);
out:
	record_find_free(&f);
	cf_reply_free(&r);
	buf_free(&target);
	buf_free(&comment);
	buf_free(&body);
	buf_free(&p);
	return rc;
}

struct owned {
	char **slugs;
	size_t n, cap;
	const char *instance;
	time_t before; /* only objects created before this; 0: all */
};

/* Older than the grace period (an unreadable time counts as young). */
static bool
owned_old(const struct owned *o, struct json_object *item, const char *key)
{
	time_t t;

	if (o == NULL || o->before == 0)
		return true;
	return parse_iso8601(jstr(item, key), &t) == 0 && t < o->before;
}

static void
owned_add(struct owned *o, const char *slug)
{
	size_t i;

	for (i = 0; i < o->n; i++)
		if (strcmp(o->slugs[i], slug) == 0)
			return;
	if (o->n == o->cap) {
		o->cap = o->cap ? o->cap * 2 : 8;
		o->slugs = xrealloc(o->slugs, o->cap * sizeof(*o->slugs));
	}
	o->slugs[o->n++] = xstrdup(slug);
}

struct records_owned {
	const char *comment; /* NULL: any of this instance */
	const char *instance;
	char (*ids)[40];
	size_t n, cap;
	struct owned *owned; /* list_owned: collects the slugs */
	struct removal *rm;  /* unroute: each record's name, found */
	bool rm_failed;      /* recording one failed (the list stopped) */
};

static int
record_owned(struct json_object *o, void *arg)
{
	struct records_owned *ro = arg;
	const char *comment = jstr(o, "comment"), *name;
	char slug[64];

	if (!cf_comment_slug(comment, ro->instance, slug))
		return 0;
	if (ro->comment != NULL && strcmp(comment, ro->comment) != 0)
		return 0;
	if (ro->n == ro->cap) {
		ro->cap = ro->cap ? ro->cap * 2 : 8;
		ro->ids = xrealloc(ro->ids, ro->cap * sizeof(*ro->ids));
	}
	id_copy(ro->ids[ro->n++], jstr(o, "id"));
	name = jstr(o, "name");
	if (ro->rm != NULL && name != NULL &&
	    removal_found(ro->rm, "dns_record", name, strlen(name)) == -1) {
		ro->rm_failed = true;
		return -1;
	}
	if (ro->owned != NULL && owned_old(ro->owned, o, "created_on"))
		owned_add(ro->owned, slug);
	return 0;
}

static int
records_of(struct cf_client *c, const char *comment, struct records_owned *ro)
{
	struct buf p = BUF_INIT, prefix = BUF_INIT;
	int rc;

	ro->instance = local_instance(c->cfg);
	ro->comment = comment;
	buf_printf(&prefix, "ephemera:%s:", ro->instance);
	buf_printf(&p, "/zones/%s/dns_records?comment.startswith=%s",
	           c->cfg->cf_zone_id, comment ? comment : buf_str(&prefix));
	rc = list_all(c, buf_str(&p), "list the DNS records", PERM_DNS_READ,
	              record_owned, ro);
	buf_free(&p);
	buf_free(&prefix);
	return rc;
}

/* ---- Access ------------------------------------------------------------ */

struct owned;
static bool owned_old(const struct owned *, struct json_object *, const char *);

struct apps_of {
	const struct owned *owned; /* list_owned's grace; NULL: all */
	const char *prefix;        /* "<instance>-<slug> " or "<instance>-" */
	char (*ids)[40];
	char **names;
	size_t n, cap;
};

static int
app_match(struct json_object *o, void *arg)
{
	struct apps_of *a = arg;
	const char *name = jstr(o, "name");

	if (name == NULL || strncmp(name, a->prefix, strlen(a->prefix)) != 0)
		return 0;
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 8;
		a->ids = xrealloc(a->ids, a->cap * sizeof(*a->ids));
		a->names = xrealloc(a->names, a->cap * sizeof(*a->names));
	}
	if (!owned_old(a->owned, o, "created_at"))
		return 0;
	id_copy(a->ids[a->n], jstr(o, "id"));
	a->names[a->n++] = xstrdup(name);
	return 0;
}

static void
apps_free(struct apps_of *a)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		free(a->names[i]);
	free(a->names);
	free(a->ids);
	memset(a, 0, sizeof(*a));
}

static int
apps_list(struct cf_client *c, const char *prefix, struct apps_of *a)
{
	struct buf p = BUF_INIT;
	int rc;

	a->prefix = prefix;
	buf_printf(&p, "/accounts/%s/access/apps", c->cfg->cf_account_id);
	rc = list_all(c, buf_str(&p), "list Access applications",
	              PERM_ACCESS_APPS, app_match, a);
	buf_free(&p);
	return rc;
}

static int
app_delete(struct cf_client *c, const char *id)
{
	struct buf p = BUF_INIT;
	struct cf_reply r;
	enum cf_verdict v;
	int rc = 0;

	cf_reply_init(&r);
	buf_printf(&p, "/accounts/%s/access/apps/%s", c->cfg->cf_account_id,
	           id);
	v = cf_call(c, "DELETE", buf_str(&p), NULL, &r);
	if (v != CF_OK && v != CF_NOT_FOUND)
		rc = cf_stop(c, &r, v, "delete an Access application",
		             PERM_ACCESS_APPS);
	cf_reply_free(&r);
	buf_free(&p);
	return rc;
}

/* A bypass path such as "/webhooks/" plus a "*": safe characters only. */
static bool
bypass_valid(const char *p)
{
	if (p[0] != '/' || strlen(p) > 200)
		return false;
	for (; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || strchr("/-_.*", *p)))
			return false;
	return true;
}

/*
 * One self-hosted app per bypass path, "<host><path>", with a bypass
 * policy: Access matches the most specific app, so these paths skip the
 * zone-wide login app set up once by the admin.
 */
static int
access_ensure(struct cf_client *c, const char *slug, const char *host,
              const char *const *bypass, size_t nb)
{
	struct buf prefix = BUF_INIT, name = BUF_INIT, body = BUF_INIT,
	           p = BUF_INIT;
	struct apps_of have = {0};
	struct cf_reply r;
	enum cf_verdict v;
	size_t i, j;
	int rc = -1;

	cf_reply_init(&r);
	buf_printf(&prefix, "%s-%s ", local_instance(c->cfg), slug);
	if (apps_list(c, buf_str(&prefix), &have) == -1)
		goto out;
	for (i = 0; i < nb; i++) {
		if (!bypass_valid(bypass[i])) {
			r.status = -1;
			buf_reset(&r.message);
			buf_printf(&r.message,
			           "bypass path \"%s\" is not a "
			           "plain path",
			           log_q(bypass[i]));
			cf_stop(c, &r, CF_INVALID, "set up Access", NULL);
			goto out;
		}
		buf_reset(&name);
		buf_printf(&name, "%sbypass %s", buf_str(&prefix), bypass[i]);
		for (j = 0; j < have.n; j++)
			if (strcmp(have.names[j], buf_str(&name)) == 0)
				break;
		if (j < have.n)
			continue;
		buf_reset(&body);
		buf_puts(&body, "{\"type\":\"self_hosted\",\"name\":");
		buf_append_json_string(&body, name.data, name.len);
		buf_printf(&body, ",\"domain\":\"%s%s\"", host, bypass[i]);
		buf_puts(&body, ",\"session_duration\":\"24h\",\"policies\":"
		                "[{\"name\":\"bypass\",\"decision\":\"bypass\","
		                "\"include\":[{\"everyone\":{}}]}]}");
		buf_reset(&p);
		buf_printf(&p, "/accounts/%s/access/apps",
		           c->cfg->cf_account_id);
		v = cf_call(c, "POST", buf_str(&p), buf_str(&body), &r);
		if (v != CF_OK) {
			cf_stop(c, &r, v, "create an Access bypass app",
			        PERM_ACCESS_APPS);
			goto out;
		}
	}
	/* Paths no longer in the list lose their bypass. */
	for (j = 0; j < have.n; j++) {
		for (i = 0; i < nb; i++) {
			buf_reset(&name);
			buf_printf(&name, "%sbypass %s", buf_str(&prefix),
			           bypass[i]);
			if (strcmp(have.names[j], buf_str(&name)) == 0)
				break;
		}
		if (i == nb && app_delete(c, have.ids[j]) == -1)
			goto out;
	}
	rc = 0;
out:
	apps_free(&have);
	cf_reply_free(&r);
	buf_free(&prefix);
	buf_free(&name);
	buf_free(&body);
	buf_free(&p);
	return rc;
}

/* ---- the operations ---------------------------------------------------- */

int
cloudflare_route(struct cf_client *c, const char *slug,
                 const struct cf_service *s, size_t n,
                 const char *const *bypass, size_t nbypass, struct cf_env *out)
{
	struct buf host = BUF_INIT, label = BUF_INIT, h = BUF_INIT;
	char rid[40];
	size_t i;
	bool known = out->token_known, asleep = out->asleep;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	out->token_known = known;
	out->asleep = asleep;
	if (cf_hostname(c->cfg->cf_zone, slug, &host, &c->error) == -1) {
		c->stop = CF_INVALID;
		goto out;
	}
	if (tunnel_ensure(c, slug, out) == -1 ||
	    tunnel_configure(c, slug, out->tunnel_id, s, n) == -1 ||
	    (!asleep && record_ensure(c, slug, buf_str(&host), out->tunnel_id,
	                              out->record_id) == -1))
		goto out;
	for (i = 0; i < n; i++) {
		if (!s[i].own_host)
			continue;
		buf_reset(&label);
		buf_reset(&h);
		buf_printf(&label, "%s-%s", slug, s[i].name);
		if (cf_hostname(c->cfg->cf_zone, buf_str(&label), &h,
		                &c->error) == -1) {
			c->stop = CF_INVALID;
			goto out;
		}
		if (record_ensure(c, slug, buf_str(&h), out->tunnel_id, rid) ==
		    -1)
			goto out;
	}
	if (c->cfg->cf_access &&
	    access_ensure(c, slug, buf_str(&host), bypass, nbypass) == -1)
		goto out;
	log_info("cf_routed", "slug=%s tunnel=%s record=%s calls=%u", slug,
	         out->tunnel_id, out->record_id, c->calls);
	rc = 0;
out:
	buf_free(&host);
	buf_free(&label);
	buf_free(&h);
	return rc;
}

static int
tunnel_remove(struct cf_client *c, const char *id)
{
	struct buf p = BUF_INIT;
	struct cf_reply r;
	enum cf_verdict v;
	int rc = -1;

	cf_reply_init(&r);
	/* Stale connections of a stopped connector block deletion. */
	buf_printf(&p, "/accounts/%s/cfd_tunnel/%s/connections",
	           c->cfg->cf_account_id, id);
	v = cf_call(c, "DELETE", buf_str(&p), NULL, &r);
	if (v != CF_OK && v != CF_NOT_FOUND) {
		cf_stop(c, &r, v, "clean the tunnel's connections",
		        PERM_TUNNEL_EDIT);
		goto out;
	}
	buf_reset(&p);
	buf_printf(&p, "/accounts/%s/cfd_tunnel/%s", c->cfg->cf_account_id, id);
	v = cf_call(c, "DELETE", buf_str(&p), NULL, &r);
	if (v == CF_BUSY) {
		/* The connector is still up; the compute side stops it. */
		c->retry_ms = CF_BUSY_RETRY_MS;
		cf_stop(c, &r, v, "delete the tunnel", NULL);
		goto out;
	}
	if (v != CF_OK && v != CF_NOT_FOUND) {
		cf_stop(c, &r, v, "delete the tunnel", PERM_TUNNEL_EDIT);
		goto out;
	}
	rc = 0;
out:
	cf_reply_free(&r);
	buf_free(&p);
	return rc;
}

/* A database write of the report failed: the unroute is retried. */
static void
unroute_record_failed(struct cf_client *c, struct cf_reply *r)
{
	r->status = -1;
	buf_reset(&r->message);
	buf_puts(&r->message, "recording what the environment has failed");
	cf_stop(c, r, CF_RETRY, "record the teardown", NULL);
}

int
cloudflare_unroute(struct cf_client *c, const char *slug, struct removal *rm)
{
	struct buf name = BUF_INIT, comment = BUF_INIT, prefix = BUF_INIT;
	struct records_owned ro = {.rm = rm};
	struct apps_of apps = {0};
	struct cf_reply r;
	char tid[40];
	size_t i;
	int rc = -1, found;

	cf_reply_init(&r);
	cf_comment(local_instance(c->cfg), slug, &comment);
	cf_tunnel_name(local_instance(c->cfg), slug, &name);
	/* Deleting a tunnel never deletes its records: they go first. */
	if (records_of(c, buf_str(&comment), &ro) == -1) {
		if (ro.rm_failed)
			unroute_record_failed(c, &r);
		goto out;
	}
	for (i = 0; i < ro.n; i++)
		if (record_delete(c, ro.ids[i]) == -1)
			goto out;
	found = tunnel_find(c, buf_str(&name), tid);
	if (found == 1 &&
	    removal_found(rm, "tunnel", buf_str(&name), name.len) == -1) {
		unroute_record_failed(c, &r);
		goto out;
	}
	if (found == -1 || (found == 1 && tunnel_remove(c, tid) == -1))
		goto out;
	buf_printf(&prefix, "%s-%s ", local_instance(c->cfg), slug);
	if (apps_list(c, buf_str(&prefix), &apps) == -1)
		goto out;
	for (i = 0; i < apps.n; i++) {
		if (removal_found(rm, "access_app", apps.names[i],
		                  strlen(apps.names[i])) == -1) {
			unroute_record_failed(c, &r);
			goto out;
		}
		if (app_delete(c, apps.ids[i]) == -1)
			goto out;
	}
	/* Verify: nothing of the environment is left. */
	ro.n = 0;
	ro.rm = NULL;
	apps_free(&apps);
	if (records_of(c, buf_str(&comment), &ro) == -1 ||
	    (found = tunnel_find(c, buf_str(&name), tid)) == -1 ||
	    apps_list(c, buf_str(&prefix), &apps) == -1)
		goto out;
	if (ro.n > 0 || found || apps.n > 0) {
		r.status = -1;
		buf_reset(&r.message);
		buf_printf(&r.message,
		           "%zu record(s), %zu Access app(s)%s still listed",
		           ro.n, apps.n, found ? " and the tunnel" : "");
		c->retry_ms = CF_LIST_LAG_MS;
		cf_stop(c, &r, CF_RETRY, "verify the environment is gone",
		        NULL);
		goto out;
	}
	if (removal_gone(rm, "dns_record") == -1 ||
	    removal_gone(rm, "tunnel") == -1 ||
	    removal_gone(rm, "access_app") == -1) {
		unroute_record_failed(c, &r);
		goto out;
	}
	log_info("cf_unrouted", "slug=%s calls=%u", slug, c->calls);
	rc = 0;
out:
	free(ro.ids);
	apps_free(&apps);
	cf_reply_free(&r);
	buf_free(&name);
	buf_free(&comment);
	buf_free(&prefix);
	return rc;
}

/*
 * An idle stop (wake on visit): the preview's hostname points at the
 * control plane's tunnel (cloudflare.wake_tunnel_id), whose ingress
 * hands every preview hostname to the control plane's nginx and so to the
 * waking page. The record keeps this environment's comment, so a destroy
 * finds and removes it as ever, and a wake's record_ensure points it back
 * at the preview's tunnel. Records of services with a hostname of their
 * own go (the wake makes them again). The tunnel and its Access apps
 * stay: the connector holds the tunnel until the compute stops, and the
 * wake adopts both.
 */
int
cloudflare_sleep(struct cf_client *c, const char *slug)
{
	struct buf host = BUF_INIT, comment = BUF_INIT;
	struct records_owned ro = {0};
	struct record_find f = {0};
	char rid[40];
	size_t i;
	int rc = -1, found;

	if (cf_hostname(c->cfg->cf_zone, slug, &host, &c->error) == -1) {
		c->stop = CF_INVALID;
		goto out;
	}
	cf_comment(local_instance(c->cfg), slug, &comment);
	if (records_of(c, buf_str(&comment), &ro) == -1 ||
	    (found = record_find(c, buf_str(&host), &f)) == -1)
		goto out;
	for (i = 0; i < ro.n; i++)
		if ((found == 0 || strcmp(ro.ids[i], f.id) != 0) &&
		    record_delete(c, ro.ids[i]) == -1)
			goto out;
	if (record_ensure(c, slug, buf_str(&host), c->cfg->cf_wake_tunnel_id,
	                  rid) == -1)
		goto out;
	log_info("cf_asleep", "slug=%s record=%s calls=%u", slug, rid,
	         c->calls);
	rc = 0;
out:
	free(ro.ids);
	record_find_free(&f);
	buf_free(&host);
	buf_free(&comment);
	return rc;
}

int
cloudflare_wake(struct cf_client *c, const char *slug, const char *tunnel_id)
{
	struct buf host = BUF_INIT;
	char rid[40];
	int rc = -1;

	if (cf_hostname(c->cfg->cf_zone, slug, &host, &c->error) == -1)
		c->stop = CF_INVALID;
	else if (record_ensure(c, slug, buf_str(&host), tunnel_id, rid) == 0)
		rc = 0;
	buf_free(&host);
	return rc;
}

int
cloudflare_exists(struct cf_client *c, const char *slug)
{
	struct buf name = BUF_INIT, host = BUF_INIT;
	struct record_find f = {0};
	char tid[40];
	int rc = -1, t, d;

	cf_tunnel_name(local_instance(c->cfg), slug, &name);
	buf_printf(&host, "%s.%s", slug, c->cfg->cf_zone);
	if ((t = tunnel_find(c, buf_str(&name), tid)) == -1 ||
	    (d = record_find(c, buf_str(&host), &f)) == -1)
		goto out;
	rc = t && d;
out:
	record_find_free(&f);
	buf_free(&name);
	buf_free(&host);
	return rc;
}

char *
cloudflare_url(const struct config *cfg, const char *slug, const char *path)
{
	struct buf b = BUF_INIT;

	buf_printf(&b, "https://%s.%s%s", slug, cfg->cf_zone,
	           path ? path : "/");
	return buf_detach(&b);
}

int
cloudflare_ready(struct cf_client *c, const char *slug, const char *tunnel_id,
                 const char *client_id, const char *client_secret,
                 long *edge_status)
{
	struct buf p = BUF_INIT, host = BUF_INIT, url = BUF_INIT,
	           body = BUF_INIT, idh = BUF_INIT, sech = BUF_INIT;
	const char *extra[3] = {NULL, NULL, NULL};
	struct json_object *conns;
	struct cf_reply r;
	enum cf_verdict v;
	int64_t ra;
	int rc = -1;

	*edge_status = 0;
	cf_reply_init(&r);
	buf_init(&body, 64 * 1024);
	buf_printf(&p, "/accounts/%s/cfd_tunnel/%s", c->cfg->cf_account_id,
	           tunnel_id);
	v = cf_call(c, "GET", buf_str(&p), NULL, &r);
	if (v != CF_OK) {
		cf_stop(c, &r, v, "read the tunnel", PERM_TUNNEL_READ);
		goto out;
	}
	if (!json_object_object_get_ex(r.result, "connections", &conns) ||
	    !json_object_is_type(conns, json_type_array) ||
	    json_object_array_length(conns) == 0) {
		rc = 0; /* the connector has not registered yet */
		goto out;
	}
	buf_printf(&host, "%s.%s", slug, c->cfg->cf_zone);
	if (c->cfg->cf_edge_url[0] != '\0')
		buf_printf(&url, "%s/", c->cfg->cf_edge_url);
	else
		buf_printf(&url, "https://%s/", buf_str(&host));
	if (client_id != NULL && client_secret != NULL) {
		buf_printf(&idh, "CF-Access-Client-Id: %s", client_id);
		buf_printf(&sech, "CF-Access-Client-Secret: %s", client_secret);
		extra[0] = buf_str(&idh);
		extra[1] = buf_str(&sech);
	}
	if (cf_http_request("GET", buf_str(&url), NULL, NULL,
	                    c->cfg->cf_edge_url[0] ? buf_str(&host) : NULL,
	                    extra, 10L, edge_status, &body, &ra) == -1) {
		rc = 0;
		goto out;
	}
	/*
	 * 2xx/3xx is an answer from the preview. Without a service token
	 * Access's redirect to its login is all the edge will show, and it
	 * proves the hostname is served through the tunnel's zone; with
	 * one, that redirect means the token was not let through.
	 */
	rc = *edge_status >= 200 && *edge_status < 400 &&
	     !(client_id != NULL && cf_http_redirected_to_login());
out:
	if (sech.data != NULL)
		explicit_bzero(sech.data, sech.len);
	cf_reply_free(&r);
	buf_free(&p);
	buf_free(&host);
	buf_free(&url);
	buf_free(&body);
	buf_free(&idh);
	buf_free(&sech);
	return rc;
}

static int
tunnel_owned(struct json_object *t, void *arg)
{
	struct owned *o = arg;
	const char *name = jstr(t, "name");
	size_t k = strlen(o->instance);

	if (name == NULL || !jnull(t, "deleted_at") ||
	    strncmp(name, o->instance, k) != 0 || name[k] != '-' ||
	    !owned_old(o, t, "created_at"))
		return 0;
	if (slug_valid(name + k + 1, strlen(name + k + 1)))
		owned_add(o, name + k + 1);
	return 0;
}

int
cloudflare_list_owned(struct cf_client *c, time_t before, char ***slugs,
                      size_t *n)
{
	struct owned o = {NULL, 0, 0, local_instance(c->cfg), before};
	struct records_owned ro = {0};
	struct buf p = BUF_INIT, prefix = BUF_INIT;
	struct apps_of apps = {0};
	size_t i;
	int rc = -1;

	buf_printf(&p, "/accounts/%s/cfd_tunnel?is_deleted=false",
	           c->cfg->cf_account_id);
	if (list_all(c, buf_str(&p), "list tunnels", PERM_TUNNEL_READ,
	             tunnel_owned, &o) == -1)
		goto out;
	/* Records carry the slug in their comment. */
	ro.owned = &o;
	if (records_of(c, NULL, &ro) == -1)
		goto out;
	buf_printf(&prefix, "%s-", o.instance);
	apps.owned = &o;
	if (c->cfg->cf_access && apps_list(c, buf_str(&prefix), &apps) == -1)
		goto out;
	for (i = 0; i < apps.n; i++) {
		const char *rest = apps.names[i] + prefix.len;
		const char *sp = strchr(rest, ' ');

		if (sp != NULL && sp - rest < 64 &&
		    slug_valid(rest, (size_t)(sp - rest))) {
			char s[64];

			memcpy(s, rest, (size_t)(sp - rest));
			s[sp - rest] = '\0';
			owned_add(&o, s);
		}
	}
	rc = 0;
out:
	free(ro.ids);
	apps_free(&apps);
	buf_free(&p);
	buf_free(&prefix);
	*slugs = o.slugs;
	*n = o.n;
	return rc;
}

/* ---- the CI service token (per repository, once, for the admin) ------ */

struct zone_app {
	const char *domain;
	char id[40];
};

static int
zone_app_match(struct json_object *o, void *arg)
{
	struct zone_app *z = arg;
	const char *d = jstr(o, "domain");

	if (d == NULL || strcmp(d, z->domain) != 0)
		return 0;
	id_copy(z->id, jstr(o, "id"));
	return 1;
}

int
cloudflare_service_token(struct cf_client *c, const char *repo,
                         struct buf *client_id, struct buf *client_secret)
{
	struct buf p = BUF_INIT, body = BUF_INIT, domain = BUF_INIT,
	           name = BUF_INIT;
	struct zone_app z = {0};
	struct cf_reply r;
	enum cf_verdict v;
	const char *tid, *cid, *sec;
	int rc = -1;

	cf_reply_init(&r);
	/* The zone-wide app the admin set up once (README, Terraform). */
	buf_printf(&domain, "*.%s", c->cfg->cf_zone);
	z.domain = buf_str(&domain);
	buf_printf(&p, "/accounts/%s/access/apps", c->cfg->cf_account_id);
	if (list_all(c, buf_str(&p), "find the Access app for the zone",
	             PERM_ACCESS_APPS, zone_app_match, &z) == -1)
		goto out;
	if (z.id[0] == '\0') {
		r.status = -1;
		buf_printf(&r.message,
		           "no Access application for %s: set it up first "
		           "(README, Access with GitHub login)",
		           z.domain);
		cf_stop(c, &r, CF_FAIL, "create a service token", NULL);
		goto out;
	}
	buf_printf(&name, "%s CI %s", local_instance(c->cfg), repo);
	buf_puts(&body, "{\"name\":");
	buf_append_json_string(&body, name.data, name.len);
	buf_puts(&body, ",\"duration\":\"8760h\"}");
	buf_reset(&p);
	buf_printf(&p, "/accounts/%s/access/service_tokens",
	           c->cfg->cf_account_id);
	v = cf_call(c, "POST", buf_str(&p), buf_str(&body), &r);
	tid = jstr(r.result, "id");
	cid = jstr(r.result, "client_id");
	sec = jstr(r.result, "client_secret");
	if (v != CF_OK || tid == NULL || cid == NULL || sec == NULL) {
		cf_stop(c, &r, v == CF_OK ? CF_FAIL : v,
		        "create a service token",
		        "Account: Access: Service Tokens Edit");
		goto out;
	}
	/* The secret is only in this answer: keep it before the next call. */
	buf_puts(client_id, cid);
	buf_puts(client_secret, sec);
	buf_reset(&body);
	buf_puts(&body, "{\"name\":");
	buf_append_json_string(&body, name.data, name.len);
	buf_printf(&body,
	           ",\"decision\":\"non_identity\",\"include\":"
	           "[{\"service_token\":{\"token_id\":\"%s\"}}]}",
	           tid);
	buf_reset(&p);
	buf_printf(&p, "/accounts/%s/access/apps/%s/policies",
	           c->cfg->cf_account_id, z.id);
	v = cf_call(c, "POST", buf_str(&p), buf_str(&body), &r);
	if (v != CF_OK) {
		cf_stop(c, &r, v, "allow the service token", PERM_ACCESS_APPS);
		goto out;
	}
	log_info("cf_service_token", "repo=%s", log_q(repo));
	rc = 0;
out:
	cf_reply_free(&r);
	buf_free(&p);
	buf_free(&body);
	buf_free(&domain);
	buf_free(&name);
	return rc;
}
