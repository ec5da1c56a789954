/* test_route.c - request parsing helpers and the routing table. */
#include <stdlib.h>

#include "unit.h"
#include "../../fcgi-app/app.h"

static void
test_headers_and_query(void)
{
	char *envp[] = {"HTTP_X_GITHUB_EVENT=pull_request",
	                "HTTP_X_HUB_SIGNATURE_256=sha256=ab", NULL};
	struct request req = {.method = "GET",
	                      .path = "/",
	                      .query = "repo=a%2Fb&state=ready+now&x",
	                      .content_type = "application/json",
	                      .envp = envp};
	char *v;

	CHECK_STR(request_header(&req, "X-GitHub-Event"), "pull_request");
	CHECK_STR(request_header(&req, "X-Hub-Signature-256"), "sha256=ab");
	CHECK(request_header(&req, "X-Missing") == NULL);
	CHECK_STR(request_header(&req, "Content-Type"), "application/json");
	v = request_query_arg(&req, "repo");
	CHECK_STR(v, "a/b");
	free(v);
	v = request_query_arg(&req, "state");
	CHECK_STR(v, "ready now");
	free(v);
	v = request_query_arg(&req, "x");
	CHECK_STR(v, "");
	free(v);
	CHECK(request_query_arg(&req, "nope") == NULL);
}

static void
test_dispatch_errors(void)
{
	static const struct {
		const char *method, *path;
		int status;
	} cases[] = {
	        {"GET", "/nope", 404},
	        {"DELETE", "/healthz", 405},
	        {"POST", "/api/v1/environments", 405},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		struct request req = {.method = cases[i].method,
		                      .path = cases[i].path,
		                      .query = ""};
		struct response res;

		response_init(&res);
		route_dispatch(NULL, &req, &res);
		CHECK(res.status == cases[i].status);
		if (cases[i].status == 405)
			CHECK(strstr(buf_str(&res.headers), "Allow: GET") !=
			      NULL);
		response_free(&res);
	}
}

static void
test_env_json_and_html_escape(void)
{
	struct env_view e = {.id = "1",
	                     .repo = "o/r\xc3\xa9",
	                     .pr = "7",
	                     .slug = "pr-7-r",
	                     .title = "<script>\"x\"</script>",
	                     .author = "a",
	                     .desired = "running",
	                     .phase = "ready",
	                     .sha = NULL,
	                     .updated_at = "2026-01-01T00:00:00Z"};
	struct env_list l = {&e, 1};
	struct env_filter flt = {NULL, NULL, 1, ENV_PAGE_DEFAULT};
	struct env_counts counts = {1, NULL, NULL, 0};
	struct index_view v = {.envs = &l,
	                       .filter = &flt,
	                       .counts = &counts,
	                       .github_web = "https://github.com",
	                       .now = 1767225600};
	struct buf b = BUF_INIT;

	env_list_json(&l, "https://github.com", &b);
	CHECK(strstr(buf_str(&b),
	             "\"id\":1,\"repo\":\"o/r\xc3\xa9\",\"pr\":7") != NULL);
	CHECK(strstr(buf_str(&b), "\"sha\":null") != NULL);
	CHECK(strstr(buf_str(&b), "<script>") == NULL);
	buf_reset(&b);
	env_list_html(&v, &b);
	CHECK(strstr(buf_str(&b), "<script>") == NULL);
	CHECK(strstr(buf_str(&b), "&lt;script&gt;&quot;x&quot;") != NULL);
	buf_free(&b);
}

UNIT_MAIN(TEST(test_headers_and_query), TEST(test_dispatch_errors),
          TEST(test_env_json_and_html_escape))
