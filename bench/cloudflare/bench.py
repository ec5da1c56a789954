"""Cloudflare provider bench (see run.sh).

API calls: each operation runs through build/asan/tests/tools/cf_run and
the fake counts the requests. The minimum is what a client that already
knew every id would send: open = create tunnel (its answer carries the
connector token) + put ingress + create record (+ 1 per bypass app); push
= put ingress; close = delete record + clean connections + delete tunnel
(+ 1 per bypass app). Ours adds the lookups that make every step safe to
rerun after a crash (find by name before create) and the final listing
that verifies nothing is left.

Proxy path: a compose project (busybox httpd) with the stand-in connector;
time from `up` done to the first 200 through the fake edge, and the median
latency of N requests through the edge against N requests straight to the
container's address, in the same run."""
import http.client
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness.cloudflare_fake import CloudflareFake, write_conf  # noqa: E402
from test_cloudflare import compose_cmd  # noqa: E402

RUN = os.path.join(ROOT, "build", "asan", "tests", "tools", "cf_run")
N = int(sys.argv[1]) if len(sys.argv) > 1 else 200
SLUG = "pr-1-bench"


def cf_run(conf, *args):
    p = subprocess.run([RUN, "-c", conf] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True, check=True)
    return dict(x.split("=", 1) for line in p.stdout.splitlines()
                for x in line.split(" ") if "=" in x)


def calls(cf, since):
    return len(cf.calls()) - since


def lifecycle(cf, conf, bypass):
    extra = ["-b", "/webhooks/*"] if bypass else []
    out = {}
    n0 = len(cf.calls())
    cf_run(conf, "route", SLUG, "web:80:primary", "api:80", *extra)
    out["open"] = calls(cf, n0)
    n0 = len(cf.calls())
    cf_run(conf, "route", SLUG, "web:80:primary", "api:80", *extra)
    out["push"] = calls(cf, n0)
    n0 = len(cf.calls())
    cf_run(conf, "unroute", SLUG)
    out["close"] = calls(cf, n0)
    return out


def get(host, port, path, hdr=None):
    c = http.client.HTTPConnection(host, port, timeout=10)
    try:
        c.request("GET", path, headers=hdr or {})
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def proxy_path(cf, conf, workdir):
    subprocess.run(["bash", os.path.join(ROOT, "examples", "busybox-image.sh")], check=True)
    image = subprocess.run([os.path.join(ROOT, "tests", "connector", "image.sh")],
                           check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
    s = cf.settings()
    s.update({"cloudflare.access": False, "cloudflare.connector_image": image})
    write_conf(conf, s)
    tok = os.path.join(workdir, "tunnel-token")
    cf_run(conf, "route", SLUG, "web:80:primary", "-k", tok)
    p = subprocess.run([RUN, "-c", conf, "connector", tok], stdout=subprocess.PIPE,
                       text=True, check=True)
    conn = json.loads(p.stdout)
    conn["volumes"].append({"type": "bind", "source": cf.unix_dir, "target": "/run/cf"})
    doc = {"services": {"web": {"image": "ephemera/busybox:1", "command": [
        "sh", "-c", "echo hi > /www/index.html && exec httpd -f -p 80 -h /www"]},
        "cloudflared": conn}}
    # busybox has no /www; make it
    doc["services"]["web"]["command"][2] = "mkdir -p /www && " + doc["services"]["web"]["command"][2]
    path = os.path.join(workdir, "compose.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    project = "cfbench%d" % os.getpid()
    base = compose_cmd() + ["-p", project, "-f", path]
    try:
        subprocess.run(base + ["up", "-d"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        t0 = time.monotonic()
        host = {"Host": "%s.%s" % (SLUG, cf.zone)}
        while True:
            try:
                if get("127.0.0.1", cf.edge_port, "/", host) == 200:
                    break
            except OSError:
                pass
            time.sleep(0.02)
        t_url = time.monotonic() - t0
        cid = subprocess.run(["docker", "ps", "-q", "--filter",
                              "label=com.docker.compose.project=" + project, "--filter",
                              "label=com.docker.compose.service=web"],
                             stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
        ip = json.loads(subprocess.run(["docker", "inspect", cid], stdout=subprocess.PIPE,
                                       text=True, check=True).stdout)[0][
            "NetworkSettings"]["Networks"]
        ip = next(iter(ip.values()))["IPAddress"]
        edge, direct = [], []
        for _ in range(N):
            t = time.perf_counter()
            get("127.0.0.1", cf.edge_port, "/", host)
            edge.append(time.perf_counter() - t)
            t = time.perf_counter()
            get(ip, 80, "/")
            direct.append(time.perf_counter() - t)
        return t_url, statistics.median(edge), statistics.median(direct)
    finally:
        subprocess.run(base + ["down", "-t", "1"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        cf_run(conf, "unroute", SLUG)


def main():
    cf = CloudflareFake()
    try:
        conf = os.path.join(cf.dir, "bench.conf")
        workdir = os.path.join(cf.dir, "env")
        os.mkdir(workdir)
        for bypass in (False, True):
            s = cf.settings()
            s["cloudflare.access"] = bypass
            write_conf(conf, s)
            got = lifecycle(cf, conf, bypass)
            floor = {"open": 3 + bypass, "push": 1, "close": 3 + bypass}
            label = "access+1 bypass" if bypass else "no access"
            for step in ("open", "push", "close"):
                print("cloudflare: api calls %-5s (%s): %d, minimum %d, ratio %.2f"
                      % (step, label, got[step], floor[step], got[step] / floor[step]))
            total, ftotal = sum(got.values()), sum(floor.values())
            print("cloudflare: api calls lifecycle (%s): %d, minimum %d, ratio %.2f"
                  % (label, total, ftotal, total / ftotal))
        t_url, edge, direct = proxy_path(cf, conf, workdir)
        print("cloudflare: up done -> URL answers through the edge: %.3f s" % t_url)
        print("cloudflare: request through fake edge + connector: median %.2f ms; "
              "straight to the container: median %.2f ms; ratio %.1f (N=%d)"
              % (edge * 1000, direct * 1000, edge / direct, N))
    finally:
        cf.stop()


if __name__ == "__main__":
    main()
