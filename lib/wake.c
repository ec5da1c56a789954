/*
 * wake.c - the nudge that makes dispatch latency milliseconds instead of a
 * poll interval: after a COMMIT that queued work, send one datagram to the
 * local workers' socket. Non-blocking and best effort by design; polling
 * remains the guarantee.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ephemera.h"

char *
wake_socket_path(const struct config *cfg)
{
	if (cfg->workers_wake_socket[0] != '\0')
		return xstrdup(cfg->workers_wake_socket);
	return config_var_path(cfg, "run/wake.sock");
}

void
wake_notify(const struct config *cfg)
{
	/* One per thread (the fcgi-app's threads), kept open. */
	static _Thread_local int fd = -1;
	struct sockaddr_un sa;
	char *path = wake_socket_path(cfg);

	if (fd == -1)
		fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		            0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (fd != -1 && strlen(path) < sizeof(sa.sun_path)) {
		memcpy(sa.sun_path, path, strlen(path));
		/* EAGAIN (queue full) or ENOENT (no workers here) is fine. */
		(void)sendto(fd, "w", 1, 0, (struct sockaddr *)&sa, sizeof(sa));
	}
	free(path);
}
