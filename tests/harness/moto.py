"""moto_server for the AWS tests, with signature checking and IAM on.

MotoServer starts `moto_server` on a free loopback port with
INITIAL_NO_AUTH_ACTION_COUNT set to exactly the number of set-up calls
(setup() makes them): every later request must carry a valid SigV4
signature from a known access key and is checked against that user's IAM
policies. moto evaluates EC2 and SSM calls against the resource "*" and
treats every condition as met, so the policies loaded here have each
Resource widened to "*" (widen()); iam_eval.py checks the real ARNs.

FaultProxy sits between the code and moto: it records every request (for
iam_eval) and can answer chosen actions with a recorded error or a
replaced body instead of forwarding them.
"""

import copy
import http.client
import http.server
import json
import os
import subprocess
import tempfile
import threading
import time
import urllib.parse

import boto3

from harness.stack import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "aws")
POLICY_DIR = os.path.join(ROOT, "infra", "aws", "iam")
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
AMI = "ami-03cf127a"  # one of the images moto ships
SETUP_CALLS = 14


def widen(policy):
    """The policy with every Resource "*": what moto can evaluate."""
    p = copy.deepcopy(policy)
    for st in p["Statement"]:
        st["Resource"] = "*"
    return p


def load_policy(name):
    with open(os.path.join(POLICY_DIR, name)) as f:
        return json.load(f)


class MotoServer:
    def __init__(self):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log = tempfile.NamedTemporaryFile(prefix="moto-", suffix=".log", delete=False)
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(SETUP_CALLS))
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            env.pop(k, None)
        self.proc = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                c.request("GET", "/moto-api/")
                c.getresponse().read()
                # That GET is not an AWS action: it does not count.
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("moto_server did not start")

    def client(self, service, key_id="setup", secret="setup"):
        return boto3.client(service, endpoint_url=self.url, region_name=REGION,
                            aws_access_key_id=key_id, aws_secret_access_key=secret)

    def setup(self):
        """Exactly SETUP_CALLS unauthenticated calls; afterwards every call
        is signed and authorised. Returns the keys and ids the tests use."""
        iam = self.client("iam")
        ec2 = self.client("ec2")
        out = {}
        iam.create_user(UserName="admin")  # 1
        iam.put_user_policy(UserName="admin", PolicyName="all",  # 2
                            PolicyDocument=json.dumps({
                                "Version": "2012-10-17",
                                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        k = iam.create_access_key(UserName="admin")["AccessKey"]  # 3
        out["admin"] = self.admin = (k["AccessKeyId"], k["SecretAccessKey"])
        iam.create_user(UserName="ephemera-worker")  # 4
        iam.put_user_policy(UserName="ephemera-worker", PolicyName="worker",  # 5
                            PolicyDocument=json.dumps(widen(load_policy("worker-policy.json"))))
        k = iam.create_access_key(UserName="ephemera-worker")["AccessKey"]  # 6
        out["worker"] = (k["AccessKeyId"], k["SecretAccessKey"])
        iam.create_user(UserName="preview-instance")  # 7
        iam.put_user_policy(UserName="preview-instance", PolicyName="instance",  # 8
                            PolicyDocument=json.dumps(widen(load_policy("instance-policy.json"))))
        k = iam.create_access_key(UserName="preview-instance")["AccessKey"]  # 9
        out["instance"] = (k["AccessKeyId"], k["SecretAccessKey"])
        iam.create_role(RoleName="ephemera-preview",  # 10
                        AssumeRolePolicyDocument=json.dumps({
                            "Version": "2012-10-17",
                            "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                           "Principal": {"Service": "ec2.amazonaws.com"}}]}))
        iam.create_instance_profile(InstanceProfileName="ephemera-preview")  # 11
        iam.add_role_to_instance_profile(InstanceProfileName="ephemera-preview",  # 12
                                         RoleName="ephemera-preview")
        out["sg"] = ec2.create_security_group(  # 13
            GroupName="ephemera-previews", Description="no inbound rules")["GroupId"]
        subnets = ec2.describe_subnets()["Subnets"]  # 14
        out["subnets"] = [s["SubnetId"] for s in subnets[:2]]
        return out

    def user_with_policy(self, name, policy):
        """A further user (with admin keys: setup is over)."""
        iam = self.client("iam", *self.admin)
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
        k = iam.create_access_key(UserName=name)["AccessKey"]
        return k["AccessKeyId"], k["SecretAccessKey"]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        os.unlink(self.log.name)


def request_action(headers, body):
    """("ec2", "RunInstances", params) or ("ssm", "SendCommand", json)."""
    target = headers.get("X-Amz-Target") or headers.get("x-amz-target")
    if target:
        svc, _, op = target.partition(".")
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            doc = {}
        return "ssm" if svc == "AmazonSSM" else svc, op, doc
    params = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return "ec2", params.get("Action", ""), params


class Fault:
    """Answer `action` with (status, body, content type) `times` times."""

    def __init__(self, action, status, body, ctype="text/xml", times=1, when=None):
        self.action, self.status, self.body, self.ctype = action, status, body, ctype
        self.times, self.when = times, when


class FaultProxy:
    def __init__(self, upstream_port):
        self.records = []  # (service, action, params, status, response body)
        self.faults = []
        self.mutate = None  # fn(headers dict) -> headers, applied once
        # .after(svc, action, params, status, body) -> None or (status,
        # body) replacing moto's answer (harness.instances)
        self.observer = None
        # {"kinds": [...], "seen": {}}: the first call of each (service,
        # action) meets the next kind in turn (each_fault).
        self.each = None
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                headers = {k: v for k, v in self.headers.items()}
                svc, action, params = request_action(headers, body)
                with proxy.lock:
                    fault = next((f for f in proxy.faults if f.action == action and f.times > 0
                                  and (f.when is None or f.when(params))), None)
                    if fault:
                        fault.times -= 1
                    mutate, proxy.mutate = proxy.mutate, None
                    kind = proxy.each_kind(svc, action) if not fault else None
                if kind in ("500", "throttle"):
                    status, resp, ctype = aws_error(svc, kind)
                elif fault:
                    status, resp, ctype = fault.status, fault.body, fault.ctype
                else:
                    if mutate:
                        headers = mutate(headers)
                    c = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
                    c.request("POST", self.path, body, headers)
                    r = c.getresponse()
                    status, resp = r.status, r.read()
                    ctype = r.getheader("Content-Type", "text/xml")
                    c.close()
                    observer = proxy.observer
                    replaced = observer and observer.after(svc, action, params, status, resp)
                    if replaced:
                        status, resp = replaced
                with proxy.lock:
                    proxy.records.append((svc, action, params, status, resp))
                if kind == "slow":
                    # The client has given up by the time this answers.
                    time.sleep(proxy.each["delay"])
                    self.close_connection = True
                    try:
                        self.send_error(504)
                    except OSError:
                        pass
                    return
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(resp)))
                if kind == "truncated":
                    # Carried out, its answer cut short: half the body
                    # under the whole body's length, then the connection
                    # closes.
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(resp[:len(resp) // 2])
                    self.close_connection = True
                    return
                self.end_headers()
                try:
                    self.wfile.write(resp)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout it was given)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def each_kind(self, svc, action):
        """Under self.lock: the fault kind this call meets, if it is the
        first of its (service, action) since `each` was set."""
        if not self.each or (svc, action) in self.each["seen"]:
            return None
        kinds = self.each["kinds"]
        kind = kinds[len(self.each["seen"]) % len(kinds)]
        self.each["seen"][(svc, action)] = kind
        return kind

    def actions(self):
        return [r[1] for r in self.records]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def aws_error(svc, kind):
    """(status, body, content type) of AWS's answer for an internal error
    or throttling: EC2's query API answers XML (RequestLimitExceeded is
    503), SSM's JSON API answers 500 InternalServerError or 400
    ThrottlingException."""
    if svc == "ssm":
        status, code = (500, "InternalServerError") if kind == "500" else \
            (400, "ThrottlingException")
        body = json.dumps({"__type": code, "message": "injected %s" % kind}).encode()
        return status, body, "application/x-amz-json-1.1"
    status, code = (500, "InternalError") if kind == "500" else (503, "RequestLimitExceeded")
    body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error>"
            "<Code>%s</Code><Message>injected %s</Message></Error></Errors>"
            "<RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>"
            % (code, kind)).encode()
    return status, body, "text/xml"


def moto_behind_proxy():
    """(moto, its setup ids, a FaultProxy in front of it): what every AWS
    test class starts. A failed start stops moto (tearDownClass does not
    run after a failed setUpClass)."""
    moto = MotoServer()
    try:
        return moto, moto.setup(), FaultProxy(moto.port)
    except Exception:
        moto.stop()
        raise


def worker_credentials(ids, dirpath, profile="worker"):
    """The worker's keys as a shared credentials file (0600) in dirpath:
    what aws.credentials_file names in the tests' configs."""
    path = os.path.join(dirpath, "credentials")
    with open(path, "w") as f:
        f.write("[%s]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                % ((profile,) + tuple(ids["worker"])))
    os.chmod(path, 0o600)
    return path


def ec2_settings(proxy, ids, creds, profile="worker"):
    """The ec2 provider's settings against moto behind `proxy`, with the
    worker's credentials file (worker_credentials)."""
    return {
        "compute.provider": "ec2",
        "aws.region": REGION,
        "aws.endpoint_url": proxy.url,
        "aws.credentials_file": creds,
        "aws.profile": profile,
        "ec2.ami": AMI,
        "ec2.instance_types": "t3.small",
        "ec2.subnet_ids": ",".join(ids["subnets"]),
        "ec2.security_group_ids": ids["sg"],
        "ec2.instance_profile": "ephemera-preview",
    }


def fixture(rel):
    with open(os.path.join(FIXTURES, rel), "rb") as f:
        return f.read()


class FakeImds:
    """IMDSv2 as EC2 serves it: PUT /latest/api/token with a TTL header
    gives a token; every GET without that token is 401."""

    def __init__(self, creds, role="ephemera-preview"):
        self.token = "imds-session-token-123"
        self.creds, self.role, self.calls = creds, role, []
        imds = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def reply(self, status, body):
                b = body.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(b)))
                self.end_headers()
                self.wfile.write(b)

            def do_PUT(self):
                imds.calls.append(("PUT", self.path))
                if self.path != "/latest/api/token" or \
                        not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                    return self.reply(400, "")
                self.reply(200, imds.token)

            def do_GET(self):
                imds.calls.append(("GET", self.path))
                if self.headers.get("X-aws-ec2-metadata-token") != imds.token:
                    return self.reply(401, "")
                base = "/latest/meta-data/iam/security-credentials/"
                if self.path == base:
                    return self.reply(200, imds.role)
                if self.path == base + imds.role:
                    return self.reply(200, json.dumps(imds.creds))
                self.reply(404, "")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
