/*
 * repo_conf.c - a repository's own .ephemera.conf (libconfig syntax): which
 * compose file, which service is primary, which are exposed, the health
 * path, build or prebuilt images. It is read from the PR's checkout, so it
 * is attacker-controlled: it is read by us from inside the checkout (a
 * symlink leaving it is refused, the size is capped), `@include` is
 * refused before libconfig sees the text (libconfig 1.5 cannot turn it
 * off, and would read any host file it names), every value is checked,
 * unknown settings are errors, and the admin's configuration caps the
 * rest (compose.c). Errors name the line and setting, never file contents.
 */
#include <errno.h>
#include <libconfig.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../workers.h"

static const char *const known[] = {"compose_file", "primary_service", "expose",
                                    "health_path", "build"};

static bool
health_path_valid(const char *s)
{
	if (s[0] != '/' || strlen(s) > 200)
		return false;
	for (; *s; s++)
		if (*s <= ' ' || *s == 0x7f || *s == '"' || *s == '\\' ||
		    *s == ';' || *s == '{' || *s == '}' || *s == '$')
			return false;
	return true;
}

static int
string_get(config_setting_t *s, const char *name, char **out, struct buf *why)
{
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		buf_printf(why, ".ephemera.conf:%d: %s must be a string",
		           config_setting_source_line(s), name);
		return -1;
	}
	*out = xstrdup(config_setting_get_string(s));
	return 0;
}

int
repo_settings_load(const char *src, struct repo_settings *rs, struct buf *why)
{
	config_t cf;
	config_setting_t *root, *s;
	struct buf text = BUF_INIT, err = BUF_INIT;
	struct buf path = BUF_INIT;
	struct stat st;
	int i, n, rc = -1;

	memset(rs, 0, sizeof(*rs));
	rs->build = true;
	rs->health_path = xstrdup("/");
	buf_printf(&path, "%s/.ephemera.conf", src);
	if (lstat(buf_str(&path), &st) == -1) {
		buf_free(&path);
		return errno == ENOENT ? 0 : -1;
	}
	buf_free(&path);
	config_init(&cf);
	if (checkout_read(src, ".ephemera.conf", 64 * 1024, &text, &err) ==
	    -1) {
		buf_printf(
		        why,
		        ".ephemera.conf: %s (rule: a regular file inside the "
		        "repository, at most 64 KiB)",
		        buf_str(&err));
		goto out;
	}
	if (memchr(text.data ? text.data : "", '@', text.len) != NULL ||
	    memchr(text.data ? text.data : "", '\0', text.len) != NULL) {
		buf_puts(why, ".ephemera.conf: @include is not allowed (rule: "
		              "the file may not contain '@' or NUL bytes)");
		goto out;
	}
	if (config_read_string(&cf, buf_str(&text)) != CONFIG_TRUE) {
		buf_printf(why, ".ephemera.conf:%d: %s", config_error_line(&cf),
		           config_error_text(&cf));
		goto out;
	}
	root = config_root_setting(&cf);
	n = config_setting_length(root);
	for (i = 0; i < n; i++) {
		const char *name = config_setting_name(
		        config_setting_get_elem(root, (unsigned)i));
		size_t k;
		bool ok = false;

		for (k = 0; k < NELEM(known); k++)
			ok |= strcmp(name, known[k]) == 0;
		if (!ok) {
			buf_printf(why,
			           ".ephemera.conf: unknown setting \"%s\""
			           " (known: compose_file, primary_service, "
			           "expose, health_path, build)",
			           name);
			goto out;
		}
	}
	if ((s = config_lookup(&cf, "compose_file")) != NULL &&
	    string_get(s, "compose_file", &rs->compose_file, why) == -1)
		goto out;
	if (rs->compose_file && (rs->compose_file[0] == '/' ||
	                         strstr(rs->compose_file, "..") != NULL)) {
		buf_puts(why, ".ephemera.conf: compose_file must be a path "
		              "inside the repository");
		goto out;
	}
	if ((s = config_lookup(&cf, "primary_service")) != NULL &&
	    string_get(s, "primary_service", &rs->primary_service, why) == -1)
		goto out;
	if ((s = config_lookup(&cf, "health_path")) != NULL) {
		free(rs->health_path);
		rs->health_path = NULL;
		if (string_get(s, "health_path", &rs->health_path, why) == -1)
			goto out;
		if (!health_path_valid(rs->health_path)) {
			buf_puts(why, ".ephemera.conf: health_path must start "
			              "with / and hold no spaces or quotes");
			goto out;
		}
	}
	if ((s = config_lookup(&cf, "build")) != NULL) {
		if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
			buf_puts(why, ".ephemera.conf: build must be true or "
			              "false");
			goto out;
		}
		rs->build = config_setting_get_bool(s);
	}
	if ((s = config_lookup(&cf, "expose")) != NULL) {
		if (!config_setting_is_aggregate(s)) {
			buf_puts(why, ".ephemera.conf: expose must be a list "
			              "of service names");
			goto out;
		}
		n = config_setting_length(s);
		rs->expose = xcalloc((size_t)n + 1, sizeof(char *));
		for (i = 0; i < n; i++) {
			const char *v = config_setting_get_string_elem(s, i);

			if (v == NULL || !compose_name_valid(v)) {
				buf_puts(why, ".ephemera.conf: expose holds "
				              "an invalid service name");
				goto out;
			}
			rs->expose[rs->nexpose++] = xstrdup(v);
		}
	}
	if (rs->primary_service && !compose_name_valid(rs->primary_service)) {
		buf_puts(why, ".ephemera.conf: primary_service is not a valid "
		              "service name");
		goto out;
	}
	rc = 0;
out:
	config_destroy(&cf);
	buf_free(&text);
	buf_free(&err);
	return rc;
}

void
repo_settings_free(struct repo_settings *rs)
{
	size_t i;

	if (rs == NULL)
		return;
	free(rs->compose_file);
	free(rs->primary_service);
	free(rs->health_path);
	for (i = 0; i < rs->nexpose; i++)
		free(rs->expose[i]);
	free(rs->expose);
	memset(rs, 0, sizeof(*rs));
}
