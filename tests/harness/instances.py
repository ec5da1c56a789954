"""The instance emulator: moto answers EC2 and SSM but runs nothing; this
makes each instance moto reports a host that really runs.

A host is a container from tests/cloud/host-image.sh (Debian 12 from
debootstrap, `docker import`ed) with:
- its own network namespace holding only a loopback (--network none); the
  fakes it may reach (moto's proxy, the GitHub fake, its IMDS) appear on
  that loopback at their own port numbers, relayed by socat through unix
  sockets to the test's 127.0.0.1. Nothing else is reachable from it.
- the engine's socket, so `docker compose` on it drives this machine's
  engine (as the AMI's own engine would drive its own);
- this machine's PID namespace with CAP_SYS_ADMIN and CAP_SYS_PTRACE, so
  its root can enter a container's network namespace (nsenter), as a real
  host's root can: `ephemera-host metrics` reads the connector's metrics
  so, since no route leads from the host's own namespace to the engine's
  bridges here. It is no more than the engine's socket already gives;
- ec2.envs_dir mounted at the same path, because compose's bind mounts
  (the tunnel token) are resolved by the engine on this machine;
- an IMDSv2 stand-in (harness.moto.FakeImds) with session keys of the
  instance profile's role from moto's STS, found through
  AWS_EC2_METADATA_SERVICE_ENDPOINT; and `aws` on its PATH with
  --endpoint-url set to the proxy (the AWS CLI Debian ships predates
  AWS_ENDPOINT_URL).

The emulator sits in the FaultProxy in front of moto (proxy.observer):
- RunInstances → one host per new instance; its user-data runs once, as
  root, as cloud-init runs it (output in /var/log/cloud-init-output.log).
- StopInstances → the instance's compose containers and the host
  stopped (kept); StartInstances → the host booted again, user-data not
  rerun; TerminateInstances → the host, its projects' containers,
  networks and volumes removed and its disk (<envs_dir>/<slug>) wiped.
- SendCommand (after moto accepted it: IAM, ids) → AWS-RunShellScript's
  commands written to _script.sh and run by sh as root on the host, with
  executionTimeout enforced; to a host not yet registered (booting,
  stopped) the answer is InvalidInstanceId, as from SSM.
- GetCommandInvocation (after moto accepted it) → the real state:
  InProgress with ResponseCode -1 and no output while running; then
  Success / Failed / TimedOut with the exit code and the first 24,000
  characters of stdout and 8,000 of stderr (the API's documented limits).

What stays untested: the SSM agent's own registration and polling
(registration here is the host's boot), cloud-init's other modules, the
instance's kernel and its own Docker engine (images and containers live
in this machine's engine, shared by all hosts), and DNS and TLS to AWS's
real endpoints.
"""

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid

from harness.moto import ACCOUNT, FakeImds, load_policy, widen

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGE_SCRIPT = os.path.join(ROOT, "tests", "cloud", "host-image.sh")
LABEL = "ephemera-test.emulator"
STDOUT_MAX = 24000
STDERR_MAX = 8000
# The agent registers a little after boot; SendCommand before that fails.
REGISTER_DELAY = 1.0
ROLE = "ephemera-preview"  # harness.moto's instance profile and role

_image = None
image_seconds = None  # how long this process spent building the image


def host_image():
    """The host image's tag, built on first use (the time it took is in
    image_seconds; 0.0 when it was already built)."""
    global _image, image_seconds
    if _image is None:
        t = time.monotonic()
        p = subprocess.run([IMAGE_SCRIPT], capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError("host image: " + p.stderr[-2000:])
        _image = p.stdout.strip().splitlines()[-1]
        image_seconds = time.monotonic() - t if "built in" in p.stderr else 0.0
    return _image


def docker(*args, check=True, input=None, timeout=120):
    p = subprocess.run(["docker"] + list(args), capture_output=True, text=True,
                       input=input, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError("docker %s: %s" % (" ".join(args[:2]), p.stderr.strip()))
    return p.stdout


def ssm_error(code, message):
    return 400, json.dumps({"__type": code, "message": message}).encode()


class Invocation:
    def __init__(self, command_id, instance_id, timeout):
        self.command_id, self.instance_id, self.timeout = command_id, instance_id, timeout
        # Status and StatusDetails as the API spells them.
        self.status, self.details, self.code = "InProgress", "In Progress", -1
        self.out = self.err = ""

    def body(self):
        done = self.status != "InProgress"
        return json.dumps({
            "CommandId": self.command_id, "InstanceId": self.instance_id,
            "DocumentName": "AWS-RunShellScript", "PluginName": "aws:runShellScript",
            "Status": self.status, "StatusDetails": self.details, "ResponseCode": self.code,
            "StandardOutputContent": self.out[:STDOUT_MAX] if done else "",
            "StandardErrorContent": self.err[:STDERR_MAX] if done else ""}).encode()


class Host:
    """One emulated instance."""

    def __init__(self, iid, slug, name, imds):
        self.iid, self.slug, self.name, self.imds = iid, slug, name, imds
        self.registered_at = None  # monotonic time the agent is up; None: down
        self.relays = []
        self.ports = []
        self.project = None
        self.gone = False
        # Launch and start return at once (pending) and boot behind; a
        # stop or terminate waits for the boot it follows.
        self.lock = threading.Lock()

    def registered(self):
        return self.registered_at is not None and time.monotonic() >= self.registered_at


class InstanceEmulator:
    def __init__(self, moto, ids, proxy, envs_dir, ports=(), mounts=()):
        """ports: the test's 127.0.0.1 ports a host may reach besides the
        proxy and its IMDS (the GitHub fake's, say); mounts: host paths
        bound read-only at the same path (a local repository as source)."""
        self.moto, self.ids, self.proxy = moto, ids, proxy
        self.envs_dir = envs_dir
        self.ports = [proxy.port] + list(ports)
        self.mounts = list(mounts)
        self.image = host_image()
        self.run_id = uuid.uuid4().hex[:12]
        self.dir = tempfile.mkdtemp(prefix="eph-emu-")
        self.hosts = {}
        self.invocations = {}
        self.lock = threading.Lock()
        self.crash_after = None  # (action, pid): see after()
        self.crashed = []
        self.doubles = []  # (live instance, new one) of the same slug
        os.makedirs(envs_dir, exist_ok=True)
        # The instance profile's role carries the instance policy, and a
        # host's IMDS serves that role's session keys from STS: moto
        # checks the session token and the role's policy on each call.
        iam = moto.client("iam", *ids["admin"])
        # EC2 assumes the role for its instances; here the emulator plays
        # EC2 with the admin's keys, so the role trusts the admin too.
        iam.update_assume_role_policy(RoleName=ROLE, PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                           "Principal": {"AWS": "arn:aws:iam::%s:user/admin" % ACCOUNT}}]}))
        iam.put_role_policy(RoleName=ROLE, PolicyName="instance",
                            PolicyDocument=json.dumps(widen(load_policy("instance-policy.json"))))
        proxy.observer = self

    # ---- the proxy's hooks ---------------------------------------------

    def after(self, svc, action, params, status, resp):
        """(status, body) to answer instead of moto's, or None. With
        crash_after set, the caller named there is SIGKILLed once the call
        has taken effect, before it reads the answer."""
        r = self.answer(svc, action, params, status, resp)
        with self.lock:
            crash, hit = self.crash_after, False
            if crash and crash[0] == action and status == 200:
                self.crash_after, hit = None, True
        if hit:
            os.kill(crash[1], signal.SIGKILL)
            self.crashed.append(action)
        return r

    def answer(self, svc, action, params, status, resp):
        if status != 200:
            return None
        if svc == "ec2" and action == "RunInstances":
            for iid in re.findall(r"<instanceId>(i-[0-9a-f]+)</instanceId>", resp.decode()):
                self.launch(iid, params.get("UserData", ""))
        elif svc == "ec2" and action in ("StopInstances", "StartInstances",
                                         "TerminateInstances"):
            for k, iid in sorted(params.items()):
                if k.startswith("InstanceId.") and iid in self.hosts:
                    {"StopInstances": self.stop_host, "StartInstances": self.start_host,
                     "TerminateInstances": self.terminate_host}[action](iid)
        elif svc == "ssm" and action == "SendCommand":
            return self.send_command(params, json.loads(resp))
        elif svc == "ssm" and action == "GetCommandInvocation":
            inv = self.invocations.get((params.get("CommandId"), params.get("InstanceId")))
            if inv is not None:
                with self.lock:
                    return 200, inv.body()
        return None

    # ---- hosts -----------------------------------------------------------

    def slug_of(self, iid):
        ec2 = self.moto.client("ec2", *self.ids["admin"])
        r = ec2.describe_instances(InstanceIds=[iid])
        for res in r["Reservations"]:
            for i in res["Instances"]:
                for t in i.get("Tags", []):
                    if t["Key"] == "ephemera:env":
                        return t["Value"]
        return None

    def launch(self, iid, user_data_b64):
        with self.lock:
            if iid in self.hosts:  # a retried RunInstances (ClientToken)
                return
            sts = self.moto.client("sts", *self.ids["admin"])
            c = sts.assume_role(RoleArn="arn:aws:iam::%s:role/%s" % (ACCOUNT, ROLE),
                                RoleSessionName=iid)["Credentials"]
            imds = FakeImds({"Code": "Success", "AccessKeyId": c["AccessKeyId"],
                             "SecretAccessKey": c["SecretAccessKey"],
                             "Token": c["SessionToken"],
                             "Expiration": c["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ")},
                            role=ROLE)
            h = Host(iid, self.slug_of(iid), "eph-emu-%s-%s" % (self.run_id, iid), imds)
            # Two live instances of one environment: a test asserts none.
            self.doubles += [(o.iid, iid) for o in self.hosts.values()
                             if h.slug and o.slug == h.slug and not o.gone]
            self.hosts[iid] = h
            h.lock.acquire()
        threading.Thread(target=self.create, args=(h, user_data_b64), daemon=True).start()

    def create(self, h, user_data_b64):
        try:
            self.create_locked(h, user_data_b64)
        finally:
            h.lock.release()

    def create_locked(self, h, user_data_b64):
        iid, imds = h.iid, h.imds
        # A new instance has a new disk: nothing of an earlier one's.
        if h.slug:
            self.wipe(h.slug)
        relay_dir = os.path.join(self.dir, iid)
        os.makedirs(relay_dir)
        imds_port = int(imds.url.rsplit(":", 1)[1])
        args = ["run", "-d", "--name", h.name, "--hostname", "ip-10-0-0-%d" % (len(self.hosts)),
                "--network", "none", "--pid", "host", "--cap-add", "SYS_ADMIN",
                "--cap-add", "SYS_PTRACE", "--label", "%s=%s" % (LABEL, self.run_id),
                "--label", "ephemera-test.instance=%s" % iid,
                "-v", "/var/run/docker.sock:/var/run/docker.sock",
                "-v", "%s:/run/emu" % relay_dir,
                "-v", "%s:%s" % (self.envs_dir, self.envs_dir),
                "-e", "AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:%d/" % imds_port,
                "-e", "AWS_DEFAULT_REGION=us-east-1"]
        for m in self.mounts:
            args += ["-v", "%s:%s:ro" % (m, m)]
        h.ports = self.ports + [imds_port]
        docker(*(args + [self.image]))
        ud = base64.b64decode(user_data_b64).decode() if user_data_b64 else ""
        # The compose project its deploys run (quoted once more inside the
        # first deploy's wrapper): its networks and volumes may outlive
        # every container of it, and still go with the disk.
        m = re.search(r"EPH_PROJECT=\W*([a-z0-9][a-z0-9-]*)", ud)
        h.project = m.group(1) if m else None
        docker("exec", "-i", h.name, "/bin/sh", "-c",
               "mkdir -p /var/lib/cloud/instance && cat >/var/lib/cloud/instance/user-data.txt",
               input=ud)
        self.boot(h)

    def boot(self, h):
        """What a boot does: relays up (the network), the agent registers,
        and the user-data runs the first time only."""
        for port in h.ports:
            sock = os.path.join(self.dir, h.iid, "%d.sock" % port)
            if os.path.exists(sock):
                os.unlink(sock)
            h.relays.append(subprocess.Popen(
                ["socat", "UNIX-LISTEN:%s,fork,mode=666" % sock, "TCP:127.0.0.1:%d" % port],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait = "; ".join("until [ -S /run/emu/%d.sock ]; do sleep 0.05; done" % p
                         for p in h.ports)
        docker("exec", h.name, "/bin/sh", "-c", wait, timeout=30)
        for port in h.ports:
            docker("exec", "-d", h.name, "socat",
                   "TCP-LISTEN:%d,bind=127.0.0.1,fork,reuseaddr" % port,
                   "UNIX-CONNECT:/run/emu/%d.sock" % port)
        docker("exec", "-i", h.name, "/bin/sh", "-c",
               "cat >/usr/local/bin/aws && chmod 755 /usr/local/bin/aws",
               input="#!/bin/sh\nexec /usr/bin/aws --endpoint-url http://127.0.0.1:%d \"$@\"\n"
               % self.proxy.port)
        # cloud-init's scripts-user, once per instance: as root, its
        # output kept in the log cloud-init keeps.
        docker("exec", "-d", h.name, "/bin/sh", "-c",
               "f=/var/lib/cloud/instance/user-data.txt; s=/var/lib/cloud/instance/sem; "
               "[ -e $s/user-data ] && exit 0; mkdir -p $s && : >$s/user-data; "
               "[ -s $f ] || exit 0; chmod 700 $f; "
               "$f >>/var/log/cloud-init-output.log 2>&1")
        h.registered_at = time.monotonic() + REGISTER_DELAY

    def relays_stop(self, h):
        for r in h.relays:
            r.terminate()
            r.wait()
        h.relays = []

    def projects(self, h):
        """Compose projects this host started: those whose working dir is
        under its slug's work dir."""
        if not h.slug:
            return set()
        out = docker("ps", "-a", "--filter", "label=com.docker.compose.project", "--format",
                     '{{.Label "com.docker.compose.project"}} '
                     '{{.Label "com.docker.compose.project.working_dir"}}')
        mine = os.path.join(self.envs_dir, h.slug) + "/"
        found = {line.split(" ", 1)[0] for line in out.splitlines()
                 if " " in line and (line.split(" ", 1)[1] + "/").startswith(mine)}
        return found | ({h.project} if h.project else set())

    def leftovers(self, h):
        """Containers, networks and volumes of the host's projects."""
        out = []
        for p in self.projects(h):
            label = "label=com.docker.compose.project=%s" % p
            out += self.project_containers(p)
            out += docker("network", "ls", "-q", "--filter", label).split()
            out += docker("volume", "ls", "-q", "--filter", label).split()
        return out

    def project_containers(self, project):
        return docker("ps", "-aq", "--filter",
                      "label=com.docker.compose.project=%s" % project).split()

    def stop_host(self, iid):
        h = self.hosts[iid]
        with h.lock:
            if not h.gone:
                self.stop_locked(h)

    def stop_locked(self, h):
        h.registered_at = None
        # The host first, as an instance's power goes: a compose it runs
        # starts nothing after its projects are stopped.
        docker("stop", "-t", "1", h.name)
        for p in self.projects(h):
            ids = self.project_containers(p)
            if ids:
                docker("stop", "-t", "5", *ids)
        self.relays_stop(h)

    def start_host(self, iid):
        h = self.hosts[iid]
        h.lock.acquire()
        if h.gone or h.registered_at is not None:
            h.lock.release()
            return
        threading.Thread(target=self.start_locked, args=(h,), daemon=True).start()

    def start_locked(self, h):
        try:
            docker("start", h.name)
            self.boot(h)
        finally:
            h.lock.release()

    def terminate_host(self, iid):
        h = self.hosts[iid]
        with h.lock:
            if not h.gone:
                self.terminate_locked(h)

    def terminate_locked(self, h):
        h.gone = True
        h.registered_at = None
        # The host first (see stop_locked), then what was on its disk.
        docker("rm", "-f", h.name, check=False)
        self.remove_projects(h)
        self.relays_stop(h)
        h.imds.stop()
        if h.slug:
            self.wipe(h.slug)

    def remove_projects(self, h):
        """What goes with the instance's disk: its projects' containers,
        networks, volumes and images (checked to be compose's, of this
        host)."""
        for p in self.projects(h):
            ids = self.project_containers(p)
            if ids:
                docker("rm", "-f", "-v", *ids, check=False)
            label = "label=com.docker.compose.project=%s" % p
            nets = docker("network", "ls", "-q", "--filter", label).split()
            if nets:
                docker("network", "rm", *nets, check=False)
            vols = docker("volume", "ls", "-q", "--filter", label).split()
            if vols:
                docker("volume", "rm", *vols, check=False)
            # Its builds (tagged <project>/s-<service>) were on its disk.
            imgs = docker("images", "--format", "{{.Repository}}:{{.Tag}}", "--filter",
                          "reference=%s/*" % p).split()
            if imgs:
                docker("rmi", *imgs, check=False)

    def wipe(self, slug):
        d = os.path.join(self.envs_dir, slug)
        if os.path.dirname(d) == self.envs_dir.rstrip("/") and os.path.isdir(d):
            # The host wrote it as root: removed through the host image.
            docker("run", "--rm", "--network", "none", "-v", "%s:/envs" % self.envs_dir,
                   self.image, "rm", "-rf", "--one-file-system", "/envs/" + slug)

    # ---- Run Command -----------------------------------------------------

    def send_command(self, req, resp):
        cmd = resp.get("Command", {})
        command_id = cmd.get("CommandId")
        params = req.get("Parameters", {})
        lines = params.get("commands", [])
        timeout = int((params.get("executionTimeout") or ["3600"])[0])
        for iid in req.get("InstanceIds", []):
            h = self.hosts.get(iid)
            if h is None or not h.registered():
                return ssm_error("InvalidInstanceId",
                                 "Instances [[%s]] not in a valid state for account" % iid)
        for iid in req.get("InstanceIds", []):
            inv = Invocation(command_id, iid, timeout)
            with self.lock:
                self.invocations[(command_id, iid)] = inv
            threading.Thread(target=self.run_command, args=(self.hosts[iid], inv, lines),
                             daemon=True).start()
        return None

    def run_command(self, h, inv, lines):
        d = "/var/lib/amazon/ssm/%s/document/orchestration/%s/awsrunShellScript/0" % (
            h.iid, inv.command_id)
        docker("exec", "-i", h.name, "/bin/sh", "-c",
               "mkdir -p %s && cat >%s/_script.sh" % (d, d), input="\n".join(lines) + "\n")
        # The agent kills the script at executionTimeout.
        p = subprocess.Popen(["docker", "exec", h.name, "timeout", "-s", "KILL",
                              str(inv.timeout), "sh", d + "/_script.sh"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        started = time.monotonic()
        out, err = p.communicate()
        with self.lock:
            inv.out = out.decode("utf-8", "replace")
            inv.err = err.decode("utf-8", "replace")
            if p.returncode == 137 and time.monotonic() - started >= inv.timeout:
                inv.status, inv.details, inv.code = "TimedOut", "Execution Timed Out", -1
            elif p.returncode == 0:
                inv.status, inv.details, inv.code = "Success", "Success", 0
            else:
                inv.status, inv.details, inv.code = "Failed", "Failed", p.returncode

    # ---- what is left ----------------------------------------------------

    def containers(self):
        return docker("ps", "-aq", "--filter", "label=%s=%s" % (LABEL, self.run_id)).split()

    def stop(self):
        for iid in list(self.hosts):
            self.terminate_host(iid)
        for c in self.containers():
            docker("rm", "-f", c, check=False)
        # The hosts wrote as root below envs_dir (the test's temp dir):
        # emptied through the image, then removed.
        if os.path.isdir(self.envs_dir) and os.listdir(self.envs_dir):
            docker("run", "--rm", "--network", "none", "-v", "%s:/envs" % self.envs_dir,
                   self.image, "find", "/envs", "-mindepth", "1", "-delete", check=False)
        shutil.rmtree(self.envs_dir, ignore_errors=True)
        self.proxy.observer = None
        shutil.rmtree(self.dir, ignore_errors=True)
