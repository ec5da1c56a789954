"""Issue 1: the walking skeleton on a real local stack (MariaDB, nginx,
fcgi-app, workers), started by the same script as `make run`."""
import os
import signal
import subprocess
import threading
import time
import unittest

from harness.stack import ROOT, Stack, interruptible, wait_until


class StackTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = Stack("skeleton", {"workers.count": 3, "workers.shutdown_timeout": 5})
        cls.s.up()

    @classmethod
    def tearDownClass(cls):
        cls.s.down()
        reports = cls.s.sanitizer_reports()
        leftovers = cls.s.processes()
        cls.s.cleanup()
        assert not reports, "sanitizer reports:\n" + "\n".join(reports)
        assert not leftovers, "processes left behind: %r" % leftovers

    def test_db_reads_every_type_back_as_text(self):
        """lib/db.c: binary DOUBLE and FLOAT, DECIMAL, integers, NULL, empty
        and values longer than its first fetch buffer, as the C code sees them."""
        out = subprocess.run(
            [os.path.join(ROOT, "build", "asan", "tests", "tools", "db_query"), "-c",
             self.s.config, "SELECT 1.5e0, CAST(2.25 AS DOUBLE), CAST(0.5 AS FLOAT), 3.50, "
             "-7, NULL, '', REPEAT('x', 63), REPEAT('y', 64), REPEAT('z', 100000), "
             "TIMESTAMPDIFF(MICROSECOND, '2026-01-01', '2026-01-01 00:00:01') / 1e6"],
            env=self.s.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        got = [line.split(" ", 3)[3] for line in out.stdout.splitlines()]
        self.assertEqual(got, ["1.5", "2.25", "0.5", "3.50", "-7", "NULL", "",
                               "x" * 63, "y" * 64, "z" * 100000, "1"])

    def test_endpoints(self):
        r = self.s.get("/healthz")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.text, "ok\n")
        r = self.s.get("/")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers["Content-Type"].startswith("text/html"))
        self.assertIn("<h1>Ephemera</h1>", r.text)
        r = self.s.get("/api/v1/environments")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers["Content-Type"], "application/json")
        self.assertEqual(r.json(), [])
        self.assertEqual(self.s.get("/nope").status, 404)
        self.assertEqual(self.s.get("/static/style.css").status, 200)

    def test_api_lists_rows(self):
        self.s.sql("INSERT INTO environments (repo, pr, slug, title, desired, phase, "
                   "desired_sha) VALUES ('o/r', 9, 'pr-9-r', '<b>t</b>', 'running', "
                   "'ready', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa')")
        try:
            envs = self.s.get("/api/v1/environments").json()
            self.assertEqual(len(envs), 1)
            e = envs[0]
            for k in ("id", "repo", "pr", "desired", "phase", "sha", "url", "updated_at"):
                self.assertIn(k, e)
            self.assertEqual((e["repo"], e["pr"], e["phase"]), ("o/r", 9, "ready"))
            self.assertRegex(e["updated_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
            page = self.s.get("/").text
            self.assertIn("&lt;b&gt;t&lt;/b&gt;", page)
            self.assertNotIn("<b>t</b>", page)
        finally:
            self.s.sql("DELETE FROM environments")

    def test_worker_respawn(self):
        sup = self.s.pid("workers")
        kids = self.s.children(sup)
        self.assertEqual(len(kids), 3)
        victim = kids[0]
        os.kill(victim, signal.SIGKILL)
        t0 = time.monotonic()
        replaced = wait_until(lambda: len(set(self.s.children(sup)) - set(kids)) == 1
                              and victim not in self.s.children(sup), timeout=5)
        self.assertTrue(replaced, "no replacement child")
        self.assertLess(time.monotonic() - t0, 1.0)
        log = self.s.log("workers")
        self.assertRegex(log, r"event=child_exit name=workers slot=\d child=%d signal=Killed"
                         % victim)

    def test_db_outage(self):
        self.assertEqual(self.s.get("/healthz").status, 200)
        self.s.allow_db_outage()
        self.s.stack("db-stop")
        try:
            # Several requests so that every fcgi child sees the outage.
            for _ in range(8):
                r = self.s.get("/healthz")
                self.assertEqual(r.status, 503)
                self.assertEqual(r.text, "database unavailable\n")
            self.assertEqual(self.s.get("/api/v1/environments").status, 503)
        finally:
            self.s.stack("db-start")
        self.assertTrue(wait_until(lambda: self.s.get("/healthz").status == 200, timeout=10))
        for _ in range(8):
            self.assertEqual(self.s.get("/healthz").status, 200)
        # Threads that held a connection from before the outage and did
        # not see it: their first read reconnects instead of failing.
        for _ in range(60):
            self.assertEqual(self.s.get("/api/v1/environments").status, 200)

    def test_zz_supervisor_term(self):
        sup = self.s.pid("workers")
        kids = self.s.children(sup)
        t0 = time.monotonic()
        os.kill(sup, signal.SIGTERM)
        gone = wait_until(lambda: not any(os.path.exists("/proc/%d" % p) and
                                          open("/proc/%d/stat" % p).read().split()[2] != "Z"
                                          for p in kids + [sup]), timeout=8)
        self.assertTrue(gone, "children still alive after TERM")
        self.assertLess(time.monotonic() - t0, 5 + 1)
        self.assertFalse(os.path.exists(os.path.join(self.s.var, "run", "workers.pid")))
        self.s.up()  # restores the workers for any later test


class ConfigCheckTest(unittest.TestCase):
    def run_check(self, prog, path):
        return subprocess.run([os.path.join(ROOT, "bin", prog), "-t", "-c", path],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def test_example_passes(self):
        for prog in ("ephemera-fcgi", "ephemera-workers"):
            r = self.run_check(prog, os.path.join(ROOT, "config", "example.conf"))
            self.assertEqual(r.returncode, 0, r.stdout)
            self.assertIn("configuration ok", r.stdout)

    def test_github_without_public_url_is_warned(self):
        s = Stack("pubconf", {"github.enabled": True, "github.app_id": 1,
                              "github.private_key_file": "/nonexistent.pem"})
        try:
            for prog in ("ephemera-fcgi", "ephemera-workers"):
                r = self.run_check(prog, s.config)
                self.assertEqual(r.returncode, 0, r.stdout)
                self.assertIn("warning: http.public_url is not set", r.stdout)
                self.assertIn("configuration ok", r.stdout)
            s.settings["http.public_url"] = "https://ephemera.example.com"
            s.write_config()
            r = self.run_check("ephemera-workers", s.config)
            self.assertNotIn("warning", r.stdout)
            # Without the App there are no links to warn about.
            s.settings["github.enabled"] = False
            del s.settings["http.public_url"]
            s.write_config()
            self.assertNotIn("warning", self.run_check("ephemera-workers", s.config).stdout)
        finally:
            s.cleanup()

    def test_database_over_the_network_without_tls_is_warned(self):
        s = Stack("dbconf", {"database.host": "db.internal"})
        try:
            r = self.run_check("ephemera-workers", s.config)
            self.assertEqual(r.returncode, 0, r.stdout)
            self.assertIn("warning: database.host is set without database.tls_ca_file",
                          r.stdout)
            s.settings["database.tls_ca_file"] = "/etc/ephemera/db-ca.pem"
            s.write_config()
            self.assertNotIn("warning", self.run_check("ephemera-workers", s.config).stdout)
            # The same machine's TCP port is no network.
            s.settings["database.host"] = "127.0.0.1"
            del s.settings["database.tls_ca_file"]
            s.write_config()
            self.assertNotIn("warning", self.run_check("ephemera-workers", s.config).stdout)
        finally:
            s.cleanup()

    def test_bad_value_names_file_and_line(self):
        s = Stack("badconf")
        try:
            with open(s.config, "a") as f:
                f.write("\nfcgi: {\n  processes = 999;\n};\n")
            lines = open(s.config).read().count("\n")
            for prog in ("ephemera-fcgi", "ephemera-workers"):
                r = self.run_check(prog, s.config)
                self.assertNotEqual(r.returncode, 0)
                self.assertEqual(r.stdout.strip().count("\n"), 0, r.stdout)
                self.assertIn("%s:%d: setting 'fcgi.processes': must be an integer "
                              "from 1 to 256 (got 999)" % (s.config, lines - 1), r.stdout)
        finally:
            s.cleanup()


class MakeRunTest(unittest.TestCase):
    def test_ctrl_c_leaves_nothing(self):
        s = Stack("makerun", asan=False)
        env = s.env()
        env["EPHEMERA_DEMO"] = "0"
        p = subprocess.Popen(["make", "-s", "run"], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True, text=True, preexec_fn=interruptible)
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(p.stdout), daemon=True)
        reader.start()
        running = "running at http://127.0.0.1:%d/" % s.port
        try:
            # Up when it says so: /healthz answers a moment before
            # run.sh has finished its own start and printed the URL.
            ok = wait_until(lambda: any(running in l for l in lines), timeout=120,
                            interval=0.3)
            self.assertTrue(ok, "make run did not come up:\n" + "".join(lines))
            self.assertEqual(s.get("/healthz").status, 200)
            self.assertEqual(s.get("/api/v1/environments").json(), [])
            self.assertTrue(s.processes())
            # Ctrl-C: SIGINT to the whole foreground process group.
            os.killpg(p.pid, signal.SIGINT)
            try:
                p.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                s.stack("down", check=False)
                self.fail("make run did not stop within 90 s of Ctrl-C:\n" +
                          "".join(lines)[-3000:] + s.logs()[-3000:])
            reader.join(timeout=10)
            out = "".join(lines)
            self.assertIn("ephemera: stopped", out)
            self.assertTrue(wait_until(lambda: not s.processes(), timeout=5),
                            "left behind: %r" % s.processes())
            self.assertFalse(s.port_open(), "port still listening")
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            s.cleanup()


if __name__ == "__main__":
    unittest.main()
