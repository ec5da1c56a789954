"""Issue 19: more worker hosts, one database. Three worker hosts and a
database host, each its own network namespace with its own address
(tests/harness/cluster.py); the workers reach MariaDB over TCP with TLS as
the app user. Every noop job records its run inside its settling
transaction, fenced on its lease (noop.c), so noop_runs counts executions:
a job with no row was lost, a job with two ran twice.

One cluster serves the three tests, in order: a plain drain, a host cut
off mid-run, a host SIGKILLed every few seconds."""
import threading
import time
import unittest

from harness.cluster import Cluster, have_netns
from harness.stack import alive, wait_until

SETTINGS = {
    "workers.count": 4,
    "workers.lease_seconds": 3,
    "workers.poll_interval_ms": 20,
    "workers.poll_max_ms": 300,
    "workers.backoff_base_ms": 50,
    "workers.backoff_cap_ms": 400,
    "workers.shutdown_timeout": 5,
}
JOBS = 20000


@unittest.skipUnless(have_netns(), "needs root and iproute2 for network namespaces")
class ClusterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Cluster("cluster", hosts=3, settings=SETTINGS).up()
        for h in cls.c.hosts:
            h.start()

    @classmethod
    def tearDownClass(cls):
        cls.c.down()

    def setUp(self):
        for h in self.c.hosts:
            h.heal()
            if h.proc is None or h.proc.poll() is not None:
                h.start()
        self.assertTrue(wait_until(self.all_beating, timeout=60), self.beats())

    def beats(self):
        return self.c.sql("SELECT name, TIMESTAMPDIFF(MICROSECOND, heartbeat_at, NOW(6)) / 1e6 "
                          "FROM worker_hosts ORDER BY name")

    def all_beating(self):
        fresh = [h for h, age in self.beats() if float(age) < 10]
        return sorted(fresh) == [h.name for h in self.c.hosts]

    def wait_drained(self, tag, timeout):
        ok = wait_until(lambda: self.c.drained(tag), timeout=timeout, interval=0.5)
        self.assertTrue(ok, "not drained: %r\n%s" % (self.c.states(tag), self.tails()))

    def tails(self):
        return "\n".join("--- %s\n%s" % (h.name, h.stack.log("workers")[-3000:])
                         for h in self.c.hosts)

    def check_once(self, tag, n):
        jobs, lost, twice, per_host = self.c.tally(tag)
        self.assertEqual(jobs, n)
        self.assertEqual(self.c.states(tag), {"done": n}, self.tails())
        self.assertEqual((lost, twice), (0, 0), "lost %d, ran twice %d" % (lost, twice))
        return per_host

    def test_1_drain_20000_on_three_hosts(self):
        t0 = time.monotonic()
        tag = self.c.add_jobs(JOBS)
        self.wait_drained(tag, timeout=900)
        secs = time.monotonic() - t0
        per_host = self.check_once(tag, JOBS)
        print("\n    drain: %d jobs in %.1f s (%.0f jobs/s), zero lost, zero twice; per host: %s"
              % (JOBS, secs, JOBS / secs, ", ".join("%s %d" % kv for kv in per_host.items())))
        self.assertEqual(sorted(per_host), ["w1", "w2", "w3"])
        # /jobs reads worker_hosts: one row per supervisor, each beating.
        self.assertTrue(self.all_beating(), self.beats())

    def test_2_cut_off_host_is_rescued_and_fenced(self):
        w3 = self.c.hosts[2]
        tag = self.c.add_jobs(2000, {"sleep_ms": 150})
        where = self.c.where(tag)
        held = lambda: self.c.sql(  # noqa: E731
            "SELECT id, lease_token FROM jobs WHERE %s AND state = 'running' "
            "AND worker LIKE 'w3:%%'" % where)
        self.assertTrue(wait_until(lambda: len(held()) >= 2, timeout=60), self.tails())
        w3.cut()
        cut_at = time.time()
        # What w3 held at the cut (a job it settled just before is done).
        time.sleep(0.5)
        leases = held()
        stranded = [int(r[0]) for r in leases]
        self.assertTrue(stranded, "w3 held nothing at the cut")
        ids = ",".join(map(str, stranded))
        try:
            # Its processes go on running; its jobs are rescued after the
            # lease (queued again, behind the rest) and finish elsewhere.
            self.assertTrue(all(alive(p) for p in w3.pids()) and w3.pids())
            rescued = lambda: self.c.one(  # noqa: E731
                "SELECT COUNT(*) FROM jobs WHERE id IN (%s) AND "
                "IFNULL(worker, '') NOT LIKE 'w3:%%'" % ids)
            self.assertTrue(wait_until(lambda: rescued() == str(len(stranded)), timeout=60),
                            "%s\n%s" % (self.c.sql("SELECT id, state, worker FROM jobs "
                                                   "WHERE id IN (%s)" % ids), self.tails()))
            # Long enough for w3's own view of its leases to run out too.
            time.sleep(max(0, cut_at + 10 - time.time()))
            self.assertTrue(w3.pids() and all(alive(p) for p in w3.pids()))
        finally:
            w3.heal()
        healed_at = time.time()
        # Back on the link, w3 beats again once TCP retransmits (its
        # connections were never closed: up to a minute of backoff, and
        # at most the client's 120 s read timeout), and claims again.
        self.assertTrue(wait_until(lambda: self.c.one(
            "SELECT heartbeat_at > FROM_UNIXTIME(%f) FROM worker_hosts WHERE name = 'w3'"
            % healed_at) == "1", timeout=150), self.beats())
        back = time.time() - healed_at
        self.wait_drained(tag, timeout=300)
        self.check_once(tag, 2000)
        again = self.c.add_jobs(300, {"sleep_ms": 20})
        self.wait_drained(again, timeout=120)
        self.assertIn("w3", self.check_once(again, 300), self.tails())
        # ... and its stale workers wrote nothing under the leases they
        # held at the cut (w3 may have claimed one of those jobs again
        # once back: a new lease, and still one run).
        runs = self.c.sql("SELECT job_id, lease_token, SUBSTRING_INDEX(worker, ':', 1) "
                          "FROM noop_runs WHERE job_id IN (%s) ORDER BY job_id" % ids)
        self.assertEqual(len(runs), len(stranded))
        stale = set(map(tuple, leases))
        self.assertEqual([r for r in runs if (r[0], r[1]) in stale], [], runs)
        fenced = w3.stack.log("workers").count("event=lease_lost")
        print("\n    cut off: w3 held %d jobs; rescued and run once elsewhere (%s); "
              "link down %.0f s; w3 beating again %.0f s after the link returned; "
              "%d lease_lost lines in its log"
              % (len(stranded), ", ".join(sorted(set(r[2] for r in runs))),
                 healed_at - cut_at, back, fenced))

    def test_3_sigkill_soak(self):
        w2 = self.c.hosts[1]
        tag = self.c.add_jobs(JOBS, {"sleep_ms": 2})
        kills = [0]
        stop = threading.Event()

        def killer():
            while not stop.wait(3.0):
                w2.kill()
                kills[0] += 1
                time.sleep(0.5)
                w2.start()

        t = threading.Thread(target=killer, daemon=True)
        t0 = time.monotonic()
        t.start()
        try:
            self.wait_drained(tag, timeout=1200)
        finally:
            stop.set()
            t.join(timeout=60)
        secs = time.monotonic() - t0
        per_host = self.check_once(tag, JOBS)
        rescued = int(self.c.one("SELECT COUNT(*) FROM jobs WHERE %s AND attempts > 1"
                                 % self.c.where(tag)))
        print("\n    soak: %d jobs in %.1f s, w2 SIGKILLed %d times, %d jobs rescued "
              "after a kill, zero lost, zero twice; per host: %s"
              % (JOBS, secs, kills[0], rescued,
                 ", ".join("%s %d" % kv for kv in per_host.items())))
        self.assertGreaterEqual(kills[0], 3, "the drain ended before the soak did anything")
        self.assertGreater(rescued, 0, "no kill caught a job mid-run")


if __name__ == "__main__":
    unittest.main()
