"""An installed Ephemera for tests: `make install DESTDIR=...`, then
tests/infra/installed-stack.sh runs the installed units' Exec lines in a
temp root under their own mount and network namespaces (so the installed
config's port 8080 and /etc paths are the test's alone)."""

import base64
import os
import shlex
import shutil
import subprocess
import tempfile

from harness.events import pull_request, signed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STACK = os.path.join(ROOT, "tests", "infra", "installed-stack.sh")
UNITDIR = "usr/local/lib/systemd/system"


def make_install(dest):
    r = subprocess.run(["make", "-s", "install", "DESTDIR=" + dest], cwd=ROOT,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise RuntimeError("make install failed:\n" + r.stdout)


def in_namespace(script, timeout=300):
    """Runs a bash script with its own mount namespace."""
    return subprocess.run(["unshare", "--mount", "--propagation", "private",
                           "bash", "-c", script], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)


def run_stack(dest, script, timeout=300):
    """Starts the installed stack, runs `script` (bash, inside the temp
    root, as root) once /healthz answers, stops it. Returns (rc, output)."""
    work = tempfile.mkdtemp(prefix="eph-installed-")
    try:
        r = subprocess.run(["unshare", "--mount", "--net", "--propagation", "private",
                            STACK, dest, work, "bash", "-c", script],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=timeout)
        return r.returncode, r.stdout
    finally:
        subprocess.run(["rm", "-rf", work])


def delivery_script(secret, repo="acme/app"):
    """A bash script that posts a ping and a pull_request signed with
    `secret`, the same pull_request signed with a wrong secret, and prints
    each status and the deliveries the database recorded."""
    lines = ["set -u", "u=http://127.0.0.1:8080/webhook"]
    cases = [("ping", "ping", {"zen": "hi", "hook_id": 1}, secret),
             ("good", "pull_request", pull_request("opened", repo, 7, "a" * 40), secret),
             ("bad", "pull_request", pull_request("opened", repo, 8, "b" * 40), secret + "x")]
    for name, event, payload, key in cases:
        body, headers = signed(key, event, payload)
        hdr = " ".join("-H %s" % shlex.quote("%s: %s" % kv) for kv in headers.items())
        lines.append("echo %s | base64 -d | curl -s -o /dev/null -w '%s=%%{http_code}\\n' %s "
                     "--data-binary @- \"$u\"" % (base64.b64encode(body).decode(), name, hdr))
    lines.append("echo deliveries=$(mariadb --no-defaults -uroot --socket=/run/mysqld/mysqld.sock "
                 "-N -B -e 'SELECT COUNT(*) FROM ephemera.deliveries')")
    return "\n".join(lines)


def results(output):
    """name=value lines of the output."""
    out = {}
    for line in output.splitlines():
        k, sep, v = line.partition("=")
        if sep and k.isidentifier():
            out[k] = v
    return out


class Installed:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="eph-install-")
        self.dest = os.path.join(self.dir, "dest")
        make_install(self.dest)

    def path(self, p):
        return os.path.join(self.dest, p.lstrip("/"))

    def units(self):
        d = self.path(UNITDIR)
        return sorted(os.path.join(d, f) for f in os.listdir(d))

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)
