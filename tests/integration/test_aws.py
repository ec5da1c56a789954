"""workers/aws/ against moto_server with signatures and IAM enforced.

Every class starts its own moto (harness/moto.py) behind a FaultProxy that
records each call; the C side is driven through build/asan/tests/tools/
aws_run, one call per run, as a worker would make them. The worker runs
with exactly infra/aws/iam/worker-policy.json (Resources widened to "*"
for moto); iam_eval.py checks the recorded calls, with their real ARNs
and tags, against the unwidened file.
"""

import hashlib
import json
import os
import subprocess
import tempfile
import unittest

from harness import iam_eval
from harness.moto import (AMI, Fault, FakeImds, ROOT, fixture, load_policy,
                          moto_behind_proxy, widen)

TOOL = os.path.join(ROOT, "build", "asan", "tests", "tools", "aws_run")
SECRET_VALUE = "DATABASE_URL=postgres://u:very-secret-pw@db/x"


class AwsBase(unittest.TestCase):
    outputs = []  # every tool output, checked for secrets at the end

    @classmethod
    def setUpClass(cls):
        cls.moto, cls.ids, cls.proxy = moto_behind_proxy()
        cls.dir = tempfile.mkdtemp(prefix="eph-aws-")
        cls.secrets = []
        cls.creds_file = cls.write_creds({"worker": cls.ids["worker"],
                                          "instance": cls.ids["instance"],
                                          "admin": cls.ids["admin"]})
        for k in ("worker", "instance", "admin"):
            cls.secrets.append(cls.ids[k][1])

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.moto.stop()
        for out in cls.outputs:
            for s in cls.secrets + [SECRET_VALUE]:
                assert s not in out, "a secret reached the tool's output"

    @classmethod
    def write_creds(cls, profiles):
        path = os.path.join(cls.dir, "credentials-%d" % len(os.listdir(cls.dir)))
        with open(path, "w") as f:
            for name, (kid, secret) in profiles.items():
                f.write("[%s]\naws_access_key_id = %s\naws_secret_access_key = %s\n\n"
                        % (name, kid, secret))
        os.chmod(path, 0o600)
        return path

    def conf(self, profile="worker", creds_file=None, types="t3.small,t3a.small", extra=""):
        creds_file = self.creds_file if creds_file is None else creds_file
        path = os.path.join(self.dir, "conf-%s-%d.conf" % (profile, len(os.listdir(self.dir))))
        with open(path, "w") as f:
            f.write('compute: { provider = "ec2"; };\n'
                    'environments: { instance = "eph"; };\n'
                    'aws: { region = "us-east-1"; endpoint_url = "%s"; '
                    'credentials_file = "%s"; profile = "%s"; };\n'
                    'ec2: { ami = "%s"; instance_types = "%s"; subnet_ids = "%s"; '
                    'security_group_ids = "%s"; instance_profile = "ephemera-preview"; };\n%s'
                    % (self.proxy.url, creds_file, profile, AMI, types,
                       ",".join(self.ids["subnets"]), self.ids["sg"], extra))
        return path

    def run_tool(self, conf, *args, stdin=None, env=None, ok=True):
        e = dict(os.environ)
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            e.pop(k, None)
        e["AWS_EC2_METADATA_DISABLED"] = "true"
        e.update(env or {})
        p = subprocess.run([TOOL, "-c", conf] + list(args), input=stdin, capture_output=True,
                           text=True, env=e, timeout=120)
        self.outputs.append(p.stdout + p.stderr)
        if ok and p.returncode != 0:
            self.fail("aws_run %s: rc=%d\n%s%s" % (args, p.returncode, p.stdout, p.stderr))
        return p

    @staticmethod
    def field(out, key):
        for tok in out.split():
            if tok.startswith(key + "="):
                return tok.split("=", 1)[1]
        return None

    def lifecycle(self, conf, slug, env_id="7", after_launch=None):
        """open → push → stop → wake → close, through the tool. Returns the
        step that failed and its output, or (None, instance id)."""
        ud = os.path.join(self.dir, "user-data")
        with open(ud, "w") as f:
            f.write("#!/bin/sh\nexec /opt/ephemera/host/ephemera-host boot '%s'\n" % slug)
        p = self.run_tool(conf, "launch", slug, env_id, "1", ud, ok=False)
        if p.returncode:
            return "launch", p.stdout
        iid = self.field(p.stdout, "instance_id")
        owner = self.field(p.stdout, "owner")
        if after_launch:
            after_launch(iid)
        arn = iam_eval.ec2_arn("instance", iid, owner)
        steps = [("describe", [slug]),
                 ("param-put", [slug, "env", arn]),
                 ("send", [iid, "/opt/ephemera/host/ephemera-host", "deploy", slug]),
                 ("stop", [iid]), ("start", [iid]), ("volumes", [slug]),
                 ("terminate", [iid]), ("param-delete-env", [slug])]
        for name, args in steps:
            p = self.run_tool(conf, name, *args, stdin=SECRET_VALUE if name == "param-put" else None,
                              ok=False)
            if p.returncode:
                return name, p.stdout
            if name == "send":
                cid = self.field(p.stdout, "command_id")
                p = self.run_tool(conf, "invocation", cid, iid, ok=False)
                if p.returncode:
                    return "invocation", p.stdout
        return None, iid


class TestAwsLifecycle(AwsBase):
    def test_lifecycle_with_exactly_the_worker_policy(self):
        conf = self.conf()
        start = len(self.proxy.records)
        ec2 = self.moto.client("ec2", *self.ids["admin"])

        def volumes_tagged(iid):
            vols = ec2.describe_volumes(Filters=[
                {"Name": "attachment.instance-id", "Values": [iid]}])["Volumes"]
            self.assertTrue(vols)
            for v in vols:
                tags = {t["Key"]: t["Value"] for t in v.get("Tags", [])}
                self.assertEqual(tags, {"ephemera:instance": "eph", "ephemera:env": "o-r-7"})
        step, iid = self.lifecycle(conf, "o-r-7", after_launch=volumes_tagged)
        self.assertIsNone(step, iid)
        inst = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
        tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
        self.assertEqual(tags, {"ephemera:instance": "eph", "ephemera:env": "o-r-7"})
        self.assertEqual(inst["State"]["Name"], "terminated")
        self.assertEqual(inst["SubnetId"], self.ids["subnets"][0])
        ud = ec2.describe_instance_attribute(InstanceId=iid, Attribute="userData")
        self.assertIn(b"ephemera-host boot 'o-r-7'",
                      __import__("base64").b64decode(ud["UserData"]["Value"]))
        ssm = self.moto.client("ssm", *self.ids["admin"])
        with self.assertRaises(ssm.exceptions.ParameterNotFound):
            ssm.get_parameter(Name="/eph/o-r-7/env")
        run = self.proxy.records[start:]
        self.assertEqual([r[1] for r in run],
                         ["DescribeInstances", "RunInstances", "DescribeInstances",
                          "PutParameter", "SendCommand",
                          "GetCommandInvocation", "StopInstances", "StartInstances",
                          "DescribeVolumes", "TerminateInstances", "DescribeParameters",
                          "DeleteParameter"])
        # The unwidened policy allows every call with its real ARN and tags.
        denied = iam_eval.check_run(load_policy("worker-policy.json"), run)
        self.assertEqual(denied, [])
        type(self).recorded = run

    def test_rerun_after_a_crash_adopts_the_instance(self):
        # A worker that died after RunInstances, before its database
        # write, reruns the launch: the tagged instance is adopted.
        conf = self.conf()
        first = self.run_tool(conf, "launch", "crash-1", "21", "1")
        self.assertIn("adopted=no", first.stdout)
        again = self.run_tool(conf, "launch", "crash-1", "21", "1")
        self.assertIn("adopted=yes", again.stdout)
        iid = self.field(first.stdout, "instance_id")
        self.assertEqual(self.field(again.stdout, "instance_id"), iid)
        # Stopped (idle) is adopted too; the caller starts it.
        self.run_tool(conf, "stop", iid)
        again = self.run_tool(conf, "launch", "crash-1", "21", "2")
        self.assertEqual(self.field(again.stdout, "instance_id"), iid)
        p = self.run_tool(conf, "describe", "crash-1")
        self.assertIn("count=1", p.stdout)
        # Terminated is not: the next launch makes a new one.
        self.run_tool(conf, "terminate", iid)
        again = self.run_tool(conf, "launch", "crash-1", "21", "3")
        self.assertIn("adopted=no", again.stdout)
        self.assertNotEqual(self.field(again.stdout, "instance_id"), iid)
        self.run_tool(conf, "terminate", self.field(again.stdout, "instance_id"))

    def test_parameter_read_back_with_instance_credentials(self):
        conf = self.conf()
        arn = iam_eval.ec2_arn("instance", "i-0123456789abcdef0")
        self.run_tool(conf, "param-put", "o-r-8", "env", arn, stdin=SECRET_VALUE)
        # Overwriting keeps working (PutParameter without Tags + Overwrite).
        self.run_tool(conf, "param-put", "o-r-8", "env", arn, stdin=SECRET_VALUE)
        p = self.run_tool(self.conf(profile="instance"), "param-get", "o-r-8", "env")
        self.assertEqual(self.field(p.stdout, "sha256"),
                         hashlib.sha256(SECRET_VALUE.encode()).hexdigest())
        # The worker itself may not read values back.
        p = self.run_tool(conf, "param-get", "o-r-8", "env", ok=False)
        self.assertIn("kind=denied", p.stdout)
        self.run_tool(conf, "param-delete-env", "o-r-8")

    def test_every_policy_action_is_needed(self):
        if not hasattr(type(self), "recorded"):
            self.test_lifecycle_with_exactly_the_worker_policy()
        policy = load_policy("worker-policy.json")
        actions = sorted({a for st in policy["Statement"] for a in iam_eval._list(st["Action"])})
        for action in actions:
            cut = json.loads(json.dumps(policy))
            for st in cut["Statement"]:
                st["Action"] = [a for a in iam_eval._list(st["Action"]) if a != action]
            cut["Statement"] = [st for st in cut["Statement"] if st["Action"]]
            denied = iam_eval.check_run(cut, type(self).recorded)
            self.assertTrue(any(d[0] == action for d in denied),
                            "%s is in the policy but the run does not need it" % action)

    def test_moto_refuses_each_removed_action_at_its_step(self):
        # moto checks the action of each request (not CreateTags/PassRole/
        # AddTagsToResource, which AWS checks inside RunInstances and
        # PutParameter; the evaluator covers those above).
        policy = load_policy("worker-policy.json")
        steps = {"ec2:RunInstances": "launch", "ec2:DescribeInstances": "launch",
                 "ssm:PutParameter": "param-put", "ssm:SendCommand": "send",
                 "ssm:GetCommandInvocation": "invocation", "ec2:StopInstances": "stop",
                 "ec2:StartInstances": "start", "ec2:DescribeVolumes": "volumes",
                 "ec2:TerminateInstances": "terminate",
                 "ssm:DescribeParameters": "param-delete-env"}
        for n, (action, step) in enumerate(sorted(steps.items())):
            cut = widen(policy)
            for st in cut["Statement"]:
                st["Action"] = [a for a in iam_eval._list(st["Action"]) if a != action]
            cut["Statement"] = [st for st in cut["Statement"] if st["Action"]]
            key = self.moto.user_with_policy("cut-%d" % n, cut)
            creds = self.write_creds({"cut": key})
            failed, out = self.lifecycle(self.conf(profile="cut", creds_file=creds),
                                         "cut-%d" % n, env_id=str(100 + n))
            self.assertEqual(failed, step, "%s removed: %s" % (action, out))
            self.assertIn("kind=denied", out)
            self.assertIn("action=%s" % action.split(":")[1], out)
            # The environment fails, naming the missing permission.
            self.assertIn("outcome=fail", out)
            self.assertIn("does not allow %s" % action, out)

    def test_an_action_the_policy_lacks_is_denied(self):
        rec = [("ec2", "CreateTags", {"Action": "CreateTags", "ResourceId.1": "i-1"}, 200, b"")]
        self.assertTrue(iam_eval.check_run(load_policy("worker-policy.json"), rec))
        rec = [("ssm", "GetParametersByPath", {"Path": "/"}, 200, b"")]
        self.assertTrue(iam_eval.check_run(load_policy("worker-policy.json"), rec))

    def test_instance_reads_only_its_own_parameters(self):
        policy = load_policy("instance-policy.json")
        a = iam_eval.ec2_arn("instance", "i-aaaa")
        b = iam_eval.ec2_arn("instance", "i-bbbb")
        world = iam_eval.World()
        world.param_tags["/eph/env-a/env"] = {"ephemera:env": "env-a", "ephemera:instance-arn": a}
        world.param_tags["/eph/env-b/env"] = {"ephemera:env": "env-b", "ephemera:instance-arn": b}

        def decision(caller, name):
            (act, res, ctx), = iam_eval.authorizations(
                world, "ssm", "GetParameter", {"Name": name}, 200, b"",
                {"ec2:SourceInstanceARN": caller})
            return iam_eval.evaluate(policy, act, res, ctx)
        self.assertEqual(decision(a, "/eph/env-a/env"), "Allow")
        self.assertEqual(decision(a, "/eph/env-b/env"), "ImplicitDeny")
        self.assertEqual(decision(b, "/eph/env-a/env"), "ImplicitDeny")
        # Untagged parameters and callers off an instance get nothing.
        self.assertEqual(decision(a, "/other/param"), "ImplicitDeny")
        (act, res, ctx), = iam_eval.authorizations(world, "ssm", "GetParameter",
                                                   {"Name": "/eph/env-a/env"}, 200, b"")
        self.assertEqual(iam_eval.evaluate(policy, act, res, ctx), "ImplicitDeny")
        # And no instance may list or write parameters.
        self.assertEqual(iam_eval.evaluate(policy, "ssm:GetParametersByPath",
                                           iam_eval.param_arn("/eph/env-a"),
                                           {"ec2:SourceInstanceARN": a}), "ImplicitDeny")

    def test_evaluator_basics(self):
        pol = {"Statement": [
            {"Effect": "Allow", "Action": "ec2:Start*", "Resource": "arn:aws:ec2:*:*:instance/*",
             "Condition": {"StringEquals": {"ec2:ResourceTag/team": "x"}}},
            {"Effect": "Deny", "Action": "ec2:StartInstances", "Resource": "*",
             "Condition": {"StringLike": {"ec2:ResourceTag/env": "prod*"}}},
            {"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": "*",
             "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:ec2:*:*:instance/i-1?"}}}]}
        arn = iam_eval.ec2_arn("instance", "i-1")
        ev = iam_eval.evaluate
        self.assertEqual(ev(pol, "ec2:startinstances", arn, {"ec2:ResourceTag/team": "x"}), "Allow")
        self.assertEqual(ev(pol, "ec2:StartInstances", arn, {"ec2:ResourceTag/team": "y"}),
                         "ImplicitDeny")
        self.assertEqual(ev(pol, "ec2:StartInstances", arn,
                            {"ec2:ResourceTag/team": "x", "ec2:ResourceTag/env": "prod-1"}),
                         "ExplicitDeny")
        self.assertEqual(ev(pol, "ec2:StopInstances", arn, {"ec2:ResourceTag/team": "x"}),
                         "ImplicitDeny")
        self.assertEqual(ev(pol, "ec2:StartInstances", "arn:aws:s3:::b", {"ec2:ResourceTag/team": "x"}),
                         "ImplicitDeny")
        self.assertEqual(ev(pol, "ssm:GetParameter", "p", {"aws:SourceArn": arn + "2"}), "Allow")
        self.assertEqual(ev(pol, "ssm:GetParameter", "p", {"aws:SourceArn": arn + "23"}),
                         "ImplicitDeny")


class TestAwsSignatures(AwsBase):
    def test_wrong_secret_is_refused(self):
        bad = self.write_creds({"worker": (self.ids["worker"][0], "not-the-secret-key")})
        p = self.run_tool(self.conf(creds_file=bad), "describe", "-", ok=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("kind=denied", p.stdout)
        # EC2 answers any bad signature with AuthFailure (so does AWS).
        self.assertIn("code=AuthFailure", p.stdout)

    def test_unknown_key_is_refused(self):
        bad = self.write_creds({"worker": ("AKIAUNKNOWN000000000", "x")})
        p = self.run_tool(self.conf(creds_file=bad), "describe", "-", ok=False)
        self.assertIn("kind=denied", p.stdout)
        self.assertIn("code=AuthFailure", p.stdout)

    def test_corrupted_signature_is_refused(self):
        def corrupt(h):
            a = h["Authorization"]
            h["Authorization"] = a[:-1] + ("0" if a[-1] != "0" else "1")
            return h
        self.proxy.mutate = corrupt
        p = self.run_tool(self.conf(), "describe", "-", ok=False)
        self.assertIn("code=AuthFailure", p.stdout)
        # The same request unaltered passes: it was the signature.
        p = self.run_tool(self.conf(), "describe", "-")
        self.assertIn("count=", p.stdout)

    def test_ssm_signed_too(self):
        bad = self.write_creds({"worker": (self.ids["worker"][0], "wrong")})
        p = self.run_tool(self.conf(creds_file=bad), "param-delete-env", "x", ok=False)
        self.assertIn("kind=denied code=SignatureDoesNotMatch", p.stdout)
        self.proxy.mutate = lambda h: dict(h, Authorization=h["Authorization"][:-2] + "ff")
        p = self.run_tool(self.conf(), "param-delete-env", "x", ok=False)
        self.assertIn("kind=denied code=SignatureDoesNotMatch", p.stdout)


class TestAwsFaults(AwsBase):
    def setUp(self):
        self.proxy.faults = []

    def test_throttled_is_reported_as_throttled(self):
        self.proxy.faults = [Fault("RunInstances", 503, fixture("ec2/error-request-limit-exceeded.xml"))]
        p = self.run_tool(self.conf(), "launch", "thr", "1", "1", ok=False)
        self.assertIn("kind=throttled code=RequestLimitExceeded", p.stdout)
        # Rescheduled through the queue with a backoff, not slept on.
        self.assertIn("outcome=retry", p.stdout)
        self.assertGreater(int(self.field(p.stdout, "retry_after_ms")), 0)

    def test_capacity_falls_back_to_next_type_then_subnet(self):
        cap = fixture("ec2/error-insufficient-instance-capacity.xml")
        self.proxy.faults = [Fault("RunInstances", 500, cap, times=1)]
        p = self.run_tool(self.conf(), "launch", "cap-1", "1", "1")
        self.assertEqual(self.field(p.stdout, "type"), "t3a.small")
        self.assertEqual(self.field(p.stdout, "subnet"), self.ids["subnets"][0])
        self.proxy.faults = [Fault("RunInstances", 500, cap, times=2)]
        p = self.run_tool(self.conf(), "launch", "cap-2", "2", "1")
        self.assertEqual(self.field(p.stdout, "type"), "t3.small")
        self.assertEqual(self.field(p.stdout, "subnet"), self.ids["subnets"][1])
        self.proxy.faults = [Fault("RunInstances", 500, cap, times=4)]
        p = self.run_tool(self.conf(), "launch", "cap-3", "3", "1", ok=False)
        self.assertIn("kind=capacity", p.stdout)
        self.assertIn("outcome=retry retry_after_ms=300000", p.stdout)

    def test_not_found_is_reported_as_not_found(self):
        self.proxy.faults = [Fault("StartInstances", 400,
                                   fixture("ec2/error-invalid-instance-id-not-found.xml"))]
        p = self.run_tool(self.conf(), "start", "i-1a2b3c4d", ok=False)
        self.assertIn("kind=not_found code=InvalidInstanceID.NotFound", p.stdout)

    def test_ssm_invocation_states(self):
        p = self.run_tool(self.conf(), "launch", "ssm-1", "9", "1")
        iid = self.field(p.stdout, "instance_id")
        cid = self.field(self.run_tool(self.conf(), "send", iid, "true").stdout, "command_id")
        big = "x" * 24000

        def inv(status, details, code=-1, out=""):
            return json.dumps({"CommandId": cid, "InstanceId": iid, "Status": status,
                               "StatusDetails": details, "ResponseCode": code,
                               "StandardOutputContent": out,
                               "StandardErrorContent": ""}).encode()
        cases = [
            (400, fixture("ssm/error-invocation-does-not-exist.json"), "kind=not_found"),
            (200, inv("Pending", "Pending"), "status=Pending final=no"),
            (200, inv("InProgress", "InProgress"), "status=InProgress final=no"),
            (200, inv("Delayed", "Delayed"), "status=Delayed final=no"),
            (200, inv("Failed", "Failed", 2, "boom"), "status=Failed final=yes code=2"),
            (200, inv("TimedOut", "Execution Timed Out"), "status=TimedOut final=yes"),
            (200, inv("Cancelled", "Cancelled"), "status=Cancelled final=yes"),
            (200, inv("Failed", "Undeliverable"), "status=Undeliverable final=yes"),
            (200, inv("Success", "Success", 0, big), "status=Success final=yes code=0 truncated=yes"),
        ]
        for status, body, want in cases:
            self.proxy.faults = [Fault("GetCommandInvocation", status, body,
                                       ctype="application/x-amz-json-1.1")]
            p = self.run_tool(self.conf(), "invocation", cid, iid, ok=False)
            self.assertIn(want, p.stdout)
        # Unfaulted, moto reports Success at once (it runs nothing).
        self.proxy.faults = []
        p = self.run_tool(self.conf(), "invocation", cid, iid)
        self.assertIn("status=Success", p.stdout)


class TestAwsCredentials(AwsBase):
    def test_file_wins_over_env(self):
        p = self.run_tool(self.conf(), "creds", env={"AWS_ACCESS_KEY_ID": "AKIAENV",
                                                     "AWS_SECRET_ACCESS_KEY": "envsecret"})
        self.assertIn("source=file", p.stdout)

    def test_env_when_no_file(self):
        conf = self.conf(creds_file="")
        p = self.run_tool(conf, "describe", "-", env={
            "AWS_ACCESS_KEY_ID": self.ids["worker"][0],
            "AWS_SECRET_ACCESS_KEY": self.ids["worker"][1]})
        self.assertIn("count=", p.stdout)
        p = self.run_tool(conf, "creds", env={"AWS_ACCESS_KEY_ID": "AKIAENV",
                                              "AWS_SECRET_ACCESS_KEY": "envsecret",
                                              "AWS_SESSION_TOKEN": "envtoken"})
        self.assertIn("source=env", p.stdout)
        self.assertIn("token=yes", p.stdout)

    def test_missing_profile_falls_through(self):
        p = self.run_tool(self.conf(profile="nosuch"), "creds", env={
            "AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "envsecret"})
        self.assertIn("source=env", p.stdout)

    def test_imds_v2(self):
        # Role credentials as EC2 hands them out: an assumed role's
        # session (moto knows those), with the worker policy on the role.
        iam = self.moto.client("iam", *self.ids["admin"])
        iam.create_role(RoleName="worker-role", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"AWS": "*"}}]}))
        iam.put_role_policy(RoleName="worker-role", PolicyName="worker",
                            PolicyDocument=json.dumps(widen(load_policy("worker-policy.json"))))
        c = self.moto.client("sts", *self.ids["admin"]).assume_role(
            RoleArn="arn:aws:iam::123456789012:role/worker-role",
            RoleSessionName="i-imds")["Credentials"]
        imds = FakeImds({"Code": "Success", "Type": "AWS-HMAC",
                         "AccessKeyId": c["AccessKeyId"],
                         "SecretAccessKey": c["SecretAccessKey"],
                         "Token": c["SessionToken"],
                         "Expiration": "2099-01-01T00:00:00Z"})
        self.secrets += [c["SecretAccessKey"], c["SessionToken"]]
        try:
            p = self.run_tool(self.conf(creds_file=""), "creds", env={
                "AWS_EC2_METADATA_DISABLED": "false",
                "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url})
            self.assertIn("source=imds", p.stdout)
            self.assertIn("token=yes", p.stdout)
            self.assertEqual(self.field(p.stdout, "expires"), "4070908800")
            self.assertEqual(imds.calls[0], ("PUT", "/latest/api/token"))
            self.assertEqual(imds.calls[1:], [
                ("GET", "/latest/meta-data/iam/security-credentials/"),
                ("GET", "/latest/meta-data/iam/security-credentials/ephemera-preview")])
            # A signed call with the role session works; the token never
            # shows in the output (checked for the class at the end).
            p = self.run_tool(self.conf(creds_file=""), "describe", "-", env={
                "AWS_EC2_METADATA_DISABLED": "false",
                "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url})
            self.assertIn("count=", p.stdout)
        finally:
            imds.stop()

    def test_none_found(self):
        p = self.run_tool(self.conf(creds_file=""), "describe", "-", ok=False)
        self.assertIn("kind=no_credentials", p.stdout)


if __name__ == "__main__":
    unittest.main()
