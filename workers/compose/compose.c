/*
 * compose.c - the allow-list gate between a PR's compose file and this
 * host. Input: the file as we parsed it ourselves (yaml.c), variables
 * interpolated by us (compose_vars.c). Output: a new compose model built
 * key by key from an explicit schema, which is all compose ever reads.
 * Nothing the PR wrote is passed through unseen: a key the gate does not
 * know is refused, naming the key and the rule.
 *
 * What the output may hold: services with an image the project builds
 * (tagged <project>/s-<service>, a namespace of ours) or one under the
 * admin's allowed prefixes; build contexts and Dockerfiles inside the
 * checkout; ports turned into `expose`; volumes that are the project's own
 * named volumes or tmpfs; networks and volumes whose Docker names we make;
 * memory, pids and CPU limits within the admin's ceilings; and on every
 * service, network and volume the labels io.ephemera.project,
 * io.ephemera.env and io.ephemera.instance that teardown and the sweep
 * look for (built images go by their tag). See compose_service.c for the
 * service keys.
 */
#include <json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../workers.h"

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

int
gate_refuse(struct gate *g, const char *key, const char *fmt, ...)
{
	va_list ap;

	buf_reset(g->why);
	if (g->svc != NULL)
		buf_printf(g->why, "services.%s.%s: ", g->svc, key);
	else
		buf_printf(g->why, "%s: ", key);
	va_start(ap, fmt);
	buf_vprintf(g->why, fmt, ap);
	va_end(ap);
	return -1;
}

void
gate_labels(struct gate *g, struct json_object *labels)
{
	char id[32];

	snprintf(id, sizeof(id), "%llu", (unsigned long long)g->pol->env_id);
	json_object_object_add(labels, "io.ephemera.project",
	                       json_object_new_string(g->pol->project));
	json_object_object_add(labels, "io.ephemera.env",
	                       json_object_new_string(id));
	if (g->pol->instance != NULL)
		json_object_object_add(
		        labels, "io.ephemera.instance",
		        json_object_new_string(g->pol->instance));
}

/* Network and volume keys: short, lower case, no dots. */
static bool
object_key_valid(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > 32 || s[0] == '-' || s[0] == '_')
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		      s[i] == '_'))
			return false;
	return true;
}

/*
 * A top-level network or volume: only `internal` (networks) and the
 * bridge/local driver are kept; the Docker name is <project>_<key>, never
 * the PR's `name:`, so no other project's object can be joined or read.
 */
static int
object_gate(struct gate *g, const char *section, const char *key,
            struct json_object *def, struct json_object *out)
{
	bool net = strcmp(section, "networks") == 0;
	struct json_object *o = json_object_new_object(), *labels;
	struct buf name = BUF_INIT, k = BUF_INIT;

	buf_printf(&k, "%s.%s", section, key);
	if (!object_key_valid(key)) {
		json_object_put(o);
		gate_refuse(g, buf_str(&k),
		            "names are [a-z0-9_-], at most 32 characters");
		goto fail;
	}
	if (def != NULL && !json_object_is_type(def, json_type_object)) {
		json_object_put(o);
		gate_refuse(g, buf_str(&k), "must be a mapping");
		goto fail;
	}
	json_object_object_add(out, key, o);
	if (def != NULL) {
		json_object_object_foreach(def, dk, dv)
		{
			const char *s = json_object_get_string(dv);

			if (strcmp(dk, "driver") == 0 && dv != NULL &&
			    json_object_is_type(dv, json_type_string) &&
			    strcmp(s, net ? "bridge" : "local") == 0)
				continue;
			if (net && strcmp(dk, "internal") == 0 &&
			    json_object_is_type(dv, json_type_boolean)) {
				json_object_object_add(o, "internal",
				                       json_object_get(dv));
				continue;
			}
			if (strcmp(dk, "labels") == 0)
				continue; /* ours replace them */
			buf_printf(&k, ".%s", dk);
			gate_refuse(
			        g, buf_str(&k),
			        "not allowed (rule: a preview's %s are its "
			        "own, named and placed by Ephemera; allowed: "
			        "%s)",
			        section,
			        net ? "driver: bridge, internal"
			            : "driver: local");
			goto fail;
		}
	}
	buf_printf(&name, "%s_%s", g->pol->project, key);
	json_object_object_add(o, "name",
	                       json_object_new_string(buf_str(&name)));
	labels = json_object_new_object();
	gate_labels(g, labels);
	json_object_object_add(o, "labels", labels);
	buf_free(&name);
	buf_free(&k);
	return 0;
fail:
	buf_free(&name);
	buf_free(&k);
	return -1;
}

static int
objects_gate(struct gate *g, struct json_object *in, const char *section,
             int max, struct json_object **out)
{
	struct json_object *sec = NULL;
	int n = 0;

	*out = json_object_new_object();
	if (json_object_object_get_ex(in, section, &sec) && sec != NULL &&
	    !json_object_is_type(sec, json_type_object))
		return gate_refuse(g, section, "must be a mapping");
	if (sec != NULL) {
		json_object_object_foreach(sec, key, def)
		{
			if (++n > max)
				return gate_refuse(
				        g, section,
				        "more than %d (rule: this "
				        "installation's environments."
				        "max_%s)",
				        max, section);
			if (object_gate(g, section, key, def, *out) == -1)
				return -1;
		}
	}
	/* The default network is declared so it carries our labels too. */
	if (strcmp(section, "networks") == 0 &&
	    !json_object_object_get_ex(*out, "default", NULL)) {
		if (n + 1 > max)
			return gate_refuse(g, section,
			                   "more than %d with the default one "
			                   "(rule: environments.max_networks)",
			                   max);
		return object_gate(g, section, "default", NULL, *out);
	}
	return 0;
}

static const char *const top_keys[] = {"services", "networks", "volumes",
                                       "version", "name"};

static int
top_keys_check(struct gate *g, struct json_object *in)
{
	size_t i;

	json_object_object_foreach(in, key, v)
	{
		bool ok = strncmp(key, "x-", 2) == 0;

		(void)v;
		for (i = 0; i < NELEM(top_keys) && !ok; i++)
			ok = strcmp(key, top_keys[i]) == 0;
		if (!ok)
			return gate_refuse(
			        g, key,
			        "not a key previews may use (allowed at the top "
			        "level: services, networks, volumes, version, "
			        "name, x-*)");
	}
	return 0;
}

int
compose_gate(struct json_object *in, const struct compose_policy *pol,
             struct json_object **out, struct compose_result *res,
             struct buf *why)
{
	struct gate g = {.pol = pol, .why = why};
	struct json_object *services, *osvcs, *onets = NULL, *ovols = NULL;
	size_t n;

	*out = NULL;
	memset(res, 0, sizeof(*res));
	if (!json_object_is_type(in, json_type_object)) {
		buf_puts(why, "the compose file is not a mapping");
		return -1;
	}
	if (top_keys_check(&g, in) == -1)
		return -1;
	if (!json_object_object_get_ex(in, "services", &services) ||
	    !json_object_is_type(services, json_type_object) ||
	    (n = (size_t)json_object_object_length(services)) == 0) {
		buf_puts(why, "the compose file defines no services");
		return -1;
	}
	if ((int)n > pol->max_services) {
		buf_printf(why,
		           "services: the compose file defines %zu services; "
		           "the limit is %d (rule: environments.max_services)",
		           n, pol->max_services);
		return -1;
	}
	g.in_services = services;
	*out = json_object_new_object();
	if (objects_gate(&g, in, "networks", pol->max_networks, &onets) == -1 ||
	    objects_gate(&g, in, "volumes", pol->max_volumes, &ovols) == -1)
		goto fail;
	g.networks = onets;
	g.volumes = ovols;
	osvcs = json_object_new_object();
	json_object_object_add(*out, "services", osvcs);
	json_object_object_add(*out, "networks", json_object_get(onets));
	json_object_object_add(*out, "volumes", json_object_get(ovols));
	res->services = xcalloc(n, sizeof(*res->services));
	json_object_object_foreach(services, name, svc)
	{
		struct json_object *o = NULL;

		g.svc = NULL;
		if (service_gate(&g, name, svc, &o, &res->services[res->n]) ==
		    -1) {
			json_object_put(o);
			goto fail;
		}
		json_object_object_add(osvcs, name, o);
		res->n++;
	}
	json_dollar_escape(*out);
	json_object_put(onets);
	json_object_put(ovols);
	return 0;
fail:
	json_object_put(onets);
	json_object_put(ovols);
	json_object_put(*out);
	*out = NULL;
	compose_result_free(res);
	return -1;
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
