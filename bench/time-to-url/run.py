#!/usr/bin/env python3
"""bench/time-to-url: how long from a PR event to its URL serving the new
commit, against a bare `docker compose up -d` (+ waiting for health, as
--wait would) and the first 200 of the same app on the same machine, in the
same run. Then the same for a push. Prints medians and the overhead.

The cloud row: the same app with compute.provider = "ec2" (moto, and
instances that run: tests/harness/instances.py) and exposure.provider =
"cloudflare" (the fake and its edge), the URL fetched through the edge,
against the local provider's time in the same run; the difference is the
cloud path's overhead on this machine, broken down by deploy step.

    python3 bench/time-to-url/run.py [rounds] [--no-cloud]
"""
import glob
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "tests", "cloud"))

from harness import events  # noqa: E402
from harness.compose_app import compose_cmd, wait_healthy, web_ip  # noqa: E402
from harness.stack import Stack, http  # noqa: E402
from test_local import Repo  # noqa: E402

HELLO = os.path.join(ROOT, "examples", "hello")


def bare_round(repo, project, sha):
    """docker compose up -d --build, wait for health, first 200 of web."""
    t0 = time.monotonic()
    env = dict(os.environ, EPHEMERA_COMMIT=sha)
    subprocess.run(compose_cmd() + ["-p", project, "up", "-d", "--build", "--remove-orphans"],
                   cwd=repo.path, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    ip = web_ip(wait_healthy(project))
    while True:
        try:
            r = http("GET", "http://%s/" % ip, timeout=2)
            if r.status == 200 and sha in r.text:
                break
        except OSError:
            pass
        time.sleep(0.02)
    return time.monotonic() - t0


def pr_round(s, action, repo_name, pr, sha, url, host):
    """Seconds from the PR event's delivery to `url` (with Host: host)
    serving the commit."""
    body, headers = events.signed(s.secret, "pull_request",
                                  events.pull_request(action, repo_name, pr, sha))
    t0 = time.monotonic()
    r = s.post("/webhook", body, headers)
    assert r.status in (200, 202), r.text
    while True:
        try:
            r = http("GET", url, headers={"Host": host}, timeout=5)
            if r.status == 200 and sha in r.text:
                return time.monotonic() - t0
        except OSError:
            pass
        if time.monotonic() - t0 > 600:
            raise RuntimeError("timed out; logs:\n" + s.logs()[-4000:])
        time.sleep(0.02)


def ephemera_round(s, action, repo_name, pr, sha, slug):
    """Through the local provider's nginx route."""
    return pr_round(s, action, repo_name, pr, sha, s.url("/"), "%s.localhost" % slug)


def edge_round(s, cf, action, repo_name, pr, sha, slug):
    """Through the Cloudflare fake's edge."""
    return pr_round(s, action, repo_name, pr, sha, "http://127.0.0.1:%d/" % cf.edge_port,
                    "%s.%s" % (slug, cf.zone))


def steps_report(s):
    """Where the time goes: each deploy step's mean."""
    steps = s.sql("SELECT name, COUNT(*), AVG(TIMESTAMPDIFF(MICROSECOND, started_at, "
                  "finished_at)) / 1e6 FROM build_steps GROUP BY name ORDER BY MIN(id)")
    return "  ".join("%s %.2f" % (n, float(t)) for n, _, t in steps)


def cloud_rounds(rounds, tmp, local):
    """The cloud row (see the module's comment); `local` holds the local
    provider's open and push times of this run."""
    from harness import instances
    from harness.cloudflare_fake import CloudflareFake
    from harness.moto import ec2_settings, moto_behind_proxy, worker_credentials

    image = subprocess.run([os.path.join(ROOT, "tests", "connector", "image.sh")], check=True,
                           stdout=subprocess.PIPE, text=True).stdout.strip()
    moto, ids, proxy = moto_behind_proxy()
    cf = CloudflareFake()
    os.environ["EPHEMERA_CF_STANDIN_DIR"] = cf.unix_dir
    envs = os.path.join(tmp, "envs")
    creds = worker_credentials(ids, tmp)
    emu = s = None
    try:
        emu = instances.InstanceEmulator(moto, ids, proxy, envs)
        repo = Repo(tmp, "cloud/hello")
        emu.mounts = [repo.path]
        instance = "c%06d" % random.randrange(10**6)
        s = Stack("ttuc", dict(cf.settings(), **dict(ec2_settings(proxy, ids, creds), **{
            "workers.count": 2, "environments.instance": instance,
            "cloudflare.access": False, "cloudflare.connector_image": image,
            "ec2.envs_dir": envs})), asan=False)
        s.extra = 'repos = ( { name = "cloud/hello"; source = "%s"; } );\n' % repo.path
        s.write_config()
        s.up()
        res = {"open": [], "push": []}
        for i in range(rounds):
            pr = 200 + i
            slug = "pr-%d-hello" % pr
            sha = repo.commit("open %d" % i, {"web/index.html.in": "<p>%d @COMMIT@</p>\n" % i})
            res["open"].append(edge_round(s, cf, "opened", "cloud/hello", pr, sha, slug))
            sha = repo.commit("push %d" % i, {"web/index.html.in": "<p>p%d @COMMIT@</p>\n" % i})
            res["push"].append(edge_round(s, cf, "synchronize", "cloud/hello", pr, sha, slug))
            body, headers = events.signed(s.secret, "pull_request",
                                          events.pull_request("closed", "cloud/hello", pr, sha))
            s.post("/webhook", body, headers)
        print("cloud row: ec2 (emulated instances) + cloudflare (fake edge), medians, seconds")
        for what in ("open", "push"):
            c, l = statistics.median(res[what]), statistics.median(local[what])
            print("  %-5s local provider: %.2fs   cloud path: %.2fs   overhead: %+.2fs   "
                  "ratio: %.2f" % (what, l, c, c - l, c / l))
        print("  cloud steps (mean s): " + steps_report(s))
        # The closes finish before the emulator stops: nothing left running.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and any(
                e["phase"] != "destroyed" for e in s.get("/api/v1/environments").json()):
            time.sleep(0.5)
    finally:
        if s:
            s.cleanup()
        if emu:
            emu.stop()
        os.environ.pop("EPHEMERA_CF_STANDIN_DIR", None)
        cf.stop()
        proxy.stop()
        moto.stop()


def gate_report(s):
    """The gate's own time per build: from the workers' `gate` log lines
    (this app, release build), and for a 20-service file through the
    gate_run driver (the ASan build: an upper bound)."""
    text = ""
    for p in glob.glob(os.path.join(s.var, "log", "*.log")):
        with open(p, errors="replace") as f:
            text += f.read()
    ms = [float(m) for m in re.findall(r"gate\b[^\n]*?\bms=([0-9.]+)", text)]
    tool = os.path.join(ROOT, "build", "asan", "tests", "tools", "gate_run")
    twenty = None
    if os.path.exists(tool):
        src = tempfile.mkdtemp(prefix="eph-bench-gate-")
        shutil.copytree(HELLO, src, dirs_exist_ok=True)
        shutil.copytree(os.path.join(ROOT, "tests", "harmless", "twenty"), src,
                        dirs_exist_ok=True)
        err = subprocess.run([tool, "-n", "50", src], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0")).stderr
        m = re.search(r"gate_ms=([0-9.]+)", err)
        twenty = float(m.group(1)) if m else None
        shutil.rmtree(src, ignore_errors=True)
    print("  gate (own time per build): this app %s   20 services %s   (goal < 50 ms)"
          % ("%.1f ms (mean of %d)" % (statistics.mean(ms), len(ms)) if ms else "n/a",
             "%.1f ms (ASan gate_run, mean of 50)" % twenty if twenty else "n/a"))


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    rounds = int(args[0]) if args else 3
    cloud = "--no-cloud" not in sys.argv
    subprocess.run([os.path.join(ROOT, "examples", "busybox-image.sh")], check=True)
    tmp = tempfile.mkdtemp(prefix="eph-bench-ttu-")
    instance = "b%06d" % random.randrange(10**6)
    s = Stack("ttu", {"workers.count": 2, "environments.instance": instance}, asan=False)
    bare_repo = Repo(tmp, "bare/hello")
    # The baseline publishes no host port either (8080 may be taken, and
    # Ephemera routes through its proxy instead): same app, same builds.
    compose = open(os.path.join(bare_repo.path, "docker-compose.yml")).read()
    bare_repo.commit("no host port", {"docker-compose.yml": compose.replace(
        '    ports:\n      - "8080:80"\n', "    expose:\n      - \"80\"\n")})
    eph_repo = Repo(tmp, "bench/hello")
    s.extra = 'repos = ( { name = "bench/hello"; source = "%s"; } );\n' % eph_repo.path
    s.write_config()
    s.up()
    res = {"open": ([], []), "push": ([], [])}
    try:
        for i in range(rounds):
            project = "%sbare%d" % (instance, i)
            pr = 100 + i
            slug = "pr-%d-hello" % pr
            # open: a fresh project each round; the same commits for both.
            sha = eph_repo.commit("open %d" % i, {"web/index.html.in": "<p>%d @COMMIT@</p>\n" % i})
            bare_sha = bare_repo.commit("open %d" % i, {"web/index.html.in": "<p>%d @COMMIT@</p>\n" % i})
            res["open"][0].append(bare_round(bare_repo, project, bare_sha))
            res["open"][1].append(ephemera_round(s, "opened", "bench/hello", pr, sha, slug))
            # push: a new commit on the running project.
            sha = eph_repo.commit("push %d" % i, {"web/index.html.in": "<p>p%d @COMMIT@</p>\n" % i})
            bare_sha = bare_repo.commit("push %d" % i, {"web/index.html.in": "<p>p%d @COMMIT@</p>\n" % i})
            res["push"][0].append(bare_round(bare_repo, project, bare_sha))
            res["push"][1].append(ephemera_round(s, "synchronize", "bench/hello", pr, sha, slug))
            subprocess.run(compose_cmd() + ["-p", project, "down", "-v", "--rmi", "local"],
                           cwd=bare_repo.path, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            body, headers = events.signed(s.secret, "pull_request",
                                          events.pull_request("closed", "bench/hello", pr, sha))
            s.post("/webhook", body, headers)
        print("time-to-url (%d rounds, medians, seconds)" % rounds)
        for what, (bare, eph) in res.items():
            b, e = statistics.median(bare), statistics.median(eph)
            # Each round runs both back to back: the median of the paired
            # differences is steadier than the difference of the medians
            # when the machine's load drifts between rounds.
            d = statistics.median(x - y for x, y in zip(eph, bare))
            print("  %-5s bare compose up + first 200: %.2fs   ephemera: %.2fs   "
                  "overhead: %+.2fs (%+.0f%%)   paired: %+.2fs   ratio: %.2f"
                  % (what, b, e, e - b, 100 * (e - b) / b, d, e / b))
        print("  steps (mean s): " + steps_report(s))
        gate_report(s)
    finally:
        time.sleep(3)
        s.cleanup()
    try:
        if cloud:
            cloud_rounds(rounds, tmp, {k: v[1] for k, v in res.items()})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
