/*
 * github_link.c - the Link response header (RFC 8288) as GitHub sends it
 * for pagination:
 *   <https://api.github.com/...?page=2>; rel="next", <...>; rel="last"
 * Pure. Only rel="next" matters to us: every list is walked to its end.
 */
#include <string.h>
#include <strings.h>

#include "../workers.h"

static const char *
skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* True when the parameter list [p, end) has rel="next" (or rel=next). */
static bool
params_have_next(const char *p, const char *end)
{
	while (p < end) {
		const char *semi, *v;
		size_t n;

		p = skip_ws(p);
		if (*p == ';')
			p = skip_ws(p + 1);
		semi = memchr(p, ';', (size_t)(end - p));
		if (semi == NULL)
			semi = end;
		if ((size_t)(semi - p) > 4 && strncasecmp(p, "rel", 3) == 0) {
			v = skip_ws(p + 3);
			if (*v == '=') {
				v = skip_ws(v + 1);
				n = (size_t)(semi - v);
				while (n > 0 && strchr(" \t,", v[n - 1]))
					n--;
				if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
					v++;
					n -= 2;
				}
				/* rel may list several space-separated types. */
				while (n > 0) {
					const char *sp = memchr(v, ' ', n);
					size_t w = sp ? (size_t)(sp - v) : n;

					if (w == 4 &&
					    strncasecmp(v, "next", 4) == 0)
						return true;
					if (sp == NULL)
						break;
					n -= w + 1;
					v = sp + 1;
				}
			}
		}
		p = semi + (semi < end);
	}
	return false;
}

bool
github_link_next(const char *link, struct buf *out)
{
	const char *p = link;

	if (link == NULL)
		return false;
	for (;;) {
		const char *lt, *gt, *end;

		p = skip_ws(p);
		while (*p == ',')
			p = skip_ws(p + 1);
		lt = strchr(p, '<');
		if (lt == NULL)
			return false;
		gt = strchr(lt, '>');
		if (gt == NULL)
			return false;
		/* The parameters run to the next ",<" (a URL has no '<'). */
		end = strchr(gt, '<');
		if (end == NULL)
			end = gt + strlen(gt);
		if (params_have_next(gt + 1, end)) {
			buf_reset(out);
			buf_append(out, lt + 1, (size_t)(gt - lt - 1));
			return !out->failed && out->len > 0;
		}
		p = end;
	}
}
