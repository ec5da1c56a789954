/*
 * fuzz_status.c - libFuzzer over what reaches the status pages from
 * outside: a query string (everything before the first NUL) and hostile
 * text (the rest) placed in every attacker-controlled field of an
 * environment, a build, its steps and a job failure.
 *
 * Invariants beyond "no crash, no leak, no UB": the hostile text never
 * adds markup (each page has exactly as many '<', '>', '"' and '\'' as the
 * same page rendered with harmless text), the JSON parses and holds no
 * '<', a next-page query string has only URL-safe bytes, and a metric
 * label has no raw newline or unescaped quote.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../fcgi-app/app.h"

/* Names the broken invariant before the crash libFuzzer records. */
#define must(ok)                                                               \
	do {                                                                   \
		if (!(ok)) {                                                   \
			fprintf(stderr, "invariant failed: %s (line %d)\n",    \
			        #ok, __LINE__);                                \
			abort();                                               \
		}                                                              \
	} while (0)

static void
counts(const struct buf *b, size_t out[4])
{
	static const char marks[] = "<>\"'";
	size_t i, k;

	memset(out, 0, 4 * sizeof(size_t));
	for (i = 0; i < b->len; i++)
		for (k = 0; k < 4; k++)
			if (b->data[i] == marks[k])
				out[k]++;
}

/* Renders every page with `t` in every hostile field. */
static void
render(const char *t, struct buf *html, struct buf *json)
{
	struct step_view steps[] = {
	        {(char *)t, "succeeded", (char *)t, "2026-01-01T00:00:00Z",
	         "2026-01-01T00:00:04Z", 1767225600, 1767225604},
	        {(char *)t, (char *)t, NULL, "2026-01-01T00:00:04Z", NULL,
	         1767225604, -1}};
	struct build_view bv = {"9",       "abc",       (char *)t,
	                        (char *)t, (char *)t,   "2026-01-01T00:00:00Z",
	                        NULL,      1767225600,  -1,
	                        steps,     NELEM(steps)};
	struct build_list bl = {&bv, 1};
	struct service_view svc[] = {{(char *)t, (char *)t, false},
	                             {"web", (char *)t, true}};
	struct env_view e = {.services = svc,
	                     .nservices = NELEM(svc),
	                     .id = "1",
	                     .repo = (char *)t,
	                     .pr = "7",
	                     .slug = "pr-7-x",
	                     .title = (char *)t,
	                     .author = (char *)t,
	                     .desired = (char *)t,
	                     .phase = (char *)t,
	                     .sha = (char *)t,
	                     .url = (char *)t,
	                     .error = (char *)t,
	                     .created_at = (char *)t,
	                     .updated_at = "2026-01-01T00:00:00Z",
	                     .branch = (char *)t,
	                     .build_id = "9",
	                     .build_status = (char *)t,
	                     .build_started_at = (char *)t,
	                     .build_seconds = 5,
	                     .instance_seconds = 3600,
	                     .cost = 0.02};
	struct env_list l = {&e, 1};
	char *repos[] = {(char *)t};
	struct env_filter f = {(char *)t, (char *)t, 2, 1};
	struct env_counts c = {3, (char **)repos, (int64_t[]){3}, 1};
	struct index_view v = {&l,         &f,   &c,
	                       repos,      1,    "https://github.com",
	                       1767229200, 0.02, 10};
	struct job_count jc = {(char *)t, "dead", 1};
	struct job_failure jf = {
	        "3", (char *)t, "1",       "dead",
	        "5", "5",       (char *)t, "2026-01-01T00:00:00Z"};
	struct jobs_view jv = {1, 0, 0, 1, 0, 12, &jc, 1, &jf, 1};

	env_list_html(&v, html);
	env_page_html(&e, &bl, "https://github.com", 1767229200, html);
	jobs_view_html(&jv, 1767229200, html);
	env_list_json(&l, "https://github.com", json);
	buf_putc(json, '\n');
	env_view_json(&e, "https://github.com", json);
	buf_putc(json, '\n');
	build_list_json(&bl, 1767229200, json);
	buf_putc(json, '\n');
	jobs_view_json(&jv, json);
}

static void
json_lines_ok(const struct buf *json)
{
	const char *p = json->data;

	must(memchr(json->data, '<', json->len) == NULL);
	while (p && *p) {
		const char *nl = strchr(p, '\n');
		char *line = xstrndup(p, nl ? (size_t)(nl - p) : strlen(p));

		if (line[0] != '\0') {
			struct json_object *o = json_tokener_parse(line);

			must(o != NULL);
			json_object_put(o);
		}
		free(line);
		p = nl ? nl + 1 : NULL;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	const uint8_t *nul = memchr(data, 0, size);
	size_t qlen = nul ? (size_t)(nul - data) : size;
	char *query = xstrndup((const char *)data, qlen);
	char *text = nul ? xstrndup((const char *)nul + 1, size - qlen - 1)
	                 : xstrdup("");
	char *plain = xstrdup(text);
	struct request req = {.method = "GET", .path = "/", .query = query};
	struct buf h1 = BUF_INIT, h2 = BUF_INIT, j = BUF_INIT, q = BUF_INIT;
	struct buf why = BUF_INIT;
	struct env_filter f;
	size_t c1[4], c2[4], i;

	if (!init) {
		log_init("fuzz", LOG_ERROR);
		init = true;
	}
	if (env_filter_parse(&req, &f, &why) == 0) {
		must(f.page >= 1 && f.per_page >= 1 &&
		     f.per_page <= ENV_PAGE_MAX);
		env_filter_query(&f, f.page + 1, &q);
		for (i = 0; i < q.len; i++)
			must(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
			            "qrstuvwxyz0123456789-._~%?&=",
			            q.data[i]) != NULL);
		env_filter_free(&f);
	} else {
		must(why.len > 0);
	}
	/* The same shape of text without any character that matters. */
	for (i = 0; plain[i]; i++)
		if (strchr("<>\"'", plain[i]))
			plain[i] = 'x';
	render(text, &h1, &j);
	render(plain, &h2, &q);
	counts(&h1, c1);
	counts(&h2, c2);
	must(memcmp(c1, c2, sizeof(c1)) == 0);
	json_lines_ok(&j);
	buf_reset(&q);
	metrics_label(&q, text);
	for (i = 0; i < q.len; i++) {
		must(q.data[i] != '\n');
		if (q.data[i] == '\\')
			i++; /* an escape pair */
		else
			must(q.data[i] != '"');
	}
	buf_free(&h1);
	buf_free(&h2);
	buf_free(&j);
	buf_free(&q);
	buf_free(&why);
	free(query);
	free(text);
	free(plain);
	return 0;
}
