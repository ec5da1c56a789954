"""Issue 6: the status page, JSON API and metrics on a real stack, from
seeded rows (status_seed.py) with the page clock pinned, so the HTML is
compared byte for byte with tests/golden/. EPHEMERA_UPDATE_GOLDEN=1
rewrites the goldens (then read the diff before committing it)."""
import json
import math
import os
import re
import socket
import struct
import threading
import unittest
from html.parser import HTMLParser

import jsonschema

import status_seed as seed
from harness.cdp import Browser, WebSocket
from harness.stack import ROOT, Stack

GOLDEN = os.path.join(ROOT, "tests", "golden")
SCHEMA = os.path.join(ROOT, "docs", "schema")
UPDATE = os.environ.get("EPHEMERA_UPDATE_GOLDEN") == "1"
ARTIFACTS = os.path.join(ROOT, "tests", "artifacts")


def schema(name):
    with open(os.path.join(SCHEMA, name)) as f:
        return json.load(f)


def validate(doc, name):
    s = schema(name)
    jsonschema.Draft202012Validator.check_schema(s)
    # Resolve "$ref": "environment.json#/$defs/..." against docs/schema/.
    store = {}
    for fn in os.listdir(SCHEMA):
        if fn.endswith(".json"):
            sub = schema(fn)
            store[sub["$id"]] = sub
    try:
        from referencing import Registry, Resource
        registry = Registry().with_resources(
            (k, Resource.from_contents(v)) for k, v in store.items())
        jsonschema.Draft202012Validator(s, registry=registry).validate(doc)
    except ImportError:  # older jsonschema
        resolver = jsonschema.RefResolver.from_schema(s, store=store)
        jsonschema.Draft202012Validator(s, resolver=resolver).validate(doc)


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text, as parsed."""

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.tags, self.text = [], []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


# ---- a strict Prometheus text format (0.0.4) parser ----------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
SAMPLE = re.compile(r"^(%s)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$" % NAME)
LABEL_PAIR = re.compile(r'(%s)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)' % LABEL)


def parse_value(v):
    if v in ("+Inf", "-Inf", "NaN"):
        return float(v.replace("Inf", "inf"))
    if not re.match(r"^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$", v):
        raise ValueError("bad value %r" % v)
    return float(v)


def parse_labels(text):
    out, pos = {}, 0
    while pos < len(text):
        m = LABEL_PAIR.match(text, pos)
        if not m:
            raise ValueError("bad labels %r at %d" % (text, pos))
        if m.group(1) in out:
            raise ValueError("duplicate label %r" % m.group(1))
        out[m.group(1)] = re.sub(r'\\(.)', lambda x: {"n": "\n"}.get(
            x.group(1), x.group(1)), m.group(2))
        pos = m.end()
        if m.group(3) == "" and pos != len(text):
            raise ValueError("trailing text in labels %r" % text)
    return out


def parse_prometheus(text):
    """Returns {family: {"type", "help", "samples": [(name, labels, v)]}}.
    Raises ValueError on anything the format does not allow."""
    if not text.endswith("\n"):
        raise ValueError("no final newline")
    fams, current, seen = {}, None, set()
    for n, line in enumerate(text[:-1].split("\n"), 1):
        if line.startswith("#"):
            m = re.match(r"^# (HELP|TYPE) (%s) (.*)$" % NAME, line)
            if not m:
                if line.startswith("# HELP") or line.startswith("# TYPE"):
                    raise ValueError("line %d: bad %r" % (n, line))
                continue
            kind, name, rest = m.groups()
            f = fams.setdefault(name, {"type": "untyped", "help": None,
                                       "samples": []})
            if f["samples"]:
                raise ValueError("line %d: %s after samples" % (n, kind))
            if kind == "TYPE":
                if rest not in ("counter", "gauge", "histogram", "summary",
                                "untyped"):
                    raise ValueError("line %d: type %r" % (n, rest))
                f["type"] = rest
            else:
                f["help"] = rest
            current = name
            continue
        if line == "":
            raise ValueError("line %d: blank line" % n)
        m = SAMPLE.match(line)
        if not m:
            raise ValueError("line %d: not a sample: %r" % (n, line))
        name, labels, value = m.group(1), parse_labels(m.group(2) or ""), \
            parse_value(m.group(3))
        fam = name
        if current and fams[current]["type"] == "histogram":
            for suf in ("_bucket", "_sum", "_count"):
                if name == current + suf:
                    fam = current
        if fam != current:
            raise ValueError("line %d: %s outside its family %s" %
                             (n, name, current))
        key = (name, tuple(sorted(labels.items())))
        if key in seen:
            raise ValueError("line %d: duplicate series %r" % (n, key))
        seen.add(key)
        fams[fam]["samples"].append((name, labels, value))
    for name, f in fams.items():
        if f["type"] == "histogram":
            check_histogram(name, f["samples"])
        if f["type"] == "counter":
            for s in f["samples"]:
                if s[2] < 0 or math.isnan(s[2]):
                    raise ValueError("%s: negative counter" % name)
    return fams


def check_histogram(name, samples):
    groups = {}
    for sname, labels, v in samples:
        rest = {k: x for k, x in labels.items() if k != "le"}
        g = groups.setdefault(tuple(sorted(rest.items())),
                              {"buckets": [], "sum": None, "count": None})
        if sname == name + "_bucket":
            g["buckets"].append((parse_value(labels["le"]), v))
        elif sname == name + "_sum":
            g["sum"] = v
        elif sname == name + "_count":
            g["count"] = v
        else:
            raise ValueError("%s: stray sample %s" % (name, sname))
    for key, g in groups.items():
        les = [b[0] for b in g["buckets"]]
        counts = [b[1] for b in g["buckets"]]
        if les != sorted(les) or not les or les[-1] != math.inf:
            raise ValueError("%s%r: buckets out of order or no +Inf" % (name, key))
        if counts != sorted(counts):
            raise ValueError("%s%r: buckets not cumulative" % (name, key))
        if g["count"] is None or g["sum"] is None or counts[-1] != g["count"]:
            raise ValueError("%s%r: +Inf != _count or missing" % (name, key))


def sample(fams, fam, name=None, **labels):
    for n, ls, v in fams[fam]["samples"]:
        if n == (name or fam) and ls == labels:
            return v
    raise KeyError("%s %r" % (name or fam, labels))


class PrometheusParserTest(unittest.TestCase):
    """The parser must reject what the format forbids, or it proves
    nothing about /metrics."""

    def test_rejects(self):
        bad = [
            "x 1",                                   # no final newline
            "x{a=\"1\"} 1\n\n",                     # blank line
            "x{a=1} 1\n",                           # unquoted value
            "x{a=\"1\",a=\"2\"} 1\n",              # duplicate label
            "x{a=\"\\q\"} 1\n",                     # bad escape
            "x one\n",                              # bad value
            "x 1\nx 1\n",                           # duplicate series
            "# TYPE x counter\nx -1\n",             # negative counter
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
            "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",  # not cumulative
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\n"
            "h_count 1\n",                          # +Inf != count
            "# TYPE x gauge\nx 1\n# TYPE y gauge\nx 2\n",  # outside family
            "# TYPE x gague\nx 1\n",                # unknown type
        ]
        for text in bad:
            with self.assertRaises(ValueError, msg=repr(text)):
                parse_prometheus(text)

    def test_accepts(self):
        f = parse_prometheus(
            "# HELP x a thing\n# TYPE x counter\nx{a=\"q\\\"\\n\\\\\"} 3\n"
            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
            "h_sum 3.5\nh_count 2\n")
        self.assertEqual(sample(f, "x", a="q\"\n\\"), 3)
        self.assertEqual(sample(f, "h", "h_count"), 2)


class CdpWebSocketTest(unittest.TestCase):
    """The browser tests read Chromium's messages with short timeouts. A
    timeout that falls inside a frame must not lose the bytes already read,
    or every later message is parsed from the middle of one."""

    def test_timeout_inside_a_frame_keeps_the_stream(self):
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        go = [threading.Event() for _ in range(3)]
        first = json.dumps({"method": "Log.entryAdded", "pad": "x" * 300}).encode()
        part = [b'{"id": 1, "res', b'ult": {}}']

        def frame(fin, opcode, payload):
            return struct.pack("!BBH", (0x80 if fin else 0) | opcode, 126,
                               len(payload)) + payload

        def serve():
            conn, _ = listener.accept()
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    head += conn.recv(1024)
                conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
                whole = frame(True, 0x1, first)
                conn.sendall(whole[:3])           # inside the length
                go[0].wait(10)
                conn.sendall(whole[3:40])         # inside the payload
                go[1].wait(10)
                conn.sendall(whole[40:] + frame(False, 0x1, part[0]))
                go[2].wait(10)                    # between two fragments
                conn.sendall(frame(True, 0x0, part[1]))
                conn.recv(1)                      # until the client closes
        server = threading.Thread(target=serve)
        server.start()
        ws = WebSocket("ws://127.0.0.1:%d/devtools" % port)
        try:
            for gate in go[:2]:
                with self.assertRaises(socket.timeout):
                    ws.recv(0.2)
                gate.set()
            self.assertEqual(json.loads(ws.recv(5)), json.loads(first))
            with self.assertRaises(socket.timeout):
                ws.recv(0.2)
            go[2].set()
            self.assertEqual(json.loads(ws.recv(5)), {"id": 1, "result": {}})
        finally:
            for gate in go:
                gate.set()
            ws.close()
            server.join(10)
            listener.close()


class StatusTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = Stack("status", {"status.clock": seed.CLOCK,
                                 "status.refresh_seconds": 1,
                                 "workers.count": 1},
                      workers=False)  # the seeded jobs must stay as seeded
        try:
            cls.s.up()
            cls.s.sql(seed.seed_sql())
        except BaseException:
            cls.s.cleanup()  # tearDownClass does not run after this
            raise

    @classmethod
    def tearDownClass(cls):
        cls.s.finish()

    def golden(self, path, name):
        r = self.s.get(path)
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(r.headers["Content-Type"], "text/html; charset=utf-8")
        self.assertIn("script-src 'self'", r.headers["Content-Security-Policy"])
        fn = os.path.join(GOLDEN, name)
        if UPDATE:
            with open(fn, "w") as f:
                f.write(r.text)
        with open(fn) as f:
            want = f.read()
        self.assertEqual(r.text, want, "%s differs from %s" % (path, fn))
        return r.text

    def test_golden_index(self):
        self.golden("/", "index.html")

    def test_golden_env(self):
        self.golden("/env/1", "env-1.html")
        self.golden("/env/2", "env-2.html")

    def test_golden_jobs(self):
        self.golden("/jobs", "jobs.html")

    def test_filters(self):
        r = self.s.get("/?repo=acme%2Fshop")
        ids = re.findall(r'<tr data-id="(\d+)"', r.text)
        self.assertEqual(ids, ["1", "4"])
        self.assertIn('<option value="acme/shop" selected>', r.text)
        r = self.s.get("/?state=deploying")
        self.assertEqual(re.findall(r'<tr data-id="(\d+)"', r.text), ["3"])
        r = self.s.get("/?repo=acme%2Fshop&state=failed")
        self.assertEqual(re.findall(r'<tr data-id="(\d+)"', r.text), [])
        self.assertIn("No environments match this filter.", r.text)
        api = self.s.get("/api/v1/environments?repo=%s" %
                         "%C3%BCn%C3%AFcode-org%2F%D1%80%D0%B5%D0%BF%D0%BE").json()
        self.assertEqual([e["id"] for e in api], [2])
        api = self.s.get("/api/v1/environments?state=&repo=").json()
        self.assertEqual(len(api), 5)

    def test_paging(self):
        r = self.s.get("/api/v1/environments?per_page=2")
        self.assertEqual([e["id"] for e in r.json()], [5, 3])
        self.assertEqual(r.headers["X-Total-Count"], "5")
        self.assertEqual(r.headers["Link"],
                         '</api/v1/environments?page=2&per_page=2>; rel="next"')
        r = self.s.get("/api/v1/environments?per_page=2&page=2")
        self.assertEqual([e["id"] for e in r.json()], [1, 2])
        self.assertEqual(r.headers["Link"],
                         '</api/v1/environments?page=3&per_page=2>; rel="next", '
                         '</api/v1/environments?per_page=2>; rel="prev"')
        r = self.s.get("/api/v1/environments?per_page=2&page=3")
        self.assertEqual([e["id"] for e in r.json()], [4])
        self.assertNotIn("next", r.headers["Link"])
        r = self.s.get("/api/v1/environments")
        self.assertNotIn("Link", r.headers)
        self.assertEqual(r.headers["X-Total-Count"], "5")
        r = self.s.get("/api/v1/environments?repo=acme%2Fshop&per_page=1")
        self.assertEqual(r.headers["X-Total-Count"], "2")
        self.assertEqual(r.headers["Link"], '</api/v1/environments?repo=acme%2Fshop'
                         '&page=2&per_page=1>; rel="next"')
        html = self.s.get("/?repo=acme%2Fshop&per_page=1&page=2").text
        self.assertEqual(re.findall(r'<tr data-id="(\d+)"', html), ["4"])
        self.assertIn('<p class="pager">2\u20132 of 2 <a rel="prev" '
                      'href="/?repo=acme%2Fshop&amp;per_page=1">', html)
        self.assertIn("<strong>2</strong> environments", html)
        for q in ("page=0", "page=x", "per_page=0", "per_page=501", "page=-1"):
            for path in ("/", "/api/v1/environments"):
                r = self.s.get(path + "?" + q)
                self.assertEqual(r.status, 400, (path, q))
        self.assertEqual(self.s.get("/api/v1/environments?page=9").json(), [])

    def test_hostile_rows_render_as_text(self):
        for path in ("/", "/env/2", "/jobs"):
            html = self.s.get(path).text
            tags = Tags(html)
            scripts = [a for t, a in tags.tags if t == "script"]
            self.assertEqual(scripts, [{"src": "/static/status.js", "defer": None}],
                             path)
            for t, attrs in tags.tags:
                self.assertNotIn(t, ("img", "b", "i"), path)
                for k, v in attrs.items():
                    self.assertFalse(k.startswith("on"), (path, t, k))
                    if k == "href":
                        self.assertRegex(v, r"^(https?://|/)", (path, t))
            text = "".join(tags.text)
            if path == "/jobs":
                self.assertIn(seed.HOSTILE_ERROR, text)
                continue
            for s in (seed.HOSTILE_TITLE, seed.HOSTILE_BRANCH, seed.HOSTILE_REPO,
                      seed.HOSTILE_ERROR):
                self.assertIn(s, text, path)
            if path == "/":
                self.assertIn('<span class="svc"><a href="https://pr-42-shop.preview.'
                              'example/api/">api</a></span>', html)
            self.assertIn('adm<i>n"', text)
        env2 = Tags(self.s.get("/env/2").text)
        self.assertIn(seed.HOSTILE_LOG, "".join(env2.text))
        self.assertIn(seed.HOSTILE_AUTHOR, "".join(env2.text))

    def test_api_environments_schema(self):
        envs = self.s.get("/api/v1/environments").json()
        validate(envs, "environments.json")
        self.assertEqual([e["id"] for e in envs], [5, 3, 1, 2, 4])
        e1 = next(e for e in envs if e["id"] == 1)
        # The stable fields of issue 1, unchanged.
        self.assertEqual((e1["repo"], e1["pr"], e1["slug"], e1["phase"],
                          e1["desired"], e1["sha"], e1["deployed_sha"]),
                         ("acme/shop", 42, "pr-42-s1", "ready", "running",
                          seed.A, seed.A))
        self.assertEqual(e1["pr_url"], "https://github.com/acme/shop/pull/42")
        self.assertEqual(e1["services"], [
            {"name": "web", "primary": True, "url": "https://pr-42-shop.preview.example/"},
            {"name": "api", "primary": False,
             "url": "https://pr-42-shop.preview.example/api/"}])
        e2 = next(e for e in envs if e["id"] == 2)
        self.assertEqual(e2["services"], [
            {"name": "adm<i>n\"", "primary": False, "url": "javascript:alert(5)"}])
        e4 = next(e for e in envs if e["id"] == 4)
        self.assertEqual(e4["services"], [])  # 'not json' reads as none
        # Its runs (env_runs), each at its own price: 12 h closed the
        # day before, and open since 10:58 (1 h 02 m to the pinned clock).
        self.assertAlmostEqual(e1["instance_hours"], 12 + 62 / 60.0, places=4)
        self.assertAlmostEqual(e1["cost"], 12 * 0.0208 + 62 / 60.0 * 0.05, places=4)
        e4 = next(e for e in envs if e["id"] == 4)
        self.assertAlmostEqual(e4["instance_hours"], 24, places=4)
        self.assertAlmostEqual(e4["cost"], 24 * 0.0208, places=4)
        e5 = next(e for e in envs if e["id"] == 5)
        self.assertEqual((e5["instance_hours"], e5["cost"]), (0, 0))
        self.assertEqual(e1["last_build"]["id"], 2)
        self.assertEqual(e1["last_build"]["duration_seconds"], 120)
        e3 = next(e for e in envs if e["id"] == 3)
        self.assertIsNone(e3["last_build"]["finished_at"])
        self.assertEqual(e3["last_build"]["duration_seconds"], 300)
        e2 = next(e for e in envs if e["id"] == 2)
        self.assertEqual(e2["title"], seed.HOSTILE_TITLE)
        self.assertEqual(e2["branch"], seed.HOSTILE_BRANCH)
        self.assertEqual(e2["repo"], seed.HOSTILE_REPO)
        raw = self.s.get("/api/v1/environments").body
        self.assertNotIn(b"<script>", raw)  # '<' is \u003c in our JSON

    def test_api_environment_schema(self):
        r = self.s.get("/api/v1/environments/2")
        self.assertEqual(r.status, 200)
        d = r.json()
        validate(d, "environment.json")
        self.assertEqual(d["id"], 2)
        self.assertEqual([b["id"] for b in d["builds"]], [3])
        b = d["builds"][0]
        self.assertEqual(b["log_tail"], seed.HOSTILE_LOG)
        self.assertEqual([s["name"] for s in b["steps"]], ["fetch", "build", "up"])
        self.assertEqual(b["steps"][1]["duration_seconds"], 56)
        d = self.s.get("/api/v1/environments/1").json()
        validate(d, "environment.json")
        self.assertEqual([b["id"] for b in d["builds"]], [2, 1])
        for path in ("/api/v1/environments/99", "/api/v1/environments/x",
                     "/api/v1/environments/0", "/env/99", "/env/1x", "/env/"):
            self.assertEqual(self.s.get(path).status, 404, path)

    def test_api_jobs_schema(self):
        d = self.s.get("/api/v1/jobs").json()
        validate(d, "jobs.json")
        self.assertEqual((d["queued"], d["running"], d["done"], d["dead"]),
                         (2, 1, 2, 1))
        # Job 4 is runnable since 11:58; job 5 runs at 12:10 (not waiting).
        self.assertEqual(d["oldest_wait_seconds"], 120)
        self.assertEqual([f["id"] for f in d["recent_failures"]], [6, 3, 2])
        self.assertEqual(d["recent_failures"][2]["error"], seed.HOSTILE_ERROR)
        # Each worker host's last heartbeat and what it runs.
        self.assertEqual([(h["name"], h["workers"], h["running"], h["heartbeat_at"])
                          for h in d["hosts"]],
                         [("w1", 8, 0, "2026-03-02T11:00:00Z"),
                          ("w2<b>", 4, 1, "2026-03-02T11:59:58Z")])
        self.assertEqual(d["running_jobs"], [{"id": 3, "kind": "reconcile", "env_id": 3,
                                              "worker": "w2<b>:4242",
                                              "lease_until": "2026-03-02T12:01:00Z"}])

    def test_metrics(self):
        r = self.s.get("/metrics")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers["Content-Type"].startswith("text/plain; version=0.0.4"))
        f = parse_prometheus(r.text)
        self.assertEqual(sample(f, "ephemera_deliveries_total",
                                event="pull_request", result="accepted"), 2)
        self.assertEqual(sample(f, "ephemera_deliveries_total",
                                event="we\"ird\\ev\nent", result="ignored"), 1)
        self.assertEqual(sample(f, "ephemera_jobs", kind="reconcile", state="done"), 2)
        self.assertEqual(sample(f, "ephemera_jobs", kind="reap", state="queued"), 1)
        self.assertEqual(f["ephemera_job_duration_seconds"]["type"], "histogram")
        h = "ephemera_job_duration_seconds"
        self.assertEqual(sample(f, h, h + "_count", kind="reconcile"), 3)
        self.assertEqual(sample(f, h, h + "_sum", kind="reconcile"), 180.25)
        self.assertEqual(sample(f, h, h + "_bucket", kind="reconcile", le="0.1"), 0)
        self.assertEqual(sample(f, h, h + "_bucket", kind="reconcile", le="0.5"), 1)
        self.assertEqual(sample(f, h, h + "_bucket", kind="reconcile", le="60"), 2)
        self.assertEqual(sample(f, h, h + "_bucket", kind="reconcile", le="120"), 3)
        for phase, n in (("ready", 1), ("failed", 1), ("deploying", 1),
                         ("stopped", 1), ("awaiting_approval", 1), ("destroyed", 0)):
            self.assertEqual(sample(f, "ephemera_environments", phase=phase), n)
        # dead 5 + running 2-1 + done 3-1 failed attempts
        self.assertEqual(sample(f, "ephemera_reconcile_failures_total"), 8)
        self.assertEqual(sample(f, "ephemera_builds_total", status="succeeded"), 3)
        h = "ephemera_build_duration_seconds"
        self.assertEqual(sample(f, h, h + "_bucket", status="succeeded", le="120"), 2)
        self.assertEqual(sample(f, h, h + "_bucket", status="succeeded", le="180"), 3)
        self.assertEqual(sample(f, h, h + "_count", status="failed"), 1)

    def test_read_only(self):
        before = self.s.sql("CHECKSUM TABLE environments, builds, build_steps, jobs")
        for path in ("/", "/env/1", "/jobs", "/metrics", "/api/v1/jobs",
                     "/api/v1/environments", "/api/v1/environments/1"):
            self.assertEqual(self.s.post(path, b"x").status, 405, path)
            self.assertEqual(self.s.get(path).status, 200, path)
        self.assertEqual(self.s.sql("CHECKSUM TABLE environments, builds, "
                                    "build_steps, jobs"), before)

    def test_static_assets_cached(self):
        for path in ("/static/style.css", "/static/status.js"):
            r = self.s.get(path)
            self.assertEqual(r.status, 200, path)
            self.assertIn("max-age=3600", r.headers.get("Cache-Control", ""))


def normalized(html):
    """Markup as (tag, sorted attributes) and text events, with the
    relative ages blanked (the server's clock is pinned, the browser's is
    not), so server-rendered and script-rendered rows compare equal."""
    html = re.sub(r'(<time class="ago"[^>]*>)[^<]*(</time>)', r"\1\2", html)

    class P(HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True)
            self.out = []

        def handle_starttag(self, tag, attrs):
            self.out.append(("<", tag, tuple(sorted(attrs))))

        def handle_endtag(self, tag):
            self.out.append((">", tag))

        def handle_data(self, data):
            if data.strip():
                self.out.append(("t", data))

    p = P()
    p.feed(html)
    return p.out


class BrowserTest(unittest.TestCase):
    """A real headless Chromium loads the pages from the running stack."""

    @classmethod
    def setUpClass(cls):
        cls.s = Stack("browser", {"status.clock": seed.CLOCK,
                                  "status.refresh_seconds": 1,
                                  "workers.count": 1},
                      workers=False)  # the seeded jobs must stay as seeded
        try:
            cls.s.up()
            cls.s.sql(seed.seed_sql())
            cls.b = Browser()
        except BaseException:
            cls.s.cleanup()  # tearDownClass does not run after this
            raise

    @classmethod
    def tearDownClass(cls):
        cls.b.close()
        cls.s.finish()

    def test_collector_catches_errors(self):
        """The error collector must be able to fail: a page that throws,
        logs an error and loads a missing file is caught three times."""
        self.b.navigate(self.s.url("/static/style.css"))
        self.b.eval("""(function () {
            console.error('seen');
            setTimeout(function () { throw new Error('boom'); }, 0);
            var s = document.createElement('script');
            s.src = '/static/missing.js';
            document.head.appendChild(s);
        })()""")
        self.b.pump(1.0)
        errs = "\n".join(self.b.errors())
        self.assertIn("console.error: seen", errs)
        self.assertIn("boom", errs)
        self.assertIn("missing.js", errs)

    def test_index(self):
        self.b.navigate(self.s.url("/"))
        # The script refreshed the rows from the JSON API at least once.
        self.assertTrue(self.b.wait_for(
            "Number(document.documentElement.dataset.refreshes || 0) >= 1"),
            "the page never refreshed; errors: %r" % self.b.errors())
        self.b.pump(0.5)
        self.assertEqual(self.b.errors(), [])
        self.assertEqual(self.b.eval(
            "document.querySelectorAll('#environments tbody tr').length"), 5)
        self.assertEqual(self.b.eval("document.scripts.length"), 1)
        titles = self.b.eval("Array.from(document.querySelectorAll("
                             "'#environments td.title a')).map(a => a.textContent)")
        self.assertIn(seed.HOSTILE_TITLE, titles)
        self.assertTrue(self.b.eval("document.querySelector('.s-ready') !== null"))
        self.assertEqual(self.b.eval(
            "getComputedStyle(document.querySelector('.state.s-failed')).color"),
            "rgb(207, 34, 46)")
        # Script-rendered rows are the server's rows (renderRow mirrors C).
        js_rows = self.b.eval("document.querySelector('#environments tbody').innerHTML")
        server = self.s.get("/").text
        server_rows = server[server.index("<tbody>") + 7:server.index("</tbody>")]
        self.assertEqual(normalized(js_rows), normalized(server_rows))
        self.b.screenshot(os.path.join(ARTIFACTS, "index.png"))

    def test_index_filter(self):
        self.b.navigate(self.s.url("/?state=failed"))
        self.assertTrue(self.b.wait_for(
            "Number(document.documentElement.dataset.refreshes || 0) >= 1"))
        self.assertEqual(self.b.errors(), [])
        self.assertEqual(self.b.eval(
            "Array.from(document.querySelectorAll('#environments tbody tr'))"
            ".map(r => r.dataset.id)"), ["2"])

    def test_env_pages(self):
        for env_id, bars in ((1, 10), (2, 3), (3, 2)):
            self.b.navigate(self.s.url("/env/%d" % env_id))
            self.b.pump(0.5)
            self.assertEqual(self.b.errors(), [], env_id)
            self.assertEqual(self.b.eval(
                "document.querySelectorAll('svg.chart rect.bar').length"), bars)
            self.assertGreater(self.b.eval(
                "document.querySelector('svg.chart').getBoundingClientRect().width"), 300)
            self.b.screenshot(os.path.join(ARTIFACTS, "env-%d.png" % env_id))
            if env_id == 2:
                # The hostile log is text in the page, not markup.
                self.assertEqual(self.b.eval(
                    "document.querySelector('pre.log').textContent"), seed.HOSTILE_LOG)
                self.assertEqual(self.b.eval("document.scripts.length"), 1)

    def test_zz_live_refresh(self):
        """A change in the database reaches an open page without a reload."""
        self.b.navigate(self.s.url("/"))
        self.assertTrue(self.b.wait_for(
            "Number(document.documentElement.dataset.refreshes || 0) >= 1"))
        self.b.eval("window.__sameDocument = true")
        self.s.sql("UPDATE environments SET phase = 'ready', updated_at = updated_at "
                   "WHERE id = 3")
        try:
            seen = self.b.wait_for(
                "document.querySelector('tr[data-id=\"3\"] .state').textContent"
                " === 'ready' && window.__sameDocument === true", timeout=10)
            self.assertTrue(seen, "the row did not change; errors: %r" % self.b.errors())
            self.assertIn("2 ready", self.b.eval(
                "document.getElementById('summary').textContent"))
            self.assertEqual(self.b.errors(), [])
        finally:
            self.s.sql("UPDATE environments SET phase = 'deploying', "
                       "updated_at = updated_at WHERE id = 3")

    def test_jobs_page(self):
        self.b.navigate(self.s.url("/jobs"))
        self.b.pump(0.3)
        self.assertEqual(self.b.errors(), [])
        self.assertEqual(self.b.eval(
            "document.querySelectorAll('#failures tbody tr').length"), 3)
        self.b.screenshot(os.path.join(ARTIFACTS, "jobs.png"))


if __name__ == "__main__":
    unittest.main()
