/*
 * main.c - `ephemera`, the operator's command: schema migrations and
 * configuration look-ups for scripts, and the queue's ops commands.
 *
 *   ephemera [-c config] migrate
 *   ephemera [-c config] config get NAME
 *   ephemera [-c config] check
 *   ephemera [-c config] jobs list|show|retry|cancel ...  (see jobs.c)
 *   ephemera [-c config] deliver EVENT FILE
 *   ephemera [-c config] resync
 *   ephemera [-c config] github-app create --webhook-url URL ...
 *   ephemera [-c config] cloudflare service-token OWNER/REPO FILE
 *   ephemera [-c config] report [NAME [--since YYYY-MM-DD] [--csv]]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void
usage(void)
{
	fprintf(stderr, "usage: ephemera [-c config] migrate\n"
	                "       ephemera [-c config] config get NAME\n"
	                "       ephemera [-c config] check\n"
	                "       ephemera [-c config] jobs list [STATE]\n"
	                "       ephemera [-c config] jobs show|retry|cancel "
	                "ID\n"
	                "       ephemera [-c config] deliver EVENT FILE\n"
	                "       ephemera [-c config] resync\n"
	                "       ephemera [-c config] github-app create "
	                "--webhook-url URL ...\n"
	                "       ephemera [-c config] cloudflare service-token "
	                "OWNER/REPO FILE\n"
	                "       ephemera [-c config] report [NAME "
	                "[--since YYYY-MM-DD] [--csv]]\n");
	exit(2);
}

/*
 * A reconcile for every environment that is not fully gone: the
 * controller's resync on start (containers stopped with the stack, a host
 * rebooted, a job lost to a wiped queue all converge again).
 */
static int
cmd_resync(struct config *cfg)
{
	struct db *db = db_open(cfg);
	int rc = 1;

	if (db_connect(db, (double)cfg->db_connect_timeout) == 0 &&
	    db_exec(db,
	            "INSERT INTO jobs (kind, env_id, max_attempts) SELECT "
	            "'reconcile', id, ? FROM environments WHERE NOT (desired "
	            "= 'destroyed' AND phase = 'destroyed') ON DUPLICATE KEY "
	            "UPDATE run_at = LEAST(jobs.run_at, VALUES(run_at))",
	            "i", cfg->workers_max_attempts) == 0) {
		printf("ephemera: resync queued %llu environments\n",
		       (unsigned long long)db_affected(db));
		rc = 0;
	}
	db_close(db);
	return rc;
}

static int
cmd_migrate(struct config *cfg)
{
	struct db *db = db_open_migrate(cfg);
	int applied = 0, rc = 1;

	if (db_connect(db, (double)cfg->db_connect_timeout) == 0 &&
	    migrate_apply(db, cfg->migrations_dir, &applied) == 0) {
		printf("ephemera: migrations applied: %d\n", applied);
		rc = 0;
	}
	db_close(db);
	return rc;
}

int
main(int argc, char **argv)
{
	struct config cfg;
	struct buf err = BUF_INIT, out = BUF_INIT;
	const char *path = "config/example.conf";
	int ch, rc = 1;

	log_init("ephemera", LOG_INFO);
	/* "+": options after the command are the command's own. */
	while ((ch = getopt(argc, argv, "+c:h")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();
	/* Before the configuration: it writes the github group of it. */
	if (strcmp(argv[0], "github-app") == 0)
		return github_app_command(path, argc, argv);
	if (config_load(&cfg, path, &err) == -1) {
		fprintf(stderr, "ephemera: %s\n", buf_str(&err));
		goto out;
	}
	if (strcmp(argv[0], "migrate") == 0 && argc == 1) {
		rc = cmd_migrate(&cfg);
	} else if (strcmp(argv[0], "jobs") == 0) {
		rc = jobs_command(&cfg, argc, argv);
	} else if (strcmp(argv[0], "resync") == 0 && argc == 1) {
		rc = cmd_resync(&cfg);
	} else if (strcmp(argv[0], "report") == 0) {
		rc = report_command(&cfg, argc, argv);
	} else if (strcmp(argv[0], "cloudflare") == 0) {
		rc = cloudflare_command(&cfg, argc, argv);
	} else if (strcmp(argv[0], "deliver") == 0 && argc == 3) {
		rc = cmd_deliver(&cfg, argv[1], argv[2]);
	} else if (strcmp(argv[0], "check") == 0 && argc == 1) {
		config_warnings(&cfg, "ephemera", stderr);
		printf("ephemera: %s: configuration ok\n", path);
		rc = 0;
	} else if (strcmp(argv[0], "config") == 0 && argc == 3 &&
	           strcmp(argv[1], "get") == 0) {
		if (config_get(&cfg, argv[2], &out) == -1) {
			fprintf(stderr, "ephemera: unknown setting '%s'\n",
			        argv[2]);
			goto out;
		}
		printf("%s\n", buf_str(&out));
		rc = 0;
	} else {
		usage();
	}
out:
	buf_free(&err);
	buf_free(&out);
	config_free(&cfg);
	return rc;
}
