/*
 * aws_run.c - drives workers/aws/ one call at a time with a config file,
 * for the integration tests (against moto) and for operators checking an
 * AWS setup. One logfmt line per result on stdout; errors as
 *   error action=RunInstances kind=denied code=UnauthorizedOperation
 * Secrets never reach argv or stdout: parameter values are read from
 * stdin and only their length and SHA-256 are printed back.
 *
 *   aws_run -c CONF creds
 *   aws_run -c CONF launch SLUG ENV_ID GENERATION [USER_DATA_FILE]
 *   aws_run -c CONF describe SLUG|-
 *   aws_run -c CONF volumes SLUG          (the volumes its tags went onto)
 *   aws_run -c CONF start|stop|terminate INSTANCE_ID
 *   aws_run -c CONF send INSTANCE_ID ARG...
 *   aws_run -c CONF invocation COMMAND_ID INSTANCE_ID
 *   aws_run -c CONF param-put SLUG KEY INSTANCE_ARN   (value on stdin)
 *   aws_run -c CONF param-get SLUG KEY
 *   aws_run -c CONF param-delete-env SLUG
 *   aws_run -c CONF bench-describe N     (N DescribeInstances, one client)
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../workers/workers.h"
#include "../../workers/aws/aws.h"

static void
usage(void)
{
	fprintf(stderr, "usage: aws_run -c CONF COMMAND ARGS (see source)\n");
	exit(2);
}

/* The error, then what a job would do with it (aws_outcome). */
static int
fail(const struct aws_error *e)
{
	static const char *const outcomes[] = {"done", "retry", "fail"};
	struct job_result r = {.outcome = JOB_DONE, .error = BUF_INIT};

	printf("error action=%s kind=%s code=%s status=%ld message=%s\n",
	       e->action[0] ? e->action : "-", aws_error_kind_name(e->kind),
	       e->code[0] ? e->code : "-", e->status, log_q(e->message));
	aws_outcome(e, 1, -1, 1000, 300000, 0, &r);
	printf("outcome=%s retry_after_ms=%lld reason=%s\n",
	       outcomes[r.outcome], (long long)r.retry_after_ms,
	       log_q(buf_str(&r.error)));
	buf_free(&r.error);
	return 1;
}

static char *
file_slurp(const char *path)
{
	struct buf b = BUF_INIT;
	char chunk[4096];
	size_t n;
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");

	if (f == NULL)
		return NULL;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, n);
	if (f != stdin)
		fclose(f);
	return b.data ? buf_detach(&b) : xstrdup("");
}

static int
cmd_launch(struct aws_client *c, const struct config *cfg, char **argv,
           int argc)
{
	struct aws_tag tags[] = {{"ephemera:instance", cfg->env_instance},
	                         {"ephemera:env", argv[0]}};
	struct ec2_launch l = {0};
	struct ec2_instance in;
	struct aws_error e = {0};
	struct buf token = BUF_INIT;
	char *ud = NULL;
	bool launched = false;
	int rc;

	/* The same environment and generation always send the same token. */
	buf_printf(&token, "%s-%s-%s", cfg->env_instance, argv[1], argv[2]);
	if (argc > 3 && (ud = file_slurp(argv[3])) == NULL)
		return 2;
	l.ami = cfg->ec2_ami;
	l.launch_template = cfg->ec2_launch_template;
	l.security_group_ids = cfg->ec2_security_group_ids;
	l.instance_profile = cfg->ec2_instance_profile;
	l.user_data = ud;
	l.tags = tags;
	l.ntags = NELEM(tags);
	l.client_token = buf_str(&token);
	rc = ec2_find_or_launch(c, &l, cfg->ec2_instance_types,
	                        cfg->ec2_subnet_ids, cfg->env_instance, argv[0],
	                        &in, &launched, &e);
	if (rc == 0)
		printf("instance_id=%s state=%s type=%s subnet=%s owner=%s "
		       "adopted=%s\n",
		       in.id, in.state, in.type, in.subnet_id, in.owner_id,
		       launched ? "no" : "yes");
	free(ud);
	buf_free(&token);
	return rc == 0 ? 0 : fail(&e);
}

static int
cmd_describe(struct aws_client *c, const struct config *cfg, const char *slug)
{
	struct aws_tag tags[] = {{"ephemera:instance", cfg->env_instance},
	                         {"ephemera:env", slug}};
	struct ec2_instances l = {0};
	struct aws_error e = {0};
	size_t i;

	if (ec2_describe_instances(c, tags, strcmp(slug, "-") ? 2 : 1, &l,
	                           &e) == -1)
		return fail(&e);
	for (i = 0; i < l.n; i++)
		printf("instance_id=%s state=%s env=%s type=%s\n", l.v[i].id,
		       l.v[i].state, log_q(l.v[i].tag_env), l.v[i].type);
	printf("count=%zu\n", l.n);
	ec2_instances_free(&l);
	return 0;
}

static int
cmd_volumes(struct aws_client *c, const struct config *cfg, const char *slug)
{
	struct aws_tag tags[] = {{"ephemera:instance", cfg->env_instance},
	                         {"ephemera:env", slug}};
	struct ec2_volumes v = {0};
	struct aws_error e = {0};
	size_t i;

	if (ec2_describe_volumes(c, tags, NELEM(tags), &v, &e) == -1)
		return fail(&e);
	for (i = 0; i < v.n; i++)
		printf("volume_id=%s\n", v.id[i]);
	printf("count=%zu\n", v.n);
	ec2_volumes_free(&v);
	return 0;
}

static int
cmd_invocation(struct aws_client *c, const char *cmd, const char *id)
{
	struct ssm_invocation v;
	struct aws_error e = {0};
	int rc = 0;

	ssm_invocation_init(&v);
	if (ssm_get_invocation(c, cmd, id, &v, &e) == -1)
		rc = fail(&e);
	else
		printf("status=%s final=%s code=%d truncated=%s out_len=%zu\n",
		       ssm_status_name(v.status),
		       ssm_status_final(v.status) ? "yes" : "no",
		       v.response_code, v.truncated ? "yes" : "no", v.out.len);
	ssm_invocation_free(&v);
	return rc;
}

static int
cmd_param(struct aws_client *c, const struct config *cfg, const char *what,
          char **argv, int argc)
{
	struct buf name = BUF_INIT, value = BUF_INIT;
	struct aws_error e = {0};
	char hash[65];
	int rc = 0;

	if (ssm_parameter_name(cfg, argv[0],
	                       strcmp(what, "param-delete-env") ? argv[1]
	                                                        : NULL,
	                       &name) == -1) {
		fprintf(stderr, "aws_run: bad slug or key\n");
		return 2;
	}
	if (strcmp(what, "param-put") == 0 && argc >= 3) {
		struct aws_tag tags[] = {
		        {"ephemera:instance", cfg->env_instance},
		        {"ephemera:env", argv[0]},
		        {"ephemera:instance-arn", argv[2]}};
		char *v = file_slurp("-");

		if (ssm_put_parameter(c, buf_str(&name), v, tags, NELEM(tags),
		                      false, &e) == -1)
			rc = fail(&e);
		else
			printf("put name=%s\n", buf_str(&name));
		free(v);
	} else if (strcmp(what, "param-get") == 0) {
		if (ssm_get_parameter(c, buf_str(&name), &value, &e) == -1) {
			rc = fail(&e);
		} else {
			sigv4_sha256_hex(value.data ? value.data : "",
			                 value.len, hash);
			printf("len=%zu sha256=%s\n", value.len, hash);
		}
	} else if (strcmp(what, "param-delete-env") == 0) {
		size_t n = 0;

		buf_putc(&name, '/');
		if (ssm_delete_path(c, buf_str(&name), &n, &e) == -1)
			rc = fail(&e);
		else
			printf("deleted=%zu\n", n);
	} else {
		usage();
	}
	buf_free(&name);
	buf_free(&value);
	return rc;
}

/* N DescribeInstances on one client (one connection), timed. */
static int
cmd_bench(struct aws_client *c, const char *count)
{
	struct aws_tag tag = {"ephemera:instance", c->cfg->env_instance};
	struct aws_error e = {0};
	int64_t n, i;
	double t0 = now_mono();

	if (parse_int64(count, 1, 1000000, &n) == -1)
		usage();
	for (i = 0; i < n; i++) {
		struct ec2_instances l = {0};

		if (ec2_describe_instances(c, &tag, 1, &l, &e) == -1)
			return fail(&e);
		ec2_instances_free(&l);
	}
	printf("calls=%lld seconds=%.3f\n", (long long)n, now_mono() - t0);
	return 0;
}

int
main(int argc, char **argv)
{
	struct config cfg;
	struct buf err = BUF_INIT;
	struct aws_client c;
	struct aws_error e = {0};
	const char *path = NULL, *cmd;
	char cid[64];
	int ch, rc = 1;

	log_init("aws_run", LOG_INFO);
	while ((ch = getopt(argc, argv, "c:")) != -1) {
		if (ch != 'c')
			usage();
		path = optarg;
	}
	argc -= optind;
	argv += optind;
	if (path == NULL || argc < 1)
		usage();
	if (config_load(&cfg, path, &err) == -1) {
		fprintf(stderr, "aws_run: %s\n", buf_str(&err));
		buf_free(&err);
		return 2;
	}
	aws_client_init(&c, &cfg);
	cmd = argv[0];
	argc--;
	argv++;
	if (strcmp(cmd, "creds") == 0) {
		struct aws_credentials cr = {0};

		if (credentials_resolve(&cfg, &cr) == 0) {
			printf("source=%s key_id_len=%zu token=%s expires=%lld\n",
			       cr.source, strlen(cr.access_key_id),
			       cr.session_token ? "yes" : "no",
			       (long long)cr.expiration);
			rc = 0;
		}
		aws_credentials_clear(&cr);
	} else if (strcmp(cmd, "launch") == 0 && argc >= 3) {
		rc = cmd_launch(&c, &cfg, argv, argc);
	} else if (strcmp(cmd, "describe") == 0 && argc == 1) {
		rc = cmd_describe(&c, &cfg, argv[0]);
	} else if (strcmp(cmd, "volumes") == 0 && argc == 1) {
		rc = cmd_volumes(&c, &cfg, argv[0]);
	} else if ((strcmp(cmd, "start") == 0 || strcmp(cmd, "stop") == 0 ||
	            strcmp(cmd, "terminate") == 0) &&
	           argc == 1) {
		const char *action = cmd[1] == 't'
		                             ? (cmd[2] == 'a' ? "StartInstances"
		                                              : "StopInstances")
		                             : "TerminateInstances";

		rc = ec2_instance_action(&c, action, argv[0], &e) == 0
		             ? (printf("ok action=%s\n", action), 0)
		             : fail(&e);
	} else if (strcmp(cmd, "send") == 0 && argc >= 2) {
		rc = ssm_send_command(&c, argv[0],
		                      (const char *const *)argv + 1,
		                      (size_t)argc - 1, 3600, cid, &e) == 0
		             ? (printf("command_id=%s\n", cid), 0)
		             : fail(&e);
	} else if (strcmp(cmd, "invocation") == 0 && argc == 2) {
		rc = cmd_invocation(&c, argv[0], argv[1]);
	} else if (strcmp(cmd, "bench-describe") == 0 && argc == 1) {
		rc = cmd_bench(&c, argv[0]);
	} else if (strncmp(cmd, "param-", 6) == 0 && argc >= 1) {
		rc = cmd_param(&c, &cfg, cmd, argv, argc);
	} else {
		usage();
	}
	fprintf(stderr, "aws_run: calls=%lu\n", c.calls);
	aws_client_free(&c);
	config_free(&cfg);
	buf_free(&err);
	return rc;
}
