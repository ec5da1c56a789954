"""The cloud path end to end through the real stack: webhook → queue →
workers → EC2 (moto, IAM on) → an instance that boots and runs compose
(harness/instances.py) → the Cloudflare tunnel's connector on it → the URL
serves through the fake's edge; push, idle stop, start, close.
"""

import os
import shutil
import tempfile
import time

from harness import events, instances
from harness.moto import ec2_settings, moto_behind_proxy, worker_credentials
from harness.stack import wait_until

from test_cloudflare import ConnectorStackBase


class CloudStackBase(ConnectorStackBase):
    """The stack with ec2 compute against moto and the instance emulator,
    and the cloudflare exposure against the fake; `more` adds settings."""
    more = {}

    @classmethod
    def setUpClass(cls):
        cls.moto, cls.ids, cls.proxy = moto_behind_proxy()
        cls.aws_dir = tempfile.mkdtemp(prefix="eph-cloud-")
        creds = worker_credentials(cls.ids, cls.aws_dir)
        cls.envs = os.path.join(cls.aws_dir, "envs")
        cls.extra_settings = dict(ec2_settings(cls.proxy, cls.ids, creds), **{
            "cloudflare.access": False,
            "ec2.envs_dir": cls.envs,
            "workers.sweep_interval_seconds": 2,
        })
        cls.extra_settings.update(cls.more)
        try:
            cls.emu = instances.InstanceEmulator(cls.moto, cls.ids, cls.proxy, cls.envs)
            super().setUpClass()
            # The repositories are the instances' sources (read-only).
            cls.emu.mounts = [r.path for r in cls.repos.values()]
        except Exception:
            cls.stop_aws()
            raise

    @classmethod
    def stop_aws(cls):
        if getattr(cls, "emu", None):
            cls.emu.stop()
        cls.proxy.stop()
        cls.moto.stop()
        shutil.rmtree(cls.aws_dir, ignore_errors=True)

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.stop_aws()

    def live(self, slug):
        ec2 = self.moto.client("ec2", *self.ids["admin"])
        r = ec2.describe_instances(Filters=[
            {"Name": "tag:ephemera:instance", "Values": [self.instance]},
            {"Name": "tag:ephemera:env", "Values": [slug]}])
        return [(i["InstanceId"], i["State"]["Name"]) for res in r["Reservations"]
                for i in res["Instances"] if i["State"]["Name"] != "terminated"]


class CloudStackLifecycle(CloudStackBase):
    @classmethod
    def repo_names(cls):
        return ["acme/cloud"]

    def test_open_push_idle_start_close(self):
        repo = self.repos["acme/cloud"]
        t0 = time.monotonic()
        a = repo.commit("A")
        self.deliver("pull_request", events.pull_request("opened", "acme/cloud", 1, a))
        e = self.wait_phase("acme/cloud", 1, "ready", sha=a, timeout=300)
        slug = e["slug"]
        print("open → ready through the edge: %.1f s" % (time.monotonic() - t0))
        st, body = self.edge(slug)
        self.assertEqual(st, 200)
        self.assertIn(a, body)
        [(iid, state)] = self.live(slug)
        self.assertEqual(state, "running")
        # The connector runs on the instance, from its work dir's token.
        self.assertIn(iid, self.emu.hosts)

        b = repo.commit("B", {"web/index.html.in": "<p>second @COMMIT@</p>\n"})
        self.deliver("pull_request", events.pull_request("synchronize", "acme/cloud", 1, b))
        self.wait_phase("acme/cloud", 1, "ready", sha=b, timeout=300)
        self.assertTrue(wait_until(lambda: "second " + b in self.edge(slug)[1], timeout=30),
                        self.edge(slug))
        self.assertEqual(self.live(slug), [(iid, "running")])

        # Idle: stopped, the instance kept but not running.
        self.s.sql("UPDATE environments SET last_active_at = NOW(6) - INTERVAL 10 HOUR "
                   "WHERE id = %d" % e["id"])
        self.wait_phase("acme/cloud", 1, "stopped", timeout=120)
        self.assertEqual(self.live(slug), [(iid, "stopped")])
        self.assertNotEqual(self.edge(slug)[0], 200)

        # A push wakes it: the same instance started, the new commit served.
        c = repo.commit("C", {"web/index.html.in": "<p>third @COMMIT@</p>\n"})
        self.deliver("pull_request", events.pull_request("synchronize", "acme/cloud", 1, c))
        self.wait_phase("acme/cloud", 1, "ready", sha=c, timeout=300)
        self.assertTrue(wait_until(lambda: "third " + c in self.edge(slug)[1], timeout=30),
                        self.edge(slug))
        self.assertEqual(self.live(slug), [(iid, "running")])

        # Close: terminated; tunnel, record and parameters gone.
        self.deliver("pull_request", events.pull_request("closed", "acme/cloud", 1, c))
        self.wait_phase("acme/cloud", 1, "destroyed", timeout=300)
        self.assertEqual(self.live(slug), [])
        inv = self.cf.inventory()
        self.assertEqual([t for t in inv["tunnels"] if slug in t["name"]], [])
        self.assertEqual([r for r in inv["dns_records"] if slug in r["name"]], [])
        ssm = self.moto.client("ssm", *self.ids["admin"])
        self.assertEqual(ssm.get_parameters_by_path(Path="/%s/%s" % (self.instance, slug),
                                                    Recursive=True)["Parameters"], [])
        self.assertEqual(self.emu.leftovers(self.emu.hosts[iid]), [])
        self.assertEqual(self.edge(slug)[0], 530)
