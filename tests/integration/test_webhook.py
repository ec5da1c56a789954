"""Issue 2: webhook ingestion against the real stack (nginx, fcgi-app,
MariaDB). Every recorded delivery in tests/fixtures, signed with the
stack's secret, must leave the expected rows behind, visible through
/api/v1/environments; forged, duplicated, late and hostile deliveries must
not."""
import copy
import hashlib
import hmac
import http.client
import json
import os
import threading
import unittest
import urllib.parse
import uuid

from harness.stack import ROOT, Stack, wait_until

FIXTURES = os.environ.get("EPHEMERA_FIXTURES",
                          os.path.join(ROOT, "tests", "fixtures"))
HOOKS = os.path.join(FIXTURES, "github", "webhooks")
# The secret GitHub used for the captured deliveries in webhooks/signed/
# (published with them), so those are posted byte for byte, headers and all.
CAPTURE_SECRET = "402786017574bd28f9d8f7a18648939751c47fe09077d56e10f0444f14fbb73b"


def fixture(name):
    with open(os.path.join(HOOKS, name), "rb") as f:
        return f.read()


def fixture_json(name):
    return json.loads(fixture(name))


def post_all(stack, deliveries):
    """Posts (event, payload, guid) all at once, one connection each (a
    payload is bytes, or JSON to encode); answers [(status, text)] in the
    same order."""
    out = [None] * len(deliveries)
    barrier = threading.Barrier(len(deliveries))

    def post(i, event, payload, guid):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        sig = "sha256=" + hmac.new(stack.secret.encode(), body, hashlib.sha256).hexdigest()
        c = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=60)
        try:
            c.connect()
            barrier.wait()
            c.request("POST", "/webhook", body, {
                "Content-Type": "application/json", "X-GitHub-Event": event,
                "X-GitHub-Delivery": guid, "X-Hub-Signature-256": sig})
            r = c.getresponse()
            out[i] = (r.status, r.read().decode())
        finally:
            c.close()

    threads = [threading.Thread(target=post, args=(i,) + d) for i, d in enumerate(deliveries)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def rows_clear(stack):
    """Every row a webhook writes, gone: each test starts from none."""
    for t in ("commands", "jobs", "deliveries", "environments"):
        stack.sql("DELETE FROM %s" % t)


class WebhookTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # No worker pool: these tests look at the jobs the webhook queued.
        cls.s = Stack("webhook", {"workers.count": 1, "fcgi.processes": 4},
                      webhook_secret=CAPTURE_SECRET, workers=False)
        cls.s.up()

    @classmethod
    def tearDownClass(cls):
        cls.s.finish()

    def setUp(self):
        rows_clear(self.s)

    # -- helpers ---------------------------------------------------------

    def sign(self, body):
        return "sha256=" + hmac.new(self.s.secret.encode(), body, hashlib.sha256).hexdigest()

    def deliver(self, event, body, guid=None, signature=None, content_type="application/json"):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        headers = {"Content-Type": content_type, "X-GitHub-Event": event,
                   "X-GitHub-Delivery": guid or str(uuid.uuid4()),
                   "User-Agent": "GitHub-Hookshot/test"}
        sig = self.sign(body) if signature is None else signature
        if sig:
            headers["X-Hub-Signature-256"] = sig
        return self.s.post("/webhook", body, headers)

    def envs(self):
        r = self.s.get("/api/v1/environments")
        self.assertEqual(r.status, 200)
        return {(e["repo"], e["pr"]): e for e in r.json()}

    def count(self, table, where="1"):
        return int(self.s.sql("SELECT COUNT(*) FROM %s WHERE %s" % (table, where))[0][0])

    def jobs(self, kind="reconcile"):
        return self.count("jobs", "kind = '%s'" % kind)

    # -- every fixture ---------------------------------------------------

    def test_pull_request_fixtures_in_order(self):
        key = ("Codertocat/Hello-World", 2)
        sha = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
        r = self.deliver("pull_request", fixture("pull_request.opened.json"))
        self.assertEqual((r.status, r.text), (202, "accepted: deploy\n"))
        e = self.envs()[key]
        self.assertEqual((e["desired"], e["sha"], e["title"], e["author"]),
                         ("running", sha, "Update the README with new information.",
                          "Codertocat"))
        self.assertEqual(e["slug"], "pr-2-hello-world")
        self.assertEqual(self.jobs(), 1)
        # Same PR, same updated_at, later deliveries: applied, coalesced.
        for name in ("pull_request.opened.null-body.json", "pull_request.synchronize.json",
                     "pull_request.labeled.json", "pull_request.unlabeled.json"):
            r = self.deliver("pull_request", fixture(name))
            self.assertEqual(r.status, 202, name)
            self.assertTrue(r.text.startswith("accepted"), (name, r.text))
        self.assertEqual(self.envs()[key]["desired"], "running")
        self.assertEqual(self.jobs(), 1)
        row = self.s.sql("SELECT labels, trusted, installation_id, head_ref FROM "
                         "environments WHERE pr = 2")[0]
        self.assertEqual(row, ['["bug"]', "1", "1", "changes"])
        r = self.deliver("pull_request", fixture("pull_request.closed.not-merged.json"))
        self.assertEqual(r.status, 202)
        self.assertEqual(self.envs()[key]["desired"], "destroyed")
        # The recorded reopened is older than the close: stale.
        r = self.deliver("pull_request", fixture("pull_request.reopened.json"))
        self.assertEqual((r.status, r.text), (202, "ignored: older than the applied event\n"))
        self.assertEqual(self.envs()[key]["desired"], "destroyed")
        # A real reopen comes later.
        p = fixture_json("pull_request.reopened.json")
        p["pull_request"]["updated_at"] = "2019-05-15T15:30:00Z"
        self.assertEqual(self.deliver("pull_request", p).status, 202)
        self.assertEqual(self.envs()[key]["desired"], "running")
        self.assertEqual(self.count("deliveries"), 8)
        self.assertEqual(self.count("deliveries", "result = 'stale'"), 1)

    def test_push_brings_a_backed_off_reconcile_forward(self):
        # The delivery coalesces into the queued reconcile (010's insert
        # on jobs_one_queued; 007's locking read when recorded alone):
        # still one job, and a retry waiting out its backoff runs now. A
        # running one gets a successor.
        self.assertEqual(self.deliver("pull_request", fixture("pull_request.opened.json")).status, 202)
        self.s.sql("UPDATE jobs SET run_at = NOW(6) + INTERVAL 1 HOUR, attempts = 2")
        p = fixture_json("pull_request.synchronize.json")
        p["pull_request"]["head"]["sha"] = "1" * 40
        p["pull_request"]["updated_at"] = "2019-05-15T16:00:00Z"
        self.assertEqual(self.deliver("pull_request", p).status, 202)
        rows = self.s.sql("SELECT attempts, run_at <= NOW(6) FROM jobs WHERE kind = 'reconcile'")
        self.assertEqual(rows, [["2", "1"]])
        self.s.sql("UPDATE jobs SET state = 'running'")
        p["pull_request"]["head"]["sha"] = "2" * 40
        p["pull_request"]["updated_at"] = "2019-05-15T17:00:00Z"
        self.assertEqual(self.deliver("pull_request", p).status, 202)
        self.assertEqual(self.s.sql("SELECT state FROM jobs WHERE kind = 'reconcile' ORDER BY id"),
                         [["running"], ["queued"]])
        self.assertEqual(self.envs()[("Codertocat/Hello-World", 2)]["sha"], "2" * 40)

    def test_fork_fixtures_await_approval(self):
        for name, key in (("pull_request.opened.fork.json", ("packit-service/packit", 342)),
                          ("pull_request.synchronize.fork.json",
                           ("RedHatInsights/insights-core", 4418))):
            r = self.deliver("pull_request", fixture(name))
            self.assertEqual((r.status, r.text), (202, "accepted: awaiting approval\n"))
            self.assertEqual(self.envs()[key]["desired"], "awaiting_approval")
        self.assertEqual(self.s.sql("SELECT DISTINCT trusted FROM environments"), [["0"]])
        # A merged fork PR we never deployed is not created to be destroyed.
        r = self.deliver("pull_request", fixture("pull_request.closed.merged.json"))
        self.assertEqual((r.status, r.text), (202, "ignored: closed, never deployed\n"))
        self.assertEqual(len(self.envs()), 2)

    def test_captured_signed_deliveries_verbatim(self):
        key = ("derekg1729/test-repo", 315)
        want = [("opened", "running", "eeb67d6e"), ("synchronize", "running", "b47337c4"),
                ("closed.merged", "destroyed", "b47337c4")]
        for name, desired, sha in want:
            with open(os.path.join(HOOKS, "signed", "pull_request.%s.capture.json" % name)) as f:
                cap = json.load(f)
            h = cap["headers"]
            body = fixture("signed/pull_request.%s.body" % name)
            r = self.deliver(h["x-github-event"], body, guid=h["x-github-delivery"],
                             signature=h["x-hub-signature-256"])
            self.assertEqual(r.status, 202, r.text)
            e = self.envs()[key]
            self.assertEqual(e["desired"], desired)
            self.assertTrue(e["sha"].startswith(sha))
        self.assertEqual(self.s.sql("SELECT guid FROM deliveries ORDER BY id"),
                         [["f73f08d0-a995-11f0-8d11-0b9d0ae424e4"],
                          ["bdbd8c70-a996-11f0-8782-22a89d285e1b"],
                          ["c16510a0-a996-11f0-86fe-90260285066c"]])

    def test_ping_and_ignored_fixtures(self):
        for name in ("ping.json", "ping.app.json"):
            r = self.deliver("ping", fixture(name))
            self.assertEqual((r.status, r.text), (200, "pong\n"))
        for event, name, reason in (
                ("installation", "installation.created.json", "installation action not handled"),
                ("installation_repositories", "installation_repositories.added.json",
                 "installation action not handled"),
                ("issue_comment", "issue_comment.created.issue.json", "comment on an issue"),
                ("issue_comment", "issue_comment.created.pull_request.json",
                 "no /preview command"),
                ("issue_comment", "issue_comment.created.pull_request.app.json",
                 "no /preview command"),
                ("check_run", "ping.json", "event not handled")):
            r = self.deliver(event, fixture(name))
            self.assertEqual((r.status, r.text), (202, "ignored: %s\n" % reason), name)
        self.assertEqual(self.envs(), {})
        self.assertEqual(self.count("jobs"), 0)
        self.assertEqual(self.count("deliveries", "result = 'ignored'"), 6)
        self.assertEqual(self.count("deliveries", "result = 'ping'"), 2)
        self.assertIn("reason=\"event not handled\"", self.s.log("fcgi"))

    def test_comment_command_is_recorded(self):
        p = fixture_json("issue_comment.created.pull_request.app.json")
        p["comment"]["body"] = "Looks fine.\r\n/preview approve\r\n"
        r = self.deliver("issue_comment", p)
        self.assertEqual((r.status, r.text), (202, "accepted: command recorded\n"))
        rows = self.s.sql("SELECT c.id, c.command, c.commenter, c.author_association, "
                          "c.comment_id, c.installation_id, c.state, c.source, e.repo, e.pr, "
                          "e.desired FROM commands c JOIN environments e ON e.id = c.env_id")
        self.assertEqual(rows[0][1:], ["approve", "betulependule", "MEMBER", "3296937722",
                                       "1924121", "pending", "comment", "packit/hello-world",
                                       "1418", "stopped"])
        job = self.s.sql("SELECT kind, payload, state FROM jobs")
        self.assertEqual(job, [["command", rows[0][0], "queued"]])
        # The same comment replayed under a new delivery id: recorded once.
        r = self.deliver("issue_comment", p)
        self.assertEqual((r.status, r.text), (202, "ignored: command already recorded\n"))
        self.assertEqual(self.count("commands"), 1)
        self.assertEqual(self.count("jobs"), 1)

    def test_trusted_label_on_fork_is_recorded_for_a_worker(self):
        p = fixture_json("pull_request.opened.fork.json")
        self.assertEqual(self.deliver("pull_request", p).status, 202)
        p["action"] = "labeled"
        p["label"] = {"name": "preview-approved"}
        p["pull_request"]["labels"] = [{"name": "preview-approved"}]
        p["pull_request"]["updated_at"] = "2019-05-21T14:40:00Z"
        p["sender"]["login"] = "maintainer"
        r = self.deliver("pull_request", p)
        self.assertEqual((r.status, r.text), (202, "accepted: awaiting approval\n"))
        # Not approved here: a worker asks GitHub whether the sender may.
        self.assertEqual(self.envs()[("packit-service/packit", 342)]["desired"],
                         "awaiting_approval")
        rows = self.s.sql("SELECT id, command, source, commenter, comment_id IS NULL, state "
                          "FROM commands")
        self.assertEqual(rows[0][1:], ["approve", "label", "maintainer", "1", "pending"])
        self.assertEqual(self.s.sql("SELECT payload FROM jobs WHERE kind = 'command'"),
                         [[rows[0][0]]])

    def test_installation_removal_destroys(self):
        def open_pr(repo, number, inst):
            p = fixture_json("pull_request.opened.json")
            p["repository"]["full_name"] = repo
            p["pull_request"]["head"]["repo"]["full_name"] = repo
            p["pull_request"]["base"]["repo"]["full_name"] = repo
            p["pull_request"]["number"] = number
            p["installation"]["id"] = inst
            self.assertEqual(self.deliver("pull_request", p).status, 202)

        open_pr("octocat/Hello-World", 1, 2)
        open_pr("octocat/Hello-World", 2, 2)
        open_pr("octocat/Other", 3, 2)
        open_pr("someone/else", 4, 9)
        self.s.sql("UPDATE jobs SET state = 'done'")
        r = self.deliver("installation_repositories",
                         fixture("installation_repositories.removed.json"))
        self.assertEqual((r.status, r.text), (202, "accepted: repositories removed\n"))
        desired = {k: e["desired"] for k, e in self.envs().items()}
        self.assertEqual(desired, {("octocat/Hello-World", 1): "destroyed",
                                   ("octocat/Hello-World", 2): "destroyed",
                                   ("octocat/Other", 3): "running",
                                   ("someone/else", 4): "running"})
        self.assertEqual(self.count("jobs", "state = 'queued'"), 2)
        r = self.deliver("installation", fixture("installation.deleted.json"))
        self.assertEqual((r.status, r.text), (202, "accepted: installation deleted\n"))
        desired = {k: e["desired"] for k, e in self.envs().items()}
        self.assertEqual(desired[("octocat/Other", 3)], "destroyed")
        self.assertEqual(desired[("someone/else", 4)], "running")
        self.assertEqual(self.count("jobs", "state = 'queued'"), 3)

    # -- forged, duplicated, late, hostile ---------------------------------

    def test_forged_deliveries_record_nothing(self):
        body = fixture("signed/pull_request.opened.body")
        sig = self.sign(body)
        tampered = bytearray(body)
        tampered[len(body) // 2] ^= 1
        cases = [(bytes(tampered), sig, 401, "wrong signature\n"),
                 (body, "", 401, "missing X-Hub-Signature-256\n"),
                 (body, "sha1=" + "0" * 40, 401, "malformed X-Hub-Signature-256\n"),
                 (body, sig[:-1], 401, "malformed X-Hub-Signature-256\n"),
                 (body, self.sign(body + b" "), 401, "wrong signature\n")]
        for b, s, status, text in cases:
            r = self.deliver("pull_request", b, signature=s)
            self.assertEqual((r.status, r.text), (status, text))
        r = self.deliver("pull_request", body, content_type="text/plain")
        self.assertEqual(r.status, 415)
        r = self.deliver("pull_request", b"{not json", signature=None)
        self.assertEqual(r.status, 400)
        r = self.deliver("pull_request", body, guid="bad guid;")
        self.assertEqual(r.status, 400)
        self.assertEqual(self.count("deliveries"), 0)
        self.assertEqual(self.count("environments"), 0)
        self.assertEqual(self.count("jobs"), 0)

    def test_form_encoded(self):
        payload = fixture("pull_request.opened.json")
        body = ("payload=" + urllib.parse.quote_plus(payload.decode())).encode()
        r = self.deliver("pull_request", body,
                         content_type="application/x-www-form-urlencoded")
        self.assertEqual(r.status, 202, r.text)
        self.assertEqual(self.envs()[("Codertocat/Hello-World", 2)]["desired"], "running")

    def test_duplicate_posted_50_times_concurrently(self):
        guid = str(uuid.uuid4())
        statuses = post_all(self.s, [("pull_request", fixture("pull_request.opened.json"),
                                      guid)] * 50)
        self.assertEqual(len(statuses), 50)
        self.assertEqual(sorted(set(statuses)),
                         [(200, "duplicate\n"), (202, "accepted: deploy\n")])
        self.assertEqual(statuses.count((202, "accepted: deploy\n")), 1)
        self.assertEqual(self.count("deliveries"), 1)
        self.assertEqual(self.count("jobs"), 1)
        self.assertEqual(self.count("environments"), 1)

    def test_concurrent_first_deliveries_of_one_pr(self):
        """Twenty different deliveries of one new PR at once: every one is
        recorded, one environment, one queued reconcile, nobody 503s."""
        body = fixture("pull_request.opened.json")
        statuses = [status for status, _ in post_all(
            self.s, [("pull_request", body, str(uuid.uuid4())) for _ in range(20)])]
        self.assertEqual(statuses, [202] * 20)
        self.assertEqual(self.count("deliveries"), 20)
        self.assertEqual(self.count("environments"), 1)
        self.assertEqual(self.jobs(), 1)
        env = self.s.sql("SELECT id FROM environments")[0][0]
        self.assertEqual(self.count("deliveries", "env_id = %s" % env), 20)

    def test_closed_then_older_synchronize_stays_destroyed(self):
        key = ("Codertocat/Hello-World", 2)
        sync = fixture_json("pull_request.synchronize.json")
        sync["pull_request"]["head"]["sha"] = "b" * 40
        sync["pull_request"]["updated_at"] = "2019-05-15T15:21:00Z"
        self.assertEqual(self.deliver("pull_request", fixture("pull_request.opened.json")).status,
                         202)
        self.assertEqual(self.deliver("pull_request",
                                      fixture("pull_request.closed.not-merged.json")).status, 202)
        r = self.deliver("pull_request", sync)
        self.assertEqual((r.status, r.text), (202, "ignored: older than the applied event\n"))
        e = self.envs()[key]
        self.assertEqual(e["desired"], "destroyed")
        self.assertEqual(e["sha"], "ec26c3e57ca3a959ca5aad62de7213c562f8c821")
        # Even one claiming to be newer does not resurrect it.
        sync["pull_request"]["updated_at"] = "2019-05-16T00:00:00Z"
        r = self.deliver("pull_request", sync)
        self.assertEqual(r.text, "ignored: closed; only reopened revives it\n")
        self.assertEqual(self.envs()[key]["desired"], "destroyed")

    def test_hostile_strings_stored_verbatim(self):
        p = fixture_json("pull_request.opened.json")
        evil = "$(rm -rf /); `id` 'q' \"dq\" <script>x</script>\n--"
        p["pull_request"]["title"] = evil + "t" * (1024 * 1024)
        p["pull_request"]["head"]["ref"] = evil
        r = self.deliver("pull_request", p)
        self.assertEqual(r.status, 202, r.text)
        e = self.envs()[("Codertocat/Hello-World", 2)]
        self.assertEqual(len(e["title"]), 1024)
        self.assertTrue(e["title"].startswith(evil))
        self.assertEqual(self.s.sql("SELECT HEX(head_ref) FROM environments")[0][0],
                         evil.encode().hex().upper())
        page = self.s.get("/").text
        self.assertNotIn("<script>x", page)

    def test_slug_collision_same_name_other_owner(self):
        for owner in ("alice", "bob"):
            p = fixture_json("pull_request.opened.json")
            for r in (p["repository"], p["pull_request"]["head"]["repo"],
                      p["pull_request"]["base"]["repo"]):
                r["full_name"] = owner + "/app"
            p["pull_request"]["number"] = 42
            self.assertEqual(self.deliver("pull_request", p).status, 202)
        slugs = dict(self.s.sql("SELECT repo, slug FROM environments"))
        self.assertEqual(slugs["alice/app"], "pr-42-app")
        self.assertEqual(slugs["bob/app"],
                         "pr-42-app-" + hashlib.sha256(b"bob/app").hexdigest()[:6])

    def test_nginx_limits(self):
        r = self.s.get("/webhook")
        self.assertEqual(r.status, 405)
        self.assertEqual(r.headers.get("Allow"), "POST")
        c = http.client.HTTPConnection("127.0.0.1", self.s.port, timeout=30)
        try:
            c.putrequest("POST", "/webhook")
            c.putheader("Content-Type", "application/json")
            c.putheader("Content-Length", str(25 * 1024 * 1024 + 1))
            c.endheaders()
            try:
                c.send(b"x" * (64 * 1024))
            except OSError:
                pass
            self.assertEqual(c.getresponse().status, 413)
        finally:
            c.close()
        self.assertEqual(self.count("deliveries"), 0)

    def test_zz_database_down_503_then_redelivery(self):
        body = fixture("pull_request.opened.json")
        guid = str(uuid.uuid4())
        self.s.allow_db_outage()
        self.s.stack("db-stop")
        try:
            for _ in range(6):  # every fcgi process sees the outage
                r = self.deliver("pull_request", body, guid=guid)
                self.assertEqual((r.status, r.text), (503, "database unavailable\n"))
        finally:
            self.s.stack("db-start")
        self.assertTrue(wait_until(lambda: self.s.get("/healthz").status == 200, timeout=20))
        r = self.deliver("pull_request", body, guid=guid)
        self.assertEqual(r.status, 202, r.text)
        self.assertEqual(self.count("deliveries"), 1)


if __name__ == "__main__":
    unittest.main()
