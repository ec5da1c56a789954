"""The `ec2` compute provider (workers/aws/ec2_compute.c) against moto with
signatures and IAM on and the worker running with exactly
infra/aws/iam/worker-policy.json (Resources widened for moto; the recorded
calls are also checked against the unwidened file by harness/iam_eval).

The operations of compute_ec2 are driven one at a time through
build/asan/tests/tools/ec2_compute_run, as reconcile.c and sweep.c call
them, against a private stack's MariaDB (no workers: nothing else talks
to moto) so build and build_steps rows are the real ones.

moto runs nothing: its instances are `running` at once and never boot, and
every SSM command "succeeds" at once with empty output. So user-data and
the Run Command script are checked as moto recorded them (decoded and
compared), and the answer a real host would give to GetCommandInvocation
(the services JSON on stdout, the build log on stderr) is injected by the
fault proxy in front of moto.
"""

import base64
import gzip
import json
import os
import subprocess
import tempfile
import time
import unittest

from harness import iam_eval
from harness.cloudflare_fake import CloudflareFake
from harness.github_fake import GitHubFake
from harness.moto import (AMI, Fault, ec2_settings, fixture, load_policy,
                          moto_behind_proxy, worker_credentials)
from harness.stack import ROOT, Stack, http, wait_until

from test_local import Repo

TOOL = os.path.join(ROOT, "build", "asan", "tests", "tools", "ec2_compute_run")
AWS_RUN = os.path.join(ROOT, "build", "asan", "tests", "tools", "aws_run")
SERVICES = [{"name": "web", "address": "172.18.0.2", "state": "running"},
            {"name": "api", "address": "172.18.0.3", "state": "running"}]


def unpack(values):
    """compose.json from its parameters' values, as the instance's script
    joins and unpacks them (base64 of gzip, cut into parts)."""
    return gzip.decompress(base64.b64decode("".join(values))).decode()


def invocation(stdout, stderr, status="Success", code=0):
    return json.dumps({"CommandId": "c", "InstanceId": "i", "Status": status,
                       "StatusDetails": status, "ResponseCode": code,
                       "StandardOutputContent": stdout,
                       "StandardErrorContent": stderr}).encode()


class Ec2Base(unittest.TestCase):
    """moto behind its fault proxy, and a stack without workers whose
    config points the ec2 provider at it (plus extra_settings())."""

    workers = False

    @classmethod
    def extra_settings(cls):
        return {}

    # Config text after the settings (a repos list).
    extra = ""
    # Settings over the ec2 ones (compute.provider, say).
    override = {}

    @classmethod
    def setUpClass(cls):
        cls.moto, cls.ids, cls.proxy = moto_behind_proxy()
        cls.dir = tempfile.mkdtemp(prefix="eph-ec2p-")
        creds = worker_credentials(cls.ids, cls.dir)
        settings = dict(cls.extra_settings(), **dict(ec2_settings(cls.proxy, cls.ids, creds), **{
            "workers.sweep_grace_seconds": 0,
            "ec2.instance_types": "t3.small,t3a.small",
            # Not environments.hourly_price (0.0208), so each is told
            # from the fallback.
            "ec2.hourly_prices": "t3.small=0.021,t3a.small=0.019"}))
        settings.update(cls.override)
        cls.s = Stack("ec2p", workers=cls.workers, settings=settings, extra=cls.extra)
        try:
            cls.s.up()
        except Exception:
            cls.s.cleanup()
            cls.proxy.stop()
            cls.moto.stop()
            raise
        cls.inst = cls.s.settings["environments.instance"]
        cls.admin_ec2 = cls.moto.client("ec2", *cls.ids["admin"])
        cls.admin_ssm = cls.moto.client("ssm", *cls.ids["admin"])
        subprocess.run([os.path.join(ROOT, "examples", "busybox-image.sh")], check=True,
                       stdout=subprocess.DEVNULL)

    @classmethod
    def tearDownClass(cls):
        cls.s.cleanup()
        cls.proxy.stop()
        cls.moto.stop()

    def tool(self, *args, tool=TOOL):
        e = dict(os.environ)
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            e.pop(k, None)
        e["AWS_EC2_METADATA_DISABLED"] = "true"
        p = subprocess.run([tool, "-c", self.s.config] + list(args), capture_output=True,
                           text=True, env=e, timeout=120)
        for secret in (self.ids["worker"][1], self.ids["admin"][1]):
            self.assertNotIn(secret, p.stdout + p.stderr)
        return p

    def env_row(self, pr, slug, sha, url, installation=0):
        self.s.sql("INSERT INTO environments (repo, pr, slug, title, desired, phase, "
                   "desired_sha, clone_url, installation_id) VALUES ('acme/app', %d, "
                   "'%s', 't', 'running', 'deploying', '%s', '%s', %d)"
                   % (pr, slug, sha, url, installation))
        return int(self.s.sql("SELECT id FROM environments WHERE slug = '%s'" % slug)[0][0])

    def push(self, env_id, sha):
        self.s.sql("UPDATE environments SET desired_sha = '%s' WHERE id = %d" % (sha, env_id))

    def instances(self, slug):
        r = self.admin_ec2.describe_instances(Filters=[
            {"Name": "tag:ephemera:instance", "Values": [self.inst]},
            {"Name": "tag:ephemera:env", "Values": [slug]}])
        return [i for res in r["Reservations"] for i in res["Instances"]]

    def launch(self, slug):
        """An instance of this installation for `slug`, as a deploy makes."""
        p = self.tool("launch", slug, "0", "0", tool=AWS_RUN)
        self.assertIn("adopted=no", p.stdout, p.stdout + p.stderr)
        return self.instances(slug)[0]

    def instance_state(self, iid):
        r = self.admin_ec2.describe_instances(InstanceIds=[iid])
        return r["Reservations"][0]["Instances"][0]["State"]["Name"]

    def calls(self, action, since=0):
        return [r for r in self.proxy.records[since:] if r[1] == action]

    def run_prices(self, env_id):
        """The hourly price of each of the environment's runs (env_runs)."""
        return [float(r[0]) for r in self.s.sql(
            "SELECT hourly_price FROM env_runs WHERE env_id = %d ORDER BY id" % env_id)]

    def steps(self, build):
        return self.s.sql("SELECT name, status FROM build_steps WHERE build_id = %s "
                          "ORDER BY id" % build)

    @staticmethod
    def field(out, key):
        for tok in out.split():
            if tok.startswith(key + "="):
                return tok.split("=", 1)[1]
        return None

    def host_answers(self, stdout=None, stderr="", status="Success", code=0):
        """What the host says to the next Run Command (moto runs nothing):
        by default, `up` worked and SERVICES run."""
        out = json.dumps(SERVICES) + "\n" if stdout is None else stdout
        self.proxy.faults = [Fault("GetCommandInvocation", 200,
                                   invocation(out, stderr, status, code),
                                   ctype="application/x-amz-json-1.1")]

    def parameters(self, slug):
        r = self.admin_ssm.get_parameters_by_path(
            Path="/%s/%s" % (self.inst, slug), Recursive=True, WithDecryption=True)
        return {p["Name"].rsplit("/", 1)[1]: p["Value"] for p in r["Parameters"]}


class Ec2Provider(Ec2Base):
    def test_lifecycle(self):
        repo = Repo(self.dir, "acme/app")
        url = repo.path
        slug = "pr-1-app"
        sha1 = repo.commit("one")
        env_id = self.env_row(1, slug, sha1, url)
        param = "/%s/%s/compose" % (self.inst, slug)

        # open: launched with both tags, the deploy in its user-data. Its
        # result is read through Run Command once the agent registers
        # (here: one InvalidInstanceId first); the host's answer is the
        # proxy's, as moto runs nothing.
        self.proxy.faults = [
            Fault("SendCommand", 400, json.dumps(
                {"__type": "InvalidInstanceId", "message": "not registered"}).encode(),
                ctype="application/x-amz-json-1.1"),
            Fault("GetCommandInvocation", 200,
                  invocation(json.dumps(SERVICES) + "\n",
                             "fetch: checked out %s\nfirst-boot-line-7\n" % sha1),
                  ctype="application/x-amz-json-1.1")]
        mark = len(self.proxy.records)
        p = self.tool("deploy", str(env_id))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(self.field(p.stdout, "rc"), "ok")
        self.assertIn("172.18.0.2", p.stdout)
        build = self.field(p.stdout, "build")
        self.assertEqual(self.steps(build), [["fetch", "succeeded"], ["configure", "succeeded"],
                                             ["instance", "succeeded"], ["ship", "succeeded"],
                                             ["up", "succeeded"]])
        self.assertIn("first-boot-line-7",
                      self.s.sql("SELECT log_tail FROM builds WHERE id = %s" % build)[0][0])
        run = self.calls("RunInstances", mark)
        self.assertEqual(len(run), 1)
        ud = base64.b64decode(run[0][2]["UserData"]).decode()
        # The deploy script, quoted once more inside the user-data.
        q = "'\\''"
        self.assertIn("export EPH_SHA=%s%s%s\n" % (q, sha1, q), ud)
        self.assertIn("export EPH_SOURCE=%s%s%s\n" % (q, url, q), ud)
        self.assertIn("%s/opt/ephemera/host/ephemera-host%s fetch\n" % (q, q), ud)
        self.assertIn("for p in %s%s%s; do" % (q, param, q), ud)
        self.assertIn(">\"$r.out\" 2>\"$r.err\"\n", ud)
        # Sent twice (the first refused), and neither runs the deploy again.
        send = self.calls("SendCommand", mark)
        self.assertEqual([r[3] for r in send], [400, 200])
        line = send[1][2]["Parameters"]["commands"][0]
        self.assertIn(".first", line)
        self.assertNotIn("ephemera-host", line)
        self.assertTrue(run[0][2]["ClientToken"].startswith("%s-%d-" % (self.inst, env_id)))
        live = self.instances(slug)
        self.assertEqual(len(live), 1)
        iid = live[0]["InstanceId"]
        tags = {t["Key"]: t["Value"] for t in live[0]["Tags"]}
        self.assertEqual(tags["ephemera:instance"], self.inst)
        self.assertEqual(tags["ephemera:env"], slug)
        # compose.json went to Parameter Store as a SecureString, not in
        # the user-data.
        got = self.admin_ssm.get_parameter(Name=param, WithDecryption=True)["Parameter"]
        self.assertEqual(got["Type"], "SecureString")
        # Tagged with the instance's ARN: the instance policy lets only
        # that instance read it.
        ptags = {t["Key"]: t["Value"] for t in self.admin_ssm.list_tags_for_resource(
            ResourceType="Parameter", ResourceId=param)["TagList"]}
        self.assertEqual(ptags["ephemera:instance-arn"], iam_eval.ec2_arn("instance", iid))
        self.assertEqual(ptags["ephemera:env"], slug)
        model = json.loads(unpack([got["Value"]]))
        self.assertEqual(sorted(model["services"]), ["api", "web"])
        self.assertNotIn('"services"', ud)
        p = self.tool("observe", str(env_id))
        self.assertIn("running=1", p.stdout)
        self.assertIn("workdir=1", p.stdout)
        # One run, at the price of the type launched (the first).
        self.assertEqual(live[0]["InstanceType"], "t3.small")
        self.assertEqual(self.run_prices(env_id), [0.021])

        # push: the running instance gets the deploy through Run Command.
        # moto would answer Success with empty output (it runs nothing):
        # the proxy answers as a host whose `up` worked.
        sha2 = repo.commit("two", {"web/extra.txt": "x\n"})
        self.push(env_id, sha2)
        self.host_answers(None, "fetch: checked out %s\nup-log-line-42\n" % sha2)
        mark = len(self.proxy.records)
        p = self.tool("deploy", str(env_id))
        self.assertEqual(self.field(p.stdout, "rc"), "ok", p.stdout + p.stderr)
        self.assertIn("172.18.0.2", p.stdout)
        self.assertEqual(self.calls("RunInstances", mark), [])
        send = self.calls("SendCommand", mark)
        self.assertEqual(len(send), 1)
        self.assertEqual(send[0][2]["DocumentName"], "AWS-RunShellScript")
        self.assertEqual(send[0][2]["InstanceIds"], [iid])
        build = self.field(p.stdout, "build")
        tail = self.s.sql("SELECT log_tail, status FROM builds WHERE id = %s" % build)[0]
        self.assertIn("up-log-line-42", tail[0])
        self.assertEqual(tail[1], "succeeded")
        # What moto recorded: the command, its script carrying the commit.
        # (The first boot's result command is there too.)
        cmds = self.admin_ssm.list_commands(InstanceId=iid)["Commands"]
        lines = [c["Parameters"]["commands"][0] for c in cmds
                 if "fetch" in c["Parameters"]["commands"][0]]
        self.assertEqual(len(lines), 1)
        line = lines[0]
        # The script is $0 of a wrapper that keeps only its stderr's tail
        # (GetCommandInvocation keeps the first 8,000 characters).
        self.assertTrue(line.startswith("'/bin/bash' '-c' 'e=$(mktemp)"), line)
        self.assertIn("tail -c 7000", line)
        self.assertIn("timeout -k 10 870 /bin/bash", line)
        self.assertIn("' '#!/bin/bash", line)
        self.assertIn("EPH_SHA='\\''%s'\\''" % sha2, line)

        # idle stop, then a wake: StartInstances, then Run Command
        p = self.tool("stop", slug)
        self.assertIn("rc=0", p.stdout)
        self.assertEqual(self.instances(slug)[0]["State"]["Name"], "stopped")
        self.assertIn("running=0", self.tool("observe", str(env_id)).stdout)
        self.host_answers(None, "woke\n")
        mark = len(self.proxy.records)
        p = self.tool("deploy", str(env_id))
        self.assertEqual(self.field(p.stdout, "rc"), "ok", p.stdout + p.stderr)
        self.assertEqual(len(self.calls("StartInstances", mark)), 1)
        self.assertEqual(len(self.calls("SendCommand", mark)), 1)
        self.assertEqual(self.calls("RunInstances", mark), [])
        self.assertEqual(self.instances(slug)[0]["State"]["Name"], "running")

        # Just started, its agent not registered: retried, not failed.
        self.proxy.faults = [Fault("SendCommand", 400, json.dumps(
            {"__type": "InvalidInstanceId", "message": "not registered"}).encode(),
            ctype="application/x-amz-json-1.1")]
        p = self.tool("deploy", str(env_id))
        self.assertEqual(self.field(p.stdout, "rc"), "retry", p.stdout)
        self.assertIn("not registered yet", p.stdout)

        # A script that fails on the host is the environment's failure.
        self.host_answers("", "compose up failed\n", "Failed", 1)
        p = self.tool("deploy", str(env_id))
        self.assertEqual(self.field(p.stdout, "rc"), "failed", p.stdout)
        self.assertIn("Failed", p.stdout)

        # close: terminated, parameters gone, nothing left
        p = self.tool("destroy", slug)
        self.assertIn("rc=0", p.stdout, p.stdout + p.stderr)
        self.assertEqual([i["State"]["Name"] for i in self.instances(slug)], ["terminated"])
        # The gate's checkout on the worker is gone too (no Docker call).
        self.assertFalse(os.path.exists(os.path.join(self.s.var, "envs", slug)))
        left = self.admin_ssm.describe_parameters(ParameterFilters=[
            {"Key": "Path", "Option": "Recursive", "Values": ["/%s/%s" % (self.inst, slug)]}])
        self.assertEqual(left["Parameters"], [])
        self.assertIn("any=0", self.tool("leftovers", slug).stdout)

        # Every call the run made (both tests, all through the proxy),
        # with its real ARN and tags, against the unwidened policy.
        denied = iam_eval.check_run(load_policy("worker-policy.json"), self.proxy.records)
        self.assertEqual(denied, [])

    def test_compose_in_parts(self):
        """A compose file whose packed form passes Parameter Store's 4 KB
        goes in parts the script names in order; one too big for all the
        parts fails before anything is launched."""
        def compose(services, size):
            # Random hex: gzip can halve it, no more.
            return "services:\n" + "".join(
                "  %s:\n    image: ephemera/busybox:1\n    expose: [\"80\"]\n"
                "    environment:\n"
                "      K: \"%s\"\n" % (("web", "api")[i] if i < 2 else "s%02d" % i,
                                       os.urandom(size // 2).hex())
                for i in range(services))
        repo = Repo(self.dir, "acme/big")
        slug = "pr-4-big"
        env_id = self.env_row(4, slug, repo.commit("big", {
            "docker-compose.yml": compose(20, 400)}), repo.path)
        self.host_answers()
        mark = len(self.proxy.records)
        p = self.tool("deploy", str(env_id))
        self.assertEqual(self.field(p.stdout, "rc"), "ok", p.stdout + p.stderr)
        parts = self.parameters(slug)
        self.assertEqual(sorted(parts), ["compose", "compose-1"])
        self.assertTrue(all(len(v) <= 4096 for v in parts.values()))
        with open(os.path.join(self.s.var, "envs", slug, "compose.json")) as f:
            gated = json.load(f)
        self.assertEqual(json.loads(unpack([parts["compose"], parts["compose-1"]])), gated)
        self.assertEqual(len(gated["services"]), 20)
        ud = base64.b64decode(self.calls("RunInstances", mark)[0][2]["UserData"]).decode()
        q = "'\\''"
        self.assertIn("for p in {q}/{i}/{s}/compose{q} {q}/{i}/{s}/compose-1{q}; do".format(
            q=q, i=self.inst, s=slug), ud)
        # Smaller again: one part named; the leftover goes with the rest.
        self.push(env_id, repo.commit("small", {"docker-compose.yml": compose(2, 20)}))
        self.host_answers()
        mark = len(self.proxy.records)
        p = self.tool("deploy", str(env_id))
        self.assertEqual(self.field(p.stdout, "rc"), "ok", p.stdout + p.stderr)
        line = self.calls("SendCommand", mark)[0][2]["Parameters"]["commands"][0]
        self.assertIn("for p in '\\''/%s/%s/compose'\\''; do" % (self.inst, slug), line)
        self.assertEqual(len(json.loads(unpack([self.parameters(slug)["compose"]]))
                             ["services"]), 2)
        self.assertIn("rc=0", self.tool("destroy", slug).stdout)
        self.assertEqual(self.parameters(slug), {})
        # Past the eight parts: failed, saying why, before any AWS call.
        slug = "pr-5-huge"
        env_id = self.env_row(5, slug, repo.commit("huge", {
            "docker-compose.yml": compose(20, 3000)}), repo.path)
        mark = len(self.proxy.records)
        p = self.tool("deploy", str(env_id))
        self.assertEqual(self.field(p.stdout, "rc"), "failed", p.stdout)
        self.assertIn("packs into", p.stdout)
        self.assertEqual(self.proxy.records[mark:], [])
        self.assertEqual(self.instances(slug), [])
        self.tool("destroy", slug)

    def test_replaced_instance_gets_its_parameters(self):
        """An instance terminated outside Ephemera is replaced on the
        next deploy; the parameters it left are made again with the new
        instance's ARN (an overwrite would keep the old one, and the new
        instance could not read them)."""
        repo = Repo(self.dir, "acme/repl")
        slug = "pr-8-repl"
        env_id = self.env_row(8, slug, repo.commit("one"), repo.path)
        self.host_answers()
        self.assertEqual(self.field(self.tool("deploy", str(env_id)).stdout, "rc"), "ok")
        old = self.instances(slug)[0]["InstanceId"]
        self.admin_ec2.terminate_instances(InstanceIds=[old])
        self.host_answers()
        mark = len(self.proxy.records)
        p = self.tool("deploy", str(env_id))
        self.assertEqual(self.field(p.stdout, "rc"), "ok", p.stdout + p.stderr)
        new = [i["InstanceId"] for i in self.instances(slug)
               if i["State"]["Name"] != "terminated"]
        self.assertEqual(len(new), 1)
        self.assertNotEqual(new[0], old)
        name = "/%s/%s/compose" % (self.inst, slug)
        ptags = {t["Key"]: t["Value"] for t in self.admin_ssm.list_tags_for_resource(
            ResourceType="Parameter", ResourceId=name)["TagList"]}
        self.assertEqual(ptags["ephemera:instance-arn"], iam_eval.ec2_arn("instance", new[0]))
        # moto lets an overwrite drop the old tags; AWS keeps them (and
        # refuses Tags with Overwrite). So: the request that last wrote
        # the parameter is one that set the new instance's tag.
        puts = [r[2] for r in self.calls("PutParameter", mark) if r[2]["Name"] == name]
        self.assertNotIn("Overwrite", puts[-1])
        self.assertIn({"Key": "ephemera:instance-arn",
                       "Value": iam_eval.ec2_arn("instance", new[0])}, puts[-1]["Tags"])
        self.assertIn("rc=0", self.tool("destroy", slug).stdout)
        # The delete and the new create, as the worker policy allows them
        # (the whole record: the evaluator learns tags from the creates).
        self.assertEqual(iam_eval.check_run(load_policy("worker-policy.json"),
                                            self.proxy.records), [])

    def test_fallback_type_prices_the_run(self):
        """The first type out of capacity, RunInstances launches the
        second: the run, opened at the first type's price before the
        launch, is repriced at the launched type's."""
        repo = Repo(self.dir, "acme/fall")
        slug = "pr-11-fall"
        env_id = self.env_row(11, slug, repo.commit("one"), repo.path)
        self.host_answers()
        self.proxy.faults.append(Fault(
            "RunInstances", 500, fixture("ec2/error-insufficient-instance-capacity.xml")))
        mark = len(self.proxy.records)
        p = self.tool("deploy", str(env_id))
        self.assertEqual(self.field(p.stdout, "rc"), "ok", p.stdout + p.stderr)
        self.assertEqual([r[2]["InstanceType"] for r in self.calls("RunInstances", mark)],
                         ["t3.small", "t3a.small"])
        self.assertEqual(self.instances(slug)[0]["InstanceType"], "t3a.small")
        self.assertEqual(self.run_prices(env_id), [0.019])
        # A redeploy keeps the run, still at the type that runs.
        self.host_answers()
        p = self.tool("deploy", str(env_id))
        self.assertEqual(self.field(p.stdout, "rc"), "ok", p.stdout + p.stderr)
        self.assertEqual(self.run_prices(env_id), [0.019])
        self.assertIn("rc=0", self.tool("destroy", slug).stdout)

    def test_crash_adopts(self):
        repo = Repo(self.dir, "acme/crash")
        slug = "pr-2-crash"
        sha = repo.commit("one")
        env_id = self.env_row(2, slug, sha, repo.path)
        # A worker that died after RunInstances, before any database
        # write: the instance exists with its tags (launched through the
        # same client and proxy, tools/aws_run), no build knows it.
        p = self.tool("launch", slug, str(env_id), "0", tool=AWS_RUN)
        self.assertIn("adopted=no", p.stdout, p.stdout + p.stderr)
        self.assertEqual(len(self.instances(slug)), 1)
        self.host_answers()
        mark = len(self.proxy.records)
        p = self.tool("deploy", str(env_id))
        self.assertEqual(self.field(p.stdout, "rc"), "ok", p.stdout + p.stderr)
        self.assertEqual(self.calls("RunInstances", mark), [])
        self.assertEqual(len(self.instances(slug)), 1)
        # The sweep's view: the slug is owned (grace 0 here).
        owned = self.tool("owned").stdout
        self.assertIn("owned slug=%s\n" % slug, owned)
        p = self.tool("destroy", slug)
        self.assertIn("rc=0", p.stdout)
        self.assertNotIn("slug=%s\n" % slug, self.tool("owned").stdout)

    def test_errors(self):
        """Recorded AWS answers through the proxy map through aws_outcome:
        throttling and capacity are the queue's retries, a denied call
        fails the environment naming the permission; none launches."""
        repo = Repo(self.dir, "acme/err")
        slug = "pr-3-err"
        env_id = self.env_row(3, slug, repo.commit("one"), repo.path)
        mark = len(self.proxy.records)
        self.proxy.faults = [Fault("DescribeInstances", 503,
                                   fixture("ec2/error-request-limit-exceeded.xml"))]
        p = self.tool("deploy", str(env_id))
        self.assertEqual(self.field(p.stdout, "rc"), "retry", p.stdout)
        self.assertGreater(int(self.field(p.stdout, "retry_ms")), 0)
        # Every type in every subnet out of capacity: retried in minutes.
        self.proxy.faults = [Fault("RunInstances", 500,
                                   fixture("ec2/error-insufficient-instance-capacity.xml"),
                                   times=4)]
        p = self.tool("deploy", str(env_id))
        self.assertEqual(self.field(p.stdout, "rc"), "retry", p.stdout)
        self.assertEqual(self.field(p.stdout, "retry_ms"), "300000")
        self.assertEqual(len(self.calls("RunInstances", mark)), 4)
        self.proxy.faults = [Fault("RunInstances", 403, b"<Response><Errors><Error>"
                                   b"<Code>UnauthorizedOperation</Code><Message>You are not "
                                   b"authorized to perform this operation.</Message></Error>"
                                   b"</Errors></Response>")]
        p = self.tool("deploy", str(env_id))
        self.assertEqual(self.field(p.stdout, "rc"), "failed", p.stdout)
        self.assertIn("ec2:RunInstances", p.stdout)
        build = self.field(p.stdout, "build")
        self.assertEqual(self.steps(build)[-1], ["instance", "failed"])
        self.assertEqual(self.instances(slug), [])
        self.proxy.faults = []
        self.tool("destroy", slug)


class Ec2Sweep(Ec2Base):
    """The reaper's sweep (sweep.c, workers running) on ec2 compute: an
    instance of this installation that no environment owns is terminated
    and its parameters deleted; one with an environment, and another
    installation's, are left alone."""
    workers = True

    @classmethod
    def extra_settings(cls):
        return {"workers.sweep_interval_seconds": 1,
                "environments.idle_stop_minutes": 600}

    extra = 'repos = ({ name = "acme/moved"; compute_provider = "local"; });\n'

    def test_orphan_instance_terminated(self):
        ghost = self.launch("pr-9-ghost")
        arn = iam_eval.ec2_arn("instance", ghost["InstanceId"])
        p = subprocess.run([AWS_RUN, "-c", self.s.config, "param-put", "pr-9-ghost",
                            "compose", arn], input="{}", capture_output=True, text=True,
                           env=dict(os.environ, AWS_EC2_METADATA_DISABLED="true"))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        live = self.launch("pr-10-live")
        self.s.sql("INSERT INTO environments (repo, pr, slug, title, desired, phase, "
                   "desired_sha, clone_url, last_active_at) VALUES ('acme/app', 10, "
                   "'pr-10-live', 't', 'running', 'ready', '%s', '/x', NOW(6))" % ("a" * 40))
        other = self.admin_ec2.run_instances(
            ImageId=AMI, MinCount=1, MaxCount=1, TagSpecifications=[{
                "ResourceType": "instance", "Tags": [
                    {"Key": "ephemera:instance", "Value": "other"},
                    {"Key": "ephemera:env", "Value": "pr-9-ghost"}]}])["Instances"][0]

        def state(iid):
            r = self.admin_ec2.describe_instances(InstanceIds=[iid])
            return r["Reservations"][0]["Instances"][0]["State"]["Name"]
        deadline = time.monotonic() + 60
        while state(ghost["InstanceId"]) != "terminated" and time.monotonic() < deadline:
            time.sleep(0.5)
        self.assertEqual(state(ghost["InstanceId"]), "terminated", self.s.logs()[-3000:])
        self.assertTrue(wait_until(lambda: self.parameters("pr-9-ghost") == {}, timeout=30))
        time.sleep(3)  # more sweeps
        self.assertEqual(state(live["InstanceId"]), "running")
        self.assertEqual(state(other["InstanceId"]), "running")
        self.assertIn("orphan_removed", self.s.log("workers"))
        self.assertNotIn('slug="pr-10-live"', "".join(
            l for l in self.s.log("workers").splitlines() if "orphan_removed" in l))


    def test_moved_repository_instance_terminated(self):
        """A destroyed environment of a repository now on `local` compute
        left an instance: its reconcile would tear down through local and
        never reach it, so the sweep (whose compute, the default, listed
        it) terminates it, and does not reconcile it every pass."""
        left = self.launch("pr-11-moved")
        self.s.sql("INSERT INTO environments (repo, pr, slug, title, desired, phase, "
                   "desired_sha, clone_url) VALUES ('acme/moved', 11, 'pr-11-moved', 't', "
                   "'destroyed', 'destroyed', '%s', '/x')" % ("b" * 40))

        self.assertTrue(wait_until(
            lambda: self.instance_state(left["InstanceId"]) == "terminated", timeout=60),
            self.s.logs()[-3000:])
        time.sleep(3)  # more sweeps
        lines = [l for l in self.s.log("workers").splitlines() if 'slug="pr-11-moved"' in l]
        self.assertTrue(any("orphan_removed" in l and "compute=ec2" in l for l in lines),
                        lines)
        self.assertFalse([l for l in lines if "orphan_reconcile" in l])
        self.assertEqual(self.s.sql("SELECT phase FROM environments WHERE slug = "
                                    "'pr-11-moved'"), [["destroyed"]])


class Ec2SweepBesideLocal(Ec2Base):
    """The default compute is local and one repository's is ec2: the sweep
    lists that repository's instances too. One no environment owns is
    terminated; a destroyed environment's leftover is reconciled, through
    its own compute, until it is gone; a live one stays."""
    workers = True
    override = {"compute.provider": "local"}
    extra = 'repos = ({ name = "acme/app"; compute_provider = "ec2"; });\n'

    @classmethod
    def extra_settings(cls):
        return {"workers.sweep_interval_seconds": 1,
                "environments.idle_stop_minutes": 600}

    def test_instances_swept(self):
        ghost = self.launch("pr-13-ghost")
        left = self.launch("pr-14-left")
        live = self.launch("pr-15-live")
        for pr, slug, desired, phase in ((14, "pr-14-left", "destroyed", "destroyed"),
                                         (15, "pr-15-live", "running", "ready")):
            self.s.sql("INSERT INTO environments (repo, pr, slug, title, desired, phase, "
                       "desired_sha, clone_url, last_active_at) VALUES ('acme/app', %d, "
                       "'%s', 't', '%s', '%s', '%s', '/x', NOW(6))"
                       % (pr, slug, desired, phase, "c" * 40))
        def gone():
            return all(self.instance_state(i["InstanceId"]) == "terminated"
                       for i in (ghost, left))
        self.assertTrue(wait_until(gone, timeout=90), self.s.logs()[-3000:])
        time.sleep(3)  # more sweeps
        self.assertEqual(self.instance_state(live["InstanceId"]), "running")
        log = self.s.log("workers").splitlines()
        self.assertTrue([l for l in log if "orphan_removed" in l and "pr-13-ghost" in l
                         and "compute=ec2" in l], log[-30:])
        self.assertTrue([l for l in log if "orphan_reconcile" in l and "pr-14-left" in l])
        self.assertFalse([l for l in log if "orphan" in l and "pr-15-live" in l])


class Ec2CloneToken(Ec2Base):
    """A GitHub repository's clone token reaches the instance through its
    own parameter, read by `fetch` alone: never in user-data, a command,
    a log or the database."""
    INST = 31

    @classmethod
    def extra_settings(cls):
        cls.gh = GitHubFake()
        cls.gh.configure(installations={str(cls.INST): {
            "repos": ["acme/app"], "permissions": {"contents": "read", "metadata": "read"}}})
        return cls.gh.settings()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.gh.stop()

    def test_token_through_its_parameter(self):
        repo = Repo(self.dir, "acme/app")
        slug = "pr-6-app"
        env_id = self.env_row(6, slug, repo.commit("one"), repo.path, self.INST)
        self.host_answers()
        mark = len(self.proxy.records)
        p = self.tool("deploy", str(env_id))
        self.assertEqual(self.field(p.stdout, "rc"), "ok", p.stdout + p.stderr)
        token = self.parameters(slug)["clone-token"]
        self.assertTrue(token.startswith("ghs_"), token)
        # One the fake issued (a made-up one is 401), with contents:read
        # on this one repository and nothing more (issues are 403).
        r = http("GET", self.gh.url + "/repos/acme/app/issues/6/comments",
                 headers={"Authorization": "token " + token})
        self.assertEqual(r.status, 403, r.text)
        r = http("GET", self.gh.url + "/repos/acme/app/issues/6/comments",
                 headers={"Authorization": "token ghs_" + "x" * 36})
        self.assertEqual(r.status, 401, r.text)
        self.assertIn({"inst": self.INST, "repositories": ["acme/app"],
                       "permissions": {"contents": "read"}},
                      self.gh.state()["tokens_issued"])
        name = "/%s/%s/clone-token" % (self.inst, slug)
        ptags = {t["Key"]: t["Value"] for t in self.admin_ssm.list_tags_for_resource(
            ResourceType="Parameter", ResourceId=name)["TagList"]}
        iid = self.instances(slug)[0]["InstanceId"]
        self.assertEqual(ptags["ephemera:instance-arn"], iam_eval.ec2_arn("instance", iid))
        ud = base64.b64decode(self.calls("RunInstances", mark)[0][2]["UserData"]).decode()
        self.assertIn(name, ud)
        for rec in self.proxy.records[mark:]:
            if rec[1] != "PutParameter":
                self.assertNotIn(token, json.dumps(rec[2]), rec[1])
        self.assertNotIn(token, self.s.logs())
        for table in ("builds", "build_steps", "environments", "jobs"):
            self.assertNotIn(token, repr(self.s.sql("SELECT * FROM %s" % table)), table)
        self.assertIn("rc=0", self.tool("destroy", slug).stdout)
        self.assertEqual(self.parameters(slug), {})
        self.assertEqual(iam_eval.check_run(load_policy("worker-policy.json"),
                                            self.proxy.records), [])


class Ec2Cloudflare(Ec2Base):
    """ec2 compute behind the cloudflare exposure: the tunnel's connector
    joins the project on the instance, its token there through its own
    parameter (the connector mounts it from the instance's work dir)."""

    @classmethod
    def extra_settings(cls):
        cls.cf = CloudflareFake()
        return cls.cf.settings()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.cf.stop()

    def test_tunnel_token_through_its_parameter(self):
        repo = Repo(self.dir, "acme/app")
        slug = "pr-7-app"
        env_id = self.env_row(7, slug, repo.commit("one"), repo.path)
        self.host_answers()
        mark = len(self.proxy.records)
        p = self.tool("deploy", str(env_id))
        self.assertEqual(self.field(p.stdout, "rc"), "ok", p.stdout + p.stderr)
        params = self.parameters(slug)
        token = params["tunnel-token"]
        tunnels = [t for t in self.cf.inventory()["tunnels"] if slug in t["name"]]
        self.assertEqual(len(tunnels), 1, tunnels)
        self.assertEqual(json.loads(base64.b64decode(token))["t"], tunnels[0]["id"])
        model = json.loads(unpack([params["compose"]]))
        connector = model["services"]["ephemera-cloudflared"]
        self.assertEqual([v["source"] for v in connector["volumes"]],
                         ["/var/lib/ephemera/envs/%s/tunnel-token" % slug])
        self.assertNotIn(token, json.dumps(model))
        ud = base64.b64decode(self.calls("RunInstances", mark)[0][2]["UserData"]).decode()
        self.assertIn("/%s/%s/tunnel-token" % (self.inst, slug), ud)
        for rec in self.proxy.records[mark:]:
            if rec[1] != "PutParameter":
                self.assertNotIn(token, json.dumps(rec[2]), rec[1])
        self.assertNotIn(token, self.s.logs())
        self.assertIn("rc=0", self.tool("destroy", slug).stdout)
        self.assertEqual(self.parameters(slug), {})
        self.assertEqual(iam_eval.check_run(load_policy("worker-policy.json"),
                                            self.proxy.records), [])


if __name__ == "__main__":
    unittest.main()
