#!/usr/bin/env python3
"""Checks of infra/ and packer/ that run without providers or packer.

What this proves (and `make test` prints it): every .tf and .pkr.hcl file
is HCL that `terraform fmt` accepts unchanged; Terraform's own
configuration loader (`terraform providers`, offline) accepts both stacks'
structure; within each module every
var./local./data./resource reference names something declared, every
variable is used, counted resources are indexed and others are not, each
resource's provider is pinned in required_providers; templatefile() gets
exactly the names its template uses; the outputs' config map holds only
Ephemera's config keys; the IAM policies are deployed from the shared files
as is; the Packer template's sources, variables, scripts and pins resolve.
What it does not prove: that the resource types and their arguments match
the providers' schemas (`terraform validate` needs the providers, which
cannot be downloaded here) and anything only `plan` against real accounts
shows. Ends with "N passed, N failed, N skipped"."""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import hcl  # noqa: E402

# The settings the outputs may name (issues 10, 11 and lib/config.c).
CONFIG_KEYS = {
    "compute.provider", "exposure.provider", "environments.instance",
    "aws.region", "aws.endpoint_url", "aws.credentials_file", "aws.profile",
    "ec2.ami", "ec2.launch_template", "ec2.instance_types", "ec2.subnet_ids",
    "ec2.security_group_ids", "ec2.instance_profile",
    "ec2.ssm_parameter_prefix", "cloudflare.account_id", "cloudflare.zone_id",
    "cloudflare.zone", "cloudflare.access", "cloudflare.api_token_file",
    "cloudflare.wake_tunnel_id",
    "http.public_url",
}
REQUIRED_OUTPUTS = {
    "aws": {"compute.provider", "environments.instance", "aws.region",
            "ec2.launch_template", "ec2.instance_types", "ec2.subnet_ids",
            "ec2.security_group_ids", "ec2.instance_profile",
            "ec2.ssm_parameter_prefix"},
    "cloudflare": {"exposure.provider", "cloudflare.account_id",
                   "cloudflare.zone_id", "cloudflare.zone"},
}
BUILTIN_HEADS = {"path", "count", "each", "self", "terraform"}

results = []


def check(name):
    def wrap(fn):
        def run(*a):
            try:
                skip = fn(*a)
            except AssertionError as e:
                results.append(("FAIL", name, str(e)))
                return
            if skip:
                results.append(("skip", name, skip))
            else:
                results.append(("ok", name, ""))
        run.__name__ = fn.__name__
        return run
    return wrap


def tf_env():
    env = dict(os.environ)
    env["TF_CLI_CONFIG_FILE"] = "/dev/null"
    env["CHECKPOINT_DISABLE"] = "1"
    return env


def load(dirpath, pattern="*.tf"):
    files = sorted(glob.glob(os.path.join(dirpath, pattern)))
    return [(f, hcl.parse(open(f).read(), os.path.relpath(f, ROOT))) for f in files]


def blocks(parsed, kind):
    return [(f, b) for f, root in parsed for b in root.blocks if b.kind == kind]


@check("terraform fmt -check -recursive (infra/)")
def check_fmt(_=None):
    if not shutil.which("terraform"):
        return "terraform is not installed"
    r = subprocess.run(["terraform", "fmt", "-check", "-recursive", "-diff", "infra"],
                       cwd=ROOT, env=tf_env(), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    assert r.returncode == 0, "terraform fmt wants changes:\n" + r.stdout


@check("terraform providers: Terraform's own configuration loader accepts both stacks (offline)")
def check_tf_loader(_=None):
    """`terraform providers` needs no download: it decodes every module
    into Terraform's configuration model, which rejects unknown block
    types, duplicate declarations, count with for_each, bad variable
    validations and the like (not references or provider schemas)."""
    if not shutil.which("terraform"):
        return "terraform is not installed"
    for mod in ("aws", "cloudflare"):
        r = subprocess.run(["terraform", "-chdir=infra/" + mod, "providers", "-no-color"],
                           cwd=ROOT, env=tf_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        assert r.returncode == 0, "infra/%s:\n%s" % (mod, r.stdout)


@check("packer template parses as HCL (terraform fmt on a copy; packer is not installable here)")
def check_packer_fmt(_=None):
    if not shutil.which("terraform"):
        return "terraform is not installed"
    with tempfile.TemporaryDirectory() as d:
        for f in glob.glob(os.path.join(ROOT, "packer", "*.pkr.hcl")):
            shutil.copy(f, os.path.join(d, os.path.basename(f)[:-len(".pkr.hcl")] + ".tf"))
        r = subprocess.run(["terraform", "fmt", "-check", "-diff", d], env=tf_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert r.returncode == 0, "packer/*.pkr.hcl: " + r.stdout


def module_refs(parsed):
    """Every reference in every expression of the module, with the block
    it appears in."""
    out = []
    for f, root in parsed:
        for b in root.blocks:
            for code in b.code:
                for ref in hcl.refs(code):
                    out.append((os.path.relpath(f, ROOT), b, ref))
    return out


def check_module(mod):
    d = os.path.join(ROOT, "infra", mod)
    parsed = load(d)

    @check("infra/%s: references resolve, variables used, counts indexed" % mod)
    def refs_resolve():
        variables = {b.labels[0] for _, b in blocks(parsed, "variable")}
        local_names = set()
        for _, b in blocks(parsed, "locals"):
            local_names |= set(b.attrs)
        resources = {(b.labels[0], b.labels[1]): b for _, b in blocks(parsed, "resource")}
        datas = {(b.labels[0], b.labels[1]): b for _, b in blocks(parsed, "data")}
        providers = set()
        for _, t in blocks(parsed, "terraform"):
            for rp in t.blocks:
                if rp.kind == "required_providers":
                    providers |= set(rp.attrs)
        errors, used_vars = [], set()
        for f, b, (head, name, attr, indexed) in module_refs(parsed):
            where = "%s: %s %s" % (f, b.kind, " ".join(b.labels))
            if head == "var":
                used_vars.add(name)
                if name not in variables:
                    errors.append("%s: var.%s is not declared" % (where, name))
            elif head == "local":
                if name not in local_names:
                    errors.append("%s: local.%s is not defined" % (where, name))
            elif head == "data":
                target = datas.get((name, attr))
                if not target:
                    errors.append("%s: data.%s.%s does not exist" % (where, name, attr))
            elif head in BUILTIN_HEADS or head == "module":
                continue
            elif "_" in head:
                target = resources.get((head, name))
                if not target:
                    errors.append("%s: %s.%s is not a resource here" % (where, head, name))
                    continue
                counted = "count" in target.attrs or "for_each" in target.attrs
                if counted and indexed == "":
                    errors.append("%s: %s.%s has count but is used without an index"
                                  % (where, head, name))
                if not counted and indexed == "[":
                    errors.append("%s: %s.%s has no count but is indexed" % (where, head, name))
        for name in variables - used_vars:
            errors.append("infra/%s: variable %s is declared but never used" % (mod, name))
        for (rtype, rname) in list(resources) + list(datas):
            prov = rtype.split("_", 1)[0]
            if prov not in providers:
                errors.append("infra/%s: %s.%s needs provider %s, not in required_providers"
                              % (mod, rtype, rname, prov))
        for _, t in blocks(parsed, "terraform"):
            for rp in t.blocks:
                for p, code in rp.attrs.items():
                    raw = re.search(r'%s\s*=\s*\{[^}]*version\s*=\s*"([^"]+)"' % p, rp.raw)
                    if not raw:
                        errors.append("infra/%s: provider %s has no version constraint" % (mod, p))
        assert not errors, "\n".join(errors)

    @check("infra/%s: outputs' config map holds exactly Ephemera's config keys" % mod)
    def outputs_keys():
        config = [b for _, b in blocks(parsed, "output") if b.labels == ["config"]]
        assert config, "no output \"config\""
        keys = set(re.findall(r'^\s*"([a-z0-9_]+\.[a-z0-9_]+)"\s*=', config[0].raw, re.M))
        unknown = keys - CONFIG_KEYS
        missing = REQUIRED_OUTPUTS[mod] - keys
        assert not unknown, "not Ephemera config keys: %s" % sorted(unknown)
        assert not missing, "config keys missing from the output: %s" % sorted(missing)

    @check("infra/%s: templatefile() gets exactly its template's names" % mod)
    def templates():
        errors, seen = [], 0
        for f, root in parsed:
            text = open(f).read()
            for m in re.finditer(r'templatefile\("\$\{path\.module\}/([^"]+)",\s*\{(.*?)\n\s*\}\)',
                                 text, re.S):
                seen += 1
                tpl = os.path.join(d, m.group(1))
                assert os.path.exists(tpl), "%s: no template %s" % (f, m.group(1))
                given = set(re.findall(r"^\s*([a-z_]+)\s*=", m.group(2), re.M))
                body = open(tpl).read()
                used = set(re.findall(r"(?<!\$)\$\{([a-z_]+)\}", body))
                if used - given:
                    errors.append("%s: template uses %s, not given" % (tpl, sorted(used - given)))
                if given - used:
                    errors.append("%s: given %s, never used" % (tpl, sorted(given - used)))
        if not seen:
            return "no templatefile() in this module"
        assert not errors, "\n".join(errors)

    return [refs_resolve, outputs_keys, templates]


@check("infra/aws: IAM policies deployed from the shared files as is")
def check_policies(_=None):
    text = "".join(open(f).read() for f in glob.glob(os.path.join(ROOT, "infra/aws/*.tf")))
    for name in ("worker-policy.json", "instance-policy.json"):
        # Read with file() and passed straight through: no templating, no
        # jsonencode(jsondecode()) round trip that would reorder keys.
        m = re.findall(r'(\w+)\s*=\s*file\("\$\{path\.module\}/iam/%s"\)' % re.escape(name), text)
        assert len(m) == 1, "%s is not read exactly once with file()" % name
        uses = re.findall(r"local\.%s\b[^\n]*" % m[0], text)
        assert uses and all(re.match(r"local\.%s\s*$" % m[0], u) for u in uses), \
            "local.%s is not used as is: %s" % (m[0], uses)
    missing = [n for n in ("worker-policy.json", "instance-policy.json")
               if not os.path.exists(os.path.join(ROOT, "infra/aws/iam", n))]
    if missing:
        return ("infra/aws/iam/%s not in this tree yet (written on the aws branch); "
                "Terraform's use of them is checked, their content is not" % ", ".join(missing))
    for n in ("worker-policy.json", "instance-policy.json"):
        json.loads(open(os.path.join(ROOT, "infra/aws/iam", n)).read())
    # The moto suite must load the very same files.
    hits = subprocess.run(["grep", "-rlE", "infra/aws/iam|worker-policy\\.json", "tests/"],
                          cwd=ROOT, stdout=subprocess.PIPE, text=True).stdout.split()
    hits = [h for h in hits if not h.startswith("tests/infra/")]
    assert hits, "no test outside tests/infra reads infra/aws/iam (the moto suite should)"
    # The role worker-policy.json lets the workers pass is the role we make.
    pol = json.load(open(os.path.join(ROOT, "infra/aws/iam/worker-policy.json")))
    role = re.search(r'variable "instance_role_name".*?default\s*=\s*"([^"]+)"', text, re.S).group(1)
    passrole = [s for s in pol.get("Statement", [])
                if "iam:PassRole" in (s.get("Action") if isinstance(s.get("Action"), list)
                                      else [s.get("Action")])]
    if passrole:
        res = passrole[0].get("Resource")
        res = res if isinstance(res, list) else [res]
        import fnmatch
        arn = "arn:aws:iam::123456789012:role/%s" % role
        assert any(fnmatch.fnmatchcase(arn, r) for r in res), \
            "iam:PassRole allows %s, Terraform makes role %s" % (res, role)


@check("packer: sources, variables, scripts and version pins resolve")
def check_packer(_=None):
    parsed = load(os.path.join(ROOT, "packer"), "*.pkr.hcl")
    assert parsed, "no packer/*.pkr.hcl"
    variables = {b.labels[0]: b for _, b in blocks(parsed, "variable")}
    sources = {(b.labels[0], b.labels[1]) for _, b in blocks(parsed, "source")}
    errors, used = [], set()
    for f, b, (head, name, attr, _) in module_refs(parsed):
        if head == "var":
            used.add(name)
            if name not in variables:
                errors.append("%s: var.%s not declared" % (f, name))
    for _, b in blocks(parsed, "build"):
        for s in re.findall(r'"source\.([\w-]+)\.([\w-]+)"', b.raw):
            if s not in sources:
                errors.append("build uses source.%s.%s, not declared" % s)
        for script in re.findall(r'"\$\{path\.root\}/([^"]+)"', b.raw):
            if not os.path.exists(os.path.join(ROOT, "packer", script)):
                errors.append("build refers to packer/%s, which does not exist" % script)
    for name in set(variables) - used:
        errors.append("variable %s never used" % name)
    for name, b in variables.items():
        if name.endswith("_version") and "default" not in b.attrs:
            errors.append("variable %s: a version without a pinned default" % name)
    for _, p in blocks(parsed, "packer"):
        for rp in p.blocks:
            for plugin in re.findall(r'version\s*=\s*"([^"]+)"', rp.raw):
                if not plugin.startswith("= "):
                    errors.append("plugin version %r is not pinned with =" % plugin)
    prov = open(os.path.join(ROOT, "packer", "provision.sh")).read()
    for pkg, var in (("docker-ce", "DOCKER_VERSION"), ("docker-compose-plugin", "COMPOSE_VERSION"),
                     ("cloudflared", "CLOUDFLARED_VERSION")):
        if '"%s=$%s"' % (pkg, var) not in prov:
            errors.append("provision.sh installs %s without =$%s" % (pkg, var))
    # The workers call ephemera-host at EC2_HOST_SCRIPT; the image and the
    # emulated hosts (tests/cloud/host-image.sh) must put it there.
    aws_h = open(os.path.join(ROOT, "workers", "aws", "aws.h")).read()
    host = re.search(r'#define EC2_HOST_SCRIPT "([^"]+)"', aws_h).group(1)
    emu = open(os.path.join(ROOT, "tests", "cloud", "host-image.sh")).read()
    for name, text in (("packer/provision.sh", prov), ("tests/cloud/host-image.sh", emu)):
        if not re.search(r"install -m 755 \S+ \S*%s\"?\n" % re.escape(host), text):
            errors.append("%s does not install ephemera-host at %s (EC2_HOST_SCRIPT)"
                          % (name, host))
    assert not errors, "\n".join(errors)


@check("scripts/tf_config.py: Terraform's config maps become the control plane's settings")
def check_tf_config(_=None):
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import tf_config
    aws = {"config": {"value": {"compute.provider": "ec2", "environments.instance": "eph",
                                "aws.region": "eu-west-1", "ec2.subnet_ids": ["s-1", "s-2"],
                                "ec2.launch_template": "lt"}}}
    cf = {"config": {"value": {"exposure.provider": "cloudflare", "cloudflare.zone": "p.example",
                               "cloudflare.access": True, "http.public_url": "https://e.p.example"}}}
    text = tf_config.render(aws, cf)
    groups = dict(re.findall(r"^(\w+): \{\n(.*?)^\};", text, re.M | re.S))
    for key, want in [("compute.provider", '"ec2"'), ("aws.region", '"eu-west-1"'),
                      ("ec2.subnet_ids", '"s-1,s-2"'), ("cloudflare.access", "true"),
                      ("http.public_url", '"https://e.p.example"'), ("http.port", "8080"),
                      ("environments.preview_domain", '"p.example"'),
                      ("database.socket", '"/run/mysqld/mysqld.sock"')]:
        g, k = key.split(".", 1)
        assert re.search(r"^\t%s = %s;$" % (k, re.escape(want)), groups.get(g, ""), re.M), \
            "%s is not %s in:\n%s" % (key, want, text)
    assert len(re.findall(r"^http: \{", text, re.M)) == 1, "a group twice"
    rds = tf_config.render(aws, cf, "db.example")
    assert 'host = "db.example";' in rds and "socket" not in rds


@check("make test-e2e without credentials: skipped with what it needs, exit 0")
def check_e2e_skip(_=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "CF_", "CLOUDFLARE_", "E2E_", "EPHEMERA_E2E"))}
    env["AWS_SHARED_CREDENTIALS_FILE"] = env["AWS_CONFIG_FILE"] = "/nonexistent"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tests/e2e/lifecycle.py")], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert r.returncode == 0, r.stdout
    assert "test-e2e: skipped" in r.stdout and "EPHEMERA_E2E_GITHUB_TOKEN" in r.stdout, r.stdout
    assert r.stdout.rstrip().endswith("e2e: 0 passed, 0 failed, 1 skipped"), r.stdout


def main():
    check_fmt()
    check_tf_loader()
    check_packer_fmt()
    for mod in ("aws", "cloudflare"):
        for fn in check_module(mod):
            fn()
    check_policies()
    check_packer()
    check_tf_config()
    check_e2e_skip()
    failed = 0
    for status, name, detail in results:
        print("%-4s %s" % (status, name))
        if detail:
            print("     " + detail.replace("\n", "\n     "))
        failed += status == "FAIL"
    skipped = sum(1 for r in results if r[0] == "skip")
    print("not validated: resource types and arguments against the providers' schemas "
          "(terraform validate needs providers; none can be downloaded here)")
    print("infra: %d passed, %d failed, %d skipped"
          % (len(results) - failed - skipped, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
