"""Issue 20: config/mariadb.cnf is what the private MariaDB runs with.

- `make run`'s database (scripts/stack.sh with nothing added, as run.sh
  starts it) serves every setting the file names, also on a var/ made
  before the file existed (its 96 MB redo log is resized to the file's);
- a test stack serves the file too, but for max_connections, which the
  harness raises on purpose (tests run wider than one control plane);
- the file is sized for a 1 GB host: a pool of at most 128 MB, durable
  commits, no performance schema.
test_standalone checks the same on a real `make run`."""
import os
import pwd
import subprocess
import unittest

from harness import mariadb_cnf
from harness.stack import Stack, TEST_MARIADB_ARGS


class MariadbConfigTest(unittest.TestCase):
    def test_file_is_for_a_small_host(self):
        want = mariadb_cnf.settings()
        self.assertLessEqual(int(want["innodb_buffer_pool_size"]), 128 << 20)
        self.assertEqual(want["innodb_flush_log_at_trx_commit"], "1")
        self.assertEqual(want["performance_schema"], "0")
        self.assertLess(int(want["max_connections"]), 1000)
        with open(mariadb_cnf.CNF) as f:
            text = f.read()
        # Server policy only: the installed host copies it beside Debian's
        # files, which own the paths.
        for path_option in ("datadir", "socket", "port", "pid", "bind", "log_error",
                            "log-error", "tmpdir"):
            self.assertNotIn("\n%s" % path_option, text)

    def test_make_run_database_serves_the_file(self):
        s = Stack("mariadb-cnf", workers=False)
        s.mariadb_args = ""  # as run.sh: nothing but the file
        try:
            # A var/ from before the file: initialised the old way.
            os.makedirs(os.path.join(s.var, "log"))
            subprocess.run(["mariadb-install-db", "--no-defaults",
                            "--datadir=" + os.path.join(s.var, "mysql"),
                            "--user=" + pwd.getpwuid(os.getuid()).pw_name,
                            "--auth-root-authentication-method=normal", "--skip-test-db"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            s.stack("db-start")
            want = mariadb_cnf.settings()
            sock = os.path.join(s.var, "run", "mysqld.sock")
            self.assertEqual(mariadb_cnf.server(sock, list(want)), want)
            self.assertEqual(os.path.getsize(os.path.join(s.var, "mysql", "ib_logfile0")),
                             int(want["innodb_log_file_size"]))
            with open(os.path.join("/proc", str(s.pid("mysqld")), "cmdline"), "rb") as f:
                argv = f.read().split(b"\0")
            self.assertEqual(argv[1], b"--defaults-file=" + mariadb_cnf.CNF.encode())
            self.assertNotIn(b"--no-defaults", argv)
        finally:
            s.stack("db-stop", check=False)
            s.cleanup()

    def test_test_stack_raises_only_max_connections(self):
        s = Stack("mariadb-cnf-test", workers=False)
        # A test's own options come after the harness's (test_db_tls's TCP).
        s.extra_env = {"EPHEMERA_MARIADB_ARGS": "--max-allowed-packet=32M"}
        try:
            s.stack("db-start")
            want = mariadb_cnf.settings()
            self.assertEqual(TEST_MARIADB_ARGS, "--max-connections=1000")
            want["max_connections"] = "1000"
            want["max_allowed_packet"] = str(32 << 20)
            sock = os.path.join(s.var, "run", "mysqld.sock")
            self.assertEqual(mariadb_cnf.server(sock, list(want)), want)
        finally:
            s.stack("db-stop", check=False)
            s.cleanup()


if __name__ == "__main__":
    unittest.main()
