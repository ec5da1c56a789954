/* test_manifest.c - the GitHub App manifest flow's pure parts (cli/). */
#include <json-c/json.h>

#include "unit.h"
#include "../../cli/cli.h"

static void
test_manifest_permissions(void)
{
	struct manifest_opts o = {"Eph \"x\"", "https://e.example",
	                          "https://e.example/webhook",
	                          "http://127.0.0.1:1/redirect"};
	struct buf b = BUF_INIT;
	json_object *m, *v;

	manifest_render(&o, &b);
	m = json_tokener_parse(buf_str(&b));
	CHECK(m != NULL);
	CHECK(json_object_object_get_ex(m, "default_permissions", &v));
	CHECK_STR(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN),
	          "{\"contents\":\"read\",\"pull_requests\":\"write\","
	          "\"deployments\":\"write\",\"statuses\":\"write\","
	          "\"issues\":\"write\",\"metadata\":\"read\"}");
	CHECK(json_object_object_get_ex(m, "default_events", &v));
	CHECK_STR(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN),
	          "[\"pull_request\",\"issue_comment\"]");
	CHECK(json_object_object_get_ex(m, "name", &v));
	CHECK_STR(json_object_get_string(v), "Eph \"x\"");
	CHECK(json_object_object_get_ex(m, "public", &v));
	CHECK(!json_object_get_boolean(v));
	json_object_put(m);
	buf_free(&b);
}

/* The manifest and action land in attributes: nothing breaks out. */
static void
test_page_escapes(void)
{
	struct buf b = BUF_INIT;
	const char *p;

	manifest_page("https://gh.example/settings/apps/new?state=a&b=\"<x>",
	              "{\"name\":\"<script>\\\"'\"}", &b);
	p = buf_str(&b);
	CHECK(strstr(p, "<script>") == NULL);
	CHECK(strstr(p, "state=a&amp;b=&quot;&lt;x&gt;\"") != NULL);
	CHECK(strstr(p, "value=\"{&quot;name&quot;:&quot;&lt;script&gt;") !=
	      NULL);
	buf_free(&b);
}

static void
test_query(void)
{
	static const struct {
		const char *query, *key, *want; /* want NULL: absent */
	} cases[] = {
	        {"code=abc&state=123", "code", "abc"},
	        {"code=abc&state=123", "state", "123"},
	        {"xcode=1&code=2", "code", "2"},
	        {"code=a%2Fb+c", "code", "a/b c"},
	        {"code=%", "code", "%"},
	        {"code=%4", "code", "%4"},
	        {"code=%zz", "code", "%zz"},
	        {"code", "code", NULL},
	        {"", "code", NULL},
	        {"state=1", "code", NULL},
	};
	struct buf b = BUF_INIT;
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		int rc = manifest_query_get(cases[i].query, cases[i].key, &b);

		if (cases[i].want == NULL) {
			CHECK(rc == -1);
		} else {
			CHECK(rc == 0);
			CHECK_STR(buf_str(&b), cases[i].want);
		}
	}
	buf_free(&b);
}

static void
test_code_valid(void)
{
	CHECK(manifest_code_valid("a1B2-c_3"));
	CHECK(!manifest_code_valid(""));
	CHECK(!manifest_code_valid("../x"));
	CHECK(!manifest_code_valid("a b"));
	CHECK(!manifest_code_valid("a%2F"));
	CHECK(!manifest_code_valid("a?b"));
}

static void
test_conversion(void)
{
	static const char ok[] =
	        "{\"id\":42,\"slug\":\"eph\",\"html_url\":\"https://github.com/"
	        "apps/eph\",\"pem\":\"-----BEGIN RSA PRIVATE KEY-----\\nx\\n\","
	        "\"webhook_secret\":\"s3\"}";
	static const char *const bad[] = {
	        "",
	        "[]",
	        "{\"id\":0,\"pem\":\"-----BEGIN x\",\"webhook_secret\":"
	        "\"s\"}",
	        "{\"id\":\"42\",\"pem\":\"-----BEGIN x\",\"webhook_secret\":"
	        "\"s\"}",
	        "{\"id\":1,\"pem\":\"key\",\"webhook_secret\":\"s\"}",
	        "{\"id\":1,\"pem\":\"-----BEGIN x\",\"webhook_secret\":null}",
	        "{\"id\":1,\"pem\":\"-----BEGIN x\",\"webhook_secret\":\"\"}",
	};
	struct app_credentials c;
	struct buf err = BUF_INIT;
	size_t i;

	CHECK(manifest_conversion_parse(ok, strlen(ok), &c, &err) == 0);
	CHECK(c.id == 42);
	CHECK_STR(c.slug, "eph");
	CHECK_STR(c.webhook_secret, "s3");
	CHECK(strncmp(c.pem, "-----BEGIN RSA", 14) == 0);
	app_credentials_free(&c);
	CHECK(c.pem == NULL);
	for (i = 0; i < NELEM(bad); i++) {
		buf_reset(&err);
		CHECK(manifest_conversion_parse(bad[i], strlen(bad[i]), &c,
		                                &err) == -1);
		CHECK(err.len > 0);
		CHECK(c.pem == NULL);
		app_credentials_free(&c);
	}
	buf_free(&err);
}

UNIT_MAIN(TEST(test_manifest_permissions), TEST(test_page_escapes),
          TEST(test_query), TEST(test_code_valid), TEST(test_conversion))
