/*
 * yaml.c - YAML text to a json-c tree, through libyaml's document loader
 * (the only file that includes yaml.h). Compose files are YAML; the rest of
 * the worker reasons about them as JSON objects, and writes them back as
 * JSON, which every compose implementation reads (JSON is YAML).
 *
 * Plain scalars are resolved the way compose reads them: true/false,
 * null/~, integers and floats become typed values; quoted scalars stay
 * strings. The text is the PR's: its size, the number of aliases in it,
 * the depth and the number of nodes after aliases are expanded are all
 * bounded, so an alias bomb is refused after a few thousand nodes and a
 * few kilobytes, not after compose has expanded it into gigabytes. Merge
 * keys (`<<: *base`) are resolved here, as compose does; a key given twice
 * in one mapping is refused (compose refuses it too, and a second value
 * must not slip past the gate unseen).
 */
#include <errno.h>
#include <json.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "../workers.h"

#define YAML_MAX_DEPTH 64
#define YAML_MAX_NODES 100000
#define YAML_MAX_ALIASES 1000

struct yaml_walk {
	yaml_document_t *doc;
	size_t nodes;
	struct buf *err;
};

static struct json_object *
scalar_resolve(const yaml_node_t *n)
{
	const char *s = (const char *)n->data.scalar.value;
	size_t len = n->data.scalar.length;
	char *end;

	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return json_object_new_string_len(s, (int)len);
	if (len == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
	    strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0)
		return NULL;
	if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 ||
	    strcmp(s, "TRUE") == 0)
		return json_object_new_boolean(1);
	if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 ||
	    strcmp(s, "FALSE") == 0)
		return json_object_new_boolean(0);
	if ((s[0] >= '0' && s[0] <= '9') || s[0] == '-' || s[0] == '+') {
		long long v;
		double d;

		errno = 0;
		v = strtoll(s, &end, 10);
		if (errno == 0 && *end == '\0')
			return json_object_new_int64(v);
		errno = 0;
		d = strtod(s, &end);
		if (errno == 0 && *end == '\0' && strchr(s, ':') == NULL)
			return json_object_new_double(d);
	}
	return json_object_new_string_len(s, (int)len);
}

static int node_convert(struct yaml_walk *, yaml_node_t *, int depth,
                        struct json_object **out);

static bool
key_is_merge(const yaml_node_t *k)
{
	return k->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	       strcmp((const char *)k->data.scalar.value, "<<") == 0;
}

/* Adds the keys of a merged mapping that `obj` does not have yet. */
static int
merge_one(struct yaml_walk *w, yaml_node_t *src, int depth,
          struct json_object *obj)
{
	struct json_object *m = NULL;

	if (src == NULL || src->type != YAML_MAPPING_NODE) {
		buf_puts(w->err, "a merge key (<<) must name a mapping");
		return -1;
	}
	if (node_convert(w, src, depth + 1, &m) == -1)
		return -1;
	json_object_object_foreach(m, key, val)
	{
		if (!json_object_object_get_ex(obj, key, NULL))
			json_object_object_add(obj, key, json_object_get(val));
	}
	json_object_put(m);
	return 0;
}

static int
mapping_convert(struct yaml_walk *w, yaml_node_t *n, int depth,
                struct json_object **out)
{
	yaml_node_pair_t *pair;
	struct json_object *obj = json_object_new_object();

	/* Explicit keys first: they win over merged ones wherever they are. */
	for (pair = n->data.mapping.pairs.start;
	     pair < n->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = yaml_document_get_node(w->doc, pair->key);
		yaml_node_t *v = yaml_document_get_node(w->doc, pair->value);
		struct json_object *jv = NULL;
		const char *key;

		if (k == NULL || k->type != YAML_SCALAR_NODE) {
			buf_puts(w->err, "a mapping key is not a scalar");
			goto fail;
		}
		if (key_is_merge(k))
			continue;
		key = (const char *)k->data.scalar.value;
		if (strlen(key) != k->data.scalar.length) {
			buf_puts(w->err, "a mapping key holds a NUL byte");
			goto fail;
		}
		if (json_object_object_get_ex(obj, key, NULL)) {
			buf_printf(w->err,
			           "key \"%.64s\" is given twice (line %zu)",
			           key, k->start_mark.line + 1);
			goto fail;
		}
		if (node_convert(w, v, depth + 1, &jv) == -1)
			goto fail;
		/* Ownership of jv passes to obj. */
		json_object_object_add(obj, key, jv);
	}
	for (pair = n->data.mapping.pairs.start;
	     pair < n->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = yaml_document_get_node(w->doc, pair->key);
		yaml_node_t *v = yaml_document_get_node(w->doc, pair->value);
		yaml_node_item_t *it;

		if (!key_is_merge(k))
			continue;
		if (v != NULL && v->type == YAML_SEQUENCE_NODE) {
			for (it = v->data.sequence.items.start;
			     it < v->data.sequence.items.top; it++)
				if (merge_one(
				            w,
				            yaml_document_get_node(w->doc, *it),
				            depth, obj) == -1)
					goto fail;
		} else if (merge_one(w, v, depth, obj) == -1) {
			goto fail;
		}
	}
	*out = obj;
	return 0;
fail:
	json_object_put(obj);
	return -1;
}

static int
sequence_convert(struct yaml_walk *w, yaml_node_t *n, int depth,
                 struct json_object **out)
{
	yaml_node_item_t *item;
	struct json_object *arr = json_object_new_array();

	for (item = n->data.sequence.items.start;
	     item < n->data.sequence.items.top; item++) {
		struct json_object *jv = NULL;

		if (node_convert(w, yaml_document_get_node(w->doc, *item),
		                 depth + 1, &jv) == -1) {
			json_object_put(arr);
			return -1;
		}
		json_object_array_add(arr, jv);
	}
	*out = arr;
	return 0;
}

static int
node_convert(struct yaml_walk *w, yaml_node_t *n, int depth,
             struct json_object **out)
{
	*out = NULL;
	if (n == NULL)
		return 0;
	if (depth > YAML_MAX_DEPTH || ++w->nodes > YAML_MAX_NODES) {
		buf_printf(w->err,
		           "the document is too deep or too large (over %d "
		           "nodes once its aliases are expanded)",
		           YAML_MAX_NODES);
		return -1;
	}
	switch (n->type) {
	case YAML_SCALAR_NODE:
		*out = scalar_resolve(n);
		return 0;
	case YAML_MAPPING_NODE:
		return mapping_convert(w, n, depth, out);
	case YAML_SEQUENCE_NODE:
		return sequence_convert(w, n, depth, out);
	default:
		return 0;
	}
}

/*
 * Counts aliases with the event parser before anything is loaded: a
 * document with thousands of them is refused without building it.
 */
static int
aliases_count(const char *text, size_t len, struct buf *err)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	size_t aliases = 0;
	int rc = 0;

	if (!yaml_parser_initialize(&parser))
		fatal("out_of_memory", "what=yaml_parser");
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	for (;;) {
		if (!yaml_parser_parse(&parser, &ev)) {
			buf_printf(err, "YAML error at line %zu: %s",
			           parser.problem_mark.line + 1,
			           parser.problem ? parser.problem : "unknown");
			rc = -1;
			break;
		}
		if (ev.type == YAML_ALIAS_EVENT &&
		    ++aliases > YAML_MAX_ALIASES) {
			buf_printf(err,
			           "the document uses more than %d aliases",
			           YAML_MAX_ALIASES);
			rc = -1;
		}
		if (ev.type == YAML_DOCUMENT_END_EVENT && rc == 0) {
			yaml_event_delete(&ev);
			/* One document only: a second would be ignored. */
			if (!yaml_parser_parse(&parser, &ev) ||
			    ev.type != YAML_STREAM_END_EVENT) {
				buf_puts(err, "the file holds more than one "
				              "YAML document");
				rc = -1;
			}
		}
		if (ev.type == YAML_STREAM_END_EVENT || rc == -1) {
			yaml_event_delete(&ev);
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	return rc;
}

struct json_object *
yaml_to_json(const char *text, size_t len, struct buf *err)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	struct json_object *out = NULL;
	struct yaml_walk w = {&doc, 0, err};

	if (len > YAML_MAX_BYTES) {
		buf_printf(err, "the document is larger than %d KiB",
		           YAML_MAX_BYTES / 1024);
		return NULL;
	}
	if (aliases_count(text, len, err) == -1)
		return NULL;
	if (!yaml_parser_initialize(&parser))
		fatal("out_of_memory", "what=yaml_parser");
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		buf_printf(err, "YAML error at line %zu: %s",
		           parser.problem_mark.line + 1,
		           parser.problem ? parser.problem : "unknown");
		yaml_parser_delete(&parser);
		return NULL;
	}
	if (node_convert(&w, yaml_document_get_root_node(&doc), 0, &out) ==
	    -1) {
		json_object_put(out);
		out = NULL;
	} else if (out == NULL) {
		buf_puts(err, "the document is empty");
	}
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	return out;
}
