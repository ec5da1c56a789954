"""config/mariadb.cnf read as MariaDB reads it, and a running server's
values of the same settings, in one form so the two compare: sizes in
bytes, ON/OFF as 1/0, a bare option (skip_name_resolve) as 1."""
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CNF = os.path.join(ROOT, "config", "mariadb.cnf")
UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def norm(v):
    v = v.strip()
    if v.upper() in ("ON", "TRUE"):
        return "1"
    if v.upper() in ("OFF", "FALSE"):
        return "0"
    if v[:-1].isdigit() and v[-1:].upper() in UNITS:
        return str(int(v[:-1]) * UNITS[v[-1].upper()])
    return v


def settings(path=CNF, group="mariadbd"):
    """{name: value} of the file's [group], names with '_' (as the server's
    variables are spelled)."""
    out, cur = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                cur = line.strip("[]").strip()
                continue
            if cur != group:
                continue
            k, sep, v = line.partition("=")
            out[k.strip().replace("-", "_")] = norm(v) if sep else "1"
    return out


def server(socket, names):
    """{name: value} of the running server's global variables."""
    q = "SELECT " + ", ".join("@@GLOBAL.%s" % n for n in names)
    r = subprocess.run(["mariadb", "--no-defaults", "--socket", socket, "-uroot",
                        "-N", "-B", "-e", q],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True)
    return dict(zip(names, (norm(v) for v in r.stdout.rstrip("\n").split("\t"))))
