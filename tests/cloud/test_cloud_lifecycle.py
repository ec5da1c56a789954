"""The `ec2` path with instances that really run (harness/instances.py):
moto answers the API with signatures and IAM on, and each instance it
launches is a Debian host that runs its user-data and its Run Commands
for real — fetch from the repository, compose build and up on the host's
engine, the services' answer read back through SSM.

The operations are driven one at a time through ec2_compute_run, as
reconcile.c calls them, so each step's effect on the instance is checked
where it happens.
"""

import os
import shutil
import signal
import subprocess
import time
import urllib.request

from harness import instances

from test_ec2_provider import TOOL, Ec2Base
from test_local import Repo


def fetch(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


class CloudBase(Ec2Base):
    """Ec2Base with the instance emulator in front of moto; repositories
    live under <dir>/repos, which every host sees read-only."""

    @classmethod
    def extra_settings(cls):
        cls.envs = os.path.join(cls.dir, "envs")
        return {"ec2.envs_dir": cls.envs}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.repos = os.path.join(cls.dir, "repos")
        os.makedirs(cls.repos)
        try:
            cls.emu = instances.InstanceEmulator(cls.moto, cls.ids, cls.proxy, cls.envs,
                                                 mounts=[cls.repos])
        except Exception:
            super().tearDownClass()
            raise
        print("host image %s: %s" % (cls.emu.image, "built in %.0f s" % instances.image_seconds
                                     if instances.image_seconds else "already built"))

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()
        super().tearDownClass()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def deploy(self, env_id):
        p = self.tool("deploy", str(env_id))
        self.assertEqual(self.field(p.stdout, "rc"), "ok", p.stdout + p.stderr)
        self.assertIn('\\"name\\":\\"web\\"', p.stdout)

    def page(self, slug):
        """The web service's page, fetched from this machine at its
        container's address (the instance's network)."""
        ids = instances.docker("ps", "-q", "--filter", "label=com.docker.compose.project=%s-%s"
                               % (self.inst, slug), "--filter",
                               "label=com.docker.compose.service=web").split()
        self.assertEqual(len(ids), 1, ids)
        addr = instances.docker("inspect", "-f", "{{range .NetworkSettings.Networks}}"
                                "{{.IPAddress}} {{end}}", ids[0]).split()[0]
        return fetch("http://%s/" % addr)

    def host_script(self, iid, body):
        """The instance's ephemera-host replaced by a shell script."""
        instances.docker("exec", "-i", self.emu.hosts[iid].name, "/bin/sh", "-c",
                         "cat >/opt/ephemera/host/ephemera-host", input="#!/bin/sh\n" + body)

    def live(self, slug):
        return [i["InstanceId"] for i in self.instances(slug)
                if i["State"]["Name"] != "terminated"]

    def host_state(self, iid):
        h = self.emu.hosts[iid]
        return instances.docker("inspect", "-f", "{{.State.Status}}", h.name,
                                check=False).strip() or "gone"


class CloudLifecycle(CloudBase):
    def test_open_push_stop_start_close(self):
        repo = Repo(self.repos, "acme/app")
        slug = "pr-1-app"
        sha1 = repo.commit("one")
        env_id = self.env_row(1, slug, sha1, repo.path)

        # open: launched; user-data fetches, builds and starts the app on
        # the instance; its answer comes back through Run Command.
        self.deploy(env_id)
        self.assertIn(sha1[:12], self.page(slug))
        [inst] = self.instances(slug)
        iid = inst["InstanceId"]
        self.assertEqual(self.host_state(iid), "running")
        first = os.path.join(self.envs, slug + ".first.err")
        out = instances.docker("exec", self.emu.hosts[iid].name, "cat", first)
        self.assertIn("checked out " + sha1, out)
        # The tunnel of credentials: the instance read its parameters
        # with its role's keys from its IMDS, never from user-data.
        self.assertTrue(any(c[0] == "PUT" for c in self.emu.hosts[iid].imds.calls))

        # push: the same instance, the new commit served.
        sha2 = repo.commit("two", edit={"web/extra.txt": "two\n"})
        self.push(env_id, sha2)
        self.deploy(env_id)
        self.assertIn(sha2[:12], self.page(slug))
        self.assertEqual(self.live(slug), [iid])

        # stop: the instance and its containers stopped, kept.
        p = self.tool("stop", slug)
        self.assertIn("rc=0", p.stdout, p.stdout + p.stderr)
        self.assertEqual(self.host_state(iid), "exited")
        self.assertEqual(self.instances(slug)[0]["State"]["Name"], "stopped")
        self.assertEqual(instances.docker(
            "ps", "-q", "--filter", "label=com.docker.compose.project=%s-%s"
            % (self.inst, slug)).split(), [])
        self.assertEqual(len(instances.docker(
            "ps", "-aq", "--filter", "label=com.docker.compose.project=%s-%s"
            % (self.inst, slug)).split()), 2)

        # start (a push while stopped): booted again, no second instance,
        # user-data not run again, the new commit served.
        sha3 = repo.commit("three", edit={"web/extra.txt": "three\n"})
        self.push(env_id, sha3)
        self.deploy(env_id)
        self.assertIn(sha3[:12], self.page(slug))
        self.assertEqual(self.live(slug), [iid])
        self.assertEqual(instances.docker("exec", self.emu.hosts[iid].name, "cat", first), out)

        # close: terminated, its host and containers gone, its parameters
        # deleted.
        names = {p["Name"] for p in self.admin_ssm.get_parameters_by_path(
            Path="/%s/%s" % (self.inst, slug), Recursive=True)["Parameters"]}
        self.assertTrue(names)
        ec2 = self.moto.client("ec2", *self.ids["admin"])
        vols = {v["VolumeId"] for v in ec2.describe_volumes(Filters=[
            {"Name": "attachment.instance-id", "Values": [iid]}])["Volumes"]}
        self.assertTrue(vols)
        p = self.tool("destroy", slug, str(env_id))
        self.assertIn("rc=0", p.stdout, p.stdout + p.stderr)
        self.assertEqual(self.host_state(iid), "gone")
        self.assertEqual(self.live(slug), [])
        self.assertEqual(self.parameters(slug), {})
        self.assertEqual(self.emu.leftovers(self.emu.hosts[iid]), [])
        # The teardown report: each of them found, then checked gone.
        self.assertEqual([v for v in ec2.describe_volumes()["Volumes"]
                          if v["VolumeId"] in vols], [])
        rows = self.s.sql("SELECT kind, name, gone_at IS NOT NULL FROM teardown_items "
                        "WHERE env_id = %d ORDER BY kind, name" % env_id)
        self.assertEqual(rows, sorted([["ebs_volume", v, "1"] for v in vols] +
                                      [["instance", iid, "1"]] +
                                      [["parameter", n, "1"] for n in names]), rows)


class CloudBadHost(CloudBase):
    """What the instance says is input: a failure deep in a long log,
    garbage where the services' JSON should be."""

    # A build whose reason comes after 20,000 bytes of log: SSM keeps only
    # the first 8,000 characters of a command's stderr.
    NOISY = ("FROM ephemera/busybox:1\n"
             "RUN i=0; while [ $i -lt 400 ]; do echo build-noise-$i-.................."
             "..............; i=$((i+1)); done; echo the-real-reason >&2; exit 3\n")

    def failed_build(self, p):
        self.assertEqual(self.field(p.stdout, "rc"), "failed", p.stdout + p.stderr)
        build = self.field(p.stdout, "build")
        return self.s.sql("SELECT error, log_tail FROM builds WHERE id = %s" % build)[0]

    def test_reason_at_the_end_of_a_long_log(self):
        repo = Repo(self.repos, "acme/noisy")
        slug = "pr-2-noisy"
        env_id = self.env_row(2, slug, repo.commit("noisy", edit={"web/Dockerfile": self.NOISY}),
                              repo.path)
        # First deploy: from user-data, read back through Run Command.
        why, tail = self.failed_build(self.tool("deploy", str(env_id)))
        self.assertIn("exit 1", why)
        self.assertIn("the-real-reason", tail)
        [iid] = self.live(slug)
        # Again on the running instance: through Run Command itself.
        self.push(env_id, repo.commit("noisier", edit={"web/extra.txt": "x\n"}))
        why, tail = self.failed_build(self.tool("deploy", str(env_id)))
        self.assertIn("the-real-reason", tail)
        self.assertEqual(self.live(slug), [iid])
        # Not leaked: the failed environment is destroyed like any other.
        self.assertIn("rc=0", self.tool("destroy", slug).stdout)
        self.assertEqual(self.live(slug), [])
        self.assertEqual(self.host_state(iid), "gone")

    def test_garbage_instead_of_services(self):
        repo = Repo(self.repos, "acme/garbage")
        slug = "pr-3-garbage"
        env_id = self.env_row(3, slug, repo.commit("one"), repo.path)
        self.deploy(env_id)
        [iid] = self.live(slug)
        # The host's script broken as a bad image would break it: `up`
        # prints bytes that are not JSON and says it worked.
        self.host_script(iid, "printf '\\377\\000{\"name\": [garbage\\n'\n"
                              "echo up-said-this >&2\nexit 0\n")
        self.push(env_id, repo.commit("two"))
        why, tail = self.failed_build(self.tool("deploy", str(env_id)))
        self.assertIn("services", why)
        self.assertIn("up-said-this", tail)
        self.assertIn("rc=0", self.tool("destroy", slug).stdout)
        self.assertEqual(self.live(slug), [])
        self.assertEqual(self.host_state(iid), "gone")


class CloudHang(CloudBase):
    """A host script that never ends: stopped before SSM's own limit, so
    the log comes back; the environment fails saying so."""

    @classmethod
    def extra_settings(cls):
        return dict(super().extra_settings(), **{"ec2.command_timeout_seconds": 60})

    def test_hang_past_the_timeout(self):
        repo = Repo(self.repos, "acme/hang")
        slug = "pr-4-hang"
        env_id = self.env_row(4, slug, repo.commit("one"), repo.path)
        self.deploy(env_id)
        [iid] = self.live(slug)
        self.host_script(iid, "echo hanging-here >&2\nexec sleep 3600\n")
        self.push(env_id, repo.commit("two"))
        t = time.monotonic()
        p = self.tool("deploy", str(env_id))
        self.assertEqual(self.field(p.stdout, "rc"), "failed", p.stdout + p.stderr)
        self.assertLess(time.monotonic() - t, 90)
        build = self.field(p.stdout, "build")
        why, tail = self.s.sql("SELECT error, log_tail FROM builds WHERE id = %s" % build)[0]
        self.assertIn("did not finish within 60 s", why)
        self.assertIn("hanging-here", tail)
        # Nothing of the hung run is left on the host.
        ps = instances.docker("exec", self.emu.hosts[iid].name, "ps", "-eo", "args")
        self.assertNotIn("sleep 3600", ps)
        self.assertIn("rc=0", self.tool("destroy", slug).stdout)
        self.assertEqual(self.live(slug), [])


class CloudCrashWindows(CloudBase):
    """A worker killed right after each AWS write of a deploy, a stop, a
    start and a teardown, before it records anything; the next run of the
    same operation converges: one instance, the commit served, or nothing
    left. The windows come from a clean run's own writes, so a write the
    code adds is covered without editing this list."""

    READS = ("Describe", "Get", "List")

    def writes(self, mark):
        seen = []
        for r in self.proxy.records[mark:]:
            if not r[1].startswith(self.READS) and r[3] == 200 and r[1] not in seen:
                seen.append(r[1])
        return seen

    def crashing(self, action, *args):
        """Runs the tool, killed right after `action` took effect."""
        e = dict(os.environ, AWS_EC2_METADATA_DISABLED="true")
        p = subprocess.Popen([TOOL, "-c", self.s.config] + list(args), env=e,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.emu.crash_after = (action, p.pid)
        p.wait(timeout=300)
        self.emu.crash_after = None
        return p.returncode

    def next_worker(self, *op):
        """The operation again, as the queue runs it: a retry comes back
        after its retry_ms (an adopted instance's agent may not have
        registered yet)."""
        for _ in range(10):
            p = self.tool(*op)
            if self.field(p.stdout, "rc") != "retry":
                return p
            time.sleep(int(self.field(p.stdout, "retry_ms")) / 1000)
        return p

    def converged(self, slug, sha=None, iid=None):
        """One live instance (iid when given) serving sha; or, with sha
        None, none, no parameter and no host left."""
        live = self.live(slug)
        if sha is None:
            self.assertEqual(live, [])
            self.assertEqual(self.parameters(slug), {})
            hosts = [h for h in self.emu.hosts.values() if h.slug == slug and not h.gone]
            self.assertEqual(hosts, [])
            return None
        self.assertEqual(len(live), 1, live)
        if iid:
            self.assertEqual(live, [iid])
        self.assertIn(sha[:12], self.page(slug))
        return live[0]

    def test_every_aws_write(self):
        # A clean run: the writes of each operation.
        repo = Repo(self.repos, "acme/crash")
        slug, sha = "pr-9-crash", repo.commit("clean")
        env_id = self.env_row(9, slug, sha, repo.path)
        ops = {}
        mark = len(self.proxy.records)
        self.deploy(env_id)
        ops["launch"] = self.writes(mark)
        sha = repo.commit("clean-2")
        self.push(env_id, sha)
        mark = len(self.proxy.records)
        self.deploy(env_id)
        ops["redeploy"] = self.writes(mark)
        mark = len(self.proxy.records)
        self.tool("stop", slug)
        ops["stop"] = self.writes(mark)
        mark = len(self.proxy.records)
        self.deploy(env_id)
        ops["start"] = self.writes(mark)
        mark = len(self.proxy.records)
        self.tool("destroy", slug, str(env_id))
        ops["destroy"] = self.writes(mark)
        print("writes: %s" % ops)
        self.assertIn("RunInstances", ops["launch"])
        self.assertIn("StartInstances", ops["start"])
        self.assertIn("TerminateInstances", ops["destroy"])

        results = []
        n = 0
        for phase in ("launch", "redeploy", "stop", "start", "destroy"):
            for action in ops[phase]:
                n += 1
                slug = "pr-%d-crash" % (100 + n)
                sha = repo.commit("window %d" % n)
                env_id = self.env_row(100 + n, slug, sha, repo.path)
                iid = None
                if phase != "launch":
                    self.deploy(env_id)
                    [iid] = self.live(slug)
                if phase == "redeploy":
                    sha = repo.commit("window %d pushed" % n)
                    self.push(env_id, sha)
                if phase == "start":
                    self.tool("stop", slug)
                    sha = repo.commit("window %d woken" % n)
                    self.push(env_id, sha)
                op = {"stop": ("stop", slug), "destroy": ("destroy", slug, str(env_id))}.get(
                    phase, ("deploy", str(env_id)))
                rc = self.crashing(action, *op)
                self.assertEqual(rc, -signal.SIGKILL, "%s %s: not killed" % (phase, action))
                again = self.next_worker(*op)
                self.assertIn("rc=", again.stdout, again.stderr)
                if op[0] == "deploy":
                    build = self.field(again.stdout, "build")
                    self.assertEqual(self.field(again.stdout, "rc"), "ok", "%s after %s: %s\n%s" % (
                        phase, action, again.stdout, self.s.sql(
                            "SELECT log_tail FROM builds WHERE id = %s" % build)[0][0][-3000:]))
                if phase == "stop":
                    self.assertEqual([i["State"]["Name"] for i in self.instances(slug)],
                                     ["stopped"])
                    self.deploy(env_id)
                if phase == "destroy":
                    self.converged(slug)
                    # The killed worker recorded the instance before it
                    # terminated it; the next one confirmed it gone.
                    self.assertEqual(self.s.sql(
                        "SELECT kind, gone_at IS NOT NULL FROM teardown_items WHERE "
                        "env_id = %d AND name = '%s'" % (env_id, iid)), [["instance", "1"]])
                    self.assertEqual(self.s.sql(
                        "SELECT COUNT(*) FROM teardown_items WHERE env_id = %d AND "
                        "gone_at IS NULL" % env_id), [["0"]])
                else:
                    self.converged(slug, sha, iid)
                    self.tool("destroy", slug)
                    self.converged(slug)
                results.append("%s after %s: converged" % (phase, action))
        print("crash windows:\n  " + "\n  ".join(results))
        self.assertEqual(len(self.emu.crashed), n)
        self.assertEqual(self.emu.doubles, [])


if __name__ == "__main__":
    import unittest
    unittest.main()
