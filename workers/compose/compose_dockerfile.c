/*
 * compose_dockerfile.c - the images a Dockerfile of the PR builds from.
 *
 * A built image is the project's own, but its Dockerfile names others:
 * FROM, COPY/ADD --from=, RUN --mount=...,from=, ONBUILD's instruction
 * (run by any later stage built on it) and the `# syntax=` directive
 * (BuildKit runs that image as the parser). Any of them could name an
 * image on the engine that is not the PR's to read: another preview's
 * build, or the host's own. The gate holds them to the rule of a
 * service's image (compose_image.c): this file finds them, with ARG
 * values substituted as the builder would, and refuses what it cannot
 * resolve rather than guess.
 */
#include <ctype.h>
#include <json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../workers.h"

#define STAGES_MAX 64
#define ARGS_MAX 64

struct dockerfile {
	struct json_object *build_args; /* the compose file's, or NULL */
	char *arg_name[ARGS_MAX];       /* ARGs declared before the FROMs */
	char *arg_value[ARGS_MAX];      /* NULL: declared without default */
	size_t nargs;
	char *stage[STAGES_MAX]; /* stage names, lowercased */
	size_t nstages;
	char escape;
	dockerfile_ref_fn fn;
	void *arg;
	struct buf *why;
};

static void
lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* The value of ARG `name` for FROM: the compose file's, else its default. */
static const char *
arg_value(const struct dockerfile *df, const char *name, size_t n)
{
	size_t i;

	if (df->build_args != NULL) {
		json_object_object_foreach(df->build_args, k, v)
		{
			if (strlen(k) == n && memcmp(k, name, n) == 0)
				return json_object_get_string(v);
		}
	}
	for (i = df->nargs; i-- > 0;)
		if (strlen(df->arg_name[i]) == n &&
		    memcmp(df->arg_name[i], name, n) == 0)
			return df->arg_value[i] ? df->arg_value[i] : "";
	return "";
}

/* $NAME, ${NAME}, ${NAME:-word}, ${NAME-word}; anything else refused. */
static int
expand(struct dockerfile *df, const char *in, struct buf *out)
{
	const char *p = in;

	while (*p) {
		const char *name, *word = NULL, *end;
		const char *v;
		size_t n, wn = 0;

		if (*p != '$') {
			buf_putc(out, *p++);
			continue;
		}
		p++;
		if (*p == '{') {
			name = ++p;
			while (isalnum((unsigned char)*p) || *p == '_')
				p++;
			n = (size_t)(p - name);
			if (p[0] == ':' && p[1] == '-')
				p++;
			if (*p == '-') {
				word = ++p;
				end = strchr(p, '}');
				if (end == NULL ||
				    memchr(p, '$', (size_t)(end - p)))
					goto bad;
				wn = (size_t)(end - p);
				p = end;
			}
			if (*p != '}' || n == 0)
				goto bad;
			p++;
		} else {
			name = p;
			while (isalnum((unsigned char)*p) || *p == '_')
				p++;
			n = (size_t)(p - name);
			if (n == 0)
				goto bad;
		}
		v = arg_value(df, name, n);
		if (*v == '\0' && word != NULL)
			buf_append(out, word, wn);
		else
			buf_puts(out, v);
	}
	return 0;
bad:
	buf_printf(df->why,
	           "a substitution in \"%.200s\" the gate does not "
	           "resolve (rule: $NAME, ${NAME} or ${NAME:-default} of an "
	           "ARG)",
	           in);
	return -1;
}

static bool
is_stage(const struct dockerfile *df, const char *ref)
{
	struct buf l = BUF_INIT;
	size_t i;
	bool yes = false;

	buf_puts(&l, ref);
	lower(l.data);
	for (i = 0; i < df->nstages && !yes; i++)
		yes = strcmp(df->stage[i], buf_str(&l)) == 0;
	buf_free(&l);
	return yes;
}

/* A --from= of COPY/ADD or a mount: a stage, its index, or an image. */
static int
from_check(struct dockerfile *df, const char *what, const char *ref)
{
	const char *p = ref;

	if (*ref == '\0' || strchr(ref, '$') != NULL) {
		buf_printf(df->why,
		           "%s \"%.200s\" must name a stage or an image", what,
		           ref);
		return -1;
	}
	while (isdigit((unsigned char)*p))
		p++;
	if (*p == '\0' || is_stage(df, ref))
		return 0;
	return df->fn(df->arg, what, ref);
}

static int
arg_declare(struct dockerfile *df, char *rest)
{
	char *tok, *save = NULL;

	for (tok = strtok_r(rest, " \t", &save); tok;
	     tok = strtok_r(NULL, " \t", &save)) {
		char *eq = strchr(tok, '=');
		size_t vn;

		if (df->nargs == ARGS_MAX) {
			buf_puts(df->why, "more than 64 ARGs before FROM");
			return -1;
		}
		df->arg_value[df->nargs] = NULL;
		if (eq != NULL) {
			*eq++ = '\0';
			vn = strlen(eq);
			if (vn >= 2 && (eq[0] == '"' || eq[0] == '\'') &&
			    eq[vn - 1] == eq[0]) {
				eq[vn - 1] = '\0';
				eq++;
			}
			df->arg_value[df->nargs] = xstrdup(eq);
		}
		df->arg_name[df->nargs++] = xstrdup(tok);
	}
	return 0;
}

static int
from_instruction(struct dockerfile *df, char *rest)
{
	char *tok, *save = NULL, *ref = NULL, *as = NULL;
	struct buf x = BUF_INIT;
	int rc = -1;

	for (tok = strtok_r(rest, " \t", &save); tok;
	     tok = strtok_r(NULL, " \t", &save)) {
		if (ref == NULL && strncmp(tok, "--", 2) == 0)
			continue; /* --platform= */
		if (ref == NULL)
			ref = tok;
		else if (as == NULL && strcasecmp(tok, "as") == 0 &&
		         (as = strtok_r(NULL, " \t", &save)) != NULL)
			;
		else {
			buf_printf(df->why,
			           "FROM \"%.200s\" is not IMAGE [AS NAME]",
			           ref);
			goto out;
		}
	}
	if (ref == NULL) {
		buf_puts(df->why, "FROM names no image");
		goto out;
	}
	if (expand(df, ref, &x) == -1)
		goto out;
	if (!is_stage(df, buf_str(&x)) && strcmp(buf_str(&x), "scratch") != 0 &&
	    df->fn(df->arg, "FROM", buf_str(&x)) == -1)
		goto out;
	if (df->nstages == STAGES_MAX) {
		buf_puts(df->why, "more than 64 stages");
		goto out;
	}
	df->stage[df->nstages] = xstrdup(as ? as : "");
	lower(df->stage[df->nstages++]);
	rc = 0;
out:
	buf_free(&x);
	return rc;
}

/* The flags of COPY, ADD or RUN: --from=X, --mount=...,from=X,... */
static int
flags_check(struct dockerfile *df, const char *cmd, char *rest)
{
	char *tok, *save = NULL;

	for (tok = strtok_r(rest, " \t", &save);
	     tok && strncmp(tok, "--", 2) == 0;
	     tok = strtok_r(NULL, " \t", &save)) {
		if (strncmp(tok, "--from=", 7) == 0 &&
		    from_check(df, cmd, tok + 7) == -1)
			return -1;
		if (strncmp(tok, "--mount=", 8) == 0) {
			char *opt, *s2 = NULL;

			for (opt = strtok_r(tok + 8, ",", &s2); opt;
			     opt = strtok_r(NULL, ",", &s2))
				if (strncmp(opt, "from=", 5) == 0 &&
				    from_check(df, "RUN --mount from",
				               opt + 5) == -1)
					return -1;
		}
	}
	return 0;
}

static int
instruction(struct dockerfile *df, char *line, bool onbuild)
{
	char *cmd = line, *rest;

	while (*cmd == ' ' || *cmd == '\t')
		cmd++;
	rest = cmd + strcspn(cmd, " \t");
	if (*rest)
		*rest++ = '\0';
	if (strcasecmp(cmd, "FROM") == 0 && !onbuild)
		return from_instruction(df, rest);
	if (strcasecmp(cmd, "ARG") == 0 && df->nstages == 0 && !onbuild)
		return arg_declare(df, rest);
	if (strcasecmp(cmd, "ONBUILD") == 0 && !onbuild)
		return instruction(df, rest, true);
	if (strcasecmp(cmd, "COPY") == 0 || strcasecmp(cmd, "ADD") == 0 ||
	    strcasecmp(cmd, "RUN") == 0)
		return flags_check(df, cmd, rest);
	return 0;
}

/* Leading `# key=value` lines; the escape one changes line joining. */
static int
directives(struct dockerfile *df, const char **p)
{
	for (;;) {
		const char *s = *p, *eol = strchr(s, '\n');
		size_t n = eol ? (size_t)(eol - s) : strlen(s);
		char line[512], key[32], value[256];

		if (*s != '#' || n >= sizeof(line))
			return 0;
		memcpy(line, s, n);
		line[n] = '\0';
		if (sscanf(line, "# %31[A-Za-z] = %255s", key, value) != 2)
			return 0;
		lower(key);
		if (strcmp(key, "escape") == 0) {
			if (strcmp(value, "\\") != 0 &&
			    strcmp(value, "`") != 0) {
				buf_puts(df->why, "an escape directive that is "
				                  "neither \\ nor `");
				return -1;
			}
			df->escape = value[0];
		} else if (strcmp(key, "syntax") == 0 &&
		           df->fn(df->arg, "syntax", value) == -1) {
			return -1;
		}
		*p = eol ? eol + 1 : s + n;
	}
}

int
dockerfile_refs(const char *text, struct json_object *build_args,
                dockerfile_ref_fn fn, void *arg, struct buf *why)
{
	struct dockerfile df = {.build_args = build_args,
	                        .escape = '\\',
	                        .fn = fn,
	                        .arg = arg,
	                        .why = why};
	struct buf line = BUF_INIT;
	const char *p = text;
	size_t i;
	int rc = -1;

	if (directives(&df, &p) == -1)
		goto out;
	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t n = eol ? (size_t)(eol - p) : strlen(p);
		const char *s = p;
		bool more;

		p = eol ? eol + 1 : p + n;
		while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' ||
		                 s[n - 1] == '\r'))
			n--;
		while (n > 0 && (*s == ' ' || *s == '\t'))
			s++, n--;
		/* Comments go, inside a continued instruction too. */
		if (n > 0 && *s == '#')
			continue;
		more = n > 0 && s[n - 1] == df.escape;
		buf_append(&line, s, more ? n - 1 : n);
		if (more) {
			buf_putc(&line, ' ');
			continue;
		}
		if (line.len > 0 && instruction(&df, line.data, false) == -1)
			goto out;
		buf_reset(&line);
	}
	if (line.len > 0 && instruction(&df, line.data, false) == -1)
		goto out;
	rc = 0;
out:
	for (i = 0; i < df.nargs; i++) {
		free(df.arg_name[i]);
		free(df.arg_value[i]);
	}
	for (i = 0; i < df.nstages; i++)
		free(df.stage[i]);
	buf_free(&line);
	return rc;
}
