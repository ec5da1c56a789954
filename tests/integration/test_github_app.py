"""`ephemera github-app create` against the GitHub fake: the test plays
the operator's browser (GET the page, post its form to "GitHub", follow
the redirect back), then checks the files (mode 0600), the manifest's
permissions and events against the README, and that the installed stack
started with those files verifies a signed delivery."""

import html
import json
import os
import re
import shutil
import subprocess
import time
import unittest
import urllib.parse
import urllib.request

from harness.github_fake import GitHubFake
from harness.installed import Installed, delivery_script, results, run_stack
from harness.stack import http

# README, "Create the App": repository permissions and events.
PERMISSIONS = {"contents": "read", "pull_requests": "write", "deployments": "write",
               "statuses": "write", "issues": "write", "metadata": "read"}
EVENTS = ["pull_request", "issue_comment"]
WEBHOOK = "https://ephemera.example.com/webhook"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **kw):
        return None


def post_form(url, fields):
    req = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode(),
                                 method="POST")
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("unshare"),
                     "needs root and unshare (the installed /etc/ephemera is mounted in place)")
class TestGitHubAppCreate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake = GitHubFake()
        cls.inst = Installed()
        cls.etc = cls.inst.path("etc/ephemera")

    @classmethod
    def tearDownClass(cls):
        cls.fake.stop()
        cls.inst.cleanup()

    def setUp(self):
        self.fake.post("/_fake/reset", {})
        for f in ("github-app.pem", "webhook-secret"):
            p = os.path.join(self.etc, f)
            if os.path.exists(p):
                os.unlink(p)
        shutil.copy(os.path.join(os.path.dirname(__file__), "..", "..", "dist", "github.conf"),
                    os.path.join(self.etc, "github.conf"))

    def start(self, *extra):
        """Runs the command as an admin would on the host: the installed
        /etc/ephemera mounted at /etc/ephemera (an overlay keeps the real
        /etc untouched)."""
        work = self.inst.dir
        for d in ("ovl-u", "ovl-w"):
            shutil.rmtree(os.path.join(work, d), ignore_errors=True)
            os.makedirs(os.path.join(work, d))
        args = " ".join("'%s'" % a for a in extra)
        script = (
            "mount -t overlay overlay -o lowerdir=/etc,upperdir={w}/ovl-u,workdir={w}/ovl-w /etc"
            " && mkdir -p /etc/ephemera && mount --bind {etc} /etc/ephemera"
            " && exec {bin} -c /etc/ephemera/ephemera.conf github-app create"
            " --webhook-url {hook} --github-url {gh} --api-url {gh} --timeout 60 {args}"
        ).format(w=work, etc=self.etc, bin=self.inst.path("usr/local/bin/ephemera"),
                 hook=WEBHOOK, gh=self.fake.url, args=args)
        proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private",
                                 "bash", "-c", script], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if not m:
            proc.kill()
            self.fail("no URL printed: " + line + proc.stdout.read())
        return proc, "http://127.0.0.1:%s" % m.group(1)

    def finish(self, proc):
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        return proc.returncode, out

    def page_form(self, base):
        r = http("GET", base + "/")
        self.assertEqual(r.status, 200)
        action = html.unescape(re.search(r'<form method="post" action="([^"]*)"', r.text).group(1))
        manifest = html.unescape(re.search(r'name="manifest" value="([^"]*)"', r.text).group(1))
        return action, manifest

    def test_create(self):
        proc, base = self.start()
        action, manifest = self.page_form(base)
        m = json.loads(manifest)
        self.assertEqual(m["default_permissions"], PERMISSIONS)
        self.assertEqual(m["default_events"], EVENTS)
        self.assertEqual(m["hook_attributes"], {"url": WEBHOOK, "active": True})
        self.assertEqual(m["redirect_url"], base + "/redirect")
        self.assertFalse(m["public"])
        self.assertTrue(action.startswith(self.fake.url + "/settings/apps/new?state="))
        status, headers, _ = post_form(action, {"manifest": manifest})
        self.assertEqual(status, 302)
        r = http("GET", headers["Location"])
        self.assertEqual(r.status, 200, r.text)
        rc, out = self.finish(proc)
        self.assertEqual(rc, 0, out)
        app = urllib.request.urlopen(self.fake.url + "/_fake/manifest_apps").read()
        app = json.loads(app)[-1]
        for f in ("github-app.pem", "webhook-secret", "github.conf"):
            st = os.stat(os.path.join(self.etc, f))
            self.assertEqual(st.st_mode & 0o777, 0o600, f)
        conf = open(os.path.join(self.etc, "github.conf")).read()
        self.assertIn("app_id = %d;" % app["id"], conf)
        self.assertIn('private_key_file = "/etc/ephemera/github-app.pem";', conf)
        self.assertIn('webhook_secret_file = "/etc/ephemera/webhook-secret";', conf)
        self.assertIn("enabled = true;", conf)
        secret = open(os.path.join(self.etc, "webhook-secret")).read().strip()
        self.assertNotIn(secret, out, "the webhook secret was printed")
        self.assertTrue(open(os.path.join(self.etc, "github-app.pem")).read()
                        .startswith("-----BEGIN RSA PRIVATE KEY-----"))
        # The code was good once.
        self.assertEqual(http("POST", self.fake.url + "/app-manifests/%s/conversions"
                              % urllib.parse.parse_qs(urllib.parse.urlparse(
                                  headers["Location"]).query)["code"][0]).status, 404)

        # The installed stack, started with these files, verifies deliveries.
        rc, out = run_stack(self.inst.dest, delivery_script(secret))
        res = results(out)
        self.assertEqual(rc, 0, out)
        self.assertEqual(res.get("ping"), "200", out)
        self.assertEqual(res.get("good"), "202", out)
        self.assertEqual(res.get("bad"), "401", out)

        # Run again: the key and secret exist, so nothing starts.
        again = subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c",
                                "exec %s github-app create --dir %s --webhook-url %s"
                                % (self.inst.path("usr/local/bin/ephemera"), self.etc, WEBHOOK)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=30)
        self.assertEqual(again.returncode, 1, again.stdout)
        self.assertIn("exists", again.stdout)

    def test_state_mismatch(self):
        """A redirect that does not carry our page's state is refused and
        nothing is exchanged or written."""
        proc, base = self.start()
        r = http("GET", base + "/redirect?code=abc123&state=" + "0" * 32)
        self.assertEqual(r.status, 400)
        r = http("GET", base + "/redirect?code=../../x&state=" + "0" * 32)
        self.assertEqual(r.status, 400)
        proc.terminate()
        self.finish(proc)
        self.assertFalse(os.path.exists(os.path.join(self.etc, "github-app.pem")))
        convs = [q for q in self.fake.state()["requests"] if "app-manifests" in q["path"]]
        self.assertEqual(convs, [])

    def test_exchange_fails(self):
        """GitHub failing the exchange: a clear error, no files."""
        proc, base = self.start()
        action, manifest = self.page_form(base)
        status, headers, _ = post_form(action, {"manifest": manifest})
        self.fake.fault(path="^/app-manifests/", status=500, times=1)
        r = http("GET", headers["Location"])
        self.assertEqual(r.status, 500)
        rc, out = self.finish(proc)
        self.assertEqual(rc, 1, out)
        self.assertIn("GitHub answered 500", out)
        for f in ("github-app.pem", "webhook-secret"):
            self.assertFalse(os.path.exists(os.path.join(self.etc, f)), f)
        self.assertTrue(open(os.path.join(self.etc, "github.conf")).read()
                        .startswith("# ephemera: default github settings"))


if __name__ == "__main__":
    unittest.main()
