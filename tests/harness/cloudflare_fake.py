"""Starts and drives tests/fakes/cloudflare.py for a test: free ports on
127.0.0.1 for the API and the edge, a token file per permission set, and
helpers to inject faults and read the fake's inventory."""
import json
import os
import subprocess
import sys
import tempfile
import time

from harness.stack import ROOT, free_port, http

FAKE = os.path.join(ROOT, "tests", "fakes", "cloudflare.py")
ALL_PERMISSIONS = ["Cloudflare Tunnel Edit", "DNS Edit",
                   "Access: Apps and Policies Edit", "Access: Service Tokens Edit"]


class CloudflareFake:
    def __init__(self, zone="example-previews.test", account="0123456789abcdef0123456789abcdef",
                 zone_id="fedcba9876543210fedcba9876543210"):
        self.zone, self.account, self.zone_id = zone, account, zone_id
        self.dir = tempfile.mkdtemp(prefix="eph-cffake-")
        self.port, self.edge_port = free_port(), free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.api_url = self.url + "/client/v4"
        self.edge_url = "http://127.0.0.1:%d" % self.edge_port
        self.log = open(os.path.join(self.dir, "fake.log"), "wb")
        # The stand-in connector reaches the fake through Unix sockets in
        # this directory (mounted into its container; it runs as 65532).
        self.unix_dir = os.path.join(self.dir, "sockets")
        os.mkdir(self.unix_dir)
        os.chmod(self.dir, 0o755)
        os.chmod(self.unix_dir, 0o1777)
        self.proc = subprocess.Popen(
            [sys.executable, FAKE, "--port", str(self.port), "--edge-port",
             str(self.edge_port), "--account", account, "--zone-id", zone_id,
             "--zone", zone, "--unix-dir", self.unix_dir], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                if http("GET", self.url + "/_fake/inventory", timeout=2).status == 200 and \
                        http("GET", self.edge_url + "/_fake/login", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("cloudflare fake did not start")
            time.sleep(0.1)
        self.tokens = {}
        self.token = self.add_token(ALL_PERMISSIONS)

    def add_token(self, permissions, name=None):
        """A new API token with `permissions`; returns the file holding it."""
        tok = os.urandom(20).hex()
        self.tokens[tok] = list(permissions)
        self.configure(tokens=self.tokens)
        path = os.path.join(self.dir, name or ("token-%d" % len(self.tokens)))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(tok + "\n")
        return path

    def post(self, path, obj):
        r = http("POST", self.url + path, body=json.dumps(obj).encode(),
                 headers={"Content-Type": "application/json"})
        assert r.status == 200, (path, r.status, r.body)
        return r.json()

    def configure(self, **kw):
        return self.post("/_fake/config", kw)

    def fault(self, **kw):
        return self.post("/_fake/fault", kw)

    def inventory(self):
        return http("GET", self.url + "/_fake/inventory").json()["result"]

    def calls(self):
        return http("GET", self.url + "/_fake/calls").json()["result"]

    def settings(self, token_file=None):
        return {
            "exposure.provider": "cloudflare",
            "cloudflare.api_token_file": token_file or self.token,
            "cloudflare.account_id": self.account,
            "cloudflare.zone_id": self.zone_id,
            "cloudflare.zone": self.zone,
            "cloudflare.api_url": self.api_url,
            "cloudflare.edge_url": self.edge_url,
        }

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def write_conf(path, settings):
    """Dotted settings as libconfig groups (as Stack.write_config does)."""
    groups = {}
    for key, v in settings.items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, str):
            v = '"%s"' % v.replace("\\", "\\\\").replace('"', '\\"')
        g, k = key.split(".", 1)
        groups.setdefault(g, []).append("  %s = %s;" % (k, v))
    with open(path, "w") as f:
        for g, lines in groups.items():
            f.write("%s: {\n%s\n};\n" % (g, "\n".join(lines)))
