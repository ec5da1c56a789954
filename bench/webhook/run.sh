#!/usr/bin/env bash
# bench/webhook - durable webhook acceptance: wrk at 32 connections POSTs
# validly signed pull_request deliveries (unique delivery ids, 500 PRs)
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

command -v wrk >/dev/null || {
	echo "webhook: wrk is not installed (scripts/deps.sh --test)" >&2
	exit 1
}
[ -x bin/ephemera-fcgi ] || make -s all

exec python3 - "$SECS" "$CONNS" "$FCGI" <<'PY'
import hashlib, hmac, json, os, re, subprocess, sys, time
sys.path.insert(0, os.path.join(os.getcwd(), "tests"))
from harness.stack import Stack, free_port, ROOT

secs, conns, fcgi = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fixtures = os.environ.get("EPHEMERA_FIXTURES", os.path.join(os.path.dirname(ROOT), "shared", "fixtures"))
settings = {"workers.count": 1}
if fcgi:
    settings["fcgi.processes"] = int(fcgi)
s = Stack("bench-webhook", settings, asan=False)
try:
    s.up()
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
    # 500 pull requests, each signed with the stack's secret.
    with open(os.path.join(fixtures, "github", "webhooks", "pull_request.opened.json")) as f:
        tmpl = json.load(f)
    bodies = os.path.join(s.dir, "bodies.txt")
    with open(bodies, "w") as out:
        for n in range(1, 501):
            tmpl["number"] = tmpl["pull_request"]["number"] = n
            b = json.dumps(tmpl, separators=(",", ":")).encode()
            sig = "sha256=" + hmac.new(s.secret.encode(), b, hashlib.sha256).hexdigest()
            out.write(sig + "\t" + b.decode() + "\n")
    size = len(b)
    lua = os.path.join(ROOT, "bench", "webhook", "post.lua")

    def wrk(port, run):
        env = dict(os.environ, BENCH_BODIES=bodies, BENCH_RUN=run)
        r = subprocess.run(["wrk", "-t2", "-c%d" % conns, "-d%ss" % secs, "-s", lua,
                            "--timeout", "10s", "http://127.0.0.1:%d/webhook" % port],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        m = re.search(r"^RESULT (.*)$", r.stdout, re.M)
        if not m:
            sys.exit("webhook: wrk failed:\n" + r.stdout)
        return {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split())}

    # Warm up (connections, buffer pool, first inserts), then measure.
    subprocess.run(["wrk", "-t1", "-c4", "-d2s", "-s", lua, "http://127.0.0.1:%d/webhook" % s.port],
                   env=dict(os.environ, BENCH_BODIES=bodies, BENCH_RUN="warm"),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    before = int(s.sql("SELECT COUNT(*) FROM deliveries")[0][0])
    hook = wrk(s.port, "bench")
    rows = int(s.sql("SELECT COUNT(*) FROM deliveries")[0][0]) - before
    base = wrk(base_port, "base")
    flush = s.sql("SELECT @@innodb_flush_log_at_trx_commit")[0][0]
    print("webhook: body %d bytes, %d connections, %ss each, innodb_flush_log_at_trx_commit=%s, "
          "fcgi.processes=%s" % (size, conns, secs, flush, fcgi or "default"))
    print("webhook: /webhook      %8.0f accepted/s  p50 %6.2f ms  p99 %6.2f ms  max %7.2f ms  "
          "non-202 %d  socket errors %d" % (hook["per_s"], hook["p50_ms"], hook["p99_ms"],
                                            hook["max_ms"], hook["other"], hook["errors"]))
    print("webhook: nginx 202     %8.0f /s          p50 %6.2f ms  p99 %6.2f ms  max %7.2f ms" %
          (base["per_s"], base["p50_ms"], base["p99_ms"], base["max_ms"]))
    print("webhook: durable check: %d accepted, %d new deliveries rows" % (hook["accepted"], rows))
    print("webhook accepted/s=%.0f p50_ms=%.2f p99_ms=%.2f baseline/s=%.0f baseline_p99_ms=%.2f "
          "ratio=%.3f" % (hook["per_s"], hook["p50_ms"], hook["p99_ms"], base["per_s"],
                          base["p99_ms"], hook["per_s"] / base["per_s"]))
finally:
    s.cleanup()
PY
