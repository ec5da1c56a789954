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

static const char *const known[] = {"compose_file", "primary_service",
                                    "expose",       "health_path",
                                    "build",        "access_bypass"};

#define BYPASS_MAX 8

/*
 * "/webhooks/" or "/webhooks/" + "*": safe characters, a star only last,
 * and no "." or ".." segment nor "//": the admin's rule is a prefix, and
 * "/webhooks/../admin" would pass it while naming another path to
 * whatever normalises it.
 */
static bool
bypass_path_valid(const char *s)
{
	size_t n = strlen(s);

	if (s[0] != '/' || n > 200 || strstr(s, "//") != NULL ||
	    strstr(s, "/./") != NULL || strstr(s, "/../") != NULL ||
	    (n >= 2 && strcmp(s + n - 2, "/.") == 0) ||
	    (n >= 3 && strcmp(s + n - 3, "/..") == 0))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || strchr("/-_.~", s[i]) ||
		      (s[i] == '*' && i == n - 1)))
			return false;
	return true;
}

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
			           "expose, health_path, build, "
			           "access_bypass)",
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
	if ((s = config_lookup(&cf, "access_bypass")) != NULL) {
		n = config_setting_is_aggregate(s) ? config_setting_length(s)
		                                   : -1;
		if (n < 0 || n > BYPASS_MAX) {
			buf_printf(why,
			           ".ephemera.conf:%d: access_bypass must be "
			           "a list of at most %d paths",
			           config_setting_source_line(s), BYPASS_MAX);
			goto out;
		}
		rs->bypass = xcalloc((size_t)n + 1, sizeof(char *));
		for (i = 0; i < n; i++) {
			const char *v = config_setting_get_string_elem(s, i);

			if (v == NULL || !bypass_path_valid(v)) {
				buf_printf(why,
				           ".ephemera.conf:%d: access_bypass "
				           "entry %d is not a path like "
				           "\"/webhooks/*\"",
				           config_setting_source_line(s), i);
				goto out;
			}
			rs->bypass[rs->nbypass++] = xstrdup(v);
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

/* A parse_list_any test: `path` is the item, or under it when the item
 * ends in a star. */
static bool
bypass_allows(const char *item, size_t n, const char *path)
{
	return (strlen(path) == n && strncmp(path, item, n) == 0) ||
	       (item[n - 1] == '*' && strncmp(path, item, n - 1) == 0);
}

int
repo_settings_cap(const struct repo_settings *rs,
                  const struct repo_config *admin, struct buf *why)
{
	const char *list = admin ? admin->access_bypass : NULL;
	size_t i;

	for (i = 0; i < rs->nbypass; i++)
		if (!parse_list_any(list, bypass_allows, rs->bypass[i])) {
			buf_printf(why,
			           ".ephemera.conf: access_bypass \"%s\" is "
			           "not allowed (rule: the repository's "
			           "access_bypass in the admin's repos entry: "
			           "%s)",
			           rs->bypass[i],
			           list && *list ? list : "none");
			return -1;
		}
	return 0;
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
	for (i = 0; i < rs->nbypass; i++)
		free(rs->bypass[i]);
	free(rs->bypass);
	memset(rs, 0, sizeof(*rs));
}
