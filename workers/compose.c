/*
 * compose.c - the policy gate between a repository's compose project and
 * this host. Input: the project as `docker compose config` normalised it
 * (paths absolute, variables interpolated), as a json-c tree. Output: the
 * same tree rewritten into what Ephemera runs, or -1 with the reason a
 * person can act on.
 *
 * The repository is someone else's code. What would let it reach outside
 * its containers is refused: bind mounts of host paths, privileged mode,
 * host namespaces, devices, capabilities, build contexts or env files
 * outside the checkout, named volumes or networks that point at host
 * resources. What would make two previews collide or bypass the proxy is
 * rewritten: published ports become `expose`d ones, fixed container names
 * are refused, and every object gets Ephemera's labels so teardown can find
 * it by label alone.
 */
#include <json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workers.h"

static const char *const forbidden_keys[] = {
        "privileged",
        "cap_add",
        "devices",
        "security_opt",
        "userns_mode",
        "cgroup_parent",
        "container_name",
        "device_cgroup_rules",
        "runtime",
        "pid",
        "ipc",
        "uts",
        "cgroup",
        "external_links",
};

bool
compose_name_valid(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > 63)
		return false;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      (c == '.' && i > 0)))
			return false;
	}
	return true;
}

/* True when `path` is `dir` or below it, with no ".." step. */
static bool
path_inside(const char *path, const char *dir)
{
	size_t n = strlen(dir), len = strlen(path);

	if (strstr(path, "/../") != NULL ||
	    (len >= 3 && strcmp(path + len - 3, "/..") == 0))
		return false;
	return strncmp(path, dir, n) == 0 &&
	       (path[n] == '\0' || path[n] == '/');
}

static const char *
str_of(struct json_object *o)
{
	return json_object_is_type(o, json_type_string)
	               ? json_object_get_string(o)
	               : NULL;
}

/* Volume entry: "name:/data", "/host:/data", or {type, source, target}. */
static int
volume_check(const char *svc, struct json_object *v, struct buf *why)
{
	const char *s = str_of(v), *src = NULL;
	struct json_object *t;

	if (s != NULL) {
		if (s[0] == '/' || s[0] == '.' || s[0] == '~') {
			buf_printf(why,
			           "service \"%s\" mounts a host path; only"
			           " named volumes are allowed",
			           svc);
			return -1;
		}
		return 0;
	}
	if (json_object_object_get_ex(v, "type", &t) && str_of(t) &&
	    strcmp(str_of(t), "volume") != 0 &&
	    strcmp(str_of(t), "tmpfs") != 0) {
		buf_printf(why,
		           "service \"%s\" mounts a host path (type %s); "
		           "only named volumes are allowed",
		           svc, str_of(t));
		return -1;
	}
	if (json_object_object_get_ex(v, "source", &t))
		src = str_of(t);
	if (src != NULL && (src[0] == '/' || src[0] == '.' || src[0] == '~')) {
		buf_printf(why,
		           "service \"%s\" mounts a host path; only named "
		           "volumes are allowed",
		           svc);
		return -1;
	}
	return 0;
}

static int
build_check(const char *svc, struct json_object *b,
            const struct compose_policy *pol, struct buf *why)
{
	struct json_object *ctx = b;
	const char *dir;

	if (!pol->allow_build) {
		buf_printf(why,
		           "service \"%s\" builds an image, which this "
		           "installation does not allow",
		           svc);
		return -1;
	}
	if (json_object_is_type(b, json_type_object))
		json_object_object_get_ex(b, "context", &ctx);
	dir = str_of(ctx);
	if (dir == NULL || !path_inside(dir, pol->src_dir)) {
		buf_printf(why,
		           "service \"%s\" builds from outside the "
		           "repository",
		           svc);
		return -1;
	}
	return 0;
}

/*
 * A built image is tagged <project>/s-<service>: a namespace no other
 * project shares, so two PRs building "myapp:latest" cannot overwrite
 * each other's tag, and teardown finds the images by reference. (Naming,
 * unlike a build label, adds no layer to the build.)
 */
static void
image_name(struct json_object *svc, const char *name,
           const struct compose_policy *pol)
{
	struct buf b = BUF_INIT;
	bool dash = false;

	buf_printf(&b, "%s/s-", pol->project);
	for (; *name; name++) {
		char c = *name >= 'A' && *name <= 'Z' ? (char)(*name + 32)
		                                      : *name;

		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
			buf_putc(&b, c);
			dash = false;
		} else if (!dash) {
			buf_putc(&b, '-');
			dash = true;
		}
	}
	if (dash)
		buf_putc(&b, '0');
	json_object_object_add(svc, "image",
	                       json_object_new_string(buf_str(&b)));
	buf_free(&b);
}

static int
files_check(const char *svc, const char *what, struct json_object *v,
            const struct compose_policy *pol, struct buf *why)
{
	size_t i, n;

	if (str_of(v) != NULL) {
		if (!path_inside(str_of(v), pol->src_dir))
			goto bad;
		return 0;
	}
	if (!json_object_is_type(v, json_type_array))
		return 0;
	n = json_object_array_length(v);
	for (i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(v, i), *p;
		const char *path = str_of(e);

		if (path == NULL && json_object_object_get_ex(e, "path", &p))
			path = str_of(p);
		if (path != NULL && !path_inside(path, pol->src_dir))
			goto bad;
	}
	return 0;
bad:
	buf_printf(why,
	           "service \"%s\" reads an %s from outside the "
	           "repository",
	           svc, what);
	return -1;
}

/* Leading port number of "80", "80/tcp", "3000-3005", or an integer. */
static int
port_of(struct json_object *v)
{
	const char *s;
	long p = 0;

	if (json_object_is_type(v, json_type_int))
		return (int)json_object_get_int(v);
	if (json_object_is_type(v, json_type_object)) {
		struct json_object *t;

		if (json_object_object_get_ex(v, "target", &t))
			return port_of(t);
		return 0;
	}
	s = str_of(v);
	if (s == NULL)
		return 0;
	/* Short syntax "host:container[/proto]": the container side counts. */
	if (strrchr(s, ':') != NULL)
		s = strrchr(s, ':') + 1;
	while (*s >= '0' && *s <= '9' && p < 65536)
		p = p * 10 + (*s++ - '0');
	return p > 0 && p < 65536 ? (int)p : 0;
}

/* Published ports become exposed ones: reachable by the proxy only. */
static void
ports_rewrite(struct json_object *svc)
{
	struct json_object *ports, *expose;
	size_t i, n;

	if (!json_object_object_get_ex(svc, "expose", &expose) ||
	    !json_object_is_type(expose, json_type_array)) {
		expose = json_object_new_array();
		json_object_object_add(svc, "expose", expose);
	}
	if (json_object_object_get_ex(svc, "ports", &ports) &&
	    json_object_is_type(ports, json_type_array)) {
		struct json_object *moved = json_object_new_array();

		n = json_object_array_length(ports);
		for (i = 0; i < n; i++) {
			int p = port_of(json_object_array_get_idx(ports, i));

			if (p > 0)
				json_object_array_add(moved,
				                      json_object_new_int(p));
		}
		/* Published targets first: they are the app's front door. */
		n = json_object_array_length(expose);
		for (i = 0; i < n; i++)
			json_object_array_add(
			        moved,
			        json_object_get(
			                json_object_array_get_idx(expose, i)));
		json_object_object_add(svc, "expose", moved);
		json_object_object_del(svc, "ports");
		expose = moved;
	}
	/* Normalise every entry to a string, as compose's schema wants. */
	n = json_object_array_length(expose);
	for (i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(expose, i);

		if (!json_object_is_type(e, json_type_string))
			json_object_array_put_idx(
			        expose, i,
			        json_object_new_string(
			                json_object_to_json_string(e)));
	}
}

static void
labels_add(struct json_object *svc, const struct compose_policy *pol)
{
	struct json_object *labels;
	char id[32];

	if (!json_object_object_get_ex(svc, "labels", &labels) ||
	    !json_object_is_type(labels, json_type_object)) {
		/* A list form (["a=b"]) is replaced: ours must be present. */
		labels = json_object_new_object();
		json_object_object_add(svc, "labels", labels);
	}
	snprintf(id, sizeof(id), "%llu", (unsigned long long)pol->env_id);
	json_object_object_add(labels, "io.ephemera.project",
	                       json_object_new_string(pol->project));
	json_object_object_add(labels, "io.ephemera.env",
	                       json_object_new_string(id));
	if (pol->instance != NULL)
		json_object_object_add(labels, "io.ephemera.instance",
		                       json_object_new_string(pol->instance));
}

static bool
service_allowed(const char *allowed, const char *name)
{
	size_t n = strlen(name);
	const char *p = allowed;

	if (allowed == NULL || allowed[0] == '\0')
		return true;
	while (*p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		while (len > 0 && *p == ' ')
			p++, len--;
		if (len == n && strncmp(p, name, n) == 0)
			return true;
		p += len + (comma != NULL);
		if (comma == NULL)
			break;
	}
	return false;
}

static int
service_sanitize(const char *name, struct json_object *svc,
                 const struct compose_policy *pol, struct compose_service *out,
                 struct buf *why)
{
	struct json_object *v, *expose;
	size_t i;

	if (!compose_name_valid(name)) {
		buf_puts(why, "a service name has characters outside "
		              "[A-Za-z0-9._-]");
		return -1;
	}
	if (!service_allowed(pol->allowed_services, name)) {
		buf_printf(why,
		           "service \"%s\" is not in this repository's "
		           "allowed services (%s)",
		           name, pol->allowed_services);
		return -1;
	}
	if (!json_object_is_type(svc, json_type_object)) {
		buf_printf(why, "service \"%s\" is not a mapping", name);
		return -1;
	}
	for (i = 0; i < NELEM(forbidden_keys); i++) {
		if (!json_object_object_get_ex(svc, forbidden_keys[i], &v) ||
		    v == NULL ||
		    (json_object_is_type(v, json_type_boolean) &&
		     !json_object_get_boolean(v)))
			continue;
		buf_printf(why,
		           "service \"%s\" sets \"%s\", which previews "
		           "may not use",
		           name, forbidden_keys[i]);
		return -1;
	}
	if (json_object_object_get_ex(svc, "network_mode", &v) && str_of(v) &&
	    strncmp(str_of(v), "service:", 8) != 0 &&
	    strcmp(str_of(v), "bridge") != 0 &&
	    strcmp(str_of(v), "none") != 0) {
		buf_printf(why,
		           "service \"%s\" sets network_mode \"%s\"; only "
		           "the project's own networks are allowed",
		           name, str_of(v));
		return -1;
	}
	if (json_object_object_get_ex(svc, "volumes", &v) &&
	    json_object_is_type(v, json_type_array))
		for (i = 0; i < json_object_array_length(v); i++)
			if (volume_check(name, json_object_array_get_idx(v, i),
			                 why) == -1)
				return -1;
	if (json_object_object_get_ex(svc, "build", &v) && v != NULL) {
		if (build_check(name, v, pol, why) == -1)
			return -1;
		image_name(svc, name, pol);
	}
	if (json_object_object_get_ex(svc, "env_file", &v) &&
	    files_check(name, "env_file", v, pol, why) == -1)
		return -1;
	ports_rewrite(svc);
	labels_add(svc, pol);
	out->name = xstrdup(name);
	out->port = 0;
	if (json_object_object_get_ex(svc, "expose", &expose) &&
	    json_object_array_length(expose) > 0)
		out->port = port_of(json_object_array_get_idx(expose, 0));
	return 0;
}

/* Top-level volumes, networks, secrets and configs. */
static int
toplevel_check(struct json_object *model, const struct compose_policy *pol,
               struct buf *why)
{
	static const char *const sections[] = {"volumes", "networks", "secrets",
	                                       "configs"};
	size_t i;

	for (i = 0; i < NELEM(sections); i++) {
		struct json_object *sec, *v;

		if (!json_object_object_get_ex(model, sections[i], &sec) ||
		    !json_object_is_type(sec, json_type_object))
			continue;
		json_object_object_foreach(sec, key, def)
		{
			const char *f;

			if (!json_object_is_type(def, json_type_object))
				continue;
			if ((json_object_object_get_ex(def, "external", &v) &&
			     json_object_get_boolean(v)) ||
			    json_object_object_get_ex(def, "driver_opts", &v)) {
				buf_printf(why,
				           "%s \"%s\" refers to a resource "
				           "outside the project",
				           sections[i], key);
				return -1;
			}
			if (json_object_object_get_ex(def, "file", &v) &&
			    ((f = str_of(v)) == NULL ||
			     !path_inside(f, pol->src_dir))) {
				buf_printf(why,
				           "%s \"%s\" reads a file outside "
				           "the repository",
				           sections[i], key);
				return -1;
			}
			if (json_object_object_get_ex(def, "environment", &v)) {
				buf_printf(why,
				           "%s \"%s\" reads the host's "
				           "environment",
				           sections[i], key);
				return -1;
			}
		}
	}
	return 0;
}

int
compose_sanitize(struct json_object *model, const struct compose_policy *pol,
                 struct compose_result *res, struct buf *why)
{
	struct json_object *services;
	size_t n;

	memset(res, 0, sizeof(*res));
	if (!json_object_is_type(model, json_type_object) ||
	    !json_object_object_get_ex(model, "services", &services) ||
	    !json_object_is_type(services, json_type_object) ||
	    (n = (size_t)json_object_object_length(services)) == 0) {
		buf_puts(why, "the compose file defines no services");
		return -1;
	}
	if ((int)n > pol->max_services) {
		buf_printf(why,
		           "the compose file defines %zu services; the "
		           "limit is %d",
		           n, pol->max_services);
		return -1;
	}
	if (toplevel_check(model, pol, why) == -1)
		return -1;
	res->services = xcalloc(n, sizeof(*res->services));
	json_object_object_foreach(services, name, svc)
	{
		if (service_sanitize(name, svc, pol, &res->services[res->n],
		                     why) == -1) {
			compose_result_free(res);
			return -1;
		}
		res->n++;
	}
	return 0;
}

const struct compose_service *
compose_service_find(const struct compose_result *res, const char *name)
{
	size_t i;

	for (i = 0; i < res->n; i++)
		if (strcmp(res->services[i].name, name) == 0)
			return &res->services[i];
	return NULL;
}

void
compose_result_free(struct compose_result *res)
{
	size_t i;

	if (res == NULL)
		return;
	for (i = 0; i < res->n; i++)
		free(res->services[i].name);
	free(res->services);
	memset(res, 0, sizeof(*res));
}
