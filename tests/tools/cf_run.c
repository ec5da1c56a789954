/*
 * cf_run.c - runs one Cloudflare exposure operation once, the way the
 * reconcile job will once the provider seam is in, and prints its result
 * as one logfmt line. For the integration tests and for operators
 * checking a token and zone:
 *
 *   cf_run -c CONF [-a ATTEMPT] route SLUG SERVICE:PORT[:primary][:host]...
 *          [-b BYPASS]... [-k TOKEN_OUT]
 *   cf_run -c CONF unroute|exists SLUG
 *   cf_run -c CONF ready SLUG TUNNEL_ID [CLIENT_ID_FILE SECRET_FILE]
 *   cf_run -c CONF owned
 *   cf_run -c CONF connector TOKEN_PATH   (the compose service, JSON)
 *
 * route writes the connector's token to TOKEN_OUT (0400), never to
 * stdout. Exit status: 0 done, 3 retry, 1 fail.
 */
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../workers/cloudflare/cloudflare.h"

static void
usage(void)
{
	fprintf(stderr, "usage: cf_run -c CONF [-a N] [-b PATH]... [-k FILE] "
	                "route|unroute|exists|ready|owned SLUG ...\n");
	exit(2);
}

static int
service_parse(char *arg, struct cf_service *s)
{
	char *name = arg, *port = strchr(arg, ':'), *flag;
	int64_t p;

	if (port == NULL)
		return -1;
	*port++ = '\0';
	flag = strchr(port, ':');
	if (flag != NULL)
		*flag++ = '\0';
	if (parse_int64(port, 1, 65535, &p) == -1)
		return -1;
	s->name = name;
	s->port = (int)p;
	while (flag != NULL) {
		char *next = strchr(flag, ':');

		if (next != NULL)
			*next++ = '\0';
		if (strcmp(flag, "primary") == 0)
			s->primary = true;
		else if (strcmp(flag, "host") == 0)
			s->own_host = true;
		else
			return -1;
		flag = next;
	}
	return 0;
}

static char *
file_line(const char *path)
{
	char line[512];
	FILE *f = fopen(path, "re");
	char *v = NULL;

	if (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		v = xstrdup(line);
	}
	if (f != NULL)
		fclose(f);
	return v;
}

int
main(int argc, char **argv)
{
	static const char *const outcomes[] = {"done", "retry", "fail"};
	struct config cfg;
	struct buf err = BUF_INIT;
	struct cf_client c;
	struct cf_env env = {0};
	struct job_result res;
	struct cf_service svc[32];
	const char *bypass[16];
	const char *path = NULL, *token_out = NULL, *op, *slug = NULL;
	size_t nsvc = 0, nb = 0, i;
	int64_t attempt = 1;
	int ch, rc = 1, r = 0;
	long status = 0;

	log_init("cf_run", LOG_INFO);
	memset(svc, 0, sizeof(svc));
	while ((ch = getopt(argc, argv, "c:a:b:k:")) != -1) {
		if (ch == 'c')
			path = optarg;
		else if (ch == 'a' &&
		         parse_int64(optarg, 1, 1000, &attempt) == 0)
			;
		else if (ch == 'b' && nb < NELEM(bypass))
			bypass[nb++] = optarg;
		else if (ch == 'k')
			token_out = optarg;
		else
			usage();
	}
	argc -= optind;
	argv += optind;
	if (path == NULL || argc < 1)
		usage();
	op = argv[0];
	if (strcmp(op, "owned") != 0) {
		if (argc < 2)
			usage();
		slug = argv[1];
	}
	if (config_load(&cfg, path, &err) == -1) {
		fprintf(stderr, "cf_run: %s\n", buf_str(&err));
		buf_free(&err);
		config_free(&cfg);
		return 1;
	}
	if (strcmp(op, "connector") == 0) {
		/* Pure: needs no token. */
		cf_connector_service(cfg.cf_connector_image, slug, &err);
		printf("%s\n", buf_str(&err));
		buf_free(&err);
		config_free(&cfg);
		return 0;
	}
	memset(&res, 0, sizeof(res));
	buf_init(&res.error, 4096);
	if (cf_client_init(&c, &cfg, (int)attempt) == -1)
		goto result;
	if (strcmp(op, "route") == 0) {
		for (i = 2; i < (size_t)argc && nsvc < NELEM(svc); i++)
			if (service_parse(argv[i], &svc[nsvc++]) == -1)
				usage();
		/* Without -k nobody needs the token: as on a push. */
		env.token_known = token_out == NULL;
		if (cloudflare_route(&c, slug, svc, nsvc, bypass, nb, &env) ==
		    0) {
			printf("tunnel_id=%s record_id=%s\n", env.tunnel_id,
			       env.record_id);
			if (token_out != NULL && env.token != NULL &&
			    cf_connector_token_write(token_out, env.token) ==
			            -1)
				c.stop = CF_FAIL;
		}
	} else if (strcmp(op, "unroute") == 0) {
		cloudflare_unroute(&c, slug, NULL);
	} else if (strcmp(op, "exists") == 0) {
		r = cloudflare_exists(&c, slug);
		if (r >= 0)
			printf("exists=%d\n", r);
	} else if (strcmp(op, "ready") == 0 && argc >= 3) {
		char *id = argc >= 5 ? file_line(argv[3]) : NULL;
		char *sec = argc >= 5 ? file_line(argv[4]) : NULL;

		r = cloudflare_ready(&c, slug, argv[2], id, sec, &status);
		if (r >= 0)
			printf("ready=%d edge_status=%ld\n", r, status);
		free(id);
		if (sec != NULL)
			explicit_bzero(sec, strlen(sec));
		free(sec);
	} else if (strcmp(op, "owned") == 0) {
		char **slugs = NULL;
		size_t n = 0;

		if (cloudflare_list_owned(&c, 0, &slugs, &n) == 0)
			for (i = 0; i < n; i++)
				printf("owned=%s\n", slugs[i]);
		for (i = 0; i < n; i++)
			free(slugs[i]);
		free(slugs);
	} else {
		usage();
	}
result:
	cf_result(&c, &res);
	printf("outcome=%s retry_ms=%lld calls=%u error=%s\n",
	       outcomes[res.outcome], (long long)res.retry_after_ms, c.calls,
	       log_q(buf_str(&res.error)));
	rc = res.outcome == JOB_DONE ? 0 : res.outcome == JOB_RETRY ? 3 : 1;
	cf_env_free(&env);
	cf_client_free(&c);
	buf_free(&res.error);
	buf_free(&err);
	config_free(&cfg);
	return rc;
}
