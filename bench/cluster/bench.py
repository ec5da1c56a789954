"""Cluster bench: the scaling curve of the queue across worker hosts.

A database host and three worker hosts, each its own network namespace
(tests/harness/cluster.py), the workers on TCP with TLS as the app user,
release builds, durability on. For 1, 2 and 3 hosts, the same number of
no-op jobs is drained by the bare SKIP LOCKED loop (bench/queue/bare.c,
workers.count copies per host, from inside the same namespaces) and by the
hosts' ephemera-workers, alternately. Both record each run in noop_runs
inside the transaction that acks the job.

Beside each figure, what the database did per job, read from the server
and the kernel over the same interval rather than guessed: MariaDB's CPU
(its /proc stat), the whole machine's CPU (/proc/stat), statements
(Questions), fsyncs and row lock waits (SHOW GLOBAL STATUS)."""
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from harness.cluster import DB_PORT, Cluster, have_netns  # noqa: E402
from harness.stack import cpu_seconds, wait_until  # noqa: E402

BARE = os.path.join(ROOT, "build", "bench", "queue_bare")
JOBS = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 1
PER_HOST = 4
CORES = os.cpu_count()
STATUS = ("Questions", "Innodb_data_fsyncs", "Innodb_row_lock_waits",
          "Innodb_row_lock_time")


def machine_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


class Probe:
    """The database's and the machine's counters over one drain."""

    def __init__(self, c):
        self.c = c
        self.pid = int(open(os.path.join(c.db.var, "run", "mysqld.pid")).read())

    def sample(self):
        st = dict((k, int(v)) for k, v in self.c.sql(
            "SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
            "WHERE VARIABLE_NAME IN (%s)" % ",".join("'%s'" % s.upper() for s in STATUS)))
        return (time.monotonic(), cpu_seconds([self.pid]), machine_busy(),
                {k: st.get(k.upper(), 0) for k in STATUS})

    def delta(self, a, b, jobs):
        wall = b[0] - a[0]
        return {
            "db_cpu": 100 * (b[1] - a[1]) / wall,
            "machine": 100 * (b[2] - a[2]) / wall / CORES,
            "stmts": (b[3]["Questions"] - a[3]["Questions"]) / jobs,
            "fsyncs": (b[3]["Innodb_data_fsyncs"] - a[3]["Innodb_data_fsyncs"]) / jobs,
            "waits": (b[3]["Innodb_row_lock_waits"] - a[3]["Innodb_row_lock_waits"]) / jobs,
            "wait_ms": b[3]["Innodb_row_lock_time"] - a[3]["Innodb_row_lock_time"],
        }


def rate(c, tag):
    n, span = c.sql("SELECT COUNT(*), TIMESTAMPDIFF(MICROSECOND, MIN(started_at), "
                    "MAX(finished_at)) FROM jobs WHERE state = 'done' AND %s"
                    % c.where(tag))[0]
    jobs, lost, twice, _ = c.tally(tag)
    assert int(n) == jobs == JOBS and lost == 0 and twice == 0, (n, jobs, lost, twice)
    return int(n) / (int(span) / 1e6)


def run_bare(c, k):
    tag = c.add_jobs(JOBS)
    procs = []
    for h in c.hosts[:k]:
        env = dict(os.environ, BARE_TLS_CA=os.path.join(c.db.dir, "ca.pem"),
                   BARE_USER="ephemera",
                   BARE_PASSWORD_FILE=os.path.join(h.stack.dir, "db-password"))
        for _ in range(PER_HOST):
            procs.append(subprocess.Popen(
                h.exec_argv([BARE, "tcp:%s:%d" % (h.db_addr, DB_PORT), "loop"]),
                env=env, stdout=subprocess.DEVNULL))
    for p in procs:
        assert p.wait(timeout=900) == 0, "bare loop failed"
    return tag


def run_pool(c, k):
    tag = c.add_jobs(JOBS)
    for h in c.hosts[:k]:
        h.start()
    try:
        assert wait_until(lambda: c.drained(tag), timeout=900, interval=0.2), \
            "the pool did not drain the queue"
    finally:
        for h in c.hosts[:k]:
            h.stop()
    return tag


def measure(c, probe, fn, k):
    a = probe.sample()
    tag = fn(c, k)
    b = probe.sample()
    return rate(c, tag), probe.delta(a, b, JOBS)


def median(xs):
    return sorted(xs)[len(xs) // 2]


def main():
    if not have_netns():
        print("cluster: needs root and iproute2 (network namespaces); not run")
        return 1
    c = Cluster("bench-cluster", hosts=3, settings={
        "workers.count": PER_HOST, "workers.lease_seconds": 30,
        "workers.poll_interval_ms": 20, "workers.poll_max_ms": 300})
    c.up()
    try:
        return run(c)
    finally:
        c.down()


def run(c):
    probe = Probe(c)
    print("cluster: %d no-op jobs per run, %d workers per host, TCP+TLS as the app user, "
          "durability on, %d round(s), bare and pool alternating; %d cores shared by "
          "every host and the database" % (JOBS, PER_HOST, ROUNDS, CORES))
    print("%-6s %11s %11s %6s | %7s %8s %10s %11s %11s" % (
        "hosts", "bare job/s", "pool job/s", "ratio", "db cpu", "machine",
        "stmts/job", "fsyncs/job", "lockwait/job"))
    curve = {}
    for k in (1, 2, 3):
        bare, pool, seen = [], [], {}
        for r in range(ROUNDS):
            order = (run_bare, run_pool) if r % 2 == 0 else (run_pool, run_bare)
            for fn in order:
                jobs_s, d = measure(c, probe, fn, k)
                (bare if fn is run_bare else pool).append(jobs_s)
                seen[fn.__name__] = d
        d = seen["run_pool"]
        curve[k] = (median(bare), median(pool), d, seen["run_bare"])
        print("%-6d %11.0f %11.0f %5.0f%% | %6.0f%% %7.0f%% %10.1f %11.2f %11.3f" % (
            k, median(bare), median(pool), 100 * median(pool) / median(bare),
            d["db_cpu"], d["machine"], d["stmts"], d["fsyncs"], d["waits"]))
        sys.stdout.flush()
    print("  db cpu: MariaDB's CPU as %% of one core; machine: all %d cores busy; "
          "the columns right of | are the pool's runs" % CORES)
    flat = None
    for k in (2, 3):
        gain = curve[k][1] / curve[k - 1][1] - 1
        print("  %d → %d hosts: pool %+.0f%%, bare %+.0f%%" % (
            k - 1, k, 100 * gain, 100 * (curve[k][0] / curve[k - 1][0] - 1)))
        if flat is None and gain < 0.10:
            flat = k
    if flat is None:
        print("cluster: no flattening up to 3 hosts")
        return 0
    d = curve[flat][2]
    # The dominant limit first, then the rest of what was measured.
    if d["machine"] > 85:
        lead = "this machine's CPU (every host and the database share it)"
    elif d["waits"] > 0.05:
        lead = "row lock waits"
    elif d["db_cpu"] > 80:
        lead = "MariaDB's CPU"
    else:
        lead = "round trips and commits"
    why = ("%s: machine %.0f%% of %d cores busy, MariaDB %.0f%% of a core, %.1f statements, "
           "%.2f fsyncs and %.3f row lock waits (%d ms) per job"
           % (lead, d["machine"], CORES, d["db_cpu"], d["stmts"], d["fsyncs"], d["waits"],
              d["wait_ms"]))
    print("cluster: flattens at %d hosts (pool %.0f jobs/s, bare %.0f); limited by %s"
          % (flat, curve[flat][1], curve[flat][0], why))
    return 0


if __name__ == "__main__":
    sys.exit(main())
