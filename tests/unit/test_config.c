/* test_config.c - the settings table: defaults, bounds, file:line errors. */
#include <stdlib.h>
#include <unistd.h>

#include "unit.h"

static void
test_defaults(void)
{
	struct config cfg;
	struct buf err = BUF_INIT, v = BUF_INIT;
	char *p = unit_write_tmp("# nothing set\n");

	CHECK(config_load(&cfg, p, &err) == 0);
	CHECK(cfg.http_port == 8080);
	CHECK(cfg.workers_count == 2);
	CHECK_STR(cfg.policy_trigger, "all");
	CHECK(cfg.policy_deploy_drafts == false);
	CHECK(config_get(&cfg, "http.port", &v) == 0);
	CHECK_STR(buf_str(&v), "8080");
	CHECK(config_get(&cfg, "no.such", &v) == -1);
	config_free(&cfg);
	unlink(p);
	free(p);
	buf_free(&err);
	buf_free(&v);
}

static void
test_errors(void)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
	        {"workers: {\n  count = 0;\n};\n",
	         ":2: setting 'workers.count': must be an integer from 1 to 64 "
	         "(got 0)"},
	        {"http: { port = \"80\"; };\n",
	         ":1: setting 'http.port': must be an integer from 1 to 65535"},
	        {"\n\npolicy: { trigger = \"sometimes\"; };\n",
	         ":3: setting 'policy.trigger': must be one of \"all|label\" "
	         "(got \"sometimes\")"},
	        {"workers: { cuont = 3; };\n",
	         ":1: setting 'workers.cuont': unknown setting"},
	        {"http: { port = 8080 \n", ":2: syntax: "},
	        {"github: { webhook_secret_file = \"/nonexistent/secret\"; };\n",
	         ":1: setting 'github.webhook_secret_file': cannot read "
	         "\"/nonexistent/secret\""},
	        {"repos = ( { name = \"noslash\"; } );\n",
	         ":1: setting 'repos': entry 0 needs name = \"owner/repo\""},
	        {"workers: { backoff_base_ms = 5000; backoff_cap_ms = 10; };\n",
	         ":1: setting 'workers.backoff_cap_ms': must be at least"},
	        {"github: { enabled = true; };\n",
	         ":1: setting 'github.app_id': must be set when github.enabled"},
	        {"github: { enabled = true; app_id = 5; };\n",
	         ":1: setting 'github.private_key_file': must name"},
	        {"github: { enabled = true; app_id = 5; private_key_file = \"k\";"
	         " api_url = \"http://evil.example\"; };\n",
	         ":1: setting 'github.api_url': must be an https:// URL"},
	        {"\ncompute: { provider = \"ec2\"; };\n",
	         ":2: setting 'aws.region': must be set when compute.provider"},
	        {"compute: { provider = \"ec2\"; };\naws: { region = \"r\"; };\n",
	         ":1: setting 'ec2.ami': ec2.ami or ec2.launch_template"},
	        {"compute: { provider = \"ec2\"; };\naws: { region = \"r\"; };\n"
	         "ec2: { launch_template = \"lt-1\"; };\n",
	         ":1: setting 'ec2.subnet_ids': must name at least one subnet"},
	        {"compute: { provider = \"ec2\"; };\naws: { region = \"r\"; };\n"
	         "ec2: { ami = \"ami-1\"; subnet_ids = \"subnet-1\"; };\n",
	         ":1: setting 'ec2.security_group_ids': must name at least"},
	        {"compute: { provider = \"ec2\"; };\n"
	         "aws: { region = \"r\"; endpoint_url = \"http://x\"; };\n"
	         "ec2: { ami = \"a\"; subnet_ids = \"s\"; "
	         "security_group_ids = \"g\"; };\n",
	         ":2: setting 'aws.endpoint_url': must be an https:// URL"},
	        {"compute: { provider = \"ec2\"; };\naws: { region = \"r\"; };\n"
	         "ec2: { ami = \"a\"; subnet_ids = \"s\"; "
	         "security_group_ids = \"g\";\n envs_dir = \"/data/$(x)\"; };\n",
	         ":4: setting 'ec2.envs_dir': must be an absolute path"},
	        {"compute: { provider = \"ec2\"; };\naws: { region = \"r\"; };\n"
	         "ec2: { ami = \"a\"; subnet_ids = \"s\"; "
	         "security_group_ids = \"g\"; envs_dir = \"/a/../etc\"; };\n",
	         ":3: setting 'ec2.envs_dir': must be an absolute path"},
	        {"compute: { provider = \"fargate\"; };\n",
	         ":1: setting 'compute.provider': must be one of \"local|ec2\""},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		struct config cfg;
		struct buf err = BUF_INIT;
		char *p = unit_write_tmp(cases[i].text);

		CHECK(config_load(&cfg, p, &err) == -1);
		/* The message starts with the file name, then :line. */
		CHECK(strncmp(buf_str(&err), p, strlen(p)) == 0);
		if (strstr(buf_str(&err), cases[i].want) == NULL) {
			fprintf(stderr, "  case %zu: %s\n", i, buf_str(&err));
			CHECK(!"message");
		}
		config_free(&cfg);
		unlink(p);
		free(p);
		buf_free(&err);
	}
}

static void
test_secret_and_repos(void)
{
	struct config cfg;
	struct buf err = BUF_INIT, text = BUF_INIT;
	char *secret = unit_write_tmp("s3cret\n\n");
	char *p;

	buf_printf(&text,
	           "github: { webhook_secret_file = \"%s\"; };\n"
	           "repos = ( { name = \"o/r\"; source = \"/src\"; } );\n",
	           secret);
	p = unit_write_tmp(buf_str(&text));
	CHECK(config_load(&cfg, p, &err) == 0);
	CHECK_STR(cfg.github_webhook_secret, "s3cret");
	CHECK(cfg.nrepos == 1);
	CHECK(config_repo(&cfg, "o/r") != NULL);
	CHECK_STR(config_repo(&cfg, "o/r")->source, "/src");
	CHECK(config_repo(&cfg, "o/x") == NULL);
	config_free(&cfg);
	unlink(p);
	unlink(secret);
	free(p);
	free(secret);
	buf_free(&err);
	buf_free(&text);
}

static void
test_example_config(void)
{
	struct config cfg;
	struct buf err = BUF_INIT;

	CHECK(config_load(&cfg, "config/example.conf", &err) == 0);
	if (err.len)
		fprintf(stderr, "  %s\n", buf_str(&err));
	config_free(&cfg);
	buf_free(&err);
}

UNIT_MAIN(TEST(test_defaults), TEST(test_errors), TEST(test_secret_and_repos),
          TEST(test_example_config))
