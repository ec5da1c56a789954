/*
 * env_list.c - loads environments for the API and the pages. The rows are
 * the database's text, owned by the env_list; times come out of SQL already
 * in ISO 8601 UTC so that no view has to reformat them.
 */
#include <stdlib.h>
#include <string.h>

#include "app.h"

#define ISO(col) "DATE_FORMAT(" col ", '%Y-%m-%dT%H:%i:%sZ')"

int
env_list_load(struct db *db, struct env_list *out)
{
	struct db_rows *rows = NULL;
	size_t i;

	memset(out, 0, sizeof(*out));
	if (db_query(
	            db, &rows,
	            "SELECT id, repo, pr, slug, title, author, desired, phase, "
	            "desired_sha, deployed_sha, url, error, " ISO("created_at") ", " ISO(
	                    "updated_at") " FROM environments "
	                                  "ORDER BY updated_at DESC, id DESC",
	            "") == -1)
		return -1;
	out->n = db_rows_count(rows);
	out->items = xcalloc(out->n, sizeof(*out->items));
	for (i = 0; i < out->n; i++) {
		struct env_view *e = &out->items[i];
		char **f[] = {&e->id,           &e->repo,      &e->pr,
		              &e->slug,         &e->title,     &e->author,
		              &e->desired,      &e->phase,     &e->sha,
		              &e->deployed_sha, &e->url,       &e->error,
		              &e->created_at,   &e->updated_at};
		size_t c;

		for (c = 0; c < NELEM(f); c++) {
			const char *v = db_rows_get(rows, i, c);

			*f[c] = v ? xstrdup(v) : NULL;
		}
	}
	db_rows_free(rows);
	return 0;
}

void
env_list_free(struct env_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		struct env_view *e = &l->items[i];

		free(e->id), free(e->repo), free(e->pr), free(e->slug);
		free(e->title), free(e->author), free(e->desired);
		free(e->phase), free(e->sha), free(e->deployed_sha);
		free(e->url), free(e->error), free(e->created_at);
		free(e->updated_at);
	}
	free(l->items);
	memset(l, 0, sizeof(*l));
}
