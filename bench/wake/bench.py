#!/usr/bin/env python3
"""bench/wake: from the first visit of a preview stopped as idle to its URL
serving the app, against the same app's `docker compose start` + health +
first 200 from the container, measured in the same run on the same
machine. Prints both medians, the overhead and the ratio.

The visit is timed as a client that polls the URL every 100 ms sees it;
a browser on the waking page reloads every 2 s, so a person waits up to
2 s longer than the figure.

    python3 bench/wake/bench.py [rounds]
"""
import os
import random
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

from harness import events  # noqa: E402
from harness.compose_app import compose_cmd, wait_healthy, web_ip  # noqa: E402
from harness.stack import Stack, http, wait_until  # noqa: E402
from test_local import Repo  # noqa: E402


def served(url, host, sha):
    try:
        r = http("GET", url, headers={"Host": host} if host else None, timeout=2)
        return r.status == 200 and sha in r.text
    except OSError:
        return False


def bare_round(repo, project, sha):
    """docker compose stop, then time start + every container healthy +
    the first 200 of web."""
    run = dict(cwd=repo.path, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(compose_cmd() + ["-p", project, "stop"], **run)
    t0 = time.monotonic()
    subprocess.run(compose_cmd() + ["-p", project, "start"], **run)
    up_and_serving(project, sha)
    return time.monotonic() - t0


def up_and_serving(project, sha):
    ip = web_ip(wait_healthy(project))
    while not served("http://%s/" % ip, None, sha):
        time.sleep(0.02)


def wake_round(s, env, sha):
    """Stops the preview as idle, then times the first visit until the URL
    serves the app; returns (seconds, answers seen while waking)."""
    s.make_idle(env["id"], env["slug"])
    ok = wait_until(lambda: s.sql("SELECT phase FROM environments WHERE id = %d"
                                  % env["id"]) == [["stopped"]], timeout=120, interval=0.2)
    if not ok:
        raise RuntimeError("never stopped as idle; logs:\n" + s.logs()[-4000:])
    host = "%s.localhost" % env["slug"]
    t0 = time.monotonic()
    waking = 0
    while not served(s.url("/"), host, sha):
        waking += 1
        if time.monotonic() - t0 > 300:
            raise RuntimeError("never woke; logs:\n" + s.logs()[-4000:])
        time.sleep(0.1)
    return time.monotonic() - t0, waking


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    subprocess.run([os.path.join(ROOT, "examples", "busybox-image.sh")], check=True)
    tmp = tempfile.mkdtemp(prefix="eph-bench-wake-")
    instance = "w%06d" % random.randrange(10**6)
    s = Stack("wake", {"workers.count": 2, "environments.instance": instance,
                       "environments.idle_stop_minutes": 60,
                       "workers.sweep_interval_seconds": 1}, asan=False)
    bare_repo = Repo(tmp, "bare/hello")
    compose = open(os.path.join(bare_repo.path, "docker-compose.yml")).read()
    bare_sha = bare_repo.commit("no host port", {"docker-compose.yml": compose.replace(
        '    ports:\n      - "8080:80"\n', "    expose:\n      - \"80\"\n")})
    eph_repo = Repo(tmp, "bench/hello")
    sha = eph_repo.commit("wake")
    s.extra = 'repos = ( { name = "bench/hello"; source = "%s"; } );\n' % eph_repo.path
    s.write_config()
    project = "%sbare" % instance
    bare, wake, polls = [], [], []
    try:
        s.up()
        subprocess.run(compose_cmd() + ["-p", project, "up", "-d", "--build"],
                       cwd=bare_repo.path, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL,
                       env=dict(os.environ, EPHEMERA_COMMIT=bare_sha))
        up_and_serving(project, bare_sha)
        body, headers = events.signed(s.secret, "pull_request",
                                      events.pull_request("opened", "bench/hello", 1, sha))
        s.post("/webhook", body, headers)
        env = wait_until(lambda: next((e for e in s.get("/api/v1/environments").json()
                                       if e["phase"] == "ready"), None), timeout=300)
        if not env:
            raise RuntimeError("never ready; logs:\n" + s.logs()[-4000:])
        for _ in range(rounds):
            bare.append(bare_round(bare_repo, project, bare_sha))
            t, n = wake_round(s, env, sha)
            wake.append(t)
            polls.append(n)
        b, w = statistics.median(bare), statistics.median(wake)
        d = statistics.median(x - y for x, y in zip(wake, bare))
        print("wake (%d rounds, medians, seconds)" % rounds)
        print("  compose start + healthy + first 200: %.2fs   visit -> app served: %.2fs   "
              "overhead: %+.2fs   paired: %+.2fs   ratio: %.2f" % (b, w, w - b, d, w / b))
        print("  waking-page answers before the app (polled every 100 ms): median %d"
              % statistics.median(polls))
        print("wake: %.2fs visit to app, %.2fx compose start" % (w, w / b))
    finally:
        subprocess.run(compose_cmd() + ["-p", project, "down", "-v", "--rmi", "local"],
                       cwd=bare_repo.path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        body, headers = events.signed(s.secret, "pull_request",
                                      events.pull_request("closed", "bench/hello", 1, sha))
        try:
            s.post("/webhook", body, headers)
            wait_until(lambda: all(e["phase"] == "destroyed"
                                   for e in s.get("/api/v1/environments").json()),
                       timeout=120)
        finally:
            s.cleanup()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
