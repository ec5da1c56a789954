/*
 * route_run.c - writes one nginx route the way a deploy does and waits as
 * its verify step does: until the route answers with its token and, unless
 * -n, until no older nginx generation takes connections. For the
 * integration test of nginx_generation.c:
 *
 *   route_run -c CONF [-n] [-k N] SLUG TOKEN ADDRESS:PORT
 *
 * -k N then asks N more times at once, and prints how many answers came
 * from another route (stale=). Exit status: 0 verified, 1 not.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../workers/workers.h"

static void
usage(void)
{
	fprintf(stderr,
	        "usage: route_run -c CONF [-n] [-k N] SLUG TOKEN ADDR:PORT\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct config cfg;
	struct worker w;
	struct buf err = BUF_INIT, host = BUF_INIT, route = BUF_INIT;
	struct route_target t = {.service = "web", .primary = true};
	const char *path = NULL;
	char *port;
	bool wait_generation = true;
	int64_t p, again = 0, stale = 0;
	long status = 0;
	int ch, rc = 1;

	log_init("route_run", LOG_INFO);
	while ((ch = getopt(argc, argv, "c:nk:")) != -1) {
		if (ch == 'c')
			path = optarg;
		else if (ch == 'n')
			wait_generation = false;
		else if (ch == 'k' && parse_int64(optarg, 0, 1000, &again) == 0)
			;
		else
			usage();
	}
	argc -= optind;
	argv += optind;
	if (path == NULL || argc != 3 || (port = strrchr(argv[2], ':')) == NULL)
		usage();
	*port++ = '\0';
	if (parse_int64(port, 1, 65535, &p) == -1)
		usage();
	t.address = argv[2];
	t.port = (int)p;
	if (config_load(&cfg, path, &err) == -1) {
		fprintf(stderr, "route_run: %s\n", buf_str(&err));
		goto out;
	}
	memset(&w, 0, sizeof(w));
	w.cfg = &cfg;
	buf_printf(&host, "%s.%s", argv[0], cfg.preview_domain);
	if (exposure_local_write(&cfg, argv[0], argv[1], &t, 1) == 0 &&
	    probe_wait(&w, NULL, buf_str(&host), "/", argv[1], 30, &status) ==
	            0 &&
	    (!wait_generation || nginx_generation_wait(&w, NULL, 30) == 0))
		rc = 0;
	for (; rc == 0 && again > 0; again--)
		if (probe_once(&cfg, buf_str(&host), "/", &route) == 0 ||
		    strcmp(buf_str(&route), argv[1]) != 0)
			stale++;
	printf("%s status=%ld stale=%lld\n", rc == 0 ? "verified" : "failed",
	       status, (long long)stale);
out:
	buf_free(&err);
	buf_free(&host);
	buf_free(&route);
	config_free(&cfg);
	return rc;
}
