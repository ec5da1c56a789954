"""Several hosts on this machine, each in a network namespace the test
makes itself: one database host and N worker hosts, every worker host
joined to the database host by its own veth pair (a point-to-point link
on private 10.77.N.0/30 addresses that exist only inside these
namespaces). There is no bridge: bridged frames would cross the root
namespace's iptables, where Docker's FORWARD policy drops them. Cutting a
host off sets the database side of its link down and leaves its
processes running; healing sets it up again.

The database host runs the private MariaDB of a Stack (its unix socket
stays the test's own way in, since sockets are files, not network); it
serves TCP with TLS and requires it, with README.md's two users. Each
worker host runs ephemera-workers with its own var_dir and workers.host
name, as the app user over TLS."""
import json
import os
import secrets
import shutil
import signal
import subprocess
import time

from harness.dbtls import make_ca, make_server_cert, readme_grants, secret_file
from harness.stack import STACK, Stack, alive, wait_until

DB_PORT = 3306


def ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


class Host:
    def __init__(self, cluster, index):
        self.cluster = cluster
        self.name = "w%d" % index
        self.ns = "%s-%s" % (cluster.tag, self.name)
        # Its end of the link, and the database host's end.
        self.addr = "10.77.%d.2" % index
        self.db_addr = "10.77.%d.1" % index
        self.db_link = "to-%s" % self.name
        self.proc = None
        self.stack = None

    def exec_argv(self, argv):
        return ["ip", "netns", "exec", self.ns, *argv]

    def start(self):
        """ephemera-workers in this host's namespace, in its own session."""
        s = self.stack
        log = open(os.path.join(s.var, "log", "workers.log"), "ab")
        self.proc = subprocess.Popen(
            self.exec_argv([os.path.join(s.bin, "ephemera-workers"), "-c", s.config]),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=s.env(), start_new_session=True)
        log.close()

    def pids(self):
        r = ip("netns", "pids", self.ns, check=False)
        return [int(p) for p in r.stdout.split()]

    def kill(self):
        """SIGKILL to every process of the host, as a power cut would."""
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc:
            self.proc.wait(timeout=30)
        wait_until(lambda: not any(alive(p) for p in self.pids()), timeout=30)

    def stop(self):
        """SIGTERM to the supervisor, as a shutdown would; KILL after 60 s."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def cut(self):
        ip("-n", self.cluster.db_ns, "link", "set", self.db_link, "down")

    def heal(self):
        ip("-n", self.cluster.db_ns, "link", "set", self.db_link, "up")


class Cluster:
    """`hosts` worker hosts and a database host. settings: the workers'."""

    def __init__(self, name, hosts=3, settings=None, asan=False):
        self.tag = "eph%d" % (os.getpid() % 100000)
        self.db_ns = "%s-db" % self.tag
        self.hosts = [Host(self, i + 1) for i in range(hosts)]
        self.app_pw = secrets.token_urlsafe(18)
        self.migrate_pw = secrets.token_urlsafe(18)
        self.instance = "c%06d" % (int.from_bytes(os.urandom(3), "big") % 10**6)
        self.name = name
        self.settings = settings or {}
        self.asan = asan
        self.db = None

    # ---- setting up and taking down -------------------------------------

    def up(self):
        try:
            self._net_up()
            self._db_up()
            for h in self.hosts:
                h.stack = self._host_stack(h)
            r = subprocess.run(
                self.hosts[0].exec_argv([os.path.join(self.hosts[0].stack.bin, "ephemera"),
                                         "-c", self.hosts[0].stack.migrate_config, "migrate"]),
                env=self.hosts[0].stack.env(), capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                raise RuntimeError("migrate failed:\n" + r.stdout + r.stderr)
        except BaseException:
            self.down()
            raise
        return self

    def _net_up(self):
        self.down_net()
        ip("netns", "add", self.db_ns)
        ip("-n", self.db_ns, "link", "set", "lo", "up")
        for h in self.hosts:
            ip("netns", "add", h.ns)
            ip("-n", h.ns, "link", "set", "lo", "up")
            ip("link", "add", "eth0", "netns", h.ns, "type", "veth",
               "peer", "name", h.db_link, "netns", self.db_ns)
            ip("-n", h.ns, "addr", "add", h.addr + "/30", "dev", "eth0")
            ip("-n", self.db_ns, "addr", "add", h.db_addr + "/30", "dev", h.db_link)
            ip("-n", h.ns, "link", "set", "eth0", "up")
            ip("-n", self.db_ns, "link", "set", h.db_link, "up")

    def _db_up(self):
        s = Stack("%s-db" % self.name, workers=False, asan=self.asan)
        self.db = s
        d = s.dir
        ca_key, ca_cert = make_ca(d, "ca")
        make_server_cert(d, ca_key, ca_cert, [h.db_addr for h in self.hosts])
        s.settings["database.host"] = self.hosts[0].db_addr
        s.write_config()
        s.extra_env = {
            "EPHEMERA_PRIVATE_DB": "1",
            "EPHEMERA_MARIADB_ARGS": " ".join([
                "--skip-networking=0", "--bind-address=0.0.0.0",
                "--port=%d" % DB_PORT, "--require-secure-transport=ON",
                "--ssl-ca=%s/ca.pem" % d, "--ssl-cert=%s/server.pem" % d,
                "--ssl-key=%s/server-key.pem" % d]),
        }
        r = subprocess.run(["ip", "netns", "exec", self.db_ns, STACK, "db-start"],
                           env=s.env(), capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError("db-start failed:\n" + r.stdout + r.stderr)
        s.sql(readme_grants().replace("MIGRATE_PASSWORD", self.migrate_pw)
              .replace("APP_PASSWORD", self.app_pw))

    def _host_stack(self, h):
        """The worker host's configuration and var_dir (a Stack only as a
        config writer and log reader: nothing of it is started by stack.sh)."""
        d = self.db.dir
        s = Stack("%s-%s" % (self.name, h.name), asan=self.asan)
        s.settings.update({
            "environments.instance": self.instance,
            "database.host": h.db_addr, "database.port": DB_PORT,
            "database.connect_timeout": 3,
            "database.tls_ca_file": os.path.join(d, "ca.pem"),
            "database.user": "ephemera",
            "database.password_file": secret_file(s.dir, "db-password", self.app_pw),
            "workers.host": h.name,
        })
        s.settings.update(self.settings)
        for sub in ("run", "log", "tmp"):
            os.makedirs(os.path.join(s.var, sub), exist_ok=True)
        s.write_config()
        # The same, as the migrate user (only `migrate` reads these).
        s.migrate_config = os.path.join(s.dir, "migrate.conf")
        text = open(s.config).read().replace("database: {\n", (
            'database: {\n  migrate_user = "ephemera_migrate";\n'
            '  migrate_password_file = "%s";\n'
            % secret_file(s.dir, "db-migrate-password", self.migrate_pw)), 1)
        with open(s.migrate_config, "w") as f:
            f.write(text)
        return s

    def down_net(self):
        for ns in [h.ns for h in self.hosts] + [self.db_ns]:
            ip("netns", "del", ns, check=False)

    def down(self):
        for h in self.hosts:
            try:
                h.stop()
            except Exception:
                pass
            if h.stack:
                h.stack.cleanup()
        if self.db:
            self.db.stack("db-stop", check=False)
            self.db.cleanup()
        self.down_net()

    def sanitizer_reports(self):
        return [r for h in self.hosts if h.stack for r in h.stack.sanitizer_reports()]

    # ---- the database, through its socket -------------------------------

    def sql(self, query):
        return self.db.sql(query)

    def one(self, query):
        rows = self.sql(query)
        return rows[0][0] if rows else None

    def add_jobs(self, n, payload=None, max_attempts=25):
        """n noop jobs in one INSERT, tagged; returns the tag."""
        tag = "c%d-%d" % (os.getpid(), int(time.monotonic() * 1000))
        p = json.dumps(dict(payload or {}, batch=tag))
        self.sql("INSERT INTO jobs (kind, payload, max_attempts) "
                 "SELECT 'noop', '%s', %d FROM seq_1_to_%d" % (p, max_attempts, n))
        return tag

    @staticmethod
    def where(tag):
        return "payload LIKE '%%\"%s\"%%'" % tag

    def states(self, tag):
        return dict((k, int(v)) for k, v in self.sql(
            "SELECT state, COUNT(*) FROM jobs WHERE %s GROUP BY state" % self.where(tag)))

    def drained(self, tag):
        return self.one("SELECT COUNT(*) FROM jobs WHERE %s AND state IN "
                        "('queued', 'running')" % self.where(tag)) == "0"

    def tally(self, tag):
        """(jobs, jobs with no recorded run, jobs run more than once,
        {host: runs})."""
        jobs = int(self.one("SELECT COUNT(*) FROM jobs WHERE %s" % self.where(tag)))
        lost = int(self.one(
            "SELECT COUNT(*) FROM jobs j WHERE j.%s AND NOT EXISTS "
            "(SELECT 1 FROM noop_runs r WHERE r.job_id = j.id)" % self.where(tag)))
        twice = int(self.one(
            "SELECT COUNT(*) FROM (SELECT r.job_id FROM noop_runs r JOIN jobs j "
            "ON j.id = r.job_id WHERE j.%s GROUP BY r.job_id HAVING COUNT(*) > 1) d"
            % self.where(tag)))
        per_host = dict((k, int(v)) for k, v in self.sql(
            "SELECT SUBSTRING_INDEX(r.worker, ':', 1), COUNT(*) FROM noop_runs r "
            "JOIN jobs j ON j.id = r.job_id WHERE j.%s GROUP BY 1 ORDER BY 1"
            % self.where(tag)))
        return jobs, lost, twice, per_host


def have_netns():
    """Network namespaces can be made here (root, iproute2)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = "ephprobe%d" % os.getpid()
    ok = ip("netns", "add", probe, check=False).returncode == 0
    ip("netns", "del", probe, check=False)
    return ok

