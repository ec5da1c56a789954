/*
 * nginx_generation.c - when a reload of our nginx has taken over.
 *
 * A reload (SIGHUP) makes the master read the configuration, start a new
 * generation of workers, sleep 100 ms, and only then tell the old ones to
 * stop accepting. For that while both generations take connections, and
 * on a busy host the new one can answer a probe first: a check that saw
 * the new route once could declare a preview ready that the next request
 * (served by an old worker) does not know. Measured here with wrk keeping
 * the workers busy: 59 of 200 reloads answered from the old configuration
 * after the new route's first answer.
 *
 * So after the route answers, we wait until no more workers accept than
 * the configuration starts (worker_processes): the master starts the whole
 * new generation before it stops any old worker, so at that count every
 * accepting worker is of the generation that answered or a later one, and
 * each of those read a configuration written after our route was.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../workers.h"

/* The title nginx gives a worker that accepts connections; one that was
 * told to stop says "nginx: worker process is shutting down". */
#define WORKER_TITLE "nginx: worker process"

long
nginx_conf_workers(const char *text, long ncpu)
{
	const char *p = text, *key = "worker_processes";
	size_t klen = strlen(key);

	/* A directive at the start of a line (the template's main context). */
	while (p != NULL && *p) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncmp(p, key, klen) == 0 &&
		    (p[klen] == ' ' || p[klen] == '\t')) {
			int64_t n;
			char word[16];
			size_t i = 0;

			p += klen;
			while (*p == ' ' || *p == '\t')
				p++;
			while (i + 1 < sizeof(word) &&
			       isalnum((unsigned char)*p))
				word[i++] = *p++;
			word[i] = '\0';
			if (*p != ';')
				return -1;
			if (strcmp(word, "auto") == 0)
				return ncpu > 0 ? ncpu : -1;
			return parse_int64(word, 1, 4096, &n) == 0 ? (long)n
			                                           : -1;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return 1; /* nginx's default */
}

long
nginx_stat_ppid(const char *stat)
{
	/* pid (comm) state ppid ...: comm may hold spaces and parentheses,
	 * so the fields start after its last ')'. */
	const char *p = strrchr(stat, ')');
	char state;
	long ppid;

	if (p == NULL || sscanf(p + 1, " %c %ld", &state, &ppid) != 2)
		return -1;
	return ppid;
}

bool
nginx_title_accepting(const char *cmdline, size_t len)
{
	size_t n = strlen(WORKER_TITLE);

	/* setproctitle pads with NULs or spaces after the title. */
	if (len < n || memcmp(cmdline, WORKER_TITLE, n) != 0)
		return false;
	for (; n < len; n++)
		if (cmdline[n] != '\0' && cmdline[n] != ' ')
			return false;
	return true;
}

/* Reads at most cap-1 bytes of a small file; the length or -1. */
static ssize_t
small_file_read(const char *path, char *out, size_t cap)
{
	ssize_t n, got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd == -1)
		return -1;
	while ((size_t)got + 1 < cap &&
	       (n = read(fd, out + got, cap - 1 - (size_t)got)) > 0)
		got += n;
	close(fd);
	out[got] = '\0';
	return got;
}

/* The workers of `master` that accept connections now, or -1. */
static int
nginx_accepting_count(long master)
{
	char path[300], text[512]; /* /proc/ + a name (<= 255) + /cmdline */
	struct dirent *de;
	int count = 0;
	DIR *d = opendir("/proc");

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		ssize_t n;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		/* A process that ended meanwhile is simply not counted. */
		if (small_file_read(path, text, sizeof(text)) <= 0 ||
		    nginx_stat_ppid(text) != master)
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
		n = small_file_read(path, text, sizeof(text));
		if (n > 0 && nginx_title_accepting(text, (size_t)n))
			count++;
	}
	closedir(d);
	return count;
}

/* The master's pid and how many workers its configuration starts. */
static int
nginx_master_read(const struct config *cfg, long *master, long *workers)
{
	char *pidfile = config_var_path(cfg, "run/nginx.pid");
	char *conf = config_var_path(cfg, "nginx/nginx.conf");
	size_t cap = 64 * 1024;
	char *text = xmalloc(cap);
	int64_t pid;
	int rc = -1;

	if (small_file_read(pidfile, text, 32) <= 0) {
		log_error("nginx_generation", "pidfile=%s reason=unreadable",
		          log_q(pidfile));
		goto out;
	}
	text[strcspn(text, "\n")] = '\0';
	if (parse_int64(text, 2, INT32_MAX, &pid) == -1) {
		log_error("nginx_generation", "pidfile=%s reason=not_a_pid",
		          log_q(pidfile));
		goto out;
	}
	*master = (long)pid;
	*workers = small_file_read(conf, text, cap) > 0
	                   ? nginx_conf_workers(text,
	                                        sysconf(_SC_NPROCESSORS_ONLN))
	                   : -1;
	if (*workers < 1) {
		log_error("nginx_generation", "conf=%s reason=unreadable",
		          log_q(conf));
		goto out;
	}
	rc = 0;
out:
	free(text);
	free(pidfile);
	free(conf);
	return rc;
}

int
nginx_generation_wait(struct worker *w, const struct job *job, double seconds)
{
	double deadline = now_mono() + seconds, beat = now_mono();
	long master, workers;
	int n = -1;

	if (nginx_master_read(w->cfg, &master, &workers) == -1)
		return -1;
	for (;;) {
		n = nginx_accepting_count(master);
		if (n == -1) {
			log_error("nginx_generation",
			          "reason=no_proc errno=%m");
			return -1;
		}
		if (n <= workers)
			return 0;
		if (now_mono() > deadline)
			break;
		if (job && now_mono() - beat > 5) {
			beat = now_mono();
			if (job_heartbeat(w, job) == -1)
				return -1;
		}
		usleep(20 * 1000);
	}
	log_error("nginx_generation",
	          "master=%ld accepting=%d workers=%ld "
	          "reason=timeout",
	          master, n, workers);
	return -1;
}
