"""Two worker hosts on one database (issue 19's host-scoped work): the
stack's workers as host-a, and a second worker pool as host-b (its own
var_dir, the same MariaDB). A local environment deployed by host-a is
bound to it (environments.compute_host): while host-a is down, host-b
leaves its reconcile queued, yet runs every job that may run anywhere;
host-a, back, finishes it. /api/v1/jobs shows each host's heartbeat and
which worker runs what."""
import os
import signal
import subprocess
import time
import unittest

from harness import events
from harness.stack import wait_until
from test_local import LocalProviderBase


class WorkerHostsTest(LocalProviderBase):
    settings = {"workers.host": "host-a", "workers.lease_seconds": 10}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # host-b: the same configuration but its name and its own var_dir.
        cls.b_var = os.path.join(cls.tmp, "host-b")
        for d in ("run", "log", "tmp"):
            os.makedirs(os.path.join(cls.b_var, d))
        text = open(cls.s.config).read()
        cls.b_config = os.path.join(cls.tmp, "host-b.conf")
        with open(cls.b_config, "w") as f:
            f.write(text.replace('host = "host-a";', 'host = "host-b";')
                    .replace('var_dir = "%s";' % cls.s.var,
                             'var_dir = "%s";\ndatabase: { socket = "%s"; };'
                             % (cls.b_var, os.path.join(cls.s.var, "run", "mysqld.sock"))))
        cls.b_proc = None

    @classmethod
    def tearDownClass(cls):
        cls.stop_b()
        super().tearDownClass()

    @classmethod
    def start_b(cls):
        log = open(os.path.join(cls.b_var, "log", "workers.log"), "ab")
        cls.b_proc = subprocess.Popen(
            [os.path.join(cls.s.bin, "ephemera-workers"), "-c", cls.b_config],
            stdout=log, stderr=subprocess.STDOUT, env=cls.s.env(), start_new_session=True)

    @classmethod
    def stop_b(cls):
        if cls.b_proc and cls.b_proc.poll() is None:
            cls.b_proc.send_signal(signal.SIGTERM)
            cls.b_proc.wait(timeout=60)

    def a_workers(self, up):
        if up:
            self.s.up()
            return
        pid = int(open(os.path.join(self.s.var, "run", "workers.pid")).read())
        os.kill(pid, signal.SIGTERM)
        self.assertTrue(wait_until(lambda: not os.path.exists("/proc/%d" % pid)
                                   or open("/proc/%d/stat" % pid).read().split()[2] == "Z",
                                   timeout=60))

    def jobs_of(self, env_id):
        return self.s.sql("SELECT kind, state, IFNULL(worker, '') FROM jobs "
                          "WHERE env_id = %d ORDER BY id" % env_id)

    def test_local_environment_stays_with_its_host(self):
        repo = self.repos["acme/hello"]
        sha = repo.commit("placed")
        self.deliver("pull_request", events.pull_request("opened", "acme/hello", 1, sha))
        e = self.wait_phase("acme/hello", 1, "ready", sha=sha)
        self.assertEqual(self.s.sql("SELECT compute_host FROM environments WHERE id = %d"
                                    % e["id"]), [["host-a"]])
        self.start_b()
        self.a_workers(up=False)

        # host-a is down: its environment's teardown waits for it ...
        self.deliver("pull_request", events.pull_request("closed", "acme/hello", 1, sha))
        # ... while host-b runs what any host may (the queue's own jobs).
        self.s.sql("INSERT INTO jobs (kind, payload) VALUES ('noop', '{}'), ('noop', '{}'), "
                   "('noop', '{}')")
        self.assertTrue(wait_until(lambda: self.s.sql(
            "SELECT COUNT(*) FROM jobs WHERE kind = 'noop' AND state = 'done' AND "
            "worker LIKE 'host-b:%'") == [["3"]], timeout=30),
            self.s.sql("SELECT kind, state, worker FROM jobs WHERE kind = 'noop'"))
        time.sleep(3)
        self.assertEqual(self.env("acme/hello", 1)["phase"], "ready")
        pending = [j for j in self.jobs_of(e["id"]) if j[0] == "reconcile" and j[1] == "queued"]
        self.assertEqual(len(pending), 1, self.jobs_of(e["id"]))

        # The status API: both hosts, host-b beating, host-a silent. Beats
        # are 5 s apart and shown to the second: wait for host-b's next.
        def beaten():
            hosts = {h["name"]: h for h in self.s.get("/api/v1/jobs").json()["hosts"]}
            return hosts if hosts.get("host-b", {}).get("heartbeat_at", "") > \
                hosts.get("host-a", {}).get("heartbeat_at", "") else None
        hosts = wait_until(beaten, timeout=15)
        self.assertTrue(hosts, self.s.get("/api/v1/jobs").json()["hosts"])
        self.assertEqual(set(hosts), {"host-a", "host-b"})
        self.assertEqual(hosts["host-b"]["workers"], 2)
        page = self.s.get("/jobs").text
        self.assertIn("Worker hosts", page)
        self.assertIn("host-b", page)

        # host-a back: it finishes the teardown; host-b ran none of it.
        self.a_workers(up=True)
        self.wait_phase("acme/hello", 1, "destroyed", timeout=120)
        workers = {j[2].split(":")[0] for j in self.jobs_of(e["id"]) if j[0] == "reconcile"}
        self.assertEqual(workers, {"host-a"}, self.jobs_of(e["id"]))


if __name__ == "__main__":
    unittest.main()
