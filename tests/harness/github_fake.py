"""Starts and drives tests/fakes/github.py for a test: its own RSA key pair
(the private key is the App's, for our workers; the public one is the
fake's), a free port on 127.0.0.1, and helpers to configure faults and
read back what was recorded."""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from harness.stack import ROOT, free_port, http

FAKE = os.path.join(ROOT, "tests", "fakes", "github.py")


class GitHubFake:
    def __init__(self, app_id=4242):
        self.app_id = app_id
        self.dir = tempfile.mkdtemp(prefix="eph-ghfake-")
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_key = os.path.join(self.dir, "app.pem")
        fd = os.open(self.private_key, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.TraditionalOpenSSL,
                                      serialization.NoEncryption()))
        self.public_key = os.path.join(self.dir, "app.pub")
        with open(self.public_key, "wb") as f:
            f.write(key.public_key().public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo))
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log = open(os.path.join(self.dir, "fake.log"), "wb")
        self.proc = subprocess.Popen(
            [sys.executable, FAKE, "--port", str(self.port), "--app-id", str(app_id),
             "--public-key", self.public_key],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                if http("GET", self.url + "/_fake/state", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("github fake did not start")
            time.sleep(0.1)

    def settings(self):
        """Stack settings that point Ephemera at this fake."""
        return {
            "github.enabled": True,
            "github.app_id": self.app_id,
            "github.private_key_file": self.private_key,
            "github.api_url": self.url,
            "github.token_refresh_margin": 1,
        }

    def post(self, path, obj):
        r = http("POST", self.url + path, body=json.dumps(obj).encode(),
                 headers={"Content-Type": "application/json"})
        assert r.status in (200, 201), (path, r.status, r.text)
        return r.json()

    def configure(self, **kw):
        return self.post("/_fake/config", kw)

    def fault(self, **kw):
        return self.post("/_fake/fault", kw)

    def state(self):
        return http("GET", self.url + "/_fake/state").json()

    def pr_view(self, repo, pr):
        """What GitHub shows on the PR now: {"comments": [bodies of the
        bot's comments], "deployments": [{id, sha, state (the last
        status), environment_url, log_url, history}], "commit_statuses":
        [{sha, context, state, description, target_url}] (the last per
        commit and context)}."""
        return http("GET", "%s/_fake/pr/%s/%d" % (self.url, repo, pr)).json()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
