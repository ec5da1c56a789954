/*
 * services.c - reads the services column the reconcile engine writes.
 * json-c ownership: the tokener's root object is ours and put once at the
 * end; strings are copied out before that.
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

static const char *
member_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

int
services_parse(const char *json, struct service_view **out, size_t *n)
{
	struct json_object *root;
	size_t i, len, k = 0;

	*out = NULL;
	*n = 0;
	if (json == NULL || json[0] == '\0')
		return 0;
	root = json_tokener_parse(json);
	if (root == NULL || !json_object_is_type(root, json_type_array)) {
		json_object_put(root);
		return -1;
	}
	len = json_object_array_length(root);
	*out = xcalloc(len ? len : 1, sizeof(**out));
	for (i = 0; i < len; i++) {
		struct json_object *o = json_object_array_get_idx(root, i);
		struct json_object *p;
		const char *name = member_str(o, "name");
		const char *url = member_str(o, "url");
		struct service_view *s;

		if (name == NULL || url == NULL)
			continue;
		s = &(*out)[k++];
		s->name = xstrdup(name);
		s->url = xstrdup(url);
		s->primary = json_object_object_get_ex(o, "primary", &p) &&
		             json_object_get_boolean(p);
		/* The primary service leads. */
		if (s->primary && k > 1) {
			struct service_view t = *s;

			memmove(*out + 1, *out, (k - 1) * sizeof(**out));
			(*out)[0] = t;
		}
	}
	*n = k;
	json_object_put(root);
	return 0;
}

void
services_free(struct service_view *s, size_t n)
{
	size_t i;

	for (i = 0; s != NULL && i < n; i++) {
		free(s[i].name);
		free(s[i].url);
	}
	free(s);
}
