/*
 * supervisor.c - the one process supervisor of both programs (nginx's
 * ngx_process_cycle.c, Postfix's master_spawn.c).
 *
 * The parent blocks its signals and takes them synchronously with
 * sigtimedwait, so there is no handler racing the main loop. A child that
 * dies is replaced; one that dies within a second of starting doubles its
 * restart delay (up to 5 s) so a crash loop cannot spin the machine. On TERM
 * or INT the parent sends TERM to every child, waits up to the shutdown
 * timeout, then sends KILL to the rest.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ephemera.h"

#define RESTART_MAX_DELAY 5.0

struct slot {
	pid_t pid;
	double started;
	double restart_at;
	double delay;
};

static volatile sig_atomic_t child_terms;
static void (*child_on_stop)(void);

static void
child_on_term(int sig)
{
	(void)sig;
	child_terms++;
	if (child_on_stop)
		child_on_stop();
}

bool
supervisor_stopping(void)
{
	return child_terms > 0;
}

int
supervisor_term_count(void)
{
	return (int)child_terms;
}

void
supervisor_child_signals(void (*on_stop)(void))
{
	struct sigaction sa;
	sigset_t all;

	child_on_stop = on_stop;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a blocking call returns EINTR and sees the flag. */
	sa.sa_handler = child_on_term;
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
}

static void
describe_status(int status, struct buf *b)
{
	if (WIFSIGNALED(status))
		buf_printf(b, "signal=%s", strsignal(WTERMSIG(status)));
	else
		buf_printf(b, "status=%d", WEXITSTATUS(status));
}

static void
slot_spawn(struct supervisor *sv, struct slot *s, int i, pid_t parent)
{
	pid_t pid = fork();

	if (pid == -1) {
		log_error("child_fork", "slot=%d errno=%m", i);
		s->restart_at = now_mono() + 1.0;
		return;
	}
	if (pid == 0) {
		int rc;

		/* A child must not outlive a KILLed supervisor. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(0);
		supervisor_child_signals(NULL);
		rc = sv->child_main(i, sv->arg);
		exit(rc);
	}
	s->pid = pid;
	s->started = now_mono();
	log_info("child_start", "name=%s slot=%d child=%ld", sv->name, i,
	         (long)pid);
}

/* Reaps every exited child; returns how many are still alive. */
static int
reap(struct supervisor *sv, struct slot *slots, bool stopping)
{
	int status, i, alive = 0;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (i = 0; i < sv->children; i++) {
			struct slot *s = &slots[i];
			struct buf why = BUF_INIT;
			bool clean;

			if (s->pid != pid)
				continue;
			describe_status(status, &why);
			clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
			s->pid = 0;
			if (stopping) {
				log_info("child_exit",
				         "name=%s slot=%d child=%ld"
				         " %s",
				         sv->name, i, (long)pid, buf_str(&why));
			} else {
				/* Quick deaths back off; others restart now. */
				if (!clean && now_mono() - s->started < 1.0)
					s->delay =
					        s->delay ? s->delay * 2 : 0.1;
				else
					s->delay = 0;
				if (s->delay > RESTART_MAX_DELAY)
					s->delay = RESTART_MAX_DELAY;
				s->restart_at = now_mono() + s->delay;
				log_msg(clean ? LOG_INFO : LOG_WARN,
				        "child_exit",
				        "name=%s slot=%d child=%ld"
				        " %s restart_in=%.1fs",
				        sv->name, i, (long)pid, buf_str(&why),
				        s->delay);
			}
			buf_free(&why);
		}
	}
	for (i = 0; i < sv->children; i++)
		alive += slots[i].pid != 0;
	return alive;
}

static void
signal_all(struct supervisor *sv, struct slot *slots, int sig)
{
	int i;

	for (i = 0; i < sv->children; i++)
		if (slots[i].pid != 0)
			kill(slots[i].pid, sig);
}

static void
shutdown_children(struct supervisor *sv, struct slot *slots,
                  const sigset_t *set)
{
	double deadline = now_mono() + sv->shutdown_timeout;
	struct timespec tick = {0, 50 * 1000 * 1000};
	siginfo_t info;
	int sig;

	signal_all(sv, slots, SIGTERM);
	while (reap(sv, slots, true) > 0) {
		if (now_mono() >= deadline) {
			log_warn("child_kill",
			         "name=%s reason=shutdown_timeout "
			         "timeout=%.0fs",
			         sv->name, sv->shutdown_timeout);
			signal_all(sv, slots, SIGKILL);
			deadline = now_mono() + 5;
		}
		sig = sigtimedwait(set, &info, &tick);
		/* A second TERM or INT is passed on: "hurry up". */
		if (sig == SIGTERM || sig == SIGINT)
			signal_all(sv, slots, SIGTERM);
	}
}

int
supervisor_run(struct supervisor *sv)
{
	struct slot *slots = xcalloc((size_t)sv->children, sizeof(*slots));
	struct timespec tick = {0, 100 * 1000 * 1000};
	pid_t self = getpid();
	sigset_t set;
	siginfo_t info;
	int i, sig, rc = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (sv->pidfile != NULL && pidfile_write(sv->pidfile) == -1) {
		rc = 1;
		goto out;
	}
	log_info("supervisor_start", "name=%s children=%d", sv->name,
	         sv->children);
	for (i = 0; i < sv->children; i++)
		slot_spawn(sv, &slots[i], i, self);
	for (;;) {
		sig = sigtimedwait(&set, &info, &tick);
		if (sig == SIGTERM || sig == SIGINT) {
			log_info("supervisor_stop", "name=%s signal=%s",
			         sv->name, strsignal(sig));
			break;
		}
		reap(sv, slots, false);
		for (i = 0; i < sv->children; i++)
			if (slots[i].pid == 0 &&
			    now_mono() >= slots[i].restart_at)
				slot_spawn(sv, &slots[i], i, self);
		if (sv->tick)
			sv->tick(sv->arg);
	}
	shutdown_children(sv, slots, &set);
	log_info("supervisor_exit", "name=%s", sv->name);
out:
	if (sv->pidfile)
		pidfile_remove(sv->pidfile);
	free(slots);
	return rc;
}
