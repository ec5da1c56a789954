/*
 * cloudflare_token.c - `ephemera cloudflare service-token OWNER/REPO FILE`:
 * the admin's one-time Access service token for a repository's CI, added
 * to the zone-wide Access application's Service Auth policy. The pair goes
 * to FILE (created, mode 0600) and nowhere else: Cloudflare shows the
 * secret only once, and it must never reach a PR, a log or the database.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../workers/cloudflare/cloudflare.h"
#include "cli.h"

static int
pair_write(const char *path, const char *id, const char *secret)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	FILE *f = fd == -1 ? NULL : fdopen(fd, "w");
	int rc = -1;

	if (f == NULL) {
		if (fd != -1)
			close(fd);
		return -1;
	}
	if (fprintf(f,
	            "CF-Access-Client-Id: %s\n"
	            "CF-Access-Client-Secret: %s\n",
	            id, secret) > 0)
		rc = 0;
	if (fclose(f) != 0)
		rc = -1;
	return rc;
}

int
cloudflare_command(struct config *cfg, int argc, char **argv)
{
	struct buf id = BUF_INIT, sec = BUF_INIT;
	struct job_result res = {.outcome = JOB_DONE, .error = BUF_INIT};
	struct cf_client c;
	int rc = 1;

	if (argc != 4 || strcmp(argv[1], "service-token") != 0) {
		fprintf(stderr, "usage: ephemera [-c config] cloudflare "
		                "service-token OWNER/REPO FILE\n");
		return 2;
	}
	/* Before any call: a token made and then not written is lost. */
	if (access(argv[3], F_OK) == 0) {
		fprintf(stderr, "ephemera: %s exists; give a new file\n",
		        argv[3]);
		return 1;
	}
	if (cf_client_init(&c, cfg, 1) == 0 &&
	    cloudflare_service_token(&c, argv[2], &id, &sec) == 0) {
		if (pair_write(argv[3], buf_str(&id), buf_str(&sec)) == 0) {
			printf("ephemera: the service token of %s is in %s "
			       "(CI sends both headers)\n",
			       argv[2], argv[3]);
			rc = 0;
		} else {
			fprintf(stderr, "ephemera: cannot write %s\n", argv[3]);
		}
	} else {
		cf_result(&c, &res);
		fprintf(stderr, "ephemera: cloudflare: %s\n",
		        buf_str(&res.error));
	}
	if (sec.data != NULL)
		explicit_bzero(sec.data, sec.len);
	buf_free(&id);
	buf_free(&sec);
	buf_free(&res.error);
	cf_client_free(&c);
	return rc;
}
