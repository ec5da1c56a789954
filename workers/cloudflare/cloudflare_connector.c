/*
 * cloudflare_connector.c - the cloudflared service the compose override
 * adds, and its token file. The token is a file mounted read-only and
 * named by --token-file: never --token (process lists show argv), never
 * TUNNEL_TOKEN in the compose file (docker inspect shows Config.Env).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "cloudflare.h"

void
cf_connector_service(const char *image, const char *token_path, struct buf *out)
{
	buf_puts(out, "{\"image\":");
	buf_append_json_string(out, image, strlen(image));
	/* Metrics on the project network only (no port is published): the
	 * idle sweep counts visits there. */
	buf_printf(out,
	           ",\"command\":[\"tunnel\",\"--no-autoupdate\","
	           "\"--metrics\",\"0.0.0.0:%d\",\"run\","
	           "\"--token-file\",\"/run/secrets/tunnel-token\"],",
	           CF_CONNECTOR_METRICS_PORT);
	buf_puts(out, "\"restart\":\"unless-stopped\","
	              "\"read_only\":true,\"cap_drop\":[\"ALL\"],"
	              "\"security_opt\":[\"no-new-privileges:true\"],"
	              "\"volumes\":[{\"type\":\"bind\",\"source\":");
	buf_append_json_string(out, token_path, strlen(token_path));
	buf_puts(out, ",\"target\":\"/run/secrets/tunnel-token\","
	              "\"read_only\":true}]}");
}

int
cf_connector_token_write(const char *path, const char *token)
{
	size_t n = strlen(token), off = 0;
	int fd, rc = -1;

	(void)unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	          0400);
	if (fd == -1) {
		log_error("cf_token_write", "path=%s error=%s", log_q(path),
		          log_q(strerror(errno)));
		return -1;
	}
	/*
	 * The image runs as uid 65532: the file is its own and no one
	 * else's (root reads it regardless). Without the right to chown
	 * (an unprivileged test run) it stays ours, still 0400.
	 */
	if (fchown(fd, CF_CONNECTOR_UID, CF_CONNECTOR_UID) == -1 &&
	    errno != EPERM)
		goto out;
	while (off < n) {
		ssize_t w = write(fd, token + off, n - off);

		if (w <= 0) {
			if (w == -1 && errno == EINTR)
				continue;
			goto out;
		}
		off += (size_t)w;
	}
	rc = 0;
out:
	if (rc == -1)
		log_error("cf_token_write", "path=%s error=%s", log_q(path),
		          log_q(strerror(errno)));
	close(fd);
	return rc;
}

/*
 * Prometheus' text format: "name value" or "name{labels} value" lines,
 * "#" comments. Go's client writes a large counter as "1.2e+06", so the
 * value is read as a double. Every series of the name is summed.
 */
int
cf_connector_requests(const char *metrics, int64_t *n)
{
	static const char name[] = CF_CONNECTOR_REQUESTS;
	const char *line = metrics;
	bool found = false;
	double sum = 0;

	while (*line != '\0') {
		size_t len = strcspn(line, "\n");
		const char *v = line + sizeof(name) - 1;

		if (len > sizeof(name) &&
		    strncmp(line, name, sizeof(name) - 1) == 0 &&
		    (*v == ' ' || *v == '{')) {
			char *end;
			double d;

			if (*v == '{')
				v = memchr(v, '}', len - (size_t)(v - line));
			if (v != NULL && v < line + len) {
				d = strtod(v + 1, &end);
				if (end > v + 1 && d >= 0 && d < 9e18) {
					sum += d;
					found = true;
				}
			}
		}
		line += len + (line[len] == '\n');
	}
	if (!found)
		return -1;
	*n = (int64_t)sum;
	return 0;
}
