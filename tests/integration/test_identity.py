"""Issue 13: one installation, one identity. With no environments.instance
configured, the stack generates one at first start into var/instance and
keeps it; the workers refuse to start without one; the sweep leaves alone
what carries its identity but is younger than workers.sweep_grace_seconds."""
import os
import re
import subprocess
import time
import unittest

from harness.stack import Stack, wait_until


def sh(*args, check=True):
    return subprocess.run(args, check=check, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True).stdout


class IdentityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = Stack("identity", {"workers.sweep_interval_seconds": 1,
                                   "workers.lease_seconds": 6,
                                   "workers.sweep_grace_seconds": 3600})
        # As a fresh clone: no instance in the configuration.
        del cls.s.settings["environments.instance"]
        cls.s.write_config()
        cls.ghosts = []

    @classmethod
    def tearDownClass(cls):
        if cls.ghosts:
            subprocess.run(["docker", "rm", "-f"] + cls.ghosts,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cls.s.finish()

    def config_get(self, name):
        return sh(os.path.join(self.s.bin, "ephemera"), "-c", self.s.config,
                  "config", "get", name).strip()

    def test_1_workers_refuse_without_identity(self):
        os.makedirs(self.s.var, exist_ok=True)
        self.assertFalse(os.path.exists(os.path.join(self.s.var, "instance")))
        r = subprocess.run([os.path.join(self.s.bin, "ephemera-workers"), "-c", self.s.config],
                           env=self.s.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("environments.instance is not set", r.stdout)

    def test_2_generated_at_first_start_and_kept(self):
        self.s.up()
        path = os.path.join(self.s.var, "instance")
        with open(path) as f:
            first = f.read().strip()
        self.assertRegex(first, r"^e[0-9a-f]{10}$")
        self.assertEqual(os.stat(path).st_mode & 0o077, 0)
        self.assertEqual(self.config_get("environments.instance"), first)
        self.assertTrue(self.s.pid("workers"))
        self.s.down()
        self.s.up()
        with open(path) as f:
            self.assertEqual(f.read().strip(), first)
        # A configured one wins, and must be [a-z0-9]{1,15}.
        self.s.settings["environments.instance"] = "Bad-Name"
        self.s.write_config()
        r = subprocess.run([os.path.join(self.s.bin, "ephemera"), "-c", self.s.config,
                            "config", "get", "environments.instance"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("environments.instance", r.stdout)
        del self.s.settings["environments.instance"]
        self.s.write_config()

    def test_3_young_orphans_are_left(self):
        """Ours (label and prefix) but younger than the grace period."""
        inst = self.config_get("environments.instance")
        project = "%s-pr-97-young" % inst
        cid = sh("docker", "run", "-d", "--label", "com.docker.compose.project=%s" % project,
                 "--label", "io.ephemera.instance=%s" % inst, "ephemera/busybox:1",
                 "sleep", "3600").strip()
        self.ghosts.append(cid)
        def sweeps():
            return int(self.s.sql("SELECT COUNT(*) FROM jobs WHERE kind = 'sweep' "
                                  "AND state = 'done'")[0][0])
        n = sweeps()
        self.assertTrue(wait_until(lambda: sweeps() >= n + 3, timeout=30),
                        "%r\n%s" % (self.s.sql("SELECT kind, state, attempts, last_error FROM "
                                               "jobs ORDER BY id DESC LIMIT 5"),
                                    self.s.log("workers")[-3000:]))
        self.assertIn(cid[:12], sh("docker", "ps", "-q", "--no-trunc", "--filter",
                                   "id=%s" % cid))
        self.assertNotIn("orphan_removed", self.s.log("workers"))


if __name__ == "__main__":
    unittest.main()
