"""Seed rows for the status page tests: fixed ids and times, so that with
status.clock pinned to CLOCK the pages are byte-for-byte reproducible.
Environment 2 is the hostile one: every text an attacker controls is
markup, quotes, ampersands or unicode."""

CLOCK = "2026-03-02T12:00:00Z"

A = "a" * 40
B = "b" * 40
C = "c" * 40
D = "d" * 40

HOSTILE_TITLE = "<script>alert(1)</script>"
HOSTILE_BRANCH = "it's \"quoted\" & <b>bold</b>"
HOSTILE_REPO = "ünïcode-org/репо"
HOSTILE_AUTHOR = "mallory\"><img src=x onerror=alert(4)>"
HOSTILE_ERROR = "compose up failed: <exit 1> & \"oops\""
HOSTILE_LOG = "step 1\n</pre><script>alert(2)</script>\n& done\n"
HOSTILE_URL = "javascript:alert(3)"
SERVICES_1 = ('[{"name": "web", "primary": true, '
              '"url": "https://pr-42-shop.preview.example/"}, '
              '{"name": "api", "primary": false, '
              '"url": "https://pr-42-shop.preview.example/api/"}]')
HOSTILE_SERVICES = ('[{"name": "adm<i>n\\"", "primary": false, '
                    '"url": "javascript:alert(5)"}, {"name": 7}, "x"]')


def q(s):
    """An SQL string literal for the mariadb client (test data only)."""
    if s is None:
        return "NULL"
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def env(i, repo, pr, title, author, branch, desired, phase, sha, deployed,
        url, error, created, updated):
    return ("INSERT INTO environments (id, repo, pr, slug, title, author, "
            "head_ref, desired, phase, desired_sha, deployed_sha, url, error, "
            "created_at, updated_at) VALUES (%d, %s, %d, %s, %s, %s, %s, %s, "
            "%s, %s, %s, %s, %s, %s, %s);" % (
                i, q(repo), pr, q("pr-%d-s%d" % (pr, i)), q(title), q(author),
                q(branch), q(desired), q(phase), q(sha), q(deployed), q(url),
                q(error), q(created), q(updated)))


def build(i, env_id, sha, status, started, finished, error=None, log=None):
    return ("INSERT INTO builds (id, env_id, sha, status, error, log_tail, "
            "started_at, finished_at) VALUES (%d, %d, %s, %s, %s, %s, %s, %s);"
            % (i, env_id, q(sha), q(status), q(error), q(log), q(started),
               q(finished)))


def step(build_id, name, status, started, finished, detail=None):
    return ("INSERT INTO build_steps (build_id, name, status, detail, "
            "started_at, finished_at) VALUES (%d, %s, %s, %s, %s, %s);"
            % (build_id, q(name), q(status), q(detail), q(started), q(finished)))


def run(env_id, started, stopped, price):
    return ("INSERT INTO env_runs (env_id, started_at, stopped_at, hourly_price) "
            "VALUES (%d, %s, %s, %s);" % (env_id, q(started), q(stopped), price))


def steps(build_id, day, t0, plan):
    """plan: [(name, status, seconds)] run back to back from day t0."""
    out, t = [], t0
    for name, status, secs in plan:
        start = "%s %s" % (day, hms(t))
        end = None if secs is None else "%s %s" % (day, hms(t + secs))
        out.append(step(build_id, name, status, start, end))
        t += secs or 0
    return out


def hms(t):
    return "%02d:%02d:%02d" % (t // 3600, t % 3600 // 60, t % 60)


def seed_sql():
    s = [
        env(1, "acme/shop", 42, "Add the checkout page", "alice",
            "feature/checkout", "running", "ready", A, A,
            "https://pr-42-shop.preview.example/", None,
            "2026-03-01 09:00:00", "2026-03-02 11:00:00"),
        env(2, HOSTILE_REPO, 7, HOSTILE_TITLE, HOSTILE_AUTHOR, HOSTILE_BRANCH,
            "running", "failed", B, None, HOSTILE_URL, HOSTILE_ERROR,
            "2026-03-02 10:00:00", "2026-03-02 10:30:00"),
        env(3, "acme/api", 5, "Faster search", "bob", "search", "running",
            "deploying", C, None, None, None,
            "2026-03-02 11:50:00", "2026-03-02 11:55:00"),
        env(4, "acme/shop", 40, "Old experiment", "carol", "exp", "stopped",
            "stopped", D, D, None, None,
            "2026-02-27 08:00:00", "2026-02-28 08:00:00"),
        env(5, "acme/api", 3, "From a fork", "eve", "patch-1",
            "awaiting_approval", "awaiting_approval", D, None, None, None,
            "2026-03-02 11:59:00", "2026-03-02 11:59:00"),
        # env 1: two builds.
        build(1, 1, A, "succeeded", "2026-03-01 09:00:05",
              "2026-03-01 09:03:05", log="first build\n"),
        build(2, 1, A, "succeeded", "2026-03-02 10:58:00",
              "2026-03-02 11:00:00",
              log="Step 1/3 : FROM scratch\n<b>built</b> & tagged\n"),
        build(3, 2, B, "failed", "2026-03-02 10:00:05", "2026-03-02 10:01:05",
              error=HOSTILE_ERROR, log=HOSTILE_LOG),
        build(4, 3, C, "running", "2026-03-02 11:55:00", None),
        build(5, 4, D, "succeeded", "2026-02-27 08:00:00",
              "2026-02-27 08:02:00"),
        # Compute runs, each at its own price: env 1 ran 12 h, was stopped
        # overnight (costing nothing) and runs again since its second
        # build at another type's price; env 4 ran a day, then stopped.
        run(1, "2026-03-01 09:00:05", "2026-03-01 21:00:05", "0.0208"),
        run(1, "2026-03-02 10:58:00", None, "0.05"),
        run(2, "2026-03-02 10:00:05", None, "0.0188"),
        run(3, "2026-03-02 11:55:00", None, "0.0208"),
        run(4, "2026-02-27 08:00:00", "2026-02-28 08:00:00", "0.0208"),
    ]
    # The closed runs' totals, as workers/env_run.c adds them at close.
    s.append("UPDATE environments SET runs_seconds = 43200, runs_cost = "
             "12 * 0.0208, updated_at = updated_at WHERE id = 1;")
    s.append("UPDATE environments SET runs_seconds = 86400, runs_cost = "
             "24 * 0.0208, updated_at = updated_at WHERE id = 4;")
    s.append("UPDATE environments SET services = %s, updated_at = updated_at "
             "WHERE id = 1;" % q(SERVICES_1))
    s.append("UPDATE environments SET services = %s, updated_at = updated_at "
             "WHERE id = 2;" % q(HOSTILE_SERVICES))
    s.append("UPDATE environments SET services = 'not json', "
             "updated_at = updated_at WHERE id = 4;")
    s += steps(1, "2026-03-01", 9 * 3600 + 5, [
        ("fetch", "succeeded", 5), ("build", "succeeded", 120),
        ("up", "succeeded", 45), ("expose", "succeeded", 6),
        ("notify", "succeeded", 4)])
    s += steps(2, "2026-03-02", 10 * 3600 + 58 * 60, [
        ("fetch", "succeeded", 3), ("build", "succeeded", 70),
        ("up", "succeeded", 38), ("expose", "succeeded", 5),
        ("notify", "skipped", 4)])
    s += steps(3, "2026-03-02", 10 * 3600 + 5, [
        ("fetch", "succeeded", 4), ("build", "failed", 56)])
    s.append(step(3, "up", "skipped", "2026-03-02 10:01:05",
                  "2026-03-02 10:01:05", detail="<i>not run</i> & \"skipped\""))
    s += steps(4, "2026-03-02", 11 * 3600 + 55 * 60, [
        ("fetch", "succeeded", 10), ("build", "running", None)])
    s += [
        "INSERT INTO jobs (id, kind, env_id, state, run_at, attempts, "
        "max_attempts, last_error, created_at, started_at, finished_at) VALUES "
        "(1, 'reconcile', 1, 'done', '2026-03-02 10:57:59', 1, 5, NULL, "
        "'2026-03-02 10:57:59', '2026-03-02 10:58:00', '2026-03-02 11:00:00'),"
        "(2, 'reconcile', 2, 'dead', '2026-03-02 10:00:00', 5, 5, %s, "
        "'2026-03-02 10:00:00', '2026-03-02 10:00:05', '2026-03-02 10:01:05'),"
        "(3, 'reconcile', 3, 'running', '2026-03-02 11:54:59', 2, 5, "
        "'ssm: throttled', '2026-03-02 11:50:00', '2026-03-02 11:55:00', NULL),"
        "(4, 'reap', NULL, 'queued', '2026-03-02 11:58:00', 0, 5, NULL, "
        "'2026-03-02 11:58:00', NULL, NULL),"
        "(5, 'reconcile', 5, 'queued', '2026-03-02 12:10:00', 0, 5, NULL, "
        "'2026-03-02 11:59:00', NULL, NULL),"
        "(6, 'reconcile', 4, 'done', '2026-02-27 07:59:59', 3, 5, "
        "'github: 502', '2026-02-27 07:59:59', '2026-02-27 08:00:00', "
        "'2026-02-27 08:00:00.250');" % q(HOSTILE_ERROR),
        # Job 3 runs on worker host w2 (a name with markup: escaped);
        # w1 has been silent since 11:00.
        "UPDATE jobs SET worker = 'w2<b>:4242', lease_until = "
        "'2026-03-02 12:01:00' WHERE id = 3;",
        "INSERT INTO worker_hosts (name, supervisor_pid, workers, started_at, "
        "heartbeat_at) VALUES ('w1', 100, 8, '2026-03-01 08:00:00', "
        "'2026-03-02 11:00:00'), ('w2<b>', 200, 4, '2026-03-02 09:00:00', "
        "'2026-03-02 11:59:58');",
        "INSERT INTO deliveries (guid, event, action, repo, pr, env_id, "
        "result, received_at) VALUES "
        "('g1', 'pull_request', 'opened', 'acme/shop', 42, 1, 'accepted', "
        "'2026-03-01 09:00:00'),"
        "('g2', 'pull_request', 'synchronize', 'acme/shop', 42, 1, 'accepted',"
        " '2026-03-02 10:57:58'),"
        "('g3', 'ping', NULL, NULL, NULL, NULL, 'ignored', "
        "'2026-03-01 08:00:00'),"
        "('g4', 'we\"ird\\\\ev\\nent', NULL, NULL, NULL, NULL, 'ignored', "
        "'2026-03-01 08:00:01');",
    ]
    return "\n".join(s)
