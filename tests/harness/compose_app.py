"""A compose project run by hand beside Ephemera, as benches' baselines do:
which compose command this machine has, waiting until every container is
healthy, and the web service's address."""
import subprocess
import time


def _out(*args):
    return subprocess.run(args, check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True).stdout


def compose_cmd():
    ok = subprocess.run(["docker", "compose", "version"], stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL).returncode == 0
    return ["docker", "compose"] if ok else ["docker-compose"]


def wait_healthy(project):
    """Polls until the project has containers and each reports healthy;
    returns their ids."""
    while True:
        ids = _out("docker", "ps", "-q", "--filter",
                   "label=com.docker.compose.project=%s" % project).split()
        states = [_out("docker", "inspect", "-f", "{{.State.Health.Status}}", i).strip()
                  for i in ids]
        if ids and all(s == "healthy" for s in states):
            return ids
        time.sleep(0.05)


def web_ip(ids):
    """The address of the container among `ids` whose name holds "web"."""
    web = [i for i in ids if "web" in _out("docker", "inspect", "-f", "{{.Name}}", i)][0]
    return _out("docker", "inspect", "-f",
                "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", web).strip()
