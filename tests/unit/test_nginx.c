/* test_nginx.c - what nginx_generation.c reads: nginx.conf's worker count,
 * a /proc stat line's parent, a worker's title. */
#include "unit.h"
#include "../../workers/workers.h"

static void
test_conf_workers(void)
{
	static const struct {
		const char *text;
		long ncpu, want;
	} cases[] = {
	        {"# comment\nworker_processes 2;\npid /x;\n", 8, 2},
	        {"worker_processes\tauto;\n", 6, 6},
	        {"  worker_processes 12;", 1, 12},
	        {"events {}\n", 4, 1}, /* nginx's default */
	        {"# worker_processes 9;\nworker_processes 3;\n", 1, 3},
	        {"worker_processes x;\n", 1, -1},
	        {"worker_processes 2\n", 1, -1},
	        {"worker_processes 0;\n", 1, -1},
	        {"worker_processes auto;\n", 0, -1},
	        {"worker_processes_x 4;\nworker_processes 5;\n", 1, 5},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++)
		CHECK(nginx_conf_workers(cases[i].text, cases[i].ncpu) ==
		      cases[i].want);
}

static void
test_stat_ppid(void)
{
	CHECK(nginx_stat_ppid("4242 (nginx) S 4200 4200 4200 0 -1") == 4200);
	/* A comm may hold spaces and parentheses. */
	CHECK(nginx_stat_ppid("7 (a) b (c) R 31 7 7 0") == 31);
	CHECK(nginx_stat_ppid("7 nginx S 31") == -1);
	CHECK(nginx_stat_ppid("7 (nginx)") == -1);
	CHECK(nginx_stat_ppid("") == -1);
}

static void
test_title_accepting(void)
{
	static const char worker[] = "nginx: worker process\0\0\0";
	static const char padded[] = "nginx: worker process      ";
	static const char leaving[] = "nginx: worker process is shutting down";
	static const char master[] = "nginx: master process /usr/sbin/nginx";

	CHECK(nginx_title_accepting(worker, sizeof(worker) - 1));
	CHECK(nginx_title_accepting(padded, sizeof(padded) - 1));
	CHECK(!nginx_title_accepting(leaving, sizeof(leaving) - 1));
	CHECK(!nginx_title_accepting(master, sizeof(master) - 1));
	CHECK(!nginx_title_accepting("nginx: worker", 13));
	CHECK(!nginx_title_accepting("", 0));
}

UNIT_MAIN(TEST(test_conf_workers), TEST(test_stat_ppid),
          TEST(test_title_accepting))
