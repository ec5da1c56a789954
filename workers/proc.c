/*
 * proc.c - runs a host program (never a shell command line) with a given
 * environment, collecting its stdout and the tail of its stderr, within a
 * timeout, calling back every few seconds so the caller can heartbeat its
 * job lease. Inputs go through the environment or stdin, never argv, so
 * nothing from a pull request is parsed by a shell or visible in ps.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "workers.h"

#define PROC_TICK_SECONDS 2.0

static void
proc_exec(const struct proc *p, int out[2], int err[2], int in[2])
{
	dup2(in[0], STDIN_FILENO);
	dup2(out[1], STDOUT_FILENO);
	dup2(err[1], STDERR_FILENO);
	close(in[0]), close(in[1]), close(out[0]), close(out[1]);
	close(err[0]), close(err[1]);
	/* Own process group, so a timeout can stop the whole tree. */
	setpgid(0, 0);
	/* If the worker dies, the program goes too (its lease is gone). */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	execve(p->argv[0], (char *const *)p->argv, (char *const *)p->envp);
	_exit(127);
}

static void
drain(int *fd, struct buf *b, bool tail)
{
	char chunk[8192];
	ssize_t n = read(*fd, chunk, sizeof(chunk));

	if (n > 0) {
		if (tail && b->len + (size_t)n > b->max) {
			buf_keep_tail(b, b->max / 2);
			b->failed = false;
		}
		buf_append(b, chunk, (size_t)n);
	} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
		close(*fd);
		*fd = -1;
	}
}

int
proc_run(struct proc *p)
{
	int out[2] = {-1, -1}, err[2] = {-1, -1}, in[2] = {-1, -1};
	double start = now_mono(), last_tick = start;
	size_t in_off = 0;
	int status = 0, rc = -1;
	bool killed = false;
	pid_t pid;

	p->exit_code = -1;
	p->timed_out = false;
	if (pipe2(out, O_CLOEXEC) == -1 || pipe2(err, O_CLOEXEC) == -1 ||
	    pipe2(in, O_CLOEXEC) == -1) {
		log_error("proc_pipe", "program=%s errno=%m",
		          log_q(p->argv[0]));
		goto out;
	}
	pid = fork();
	if (pid == -1) {
		log_error("proc_fork", "program=%s errno=%m",
		          log_q(p->argv[0]));
		goto out;
	}
	if (pid == 0)
		proc_exec(p, out, err, in);
	close(out[1]), close(err[1]), close(in[0]);
	out[1] = err[1] = in[0] = -1;
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	if (p->stdin_data == NULL || p->stdin_len == 0) {
		close(in[1]);
		in[1] = -1;
	}
	while (out[0] != -1 || err[0] != -1) {
		struct pollfd fds[3] = {{out[0], POLLIN, 0},
		                        {err[0], POLLIN, 0},
		                        {in[1], POLLOUT, 0}};
		double now = now_mono();

		if (!killed && p->timeout > 0 && now - start > p->timeout) {
			p->timed_out = true;
			killed = true;
			kill(-pid, SIGKILL);
		}
		if (!killed && p->tick &&
		    now - last_tick >= PROC_TICK_SECONDS) {
			last_tick = now;
			if (p->tick(p->tick_arg) == -1) {
				/* Our lease is gone: stop, someone else owns it. */
				killed = true;
				p->cancelled = true;
				kill(-pid, SIGKILL);
			}
		}
		if (poll(fds, 3, 1000) == -1 && errno != EINTR)
			break;
		if (out[0] != -1 && fds[0].revents)
			drain(&out[0], &p->out, false);
		if (err[0] != -1 && fds[1].revents)
			drain(&err[0], &p->err, true);
		if (in[1] != -1 && fds[2].revents) {
			ssize_t n = write(in[1], p->stdin_data + in_off,
			                  p->stdin_len - in_off);

			if (n > 0)
				in_off += (size_t)n;
			if (n < 0 || in_off == p->stdin_len) {
				close(in[1]);
				in[1] = -1;
			}
		}
	}
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	if (WIFEXITED(status))
		p->exit_code = WEXITSTATUS(status);
	rc = 0;
out:
	for (int i = 0; i < 2; i++) {
		if (out[i] != -1)
			close(out[i]);
		if (err[i] != -1)
			close(err[i]);
		if (in[i] != -1)
			close(in[i]);
	}
	return rc;
}

void
proc_init(struct proc *p)
{
	memset(p, 0, sizeof(*p));
	buf_init(&p->out, 4u * 1024 * 1024);
	buf_init(&p->err, 256u * 1024);
}

void
proc_free(struct proc *p)
{
	if (p == NULL)
		return;
	buf_free(&p->out);
	buf_free(&p->err);
}
