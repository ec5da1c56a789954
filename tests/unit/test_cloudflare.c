/*
 * test_cloudflare.c - the Cloudflare provider's pure parts: the v4
 * envelope on the recorded bodies in tests/fixtures/cloudflare/, what an
 * answer means, the error sentences, hostnames, anchored ingress paths
 * (checked with a real regex engine) and the rendered ingress (golden).
 */
#include <json-c/json.h>
#include <regex.h>
#include <unistd.h>
#include <sys/stat.h>

#include "fixture.h"
#include "../../workers/cloudflare/cloudflare.h"

static int
reply_of(const char *rel, long status, struct cf_reply *r)
{
	struct buf b = BUF_INIT;
	int rc;

	cf_reply_init(r);
	r->status = status;
	if (fixture_read(rel, &b) == -1)
		return -1;
	rc = cf_reply_parse(r, b.data, b.len);
	buf_free(&b);
	return rc;
}

static void
test_envelope_fixtures(void)
{
	struct cf_reply r;

	CHECK(reply_of("cloudflare/docs/cfd_tunnel.create.response.json", 200,
	               &r) == 0);
	CHECK(r.success && r.code == 0);
	CHECK(json_object_is_type(r.result, json_type_object));
	CHECK(!cf_reply_more(&r));
	cf_reply_free(&r);

	CHECK(reply_of("cloudflare/cloudflare-go/dns.list_page_1.json", 200,
	               &r) == 0);
	CHECK(json_object_array_length(r.result) == 3);
	CHECK(r.page == 1 && r.total_pages == 2 && cf_reply_more(&r));
	cf_reply_free(&r);
	CHECK(reply_of("cloudflare/cloudflare-go/dns.list_page_2.json", 200,
	               &r) == 0);
	CHECK(r.page == 2 && !cf_reply_more(&r));
	cf_reply_free(&r);

	/* Lists without total_pages: total_count and per_page decide. */
	CHECK(reply_of("cloudflare/cloudflare-go/tunnel.multiple_full.json",
	               200, &r) == 0);
	CHECK(r.total_pages == -1 && r.total_count == 1 && !cf_reply_more(&r));
	cf_reply_free(&r);

	/* The token endpoint's result is a bare string. */
	CHECK(reply_of("cloudflare/cloudflare-go/tunnel.token.json", 200, &r) ==
	      0);
	CHECK(json_object_is_type(r.result, json_type_string));
	cf_reply_free(&r);

	/* An envelope without result (connections DELETE). */
	CHECK(reply_of("cloudflare/cloudflare-go/tunnel.empty.json", 200, &r) ==
	      0);
	CHECK(r.success && r.result == NULL);
	cf_reply_free(&r);

	/* A failure without "result" at all, as recorded. */
	CHECK(reply_of("cloudflare/errors/error.authentication.json", 403,
	               &r) == 0);
	CHECK(!r.success && r.code == 10000 && r.result == NULL);
	CHECK_STR(buf_str(&r.message), "Authentication error");
	cf_reply_free(&r);

	cf_reply_init(&r);
	CHECK(cf_reply_parse(&r, "<html>bad gateway</html>", 24) == -1);
	CHECK(cf_reply_parse(&r, "{\"result\":1}", 12) == -1);
	cf_reply_free(&r);
}

static void
test_classify(void)
{
	static const struct {
		const char *fixture; /* NULL: an empty 2xx envelope */
		long status;
		int64_t retry_after;
		enum cf_verdict want;
		int64_t want_ms;
	} cases[] = {
	        {"cloudflare/errors/error.429.rate-limited.2019.json", 429, 7,
	         CF_RETRY, 7000},
	        /* No Retry-After: wait out the 5-minute window's start. */
	        {"cloudflare/errors/error.429.rate-limited.2019.json", 429, -1,
	         CF_RETRY, 60000},
	        {"cloudflare/errors/error.authentication.json", 401, -1,
	         CF_DENIED, 0},
	        {"cloudflare/errors/error.authentication.json", 403, -1,
	         CF_DENIED, 0},
	        {"cloudflare/cloudflare-go/tunnel.empty.json", 200, -1, CF_OK,
	         0},
	        {"cloudflare/cloudflare-go/tunnel.empty.json", 503, -1,
	         CF_RETRY, 1000},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		struct cf_reply r;
		int64_t ms = -1;

		reply_of(cases[i].fixture, cases[i].status, &r);
		r.retry_after = cases[i].retry_after;
		CHECK(cf_classify(&r, 1, 1000, 60000, &ms) == cases[i].want);
		CHECK(ms == cases[i].want_ms);
		cf_reply_free(&r);
	}
}

static void
test_codes(void)
{
	static const struct {
		long status;
		const char *body;
		enum cf_verdict want;
		const char *says;
	} cases[] = {
	        {409,
	         "{\"success\":false,\"errors\":[{\"code\":1013,\"message\":"
	         "\"You already have a tunnel with this name.\"}]}",
	         CF_CONFLICT, "a live tunnel already has this name"},
	        {400,
	         "{\"success\":false,\"errors\":[{\"code\":1022,\"message\":"
	         "\"Cannot delete\"}],\"result\":null}",
	         CF_BUSY, "still has active connections"},
	        {400,
	         "{\"success\":false,\"errors\":[{\"code\":81053,\"message\":"
	         "\"An A, AAAA, or CNAME record with that host already "
	         "exists.\"}],\"result\":null}",
	         CF_CONFLICT, "a DNS record with this name already exists"},
	        {404,
	         "{\"success\":false,\"errors\":[{\"code\":81044,\"message\":"
	         "\"Record does not exist.\"}],\"result\":null}",
	         CF_NOT_FOUND, "does not exist"},
	        {403,
	         "{\"success\":false,\"errors\":[{\"code\":10000,\"message\":"
	         "\"Authentication error\"}]}",
	         CF_DENIED, "lacks the permission \"Zone: DNS Edit\""},
	        {401,
	         "{\"success\":false,\"errors\":[{\"code\":10000,\"message\":"
	         "\"Authentication error\"}]}",
	         CF_DENIED, "the API token was refused"},
	        {400,
	         "{\"success\":false,\"errors\":[{\"code\":7003,\"message\":"
	         "\"No route for the URI\"}],\"result\":null}",
	         CF_INVALID, "check cloudflare.account_id"},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		struct cf_reply r;
		struct buf out = BUF_INIT;
		int64_t ms;

		cf_reply_init(&r);
		r.status = cases[i].status;
		CHECK(cf_reply_parse(&r, cases[i].body,
		                     strlen(cases[i].body)) == 0);
		CHECK(cf_classify(&r, 1, 1000, 60000, &ms) == cases[i].want);
		cf_explain(&r, "step", "Zone: DNS Edit", &out);
		if (strstr(buf_str(&out), cases[i].says) == NULL) {
			fprintf(stderr, "  case %zu: %s\n", i, buf_str(&out));
			CHECK(0);
		}
		buf_free(&out);
		cf_reply_free(&r);
	}
}

static void
test_labels(void)
{
	static const struct {
		const char *s;
		bool ok;
	} cases[] = {
	        {"pr-42-app", true},
	        {"a", true},
	        {"", false},
	        {"-a", false},
	        {"a-", false},
	        {"pr-42.app", false},
	        {"PR-42", false},
	        {"pr_42", false},
	        {"a\nb", false},
	        {"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk",
	         true}, /* 63 */
	        {"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl",
	         false}, /* 64 */
	};
	struct buf h = BUF_INIT, err = BUF_INIT;
	size_t i;

	for (i = 0; i < NELEM(cases); i++)
		CHECK(cf_label_valid(cases[i].s) == cases[i].ok);
	CHECK(cf_zone_valid("example-previews.com"));
	CHECK(!cf_zone_valid("example..com"));
	CHECK(!cf_zone_valid("Example.com"));
	CHECK(cf_hostname("example-previews.com", "pr-42-app", &h, &err) == 0);
	CHECK_STR(buf_str(&h), "pr-42-app.example-previews.com");
	CHECK(cf_hostname("example.com", "pr-42.app", &h, &err) == -1);
	CHECK(strstr(buf_str(&err), "one level only") != NULL);
	buf_free(&h);
	buf_free(&err);
}

static void
test_names(void)
{
	struct buf b = BUF_INIT;
	char slug[64];

	cf_tunnel_name("eph", "pr-1-app", &b);
	CHECK_STR(buf_str(&b), "eph-pr-1-app");
	buf_reset(&b);
	cf_comment("eph", "pr-1-app", &b);
	CHECK_STR(buf_str(&b), "ephemera:eph:pr-1-app");
	CHECK(cf_comment_slug(buf_str(&b), "eph", slug));
	CHECK_STR(slug, "pr-1-app");
	CHECK(!cf_comment_slug(buf_str(&b), "other", slug));
	CHECK(!cf_comment_slug("ephemera:eph:../x", "eph", slug));
	CHECK(!cf_comment_slug("ephemera:eph:", "eph", slug));
	CHECK(!cf_comment_slug(NULL, "eph", slug));
	buf_free(&b);
}

static void
test_path_anchor(void)
{
	static const struct {
		const char *service, *path;
		bool match;
	} cases[] = {
	        {"api", "/api", true},
	        {"api", "/api/", true},
	        {"api", "/api/x?y=1", true},
	        {"api", "/v1/api/x", false}, /* unanchored would match */
	        {"api", "/apix", false},
	        {"api", "/", false},
	        {"web.v2", "/web.v2/a", true},
	        {"web.v2", "/webxv2/a", false}, /* '.' is escaped */
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		struct buf re = BUF_INIT;
		regex_t rx;

		cf_path_anchor(cases[i].service, &re);
		CHECK(regcomp(&rx, buf_str(&re), REG_EXTENDED | REG_NOSUB) ==
		      0);
		CHECK((regexec(&rx, cases[i].path, 0, NULL, 0) == 0) ==
		      cases[i].match);
		regfree(&rx);
		buf_free(&re);
	}
}

static void
test_ingress_golden(void)
{
	static const struct cf_service svc[] = {
	        {"web", 80, true, false},
	        {"api", 8080, false, false},
	        {"docs", 8000, false, true},
	        {"web.v2", 81, false, false},
	};
	struct buf out = BUF_INIT, err = BUF_INIT, want = BUF_INIT;
	struct json_object *o, *cfg, *ing, *last, *v;

	CHECK(cf_ingress_render("example-previews.com", "pr-7-shop", svc,
	                        NELEM(svc), &out, &err) == 0);
	if (fixture_read("../golden/cloudflare-ingress.json", &want) == 0)
		CHECK_STR(buf_str(&out), buf_str(&want));
	/* The shape of the recorded PUT body: config.ingress, catch-all. */
	o = json_tokener_parse(buf_str(&out));
	CHECK(o != NULL && json_object_object_get_ex(o, "config", &cfg) &&
	      json_object_object_get_ex(cfg, "ingress", &ing));
	if (o != NULL && ing != NULL) {
		last = json_object_array_get_idx(
		        ing, json_object_array_length(ing) - 1);
		CHECK(!json_object_object_get_ex(last, "hostname", &v));
		CHECK(json_object_object_get_ex(last, "service", &v));
		CHECK_STR(json_object_get_string(v), "http_status:404");
	}
	json_object_put(o);

	/* A per-service hostname longer than one label is refused. */
	{
		static const struct cf_service long_svc[] = {
		        {"web", 80, true, false},
		        {"a-very-long-service-name-that-overflows", 80, false,
		         true},
		};
		buf_reset(&out);
		buf_reset(&err);
		CHECK(cf_ingress_render(
		              "z.com", "pr-12345-a-rather-long-repository-name",
		              long_svc, 2, &out, &err) == -1);
		CHECK(strstr(buf_str(&err), "63") != NULL);
	}
	buf_free(&out);
	buf_free(&err);
	buf_free(&want);
}

static void
test_connector(void)
{
	struct buf b = BUF_INIT;
	char path[] = "/tmp/ephemera-unit-cftok-XXXXXX";
	int fd = mkstemp(path);
	struct stat st;

	cf_connector_service("cloudflare/cloudflared:2025.4.0",
	                     "/var/eph/pr-1/tunnel-token", &b);
	/* The token is a mounted file: never in argv or the environment. */
	CHECK(strstr(buf_str(&b), "--token-file") != NULL);
	CHECK(strstr(buf_str(&b), "\"--token\"") == NULL);
	CHECK(strstr(buf_str(&b), "TUNNEL_TOKEN") == NULL);
	/* Metrics in the container (a tunnel flag, before `run`), for the
	 * idle sweep; no port published for them. */
	CHECK(strstr(buf_str(&b), "\"--metrics\",\"0.0.0.0:20241\",\"run\"") !=
	      NULL);
	CHECK(strstr(buf_str(&b), "\"ports\"") == NULL);
	{
		struct json_object *j = json_tokener_parse(buf_str(&b));

		CHECK(j != NULL);
		json_object_put(j);
	}
	buf_free(&b);
	close(fd);
	CHECK(cf_connector_token_write(path, "eyJhIjoi") == 0);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0400);
	if (geteuid() == 0)
		CHECK(st.st_uid == CF_CONNECTOR_UID);
	unlink(path);
}

static void
test_connector_requests(void)
{
	int64_t n = -1;

	/* As cloudflared writes it, among its other series. */
	CHECK(cf_connector_requests(
	              "# HELP cloudflared_tunnel_total_requests Amount of "
	              "requests proxied through all the tunnels\n"
	              "# TYPE cloudflared_tunnel_total_requests counter\n"
	              "cloudflared_tunnel_total_requests 42\n"
	              "cloudflared_tunnel_total_requests_x 7\n"
	              "cloudflared_tunnel_request_errors 3\n",
	              &n) == 0);
	CHECK(n == 42);
	/* Go's client writes large counts in exponent form; series with
	 * labels are summed; no trailing newline. */
	CHECK(cf_connector_requests("cloudflared_tunnel_total_requests "
	                            "1.234567e+06",
	                            &n) == 0);
	CHECK(n == 1234567);
	CHECK(cf_connector_requests(
	              "cloudflared_tunnel_total_requests{a=\"1\"} "
	              "2\ncloudflared_tunnel_total_requests{a=\"2\"}"
	              " 3\n",
	              &n) == 0);
	CHECK(n == 5);
	/* Fresh: 0 is a count. */
	CHECK(cf_connector_requests("cloudflared_tunnel_total_requests 0\n",
	                            &n) == 0);
	CHECK(n == 0);
	/* Not there, or not a number: unknown, never 0. */
	n = 9;
	CHECK(cf_connector_requests("", &n) == -1);
	CHECK(cf_connector_requests("# cloudflared_tunnel_total_requests 4\n",
	                            &n) == -1);
	CHECK(cf_connector_requests("cloudflared_tunnel_total_requests x\n",
	                            &n) == -1);
	CHECK(cf_connector_requests(
	              "cloudflared_tunnel_total_requests{a=\"1\" 4\n", &n) ==
	      -1);
	CHECK(cf_connector_requests("<html>502</html>", &n) == -1);
	CHECK(n == 9);
}

static void
test_config_zone_required(void)
{
	char *conf = unit_write_tmp("exposure: { provider = \"cloudflare\"; "
	                            "};\n");
	struct config cfg;
	struct buf err = BUF_INIT;

	CHECK(config_load(&cfg, conf, &err) == -1);
	CHECK(strstr(buf_str(&err), ":1:") != NULL);
	CHECK(strstr(buf_str(&err), "cfargotunnel.com") != NULL);
	config_free(&cfg);
	unlink(conf);
	free(conf);
	buf_free(&err);
}

UNIT_MAIN(TEST(test_envelope_fixtures), TEST(test_classify), TEST(test_codes),
          TEST(test_labels), TEST(test_names), TEST(test_path_anchor),
          TEST(test_ingress_golden), TEST(test_connector),
          TEST(test_connector_requests), TEST(test_config_zone_required))
