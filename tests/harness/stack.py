"""A private Ephemera stack for one test class: its own temp dir, free port,
MariaDB, nginx, fcgi-app and workers, started and stopped through the same
scripts/stack.sh that `make run` uses. The binaries are the ASan build, and
every sanitizer report lands in var/log/asan.* for the test to check."""

import glob
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ASAN_BIN = os.path.join(ROOT, "build", "asan", "bin")
RELEASE_BIN = os.path.join(ROOT, "bin")
STACK = os.path.join(ROOT, "scripts", "stack.sh")
# Server options every test stack's MariaDB gets before a test's own
# (EPHEMERA_MARIADB_ARGS; a later option wins). config/mariadb.cnf sizes
# max_connections for one control plane's FastCGI threads and workers;
# tests run wider ones (test_webhook's 4 FastCGI processes hold about 100
# connections, and at 64 its own clients get "Too many connections"; the
# cluster's hosts share one server), so they keep `make run`'s former limit. Everything else is the
# file's, as shipped.
TEST_MARIADB_ARGS = "--max-connections=1000"
# A logfmt line a test fails on unless it said it expects it: an error, or
# a database error at any level (lib/db.c logs lock conflicts and duplicate
# keys, which callers handle, at debug).
LOG_PROBLEM = re.compile(r"\blevel=error\b|\bevent=db_error\b")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        # Says what came instead: a bare JSONDecodeError names neither the
        # status nor the body, and a flake that prints it cannot be traced.
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise AssertionError("not JSON (%s): HTTP %d, %s, body %r" % (
                e, self.status, self.headers.get("Content-Type"),
                self.body[:300])) from None

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")


def http(method, url, body=None, headers=None, timeout=30):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Response(r.status, dict(r.headers), r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, dict(e.headers), e.read())


class Stack:
    def __init__(self, name, settings=None, asan=True, webhook_secret="test-secret",
                 extra="", workers=True):
        self.dir = tempfile.mkdtemp(prefix="eph-%s-" % name)
        self.var = os.path.join(self.dir, "var")
        self.port = free_port()
        self.bin = ASAN_BIN if asan else RELEASE_BIN
        self.secret = webhook_secret
        self.secret_file = os.path.join(self.dir, "webhook-secret")
        with open(self.secret_file, "w") as f:
            f.write(webhook_secret + "\n")
        self.config = os.path.join(self.dir, "ephemera.conf")
        self.settings = {
            "var_dir": self.var,
            "migrations_dir": os.path.join(ROOT, "sql", "migrations"),
            "host_dir": os.path.join(ROOT, "host"),
            "web_dir": os.path.join(ROOT, "web"),
            "http.port": self.port,
            "github.webhook_secret_file": self.secret_file,
            "workers.shutdown_timeout": 10,
            # Its own compose project prefix: the stack's reaper sweeps
            # (and its `down` stops) every project with its prefix, so
            # sharing "eph" would touch `make run`'s previews.
            "environments.instance": "t%06d" % random.randrange(10**6),
            # The test apps build from examples/busybox-image.sh's image;
            # a build's bases pass the gate's allow-list as images do.
            "environments.allowed_images": "ephemera/busybox:",
        }
        self.settings.update(settings or {})
        self.extra = extra
        # workers=False: the stack runs without the worker pool, so jobs
        # stay as the fcgi-app queued them.
        self.workers = workers
        # Environment for stack.sh and everything it starts.
        self.extra_env = {}
        # Put before extra_env's EPHEMERA_MARIADB_ARGS; "" serves the
        # file alone (bench/footprint measures it as shipped).
        self.mariadb_args = TEST_MARIADB_ARGS
        # (compiled pattern, why): error lines a test provokes on purpose.
        self.allowed_logs = []
        self.write_config()

    def write_config(self):
        """Renders the dotted settings as libconfig groups, plus `extra`
        verbatim (for lists such as repos)."""
        top, groups = [], {}
        for key, v in self.settings.items():
            if isinstance(v, bool):
                v = "true" if v else "false"
            elif isinstance(v, str):
                v = '"%s"' % v.replace("\\", "\\\\").replace('"', '\\"')
            if "." in key:
                g, k = key.split(".", 1)
                groups.setdefault(g, []).append("  %s = %s;" % (k, v))
            else:
                top.append("%s = %s;" % (key, v))
        text = "\n".join(top) + "\n"
        for g, lines in groups.items():
            text += "%s: {\n%s\n};\n" % (g, "\n".join(lines))
        with open(self.config, "w") as f:
            f.write(text + self.extra + "\n")

    def env(self):
        env = dict(os.environ)
        env["CONFIG"] = self.config
        env["EPHEMERA_BIN"] = self.bin
        if not self.workers:
            env["EPHEMERA_WORKERS"] = "0"
        env["ASAN_OPTIONS"] = "log_path=%s/log/asan:detect_leaks=1" % self.var
        env["UBSAN_OPTIONS"] = "log_path=%s/log/ubsan:print_stacktrace=1" % self.var
        env.update(self.extra_env)
        args = " ".join(filter(None, [self.mariadb_args,
                                      env.get("EPHEMERA_MARIADB_ARGS", "")]))
        env["EPHEMERA_MARIADB_ARGS"] = args
        return env

    def stack(self, *args, check=True):
        return subprocess.run([STACK, *args], env=self.env(), check=check,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def up(self):
        r = self.stack("up", check=False)
        if r.returncode != 0:
            raise RuntimeError("stack up failed:\n" + r.stdout + self.logs())
        return self

    def down(self):
        self.stack("down", check=False)

    def cleanup(self):
        self.down()
        # EPHEMERA_TEST_KEEP=1 leaves the stack's files (logs, routes,
        # work dirs) for a post-mortem of a failure.
        if os.environ.get("EPHEMERA_TEST_KEEP"):
            print("    (kept %s)" % self.dir)
            return
        shutil.rmtree(self.dir, ignore_errors=True)

    def finish(self):
        """A test class's end: stops the stack, removes its files, and
        fails if a sanitizer reported anything meanwhile."""
        self.down()
        reports = self.sanitizer_reports()
        self.cleanup()
        assert not reports, "sanitizer reports:\n" + "\n".join(reports)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def get(self, path, **kw):
        return http("GET", self.url(path), **kw)

    def post(self, path, body, headers=None):
        return http("POST", self.url(path), body=body, headers=headers)

    def pid(self, name):
        try:
            with open(os.path.join(self.var, "run", name + ".pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def children(self, pid):
        r = subprocess.run(["pgrep", "-P", str(pid)], stdout=subprocess.PIPE, text=True)
        return [int(x) for x in r.stdout.split()]

    def log(self, name):
        try:
            with open(os.path.join(self.var, "log", name + ".log")) as f:
                return f.read()
        except OSError:
            return ""

    def log_about(self, name, *needles, tail=6000):
        """The lines of a log that name any of `needles` (a slug, an
        env=ID): what a failure message needs, without the sweep's
        every-second lines."""
        lines = [l for l in self.log(name).splitlines(True)
                 if any(n in l for n in needles)]
        return "".join(lines)[-tail:]

    def logs(self):
        out = []
        for p in sorted(glob.glob(os.path.join(self.var, "log", "*"))):
            if not os.path.isfile(p):
                continue  # log/previews/: the routes' visits
            with open(p, errors="replace") as f:
                out.append("==> %s <==\n%s" % (p, f.read()[-3000:]))
        return "\n".join(out)

    def make_idle(self, env_id, slug, hours=2):
        """`hours` pass with nobody there: by the nginx route's visits log,
        whose last line is the deploy's own probe, by the Cloudflare
        connector's last request count (gone: the next look has nothing to
        compare with, so it sees no visit), and by the database. In that
        order: a sweep between them would otherwise take the probe for a
        visit."""
        log = os.path.join(self.var, "log", "previews", slug + ".log")
        if os.path.exists(log):
            then = time.time() - hours * 3600
            os.utime(log, (then, then))
        seen = os.path.join(self.var, "envs", slug, "tunnel-requests")
        if os.path.exists(seen):
            os.unlink(seen)
        self.sql("UPDATE environments SET last_active_at = NOW(6) - INTERVAL %d HOUR "
                 "WHERE id = %d" % (hours, env_id))

    def sql(self, query):
        """Runs SQL through the mariadb client; returns rows of strings."""
        r = subprocess.run(
            ["mariadb", "--no-defaults", "--socket", os.path.join(self.var, "run", "mysqld.sock"),
             "-uroot", "-N", "-B", "ephemera", "-e", query],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise RuntimeError("sql failed: %s" % r.stderr)
        # Only \n ends a row: values may hold a bare \r (build logs).
        return [line.split("\t") for line in r.stdout.split("\n") if line]

    def allow_log(self, pattern, why):
        """Lets error lines matching `pattern` (a regex) through the check
        of log_problems(): only for what a test provokes on purpose, with
        the reason, so an unexpected error still fails the test."""
        assert why, "say why the error is expected"
        self.allowed_logs.append((re.compile(pattern), why))

    def allow_db_outage(self):
        """For a test that stops MariaDB on purpose: what every program
        logs while the database is gone (lost connections, failed
        reconnects, a delivery answered 503 unrecorded)."""
        self.allow_log(r"event=db_error errno=(2002|2003|2006|2013) |"
                       r"event=db_connect |event=webhook_not_recorded ",
                       "the test stops the database")

    def log_problems(self):
        """Every `level=error` or `db_error` line any of our programs
        logged that no allow_log() pattern expects."""
        out = []
        for p in sorted(glob.glob(os.path.join(self.var, "log", "*.log"))):
            with open(p, errors="replace") as f:
                for line in f:
                    if LOG_PROBLEM.search(line) and \
                            not any(a.search(line) for a, _ in self.allowed_logs):
                        out.append("%s: %s" % (os.path.basename(p), line.rstrip()))
        return out

    def sanitizer_reports(self):
        """What fails a test class at its end, like a crash would: the
        ASan/LSan/UBSan reports written by any of our processes, and the
        unexpected error lines of the stack's logs (log_problems)."""
        out = []
        for p in glob.glob(os.path.join(self.var, "log", "asan.*")) + \
                glob.glob(os.path.join(self.var, "log", "ubsan.*")):
            with open(p, errors="replace") as f:
                out.append("%s:\n%s" % (p, f.read()))
        problems = self.log_problems()
        if problems:
            out.append("unexpected errors logged (a test that provokes one "
                       "says so with Stack.allow_log):\n" + "\n".join(problems[:40]))
        return out

    def processes(self):
        """Processes whose command line mentions this stack's temp dir."""
        found = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
                with open("/proc/%s/stat" % d) as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if self.dir in cmd and state != "Z":
                found.append((int(d), cmd))
        return found

    def port_open(self):
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex(("127.0.0.1", self.port)) == 0


def alive(pid):
    """Running, not a zombie (an exited child not yet reaped is no
    longer alive, though kill -0 still finds it)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cpu_seconds(pids):
    """CPU time (user + system) the processes have used so far; a process
    gone meanwhile counts nothing."""
    t = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                st = f.read().rsplit(")", 1)[1].split()
            t += int(st[11]) + int(st[12])
        except OSError:
            pass
    return t / os.sysconf("SC_CLK_TCK")


def maps_curl(pid):
    """Whether the process has libcurl mapped (the workers load it at
    their first HTTP call, workers/lazylib.c); a process gone: no."""
    try:
        with open("/proc/%d/maps" % pid) as f:
            return "libcurl.so" in f.read()
    except OSError:
        return False


def interruptible():
    """preexec_fn for a `make run` that a test stops with Ctrl-C: SIGINT
    back to its default. A test run started in the background by a
    non-interactive shell (`cmd &`) inherits SIGINT ignored, and bash can
    neither trap nor restore a signal ignored on entry, so run.sh would
    never see the Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_until(fn, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            return v
        time.sleep(interval)
