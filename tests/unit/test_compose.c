/* test_compose.c - the compose policy gate, .ephemera.conf, route text. */
#include <json.h>
#include <stdlib.h>
#include <unistd.h>

#include "unit.h"
#include "../../workers/workers.h"

static const struct compose_policy pol = {
        .project = "eph-pr-1-app",
        .instance = "eph",
        .env_id = 7,
        .src_dir = "/w/src",
        .allowed_services = NULL,
        .max_services = 5,
        .allow_build = true,
};

/* Runs the gate over YAML; returns the reason ("" when accepted). */
static char *
gate(const char *yaml, const struct compose_policy *p,
     struct json_object **model_out, struct compose_result *res)
{
	struct buf why = BUF_INIT;
	struct json_object *m = yaml_to_json(yaml, strlen(yaml), &why);

	memset(res, 0, sizeof(*res));
	if (m != NULL && compose_sanitize(m, p, res, &why) == 0)
		buf_reset(&why);
	if (model_out)
		*model_out = m;
	else
		json_object_put(m);
	if (why.len == 0)
		buf_puts(&why, "");
	return buf_detach(&why);
}

static void
test_accept_and_rewrite(void)
{
	const char *yaml =
	        "services:\n"
	        "  web:\n"
	        "    build:\n      context: /w/src/web\n"
	        "    ports:\n    - published: 8080\n      target: 80\n"
	        "    - \"3000:3001\"\n"
	        "    volumes:\n    - data:/data\n"
	        "  api:\n    image: x\n    expose:\n    - \"9000\"\n"
	        "    labels:\n      a: b\n"
	        "  worker:\n    image: x\n"
	        "volumes:\n  data: {}\n";
	struct json_object *m, *v;
	struct compose_result res;
	char *why = gate(yaml, &pol, &m, &res);
	const char *text;

	CHECK_STR(why, "");
	CHECK(res.n == 3);
	CHECK(compose_service_find(&res, "web")->port == 80);
	CHECK(compose_service_find(&res, "api")->port == 9000);
	CHECK(compose_service_find(&res, "worker")->port == 0);
	text = json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN);
	/* No published port survives; labels and build labels are ours. */
	CHECK(strstr(text, "\"ports\"") == NULL);
	CHECK(strstr(text, "\"published\"") == NULL);
	json_object_object_get_ex(json_object_object_get(m, "services"), "web",
	                          &v);
	CHECK_STR(
	        json_object_to_json_string(json_object_object_get(v, "expose")),
	        "[ \"80\", \"3001\" ]");
	CHECK(strstr(text, "\"io.ephemera.project\":\"eph-pr-1-app\"") != NULL);
	CHECK(strstr(text, "\"io.ephemera.env\":\"7\"") != NULL);
	CHECK(strstr(text, "\"io.ephemera.instance\":\"eph\"") != NULL);
	/* Built images are named in the project's own namespace (json-c
	 * may escape the slash). */
	CHECK(strstr(text, "\"image\":\"eph-pr-1-app\\/s-web\"") != NULL ||
	      strstr(text, "\"image\":\"eph-pr-1-app/s-web\"") != NULL);
	CHECK(strstr(text, "\"a\":\"b\"") != NULL);
	json_object_put(m);
	compose_result_free(&res);
	free(why);
}

static void
test_refusals(void)
{
	static const struct {
		const char *yaml, *want;
	} cases[] = {
	        {"services:\n  a:\n    image: x\n    volumes:\n    - /etc:/h\n",
	         "mounts a host path"},
	        {"services:\n  a:\n    image: x\n    volumes:\n    - type: bind\n"
	         "      source: /\n      target: /h\n",
	         "mounts a host path"},
	        {"services:\n  a:\n    image: x\n    volumes:\n    - ./x:/h\n",
	         "mounts a host path"},
	        {"services:\n  a:\n    image: x\n    privileged: true\n",
	         "sets \"privileged\""},
	        {"services:\n  a:\n    image: x\n    network_mode: host\n",
	         "network_mode \"host\""},
	        {"services:\n  a:\n    image: x\n    pid: host\n", "\"pid\""},
	        {"services:\n  a:\n    image: x\n    cap_add: [SYS_ADMIN]\n",
	         "\"cap_add\""},
	        {"services:\n  a:\n    image: x\n    devices: [\"/dev/sda\"]\n",
	         "\"devices\""},
	        {"services:\n  a:\n    image: x\n    container_name: fixed\n",
	         "\"container_name\""},
	        {"services:\n  a:\n    build:\n      context: /etc\n",
	         "builds from outside"},
	        {"services:\n  a:\n    build:\n      context: /w/src/../../etc\n",
	         "builds from outside"},
	        {"services:\n  a:\n    build:\n      context: /w/srcx\n",
	         "builds from outside"},
	        {"services:\n  a:\n    image: x\n    env_file: /etc/shadow\n",
	         "env_file from outside"},
	        {"services:\n  a:\n    image: x\nvolumes:\n  v:\n    driver_opts:\n"
	         "      type: none\n      o: bind\n      device: /\n",
	         "outside the project"},
	        {"services:\n  a:\n    image: x\nnetworks:\n  n:\n    external: "
	         "true\n",
	         "outside the project"},
	        {"services:\n  a:\n    image: x\nsecrets:\n  s:\n    file: /root/k\n",
	         "reads a file outside"},
	        {"services:\n  \"a b\":\n    image: x\n", "characters outside"},
	        {"services: {}\n", "defines no services"},
	        {"services:\n  a: {image: x}\n  b: {image: x}\n  c: {image: x}\n"
	         "  d: {image: x}\n  e: {image: x}\n  f: {image: x}\n",
	         "the limit is 5"},
	        {"services: [\n", "YAML error"},
	        {"a: &a [*a, *a]\n", ""},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		struct compose_result res;
		char *why = gate(cases[i].yaml, &pol, NULL, &res);

		if (cases[i].want[0] == '\0'
		            ? why[0] == '\0'
		            : strstr(why, cases[i].want) == NULL) {
			fprintf(stderr, "  case %zu: \"%s\"\n", i, why);
			CHECK(!"refusal");
		}
		compose_result_free(&res);
		free(why);
	}
}

static void
test_allowed_and_build_caps(void)
{
	struct compose_policy p = pol;
	struct compose_result res;
	char *why;

	p.allowed_services = "web, api";
	why = gate("services:\n  web: {image: x}\n  miner: {image: x}\n", &p,
	           NULL, &res);
	CHECK(strstr(why, "\"miner\" is not in this repository's allowed") !=
	      NULL);
	free(why);
	compose_result_free(&res);
	p.allowed_services = NULL;
	p.allow_build = false;
	why = gate("services:\n  web:\n    build: {context: /w/src}\n", &p,
	           NULL, &res);
	CHECK(strstr(why, "does not allow") != NULL);
	free(why);
	compose_result_free(&res);
}

static void
test_repo_settings(void)
{
	static const struct {
		const char *text, *want; /* want: error substring or NULL */
	} cases[] = {
	        {"primary_service = \"web\";\nexpose = [\"web\", \"api\"];\n"
	         "health_path = \"/health\";\nbuild = false;\n",
	         NULL},
	        {"volumes = [\"/:/host\"];\n", "unknown setting \"volumes\""},
	        {"health_path = \"/x; rm -rf /\";\n", "health_path"},
	        {"expose = [\"$(id)\"];\n", "invalid service name"},
	        {"compose_file = \"../../etc/passwd\";\n",
	         "inside the repository"},
	        {"build = \"yes\";\n", "true or false"},
	        {"primary_service = 3;\n", "must be a string"},
	        {"this is not libconfig\n", ".ephemera.conf:1:"},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		struct repo_settings rs;
		struct buf why = BUF_INIT;
		char *p = unit_write_tmp(cases[i].text);
		int rc = repo_settings_load(p, &rs, &why);

		if (cases[i].want == NULL) {
			CHECK(rc == 0);
			CHECK_STR(rs.primary_service, "web");
			CHECK(rs.nexpose == 2 && !rs.build);
			CHECK_STR(rs.health_path, "/health");
		} else if (rc != -1 || !strstr(buf_str(&why), cases[i].want)) {
			fprintf(stderr, "  case %zu: rc=%d \"%s\"\n", i, rc,
			        buf_str(&why));
			CHECK(!"repo settings");
		}
		repo_settings_free(&rs);
		buf_free(&why);
		unlink(p);
		free(p);
	}
	{
		struct repo_settings rs;
		struct buf why = BUF_INIT;

		/* No file: defaults. */
		CHECK(repo_settings_load("/nonexistent/x", &rs, &why) == 0);
		CHECK(rs.build && rs.expose == NULL);
		CHECK_STR(rs.health_path, "/");
		repo_settings_free(&rs);
		buf_free(&why);
	}
}

static void
test_route_render(void)
{
	struct config cfg = {0};
	struct route_target t[] = {{"web", "172.18.0.2", 80, true},
	                           {"api", "172.18.0.3", 9000, false}};
	struct buf b = BUF_INIT;
	char *url;

	cfg.http_port = 8080;
	cfg.preview_domain = "localhost";
	exposure_local_render(&cfg, "pr-1-app", "b42", t, 2, &b);
	CHECK(strstr(buf_str(&b),
	             "add_header X-Ephemera-Route \"b42\" always;") != NULL);
	CHECK(strstr(buf_str(&b), "server_name pr-1-app.localhost;") != NULL);
	CHECK(strstr(buf_str(&b), "listen 127.0.0.1:8080;") != NULL);
	CHECK(strstr(buf_str(&b), "location / {\n\t\tproxy_pass "
	                          "http://172.18.0.2:80;") != NULL);
	CHECK(strstr(buf_str(&b), "location /api/ {\n\t\tproxy_pass "
	                          "http://172.18.0.3:9000/;") != NULL);
	url = exposure_local_url(&cfg, "pr-1-app", "/");
	CHECK_STR(url, "http://pr-1-app.localhost:8080/");
	free(url);
	buf_free(&b);
}

UNIT_MAIN(TEST(test_accept_and_rewrite), TEST(test_refusals),
          TEST(test_allowed_and_build_caps), TEST(test_repo_settings),
          TEST(test_route_render))
