"""Issue 11: the Cloudflare exposure provider against tests/fakes/cloudflare.py.

Until the provider seam is merged the operations run one at a time through
build/asan/tests/tools/cf_run (what the reconcile job will call): open is
`route`, a push is `route` again, close is `unroute`. A stand-in connector
(a loopback HTTP server registered with the fake the way the connector
image does) lets requests run through the fake edge, Access included.
CloudflareFakeTest checks the fake itself behaves like Cloudflare where the
code relies on it."""
import http.client as httpclient
import http.server as httpserver
import json
import os
import stat
import subprocess
import threading
import time
import unittest

from harness.cloudflare_fake import ALL_PERMISSIONS, CloudflareFake, write_conf
from harness.stack import ROOT, Response, http, wait_until

RUN = os.path.join(ROOT, "build", "asan", "tests", "tools", "cf_run")
SLUG = "pr-7-shop"


class Origin(httpserver.BaseHTTPRequestHandler):
    """Stands in for connector + compose services: answers with the
    ingress service the edge chose and the path it was asked for."""

    def do_GET(self):
        body = json.dumps({"service": self.headers.get("X-Ephemera-Ingress"),
                           "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *a):
        pass


class CloudflareTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cf = CloudflareFake()
        cls.origin = httpserver.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
        threading.Thread(target=cls.origin.serve_forever, daemon=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.origin.shutdown()
        cls.cf.stop()

    def setUp(self):
        http("POST", self.cf.url + "/_fake/reset", b"{}")
        self.cf.configure(access=False, list_lag=0)
        self.conf = self.write_conf()
        self.outputs = []

    def write_conf(self, **kw):
        s = self.cf.settings()
        s["cloudflare.access"] = True
        s.update(kw)
        path = os.path.join(self.cf.dir, "ephemera-%d.conf" % time.monotonic_ns())
        write_conf(path, s)
        return path

    def run_cf(self, *args, conf=None, timeout=60):
        p = subprocess.run([RUN, "-c", conf or self.conf] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=timeout, cwd=ROOT)
        self.outputs.append(p.stdout + p.stderr)
        self.assertNotIn("AddressSanitizer", p.stderr)
        out = {}
        for line in p.stdout.splitlines():
            for part in line.split(" "):
                if "=" in part:
                    k, v = part.split("=", 1)
                    out.setdefault(k, v)
        out["rc"] = p.returncode
        out["error"] = p.stdout.split("error=", 1)[-1].strip() if "error=" in p.stdout else ""
        return out

    def service_token(self, repo, path):
        """The admin's `ephemera cloudflare service-token REPO FILE`."""
        return subprocess.run([os.path.join(ROOT, "build", "asan", "bin", "ephemera"), "-c",
                               self.conf, "cloudflare", "service-token", repo, path],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)

    def route(self, *services, **kw):
        return self.run_cf("route", SLUG, *(services or ("web:80:primary", "api:8080")), **kw)

    def api(self, method, path, body=None, token=None):
        tok = token or open(self.cf.token).read().strip()
        r = http(method, self.cf.api_url + path,
                 json.dumps(body).encode() if body is not None else None,
                 {"Authorization": "Bearer " + tok, "Content-Type": "application/json"})
        return r.status, r.json()

    def tokens(self):
        return [t for t in self.cf.tokens]

    def tearDown(self):
        # No API token in anything the tool printed or logged.
        for out in self.outputs:
            for t in self.tokens():
                self.assertNotIn(t, out)

    # ---- lifecycle -----------------------------------------------------------

    def test_open_push_close_leaves_nothing(self):
        r = self.route(); self.assertEqual(r["outcome"], "done", r)
        inv = self.cf.inventory()
        self.assertEqual(len(inv["tunnels"]), 1)
        t = inv["tunnels"][0]
        self.assertEqual(t["name"], "eph-" + SLUG)
        self.assertTrue(t["remote_config"], "config_src cloudflare")
        rec, = inv["dns_records"]
        self.assertEqual(rec["type"], "CNAME")
        self.assertTrue(rec["proxied"])
        self.assertEqual(rec["name"], "%s.%s" % (SLUG, self.cf.zone))
        self.assertEqual(rec["content"], t["id"] + ".cfargotunnel.com")
        self.assertEqual(rec["comment"], "ephemera:eph:" + SLUG)
        ing = inv["configs"][t["id"]]["config"]["ingress"]
        self.assertEqual(ing[0]["path"], "^/api(/|$)")
        self.assertEqual(ing[0]["service"], "http://api:8080")
        self.assertEqual(ing[-1], {"service": "http_status:404"})
        # A push: the same tunnel and record, the ingress updated in place.
        r2 = self.route("web:80:primary", "api:8080", "docs:9000:host")
        self.assertEqual(r2["outcome"], "done", r2)
        self.assertEqual((r2["tunnel_id"], r2["record_id"]), (r["tunnel_id"], r["record_id"]))
        inv = self.cf.inventory()
        self.assertEqual(len(inv["tunnels"]), 1)
        self.assertEqual(inv["configs"][t["id"]]["version"], 2)
        self.assertEqual(sorted(x["name"] for x in inv["dns_records"]),
                         sorted(["%s.%s" % (SLUG, self.cf.zone),
                                 "%s-docs.%s" % (SLUG, self.cf.zone)]))
        self.assertEqual(self.run_cf("exists", SLUG)["exists"], "1")
        self.assertEqual(self.run_cf("owned")["owned"], SLUG)
        # Close: nothing of the environment is left.
        r3 = self.run_cf("unroute", SLUG)
        self.assertEqual(r3["outcome"], "done", r3)
        inv = self.cf.inventory()
        self.assertEqual(inv["tunnels"], [])
        self.assertEqual(inv["dns_records"], [])
        self.assertEqual(inv["access_apps"], [])
        self.assertEqual(self.run_cf("exists", SLUG)["exists"], "0")
        # Destroy is idempotent.
        self.assertEqual(self.run_cf("unroute", SLUG)["outcome"], "done")

    def test_deleted_tunnel_is_never_adopted(self):
        st, b = self.api("POST", "/accounts/%s/cfd_tunnel" % self.cf.account,
                         {"name": "eph-" + SLUG, "config_src": "cloudflare"})
        old = b["result"]["id"]
        self.api("DELETE", "/accounts/%s/cfd_tunnel/%s" % (self.cf.account, old))
        r = self.route()
        self.assertEqual(r["outcome"], "done", r)
        self.assertNotEqual(r["tunnel_id"], old)
        self.assertEqual(len(self.cf.inventory()["tunnels"]), 1)

    # ---- crashes -------------------------------------------------------------

    def crash_after(self, method, match):
        """Runs route, killed while the fake holds the answer to the first
        `method` call on `match` (the call was carried out)."""
        self.cf.fault(delay_after=5, method=method, match=match, count=1)
        with self.assertRaises(subprocess.TimeoutExpired):
            self.route(timeout=2)

    def test_crash_after_each_call_adopts(self):
        # (The token is read only when adopting: create returns it.)
        for method, match in (("POST", "/cfd_tunnel"), ("PUT", "/configurations"),
                              ("POST", "/dns_records")):
            with self.subTest(call=method + " " + match):
                http("POST", self.cf.url + "/_fake/reset", b"{}")
                self.crash_after(method, match)
                time.sleep(3.5)  # the fake finishes the held request
                r = self.route()
                self.assertEqual(r["outcome"], "done", r)
                inv = self.cf.inventory()
                self.assertEqual(len(inv["tunnels"]), 1, inv["tunnels"])
                self.assertEqual(len(inv["dns_records"]), 1)
                self.assertEqual(inv["dns_records"][0]["content"],
                                 r["tunnel_id"] + ".cfargotunnel.com")

    def test_record_not_yet_listed_is_retried_not_duplicated(self):
        # Eventual consistency: the crashed run's record is not listed yet.
        self.cf.configure(list_lag=4)
        self.crash_after("POST", "/dns_records")
        r = self.route()
        self.assertEqual(r["outcome"], "retry", r)
        self.assertIn("already exists", r["error"])
        self.assertEqual(len(self.cf.inventory()["dns_records"]), 1)
        time.sleep(4)
        r = self.route()
        self.assertEqual(r["outcome"], "done", r)
        self.assertEqual(len(self.cf.inventory()["dns_records"]), 1)

    # ---- errors --------------------------------------------------------------

    def test_429_rescheduled_at_retry_after(self):
        self.cf.fault(status=429, retry_after=3, match="/dns_records", count=1)
        r = self.route()
        self.assertEqual(r["outcome"], "retry", r)
        self.assertEqual(r["retry_ms"], "3000")
        self.assertIn("rate limited", r["error"])
        r = self.route()  # still inside the window: blocked again
        self.assertEqual(r["outcome"], "retry", r)
        time.sleep(3.2)
        r = self.route()
        self.assertEqual(r["outcome"], "done", r)
        self.assertEqual(len(self.cf.inventory()["tunnels"]), 1)

    def test_token_without_dns_permission_says_which(self):
        tok = self.cf.add_token(["Cloudflare Tunnel Edit",
                                 "Access: Apps and Policies Edit"])
        conf = self.write_conf(**{"cloudflare.api_token_file": tok})
        r = self.route(conf=conf)
        self.assertEqual(r["outcome"], "fail", r)
        self.assertIn("Zone: DNS", r["error"])
        self.assertEqual(r["rc"], 1)

    def test_bad_token_refused(self):
        bad = os.path.join(self.cf.dir, "bad-token")
        with open(bad, "w") as f:
            f.write("not-a-token\n")
        r = self.route(conf=self.write_conf(**{"cloudflare.api_token_file": bad}))
        self.assertEqual(r["outcome"], "fail", r)
        self.assertIn("token was refused", r["error"])

    def test_foreign_record_is_left_alone(self):
        st, b = self.api("POST", "/zones/%s/dns_records" % self.cf.zone_id,
                         {"type": "A", "name": "%s.%s" % (SLUG, self.cf.zone),
                          "content": "192.0.2.1"})
        self.assertEqual(st, 200)
        r = self.route()
        self.assertEqual(r["outcome"], "fail", r)
        self.assertIn("not this environment's", r["error"])
        recs = self.cf.inventory()["dns_records"]
        self.assertEqual([x["type"] for x in recs], ["A"])
        self.run_cf("unroute", SLUG)
        self.assertEqual(len(self.cf.inventory()["dns_records"]), 1)

    def test_owned_pages_through_every_tunnel(self):
        for i in range(57):
            self.api("POST", "/accounts/%s/cfd_tunnel" % self.cf.account,
                     {"name": "eph-pr-%d-x" % i, "config_src": "cloudflare"})
        self.api("POST", "/accounts/%s/cfd_tunnel" % self.cf.account,
                 {"name": "other-pr-1-x", "config_src": "cloudflare"})
        p = subprocess.run([RUN, "-c", self.conf, "owned"], stdout=subprocess.PIPE,
                           text=True, cwd=ROOT)
        owned = [l[6:] for l in p.stdout.splitlines() if l.startswith("owned=")]
        self.assertEqual(len(owned), 57)
        self.assertNotIn("pr-1-x", [o for o in owned if o.startswith("other")])

    # ---- the edge, Access and the connector's token --------------------------

    def connect(self, token_file):
        """What the connector image does with its token file."""
        with open(token_file) as f:
            tok = f.read().strip()
        r = http("POST", self.cf.url + "/_fake/connector/register",
                 json.dumps({"token": tok, "address": "127.0.0.1:%d" %
                             self.origin.server_address[1]}).encode())
        self.assertEqual(r.status, 200, r.body)

    def edge(self, path, headers=None, host=None):
        """One request to the fake edge, redirects not followed."""
        h = {"Host": host or "%s.%s" % (SLUG, self.cf.zone)}
        h.update(headers or {})
        c = httpclient.HTTPConnection("127.0.0.1", self.cf.edge_port, timeout=30)
        try:
            c.request("GET", path, headers=h)
            r = c.getresponse()
            return Response(r.status, dict(r.getheaders()), r.read())
        finally:
            c.close()

    def test_access_at_the_edge(self):
        self.cf.configure(access=True)
        tokfile = os.path.join(self.cf.dir, "tunnel-token-%d" % time.monotonic_ns())
        r = self.run_cf("route", SLUG, "web:80:primary", "api:8080",
                        "-b", "/webhooks/*", "-k", tokfile)
        self.assertEqual(r["outcome"], "done", r)
        self.assertEqual(stat.S_IMODE(os.stat(tokfile).st_mode), 0o400)
        if os.geteuid() == 0:
            self.assertEqual(os.stat(tokfile).st_uid, 65532)
        # Not ready until the connector registers.
        self.assertEqual(self.run_cf("ready", SLUG, r["tunnel_id"])["ready"], "0")
        self.connect(tokfile)
        # The admin's one-time setup (Terraform/README): *.zone behind
        # login; then a CI service token for the repository, shown once.
        credfile = os.path.join(self.cf.dir, "ci-%d" % time.monotonic_ns())
        p = self.service_token("acme/app", credfile)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("ephemera: cloudflare: ", p.stderr)
        self.assertFalse(os.path.exists(credfile), "no zone-wide app yet")
        self.api("POST", "/accounts/%s/access/apps" % self.cf.account,
                 {"name": "previews", "domain": "*." + self.cf.zone, "type": "self_hosted"})
        p = self.service_token("acme/app", credfile)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(stat.S_IMODE(os.stat(credfile).st_mode), 0o600)
        # Shown once: into the file, nowhere else; the file is never
        # overwritten (the pair in it would be lost).
        secret = open(credfile).read().split("CF-Access-Client-Secret: ")[1].strip()
        self.assertNotIn(secret, p.stdout + p.stderr)
        p = self.service_token("acme/app", credfile)
        self.assertEqual(p.returncode, 1)
        self.assertIn("exists", p.stderr)
        self.assertEqual(len(self.cf.inventory()["service_tokens"]), 1)
        creds = dict(l.split(": ", 1) for l in open(credfile).read().splitlines())
        tok = {"client_id": creds["CF-Access-Client-Id"],
               "client_secret": creds["CF-Access-Client-Secret"]}
        self.assertEqual([t["name"] for t in self.cf.inventory()["service_tokens"]],
                         ["eph CI acme/app"])
        r1 = self.edge("/")
        self.assertEqual(r1.status, 302)
        self.assertIn("cloudflareaccess.com", r1.headers["Location"])
        r2 = self.edge("/", creds)
        self.assertEqual(r2.status, 200)
        self.assertEqual(r2.json()["service"], "http://web:80")
        r3 = self.edge("/api/v1/x", creds)
        self.assertEqual(r3.json(), {"service": "http://api:8080", "path": "/api/v1/x"})
        # Anchored: /v1/api/x is the primary's, not the api service's.
        self.assertEqual(self.edge("/v1/api/x", creds).json()["service"], "http://web:80")
        self.assertEqual(self.edge("/webhooks/github").status, 200)
        self.assertEqual(self.edge("/webhook").status, 302)
        self.assertEqual(self.edge("/other/webhooks/x").status, 302)
        bad = dict(creds, **{"CF-Access-Client-Secret": "0" * 64})
        self.assertEqual(self.edge("/", bad).status, 302)
        # The ready check, with the service token.
        idf = os.path.join(self.cf.dir, "cid")
        sef = os.path.join(self.cf.dir, "csec")
        with open(idf, "w") as f:
            f.write(tok["client_id"])
        with open(sef, "w") as f:
            f.write(tok["client_secret"])
        rr = self.run_cf("ready", SLUG, r["tunnel_id"], idf, sef)
        self.assertEqual((rr["ready"], rr["edge_status"]), ("1", "200"), rr)
        # Close with the connector still attached: connections cleaned first.
        r4 = self.run_cf("unroute", SLUG)
        self.assertEqual(r4["outcome"], "done", r4)
        inv = self.cf.inventory()
        self.assertEqual([a["name"] for a in inv["access_apps"]], ["previews"])
        self.assertEqual(inv["tunnels"], [])
        self.assertEqual(self.edge("/", creds).status, 530)
        for out in self.outputs:
            self.assertNotIn(tok["client_secret"], out)
            self.assertNotIn(open(tokfile).read().strip(), out)


class CloudflareFakeTest(unittest.TestCase):
    """The fake answers like Cloudflare where our code relies on it."""

    @classmethod
    def setUpClass(cls):
        cls.cf = CloudflareFake()

    @classmethod
    def tearDownClass(cls):
        cls.cf.stop()

    def call(self, method, path, body=None, perms=None):
        tok = open(self.cf.add_token(perms) if perms else self.cf.token).read().strip()
        r = http(method, self.cf.api_url + path,
                 json.dumps(body).encode() if body is not None else None,
                 {"Authorization": "Bearer " + tok})
        return r.status, r.json()

    def test_envelope_auth_and_permissions(self):
        acc = "/accounts/%s/cfd_tunnel" % self.cf.account
        st, b = self.call("GET", acc, perms=["DNS Edit"])
        self.assertEqual((st, b["errors"][0]["code"], b["success"]), (403, 10000, False))
        st, b = self.call("GET", acc, perms=["Cloudflare Tunnel Read"])
        self.assertEqual(st, 200)
        self.assertIn("result_info", b)
        st, b = self.call("POST", acc, {"name": "x"}, perms=["Cloudflare Tunnel Read"])
        self.assertEqual(st, 403)
        st, b = self.call("GET", "/accounts/%s/cfd_tunnel" % ("0" * 32))
        self.assertEqual(st, 403)
        r = http("GET", self.cf.api_url + acc)
        self.assertEqual(r.status, 401)

    def test_tunnels(self):
        acc = "/accounts/%s/cfd_tunnel" % self.cf.account
        st, a = self.call("POST", acc, {"name": "dup", "config_src": "cloudflare"})
        st, b = self.call("POST", acc, {"name": "dup", "config_src": "cloudflare"})
        self.assertEqual((st, b["errors"][0]["code"]), (409, 1013))
        tid = a["result"]["id"]
        tok = a["result"]["token"]
        http("POST", self.cf.url + "/_fake/connector/register",
             json.dumps({"token": tok, "address": "127.0.0.1:9"}).encode())
        st, b = self.call("DELETE", acc + "/" + tid)
        self.assertEqual((st, b["errors"][0]["code"]), (400, 1022))
        self.call("DELETE", acc + "/" + tid + "/connections")
        st, b = self.call("DELETE", acc + "/" + tid)
        self.assertEqual(st, 200)
        st, b = self.call("GET", acc + "?name=dup")
        self.assertEqual(len(b["result"]), 1, "deleted tunnels are listed")
        st, b = self.call("GET", acc + "?name=dup&is_deleted=false")
        self.assertEqual(b["result"], [])

    def test_ingress_validation(self):
        acc = "/accounts/%s/cfd_tunnel" % self.cf.account
        st, a = self.call("POST", acc, {"name": "ing", "config_src": "cloudflare"})
        path = acc + "/" + a["result"]["id"] + "/configurations"
        host = "a." + self.cf.zone
        bad = [
            [{"hostname": host, "service": "http://web:80"}],  # no catch-all
            [{"service": "http_status:404"}, {"hostname": host, "service": "http://w:1"},
             {"service": "http_status:404"}],  # catch-all not last
            [{"hostname": host, "path": "^/(api", "service": "http://w:1"},
             {"service": "http_status:404"}],  # bad regex
            [{"hostname": "a.other.test", "service": "http://w:1"},
             {"service": "http_status:404"}],  # outside the zone
            [{"hostname": host, "service": "http://w:1/sub"},
             {"service": "http_status:404"}],  # a path on the service
        ]
        for ing in bad:
            st, b = self.call("PUT", path, {"config": {"ingress": ing}})
            self.assertEqual(st, 400, ing)
        st, b = self.call("PUT", path, {"config": {"ingress": [
            {"hostname": host, "path": "^/api(/|$)", "service": "http://w:1"},
            {"service": "http_status:404"}]}})
        self.assertEqual(st, 200)

    def test_dns_duplicate_pagination_and_lag(self):
        z = "/zones/%s/dns_records" % self.cf.zone_id
        self.cf.configure(list_lag=2)
        rec = {"type": "CNAME", "name": "d." + self.cf.zone, "content": "x.cfargotunnel.com",
               "proxied": True}
        st, a = self.call("POST", z, rec)
        self.assertEqual(st, 200)
        st, b = self.call("GET", z + "?name=d." + self.cf.zone)
        self.assertEqual(b["result"], [], "not listed yet")
        st, b = self.call("GET", z + "/" + a["result"]["id"])
        self.assertEqual(st, 200)
        st, b = self.call("POST", z, rec)
        self.assertEqual((st, b["errors"][0]["code"]), (400, 81053))
        self.cf.configure(list_lag=0)
        for i in range(7):
            self.call("POST", z, dict(rec, name="p%d.%s" % (i, self.cf.zone)))
        time.sleep(2)
        st, b = self.call("GET", z + "?per_page=5&page=2")
        self.assertEqual(b["result_info"]["total_count"], 8)
        self.assertEqual((len(b["result"]), b["result_info"]["total_pages"]), (3, 2))

    def test_429_blocks_until_retry_after(self):
        self.cf.fault(status=429, retry_after=2, match="/dns_records", count=1)
        z = "/zones/%s/dns_records" % self.cf.zone_id
        r = http("GET", self.cf.api_url + z, None,
                 {"Authorization": "Bearer " + open(self.cf.token).read().strip()})
        self.assertEqual((r.status, r.headers.get("Retry-After")), (429, "2"))
        self.assertEqual(r.json()["errors"][0]["code"], 10100)
        time.sleep(2.1)
        st, b = self.call("GET", z)
        self.assertEqual(st, 200)


if __name__ == "__main__":
    unittest.main()


def compose_cmd():
    """docker compose (v2) when present, else docker-compose (v1), as
    host/ephemera-host chooses."""
    v2 = subprocess.run(["docker", "compose", "version"], stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL).returncode == 0
    return ["docker", "compose"] if v2 else ["docker-compose"]


class CloudflareConnectorTest(unittest.TestCase):
    """The whole path with real Docker: a compose project (web, api) plus
    the connector service as the provider renders it, running the
    stand-in connector image (static C, FROM scratch, uid 65532) with the
    token file the provider wrote. Requests go fake edge -> connector ->
    compose service by name."""

    @classmethod
    def setUpClass(cls):
        subprocess.run(["bash", os.path.join(ROOT, "examples", "busybox-image.sh")],
                       check=True)
        cls.image = subprocess.run([os.path.join(ROOT, "tests", "connector", "image.sh")],
                                   check=True, stdout=subprocess.PIPE,
                                   text=True).stdout.strip()
        cls.cf = CloudflareFake()
        cls.project = "cftest%d-%s" % (os.getpid(), SLUG)
        cls.workdir = os.path.join(cls.cf.dir, "env")
        os.mkdir(cls.workdir)

    @classmethod
    def tearDownClass(cls):
        subprocess.run(compose_cmd() + ["-p", cls.project, "-f",
                        os.path.join(cls.workdir, "compose.json"), "down", "-t", "1",
                        "--remove-orphans"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        cls.cf.stop()

    def cf_run(self, *args):
        p = subprocess.run([RUN, "-c", self.conf] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, cwd=ROOT)
        self.logs.append(p.stdout + p.stderr)
        out = dict(part.split("=", 1) for line in p.stdout.splitlines()
                   for part in line.split(" ") if "=" in part)
        return p, out

    def compose(self, commit):
        conn = json.loads(self.cf_run("connector", self.tokfile)[0].stdout)
        # Test-only: the stand-in reaches the fake through these sockets.
        conn["volumes"].append({"type": "bind", "source": self.cf.unix_dir,
                                "target": "/run/cf"})
        httpd = "mkdir -p /www/api && echo %s > /www/%s && exec httpd -f -p 80 -h /www"
        doc = {"services": {
            "web": {"image": "ephemera/busybox:1",
                    "command": ["sh", "-c", httpd % ("web-" + commit, "index.html")]},
            "api": {"image": "ephemera/busybox:1",
                    "command": ["sh", "-c", httpd % ("api-" + commit, "api/index.html")]},
            "cloudflared": conn}}
        path = os.path.join(self.workdir, "compose.json")
        with open(path, "w") as f:
            json.dump(doc, f)
        subprocess.run(compose_cmd() + ["-p", self.project, "-f", path, "up", "-d",
                        "--quiet-pull"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    def edge(self, path, headers=None):
        h = {"Host": "%s.%s" % (SLUG, self.cf.zone)}
        h.update(headers or {})
        c = httpclient.HTTPConnection("127.0.0.1", self.cf.edge_port, timeout=30)
        try:
            c.request("GET", path, headers=h)
            r = c.getresponse()
            return r.status, r.read().decode()
        finally:
            c.close()

    def test_open_push_close_through_the_connector(self):
        self.logs = []
        s = self.cf.settings()
        s["cloudflare.connector_image"] = self.image
        s["cloudflare.access"] = False
        self.conf = os.path.join(self.cf.dir, "c.conf")
        write_conf(self.conf, s)
        self.tokfile = os.path.join(self.workdir, "tunnel-token")
        p, r = self.cf_run("route", SLUG, "web:80:primary", "api:80", "-k", self.tokfile)
        self.assertEqual(r.get("outcome"), "done", p.stdout)
        tunnel = r["tunnel_id"]
        self.compose("c1")
        deadline = time.monotonic() + 60
        while True:
            p2, rr = self.cf_run("ready", SLUG, tunnel)
            if rr.get("ready") == "1":
                break
            self.assertLess(time.monotonic(), deadline, p2.stdout + p2.stderr)
            time.sleep(0.5)
        self.assertEqual(self.edge("/"), (200, "web-c1\n"))
        self.assertEqual(self.edge("/api/"), (200, "api-c1\n"))
        self.assertEqual(self.cf.inventory()["tunnels"][0]["status"], "healthy")
        # The token: not in the connector's argv, environment or inspect.
        secret = open(self.tokfile).read().strip()
        cid = subprocess.run(["docker", "ps", "-q", "--filter",
                              "label=com.docker.compose.project=" + self.project,
                              "--filter", "label=com.docker.compose.service=cloudflared"],
                             stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
        inspect = subprocess.run(["docker", "inspect", cid], stdout=subprocess.PIPE,
                                 text=True, check=True).stdout
        self.assertIn("--token-file", inspect)
        self.assertNotIn(secret, inspect)
        self.assertEqual(json.loads(inspect)[0]["Config"]["User"], "65532:65532")
        ps = subprocess.run(["ps", "-eo", "args"], stdout=subprocess.PIPE, text=True).stdout
        self.assertNotIn(secret, ps)
        # A push: the same tunnel and record, the new commit served.
        p, r2 = self.cf_run("route", SLUG, "web:80:primary", "api:80", "-k", self.tokfile)
        self.assertEqual((r2["tunnel_id"], r2["record_id"]), (tunnel, r["record_id"]))
        self.compose("c2")
        deadline = time.monotonic() + 60
        while self.edge("/") != (200, "web-c2\n"):
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.5)
        self.assertEqual(self.edge("/api/x/../"), (200, "api-c2\n"))
        # Close: connector gone, then everything on Cloudflare.
        subprocess.run(compose_cmd() + ["-p", self.project, "-f",
                        os.path.join(self.workdir, "compose.json"), "down", "-t", "1"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        p, r3 = self.cf_run("unroute", SLUG)
        self.assertEqual(r3.get("outcome"), "done", p.stdout)
        inv = self.cf.inventory()
        self.assertEqual((inv["tunnels"], inv["dns_records"], inv["access_apps"]),
                         ([], [], []))
        for log in self.logs:
            self.assertNotIn(secret, log)


# The stack test reuses the local provider's harness: real MariaDB, nginx,
# workers and Docker, with exposure.provider = "cloudflare".
from harness import events  # noqa: E402
from test_local import LocalProviderBase, docker_ids  # noqa: E402

API_AT_PREFIX = ("FROM ephemera/busybox:1\nARG COMMIT=dev\n"
                 "RUN mkdir -p /www/api && printf '{\"service\":\"api\",\"commit\":\"%s\"}\\n' "
                 "\"$COMMIT\" | tee /www/index.html > /www/api/index.html "
                 "&& echo '.html:application/json' > /etc/httpd.conf\nEXPOSE 80\n"
                 "CMD [\"/bin/httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/www\", \"-c\", "
                 "\"/etc/httpd.conf\"]\n")


class ConnectorStackBase(LocalProviderBase):
    """A stack with the cloudflare exposure, the fake and its edge, and the
    stand-in connector image: what each class adds is in `extra_settings`
    and `before_up`."""
    extra_settings = {}

    @classmethod
    def before_up(cls):
        pass

    @classmethod
    def setUpClass(cls):
        cls.image = subprocess.run([os.path.join(ROOT, "tests", "connector", "image.sh")],
                                   check=True, stdout=subprocess.PIPE,
                                   text=True).stdout.strip()
        cls.cf = CloudflareFake()
        cls.settings = dict(cls.cf.settings(), **dict(
            {"cloudflare.connector_image": cls.image}, **cls.extra_settings))
        os.environ["EPHEMERA_CF_STANDIN_DIR"] = cls.cf.unix_dir
        try:
            cls.before_up()
            super().setUpClass()
        except Exception:
            cls.cf.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            os.environ.pop("EPHEMERA_CF_STANDIN_DIR", None)
            cls.cf.stop()

    def edge(self, slug, path="/"):
        """(status, body) of the preview's URL through the fake's edge."""
        c = httpclient.HTTPConnection("127.0.0.1", self.cf.edge_port, timeout=30)
        try:
            c.request("GET", path, headers={"Host": "%s.%s" % (slug, self.cf.zone)})
            r = c.getresponse()
            return r.status, r.read().decode()
        finally:
            c.close()


class CloudflareStackTest(ConnectorStackBase):
    """local compute + cloudflare exposure, driven by webhooks through the
    real workers (exposure_cloudflare on the provider seam)."""
    extra_settings = {"cloudflare.access": False, "workers.sweep_interval_seconds": 2}

    @classmethod
    def repo_names(cls):
        return ["acme/hello", "acme/limited", "acme/throttled", "acme/swept"]

    def test_open_push_close(self):
        repo = self.repos["acme/hello"]
        a = repo.commit("A", {"api/Dockerfile": API_AT_PREFIX})
        self.deliver("pull_request", events.pull_request("opened", "acme/hello", 1, a))
        e = self.wait_phase("acme/hello", 1, "ready", sha=a)
        slug = e["slug"]
        self.assertEqual(e["url"], "https://%s.%s/" % (slug, self.cf.zone))
        st, body = self.edge(slug)
        self.assertEqual(st, 200)
        self.assertIn(a, body)
        st, body = self.edge(slug, "/api/")
        self.assertEqual(json.loads(body), {"service": "api", "commit": a})
        inv = self.cf.inventory()
        tunnel, = [t for t in inv["tunnels"] if t["name"] == "%s-%s" % (self.instance, slug)]
        record, = [r for r in inv["dns_records"] if r["name"].startswith(slug + ".")]

        b = repo.commit("B", {"web/index.html.in": "<p>second @COMMIT@</p>\n"})
        self.deliver("pull_request", events.pull_request("synchronize", "acme/hello", 1, b))
        self.wait_phase("acme/hello", 1, "ready", sha=b)
        # Ready proves the tunnel and an answer through the edge, not yet
        # which build answered (nginx's X-Ephemera-Route has no
        # equivalent here): allow the recreated container a moment.
        self.assertTrue(wait_until(lambda: "second " + b in self.edge(slug)[1], timeout=30),
                        self.edge(slug))
        inv = self.cf.inventory()
        self.assertEqual([t["id"] for t in inv["tunnels"] if t["name"] == tunnel["name"]],
                         [tunnel["id"]])
        self.assertEqual([r["id"] for r in inv["dns_records"] if r["name"] == record["name"]],
                         [record["id"]])

        # The connector's token: in no container's inspect, process list,
        # log or database row.
        secret = json.loads(http(
            "GET", "%s/accounts/%s/cfd_tunnel/%s/token" % (self.cf.api_url, self.cf.account,
                                                           tunnel["id"]),
            None, {"Authorization": "Bearer " + open(self.cf.token).read().strip()}
        ).body)["result"]
        api_token = open(self.cf.token).read().strip()
        for cid in docker_ids("container", self.project(slug)):
            out = subprocess.run(["docker", "inspect", cid], stdout=subprocess.PIPE,
                                 text=True).stdout
            self.assertNotIn(secret, out)
            # Every container, the connector too, carries the identity
            # the sweep finds a project by.
            self.assertEqual(json.loads(out)[0]["Config"]["Labels"].get(
                "io.ephemera.instance"), self.instance)
        ps = subprocess.run(["ps", "-eo", "args"], stdout=subprocess.PIPE, text=True).stdout
        self.assertNotIn(secret, ps)
        logs = self.s.logs()
        rows = repr([self.s.sql("SELECT * FROM %s" % t)
                     for t in ("environments", "builds", "build_steps", "jobs")])
        for s in (secret, api_token):
            self.assertNotIn(s, logs)
            self.assertNotIn(s, rows)

        self.deliver("pull_request", events.pull_request("closed", "acme/hello", 1, b))
        self.wait_phase("acme/hello", 1, "destroyed")
        inv = self.cf.inventory()
        self.assertEqual([t for t in inv["tunnels"] if t["name"] == tunnel["name"]], [])
        self.assertEqual([r for r in inv["dns_records"] if slug in r["name"]], [])
        self.assertEqual([a for a in inv["access_apps"] if slug in a["name"]], [])
        self.assertEqual(docker_ids("container", self.project(slug)), [])
        self.assertEqual(self.edge(slug)[0], 530)
        # The teardown report: the tunnel, its record and the containers
        # (the connector among them), each found and then checked gone.
        rows = self.s.sql("SELECT kind, name, gone_at IS NOT NULL FROM teardown_items "
                          "WHERE env_id = %d ORDER BY kind, name" % e["id"])
        self.assertIn(["tunnel", tunnel["name"], "1"], rows)
        self.assertIn(["dns_record", record["name"], "1"], rows)
        containers = [r for r in rows if r[0] == "container"]
        self.assertEqual(len(containers), 3, rows)
        self.assertEqual({r[2] for r in rows}, {"1"}, rows)

    def test_429_rescheduled_at_retry_after(self):
        repo = self.repos["acme/throttled"]
        a = repo.commit("A")
        t_fault = time.time()
        self.cf.fault(status=429, retry_after=6, match="/dns_records", count=1)
        self.deliver("pull_request", events.pull_request("opened", "acme/throttled", 3, a))

        def rescheduled():
            rows = self.s.sql("SELECT UNIX_TIMESTAMP(j.run_at), "
                              "j.last_error FROM jobs j JOIN environments e ON "
                              "e.id = j.env_id WHERE e.repo = 'acme/throttled' AND "
                              "j.state = 'queued' AND j.last_error LIKE '%rate limited%'")
            return rows[0] if rows else None
        row = wait_until(rescheduled, timeout=120, interval=0.2)
        self.assertTrue(row, self.s.logs()[-4000:])
        # Rescheduled at Retry-After (6 s after the 429), not at the
        # queue's backoff.
        t429 = min(c["t"] for c in self.cf.calls()
                   if "/dns_records" in c["path"] and c["t"] >= t_fault)
        self.assertGreater(float(row[0]) - t429, 5.0, row)
        self.assertLess(float(row[0]) - t429, 7.0, row)
        e = self.wait_phase("acme/throttled", 3, "ready", sha=a)
        self.assertEqual(len([r for r in self.cf.inventory()["dns_records"]
                              if r["name"].startswith(e["slug"] + ".")]), 1)
        self.deliver("pull_request", events.pull_request("closed", "acme/throttled", 3, a))
        self.wait_phase("acme/throttled", 3, "destroyed")

    def test_token_without_dns_permission_fails_and_says_which(self):
        repo = self.repos["acme/limited"]
        a = repo.commit("A")
        good = open(self.cf.token).read()
        limited = open(self.cf.add_token(["Cloudflare Tunnel Edit"])).read()
        # The workers read the token file at every run: swap its content.
        with open(self.cf.token, "w") as f:
            f.write(limited)
        try:
            self.deliver("pull_request", events.pull_request("opened", "acme/limited", 4, a))
            e = self.wait_phase("acme/limited", 4, "failed")
            self.assertIn("Zone: DNS", e["error"])
            self.assertIn("permission", e["error"])
        finally:
            with open(self.cf.token, "w") as f:
                f.write(good)
        self.deliver("pull_request", events.pull_request("closed", "acme/limited", 4, a))
        self.wait_phase("acme/limited", 4, "destroyed")
        names = [t["name"] for t in self.cf.inventory()["tunnels"]]
        self.assertNotIn("%s-%s" % (self.instance, e["slug"]), names)

    def test_sweep_removes_what_no_environment_owns_after_grace(self):
        repo = self.repos["acme/swept"]
        a = repo.commit("A")
        self.deliver("pull_request", events.pull_request("opened", "acme/swept", 5, a))
        live = self.wait_phase("acme/swept", 5, "ready", sha=a)["slug"]
        # An orphan of this instance (a crashed install, a lost row) and
        # one of another installation sharing the account.
        conf = os.path.join(self.tmp, "cf-run.conf")
        write_conf(conf, dict(self.settings, **{"environments.instance": self.instance}))
        other = os.path.join(self.tmp, "cf-run-other.conf")
        write_conf(other, dict(self.settings, **{"environments.instance": "zz" + self.instance[1:]}))
        for c, slug in ((conf, "pr-999-orphan"), (other, "pr-998-orphan")):
            p = subprocess.run([RUN, "-c", c, "route", slug, "web:80:primary"],
                               stdout=subprocess.PIPE, text=True, cwd=ROOT)
            self.assertIn("outcome=done", p.stdout)
        names = lambda: [t["name"] for t in self.cf.inventory()["tunnels"]]
        orphan = "%s-pr-999-orphan" % self.instance
        time.sleep(5)  # a few sweeps: young objects are left alone
        self.assertIn(orphan, names())
        http("POST", self.cf.url + "/_fake/backdate", json.dumps({"seconds": 900}).encode())
        self.assertTrue(wait_until(lambda: orphan not in names(), timeout=30), names())
        inv = self.cf.inventory()
        self.assertEqual([r for r in inv["dns_records"]
                          if r["comment"] == "ephemera:%s:pr-999-orphan" % self.instance], [])
        self.assertIn("zz%s-pr-998-orphan" % self.instance[1:], names())
        self.assertIn("%s-%s" % (self.instance, live), names())
        self.assertEqual(self.edge(live)[0], 200)
        self.deliver("pull_request", events.pull_request("closed", "acme/swept", 5, a))
        self.wait_phase("acme/swept", 5, "destroyed")


class CloudflareWakeTest(ConnectorStackBase):
    """Issue 20, wake on visit behind Cloudflare: an idle stop points the
    preview's record at the control plane's tunnel (as Terraform makes it:
    its ingress sends every preview hostname to the control plane's nginx,
    and here a connector of that tunnel registered at the stack's nginx),
    so a visit through the edge gets the waking page and starts it; the
    wake points the record back once the preview's connector is up."""
    extra_settings = {"cloudflare.access": False,
                      "workers.sweep_interval_seconds": 1,
                      "workers.sweep_grace_seconds": 2,
                      "environments.idle_stop_minutes": 60}

    @classmethod
    def before_up(cls):
        tok = open(cls.cf.token).read().strip()
        r = http("POST", "%s/accounts/%s/cfd_tunnel" % (cls.cf.api_url, cls.cf.account),
                 json.dumps({"name": "ephemera-control-plane", "config_src": "cloudflare"})
                 .encode(), {"Authorization": "Bearer " + tok,
                             "Content-Type": "application/json"})
        assert r.status == 200, r.body
        cls.wake = r.json()["result"]
        cls.settings["cloudflare.wake_tunnel_id"] = cls.wake["id"]

    def control_plane_connects(self):
        """The control plane's tunnel as infra/cloudflare/control_plane.tf
        configures it, its connector answering at the stack's nginx."""
        tok = open(self.cf.token).read().strip()
        hdrs = {"Authorization": "Bearer " + tok, "Content-Type": "application/json"}
        origin = "http://127.0.0.1:%d" % self.s.port
        r = http("PUT", "%s/accounts/%s/cfd_tunnel/%s/configurations"
                 % (self.cf.api_url, self.cf.account, self.wake["id"]),
                 json.dumps({"config": {"ingress": [
                     {"hostname": "ephemera." + self.cf.zone, "service": origin},
                     {"hostname": "*." + self.cf.zone, "service": origin},
                     {"service": "http_status:404"}]}}).encode(), hdrs)
        self.assertEqual(r.status, 200, r.body)
        self.cf.post("/_fake/connector/register", {
            "token": self.wake["token"], "address": "127.0.0.1:%d" % self.s.port})

    def record(self, slug):
        rs = [r for r in self.cf.inventory()["dns_records"]
              if r["name"] == "%s.%s" % (slug, self.cf.zone)]
        self.assertEqual(len(rs), 1, rs)
        return rs[0]

    def test_idle_preview_sleeps_on_the_control_plane_and_a_visit_wakes_it(self):
        self.control_plane_connects()
        repo = self.repos["acme/hello"]
        a = repo.commit("A")
        self.deliver("pull_request", events.pull_request("opened", "acme/hello", 21, a))
        e = self.wait_phase("acme/hello", 21, "ready", sha=a)
        slug = e["slug"]
        self.assertIn(a, self.edge(slug)[1])
        own = self.record(slug)
        tunnel, = [t for t in self.cf.inventory()["tunnels"]
                   if t["name"] == "%s-%s" % (self.instance, slug)]
        self.assertEqual(own["content"], tunnel["id"] + ".cfargotunnel.com")

        # Quiet for two hours: stopped, and the hostname now leads through
        # the control plane's tunnel to the waking page.
        self.s.make_idle(e["id"], slug)
        self.wait_phase("acme/hello", 21, "stopped", timeout=60)
        self.assertEqual(self.running(slug), [])
        asleep = self.record(slug)
        self.assertEqual(asleep["content"], self.wake["id"] + ".cfargotunnel.com")
        self.assertEqual(asleep["comment"], own["comment"])  # still this env's
        self.assertIn("# asleep:", self.route(slug))
        self.assertIn("server_name %s.%s;" % (slug, self.cf.zone), self.route(slug))
        # Stopped is stopped: sweeps come and go, nothing moves.
        time.sleep(3)
        self.assertEqual(self.env("acme/hello", 21)["phase"], "stopped")
        self.assertEqual(self.record(slug)["content"], asleep["content"])

        st, body = self.edge(slug)
        self.assertEqual(st, 503, body)
        self.assertIn("Waking up this preview", body)
        self.wait_phase("acme/hello", 21, "ready", sha=a)
        # Woken: the record is the preview's own tunnel's again (the same
        # tunnel, adopted), the waking route is gone, the app answers.
        self.assertEqual(self.record(slug)["content"], tunnel["id"] + ".cfargotunnel.com")
        self.assertEqual([t["id"] for t in self.cf.inventory()["tunnels"]
                          if t["name"] == tunnel["name"]], [tunnel["id"]])
        self.assertFalse(os.path.exists(os.path.join(self.s.var, "nginx", "previews",
                                                     slug + ".conf")))
        st, body = self.edge(slug)
        self.assertEqual(st, 200, body)
        self.assertIn(a, body)

        # Asleep again, then closed: the record, the tunnel and the waking
        # route all go; the control plane's tunnel stays.
        self.s.make_idle(e["id"], slug)
        self.wait_phase("acme/hello", 21, "stopped", timeout=60)
        self.assertEqual(self.record(slug)["content"], self.wake["id"] + ".cfargotunnel.com")
        self.deliver("pull_request", events.pull_request("closed", "acme/hello", 21, a))
        self.wait_phase("acme/hello", 21, "destroyed")
        inv = self.cf.inventory()
        self.assertEqual([r for r in inv["dns_records"] if slug in r["name"]], [])
        self.assertEqual([t for t in inv["tunnels"] if t["name"] == tunnel["name"]], [])
        self.assertIn(self.wake["id"], [t["id"] for t in inv["tunnels"]])
        self.assertFalse(os.path.exists(os.path.join(self.s.var, "nginx", "previews",
                                                     slug + ".conf")))
        self.assertEqual(self.edge(slug)[0], 530)


class CloudflareVisitsTest(ConnectorStackBase):
    """Issue 20: visits through a preview's tunnel are activity. The
    connector counts what it proxied (cloudflared's metrics, here the
    stand-in's); a count that moved since the sweep's last look keeps an
    idle-looking preview up, and one that did not lets it stop."""
    extra_settings = {"cloudflare.access": False,
                      "workers.sweep_interval_seconds": 1,
                      "environments.idle_stop_minutes": 60}

    def seen_path(self, slug):
        """The sweep's record of the connector's last count."""
        return os.path.join(self.s.var, "envs", slug, "tunnel-requests")

    def seen(self, slug):
        with open(self.seen_path(slug)) as f:
            return int(f.read())

    def test_a_visit_through_the_tunnel_keeps_it_up(self):
        repo = self.repos["acme/hello"]
        a = repo.commit("A")
        self.deliver("pull_request", events.pull_request("opened", "acme/hello", 31, a))
        e = self.wait_phase("acme/hello", 31, "ready", sha=a)
        slug = e["slug"]
        # The deploy's verify left the count after its own ready check.
        self.assertTrue(wait_until(lambda: os.path.exists(self.seen_path(slug)), timeout=10))
        base = self.seen(slug)
        self.assertGreaterEqual(base, 1)  # the ready check went through it

        # Someone used it, then two hours pass by the clock (in that order:
        # a sweep in between would find it idle before the visits): the
        # sweep sees the count moved and takes it for activity now.
        for _ in range(3):
            self.assertEqual(self.edge(slug)[0], 200)
        self.s.sql("UPDATE environments SET last_active_at = NOW(6) - INTERVAL 2 HOUR "
                   "WHERE id = %d" % e["id"])
        q = ("SELECT last_active_at > NOW(6) - INTERVAL 1 MINUTE FROM environments "
             "WHERE id = %d" % e["id"])
        self.assertTrue(wait_until(lambda: self.s.sql(q) == [["1"]], timeout=30),
                        self.s.logs())
        self.assertEqual(self.seen(slug), base + 3)
        self.assertIn("idle_visited", self.s.log("workers"))
        time.sleep(3)  # sweeps pass: still up
        self.assertEqual(self.env("acme/hello", 31)["phase"], "ready")

        # Idle again with no visit since: the count stands still, it stops.
        self.s.sql("UPDATE environments SET last_active_at = NOW(6) - INTERVAL 2 HOUR "
                   "WHERE id = %d" % e["id"])
        self.wait_phase("acme/hello", 31, "stopped", timeout=60)
        # No wake tunnel here: the stop took it off Cloudflare, and its
        # count with it (the next deploy starts from its own).
        self.assertFalse(os.path.exists(self.seen_path(slug)))
        self.deliver("pull_request", events.pull_request("closed", "acme/hello", 31, a))
        self.wait_phase("acme/hello", 31, "destroyed")
        self.assertFalse(os.path.exists(os.path.join(self.s.var, "envs", slug)))


class CloudflareAccessStackTest(ConnectorStackBase):
    """Access on, through the real workers: the paths a repository's
    .ephemera.conf asks to bypass login (access_bypass), within what the
    admin's repos entry allows, skip login at the edge; everything else
    of the preview redirects to it."""
    extra_settings = {"cloudflare.access": True}

    @classmethod
    def before_up(cls):
        # The admin's one-time setup (Terraform, or the README by hand):
        # every preview hostname behind login, enforced at the edge.
        cls.cf.configure(access=True)
        http("POST", "%s/accounts/%s/access/apps" % (cls.cf.api_url, cls.cf.account),
             json.dumps({"name": "previews", "domain": "*." + cls.cf.zone,
                         "type": "self_hosted"}).encode(),
             {"Authorization": "Bearer " + open(cls.cf.token).read().strip(),
              "Content-Type": "application/json"})
        # And the workers' own service token, so their ready check gets
        # through login to the preview (the admin's command makes it).
        conf = os.path.join(cls.cf.dir, "admin.conf")
        write_conf(conf, dict(cls.cf.settings(), **{"environments.instance": "adm"}))
        cls.pair = os.path.join(cls.cf.dir, "ready-token")
        subprocess.run([os.path.join(ROOT, "build", "asan", "bin", "ephemera"), "-c", conf,
                        "cloudflare", "service-token", "workers/ready", cls.pair],
                       check=True, stdout=subprocess.DEVNULL)
        cls.settings["cloudflare.access_service_token_file"] = cls.pair

    @classmethod
    def repo_names(cls):
        return ["acme/hooks"]

    @classmethod
    def repo_extra(cls, name):
        return 'access_bypass = "/webhooks/*, /oauth/callback";'

    def edge(self, slug, path):
        c = httpclient.HTTPConnection("127.0.0.1", self.cf.edge_port, timeout=30)
        try:
            c.request("GET", path, headers={"Host": "%s.%s" % (slug, self.cf.zone)})
            r = c.getresponse()
            r.read()
            return r.status, r.getheader("Location") or ""
        finally:
            c.close()

    def test_ready_check_gets_through_login_with_the_workers_token(self):
        repo = self.repos["acme/hooks"]
        a = repo.commit("ready")
        self.deliver("pull_request", events.pull_request("opened", "acme/hooks", 2, a))
        slug = self.wait_phase("acme/hooks", 2, "ready", sha=a)["slug"]
        good = open(self.pair).read()
        # A token Access does not let through: the deploy fails and says
        # so, not "ready" on the strength of the login page.
        with open(self.pair, "w") as f:
            f.write(good.split("CF-Access-Client-Secret: ")[0] +
                    "CF-Access-Client-Secret: " + "0" * 64 + "\n")
        try:
            b = repo.commit("refused")
            self.deliver("pull_request", events.pull_request("synchronize", "acme/hooks", 2, b))
            e = self.wait_phase("acme/hooks", 2, "failed", timeout=180)
            self.assertIn("Access sent the ready check to its login", e["error"])
            self.assertNotIn("0" * 64, self.s.logs())
        finally:
            with open(self.pair, "w") as f:
                f.write(good)
        c = repo.commit("again")
        self.deliver("pull_request", events.pull_request("synchronize", "acme/hooks", 2, c))
        self.wait_phase("acme/hooks", 2, "ready", sha=c)
        self.assertNotIn(good.split("CF-Access-Client-Secret: ")[1].strip(), self.s.logs())
        self.deliver("pull_request", events.pull_request("closed", "acme/hooks", 2, c))
        self.wait_phase("acme/hooks", 2, "destroyed")
        self.assertNotIn(slug, " ".join(t["name"] for t in self.cf.inventory()["tunnels"]
                                        if not t.get("deleted_at")))

    def test_bypass_paths_from_the_repository_within_the_admins(self):
        repo = self.repos["acme/hooks"]
        a = repo.commit("A", {".ephemera.conf": 'access_bypass = ["/webhooks/*"];\n'})
        self.deliver("pull_request", events.pull_request("opened", "acme/hooks", 1, a))
        slug = self.wait_phase("acme/hooks", 1, "ready", sha=a)["slug"]
        st, loc = self.edge(slug, "/")
        self.assertEqual(st, 302)
        self.assertIn("cloudflareaccess.com", loc)
        # Through to the app (hello's httpd has no such page: its 404).
        st, loc = self.edge(slug, "/webhooks/github")
        self.assertEqual((st, loc), (404, ""))
        # /oauth/callback is the admin's to allow, not asked for here.
        self.assertEqual(self.edge(slug, "/oauth/callback")[0], 302)
        apps = [x["name"] for x in self.cf.inventory()["access_apps"]]
        self.assertEqual(sorted(x for x in apps if slug in x),
                         ["%s-%s bypass /webhooks/*" % (self.instance, slug)])

        # A push that asks for more than the admin allows fails, says
        # why, and the bypass it had stays as it was.
        b = repo.commit("B", {".ephemera.conf": 'access_bypass = ["/webhooks/*", "/admin/*"];\n'})
        self.deliver("pull_request", events.pull_request("synchronize", "acme/hooks", 1, b))
        e = self.wait_phase("acme/hooks", 1, "failed")
        self.assertIn('access_bypass "/admin/*" is not allowed', e["error"])
        self.assertEqual(self.edge(slug, "/admin/x")[0], 302)

        # Within the admin's list again: the new path skips login, the
        # one no longer asked for goes back behind it.
        c = repo.commit("C", {".ephemera.conf": 'access_bypass = ["/oauth/callback"];\n'})
        self.deliver("pull_request", events.pull_request("synchronize", "acme/hooks", 1, c))
        self.wait_phase("acme/hooks", 1, "ready", sha=c)
        self.assertEqual(self.edge(slug, "/oauth/callback"), (404, ""))
        self.assertEqual(self.edge(slug, "/webhooks/github")[0], 302)

        self.deliver("pull_request", events.pull_request("closed", "acme/hooks", 1, c))
        self.wait_phase("acme/hooks", 1, "destroyed")
        self.assertEqual([x for x in (a["name"] for a in self.cf.inventory()["access_apps"])
                          if slug in x], [])
