"""Issue 21: a PR's compose file must never reach the host. The hostile
corpus (tests/hostile/<class>-<case>/, each with EXPECT: what the refusal
must say, which names the key) and the harmless one (tests/harmless/).

GateCorpusTest runs every case through the gate exactly as the worker's
configure step does (tests/tools/gate_run: repo_conf.c + compose_load.c on
a checkout dir), plus the alias bomb and a 50 MB file, measured.
GateStackTest deploys a representative subset of the corpus, one or more
per class, as PR pushes through the running stack on real Docker, with
canaries planted (a file, a directory, a volume, an image, a listener on
127.0.0.1, a victim preview) and looked at after every refusal; and
deploys the harmless realistic file, which must serve."""
import json
import os
import random
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from harness import events
from harness.stack import ROOT, http, wait_until
from test_local import HELLO, LocalProviderBase, docker_ids, sh

GATE_RUN = os.path.join(ROOT, "build", "asan", "tests", "tools", "gate_run")
HOSTILE = os.path.join(ROOT, "tests", "hostile")
HARMLESS = os.path.join(ROOT, "tests", "harmless")
PASSWD_LINE = "root:x:0:0:"


def checkout(case_dir, into, subst=None):
    """hello's files with the case's files over them (symlinks kept)."""
    shutil.copytree(HELLO, into, dirs_exist_ok=True)
    for dirpath, dirnames, filenames in os.walk(case_dir):
        rel = os.path.relpath(dirpath, case_dir)
        os.makedirs(os.path.join(into, rel), exist_ok=True)
        for name in filenames + [d for d in dirnames
                                 if os.path.islink(os.path.join(dirpath, d))]:
            src, dst = os.path.join(dirpath, name), os.path.join(into, rel, name)
            if name == "EXPECT" and rel == ".":
                continue
            if os.path.lexists(dst):
                os.remove(dst) if not os.path.isdir(dst) or os.path.islink(dst) \
                    else shutil.rmtree(dst)
            if os.path.islink(src):
                target = os.readlink(src)
                for a, b in (subst or {}).items():
                    target = target.replace(a, b)
                os.symlink(target, dst)
            else:
                with open(src) as f:
                    text = f.read()
                for a, b in (subst or {}).items():
                    text = text.replace(a, b)
                with open(dst, "w") as f:
                    f.write(text)
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]


def expect_of(case):
    with open(os.path.join(HOSTILE, case, "EXPECT")) as f:
        return f.read().strip()


def gate_run(src, *args):
    """(exit code, stdout, stderr) of one gate run."""
    p = subprocess.run([GATE_RUN, *args, src], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=60,
                       env=dict(os.environ, ASAN_OPTIONS="detect_leaks=1"))
    return p.returncode, p.stdout, p.stderr


def peak_rss(cmd):
    """Runs cmd; returns (exit code, stderr, peak RSS KiB, seconds)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0"))
    err = p.stderr.read()
    p.wait()
    # gate_run's own VmHWM: wait4's ru_maxrss would also count this
    # Python process, which the child was a fork of before its exec.
    m = re.search(r"^peak_kib=(\d+)$", err, re.M)
    return p.returncode, err, int(m.group(1)) if m else 1 << 30, time.monotonic() - t0


class GateCorpusTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="eph-gate-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_hostile_corpus_refused(self):
        cases = sorted(os.listdir(HOSTILE))
        cases = [c for c in cases if os.path.isdir(os.path.join(HOSTILE, c))]
        self.assertGreaterEqual(len(cases), 80)
        classes = {c.split("-")[0] for c in cases}
        self.assertEqual(classes, {"keys", "names", "mounts", "limits", "hostfiles",
                                   "symlinks", "forging", "conf"})
        failed = []
        for case in cases:
            src = os.path.join(self.tmp, case)
            checkout(os.path.join(HOSTILE, case), src)
            rc, out, err = gate_run(src)
            want = expect_of(case)
            if rc != 1 or want not in err or out or PASSWD_LINE in err:
                failed.append("%s: rc=%d %r (want %r)" % (case, rc, err.strip(), want))
            shutil.rmtree(src)
        self.assertEqual(failed, [], "\n".join(failed))
        print("  %d hostile cases refused" % len(cases))

    def test_harmless_accepted_and_valid_for_compose(self):
        for case in sorted(os.listdir(HARMLESS)):
            src = os.path.join(self.tmp, case)
            checkout(os.path.join(HARMLESS, case), src)
            rc, out, err = gate_run(src, "-i", "ephemera/busybox:")
            self.assertEqual(rc, 0, "%s: %s" % (case, err))
            model = json.loads(out)
            for name, svc in model["services"].items():
                self.assertEqual(svc["labels"]["io.ephemera.project"], "eph-gate-test")
                if "build" in svc:
                    self.assertEqual(svc["image"], "eph-gate-test/s-" + name.lower())
                    self.assertNotIn("labels", svc["build"])
                self.assertNotIn("ports", svc)
                self.assertEqual(len(svc.get("expose", [])), len(set(svc.get("expose", []))))
            for kind in ("networks", "volumes"):
                for key, obj in model.get(kind, {}).items():
                    self.assertEqual(obj["name"], "eph-gate-test_" + key)
            # What compose (v1 here) makes of our output: accepted.
            path = os.path.join(self.tmp, case + ".json")
            with open(path, "w") as f:
                f.write(out)
            run = os.path.join(self.tmp, case + ".run")
            os.makedirs(run)
            c = subprocess.run(["docker-compose", "--project-directory", run, "-p", "x",
                                "-f", path, "config", "-q"], cwd=run,
                               env={"PATH": os.environ["PATH"]}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
            self.assertEqual(c.returncode, 0, "%s: %s" % (case, c.stdout))

    def test_alias_bomb_and_huge_file_refused_bounded(self):
        src = os.path.join(self.tmp, "bomb")
        checkout(os.path.join(HOSTILE, "limits-limit-alias-bomb-9-7"), src)
        rc, err, rss, secs = peak_rss([GATE_RUN, src])
        self.assertEqual(rc, 1, err)
        self.assertIn("too deep or too large", err)
        print("  9^7 alias bomb: refused in %.3f s, peak RSS %d KiB" % (secs, rss))
        self.assertLess(rss, 64 * 1024)
        self.assertLess(secs, 5)
        big = os.path.join(self.tmp, "big")
        checkout(os.path.join(HARMLESS, "realistic"), big)
        with open(os.path.join(big, "docker-compose.yml"), "a") as f:
            line = "# " + "x" * 98 + "\n"
            for _ in range(50 * 1024 * 1024 // len(line)):
                f.write(line)
        rc, err, rss, secs = peak_rss([GATE_RUN, big])
        self.assertEqual(rc, 1, err)
        self.assertIn("is larger than 1024 KiB", err)
        print("  50 MB compose file: refused in %.3f s, peak RSS %d KiB" % (secs, rss))
        self.assertLess(rss, 64 * 1024)
        self.assertLess(secs, 5)


# One or more per class; deployed through the stack. The rest of the
# corpus goes through the gate directly (GateCorpusTest).
STACK_CASES = [
    "keys-key-privileged", "keys-key-logging", "keys-build-network", "keys-key-sysctls",
    "mounts-mount-sock", "mounts-mount-long-bind", "names-names-vol-name",
    "names-names-net-name", "names-image-canary", "names-image-other-preview",
    "hostfiles-envfile-abs", "hostfiles-envfile-symlink", "hostfiles-dotenv-symlink",
    "hostfiles-extends-other-checkout", "symlinks-link-context", "symlinks-link-dockerfile",
    "symlinks-link-docker-sock", "symlinks-link-secret-dir", "conf-conf-include",
    "conf-conf-symlink", "limits-limit-networks", "limits-limit-mem", "names-from-canary",
    "limits-limit-alias-bomb-9-7", "forging-label-project", "forging-merge-privileged",
]


class Listener:
    """A TCP listener on 127.0.0.1 counting the connections it gets."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.hits += 1
            c.close()


class GateStackTest(LocalProviderBase):
    settings = {"environments.allowed_images": "ephemera/busybox:",
                "environments.max_networks": 3}

    @classmethod
    def repo_names(cls):
        return ["acme/victim", "acme/hostile", "acme/real"]

    def plant(self):
        tag = "%06d" % random.randrange(10**6)
        self.secret = "canary-secret-%s" % tag
        self.canary_file = os.path.join(self.tmp, "canary.txt")
        with open(self.canary_file, "w") as f:
            f.write(self.secret + "\n")
        self.canary_dir = os.path.join(self.tmp, "canary-dir")
        os.makedirs(self.canary_dir, exist_ok=True)
        with open(os.path.join(self.canary_dir, "key"), "w") as f:
            f.write(self.secret + "\n")
        self.canary_volume = "canary-%s" % tag
        sh("docker", "volume", "create", "--label", "io.ephemera.test-canary=1",
           self.canary_volume)
        self.canary_image = "ephemera-canary:%s" % tag
        # Its own image ID (a label makes it), so `ancestor=` finds only
        # containers run from it.
        subprocess.run(["docker", "build", "-q", "-t", self.canary_image, "-"],
                       input="FROM ephemera/busybox:1\nLABEL canary=%s\n" % tag,
                       text=True, check=True, stdout=subprocess.DEVNULL)
        self.listener = Listener()

    def unplant(self):
        subprocess.run(["docker", "volume", "rm", "-f", self.canary_volume],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["docker", "rmi", self.canary_image],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def push_case(self, repo, case):
        """Replaces the repository's tree by hello + the case; commits."""
        for name in os.listdir(repo.path):
            if name != ".git":
                p = os.path.join(repo.path, name)
                os.remove(p) if os.path.islink(p) or not os.path.isdir(p) else shutil.rmtree(p)
        checkout(os.path.join(HOSTILE, case), repo.path, self.subst)
        return repo.commit(case)

    def canaries_intact(self, victim_slug, victim_net):
        self.assertEqual(open(self.canary_file).read(), self.secret + "\n")
        self.assertEqual(os.listdir(self.canary_dir), ["key"])
        self.assertEqual(sh("docker", "volume", "inspect", "-f", "{{.Name}}",
                            self.canary_volume).strip(), self.canary_volume)
        self.assertEqual(sh("docker", "ps", "-aq", "--filter", "volume=" + self.canary_volume), "")
        sh("docker", "image", "inspect", self.canary_image)
        self.assertEqual(sh("docker", "ps", "-aq", "--filter", "ancestor=" + self.canary_image), "")
        self.assertEqual(self.listener.hits, 0)
        page = self.fetch(victim_slug)
        self.assertEqual(page.status, 200)
        members = json.loads(sh("docker", "network", "inspect", "-f",
                                "{{json .Containers}}", victim_net))
        victims = set(docker_ids("container", self.project(victim_slug)))
        self.assertTrue(all(any(v.startswith(m[:12]) or m.startswith(v) for v in victims)
                            for m in members), members)

    def test_hostile_subset_through_stack(self):
        self.plant()
        try:
            self.run_subset()
        finally:
            self.unplant()

    def run_subset(self):
        victim = self.repos["acme/victim"]
        vsha = victim.commit("victim")
        self.deliver("pull_request", events.pull_request("opened", "acme/victim", 1, vsha))
        v = self.wait_phase("acme/victim", 1, "ready")
        vproj = self.project(v["slug"])
        vnet = docker_ids("network", vproj)[0]
        self.subst = {
            "/etc/passwd": self.canary_file, "/etc/shadow": self.canary_file,
            "\"/root\"": "\"%s\"" % self.canary_dir, "/root": self.canary_dir,
            "/etc": self.canary_dir,
            "eph-victim_default": vproj + "_default", "eph-victim": vproj,
            "eph-pr-2-app": vproj, "ephemera-canary:1": self.canary_image,
            "name: canary": "name: " + self.canary_volume,
            "127.0.0.1:9": "127.0.0.1:%d" % self.listener.port,
        }
        repo = self.repos["acme/hostile"]
        first = True
        for case in STACK_CASES:
            sha = self.push_case(repo, case)
            action = "opened" if first else "synchronize"
            first = False
            self.deliver("pull_request", events.pull_request(action, "acme/hostile", 2, sha))

            want = expect_of(case)
            for a, b in self.subst.items():
                want = want.replace(a, b)

            def refused():
                e = self.env("acme/hostile", 2)
                b = self.s.sql("SELECT b.status FROM builds b JOIN environments e ON "
                               "e.id = b.env_id WHERE b.sha = '%s'" % sha)
                return e if e and b and b[-1][0] == "failed" and \
                    want in (e["error"] or "") else None
            e = wait_until(refused, timeout=120, interval=0.2)
            self.assertTrue(e, "%s: never refused with %r: %r\n%s" % (
                case, want, self.env("acme/hostile", 2), self.s.logs()[-3000:]))
            logs = " ".join(r[0] or "" for r in self.s.sql(
                "SELECT CONCAT(IFNULL(b.error,''), IFNULL(b.log_tail,'')) FROM builds b "
                "WHERE b.sha = '%s'" % sha))
            status = self.s.get("/").text
            for text in (e["error"] or "", logs, status):
                self.assertNotIn(self.secret, text, case)
            for kind in ("container", "network", "volume", "image"):
                self.assertEqual(docker_ids(kind, self.project(e["slug"])), [], (case, kind))
            self.canaries_intact(v["slug"], vnet)
        print("  %d hostile cases refused through the stack" % len(STACK_CASES))
        self.deliver("pull_request", events.pull_request("closed", "acme/hostile", 2, sha))
        self.wait_phase("acme/hostile", 2, "destroyed")
        self.canaries_intact(v["slug"], vnet)
        self.deliver("pull_request", events.pull_request("closed", "acme/victim", 1, vsha))
        self.wait_phase("acme/victim", 1, "destroyed")
        sh("docker", "image", "inspect", self.canary_image)

    def test_realistic_file_deploys_and_serves(self):
        repo = self.repos["acme/real"]
        for name in os.listdir(repo.path):
            if name != ".git":
                p = os.path.join(repo.path, name)
                os.remove(p) if not os.path.isdir(p) else shutil.rmtree(p)
        checkout(os.path.join(HARMLESS, "realistic"), repo.path)
        sha = repo.commit("realistic")
        self.deliver("pull_request", events.pull_request("opened", "acme/real", 4, sha))
        e = self.wait_phase("acme/real", 4, "ready", sha=sha)
        self.assertIn(sha, self.fetch(e["slug"]).text)
        self.assertEqual(self.fetch(e["slug"], "/api/").json(), {"service": "api", "commit": sha})
        proj = self.project(e["slug"])
        # The profile's service does not run; memory and pids limits hold.
        names = sh("docker", "ps", "--format", "{{.Label \"com.docker.compose.service\"}}",
                   "--filter", "label=com.docker.compose.project=" + proj).split()
        self.assertEqual(sorted(names), ["api", "web"])
        for c in docker_ids("container", proj):
            mem, pids = sh("docker", "inspect", "-f", "{{.HostConfig.Memory}} "
                           "{{.HostConfig.PidsLimit}}", c).split()
            self.assertIn(mem, ("268435456", "536870912"))
            self.assertIn(pids, ("200", "512"))
        vols = docker_ids("volume", proj)
        self.assertEqual(len(vols), 1)
        labels = json.loads(sh("docker", "volume", "inspect", "-f", "{{json .Labels}}", vols[0]))
        self.assertEqual(labels["io.ephemera.project"], proj)
        img = sh("docker", "image", "inspect", "-f", "{{json .Config.Labels}}", proj + "/s-web")
        # Built images carry no label of ours (each build label is a
        # builder step of its own): teardown and the sweep find them by
        # our tag, <instance>-<slug>/s-<service>.
        self.assertFalse([k for k in (json.loads(img) or {}) if k.startswith("io.ephemera")])
        self.assertTrue(proj.startswith(self.s.settings["environments.instance"] + "-"))
        # An image that only shares a built image's ID is not ours: it
        # keeps its tag when the PR closes (teardown goes by our tags).
        twin = "ephemera-twin-%06d:1" % random.randrange(10**6)
        sh("docker", "tag", proj + "/s-web", twin)
        try:
            self.deliver("pull_request", events.pull_request("closed", "acme/real", 4, sha))
            self.wait_phase("acme/real", 4, "destroyed")
            for kind in ("container", "network", "volume", "image"):
                self.assertEqual(docker_ids(kind, proj), [], kind)
            sh("docker", "image", "inspect", twin)
        finally:
            subprocess.run(["docker", "rmi", twin], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)

    def test_dotenv_of_the_pr_is_not_read(self):
        # A .env (a regular file) would set compose's project, file and
        # variables, and for compose v1 even the Docker engine it talks
        # to: here a listener of ours, which would see compose connect.
        # Compose is never given it (its own empty env file, its project
        # directory outside the checkout), so the deploy is ours.
        listener = Listener()
        repo = self.repos["acme/real"]
        sha = repo.commit("dotenv", {".env": "COMPOSE_PROJECT_NAME=victim\n"
                                     "COMPOSE_FILE=/etc/passwd\nEPHEMERA_COMMIT=forged\n"
                                     "DOCKER_HOST=tcp://127.0.0.1:%d\n" % listener.port})
        self.deliver("pull_request", events.pull_request("opened", "acme/real", 8, sha))
        e = self.wait_phase("acme/real", 8, "ready", sha=sha)
        self.assertEqual(listener.hits, 0)
        self.assertIn(sha, self.fetch(e["slug"]).text)
        self.assertEqual(len(docker_ids("container", self.project(e["slug"]))), 2)
        self.assertEqual(sh("docker", "ps", "-aq", "--filter",
                            "label=com.docker.compose.project=victim"), "")
        self.deliver("pull_request", events.pull_request("closed", "acme/real", 8, sha))
        self.wait_phase("acme/real", 8, "destroyed")

    def test_network_named_like_ours_is_not_joined(self):
        repo = self.repos["acme/real"]
        sha = repo.commit("squat")
        slug = "pr-6-real"
        net = "%s_default" % self.project(slug)
        sh("docker", "network", "create", net)
        try:
            self.deliver("pull_request", events.pull_request("opened", "acme/real", 6, sha))
            e = self.wait_phase("acme/real", 6, "failed")
            self.assertEqual(e["slug"], slug)
            log = self.s.sql("SELECT log_tail FROM builds WHERE env_id = %d" % e["id"]
                             if "id" in e else
                             "SELECT b.log_tail FROM builds b JOIN environments e ON "
                             "e.id = b.env_id WHERE e.slug = '%s'" % slug)[-1][0]
            self.assertIn("named like this project's exists", log)
            self.assertEqual(json.loads(sh("docker", "network", "inspect", "-f",
                                           "{{json .Containers}}", net)), {})
            self.deliver("pull_request", events.pull_request("closed", "acme/real", 6, sha))
            self.wait_phase("acme/real", 6, "destroyed")
            # Not ours: teardown by label leaves it alone.
            sh("docker", "network", "inspect", net)
        finally:
            subprocess.run(["docker", "network", "rm", net], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    unittest.main()
