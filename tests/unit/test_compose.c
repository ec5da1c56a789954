/* test_compose.c - the compose policy gate, .ephemera.conf, route text. */
#include <json.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit.h"
#include "../../workers/workers.h"

static struct compose_policy pol = {
        .project = "eph-pr-1-app",
        .instance = "eph",
        .env_id = 7,
        .allowed_services = NULL,
        .allowed_images = "ephemera/busybox:,postgres:",
        .max_services = 5,
        .max_networks = 3,
        .max_volumes = 4,
        .allow_build = true,
        .mem_default = 512 << 20,
        .mem_max = 1024 << 20,
        .pids_default = 256,
        .pids_max = 1024,
        .cpus_default = 1,
        .cpus_max = 2,
};

static char src[64];

/* A checkout: web/ and api/ with Dockerfiles, an env file, a symlink. */
static void
checkout_make(void)
{
	char p[128];
	FILE *f;

	snprintf(src, sizeof(src), "/tmp/ephemera-unit-gate-XXXXXX");
	if (mkdtemp(src) == NULL)
		abort();
	snprintf(p, sizeof(p), "%s/web", src), mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/api", src), mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/web/Dockerfile", src);
	f = fopen(p, "w"), fputs("FROM scratch\n", f), fclose(f);
	snprintf(p, sizeof(p), "%s/api/Dockerfile", src);
	f = fopen(p, "w"), fputs("FROM scratch\n", f), fclose(f);
	snprintf(p, sizeof(p), "%s/app.env", src);
	f = fopen(p, "w"), fputs("# c\nB=2\nA=env-file-loses\n", f), fclose(f);
	snprintf(p, sizeof(p), "%s/inside", src);
	if (symlink("web", p) != 0)
		abort();
	pol.src_dir = src;
}

static void
checkout_remove(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", src);
	if (system(cmd) != 0)
		abort();
}

static char *
subst(const char *text)
{
	struct buf b = BUF_INIT;
	const char *at;

	while ((at = strstr(text, "@SRC@")) != NULL) {
		buf_append(&b, text, (size_t)(at - text));
		buf_puts(&b, src);
		text = at + 5;
	}
	buf_puts(&b, text);
	return buf_detach(&b);
}

/* Runs the gate over YAML; returns the reason ("" when accepted). */
static char *
gate(const char *yaml, const struct compose_policy *p,
     struct json_object **model_out, struct compose_result *res)
{
	static const char *const vars[] = {"EPHEMERA_COMMIT=abc", "X=1", NULL};
	struct buf why = BUF_INIT;
	char *text = subst(yaml);
	struct json_object *m = yaml_to_json(text, strlen(text), &why), *in,
	                   *out = NULL;

	memset(res, 0, sizeof(*res));
	in = m ? json_interpolate(m, vars, &why) : NULL;
	if (in != NULL && compose_gate(in, p, &out, res, &why) == 0)
		buf_reset(&why);
	json_object_put(m);
	json_object_put(in);
	if (model_out)
		*model_out = out;
	else
		json_object_put(out);
	free(text);
	if (why.len == 0)
		buf_puts(&why, "");
	return buf_detach(&why);
}

static const char *
at(struct json_object *m, const char *path)
{
	char key[64];
	const char *dot;
	struct json_object *o = m;

	while (o != NULL && *path) {
		dot = strchr(path, '.');
		snprintf(key, sizeof(key), "%.*s",
		         (int)(dot ? dot - path : (long)strlen(path)), path);
		if (!json_object_object_get_ex(o, key, &o))
			return NULL;
		path = dot ? dot + 1 : path + strlen(path);
	}
	return o ? json_object_to_json_string_ext(
	                   o, JSON_C_TO_STRING_PLAIN |
	                              JSON_C_TO_STRING_NOSLASHESCAPE)
	         : NULL;
}

static void
test_accept_and_rewrite(void)
{
	const char *yaml =
	        "x-base: &base\n  restart: always\n"
	        "services:\n"
	        "  web:\n"
	        "    <<: *base\n"
	        "    build:\n      context: ./inside\n      args: {C: "
	        "\"${EPHEMERA_COMMIT:-dev}\"}\n"
	        "    ports:\n    - published: 8080\n      target: 80\n"
	        "    - \"3000:3001\"\n    - \"127.0.0.1:9000:80\"\n"
	        "    expose: [\"80\", 3001, 5000]\n"
	        "    volumes:\n    - data:/data\n    - /anon\n"
	        "    command: [\"sh\", \"-c\", \"echo $$HOME ${X}\"]\n"
	        "    environment: [\"A=1\"]\n    env_file: app.env\n"
	        "    labels:\n      a: b\n"
	        "    depends_on:\n      db:\n        condition: service_healthy\n"
	        "  db:\n    image: postgres:16\n    profiles: [full]\n"
	        "    mem_limit: 1g\n    pids_limit: 100\n    cpus: 0.5\n"
	        "    healthcheck:\n      test: [\"CMD\", \"true\"]\n"
	        "      interval: 1s\n      retries: 3\n"
	        "volumes:\n  data: {}\n";
	struct json_object *m;
	struct compose_result res;
	char *why = gate(yaml, &pol, &m, &res);
	char want[256];

	CHECK_STR(why, "");
	CHECK(res.n == 2);
	CHECK(compose_service_find(&res, "web")->port == 80);
	CHECK(compose_service_find(&res, "db")->port == 0);
	/* Published first, each port once (compose refuses duplicates). */
	CHECK_STR(at(m, "services.web.expose"), "[\"80\",\"3001\",\"5000\"]");
	CHECK(at(m, "services.web.ports") == NULL);
	CHECK_STR(at(m, "services.web.restart"), "\"always\"");
	CHECK_STR(at(m, "services.web.image"), "\"eph-pr-1-app/s-web\"");
	snprintf(want, sizeof(want), "\"%s/web\"", src);
	CHECK_STR(at(m, "services.web.build.context"), want);
	json_object_put(m);
	compose_result_free(&res);
	free(why);
	/* Gated here, built on an instance: the context is the instance's
	 * checkout, the same path below it. */
	pol.run_src = "/var/lib/ephemera/envs/pr-1-app/src";
	why = gate(yaml, &pol, &m, &res);
	pol.run_src = NULL;
	CHECK_STR(why, "");
	CHECK_STR(at(m, "services.web.build.context"),
	          "\"/var/lib/ephemera/envs/pr-1-app/src/web\"");
	CHECK_STR(at(m, "services.web.build.dockerfile"), "\"Dockerfile\"");
	CHECK_STR(at(m, "services.web.build.args.C"), "\"abc\"");
	/* No build labels (each is a builder step); the tag is the owner. */
	CHECK(at(m, "services.web.build.labels") == NULL);
	/* `$` doubled: compose interpolates nothing of ours. */
	CHECK_STR(at(m, "services.web.command"),
	          "[\"sh\",\"-c\",\"echo $$HOME 1\"]");
	CHECK_STR(at(m, "services.web.environment"),
	          "{\"A\":\"1\",\"B\":\"2\"}");
	CHECK_STR(at(m, "services.web.mem_limit"), "536870912");
	CHECK_STR(at(m, "services.db.mem_limit"), "1073741824");
	CHECK_STR(at(m, "services.db.pids_limit"), "100");
	CHECK_STR(at(m, "services.db.cpus"), "0.5");
	CHECK_STR(at(m, "services.web.depends_on"),
	          "{\"db\":{\"condition\":\"service_healthy\"}}");
	CHECK_STR(at(m, "volumes.data.name"), "\"eph-pr-1-app_data\"");
	CHECK_STR(at(m, "networks.default.name"), "\"eph-pr-1-app_default\"");
	CHECK(strstr(at(m, "networks.default.labels"),
	             "\"io.ephemera.env\":\"7\"") != NULL);
	CHECK(strstr(at(m, "services.web.labels"), "\"a\":\"b\"") != NULL);
	CHECK(strstr(at(m, "services.web.labels"),
	             "\"io.ephemera.project\":\"eph-pr-1-app\"") != NULL);
	CHECK(at(m, "x-base") == NULL);
	json_object_put(m);
	compose_result_free(&res);
	free(why);
}

/*
 * What `docker-compose config` (v1.29, recorded here) and `docker compose
 * config` (v2) print for the same project: users paste either, so the
 * gate takes both, absolute contexts included when they resolve inside.
 */
static void
test_normalised_forms(void)
{
	static const char *const files[] = {
	        /* compose v1 1.29.2 */
	        "services:\n  api:\n    build:\n      args:\n        COMMIT: "
	        "dev\n      context: @SRC@/api\n    depends_on:\n      web:\n"
	        "        condition: service_healthy\n    environment:\n      A: "
	        "'1'\n    expose:\n    - '80'\n    volumes:\n    - "
	        "data:/data:rw\n  web:\n    build:\n      context: @SRC@/web\n"
	        "    ports:\n    - published: 8080\n      target: 80\n"
	        "version: '3.8'\nvolumes:\n  data: {}\n",
	        /* compose v2 */
	        "name: p1\nservices:\n  api:\n    build:\n      context: "
	        "@SRC@/api\n      dockerfile: Dockerfile\n      args:\n        "
	        "COMMIT: dev\n    depends_on:\n      web:\n        condition: "
	        "service_healthy\n        required: true\n    environment:\n"
	        "      A: \"1\"\n    expose:\n      - \"80\"\n    networks:\n"
	        "      default: null\n    volumes:\n      - type: volume\n"
	        "        source: data\n        target: /data\n        volume: "
	        "{}\n  web:\n    build:\n      context: @SRC@/web\n      "
	        "dockerfile: Dockerfile\n    networks:\n      default: null\n"
	        "    ports:\n      - mode: ingress\n        target: 80\n       "
	        " published: \"8080\"\n        protocol: tcp\nnetworks:\n  "
	        "default:\n    name: p1_default\nvolumes:\n  data:\n    name: "
	        "p1_data\n",
	};
	size_t i;

	for (i = 0; i < NELEM(files); i++) {
		struct json_object *m;
		struct compose_result res;
		char *why = gate(files[i], &pol, &m, &res);

		/* v2's own `name:` for networks and volumes is refused: the
		 * Docker name is ours to make. */
		if (i == 1) {
			CHECK(strstr(why,
			             "networks.default.name: not allowed") !=
			      NULL);
		} else {
			CHECK_STR(why, "");
			CHECK(compose_service_find(&res, "web")->port == 80);
			CHECK_STR(at(m, "services.api.volumes"),
			          "[{\"type\":\"volume\",\"source\":\"data\","
			          "\"target\":\"/data\"}]");
		}
		json_object_put(m);
		compose_result_free(&res);
		free(why);
	}
}

static void
test_refusals(void)
{
	static const struct {
		const char *yaml, *want;
	} cases[] = {
	        {"services:\n  a:\n    image: postgres:1\n    volumes:\n    - "
	         "/etc:/h\n",
	         "services.a.volumes: \"/etc\" is not a volume declared"},
	        {"services:\n  a:\n    image: postgres:1\n    volumes:\n    - type: "
	         "bind\n      source: /\n      target: /h\n",
	         "services.a.volumes: type bind is not allowed"},
	        {"services:\n  a:\n    image: postgres:1\n    privileged: true\n",
	         "services.a.privileged: not a key previews may use"},
	        {"services:\n  a:\n    image: postgres:1\n    logging: {driver: "
	         "syslog}\n",
	         "services.a.logging: not a key"},
	        {"services:\n  a:\n    build:\n      context: .\n      network: "
	         "host\n",
	         "services.a.build.network: not allowed"},
	        {"services:\n  a:\n    build:\n      context: /etc\n",
	         "services.a.build.context: \"/etc\" is not a directory inside"},
	        {"services:\n  a:\n    build:\n      context: web/../..\n",
	         "services.a.build.context"},
	        {"services:\n  a:\n    image: postgres:1\n    env_file: /etc/shadow\n",
	         "services.a.env_file: /etc/shadow is not a file inside"},
	        {"services:\n  a:\n    image: postgres:1\n    env_file: "
	         "../../etc/passwd\n",
	         "services.a.env_file"},
	        {"services:\n  a:\n    image: postgres:1\n    environment: [HOME]\n",
	         "services.a.environment: entry 0 is not NAME=value"},
	        {"services:\n  a:\n    image: postgres:1\n    extends: {file: "
	         "/etc/x, service: y}\n",
	         "services.a.extends: not a key"},
	        {"services:\n  a:\n    image: eph-pr-2-app/s-web\n",
	         "services.a.image: \"eph-pr-2-app/s-web\" is not an allowed"},
	        {"services:\n  a:\n    image: alpine\n",
	         "services.a.image: \"alpine\" is not an allowed"},
	        {"services:\n  a:\n    image: postgres:1\nvolumes:\n  v:\n    "
	         "name: eph-pr-2-app_data\n",
	         "volumes.v.name: not allowed"},
	        {"services:\n  a:\n    image: postgres:1\nnetworks:\n  n:\n    "
	         "external: true\n",
	         "networks.n.external: not allowed"},
	        {"services:\n  a:\n    image: postgres:1\nsecrets:\n  s:\n    "
	         "file: /root/k\n",
	         "secrets: not a key previews may use"},
	        {"services:\n  a:\n    image: postgres:1\n    mem_limit: 64g\n",
	         "services.a.mem_limit: must be a size from 4m up to 1024m"},
	        {"services:\n  a:\n    image: postgres:1\n    pids_limit: -1\n",
	         "services.a.pids_limit"},
	        {"services:\n  a:\n    image: postgres:1\n    cpus: 64\n",
	         "services.a.cpus"},
	        {"services:\n  a:\n    image: postgres:1\n    deploy:\n      "
	         "resources:\n        reservations:\n          devices: "
	         "[{capabilities: [gpu]}]\n",
	         "services.a.deploy.resources.reservations: not allowed"},
	        {"services:\n  a:\n    image: postgres:1\nnetworks:\n  a: {}\n  "
	         "b: {}\n  c: {}\n",
	         "networks: more than 3"},
	        {"services:\n  a:\n    image: postgres:1\n    labels:\n      "
	         "io.ephemera.project: eph-x\n",
	         "services.a.labels: io.ephemera.project is in a namespace"},
	        {"services:\n  a:\n    image: postgres:1\n    command: \"$(id) "
	         "$\"\n",
	         "is not a variable"},
	        {"services:\n  \"a b\":\n    image: x\n", "characters outside"},
	        {"services: {}\n", "defines no services"},
	        {"services:\n  a: {image: x}\n  b: {image: x}\n  c: {image: x}\n"
	         "  d: {image: x}\n  e: {image: x}\n  f: {image: x}\n",
	         "the limit is 5"},
	        {"services: [\n", "YAML error"},
	        {"services:\n  a: {image: x}\n  a: {image: y}\n",
	         "given twice"},
	        {"a: &a [*a, *a]\n", "too deep"},
	        {"services:\n  a:\n    image: postgres:1\n---\nservices: {}\n",
	         "more than one YAML document"},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		struct compose_result res;
		char *why = gate(cases[i].yaml, &pol, NULL, &res);

		if (strstr(why, cases[i].want) == NULL || why[0] == '\0') {
			fprintf(stderr, "  case %zu: \"%s\"\n", i, why);
			CHECK(!"refusal");
		}
		compose_result_free(&res);
		free(why);
	}
}

static void
test_symlinks_and_bombs(void)
{
	struct buf why = BUF_INIT, text = BUF_INIT;
	char p[128];
	int i;

	CHECK(checkout_check(src, &why) == 0);
	snprintf(p, sizeof(p), "%s/web/secret", src);
	CHECK(symlink("/etc/passwd", p) == 0);
	CHECK(checkout_check(src, &why) == -1);
	CHECK(strstr(buf_str(&why), "web/secret is a symlink") != NULL);
	unlink(p);
	CHECK(symlink("../../..", p) == 0);
	buf_reset(&why);
	CHECK(checkout_check(src, &why) == -1);
	CHECK(strstr(buf_str(&why), "leaves the repository") != NULL);
	unlink(p);
	/* 9^7: nine aliases a level, refused when the expansion passes the
	 * node limit, long before the ~4.8 million nodes it asks for. */
	buf_puts(&text, "a0: &a0 [x,x,x,x,x,x,x,x,x]\n");
	for (i = 1; i <= 7; i++)
		buf_printf(&text,
		           "a%d: &a%d [*a%d,*a%d,*a%d,*a%d,*a%d,*a%d,*a%d,*a%d,"
		           "*a%d]\n",
		           i, i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1,
		           i - 1, i - 1, i - 1);
	buf_reset(&why);
	CHECK(yaml_to_json(text.data, text.len, &why) == NULL);
	CHECK(strstr(buf_str(&why), "too deep or too large") != NULL);
	buf_free(&text);
	buf_free(&why);
}

static void
test_allowed_and_build_caps(void)
{
	struct compose_policy p = pol;
	struct compose_result res;
	char *why;

	p.allowed_services = "web, api";
	why = gate(
	        "services:\n  web: {image: \"postgres:1\"}\n  miner: {image: x}\n",
	        &p, NULL, &res);
	CHECK(strstr(why, "\"miner\" is not in this repository's allowed") !=
	      NULL);
	free(why);
	compose_result_free(&res);
	p.allowed_services = NULL;
	p.allow_build = false;
	why = gate("services:\n  web:\n    build: web\n", &p, NULL, &res);
	CHECK(strstr(why, "services.web.build: this installation does not "
	                  "build") != NULL);
	free(why);
	compose_result_free(&res);
}

static void
conf_write(const char *text)
{
	char p[128];
	FILE *f;

	snprintf(p, sizeof(p), "%s/.ephemera.conf", src);
	unlink(p);
	f = fopen(p, "w");
	fputs(text, f);
	fclose(f);
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
	        {"@include \"/etc/passwd\"\n", "@include is not allowed"},
	        {"access_bypass = \"/webhooks/\";\n", "at most 8 paths"},
	        {"access_bypass = [\"webhooks\"];\n", "entry 0 is not a path"},
	        {"access_bypass = [\"/a/*/b\"];\n", "entry 0 is not a path"},
	        {"access_bypass = [\"/webhooks/../admin\"];\n",
	         "entry 0 is not a path"},
	        {"access_bypass = [\"/webhooks/..\"];\n",
	         "entry 0 is not a path"},
	        {"access_bypass = [\"/a/./b\"];\n", "entry 0 is not a path"},
	        {"access_bypass = [\"/a//b\"];\n", "entry 0 is not a path"},
	        {"access_bypass = [\"/a\", \"/x y\"];\n",
	         "entry 1 is not a path"},
	        {"access_bypass = [\"/1\", \"/2\", \"/3\", \"/4\", \"/5\", "
	         "\"/6\", \"/7\", \"/8\", \"/9\"];\n",
	         "at most 8 paths"},
	};
	size_t i;
	char p[128];

	for (i = 0; i < NELEM(cases); i++) {
		struct repo_settings rs;
		struct buf why = BUF_INIT;
		int rc;

		conf_write(cases[i].text);
		rc = repo_settings_load(src, &rs, &why);
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
	}
	snprintf(p, sizeof(p), "%s/.ephemera.conf", src);
	unlink(p);
	{
		struct repo_settings rs;
		struct buf why = BUF_INIT;

		/* No file: defaults. A symlink out: refused. */
		CHECK(repo_settings_load(src, &rs, &why) == 0);
		CHECK(rs.build && rs.expose == NULL);
		CHECK_STR(rs.health_path, "/");
		repo_settings_free(&rs);
		CHECK(symlink("/etc/hostname", p) == 0);
		CHECK(repo_settings_load(src, &rs, &why) == -1);
		CHECK(strstr(buf_str(&why), "not a file inside") != NULL);
		repo_settings_free(&rs);
		unlink(p);
		buf_free(&why);
	}
}

/* What a file may ask for against what the admin's repos entry allows. */
static void
test_repo_bypass_cap(void)
{
	static const struct {
		const char *admin, *asked, *want; /* want: error or NULL */
	} cases[] = {
	        {"/webhooks/*", "[\"/webhooks/*\"]", NULL},
	        {"/webhooks/*", "[\"/webhooks/github\"]", NULL},
	        {"/oauth/cb, /webhooks/*", "[\"/oauth/cb\", \"/webhooks/\"]",
	         NULL},
	        {"/webhooks/*", "[\"/admin/*\"]",
	         "\"/admin/*\" is not allowed"},
	        {"/oauth/cb", "[\"/oauth/cb2\"]", "\"/oauth/cb2\" is not"},
	        {"/webhooks/", "[\"/webhooks/*\"]", "is not allowed"},
	        {NULL, "[\"/webhooks/\"]", "entry: none)"},
	        {NULL, "[]", NULL},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		struct repo_config admin = {.access_bypass =
		                                    (char *)cases[i].admin};
		struct repo_settings rs;
		struct buf text = BUF_INIT, why = BUF_INIT;
		int rc;

		buf_printf(&text, "access_bypass = %s;\n", cases[i].asked);
		conf_write(buf_str(&text));
		CHECK(repo_settings_load(src, &rs, &why) == 0);
		rc = repo_settings_cap(&rs, &admin, &why);
		if (cases[i].want == NULL)
			CHECK(rc == 0);
		else if (rc != -1 || !strstr(buf_str(&why), cases[i].want)) {
			fprintf(stderr, "  case %zu: rc=%d \"%s\"\n", i, rc,
			        buf_str(&why));
			CHECK(!"bypass cap");
		}
		repo_settings_free(&rs);
		buf_free(&text);
		buf_free(&why);
	}
}

static void
test_log_filter(void)
{
	const char *in = "step 1\rstep 2\nERROR: open /var/lib/x/envs/pr-1/src"
	                 "/a: no\ncat: can't open '/etc/shadow'\x1b[0m\n";
	struct buf out = BUF_INIT;

	log_filter(in, strlen(in), "/var/lib/x/envs/pr-1", &out);
	CHECK_STR(buf_str(&out), "step 1\rstep 2\nERROR: open ./src/a: no\n"
	                         "cat: can't open '/etc/shadow' [0m\n");
	buf_reset(&out);
	{
		char line[1000];

		memset(line, 'x', sizeof(line) - 1);
		line[sizeof(line) - 1] = '\0';
		log_filter(line, strlen(line), NULL, &out);
		CHECK(out.len == 400);
	}
	buf_free(&out);
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
	cfg.var_dir = "/var/lib/ephemera";
	exposure_local_render(&cfg, "pr-1-app", "b42", t, 2, &b);
	/* Its visits, for the idle sweep (route_sleep.c). */
	CHECK(strstr(buf_str(&b), "access_log /var/lib/ephemera/log/previews/"
	                          "pr-1-app.log ephemera_visit;") != NULL);
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

/* The waking route hands the slug over itself and nothing of the visitor's
 * body; a path nginx would read as two tokens is refused. */
static void
test_route_sleep_render(void)
{
	struct config cfg = {0};
	struct buf b = BUF_INIT;

	cfg.http_port = 8080;
	cfg.preview_domain = "localhost";
	cfg.env_instance = "e1";
	route_sleep_render(&cfg, "pr-1-app", "pr-1-app.preview.test",
	                   "/run/e/fcgi.sock", &b);
	CHECK(strstr(buf_str(&b), "\n" ROUTE_ASLEEP "\n") != NULL);
	CHECK(strstr(buf_str(&b), "server_name pr-1-app.preview.test;") !=
	      NULL);
	CHECK(strstr(buf_str(&b), "fastcgi_pass unix:/run/e/fcgi.sock;") !=
	      NULL);
	CHECK(strstr(buf_str(&b), "fastcgi_param EPHEMERA_WAKE_SLUG "
	                          "pr-1-app;") != NULL);
	CHECK(strstr(buf_str(&b), "fastcgi_pass_request_body off;") != NULL);
	CHECK(strstr(buf_str(&b), "$http_host") == NULL);
	buf_free(&b);
	CHECK(exposure_local_path_valid("/var/lib/ephemera/run/fcgi.sock"));
	CHECK(!exposure_local_path_valid("relative/fcgi.sock"));
	CHECK(!exposure_local_path_valid("/tmp/a b"));
	CHECK(!exposure_local_path_valid("/tmp/a;b"));
	CHECK(!exposure_local_path_valid("/tmp/${x}"));
	CHECK(!exposure_local_path_valid("/tmp/a'b"));
	CHECK(!exposure_local_path_valid(NULL));
}

/* A dockerfile_ref_fn that records "what ref;" and refuses "deny". */
static int
refs_take(void *arg, const char *what, const char *ref)
{
	buf_printf(arg, "%s %s;", what, ref);
	return strcmp(ref, "deny") == 0 ? -1 : 0;
}

static void
test_dockerfile_refs(void)
{
	static const struct {
		const char *text, *want; /* want NULL: refused by the parser */
	} cases[] = {
	        {"FROM busybox:1\nRUN true\n", "FROM busybox:1;"},
	        {"from a AS build\nFROM b\nCOPY --from=build /x /y\n"
	         "COPY --from=0 /x /y\nCOPY --from=c /x /y\n",
	         "FROM a;FROM b;COPY c;"},
	        {"FROM scratch\nFROM Build AS x\nFROM x\n", "FROM Build;"},
	        {"ARG BASE=img:1\nFROM $BASE\nFROM ${BASE}\n",
	         "FROM img:1;FROM img:1;"},
	        {"ARG BASE\nFROM ${BASE:-dflt:2}\n", "FROM dflt:2;"},
	        {"ARG V=1\nFROM img:${V}\nARG V=9\nFROM img:$V\n",
	         "FROM img:1;FROM img:1;"},
	        /* The compose file's build args win over the defaults. */
	        {"ARG TAG=1\nFROM img:$TAG\n", "FROM img:7;"},
	        {"FROM --platform=linux/amd64 a\n", "FROM a;"},
	        {"FROM \\\n  # a comment inside\n  cont:1\n", "FROM cont:1;"},
	        {"# escape=`\nFROM `\n  tick:1\n", "FROM tick:1;"},
	        {"# syntax=docker/dockerfile:1\nFROM a\n",
	         "syntax docker/dockerfile:1;FROM a;"},
	        {"# a comment first\n# syntax=x\nFROM a\n", "FROM a;"},
	        {"FROM a\nRUN --mount=type=bind,from=other,target=/o cat\n",
	         "FROM a;RUN --mount from other;"},
	        {"FROM a AS s\nRUN --mount=type=cache,target=/c --mount=from=s "
	         "true\n",
	         "FROM a;"},
	        {"FROM a\nONBUILD COPY --from=hidden / /\n",
	         "FROM a;COPY hidden;"},
	        {"FROM a\nADD --chown=1 --from=b x y\n", "FROM a;ADD b;"},
	        {"FROM deny\nFROM never\n", "FROM deny;"},
	        {"FROM ${BASE:+x}\n", NULL},
	        {"FROM a\nCOPY --from=$X / /\n", NULL},
	        {"FROM a b c\n", NULL},
	        {"# escape=x\nFROM a\n", NULL},
	};
	struct json_object *args = json_tokener_parse("{\"TAG\": \"7\"}");
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		struct buf got = BUF_INIT, why = BUF_INIT;
		int rc = dockerfile_refs(cases[i].text, args, refs_take, &got,
		                         &why);

		if (cases[i].want == NULL) {
			CHECK(rc == -1 && why.len > 0);
		} else {
			CHECK_STR(buf_str(&got), cases[i].want);
			CHECK(rc == (strstr(cases[i].want, "deny") ? -1 : 0));
			CHECK(why.len == 0);
		}
		buf_free(&got);
		buf_free(&why);
	}
	json_object_put(args);
}

static void
test_setup(void)
{
	checkout_make();
}

static void
test_teardown(void)
{
	checkout_remove();
}

UNIT_MAIN(TEST(test_setup), TEST(test_accept_and_rewrite),
          TEST(test_normalised_forms), TEST(test_refusals),
          TEST(test_symlinks_and_bombs), TEST(test_allowed_and_build_caps),
          TEST(test_repo_settings), TEST(test_repo_bypass_cap),
          TEST(test_log_filter), TEST(test_route_render),
          TEST(test_route_sleep_render), TEST(test_dockerfile_refs),
          TEST(test_teardown))
