"""The database as a worker host on another machine reaches it: over TCP
with TLS (database.tls_ca_file, the server's certificate verified), as the
two users README.md's "Database users and TLS" creates with exactly its
grants: `migrate` as ephemera_migrate, the FastCGI app and the workers as
ephemera, which can do no DDL. The private MariaDB serves TCP on
127.0.0.1 only, with a CA this test makes, and refuses plaintext."""
import os
import secrets
import subprocess
import unittest

from harness import events
from harness.dbtls import make_ca, make_server_cert, readme_grants, secret_file
from harness.stack import ROOT, Stack, free_port, wait_until
from test_local import Repo

REPO = "acme/tls"


class DatabaseTlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        subprocess.run([os.path.join(ROOT, "examples", "busybox-image.sh")], check=True)
        cls.db_port = free_port()
        cls.app_pw = secrets.token_urlsafe(18)
        cls.migrate_pw = secrets.token_urlsafe(18)
        cls.s = Stack("dbtls", {"workers.count": 2})
        d = cls.s.dir
        ca_key, ca_cert = make_ca(d, "ca")
        make_ca(d, "other-ca")
        make_server_cert(d, ca_key, ca_cert)
        cls.s.settings.update({
            "database.host": "127.0.0.1", "database.port": cls.db_port,
            "database.tls_ca_file": os.path.join(d, "ca.pem"),
            "database.user": "ephemera",
            "database.password_file": secret_file(d, "db-password", cls.app_pw),
            "database.migrate_user": "ephemera_migrate",
            "database.migrate_password_file": secret_file(d, "db-migrate-password",
                                                          cls.migrate_pw),
        })
        cls.s.extra_env = {
            "EPHEMERA_PRIVATE_DB": "1",
            "EPHEMERA_MARIADB_ARGS": " ".join([
                "--skip-networking=0", "--bind-address=127.0.0.1",
                "--port=%d" % cls.db_port, "--require-secure-transport=ON",
                "--ssl-ca=%s/ca.pem" % d, "--ssl-cert=%s/server.pem" % d,
                "--ssl-key=%s/server-key.pem" % d]),
        }
        cls.repo = Repo(d, REPO)
        cls.s.extra = 'repos = ({ name = "%s"; source = "%s"; });\n' % (REPO, cls.repo.path)
        cls.s.write_config()
        try:
            cls.s.stack("db-start")
            cls.s.sql(readme_grants().replace("MIGRATE_PASSWORD", cls.migrate_pw)
                      .replace("APP_PASSWORD", cls.app_pw))
            cls.s.up()
        except Exception:
            cls.s.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.s.down()
        reports = cls.s.sanitizer_reports()
        cls.s.cleanup()
        assert not reports, "sanitizer reports:\n" + "\n".join(reports)

    def client(self, user, password, sql, tls=True):
        """The mariadb client over TCP as `user` (password through the
        environment, not argv)."""
        args = ["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", str(self.db_port),
                "-u", user, "-N", "-B", "ephemera", "-e", sql]
        args += (["--ssl-ca=%s/ca.pem" % self.s.dir, "--ssl-verify-server-cert"] if tls
                 else ["--skip-ssl"])
        return subprocess.run(args, env=dict(os.environ, MYSQL_PWD=password),
                              capture_output=True, text=True, timeout=30)

    def env(self, pr):
        for e in self.s.get("/api/v1/environments").json():
            if e["repo"] == REPO and e["pr"] == pr:
                return e
        return None

    def deliver(self, payload):
        body, headers = events.signed(self.s.secret, "pull_request", payload)
        r = self.s.post("/webhook", body, headers)
        self.assertEqual(r.status, 202, r.text)

    def test_a_preview_through_tls_as_the_app_user(self):
        # migrate ran as ephemera_migrate: the schema is there.
        self.assertIn("migrations applied", self.s.log("migrate"))
        sha = self.repo.commit("over TLS")
        self.deliver(events.pull_request("opened", REPO, 1, sha))
        e = wait_until(lambda: (self.env(1) or {}).get("phase") == "ready" and self.env(1),
                       timeout=180, interval=0.3)
        self.assertTrue(e, "%r\n%s" % (self.env(1), self.s.logs()[-5000:]))
        self.assertEqual(self.s.get("/").status, 200)
        self.assertEqual(self.s.get("/jobs").status, 200)
        self.deliver(events.pull_request("closed", REPO, 1, sha))
        self.assertTrue(wait_until(lambda: self.env(1)["phase"] == "destroyed", timeout=120),
                        self.env(1))
        # Every session of the app's user (the fcgi-app's and the
        # workers') is encrypted.
        users = self.s.sql("SELECT DISTINCT USER FROM information_schema.PROCESSLIST "
                           "WHERE USER LIKE 'ephemera%'")
        self.assertEqual(users, [["ephemera"]])
        self.assertNotIn("db_connect", "".join(
            l for l in self.s.log("workers").splitlines() if "level=error" in l))

    def test_app_user_has_no_ddl_and_no_plaintext(self):
        r = self.client("ephemera", self.app_pw, "SELECT COUNT(*) FROM jobs")
        self.assertEqual(r.returncode, 0, r.stderr)
        for ddl in ("DROP TABLE jobs", "CREATE TABLE x (a INT)",
                    "ALTER TABLE jobs ADD COLUMN x INT", "SELECT COUNT(*) FROM mysql.user"):
            r = self.client("ephemera", self.app_pw, ddl)
            self.assertNotEqual(r.returncode, 0, ddl)
            self.assertRegex(r.stderr, r"denied", ddl)
        r = self.client("ephemera", self.app_pw, "SELECT 1", tls=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stderr, r"(?i)secure transport|ssl|denied")

    def test_server_certificate_verified(self):
        # The same configuration with another CA: refused, and said so.
        other = os.path.join(self.s.dir, "other.conf")
        text = open(self.s.config).read().replace(os.path.join(self.s.dir, "ca.pem"),
                                                  os.path.join(self.s.dir, "other-ca.pem"))
        with open(other, "w") as f:
            f.write(text.replace("database: {\n", "database: {\n  connect_timeout = 2;\n", 1))
        r = subprocess.run([os.path.join(self.s.bin, "ephemera"), "-c", other, "resync"],
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("event=db_connect", r.stderr)
        self.assertIn("tls=on", r.stderr)
        line = [l for l in r.stderr.splitlines() if "event=db_connect" in l][-1]
        print("another CA: " + line)
        self.assertRegex(line, r"(?i)message=.*(certificate|verif)")
        for pw in (self.app_pw, self.migrate_pw):
            self.assertNotIn(pw, r.stderr)


if __name__ == "__main__":
    unittest.main()
