"""Issue 19: remote API faults at every step of a lifecycle. The local
provider with the cloudflare exposure and the GitHub App, both through
their fakes. For each kind of fault, one PR is opened, served and closed
while BOTH fakes hit the first call of every kind of request with that
fault ("each": tests/fakes/faults.py): 500s; rate limits (Cloudflare's 429
and GitHub's secondary 403, each with Retry-After); answers slower than
the client's timeout, after the request was carried out; and carried-out
requests whose answer is cut short. The environment must converge (ready
on the right commit, then removed with nothing left on Cloudflare or
Docker), and the PR must say so, in one comment, whatever was retried."""
import re
import time

from harness import events
from harness.github_fake import GitHubFake
from harness.stack import http, wait_until
from test_cloudflare import ConnectorStackBase

INST = 57
PERMS = {"contents": "read", "issues": "write", "pull_requests": "write",
         "deployments": "write", "statuses": "write", "metadata": "read"}
TIMEOUT = 2  # github.timeout_seconds and cloudflare.timeout_seconds
# GitHub's API (not the fake's git): what the workers call.
GH_API = r"^/(app|repos|installation)/"

FAULTS = {
    "500": ({"status": 500, "message": "Server Error (injected)"},
            {"status": 500}),
    "429": ({"kind": "secondary", "retry_after": 1},
            {"status": 429, "retry_after": 1}),
    "slow": ({"after": True, "delay": TIMEOUT + 2},
             {"delay_after": TIMEOUT + 2}),
    "truncated": ({"after": True, "kind": "truncate"},
                  {"truncate": True}),
}
REPOS = ["acme/f500", "acme/f429", "acme/fslow", "acme/ftruncated"]


class ApiFaultsTest(ConnectorStackBase):
    extra_settings = {"cloudflare.access": False, "cloudflare.timeout_seconds": TIMEOUT,
                      "github.timeout_seconds": TIMEOUT, "github.write_spacing_ms": 0,
                      "workers.backoff_base_ms": 200, "workers.backoff_cap_ms": 2000,
                      "workers.max_attempts": 20}

    @classmethod
    def before_up(cls):
        cls.gh = GitHubFake()
        cls.settings.update(cls.gh.settings())

    @classmethod
    def setUpClass(cls):
        try:
            super().setUpClass()
        except Exception:
            if getattr(cls, "gh", None):
                cls.gh.stop()
            raise
        cls.gh.configure(installations={str(INST): {"repos": REPOS, "permissions": PERMS}})

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.gh.stop()

    @classmethod
    def repo_names(cls):
        return REPOS

    def deliver(self, event, payload):
        payload["installation"] = {"id": INST}
        return super().deliver(event, payload)

    def view(self, repo, pr):
        v = self.gh.pr_view(repo, pr)
        body = v["comments"][0] if v["comments"] else ""
        head = re.search(r"^### (.*)$", body, re.M)
        return {"comments": v["comments"], "headline": head.group(1) if head else None,
                "deployments": [(d["sha"], d["state"]) for d in v["deployments"]]}

    def wait_view(self, repo, pr, headline, timeout=120):
        ok = wait_until(lambda: self.view(repo, pr)["headline"] == headline,
                        timeout=timeout, interval=0.3)
        v = self.view(repo, pr)
        self.assertTrue(ok, "%s: %r\n%s" % (headline, v, self.s.logs()[-5000:]))
        return v

    def lifecycle(self, kind):
        gh_fault, cf_fault = FAULTS[kind]
        repo = "acme/f" + kind
        self.gh.fault(path=GH_API, each=True, times=10**6, **gh_fault)
        self.cf.fault(each=True, count=10**6, **cf_fault)
        t0 = time.monotonic()
        try:
            a = self.repos[repo].commit("faults: " + kind)
            self.deliver("pull_request", events.pull_request("opened", repo, 1, a))
            e = self.wait_phase(repo, 1, "ready", sha=a, timeout=400)
            slug = e["slug"]
            self.assertTrue(wait_until(lambda: a in self.edge(slug)[1], timeout=60),
                            self.edge(slug))
            v = self.wait_view(repo, 1, "✅ Preview ready")
            self.assertEqual(len(v["comments"]), 1, v)
            self.assertIn("https://%s.%s/" % (slug, self.cf.zone), v["comments"][0])
            self.assertTrue(wait_until(
                lambda: (a, "success") in self.view(repo, 1)["deployments"], timeout=60),
                self.view(repo, 1))

            self.deliver("pull_request", events.pull_request("closed", repo, 1, a))
            self.wait_phase(repo, 1, "destroyed", timeout=400)
            v = self.wait_view(repo, 1, "🗑️ Preview removed")
            self.assertEqual(len(v["comments"]), 1, v)
            inv = self.cf.inventory()
            self.assertEqual([t for t in inv["tunnels"] if slug in t["name"]], [])
            self.assertEqual([r for r in inv["dns_records"] if slug in r["name"]], [])
            self.assertEqual(self.edge(slug)[0], 530)
            gone = wait_until(lambda: not self.s.sql(
                "SELECT 1 FROM jobs j JOIN environments e ON e.id = j.env_id WHERE "
                "e.repo = '%s' AND j.state IN ('queued', 'running')" % repo), timeout=120)
            self.assertTrue(gone, self.s.sql("SELECT kind, state, last_error FROM jobs"))
        finally:
            gh_hit = [f for f in self.gh.state()["faults"] if f.get("each")]
            cf_hit = self.cf_each_faults()
            self.clear_faults()
        steps = sorted(set(gh_hit[-1].get("seen", [])) | set(cf_hit))
        retried = self.s.sql("SELECT COUNT(*) FROM jobs j JOIN environments e ON "
                             "e.id = j.env_id WHERE e.repo = '%s' AND j.attempts > 1" % repo)
        print("\n    %s: %d kinds of call each met the fault once (%d GitHub, %d Cloudflare); "
              "converged in %.0f s with %s job(s) retried"
              % (kind, len(steps), len(gh_hit[-1].get("seen", [])), len(cf_hit),
                 time.monotonic() - t0, retried[0][0]))
        # Every step: the fault met GitHub and Cloudflare calls alike.
        self.assertGreaterEqual(len(gh_hit[-1].get("seen", [])), 4, steps)
        self.assertGreaterEqual(len(cf_hit), 4, steps)

    def cf_each_faults(self):
        st = http("GET", self.cf.url + "/_fake/faults").json()
        return [t for f in st["result"] if f.get("each") for t in f.get("seen", [])]

    def clear_faults(self):
        self.gh.post("/_fake/fault/clear", {})
        self.cf.post("/_fake/fault/clear", {})

    def test_500s(self):
        self.lifecycle("500")

    def test_rate_limits(self):
        self.lifecycle("429")

    def test_slower_than_the_client_timeout(self):
        self.lifecycle("slow")

    def test_truncated_answers(self):
        self.lifecycle("truncated")
