/*
 * compose_image.c - a service's image and limits. An image is either one
 * the project builds, from a context and Dockerfile inside the checkout,
 * tagged <project>/s-<service> (a namespace of ours, which teardown
 * removes by name) and labelled like every other object; or a reference
 * under one of the admin's allowed prefixes, never one in our namespace
 * nor an image ID. Memory, pids and CPUs get the admin's defaults and may
 * be asked for up to the admin's ceilings.
 */
#include <json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../workers.h"

static const char *
str_of(struct json_object *o)
{
	return json_object_is_type(o, json_type_string)
	               ? json_object_get_string(o)
	               : NULL;
}

static bool
ref_chars_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 255)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("._-/:@", *s)))
			return false;
	return true;
}

/* A parse_list_any test: `ref` starts with the prefix item. */
static bool
prefix_of(const char *item, size_t n, const char *ref)
{
	return strncmp(ref, item, n) == 0;
}

/* True when `ref` starts with one of the comma-separated prefixes. */
static bool
prefix_allowed(const char *list, const char *ref)
{
	return parse_list_any(list, prefix_of, ref);
}

static void
image_tag(const struct compose_policy *pol, const char *name, struct buf *b)
{
	bool dash = false;

	buf_printf(b, "%s/s-", pol->project);
	for (; *name; name++) {
		char c = *name >= 'A' && *name <= 'Z' ? (char)(*name + 32)
		                                      : *name;

		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
			buf_putc(b, c);
			dash = false;
		} else if (!dash) {
			buf_putc(b, '-');
			dash = true;
		}
	}
	if (dash)
		buf_putc(b, '0');
}

static int
build_args(struct gate *g, struct json_object *v, struct json_object *ob)
{
	struct json_object *args = json_object_new_object();
	size_t i;

	json_object_object_add(ob, "args", args);
	if (json_object_is_type(v, json_type_object)) {
		json_object_object_foreach(v, k, val)
		{
			const char *s =
			        val ? json_object_get_string(val) : NULL;

			if (s == NULL ||
			    json_object_is_type(val, json_type_object) ||
			    json_object_is_type(val, json_type_array))
				return gate_refuse(
				        g, "build.args",
				        "%.64s needs a value (rule: "
				        "nothing is read from the host's "
				        "environment)",
				        k);
			json_object_object_add(args, k,
			                       json_object_new_string(s));
		}
		return 0;
	}
	if (!json_object_is_type(v, json_type_array))
		return gate_refuse(g, "build.args",
		                   "must be a mapping or list");
	for (i = 0; i < json_object_array_length(v); i++) {
		const char *s = str_of(json_object_array_get_idx(v, i));
		const char *eq = s ? strchr(s, '=') : NULL;
		char k[257];

		if (eq == NULL || eq == s || eq - s > 256)
			return gate_refuse(g, "build.args",
			                   "entry %zu is not NAME=value", i);
		snprintf(k, sizeof(k), "%.*s", (int)(eq - s), s);
		json_object_object_add(args, k, json_object_new_string(eq + 1));
	}
	return 0;
}

/* A reference under the admin's prefixes, never ours nor an image ID. */
static bool
image_ref_allowed(const struct compose_policy *pol, const char *ref)
{
	struct buf ns = BUF_INIT;
	bool ok;

	buf_printf(&ns, "%s-", pol->instance ? pol->instance : "eph");
	ok = ref_chars_ok(ref) && strncmp(ref, "sha256:", 7) != 0 &&
	     strncmp(ref, buf_str(&ns), ns.len) != 0 &&
	     strncmp(ref, pol->project, strlen(pol->project)) != 0 &&
	     prefix_allowed(pol->allowed_images, ref);
	buf_free(&ns);
	return ok;
}

static const char *
allowed_list(const struct compose_policy *pol)
{
	return pol->allowed_images && pol->allowed_images[0]
	               ? pol->allowed_images
	               : "none";
}

/* A dockerfile_ref_fn: the images a build starts from, by the same rule. */
static int
base_check(void *arg, const char *what, const char *ref)
{
	struct gate *g = arg;

	if (image_ref_allowed(g->pol, ref))
		return 0;
	return gate_refuse(g, "build.dockerfile",
	                   "%s \"%.200s\" is not an allowed image (rule: a "
	                   "build starts from images under "
	                   "environments.allowed_images / the repository's "
	                   "allowed_images: %s, its own stages or scratch)",
	                   what, ref, allowed_list(g->pol));
}

/* Every image the Dockerfile names passes base_check. */
static int
dockerfile_gate(struct gate *g, const char *rel, struct json_object *ob)
{
	struct buf text = BUF_INIT, why = BUF_INIT;
	struct json_object *args = NULL;
	int rc = -1;

	if (checkout_read(g->pol->src_dir, rel, 1024 * 1024, &text, &why) ==
	    -1) {
		gate_refuse(g, "build.dockerfile", "%s", buf_str(&why));
		goto out;
	}
	json_object_object_get_ex(ob, "args", &args);
	if (dockerfile_refs(buf_str(&text), args, base_check, g, &why) == -1) {
		/* base_check wrote g->why itself; the parser wrote `why`. */
		if (why.len > 0)
			gate_refuse(g, "build.dockerfile", "%s", buf_str(&why));
		goto out;
	}
	rc = 0;
out:
	buf_free(&text);
	buf_free(&why);
	return rc;
}

/* context and dockerfile must resolve (realpath) inside the checkout. */
static int
build_gate(struct gate *g, struct json_object *b, struct json_object *ob)
{
	const char *ctx = str_of(b), *df = "Dockerfile";
	char *real = NULL, *dreal = NULL;
	struct buf p = BUF_INIT;
	struct stat st;
	int rc = -1;

	if (json_object_is_type(b, json_type_object)) {
		ctx = ".";
		json_object_object_foreach(b, k, v)
		{
			if (strcmp(k, "context") == 0 && str_of(v))
				ctx = str_of(v);
			else if (strcmp(k, "dockerfile") == 0 && str_of(v))
				df = str_of(v);
			else if (strcmp(k, "target") == 0 && str_of(v) &&
			         compose_name_valid(str_of(v)))
				json_object_object_add(ob, "target",
				                       json_object_get(v));
			else if (strcmp(k, "args") == 0 && v != NULL) {
				if (build_args(g, v, ob) == -1)
					return -1;
			} else {
				buf_printf(&p, "build.%s", k);
				gate_refuse(g, buf_str(&p),
				            "not allowed (allowed: context, "
				            "dockerfile, args, target)");
				buf_free(&p);
				return -1;
			}
		}
	} else if (ctx == NULL) {
		return gate_refuse(g, "build", "must be a path or a mapping");
	}
	if (strncmp(ctx, "./", 2) == 0 && ctx[2] != '\0')
		ctx += 2;
	real = checkout_path(g->pol->src_dir, ctx);
	if (real == NULL || stat(real, &st) == -1 || !S_ISDIR(st.st_mode)) {
		gate_refuse(
		        g, "build.context",
		        "\"%.200s\" is not a directory inside the repository "
		        "(rule: builds read only the checkout, symlinks "
		        "resolved)",
		        ctx);
		goto out;
	}
	if (df[0] == '/' || strlen(df) > 512 || !ref_chars_ok(df)) {
		gate_refuse(g, "build.dockerfile",
		            "must be a relative path inside the build context");
		goto out;
	}
	buf_printf(&p, "%s/%s",
	           real + strlen(g->pol->src_dir) +
	                   (real[strlen(g->pol->src_dir)] == '/'),
	           df);
	dreal = checkout_path(g->pol->src_dir, buf_str(&p));
	if (dreal == NULL || stat(dreal, &st) == -1 || !S_ISREG(st.st_mode)) {
		gate_refuse(g, "build.dockerfile",
		            "\"%.200s\" is not a file inside the repository "
		            "(rule: symlinks resolved)",
		            df);
		goto out;
	}
	if (dockerfile_gate(g, buf_str(&p), ob) == -1)
		goto out;
	if (g->pol->run_src == NULL) {
		json_object_object_add(ob, "context",
		                       json_object_new_string(real));
	} else {
		/* Checked here; built there, from the same commit. */
		struct buf there = BUF_INIT;

		buf_printf(&there, "%s%s", g->pol->run_src,
		           real + strlen(g->pol->src_dir));
		json_object_object_add(ob, "context",
		                       json_object_new_string(buf_str(&there)));
		buf_free(&there);
	}
	/* Relative to the context where it is inside it, as compose wants. */
	json_object_object_add(
	        ob, "dockerfile",
	        json_object_new_string(path_under(dreal, real)
	                                       ? dreal + strlen(real) + 1
	                                       : dreal));
	/*
	 * No build labels: Docker's legacy builder turns each into a step of
	 * its own (about a second per image here). The image is ours by its
	 * tag, <project>/s-<service>, a namespace no compose file may name;
	 * teardown and the sweep go by that tag.
	 */
	rc = 0;
out:
	free(real);
	free(dreal);
	buf_free(&p);
	return rc;
}

int
service_image(struct gate *g, const char *name, struct json_object *svc,
              struct json_object *o)
{
	struct json_object *b, *img;
	const char *ref;
	struct buf t = BUF_INIT;

	if (json_object_object_get_ex(svc, "build", &b) && b != NULL) {
		struct json_object *ob = json_object_new_object();

		json_object_object_add(o, "build", ob);
		if (!g->pol->allow_build)
			return gate_refuse(
			        g, "build",
			        "this installation does not build "
			        "images (rule: environments.allow_build"
			        " or the repository's build = false)");
		if (build_gate(g, b, ob) == -1)
			return -1;
		/* Whatever image: the PR named, the built one is ours. */
		image_tag(g->pol, name, &t);
		json_object_object_add(o, "image",
		                       json_object_new_string(buf_str(&t)));
		buf_free(&t);
		return 0;
	}
	if (!json_object_object_get_ex(svc, "image", &img) ||
	    (ref = str_of(img)) == NULL)
		return gate_refuse(g, "image",
		                   "a service needs an image or a build");
	if (!image_ref_allowed(g->pol, ref))
		return gate_refuse(
		        g, "image",
		        "\"%.200s\" is not an allowed image (rule: "
		        "images the project builds, or under "
		        "environments.allowed_images / the repository's"
		        " allowed_images: %s)",
		        ref, allowed_list(g->pol));
	json_object_object_add(o, "image", json_object_get(img));
	return 0;
}

/* "512m", "1g", "1024k", "100b" or bytes; -1 if not a size. */
static int64_t
bytes_of(struct json_object *v)
{
	const char *s;
	char *end;
	double n;
	int64_t mul = 1;

	if (json_object_is_type(v, json_type_int))
		return json_object_get_int64(v);
	if ((s = str_of(v)) == NULL)
		return -1;
	n = strtod(s, &end);
	if (end == s || n < 0)
		return -1;
	if (*end == 'k' || *end == 'K')
		mul = 1024, end++;
	else if (*end == 'm' || *end == 'M')
		mul = 1024 * 1024, end++;
	else if (*end == 'g' || *end == 'G')
		mul = 1024 * 1024 * 1024, end++;
	else if (*end == 'b' || *end == 'B')
		end++;
	if ((*end == 'b' || *end == 'B') && mul > 1)
		end++;
	if (*end != '\0' || n * (double)mul > 1e15)
		return -1;
	return (int64_t)(n * (double)mul);
}

static double
number_of(struct json_object *v)
{
	char *end;
	double d;

	if (json_object_is_type(v, json_type_int) ||
	    json_object_is_type(v, json_type_double))
		return json_object_get_double(v);
	if (str_of(v) == NULL)
		return -1;
	d = strtod(str_of(v), &end);
	return *end == '\0' && end != str_of(v) ? d : -1;
}

/* deploy: only resources.limits {memory, cpus, pids}. */
static int
deploy_limits(struct gate *g, struct json_object *d, struct json_object **mem,
              struct json_object **cpus, struct json_object **pids)
{
	struct json_object *r, *l;

	if (!json_object_is_type(d, json_type_object))
		return gate_refuse(g, "deploy", "must be a mapping");
	json_object_object_foreach(d, k, v)
	{
		(void)v;
		if (strcmp(k, "resources") != 0)
			return gate_refuse(g, "deploy",
			                   "%.64s is not allowed (allowed: "
			                   "resources.limits)",
			                   k);
	}
	if (!json_object_object_get_ex(d, "resources", &r))
		return 0;
	if (!json_object_is_type(r, json_type_object))
		return gate_refuse(g, "deploy.resources", "must be a mapping");
	json_object_object_foreach(r, rk, rv)
	{
		(void)rv;
		if (strcmp(rk, "limits") != 0 &&
		    strcmp(rk, "reservations") != 0)
			return gate_refuse(g, "deploy.resources",
			                   "%.64s is not allowed (allowed: "
			                   "limits)",
			                   rk);
	}
	if (json_object_object_get_ex(r, "reservations", &l))
		return gate_refuse(
		        g, "deploy.resources.reservations",
		        "not allowed (rule: devices and reservations "
		        "are the host's; allowed: limits)");
	if (!json_object_object_get_ex(r, "limits", &l))
		return 0;
	if (!json_object_is_type(l, json_type_object))
		return gate_refuse(g, "deploy.resources.limits",
		                   "must be a mapping");
	json_object_object_foreach(l, lk, lv)
	{
		if (strcmp(lk, "memory") == 0)
			*mem = lv;
		else if (strcmp(lk, "cpus") == 0)
			*cpus = lv;
		else if (strcmp(lk, "pids") == 0)
			*pids = lv;
		else
			return gate_refuse(
			        g, "deploy.resources.limits",
			        "%.64s is not allowed (allowed: memory,"
			        " cpus, pids)",
			        lk);
	}
	return 0;
}

int
service_limits(struct gate *g, struct json_object *svc, struct json_object *o)
{
	const struct compose_policy *pol = g->pol;
	struct json_object *mem = NULL, *cpus = NULL, *pids = NULL, *d;
	int64_t m = pol->mem_default, p = pol->pids_default;
	double c = pol->cpus_default;
	char text[32];

	if (json_object_object_get_ex(svc, "deploy", &d) && d != NULL &&
	    deploy_limits(g, d, &mem, &cpus, &pids) == -1)
		return -1;
	if (json_object_object_get_ex(svc, "mem_limit", &d) && d != NULL)
		mem = d;
	if (json_object_object_get_ex(svc, "cpus", &d) && d != NULL)
		cpus = d;
	if (json_object_object_get_ex(svc, "pids_limit", &d) && d != NULL)
		pids = d;
	if (mem != NULL) {
		m = bytes_of(mem);
		if (m < 4 * 1024 * 1024 || m > pol->mem_max)
			return gate_refuse(g, "mem_limit",
			                   "must be a size from 4m up to %lldm "
			                   "(rule: environments.memory_max_mb)",
			                   (long long)(pol->mem_max >> 20));
	}
	if (pids != NULL) {
		p = json_object_is_type(pids, json_type_int)
		            ? json_object_get_int64(pids)
		            : -1;
		if (p < 1 || p > pol->pids_max)
			return gate_refuse(g, "pids_limit",
			                   "must be from 1 to %lld (rule: "
			                   "environments.pids_max)",
			                   (long long)pol->pids_max);
	}
	if (cpus != NULL) {
		c = number_of(cpus);
		if (!(c > 0) || c > pol->cpus_max)
			return gate_refuse(
			        g, "cpus",
			        "must be above 0 and at most %g (rule: "
			        "environments.cpus_max)",
			        pol->cpus_max);
	}
	if (m > 0)
		json_object_object_add(o, "mem_limit",
		                       json_object_new_int64(m));
	if (p > 0)
		json_object_object_add(o, "pids_limit",
		                       json_object_new_int64(p));
	if (c > 0) {
		snprintf(text, sizeof(text), "%g", c);
		json_object_object_add(o, "cpus",
		                       json_object_new_double_s(c, text));
	}
	return 0;
}
