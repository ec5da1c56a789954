"""Issue 20: a monthly budget per repository. A repository whose previews
have cost its budget this UTC month (env_runs, seeded here) starts no new
preview: the PR waits in phase `budget` and GitHub's view of it (the
fake's) says why and until when; another repository deploys meanwhile, a
running preview of the spent one keeps running and takes a push. A new
month (the spend moved into the last one) lets the sweep start it, and so
does a budget raised in the config once the workers restart. The view
behind it, budget_spend (021), is checked across a year's end with a
pinned clock."""
import datetime
import html
import os
import random
import signal
import subprocess
import time
import unittest

from harness import events
from harness.github_fake import GitHubFake
from harness.pr_view import pr_view, settle
from harness.stack import ROOT, Stack, alive, wait_until
from test_local import Repo

SPENT = "octo/spender"
FREE = "octo/free"
INST = 78
PUBLIC = "https://ephemera.example.test"
DOMAIN = "preview.example.test"
PERMS = {"contents": "read", "issues": "write", "pull_requests": "write",
         "deployments": "write", "statuses": "write", "metadata": "read"}


def next_month_start():
    now = datetime.datetime.now(datetime.timezone.utc)
    y, m = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return "%04d-%02d-01 00:00" % (y, m)


class BudgetTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        subprocess.run([os.path.join(ROOT, "examples", "busybox-image.sh")], check=True)
        cls.gh = GitHubFake()
        try:
            cls.instance = "t%06d" % random.randrange(10**6)
            cls.s = Stack("budget", dict(cls.gh.settings(), **{
                "http.public_url": PUBLIC,
                "environments.preview_domain": DOMAIN,
                "environments.instance": cls.instance,
                "environments.max_running": 5,
                "workers.sweep_interval_seconds": 1,
                "workers.count": 3,
                "workers.backoff_base_ms": 200,
                "workers.poll_interval_ms": 50,
            }))
            cls.repos = {n: Repo(cls.s.dir, n) for n in (SPENT, FREE)}
            cls.write_config(5.0)
            cls.s.up()
        except Exception:
            cls.gh.stop()
            raise
        cls.gh.configure(installations={str(INST): {"repos": [SPENT, FREE],
                                                    "permissions": PERMS}})

    @classmethod
    def write_config(cls, budget):
        """SPENT has its own budget; nothing else has one (the default,
        environments.monthly_budget, stays 0)."""
        cls.s.extra = "repos = (%s);\n" % ",".join(
            '{ name = "%s"; source = "%s";%s }'
            % (n, r.path, " monthly_budget = %s;" % budget if n == SPENT else "")
            for n, r in cls.repos.items())
        cls.s.write_config()

    @classmethod
    def tearDownClass(cls):
        cls.s.down()
        reports = cls.s.sanitizer_reports()
        cls.gh.stop()
        out = subprocess.run(["docker", "ps", "-aq", "--filter",
                              "label=io.ephemera.instance=%s" % cls.instance],
                             stdout=subprocess.PIPE, text=True).stdout.split()
        if out:
            subprocess.run(["docker", "rm", "-f", "-v"] + out,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cls.s.cleanup()
        assert not reports, "sanitizer reports:\n" + "\n".join(reports)

    # ---- helpers -----------------------------------------------------------

    def pr_event(self, action, repo, pr, commit):
        payload = events.pull_request(action, repo, pr, commit)
        payload["installation"] = {"id": INST}
        body, headers = events.signed(self.s.secret, "pull_request", payload)
        r = self.s.post("/webhook", body, headers)
        self.assertIn(r.status, (200, 202), r.text)

    def env(self, repo, pr):
        for e in self.s.get("/api/v1/environments").json():
            if e["repo"] == repo and e["pr"] == pr:
                return e
        return None

    def wait_phase(self, repo, pr, phase, timeout=180):
        e = wait_until(lambda: (self.env(repo, pr) or {}).get("phase") == phase
                       and self.env(repo, pr), timeout=timeout, interval=0.3)
        self.assertTrue(e, "%s#%d never %s: %r\n%s" % (repo, pr, phase, self.env(repo, pr),
                                                       self.s.logs()[-6000:]))
        return e

    def view(self, repo, pr):
        return pr_view(self.gh, repo, pr)

    def settle(self, repo, pr, check, timeout=30):
        return settle(lambda: self.view(repo, pr), check, timeout)

    def seed_spend(self, dollars):
        """A closed run of a long-gone PR of SPENT that cost about
        `dollars` this month (its hour, or what the month has had of one,
        at the price that makes it so)."""
        sql = self.s.sql
        if not sql("SELECT id FROM environments WHERE repo = '%s' AND pr = 999" % SPENT):
            sql("INSERT INTO environments (repo, pr, slug, desired, phase) VALUES "
                "('%s', 999, 'pr-999-spender', 'destroyed', 'destroyed')" % SPENT)
        env = int(sql("SELECT id FROM environments WHERE repo = '%s' AND pr = 999"
                      % SPENT)[0][0])
        sql("SET time_zone = '+00:00'; INSERT INTO env_runs (env_id, started_at, "
            "stopped_at, hourly_price) SELECT %d, GREATEST(NOW(6) - INTERVAL 1 HOUR, "
            "CAST(DATE_FORMAT(NOW(6), '%%Y-%%m-01') AS DATETIME(6))), NOW(6), %f"
            % (env, dollars * 3600 / max(1, min(3600, self.month_seconds()))))
        return env

    def month_seconds(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        return (now - now.replace(day=1, hour=0, minute=0, second=0,
                                  microsecond=0)).total_seconds()

    def spent(self, repo):
        rows = self.s.sql("SET time_zone = '+00:00'; SELECT spent FROM budget_spend "
                          "WHERE repo = '%s'" % repo)
        return float(rows[0][0]) if rows else 0.0

    def restart_workers(self):
        sup = self.s.pid("workers")
        os.kill(sup, signal.SIGTERM)
        self.assertTrue(wait_until(lambda: not alive(sup), timeout=30))
        self.s.up()

    # ---- the tests -----------------------------------------------------------

    def test_spent_repository_waits_others_deploy_running_keep_running(self):
        spent_repo, free_repo = self.repos[SPENT], self.repos[FREE]
        # A preview of SPENT runs before the budget is reached.
        a = spent_repo.commit("runs already")
        self.pr_event("opened", SPENT, 1, a)
        self.wait_phase(SPENT, 1, "ready")
        self.seed_spend(6.0)
        self.assertGreaterEqual(self.spent(SPENT), 5.0)

        # A new PR of SPENT waits, saying why and until when.
        b = spent_repo.commit("waits for the budget")
        self.pr_event("opened", SPENT, 2, b)
        e = self.wait_phase(SPENT, 2, "budget")
        resets = next_month_start()
        self.assertRegex(e["error"], r"^octo/spender has spent \$\d+\.\d\d of its "
                         r"\$5\.00 monthly budget; previews wait until %s UTC or a "
                         r"higher budget$" % resets)
        status_url = "%s/env/%s" % (PUBLIC, e["slug"])

        def waiting(v):
            self.assertEqual(v["headline"], "💰 Preview waiting for budget")
            self.assertIn("Not started: " + e["error"], v["text"])
            self.assertIn("Previews already running keep running", v["text"])
            self.assertEqual(v["deployments"], [(b, "queued")])
            self.assertEqual(v["commit"][b], (
                "pending", "Monthly budget reached: waits until %s UTC or a higher "
                "budget" % resets, status_url))
        self.settle(SPENT, 2, waiting)
        # The status page shows it as its own waiting phase, with the reason.
        page = self.s.get("/").text
        self.assertIn('<span class="state s-budget" title="desired: running">budget</span>',
                      page)
        self.assertIn(html.escape(e["error"], quote=True), page)
        self.assertIn('ephemera_environments{phase="budget"} 1',
                      self.s.get("/metrics").text)

        # Another repository, without a budget, deploys meanwhile.
        c = free_repo.commit("no budget here")
        self.pr_event("opened", FREE, 3, c)
        self.wait_phase(FREE, 3, "ready")
        # The running preview of SPENT was not stopped, and a push to it
        # redeploys: its run is open, already counted.
        d = spent_repo.commit("a push while over budget")
        self.pr_event("synchronize", SPENT, 1, d)
        self.assertTrue(wait_until(lambda: (self.env(SPENT, 1) or {}).get(
            "deployed_sha") == d and self.env(SPENT, 1)["phase"] == "ready",
                                   timeout=120, interval=0.3), self.env(SPENT, 1))
        # Sweeps come and go (one a second): still waiting, nothing built.
        time.sleep(3)
        self.assertEqual(self.env(SPENT, 2)["phase"], "budget")
        self.assertEqual(self.s.sql("SELECT COUNT(*) FROM builds b JOIN environments e "
                                    "ON e.id = b.env_id WHERE e.repo = '%s' AND e.pr = 2"
                                    % SPENT), [["0"]])

        # A new month: the spend now belongs to the last one, and the
        # sweep starts the waiting preview by itself.
        self.s.sql("UPDATE env_runs r JOIN environments e ON e.id = r.env_id SET "
                   "r.started_at = r.started_at - INTERVAL 40 DAY, r.stopped_at = "
                   "r.stopped_at - INTERVAL 40 DAY WHERE e.pr = 999")
        self.assertLess(self.spent(SPENT), 5.0)
        self.wait_phase(SPENT, 2, "ready", timeout=120)

        def ready(v):
            self.assertEqual(v["headline"], "✅ Preview ready")
            # The Deployment it waited with, taken over by the build.
            self.assertEqual(v["deployments"], [(b, "success")])
            self.assertEqual(v["commit"][b][:2], ("success", "Preview ready"))
        self.settle(SPENT, 2, ready)
        self.assertIsNone(self.env(SPENT, 2)["error"])
        for pr, commit in ((1, d), (2, b)):
            self.pr_event("closed", SPENT, pr, commit)
        self.pr_event("closed", FREE, 3, c)
        for repo, pr in ((SPENT, 1), (SPENT, 2), (FREE, 3)):
            self.wait_phase(repo, pr, "destroyed")

    def test_raised_budget_admits_after_restart(self):
        env = self.seed_spend(6.0)
        b = self.repos[SPENT].commit("waits until the budget is raised")
        self.pr_event("opened", SPENT, 4, b)
        self.wait_phase(SPENT, 4, "budget")
        self.settle(SPENT, 4, lambda v: self.assertEqual(
            v["headline"], "💰 Preview waiting for budget"))
        try:
            self.write_config(1000000)
            self.restart_workers()
            self.wait_phase(SPENT, 4, "ready", timeout=120)
            self.settle(SPENT, 4, lambda v: self.assertEqual(v["headline"],
                                                             "✅ Preview ready"))
        finally:
            self.s.sql("DELETE FROM env_runs WHERE env_id = %d" % env)
            self.write_config(5.0)
            self.restart_workers()
        self.pr_event("closed", SPENT, 4, b)
        self.wait_phase(SPENT, 4, "destroyed")

    def test_spend_view_across_the_year_end(self):
        """budget_spend with NOW() pinned (SET TIMESTAMP): an open run
        from 22:00 on 31 December at 1.00 an hour is 1.50 at 23:30, and
        only 0.50 at 00:30 on 1 January, whose budget resets on 1
        February; a November run counts in neither."""
        sql = self.s.sql
        sql("INSERT INTO environments (repo, pr, slug, desired, phase) VALUES "
            "('octo/newyear', 1, 'pr-1-newyear', 'destroyed', 'destroyed')")
        env = int(sql("SELECT id FROM environments WHERE repo = 'octo/newyear'")[0][0])
        try:
            sql("INSERT INTO env_runs (env_id, started_at, stopped_at, hourly_price) "
                "VALUES (%d, '2026-11-10 10:00:00', '2026-11-10 20:00:00', 1.0), "
                "(%d, '2026-12-31 22:00:00', NULL, 1.0)" % (env, env))

            def at(when):
                return sql("SET time_zone = '+00:00'; SET TIMESTAMP = "
                           "UNIX_TIMESTAMP('%s'); SELECT month, spent, resets_at FROM "
                           "budget_spend WHERE repo = 'octo/newyear'" % when)
            self.assertEqual(at("2026-12-31 23:30:00"),
                             [["2026-12-01", "1.50", "2027-01-01 00:00:00.000000"]])
            self.assertEqual(at("2027-01-01 00:30:00"),
                             [["2027-01-01", "0.50", "2027-02-01 00:00:00.000000"]])
            self.assertEqual(at("2026-11-30 23:00:00"),
                             [["2026-11-01", "10.00", "2026-12-01 00:00:00.000000"]])
        finally:
            sql("DELETE FROM environments WHERE id = %d" % env)


if __name__ == "__main__":
    unittest.main()
