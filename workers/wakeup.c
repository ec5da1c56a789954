/*
 * wakeup.c - the receiving end of lib/wake.c. The supervisor binds one
 * datagram socket before forking, so every child inherits it; an idle
 * child sleeps in poll() on it, and a nudge after an enqueue COMMIT wakes
 * the children at once instead of after their poll interval. Datagrams
 * carry no data that matters: any of them only means "look at the queue".
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "workers.h"

int
wakeup_bind(const char *path)
{
	struct sockaddr_un sa;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_error("wakeup_bind", "path=%s error=\"path too long\"",
		          log_q(path));
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		log_error("wakeup_bind", "errno=%m");
		return -1;
	}
	/* A socket left by a killed supervisor would make bind fail. */
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		log_error("wakeup_bind", "path=%s errno=%m", log_q(path));
		close(fd);
		return -1;
	}
	return fd;
}

int
wakeup_wait(int fd, int64_t ms)
{
	struct pollfd p = {fd, POLLIN, 0};
	char b[64];
	int n;

	if (ms > 60000)
		ms = 60000;
	n = poll(fd >= 0 ? &p : NULL, fd >= 0 ? 1 : 0, (int)ms);
	if (n <= 0)
		return 0;
	/* Non-blocking: another child may have taken them already. */
	while (recv(fd, b, sizeof(b), MSG_DONTWAIT) > 0)
		;
	return 1;
}
