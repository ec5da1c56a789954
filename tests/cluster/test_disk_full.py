"""Issue 19: the disk under var/ fills up. The stack's var_dir (MariaDB's
datadir, logs, sockets, nginx's files) is a small ext4 filesystem in a
file, loop-mounted for this test; a filler file takes every free block.
Deliveries then answer 503 and leave nothing behind (no delivery row, no
environment, no job: the transaction is all or nothing); once the filler
is gone, new deliveries and GitHub's redelivery of a refused one are
recorded, and the database is none the worse."""
import os
import shutil
import subprocess
import unittest

from harness import events
from harness.stack import Stack, wait_until

SIZE_MB = 320


def can_loop_mount():
    return os.geteuid() == 0 and shutil.which("mkfs.ext4") and os.path.exists("/dev/loop-control")


@unittest.skipUnless(can_loop_mount(), "needs root, mkfs.ext4 and loop devices")
class DiskFullTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = Stack("diskfull", workers=False)
        s = cls.s
        cls.image = os.path.join(s.dir, "var.img")
        subprocess.run(["truncate", "-s", "%dM" % SIZE_MB, cls.image], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-m", "0", cls.image], check=True)
        os.makedirs(s.var)
        subprocess.run(["mount", "-o", "loop", cls.image, s.var], check=True)
        # The redo log's default (96 MB) would take a third of the disk.
        s.extra_env = {"EPHEMERA_MARIADB_ARGS": "--innodb-log-file-size=16M"}
        try:
            s.up()
        except BaseException:
            cls.unmount()
            s.cleanup()
            raise
        s.allow_log(r"event=db_error errno=1114 |event=webhook_not_recorded |"
                    r"event=db_error errno=(1030|3|28) ",
                    "the test fills the disk")

    @classmethod
    def unmount(cls):
        subprocess.run(["umount", "-l", cls.s.var], check=False)

    @classmethod
    def tearDownClass(cls):
        s = cls.s
        s.down()
        reports = s.sanitizer_reports()
        cls.unmount()
        s.cleanup()
        assert not reports, "sanitizer reports:\n" + "\n".join(reports)

    def deliver(self, pr, guid, sha="%040x" % 1):
        body, headers = events.signed(self.s.secret, "pull_request",
                                      events.pull_request("opened", "acme/full", pr, sha),
                                      delivery=guid)
        r = self.s.post("/webhook", body, headers)
        return r.status, r.text

    def fill(self):
        """A file that takes every free block (root may use them all: the
        filesystem was made with no reserve)."""
        path = os.path.join(self.s.var, "filler")
        st = os.statvfs(self.s.var)
        size = max(0, (st.f_bavail - 64) * st.f_frsize)
        subprocess.run(["fallocate", "-l", str(size), path], check=True)
        try:
            with open(path, "ab") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
                    os.fsync(f.fileno())
        except OSError:  # ENOSPC: full, as wanted
            pass
        return path

    def count(self, table, where):
        return int(self.s.sql("SELECT COUNT(*) FROM %s WHERE %s" % (table, where))[0][0])

    def test_full_disk_refuses_cleanly_and_recovers(self):
        self.assertEqual(self.deliver(1, "full-before")[0], 202)
        filler = self.fill()
        self.assertLess(os.statvfs(self.s.var).f_bavail, 64)
        # InnoDB fills the free room of pages it already has, then cannot
        # extend its files: from then on every delivery is refused.
        refused, first_refused = [], None
        for i in range(2, 20000):
            status, text = self.deliver(i, "full-%d" % i)
            if status == 503:
                refused.append(i)
                first_refused = first_refused or i
                if len(refused) >= 20:
                    break
            else:
                self.assertEqual(status, 202, text)
        self.assertEqual(len(refused), 20, "the full disk never refused a delivery")
        self.assertEqual(text, "database unavailable\n")
        print("\n    disk full: %d deliveries recorded in pages InnoDB already had, then "
              "503 (%d refused)" % (first_refused - 2, len(refused)))
        # Nothing half-written for what was refused.
        prs = ",".join(map(str, refused))
        guids = ",".join("'full-%d'" % i for i in refused)
        self.assertEqual(self.count("deliveries", "guid IN (%s)" % guids), 0)
        self.assertEqual(self.count("environments", "repo = 'acme/full' AND pr IN (%s)"
                                    % prs), 0)
        self.assertEqual(self.count("jobs", "env_id IN (SELECT id FROM environments "
                                            "WHERE repo = 'acme/full' AND pr IN (%s))" % prs), 0)
        # (The fcgi-app's log says errno=1114 when it can: the log is on
        # the same full disk, so the line is lost as often as not.)
        # Space returns: GitHub's redelivery of a refused one is recorded,
        # and so is a new one; the database checks out.
        os.unlink(filler)
        status, text = self.deliver(refused[0], "full-%d" % refused[0])
        self.assertEqual(status, 202, text)
        self.assertEqual(self.deliver(50000, "full-after")[0], 202)
        self.assertEqual(self.count("deliveries", "guid IN ('full-%d', 'full-after')"
                                    % refused[0]), 2)
        self.assertEqual(self.count("jobs", "env_id IN (SELECT id FROM environments WHERE "
                                            "repo = 'acme/full' AND pr = %d)" % refused[0]), 1)
        check = self.s.sql("CHECK TABLE deliveries, environments, jobs")
        self.assertEqual([r[3] for r in check if r[2] == "status"], ["OK"] * 3, check)
        self.assertTrue(wait_until(lambda: self.s.get("/healthz").status == 200, timeout=10))


if __name__ == "__main__":
    unittest.main()
