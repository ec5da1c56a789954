"""Issue 13, with real Docker, nginx and MariaDB:

- the sweep never races a deploy: an orphan's teardown and a deploy of the
  same slug started together (rounds of EPHEMERA_RACE_ROUNDS, 100 by
  default): the deploy completes, its work dir never removed under it;
- our failures are ours: a work dir that vanishes mid-deploy is retried,
  then ready, and never reported as "the compose file is not valid"."""
import concurrent.futures
import os
import random
import shutil
import subprocess
import threading
import time
import unittest

from harness import events
from harness.stack import Stack, http, wait_until
from test_local import HELLO, Repo, docker_ids

ROUNDS = int(os.environ.get("EPHEMERA_RACE_ROUNDS", "100"))
PARALLEL = 4

# A prebuilt image only: a deploy is fetch, config, up, route, verify.
RACE_COMPOSE = """services:
  web:
    image: ephemera/busybox:1
    command: ["/bin/sh", "-c", "mkdir -p /w && echo race > /w/index.html && exec /bin/httpd -f -p 80 -h /w"]
    expose: ["80"]
"""
RACE_CONF = 'compose_file = "compose.yaml";\nbuild = false;\n'


class RaceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        subprocess.run([os.path.join(os.path.dirname(HELLO), "busybox-image.sh")], check=True)
        cls.s = Stack("races", {"workers.count": PARALLEL, "workers.lease_seconds": 6,
                                "workers.sweep_interval_seconds": 1,
                                "workers.sweep_grace_seconds": 0,
                                # The race repository runs a prebuilt image.
                                "environments.allowed_images": "ephemera/busybox:",
                                "environments.max_running": 100})
        cls.instance = cls.s.settings["environments.instance"]
        cls.race = Repo(cls.s.dir, "acme/race")
        for f in os.listdir(cls.race.path):
            if f != ".git":
                p = os.path.join(cls.race.path, f)
                shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
        cls.race_sha = cls.race.commit("race", {"compose.yaml": RACE_COMPOSE,
                                                ".ephemera.conf": RACE_CONF})
        cls.slow = Repo(cls.s.dir, "acme/slow")
        cls.slow_sha = cls.slow.commit("slow", {"web/Dockerfile": open(os.path.join(
            HELLO, "web", "Dockerfile")).read().replace("EXPOSE 80", "RUN sleep 3\nEXPOSE 80")})
        cls.s.extra = "repos = (\n%s\n);\n" % ",\n".join(
            '{ name = "%s"; source = "%s"; }' % (n, r.path)
            for n, r in (("acme/race", cls.race), ("acme/slow", cls.slow)))
        cls.s.write_config()
        cls.s.up()

    @classmethod
    def tearDownClass(cls):
        cls.s.down()
        reports = cls.s.sanitizer_reports()
        for kind, cmd in (("container", ["docker", "rm", "-f", "-v"]),
                          ("network", ["docker", "network", "rm"])):
            ls = ["docker", "ps", "-aq"] if kind == "container" else ["docker", "network", "ls", "-q"]
            ids = subprocess.run(ls + ["--filter", "label=io.ephemera.instance=%s" % cls.instance],
                                 stdout=subprocess.PIPE, text=True).stdout.split()
            if ids:
                subprocess.run(cmd + ids, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cls.s.cleanup()
        assert not reports, "sanitizer reports:\n" + "\n".join(reports)

    def deliver(self, event, payload):
        body, headers = events.signed(self.s.secret, event, payload)
        r = self.s.post("/webhook", body, headers)
        self.assertIn(r.status, (200, 202), r.text)

    def env_row(self, repo, pr):
        rows = self.s.sql("SELECT id, slug, phase, IFNULL(error, '') FROM environments "
                          "WHERE repo = '%s' AND pr = %d" % (repo, pr))
        return rows[0] if rows else None

    def wait_phase(self, repo, pr, phase, timeout=180, seen=None):
        def done():
            row = self.env_row(repo, pr)
            if row and seen is not None and row[3]:
                seen.add(row[3])
            return row if row and row[2] == phase else None
        row = wait_until(done, timeout=timeout, interval=0.2)
        if not row:
            now = self.env_row(repo, pr)
            self.fail("%s#%d never reached %s (now %r)\n%s" % (
                repo, pr, phase, now, self.about(now)))
        return row

    def about(self, row):
        """The workers' lines about an environment and its builds' logs."""
        if not row:
            return self.s.log("workers")[-3000:]
        builds = self.s.sql("SELECT id, status, IFNULL(error, ''), RIGHT(IFNULL(log_tail, ''), "
                            "1500) FROM builds WHERE env_id = %s" % row[0])
        return "%s\n%s" % (self.s.log_about("workers", "env=%s " % row[0], row[1]),
                            "\n".join(" | ".join(b) for b in builds))

    def steps(self, env_id):
        return self.s.sql("SELECT b.status, s.name, s.status, IFNULL(s.detail, '') FROM builds b "
                          "JOIN build_steps s ON s.build_id = b.id WHERE b.env_id = %s "
                          "ORDER BY s.id" % env_id)

    def host_down_running(self, slug):
        want = ("EPH_PROJECT=%s-%s" % (self.instance, slug)).encode()
        pids = subprocess.run(["pgrep", "-f", "ephemera-host down"], stdout=subprocess.PIPE,
                              text=True).stdout.split()
        for pid in pids:
            try:
                with open("/proc/%s/environ" % pid, "rb") as f:
                    if want in f.read().split(b"\0"):
                        return True
            except OSError:
                pass
        return False

    def one_round(self, n):
        slug = "pr-%d-race" % n
        # What an earlier installation run left: a work dir of ours that
        # no environment owns, the sweep's to remove.
        d = os.path.join(self.s.var, "envs", slug)
        os.makedirs(os.path.join(d, "src"))
        with open(os.path.join(d, ".ephemera-instance"), "w") as f:
            f.write(self.instance + "\n")
        # Mostly the moment the sweep's teardown of this orphan starts
        # (its `down` is running): the delivery and the deploy's fetch
        # then land inside the teardown; otherwise any moment.
        if random.random() < 0.75:
            wait_until(lambda: self.host_down_running(slug), timeout=6, interval=0.02)
        else:
            time.sleep(random.uniform(0, 2.5))
        self.deliver("pull_request", events.pull_request("opened", "acme/race", n,
                                                         self.race_sha))
        env_id, slug2, _, _ = self.wait_phase("acme/race", n, "ready", timeout=240)
        self.assertEqual(slug2, slug)
        steps = self.steps(env_id)
        failed = [s for s in steps if s[2] != "succeeded"]
        self.assertEqual(failed, [], "round %d: the deploy was disturbed" % n)
        # The deploy's work dir is still there after it.
        for rel in (".ephemera-instance", "src/.git", "src/compose.yaml", "compose.json"):
            self.assertTrue(os.path.exists(os.path.join(d, rel)), "round %d: %s is gone" % (n, rel))
        r = http("GET", self.s.url("/"), headers={"Host": "%s.localhost" % slug})
        self.assertIn("race", r.text, "round %d: ready, yet the URL answers %d\n%s" % (
            n, r.status, self.about(self.env_row("acme/race", n))))
        self.deliver("pull_request", events.pull_request("closed", "acme/race", n,
                                                         self.race_sha))
        return n

    def test_sweep_and_deploy_of_one_slug(self):
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
            for f in [pool.submit(self.one_round, 100 + i) for i in range(ROUNDS)]:
                f.result()
        for i in range(ROUNDS):
            self.wait_phase("acme/race", 100 + i, "destroyed", timeout=240)
        with open(os.path.join(self.s.var, "log", "workers.log")) as f:
            removed = sum(1 for l in f if "orphan_removed" in l)
        print("    (%d rounds in %.0f s; %d orphans removed by the sweep)"
              % (ROUNDS, time.monotonic() - t0, removed))

    def test_vanished_work_dir_is_retried_then_ready(self):
        pr = 7
        d = os.path.join(self.s.var, "envs", "pr-%d-slow" % pr)
        removed = []
        stop = threading.Event()

        def vandal():
            # Each time the checkout is back, the work dir goes again,
            # three times: the fetch, configure or up of that try fails.
            while not stop.is_set() and len(removed) < 3:
                if os.path.exists(os.path.join(d, "src", "docker-compose.yml")):
                    shutil.rmtree(d, ignore_errors=True)
                    removed.append(time.monotonic())
                    time.sleep(0.3)
                time.sleep(0.02)
        t = threading.Thread(target=vandal)
        t.start()
        seen = set()
        try:
            self.deliver("pull_request", events.pull_request("opened", "acme/slow", pr,
                                                             self.slow_sha))
            env_id = self.wait_phase("acme/slow", pr, "ready", timeout=300, seen=seen)[0]
        except AssertionError:
            print(self.s.sql("SELECT status, error, RIGHT(log_tail, 1500) FROM builds"))
            raise
        finally:
            stop.set()
            t.join()
        self.assertEqual(len(removed), 3)
        details = [s[3] for s in self.steps(env_id)]
        errors = self.s.sql("SELECT IFNULL(error, '') FROM builds WHERE env_id = %s" % env_id)
        text = "\n".join(details + [e[0] for e in errors] + list(seen))
        self.assertNotIn("compose file is not valid", text)
        self.assertNotIn("did not start", text)
        # It was disturbed, and said whose failure it was.
        self.assertTrue(any(s[2] == "failed" for s in self.steps(env_id)), text)
        r = http("GET", self.s.url("/"), headers={"Host": "pr-%d-slow.localhost" % pr})
        self.assertIn(self.slow_sha, r.text)
        self.deliver("pull_request", events.pull_request("closed", "acme/slow", pr, self.slow_sha))
        self.wait_phase("acme/slow", pr, "destroyed")


if __name__ == "__main__":
    unittest.main()
