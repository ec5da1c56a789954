"""make install and the systemd units: the installed tree, `systemd-analyze
verify` and `security` on the units, and the installed units' commands
bringing up a working stack in a temp root (tests/infra/installed-stack.sh)."""

import os
import re
import shutil
import subprocess
import unittest

from harness.installed import Installed, delivery_script, in_namespace, results, run_stack
from harness.stack import ROOT

SERVICES = ["ephemera-fcgi.service", "ephemera-migrate.service",
            "ephemera-nginx.service", "ephemera-workers.service"]


def unit_settings(path):
    out = {}
    for line in open(path):
        k, sep, v = line.strip().partition("=")
        if sep and not k.startswith("#"):
            out.setdefault(k, []).append(v)
    return out


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("unshare") and shutil.which("systemd-analyze"),
                     "needs root, unshare and systemd-analyze (mount and network namespaces)")
class TestInstall(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = Installed()

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()

    def test_tree(self):
        for p in ["usr/local/bin/ephemera", "usr/local/sbin/ephemera-fcgi",
                  "usr/local/sbin/ephemera-workers",
                  "usr/local/libexec/ephemera/host/ephemera-host",
                  "usr/local/libexec/ephemera/ephemera-nginx-conf",
                  "usr/local/share/ephemera/migrations/001_init.sql",
                  "usr/local/share/ephemera/nginx/site.conf",
                  "usr/local/share/ephemera/web/style.css",
                  "usr/local/share/ephemera/mariadb.cnf",
                  "etc/ephemera/ephemera.conf", "etc/ephemera/github.conf",
                  "etc/sysusers.d/ephemera.conf"]:
            self.assertTrue(os.path.exists(self.inst.path(p)), p)
        # The database settings `make run` uses, for control-plane.sh to
        # put in /etc/mysql/mariadb.conf.d/.
        with open(self.inst.path("usr/local/share/ephemera/mariadb.cnf")) as f, \
                open(os.path.join(ROOT, "config", "mariadb.cnf")) as g:
            self.assertEqual(f.read(), g.read())
        conf = open(self.inst.path("etc/ephemera/ephemera.conf")).read()
        self.assertNotRegex(conf, r"@[A-Z]+@", "a placeholder left")
        for u in self.inst.units():
            self.assertNotRegex(open(u).read(), r"@[A-Z]+@", u)

    def test_config_kept(self):
        """A second install keeps the admin's configuration, and says
        whether the engine remaps root (it does not in this root)."""
        p = self.inst.path("etc/ephemera/ephemera.conf")
        with open(p, "a") as f:
            f.write("# mine\n")
        r = subprocess.run(["make", "-s", "install", "DESTDIR=" + self.inst.dest],
                           check=True, stdout=subprocess.PIPE, text=True)
        self.assertTrue(open(p).read().endswith("# mine\n"))
        self.assertIn("docker-userns: off; `sudo make docker-userns` turns it on", r.stdout)

    def test_docker_userns_offer(self):
        """`make docker-userns` writes daemon.json only where there is
        none; an admin's own file is left as it is, with the line to add."""
        conf = self.inst.path("etc/docker/daemon.json")
        script = os.path.join(os.path.dirname(__file__), "..", "..", "scripts",
                              "docker-userns.sh")
        env = dict(os.environ, DOCKER_DAEMON_JSON=conf)
        run = lambda *a: subprocess.run([script, *a], env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self.assertEqual(run("--check").returncode, 1)
        r = run()
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertEqual(open(conf).read(), '{ "userns-remap": "default" }\n')
        self.assertEqual(run("--check").returncode, 0)
        self.assertIn("already on", run().stdout)
        mine = '{ "log-driver": "journald" }\n'
        with open(conf, "w") as f:
            f.write(mine)
        r = run()
        self.assertEqual(r.returncode, 1)
        self.assertIn('"userns-remap": "default"', r.stdout)
        self.assertEqual(open(conf).read(), mine)
        os.remove(conf)

    def test_hardening(self):
        for name in SERVICES:
            s = unit_settings(self.inst.path(os.path.join("usr/local/lib/systemd/system", name)))
            self.assertEqual(s.get("User"), ["ephemera"], name)
            for k, v in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                         ("PrivateTmp", "yes"), ("ProtectHome", "yes")]:
                self.assertEqual(s.get(k), [v], "%s: %s" % (name, k))
            # Writable: the state dir only.
            self.assertNotIn("ReadWritePaths", s, name)
            self.assertEqual(s.get("StateDirectory"), ["ephemera ephemera/run"], name)
            if s.get("Type") != ["oneshot"]:
                self.assertEqual(s.get("Restart"), ["on-failure"], name)
            self.assertNotIn("StandardOutput", s, name)  # the journal
        fcgi = unit_settings(self.inst.path("usr/local/lib/systemd/system/ephemera-fcgi.service"))
        self.assertIn("ephemera-fcgi", fcgi["ExecStart"][0])
        workers = unit_settings(self.inst.path("usr/local/lib/systemd/system/ephemera-workers.service"))
        self.assertIn("ephemera-workers", workers["ExecStart"][0])

    def verify_script(self, verb):
        units = " ".join("/usr/local/lib/systemd/system/" + os.path.basename(u)
                         for u in self.inst.units() if not u.endswith(".target") or verb == "verify")
        return ("mount --bind %s /usr/local && systemd-analyze %s %s"
                % (self.inst.path("usr/local"), verb, units))

    def test_systemd_verify(self):
        r = in_namespace(self.verify_script("verify"))
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertEqual(r.stdout.strip(), "", "systemd-analyze verify: " + r.stdout)

    def test_systemd_security(self):
        scores = {}
        for name in SERVICES:
            r = in_namespace("mount --bind %s /usr/local && systemd-analyze security "
                             "--offline=yes /usr/local/lib/systemd/system/%s"
                             % (self.inst.path("usr/local"), name))
            m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
            self.assertTrue(m, r.stdout)
            scores[name] = float(m.group(1))
        print("systemd-analyze security: " +
              ", ".join("%s %.1f" % kv for kv in sorted(scores.items())))
        for name, score in scores.items():
            self.assertLess(score, 2.0, "%s exposure %.1f" % (name, score))

    def test_installed_stack(self):
        """The installed units' Exec lines, run as the dedicated user in a
        read-only temp root, answer /healthz and verify a signed delivery."""
        etc = self.inst.path("etc/ephemera")
        with open(os.path.join(etc, "webhook-secret"), "w") as f:
            f.write("installed-secret\n")
        github_conf = os.path.join(etc, "github.conf")
        default = open(github_conf).read()
        with open(github_conf, "w") as f:
            f.write('github: { webhook_secret_file = "/etc/ephemera/webhook-secret"; };\n')
        try:
            rc, out = run_stack(self.inst.dest, delivery_script("installed-secret"))
        finally:
            os.unlink(os.path.join(etc, "webhook-secret"))
            with open(github_conf, "w") as f:
                f.write(default)
        res = results(out)
        self.assertEqual(rc, 0, out)
        self.assertIn("installed-stack: healthz: 200", out)
        self.assertEqual(res.get("ping"), "200", out)
        self.assertEqual(res.get("good"), "202", out)
        self.assertEqual(res.get("bad"), "401", out)
        self.assertEqual(res.get("deliveries"), "2", out)


if __name__ == "__main__":
    unittest.main()
