"""GitHub notifier bench. A private release-build stack (MariaDB, workers)
pointed at tests/fakes/github.py. For each of N builds of one PR: the
build starts (notify), then succeeds (notify), as reconcile would report
them. Figures:

- GitHub API requests per build, split into writes and reads, against the
  floor a build needs when it is reported twice (started, finished):
  1 Deployment + 2 of its statuses + 1 inactive status retiring the
  previous build's Deployment (GitHub does not do that for transient
  environments) + 2 commit statuses + 2 comment edits = 8 writes; and the
  rate-limit budget that leaves (5,000 requests/hour per installation);
- notify job time in the database (jobs.created_at → finished_at, so the
  client's polling is not counted) against a no-op job through the same
  pool in the same run: the ratio is the notifier's cost over a bare queue
  round trip. The fake answers in about a millisecond, so this is
  Ephemera's own overhead, not GitHub's latency."""
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from harness.github_fake import GitHubFake  # noqa: E402
from harness.stack import Stack, wait_until  # noqa: E402

BUILDS = int(sys.argv[1]) if len(sys.argv) > 1 else 20
REPO, INST, PR = "octo/app", 77, 42
PERMS = {"contents": "read", "issues": "write", "pull_requests": "write",
         "deployments": "write", "statuses": "write", "metadata": "read"}
FLOOR_WRITES = 8


def run_job(s, kind, env_id, payload=None):
    s.sql("INSERT INTO jobs (kind, env_id, payload) VALUES ('%s', %s, %s)"
          % (kind, env_id if env_id else "NULL",
             "'%s'" % payload if payload else "NULL"))
    q = "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')"
    if not wait_until(lambda: s.sql(q) == [["0"]], timeout=60, interval=0.002):
        raise RuntimeError("job did not finish")
    bad = s.sql("SELECT kind, state, last_error FROM jobs WHERE state <> 'done'")
    if bad:
        raise RuntimeError("job failed: %r" % bad)
    ms = s.sql("SELECT TIMESTAMPDIFF(MICROSECOND, created_at, finished_at) / 1000 "
               "FROM jobs ORDER BY id DESC LIMIT 1")[0][0]
    return float(ms)


def main():
    gh = GitHubFake()
    s = Stack("bench-github", dict(gh.settings(), **{
        "workers.count": 1, "workers.poll_interval_ms": 1,
        "http.public_url": "https://ephemera.example"}), asan=False)
    try:
        s.up()
        gh.configure(installations={str(INST): {"repos": [REPO], "permissions": PERMS}})
        s.sql("INSERT INTO environments (repo, pr, slug, installation_id, title, desired, "
              "phase, trusted) VALUES ('%s', %d, 'pr-%d-app', %d, 'Bench', 'running', "
              "'pending', 1)" % (REPO, PR, PR, INST))
        env = int(s.sql("SELECT id FROM environments")[0][0])
        run_job(s, "notify", env)  # the first comment and token, not timed
        noop_ms, notify_ms = [], []
        before = gh.state()["requests"]
        n0 = len(before)
        for n in range(1, BUILDS + 1):
            sha = "%040x" % (0xbe0000 + n)
            s.sql("INSERT INTO builds (env_id, sha, status) VALUES (%d, '%s', 'running')"
                  % (env, sha))
            s.sql("UPDATE environments SET phase='deploying', desired_sha='%s' WHERE id=%d"
                  % (sha, env))
            noop_ms.append(run_job(s, "noop", 0, '{"record": false}'))
            notify_ms.append(run_job(s, "notify", env))
            s.sql("UPDATE builds SET status='succeeded', finished_at=NOW(6) WHERE sha='%s'"
                  % sha)
            s.sql("UPDATE environments SET phase='ready', deployed_sha='%s', "
                  "url='https://pr-%d-app.preview.example/' WHERE id=%d" % (sha, PR, env))
            noop_ms.append(run_job(s, "noop", 0, '{"record": false}'))
            notify_ms.append(run_job(s, "notify", env))
        reqs = gh.state()["requests"][n0:]
        writes = [r for r in reqs if r["method"] != "GET"
                  and not r["path"].endswith("/access_tokens")]
        reads = [r for r in reqs if r["method"] == "GET"]
        tokens = [r for r in reqs if r["path"].endswith("/access_tokens")]
        per_build = len(reqs) / BUILDS
        print("github: %d builds of one PR, 2 notify jobs each, 1 release worker, "
              "fake GitHub on loopback" % BUILDS)
        print("github: API requests per build: %.1f (%.1f writes, %.1f reads, %d token "
              "fetches in all); floor %d writes -> ratio %.2f"
              % (per_build, len(writes) / BUILDS, len(reads) / BUILDS, len(tokens),
                 FLOOR_WRITES, (len(writes) / BUILDS) / FLOOR_WRITES))
        print("github: rate-limit budget: %.0f builds/hour per installation "
              "(5,000 requests/hour)" % (5000 / per_build))
        nm, om = statistics.median(notify_ms), statistics.median(noop_ms)
        print("github: notify job p50 %.1f ms, max %.1f ms; baseline no-op job p50 %.1f ms "
              "(same pool, same run) -> ratio %.2f"
              % (nm, max(notify_ms), om, nm / om))
    finally:
        s.cleanup()
        gh.stop()


if __name__ == "__main__":
    main()
