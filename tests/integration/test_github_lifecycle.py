"""Issue 14: what the PR shows must be true. Real workers deploy real
compose apps while tests/fakes/github.py stands in for GitHub; every test
drives a preview to one end of its life and asserts the FINAL state GitHub
holds for the PR (the fake's /_fake/pr view): the bot comment's text, the
last status of every Deployment, the last commit status. Not what was
sent: what a reviewer sees."""
import os
import random
import re
import subprocess
import time
import unittest

from harness import events
from harness.github_fake import GitHubFake
from harness.pr_view import pr_view, settle
from harness.stack import ROOT, Stack, http, wait_until
from test_local import HELLO, Repo

REPO = "octo/app"
INST = 77
PUBLIC = "https://ephemera.example.test"
DOMAIN = "preview.example.test"
PERMS = {"contents": "read", "issues": "write", "pull_requests": "write",
         "deployments": "write", "statuses": "write", "metadata": "read"}

# The web service sleeps before it serves, so its health check (and the
# build's `up --wait`) is held up that long.
SLOW_COMPOSE = open(os.path.join(HELLO, "docker-compose.yml")).read().replace(
    "    ports:\n      - \"8080:80\"\n",
    "    command: [\"/bin/sh\", \"-c\", \"sleep 15; exec /bin/httpd -f -p 80 -h /www\"]\n"
    "    ports:\n      - \"8080:80\"\n")
BROKEN_API = "FROM ephemera/busybox:1\nRUN exit 3\n"


class GitHubLifecycleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        subprocess.run([os.path.join(ROOT, "examples", "busybox-image.sh")], check=True)
        cls.gh = GitHubFake()
        try:
            cls.instance = "t%06d" % random.randrange(10**6)
            cls.s = Stack("ghlife", dict(cls.gh.settings(), **{
                "http.public_url": PUBLIC,
                "environments.preview_domain": DOMAIN,
                "environments.instance": cls.instance,
                # One slot: a second PR queues behind the first.
                "environments.max_running": 1,
                "environments.idle_stop_minutes": 60,
                "workers.sweep_interval_seconds": 1,
                # A deploy and the notifier of its PR at once, and a spare.
                "workers.count": 3,
                "workers.backoff_base_ms": 200,
                "workers.poll_interval_ms": 50,
            }))
            cls.repo = Repo(cls.s.dir, REPO)
            cls.s.extra = 'repos = ({ name = "%s"; source = "%s"; });\n' % (REPO,
                                                                             cls.repo.path)
            cls.s.write_config()
            cls.s.up()
        except Exception:
            cls.gh.stop()
            raise
        cls.gh.configure(installations={str(INST): {"repos": [REPO], "permissions": PERMS}},
                         collaborators={"writer": ["write", "write"]})

    @classmethod
    def tearDownClass(cls):
        cls.s.down()
        reports = cls.s.sanitizer_reports()
        cls.gh.stop()
        out = subprocess.run(["docker", "ps", "-aq", "--filter",
                              "label=io.ephemera.project"], stdout=subprocess.PIPE,
                             text=True).stdout.split()
        ours = [i for i in out if cls.instance in subprocess.run(
            ["docker", "inspect", i], stdout=subprocess.PIPE, text=True).stdout]
        if ours:
            subprocess.run(["docker", "rm", "-f", "-v"] + ours,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cls.s.cleanup()
        assert not reports, "sanitizer reports:\n" + "\n".join(reports)

    # ---- helpers -----------------------------------------------------------

    def deliver(self, event, payload):
        payload["installation"] = {"id": INST}
        body, headers = events.signed(self.s.secret, event, payload)
        r = self.s.post("/webhook", body, headers)
        self.assertIn(r.status, (200, 202), r.text)

    def pr_event(self, action, pr, commit, **kw):
        self.deliver("pull_request", events.pull_request(action, REPO, pr, commit, **kw))

    def command(self, pr, user, text):
        c = self.gh.post("/_fake/comment", {"repo": REPO, "issue": pr, "body": text,
                                            "login": user})
        self.deliver("issue_comment", events.issue_comment(REPO, pr, c["id"], text, user))

    def env(self, pr):
        for e in self.s.get("/api/v1/environments").json():
            if e["repo"] == REPO and e["pr"] == pr:
                return e
        return None

    def wait_phase(self, pr, phase, timeout=180):
        e = wait_until(lambda: (self.env(pr) or {}).get("phase") == phase and self.env(pr),
                       timeout=timeout, interval=0.3)
        self.assertTrue(e, "PR %d never %s: %r\n%s" % (pr, phase, self.env(pr),
                                                       self.s.logs()[-6000:]))
        return e

    def preview_url(self, pr):
        return "http://pr-%d-app.%s:%d/" % (pr, DOMAIN, self.s.port)

    def status_url(self, pr):
        return "%s/env/pr-%d-app" % (PUBLIC, pr)

    def view(self, pr):
        """GitHub's view of the PR, reduced to what a reviewer reads."""
        return pr_view(self.gh, REPO, pr)

    def settle(self, pr, check, timeout=30):
        return settle(lambda: self.view(pr), check, timeout)

    def assert_no_loopback(self, pr):
        """No link GitHub holds for this PR points at this machine."""
        v = self.gh.pr_view(REPO, pr)
        text = repr(v)
        self.assertNotIn("127.0.0.1", text)
        self.assertNotRegex(text, r"//[^/\s'\"]*localhost")

    def close(self, pr, commit):
        self.pr_event("closed", pr, commit)
        self.wait_phase(pr, "destroyed")

        def closed(v):
            self.assertEqual(v["headline"], "🗑️ Preview removed")
            self.assertNotIn(self.preview_url(pr), v["body"])
            self.assertTrue(v["deployments"])
            self.assertEqual({s for _, s in v["deployments"]}, {"inactive"}, v["raw"])
            # Commit statuses are per commit: this PR's are its own.
            for sha in {commit} | {d for d, _ in v["deployments"]}:
                state, desc, target = v["commit"][sha]
                self.assertNotEqual(state, "pending", (sha, desc))
                self.assertNotEqual(target, self.preview_url(pr))
        return self.settle(pr, closed)

    # ---- every end of a preview's life ---------------------------------------

    def test_ready_then_closed(self):
        pr = 1
        commit = self.repo.commit("ready")
        self.pr_event("opened", pr, commit)
        self.wait_phase(pr, "ready")
        url = self.preview_url(pr)

        def ready(v):
            self.assertEqual(v["comments"], 1)
            self.assertEqual(v["headline"], "✅ Preview ready")
            self.assertIn("](<%s>)" % url, v["body"])
            self.assertEqual(v["deployments"], [(commit, "success")])
            self.assertEqual(v["raw"]["deployments"][0]["environment_url"], url)
            self.assertEqual(v["raw"]["deployments"][0]["log_url"], self.status_url(pr))
            self.assertEqual(v["commit"][commit], ("success", "Preview ready", url))
        self.settle(pr, ready)
        v = self.close(pr, commit)
        self.assertEqual(v["commit"][commit][:2], ("success",
                                                   "Deployed; the preview was removed"))
        self.assertEqual(v["commit"][commit][2], self.status_url(pr))
        self.assertIn("The pull request is closed", v["body"])
        self.assert_no_loopback(pr)
        self.assert_teardown_report(pr, v["body"])

    def assert_teardown_report(self, pr, body):
        """The closing comment lists what the destroy found and then
        checked gone: both containers, the network, both built images and
        the route; and none of the objects it names is still there."""
        self.assertIn("Removed, each checked gone after the delete", body)
        self.assertNotIn("Not yet confirmed", body)
        listed = dict(re.findall(r"^- ([^(\n]+) \(\d+\): (.*)$", body, re.M))
        names = {k: re.findall(r"`([^`]+)`", v) for k, v in listed.items()}
        self.assertEqual(len(names.get("container", [])), 2, body)
        self.assertEqual(len(names.get("built image", [])), 2, body)
        self.assertEqual(len(names.get("Docker network", [])), 1, body)
        self.assertEqual(names.get("proxy route"), ["pr-%d-app.%s" % (pr, DOMAIN)], body)
        instance = self.s.settings["environments.instance"]
        for c in names["container"]:
            self.assertTrue(c.startswith("%s-pr-%d-" % (instance, pr)), c)
            r = subprocess.run(["docker", "container", "inspect", c],
                               capture_output=True, text=True)
            self.assertNotEqual(r.returncode, 0, "%s is still there" % c)
        for i in names["built image"]:
            r = subprocess.run(["docker", "image", "inspect", i],
                               capture_output=True, text=True)
            self.assertNotEqual(r.returncode, 0, "%s is still there" % i)
        # Every row the destroy recorded is confirmed gone.
        self.assertEqual(self.s.sql(
            "SELECT COUNT(*) FROM teardown_items t JOIN environments e "
            "ON e.id = t.env_id WHERE e.pr = %d AND t.gone_at IS NULL" % pr), [["0"]])

    def test_failed(self):
        pr = 2
        commit = self.repo.commit("broken", {"api/Dockerfile": BROKEN_API})
        self.pr_event("opened", pr, commit)
        self.wait_phase(pr, "failed")

        def failed(v):
            self.assertEqual(v["comments"], 1)
            self.assertEqual(v["headline"], "❌ Preview failed")
            self.assertIn("did not start", v["body"])
            self.assertNotIn(self.preview_url(pr), v["body"])
            self.assertEqual(v["deployments"], [(commit, "failure")])
            self.assertEqual(v["commit"][commit],
                             ("failure", "Preview deploy failed", self.status_url(pr)))
        self.settle(pr, failed)
        v = self.close(pr, commit)
        # The commit did fail; closing does not make it green.
        self.assertEqual(v["commit"][commit][0], "failure")
        self.repo.commit("fixed", {"api/Dockerfile": open(os.path.join(
            HELLO, "api", "Dockerfile")).read()})

    def test_stopped_by_command(self):
        pr = 3
        commit = self.repo.commit("stop me")
        self.pr_event("opened", pr, commit)
        self.wait_phase(pr, "ready")
        self.command(pr, "writer", "/preview stop")
        self.wait_phase(pr, "stopped")
        # Stopped on purpose: a visit does not start it (no waking route).
        r = http("GET", self.s.url("/"), headers={"Host": "pr-%d-app.%s" % (pr, DOMAIN)})
        self.assertEqual(r.status, 404, r.text)
        time.sleep(2)
        self.assertEqual(self.env(pr)["desired"], "stopped")

        def stopped(v):
            self.assertEqual(v["headline"], "💤 Preview stopped")
            self.assertIn("Stopped on request", v["body"])
            # What the compute ran and cost, once nothing runs.
            self.assertRegex(v["body"], r"\| \*\*Compute\*\* \| \d+\.\d\d h, \$\d")
            self.assertNotIn(self.preview_url(pr), v["body"])
            self.assertEqual(v["deployments"], [(commit, "inactive")])
            self.assertEqual(v["commit"][commit], ("success",
                                                   "Deployed; the preview is stopped",
                                                   self.status_url(pr)))
        self.settle(pr, stopped)
        self.close(pr, commit)

    def test_stopped_as_idle(self):
        pr = 4
        commit = self.repo.commit("idle")
        self.pr_event("opened", pr, commit)
        e = self.wait_phase(pr, "ready")
        self.s.make_idle(e["id"], e["slug"])
        self.wait_phase(pr, "stopped", timeout=60)

        def idle(v):
            self.assertEqual(v["headline"], "💤 Preview stopped")
            self.assertIn("Stopped after 60 minutes without traffic", v["body"])
            # Its URL still works: a visit wakes it (test_local.WakeOnVisitTest).
            self.assertIn("Opening [its URL](<%s>) starts it again" % self.preview_url(pr),
                          v["body"])
            self.assertEqual(v["deployments"], [(commit, "inactive")])
            self.assertEqual(v["commit"][commit][:2],
                             ("success", "Deployed; the preview is stopped"))
        self.settle(pr, idle)
        # `/preview stop` on the sleeping preview: from now on a visit only
        # says so, and nothing starts.
        self.command(pr, "writer", "/preview stop")
        self.assertTrue(wait_until(lambda: self.s.sql(
            "SELECT idle_stopped_at IS NULL FROM environments WHERE id = %d" % e["id"])
            == [["1"]], timeout=30), "the command did not land")
        r = http("GET", self.s.url("/"), headers={"Host": "pr-%d-app.%s" % (pr, DOMAIN)})
        self.assertEqual(r.status, 503, r.text)
        self.assertIn("This preview is stopped", r.text)
        time.sleep(2)
        self.assertEqual(self.env(pr)["desired"], "stopped")
        self.assertEqual(self.env(pr)["phase"], "stopped")
        self.close(pr, commit)

    def test_approval_pending_then_closed(self):
        pr = 5
        commit = self.repo.commit("from a fork")
        self.pr_event("opened", pr, commit, fork=True, association="CONTRIBUTOR",
                      user="mallory")
        self.wait_phase(pr, "awaiting_approval")

        def waiting(v):
            self.assertEqual(v["headline"], "⏸️ Preview awaiting approval")
            self.assertIn("`/preview approve`", v["body"])
            self.assertEqual(v["deployments"], [])
            self.assertEqual(v["commit"][commit],
                             ("pending", "Awaiting approval: /preview approve",
                              self.status_url(pr)))
        self.settle(pr, waiting)
        self.pr_event("closed", pr, commit, fork=True, association="CONTRIBUTOR",
                      user="mallory")
        self.wait_phase(pr, "destroyed")

        def closed(v):
            self.assertEqual(v["headline"], "🗑️ Preview removed")
            self.assertEqual(v["deployments"], [])
            self.assertEqual(v["commit"][commit][:2],
                             ("success", "No preview: the pull request was closed"))
        self.settle(pr, closed)

    def test_queued_behind_the_cap(self):
        first, second = 6, 7
        a = self.repo.commit("holds the slot")
        self.pr_event("opened", first, a)
        self.wait_phase(first, "ready")
        b = self.repo.commit("waits")
        self.pr_event("opened", second, b)
        self.wait_phase(second, "queued")

        def queued(v):
            self.assertEqual(v["headline"], "⏳ Preview queued")
            self.assertIn("number 1 in the queue", v["body"])
            self.assertEqual(v["deployments"], [(b, "queued")])
            self.assertEqual(v["commit"][b], ("pending", "Waiting for a free preview slot",
                                              self.status_url(second)))
        self.settle(second, queued)
        # The slot frees up: the queued one deploys and says so.
        self.close(first, a)
        self.wait_phase(second, "ready")

        def ready(v):
            self.assertEqual(v["headline"], "✅ Preview ready")
            # The same Deployment, taken over by the build.
            self.assertEqual(v["deployments"], [(b, "success")])
            self.assertEqual(v["raw"]["deployments"][0]["history"],
                             ["queued", "in_progress", "success"])
            self.assertEqual(v["commit"][b][:2], ("success", "Preview ready"))
        self.settle(second, ready)
        self.close(second, b)

    def test_database_error_is_retried_not_only_logged(self):
        """The notification of "ready" cannot be recorded for a few
        seconds (a trigger makes MariaDB refuse it): the reconcile job
        fails and is retried, and the PR ends up told."""
        pr = 9
        # The very error of issue 14: a NULL into notifications.message.
        self.s.allow_log(r"event=db_error errno=1048 .*INSERT INTO notifications",
                         "the test makes MariaDB refuse the notification")
        self.s.sql("CREATE TABLE IF NOT EXISTS t_refuse (until DATETIME(6) NOT NULL)")
        self.s.sql("DELETE FROM t_refuse")
        self.s.sql("CREATE TRIGGER t_refuse_ready BEFORE INSERT ON notifications FOR EACH "
                   "ROW SET NEW.message = IF(NEW.phase = 'ready' AND EXISTS (SELECT 1 "
                   "FROM t_refuse WHERE until > NOW(6)), NULL, NEW.message)")
        try:
            commit = self.repo.commit("db error")
            self.pr_event("opened", pr, commit)
            self.wait_phase(pr, "deploying")
            self.s.sql("INSERT INTO t_refuse VALUES (NOW(6) + INTERVAL 1 HOUR)")
            self.wait_phase(pr, "ready")
            e = self.env(pr)
            job = lambda: self.s.sql(
                "SELECT state, attempts, IFNULL(last_error, '') FROM jobs WHERE "
                "kind = 'reconcile' AND env_id = %d ORDER BY id DESC LIMIT 1" % e["id"])[0]
            # Failed and queued again, saying why; nothing told meanwhile.
            self.assertTrue(wait_until(lambda: int(job()[1]) >= 2, timeout=30), job())
            self.assertIn("recording", job()[2])
            self.assertEqual(self.view(pr)["headline"], "🔨 Preview deploying")
            self.s.sql("DELETE FROM t_refuse")

            def ready(v):
                self.assertEqual(v["headline"], "✅ Preview ready")
                self.assertEqual(v["deployments"], [(commit, "success")])
                self.assertEqual(v["commit"][commit][:2], ("success", "Preview ready"))
            self.settle(pr, ready)
            self.assertEqual(job()[0], "done")
        finally:
            self.s.sql("DROP TRIGGER IF EXISTS t_refuse_ready")
        self.close(pr, commit)

    def test_slow_build_shows_progress_while_it_runs(self):
        pr = 8
        commit = self.repo.commit("slow", {"docker-compose.yml": SLOW_COMPOSE})
        self.pr_event("opened", pr, commit)

        def building(v):
            self.assertEqual(v["headline"], "🔨 Preview deploying")
            self.assertEqual(v["deployments"], [(commit, "in_progress")])
            self.assertEqual(v["commit"][commit][:2], ("pending", "Deploying the preview"))
        self.settle(pr, building, timeout=20)
        # Seen while the build still runs, not after it.
        self.assertEqual(self.s.sql("SELECT status FROM builds WHERE sha = '%s'" % commit),
                         [["running"]])
        self.assertEqual(self.env(pr)["phase"], "deploying")
        self.wait_phase(pr, "ready")

        def ready(v):
            self.assertEqual(v["headline"], "✅ Preview ready")
            self.assertEqual(v["deployments"], [(commit, "success")])
            self.assertEqual(v["commit"][commit][:2], ("success", "Preview ready"))
        self.settle(pr, ready)
        self.close(pr, commit)


if __name__ == "__main__":
    unittest.main()


class GitHubPacingTest(unittest.TestCase):
    """Many PRs changing at once: the content-creating requests of one
    installation are spaced (github.write_spacing_ms after a burst of
    github.write_burst), by rescheduling notify jobs, never by a sleeping
    worker; one PR changing alone is not held up."""
    SPACING = 0.25
    BURST = 5  # one sync of a fresh ready build: 5 writes

    @classmethod
    def setUpClass(cls):
        cls.gh = GitHubFake()
        try:
            cls.s = Stack("ghpace", dict(cls.gh.settings(), **{
                "http.public_url": PUBLIC,
                "github.write_spacing_ms": int(cls.SPACING * 1000),
                "github.write_burst": cls.BURST,
                "workers.count": 4,
                "workers.poll_interval_ms": 50,
            }))
            cls.s.up()
        except Exception:
            cls.gh.stop()
            raise
        cls.gh.configure(installations={str(INST): {"repos": [REPO], "permissions": PERMS}})
        cls.next_pr = 900

    @classmethod
    def tearDownClass(cls):
        cls.s.down()
        reports = cls.s.sanitizer_reports()
        cls.gh.stop()
        cls.s.cleanup()
        assert not reports, "sanitizer reports:\n" + "\n".join(reports)

    def ready_env(self):
        """An environment whose build of its commit went ready, as
        reconcile leaves it (rows only: no Docker needed here)."""
        pr = self.__class__.next_pr
        self.__class__.next_pr += 1
        sha = "%040x" % random.getrandbits(160)
        slug = "pr-%d-app" % pr
        url = "https://%s.%s/" % (slug, DOMAIN)
        self.s.sql("INSERT INTO environments (repo, pr, slug, installation_id, title, "
                   "author, head_ref, head_repo, desired, desired_sha, phase, trusted, "
                   "deployed_sha, url) VALUES ('%s', %d, '%s', %d, 'T', 'a', 'f', '%s', "
                   "'running', '%s', 'ready', 1, '%s', '%s')"
                   % (REPO, pr, slug, INST, REPO, sha, sha, url))
        env_id = int(self.s.sql("SELECT id FROM environments WHERE pr=%d" % pr)[0][0])
        self.s.sql("INSERT INTO builds (env_id, sha, status, finished_at) VALUES "
                   "(%d, '%s', 'succeeded', NOW(6))" % (env_id, sha))
        return env_id, pr, sha, url

    def notify_all(self, env_ids):
        self.s.sql("INSERT INTO jobs (kind, env_id, max_attempts) VALUES %s"
                   % ", ".join("('notify', %d, 5)" % e for e in env_ids))

    def settled(self, env_ids, timeout=60):
        q = ("SELECT COUNT(*) FROM jobs WHERE kind='notify' AND env_id IN (%s) AND "
             "state IN ('queued', 'running')" % ",".join(map(str, env_ids)))
        self.assertTrue(wait_until(lambda: self.s.sql(q) == [["0"]], timeout=timeout,
                                   interval=0.1), self.s.logs()[-4000:])
        return self.s.sql("SELECT env_id, state, attempts, IFNULL(last_error, '') FROM "
                          "jobs WHERE kind='notify' AND env_id IN (%s) ORDER BY id"
                          % ",".join(map(str, env_ids)))

    def writes(self, since=0.0):
        """Times of the content-creating requests GitHub received."""
        return sorted(r["t"] for r in self.gh.state()["requests"]
                      if r["method"] in ("POST", "PATCH", "PUT", "DELETE") and
                      r["path"].startswith("/repos/") and r["t"] >= since)

    def test_many_prs_spaced_one_alone_not_held_up(self):
        envs = [self.ready_env() for _ in range(6)]
        t0 = time.time()
        self.notify_all([e[0] for e in envs])
        jobs = self.settled([e[0] for e in envs])
        # Every job did its work; a deferral is not a failed attempt.
        self.assertEqual({j[1] for j in jobs}, {"done"}, jobs)
        self.assertEqual({j[2] for j in jobs}, {"1"}, jobs)
        for env_id, pr, sha, url in envs:
            v = self.gh.pr_view(REPO, pr)
            self.assertEqual([d["state"] for d in v["deployments"]], ["success"])
            self.assertEqual([s["state"] for s in v["commit_statuses"] if s["sha"] == sha],
                             ["success"])
            self.assertIn("✅ Preview ready", v["comments"][0])
        t = self.writes(t0)
        self.assertEqual(len(t), 6 * 5)  # deployment, 2 statuses, commit, comment
        # GCRA: any run of n writes spans at least (n - burst) spacings.
        slack = 0.05
        for i in range(len(t)):
            for j in range(i + self.BURST, len(t)):
                need = (j - i + 1 - self.BURST) * self.SPACING - slack
                self.assertGreaterEqual(t[j] - t[i], need,
                                        "writes %d..%d too close: %r" % (i, j, t))
        self.assertIn("event=github_paced", self.s.log("workers"))
        # The schedule has room again: one PR alone goes at once.
        time.sleep(self.SPACING * self.BURST + 0.2)
        env_id, pr, sha, url = self.ready_env()
        before = self.s.log("workers").count("event=github_paced")
        self.notify_all([env_id])
        self.assertEqual([j[1:3] for j in self.settled([env_id])], [["done", "1"]])
        self.assertEqual(self.s.log("workers").count("event=github_paced"), before)
