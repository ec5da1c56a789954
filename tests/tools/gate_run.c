/*
 * gate_run.c - runs the compose gate on a checkout directory, as the
 * worker's configure step does (repo_conf.c, compose_load.c), for the
 * hostile corpus (tests/integration/test_gate.py) and the bench.
 *
 *   gate_run [-n ROUNDS] [-i IMAGES] [-p PROJECT] SRC_DIR
 *
 * Prints the compose.json on stdout and exits 0, or prints
 * "refused: <reason>" on stderr and exits 1. With -n, runs the gate that
 * many times and prints "gate_ms=<mean>" on stderr. Always prints
 * "peak_kib=<VmHWM>" on stderr last: the peak of this program's own memory
 * (the tests' bound), which a parent's rusage cannot give, since a
 * process's ru_maxrss also counts the image it was forked from before exec.
 */
#include <json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../workers/workers.h"

static void
peak_print(void)
{
	char line[128];
	FILE *f = fopen("/proc/self/status", "r");

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "VmHWM:", 6) == 0)
			fprintf(stderr, "peak_kib=%lld\n",
			        strtoll(line + 6, NULL, 10));
	if (f)
		fclose(f);
}

int
main(int argc, char **argv)
{
	static const char *const vars[] = {"EPHEMERA_COMMIT=0123456789abcdef",
	                                   NULL};
	struct compose_policy pol = {
	        .project = "eph-gate-test",
	        .instance = "eph",
	        .env_id = 1,
	        .allowed_images = "ephemera/busybox:",
	        .max_services = 20,
	        .max_networks = 3,
	        .max_volumes = 8,
	        .allow_build = true,
	        .mem_default = 512ll << 20,
	        .mem_max = 2048ll << 20,
	        .pids_default = 512,
	        .pids_max = 4096,
	        .cpus_default = 1,
	        .cpus_max = 2,
	};
	struct compose_load load = {NULL, vars};
	int opt, rounds = 1, i, rc = 0;
	double t0;
	char *src;

	while ((opt = getopt(argc, argv, "n:i:p:")) != -1) {
		if (opt == 'n')
			rounds = (int)strtol(optarg, NULL, 10);
		else if (opt == 'i')
			pol.allowed_images = optarg;
		else if (opt == 'p')
			pol.project = optarg;
		else
			return 2;
	}
	if (optind != argc - 1 || rounds < 1) {
		fprintf(stderr, "usage: gate_run [-n N] [-i IMAGES] SRC_DIR\n");
		return 2;
	}
	if ((src = realpath(argv[optind], NULL)) == NULL)
		return 2;
	pol.src_dir = src;
	t0 = now_mono();
	for (i = 0; i < rounds; i++) {
		struct repo_settings rs;
		struct compose_result res;
		struct json_object *out = NULL;
		struct buf why = BUF_INIT;

		rc = repo_settings_load(src, &rs, &why);
		if (rc == 0) {
			load.compose_file = rs.compose_file;
			pol.allow_build = rs.build;
			rc = compose_load_gate(&load, &pol, &out, &res, &why);
		}
		if (rc == -1 && i == 0)
			fprintf(stderr, "refused: %s\n", buf_str(&why));
		if (rc == 0 && i == rounds - 1)
			printf("%s\n",
			       json_object_to_json_string_ext(
			               out,
			               JSON_C_TO_STRING_PRETTY |
			                       JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(out);
		compose_result_free(&res);
		repo_settings_free(&rs);
		buf_free(&why);
	}
	if (rounds > 1)
		fprintf(stderr, "gate_ms=%.3f\n",
		        (now_mono() - t0) * 1000 / rounds);
	free(src);
	peak_print();
	return rc == 0 ? 0 : 1;
}
