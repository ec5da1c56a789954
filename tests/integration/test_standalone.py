"""Issue 13: a clone stands alone, on any port.

- nothing tracked refers to a sibling shared/ directory;
- a copy of the tree with nothing beside it passes the unit tests with
  EPHEMERA_FIXTURES unset (the recorded payloads are in tests/fixtures);
- `PORT=N make run` serves on N and prints N in the demo URL, `make run
  PORT=N` serves on N, and a taken port is said, with what to do;
- `make run`'s MariaDB runs with config/mariadb.cnf (issue 20)."""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from harness import mariadb_cnf
from harness.stack import ROOT, free_port, http, interruptible, wait_until

SHARED = ".." + "/shared"  # spelled apart so this file does not match


def port_free(p):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", p))
            return True
        except OSError:
            return False


class MakeRun:
    """`make run` in a tree, in its own session; its output collected."""

    def __init__(self, tree, env, args=()):
        self.out = []
        self.tree, self.env = tree, env
        self.forced = False  # stop() had to kill it and take the stack down
        self.p = subprocess.Popen(["make", "run", *args], cwd=tree, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, start_new_session=True,
                                  preexec_fn=interruptible)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            self.out.append(line)

    def text(self):
        return "".join(self.out)

    def wait_for(self, pattern, timeout):
        return wait_until(lambda: re.search(pattern, self.text()) or self.p.poll() is not None,
                          timeout=timeout, interval=0.2) and re.search(pattern, self.text())

    def stop(self):
        """Ctrl-C, as a user would."""
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGINT)
        try:
            self.p.wait(timeout=120)
        except subprocess.TimeoutExpired:
            # Its daemons run in their own sessions: killing make leaves
            # them up, so the stack is taken down as run.sh would have.
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait()
            self.forced = True
            subprocess.run([os.path.join(self.tree, "scripts", "stack.sh"), "down"],
                           cwd=self.tree, env=self.env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=300)
        self.t.join(timeout=5)


def tree_copy(dest):
    """The working tree as a user has it, without var/ and git."""
    shutil.copytree(ROOT, dest, symlinks=True,
                    ignore=shutil.ignore_patterns(".git", "var", "artifacts", "__pycache__"))


def installation_remove(tree):
    """Whatever Docker objects the installation in `tree` left."""
    try:
        with open(os.path.join(tree, "var", "instance")) as f:
            inst = f.read().strip()
    except OSError:
        return
    flt = ["--filter", "label=io.ephemera.instance=%s" % inst]
    for ls, rm in ((["docker", "ps", "-aq"], ["docker", "rm", "-f", "-v"]),
                   (["docker", "network", "ls", "-q"], ["docker", "network", "rm"]),
                   (["docker", "volume", "ls", "-q"], ["docker", "volume", "rm", "-f"])):
        ids = subprocess.run(ls + flt, stdout=subprocess.PIPE, text=True).stdout.split()
        if ids:
            subprocess.run(rm + ids, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    imgs = subprocess.run(["docker", "images", "-q", "--filter", "reference=%s-*/*" % inst],
                          stdout=subprocess.PIPE, text=True).stdout.split()
    if imgs:
        subprocess.run(["docker", "rmi", "-f"] + imgs, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


def clean_env():
    env = {k: v for k, v in os.environ.items()
           if k not in ("EPHEMERA_FIXTURES", "PORT", "EPHEMERA_HTTP_PORT", "CONFIG",
                        "EPHEMERA_BIN", "MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    return env


class StandaloneTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # A directory holding only the copy: no shared/ beside it.
        cls.outer = tempfile.mkdtemp(prefix="eph-standalone-")
        cls.tree = os.path.join(cls.outer, "ephemera")
        tree_copy(cls.tree)

    @classmethod
    def tearDownClass(cls):
        installation_remove(cls.tree)
        shutil.rmtree(cls.outer, ignore_errors=True)

    def test_nothing_refers_to_shared(self):
        files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, stdout=subprocess.PIPE,
                               check=True).stdout.decode().split("\0")
        bad = []
        for rel in filter(None, files):
            try:
                with open(os.path.join(ROOT, rel), "rb") as f:
                    if SHARED.encode() in f.read():
                        bad.append(rel)
            except OSError:
                pass
        self.assertEqual(bad, [], "these refer to %s" % SHARED)
        self.assertTrue(os.path.exists(os.path.join(ROOT, "docs", "architecture.md")))

    def test_unit_tests_in_a_copy(self):
        self.assertEqual(sorted(os.listdir(self.outer)), ["ephemera"])
        r = subprocess.run(["make", "-s", "test-unit"], cwd=self.tree, env=clean_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=1800)
        self.assertEqual(r.returncode, 0, r.stdout[-4000:])
        self.assertIn(" 0 failed", r.stdout)

    def test_make_run_on_another_port(self):
        port = 18081 if port_free(18081) else free_port()
        env = clean_env()
        env["PORT"] = str(port)
        run = MakeRun(self.tree, env)
        try:
            url = "http://pr-1-hello.localhost:%d/" % port
            self.assertTrue(run.wait_for(r"serves at " + re.escape(url), timeout=600),
                            run.text()[-4000:])
            self.assertIn("running at http://127.0.0.1:%d/" % port, run.text())
            r = http("GET", "http://127.0.0.1:%d/" % port, headers={"Host": "pr-1-hello.localhost"})
            self.assertEqual(r.status, 200)
            self.assertIn("hello", r.text.lower())
        finally:
            run.stop()
        self.assertFalse(run.forced, "make run did not stop within 120 s of Ctrl-C:\n" +
                         run.text()[-3000:])
        self.assertTrue(wait_until(lambda: port_free(port), timeout=30), "still listening")

        # The command-line form, without the demo.
        port2 = free_port()
        env = clean_env()
        env["EPHEMERA_DEMO"] = "0"
        run = MakeRun(self.tree, env, ["PORT=%d" % port2])
        try:
            self.assertTrue(run.wait_for(r"running at http://127\.0\.0\.1:%d/" % port2, 300),
                            run.text()[-4000:])
            self.assertEqual(http("GET", "http://127.0.0.1:%d/healthz" % port2).status, 200)
            # Its MariaDB runs with config/mariadb.cnf, every setting of it.
            want = mariadb_cnf.settings(os.path.join(self.tree, "config", "mariadb.cnf"))
            got = mariadb_cnf.server(os.path.join(self.tree, "var", "run", "mysqld.sock"),
                                     list(want))
            self.assertEqual(got, want)
        finally:
            run.stop()

        # Taken: said, with what to do, and nothing started.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            taken = s.getsockname()[1]
            run = MakeRun(self.tree, env, ["PORT=%d" % taken])
            run.p.wait(timeout=300)
            run.t.join(timeout=5)
            self.assertNotEqual(run.p.returncode, 0)
            self.assertIn("port %d is taken" % taken, run.text())
            self.assertIn("make run PORT=", run.text())


if __name__ == "__main__":
    unittest.main()
