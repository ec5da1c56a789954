/*
 * test_provider.c - the provider seam's selection: the defaults, the
 * per-repository override, a name with no table in this build, and the
 * config's checks of the override.
 */
#include <unistd.h>

#include "unit.h"

#include "../../workers/workers.h"

static void
test_selection(void)
{
	struct config cfg;
	struct buf err = BUF_INIT;
	char *p = unit_write_tmp(
	        "repos = ( { name = \"o/local\"; },\n"
	        "          { name = \"o/cloud\"; compute_provider = \"ec2\"; "
	        "exposure_provider = \"nginx\"; } );\n"
	        "aws: { region = \"eu-west-1\"; };\n"
	        "ec2: { ami = \"ami-1\"; subnet_ids = \"subnet-1\"; "
	        "security_group_ids = \"sg-1\"; };\n");

	CHECK(config_load(&cfg, p, &err) == 0);
	if (err.len)
		fprintf(stderr, "  %s\n", buf_str(&err));
	CHECK(compute_for(&cfg, NULL) == &compute_local);
	CHECK(compute_for(&cfg, "o/local") == &compute_local);
	CHECK(compute_for(&cfg, "o/unknown") == &compute_local);
	CHECK(exposure_for(&cfg, NULL) == &exposure_nginx);
	CHECK(exposure_for(&cfg, "o/cloud") == &exposure_nginx);
	/* The per-repo override picks the ec2 table by its name. */
	CHECK(compute_for(&cfg, "o/cloud") == &compute_ec2);
	CHECK(strcmp(compute_ec2.name, "ec2") == 0);
	config_free(&cfg);
	unlink(p);
	free(p);
	buf_free(&err);
}

/* "cloudflare" by default or for one repository; the other keeps nginx. */
static void
test_cloudflare_selected(void)
{
	char *tok = unit_write_tmp("token\n");
	struct buf text = BUF_INIT;
	const char *which[] = {"exposure: { provider = \"cloudflare\"; };\n"
	                       "repos = ( { name = \"o/n\"; "
	                       "exposure_provider = \"nginx\"; } );\n",
	                       "repos = ( { name = \"o/c\"; "
	                       "exposure_provider = \"cloudflare\"; } );\n"};
	size_t i;

	for (i = 0; i < NELEM(which); i++) {
		struct config cfg;
		struct buf err = BUF_INIT;
		char *p;

		buf_reset(&text);
		buf_printf(&text,
		           "%scloudflare: { api_token_file = \"%s\"; "
		           "account_id = \"%032d\"; zone_id = \"%032d\"; "
		           "zone = \"previews.example\"; };\n",
		           which[i], tok, 1, 2);
		p = unit_write_tmp(buf_str(&text));
		CHECK(config_load(&cfg, p, &err) == 0);
		if (err.len)
			fprintf(stderr, "  %s\n", buf_str(&err));
		if (i == 0) {
			CHECK(exposure_for(&cfg, NULL) == &exposure_cloudflare);
			CHECK(exposure_for(&cfg, "o/n") == &exposure_nginx);
		} else {
			CHECK(exposure_for(&cfg, NULL) == &exposure_nginx);
			CHECK(exposure_for(&cfg, "o/c") ==
			      &exposure_cloudflare);
		}
		config_free(&cfg);
		unlink(p);
		free(p);
		buf_free(&err);
	}
	buf_free(&text);
	unlink(tok);
	free(tok);
}

static void
test_override_checked(void)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
	        {"repos = ( { name = \"o/r\"; compute_provider = \"k8s\"; } );\n",
	         ":1: setting 'repos': entry 0: compute_provider must be one "
	         "of \"local|ec2\""},
	        {"repos = ( { name = \"o/r\"; compute_provider = \"ec2\"; } );\n",
	         "setting 'aws.region': must be set"},
	        /* A repository's cloudflare needs the zone as the default's
	         * would. */
	        {"repos = ( { name = \"o/r\"; exposure_provider = "
	         "\"cloudflare\"; } );\n",
	         "setting 'cloudflare.zone': cloudflare.zone and "
	         "cloudflare.zone_id must be set"},
	        {"repos = ( { name = \"o/r\"; exposure_provider = \"cdn\"; "
	         "} );\n",
	         "exposure_provider one of \"nginx|cloudflare\""},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		struct config cfg;
		struct buf err = BUF_INIT;
		char *p = unit_write_tmp(cases[i].text);

		CHECK(config_load(&cfg, p, &err) == -1);
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

/* The workers' Access service token file must be there to be named. */
static void
test_access_token_file_checked(void)
{
	char *tok = unit_write_tmp("token\n");
	struct buf text = BUF_INIT, err = BUF_INIT;
	struct config cfg;
	char *p;

	buf_printf(&text,
	           "exposure: { provider = \"cloudflare\"; };\n"
	           "cloudflare: { api_token_file = \"%s\";\n"
	           "  account_id = \"%032d\"; zone_id = \"%032d\";\n"
	           "  zone = \"previews.example\";\n"
	           "  access_service_token_file = \"/nonexistent/pair\"; };\n",
	           tok, 1, 2);
	p = unit_write_tmp(buf_str(&text));
	CHECK(config_load(&cfg, p, &err) == -1);
	CHECK(strstr(buf_str(&err), ":5: setting "
	                            "'cloudflare.access_service_token_file': "
	                            "cannot read /nonexistent/pair") != NULL);
	config_free(&cfg);
	unlink(p);
	unlink(tok);
	free(p);
	free(tok);
	buf_free(&text);
	buf_free(&err);
}

/* Cloudflare wakes an idle preview only with the control plane's tunnel
 * to send its visits to; a malformed id is refused at its line. */
static void
test_cloudflare_wake_tunnel(void)
{
	static const char *const ids[] = {
	        "",
	        "0b7e1c52-3f4a-4d6e-9a8b-1c2d3e4f5a6b",
	        "0B7E1C52-3F4A-4D6E-9A8B-1C2D3E4F5A6B", /* not as CF writes */
	        "0b7e1c52-3f4a-4d6e-9a8b-1c2d3e4f5a6",
	        "0b7e1c52",
	        "0b7e1c52-3f4a-4d6e-9a8b-1c2d3e4f5a6bb"};
	char *tok = unit_write_tmp("token\n");
	size_t i;

	for (i = 0; i < NELEM(ids); i++) {
		struct buf text = BUF_INIT, err = BUF_INIT;
		struct config cfg;
		char *p;
		int rc;

		buf_printf(&text,
		           "exposure: { provider = \"cloudflare\"; };\n"
		           "cloudflare: { api_token_file = \"%s\";\n"
		           "  account_id = \"%032d\"; zone_id = \"%032d\";\n"
		           "  zone = \"previews.example\";\n"
		           "  wake_tunnel_id = \"%s\"; };\n",
		           tok, 1, 2, ids[i]);
		p = unit_write_tmp(buf_str(&text));
		rc = config_load(&cfg, p, &err);
		if (i < 2) {
			CHECK(rc == 0);
			CHECK(exposure_wakes(&cfg, &exposure_cloudflare) ==
			      (i == 1));
			CHECK(exposure_wakes(&cfg, &exposure_nginx));
		} else {
			CHECK(rc == -1);
			CHECK(strstr(buf_str(&err),
			             ":5: setting 'cloudflare.wake_tunnel_id': "
			             "must be the control plane tunnel's id") !=
			      NULL);
		}
		config_free(&cfg);
		unlink(p);
		free(p);
		buf_free(&text);
		buf_free(&err);
	}
	unlink(tok);
	free(tok);
}

static void
test_tables_complete(void)
{
	CHECK(compute_local.observe && compute_local.deploy &&
	      compute_local.stop && compute_local.destroy &&
	      compute_local.leftovers && compute_local.list_owned);
	CHECK(exposure_nginx.route && exposure_nginx.verify &&
	      exposure_nginx.unroute && exposure_nginx.exists &&
	      exposure_nginx.url && exposure_nginx.list_owned &&
	      !exposure_nginx.unroute_after_compute);
	/* Cloudflare routes in prepare (its connector joins the project)
	 * and unroutes once the connector is down. */
	CHECK(exposure_cloudflare.prepare && !exposure_cloudflare.route &&
	      exposure_cloudflare.verify && exposure_cloudflare.unroute &&
	      exposure_cloudflare.unroute_after_compute &&
	      exposure_cloudflare.exists && exposure_cloudflare.url &&
	      exposure_cloudflare.list_owned && exposure_cloudflare.sleep &&
	      exposure_cloudflare.can_sleep);
}

UNIT_MAIN(TEST(test_selection), TEST(test_cloudflare_selected),
          TEST(test_override_checked), TEST(test_access_token_file_checked),
          TEST(test_cloudflare_wake_tunnel), TEST(test_tables_complete))
