"""Issue 4: preview environments on the local Docker provider, end to end,
with real Docker, nginx and MariaDB: a PR opens, its compose app serves at
its own URL, a push rebuilds it, closing it removes everything."""
import json
import os
import random
import shutil
import signal
import subprocess
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

from harness import events
from harness.stack import ROOT, Stack, http, wait_until

HELLO = os.path.join(ROOT, "examples", "hello")


def sh(*args, cwd=None, check=True):
    return subprocess.run(args, cwd=cwd, check=check, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True).stdout


def docker_ids(kind, project):
    flt = "label=com.docker.compose.project=%s" % project
    if kind == "image":
        flt = "reference=%s/*" % project
    cmd = {"container": ["docker", "ps", "-aq"], "network": ["docker", "network", "ls", "-q"],
           "volume": ["docker", "volume", "ls", "-q"], "image": ["docker", "images", "-q"]}[kind]
    return sh(*cmd, "--filter", flt).split()


class Repo:
    """A git repository standing in for a GitHub repository."""

    def __init__(self, root, name, files=HELLO):
        self.path = os.path.join(root, name.replace("/", "_"))
        shutil.copytree(files, self.path)
        sh("git", "init", "-q", "-b", "main", cwd=self.path)
        self.commit("first")

    def commit(self, msg, edit=None):
        if edit:
            for rel, text in edit.items():
                p = os.path.join(self.path, rel)
                os.makedirs(os.path.dirname(p), exist_ok=True)
                with open(p, "w") as f:
                    f.write(text)
        sh("git", "add", "-A", cwd=self.path)
        sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
           "--allow-empty", "-m", msg, cwd=self.path)
        return sh("git", "rev-parse", "HEAD", cwd=self.path).strip()


class LocalProviderBase(unittest.TestCase):
    settings = {}

    @classmethod
    def setUpClass(cls):
        subprocess.run([os.path.join(ROOT, "examples", "busybox-image.sh")], check=True)
        cls.instance = "t%06d" % random.randrange(10**6)
        cls.tmp = None
        s = {"workers.count": 2, "workers.lease_seconds": 15,
             "environments.instance": cls.instance}
        s.update(cls.settings)
        cls.s = Stack("local", s)
        cls.tmp = cls.s.dir
        cls.repos = {}
        for name in cls.repo_names():
            cls.repos[name] = Repo(cls.tmp, name)
        with open(os.path.join(cls.tmp, "secrets.env"), "w") as f:
            f.write("SECRET_TOKEN=s3cr3t\n")
        entries = []
        for name, r in cls.repos.items():
            extra = cls.repo_extra(name)
            entries.append('{ name = "%s"; source = "%s"; secrets_file = "%s"; %s }'
                           % (name, r.path, os.path.join(cls.tmp, "secrets.env"), extra))
        cls.s.extra = "repos = (\n%s\n);\n" % ",\n".join(entries)
        cls.s.write_config()
        cls.s.up()

    @classmethod
    def repo_names(cls):
        return ["acme/hello"]

    @classmethod
    def repo_extra(cls, name):
        return ""

    @classmethod
    def tearDownClass(cls):
        cls.s.down()
        reports = cls.s.sanitizer_reports()
        # Whatever a failed test left behind in Docker goes too.
        for kind, cmd in (("container", ["docker", "rm", "-f", "-v"]),
                          ("network", ["docker", "network", "rm"]),
                          ("volume", ["docker", "volume", "rm", "-f"])):
            out = sh("docker", {"container": "ps", "network": "network", "volume": "volume"}[kind],
                     *(["-aq"] if kind == "container" else ["ls", "-q"]),
                     "--filter", "label=io.ephemera.project", check=False).split()
            ours = [i for i in out if cls.instance in sh("docker", "inspect", i, check=False)]
            if ours:
                subprocess.run(cmd + ours, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cls.s.cleanup()
        assert not reports, "sanitizer reports:\n" + "\n".join(reports)

    # -- helpers ---------------------------------------------------------

    def deliver(self, event, payload):
        body, headers = events.signed(self.s.secret, event, payload)
        r = self.s.post("/webhook", body, headers)
        self.assertIn(r.status, (200, 202), r.text)
        return r

    def env(self, repo, pr):
        for e in self.s.get("/api/v1/environments").json():
            if e["repo"] == repo and e["pr"] == pr:
                return e
        return None

    def wait_phase(self, repo, pr, phases, timeout=180, sha=None):
        phases = (phases,) if isinstance(phases, str) else phases

        def done():
            e = self.env(repo, pr)
            return e if e and e["phase"] in phases and \
                (sha is None or e.get("deployed_sha") == sha) else None
        e = wait_until(done, timeout=timeout, interval=0.3)
        if not e:
            self.fail("%s#%d never reached %s (now %r)\n%s" % (
                repo, pr, phases, self.env(repo, pr), self.s.logs()[-6000:]))
        return e

    def fetch(self, slug, path="/"):
        return http("GET", self.s.url(path), headers={"Host": "%s.localhost" % slug})

    def project(self, slug):
        return "%s-%s" % (self.instance, slug)

    def running(self, slug):
        return sh("docker", "ps", "-q", "--filter",
                  "label=com.docker.compose.project=%s" % self.project(slug)).split()

    def route(self, slug):
        with open(os.path.join(self.s.var, "nginx", "previews", slug + ".conf")) as f:
            return f.read()


class LocalLifecycleTest(LocalProviderBase):
    @classmethod
    def repo_names(cls):
        return ["acme/hello", "acme/other", "acme/broken", "acme/hostile", "acme/capped",
                "acme/proxy"]

    @classmethod
    def repo_extra(cls, name):
        return 'allowed_services = "web,api";' if name == "acme/capped" else ""

    def test_open_push_close(self):
        repo = self.repos["acme/hello"]
        a = repo.commit("A")
        self.deliver("pull_request", events.pull_request("opened", "acme/hello", 1, a))
        e = self.wait_phase("acme/hello", 1, "ready", sha=a)
        slug = e["slug"]
        self.assertEqual(e["url"], "http://%s.localhost:%d/" % (slug, self.s.port))
        page = self.fetch(slug)
        self.assertEqual(page.status, 200)
        self.assertIn(a, page.text)
        api = self.fetch(slug, "/api/")
        self.assertEqual(api.status, 200)
        self.assertEqual(api.json(), {"service": "api", "commit": a})
        old = set(docker_ids("container", self.project(slug)))
        self.assertEqual(len(old), 2)
        # No published port on the host: only the proxy reaches the app.
        ports = sh("docker", "ps", "--format", "{{.Ports}}", "--filter",
                   "label=com.docker.compose.project=%s" % self.project(slug))
        self.assertNotIn("->", ports)

        b = repo.commit("B", {"web/index.html.in": "<p>second @COMMIT@</p>\n"})
        self.deliver("pull_request", events.pull_request("synchronize", "acme/hello", 1, b))
        self.wait_phase("acme/hello", 1, "ready", sha=b)
        page = self.fetch(slug)
        self.assertIn("second " + b, page.text)
        new = set(docker_ids("container", self.project(slug)))
        self.assertEqual(len(new), 2)
        self.assertFalse(old & new, "A's containers remain")
        self.assertEqual(self.fetch(slug, "/api/").json()["commit"], b)
        builds = self.s.sql("SELECT sha, status FROM builds b JOIN environments e ON "
                            "e.id = b.env_id WHERE e.slug = '%s' ORDER BY b.id" % slug)
        self.assertEqual([r[1] for r in builds][-2:], ["succeeded", "succeeded"])
        steps = self.s.sql("SELECT s.name, s.status, IFNULL(s.detail, '') FROM build_steps s JOIN "
                           "builds b ON b.id = s.build_id WHERE b.sha = '%s' ORDER BY s.id" % b)
        self.assertEqual([r[0] for r in steps], ["fetch", "configure", "up", "route", "verify"],
                         steps)

        self.deliver("pull_request", events.pull_request("closed", "acme/hello", 1, b))
        self.wait_phase("acme/hello", 1, "destroyed")
        for kind in ("container", "network", "volume", "image"):
            self.assertEqual(docker_ids(kind, self.project(slug)), [], kind)
        self.assertFalse(os.path.exists(os.path.join(self.s.var, "envs", slug)))
        self.assertFalse(os.path.exists(os.path.join(self.s.var, "nginx", "previews",
                                                     slug + ".conf")))
        self.assertTrue(wait_until(lambda: self.fetch(slug).status == 404, timeout=10))

    def test_two_prs_isolated(self):
        repo = self.repos["acme/other"]
        sha = repo.commit("iso")
        for pr in (10, 11):
            self.deliver("pull_request", events.pull_request("opened", "acme/other", pr, sha))
        e10 = self.wait_phase("acme/other", 10, "ready")
        e11 = self.wait_phase("acme/other", 11, "ready")
        p10, p11 = self.project(e10["slug"]), self.project(e11["slug"])
        self.assertEqual(len(docker_ids("network", p10)), 1)
        self.assertNotEqual(docker_ids("network", p10), docker_ids("network", p11))
        def container(project, service):
            for c in docker_ids("container", project):
                if sh("docker", "inspect", "-f",
                      '{{index .Config.Labels "com.docker.compose.service"}}', c).strip() == service:
                    return c

        def address(c):
            return sh("docker", "inspect", "-f",
                      "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", c).strip()
        web10 = container(p10, "web")
        own_api, other_api = address(container(p10, "api")), address(container(p11, "api"))
        self.assertNotEqual(own_api, other_api)

        def wget(ip):
            # By address: the static busybox's resolver cannot do DNS.
            # (busybox wget's own -T crashes; its timeout applet does not).
            return subprocess.run(["docker", "exec", web10, "timeout", "5", "wget", "-q", "-O",
                                   "-", "http://%s/" % ip], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        own = wget(own_api)
        self.assertEqual(own.returncode, 0, own.stdout)
        self.assertIn('"service":"api"', own.stdout)
        other = wget(other_api)
        self.assertNotEqual(other.returncode, 0, "reached the other PR: " + other.stdout)
        for pr in (10, 11):
            self.deliver("pull_request", events.pull_request("closed", "acme/other", pr, sha))
        self.wait_phase("acme/other", 10, "destroyed")
        self.wait_phase("acme/other", 11, "destroyed")

    def test_build_failure_then_fix(self):
        repo = self.repos["acme/broken"]
        marker = "building-the-api-%d" % random.randrange(10**9)
        bad = repo.commit("break", {"api/Dockerfile": "FROM ephemera/busybox:1\n"
                                    "RUN echo %s && exit 3\n" % marker})
        self.deliver("pull_request", events.pull_request("opened", "acme/broken", 5, bad))
        e = self.wait_phase("acme/broken", 5, "failed")
        self.assertIn("did not start", e["error"])
        log = self.s.sql("SELECT log_tail FROM builds WHERE sha = '%s'" % bad)[0][0]
        self.assertIn(marker, log)
        # The failed RUN step's container is not left behind: it carries
        # no label, so nothing would ever remove it.
        left = sh("docker", "ps", "-a", "--no-trunc", "--filter", "status=exited",
                  "--format", "{{.ID}} {{.Command}}")
        self.assertNotIn(marker, left)
        good = repo.commit("fix", {"api/Dockerfile": open(os.path.join(
            HELLO, "api", "Dockerfile")).read()})
        self.deliver("pull_request", events.pull_request("synchronize", "acme/broken", 5, good))
        self.wait_phase("acme/broken", 5, "ready", sha=good)
        self.deliver("pull_request", events.pull_request("closed", "acme/broken", 5, good))
        self.wait_phase("acme/broken", 5, "destroyed")

    def test_proxy_refusing_its_configuration_is_ours(self):
        """A reload nginx refuses (here a broken file beside the routes)
        leaves the new route unserved: the deploy is retried and says the
        failure is ours, never the repository's; fixed, it is ready."""
        repo = self.repos["acme/proxy"]
        bad = os.path.join(self.s.var, "nginx", "previews", "zz-broken.conf")
        with open(bad, "w") as f:
            f.write("this is not nginx;\n")
        try:
            sha = repo.commit("proxy")
            self.deliver("pull_request", events.pull_request("opened", "acme/proxy", 9, sha))
            q = ("SELECT s.detail FROM build_steps s JOIN builds b ON b.id = s.build_id "
                 "JOIN environments e ON e.id = b.env_id WHERE e.repo = 'acme/proxy' "
                 "AND s.name = 'verify' AND s.status = 'failed'")
            self.assertTrue(wait_until(lambda: self.s.sql(q), timeout=150),
                            self.s.logs()[-3000:])
            self.assertIn("ours, retried", self.s.sql(q)[0][0])
            self.assertNotEqual(self.env("acme/proxy", 9)["phase"], "failed")
        finally:
            os.remove(bad)
        e = self.wait_phase("acme/proxy", 9, "ready", sha=sha, timeout=240)
        self.assertIn(sha, self.fetch(e["slug"]).text)
        self.deliver("pull_request", events.pull_request("closed", "acme/proxy", 9, sha))
        self.wait_phase("acme/proxy", 9, "destroyed")

    def test_hostile_input(self):
        marker = "/tmp/pwned-%d" % random.randrange(10**9)
        repo = self.repos["acme/hostile"]
        sha = repo.commit("ok")
        self.deliver("pull_request", events.pull_request(
            "opened", "acme/hostile", 7, sha, ref="$(touch %s)" % marker,
            title="`touch %s`; <script>alert(1)</script>" % marker))
        e = self.wait_phase("acme/hostile", 7, "ready")
        self.assertFalse(os.path.exists(marker))
        # A host path mount in the compose file: refused, with the reason.
        bad = repo.commit("mount", {"docker-compose.yml": open(os.path.join(
            HELLO, "docker-compose.yml")).read().replace(
            "    expose:\n", "    volumes:\n      - /etc:/host-etc\n    expose:\n")})
        self.deliver("pull_request", events.pull_request("synchronize", "acme/hostile", 7, bad))
        e = self.wait_phase("acme/hostile", 7, "failed")
        self.assertIn("mounts a host path", e["error"])
        # .ephemera.conf asking for something it may not: refused, said why.
        bad2 = repo.commit("conf", {".ephemera.conf": 'volumes = ["/:/host"];\n'})
        self.deliver("pull_request", events.pull_request("synchronize", "acme/hostile", 7, bad2))
        e = self.wait_phase("acme/hostile", 7, "failed", sha=None)
        self.assertTrue(wait_until(lambda: "unknown setting" in (self.env("acme/hostile", 7)["error"] or ""), timeout=120))
        self.assertFalse(os.path.exists(marker))
        self.deliver("pull_request", events.pull_request("closed", "acme/hostile", 7, bad2))
        self.wait_phase("acme/hostile", 7, "destroyed")

    def test_service_not_allowed(self):
        repo = self.repos["acme/capped"]
        compose = open(os.path.join(HELLO, "docker-compose.yml")).read()
        sha = repo.commit("miner", {"docker-compose.yml": compose +
                                    "  miner:\n    image: ephemera/busybox:1\n"
                                    "    command: [\"sleep\", \"3600\"]\n"})
        self.deliver("pull_request", events.pull_request("opened", "acme/capped", 3, sha))
        e = self.wait_phase("acme/capped", 3, "failed")
        self.assertIn('"miner" is not in this repository\'s allowed services', e["error"])
        self.assertEqual(docker_ids("container", self.project(e["slug"])), [])

    def test_worker_killed_during_up(self):
        repo = self.repos["acme/hello"]
        sha = repo.commit("slow", {"web/Dockerfile": open(os.path.join(
            HELLO, "web", "Dockerfile")).read().replace(
            "EXPOSE 80", "RUN sleep 4\nEXPOSE 80")})
        self.deliver("pull_request", events.pull_request("opened", "acme/hello", 20, sha))

        def host_up():
            out = sh("pgrep", "-f", "ephemera-host up", check=False).split()
            for pid in out:
                try:
                    env = open("/proc/%s/environ" % pid, "rb").read()
                except OSError:
                    continue
                if b"pr-20-hello" in env and self.instance.encode() in env:
                    return int(open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()[1])
            return None
        worker = wait_until(host_up, timeout=120, interval=0.1)
        self.assertTrue(worker, "never saw the up step")
        os.kill(worker, signal.SIGKILL)
        e = self.wait_phase("acme/hello", 20, "ready", sha=sha, timeout=240)
        self.assertEqual(len(docker_ids("container", self.project(e["slug"]))), 2)
        self.assertIn(sha, self.fetch(e["slug"]).text)
        self.deliver("pull_request", events.pull_request("closed", "acme/hello", 20, sha))
        self.wait_phase("acme/hello", 20, "destroyed")


class RestartTest(LocalProviderBase):
    def test_stack_restart_stops_and_brings_back_previews(self):
        sha = self.repos["acme/hello"].commit("restart")
        self.deliver("pull_request", events.pull_request("opened", "acme/hello", 30, sha))
        e = self.wait_phase("acme/hello", 30, "ready")
        self.s.down()
        running = sh("docker", "ps", "-q", "--filter",
                     "label=io.ephemera.instance=%s" % self.instance).split()
        self.assertEqual(running, [], "previews still running after the stack stopped")
        self.assertEqual(self.s.processes(), [])
        self.s.up()
        self.wait_phase("acme/hello", 30, "ready")
        self.assertTrue(wait_until(lambda: sha in self.fetch(e["slug"]).text, timeout=120))
        self.deliver("pull_request", events.pull_request("closed", "acme/hello", 30, sha))
        self.wait_phase("acme/hello", 30, "destroyed")


class CapacityTest(LocalProviderBase):
    settings = {"environments.max_running": 1}

    def test_second_waits_for_first(self):
        repo = self.repos["acme/hello"]
        sha = repo.commit("cap")
        self.deliver("pull_request", events.pull_request("opened", "acme/hello", 1, sha))
        self.wait_phase("acme/hello", 1, "ready")
        self.deliver("pull_request", events.pull_request("opened", "acme/hello", 2, sha))
        e2 = self.wait_phase("acme/hello", 2, "queued")
        msg = self.s.sql("SELECT message FROM notifications WHERE env_id = %d AND phase = "
                         "'queued' ORDER BY id DESC LIMIT 1" % e2["id"])
        self.assertIn("position 1", msg[0][0])
        time.sleep(2)
        self.assertEqual(self.env("acme/hello", 2)["phase"], "queued")
        self.deliver("pull_request", events.pull_request("closed", "acme/hello", 1, sha))
        self.wait_phase("acme/hello", 1, "destroyed")
        self.wait_phase("acme/hello", 2, "ready")
        self.deliver("pull_request", events.pull_request("closed", "acme/hello", 2, sha))
        self.wait_phase("acme/hello", 2, "destroyed")


class SweepTest(LocalProviderBase):
    """The reaper's sweep job: idle stop, stuck teardowns, orphans."""
    settings = {"workers.sweep_interval_seconds": 1,
                "workers.sweep_grace_seconds": 2,
                "environments.idle_stop_minutes": 60,
                # A local run costs its share of the host: 0.5 / 10.
                "local.host_hourly_price": 0.5}

    def test_idle_stop_then_push_wakes(self):
        repo = self.repos["acme/hello"]
        sha = repo.commit("idle")
        self.deliver("pull_request", events.pull_request("opened", "acme/hello", 40, sha))
        e = self.wait_phase("acme/hello", 40, "ready")
        # Quiet for two hours, but kept by `/preview keep`: stays up.
        self.s.sql("UPDATE environments SET keep_until = NOW(6) + INTERVAL 1 HOUR "
                   "WHERE id = %d" % e["id"])
        self.s.make_idle(e["id"], e["slug"])
        time.sleep(4)
        self.assertEqual(self.env("acme/hello", 40)["phase"], "ready")
        self.assertNotEqual(self.running(e["slug"]), [])
        # The keep ran out: stopped, containers kept (stopped), no route.
        self.s.sql("UPDATE environments SET keep_until = NOW(6) - INTERVAL 1 MINUTE "
                   "WHERE id = %d" % e["id"])
        e = self.wait_phase("acme/hello", 40, "stopped", timeout=60)
        self.assertEqual(e["desired"], "stopped")
        self.assertEqual(self.running(e["slug"]), [])
        self.assertNotEqual(docker_ids("container", self.project(e["slug"])), [])
        # Its hostname now leads to the waking page (WakeOnVisitTest);
        # not visited here, so the push below is what starts it.
        self.assertIn("# asleep:", self.route(e["slug"]))
        # A push is activity: it deploys again, and is not stopped again.
        sha2 = repo.commit("wake")
        self.deliver("pull_request", events.pull_request("synchronize", "acme/hello", 40, sha2))
        self.wait_phase("acme/hello", 40, "ready", sha=sha2)
        self.assertIn(sha2, self.fetch(e["slug"]).text)
        time.sleep(3)
        self.assertEqual(self.env("acme/hello", 40)["phase"], "ready")
        self.deliver("pull_request", events.pull_request("closed", "acme/hello", 40, sha2))
        self.wait_phase("acme/hello", 40, "destroyed")
        # Cost accrues while compute runs: one run up to the idle stop, a
        # second from the push to the close, none while stopped.
        runs = self.s.sql("SELECT started_at, stopped_at FROM env_runs WHERE env_id = %d "
                          "ORDER BY id" % e["id"])
        self.assertEqual(len(runs), 2, runs)
        self.assertNotIn("NULL", runs[0] + runs[1])
        self.assertLess(runs[0][1], runs[1][0])
        # Each at the host's share (local.host_hourly_price /
        # environments.max_running), and added to the environment's
        # totals as it closed (migration 020).
        got = [float(v) for v in self.s.sql(
            "SELECT MIN(r.hourly_price), MAX(r.hourly_price), e.runs_seconds, "
            "SUM(TIMESTAMPDIFF(MICROSECOND, r.started_at, r.stopped_at)) / 1e6, "
            "e.runs_cost, SUM(TIMESTAMPDIFF(MICROSECOND, r.started_at, r.stopped_at)) "
            "/ 3.6e9 * 0.05 FROM environments e JOIN env_runs r ON r.env_id = e.id "
            "WHERE e.id = %d GROUP BY e.id" % e["id"])[0]]
        self.assertEqual(got[:2], [0.05, 0.05])
        self.assertGreater(got[2], 0)
        self.assertAlmostEqual(got[2], got[3], places=3)
        self.assertAlmostEqual(got[4], got[5], places=9)

    def test_teardown_that_died_is_retried(self):
        sha = self.repos["acme/hello"].commit("stuck")
        self.deliver("pull_request", events.pull_request("opened", "acme/hello", 43, sha))
        e = self.wait_phase("acme/hello", 43, "ready")
        # What a destroy whose job died (Docker down) leaves: desired
        # destroyed, phase failed, no job.
        self.s.sql("UPDATE environments SET desired = 'destroyed', phase = 'failed' "
                   "WHERE id = %d" % e["id"])
        self.wait_phase("acme/hello", 43, "destroyed", timeout=60)
        for kind in ("container", "network", "volume", "image"):
            self.assertEqual(docker_ids(kind, self.project(e["slug"])), [], kind)

    def test_orphans_are_removed_and_live_ones_kept(self):
        repo = self.repos["acme/hello"]
        sha = repo.commit("live")
        self.deliver("pull_request", events.pull_request("opened", "acme/hello", 41, sha))
        live = self.wait_phase("acme/hello", 41, "ready")
        self.deliver("pull_request", events.pull_request("opened", "acme/hello", 42, sha))
        gone = self.wait_phase("acme/hello", 42, "ready")
        self.deliver("pull_request", events.pull_request("closed", "acme/hello", 42, sha))
        gone = self.wait_phase("acme/hello", 42, "destroyed")
        notes = self.s.sql("SELECT COUNT(*) FROM notifications WHERE env_id = %d" % gone["id"])
        # Left behind: a network of the destroyed environment, and a whole
        # project (container, network, route, work dir) of no environment.
        ghost = "pr-99-ghost"
        label = ["--label", "com.docker.compose.project=%s" % self.project(ghost),
                 "--label", "io.ephemera.instance=%s" % self.instance]
        sh("docker", "network", "create", "--label",
           "com.docker.compose.project=%s" % self.project(gone["slug"]), "--label",
           "io.ephemera.instance=%s" % self.instance, self.project(gone["slug"]) + "_x")
        sh("docker", "network", "create", *label, self.project(ghost) + "_default")
        sh("docker", "run", "-d", *label, "--network", self.project(ghost) + "_default",
           "ephemera/busybox:1", "sleep", "3600")
        route = os.path.join(self.s.var, "nginx", "previews", ghost + ".conf")
        with open(route, "w") as f:
            f.write("# left behind\n# instance: %s\n" % self.instance)
        os.makedirs(os.path.join(self.s.var, "envs", ghost, "src"))
        with open(os.path.join(self.s.var, "envs", ghost, ".ephemera-instance"), "w") as f:
            f.write(self.instance + "\n")
        # A built image is all a project left: ours by its tag alone.
        image_ghost = "pr-97-image"
        sh("docker", "tag", "ephemera/busybox:1", self.project(image_ghost) + "/s-web")
        # Tags outside our namespace: another installation's prefix, and
        # a repository under our project name that our builds never make.
        others = ["other%s-pr-96-x/s-web:latest" % self.instance[1:],
                  self.project("pr-95-y") + "/web:latest"]
        for tag in others:
            sh("docker", "tag", "ephemera/busybox:1", tag)
        self.addCleanup(lambda: subprocess.run(
            ["docker", "rmi"] + others, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        # Not ours, though named with our prefix or kept in our var/: a
        # container labelled with another installation's identity, a
        # route and a work dir without our identity. They stay.
        foreign = "pr-98-foreign"
        sh("docker", "run", "-d", "--label",
           "com.docker.compose.project=%s" % self.project(foreign), "--label",
           "io.ephemera.instance=other%s" % self.instance[1:], "ephemera/busybox:1",
           "sleep", "3600")
        self.addCleanup(lambda: subprocess.run(
            ["docker", "rm", "-f"] + docker_ids("container", self.project(foreign)),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        foreign_route = os.path.join(self.s.var, "nginx", "previews", foreign + ".conf")
        with open(foreign_route, "w") as f:
            f.write("# someone else's\n")
        foreign_dir = os.path.join(self.s.var, "envs", foreign, "src")
        os.makedirs(foreign_dir)

        def clean():
            return (docker_ids("container", self.project(ghost)) == [] and
                    docker_ids("network", self.project(ghost)) == [] and
                    docker_ids("network", self.project(gone["slug"])) == [] and
                    docker_ids("image", self.project(image_ghost)) == [] and
                    not os.path.exists(route) and
                    not os.path.exists(os.path.join(self.s.var, "envs", ghost)))
        self.assertTrue(wait_until(clean, timeout=60), self.s.logs()[-4000:])
        time.sleep(3)  # a few more sweeps, past the grace period
        self.assertEqual(len(docker_ids("container", self.project(foreign))), 1)
        self.assertTrue(os.path.exists(foreign_route))
        self.assertTrue(os.path.isdir(foreign_dir))
        for tag in others:
            self.assertEqual(len(sh("docker", "images", "-q", tag).split()), 1, tag)
        with open(os.path.join(self.s.var, "log", "workers.log")) as f:
            removed = [l for l in f if "orphan_removed" in l]
        self.assertNotIn("pr-98-foreign", "".join(removed))
        self.assertIn("pr-99-ghost", "".join(removed))
        # The live one is untouched, and nobody was told twice.
        self.assertEqual(self.env("acme/hello", 41)["phase"], "ready")
        self.assertIn(sha, self.fetch(live["slug"]).text)
        self.assertEqual(self.s.sql("SELECT COUNT(*) FROM notifications WHERE env_id = %d"
                                    % gone["id"]), notes)
        self.deliver("pull_request", events.pull_request("closed", "acme/hello", 41, sha))
        self.wait_phase("acme/hello", 41, "destroyed")


if __name__ == "__main__":
    unittest.main()


class WakeOnVisitTest(LocalProviderBase):
    """Issue 20: a preview stopped as idle keeps its URL; a visit gets a
    waking page that starts it, and the page's refresh lands in the app.
    Visits through the route count as activity."""
    settings = {"workers.sweep_interval_seconds": 1,
                "workers.sweep_grace_seconds": 2,
                "environments.idle_stop_minutes": 60}

    def quiet(self, e):
        self.s.make_idle(e["id"], e["slug"])

    def recently_active(self, e):
        return self.s.sql("SELECT last_active_at > NOW(6) - INTERVAL 1 MINUTE "
                          "FROM environments WHERE id = %d" % e["id"]) == [["1"]]

    def starts(self, slug, since):
        """Container starts of the project since `since` (docker's own
        event stream): a second start of the app would show twice."""
        return sh("docker", "events", "--since", "%.3f" % since, "--until",
                  "%.3f" % time.time(), "--filter", "event=start", "--filter",
                  "label=com.docker.compose.project=%s" % self.project(slug),
                  "--format", "{{.Actor.Attributes.name}}").split()

    def test_visit_wakes_an_idle_preview_once(self):
        sha = self.repos["acme/hello"].commit("sleepy")
        title = "<script>alert(1)</script> & co"
        self.deliver("pull_request", events.pull_request("opened", "acme/hello", 60, sha,
                                                         title=title))
        e = self.wait_phase("acme/hello", 60, "ready")
        slug = e["slug"]
        first = self.starts(slug, 0)
        self.assertNotEqual(first, [])
        # Two quiet hours, then a visit: the sweep finds it in the route's
        # log and keeps the preview up.
        self.quiet(e)
        self.assertIn(sha, self.fetch(slug).text)
        self.assertTrue(wait_until(lambda: self.recently_active(e), timeout=30),
                        "the visit was not seen as activity")
        self.assertEqual(self.env("acme/hello", 60)["phase"], "ready")
        # Quiet for real: stopped, the route now leads to the waking page.
        self.quiet(e)
        self.wait_phase("acme/hello", 60, "stopped", timeout=60)
        self.assertEqual(self.running(slug), [])
        self.assertIn("# asleep:", self.route(slug))
        asleep = time.time()
        # Fifty visits at once: every answer is the waking page (or, if the
        # start was that quick, the app), and the app starts once.
        with ThreadPoolExecutor(50) as pool:
            answers = list(pool.map(lambda _: self.fetch(slug), range(50)))
        waking = [a for a in answers if a.status == 503]
        self.assertTrue(waking, [a.status for a in answers])
        for a in answers:
            self.assertIn(a.status, (200, 503), a.text)
        for a in waking:
            self.assertIn("Waking up this preview", a.text)
            self.assertIn('http-equiv="refresh"', a.text)
            self.assertEqual(a.headers.get("Retry-After"), "2")
            # The PR's title is the author's: escaped.
            self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt; &amp; co", a.text)
            self.assertNotIn("<script>", a.text)
        self.wait_phase("acme/hello", 60, "ready", sha=sha)
        r = wait_until(lambda: (lambda r: r if r.status == 200 else None)(self.fetch(slug)),
                       timeout=30)
        self.assertTrue(r, "the app never answered after the wake")
        self.assertIn(sha, r.text)
        self.assertEqual(sorted(self.starts(slug, asleep)), sorted(first))
        # One run from the first deploy to the idle stop, one from the wake.
        runs = self.s.sql("SELECT COUNT(*) FROM env_runs WHERE env_id = %d" % e["id"])
        self.assertEqual(runs, [["2"]])
        self.deliver("pull_request", events.pull_request("closed", "acme/hello", 60, sha))
        self.wait_phase("acme/hello", 60, "destroyed")
        # Destroyed: route and visits log gone, the hostname is no one's.
        self.assertFalse(os.path.exists(os.path.join(self.s.var, "nginx", "previews",
                                                     slug + ".conf")))
        self.assertFalse(os.path.exists(os.path.join(self.s.var, "log", "previews",
                                                     slug + ".log")))
        self.assertEqual(self.fetch(slug).status, 404)

    def test_stopped_otherwise_is_not_woken(self):
        sha = self.repos["acme/hello"].commit("stays down")
        self.deliver("pull_request", events.pull_request("opened", "acme/hello", 61, sha))
        e = self.wait_phase("acme/hello", 61, "ready")
        self.quiet(e)
        self.wait_phase("acme/hello", 61, "stopped", timeout=60)
        # The PR turned into a draft after the idle stop: a PR event decides
        # now, and a draft stays stopped whoever visits.
        self.deliver("pull_request", events.pull_request("converted_to_draft", "acme/hello",
                                                         61, sha, draft=True))
        wait_until(lambda: self.s.sql("SELECT last_delivery_id <=> idle_stop_delivery "
                                      "FROM environments WHERE id = %d" % e["id"])
                   == [["0"]], timeout=10)
        r = self.fetch(e["slug"])
        self.assertEqual(r.status, 503)
        self.assertIn("This preview is stopped", r.text)
        self.assertNotIn("refresh", r.text)
        time.sleep(3)
        self.assertEqual(self.env("acme/hello", 61)["desired"], "stopped")
        self.assertEqual(self.running(e["slug"]), [])
        # Woken but waiting (all slots taken, or this host's networks): the
        # page says so and reloads less often.
        self.s.sql("UPDATE environments SET desired = 'running', phase = 'queued' "
                   "WHERE id = %d" % e["id"])
        r = self.fetch(e["slug"])
        self.assertEqual(r.status, 503)
        self.assertIn("This preview is waiting to start", r.text)
        self.assertEqual(r.headers.get("Retry-After"), "20")
        self.s.sql("UPDATE environments SET desired = 'stopped', phase = 'stopped' "
                   "WHERE id = %d" % e["id"])
        self.deliver("pull_request", events.pull_request("closed", "acme/hello", 61, sha))
        self.wait_phase("acme/hello", 61, "destroyed")


class SubnetPoolTest(LocalProviderBase):
    """Issue 20: each preview's networks get subnets of local.subnet_pool,
    reserved at admission; when they are all taken the next preview waits
    queued, the reason said, and starts once a preview is removed."""
    settings = {"local.subnet_pool": "10.231.7.0/27", "local.subnet_prefix": 28,
                "environments.max_networks": 1}

    def subnet(self, slug):
        net = "%s_default" % self.project(slug)
        return sh("docker", "network", "inspect", "-f",
                  "{{range .IPAM.Config}}{{.Subnet}}{{end}}", net).strip()

    def test_pool_full_waits_then_starts(self):
        sha = self.repos["acme/hello"].commit("subnets")
        a, b, c = 70, 71, 72
        self.deliver("pull_request", events.pull_request("opened", "acme/hello", a, sha))
        ea = self.wait_phase("acme/hello", a, "ready")
        self.deliver("pull_request", events.pull_request("opened", "acme/hello", b, sha))
        eb = self.wait_phase("acme/hello", b, "ready")
        self.assertEqual(self.subnet(ea["slug"]), "10.231.7.0/28")
        self.assertEqual(self.subnet(eb["slug"]), "10.231.7.16/28")
        self.assertIn(sha, self.fetch(eb["slug"]).text)
        # The pool's two subnets are taken: the third waits, and says why.
        self.deliver("pull_request", events.pull_request("opened", "acme/hello", c, sha))
        ec = self.wait_phase("acme/hello", c, "queued")
        self.assertIn("this host's preview networks are all taken (2 of the 2 subnets",
                      ec["error"])
        msg = self.s.sql("SELECT message FROM notifications WHERE env_id = %d AND phase = "
                         "'queued' ORDER BY id DESC LIMIT 1" % ec["id"])
        self.assertIn("networks are all taken", msg[0][0])
        time.sleep(2)
        self.assertEqual(self.env("acme/hello", c)["phase"], "queued")
        self.assertEqual(docker_ids("network", self.project(ec["slug"])), [])
        # A close frees the first's subnet: the third starts on it.
        self.deliver("pull_request", events.pull_request("closed", "acme/hello", a, sha))
        self.wait_phase("acme/hello", a, "destroyed")
        ec = self.wait_phase("acme/hello", c, "ready")
        self.assertEqual(self.subnet(ec["slug"]), "10.231.7.0/28")
        self.assertIsNone(ec["error"])
        self.assertIn(sha, self.fetch(ec["slug"]).text)
        for pr in (b, c):
            self.deliver("pull_request", events.pull_request("closed", "acme/hello", pr, sha))
        self.wait_phase("acme/hello", b, "destroyed")
        self.wait_phase("acme/hello", c, "destroyed")
        self.assertEqual(self.s.sql("SELECT COUNT(*) FROM env_subnets"), [["0"]])
