"""bench/aws: calls per lifecycle and requests per second (see run.sh)."""
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from harness.moto import AMI, FaultProxy, MotoServer  # noqa: E402

TOOL = os.path.join(ROOT, "build", "release", "tests", "tools", "aws_run")
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
            f.write('compute: { provider = "ec2"; };\n'
                    'aws: { region = "us-east-1"; endpoint_url = "%s"; credentials_file = "%s"; '
                    'profile = "worker"; };\n'
                    'ec2: { ami = "%s"; subnet_ids = "%s"; security_group_ids = "%s"; '
                    'instance_profile = "ephemera-preview"; };\n'
                    % (url, creds, AMI, ids["subnets"][0], ids["sg"]))
        return path

    env = dict(os.environ, AWS_EC2_METADATA_DISABLED="true")

    def tool(c, *args, stdin=None):
        p = subprocess.run([TOOL, "-c", c] + list(args), capture_output=True, text=True,
                           input=stdin, env=env, check=True)
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


if __name__ == "__main__":
    main()
