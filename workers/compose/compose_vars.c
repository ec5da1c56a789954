/*
 * compose_vars.c - the text transformations around the gate: variable
 * interpolation done by us (compose would read variables from its own
 * environment and a `.env` of the PR's choosing), `$` escaped in what we
 * hand to compose so it interpolates nothing, env files read from inside
 * the checkout, and the filter compose's and Docker's output passes before
 * it is stored or shown.
 */
#include <json.h>
#include <stdlib.h>
#include <string.h>

#include "../workers.h"

static const char *
var_get(const char *const *vars, const char *name, size_t n)
{
	for (; vars && *vars; vars++)
		if (strncmp(*vars, name, n) == 0 && (*vars)[n] == '=')
			return *vars + n + 1;
	return NULL;
}

static bool
var_char(char c, bool first)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
	       (!first && c >= '0' && c <= '9');
}

/*
 * "$$", "$NAME", "${NAME}", "${NAME:-default}", "${NAME-default}",
 * "${NAME:?message}", "${NAME?message}": compose's forms. An unset
 * variable is empty, as in compose.
 */
int
vars_interpolate(const char *s, const char *const *vars, struct buf *out,
                 struct buf *why)
{
	while (*s) {
		const char *name, *val, *end;
		size_t n;

		if (*s != '$') {
			buf_putc(out, *s++);
			continue;
		}
		s++;
		if (*s == '$') {
			buf_putc(out, *s++);
			continue;
		}
		if (*s != '{') {
			for (name = s; var_char(*s, s == name); s++)
				;
			if (s == name)
				goto bad;
			val = var_get(vars, name, (size_t)(s - name));
			buf_puts(out, val ? val : "");
			continue;
		}
		name = ++s;
		while (var_char(*s, s == name))
			s++;
		n = (size_t)(s - name);
		if (n == 0 || (end = strchr(s, '}')) == NULL)
			goto bad;
		val = var_get(vars, name, n);
		if (*s == '}') {
			buf_puts(out, val ? val : "");
		} else if (strncmp(s, ":-", 2) == 0 || *s == '-') {
			const char *d = s + (*s == ':' ? 2 : 1);
			bool use = val == NULL || (*s == ':' && val[0] == '\0');

			if (memchr(d, '$', (size_t)(end - d)) != NULL)
				goto bad;
			if (use)
				buf_append(out, d, (size_t)(end - d));
			else
				buf_puts(out, val);
		} else if (strncmp(s, ":?", 2) == 0 || *s == '?') {
			if (val == NULL || (*s == ':' && val[0] == '\0')) {
				buf_printf(why,
				           "variable %.*s is required by the "
				           "compose file and not set",
				           (int)n, name);
				return -1;
			}
			buf_puts(out, val);
		} else {
			goto bad;
		}
		s = end + 1;
	}
	return 0;
bad:
	buf_puts(why, "a value holds a `$` that is not a variable "
	              "(write `$$` for a literal one)");
	return -1;
}

/* A new tree with every string value interpolated (keys stay). */
struct json_object *
json_interpolate(struct json_object *in, const char *const *vars,
                 struct buf *why)
{
	struct json_object *out;
	size_t i;

	switch (json_object_get_type(in)) {
	case json_type_string: {
		struct buf b = BUF_INIT;

		if (vars_interpolate(json_object_get_string(in), vars, &b,
		                     why) == -1) {
			buf_free(&b);
			return NULL;
		}
		out = json_object_new_string_len(b.data ? b.data : "",
		                                 (int)b.len);
		buf_free(&b);
		return out;
	}
	case json_type_object:
		out = json_object_new_object();
		json_object_object_foreach(in, k, v)
		{
			struct json_object *c = NULL;

			if (v != NULL &&
			    (c = json_interpolate(v, vars, why)) == NULL) {
				json_object_put(out);
				return NULL;
			}
			json_object_object_add(out, k, c);
		}
		return out;
	case json_type_array:
		out = json_object_new_array();
		for (i = 0; i < json_object_array_length(in); i++) {
			struct json_object *item = json_object_array_get_idx(in,
			                                                     i),
			                   *c = NULL;

			if (item != NULL &&
			    (c = json_interpolate(item, vars, why)) == NULL) {
				json_object_put(out);
				return NULL;
			}
			json_object_array_add(out, c);
		}
		return out;
	default:
		return json_object_get(in);
	}
}

static struct json_object *
dollar_doubled(const char *s)
{
	struct buf b = BUF_INIT;
	struct json_object *o;

	for (; *s; s++) {
		if (*s == '$')
			buf_putc(&b, '$');
		buf_putc(&b, *s);
	}
	o = json_object_new_string(buf_str(&b));
	buf_free(&b);
	return o;
}

static bool
has_dollar(struct json_object *v)
{
	return json_object_is_type(v, json_type_string) &&
	       strchr(json_object_get_string(v), '$') != NULL;
}

/* Doubles every `$` in string values, so compose interpolates nothing. */
void
json_dollar_escape(struct json_object *o)
{
	size_t i;

	if (json_object_is_type(o, json_type_object)) {
		json_object_object_foreach(o, k, v)
		{
			if (has_dollar(v))
				json_object_object_add(
				        o, k,
				        dollar_doubled(
				                json_object_get_string(v)));
			else
				json_dollar_escape(v);
		}
	} else if (json_object_is_type(o, json_type_array)) {
		for (i = 0; i < json_object_array_length(o); i++) {
			struct json_object *v = json_object_array_get_idx(o, i);

			if (has_dollar(v))
				json_object_array_put_idx(
				        o, i,
				        dollar_doubled(
				                json_object_get_string(v)));
			else
				json_dollar_escape(v);
		}
	}
}

/*
 * An env file's KEY=VALUE lines into `env` (keys already there win, as
 * `environment:` wins over `env_file:` in compose). A line without `=`
 * would make compose read the host's environment: refused.
 */
int
env_file_parse(const char *text, struct json_object *env, struct buf *why)
{
	const char *line = text;

	while (*line) {
		const char *nl = strchr(line, '\n'), *eq;
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		struct buf k = BUF_INIT, v = BUF_INIT;

		while (len > 0 &&
		       (line[len - 1] == '\r' || line[len - 1] == ' '))
			len--;
		if (len > 0 && line[0] != '#') {
			eq = memchr(line, '=', len);
			if (eq == NULL || eq == line) {
				buf_puts(why,
				         "env_file: a line has no NAME=value "
				         "(rule: values are never read from "
				         "the host's environment)");
				return -1;
			}
			buf_append(&k, line, (size_t)(eq - line));
			buf_append(&v, eq + 1, len - (size_t)(eq - line) - 1);
			if (!json_object_object_get_ex(env, buf_str(&k), NULL))
				json_object_object_add(
				        env, buf_str(&k),
				        json_object_new_string(buf_str(&v)));
		}
		buf_free(&k);
		buf_free(&v);
		line += len;
		while (*line == '\r' || *line == ' ')
			line++;
		if (*line == '\n')
			line++;
		else if (nl)
			line = nl + 1;
	}
	return 0;
}

/*
 * Compose's and Docker's output on its way to the build log, the status
 * page and the PR: the work dir (which names the host's layout) becomes
 * ".", control characters go (terminal escapes), and a line is cut at 400
 * bytes. It cannot quote a host file because compose and Docker read none:
 * compose gets only compose.json, builds only contexts inside the checkout
 * (a container path such as /etc/app.conf in a build step is the image's,
 * and stays readable).
 */
void
log_filter(const char *in, size_t len, const char *workdir, struct buf *out)
{
	size_t i = 0, col = 0, wl = workdir ? strlen(workdir) : 0;

	while (i < len) {
		char c = in[i];

		if (c == '\n' || c == '\r') {
			buf_putc(out, c);
			col = 0;
			i++;
			continue;
		}
		if (col >= 400) {
			i++;
			continue;
		}
		if (wl > 0 && len - i >= wl &&
		    memcmp(in + i, workdir, wl) == 0) {
			buf_putc(out, '.');
			i += wl, col++;
			continue;
		}
		if ((unsigned char)c < 0x20 && c != '\t')
			c = ' ';
		buf_putc(out, c);
		i++, col++;
	}
}
