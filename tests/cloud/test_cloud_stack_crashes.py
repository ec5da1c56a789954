"""Crash windows of the instance path's Cloudflare and GitHub writes,
through the real stack (ec2 on moto with booting instances, the
Cloudflare fake, the GitHub fake): a worker is SIGKILLed right after each
write took effect and before it recorded anything (the fake carries the
call out, then holds its answer); the lease runs out, another worker runs
the job again, and the PR converges with one instance, one tunnel, one
record, one Deployment per commit and one comment. The AWS writes' windows
are CloudCrashWindows' (test_cloud_lifecycle).

The windows come from a clean lifecycle's own writes, so a write the code
adds is covered without editing this file.
"""

import itertools
import os
import re
import signal
import time

from harness import events
from harness.stack import wait_until

from test_cloud_stack import CloudGitHubBase

REPO = "acme/cloud"
HELD_S = 60  # longer than a window needs: the worker dies first


def shape(path, ids):
    """A regex for the path with its ids generalised, e.g.
    /repos/acme/cloud/deployments/7/statuses → …/deployments/\\d+/statuses$."""
    out = []
    for seg in path.split("/"):
        if re.fullmatch(r"\d+", seg):
            out.append(r"\d+")
        elif re.fullmatch(r"[0-9a-f]{40}", seg):
            out.append("[0-9a-f]{40}")
        elif seg in ids or re.fullmatch(r"[0-9a-f-]{32,36}", seg):
            out.append("[^/]+")
        else:
            out.append(re.escape(seg))
    return "/".join(out) + "$"


class CloudStackCrashWindows(CloudGitHubBase):
    # Three workers: a deploy and its PR's notifier at once, and a spare;
    # a short lease, so a killed worker's job is rescued soon.
    github_more = {"workers.count": 3, "workers.lease_seconds": 6}

    def cf_writes(self, mark):
        ids = {self.cf.account, self.cf.zone_id}
        out = []
        for c in self.cf.calls()[mark:]:
            if c["method"] not in ("GET", "HEAD"):
                w = (c["method"], shape(c["path"], ids))
                if w not in out:
                    out.append(w)
        return out

    def gh_writes(self, mark):
        out = []
        for r in self.gh.state()["requests"][mark:]:
            # An installation token is minted, not made: a second one is
            # no duplicate of anything the PR shows.
            if r["method"] not in ("GET", "HEAD") and not r["path"].startswith("/app/"):
                w = (r["method"], shape(r["path"], ()))
                if w not in out:
                    out.append(w)
        return out

    def holder(self, env_id, notify):
        """The pid of the worker running the env's notify job (or its
        other job)."""
        rows = self.s.sql("SELECT worker FROM jobs WHERE env_id = %d AND state = 'running' "
                          "AND kind %s 'notify'" % (env_id, "=" if notify else "<>"))
        return int(rows[0][0].rsplit(":", 1)[1]) if len(rows) == 1 else None

    def env_id(self, pr):
        rows = self.s.sql("SELECT id FROM environments WHERE repo = '%s' AND pr = %d"
                          % (REPO, pr))
        return int(rows[0][0]) if rows else None

    def kill_in(self, pr, cf, gh, trigger):
        """Holds the answers to the `cf` and `gh` writes (either may be
        None), runs `trigger`, and SIGKILLs the worker that made each
        write while its answer is held. Returns what was killed."""
        cf_mark = len(self.cf.calls())
        if cf:
            self.cf.fault(method=cf[0], pattern=cf[1], delay_after=HELD_S, count=1)
        if gh:
            self.gh.fault(method=gh[0], path=gh[1], after=True, delay=HELD_S, times=1)
        gh_fault = len(self.gh.state()["faults"]) - 1
        trigger()
        pending = {"cf": cf, "gh": gh}
        killed = []
        deadline = time.monotonic() + 300
        while any(pending.values()) and time.monotonic() < deadline:
            env_id = self.env_id(pr)
            hit = None
            if pending["cf"] and any(c["method"] == cf[0] and re.search(cf[1], c["path"])
                                     for c in self.cf.calls()[cf_mark:]):
                hit = ("cf", False)
            elif pending["gh"] and self.gh.state()["faults"][gh_fault].get("hits"):
                hit = ("gh", True)
            pid = hit and env_id and self.holder(env_id, hit[1])
            if pid:
                # The fake has carried the call out and holds the answer.
                time.sleep(0.3)
                os.kill(pid, signal.SIGKILL)
                killed.append("%s %s" % pending[hit[0]])
                pending[hit[0]] = None
            time.sleep(0.1)
        self.assertEqual([w for w in pending.values() if w], [],
                         "never made:\n" + self.s.logs()[-4000:])
        return killed

    def one_of_each(self, slug):
        tunnels = [t for t in self.cf.inventory()["tunnels"]
                   if t["name"] == "%s-%s" % (self.instance, slug)]
        records = [r for r in self.cf.inventory()["dns_records"]
                   if r["name"] == "%s.%s" % (slug, self.cf.zone)]
        return len(self.live(slug)), len(tunnels), len(records)

    def converged_ready(self, pr, sha):
        e = self.wait_phase(REPO, pr, "ready", sha=sha, timeout=300)
        self.assertEqual(self.one_of_each(e["slug"]), (1, 1, 1))
        self.assertTrue(wait_until(lambda: sha in self.edge(e["slug"])[1], timeout=30))

        def ready(v):
            self.assertEqual(len(v["comments"]), 1)
            self.assertEqual(v["headline"], "✅ Preview ready")
            self.assertEqual(v["deployments"], [(sha, "success")])
        self.github(ready, timeout=60, pr=pr)
        return e["slug"]

    def converged_removed(self, pr, slug):
        self.wait_phase(REPO, pr, "destroyed", timeout=300)
        self.assertEqual(self.one_of_each(slug), (0, 0, 0))

        def removed(v):
            self.assertEqual(len(v["comments"]), 1)
            self.assertEqual(v["headline"], "🗑️ Preview removed")
            self.assertEqual([s for _, s in v["deployments"]], ["inactive"])
            self.assertNotIn("Not yet confirmed", v["body"])
        self.github(removed, timeout=60, pr=pr)

    def opened(self, pr, sha):
        return lambda: self.deliver("pull_request",
                                    events.pull_request("opened", REPO, pr, sha))

    def closed(self, pr, sha):
        return lambda: self.deliver("pull_request",
                                    events.pull_request("closed", REPO, pr, sha))

    def test_every_cloudflare_and_github_write(self):
        repo = self.repos[REPO]
        # A clean run: the writes of an open and of a close.
        sha = repo.commit("clean")
        cf_mark, gh_mark = len(self.cf.calls()), len(self.gh.state()["requests"])
        self.opened(1, sha)()
        slug = self.converged_ready(1, sha)
        cf_open, gh_open = self.cf_writes(cf_mark), self.gh_writes(gh_mark)
        cf_mark, gh_mark = len(self.cf.calls()), len(self.gh.state()["requests"])
        self.closed(1, sha)()
        self.converged_removed(1, slug)
        cf_close, gh_close = self.cf_writes(cf_mark), self.gh_writes(gh_mark)
        # Closed while ready: the report names the tunnel and its record
        # beside the instance.
        names = self.removed(self.gh.pr_view(REPO, 1)["comments"][0])
        self.assertEqual(names.get("Cloudflare tunnel"), ["%s-%s" % (self.instance, slug)])
        self.assertEqual(names.get("DNS record"), ["%s.%s" % (slug, self.cf.zone)])
        self.assertEqual(len(names.get("EC2 instance", [])), 1, names)
        print("writes:\n  open: %s %s\n  close: %s %s" % (cf_open, gh_open, cf_close, gh_close))
        self.assertIn("POST", [m for m, _ in cf_open])
        self.assertIn("DELETE", [m for m, _ in cf_close])
        self.assertIn("POST", [m for m, _ in gh_open])
        self.assertIn("PATCH", [m for m, _ in gh_close])

        # Each open kills after one Cloudflare and one GitHub write; each
        # close after one of each of the teardown's; as many PRs as the
        # longer list needs.
        opens = list(itertools.zip_longest(cf_open, gh_open))
        closes = list(itertools.zip_longest(cf_close, gh_close))
        n = max(len(opens), len(closes))
        opens += [(None, None)] * (n - len(opens))
        closes += [(None, None)] * (n - len(closes))
        results, opened = [], []
        for pr, (cf, gh) in enumerate(opens, start=11):
            sha = repo.commit("window %d" % pr)
            killed = self.kill_in(pr, cf, gh, self.opened(pr, sha))
            opened.append((pr, sha, self.converged_ready(pr, sha)))
            results += ["open, killed after %s: converged" % k for k in killed]
        for (pr, sha, slug), (cf, gh) in zip(opened, closes):
            killed = self.kill_in(pr, cf, gh, self.closed(pr, sha))
            self.converged_removed(pr, slug)
            results += ["close, killed after %s: converged" % k for k in killed]
        print("crash windows:\n  " + "\n  ".join(results))
        self.assertEqual(len(results), len(cf_open) + len(gh_open) + len(cf_close)
                         + len(gh_close))
        # Every killed worker's job is rescued once its lease runs out
        # (the PR may have converged before, by a later job of its own).
        self.assertTrue(wait_until(
            lambda: self.s.log("workers").count("event=job_rescued") >= len(results),
            timeout=60), self.s.log("workers").count("event=job_rescued"))


if __name__ == "__main__":
    import unittest
    unittest.main()
