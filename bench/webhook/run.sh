#!/usr/bin/env bash
# bench/webhook - durable webhook acceptance: wrk at 32 connections POSTs
# validly signed pull_request deliveries (unique delivery ids; 500 PRs
# opened then pushed to, each delivery a new head commit)
# to /webhook on a private release-build stack (MariaDB with
# innodb_flush_log_at_trx_commit=1), then the same requests to an nginx
# `return 202` location on the same nginx, in the same run. Prints
# accepted/s, p50 and p99 for both and their ratio; checks that every 202
# left a deliveries row. Not a pass/fail test.
#
#   BENCH_SECONDS=10 BENCH_CONNECTIONS=32 bench/webhook/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNECTIONS:-32}
FCGI=${BENCH_FCGI_PROCESSES:-}
THREADS=${BENCH_FCGI_THREADS:-}

command -v wrk >/dev/null || {
	echo "webhook: wrk is not installed (scripts/deps.sh --test)" >&2
	exit 1
}
[ -x bin/ephemera-fcgi ] || make -s all

exec python3 - "$SECS" "$CONNS" "$FCGI" "$THREADS" <<'PY'
import hashlib, hmac, json, os, re, shutil, signal, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.join(os.getcwd(), "tests"))
from harness.stack import Stack, free_port, wait_until, ROOT

secs, conns, fcgi, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
fixtures = os.environ.get("EPHEMERA_FIXTURES", os.path.join(ROOT, "tests", "fixtures"))
settings = {"workers.count": 1}
if fcgi:
    settings["fcgi.processes"] = int(fcgi)
if threads:
    settings["fcgi.threads"] = int(threads)
s = Stack("bench-webhook", settings, asan=False)
reqdir = None
try:
    s.up()
    # Ingestion alone: the workers would reconcile (clone, build) what
    # the deliveries ask for, which other benches measure.
    wpid = s.pid("workers")
    if wpid:
        os.kill(wpid, signal.SIGTERM)
        wait_until(lambda: not os.path.exists("/proc/%d" % wpid), timeout=30)
    # Diagnosis only (BENCH_FLUSH=2): what durability costs here.
    if os.environ.get("BENCH_FLUSH"):
        s.sql("SET GLOBAL innodb_flush_log_at_trx_commit = %d" % int(os.environ["BENCH_FLUSH"]))
    # The baseline: nginx answering 202 itself, same nginx, same run.
    base_port = free_port()
    with open(os.path.join(s.var, "nginx", "previews", "bench-baseline.conf"), "w") as f:
        f.write("server {\n listen 127.0.0.1:%d;\n location = /webhook {\n"
                "  return 202 \"accepted\\n\";\n }\n}\n" % base_port)
    s.stack("nginx-reload")
    time.sleep(1)
    # Realistic deliveries: 500 open PRs, each pushed to again and again
    # (opened, then synchronize with a new head commit and a later
    # updated_at), so every delivery changes desired state and queues or
    # coalesces a reconcile. Signed with the stack's secret.
    with open(os.path.join(fixtures, "github", "webhooks", "pull_request.opened.json")) as f:
        tmpl = json.load(f)
    t0 = 1767225600  # 2026-01-01T00:00:00Z

    def write_requests(path, repo, count, nthreads, run):
        """Whole HTTP requests, "<length>\n<bytes>" each, one file per wrk
        thread (path.1, path.2...): thread t sends deliveries t, t+T...,
        its own PRs' pushes in order. Formatted here, not in wrk's init():
        wrk starts its first thread before the second's init() and its
        clock after the last, so a slow init() (loading the requests)
        ran the first thread early, uncounted, and inflated every rate:
        post.lua reads them as it sends."""
        tmpl["repository"]["full_name"] = repo
        for side in ("head", "base"):
            tmpl["pull_request"][side]["repo"]["full_name"] = repo
        outs = [open("%s.%d" % (path, t + 1), "wb") for t in range(nthreads)]
        for i in range(count):
            pr, k = i % 500 + 1, i // 500
            tmpl["action"] = "opened" if k == 0 else "synchronize"
            tmpl["number"] = tmpl["pull_request"]["number"] = pr
            tmpl["pull_request"]["head"]["sha"] = hashlib.sha1(b"%d-%d" % (pr, k)).hexdigest()
            tmpl["pull_request"]["updated_at"] = time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 + 60 * k))
            b = json.dumps(tmpl, separators=(",", ":")).encode()
            sig = "sha256=" + hmac.new(s.secret.encode(), b, hashlib.sha256).hexdigest()
            t = i % nthreads
            req = ("POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   "Content-Type: application/json\r\nX-GitHub-Event: pull_request\r\n"
                   "X-GitHub-Delivery: %s-%d-%d\r\nX-Hub-Signature-256: %s\r\n"
                   "Content-Length: %d\r\n\r\n" % (run, t + 1, i // nthreads + 1, sig, len(b))
                   ).encode() + b
            outs[t].write(b"%d\n" % len(req) + req)
        for out in outs:
            out.close()
        return len(b)

    # In memory (/dev/shm): a gigabyte written to disk just before the
    # run would be flushed during it, beside MariaDB's own fsyncs.
    reqdir = tempfile.mkdtemp(prefix="eph-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    bodies = os.path.join(reqdir, "requests")
    warm_bodies = os.path.join(reqdir, "warm")
    # Enough bodies that none is sent twice at 6,000/s: a body sent again
    # is older than its PR's state, so it is "stale" and much cheaper, and
    # the figures would flatter a fast build. (wrk's two threads do not
    # share the load evenly: one may send two thirds of it.)
    nbodies = int(os.environ.get("BENCH_BODIES_N", str(max(8000, 6000 * int(secs)))))
    size = write_requests(bodies, "bench/app", nbodies, 2, "bench")
    write_requests(warm_bodies, "bench/warm", 1000, 1, "warm")
    lua = os.path.join(ROOT, "bench", "webhook", "post.lua")

    def wrk(port, run, **extra):
        env = dict(os.environ, BENCH_BODIES=bodies, **extra)
        r = subprocess.run(["wrk", "-t2", "-c%d" % conns, "-d%ss" % secs, "-s", lua,
                            "--timeout", "10s", "http://127.0.0.1:%d/webhook" % port],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        m = re.search(r"^RESULT (.*)$", r.stdout, re.M)
        if not m:
            sys.exit("webhook: wrk failed:\n" + r.stdout)
        return {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split())}

    # Warm up (connections, buffer pool, first inserts), then measure.
    subprocess.run(["wrk", "-t1", "-c4", "-d2s", "-s", lua, "http://127.0.0.1:%d/webhook" % s.port],
                   env=dict(os.environ, BENCH_BODIES=warm_bodies),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    def cpu_seconds():
        """CPU time so far of fcgi-app, MariaDB and nginx (all processes):
        on a shared machine, cost per delivery is steadier than a rate."""
        with open(os.path.join(s.var, "run", "mysqld.pid")) as f:
            groups = {"fcgi": [s.pid("fcgi")], "mariadb": [int(f.read())],
                      "nginx": [s.pid("nginx")]}
        out = {}
        for name, pids in groups.items():
            pids = pids + [c for p in pids for c in s.children(p)]
            t = 0
            for p in pids:
                try:
                    with open("/proc/%d/stat" % p) as f:
                        st = f.read().rsplit(")", 1)[1].split()
                    t += int(st[11]) + int(st[12])
                except OSError:
                    pass
            out[name] = t / os.sysconf("SC_CLK_TCK")
        return out

    before = int(s.sql("SELECT COUNT(*) FROM deliveries")[0][0])
    cpu0 = cpu_seconds()
    hook = wrk(s.port, "bench")
    # The durable rate: rows over the span their commits took.
    span, durable = s.sql("SELECT TIMESTAMPDIFF(MICROSECOND, MIN(received_at), MAX(received_at)), "
                          "COUNT(*) FROM deliveries WHERE guid LIKE 'bench-%'")[0]
    hook["per_s"] = int(durable) / max(int(span) / 1e6, 1e-6)
    cpu1 = cpu_seconds()
    rows = int(s.sql("SELECT COUNT(*) FROM deliveries")[0][0]) - before
    base = wrk(base_port, "base")
    cpu2 = cpu_seconds()
    # The floor of this stack: the same requests through nginx to the
    # fcgi-app, which reads each body, finds the signature wrong and
    # answers 401 (no parse, no database). No durable design on nginx +
    # FastCGI can beat it on this machine.
    floor = wrk(s.port, "floor", BENCH_BADSIG="1")
    floor_s = (floor["accepted"] + floor["other"]) / floor["seconds"]
    per = {k: (cpu1[k] - cpu0[k]) / max(rows, 1) * 1000 for k in cpu0}
    per_base = (cpu2["nginx"] - cpu1["nginx"]) / max(base["accepted"] + base["other"], 1) * 1000
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    flush = s.sql("SELECT @@innodb_flush_log_at_trx_commit")[0][0]
    print("webhook: body %d bytes, %d connections, %ss each, innodb_flush_log_at_trx_commit=%s, "
          "fcgi.processes=%s fcgi.threads=%s" % (size, conns, secs, flush, fcgi or "default",
                                    threads or "default"))
    print("webhook: /webhook      %8.0f accepted/s  p50 %6.2f ms  p99 %6.2f ms  max %7.2f ms  "
          "non-2xx %d  socket errors %d" % (hook["per_s"], hook["p50_ms"], hook["p99_ms"],
                                            hook["max_ms"], hook["other"], hook["errors"]))
    print("webhook: nginx 202     %8.0f /s          p50 %6.2f ms  p99 %6.2f ms  max %7.2f ms" %
          (base["per_s"], base["p50_ms"], base["p99_ms"], base["max_ms"]))
    print("webhook: floor (401)   %8.0f /s          p50 %6.2f ms  p99 %6.2f ms  max %7.2f ms  "
          "(nginx + fcgi-app + HMAC, no parse, no database)" %
          (floor_s, floor["p50_ms"], floor["p99_ms"], floor["max_ms"]))
    results = ", ".join("%s %s" % (n, r) for r, n in s.sql(
        "SELECT result, COUNT(*) FROM deliveries WHERE repo = 'bench/app' GROUP BY result"))
    jobs = s.sql("SELECT COUNT(*) FROM jobs")[0][0]
    print("webhook: durable check: %d accepted, %d new deliveries rows (%s); %s jobs rows" %
          (hook["accepted"], rows, results, jobs))
    # A batch that fails as a whole leaves each of its deliveries to its
    # own commit: a slow tail with nothing lost. Say when it happened.
    fell = len(re.findall(r"event=delivery_batch_(?:alone|failed)", s.log("fcgi")))
    if fell:
        print("webhook: %d batches failed as a whole and were recorded one at a time "
              "(fcgi log: delivery_batch_alone, delivery_batch_failed)" % fell)
    if rows < hook["accepted"]:
        print("webhook: DURABILITY FAILED: %d answers 202 without a deliveries row" %
              (hook["accepted"] - rows))
    again = int(s.sql("SELECT COUNT(*) FROM deliveries WHERE guid LIKE 'bench-%-again-%'")[0][0])
    if again:
        print("webhook: WARNING: %d bodies were sent again (stale, cheaper); raise BENCH_BODIES_N" %
              again)
    print("webhook: CPU ms per delivery: fcgi-app %.3f, MariaDB %.3f, nginx %.3f (total %.3f; "
          "nginx per baseline request %.3f); %d cores, load average %s" %
          (per["fcgi"], per["mariadb"], per["nginx"], sum(per.values()), per_base,
           os.cpu_count(), load))
    # The load generator runs on the same cores: its share of the budget.
    print("webhook: CPU ms per request of wrk itself: /webhook %.3f, baseline %.3f" %
          (hook["cpu_s"] / max(hook["accepted"] + hook["other"], 1) * 1000,
           base["cpu_s"] / max(base["accepted"] + base["other"], 1) * 1000))
    print("webhook accepted/s=%.0f p50_ms=%.2f p99_ms=%.2f baseline/s=%.0f baseline_p99_ms=%.2f "
          "ratio=%.3f floor/s=%.0f ratio_to_floor=%.3f"
          % (hook["per_s"], hook["p50_ms"], hook["p99_ms"], base["per_s"], base["p99_ms"],
             hook["per_s"] / base["per_s"], floor_s, hook["per_s"] / floor_s))
finally:
    if reqdir:
        shutil.rmtree(reqdir, ignore_errors=True)
    s.cleanup()
PY
