#!/usr/bin/env python3
"""`make test-e2e`: a pull request's whole life against real GitHub, AWS and
Cloudflare, on a deployed installation (docs/deploy.md).

  branch + commit + PR in a throwaway repository -> the Ephemera comment
  names the preview URL -> the URL serves the commit through Access with
  the CI service token (and not without it) -> a push -> the new commit
  is served -> close -> the environment's instance, parameters, tunnel
  and DNS record are gone, checked by listing the real resources.

The steps take their endpoints as arguments (Lifecycle(github_api=...,
aws_endpoint=..., cloudflare_api=..., edge=...)), so the emulated cloud
lifecycle can run the same code against the fakes and moto. Without the
credentials it needs it prints what is missing, "skipped", and exits 0.
Ends with "N passed, N failed"."""

import base64
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def deploy_env():
    """infra/deploy.env's NAME=value lines (no shell evaluation)."""
    out = {}
    try:
        with open(os.path.join(ROOT, "infra", "deploy.env")) as f:
            for line in f:
                m = re.match(r"^([A-Z0-9_]+)=(.*)$", line.strip())
                if m:
                    out[m.group(1)] = m.group(2).strip("'\"")
    except OSError:
        pass
    return out


def need():
    """(settings, what is missing)."""
    env = dict(deploy_env())
    env.update({k: v for k, v in os.environ.items() if v})
    missing = []
    for key, why in [
            ("E2E_GITHUB_REPO", "owner/name of a throwaway repository with a docker-compose.yml (infra/deploy.env)"),
            ("EPHEMERA_E2E_GITHUB_TOKEN", "a token that may push branches and open PRs there (environment)"),
            ("CF_ACCESS_CLIENT_ID", "the Access service token's id (infra/cloudflare output e2e_service_token_id)"),
            ("CF_ACCESS_CLIENT_SECRET", "its secret (environment)"),
            ("CLOUDFLARE_API_TOKEN", "a token that may read tunnels and DNS, to check teardown (environment)")]:
        if not env.get(key):
            missing.append("%s: %s" % (key, why))
    for f in ("aws.json", "cloudflare.json"):
        if not os.path.exists(os.path.join(ROOT, "infra", "out", f)):
            missing.append("infra/out/%s: a deployed installation (make tf-apply, make deploy)" % f)
    try:
        import boto3
        if boto3.Session(profile_name=env.get("AWS_PROFILE")).get_credentials() is None:
            missing.append("AWS credentials (AWS_PROFILE in infra/deploy.env or AWS_* variables)")
    except Exception as e:  # no boto3, or an unknown profile
        missing.append("AWS: python3 boto3 with credentials (%s)" % e.__class__.__name__)
    return env, missing


class Http:
    def __init__(self, base, headers):
        self.base, self.headers = base.rstrip("/"), headers

    def call(self, method, path, body=None, headers=None):
        h = dict(self.headers, **(headers or {}))
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        req = urllib.request.Request(path if path.startswith("http") else self.base + path,
                                     data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw[:1] in (b"{", b"[") else raw)
        except urllib.error.HTTPError as e:
            return e.code, e.read()


class Lifecycle:
    def __init__(self, repo, github_api, github_token, instance, zone, zone_id, account_id,
                 cloudflare_api, cloudflare_token, access_id, access_secret,
                 region, aws_endpoint=None, edge=None, timeout=900):
        import boto3
        self.repo, self.instance, self.zone = repo, instance, zone
        self.zone_id, self.account_id, self.timeout = zone_id, account_id, timeout
        self.gh = Http(github_api, {"Authorization": "Bearer " + github_token,
                                    "Accept": "application/vnd.github+json",
                                    "User-Agent": "ephemera-e2e"})
        self.cf = Http(cloudflare_api, {"Authorization": "Bearer " + cloudflare_token})
        self.access = {"CF-Access-Client-Id": access_id, "CF-Access-Client-Secret": access_secret}
        self.edge = edge
        self.ec2 = boto3.client("ec2", region_name=region, endpoint_url=aws_endpoint)
        self.ssm = boto3.client("ssm", region_name=region, endpoint_url=aws_endpoint)
        self.branch = "ephemera-e2e-%d" % int(time.time())

    def wait(self, what, fn, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while time.monotonic() < deadline:
            v = fn()
            if v:
                return v
            time.sleep(10)
        raise AssertionError("timed out: " + what)

    def commit(self, text):
        path = "/repos/%s/contents/ephemera-e2e.txt" % self.repo
        st, cur = self.gh.call("GET", path + "?ref=" + self.branch)
        body = {"message": "e2e: " + text, "branch": self.branch,
                "content": base64.b64encode(text.encode()).decode()}
        if st == 200:
            body["sha"] = cur["sha"]
        st, out = self.gh.call("PUT", path, body)
        assert st in (200, 201), (st, out)
        return out["commit"]["sha"]

    def open_pr(self):
        st, repo = self.gh.call("GET", "/repos/" + self.repo)
        assert st == 200, (st, repo)
        st, ref = self.gh.call("GET", "/repos/%s/git/ref/heads/%s" % (self.repo, repo["default_branch"]))
        assert st == 200, (st, ref)
        st, out = self.gh.call("POST", "/repos/%s/git/refs" % self.repo,
                               {"ref": "refs/heads/" + self.branch, "sha": ref["object"]["sha"]})
        assert st == 201, (st, out)
        sha = self.commit("opened")
        st, pr = self.gh.call("POST", "/repos/%s/pulls" % self.repo,
                              {"title": "Ephemera e2e", "head": self.branch,
                               "base": repo["default_branch"]})
        assert st == 201, (st, pr)
        return pr["number"], sha

    def preview_url(self, number, sha):
        """The URL in Ephemera's comment once it reports `sha` deployed."""
        def find():
            st, comments = self.gh.call("GET", "/repos/%s/issues/%d/comments?per_page=100"
                                        % (self.repo, number))
            for c in comments if st == 200 else []:
                if sha[:7] in c["body"]:
                    m = re.search(r"https://[a-z0-9-]+\.%s/" % re.escape(self.zone), c["body"])
                    if m and "fail" not in c["body"].lower():
                        return m.group(0)
            return None
        return self.wait("the preview of %s" % sha[:7], find)

    def fetch(self, url, access=True):
        headers = dict(self.access) if access else {}
        target = url
        if self.edge:  # a fake edge: same Host, another address
            headers["Host"] = url.split("/")[2]
            target = self.edge.rstrip("/") + "/"
        req = urllib.request.Request(target, headers=headers)
        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def leftovers(self, slug):
        out = []
        r = self.ec2.describe_instances(Filters=[
            {"Name": "tag:ephemera:instance", "Values": [self.instance]},
            {"Name": "tag:ephemera:env", "Values": [slug]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}])
        out += [i["InstanceId"] for res in r["Reservations"] for i in res["Instances"]]
        r = self.ssm.get_parameters_by_path(Path="/%s/%s/" % (self.instance, slug), Recursive=True)
        out += [p["Name"] for p in r["Parameters"]]
        st, t = self.cf.call("GET", "/accounts/%s/cfd_tunnel?is_deleted=false&name=%s-%s"
                             % (self.account_id, self.instance, slug))
        out += ["tunnel " + x["id"] for x in (t["result"] if st == 200 else [])]
        st, d = self.cf.call("GET", "/zones/%s/dns_records?name=%s.%s" % (self.zone_id, slug, self.zone))
        out += ["dns " + x["id"] for x in (d["result"] if st == 200 else [])]
        return out

    def run(self, report):
        number, sha = self.open_pr()
        try:
            url = self.preview_url(number, sha)
            slug = url.split("//")[1].split(".")[0]
            report("preview deployed at %s" % url, True)
            st, _ = self.fetch(url, access=False)
            report("without Access credentials: %d (login redirect expected)" % st, st in (302, 401, 403))
            st, body = self.fetch(url)
            report("through Access with the service token: %d" % st, st == 200)
            sha2 = self.commit("pushed")
            self.preview_url(number, sha2)
            st, _ = self.fetch(url)
            report("after a push, %s served: %d" % (sha2[:7], st), st == 200)
        finally:
            self.gh.call("PATCH", "/repos/%s/pulls/%d" % (self.repo, number), {"state": "closed"})
        try:
            self.wait("teardown", lambda: not self.leftovers(slug))
            report("closed: nothing of %s left (instance, parameters, tunnel, DNS)" % slug, True)
        except AssertionError:
            report("closed: left behind: %s" % ", ".join(self.leftovers(slug)), False)
        self.gh.call("DELETE", "/repos/%s/git/refs/heads/%s" % (self.repo, self.branch))


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **kw):
        return None


def main():
    env, missing = need()
    if missing:
        print("test-e2e: skipped: it runs against real GitHub, AWS and Cloudflare and needs:")
        for m in missing:
            print("  - " + m)
        print("e2e: 0 passed, 0 failed, 1 skipped")
        return 0
    with open(os.path.join(ROOT, "infra", "out", "aws.json")) as f:
        aws = json.load(f)["config"]["value"]
    with open(os.path.join(ROOT, "infra", "out", "cloudflare.json")) as f:
        cf = json.load(f)["config"]["value"]
    os.environ.setdefault("AWS_PROFILE", env.get("AWS_PROFILE", ""))
    counts = {True: 0, False: 0}

    def report(what, ok):
        counts[bool(ok)] += 1
        print("%s %s" % ("ok  " if ok else "FAIL", what))

    try:
        Lifecycle(repo=env["E2E_GITHUB_REPO"], github_api="https://api.github.com",
                  github_token=env["EPHEMERA_E2E_GITHUB_TOKEN"],
                  instance=aws["environments.instance"], zone=cf["cloudflare.zone"],
                  zone_id=cf["cloudflare.zone_id"], account_id=cf["cloudflare.account_id"],
                  cloudflare_api="https://api.cloudflare.com/client/v4",
                  cloudflare_token=env["CLOUDFLARE_API_TOKEN"],
                  access_id=env["CF_ACCESS_CLIENT_ID"], access_secret=env["CF_ACCESS_CLIENT_SECRET"],
                  region=aws["aws.region"]).run(report)
    except AssertionError as e:
        report(str(e), False)
    print("e2e: %d passed, %d failed" % (counts[True], counts[False]))
    return 1 if counts[False] else 0


if __name__ == "__main__":
    sys.exit(main())
