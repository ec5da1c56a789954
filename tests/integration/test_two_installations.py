"""Issue 13: two installations from two clones on one Docker engine, both
running the demo at once (`make run`, the same slug pr-1-hello in each)
with a sweep every second, through rounds of close/reopen
(EPHEMERA_TWO_ROUNDS, 20 by default): every demo serves, no
orphan_removed names the other's project, and both clones' git status
stays clean with their HEADs unchanged."""
import concurrent.futures
import datetime
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from harness.stack import ROOT, free_port, http, wait_until
from test_standalone import MakeRun, clean_env, installation_remove

ROUNDS = int(os.environ.get("EPHEMERA_TWO_ROUNDS", "20"))


def git(tree, *args):
    return subprocess.run(["git", "-C", tree, *args], check=True, stdout=subprocess.PIPE,
                          text=True).stdout


class Installation:
    def __init__(self, outer, name):
        self.tree = os.path.join(outer, name)
        subprocess.run(["git", "clone", "-q", ROOT, self.tree], check=True)
        self.head = git(self.tree, "rev-parse", "HEAD").strip()
        self.branch = git(self.tree, "symbolic-ref", "HEAD").strip()
        self.builds_reuse()
        self.port = free_port()
        # The example configuration with a sweep every second (the reaper
        # ticks at a third of the lease), kept outside the clone.
        text = open(os.path.join(self.tree, "config", "example.conf")).read()
        text = re.sub(r"sweep_interval_seconds = \d+;", "sweep_interval_seconds = 1;", text)
        text = re.sub(r"lease_seconds = \d+;", "lease_seconds = 6;", text)
        # No grace: the sweep acts on whatever it takes for an orphan at
        # once, so only the identity keeps it off the other's project.
        text = re.sub(r"sweep_grace_seconds = \d+;", "sweep_grace_seconds = 0;", text)
        self.config = os.path.join(outer, name + ".conf")
        with open(self.config, "w") as f:
            f.write(text)
        self.run = None
        self.sha = None
        self.clock = 0

    def builds_reuse(self):
        """The binaries of ROOT when it is at HEAD with nothing changed:
        two clones need not compile the same sources twice more."""
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               stdout=subprocess.PIPE, text=True).stdout
        if dirty or git(ROOT, "rev-parse", "HEAD").strip() != self.head or \
                not os.path.isdir(os.path.join(ROOT, "build", "release")):
            return
        for d in ("bin", os.path.join("build", "release")):
            shutil.copytree(os.path.join(ROOT, d), os.path.join(self.tree, d))
        now = time.time() + 1
        for top in ("bin", "build"):
            for dp, _, fs in os.walk(os.path.join(self.tree, top)):
                for f in fs:
                    os.utime(os.path.join(dp, f), (now, now))

    def env(self):
        env = clean_env()
        env["CONFIG"] = self.config
        env["PORT"] = str(self.port)
        return env

    def start(self):
        self.run = MakeRun(self.tree, self.env())

    def instance(self):
        return subprocess.run([os.path.join(self.tree, "bin", "ephemera"), "-c", self.config,
                               "config", "get", "environments.instance"], cwd=self.tree,
                              check=True, stdout=subprocess.PIPE, text=True).stdout.strip()

    def demo_env(self):
        r = http("GET", "http://127.0.0.1:%d/api/v1/environments" % self.port)
        if r.status != 200:
            return None
        for e in r.json():
            if e["repo"] == "demo/hello" and e["pr"] == 1:
                return e
        return None

    def wait_phase(self, phase, timeout=300):
        e = wait_until(lambda: (self.demo_env() or {}).get("phase") == phase and self.demo_env(),
                       timeout=timeout, interval=0.3)
        if not e:
            raise AssertionError("%s: the demo never reached %s (now %r)\n%s" % (
                self.tree, phase, self.demo_env(), self.log_events()))
        return e

    def serves(self):
        r = http("GET", "http://127.0.0.1:%d/" % self.port,
                 headers={"Host": "pr-1-hello.localhost"})
        return r.status == 200 and self.sha in r.text

    def deliver(self, action):
        """The demo's pull_request event, each newer than the last."""
        self.clock += 1
        at = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
            minutes=5, seconds=self.clock)).strftime("%Y-%m-%dT%H:%M:%SZ")
        repo = {"name": "hello", "full_name": "demo/hello", "owner": {"login": "demo"},
                "clone_url": "https://github.invalid/demo/hello.git"}
        ref = {"ref": "demo", "sha": self.sha, "label": "demo:demo", "repo": repo}
        payload = {"action": action, "number": 1, "repository": repo,
                   "sender": {"login": "demo", "type": "User"},
                   "pull_request": {"number": 1, "state": "closed" if action == "closed" else "open",
                                    "draft": False, "locked": False, "title": "Demo: hello",
                                    "body": "", "user": {"login": "demo", "type": "User"},
                                    "author_association": "OWNER", "created_at": at,
                                    "updated_at": at, "labels": [], "head": ref,
                                    "base": dict(ref, ref="main")}}
        path = os.path.join(self.tree, "var", "event.json")
        with open(path, "w") as f:
            json.dump(payload, f)
        env = self.env()
        env["EPHEMERA_HTTP_PORT"] = str(self.port)  # what make run gives its programs
        r = subprocess.run([os.path.join(self.tree, "bin", "ephemera"), "-c", self.config,
                            "deliver", "pull_request", path], cwd=self.tree, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise AssertionError("deliver %s failed: %s" % (action, r.stdout))

    def round(self, delay=0):
        time.sleep(delay)  # the two out of step: one closes while the other deploys
        self.deliver("closed")
        self.wait_phase("destroyed")
        self.deliver("reopened")
        self.wait_phase("ready")
        if not self.serves():
            r = http("GET", "http://127.0.0.1:%d/" % self.port,
                     headers={"Host": "pr-1-hello.localhost"})
            raise AssertionError("%s: ready, yet the demo answers %d %r\n%s" % (
                self.tree, r.status, r.text[:300], self.log_events()))

    def log_events(self):
        """The workers' log without the sweep's every-second lines."""
        return "".join(l for l in self.log().splitlines(True)
                       if "recurring_enqueued" not in l)[-4000:]

    def log(self):
        try:
            with open(os.path.join(self.tree, "var", "log", "workers.log")) as f:
                return f.read()
        except OSError:
            return ""


class TwoInstallationsTest(unittest.TestCase):
    def setUp(self):
        self.outer = tempfile.mkdtemp(prefix="eph-two-")
        self.addCleanup(shutil.rmtree, self.outer, True)
        self.inst = [Installation(self.outer, n) for n in ("one", "two")]
        for i in self.inst:
            self.addCleanup(installation_remove, i.tree)
            self.addCleanup(lambda i=i: i.run and i.run.stop())

    def test_two_clones_side_by_side(self):
        t0 = time.monotonic()
        a, b = self.inst
        a.start()
        time.sleep(5)  # the second a little later, as in the report
        b.start()
        for i in self.inst:
            self.assertTrue(i.run.wait_for(r"serves at http://pr-1-hello\.localhost:%d/" % i.port,
                                           timeout=900), i.run.text()[-4000:])
            i.sha = git(os.path.join(i.tree, "var", "demo", "hello"), "rev-parse", "HEAD").strip()
            self.assertTrue(i.serves())
        self.assertNotEqual(a.instance(), b.instance())
        # Each project's containers carry their installation's identity.
        for i in self.inst:
            ids = subprocess.run(["docker", "ps", "-q", "--filter", "label=com.docker.compose."
                                  "project=%s-pr-1-hello" % i.instance()],
                                 stdout=subprocess.PIPE, text=True).stdout.split()
            self.assertTrue(ids)
            labels = subprocess.run(["docker", "inspect", "-f",
                                     '{{index .Config.Labels "io.ephemera.instance"}}'] + ids,
                                    stdout=subprocess.PIPE, text=True).stdout.split()
            self.assertEqual(set(labels), {i.instance()})
        started = time.monotonic() - t0
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            for n in range(ROUNDS):
                for f in [pool.submit(i.round, random.uniform(0, 4) * k)
                          for k, i in enumerate(self.inst)]:
                    f.result()
        for me, other in ((a, b), (b, a)):
            removed = [l for l in me.log().splitlines() if "orphan_removed" in l]
            theirs = [l for l in removed if ("project=%s-" % other.instance()) in l]
            self.assertEqual(theirs, [], "%s removed the other's project" % me.tree)
            self.assertEqual(git(me.tree, "status", "--porcelain"), "", me.tree)
            self.assertEqual(git(me.tree, "rev-parse", "HEAD").strip(), me.head)
            self.assertEqual(git(me.tree, "symbolic-ref", "HEAD").strip(), me.branch)
            self.assertTrue(os.path.exists(os.path.join(me.tree, "Makefile")))
        print("    (both demos up in %.0f s; %d rounds of close/reopen in %.0f s)"
              % (started, ROUNDS, time.monotonic() - t0 - started))


if __name__ == "__main__":
    unittest.main()
