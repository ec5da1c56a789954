/*
 * ec2_compute_run.c - drives the `ec2` compute provider's operations
 * (compute_ec2, workers/aws/ec2_compute.c) one at a time against a stack's
 * database and an AWS endpoint (moto in the tests), as reconcile.c and
 * sweep.c call them. One logfmt line per result on stdout.
 *
 *   ec2_compute_run -c CONF deploy ENV_ID     (a build row and a run, as
 *                                             reconcile)
 *   ec2_compute_run -c CONF observe ENV_ID
 *   ec2_compute_run -c CONF stop|leftovers SLUG
 *   ec2_compute_run -c CONF destroy SLUG [ENV_ID]  (ENV_ID: reported, as
 *                                                reconcile's teardown)
 *   ec2_compute_run -c CONF owned
 */
#include <json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../workers/workers.h"

static void
slug_print(void *arg, const char *slug, size_t n)
{
	(void)arg;
	printf("owned slug=%.*s\n", (int)n, slug);
}

static const char *const rc_names[] = {"ok", "failed", "retry"};

/* reconcile.c's deploy(), minus the exposure's route and verify (its
 * prepare runs: a tunnel and its connector for `cloudflare`). */
static int
cmd_deploy(struct worker *w, const struct env *e)
{
	struct json_object *services = NULL;
	struct deploy d;
	struct buf src = BUF_INIT;
	enum deploy_rc rc;
	const char *status;

	memset(&d, 0, sizeof(d));
	d.w = w;
	d.e = e;
	d.admin = config_repo(w->cfg, e->repo);
	d.compute = &compute_ec2;
	d.exposure = exposure_for(w->cfg, e->repo);
	local_project_name(w->cfg, e->slug, d.project);
	d.dir = local_env_dir(w->cfg, e->slug);
	buf_printf(&src, "%s/src", d.dir);
	d.src = buf_detach(&src);
	buf_init(&d.log, 64 * 1024);
	buf_init(&d.why, 4096);
	if (build_begin(w->db, e->id, e->desired_sha, &d.b) == -1 ||
	    env_run_open(w->db, e->id, price_hourly(w->cfg, "ec2", NULL)) ==
	            -1) {
		printf("deploy rc=db\n");
		return 1;
	}
	rc = compute_ec2.deploy(&d, &services);
	status = rc == DEPLOY_OK       ? "succeeded"
	         : rc == DEPLOY_FAILED ? "failed"
	                               : "running";
	if (rc != DEPLOY_RETRY)
		build_end(w->db, &d.b, status,
		          rc == DEPLOY_OK ? NULL : buf_str(&d.why),
		          buf_str(&d.log));
	printf("deploy rc=%s build=%llu retry_ms=%lld why=%s services=%s\n",
	       rc_names[rc], (unsigned long long)d.b.id, (long long)d.retry_ms,
	       log_q(buf_str(&d.why)),
	       log_q(services ? json_object_to_json_string_ext(
	                                services, JSON_C_TO_STRING_PLAIN)
	                      : "-"));
	json_object_put(services);
	repo_settings_free(&d.rs);
	compose_result_free(&d.cr);
	free(d.targets);
	free(d.dir);
	free(d.src);
	buf_free(&d.log);
	buf_free(&d.why);
	return rc == DEPLOY_OK ? 0 : 1;
}

static int
run(struct worker *w, const char *op, const char *arg, const char *env_id)
{
	struct removal rm;
	struct buf why = BUF_INIT;
	struct facts f = {0};
	struct env e;
	uint64_t id = 0;
	bool any = false;
	int rc = 1;

	if (strcmp(op, "owned") == 0)
		return compute_ec2.list_owned(w, NULL, slug_print, NULL) == 0
		               ? 0
		               : 1;
	if (arg == NULL)
		return 2;
	if (strcmp(op, "deploy") == 0 || strcmp(op, "observe") == 0) {
		if (parse_uint64(arg, &id) == -1 ||
		    env_load(w->db, id, &e) != 0)
			return 2;
		if (op[0] == 'd') {
			rc = cmd_deploy(w, &e);
		} else if (compute_ec2.observe(w, NULL, &e, &f) == 0) {
			printf("observe running=%d leftover=%d workdir=%d\n",
			       f.running, f.leftover, f.workdir);
			rc = 0;
		}
		env_free(&e);
		return rc;
	}
	if (strcmp(op, "stop") == 0)
		rc = compute_ec2.stop(w, NULL, arg, &why);
	else if (strcmp(op, "destroy") == 0) {
		if (env_id != NULL && parse_uint64(env_id, &id) == -1)
			return 2;
		removal_init(&rm, w->db, id);
		rc = compute_ec2.destroy(w, NULL, arg, &rm, &why);
	} else if (strcmp(op, "leftovers") == 0)
		rc = compute_ec2.leftovers(w, NULL, arg, &any);
	else
		rc = -2;
	if (rc != -2)
		printf("%s rc=%d any=%d why=%s\n", op, rc, any,
		       log_q(buf_str(&why)));
	buf_free(&why);
	return rc == 0 ? 0 : rc == -2 ? 2 : 1;
}

int
main(int argc, char **argv)
{
	struct config cfg;
	struct buf err = BUF_INIT;
	struct worker w;
	int rc = 2;

	log_init("ec2_compute_run", LOG_INFO);
	if (argc < 4 || strcmp(argv[1], "-c") != 0) {
		fprintf(stderr, "usage: ec2_compute_run -c CONF OP [ARG]\n");
		return 2;
	}
	if (config_load(&cfg, argv[2], &err) == -1) {
		fprintf(stderr, "ec2_compute_run: %s\n", buf_str(&err));
		buf_free(&err);
		return 2;
	}
	memset(&w, 0, sizeof(w));
	w.cfg = &cfg;
	w.wake_fd = -1;
	w.db = db_open(&cfg);
	if (db_connect(w.db, 10) == 0)
		rc = run(&w, argv[3], argc > 4 ? argv[4] : NULL,
		         argc > 5 ? argv[5] : NULL);
	db_close(w.db);
	config_free(&cfg);
	buf_free(&err);
	return rc;
}
