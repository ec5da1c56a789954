"""The cloud path end to end through the real stack: webhook → queue →
workers → EC2 (moto, IAM on) → an instance that boots and runs compose
(harness/instances.py) → the Cloudflare tunnel's connector on it → the URL
serves through the fake's edge; push, idle stop, start, close.
"""

import base64
import json
import os
import re
import shutil
import tempfile
import time
import uuid

from harness import events, instances
from harness.github_fake import GitHubFake
from harness.moto import ec2_settings, moto_behind_proxy, worker_credentials
from harness.stack import wait_until

from test_cloudflare import ConnectorStackBase
from test_local import HELLO


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


INST = 91
PERMS = {"contents": "read", "issues": "write", "pull_requests": "write",
         "deployments": "write", "statuses": "write", "metadata": "read"}
# The web service is given the repository's secret, as an app gets its
# API keys; its health check fails unless the value arrived whole.
SECRET_COMPOSE = open(os.path.join(HELLO, "docker-compose.yml")).read().replace(
    "    ports:\n      - \"8080:80\"\n",
    "    environment:\n      SECRET_TOKEN: ${SECRET_TOKEN}\n"
    "    ports:\n      - \"8080:80\"\n").replace(
    '      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]\n',
    '      test: ["CMD-SHELL", "test -n \\"$$SECRET_TOKEN\\" && '
    'wget -q -O /dev/null http://127.0.0.1/"]\n', 1)


class CloudGitHubBase(CloudStackBase):
    """The cloud stack with the GitHub fake: GitHub's view of a PR is what
    a reviewer sees; `github_more` adds settings."""
    github_more = {}

    @classmethod
    def setUpClass(cls):
        cls.gh = GitHubFake()
        cls.more = dict(cls.gh.settings(), **cls.github_more)
        try:
            super().setUpClass()
        except Exception:
            cls.gh.stop()
            raise
        cls.gh.configure(installations={str(INST): {"repos": ["acme/cloud"],
                                                    "permissions": PERMS}},
                         collaborators={"writer": ["write", "write"]})
        # A secret no other test uses, so any copy of it is this one's.
        cls.secret = "tok-" + uuid.uuid4().hex
        with open(os.path.join(cls.tmp, "secrets.env"), "w") as f:
            f.write("SECRET_TOKEN=%s\n" % cls.secret)

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.gh.stop()

    @classmethod
    def repo_names(cls):
        return ["acme/cloud"]

    def deliver(self, event, payload):
        payload["installation"] = {"id": INST}
        return super().deliver(event, payload)

    def github(self, check, timeout=30, pr=1):
        """GitHub's view of the PR once `check` accepts it (asserted once
        more after the timeout): the bot's comments, the first one's
        headline and body, and each Deployment's sha and last state."""
        def view():
            v = self.gh.pr_view("acme/cloud", pr)
            body = v["comments"][0] if v["comments"] else ""
            head = re.search(r"^### (.*)$", body, re.M)
            return {"comments": v["comments"], "body": body,
                    "headline": head.group(1) if head else None,
                    "deployments": [(d["sha"], d["state"]) for d in v["deployments"]],
                    "raw": v}

        def accepted():
            v = view()
            try:
                check(v)
            except AssertionError:
                return None
            return v
        v = wait_until(accepted, timeout=timeout, interval=0.3)
        if not v:
            v = view()
            check(v)
        return v


    @staticmethod
    def removed(body):
        """The comment's teardown report: {label: [names]}."""
        listed = dict(re.findall(r"^- ([^(\n]+) \(\d+\): (.*)$", body, re.M))
        return {k: re.findall(r"`([^`]+)`", t) for k, t in listed.items()}


class CloudStackLifecycle(CloudGitHubBase):
    """The lifecycle as a reviewer sees it: the GitHub fake holds the PR's
    comment and Deployments, and a writer's `/preview stop` is obeyed."""

    def assert_secret_only_in_parameter_store(self, slug, iid):
        """The repository's secret reached the app, and on its way it was
        in no AWS request but a SecureString PutParameter: not the
        user-data, not a command, not the logs or the database."""
        web = [c for c in instances.docker(
            "ps", "-q", "--filter", "label=com.docker.compose.service=web").split()
            if slug in instances.docker("inspect", "--format",
                                        '{{index .Config.Labels "com.docker.compose.project"}}',
                                        c)]
        self.assertEqual(len(web), 1, web)
        env = json.loads(instances.docker("inspect", web[0]))[0]["Config"]["Env"]
        self.assertIn("SECRET_TOKEN=" + self.secret, env)
        forms = (self.secret, base64.b64encode(self.secret.encode()).decode())
        carried = []
        for svc, action, params, status, _ in self.proxy.records:
            text = repr(params)
            if action == "RunInstances":
                text += base64.b64decode(params.get("UserData", "")).decode(errors="replace")
            if any(f in text for f in forms):
                carried.append(action)
                self.assertEqual(action, "PutParameter")
                self.assertEqual(params.get("Type"), "SecureString", params.get("Name"))
        self.assertNotIn("RunInstances", carried)
        self.assertTrue([r for r in self.proxy.records if r[1] == "SendCommand"])
        host = self.emu.hosts[iid].name
        self.assertNotIn(self.secret, instances.docker("inspect", host))
        self.assertNotIn(self.secret, self.s.logs())
        for table in ("environments", "builds", "build_steps", "jobs", "teardown_items"):
            self.assertNotIn(self.secret, repr(self.s.sql("SELECT * FROM %s" % table)), table)

    def test_open_push_idle_start_command_close(self):
        repo = self.repos["acme/cloud"]
        t0 = time.monotonic()
        a = repo.commit("A", {"docker-compose.yml": SECRET_COMPOSE})
        self.deliver("pull_request", events.pull_request("opened", "acme/cloud", 1, a))
        e = self.wait_phase("acme/cloud", 1, "ready", sha=a, timeout=300)
        slug = e["slug"]
        url = "https://%s.%s/" % (slug, self.cf.zone)
        print("open → ready through the edge: %.1f s" % (time.monotonic() - t0))
        st, body = self.edge(slug)
        self.assertEqual(st, 200)
        self.assertIn(a, body)
        [(iid, state)] = self.live(slug)
        self.assertEqual(state, "running")
        # The connector runs on the instance, from its work dir's token.
        self.assertIn(iid, self.emu.hosts)
        self.assert_secret_only_in_parameter_store(slug, iid)

        def ready(sha):
            def check(v):
                self.assertEqual(len(v["comments"]), 1)
                self.assertEqual(v["headline"], "✅ Preview ready")
                self.assertEqual(v["deployments"][-1], (sha, "success"))
                self.assertEqual(v["raw"]["deployments"][-1]["environment_url"], url)
            return check
        self.github(ready(a))

        b = repo.commit("B", {"web/index.html.in": "<p>second @COMMIT@</p>\n"})
        self.deliver("pull_request", events.pull_request("synchronize", "acme/cloud", 1, b))
        self.wait_phase("acme/cloud", 1, "ready", sha=b, timeout=300)
        self.assertTrue(wait_until(lambda: "second " + b in self.edge(slug)[1], timeout=30),
                        self.edge(slug))
        self.assertEqual(self.live(slug), [(iid, "running")])
        self.github(ready(b))

        # Idle by the clock, but visited through the tunnel since the
        # deploy's own check (the fetches above): the connector's count,
        # read on the instance through Run Command, moved, so the sweep
        # takes that for activity now and the preview stays up.
        stale = ("UPDATE environments SET last_active_at = NOW(6) - INTERVAL 10 HOUR "
                 "WHERE id = %d" % e["id"])
        self.s.sql(stale)
        fresh = ("SELECT last_active_at > NOW(6) - INTERVAL 1 MINUTE FROM environments "
                 "WHERE id = %d" % e["id"])
        self.assertTrue(wait_until(lambda: self.s.sql(fresh) == [["1"]], timeout=60),
                        self.s.log("workers")[-3000:])
        self.assertIn("idle_visited", self.s.log("workers"))
        self.assertEqual(self.env("acme/cloud", 1)["phase"], "ready")
        # No visit since that look: stopped, the instance kept but not
        # running.
        self.s.sql(stale)
        self.wait_phase("acme/cloud", 1, "stopped", timeout=120)
        self.assertEqual(self.live(slug), [(iid, "stopped")])
        self.assertNotEqual(self.edge(slug)[0], 200)

        def stopped(why):
            def check(v):
                self.assertEqual(v["headline"], "💤 Preview stopped")
                self.assertIn(why, v["body"])
                self.assertEqual(v["deployments"][-1][1], "inactive")
                self.assertNotIn(url, v["body"])
            return check
        self.github(stopped("without traffic"))

        # A push wakes it: the same instance started, the new commit served.
        c = repo.commit("C", {"web/index.html.in": "<p>third @COMMIT@</p>\n"})
        self.deliver("pull_request", events.pull_request("synchronize", "acme/cloud", 1, c))
        self.wait_phase("acme/cloud", 1, "ready", sha=c, timeout=300)
        self.assertTrue(wait_until(lambda: "third " + c in self.edge(slug)[1], timeout=30),
                        self.edge(slug))
        self.assertEqual(self.live(slug), [(iid, "running")])
        self.github(ready(c))

        # A writer's command stops it the same way.
        text = "/preview stop"
        cm = self.gh.post("/_fake/comment", {"repo": "acme/cloud", "issue": 1, "body": text,
                                              "login": "writer"})
        self.deliver("issue_comment", events.issue_comment("acme/cloud", 1, cm["id"], text,
                                                           "writer"))
        self.wait_phase("acme/cloud", 1, "stopped", timeout=120)
        self.assertEqual(self.live(slug), [(iid, "stopped")])
        self.github(stopped("Stopped on request"))
        # A stopped preview has no tunnel or record (a push makes them).
        inv = self.cf.inventory()
        self.assertEqual([t for t in inv["tunnels"] if slug in t["name"]], [])
        self.assertEqual([r for r in inv["dns_records"] if slug in r["name"]], [])

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

        # GitHub's final state: one comment, removed, with the report of
        # what was checked gone; every Deployment inactive.
        def removed(v):
            self.assertEqual(v["headline"], "🗑️ Preview removed")
            self.assertEqual({s for _, s in v["deployments"]}, {"inactive"})
            self.assertEqual([d for d, _ in v["deployments"]], [a, b, c])
            self.assertIn("Removed, each checked gone after the delete", v["body"])
        v = self.github(removed)
        body = v["body"]
        self.assertEqual(len(v["comments"]), 1)
        names = self.removed(body)
        self.assertEqual(names.get("EC2 instance"), [iid], body)
        self.assertTrue(names.get("EBS volume"), body)
        self.assertTrue(names.get("Parameter Store parameter"), body)
        # The stop took the tunnel and its record: the destroy found none.
        self.assertNotIn("Cloudflare tunnel", names)
        self.assertNotIn("Not yet confirmed", body)
        ec2 = self.moto.client("ec2", *self.ids["admin"])
        for vol in names["EBS volume"]:
            self.assertEqual(ec2.describe_volumes(Filters=[
                {"Name": "volume-id", "Values": [vol]}])["Volumes"], [], vol)
