"""Issue 5: the GitHub App side, against the real stack (MariaDB with every
migration, ASan binaries) and tests/fakes/github.py.

GitHubTest runs the notify and command handlers one job at a time through
build/asan/tests/tools/github_run (the handlers a worker runs, without the
pool), on rows seeded with SQL the way reconcile and the webhook write
them: precise control over attempts and faults. GitHubWorkersTest runs
the same jobs through the real worker pool and queue: signed webhooks in,
a worker SIGKILLed mid-job, rescheduling by the queue."""
import hashlib
import hmac
import json
import os
import random
import re
import signal
import subprocess
import time
import unittest
import uuid

from harness import events
from harness.github_fake import GitHubFake
from harness.stack import ROOT, Stack, http, maps_curl, wait_until
from test_local import Repo

RUN = os.path.join(ROOT, "build", "asan", "tests", "tools", "github_run")
REPO = "octo/app"
INST = 77
HOSTILE_TITLE = "<img src=x onerror=alert(1)> [pwn](javascript:alert(1)) @octocat | x"
HOSTILE_BRANCH = "feat/<script>alert(1)</script>"
PERMS = {"contents": "read", "issues": "write", "pull_requests": "write",
         "deployments": "write", "statuses": "write", "metadata": "read"}


def sha(n, pr=0):
    """A distinct commit per (PR, build)."""
    return hashlib.sha1(b"%d-%d" % (pr, n)).hexdigest()


def stack_up(cls, name, settings, **kw):
    """The fake and a stack wired to it; the fake stops if the stack fails."""
    cls.gh = GitHubFake()
    try:
        cls.s = Stack(name, dict(cls.gh.settings(), **settings), **kw)
        cls.s.up()
    except Exception:
        cls.gh.stop()
        raise


def stack_down(cls):
    """Stops both; fails on a sanitizer report or a token in the logs or
    anywhere under the stack's var dir. Returns the fake's last state."""
    cls.s.down()
    reports = cls.s.sanitizer_reports()
    logs = cls.s.logs()
    state = cls.gh.state()
    cls.gh.stop()
    leaked = subprocess.run(["grep", "-rl", "ghs_", cls.s.var], stdout=subprocess.PIPE,
                            text=True).stdout
    cls.s.cleanup()
    assert not reports, "sanitizer reports:\n" + "\n".join(reports)
    # No installation token or JWT ever reaches a log.
    assert "ghs_" not in logs and "eyJ" not in logs, "a token was logged"
    assert not leaked.strip(), "a token was written to " + leaked
    return state


class GitHubTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # No pool: the driver is the only one running these jobs.
        stack_up(cls, "github", {
            "http.public_url": "https://ephemera.example.test",
            "workers.count": 1,
            "workers.backoff_base_ms": 1000,
            # One job after another by hand, many per second: unpaced.
            "github.write_spacing_ms": 0,
        }, workers=False)
        cls.gh.configure(
            installations={str(INST): {"repos": [REPO, "octo/other"], "permissions": PERMS}},
            collaborators={"writer": ["write", "write"], "maint": ["write", "maintain"],
                           "reader": ["read", "read"], "triager": ["read", "triage"],
                           "ghost": None})
        cls.next_pr = 100

    @classmethod
    def tearDownClass(cls):
        state = stack_down(cls)
        assert state["jwt_rejected"] == [], state["jwt_rejected"]

    # ---- helpers -----------------------------------------------------------

    def run_job(self, kind, ident, attempt=1, check=True):
        env = self.s.env()
        r = subprocess.run([RUN, "-c", self.s.config, kind, str(ident), str(attempt)],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=60)
        self.__class__.last_stderr = r.stderr
        # The driver's log joins the stack's, for the end-of-class check.
        with open(os.path.join(self.s.var, "log", "github_run.log"), "a") as f:
            f.write(r.stderr)
        self.assertNotIn("ghs_", r.stdout + r.stderr)
        self.assertNotIn("eyJ", r.stdout + r.stderr)  # no JWT either
        m = re.match(r"outcome=(\w+) retry_after_ms=(-?\d+) error=(.*)", r.stdout)
        self.assertTrue(m, "driver said: %r %r" % (r.stdout, r.stderr[-2000:]))
        out = (m.group(1), int(m.group(2)), m.group(3))
        if check:
            self.assertEqual(out[0], "done", "%r\n%s" % (out, r.stderr[-3000:]))
        return out

    def new_env(self, desired="running", phase="pending", trusted=1, title="Add a thing",
                head_repo=REPO):
        pr = self.__class__.next_pr
        self.__class__.next_pr += 1
        slug = "pr-%d-app" % pr
        self.s.sql(
            "INSERT INTO environments (repo, pr, slug, installation_id, title, author, "
            "head_ref, head_repo, desired, desired_sha, phase, trusted) VALUES "
            "('%s', %d, '%s', %d, '%s', 'mallory', '%s', '%s', '%s', '%s', '%s', %d)"
            % (REPO, pr, slug, INST, title.replace("'", "''"), HOSTILE_BRANCH, head_repo,
               desired, sha(1, pr), phase, trusted))
        env_id = int(self.s.sql("SELECT id FROM environments WHERE pr=%d" % pr)[0][0])
        return env_id, pr, slug

    def pr_of(self, env_id):
        return int(self.s.sql("SELECT pr FROM environments WHERE id=%d" % env_id)[0][0])

    def start_build(self, env_id, n):
        pr = self.pr_of(env_id)
        self.s.sql("INSERT INTO builds (env_id, sha, status) VALUES (%d, '%s', 'running')"
                   % (env_id, sha(n, pr)))
        bid = int(self.s.sql("SELECT MAX(id) FROM builds WHERE env_id=%d" % env_id)[0][0])
        self.s.sql("INSERT INTO build_steps (build_id, name, status, started_at, "
                   "finished_at) VALUES (%d, 'clone', 'succeeded', NOW(6) - INTERVAL 3 "
                   "SECOND, NOW(6) - INTERVAL 2 SECOND), (%d, 'compose_up', 'running', "
                   "NOW(6), NULL)" % (bid, bid))
        self.s.sql("UPDATE environments SET phase='deploying', desired_sha='%s' "
                   "WHERE id=%d" % (sha(n, pr), env_id))
        return bid

    def finish_build(self, env_id, bid, n, ok=True, slug="x"):
        pr = self.pr_of(env_id)
        if ok:
            self.s.sql("UPDATE build_steps SET status='succeeded', finished_at=NOW(6) "
                       "WHERE build_id=%d AND finished_at IS NULL" % bid)
            self.s.sql("UPDATE builds SET status='succeeded', finished_at=NOW(6) "
                       "WHERE id=%d" % bid)
            services = ('[{"name":"web","primary":true,"url":"https://%s.preview.example.test/"},'
                        '{"name":"api","primary":false,"url":"https://%s.preview.example.test/api/"}]'
                        % (slug, slug))
            self.s.sql("UPDATE environments SET phase='ready', deployed_sha='%s', "
                       "url='https://%s.preview.example.test/', services='%s' WHERE id=%d"
                       % (sha(n, pr), slug, services, env_id))
        else:
            self.s.sql("UPDATE build_steps SET status='failed', finished_at=NOW(6) "
                       "WHERE build_id=%d AND finished_at IS NULL" % bid)
            self.s.sql("UPDATE builds SET status='failed', finished_at=NOW(6), "
                       "error='compose up: exit 1', log_tail='step 1\\nstep 2\\n"
                       "ERROR <b>boom</b> @octocat\\n' WHERE id=%d" % bid)
            self.s.sql("UPDATE environments SET phase='failed' WHERE id=%d" % env_id)

    def comments(self, pr, bot_only=True):
        return [c for c in self.gh.state()["comments"]
                if c["issue"] == pr and (not bot_only or c["user"]["type"] == "Bot")]

    def deployments(self, pr):
        return [d for d in self.gh.state()["deployments"] if d["environment"] == "pr-%d" % pr]

    # ---- the lifecycle -----------------------------------------------------

    def test_lifecycle_five_builds_and_a_kill(self):
        env_id, pr, slug = self.new_env(title=HOSTILE_TITLE)
        url = "https://%s.preview.example.test/" % slug
        status_url = "https://ephemera.example.test/env/%s" % slug

        # Build 1 starts; the worker dies after GitHub created the
        # comment and before the id was recorded.
        b1 = self.start_build(env_id, 1)
        self.gh.fault(method="POST", path=r"/issues/%d/comments$" % pr, after=True,
                      delay=60)
        p = subprocess.Popen([RUN, "-c", self.s.config, "notify", str(env_id)],
                             env=self.s.env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        try:
            self.assertTrue(wait_until(lambda: len(self.comments(pr)) == 1, timeout=30),
                            "the comment was never created")
            time.sleep(0.2)
            os.kill(p.pid, signal.SIGKILL)
        finally:
            p.wait()
        self.assertEqual(self.s.sql("SELECT COUNT(*) FROM github_comments WHERE "
                                    "env_id=%d AND comment_id IS NOT NULL" % env_id),
                         [["0"]])
        self.run_job("notify", env_id)
        self.assertEqual(len(self.comments(pr)), 1)
        self.finish_build(env_id, b1, 1, slug=slug)
        self.run_job("notify", env_id)

        for n in range(2, 6):
            b = self.start_build(env_id, n)
            self.run_job("notify", env_id)
            if n == 4:
                self.finish_build(env_id, b, n, ok=False)
                self.run_job("notify", env_id)
                body = self.comments(pr)[0]["body"]
                self.assertIn("Preview failed", body)
                self.assertIn("compose up&#58; exit 1", body)
                self.assertIn("ERROR &lt;b&gt;boom&lt;/b&gt; @&#8203;octocat", body)
                continue
            self.finish_build(env_id, b, n, slug=slug)
            self.run_job("notify", env_id)
        # Idempotent: one more run changes nothing on GitHub.
        before = len(self.gh.state()["requests"])
        self.run_job("notify", env_id)
        writes = [r for r in self.gh.state()["requests"][before:]
                  if r["method"] != "GET" and not r["path"].endswith("access_tokens")]
        self.assertEqual(writes, [])

        comments = self.comments(pr)
        self.assertEqual(len(comments), 1, comments)
        body = comments[0]["body"]
        self.assertGreater(comments[0]["edits"], 5)
        self.assertTrue(body.startswith("<!-- ephemera:preview %s -->" % slug))
        self.assertIn("Preview ready", body)
        self.assertIn("`%s`" % sha(5, pr)[:12], body)
        self.assertIn("](<%s>)" % url, body)
        self.assertIn("| api | [", body)
        self.assertIn("](<%sapi/>)" % url, body)
        self.assertIn("| clone | succeeded |", body)
        for bad in ("<img", "<script", "](javascript", "@octocat"):
            self.assertNotIn(bad, body)

        deps = self.deployments(pr)
        self.assertEqual([d["sha"] for d in deps], [sha(n, pr) for n in range(1, 6)])
        for d in deps:
            self.assertEqual(d["request"]["environment"], "pr-%d" % pr)
            self.assertIs(d["request"]["transient_environment"], True)
            self.assertIs(d["request"]["production_environment"], False)
            self.assertIs(d["request"]["auto_merge"], False)
        states = [[s["state"] for s in d["statuses"]] for d in deps]
        self.assertEqual(states, [["in_progress", "success", "inactive"],
                                  ["in_progress", "success", "inactive"],
                                  ["in_progress", "success", "inactive"],
                                  ["in_progress", "failure", "inactive"],
                                  ["in_progress", "success"]])
        ok = [s for s in deps[4]["statuses"] if s["state"] == "success"][0]
        self.assertEqual(ok["environment_url"], url)
        self.assertEqual(ok["log_url"], status_url)
        fail = [s for s in deps[3]["statuses"] if s["state"] == "failure"][0]
        self.assertEqual(fail["log_url"], status_url)
        self.assertEqual(fail["environment_url"], "")

        statuses = [s for s in self.gh.state()["statuses"] if s["sha"] in
                    {sha(n, pr) for n in range(1, 6)}]
        for s in statuses:
            self.assertEqual(s["context"], "ephemera/preview")
        by_sha = {}
        for s in statuses:
            by_sha.setdefault(s["sha"], []).append((s["state"], s["target_url"]))
        self.assertEqual(by_sha[sha(5, pr)], [("pending", status_url), ("success", url)])
        self.assertEqual(by_sha[sha(4, pr)],
                         [("pending", status_url), ("failure", status_url)])

        # The PR closes: the last deployment goes inactive, the comment says so.
        self.s.sql("UPDATE environments SET desired='destroyed', phase='destroyed' "
                   "WHERE id=%d" % env_id)
        self.run_job("notify", env_id)
        deps = self.deployments(pr)
        self.assertEqual([s["state"] for s in deps[4]["statuses"]],
                         ["in_progress", "success", "inactive"])
        self.assertEqual(len(self.comments(pr)), 1)
        self.assertIn("Preview removed", self.comments(pr)[0]["body"])

    def test_marker_found_on_page_three(self):
        env_id, pr, slug = self.new_env()
        # 250 comments by people, one of them quoting our marker.
        for i in range(250):
            body = "lgtm %d" % i
            if i == 10:
                body = "<!-- ephemera:preview %s --> fake" % slug
            self.gh.post("/_fake/comment", {"repo": REPO, "issue": pr, "body": body,
                                            "login": "person%d" % i})
        self.run_job("notify", env_id)
        bot = self.comments(pr)
        self.assertEqual(len(bot), 1)
        # The recorded id is lost (as after a crash) and the text changes.
        self.s.sql("DELETE FROM github_comments WHERE env_id=%d" % env_id)
        self.s.sql("UPDATE environments SET title='Renamed' WHERE id=%d" % env_id)
        before = len(self.gh.state()["requests"])
        self.run_job("notify", env_id)
        reqs = self.gh.state()["requests"][before:]
        pages = [r["query"] for r in reqs if r["method"] == "GET" and
                 r["path"].endswith("/issues/%d/comments" % pr)]
        self.assertEqual(len(pages), 3, pages)
        self.assertIn("page=3", pages[-1])
        self.assertEqual(len(self.comments(pr)), 1)
        self.assertEqual(self.comments(pr)[0]["id"], bot[0]["id"])
        self.assertIn("Renamed", self.comments(pr)[0]["body"])
        human = [c for c in self.comments(pr, bot_only=False) if c["user"]["login"] ==
                 "person10"][0]
        self.assertEqual(human["edits"], 0)
        self.assertEqual(self.s.sql("SELECT comment_id FROM github_comments WHERE "
                                    "env_id=%d" % env_id), [[str(bot[0]["id"])]])

    def test_fork_awaits_approval(self):
        env_id, pr, slug = self.new_env(desired="awaiting_approval",
                                        phase="awaiting_approval", trusted=0,
                                        head_repo="mallory/app")
        self.run_job("notify", env_id)
        body = self.comments(pr)[0]["body"]
        self.assertIn("awaiting approval", body)
        self.assertIn("`/preview approve`", body)
        self.assertIn("**preview&#45;approved**", body)
        self.assertEqual(self.deployments(pr), [])
        # The commit says why it has no preview, and says it once.
        self.run_job("notify", env_id)
        self.assertEqual([(s["state"], s["description"]) for s in self.gh.state()["statuses"]
                          if s["sha"] == sha(1, pr)],
                         [("pending", "Awaiting approval: /preview approve")])

    def test_queued_says_its_position(self):
        first, _, _ = self.new_env(phase="queued")
        env_id, pr, slug = self.new_env(phase="queued")
        self.s.sql("UPDATE environments SET queued_at = NOW(6) - INTERVAL 1 MINUTE "
                   "WHERE id=%d" % first)
        self.s.sql("UPDATE environments SET queued_at = NOW(6) WHERE id=%d" % env_id)
        self.run_job("notify", env_id)
        self.assertIn("number 2 in the queue", self.comments(pr)[0]["body"])
        self.s.sql("UPDATE environments SET phase='deploying' WHERE id=%d" % first)

    # ---- errors ------------------------------------------------------------

    def test_primary_rate_limit_reschedules_at_reset(self):
        env_id, pr, slug = self.new_env()
        self.start_build(env_id, 1)
        self.gh.fault(kind="primary", method="POST", path=r"/deployments$", reset_in=3)
        t0 = time.time()
        outcome, ms, err = self.run_job("notify", env_id, check=False)
        self.assertEqual(outcome, "retry", err)
        reset = int(t0) + 3
        # One second past the reset, from the time of the answer.
        self.assertGreaterEqual(ms, 1000)
        self.assertLessEqual(ms, (reset - int(t0) + 1) * 1000)
        self.assertEqual(self.deployments(pr), [])
        time.sleep(ms / 1000.0)
        self.run_job("notify", env_id, attempt=2)
        self.assertEqual(len(self.deployments(pr)), 1)

    def test_secondary_rate_limit_retry_after(self):
        env_id, pr, slug = self.new_env()
        self.gh.fault(kind="secondary", method="GET", path=r"/issues/%d/comments$" % pr,
                      retry_after=7)
        outcome, ms, err = self.run_job("notify", env_id, check=False)
        self.assertEqual((outcome, ms), ("retry", 7000))
        self.run_job("notify", env_id, attempt=2)
        self.assertEqual(len(self.comments(pr)), 1)

    def test_5xx_retried_with_backoff(self):
        env_id, pr, slug = self.new_env()
        self.gh.fault(method="POST", path=r"/issues/%d/comments$" % pr, status=502,
                      times=2)
        self.assertEqual(self.run_job("notify", env_id, attempt=1, check=False)[:2],
                         ("retry", 1000))
        self.assertEqual(self.run_job("notify", env_id, attempt=2, check=False)[:2],
                         ("retry", 2000))
        self.run_job("notify", env_id, attempt=3)
        self.assertEqual(len(self.comments(pr)), 1)

    def test_invalid_answer_422_fails(self):
        self.s.allow_log(r"event=github_(request|deployment_status) .*(status=422|"
                         r"verdict=fail)", "the fake answers 422 on purpose")
        env_id, pr, slug = self.new_env()
        self.start_build(env_id, 1)
        self.gh.fault(method="POST", path=r"/deployments/\d+/statuses$", status=422,
                      message="Validation Failed")
        outcome, ms, err = self.run_job("notify", env_id, check=False)
        self.assertEqual(outcome, "fail")
        self.assertIn("422", err)

    def test_token_expiry_mid_run_refreshed(self):
        env_id, pr, slug = self.new_env()
        self.start_build(env_id, 1)
        issued = len(self.gh.state()["tokens_issued"])
        # The token dies between the deployment and its first status.
        self.gh.fault(kind="expire", method="POST", path=r"/deployments/\d+/statuses$")
        self.run_job("notify", env_id)
        st = self.gh.state()
        self.assertEqual(len(st["tokens_issued"]) - issued, 2)
        self.assertEqual([s["state"] for s in self.deployments(pr)[0]["statuses"]],
                         ["in_progress"])

    def test_jwt_verifies_in_the_fake(self):
        env_id, pr, slug = self.new_env()
        self.run_job("notify", env_id)
        st = self.gh.state()
        self.assertTrue(st["jwts"])
        self.assertEqual(st["jwt_rejected"], [])
        now = time.time()
        for c in st["jwts"][-1:]:
            self.assertEqual(c["iss"], str(self.gh.app_id))
            self.assertLessEqual(c["exp"] - c["iat"], 600)
            self.assertLess(c["iat"], now - 50)
        # Every token request was signed with the JWT, nothing else was.
        for r in st["requests"]:
            if r["path"].endswith("/access_tokens"):
                self.assertEqual(r["auth"], "jwt")
            elif not r["path"].endswith("/installation"):
                self.assertEqual(r["auth"], "token", r)
            self.assertEqual(r["user_agent"], "ephemera")

    def test_clone_token_is_one_repo_contents_read(self):
        r = subprocess.run([RUN, "-c", self.s.config, "clone-token", str(INST), REPO],
                           env=self.s.env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=60)
        self.assertRegex(r.stdout, r"^outcome=done token_len=\d+")
        self.assertNotIn("ghs_", r.stdout + r.stderr)
        last = self.gh.state()["tokens_issued"][-1]
        self.assertEqual(last["repositories"], [REPO])
        self.assertEqual(last["permissions"], {"contents": "read"})

    # ---- commands ----------------------------------------------------------

    def command(self, env_id, pr, verb, user, args="", comment=True):
        cid = None
        if comment:
            c = self.gh.post("/_fake/comment", {"repo": REPO, "issue": pr,
                                                "body": "/preview %s %s" % (verb, args),
                                                "login": user})
            cid = c["id"]
        self.s.sql("INSERT INTO commands (env_id, repo, pr, command, args, source, "
                   "commenter, comment_id, installation_id) VALUES (%d, '%s', %d, '%s', "
                   "'%s', '%s', '%s', %s, %d)"
                   % (env_id, REPO, pr, verb, args, "comment" if comment else "label",
                      user, cid if cid else "NULL", INST))
        return int(self.s.sql("SELECT MAX(id) FROM commands")[0][0]), cid

    def reactions(self, cid):
        return [r["content"] for r in self.gh.state()["reactions"] if r["comment_id"] == cid]

    def reconciles(self, env_id):
        return int(self.s.sql("SELECT COUNT(*) FROM jobs WHERE kind='reconcile' AND "
                              "env_id=%d" % env_id)[0][0])

    def env_row(self, env_id):
        return self.s.sql("SELECT trusted, IFNULL(approved_by,''), desired, "
                          "IFNULL(keep_until,'') FROM environments WHERE id=%d" % env_id)[0]

    def test_approve_by_reader_refused_by_writer_applied(self):
        env_id, pr, slug = self.new_env(desired="awaiting_approval",
                                        phase="awaiting_approval", trusted=0)
        for user in ("reader", "triager", "ghost", "stranger"):
            cmd, cid = self.command(env_id, pr, "approve", user)
            self.run_job("command", cmd)
            self.assertEqual(self.reactions(cid), ["-1"], user)
            self.assertEqual(self.env_row(env_id)[:3], ["0", "", "awaiting_approval"])
            self.assertEqual(self.s.sql("SELECT state FROM commands WHERE id=%d" % cmd),
                             [["refused"]])
        self.assertEqual(self.reconciles(env_id), 0)

        cmd, cid = self.command(env_id, pr, "approve", "writer")
        self.run_job("command", cmd)
        self.assertEqual(self.env_row(env_id)[:3], ["1", "writer", "running"])
        self.assertEqual(self.reconciles(env_id), 1)
        self.assertEqual(self.reactions(cid), ["+1"])
        self.assertEqual(self.s.sql("SELECT state FROM commands WHERE id=%d" % cmd),
                         [["done"]])
        # A retried job applies nothing twice.
        self.s.sql("UPDATE jobs SET state='done' WHERE env_id=%d" % env_id)
        self.run_job("command", cmd, attempt=2)
        self.assertEqual(self.reconciles(env_id), 1)
        self.assertEqual(self.reactions(cid), ["+1"])

    def test_stop_keep_destroy_by_maintainer(self):
        env_id, pr, slug = self.new_env(phase="ready")
        cmd, cid = self.command(env_id, pr, "stop", "maint")
        self.run_job("command", cmd)
        self.assertEqual(self.env_row(env_id)[2], "stopped")
        cmd, cid = self.command(env_id, pr, "deploy", "maint")
        self.run_job("command", cmd)
        self.assertEqual(self.env_row(env_id)[2], "running")
        cmd, cid = self.command(env_id, pr, "keep", "maint", args="48h")
        self.run_job("command", cmd)
        self.assertTrue(self.env_row(env_id)[3].startswith("20"))
        cmd, cid = self.command(env_id, pr, "keep", "maint", args="forever")
        self.run_job("command", cmd)
        self.assertEqual(self.reactions(cid), ["-1"])
        cmd, cid = self.command(env_id, pr, "destroy", "reader")
        self.run_job("command", cmd)
        self.assertEqual(self.env_row(env_id)[2], "running")
        cmd, cid = self.command(env_id, pr, "destroy", "maint")
        self.run_job("command", cmd)
        self.assertEqual(self.env_row(env_id)[2], "destroyed")
        # Approving a closed PR's environment does not bring it back.
        cmd, cid = self.command(env_id, pr, "approve", "maint", comment=False)
        self.run_job("command", cmd)
        self.assertEqual(self.env_row(env_id)[2], "destroyed")

    def test_coalesced_commands_all_answered(self):
        # The queue folds a second command job for an environment into the
        # first; running the first job must handle both commands.
        env_id, pr, slug = self.new_env(desired="awaiting_approval",
                                        phase="awaiting_approval", trusted=0)
        first, c1 = self.command(env_id, pr, "approve", "writer")
        second, c2 = self.command(env_id, pr, "keep", "writer", args="7d")
        third, c3 = self.command(env_id, pr, "stop", "reader")
        before = len(self.gh.state()["requests"])
        self.run_job("command", first)
        checks = [r for r in self.gh.state()["requests"][before:]
                  if "/collaborators/" in r["path"]]
        self.assertEqual(len(checks), 2)  # once per commenter
        self.assertEqual(self.env_row(env_id)[:3], ["1", "writer", "running"])
        self.assertTrue(self.env_row(env_id)[3].startswith("20"))
        self.assertEqual((self.reactions(c1), self.reactions(c2), self.reactions(c3)),
                         (["+1"], ["+1"], ["-1"]))
        self.assertEqual(self.s.sql("SELECT state FROM commands WHERE id IN (%d,%d,%d) "
                                    "ORDER BY id" % (first, second, third)),
                         [["done"], ["done"], ["refused"]])
        # Their own (coalesced away or late) jobs find nothing left to do:
        # no permission check, no reaction. (Notify traffic from the
        # approval's reconcile may still arrive meanwhile.)
        before = len(self.gh.state()["requests"])
        self.run_job("command", second)
        self.run_job("command", third)
        self.assertEqual([r for r in self.gh.state()["requests"][before:]
                          if "/collaborators/" in r["path"] or "/reactions" in r["path"]], [])

    def test_command_rate_limited_then_applied(self):
        env_id, pr, slug = self.new_env(desired="awaiting_approval",
                                        phase="awaiting_approval", trusted=0)
        cmd, cid = self.command(env_id, pr, "approve", "writer")
        self.gh.fault(kind="secondary", path=r"/collaborators/", retry_after=2)
        outcome, ms, err = self.run_job("command", cmd, check=False)
        self.assertEqual((outcome, ms), ("retry", 2000))
        self.assertEqual(self.env_row(env_id)[0], "0")
        self.run_job("command", cmd, attempt=2)
        self.assertEqual(self.env_row(env_id)[:3], ["1", "writer", "running"])


FIXTURES = os.environ.get("EPHEMERA_FIXTURES",
                          os.path.join(ROOT, "tests", "fixtures"))


def hook(name):
    with open(os.path.join(FIXTURES, "github", "webhooks", name)) as f:
        return json.load(f)


class GitHubWorkersTest(unittest.TestCase):
    """The same jobs through the real queue and worker pool."""

    @classmethod
    def setUpClass(cls):
        stack_up(cls, "ghworkers", {
            "http.public_url": "https://ephemera.example.test",
            "workers.count": 2,
            "workers.lease_seconds": 3,
            "workers.backoff_base_ms": 200,
            "workers.backoff_cap_ms": 2000,
            "workers.poll_interval_ms": 50,
            # These time GitHub's own rate-limit answers; the spacing of
            # our writes has its own test (test_github_lifecycle).
            "github.write_spacing_ms": 0,
        })
        cls.gh.configure(
            installations={str(INST): {"repos": [REPO], "permissions": PERMS}},
            collaborators={"writer": ["write", "write"], "reader": ["read", "read"]})
        cls.next_pr = 500

    @classmethod
    def tearDownClass(cls):
        stack_down(cls)

    new_env = GitHubTest.new_env
    pr_of = GitHubTest.pr_of
    start_build = GitHubTest.start_build
    finish_build = GitHubTest.finish_build
    comments = GitHubTest.comments
    deployments = GitHubTest.deployments

    def enqueue(self, kind, env_id, payload=None):
        """What queue_enqueue does, from SQL."""
        self.s.sql("INSERT INTO jobs (kind, env_id, max_attempts, payload) VALUES "
                   "('%s', %d, 5, %s) ON DUPLICATE KEY UPDATE run_at = LEAST(run_at, "
                   "VALUES(run_at))" % (kind, env_id,
                                        "'%s'" % payload if payload else "NULL"))

    def settled(self, kind, env_id, timeout=30):
        """Waits until no job of this kind and environment is queued or
        running; returns the last one's (state, attempts, last_error)."""
        q = ("SELECT COUNT(*) FROM jobs WHERE kind='%s' AND env_id=%d AND state IN "
             "('queued', 'running')" % (kind, env_id))
        last = ("SELECT state, attempts, IFNULL(last_error, '') FROM jobs WHERE "
                "kind='%s' AND env_id=%d ORDER BY id DESC LIMIT 1" % (kind, env_id))

        # Both in one look: a reconcile finishing between the two queries
        # may queue another notify (seen under load: 'queued' read last).
        def done():
            if self.s.sql(q) != [["0"]]:
                return None
            row = self.s.sql(last)[0]
            return row if row[0] not in ("queued", "running") else None
        row = wait_until(done, timeout=timeout, interval=0.1)
        self.assertTrue(row, "jobs still pending:\n" + self.s.logs())
        return row

    def notify(self, env_id):
        self.enqueue("notify", env_id)
        state = self.settled("notify", env_id)
        self.assertEqual(state[0], "done", state)

    def sign(self, body):
        return "sha256=" + hmac.new(self.s.secret.encode(), body, hashlib.sha256).hexdigest()

    def deliver(self, event, payload):
        body = json.dumps(payload).encode()
        r = self.s.post("/webhook", body, {
            "Content-Type": "application/json", "X-GitHub-Event": event,
            "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": self.sign(body)})
        self.assertEqual(r.status, 202, r.text)
        return r.text

    def test_worker_killed_between_comment_and_record(self):
        env_id, pr, slug = self.new_env(title="Kill me")
        b1 = self.start_build(env_id, 1)
        self.gh.fault(method="POST", path=r"/issues/%d/comments$" % pr, after=True,
                      delay=60)
        self.enqueue("notify", env_id)
        self.assertTrue(wait_until(lambda: len(self.comments(pr)) == 1, timeout=30))
        holder = self.s.sql("SELECT worker FROM jobs WHERE kind='notify' AND env_id=%d "
                            "AND state='running'" % env_id)
        self.assertEqual(len(holder), 1, holder)
        pid = int(holder[0][0].rsplit(":", 1)[1])
        os.kill(pid, signal.SIGKILL)
        # The lease runs out, the job is rescued and run again elsewhere.
        state = self.settled("notify", env_id, timeout=60)
        self.assertEqual(state[:2], ["done", "2"], state)
        comments = self.comments(pr)
        self.assertEqual(len(comments), 1)
        self.assertEqual(self.s.sql("SELECT comment_id FROM github_comments WHERE "
                                    "env_id=%d" % env_id), [[str(comments[0]["id"])]])
        self.assertIn("job_rescued", self.s.log("workers"))
        for n in (2, 3):
            self.finish_build(env_id, b1, n - 1, slug=slug)
            self.notify(env_id)
            b1 = self.start_build(env_id, n)
            self.notify(env_id)
        self.finish_build(env_id, b1, 3, slug=slug)
        self.notify(env_id)
        comments = self.comments(pr)
        self.assertEqual(len(comments), 1)
        self.assertIn("Preview ready", comments[0]["body"])
        self.assertIn(sha(3, pr)[:12], comments[0]["body"])
        states = [[s["state"] for s in d["statuses"]] for d in self.deployments(pr)]
        self.assertEqual(states, [["in_progress", "success", "inactive"],
                                  ["in_progress", "success", "inactive"],
                                  ["in_progress", "success"]])

    def test_primary_rate_limit_rescheduled_for_reset(self):
        env_id, pr, slug = self.new_env()
        self.start_build(env_id, 1)
        # Only this PR's Deployment: the class's other previews (the fork
        # test's approved one reconciles on) may post theirs meanwhile.
        mine = r'"environment":\s*"pr-%d"' % pr
        self.gh.fault(kind="primary", method="POST", path=r"/deployments$", body=mine,
                      reset_in=5)
        self.enqueue("notify", env_id)
        # While it waits, the job is queued for the reset: no worker holds
        # it asleep. Looked at until the job is settled, not for a fixed
        # time, so a slow machine cannot miss it.
        waiting = ("SELECT UNIX_TIMESTAMP(run_at) FROM jobs WHERE kind='notify' AND "
                   "env_id=%d AND state='queued' AND attempts >= 1" % env_id)
        seen = []

        def settled_watching():
            seen.extend(float(r[0]) for r in self.s.sql(waiting))
            return self.s.sql("SELECT state, attempts FROM jobs WHERE kind='notify' AND "
                              "env_id=%d AND state NOT IN ('queued', 'running')" % env_id)
        row = wait_until(settled_watching, timeout=40, interval=0.05)
        self.assertTrue(row, "notify never settled:\n" + self.s.logs())
        self.assertEqual(row[0][0], "done", row)
        posts = [r for r in self.gh.state()["requests"] if r["method"] == "POST"
                 and r["path"].endswith("/deployments") and re.search(mine, r["body"])]
        self.assertEqual(len(posts), 2, "%r\n%s" % (posts, self.s.logs()))
        reset = int(posts[0]["t"]) + 5  # what the refusal's x-ratelimit-reset said
        # Rescheduled for the reset (+1 s), not by the 200 ms backoff: the
        # second try comes after the reset, from a job queued until then.
        self.assertGreaterEqual(posts[1]["t"], reset)
        self.assertTrue(seen, "the job was never seen waiting:\n" + self.s.logs())
        self.assertGreaterEqual(max(seen), reset)
        self.assertGreaterEqual(int(row[0][1]), 2)
        self.assertEqual(len(self.deployments(pr)), 1)

    def test_tokens_cached_across_jobs(self):
        env_id, pr, slug = self.new_env()
        self.notify(env_id)
        before = len(self.gh.state()["tokens_issued"])
        for n in range(1, 4):
            self.start_build(env_id, n)
            self.notify(env_id)
        # Two worker processes: at most one new token each, not one per job.
        self.assertLessEqual(len(self.gh.state()["tokens_issued"]) - before, 2)
        self.assertEqual(len(self.deployments(pr)), 3)

    def test_fork_pr_approved_through_webhooks(self):
        pr = self.__class__.next_pr
        self.__class__.next_pr += 1
        p = hook("pull_request.opened.fork.json")
        p["number"] = p["pull_request"]["number"] = pr
        p["repository"]["full_name"] = REPO
        p["pull_request"]["base"]["repo"]["full_name"] = REPO
        p["pull_request"]["head"]["repo"]["full_name"] = "mallory/app"
        p["pull_request"]["title"] = HOSTILE_TITLE
        p["installation"] = {"id": INST}
        self.deliver("pull_request", p)
        env_id, desired, trusted = [int(x) if x.isdigit() else x for x in self.s.sql(
            "SELECT id, desired, trusted FROM environments WHERE repo='%s' AND pr=%d"
            % (REPO, pr))[0]]
        self.assertEqual((desired, trusted), ("awaiting_approval", 0))
        self.notify(env_id)
        body = self.comments(pr)[0]["body"]
        self.assertIn("awaiting approval", body)
        self.assertNotIn("<img", body)
        self.assertEqual(self.deployments(pr), [])

        def comment(user, text):
            c = self.gh.post("/_fake/comment", {"repo": REPO, "issue": pr, "body": text,
                                                "login": user})
            q = hook("issue_comment.created.pull_request.json")
            q["issue"]["number"] = pr
            q["repository"]["full_name"] = REPO
            q["comment"].update(id=c["id"], body=text, author_association="CONTRIBUTOR")
            q["comment"]["user"]["login"] = user
            q["sender"]["login"] = user
            q["installation"] = {"id": INST}
            self.deliver("issue_comment", q)
            return c["id"]

        def reactions(cid):
            return [r["content"] for r in self.gh.state()["reactions"]
                    if r["comment_id"] == cid]

        cid = comment("reader", "/preview approve")
        self.settled("command", env_id)
        self.assertEqual(reactions(cid), ["-1"])
        self.assertEqual(self.s.sql("SELECT trusted, desired FROM environments WHERE id=%d"
                                    % env_id), [["0", "awaiting_approval"]])
        cid = comment("writer", "Thanks!\n/preview approve")
        self.settled("command", env_id)
        self.assertEqual(reactions(cid), ["+1"])
        self.assertEqual(self.s.sql("SELECT trusted, approved_by, desired FROM environments "
                                    "WHERE id=%d" % env_id),
                         [["1", "writer", "running"]])
        self.assertEqual(self.s.sql("SELECT state FROM commands WHERE env_id=%d ORDER BY id"
                                    % env_id), [["refused"], ["done"]])
        # The approval queued a reconcile after the writer's command job.
        last_cmd = int(self.s.sql("SELECT MAX(id) FROM jobs WHERE kind='command'")[0][0])
        self.assertEqual(self.s.sql("SELECT COUNT(*) > 0 FROM jobs WHERE kind='reconcile' "
                                    "AND env_id=%d AND id > %d" % (env_id, last_cmd)),
                         [["1"]])

class GitHubCloneTest(unittest.TestCase):
    """A repository with no `source` in the config is cloned from the
    event's clone URL with an installation token, as a private one is:
    the fake serves git only to a valid token for that repository."""

    @classmethod
    def setUpClass(cls):
        subprocess.run([os.path.join(ROOT, "examples", "busybox-image.sh")], check=True)
        cls.instance = "t%06d" % random.randrange(10**6)
        # One worker: its token cache is the one the tests reason about.
        stack_up(cls, "ghclone", {"workers.count": 1, "environments.instance": cls.instance,
                                  "workers.backoff_base_ms": 200})
        cls.repo = Repo(cls.s.dir, REPO)
        cls.gh.configure(installations={str(INST): {"repos": [REPO], "permissions": PERMS}},
                         git={REPO: cls.repo.path})

    @classmethod
    def tearDownClass(cls):
        stack_down(cls)

    def env(self, pr, repo=REPO):
        for e in self.s.get("/api/v1/environments").json():
            if e["repo"] == repo and e["pr"] == pr:
                return e
        return None

    def wait_phase(self, pr, phase, repo=REPO):
        e = wait_until(lambda: (self.env(pr, repo) or {}).get("phase") == phase and
                       self.env(pr, repo), timeout=180, interval=0.3)
        self.assertTrue(e, "never %s: %r\n%s" % (phase, self.env(pr, repo),
                                                  self.s.logs()[-4000:]))
        return e

    def deliver(self, action, pr, commit, repo=REPO):
        p = events.pull_request(action, repo, pr, commit)
        url = "%s/%s.git" % (self.gh.url, repo)
        p["pull_request"]["head"]["repo"]["clone_url"] = url
        p["pull_request"]["base"]["repo"]["clone_url"] = url
        p["repository"]["clone_url"] = url
        p["installation"] = {"id": INST}
        body, headers = events.signed(self.s.secret, "pull_request", p)
        r = self.s.post("/webhook", body, headers)
        self.assertEqual(r.status, 202, r.text)

    def test_private_repository_cloned_with_installation_token(self):
        url = "%s/%s.git" % (self.gh.url, REPO)
        # Without a token the fake refuses, as GitHub does a private repository.
        anon = subprocess.run(["git", "ls-remote", url], env=dict(os.environ, GIT_TERMINAL_PROMPT="0"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertNotEqual(anon.returncode, 0)
        commit = self.repo.commit("private")
        self.deliver("opened", 9, commit)
        e = self.wait_phase(9, "ready")
        r = http("GET", self.s.url("/"), headers={"Host": "%s.localhost" % e["slug"]})
        self.assertIn(commit, r.text)
        st = self.gh.state()
        self.assertIn({"repo": REPO, "service": "git-upload-pack", "auth": "ok"}, st["git"])
        self.assertIn({"repo": REPO, "service": "git-upload-pack", "auth": "none"}, st["git"])
        clone_tokens = [t for t in st["tokens_issued"] if t["repositories"] == [REPO]]
        self.assertTrue(clone_tokens, st["tokens_issued"])
        self.assertEqual(clone_tokens[0]["permissions"], {"contents": "read"})
        # No http.public_url, previews on *.localhost: the PR says ready,
        # and GitHub holds no link to this machine's loopback.
        view = wait_until(lambda: (lambda v: v if v["comments"] and "Preview ready" in
                                   v["comments"][0] and v["deployments"] and
                                   v["deployments"][-1]["state"] == "success" else None)(
            self.gh.pr_view(REPO, 9)), timeout=30)
        self.assertTrue(view, self.gh.pr_view(REPO, 9))
        self.assertNotIn("127.0.0.1", repr(view))
        self.assertNotRegex(repr(view), r"//[^/\s'\"]*localhost")
        self.assertEqual(view["deployments"][-1]["log_url"], "")
        sent = [r["body"] for r in self.gh.state()["requests"] if r["method"] != "GET"]
        self.assertFalse([b for b in sent if "127.0.0.1" in b or "localhost" in b], sent)
        self.deliver("closed", 9, commit)
        self.wait_phase(9, "destroyed")

    def test_access_lost_while_a_token_is_cached(self):
        self.s.allow_log(r"event=github_token .*status=422 scope=\"octo/app\"",
                         "the App loses the repository on purpose")
        commit = self.repo.commit("cached")
        self.deliver("opened", 11, commit)
        self.wait_phase(11, "ready")
        # The App loses the repository; the worker still holds a token
        # for it, which git now refuses. The retry must ask GitHub anew
        # and say why, not just "fetching failed" five times.
        self.gh.configure(installations={str(INST): {"repos": [], "permissions": PERMS}})
        try:
            commit2 = self.repo.commit("after")
            self.deliver("synchronize", 11, commit2)
            e = self.wait_phase(11, "failed")
            self.assertIn("no clone token from GitHub", e["error"])
            self.assertIn({"repo": REPO, "service": "git-upload-pack", "auth": "denied"},
                          self.gh.state()["git"])
        finally:
            self.gh.configure(installations={str(INST): {"repos": [REPO],
                                                         "permissions": PERMS}})
        self.deliver("closed", 11, commit2)
        self.wait_phase(11, "destroyed")

    def test_token_refused_fails_the_environment_visibly(self):
        # A repository the installation does not cover (its own name, so
        # no token cached for REPO by another test is involved): GitHub
        # refuses the token with 422; the environment fails and says why.
        other = "octo/uncovered"
        self.s.allow_log(r"event=github_token .*status=422 scope=\"octo/uncovered\"",
                         "the installation does not cover the repository")
        # Nor can the PR be told: GitHub answers the notifier 404.
        self.s.allow_log(r"event=github_(commit_status|request|deployment) .*status=404",
                         "the installation does not cover the repository")
        repo = Repo(self.s.dir, other)
        self.gh.configure(git={other: repo.path})
        commit = repo.commit("refused")
        self.deliver("opened", 10, commit, repo=other)
        e = self.wait_phase(10, "failed", repo=other)
        self.assertIn("no clone token from GitHub", e["error"])
        self.deliver("closed", 10, commit, repo=other)
        self.wait_phase(10, "destroyed", repo=other)


def worker_pids(s):
    """The workers' supervisor's children: the worker processes."""
    sup = s.pid("workers")
    try:
        with open("/proc/%d/task/%d/children" % (sup, sup)) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


class WorkerRecycleTest(unittest.TestCase):
    """Workers load libcurl at their first call (workers/lazylib.c), and one
    that has is replaced once idle for workers.recycle_idle_seconds."""

    @classmethod
    def setUpClass(cls):
        stack_up(cls, "ghrecycle", {
            "http.public_url": "https://ephemera.example.test",
            "workers.count": 2,
            "workers.poll_interval_ms": 50,
            "workers.poll_max_ms": 200,
            "workers.recycle_idle_seconds": 2,
            "github.write_spacing_ms": 0,
        })
        cls.gh.configure(
            installations={str(INST): {"repos": [REPO], "permissions": PERMS}})
        cls.next_pr = 900

    @classmethod
    def tearDownClass(cls):
        stack_down(cls)

    new_env = GitHubTest.new_env
    pr_of = GitHubTest.pr_of
    start_build = GitHubTest.start_build
    enqueue = GitHubWorkersTest.enqueue
    settled = GitHubWorkersTest.settled

    def test_loaded_at_first_call_and_recycled_when_idle(self):
        self.assertTrue(wait_until(lambda: len(worker_pids(self.s)) == 2, timeout=20))
        # Up, connected and claiming, and no HTTPS call made yet.
        self.assertTrue(wait_until(
            lambda: self.s.log("workers").count("event=worker_ready") >= 2, timeout=20))
        self.assertEqual([p for p in worker_pids(self.s) if maps_curl(p)], [])
        for n in (1, 2):
            env_id, pr, slug = self.new_env()
            self.start_build(env_id, 1)
            self.enqueue("notify", env_id)
            self.assertEqual(self.settled("notify", env_id)[0], "done")
            ran = self.s.sql("SELECT worker FROM jobs WHERE kind='notify' AND env_id=%d "
                             "ORDER BY id DESC LIMIT 1" % env_id)[0][0]
            pid = int(ran.rsplit(":", 1)[1])
            # That worker called GitHub, so it leaves once idle and a
            # fresh one, which maps no libcurl, takes its slot.
            recycled = r"pid=%d event=worker_recycle " % pid
            self.assertTrue(wait_until(
                lambda: re.search(recycled, self.s.log("workers")), timeout=30),
                self.s.log("workers"))
            self.assertTrue(wait_until(
                lambda: pid not in worker_pids(self.s) and len(worker_pids(self.s)) == 2,
                timeout=20))
            self.assertTrue(wait_until(
                lambda: not [p for p in worker_pids(self.s) if maps_curl(p)], timeout=20))


if __name__ == "__main__":
    unittest.main()
