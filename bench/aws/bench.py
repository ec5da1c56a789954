"""bench/aws: calls per lifecycle and requests per second (see run.sh)."""
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))

sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from harness.moto import AMI, Fault, FaultProxy, MotoServer  # noqa: E402
from harness.stack import Stack  # noqa: E402
from test_local import Repo  # noqa: E402

TOOL = os.path.join(ROOT, "build", "release", "tests", "tools", "aws_run")
PROVIDER = os.path.join(ROOT, "build", "release", "tests", "tools", "ec2_compute_run")
# The provider's own lifecycle (workers/aws/ec2_compute.c through
# ec2_compute_run) adds what a deploy needs beyond the bare calls: finding
# the instance by its tags each time (a crash may have launched one), and
# on open reading the user-data deploy's result (send, read). Above the
# minimum: a push or wake writes compose.json as a create that fails, then
# an overwrite, because only a create can carry the tags the instance
# policy reads (PutParameter refuses Tags with Overwrite), and an
# overwrite first could leave an untagged parameter no instance can read.
PROVIDER_MINIMUM = {"open": 5, "push": 4, "stop": 2, "wake": 5, "close": 4}
# The fewest calls each step can make: open = look for an adoptable
# instance, launch, store the secrets; push = send, read the result once;
# stop = stop; wake = start, send, read; close = terminate, list the
# parameters, delete the one parameter.
MINIMUM = {"open": 3, "push": 2, "stop": 1, "wake": 3, "close": 3}


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    moto = MotoServer()
    ids = moto.setup()
    proxy = FaultProxy(moto.port)
    d = tempfile.mkdtemp(prefix="eph-bench-aws-")
    creds = os.path.join(d, "credentials")
    with open(creds, "w") as f:
        f.write("[worker]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % ids["worker"])
    os.chmod(creds, 0o600)

    def conf(url):
        path = os.path.join(d, "conf-%d" % len(os.listdir(d)))
        with open(path, "w") as f:
            # An instance name, as `make install` gives every installation.
            f.write('compute: { provider = "ec2"; };\nenvironments: { instance = "bench"; };\n'
                    'aws: { region = "us-east-1"; endpoint_url = "%s"; credentials_file = "%s"; '
                    'profile = "worker"; };\n'
                    'ec2: { ami = "%s"; subnet_ids = "%s"; security_group_ids = "%s"; '
                    'instance_profile = "ephemera-preview"; };\n'
                    % (url, creds, AMI, ids["subnets"][0], ids["sg"]))
        return path

    env = dict(os.environ, AWS_EC2_METADATA_DISABLED="true")

    def tool(c, *args, stdin=None):
        p = subprocess.run([TOOL, "-c", c] + list(args), capture_output=True, text=True,
                           input=stdin, env=env)
        if p.returncode != 0:
            raise RuntimeError("aws_run %s: %s" % (" ".join(args), p.stdout + p.stderr))
        return dict(t.split("=", 1) for t in p.stdout.split() if "=" in t)

    c = conf(proxy.url)
    counts = {}

    def step(name, fn):
        before = len(proxy.records)
        fn()
        counts[name] = len(proxy.records) - before

    state = {}

    def open_():
        out = tool(c, "launch", "bench", "1", "1")  # describe, then run
        state["id"] = out["instance_id"]
        arn = "arn:aws:ec2:us-east-1:%s:instance/%s" % (out["owner"], out["instance_id"])
        tool(c, "param-put", "bench", "env", arn, stdin="K=V")

    def push():
        cid = tool(c, "send", state["id"], "true")["command_id"]
        tool(c, "invocation", cid, state["id"])

    def wake():
        tool(c, "start", state["id"])
        push()

    step("open", open_)
    step("push", push)
    step("stop", lambda: tool(c, "stop", state["id"]))
    step("wake", wake)
    step("close", lambda: (tool(c, "terminate", state["id"]),
                           tool(c, "param-delete-env", "bench")))
    total, minimum = sum(counts.values()), sum(MINIMUM.values())
    for k in MINIMUM:
        print("aws: calls %-5s %d (minimum %d)" % (k, counts[k], MINIMUM[k]))
    print("aws: calls per lifecycle %d, minimum %d, ratio %.2f" % (total, minimum, total / minimum))

    provider_calls(ids, proxy, creds)

    direct = conf(moto.url)
    t0 = time.monotonic()
    out = tool(direct, "bench-describe", str(n))
    c_rps = n / float(out["seconds"])
    wall = time.monotonic() - t0
    ec2 = moto.client("ec2", *ids["worker"])
    t0 = time.monotonic()
    for _ in range(n):
        ec2.describe_instances(Filters=[{"Name": "tag:ephemera:instance", "Values": ["eph"]}])
    py_rps = n / (time.monotonic() - t0)
    print("aws: DescribeInstances/s C client %.0f (%d calls, %.2fs with process start), "
          "boto3 baseline %.0f, ratio %.2f" % (c_rps, n, wall, py_rps, c_rps / py_rps))
    proxy.stop()
    moto.stop()


def provider_calls(ids, proxy, creds):
    """AWS calls per lifecycle step of the ec2 provider itself, against a
    private stack's database (no workers) and the same moto. moto runs
    nothing: the host's answer to each command is the proxy's."""
    s = Stack("bench-ec2", workers=False, asan=False, settings={
        "compute.provider": "ec2", "aws.region": "us-east-1",
        "aws.endpoint_url": proxy.url, "aws.credentials_file": creds,
        "aws.profile": "worker", "ec2.ami": AMI, "ec2.subnet_ids": ids["subnets"][0],
        "ec2.security_group_ids": ids["sg"], "ec2.instance_profile": "ephemera-preview"})
    s.up()
    try:
        repo = Repo(s.dir, "acme/app")
        s.sql("INSERT INTO environments (repo, pr, slug, title, desired, phase, desired_sha, "
              "clone_url) VALUES ('acme/app', 1, 'pr-1-app', 't', 'running', 'deploying', "
              "'%s', '%s')" % (repo.commit("one"), repo.path))
        env_id = s.sql("SELECT id FROM environments")[0][0]
        answer = json.dumps({"Status": "Success", "StatusDetails": "Success",
                             "ResponseCode": 0, "StandardErrorContent": "",
                             "StandardOutputContent": json.dumps([
                                 {"name": n, "address": a, "state": "running"}
                                 for n, a in (("web", "10.0.0.5"), ("api", "10.0.0.6"))])
                             }).encode()
        env = dict(os.environ, AWS_EC2_METADATA_DISABLED="true")
        counts, actions = {}, {}

        def step(name, *args):
            proxy.faults = [Fault("GetCommandInvocation", 200, answer,
                                  ctype="application/x-amz-json-1.1")]
            before = len(proxy.records)
            p = subprocess.run([PROVIDER, "-c", s.config] + list(args), capture_output=True,
                               text=True, env=env)
            assert "rc=ok" in p.stdout or "rc=0" in p.stdout, p.stdout + p.stderr
            counts[name] = len(proxy.records) - before
            actions[name] = [r[1] for r in proxy.records[before:]]

        step("open", "deploy", env_id)
        s.sql("UPDATE environments SET desired_sha = '%s'" % repo.commit("two"))
        step("push", "deploy", env_id)
        step("stop", "stop", "pr-1-app")
        step("wake", "deploy", env_id)
        step("close", "destroy", "pr-1-app")
    finally:
        s.cleanup()
    total, minimum = sum(counts.values()), sum(PROVIDER_MINIMUM.values())
    for k in PROVIDER_MINIMUM:
        print("aws: provider calls %-5s %d (minimum %d): %s"
              % (k, counts[k], PROVIDER_MINIMUM[k], " ".join(actions[k])))
    print("aws: provider calls per lifecycle %d, minimum %d, ratio %.2f"
          % (total, minimum, total / minimum))


if __name__ == "__main__":
    main()
