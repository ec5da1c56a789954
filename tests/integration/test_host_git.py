"""Issue 13: git never leaves the work dir. host/ephemera-host's fetch runs
inside var/envs/<slug>/src, and var/ usually lives inside the installation's
own clone; when src/.git vanishes mid-fetch, git must fail rather than find
the enclosing repository and check a pull request out over it. Also: the
host script removes a work dir only when it is one and carries this
installation's marker. No Docker, no stack: the script and real git."""
import hashlib
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

from harness.stack import ROOT

HOST = os.path.join(ROOT, "host", "ephemera-host")
ROUNDS = int(os.environ.get("EPHEMERA_GIT_ROUNDS", "200"))
INSTANCE = "tgit%04d" % random.randrange(10**4)


def git(*args, cwd):
    return subprocess.run(("git",) + args, cwd=cwd, check=True, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout


def commit(path, files, msg):
    for rel, text in files.items():
        p = os.path.join(path, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
    git("add", "-A", cwd=path)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", msg, cwd=path)
    return git("rev-parse", "HEAD", cwd=path).strip()


def host(action, env, timeout=60):
    e = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
         "EPH_INSTANCE": INSTANCE}
    e.update(env)
    return subprocess.run([HOST, action], env=e, timeout=timeout, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)


class HostGitTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="eph-hostgit-")
        # The installation's clone, with var/ inside it (ignored).
        cls.clone = os.path.join(cls.tmp, "clone")
        os.makedirs(cls.clone)
        git("init", "-q", "-b", "main", cwd=cls.clone)
        cls.head = commit(cls.clone, {"Makefile": "all:\n", "README.md": "clone\n",
                                      "lib/a.c": "int a;\n", ".gitignore": "var/\n"}, "clone")
        # The pull request's repository: different files.
        cls.source = os.path.join(cls.tmp, "source")
        os.makedirs(cls.source)
        git("init", "-q", "-b", "main", cwd=cls.source)
        cls.sha = commit(cls.source, {"compose.yaml": "services: {}\n",
                                      "app.txt": "demo\n"}, "demo")
        cls.dir = os.path.join(cls.clone, "var", "envs", "pr-1-hello")
        cls.src = os.path.join(cls.dir, "src")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def snapshot(self):
        """What must never change: HEAD, the index, the tracked files and
        a clean status."""
        h = hashlib.sha256()
        for rel in ("Makefile", "README.md", "lib/a.c", ".gitignore"):
            p = os.path.join(self.clone, rel)
            h.update(rel.encode() + b"\0")
            h.update(open(p, "rb").read() if os.path.exists(p) else b"<missing>")
        with open(os.path.join(self.clone, ".git", "index"), "rb") as f:
            index = hashlib.sha256(f.read()).hexdigest()
        return (git("rev-parse", "HEAD", cwd=self.clone).strip(),
                subprocess.run(["git", "symbolic-ref", "-q", "HEAD"], cwd=self.clone,
                               stdout=subprocess.PIPE, text=True).stdout.strip(),
                index, h.hexdigest(),
                git("status", "--porcelain", cwd=self.clone))

    def fetch_env(self, d=None):
        return {"EPH_DIR": d or self.dir, "EPH_SHA": self.sha, "EPH_SOURCE": self.source}

    def test_fetch_checks_out_into_src(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        r = host("fetch", self.fetch_env())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.src, "app.txt")))
        with open(os.path.join(self.dir, ".ephemera-instance")) as f:
            self.assertEqual(f.read().strip(), INSTANCE)
        # Again at the same commit: nothing fetched, still there.
        r = host("fetch", self.fetch_env())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("already checked out", r.stderr)

    def test_src_git_removed_during_fetch(self):
        """Deletes (and sometimes recreates, empty or as a fresh repo)
        src/.git at a random moment of each fetch."""
        before = self.snapshot()
        failed = ok = afresh = 0
        for i in range(ROUNDS):
            if i % 10 == 0:
                shutil.rmtree(self.dir, ignore_errors=True)
            gitdir = os.path.join(self.src, ".git")

            def meddle(delay=random.uniform(0, 0.06), how=i % 3):
                time.sleep(delay)
                shutil.rmtree(gitdir, ignore_errors=True)
                if how == 1:
                    os.makedirs(gitdir, exist_ok=True)  # empty: not a repo
                elif how == 2 and os.path.isdir(self.src):
                    subprocess.run(["git", "init", "-q", self.src],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            t = threading.Thread(target=meddle)
            t.start()
            r = host("fetch", self.fetch_env())
            t.join()
            afresh += "starting the checkout afresh" in r.stderr
            if r.returncode == 0:
                ok += 1
            else:
                failed += 1
            self.assertEqual(self.snapshot(), before,
                             "round %d changed the enclosing repository; fetch said:\n%s"
                             % (i, r.stderr))
        # The meddling did land inside fetches: some found their .git
        # broken and started the checkout afresh.
        self.assertGreater(afresh, 0)
        print("    (%d rounds: %d fetches completed, %d failed cleanly, %d started afresh)"
              % (ROUNDS, ok, failed, afresh))

    def test_broken_repo_never_falls_through_and_is_started_afresh(self):
        """A .git that is there but not a repository (emptied, as a removal
        cut short leaves it): git never falls through to the enclosing
        repository, and the checkout is started afresh, so that the next
        try does not fail the same way for ever."""
        before = self.snapshot()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.assertEqual(host("fetch", self.fetch_env()).returncode, 0)
        other = commit(self.source, {"app.txt": "v2\n"}, "v2")
        gitdir = os.path.join(self.src, ".git")
        shutil.rmtree(gitdir)
        os.makedirs(gitdir)
        r = host("fetch", dict(self.fetch_env(), EPH_SHA=other))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("repository is missing", r.stderr)
        self.assertIn("starting the checkout afresh", r.stderr)
        self.assertEqual(git("rev-parse", "HEAD", cwd=self.src).strip(), other)
        with open(os.path.join(self.src, "app.txt")) as f:
            self.assertEqual(f.read(), "v2\n")
        self.assertEqual(self.snapshot(), before)

    def test_work_dir_shape_is_checked(self):
        for bad in ("/", self.clone, os.path.join(self.clone, "var"),
                    os.path.join(self.clone, "var", "envs", "..", "envs", "pr-1-hello"),
                    os.path.join(self.clone, "var", "envs", "pr-1-hello", "src")):
            before = self.snapshot()
            r = host("fetch", self.fetch_env(bad))
            self.assertNotEqual(r.returncode, 0, bad)
            self.assertIn("EPH_DIR", r.stderr)
            r = host("down", {"EPH_PROJECT": "x-pr-1-hello", "EPH_DIR": bad})
            self.assertNotEqual(r.returncode, 0, bad)
            self.assertEqual(self.snapshot(), before)
        self.assertTrue(os.path.exists(os.path.join(self.clone, "Makefile")))

    def test_down_removes_only_a_marked_work_dir(self):
        d = os.path.join(self.tmp, "other", "envs", "pr-7-x")
        os.makedirs(os.path.join(d, "src"))
        down = {"EPH_PROJECT": "%s-pr-7-x" % INSTANCE, "EPH_DIR": d}
        r = host("down", down)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not marked", r.stderr)
        self.assertTrue(os.path.isdir(d))
        with open(os.path.join(d, ".ephemera-instance"), "w") as f:
            f.write("someoneelse\n")
        self.assertNotEqual(host("down", down).returncode, 0)
        self.assertTrue(os.path.isdir(d))
        with open(os.path.join(d, ".ephemera-instance"), "w") as f:
            f.write(INSTANCE + "\n")
        r = host("down", down)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(os.path.exists(d))


if __name__ == "__main__":
    unittest.main()
