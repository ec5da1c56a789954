"""Issue 3: the job queue and the worker pool, on a real MariaDB with real
forked workers (ASan builds). The `noop` job kind records every execution
in noop_runs (unique per job and lease), which is how these tests count
executions. Interleavings that timing cannot force (a stale worker settling
after a rescue, a reaper acting on a row it read before the worker
finished, injected deadlocks) are driven step by step through
tests/tools/queue_driver, which calls the workers' own functions."""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import unittest

from harness.stack import ROOT, Stack, alive, wait_until

DRIVER = os.path.join(ROOT, "build", "asan", "tests", "tools", "queue_driver")
EPHEMERA = os.path.join(ROOT, "build", "asan", "bin", "ephemera")
WORKERS = os.path.join(ROOT, "build", "asan", "bin", "ephemera-workers")

QUICK = {
    "workers.lease_seconds": 2,
    "workers.poll_interval_ms": 20,
    "workers.poll_max_ms": 300,
    "workers.backoff_base_ms": 50,
    "workers.backoff_cap_ms": 400,
    "workers.max_attempts": 5,
}


def stamp(ts):
    """Seconds since midnight of a log line's ts=...Z value."""
    hms = ts.split("T")[1].rstrip("Z").split(":")
    return int(hms[0]) * 3600 + int(hms[1]) * 60 + float(hms[2])


def idlist(ids):
    return ",".join(str(int(i)) for i in ids)


class QueueStack(Stack):
    def driver(self, *args, check=True):
        r = subprocess.run([DRIVER, "-c", self.config, *[str(a) for a in args]],
                           env=self.env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=120)
        if check and r.returncode not in (0, 3):
            raise AssertionError("queue_driver %s: rc=%d\n%s%s" % (
                args, r.returncode, r.stdout, r.stderr))
        return r.stdout.strip()

    def cli(self, *args):
        return subprocess.run([EPHEMERA, "-c", self.config, "jobs", *[str(a) for a in args]],
                              env=self.env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=60)

    def one(self, query):
        rows = self.sql(query)
        return rows[0][0] if rows else None

    def add_jobs(self, n, payload=None, kind="noop", env=None, max_attempts=5):
        """n jobs in one INSERT; returns their ids (found by a batch tag,
        since auto-increment values need not be consecutive)."""
        QueueStack.batch = getattr(QueueStack, "batch", 0) + 1
        tag = "b%d-%d" % (os.getpid(), QueueStack.batch)
        p = "'%s'" % json.dumps(dict(payload or {}, batch=tag))
        e = "NULL" if env is None else str(env)
        self.sql("INSERT INTO jobs (kind, env_id, payload, max_attempts) "
                 "SELECT '%s', %s, %s, %d FROM seq_1_to_%d" % (kind, e, p, max_attempts, n))
        ids = [int(r[0]) for r in self.sql(
            "SELECT id FROM jobs WHERE payload LIKE '%%\"%s\"%%' ORDER BY id" % tag)]
        assert len(ids) == n, (tag, len(ids))
        return ids

    def add_env(self, pr):
        self.sql("INSERT INTO environments (repo, pr, slug) VALUES "
                 "('o/r', %d, 'pr-%d-r')" % (pr, pr))
        return int(self.one("SELECT id FROM environments WHERE pr = %d" % pr))

    def job(self, jid):
        rows = self.sql("SELECT state, attempts, IFNULL(worker, ''), IFNULL(last_error, '') "
                        "FROM jobs WHERE id = %d" % jid)
        return tuple(rows[0]) if rows else None

    def runs(self, jid):
        return int(self.one("SELECT COUNT(*) FROM noop_runs WHERE job_id = %d" % jid))

    def all_done(self, ids):
        return self.one("SELECT COUNT(*) FROM jobs WHERE id IN (%s) "
                        "AND state IN ('queued', 'running')" % idlist(ids)) == "0"

    def duplicates(self, ids):
        return self.sql("SELECT job_id, COUNT(*), GROUP_CONCAT(worker) FROM noop_runs "
                        "WHERE job_id IN (%s) GROUP BY job_id "
                        "HAVING COUNT(*) <> 1" % idlist(ids))

    def missing(self, ids):
        return self.sql("SELECT j.id, j.state FROM jobs j LEFT JOIN noop_runs r "
                        "ON r.job_id = j.id WHERE j.id IN (%s) "
                        "AND r.id IS NULL" % idlist(ids))

    def worker_pids(self):
        sup = self.pid("workers")
        return self.children(sup) if sup else []

    def stop_workers(self):
        sup = self.pid("workers")
        if sup:
            os.kill(sup, signal.SIGTERM)
            assert wait_until(lambda: not alive(sup), timeout=30), "workers did not stop"


def start(stack):
    """up(), cleaning the stack away if it fails (tearDownClass will not
    run after a failed setUpClass)."""
    try:
        stack.up()
    except BaseException:
        stack.cleanup()
        raise
    return stack


class PoolTest(unittest.TestCase):
    """Eight real workers on one database."""

    @classmethod
    def setUpClass(cls):
        cls.s = start(QueueStack("queue", dict(QUICK, **{"workers.count": 8,
                                                        "workers.shutdown_timeout": 5})))

    @classmethod
    def tearDownClass(cls):
        cls.s.finish()  # stopped first: leak reports come at exit

    def wait_done(self, ids, timeout=120):
        ok = wait_until(lambda: self.s.all_done(ids), timeout=timeout, interval=0.2)
        self.assertTrue(ok, "jobs not finished: %r\n%s" % (
            self.s.sql("SELECT state, COUNT(*) FROM jobs GROUP BY state"), self.s.logs()))

    def test_exactly_once_5000(self):
        ids = self.s.add_jobs(5000)
        self.wait_done(ids, timeout=240)
        dups = self.s.duplicates(ids)
        self.assertEqual(dups, [], "jobs performed more than once: %r" % dups[:50])
        self.assertEqual(self.s.missing(ids), [])
        states = self.s.sql("SELECT state, COUNT(*) FROM jobs WHERE id IN (%s) "
                            "GROUP BY state" % idlist(ids))
        self.assertEqual(states, [["done", "5000"]])
        # All eight took part: the claim does not serialise the pool.
        workers = self.s.one("SELECT COUNT(DISTINCT worker) FROM noop_runs WHERE job_id "
                             "IN (%s)" % idlist(ids))
        self.assertGreaterEqual(int(workers), 4)

    def test_sigkill_worker_mid_job(self):
        [jid] = self.s.add_jobs(1, {"sleep_ms": 2500})
        self.assertTrue(wait_until(lambda: self.s.job(jid)[0] == "running", timeout=20))
        worker = self.s.job(jid)[2]
        pid = int(worker.rsplit(":", 1)[1])
        self.assertIn(pid, self.s.worker_pids())
        time.sleep(0.5)
        os.kill(pid, signal.SIGKILL)
        # The job completes after its lease expires, exactly once, elsewhere.
        self.wait_done([jid], timeout=60)
        state, attempts, last, _ = self.s.job(jid)
        self.assertEqual(state, "done")
        self.assertEqual(attempts, "2")
        self.assertNotEqual(last, worker)
        self.assertEqual(self.s.runs(jid), 1)
        self.assertIn("event=job_rescued job=%d" % jid, self.s.log("workers"))

    def test_retry_then_success_with_backoff(self):
        [jid] = self.s.add_jobs(1, {"fail_attempts": 2})
        self.wait_done([jid], timeout=30)
        self.assertEqual(self.s.job(jid)[:2], ("done", "3"))
        self.assertEqual(self.s.runs(jid), 3)
        # Each retry waited at least half of its nominal backoff.
        gaps = self.s.sql("SELECT TIMESTAMPDIFF(MICROSECOND, a.finished_at, b.started_at) "
                          "FROM noop_runs a JOIN noop_runs b ON a.job_id = b.job_id AND "
                          "b.attempt = a.attempt + 1 WHERE a.job_id = %d ORDER BY a.attempt" % jid)
        self.assertEqual(len(gaps), 2)
        self.assertGreaterEqual(int(gaps[0][0]), 25000)
        self.assertGreaterEqual(int(gaps[1][0]), 50000)

    def test_dead_job_fails_environment_visibly(self):
        env = self.s.add_env(101)
        [jid] = self.s.add_jobs(1, {"retry": "registry unreachable"}, env=env, max_attempts=3)
        self.wait_done([jid], timeout=30)
        state, attempts, _, err = self.s.job(jid)
        self.assertEqual((state, attempts, err), ("dead", "3", "registry unreachable"))
        phase, error = self.s.sql("SELECT phase, error FROM environments WHERE id = %d" % env)[0]
        self.assertEqual(phase, "failed")
        self.assertIn("registry unreachable", error)
        self.assertIn("job %d (noop) failed after 3 attempts" % jid, error)
        # The status page shows it (HTML-escaped, through nginx).
        self.assertIn("failed", self.s.get("/").text)

    def test_fail_is_final_and_retry_after_is_honoured(self):
        [a] = self.s.add_jobs(1, {"fail": "bad compose file"})
        [b] = self.s.add_jobs(1, {"retry": "rate limited", "retry_after_ms": 1500},
                              max_attempts=2)
        self.wait_done([a, b], timeout=30)
        self.assertEqual(self.s.job(a)[:2], ("dead", "1"))
        self.assertEqual(self.s.job(a)[3], "bad compose file")
        self.assertEqual(self.s.job(b)[:2], ("dead", "2"))
        gap = self.s.one("SELECT TIMESTAMPDIFF(MICROSECOND, a.finished_at, b.started_at) "
                         "FROM noop_runs a JOIN noop_runs b ON b.job_id = a.job_id AND "
                         "b.attempt = 2 WHERE a.job_id = %d AND a.attempt = 1" % b)
        self.assertGreaterEqual(int(gap), 1400000)

    def test_unknown_kind_dies_with_clear_error(self):
        [jid] = self.s.add_jobs(1, kind="frobnicate")
        self.wait_done([jid], timeout=20)
        self.assertEqual(self.s.job(jid)[0], "dead")
        self.assertIn('unknown job kind "frobnicate"', self.s.job(jid)[3])

    def test_one_environment_never_overlaps(self):
        envs = [self.s.add_env(200 + i) for i in range(3)]
        ids = []
        # Keep each environment busy with a stream of slow jobs; enqueue
        # from several threads so queued and running jobs meet.
        # A feed that fails fails the test (a thread's exception alone
        # would only be printed).
        failed = []

        def feed(env):
            try:
                for _ in range(12):
                    self.s.driver("enqueue", "noop", env, 0, json.dumps({"sleep_ms": 60}))
                    time.sleep(0.03)
            except AssertionError as e:
                failed.append(str(e))
        threads = [threading.Thread(target=feed, args=(e,)) for e in envs for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(failed, [])
        ids = [int(r[0]) for r in self.s.sql(
            "SELECT id FROM jobs WHERE env_id IN (%s)" % ",".join(map(str, envs)))]
        self.wait_done(ids, timeout=60)
        total = 0
        for env in envs:
            runs = self.s.sql("SELECT job_id, started_at, finished_at FROM noop_runs "
                              "WHERE env_id = %d ORDER BY started_at" % env)
            total += len(runs)
            for prev, cur in zip(runs, runs[1:]):
                self.assertGreaterEqual(cur[1], prev[2],
                                        "env %d: job %s overlapped job %s" % (env, cur[0], prev[0]))
        self.assertGreaterEqual(total, 6)
        self.assertEqual(self.s.duplicates(ids), [])

    def test_coalescing_keeps_one_queued_per_kind(self):
        env = self.s.add_env(300)
        for delay in (60000, 50000, 70000, 55000):
            self.assertEqual(self.s.driver("enqueue", "noop", env, delay, ""), "ok")
        self.assertEqual(self.s.driver("enqueue", "reconcile", env, 60000, ""), "ok")
        self.assertEqual(self.s.driver("enqueue", "reconcile", env, 60000, ""), "ok")
        rows = self.s.sql("SELECT kind, COUNT(*), MIN(TIMESTAMPDIFF(SECOND, NOW(6), run_at)) "
                          "FROM jobs WHERE env_id = %d AND state = 'queued' GROUP BY kind "
                          "ORDER BY kind" % env)
        self.assertEqual([r[:2] for r in rows], [["noop", "1"], ["reconcile", "1"]])
        # The earliest run_at wins: a nudge never delays.
        self.assertLess(int(rows[0][2]), 51)
        # A job without an environment is never coalesced.
        self.s.driver("enqueue", "noop", 0, 60000, "")
        self.s.driver("enqueue", "noop", 0, 60000, "")
        self.assertEqual(self.s.one("SELECT COUNT(*) FROM jobs WHERE env_id IS NULL AND "
                                    "state = 'queued' AND run_at > NOW(6) + INTERVAL 30 SECOND"), "2")
        self.s.sql("UPDATE jobs SET state = 'cancelled' WHERE state = 'queued' AND "
                   "run_at > NOW(6) + INTERVAL 30 SECOND")

    def test_reaper_leadership(self):
        def leader():
            holder, term, live = self.s.sql(
                "SELECT holder, term, lease_until > NOW(6) FROM leases "
                "WHERE name = 'reaper'")[0]
            return holder, int(term), live == "1"
        self.assertTrue(wait_until(lambda: leader()[2], timeout=10))
        holder, term, _ = leader()
        pid = int(holder.rsplit(":", 1)[1])
        self.assertIn(pid, self.s.worker_pids())
        # A contender cannot take a live lease.
        self.assertEqual(self.s.driver("lease", "reaper", "contender", 2000), "free")
        os.kill(pid, signal.SIGKILL)
        self.assertTrue(wait_until(lambda: not alive(pid), timeout=5))
        old_until = self.s.one("SELECT lease_until FROM leases WHERE name = 'reaper'")
        self.assertTrue(wait_until(lambda: leader()[1] > term and leader()[2], timeout=20))
        holder2, term2, _ = leader()
        self.assertNotEqual(holder2, holder)
        self.assertIn(int(holder2.rsplit(":", 1)[1]), self.s.worker_pids())
        # Not before the dead leader's lease ran out.
        acquired = self.s.one("SELECT acquired_at FROM leases WHERE name = 'reaper'")
        self.assertGreaterEqual(acquired, old_until)
        # Exactly one leader per term, and terms only move forward.
        seen = {}
        for m in re.finditer(r"pid=(\d+) event=reaper_leader term=(\d+)", self.s.log("workers")):
            p, t = int(m.group(1)), int(m.group(2))
            self.assertNotIn(t, seen, "two leaders for term %d" % t)
            seen[t] = p
        self.assertEqual(seen.get(term2), int(holder2.rsplit(":", 1)[1]))

    def test_recurring_prune_job(self):
        # The default period is an hour: the leader enqueued one at start.
        self.assertTrue(wait_until(lambda: self.s.one(
            "SELECT COUNT(*) FROM jobs WHERE kind = 'prune' AND state = 'done'") >= "1",
            timeout=20))
        self.assertEqual(self.s.one("SELECT COUNT(*) FROM jobs WHERE kind = 'prune'"), "1")

    def test_zz_db_restart(self):
        ids = self.s.add_jobs(600, {"sleep_ms": 15})
        time.sleep(0.5)
        self.s.allow_db_outage()
        self.s.stack("db-stop")
        time.sleep(1.0)
        self.s.stack("db-start")
        self.wait_done(ids, timeout=180)
        self.assertEqual(self.s.duplicates(ids), [])
        self.assertEqual(self.s.missing(ids), [])
        self.assertEqual(self.s.one("SELECT COUNT(*) FROM jobs WHERE id IN (%s) "
                                    "AND state <> 'done'" % idlist(ids)), "0")
        self.assertTrue(wait_until(lambda: len(self.s.worker_pids()) == 8, timeout=20))


class StepTest(unittest.TestCase):
    """The queue functions one step at a time, with no workers running."""

    @classmethod
    def setUpClass(cls):
        # Leases of 10 s: a driver step that a loaded machine delays must
        # not see a lease expire that the test did not expire itself.
        cls.s = QueueStack("qstep", dict(QUICK, **{
            "workers.count": 2, "workers.poll_interval_ms": 30000,
            "workers.poll_max_ms": 30000, "workers.lease_seconds": 10}))
        start(cls.s)
        cls.s.stop_workers()

    @classmethod
    def tearDownClass(cls):
        cls.s.finish()  # stopped first: leak reports come at exit

    def setUp(self):
        self.s.sql("UPDATE jobs SET state = 'cancelled' WHERE state IN ('queued', 'running')")

    def claim(self):
        out = self.s.driver("claim")
        self.assertNotEqual(out, "none")
        jid, token, attempt = out.split()
        return int(jid), token, int(attempt)

    def expire(self, jid):
        self.s.sql("UPDATE jobs SET lease_until = NOW(6) - INTERVAL 1 SECOND WHERE id = %d" % jid)

    def test_stale_worker_is_fenced(self):
        [jid] = self.s.add_jobs(1)
        _, stale, _ = self.claim()
        self.assertEqual(self.s.driver("heartbeat", jid, stale), "ok")
        self.expire(jid)
        self.assertEqual(self.s.driver("rescue", jid, stale), "rescued")
        self.assertEqual(self.s.job(jid)[0], "queued")
        self.s.sql("UPDATE jobs SET run_at = NOW(6) WHERE id = %d" % jid)
        _, fresh, attempt = self.claim()
        self.assertEqual(attempt, 2)
        # The stale holder can neither finish, fail, re-queue, release
        # nor extend the job.
        for action in (("settle", jid, stale, "done"), ("settle", jid, stale, "fail"),
                       ("settle", jid, stale, "retry"), ("release", jid, stale),
                       ("heartbeat", jid, stale)):
            self.assertEqual(self.s.driver(*action), "lost", action)
            self.assertEqual(self.s.job(jid)[:2], ("running", "2"), action)
        # Nor can its handler's own write land (noop's record commits
        # with the settling): a cut-off worker that comes back has run
        # nothing as far as the database knows.
        self.assertEqual(self.s.driver("run", jid, stale), "lost")
        self.assertEqual(self.s.runs(jid), 0)
        self.assertEqual(self.s.driver("run", jid, fresh), "ok")
        self.assertEqual(self.s.job(jid)[0], "done")
        self.assertEqual(self.s.runs(jid), 1)
        # Settled is settled: the same token cannot settle it again.
        self.assertEqual(self.s.driver("settle", jid, fresh, "fail"), "lost")
        self.assertEqual(self.s.job(jid)[0], "done")

    def test_reaper_loses_to_finishing_worker(self):
        # The reaper read the expired row (token T), then the worker
        # finished before the reaper acted: the rescue must do nothing,
        # even on the job's last attempt, where a rescue would kill it.
        [jid] = self.s.add_jobs(1, max_attempts=1)
        _, token, _ = self.claim()
        self.expire(jid)
        self.assertEqual(self.s.driver("settle", jid, token, "done"), "ok")
        self.assertEqual(self.s.driver("rescue", jid, token), "skipped")
        self.assertEqual(self.s.job(jid)[:2], ("done", "1"))
        # And a lease that was renewed after the read is not rescued either.
        [jid] = self.s.add_jobs(1, max_attempts=1)
        _, token, _ = self.claim()
        self.assertEqual(self.s.driver("rescue", jid, token), "skipped")
        self.assertEqual(self.s.job(jid)[0], "running")
        # Expired on its last attempt: dead, with the reason kept.
        self.expire(jid)
        self.assertEqual(self.s.driver("rescue", jid, token), "rescued")
        state, _, _, err = self.s.job(jid)
        self.assertEqual(state, "dead")
        self.assertIn("lease expired", err)

    def test_busy_environment_defers(self):
        env = self.s.add_env(400)
        [a] = self.s.add_jobs(1, env=env, kind="reconcile")
        [b] = self.s.add_jobs(1, env=env)
        before = self.s.one("SELECT run_at FROM jobs WHERE id = %d" % b)
        ja, _, _ = self.claim()
        self.assertEqual(ja, a)
        # b's environment is busy: the claim steps over it, pushing it back.
        # (Compared with its own run_at, not the clock: on a loaded machine
        # the 100-200 ms deferral may be over before we look.)
        self.assertEqual(self.s.driver("claim"), "none")
        self.assertEqual(self.s.job(b)[:2], ("queued", "0"))
        later = self.s.one("SELECT run_at >= TIMESTAMP '%s' + INTERVAL 100000 MICROSECOND "
                           "FROM jobs WHERE id = %d" % (before, b))
        self.assertEqual(later, "1")

    def test_recurring_and_prune(self):
        # One prune per period, however often the reaper passes.
        count = lambda: int(self.s.one("SELECT COUNT(*) FROM jobs WHERE kind = 'prune'"))
        self.s.sql("UPDATE leases SET lease_until = NOW(6) - INTERVAL 1 SECOND "
                   "WHERE name = 'recurring:prune'")
        before = count()
        self.s.driver("reap")
        self.s.driver("reap")
        self.assertEqual(count(), before + 1)
        # While that one waits in the queue, a period gone by adds none: a
        # busy queue does not collect one per period.
        self.s.sql("UPDATE leases SET lease_until = NOW(6) - INTERVAL 1 SECOND "
                   "WHERE name = 'recurring:prune'")
        self.s.driver("reap")
        self.assertEqual(count(), before + 1)
        # Once it has run, the next period's is enqueued.
        self.s.sql("UPDATE jobs SET state = 'done', finished_at = NOW(6) WHERE "
                   "kind = 'prune' AND state = 'queued'")
        self.s.sql("UPDATE leases SET lease_until = NOW(6) - INTERVAL 1 SECOND "
                   "WHERE name = 'recurring:prune'")
        self.s.driver("reap")
        self.assertEqual(count(), before + 2)
        # The prune job deletes old finished jobs and keeps dead ones.
        old_done, old_dead, new_done = (self.s.add_jobs(1)[0] for _ in range(3))
        self.s.sql("UPDATE jobs SET state = 'done', finished_at = NOW(6) - INTERVAL 200 HOUR "
                   "WHERE id = %d" % old_done)
        self.s.sql("UPDATE jobs SET state = 'dead', finished_at = NOW(6) - INTERVAL 200 HOUR "
                   "WHERE id = %d" % old_dead)
        self.s.sql("UPDATE jobs SET state = 'done', finished_at = NOW(6) - INTERVAL 1 HOUR "
                   "WHERE id = %d" % new_done)
        self.s.sql("UPDATE jobs SET state = 'cancelled' WHERE kind = 'prune' AND "
                   "state = 'queued' AND id < (SELECT MAX(id) FROM (SELECT id FROM jobs "
                   "WHERE kind = 'prune') t)")
        self.assertIn("ran=1 ", self.s.driver("run", 1, "rc", "none"))
        self.assertIsNone(self.s.job(old_done))
        self.assertEqual(self.s.job(old_dead)[0], "dead")
        self.assertEqual(self.s.job(new_done)[0], "done")

    def test_prune_moves_old_deliveries_into_totals(self):
        """Deliveries older than keep_deliveries_days go, in batches of a
        thousand; ephemera_deliveries_total counts them still."""
        def totals():
            text = self.s.get("/metrics").text
            return {m.group(1, 2): int(m.group(3)) for m in re.finditer(
                r'^ephemera_deliveries_total\{event="([^"]*)",result="([^"]*)"\} (\d+)$',
                text, re.M)}

        self.s.sql("DELETE FROM deliveries")
        self.s.sql("DELETE FROM delivery_totals")
        self.s.sql("INSERT INTO deliveries (guid, event, result, received_at) "
                   "SELECT CONCAT('old-', seq), IF(seq % 3, 'pull_request', 'ping'), "
                   "IF(seq % 3, 'applied', 'pong'), NOW(6) - INTERVAL 31 DAY "
                   "FROM seq_1_to_1500")
        self.s.sql("INSERT INTO deliveries (guid, event, result, received_at) VALUES "
                   "('new-1', 'pull_request', 'applied', NOW(6) - INTERVAL 29 DAY), "
                   "('new-2', 'ping', 'pong', NOW(6))")
        before = totals()
        self.assertEqual(before, {("ping", "pong"): 501, ("pull_request", "applied"): 1001})
        self.assertEqual(self.s.driver("enqueue", "prune", 0, 0, ""), "ok")
        self.assertIn("ran=1 ", self.s.driver("run", 1, "rc", "none"))
        self.assertEqual(self.s.sql("SELECT guid FROM deliveries ORDER BY guid"),
                         [["new-1"], ["new-2"]])
        self.assertEqual(totals(), before)
        self.assertEqual(self.s.sql("SELECT event, result, n FROM delivery_totals ORDER BY event"),
                         [["ping", "pong", "500"], ["pull_request", "applied", "1000"]])

    def test_scheduled_job_waits_for_run_at(self):
        self.assertEqual(self.s.driver("enqueue", "noop", 0, 4000, ""), "ok")
        jid = int(self.s.one("SELECT MAX(id) FROM jobs"))
        self.assertEqual(self.s.driver("claim"), "none")
        self.assertTrue(wait_until(lambda: self.s.driver("claim") != "none", timeout=15,
                                   interval=0.1))
        early = self.s.one("SELECT started_at < run_at FROM jobs WHERE id = %d" % jid)
        self.assertEqual((self.s.job(jid)[0], early), ("running", "0"))

    def test_lone_statement_runs_again_after_a_lock_conflict(self):
        # An enqueue outside a transaction that loses a deadlock or a lock
        # wait did nothing, so it runs again (up to 4 tries in all); any
        # other error is the caller's. `d` returns what the driver printed.
        def d(tag, *inject):
            return self.s.driver("enqueue", "noop", 0, 0, json.dumps({"lone": tag}),
                                 *inject, check=False)

        def count(tag):
            return int(self.s.one("SELECT COUNT(*) FROM jobs WHERE payload = '%s'"
                                  % json.dumps({"lone": tag})))
        self.assertEqual(d("deadlock", 1213, 3), "ok")
        self.assertEqual(d("wait", 1205, 2), "ok")
        self.assertEqual(d("changed", 1020, 1), "ok")
        self.assertEqual(d("stubborn", 1213, 4), "error")
        self.assertEqual(d("other", 1146, 1), "error")
        self.assertEqual([count(t) for t in ("deadlock", "wait", "changed", "stubborn", "other")],
                         [1, 1, 1, 0, 0])

    def test_lease_terms(self):
        d = self.s.driver
        self.assertEqual(d("lease", "t1", "a", 5000), "held 1")
        self.assertEqual(d("lease", "t1", "b", 5000), "free")
        self.assertEqual(d("lease", "t1", "a", 5000, 1), "held 1")
        self.s.sql("UPDATE leases SET lease_until = NOW(6) - INTERVAL 1 SECOND "
                   "WHERE name = 't1'")
        self.assertEqual(d("lease", "t1", "b", 5000), "held 2")
        # The old holder's renewal at term 1 is refused.
        self.assertEqual(d("lease", "t1", "a", 5000, 1), "free")
        self.assertEqual(self.s.one("SELECT holder FROM leases WHERE name = 't1'"), "b")

    def concurrent(self, isolation):
        self.s.sql("SET GLOBAL TRANSACTION ISOLATION LEVEL %s" % isolation.replace("rc", "READ COMMITTED").replace("rr", "REPEATABLE READ"))
        try:
            n = 400
            procs = [subprocess.Popen([DRIVER, "-c", self.s.config, "insert", str(n // 2), isolation],
                                      env=self.s.env(), stdout=subprocess.PIPE, text=True)
                     for _ in range(2)]
            procs += [subprocess.Popen([DRIVER, "-c", self.s.config, "run", str(n), isolation, "inject"],
                                       env=self.s.env(), stdout=subprocess.PIPE, text=True)
                      for _ in range(3)]
            outs = [p.communicate(timeout=180)[0] for p in procs]
            for p, out in zip(procs, outs):
                self.assertEqual(p.returncode, 0, out)
            ran = sum(int(re.search(r"ran=(\d+)", o).group(1)) for o in outs[2:])
            injected = sum(int(re.search(r"injected=(\d+)", o).group(1)) for o in outs[2:])
            self.assertEqual(ran, n)
            self.assertGreater(injected, 10)
            ids = [int(r[0]) for r in self.s.sql(
                "SELECT id FROM jobs WHERE payload LIKE '%insert%' AND state <> 'cancelled'")]
            self.assertEqual(len(ids), n)
            self.assertEqual(self.s.duplicates(ids), [])
            self.assertEqual(self.s.one("SELECT COUNT(*) FROM jobs WHERE id IN (%s) AND "
                                        "state <> 'done'" % ",".join(map(str, ids))), "0")
            self.s.sql("UPDATE jobs SET payload = NULL WHERE payload LIKE '%insert%'")
        finally:
            self.s.sql("SET GLOBAL TRANSACTION ISOLATION LEVEL REPEATABLE READ")

    def test_concurrent_claims_read_committed(self):
        self.concurrent("rc")

    def test_concurrent_claims_repeatable_read(self):
        self.concurrent("rr")

    def test_ops_command(self):
        env = self.s.add_env(500)
        [a] = self.s.add_jobs(1, {"retry": "x"}, env=env)
        self.s.sql("UPDATE jobs SET state = 'dead', last_error = CONCAT('boom', CHAR(10), "
                   "CHAR(27), '[31mred') WHERE id = %d" % a)
        r = self.s.cli("list")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"(?m)^%d\s+noop\s+%d\s+dead\s+0/5" % (a, env))
        self.assertNotIn("\x1b", r.stdout)
        r = self.s.cli("list", "dead")
        self.assertIn("boom?", r.stdout)
        r = self.s.cli("show", a)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"(?m)^state\s+dead$")
        self.assertRegex(r.stdout, r"(?m)^last_error\s+boom\?\?\[31mred$")
        r = self.s.cli("retry", a)
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "ephemera: job %d queued" % a))
        self.assertEqual(self.s.job(a)[:2], ("queued", "0"))
        # A second queued job of the same kind for the environment: refused.
        [b] = self.s.add_jobs(1, env=env, kind="reconcile")
        self.s.sql("UPDATE jobs SET state = 'dead' WHERE id = %d" % b)
        self.s.sql("INSERT INTO jobs (kind, env_id) VALUES ('reconcile', %d)" % env)
        r = self.s.cli("retry", b)
        self.assertEqual(r.returncode, 1)
        self.assertIn("already queued", r.stderr)
        r = self.s.cli("cancel", a)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.s.job(a)[0], "cancelled")
        self.assertEqual(self.s.cli("cancel", a).returncode, 1)
        # Cancelling a running job fences its worker out.
        [c] = self.s.add_jobs(1)
        self.s.sql("UPDATE jobs SET run_at = NOW(6) + INTERVAL 1 HOUR WHERE state = 'queued' "
                   "AND id <> %d" % c)
        jid, token, _ = self.claim()
        self.assertEqual(jid, c)
        self.assertEqual(self.s.cli("cancel", c).returncode, 0)
        self.assertEqual(self.s.driver("heartbeat", c, token), "lost")
        self.assertEqual(self.s.driver("settle", c, token, "done"), "lost")
        self.assertEqual(self.s.job(c)[0], "cancelled")
        self.assertEqual(self.s.cli("show", 999999).returncode, 1)
        self.assertEqual(self.s.cli("show", "x'; DROP").returncode, 2)

    def test_zz_wakeup_nudge(self):
        # Poll interval 30 s: a job inserted behind the workers' back
        # waits; a nudged enqueue is claimed at once (and the other too).
        leaders = self.s.log("workers").count("event=reaper_leader")
        self.s.up()
        self.assertTrue(wait_until(lambda: self.s.log("workers").count("event=worker_ready") >= 2,
                                   timeout=20))
        # The new leader's first pass enqueues the recurring jobs that are
        # due, with a nudge of its own: wait until that is over, or the
        # nudge would wake the workers for the quiet job too.
        self.assertTrue(wait_until(
            lambda: self.s.log("workers").count("event=reaper_leader") > leaders and
            self.s.one("SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')") == "0",
            timeout=30))
        time.sleep(1.0)
        [quiet] = self.s.add_jobs(1)
        time.sleep(3.0)
        self.assertEqual(self.s.job(quiet)[0], "queued")
        self.assertEqual(self.s.driver("enqueue", "noop", 0, 0, ""), "ok")
        loud = int(self.s.one("SELECT MAX(id) FROM jobs"))
        self.assertTrue(wait_until(lambda: self.s.job(loud)[0] == "done", timeout=10))
        self.assertTrue(wait_until(lambda: self.s.job(quiet)[0] == "done", timeout=10))


class ShutdownTest(unittest.TestCase):
    """TERM, second TERM, SIGKILL of the supervisor, max_jobs; a second
    supervisor on another var_dir plays a worker host sharing the DB."""

    @classmethod
    def setUpClass(cls):
        cls.s = QueueStack("qshut", dict(QUICK, **{"workers.count": 2,
                                                  "workers.shutdown_timeout": 3,
                                                  "workers.max_jobs": 7}))
        start(cls.s)
        cls.remote = None

    @classmethod
    def tearDownClass(cls):
        cls.stop_remote()
        cls.s.finish()  # stopped first: leak reports come at exit

    @classmethod
    def start_remote(cls):
        var2 = os.path.join(cls.s.dir, "var2")
        os.makedirs(os.path.join(var2, "run"), exist_ok=True)
        os.makedirs(os.path.join(var2, "log"), exist_ok=True)
        conf = os.path.join(cls.s.dir, "remote.conf")
        text = open(cls.s.config).read().replace('var_dir = "%s"' % cls.s.var,
                                                  'var_dir = "%s"' % var2)
        text += '\ndatabase: { socket = "%s"; };\n' % os.path.join(cls.s.var, "run", "mysqld.sock")
        # libconfig refuses a duplicate group: merge into the existing one.
        if text.count("database:") > 1:
            raise AssertionError("unexpected database group in test config")
        with open(conf, "w") as f:
            f.write(text)
        log = open(os.path.join(cls.s.var, "log", "remote-workers.log"), "a")
        cls.remote = subprocess.Popen([WORKERS, "-c", conf], env=cls.s.env(), stdout=log,
                                      stderr=log, start_new_session=True)
        log.close()

    @classmethod
    def stop_remote(cls):
        if cls.remote is not None and cls.remote.poll() is None:
            cls.remote.send_signal(signal.SIGTERM)
            cls.remote.wait(timeout=30)
        cls.remote = None

    def running_on(self, jid):
        state, _, worker, _ = self.s.job(jid)
        return worker if state == "running" else None

    def test_term_lets_the_job_finish(self):
        [jid] = self.s.add_jobs(1, {"sleep_ms": 1200})
        self.assertTrue(wait_until(lambda: self.running_on(jid), timeout=10))
        sup = self.s.pid("workers")
        t0 = time.monotonic()
        os.kill(sup, signal.SIGTERM)
        self.assertTrue(wait_until(lambda: not alive(sup), timeout=10))
        self.assertLess(time.monotonic() - t0, 3.5)
        self.assertEqual(self.s.job(jid)[:2], ("done", "1"))
        self.assertEqual(self.s.runs(jid), 1)
        self.s.up()

    def check_resumed(self, second_term):
        [jid] = self.s.add_jobs(1, {"sleep_ms": 4000})
        self.assertTrue(wait_until(lambda: self.running_on(jid), timeout=10))
        first = self.running_on(jid)
        self.start_remote()
        try:
            sup = self.s.pid("workers")
            kids = self.s.children(sup)
            t0 = time.monotonic()
            os.kill(sup, signal.SIGTERM)
            if second_term:
                time.sleep(0.3)
                os.kill(sup, signal.SIGTERM)
            self.assertTrue(wait_until(lambda: not alive(sup), timeout=10))
            took = time.monotonic() - t0
            self.assertLess(took, 3.5)
            self.assertFalse([p for p in kids if alive(p)])
            # Released, not expired: another host resumes it at once and
            # the interrupted attempt is not counted.
            self.assertIn("event=job_released job=%d" % jid, self.s.log("workers"))
            self.assertTrue(wait_until(lambda: self.s.job(jid)[0] == "done", timeout=20))
            state, attempts, worker, _ = self.s.job(jid)
            self.assertEqual(attempts, "1")
            self.assertNotEqual(worker, first)
            self.assertEqual(self.s.runs(jid), 1)
            if second_term:
                # Released on the second TERM, not at the deadline (2.25 s
                # after the first), judged from the workers' own log.
                log = self.s.log("workers")
                stop = re.findall(r"ts=(\S+) .*event=supervisor_stop", log)[-1]
                rel = re.search(r"ts=(\S+) .*event=job_released job=%d " % jid, log).group(1)
                self.assertLess(stamp(rel) - stamp(stop), 2.0)
        finally:
            self.stop_remote()
            self.s.up()

    def test_term_timeout_releases_to_another_worker(self):
        self.check_resumed(second_term=False)

    def test_second_term_releases_at_once(self):
        self.check_resumed(second_term=True)

    def test_max_jobs_respawns(self):
        sup = self.s.pid("workers")
        before = set(self.s.children(sup))
        # 50 ms each: long enough that both workers (the second polls
        # within poll_max_ms) take their 7; instant jobs were all done by
        # the first and its successors on a fast machine.
        ids = self.s.add_jobs(40, {"sleep_ms": 50})
        self.assertTrue(wait_until(lambda: self.s.all_done(ids), timeout=60))
        self.assertEqual(self.s.duplicates(ids), [])
        self.assertEqual(self.s.missing(ids), [])
        after = set(self.s.children(sup))
        self.assertEqual(len(after), 2)
        self.assertFalse(before & after, "workers were not replaced after max_jobs")

    def test_zz_sigkill_supervisor(self):
        sup = self.s.pid("workers")
        kids = self.s.children(sup)
        self.assertEqual(len(kids), 2)
        os.kill(sup, signal.SIGKILL)
        self.assertTrue(wait_until(lambda: not any(alive(p) for p in kids), timeout=10),
                        "children outlived the supervisor")
        ids = self.s.add_jobs(5)
        time.sleep(1.5)
        self.assertEqual(self.s.one("SELECT COUNT(*) FROM jobs WHERE id IN (%s) AND "
                                    "state = 'queued'" % idlist(ids)), "5")
        self.s.up()
        self.assertTrue(wait_until(lambda: self.s.all_done(ids), timeout=20))


if __name__ == "__main__":
    unittest.main()
