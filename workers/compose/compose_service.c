/*
 * compose_service.c - one service through the gate: each key the PR wrote
 * is looked up in service_keys[] and handled by its function, which writes
 * what it accepts into a new service object; a key not in the table is
 * refused. What is not written by a handler does not exist for compose.
 */
#include <json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../workers.h"

#define ENV_FILE_MAX (64u * 1024)

static const char *
str_of(struct json_object *o)
{
	return json_object_is_type(o, json_type_string)
	               ? json_object_get_string(o)
	               : NULL;
}

/* A scalar as compose would take it as text: strings, numbers, booleans. */
static const char *
scalar_of(struct json_object *o)
{
	switch (json_object_get_type(o)) {
	case json_type_string:
	case json_type_int:
	case json_type_double:
	case json_type_boolean:
		return json_object_get_string(o);
	default:
		return NULL;
	}
}

static bool
chars_ok(const char *s, const char *extra, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr(extra, *s) != NULL))
			return false;
	return true;
}

/* Printable text without control characters, at most `max` bytes. */
static bool
text_ok(const char *s, size_t max)
{
	if (strlen(s) > max)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 && *s != '\t')
			return false;
	return true;
}

static int
strings_copy(struct gate *g, const char *key, struct json_object *v,
             struct json_object **out)
{
	size_t i, n;

	if (scalar_of(v) != NULL && text_ok(scalar_of(v), 8192)) {
		*out = json_object_new_string(scalar_of(v));
		return 0;
	}
	if (!json_object_is_type(v, json_type_array) ||
	    (n = json_object_array_length(v)) > 256)
		return gate_refuse(g, key,
		                   "must be a string or a list of "
		                   "strings");
	*out = json_object_new_array();
	for (i = 0; i < n; i++) {
		const char *s = scalar_of(json_object_array_get_idx(v, i));

		if (s == NULL || !text_ok(s, 8192))
			return gate_refuse(g, key,
			                   "must be a string or a "
			                   "list of strings");
		json_object_array_add(*out, json_object_new_string(s));
	}
	return 0;
}

/* ---- keys ---------------------------------------------------------- */

static int
key_command(struct gate *g, const char *key, struct json_object *v,
            struct json_object *o)
{
	struct json_object *c = NULL;

	if (strings_copy(g, key, v, &c) == -1) {
		json_object_put(c);
		return -1;
	}
	json_object_object_add(o, key, c);
	return 0;
}

static bool
env_name_ok(const char *s)
{
	return chars_ok(s, "_.-", 256) && !(s[0] >= '0' && s[0] <= '9');
}

static int
env_put(struct gate *g, struct json_object *env, const char *k, const char *v)
{
	if (!env_name_ok(k))
		return gate_refuse(g, "environment",
		                   "\"%.64s\" is not a variable name "
		                   "([A-Za-z_][A-Za-z0-9_.-]*)",
		                   k);
	if (v == NULL)
		return gate_refuse(g, "environment",
		                   "%s has no value (rule: values are never "
		                   "read from the host's environment)",
		                   k);
	if (!text_ok(v, 65536))
		return gate_refuse(g, "environment",
		                   "%s holds control characters", k);
	json_object_object_add(env, k, json_object_new_string(v));
	return 0;
}

static struct json_object *
env_of(struct json_object *o)
{
	struct json_object *env;

	if (!json_object_object_get_ex(o, "environment", &env)) {
		env = json_object_new_object();
		json_object_object_add(o, "environment", env);
	}
	return env;
}

/* Map or ["K=V"] list; both become a map of strings. */
static int
kv_take(struct gate *g, const char *key, struct json_object *v,
        struct json_object *into)
{
	size_t i;

	if (json_object_is_type(v, json_type_object)) {
		json_object_object_foreach(v, k, val)
		{
			if (val != NULL && scalar_of(val) == NULL)
				return gate_refuse(g, key,
				                   "%.64s is not a "
				                   "scalar",
				                   k);
			if (env_put(g, into, k, val ? scalar_of(val) : NULL) ==
			    -1)
				return gate_refuse(
				        g, key,
				        "%.64s: a name with a value "
				        "is required (rule: nothing is "
				        "read from the host's "
				        "environment)",
				        k);
		}
		return 0;
	}
	if (!json_object_is_type(v, json_type_array))
		return gate_refuse(g, key, "must be a mapping or a list");
	for (i = 0; i < json_object_array_length(v); i++) {
		const char *s = str_of(json_object_array_get_idx(v, i));
		const char *eq = s ? strchr(s, '=') : NULL;
		char name[257];

		if (eq == NULL || eq == s || (size_t)(eq - s) > 256)
			return gate_refuse(g, key,
			                   "entry %zu is not NAME=value (rule: "
			                   "nothing is read from the host's "
			                   "environment)",
			                   i);
		snprintf(name, sizeof(name), "%.*s", (int)(eq - s), s);
		if (env_put(g, into, name, eq + 1) == -1)
			return -1;
	}
	return 0;
}

static int
key_environment(struct gate *g, const char *key, struct json_object *v,
                struct json_object *o)
{
	return kv_take(g, key, v, env_of(o));
}

/* Read by us from inside the checkout and merged into `environment`. */
static int
key_env_file(struct gate *g, const char *key, struct json_object *v,
             struct json_object *o)
{
	size_t i, n = json_object_is_type(v, json_type_array)
	                      ? json_object_array_length(v)
	                      : 1;

	for (i = 0; i < n && i < 16; i++) {
		struct json_object *e =
		        json_object_is_type(v, json_type_array)
		                ? json_object_array_get_idx(v, i)
		                : v;
		struct json_object *p;
		struct buf text = BUF_INIT, why = BUF_INIT;
		const char *path = str_of(e);
		int rc;

		if (path == NULL && json_object_object_get_ex(e, "path", &p))
			path = str_of(p);
		if (path == NULL)
			return gate_refuse(g, key, "must name files");
		if (strncmp(path, "./", 2) == 0)
			path += 2;
		rc = checkout_read(g->pol->src_dir, path, ENV_FILE_MAX, &text,
		                   &why);
		if (rc == 0)
			rc = env_file_parse(buf_str(&text), env_of(o), &why);
		if (rc == -1)
			gate_refuse(g, key,
			            "%s (rule: env files are read by Ephemera, "
			            "from inside the repository only)",
			            buf_str(&why));
		buf_free(&text);
		buf_free(&why);
		if (rc == -1)
			return -1;
	}
	return 0;
}

/* Leading port of "80", "80/tcp", "8080:80", "127.0.0.1:8080:80", 80. */
static int
port_of(struct json_object *v)
{
	const char *s;
	long p = 0;

	if (json_object_is_type(v, json_type_int))
		return json_object_get_int64(v) > 0 &&
		                       json_object_get_int64(v) < 65536
		               ? (int)json_object_get_int64(v)
		               : -1;
	if (json_object_is_type(v, json_type_object)) {
		struct json_object *t;

		return json_object_object_get_ex(v, "target", &t) ? port_of(t)
		                                                  : -1;
	}
	if ((s = str_of(v)) == NULL)
		return -1;
	if (strrchr(s, ':') != NULL)
		s = strrchr(s, ':') + 1;
	while (*s >= '0' && *s <= '9' && p < 65536)
		p = p * 10 + (*s++ - '0');
	if (*s != '\0' && strcmp(s, "/tcp") != 0 && strcmp(s, "/udp") != 0)
		return -1;
	return p > 0 && p < 65536 ? (int)p : -1;
}

/* Each port once: compose refuses duplicates in `expose`. */
static void
expose_add(struct json_object *expose, int port)
{
	char s[8];
	size_t i;

	snprintf(s, sizeof(s), "%d", port);
	for (i = 0; i < json_object_array_length(expose); i++)
		if (strcmp(json_object_get_string(
		                   json_object_array_get_idx(expose, i)),
		           s) == 0)
			return;
	json_object_array_add(expose, json_object_new_string(s));
}

/*
 * Published ports become exposed ones, reachable by the proxy only. They
 * are collected apart and put first (expose_finish): they are the app's
 * front door, and the route takes the first port.
 */
static int
key_ports(struct gate *g, const char *key, struct json_object *v,
          struct json_object *o)
{
	const char *slot = strcmp(key, "ports") == 0 ? "x-ports" : "x-expose";
	struct json_object *list;
	size_t i, n;

	if (!json_object_is_type(v, json_type_array) ||
	    (n = json_object_array_length(v)) > 64)
		return gate_refuse(g, key,
		                   "must be a list of at most 64 ports");
	list = json_object_new_array();
	json_object_object_add(o, slot, list);
	for (i = 0; i < n; i++) {
		int p = port_of(json_object_array_get_idx(v, i));

		if (p <= 0)
			return gate_refuse(
			        g, key,
			        "entry %zu is not a port (forms: 80, "
			        "\"80/tcp\", \"8080:80\", {target: 80}; "
			        "no ranges)",
			        i);
		expose_add(list, p);
	}
	return 0;
}

static void
expose_finish(struct json_object *o)
{
	struct json_object *out = json_object_new_array(), *l;
	const char *slots[] = {"x-ports", "x-expose"};
	size_t i, j;

	for (i = 0; i < NELEM(slots); i++) {
		if (!json_object_object_get_ex(o, slots[i], &l))
			continue;
		for (j = 0; j < json_object_array_length(l); j++)
			expose_add(
			        out,
			        (int)strtol(json_object_get_string(
			                            json_object_array_get_idx(
			                                    l, j)),
			                    NULL, 10));
		json_object_object_del(o, slots[i]);
	}
	if (json_object_array_length(out) > 0)
		json_object_object_add(o, "expose", out);
	else
		json_object_put(out);
}

static bool
duration_ok(struct json_object *v)
{
	const char *s = scalar_of(v);

	return s != NULL && chars_ok(s, ".", 32);
}

static int
key_healthcheck(struct gate *g, const char *key, struct json_object *v,
                struct json_object *o)
{
	struct json_object *h = json_object_new_object();

	json_object_object_add(o, key, h);
	if (!json_object_is_type(v, json_type_object))
		return gate_refuse(g, key, "must be a mapping");
	json_object_object_foreach(v, k, val)
	{
		struct json_object *c = NULL;

		if (strcmp(k, "test") == 0) {
			if (strings_copy(g, "healthcheck.test", val, &c) ==
			    -1) {
				json_object_put(c);
				return -1;
			}
			json_object_object_add(h, k, c);
		} else if (strcmp(k, "interval") == 0 ||
		           strcmp(k, "timeout") == 0 ||
		           strcmp(k, "start_period") == 0) {
			if (!duration_ok(val))
				return gate_refuse(g, "healthcheck",
				                   "%s must be a duration like "
				                   "\"5s\"",
				                   k);
			json_object_object_add(h, k, json_object_get(val));
		} else if (strcmp(k, "retries") == 0 &&
		           json_object_is_type(val, json_type_int)) {
			json_object_object_add(h, k, json_object_get(val));
		} else if (strcmp(k, "disable") == 0 &&
		           json_object_is_type(val, json_type_boolean)) {
			json_object_object_add(h, k, json_object_get(val));
		} else {
			return gate_refuse(
			        g, "healthcheck",
			        "%.64s is not allowed (allowed: test, "
			        "interval, timeout, start_period, "
			        "retries, disable)",
			        k);
		}
	}
	return 0;
}

static int
dep_check(struct gate *g, const char *name)
{
	if (!json_object_object_get_ex(g->in_services, name, NULL))
		return gate_refuse(g, "depends_on",
		                   "\"%.64s\" is not a service of this file",
		                   name);
	return 0;
}

static int
key_depends_on(struct gate *g, const char *key, struct json_object *v,
               struct json_object *o)
{
	static const char *const conds[] = {"service_started",
	                                    "service_healthy",
	                                    "service_completed_successfully"};
	struct json_object *d = json_object_new_object(), *e;
	size_t i;

	json_object_object_add(o, key, d);
	if (json_object_is_type(v, json_type_array)) {
		for (i = 0; i < json_object_array_length(v); i++) {
			const char *s = str_of(json_object_array_get_idx(v, i));

			if (s == NULL || dep_check(g, s) == -1)
				return s ? -1
				         : gate_refuse(g, key,
				                       "must name "
				                       "services");
			e = json_object_new_object();
			json_object_object_add(d, s, e);
			json_object_object_add(
			        e, "condition",
			        json_object_new_string("service_started"));
		}
		return 0;
	}
	if (!json_object_is_type(v, json_type_object))
		return gate_refuse(g, key, "must be a list or a mapping");
	json_object_object_foreach(v, name, spec)
	{
		struct json_object *c, *ent = json_object_new_object();
		const char *cond = "service_started";

		json_object_object_add(d, name, ent);
		if (dep_check(g, name) == -1)
			return -1;
		if (spec != NULL) {
			if (!json_object_is_type(spec, json_type_object))
				return gate_refuse(g, key,
				                   "%.64s: must be a "
				                   "mapping",
				                   name);
			json_object_object_foreach(spec, sk, sv)
			{
				/* required/restart: what compose v2 prints. */
				if (strcmp(sk, "condition") != 0 &&
				    !((strcmp(sk, "required") == 0 ||
				       strcmp(sk, "restart") == 0) &&
				      json_object_is_type(sv,
				                          json_type_boolean)))
					return gate_refuse(
					        g, key,
					        "%.64s.%.64s is not allowed "
					        "(allowed: condition, required, "
					        "restart)",
					        name, sk);
			}
			if (json_object_object_get_ex(spec, "condition", &c))
				cond = str_of(c) ? str_of(c) : "";
		}
		for (i = 0; i < NELEM(conds); i++)
			if (strcmp(cond, conds[i]) == 0)
				break;
		if (i == NELEM(conds))
			return gate_refuse(
			        g, key,
			        "%.64s: condition must be "
			        "service_started, service_healthy or "
			        "service_completed_successfully",
			        name);
		json_object_object_add(ent, "condition",
		                       json_object_new_string(conds[i]));
	}
	return 0;
}

static bool
container_path_ok(const char *s)
{
	return s != NULL && s[0] == '/' && chars_ok(s, "/._-@+", 512) &&
	       strstr(s, "..") == NULL;
}

/* "name:/path[:ro|rw]", "/path" (anonymous), or the long form. */
static int
volume_one(struct gate *g, struct json_object *v, struct json_object *out)
{
	struct json_object *e = json_object_new_object();
	const char *s = str_of(v), *type = "volume", *src = NULL, *dst = NULL;
	bool ro = false;
	char buf[1100];
	size_t len;

	json_object_array_add(out, e);
	if (s != NULL) {
		char *c1, *c2;

		if ((len = strlen(s)) >= sizeof(buf))
			return gate_refuse(g, "volumes", "entry too long");
		memcpy(buf, s, len + 1);
		c1 = strchr(buf, ':');
		if (c1 == NULL) {
			dst = buf;
		} else {
			*c1 = '\0';
			src = buf;
			dst = c1 + 1;
			if ((c2 = strchr(dst, ':')) != NULL) {
				*c2 = '\0';
				if (strcmp(c2 + 1, "ro") != 0 &&
				    strcmp(c2 + 1, "rw") != 0)
					return gate_refuse(
					        g, "volumes",
					        "\"%.200s\": the only mode "
					        "allowed is ro or rw",
					        s);
				ro = strcmp(c2 + 1, "ro") == 0;
			}
		}
	} else if (json_object_is_type(v, json_type_object)) {
		json_object_object_foreach(v, k, val)
		{
			if (strcmp(k, "type") == 0)
				type = str_of(val) ? str_of(val) : "";
			else if (strcmp(k, "source") == 0)
				src = str_of(val) ? str_of(val) : "";
			else if (strcmp(k, "target") == 0)
				dst = str_of(val);
			else if (strcmp(k, "read_only") == 0 &&
			         json_object_is_type(val, json_type_boolean))
				ro = json_object_get_boolean(val);
			else if (strcmp(k, "volume") == 0 &&
			         json_object_is_type(val, json_type_object) &&
			         json_object_object_length(val) == 0)
				continue; /* compose v2 prints volume: {} */
			else
				return gate_refuse(
				        g, "volumes",
				        "%.64s is not allowed (allowed: "
				        "type, source, target, "
				        "read_only)",
				        k);
		}
		if (strcmp(type, "volume") != 0 && strcmp(type, "tmpfs") != 0)
			return gate_refuse(
			        g, "volumes",
			        "type %.32s is not allowed (rule: a "
			        "preview mounts its own named volumes "
			        "or tmpfs, never a host path)",
			        type);
	} else {
		return gate_refuse(g, "volumes",
		                   "entries are strings or "
		                   "mappings");
	}
	if (!container_path_ok(dst))
		return gate_refuse(g, "volumes",
		                   "the target must be an absolute container "
		                   "path without \"..\"");
	if (src != NULL && strcmp(type, "tmpfs") == 0)
		return gate_refuse(g, "volumes", "a tmpfs has no source");
	if (src != NULL && !json_object_object_get_ex(g->volumes, src, NULL))
		return gate_refuse(
		        g, "volumes",
		        "\"%.200s\" is not a volume declared in this "
		        "file's top-level volumes (rule: a preview "
		        "never mounts a host path or another "
		        "project's volume)",
		        src);
	json_object_object_add(e, "type", json_object_new_string(type));
	if (src != NULL)
		json_object_object_add(e, "source",
		                       json_object_new_string(src));
	json_object_object_add(e, "target", json_object_new_string(dst));
	if (ro)
		json_object_object_add(e, "read_only",
		                       json_object_new_boolean(1));
	return 0;
}

static int
key_volumes(struct gate *g, const char *key, struct json_object *v,
            struct json_object *o)
{
	struct json_object *out = json_object_new_array();
	size_t i;

	json_object_object_add(o, key, out);
	if (!json_object_is_type(v, json_type_array) ||
	    json_object_array_length(v) > 64)
		return gate_refuse(g, key, "must be a list of at most 64");
	for (i = 0; i < json_object_array_length(v); i++)
		if (volume_one(g, json_object_array_get_idx(v, i), out) == -1)
			return -1;
	return 0;
}

static int
key_tmpfs(struct gate *g, const char *key, struct json_object *v,
          struct json_object *o)
{
	struct json_object *out = NULL;
	size_t i;

	if (strings_copy(g, key, v, &out) == -1) {
		json_object_put(out);
		return -1;
	}
	json_object_object_add(o, key, out);
	if (!json_object_is_type(out, json_type_array))
		return container_path_ok(json_object_get_string(out))
		               ? 0
		               : gate_refuse(g, key, "must be container paths");
	for (i = 0; i < json_object_array_length(out); i++)
		if (!container_path_ok(json_object_get_string(
		            json_object_array_get_idx(out, i))))
			return gate_refuse(g, key, "must be container paths");
	return 0;
}

static int
key_working_dir(struct gate *g, const char *key, struct json_object *v,
                struct json_object *o)
{
	if (!container_path_ok(str_of(v)))
		return gate_refuse(g, key,
		                   "must be an absolute container path");
	json_object_object_add(o, key, json_object_get(v));
	return 0;
}

static int
key_user(struct gate *g, const char *key, struct json_object *v,
         struct json_object *o)
{
	const char *s = scalar_of(v);

	if (s == NULL || !chars_ok(s, "._:-", 64))
		return gate_refuse(g, key, "must be a name or uid[:gid]");
	json_object_object_add(o, key, json_object_new_string(s));
	return 0;
}

static int
key_hostname(struct gate *g, const char *key, struct json_object *v,
             struct json_object *o)
{
	const char *s = str_of(v);

	if (s == NULL || !chars_ok(s, ".-", 63))
		return gate_refuse(g, key, "must be [A-Za-z0-9.-]");
	json_object_object_add(o, key, json_object_get(v));
	return 0;
}

/* The PR's own labels stay, except in the namespaces we and Docker use. */
static int
key_labels(struct gate *g, const char *key, struct json_object *v,
           struct json_object *o)
{
	struct json_object *l, *tmp = json_object_new_object();

	json_object_object_get_ex(o, "labels", &l);
	if (kv_take(g, key, v, tmp) == -1) {
		json_object_put(tmp);
		return -1;
	}
	json_object_object_foreach(tmp, k, val)
	{
		if (strncmp(k, "io.ephemera", 11) == 0 ||
		    strncmp(k, "com.docker", 10) == 0) {
			gate_refuse(g, key,
			            "%.64s is in a namespace reserved for "
			            "Ephemera and Docker",
			            k);
			json_object_put(tmp);
			return -1;
		}
		json_object_object_add(l, k, json_object_get(val));
	}
	json_object_put(tmp);
	return 0;
}

static int
key_profiles(struct gate *g, const char *key, struct json_object *v,
             struct json_object *o)
{
	size_t i;

	if (!json_object_is_type(v, json_type_array))
		return gate_refuse(g, key, "must be a list of names");
	for (i = 0; i < json_object_array_length(v); i++) {
		const char *s = str_of(json_object_array_get_idx(v, i));

		if (s == NULL || !compose_name_valid(s))
			return gate_refuse(g, key, "must be a list of names");
	}
	json_object_object_add(o, key, json_object_get(v));
	return 0;
}

static int
key_restart(struct gate *g, const char *key, struct json_object *v,
            struct json_object *o)
{
	const char *s = str_of(v);

	if (s == NULL ||
	    (strcmp(s, "no") != 0 && strcmp(s, "always") != 0 &&
	     strcmp(s, "on-failure") != 0 && strcmp(s, "unless-stopped") != 0))
		return gate_refuse(g, key,
		                   "must be no, always, on-failure or "
		                   "unless-stopped");
	json_object_object_add(o, key, json_object_get(v));
	return 0;
}

static int
key_flag(struct gate *g, const char *key, struct json_object *v,
         struct json_object *o)
{
	if (!json_object_is_type(v, json_type_boolean))
		return gate_refuse(g, key, "must be true or false");
	json_object_object_add(o, key, json_object_get(v));
	return 0;
}

static int
key_stop(struct gate *g, const char *key, struct json_object *v,
         struct json_object *o)
{
	const char *s = scalar_of(v);

	if (s == NULL || !chars_ok(s, ".", 32))
		return gate_refuse(g, key,
		                   "must be a duration or a signal "
		                   "name");
	json_object_object_add(o, key, json_object_new_string(s));
	return 0;
}

/* The service's networks: names of this file's networks, with aliases. */
static int
key_networks(struct gate *g, const char *key, struct json_object *v,
             struct json_object *o)
{
	struct json_object *out = json_object_new_object();
	size_t i;

	json_object_object_add(o, key, out);
	if (json_object_is_type(v, json_type_array)) {
		for (i = 0; i < json_object_array_length(v); i++) {
			const char *s = str_of(json_object_array_get_idx(v, i));

			if (s == NULL ||
			    !json_object_object_get_ex(g->networks, s, NULL))
				return gate_refuse(
				        g, key,
				        "entry %zu is not a network of "
				        "this file",
				        i);
			json_object_object_add(out, s, NULL);
		}
		return 0;
	}
	if (!json_object_is_type(v, json_type_object))
		return gate_refuse(g, key, "must be a list or a mapping");
	json_object_object_foreach(v, name, spec)
	{
		struct json_object *ne = json_object_new_object(), *al;

		json_object_object_add(out, name, ne);
		if (!json_object_object_get_ex(g->networks, name, NULL))
			return gate_refuse(
			        g, key,
			        "\"%.64s\" is not a network of this "
			        "file (rule: a preview joins only its "
			        "own networks)",
			        name);
		if (spec == NULL)
			continue;
		if (!json_object_is_type(spec, json_type_object))
			return gate_refuse(g, key, "%.64s must be a mapping",
			                   name);
		json_object_object_foreach(spec, sk, sv)
		{
			(void)sv;
			if (strcmp(sk, "aliases") != 0)
				return gate_refuse(g, key,
				                   "%.64s.%.64s is not allowed "
				                   "(allowed: aliases)",
				                   name, sk);
		}
		if (json_object_object_get_ex(spec, "aliases", &al)) {
			if (!json_object_is_type(al, json_type_array))
				return gate_refuse(g, key,
				                   "aliases must be a "
				                   "list");
			for (i = 0; i < json_object_array_length(al); i++) {
				const char *s = str_of(
				        json_object_array_get_idx(al, i));

				if (s == NULL || !chars_ok(s, ".-_", 63))
					return gate_refuse(
					        g, key,
					        "aliases must be host "
					        "names");
			}
			json_object_object_add(ne, "aliases",
			                       json_object_get(al));
		}
	}
	return 0;
}

static const struct service_key {
	const char *name;
	int (*fn)(struct gate *, const char *, struct json_object *,
	          struct json_object *);
} service_keys[] = {
        {"image", NULL}, /* decided after build (service_gate) */
        {"build", NULL},
        {"mem_limit", NULL},
        {"pids_limit", NULL},
        {"cpus", NULL},
        {"deploy", NULL},
        {"command", key_command},
        {"entrypoint", key_command},
        {"environment", key_environment},
        {"env_file", key_env_file},
        {"ports", key_ports},
        {"expose", key_ports},
        {"healthcheck", key_healthcheck},
        {"depends_on", key_depends_on},
        {"volumes", key_volumes},
        {"tmpfs", key_tmpfs},
        {"working_dir", key_working_dir},
        {"user", key_user},
        {"hostname", key_hostname},
        {"labels", key_labels},
        {"profiles", key_profiles},
        {"restart", key_restart},
        {"init", key_flag},
        {"tty", key_flag},
        {"stdin_open", key_flag},
        {"read_only", key_flag},
        {"stop_grace_period", key_stop},
        {"stop_signal", key_stop},
        {"networks", key_networks},
};

static const char allowed_keys_text[] =
        "image, build, command, entrypoint, environment, env_file, ports, "
        "expose, healthcheck, depends_on, volumes, tmpfs, working_dir, user, "
        "hostname, labels, profiles, restart, init, tty, stdin_open, "
        "read_only, stop_grace_period, stop_signal, networks, mem_limit, "
        "pids_limit, cpus, deploy.resources.limits";

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

int
service_gate(struct gate *g, const char *name, struct json_object *svc,
             struct json_object **out, struct compose_service *res)
{
	struct json_object *o, *labels, *expose;
	size_t i;

	*out = NULL;
	if (!compose_name_valid(name))
		return gate_refuse(g, "services",
		                   "a service name has characters outside "
		                   "[A-Za-z0-9._-]");
	if (!service_allowed(g->pol->allowed_services, name)) {
		buf_reset(g->why);
		buf_printf(g->why,
		           "services.%s: service \"%s\" is not in this "
		           "repository's allowed services (%s)",
		           name, name, g->pol->allowed_services);
		return -1;
	}
	g->svc = name;
	if (!json_object_is_type(svc, json_type_object))
		return gate_refuse(g, "", "a service must be a mapping");
	*out = o = json_object_new_object();
	labels = json_object_new_object();
	json_object_object_add(o, "labels", labels);
	json_object_object_foreach(svc, key, v)
	{
		for (i = 0; i < NELEM(service_keys); i++)
			if (strcmp(key, service_keys[i].name) == 0)
				break;
		if (strncmp(key, "x-", 2) == 0)
			continue;
		if (i == NELEM(service_keys))
			return gate_refuse(
			        g, key,
			        "not a key previews may use (allowed: "
			        "%s)",
			        allowed_keys_text);
		if (v == NULL && service_keys[i].fn != NULL)
			continue;
		if (service_keys[i].fn != NULL &&
		    service_keys[i].fn(g, key, v, o) == -1)
			return -1;
	}
	if (service_image(g, name, svc, o) == -1 ||
	    service_limits(g, svc, o) == -1)
		return -1;
	gate_labels(g, labels);
	expose_finish(o);
	res->name = xstrdup(name);
	res->port = 0;
	if (json_object_object_get_ex(o, "expose", &expose) &&
	    json_object_array_length(expose) > 0)
		res->port = (int)strtol(
		        json_object_get_string(
		                json_object_array_get_idx(expose, 0)),
		        NULL, 10);
	g->svc = NULL;
	return 0;
}
