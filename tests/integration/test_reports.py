"""`ephemera report` over the views of migration 013, against seeded rows
with known answers: a week and months that cross a year, hostile text in
errors and author names (CSV must parse back, the table must align and
stay one line per row)."""

import csv
import io
import os
import subprocess
import unittest

from harness.stack import ROOT, Stack

CLI = os.path.join(ROOT, "build", "asan", "bin", "ephemera")
SHA = "a" * 40
HOSTILE_ERROR = 'compose up failed: "x", then\nexit 1'
HOSTILE_AUTHOR = "o'brien, jr\x1b[31m"


class ReportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = Stack("reports", workers=False)
        try:
            cls.s.up()
            cls.seed()
        except Exception:
            cls.s.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.s.cleanup()

    @classmethod
    def seed(cls):
        sql = cls.s.sql
        # Three PRs of a/x in the week starting Monday 2026-12-28 (one of
        # them in 2027), ready after 10, 20 and 40 s; one of b/y the week
        # before; one never ready (not counted).
        envs = [(1, "a/x", "2026-12-28 10:00:00", 10, "alice"),
                (2, "a/x", "2026-12-31 23:59:50", 20, "alice"),
                (3, "a/x", "2027-01-01 00:00:05", 40, HOSTILE_AUTHOR),
                (4, "b/y", "2026-12-21 09:00:00", 5, "bob"),
                (5, "b/y", "2026-12-22 09:00:00", None, "bob")]
        for pr, repo, at, ready, author in envs:
            sql("INSERT INTO environments (repo, pr, slug, author, created_at) VALUES "
                "('%s', %d, 'pr-%d-r', '%s', '%s')"
                % (repo, pr, pr, author.replace("'", "''"), at))
            env = int(sql("SELECT id FROM environments WHERE pr = %d" % pr)[0][0])
            status = "succeeded" if ready is not None else "failed"
            sql("INSERT INTO builds (env_id, sha, status, started_at, finished_at) VALUES "
                "(%d, '%s', '%s', '%s', '%s' + INTERVAL %d SECOND)"
                % (env, SHA, status, at, at, ready if ready is not None else 30))
        build = int(sql("SELECT MIN(id) FROM builds")[0][0])
        # Steps: `up` in December 2026 fails three times in four, twice
        # with the hostile text; January 2027 has one good `up`.
        steps = [("up", "failed", HOSTILE_ERROR, "2026-12-28 10:00:01"),
                 ("up", "failed", HOSTILE_ERROR, "2026-12-29 10:00:01"),
                 ("up", "failed", "another", "2026-12-30 10:00:01"),
                 ("up", "succeeded", None, "2026-12-31 10:00:01"),
                 ("fetch", "succeeded", None, "2026-12-31 10:00:00"),
                 ("up", "succeeded", None, "2027-01-01 00:00:06")]
        for name, status, detail, at in steps:
            sql("INSERT INTO build_steps (build_id, name, status, detail, started_at, "
                "finished_at) VALUES (%d, '%s', '%s', %s, '%s', '%s')"
                % (build, name, status,
                   "'%s'" % detail.replace("'", "''").replace("\n", "\\n") if detail
                   else "NULL", at, at))
        # Jobs in the hour 2027-01-01 10:00: one done after a 2 s wait and
        # 3 s of work, one dead after a 4 s wait; one the hour after.
        jobs = [("reconcile", "done", "10:15:00", "10:15:02", "10:15:05"),
                ("reconcile", "dead", "10:20:00", "10:20:04", "10:20:05"),
                ("notify", "done", "11:00:00", "11:00:00", "11:00:01")]
        for kind, state, run, start, end in jobs:
            sql("INSERT INTO jobs (kind, state, created_at, run_at, started_at, finished_at) "
                "VALUES ('%s', '%s', '2027-01-01 %s', '2027-01-01 %s', '2027-01-01 %s', "
                "'2027-01-01 %s')" % (kind, state, run, run, start, end))

        # Compute runs (migration 016): one across the new year, one
        # stopped and started across midnight, an open one since November.
        runs = [(1, "2026-12-31 22:00:00", "2027-01-01 02:00:00", 0.5),
                (2, "2027-01-01 23:00:00", "2027-01-02 01:00:00", 0.5),
                (2, "2027-01-02 03:00:00", "2027-01-02 04:00:00", 0.5),
                (4, "2026-12-10 00:00:00", "2026-12-10 06:00:00", 0.25),
                (5, "2026-11-30 23:00:00", None, 0.25)]
        for pr, start, stop, price in runs:
            sql("INSERT INTO env_runs (env_id, started_at, stopped_at, hourly_price) "
                "SELECT id, '%s', %s, %s FROM environments WHERE pr = %d"
                % (start, "'%s'" % stop if stop else "NULL", price, pr))

    def report(self, *args, rc=0):
        p = subprocess.run([CLI, "-c", self.s.config, "report"] + list(args),
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, rc, p.stdout + p.stderr)
        return p.stdout

    def rows(self, name, *args):
        return list(csv.reader(io.StringIO(self.report(name, "--csv", *args), newline="")))

    def test_list(self):
        names = [l.split()[0] for l in self.report().splitlines()]
        self.assertEqual(names, ["time_to_ready", "step_failures", "queue_health", "authors",
                                 "cost"])
        self.assertIn("no report", subprocess.run(
            [CLI, "-c", self.s.config, "report", "nope"], capture_output=True,
            text=True).stderr)
        self.report("authors", "--since", "yesterday", rc=2)

    def test_time_to_ready_across_the_new_year(self):
        rows = self.rows("time_to_ready")
        self.assertEqual(rows[0], ["period", "repo", "prs", "p50_seconds", "p95_seconds"])
        self.assertEqual(rows[1:], [["2026-12-21", "b/y", "1", "5.0", "5.0"],
                                    # 10, 20, 40: p95 = 20 + 0.9 * 20
                                    ["2026-12-28", "a/x", "3", "20.0", "38.0"]])
        self.assertEqual(self.rows("time_to_ready", "--since", "2026-12-28")[1:],
                         [["2026-12-28", "a/x", "3", "20.0", "38.0"]])

    def test_step_failures_with_hostile_text(self):
        rows = self.rows("step_failures")
        self.assertEqual(rows[0], ["period", "step", "runs", "failed", "failed_pct",
                                   "commonest_error"])
        self.assertEqual(rows[1:], [["2026-12-01", "up", "4", "3", "75.0", HOSTILE_ERROR],
                                    ["2026-12-01", "fetch", "1", "0", "0.0", ""],
                                    ["2027-01-01", "up", "1", "0", "0.0", ""]])
        # The table: one line per row, columns where the header puts them.
        lines = self.report("step_failures").splitlines()
        self.assertEqual(len(lines), 4)
        at = lines[0].index("commonest_error")
        self.assertEqual(lines[1][at:], HOSTILE_ERROR.replace("\n", "?"))
        for l in lines[1:]:
            self.assertEqual(l[lines[0].index("failed_pct") - 1], " ")

    def test_queue_health(self):
        rows = self.rows("queue_health", "--since", "2027-01-01")
        self.assertEqual(rows[0][:4], ["period", "kind", "jobs", "done"])
        self.assertEqual(rows[1], ["2027-01-01 10:00:00", "reconcile", "2", "1", "1", "0",
                                   "3.000", "4.000", "2.000"])
        self.assertEqual(rows[2][:4], ["2027-01-01 11:00:00", "notify", "1", "1"])

    def test_authors(self):
        rows = self.rows("authors")
        self.assertEqual(rows[0], ["period", "author", "prs", "builds", "failed_builds",
                                   "build_hours"])
        by = {(r[0], r[1]): r[2:] for r in rows[1:]}
        self.assertEqual(by[("2026-12-01", "alice")], ["2", "2", "0", "0.01"])
        self.assertEqual(by[("2026-12-01", "bob")], ["2", "2", "1", "0.01"])
        self.assertEqual(by[("2027-01-01", HOSTILE_AUTHOR)], ["1", "1", "0", "0.01"])
        # In the table the escape is shown as '?', on one line.
        table = self.report("authors")
        self.assertNotIn("\x1b", table)
        self.assertIn("o'brien, jr?[31m", table)

    def test_cost_cut_at_month_ends(self):
        rows = self.rows("cost")
        self.assertEqual(rows[0], ["period", "repo", "environments", "hours", "cost"])
        self.assertEqual(rows[1], ["2026-11-01", "b/y", "1", "1.00", "0.25"])
        # December: b/y's 6 h plus the open run up to now; a/x's first 2 h.
        self.assertEqual(rows[2][:3], ["2026-12-01", "b/y", "2"])
        self.assertGreaterEqual(float(rows[2][3]), 6 + 48)
        self.assertEqual(rows[3], ["2026-12-01", "a/x", "1", "2.00", "1.00"])
        # January: 2 h after the new year, then 2 h over a midnight, and
        # the hour after a stop; the stopped two hours between cost nothing.
        self.assertEqual(rows[4], ["2027-01-01", "a/x", "2", "5.00", "2.50"])
        self.assertEqual(len(rows), 5, rows)


if __name__ == "__main__":
    unittest.main()
