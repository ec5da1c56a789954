"""Issue 2: deliveries that arrive together share one transaction
(fcgi-app/batch.c, delivery_batch.c). Each must still get exactly what it
would have got alone: decided in order against the row as the batch's
earlier deliveries left it, recorded once, one reconcile per environment,
a new PR's environment created under the slug it would get alone; what
the batch cannot do (a command, a suffixed slug, a duplicate id) is
recorded one at a time, after it."""
import hashlib
import os
import re
import time
import unittest
import uuid

from harness.stack import Stack
from test_webhook import fixture_json, post_all, rows_clear


def push(pr, k, repo="Codertocat/Hello-World"):
    """PR `pr`'s k-th push: a new head commit, updated k minutes later."""
    p = fixture_json("pull_request.opened.json")
    p["action"] = "opened" if k == 0 else "synchronize"
    p["number"] = p["pull_request"]["number"] = pr
    p["repository"]["full_name"] = repo
    for side in ("head", "base"):
        p["pull_request"][side]["repo"]["full_name"] = repo
    p["pull_request"]["head"]["sha"] = hashlib.sha1(b"%d-%d" % (pr, k)).hexdigest()
    p["pull_request"]["updated_at"] = "2026-01-01T%02d:%02d:00Z" % (k // 60, k % 60)
    return p


class WebhookBatchTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # One process, so that concurrent deliveries meet in its batch.
        cls.s = Stack("webhook-batch", {"workers.count": 1, "fcgi.processes": 1,
                                        "fcgi.threads": 16}, workers=False)
        cls.s.up()

    @classmethod
    def tearDownClass(cls):
        cls.s.finish()

    def setUp(self):
        rows_clear(self.s)
        self.log_seen = len(self.s.log("fcgi"))

    def post_all(self, deliveries):
        return post_all(self.s, deliveries)

    def sql(self, q):
        return self.s.sql(q)

    def shared_commits(self):
        """Deliveries recorded by one statement share its received_at."""
        n, distinct = self.sql("SELECT COUNT(*), COUNT(DISTINCT received_at) FROM deliveries")[0]
        return int(n) - int(distinct)

    def batches_whole(self):
        """No batch since the last call failed as a whole (a slug or an
        environment inserted twice), leaving its deliveries to commit
        one at a time."""
        log = self.s.log("fcgi")
        seen, self.log_seen = self.log_seen, len(log)
        return "delivery_batch_" not in log[seen:]

    def post_batched(self, make_batch, reset=None):
        """Posts make_batch(attempt) all at once, each answered 202, until
        some deliveries shared a commit and no batch fell apart: whether
        they meet in one batch is up to the scheduler, so five tries,
        each after reset() (default: no rows). Answers the attempt."""
        for attempt in range(5):
            (reset or (lambda: rows_clear(self.s)))()
            for status, text in self.post_all(make_batch(attempt)):
                self.assertEqual(status, 202, text)
            if self.shared_commits() > 0 and self.batches_whole():
                return attempt
        self.fail("the deliveries never shared a commit, or a batch fell apart")

    def test_pushes_to_one_pr_keep_their_order_inside_a_batch(self):
        """Twelve pushes to one PR at once, in any order: applied only when
        newer than what the batch applied before them, the row ends at the
        newest, written by it, with one queued reconcile."""
        shas = {}

        def opened():
            rows_clear(self.s)
            self.assertEqual(self.post_all([("pull_request", push(7, 0), str(uuid.uuid4()))]),
                             [(202, "accepted: deploy\n")])

        def pushes(attempt):
            batch = []
            for k in range(1, 13):
                guid = "push-%d-%d" % (attempt, k)
                shas[guid] = (k, push(7, k)["pull_request"]["head"]["sha"])
                batch.append(("pull_request", push(7, k), guid))
            return batch

        self.post_batched(pushes, opened)
        rows = self.sql("SELECT id, guid, result FROM deliveries "
                        "WHERE guid LIKE 'push-%' ORDER BY id")
        self.assertEqual(len(rows), 12)
        newest = 0
        for _, guid, result in rows:
            k = shas[guid][0]
            self.assertEqual(result, "applied" if k > newest else "stale", (guid, rows))
            newest = max(newest, k)
        last = [r for r in rows if shas[r[1]][0] == 12][0]
        env = self.sql("SELECT desired, desired_sha, pr_updated_at, last_delivery_id "
                       "FROM environments WHERE pr = 7")
        self.assertEqual(env, [["running", shas[last[1]][1], "2026-01-01 00:12:00.000000",
                                last[0]]])
        self.assertEqual(self.sql("SELECT COUNT(*) FROM jobs WHERE kind = 'reconcile' "
                                  "AND state = 'queued'"), [["1"]])

    def test_new_prs_are_created_in_a_batch(self):
        """Twelve new PRs at once, four of them pushed to in the same
        burst: each gets one environment, written by its newest
        delivery, named by slug_make, with one queued reconcile, and every
        delivery names it; and some of the new ones shared a commit."""
        attempt = self.post_batched(lambda attempt: [
            ("pull_request", push(pr, k), "%s-%d-%d" % ("push" if k else "open", attempt, pr))
            for pr, k in [(pr, 0) for pr in range(1, 13)] + [(pr, 1) for pr in range(1, 5)]])
        envs = self.sql("SELECT e.pr, e.slug, e.desired, e.desired_sha, d.guid "
                        "FROM environments e JOIN deliveries d ON d.id = e.last_delivery_id "
                        "ORDER BY e.pr")
        self.assertEqual(envs, [[str(pr), "pr-%d-hello-world" % pr, "running",
                                 push(pr, 1 if pr < 5 else 0)["pull_request"]["head"]["sha"],
                                 "%s-%d-%d" % ("push" if pr < 5 else "open", attempt, pr)]
                                for pr in range(1, 13)])
        self.assertEqual(self.sql("SELECT COUNT(*) FROM deliveries d JOIN environments e "
                                  "ON e.id = d.env_id AND e.pr = d.pr"), [["16"]])
        self.assertEqual(self.sql("SELECT COUNT(*), COUNT(DISTINCT env_id) FROM jobs "
                                  "WHERE kind = 'reconcile' AND state = 'queued'"),
                         [["12", "12"]])

    def test_new_prs_sharing_a_slug(self):
        """New PRs that slug_make names alike, at once: two repositories
        with one name, one repository spelt in two cases (one row to the
        collation), and a name an existing environment holds. Each gets
        what it would alone: distinct slugs, one environment per PR."""
        self.assertEqual(self.post_all([("pull_request", push(8, 0, "c/taken"), "open-c")])[0][0],
                         202)
        def keep_c():
            self.sql("DELETE FROM deliveries WHERE guid <> 'open-c'")
            self.sql("DELETE FROM jobs")
            self.sql("DELETE FROM environments WHERE repo <> 'c/taken'")

        def burst(attempt):
            return [("pull_request", push(pr, k, repo),
                     "%s-%d-%d-%d" % (repo.replace("/", "-"), pr, k, attempt))
                    for repo, pr, k in [("a/app", 5, 0), ("b/app", 5, 0), ("Org/Case", 6, 0),
                                        ("org/case", 6, 1), ("d/taken", 8, 0)] +
                    [("e/more", pr, 0) for pr in range(1, 5)]]

        self.post_batched(burst, keep_c)
        envs = self.sql("SELECT LOWER(repo), pr, slug FROM environments "
                        "ORDER BY LOWER(repo), pr")
        self.assertEqual([e[:2] for e in envs],
                         [["a/app", "5"], ["b/app", "5"], ["c/taken", "8"], ["d/taken", "8"],
                          ["e/more", "1"], ["e/more", "2"], ["e/more", "3"], ["e/more", "4"],
                          ["org/case", "6"]])
        slugs = [e[2] for e in envs]
        self.assertEqual(len(set(slugs)), len(slugs), envs)
        self.assertEqual(sorted(s[:8] for s in slugs[:2]), ["pr-5-app", "pr-5-app"])
        self.assertEqual(slugs[2], "pr-8-taken")
        self.assertRegex(slugs[3], r"^pr-8-taken-[0-9a-f]{6}$")
        self.assertEqual(slugs[8], "pr-6-case")
        # The two spellings are one PR: the newer push is its state.
        self.assertEqual(self.sql("SELECT desired_sha FROM environments WHERE pr = 6"),
                         [[push(6, 1)["pull_request"]["head"]["sha"]]])
        self.assertEqual(self.sql("SELECT COUNT(*) FROM deliveries d JOIN environments e "
                                  "ON e.id = d.env_id AND e.pr = d.pr"), [["10"]])
        self.assertEqual(self.sql("SELECT COUNT(DISTINCT env_id) FROM jobs "
                                  "WHERE kind = 'reconcile' AND state = 'queued'"), [["8"]])

    def test_what_a_batch_cannot_do_is_done_after_it(self):
        """A new PR, pushes to existing ones, a command, a ping, an
        ignored event and a delivery id sent twice, all at once: each is
        answered as it would be alone, and recorded once."""
        for pr in (1, 2, 3):
            self.assertEqual(self.post_all([("pull_request", push(pr, 0), "open-%d" % pr)])[0][0],
                             202)
        # A command on PR 3: recorded one at a time, and so is PR 3's push
        # if it comes later in the batch.
        comment = fixture_json("issue_comment.created.pull_request.app.json")
        comment["repository"]["full_name"] = "Codertocat/Hello-World"
        comment["issue"]["number"] = 3
        comment["comment"]["body"] = "/preview redeploy"
        batch = [("pull_request", push(1, 1), "p1"), ("pull_request", push(2, 1), "p2"),
                 ("pull_request", push(3, 1), "p3"), ("pull_request", push(9, 0), "new-9"),
                 ("pull_request", push(2, 2), "dup"), ("pull_request", push(2, 2), "dup"),
                 ("ping", {"zen": "Keep it logically awesome.", "hook_id": 1}, "ping-1"),
                 ("star", {"action": "created"}, "star-1"),
                 ("issue_comment", comment, "cmd-1")]
        answers = dict()
        for (event, _, guid), a in zip(batch, self.post_all(batch)):
            answers.setdefault(guid, []).append(a)
        self.assertEqual(answers["p1"], [(202, "accepted: deploy\n")])
        self.assertEqual(answers["p3"], [(202, "accepted: deploy\n")])
        self.assertEqual(answers["new-9"], [(202, "accepted: deploy\n")])
        self.assertEqual(sorted(answers["dup"]), [(200, "duplicate\n"), (202, "accepted: deploy\n")])
        self.assertEqual(answers["ping-1"], [(200, "pong\n")])
        self.assertEqual(answers["star-1"][0][0], 202)
        self.assertTrue(answers["star-1"][0][1].startswith("ignored"), answers["star-1"])
        guids = [g for _, _, g in batch]
        self.assertEqual(self.sql("SELECT COUNT(*), COUNT(DISTINCT guid) FROM deliveries "
                                  "WHERE guid NOT LIKE 'open-%'"),
                         [[str(len(set(guids)))] * 2])
        # p2 and dup are two pushes to PR 2; whichever came first, the row
        # ends at the newer one.
        self.assertEqual(self.sql("SELECT pr, desired_sha FROM environments ORDER BY pr"),
                         [[str(pr), push(pr, k)["pull_request"]["head"]["sha"]]
                          for pr, k in ((1, 1), (2, 2), (3, 1), (9, 0))])
        self.assertEqual(self.sql("SELECT COUNT(*), COUNT(DISTINCT env_id) FROM jobs "
                                  "WHERE kind = 'reconcile' AND state = 'queued'"),
                         [["4", "4"]])
        self.assertEqual(answers["cmd-1"], [(202, "accepted: command recorded\n")])
        self.assertEqual(self.sql("SELECT command, source FROM commands"),
                         [["redeploy", "comment"]])
        self.assertEqual(self.sql("SELECT COUNT(*) FROM jobs WHERE kind = 'command'"), [["1"]])

    def test_batch_left_with_nothing_releases_its_rows(self):
        """A command alone on an existing environment: the batch locks the
        row, leaves the command to its thread, and must end its
        transaction first, or that thread waits for the row until the
        lock times out (nginx answers 504 before)."""
        self.assertEqual(self.post_all([("pull_request", push(3, 0), "open-3")])[0][0], 202)
        comment = fixture_json("issue_comment.created.pull_request.app.json")
        comment["repository"]["full_name"] = "Codertocat/Hello-World"
        comment["issue"]["number"] = 3
        comment["comment"]["body"] = "/preview stop"
        for i in range(3):
            comment["comment"]["id"] = 1000 + i
            self.assertEqual(self.post_all([("issue_comment", comment, "cmd-%d" % i)]),
                             [(202, "accepted: command recorded\n")])
        self.assertEqual(self.sql("SELECT COUNT(*) FROM commands"), [["3"]])

    def test_stop_lets_every_thread_finish(self):
        """TERM to the fcgi-app: its threads, blocked in accept or not,
        end, and the process exits by itself (not by the supervisor's
        KILL after its timeout)."""
        pid = self.s.pid("fcgi")
        child = self.s.children(pid)[0]
        os.kill(child, 15)
        deadline = time.time() + 30
        while time.time() < deadline and os.path.exists("/proc/%d" % child):
            time.sleep(0.05)
        self.assertFalse(os.path.exists("/proc/%d" % child))
        # The supervisor logs the exit after it reaps the child, which is
        # when /proc forgets it: wait for the line, then read its status.
        line = re.compile(r"child_exit[^\n]*child=%d\b[^\n]*" % child)
        while True:
            found = line.search(self.s.log("fcgi"))
            if found or time.time() > deadline:
                break
            time.sleep(0.05)
        self.assertIsNotNone(found, self.s.log("fcgi")[-2000:])
        self.assertIn("status=0", found.group(0))
        # The supervisor starts another, which answers.
        r = self.s.get("/healthz")
        self.assertEqual(r.status, 200)


if __name__ == "__main__":
    unittest.main()
