/*
 * pidfile.c - write and remove a pidfile. The file is written to a temporary
 * name and renamed, so a reader never sees a half-written pid.
 */
#include <stdio.h>
#include <unistd.h>

#include "ephemera.h"

int
pidfile_write(const char *path)
{
	struct buf tmp = BUF_INIT;
	FILE *f;
	int rc = -1;

	buf_printf(&tmp, "%s.%ld", path, (long)getpid());
	f = fopen(buf_str(&tmp), "w");
	if (f == NULL) {
		log_error("pidfile_write", "path=%s errno=%m", log_q(path));
		goto out;
	}
	fprintf(f, "%ld\n", (long)getpid());
	if (fclose(f) != 0 || rename(buf_str(&tmp), path) != 0) {
		log_error("pidfile_write", "path=%s errno=%m", log_q(path));
		unlink(buf_str(&tmp));
		goto out;
	}
	rc = 0;
out:
	buf_free(&tmp);
	return rc;
}

void
pidfile_remove(const char *path)
{
	if (path != NULL)
		unlink(path);
}
