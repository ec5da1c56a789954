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
	        {"local: { subnet_pool = \"10.230.0.1/16\"; };\n",
	         ":1: setting 'local.subnet_pool': must be an IPv4 block"},
	        {"local: { subnet_pool = \"10.230.0.0/24\"; subnet_prefix = 20; "
	         "};\n",
	         ":1: setting 'local.subnet_prefix': must be at least the pool"},
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
	        {"environments: { monthly_budget = -1.0; };\n",
	         ":1: setting 'environments.monthly_budget': must be a number "
	         "from 0 to 1000000000 (got -1)"},
	        {"repos = ( { name = \"o/r\";\n monthly_budget = \"50\"; } );\n",
	         ":2: setting 'repos': entry 0: monthly_budget must be a number "
	         "from 0"},
	        {"repos = ( { name = \"o/r\"; monthly_budget = -5; } );\n",
	         ":1: setting 'repos': entry 0: monthly_budget must be a number "
	         "from 0"},
	        {"repos = ( { name = \"o/r\"; monthly_budgett = 5.0; } );\n",
	         ":1: setting 'repos': unknown \"monthly_budgett\" in entry 0"},
	        {"repos = ( { name = \"Acme/App\"; },\n"
	         "          { name = \"acme/app\"; } );\n",
	         ":2: setting 'repos': entry 1: \"acme/app\" is entry 0 again"},
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
	/* A webhook may spell it as GitHub does, not as the config. */
	CHECK(config_repo(&cfg, "O/R") == config_repo(&cfg, "o/r"));
	config_free(&cfg);
	unlink(p);
	unlink(secret);
	free(p);
	free(secret);
	buf_free(&err);
	buf_free(&text);
}

/* A repository's own budget over the default; 0 exempts one. */
static void
test_budgets(void)
{
	struct config cfg;
	struct buf err = BUF_INIT;
	char *p = unit_write_tmp(
	        "environments: { monthly_budget = 100; };\n"
	        "repos = ( { name = \"o/small\"; monthly_budget = 50.5; },\n"
	        "  { name = \"o/free\"; monthly_budget = 0; },\n"
	        "  { name = \"o/plain\"; source = \"/src\"; } );\n");

	CHECK(config_load(&cfg, p, &err) == 0);
	if (err.len)
		fprintf(stderr, "  %s\n", buf_str(&err));
	CHECK(config_budget(&cfg, "o/small") == 50.5);
	CHECK(config_budget(&cfg, "o/free") == 0);
	CHECK(config_budget(&cfg, "o/plain") == 100); /* listed, no budget */
	CHECK(config_budget(&cfg, "o/other") == 100);
	CHECK(config_budget(&cfg, NULL) == 100);
	config_free(&cfg);
	unlink(p);
	free(p);
	p = unit_write_tmp("# nothing set\n");
	CHECK(config_load(&cfg, p, &err) == 0);
	CHECK(config_budget(&cfg, "o/r") == 0); /* no budget by default */
	config_free(&cfg);
	unlink(p);
	free(p);
	buf_free(&err);
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

/* local.subnet_pool's arithmetic (lib/subnet.c). */
static void
test_subnets(void)
{
	struct config cfg = {0};
	char out[SUBNET_MAX];
	uint32_t base;
	int bits;

	CHECK(subnet_pool_parse("10.230.0.0/16", &base, &bits) == 0);
	CHECK(base == 0x0ae60000u && bits == 16);
	CHECK(subnet_pool_parse("10.230.0.0/33", &base, &bits) == -1);
	CHECK(subnet_pool_parse("10.230.0/16", &base, &bits) == -1);
	CHECK(subnet_pool_parse("10.230.0.0/16 ", &base, &bits) == -1);
	CHECK(subnet_pool_parse("256.0.0.0/8", &base, &bits) == -1);
	cfg.local_subnet_pool = "";
	cfg.local_subnet_prefix = 28;
	CHECK(subnet_pool_size(&cfg) == 0);
	cfg.local_subnet_pool = "10.231.7.0/27";
	CHECK(subnet_pool_size(&cfg) == 2);
	CHECK(subnet_format(&cfg, 0, out) == 0);
	CHECK_STR(out, "10.231.7.0/28");
	CHECK(subnet_format(&cfg, 1, out) == 0);
	CHECK_STR(out, "10.231.7.16/28");
	CHECK(subnet_format(&cfg, 2, out) == -1);
	CHECK(subnet_format(&cfg, -1, out) == -1);
	/* A /8 cut into /28s: capped at 65,536, the last one in the block. */
	cfg.local_subnet_pool = "10.0.0.0/8";
	CHECK(subnet_pool_size(&cfg) == 65536);
	CHECK(subnet_format(&cfg, 65535, out) == 0);
	CHECK_STR(out, "10.15.255.240/28");
}

UNIT_MAIN(TEST(test_defaults), TEST(test_errors), TEST(test_secret_and_repos),
          TEST(test_budgets), TEST(test_example_config), TEST(test_subnets))
