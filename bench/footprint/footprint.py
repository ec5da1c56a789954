"""bench/footprint: the control plane's memory and idle CPU (issue 20).

A private release-build stack with 8 workers (`make run`'s MariaDB
settings). Memory is read from /proc: RSS summed over a program's
processes, and PSS (smaps_rollup), which splits each shared page among
the processes mapping it, so forked workers are not counted eight times
for the code they share. Idle: after the startup work has settled. Under
load: the peak while wrk posts signed deliveries at 32 connections. Idle
CPU: user+system time each program used over BENCH_IDLE_SECONDS with
nothing to do (busy polling would show here)."""
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
from harness.stack import Stack, cpu_seconds as cpu  # noqa: E402

IDLE = int(os.environ.get("BENCH_IDLE_SECONDS", "60"))
LOAD = int(os.environ.get("BENCH_SECONDS", "10"))
GOALS = {"idle": 40.0, "load": 60.0}  # MB, fcgi-app + workers together


def tree(pid):
    """pid and its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open("/proc/%d/task/%d/children" % (p, p)) as f:
                todo += [int(c) for c in f.read().split()]
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


def groups(s):
    with open(os.path.join(s.var, "run", "mysqld.pid")) as f:
        db = int(f.read())
    return {"fcgi-app": tree(s.pid("fcgi")), "workers": tree(s.pid("workers")),
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
    s = Stack("bench-footprint", {"workers.count": 8}, asan=False)
    d = tempfile.mkdtemp(prefix="eph-footprint-")
    try:
        s.up()
        run(s, d)
    finally:
        s.cleanup()
        subprocess.run(["rm", "-rf", "--", d])


def run(s, d):
    time.sleep(5)  # startup work (migrations check, first sweep) settles
    g = groups(s)
    idle = {k: mem(v) for k, v in g.items()}
    c0 = {k: cpu(v) for k, v in g.items()}
    time.sleep(IDLE)
    g = groups(s)
    idle_cpu = {k: 100 * (cpu(v) - c0[k]) / IDLE for k, v in g.items()}

    body, sig = signed_body(s, d)
    peak = {k: (0.0, 0.0) for k in g}
    done = threading.Event()

    def sample():
        while not done.is_set():
            for k, v in groups(s).items():
                r, p = mem(v)
                peak[k] = (max(peak[k][0], r), max(peak[k][1], p))
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

    print("footprint: release build, 8 workers, idle %d s, load %d s of wrk at 32 "
          "connections (%s)" % (IDLE, LOAD, rate[0].strip() if rate else "wrk said nothing"))
    print("%-9s %5s %10s %10s %12s %12s %10s" % ("program", "procs", "idle RSS", "idle PSS",
                                                 "load RSS max", "load PSS max", "idle CPU"))
    for k in ("fcgi-app", "workers", "nginx", "mariadb"):
        print("%-9s %5d %8.1f MB %8.1f MB %10.1f MB %10.1f MB %9.2f%%" % (
            k, len(g[k]), idle[k][0], idle[k][1], peak[k][0], peak[k][1], idle_cpu[k]))
    cp_idle = idle["fcgi-app"][1] + idle["workers"][1]
    cp_load = peak["fcgi-app"][1] + peak["workers"][1]
    cp_cpu = idle_cpu["fcgi-app"] + idle_cpu["workers"]
    print("footprint: fcgi-app + workers PSS idle %.1f MB (goal <= %.0f), under load %.1f MB "
          "(goal <= %.0f), idle CPU %.2f%% of a core; MariaDB RSS idle %.1f MB"
          % (cp_idle, GOALS["idle"], cp_load, GOALS["load"], cp_cpu, idle["mariadb"][0]))


if __name__ == "__main__":
    main()
