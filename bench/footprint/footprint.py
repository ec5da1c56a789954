"""bench/footprint: the control plane's memory and idle CPU (issue 20).

A private release-build stack with 8 workers, run twice in one go: with
MariaDB as `make run` starts it (config/mariadb.cnf, sized for a 1 GB
host) and with the flags stack.sh used before that file (OLD_ARGS and
nothing else, as --no-defaults did). Memory is read from /proc: RSS
summed over a program's processes, and PSS (smaps_rollup), which splits
each shared page among the processes mapping it, so forked workers are
not counted eight times for the code they share; for MariaDB also VmRSS
(/proc/PID/status). The workers are the supervisor and its 8 children;
what they run (docker, git, the host script) is a row of its own,
"tools". Idle: after the startup work has settled. Under
load: the peak while wrk posts signed deliveries at 32 connections. Idle
CPU: user+system time each program used over BENCH_IDLE_SECONDS with
nothing to do (busy polling would show here). BENCH_MARIADB=new (or old)
runs one configuration only. Last, the workers after each has called
GitHub (the fake), with workers.recycle_idle_seconds 0 and 5
(BENCH_CALLS=0 skips it).

The floor: bench/footprint/floor.c, a supervisor and 8 children that
link what the workers link (not libcurl or libxml2, which they load at
first use) and set up MariaDB Connector/C, nothing of ours; with that
set up in each child, once before the forks (as the workers' supervisor
does), or not at all: the least the workers can weigh on this stack,
measured in the same run."""
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from harness.stack import Stack, cpu_seconds as cpu, maps_curl, wait_until  # noqa: E402

IDLE = int(os.environ.get("BENCH_IDLE_SECONDS", "60"))
LOAD = int(os.environ.get("BENCH_SECONDS", "10"))
GOALS = {"idle": 40.0, "load": 60.0}  # MB, fcgi-app + workers together
CNF = os.path.join(ROOT, "config", "mariadb.cnf")
# What scripts/stack.sh passed mariadbd with --no-defaults before
# config/mariadb.cnf; an empty defaults file stands for --no-defaults.
OLD_ARGS = ("--skip-name-resolve --innodb-buffer-pool-size=256M "
            "--innodb-flush-log-at-trx-commit=1 --character-set-server=utf8mb4 "
            "--collation-server=utf8mb4_unicode_ci --max-connections=1000")
FLOOR = os.path.join(ROOT, "build", "release", "bench", "footprint", "floor")
FLOORS = (("none", "libraries loaded only"),
          ("child", "Connector/C set up in each child"),
          ("parent", "Connector/C set up before the forks"))
CONFIGS = {"new": ("config/mariadb.cnf", CNF, ""),
           "old": ("former flags", "/dev/null", OLD_ARGS)}


def tree(pid, depth=None):
    """pid and its descendants (to `depth` generations, if given)."""
    out, todo = [], [(pid, 0)]
    while todo:
        p, d = todo.pop()
        out.append(p)
        if depth is not None and d >= depth:
            continue
        try:
            with open("/proc/%d/task/%d/children" % (p, p)) as f:
                todo += [(int(c), d + 1) for c in f.read().split()]
        except OSError:
            pass
    return out


def mem(pids):
    """(RSS MB, PSS MB) summed over pids."""
    rss = pss = 0
    for p in pids:
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                for line in f:
                    k, v = line.split(":", 1)
                    if k == "Rss":
                        rss += int(v.split()[0])
                    elif k == "Pss":
                        pss += int(v.split()[0])
        except OSError:
            pass
    return rss / 1024, pss / 1024


def vmrss(pid):
    """VmRSS of one process, MB."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def groups(s):
    with open(os.path.join(s.var, "run", "mysqld.pid")) as f:
        db = int(f.read())
    sup = s.pid("workers")
    own = tree(sup, depth=1)
    # What the workers run (docker, git, the host script) is theirs to
    # wait for, not their own size: a row of its own.
    return {"fcgi-app": tree(s.pid("fcgi")), "workers": own,
            "tools": [p for p in tree(sup) if p not in own],
            "nginx": tree(s.pid("nginx")), "mariadb": [db]}


def signed_body(s, d):
    with open(os.path.join(ROOT, "tests", "fixtures", "github", "webhooks",
                           "pull_request.opened.json")) as f:
        p = json.load(f)
    p["repository"]["full_name"] = "bench/footprint"
    body = json.dumps(p, separators=(",", ":")).encode()
    path = os.path.join(d, "body.json")
    with open(path, "wb") as f:
        f.write(body)
    return path, "sha256=" + hmac.new(s.secret.encode(), body, hashlib.sha256).hexdigest()


def main():
    which = os.environ.get("BENCH_MARIADB", "both")
    names = ["new", "old"] if which == "both" else [which]
    d = tempfile.mkdtemp(prefix="eph-footprint-")
    results = {}
    try:
        for name in names:
            label, cnf, args = CONFIGS[name]
            s = Stack("bench-footprint-" + name, {"workers.count": 8}, asan=False)
            # The bench's MariaDB is as configured here, not the tests'.
            s.mariadb_args = args
            s.extra_env = {"EPHEMERA_MARIADB_CNF": cnf}
            try:
                s.up()
                results[name] = run(s, d, label)
            finally:
                s.cleanup()
    finally:
        subprocess.run(["rm", "-rf", "--", d])
    compare(results)
    floors(results)
    if os.environ.get("BENCH_CALLS", "1") != "0":
        after_calls()


def after_calls():
    """The workers' RSS before and after each has called GitHub (the
    fake: plain HTTP), and once workers.recycle_idle_seconds has replaced
    them; 0 (never) beside 5 in the same run."""
    from harness.github_fake import GitHubFake
    inst, repo = 77, "bench/calls"
    perms = {"contents": "read", "issues": "write", "pull_requests": "write",
             "deployments": "write", "statuses": "write", "metadata": "read"}
    print("footprint: 8 workers, 40 notify jobs against the GitHub fake, "
          "by workers.recycle_idle_seconds")
    print("%-9s %19s %19s %19s" % ("recycle", "before", "after the calls", "after the wait"))
    for recycle in (0, 5):
        gh = GitHubFake()
        s = Stack("bench-footprint-calls%d" % recycle, dict(gh.settings(), **{
            "workers.count": 8, "workers.recycle_idle_seconds": recycle,
            "github.write_spacing_ms": 0}), asan=False)
        s.mariadb_args = ""
        s.extra_env = {"EPHEMERA_MARIADB_CNF": CNF}
        try:
            s.up()
            gh.configure(installations={str(inst): {"repos": [repo], "permissions": perms}})
            time.sleep(5)
            looks = [workers_look(s)]
            for pr in range(1, 41):
                s.sql("INSERT INTO environments (repo, pr, slug, installation_id, title, "
                      "author, head_ref, head_repo, desired, desired_sha, phase, trusted) "
                      "VALUES ('%s', %d, 'pr-%d-calls', %d, 't', 'a', 'b', '%s', 'running', "
                      "'%040x', 'ready', 1)" % (repo, pr, pr, inst, repo, pr))
                s.sql("INSERT INTO jobs (kind, env_id, max_attempts) SELECT 'notify', id, 5 "
                      "FROM environments WHERE pr = %d" % pr)
            if not wait_until(lambda: s.sql(
                    "SELECT COUNT(*) FROM jobs WHERE kind = 'notify' AND state IN "
                    "('queued', 'running')") == [["0"]], timeout=120):
                raise SystemExit("footprint: the notify jobs did not finish")
            looks.append(workers_look(s))
            time.sleep(recycle + 8)
            looks.append(workers_look(s))
            print("%-9s %s" % (recycle, " ".join(
                "%10.1f MB (%d curl)" % look for look in looks)))
        finally:
            s.cleanup()
            gh.stop()


def workers_look(s):
    """(RSS MB, how many map libcurl) of the workers' own processes."""
    own = tree(s.pid("workers"), depth=1)
    return mem(own)[0], sum(1 for p in own if maps_curl(p))


def floor(where):
    """(RSS MB, PSS MB) of floor.c's tree: a parent and 8 children."""
    p = subprocess.Popen([FLOOR, where, "8"], stdout=subprocess.PIPE, text=True)
    try:
        if p.stdout.readline().strip() != "ready":
            raise SystemExit("footprint: %s %s did not start" % (FLOOR, where))
        return mem(tree(p.pid))
    finally:
        p.terminate()
        p.wait()


def floors(results):
    """The workers' idle memory beside the least this stack allows."""
    print("footprint: the floor, a parent and 8 children linking the workers' "
          "libraries (bench/footprint/floor.c), against the goal for fcgi-app "
          "+ workers of %.0f MB idle" % GOALS["idle"])
    print("%-46s %10s %10s" % ("", "RSS", "PSS"))
    for where, label in FLOORS:
        r, p = floor(where)
        print("%-46s %7.1f MB %7.1f MB" % ("floor: " + label, r, p))
    for name, res in results.items():
        r, p = res["workers"]
        print("%-46s %7.1f MB %7.1f MB" % ("workers idle (MariaDB %s)" % res["label"], r, p))


def server(s):
    """What the stack's MariaDB runs with, and what its data takes."""
    v = s.sql("SELECT @@innodb_buffer_pool_size, @@max_connections, "
              "(SELECT variable_value FROM information_schema.global_status "
              " WHERE variable_name = 'INNODB_BUFFER_POOL_PAGES_DATA') * @@innodb_page_size, "
              "(SELECT SUM(data_length + index_length) FROM information_schema.tables "
              " WHERE table_schema = DATABASE())")[0]
    return {"pool": int(v[0]) / 2**20, "max_connections": int(v[1]),
            "pool_data": float(v[2]) / 2**20, "data": float(v[3] or 0) / 2**20}


def run(s, d, label):
    time.sleep(5)  # startup work (migrations check, first sweep) settles
    g = groups(s)
    idle = {k: mem(v) for k, v in g.items()}
    db_idle = vmrss(g["mariadb"][0])
    c0 = {k: cpu(v) for k, v in g.items()}
    time.sleep(IDLE)
    g = groups(s)
    idle_cpu = {k: 100 * (cpu(v) - c0[k]) / IDLE for k, v in g.items()}

    body, sig = signed_body(s, d)
    peak = {k: (0.0, 0.0) for k in g}
    db_peak = [0.0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            for k, v in groups(s).items():
                r, p = mem(v)
                peak[k] = (max(peak[k][0], r), max(peak[k][1], p))
            db_peak[0] = max(db_peak[0], vmrss(g["mariadb"][0]))
            time.sleep(0.25)
    t = threading.Thread(target=sample)
    t.start()
    r = subprocess.run(["wrk", "-t2", "-c32", "-d%ds" % LOAD, "-s",
                        os.path.join(ROOT, "bench", "footprint", "load.lua"),
                        "http://127.0.0.1:%d/webhook" % s.port],
                       env=dict(os.environ, FOOTPRINT_BODY=body, FOOTPRINT_SIG=sig),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    done.set()
    t.join()
    rate = [line for line in r.stdout.splitlines() if "Requests/sec" in line]
    db = server(s)
    deliveries = s.sql("SELECT COUNT(*) FROM deliveries")[0][0]

    print("footprint: release build, 8 workers, idle %d s, load %d s of wrk at 32 "
          "connections (%s, %s deliveries recorded)"
          % (IDLE, LOAD, rate[0].strip() if rate else "wrk said nothing", deliveries))
    print("footprint: MariaDB with %s (innodb_buffer_pool_size %.0f MB, max_connections %d); "
          "after the load its data is %.1f MB, %.1f MB of it in the pool"
          % (label, db["pool"], db["max_connections"], db["data"], db["pool_data"]))
    print("%-9s %5s %10s %10s %12s %12s %10s" % ("program", "procs", "idle RSS", "idle PSS",
                                                 "load RSS max", "load PSS max", "idle CPU"))
    for k in ("fcgi-app", "workers", "tools", "nginx", "mariadb"):
        print("%-9s %5d %8.1f MB %8.1f MB %10.1f MB %10.1f MB %9.2f%%" % (
            k, len(g[k]), idle[k][0], idle[k][1], peak[k][0], peak[k][1], idle_cpu[k]))
    cp_idle = [idle["fcgi-app"][i] + idle["workers"][i] for i in (0, 1)]
    cp_load = [peak["fcgi-app"][i] + peak["workers"][i] for i in (0, 1)]
    cp_cpu = idle_cpu["fcgi-app"] + idle_cpu["workers"]
    print("footprint: fcgi-app + workers idle RSS %.1f MB, PSS %.1f MB (goal <= %.0f); "
          "under load RSS %.1f MB, PSS %.1f MB (goal <= %.0f); idle CPU %.2f%% of a core; "
          "MariaDB VmRSS idle %.1f MB, under load %.1f MB (%s)"
          % (cp_idle[0], cp_idle[1], GOALS["idle"], cp_load[0], cp_load[1], GOALS["load"],
             cp_cpu, db_idle, db_peak[0], label))
    print()
    return {"label": label, "rss": (db_idle, db_peak[0]), "workers": idle["workers"],
            "pss": (idle["mariadb"][1], peak["mariadb"][1]), "db": db}


def compare(results):
    """MariaDB as `make run` starts it beside the flags it replaced."""
    if len(results) < 2:
        return
    new, old = results["new"], results["old"]
    print("footprint: MariaDB, %s vs %s" % (new["label"], old["label"]))
    print("%-20s %12s %12s %8s" % ("", new["label"], old["label"], "new/old"))
    for what, key, i in (("VmRSS idle", "rss", 0), ("VmRSS under load", "rss", 1),
                         ("PSS idle", "pss", 0), ("PSS under load", "pss", 1)):
        a, b = new[key][i], old[key][i]
        print("%-20s %9.1f MB %9.1f MB %8.2f" % (what, a, b, a / b if b else 0))
    print("%-20s %9.0f MB %9.0f MB" % ("buffer pool", new["db"]["pool"], old["db"]["pool"]))
    print("%-20s %12d %12d" % ("max_connections", new["db"]["max_connections"],
                               old["db"]["max_connections"]))


if __name__ == "__main__":
    main()
