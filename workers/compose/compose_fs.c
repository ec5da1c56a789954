/*
 * compose_fs.c - the checkout as the gate reads it. Every path the PR
 * names is resolved with realpath() and must land inside the checkout; a
 * file is opened without following a final symlink and read only up to a
 * cap; and before anything is read, the whole checkout is walked for
 * symlinks that leave it (git checks them out, and compose and Docker
 * would follow them). The host script walks it again right before `up`.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../workers.h"

#define CHECKOUT_MAX_DEPTH 64
#define CHECKOUT_MAX_ENTRIES 200000

bool
path_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(path, dir, n) == 0 &&
	       (path[n] == '\0' || path[n] == '/');
}

char *
checkout_path(const char *src, const char *rel)
{
	struct buf b = BUF_INIT;
	char *real;

	if (rel == NULL || rel[0] == '~' || rel[0] == '\0' ||
	    strlen(rel) > 1024)
		return NULL;
	/* An absolute path (compose's normalised form) must resolve inside. */
	if (rel[0] == '/')
		buf_puts(&b, rel);
	else
		buf_printf(&b, "%s/%s", src, rel);
	real = realpath(buf_str(&b), NULL);
	buf_free(&b);
	if (real != NULL && !path_under(real, src)) {
		free(real);
		real = NULL;
	}
	return real;
}

struct walk {
	const char *src;
	size_t entries;
	struct buf *why;
};

/* A symlink stays when its target resolves to a path inside the checkout. */
static int
link_check(struct walk *w, const char *path)
{
	char target[PATH_MAX];
	ssize_t n = readlink(path, target, sizeof(target) - 1);
	char *real;
	const char *rel = path + strlen(w->src) + 1;

	if (n > 0)
		target[n] = '\0';
	if (n <= 0 || target[0] == '/' ||
	    (real = realpath(path, NULL)) == NULL) {
		buf_printf(w->why,
		           "%s is a symlink that points outside the repository "
		           "or nowhere (rule: symlinks must stay inside the "
		           "checkout)",
		           rel);
		return -1;
	}
	if (!path_under(real, w->src)) {
		free(real);
		buf_printf(w->why,
		           "%s is a symlink that leaves the repository (rule: "
		           "symlinks must stay inside the checkout)",
		           rel);
		return -1;
	}
	free(real);
	return 0;
}

static int
dir_walk(struct walk *w, const char *dir, int depth)
{
	DIR *d;
	struct dirent *de;
	int rc = 0;

	if (depth > CHECKOUT_MAX_DEPTH) {
		buf_puts(w->why, "the repository is nested too deeply");
		return -1;
	}
	if ((d = opendir(dir)) == NULL)
		return 0;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		struct buf p = BUF_INIT;
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0 ||
		    (depth == 0 && strcmp(de->d_name, ".git") == 0))
			continue;
		if (++w->entries > CHECKOUT_MAX_ENTRIES) {
			buf_printf(w->why,
			           "the repository holds more than %d "
			           "files",
			           CHECKOUT_MAX_ENTRIES);
			rc = -1;
			break;
		}
		buf_printf(&p, "%s/%s", dir, de->d_name);
		if (lstat(buf_str(&p), &st) == 0) {
			if (S_ISLNK(st.st_mode))
				rc = link_check(w, buf_str(&p));
			else if (S_ISDIR(st.st_mode))
				rc = dir_walk(w, buf_str(&p), depth + 1);
		}
		buf_free(&p);
	}
	closedir(d);
	return rc;
}

int
checkout_check(const char *src, struct buf *why)
{
	struct walk w = {src, 0, why};

	return dir_walk(&w, src, 0);
}

int
checkout_read(const char *src, const char *rel, size_t max, struct buf *out,
              struct buf *why)
{
	char *real = checkout_path(src, rel);
	char chunk[65536];
	struct stat st;
	ssize_t n;
	int fd = -1, rc = -1;

	if (real == NULL) {
		buf_printf(why, "%.200s is not a file inside the repository",
		           rel);
		return -1;
	}
	fd = open(real, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1 || fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		buf_printf(why,
		           "%.200s is not a regular file in the repository",
		           rel);
		goto out;
	}
	if ((size_t)st.st_size > max) {
		buf_printf(why, "%.200s is larger than %zu KiB", rel,
		           max / 1024);
		goto out;
	}
	while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
		if (out->len + (size_t)n > max) {
			buf_printf(why, "%.200s is larger than %zu KiB", rel,
			           max / 1024);
			goto out;
		}
		buf_append(out, chunk, (size_t)n);
	}
	rc = n == 0 ? 0 : -1;
out:
	if (fd != -1)
		close(fd);
	free(real);
	return rc;
}
