/* test_status.c - the pure core of the status pages: formatting, usage,
 * escaping helpers, ids in paths, the SVG chart and metric labels. */
#include <stdlib.h>

#include "unit.h"
#include "../../fcgi-app/app.h"

static void
test_duration_format(void)
{
	static const struct {
		double s;
		const char *want;
	} cases[] = {
	        {-5, "0s"},           {0, "0s"},
	        {0.9, "0s"},          {42, "42s"},
	        {60, "1m 00s"},       {185.7, "3m 05s"},
	        {3600, "1h 00m"},     {8040, "2h 14m"},
	        {86400, "1d 00h"},    {97200, "1d 03h"},
	        {1e12, "11574d 01h"},
	};
	char out[32];
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		duration_format(cases[i].s, out);
		CHECK_STR(out, cases[i].want);
	}
	money_format(0, out);
	CHECK_STR(out, "$0.00");
	money_format(0.004, out);
	CHECK_STR(out, "$0.0040");
	money_format(12.345, out);
	CHECK_STR(out, "$12.35");
	money_format(-1, out);
	CHECK_STR(out, "$0.00");
}

static void
test_usage(void)
{
	static const struct {
		struct usage_runs r;
		double now, seconds, cost;
	} cases[] = {
	        /* no run yet */
	        {{0, 0, -1, 0}, 5000, 0, 0},
	        /* closed runs only: the clock adds nothing */
	        {{7200, 0.05, -1, 0}, 9e9, 7200, 0.05},
	        /* an open run counts up to now, at its own price */
	        {{0, 0, 1000, 0.0208}, 4600, 3600, 0.0208},
	        {{7200, 0.05, 1000, 0.5}, 8200, 14400, 1.05},
	        /* a clock behind the open run never goes negative */
	        {{60, 0.01, 5000, 1}, 4000, 60, 0.01},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		double s = usage_run_seconds(&cases[i].r, cases[i].now);
		double c = usage_run_cost(&cases[i].r, cases[i].now);

		if (s != cases[i].seconds || c < cases[i].cost - 1e-9 ||
		    c > cases[i].cost + 1e-9) {
			fprintf(stderr, "  case %zu: %g s, %g\n", i, s, c);
			CHECK(!"usage");
		}
	}
	CHECK(usage_build_seconds(100, 160, 999) == 60);
	CHECK(usage_build_seconds(100, -1, 130) == 30);
	CHECK(usage_build_seconds(-1, -1, 130) == -1);
}

static void
test_html_helpers(void)
{
	struct buf b = BUF_INIT;

	html_link(&b, "https://x.example/?a=1&b=\"2\"", "<x>");
	CHECK_STR(buf_str(&b), "<a href=\"https://x.example/?a=1&amp;b="
	                       "&quot;2&quot;\">&lt;x&gt;</a>");
	buf_reset(&b);
	html_link(&b, "javascript:alert(1)", "j");
	CHECK_STR(buf_str(&b), "j");
	buf_reset(&b);
	html_link(&b, NULL, "n");
	CHECK_STR(buf_str(&b), "n");
	buf_reset(&b);
	html_age(&b, "2026-01-01T00:00:00Z", 1767225600 + 3725);
	CHECK_STR(buf_str(&b), "<time class=\"ago\" datetime=\"2026-01-01T00:"
	                       "00:00Z\" title=\"2026-01-01T00:00:00Z\">1h "
	                       "02m ago</time>");
	buf_reset(&b);
	html_age(&b, "garbage\"<", 0);
	CHECK_STR(buf_str(&b), "\xe2\x80\x94");
	CHECK_STR(html_state_class("ready"), "ready");
	CHECK_STR(html_state_class("x\" onmouseover=\"y"), "unknown");
	CHECK_STR(html_state_class(NULL), "unknown");
	html_github_web("https://api.github.com", &b);
	CHECK_STR(buf_str(&b), "https://github.com");
	html_github_web("https://ghe.corp.example/api/v3", &b);
	CHECK_STR(buf_str(&b), "https://ghe.corp.example");
	html_github_web("http://127.0.0.1:9/", &b);
	CHECK_STR(buf_str(&b), "http://127.0.0.1:9");
	html_github_web("file:///etc", &b);
	CHECK_STR(buf_str(&b), "https://github.com");
	buf_free(&b);
}

static void
test_route_id(void)
{
	static const struct {
		const char *path;
		int rc;
		uint64_t id;
	} cases[] = {
	        {"/env/1", 0, 1},    {"/env/42", 0, 42},
	        {"/env/", -1, 0},    {"/env/0", -1, 0},
	        {"/env/07", -1, 0},  {"/env/+7", -1, 0},
	        {"/env/ 7", -1, 0},  {"/env/7/", -1, 0},
	        {"/env/7x", -1, 0},  {"/env/1234567890123456789", -1, 0},
	        {"/other/7", -1, 0},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		uint64_t id = 0;

		CHECK(route_id(cases[i].path, "/env/", &id) == cases[i].rc);
		if (cases[i].rc == 0)
			CHECK(id == cases[i].id);
	}
}

static size_t
count(const char *hay, const char *needle)
{
	size_t n = 0;

	while ((hay = strstr(hay, needle)) != NULL) {
		n++;
		hay++;
	}
	return n;
}

static void
test_chart(void)
{
	struct step_view steps[] = {
	        {"fetch", "succeeded", NULL, NULL, NULL, 1000, 1004},
	        {"build", "succeeded", "<img src=x>", NULL, NULL, 1004, 1090},
	        {"up", "running", NULL, NULL, NULL, 1090, -1},
	};
	struct build_view v = {.id = "7",
	                       .status = "running",
	                       .started = 1000,
	                       .finished = -1,
	                       .steps = steps,
	                       .nsteps = NELEM(steps)};
	struct buf b = BUF_INIT;

	chart_svg(&b, &v, 1120);
	CHECK(strncmp(buf_str(&b), "<svg class=\"chart\"", 18) == 0);
	CHECK(count(buf_str(&b), "<rect class=\"bar\"") == 3);
	CHECK(count(buf_str(&b), "<g class=\"step s-running\">") == 1);
	CHECK(strstr(buf_str(&b), "<img") == NULL);
	CHECK(strstr(buf_str(&b), "&lt;img src=x&gt;") != NULL);
	/* 86s of 120s: the build bar spans 492 * 86 / 120 units */
	CHECK(strstr(buf_str(&b), "width=\"352.6\"") != NULL);
	CHECK(strstr(buf_str(&b), ">1m 26s</text>") != NULL);
	buf_reset(&b);
	v.nsteps = 0;
	chart_svg(&b, &v, 1120);
	CHECK(strstr(buf_str(&b), "No steps recorded") != NULL);
	buf_free(&b);
}

static void
test_metrics_label(void)
{
	struct buf b = BUF_INIT;

	metrics_label(&b, "a\"b\\c\nd");
	CHECK_STR(buf_str(&b), "a\\\"b\\\\c\\nd");
	buf_free(&b);
}

static void
test_env_filter(void)
{
	static const struct {
		const char *query;
		int rc;
		const char *again; /* env_filter_query for page 2 */
	} cases[] = {
	        {"", 0, "?page=2"},
	        {"repo=&state=", 0, "?page=2"},
	        {"repo=%C3%BCn%2Fr%20x%26y&state=ready", 0,
	         "?repo=%C3%BCn%2Fr%20x%26y&state=ready&page=2"},
	        {"state=a%22b&per_page=7&page=3", 0,
	         "?state=a%22b&page=2&per_page=7"},
	        {"page=0", -1, NULL},
	        {"page=1x", -1, NULL},
	        {"per_page=501", -1, NULL},
	        {"per_page=", 0, "?page=2"},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		struct request req = {
		        .method = "GET", .path = "/", .query = cases[i].query};
		struct env_filter f;
		struct buf why = BUF_INIT, q = BUF_INIT;

		CHECK(env_filter_parse(&req, &f, &why) == cases[i].rc);
		if (cases[i].rc == 0) {
			env_filter_query(&f, 2, &q);
			CHECK_STR(buf_str(&q), cases[i].again);
		} else {
			CHECK(why.len > 0);
		}
		env_filter_free(&f);
		buf_free(&why);
		buf_free(&q);
	}
}

/* Found by fuzz_status: commit hashes were cut to 7 bytes unescaped. */
static void
test_env_page_escapes_sha(void)
{
	struct env_view e = {.id = "1",
	                     .repo = "o/r",
	                     .pr = "7",
	                     .slug = "pr-7-r",
	                     .title = "t",
	                     .sha = "<b>\"12345",
	                     .deployed_sha = "'<i>",
	                     .build_seconds = -1};
	struct build_view bv = {.id = "2",
	                        .sha = "<s>1234",
	                        .status = "failed",
	                        .started = 100,
	                        .finished = 160};
	struct build_list bl = {&bv, 1};
	struct buf b = BUF_INIT;

	env_page_html(&e, &bl, "https://github.com", 200, &b);
	CHECK(strstr(buf_str(&b), "<b>") == NULL);
	CHECK(strstr(buf_str(&b), "<i>") == NULL);
	CHECK(strstr(buf_str(&b), "<s>") == NULL);
	CHECK(strstr(buf_str(&b), "&lt;b&gt;&quot;12") != NULL);
	buf_free(&b);
}

static void
test_services_parse(void)
{
	static const struct {
		const char *json;
		int rc;
		size_t n;
		const char *first_name; /* the primary leads */
	} cases[] = {
	        {NULL, 0, 0, NULL},
	        {"", 0, 0, NULL},
	        {"not json", -1, 0, NULL},
	        {"{\"name\":\"a\"}", -1, 0, NULL},
	        {"[]", 0, 0, NULL},
	        {"[{\"name\":\"api\",\"url\":\"u1\"},"
	         "{\"name\":\"web\",\"primary\":true,\"url\":\"u0\"},"
	         "{\"name\":\"db\",\"url\":\"u2\"}]",
	         0, 3, "web"},
	        {"[{\"name\":7,\"url\":\"u\"},\"x\",null,"
	         "{\"name\":\"a\",\"url\":\"u\"}]",
	         0, 1, "a"},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		struct service_view *s;
		size_t n;

		CHECK(services_parse(cases[i].json, &s, &n) == cases[i].rc);
		CHECK(n == cases[i].n);
		if (cases[i].first_name)
			CHECK_STR(s[0].name, cases[i].first_name);
		services_free(s, n);
	}
}

UNIT_MAIN(TEST(test_services_parse), TEST(test_env_filter),
          TEST(test_env_page_escapes_sha), TEST(test_duration_format),
          TEST(test_usage), TEST(test_html_helpers), TEST(test_route_id),
          TEST(test_chart), TEST(test_metrics_label))
