"""Queue bench: a private release-build stack (MariaDB with durability on,
as in production) without its worker pool; then, for 1, 4 and 8 workers,
the same number of no-op jobs drained by the bare SQL loop (bare.c) and by
ephemera-workers, alternately. Throughput for both is read from the
database the same way: jobs / (last finished_at - first started_at). Both
record each execution in noop_runs, which is how double claims are
counted. Dispatch latency is jobs.started_at (the claim) minus
jobs.created_at (the enqueue) for jobs enqueued one at a time, 5-30 ms
apart, by a client that nudges the workers after each COMMIT, with the
pool idle and its poll interval backed off."""
import json
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from harness.stack import Stack, wait_until  # noqa: E402

BARE = os.path.join(ROOT, "build", "bench", "queue_bare")
WORKERS = os.path.join(ROOT, "bin", "ephemera-workers")
JOBS = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
# BENCH_WORKERS="4": only some worker counts (the summary needs 4).
COUNTS = [int(x) for x in os.environ.get("BENCH_WORKERS", "1 4 8").split()]
LATENCY = os.environ.get("BENCH_LATENCY", "1") == "1"
LATENCY_JOBS = 300


def main():
    s = Stack("bench-queue", {"workers.lease_seconds": 60}, asan=False, workers=False)
    try:
        s.up()
        run(s)
    finally:
        s.cleanup()


def batch(s, n, payload=None):
    batch.n = getattr(batch, "n", 0) + 1
    tag = "bench%d" % batch.n
    p = json.dumps(dict(payload or {}, batch=tag))
    s.sql("INSERT INTO jobs (kind, payload) SELECT 'noop', '%s' FROM seq_1_to_%d" % (p, n))
    return tag


def where(tag):
    return "payload LIKE '%%\"%s\"%%'" % tag


def result(s, tag):
    n, span = s.sql("SELECT COUNT(*), TIMESTAMPDIFF(MICROSECOND, MIN(started_at), "
                    "MAX(finished_at)) FROM jobs WHERE state = 'done' AND %s" % where(tag))[0]
    runs, distinct = s.sql("SELECT COUNT(*), COUNT(DISTINCT r.job_id) FROM noop_runs r "
                           "JOIN jobs j ON j.id = r.job_id WHERE j.%s" % where(tag))[0]
    return int(n) / (int(span) / 1e6), int(runs) - int(distinct), int(n)


def pending(s, tag):
    return int(s.sql("SELECT COUNT(*) FROM jobs WHERE state <> 'done' AND %s" % where(tag))[0][0])


def run_bare(s, workers):
    tag = batch(s, JOBS)
    sock = os.path.join(s.var, "run", "mysqld.sock")
    procs = [subprocess.Popen([BARE, sock, "loop"], stdout=subprocess.DEVNULL)
             for _ in range(workers)]
    for p in procs:
        p.wait(timeout=600)
    return result(s, tag)


def start_pool(s, workers, extra=None):
    s.settings["workers.count"] = workers
    s.settings.update(extra or {})
    s.write_config()
    log = open(os.path.join(s.var, "log", "bench-workers.log"), "a")
    p = subprocess.Popen([WORKERS, "-c", s.config], stdout=log, stderr=log,
                         start_new_session=True)
    log.close()
    return p


def stop_pool(p):
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=60)


def run_pool(s, workers):
    tag = batch(s, JOBS)
    p = start_pool(s, workers)
    try:
        ok = wait_until(lambda: pending(s, tag) == 0, timeout=600, interval=0.2)
        assert ok, "the pool did not drain the queue"
    finally:
        stop_pool(p)
    return result(s, tag)


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def latency(s, nudge):
    p = start_pool(s, 4)
    try:
        time.sleep(3.0)  # idle: the poll interval has backed off
        wake = os.path.join(s.var, "run", "wake.sock" if nudge else "nowhere.sock")
        before = int(s.sql("SELECT IFNULL(MAX(id), 0) FROM jobs")[0][0])
        n = LATENCY_JOBS if nudge else LATENCY_JOBS // 5
        subprocess.run([BARE, os.path.join(s.var, "run", "mysqld.sock"), "enqueue",
                        str(n), wake], check=True)
        wait_until(lambda: s.sql("SELECT COUNT(*) FROM jobs WHERE id > %d AND state = "
                                 "'done'" % before)[0][0] == str(n), timeout=60)
        rows = s.sql("SELECT TIMESTAMPDIFF(MICROSECOND, created_at, started_at) FROM jobs "
                     "WHERE id > %d AND started_at IS NOT NULL" % before)
    finally:
        stop_pool(p)
    ms = [int(r[0]) / 1000.0 for r in rows]
    return percentile(ms, 0.5), percentile(ms, 0.99), len(ms)


def median(xs):
    return sorted(xs)[len(xs) // 2]


def run(s):
    print("queue: %d no-op jobs per run, each recorded in noop_runs; durability on; "
          "%d rounds per worker count, bare and pool alternating, medians shown"
          % (JOBS, ROUNDS))
    print("%-8s %14s %14s %7s %8s" % ("workers", "bare jobs/s", "pool jobs/s", "ratio",
                                      "doubles"))
    ratios, total_doubles = {}, 0
    for n in COUNTS:
        bare, pool, doubles = [], [], 0
        for r in range(ROUNDS):
            # Alternate who goes first so drift in the machine's load
            # does not favour one side.
            order = (run_bare, run_pool) if r % 2 == 0 else (run_pool, run_bare)
            for fn in order:
                rate, dup, done = fn(s, n)
                assert done == JOBS
                doubles += dup
                (bare if fn is run_bare else pool).append(rate)
        ratios[n] = median(pool) / median(bare)
        total_doubles += doubles
        print("%-8d %14.0f %14.0f %6.0f%% %8d" % (n, median(bare), median(pool),
                                                 100 * ratios[n], doubles))
        sys.stdout.flush()
    if not LATENCY:
        return
    p50, p99, n = latency(s, nudge=True)
    print("dispatch latency, enqueue → claim, 4 idle workers, nudged: "
          "p50 %.1f ms, p99 %.1f ms (%d jobs; goal p99 < 50 ms)" % (p50, p99, n))
    q50, q99, m = latency(s, nudge=False)
    print("  baseline without the nudge (remote workers: polling, "
          "workers.poll_interval_ms 200 backing off toward poll_max_ms): "
          "p50 %.1f ms, p99 %.1f ms (%d jobs)" % (q50, q99, m))
    print("queue: pool/bare throughput at 4 workers %.0f%% (goal >= 90%%), "
          "dispatch p99 %.1f ms, double claims %d in %d jobs"
          % (100 * ratios[4], p99, total_doubles, JOBS * ROUNDS * 6))


if __name__ == "__main__":
    main()
