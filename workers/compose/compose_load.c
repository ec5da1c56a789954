/*
 * compose_load.c - from a checkout to the model compose runs, without any
 * tool reading the PR's files first: the checkout's symlinks are checked,
 * the compose file is read by us (inside the checkout, size capped),
 * parsed by yaml.c, interpolated with our variables only, and gated.
 */
#include <json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../workers.h"

static const char *const usual_names[] = {"compose.yaml", "compose.yml",
                                          "docker-compose.yaml",
                                          "docker-compose.yml"};

static bool
rel_path_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 255 || s[0] == '/' || strstr(s, "..") != NULL)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("._/-", *s)))
			return false;
	return true;
}

int
compose_load_gate(const struct compose_load *l,
                  const struct compose_policy *pol, struct json_object **out,
                  struct compose_result *res, struct buf *why)
{
	struct buf text = BUF_INIT, err = BUF_INIT;
	struct json_object *raw = NULL, *in = NULL;
	const char *file = l->compose_file;
	size_t i;
	int rc = -1;

	*out = NULL;
	memset(res, 0, sizeof(*res));
	if (checkout_check(pol->src_dir, why) == -1)
		return -1;
	for (i = 0; file == NULL && i < NELEM(usual_names); i++) {
		char *p = checkout_path(pol->src_dir, usual_names[i]);
		struct stat st;

		if (p != NULL && lstat(p, &st) == 0 && S_ISREG(st.st_mode))
			file = usual_names[i];
		free(p);
	}
	if (file == NULL) {
		buf_puts(why, "no compose file found (compose.yaml, "
		              "docker-compose.yml)");
		return -1;
	}
	if (!rel_path_ok(file)) {
		buf_puts(why, "compose_file: must be a relative path of "
		              "[A-Za-z0-9._/-] inside the repository");
		return -1;
	}
	if (checkout_read(pol->src_dir, file, YAML_MAX_BYTES, &text, &err) ==
	    -1) {
		buf_printf(why, "compose_file: %s", buf_str(&err));
		goto out;
	}
	if ((raw = yaml_to_json(text.data ? text.data : "", text.len, &err)) ==
	    NULL) {
		buf_printf(why, "%s: %s", file, buf_str(&err));
		goto out;
	}
	if ((in = json_interpolate(raw, l->vars, why)) == NULL)
		goto out;
	rc = compose_gate(in, pol, out, res, why);
out:
	json_object_put(raw);
	json_object_put(in);
	buf_free(&text);
	buf_free(&err);
	return rc;
}
