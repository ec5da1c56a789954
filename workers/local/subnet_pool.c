/*
 * subnet_pool.c - the reservations of local.subnet_pool (019_subnets.sql,
 * lib/subnet.c's arithmetic). Admission reserves environments.max_networks
 * subnets for a local preview, under the capacity row's lock so two
 * workers never take the same one; the configure step gives each of the
 * project's networks one of them, in name order, so a redeploy keeps its
 * addresses; a destroy or a hold deletes them (reconcile.c teardown).
 */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "../workers.h"

struct reserve {
	uint64_t env_id;
	int64_t want, size, used;
	bool full;
};

static int
reserve_tx(struct db *db, void *arg)
{
	struct reserve *r = arg;
	struct db_rows *rows = NULL;
	int64_t have = 0, idx, taken = -1, *free_idx = NULL, nfree = 0, k;
	size_t i;
	int rc = -1;

	r->full = false;
	if (db_query(db, &rows,
	             "SELECT id FROM capacity WHERE id = 1 FOR UPDATE",
	             "") == -1)
		return -1;
	db_rows_free(rows);
	if (db_query(db, &rows,
	             "SELECT idx, env_id = ? FROM env_subnets ORDER BY idx",
	             "u", r->env_id) == -1)
		return -1;
	r->used = (int64_t)db_rows_count(rows);
	for (i = 0; i < db_rows_count(rows); i++)
		have += strcmp(db_rows_get(rows, i, 1), "1") == 0;
	if (have >= r->want) {
		rc = 0;
		goto out;
	}
	/* The lowest free places: a merge walk over the taken ones. */
	free_idx = xcalloc((size_t)(r->want - have), sizeof(*free_idx));
	i = 0;
	for (idx = 0; nfree < r->want - have && idx < r->size; idx++) {
		while (taken < idx && i < db_rows_count(rows))
			if (parse_int64(db_rows_get(rows, i++, 0), 0, INT64_MAX,
			                &taken) == -1)
				taken = -1;
		if (taken != idx)
			free_idx[nfree++] = idx;
	}
	/* Not enough: nothing taken, the preview waits (all or none, so
	 * two waiting previews never each hold half of what they need). */
	r->full = nfree < r->want - have;
	for (k = 0; !r->full && k < nfree; k++)
		if (db_exec(db,
		            "INSERT INTO env_subnets (idx, env_id, slot) "
		            "VALUES (?, ?, ?)",
		            "iui", free_idx[k], r->env_id, have + k) == -1)
			goto out;
	rc = 0;
out:
	free(free_idx);
	db_rows_free(rows);
	return rc;
}

int
subnet_reserve(struct worker *w, uint64_t env_id, struct buf *why)
{
	struct reserve r = {env_id, w->cfg->env_max_networks,
	                    subnet_pool_size(w->cfg), 0, false};

	if (r.size == 0)
		return 0;
	if (db_tx(w->db, reserve_tx, &r, 5) == -1)
		return -1;
	if (!r.full)
		return 0;
	buf_printf(why,
	           "this host's preview networks are all taken (%lld of the "
	           "%lld subnets of local.subnet_pool in use, %lld per "
	           "preview); it starts when another preview is removed",
	           (long long)r.used, (long long)r.size, (long long)r.want);
	return 1;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
subnet_apply(struct deploy *d, struct json_object *model)
{
	struct json_object *nets = NULL, *ipam, *conf, *one;
	struct db_rows *rows = NULL;
	const char **names = NULL;
	char subnet[SUBNET_MAX];
	size_t n = 0, i;
	int rc = -1;

	if (subnet_pool_size(d->w->cfg) == 0 ||
	    !json_object_object_get_ex(model, "networks", &nets) ||
	    nets == NULL)
		return 0;
	/* Admitted before the pool was configured: reserve now. */
	if (subnet_reserve(d->w, d->e->id, &d->why) != 0)
		return -1;
	names = xcalloc((size_t)json_object_object_length(nets) + 1,
	                sizeof(*names));
	json_object_object_foreach(nets, key, val)
	{
		(void)val;
		names[n++] = key;
	}
	qsort(names, n, sizeof(*names), name_cmp);
	if (db_query(
	            d->w->db, &rows,
	            "SELECT idx FROM env_subnets WHERE env_id = ? ORDER BY slot",
	            "u", d->e->id) == -1) {
		buf_puts(&d->why, "the network reservations could not be read");
		goto out;
	}
	if (db_rows_count(rows) < n) {
		buf_puts(&d->why, "fewer network reservations than networks");
		goto out;
	}
	for (i = 0; i < n; i++) {
		int64_t idx = -1;

		parse_int64(db_rows_get(rows, i, 0), 0, INT64_MAX, &idx);
		if (subnet_format(d->w->cfg, idx, subnet) == -1) {
			/* The pool shrank under a reservation: ours. */
			buf_puts(&d->why, "a reserved subnet is outside "
			                  "local.subnet_pool");
			goto out;
		}
		one = json_object_new_object();
		json_object_object_add(one, "subnet",
		                       json_object_new_string(subnet));
		conf = json_object_new_array();
		json_object_array_add(conf, one);
		ipam = json_object_new_object();
		json_object_object_add(ipam, "config", conf);
		json_object_object_add(json_object_object_get(nets, names[i]),
		                       "ipam", ipam);
	}
	rc = 0;
out:
	db_rows_free(rows);
	free(names);
	return rc;
}
