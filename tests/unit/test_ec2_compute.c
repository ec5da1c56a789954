/*
 * test_ec2_compute.c - the pure parts of the ec2 provider: the deploy
 * script (rendered with hostile inputs and run through bash, both as
 * user-data and as SSM's quoted `bash -c` line, with stubs for
 * ephemera-host and the AWS CLI), the services line of SSM's output and
 * the ClientToken.
 */
#include <json.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unit.h"

#include "../../workers/aws/aws.h"

/* The stubs write what they were given into the work dir. */
static const char host_stub[] =
        "#!/bin/sh\n"
        "d=$EPH_DIR\n"
        "printf '%s' \"$EPH_SOURCE\" >\"$d/$1.source\"\n"
        "printf '%s' \"$EPH_SHA\" >\"$d/$1.sha\"\n"
        "printf '%s' \"$EPH_PROJECT\" >\"$d/$1.project\"\n"
        "printf '%s' \"$EPH_INSTANCE\" >\"$d/$1.instance\"\n"
        "printf '%s' \"$EPH_BUILD\" >\"$d/$1.build\"\n"
        "printf '%s' \"${EPH_GIT_TOKEN-unset}\" >\"$d/$1.token\"\n"
        "echo \"$1 said this\"\n"
        "[ ! -f \"$d/fail\" ] || [ \"$1\" != up ] || exit 3\n";
/* Answers `ssm get-parameter --name NAME` with the part the test wrote
 * to part.<last path segment of NAME>, a line as `--output text` gives. */
static const char aws_stub[] =
        "#!/bin/sh\n"
        "printf '%s\\n' \"$@\" >>\"$EPH_DIR/aws.args\"\n"
        "while [ $# -gt 0 ] && [ \"$1\" != --name ]; do shift; done\n"
        "cat \"$EPH_DIR/part.${2##*/}\" && echo\n";
static const char compose_text[] = "{\"services\":{\"web\":{\"image\":"
                                   "\"t1-o-r-7/s-web\"}}}";

static void
write_exec(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f) {
		fputs(text, f);
		fclose(f);
	}
	chmod(path, 0700);
}

static char *
slurp(const char *dir, const char *name)
{
	struct buf p = BUF_INIT, b = BUF_INIT;
	char chunk[512];
	size_t n;
	FILE *f;

	buf_printf(&p, "%s/%s", dir, name);
	f = fopen(buf_str(&p), "r");
	while (f && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, n);
	if (f)
		fclose(f);
	buf_free(&p);
	return f ? (b.data ? buf_detach(&b) : xstrdup("")) : NULL;
}

static int
run_sh(const char *cmd)
{
	FILE *p = popen(cmd, "w");

	return p ? pclose(p) : -1;
}

static void
check_run(const char *dir, const char *canary, const struct ec2_script *s)
{
	struct buf p = BUF_INIT;
	size_t k;
	char *v;

	CHECK(access(canary, F_OK) == -1); /* nothing was executed */
	v = slurp(dir, "fetch.source");
	CHECK_STR(v, s->source);
	free(v);
	v = slurp(dir, "up.sha");
	CHECK_STR(v, s->sha);
	free(v);
	v = slurp(dir, "up.project");
	CHECK_STR(v, s->project);
	free(v);
	v = slurp(dir, "up.instance");
	CHECK_STR(v, s->instance);
	free(v);
	v = slurp(dir, "up.build");
	CHECK_STR(v, "1");
	free(v);
	/* The clone token reaches `fetch` alone. */
	v = slurp(dir, "fetch.token");
	CHECK_STR(v, s->token_param ? "ghs_clone-secret" : "unset");
	free(v);
	v = slurp(dir, "up.token");
	CHECK_STR(v, "unset");
	free(v);
	/* The tunnel's token: a file for the connector, 0400, no newline. */
	v = slurp(dir, "tunnel-token");
	CHECK_STR(v, s->tunnel_param ? "cf-tunnel-secret" : NULL);
	free(v);
	if (s->tunnel_param) {
		struct stat st;

		buf_printf(&p, "%s/tunnel-token", dir);
		CHECK(stat(buf_str(&p), &st) == 0 &&
		      (st.st_mode & 07777) == 0400);
		unlink(buf_str(&p));
		buf_reset(&p);
	}
	v = slurp(dir, "compose.json");
	CHECK_STR(v, compose_text);
	free(v);
	v = slurp(dir, "aws.args");
	CHECK(v != NULL && strstr(v, "--with-decryption\n") != NULL);
	for (k = 0; k < s->ncompose_parts; k++)
		CHECK(v != NULL && strstr(v, s->compose_parts[k]) != NULL);
	free(v);
	/* The next run's stub log starts empty. */
	buf_printf(&p, "%s/aws.args", dir);
	unlink(buf_str(&p));
	buf_free(&p);
}

/* The status of `bash -c SCRIPT`, its standard output into `out`. */
static int
bash_run(const char *script, struct buf *out)
{
	struct buf cmd = BUF_INIT;
	char chunk[512];
	size_t n;
	FILE *p;
	int st;

	buf_puts(&cmd, "/bin/bash -c ");
	ssm_shell_quote(&cmd, script);
	buf_puts(&cmd, " 2>/dev/null");
	p = popen(buf_str(&cmd), "r");
	buf_free(&cmd);
	if (p == NULL)
		return -1;
	while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
		buf_append(out, chunk, n);
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/*
 * After the first boot's user-data: the result command reports its exit
 * code and output as its own; a failed `up` as exit 3, once the rerun
 * has ended (its .rc replaced, not appended).
 */
static void
check_result(const char *dir, const struct ec2_script *s)
{
	struct buf res = BUF_INIT, out = BUF_INIT, p = BUF_INIT;
	FILE *f;

	CHECK(ec2_result_render(s, &res) == 0);
	CHECK(bash_run(buf_str(&res), &out) == 0);
	CHECK(strstr(buf_str(&out), "up said this") != NULL);
	buf_printf(&p, "%s/fail", dir);
	f = fopen(buf_str(&p), "w");
	if (f)
		fclose(f);
	buf_reset(&out);
	buf_reset(&p);
	CHECK(ec2_first_render(s, &p) == 0);
	CHECK(bash_run(buf_str(&p), &out) == 0);
	buf_reset(&out);
	CHECK(bash_run(buf_str(&res), &out) == 3);
	buf_reset(&p);
	buf_printf(&p,
	           "rm -f -- '%s/fail' '%s.first.out' '%s.first.err' "
	           "'%s.first.rc'",
	           dir, dir, dir, dir);
	run_sh(buf_str(&p));
	buf_free(&res);
	buf_free(&out);
	buf_free(&p);
}

/* compose_text packed and cut into `n` parts, as the stub reads them. */
static void
parts_write(const char *dir, size_t n)
{
	static const char *const names[] = {"compose", "compose-1"};
	struct buf packed = BUF_INIT, p = BUF_INIT;
	size_t i, at = 0, len;
	FILE *f;

	CHECK(ec2_compose_pack(compose_text, strlen(compose_text), &packed) ==
	      0);
	for (i = 0; i < n; i++) {
		len = i + 1 < n ? packed.len / n : packed.len - at;
		buf_reset(&p);
		buf_printf(&p, "%s/part.%s", dir, names[i]);
		f = fopen(buf_str(&p), "w");
		CHECK(f != NULL);
		if (f) {
			fwrite(packed.data + at, 1, len, f);
			fclose(f);
		}
		at += len;
	}
	buf_free(&packed);
	buf_free(&p);
}

static void
test_script_hostile(void)
{
	static const char *const sources[] = {
	        "https://github.com/o/r.git",
	        "https://x/'; touch CANARY; echo '",
	        "$(touch CANARY)",
	        "`touch CANARY`",
	        "a\nb; touch CANARY\n",
	        "\"$(touch CANARY)\" ${IFS} \\ '\\'' ;|&<>*?~#",
	};
	char tmpl[] = "/tmp/ephemera-ec2-XXXXXX";
	char *dir = mkdtemp(tmpl);
	struct buf host = BUF_INIT, aws = BUF_INIT, canary = BUF_INIT;
	struct buf cmd = BUF_INIT, src = BUF_INIT, sha = BUF_INIT;
	static const char *const parts[] = {"/t1/o-r-7/compose",
	                                    "/t1/o-r-7/compose-1"};
	size_t i;
	int path;

	CHECK(dir != NULL);
	if (dir == NULL)
		return;
	buf_printf(&host, "%s/part.clone-token", dir);
	write_exec(buf_str(&host), "ghs_clone-secret");
	buf_reset(&host);
	buf_printf(&host, "%s/part.tunnel-token", dir);
	write_exec(buf_str(&host), "cf-tunnel-secret");
	buf_reset(&host);
	buf_printf(&host, "%s/host stub's", dir);
	buf_printf(&aws, "%s/aws", dir);
	buf_printf(&canary, "%s/CANARY", dir);
	buf_printf(&sha, "$(touch %s)", buf_str(&canary));
	write_exec(buf_str(&host), host_stub);
	write_exec(buf_str(&aws), aws_stub);
	for (i = 0; i < NELEM(sources); i++) {
		for (path = 0; path < 2; path++) {
			struct ec2_script s = {0};
			struct buf script = BUF_INIT;
			const char *argv[] = {"/bin/bash", "-c", NULL};
			size_t k;

			/* CANARY stands for the canary's absolute path. */
			buf_reset(&src);
			for (k = 0; sources[i][k]; k++)
				if (strncmp(sources[i] + k, "CANARY", 6) == 0) {
					buf_puts(&src, buf_str(&canary));
					k += 5;
				} else {
					buf_putc(&src, sources[i][k]);
				}
			s.host = buf_str(&host);
			s.aws = buf_str(&aws);
			s.instance = "t1";
			s.project = "t1-o-r-7";
			s.dir = dir;
			s.source = buf_str(&src);
			s.sha = i % 2 ? buf_str(&sha) : "0123abcd";
			s.region = "us-east-1";
			/* One part, or two that only make sense joined. */
			s.compose_parts = parts;
			s.ncompose_parts = 1 + i % 2;
			parts_write(dir, s.ncompose_parts);
			s.token_param = i % 3 ? "/t1/o-r-7/clone-token" : NULL;
			s.tunnel_param =
			        i % 2 ? "/t1/o-r-7/tunnel-token" : NULL;
			s.build = true;
			CHECK(ec2_script_render(&s, &script) == 0);
			CHECK(strstr(buf_str(&script), "ghs_") == NULL);
			CHECK(strstr(buf_str(&script), "cf-tunnel") == NULL);
			buf_reset(&cmd);
			if (path == 0) {
				/* user-data: as cloud-init runs it */
				buf_reset(&script);
				CHECK(ec2_first_render(&s, &script) == 0);
				buf_puts(&cmd,
				         "exec /bin/bash -s <<'EOF_EPH'\n");
				buf_puts(&cmd, buf_str(&script));
				buf_puts(&cmd, "EOF_EPH\n");
			} else {
				/* SSM: the quoted `bash -c SCRIPT` line */
				argv[2] = buf_str(&script);
				for (k = 0; k < NELEM(argv); k++) {
					if (k)
						buf_putc(&cmd, ' ');
					ssm_shell_quote(&cmd, argv[k]);
				}
			}
			CHECK(run_sh(buf_str(&cmd)) == 0);
			check_run(dir, buf_str(&canary), &s);
			if (path == 0)
				check_result(dir, &s);
			buf_free(&script);
		}
	}
	buf_reset(&cmd);
	buf_printf(&cmd, "rm -rf -- '%s'", dir);
	run_sh(buf_str(&cmd));
	buf_free(&host);
	buf_free(&aws);
	buf_free(&canary);
	buf_free(&cmd);
	buf_free(&src);
	buf_free(&sha);
}

static void
test_script_missing(void)
{
	struct ec2_script s = {0};
	struct buf b = BUF_INIT;

	s.host = EC2_HOST_SCRIPT;
	s.aws = "aws";
	CHECK(ec2_script_render(&s, &b) == -1);
	buf_free(&b);
}

static void
test_services_parse(void)
{
	static const struct {
		const char *out;
		int n; /* services; -1: NULL */
	} cases[] = {
	        {"[{\"name\":\"web\",\"address\":\"172.18.0.2\"}]\n", 1},
	        {"fetch noise\n[{\"name\":\"a\"},{\"name\":\"b\"}]\n\n", 2},
	        {"[]", 0},
	        {"", -1},
	        {"\n\n", -1},
	        {"{\"name\":\"web\"}\n", -1},
	        {"[{\"name\":\"web\"}]\ngarbage after\n", -1},
	        {"[{\"name\":\"web\",\"addr", -1}, /* cut at 24,000 */
	        {"[1]\r\n", 1},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		struct json_object *a =
		        ec2_services_parse(cases[i].out, strlen(cases[i].out));
		int n = a ? (int)json_object_array_length(a) : -1;

		if (n != cases[i].n)
			fprintf(stderr, "  case %zu: %d services, want %d\n", i,
			        n, cases[i].n);
		CHECK(n == cases[i].n);
		json_object_put(a);
	}
}

/* What the instance runs on the joined parts gives back the text. */
static void
test_compose_pack(void)
{
	char tmpl[] = "/tmp/ephemera-pack-XXXXXX";
	char *dir = mkdtemp(tmpl), *v;
	struct buf text = BUF_INIT, packed = BUF_INIT, cmd = BUF_INIT;
	size_t i;
	FILE *f;

	CHECK(dir != NULL);
	if (dir == NULL)
		return;
	/* 20 services' worth of JSON, with every byte value in strings. */
	for (i = 0; i < 20000; i++)
		buf_putc(&text, (char)(1 + (i * 7919) % 255));
	CHECK(ec2_compose_pack(text.data, text.len, &packed) == 0);
	CHECK(packed.len > 0 && packed.len % 4 == 0);
	for (i = 0; i < packed.len; i++)
		CHECK(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		             "0123456789+/=",
		             packed.data[i]) != NULL);
	buf_printf(&cmd, "%s/packed", dir);
	f = fopen(buf_str(&cmd), "w");
	CHECK(f != NULL);
	if (f) {
		/* Cut with a newline between parts, as the script joins them. */
		fwrite(packed.data, 1, packed.len / 2, f);
		fputc('\n', f);
		fwrite(packed.data + packed.len / 2, 1,
		       packed.len - packed.len / 2, f);
		fputc('\n', f);
		fclose(f);
	}
	buf_reset(&cmd);
	buf_printf(&cmd, "base64 -d <'%s/packed' | gunzip >'%s/text'", dir,
	           dir);
	CHECK(run_sh(buf_str(&cmd)) == 0);
	v = slurp(dir, "text");
	CHECK(v != NULL && strlen(v) == text.len &&
	      memcmp(v, text.data, text.len) == 0);
	free(v);
	buf_reset(&cmd);
	buf_printf(&cmd, "rm -rf -- '%s'", dir);
	run_sh(buf_str(&cmd));
	buf_free(&text);
	buf_free(&packed);
	buf_free(&cmd);
}

static void
test_client_token(void)
{
	char a[64], b[64], c[64];

	ec2_client_token("t123456789012345", 7, 3, a);
	ec2_client_token("t123456789012345", 7, 3, b);
	ec2_client_token("t123456789012345", 7, 4, c);
	CHECK_STR(a, b);
	CHECK(strcmp(a, c) != 0);
	CHECK(strlen(a) <= 64);
	ec2_client_token("eph", 18446744073709551615ull,
	                 18446744073709551615ull, a);
	CHECK_STR(a, "eph-18446744073709551615-18446744073709551615");
}

/* The metrics command runs the host script's `metrics` with each value
 * as given (a hostile one stays a value); a missing one renders nothing. */
static void
test_metrics_render(void)
{
	char tmpl[] = "/tmp/ephemera-ec2m-XXXXXX";
	char *dir = mkdtemp(tmpl);
	struct buf host = BUF_INIT, script = BUF_INIT, out = BUF_INIT;
	struct buf cmd = BUF_INIT;
	struct ec2_metrics_ask m = {NULL,        "t1",        "t1-pr-7-x",
	                            "it's $(x)", "fam_total", 20241};

	CHECK(dir != NULL);
	if (dir == NULL)
		return;
	buf_printf(&host, "%s/host stub's", dir);
	write_exec(buf_str(&host),
	           "#!/bin/sh\n"
	           "printf '%s|%s|%s|%s|%s|%s' \"$1\" \"$EPH_INSTANCE\" "
	           "\"$EPH_PROJECT\" \"$EPH_SERVICE\" \"$EPH_PORT\" "
	           "\"$EPH_METRIC\"\n");
	CHECK(ec2_metrics_render(&m, &script) == -1); /* no host */
	m.host = buf_str(&host);
	buf_reset(&script);
	CHECK(ec2_metrics_render(&m, &script) == 0);
	CHECK(bash_run(buf_str(&script), &out) == 0);
	CHECK_STR(buf_str(&out),
	          "metrics|t1|t1-pr-7-x|it's $(x)|20241|fam_total");
	m.port = 0;
	buf_reset(&script);
	CHECK(ec2_metrics_render(&m, &script) == -1);
	buf_printf(&cmd, "rm -rf -- '%s'", dir);
	run_sh(buf_str(&cmd));
	buf_free(&host);
	buf_free(&script);
	buf_free(&out);
	buf_free(&cmd);
}

UNIT_MAIN(TEST(test_script_hostile), TEST(test_script_missing),
          TEST(test_compose_pack), TEST(test_services_parse),
          TEST(test_client_token), TEST(test_metrics_render))
