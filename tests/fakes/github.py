#!/usr/bin/env python3
"""A fake of the GitHub REST API, for the points Ephemera depends on.

Shaped on the recordings in tests/fixtures/github/api/: the same status
codes (201 on create, 200 on edit, 404/422 bodies with `message` and
`documentation_url`), `Link` pagination with absolute URLs, rate-limit
headers, and installation tokens that expire.

Behaviours (what the tests rely on):
- App JWTs are verified with `cryptography` (RS256 over the App's public
  key, iat/exp window, iss = App id): an independent check of our signer.
- POST /app/installations/{id}/access_tokens issues `ghs_` tokens that
  expire after `token_ttl` seconds (settable); `repositories` and
  `permissions` limit a token (422 when a permission is not granted).
- Comments are listed `per_page` (default 30, max 100) with a `Link`
  header, so a marker on page 3 is found only by following `next`.
- Deployment statuses and commit statuses reject an invalid `state` with
  422 "Validation Failed", as GitHub does.
- Faults can be injected for the next N matching requests: any status
  (5xx), every token expiring just before the request, the primary
  rate limit (403 + x-ratelimit-remaining 0 + reset),
  the secondary limit (403 + Retry-After), or a delay after a request has
  been carried out (to kill a client between "created" and "recorded"),
  or a carried-out request's answer cut short ("kind": "truncate").
  With "each": true a fault hits the first call of each kind only
  (faults.py), so a whole lifecycle meets it once at every step; with
  "body" (a regex) only requests whose body matches it, so a fault meant
  for one PR is not spent on another's.
- Git over smart HTTP (`/{owner}/{repo}.git/...`, fetch only) for the
  repositories given in /_fake/config `git`, as GitHub serves private
  repositories to an App: HTTP Basic with an installation token as the
  password (any user name); no or a bad token → 401 with a Basic
  challenge, a token not covering the repository or without `contents`
  → 404, a push → 403. Every attempt is recorded in `git`.
- /_fake/state returns everything recorded, for the tests to read back.
- /_fake/pr/{owner}/{repo}/{number} returns what a reviewer sees on the
  PR now, not what was sent: the bot's comments (current bodies), every
  Deployment of its environment (`pr-{number}`, or ?environment=) with
  its last status, and the last commit status per (commit, context).

Run: python3 tests/fakes/github.py --port P --app-id N --public-key FILE
Listens on 127.0.0.1 only.
"""
import argparse
import base64
import json
import os
import re
import secrets
import subprocess
import threading
import time

from cryptography.hazmat.primitives import hashes, serialization

from faults import first_of_each, truncate
from cryptography.hazmat.primitives.asymmetric import padding
from flask import Flask, Response, request

DOCS = "https://docs.github.com/rest"
REACTIONS = {"+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"}
DEPLOY_STATES = {"error", "failure", "inactive", "in_progress", "queued", "pending",
                 "success"}
COMMIT_STATES = {"error", "failure", "pending", "success"}


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class State:
    def __init__(self, app_id, public_key):
        self.lock = threading.RLock()
        self.app_id = app_id
        self.public_key = public_key
        self.reset()

    def reset(self):
        self.token_ttl = 3600
        # installation id -> repos ("owner/repo") and granted permissions
        self.installations = {}
        self.collaborators = {}  # login -> (permission, role_name) or None (404)
        self.tokens = {}  # token -> dict(inst, expires, repos, permissions)
        self.tokens_issued = []  # (inst, repositories, permissions) per token
        self.jwts = []  # decoded claims of every accepted JWT
        self.jwt_rejected = []
        self.requests = []
        self.next_id = 1000
        self.comments = {}  # id -> comment
        self.deployments = {}  # id -> deployment (+ "statuses")
        self.statuses = []  # commit statuses
        self.reactions = []
        self.faults = []
        self.git_repos = {}  # "owner/repo" -> path of a local git repository
        self.git = []  # {repo, service, auth: ok|none|bad|denied}
        self.bot = "ephemera-test[bot]"

    def new_id(self):
        self.next_id += 1
        return self.next_id


def make_app(state):
    app = Flask("github-fake")

    def err(status, message, headers=None, errors=None):
        body = {"message": message, "documentation_url": DOCS}
        if errors is not None:
            body["errors"] = errors
        r = Response(json.dumps(body), status=status, mimetype="application/json")
        for k, v in (headers or {}).items():
            r.headers[k] = v
        return r

    def ok(obj, status=200, headers=None):
        r = Response(json.dumps(obj), status=status, mimetype="application/json")
        r.headers["x-ratelimit-limit"] = "5000"
        r.headers["x-ratelimit-remaining"] = "4999"
        r.headers["x-ratelimit-reset"] = str(int(time.time()) + 3600)
        for k, v in (headers or {}).items():
            r.headers[k] = v
        return r

    def base():
        return request.host_url.rstrip("/")

    # ---- faults -----------------------------------------------------------

    def fault_applies(f):
        """Whether fault `f` has hits left and matches this request: its
        method, path and (with "body") body; an "each" fault marks the
        call's kind as met. Under state.lock."""
        if f["times"] <= 0 or f["method"] not in ("*", request.method):
            return False
        if not re.search(f["path"], request.path):
            return False
        if "body" in f and not re.search(f["body"], request.get_data(as_text=True)):
            return False
        return first_of_each(f, request.method, request.path)

    @app.before_request
    def record_and_inject():
        if request.path.startswith("/_fake/"):
            return None
        body = request.get_data(as_text=True)
        auth = request.headers.get("Authorization", "")
        kind = "none"
        if auth.startswith("Bearer ey"):
            kind = "jwt"
        elif auth.startswith("Bearer ghs_") or auth.startswith("token ghs_"):
            kind = "token"
        with state.lock:
            state.requests.append({
                "method": request.method, "path": request.path,
                "query": request.query_string.decode(), "auth": kind,
                "body": body, "t": time.time(),
                "user_agent": request.headers.get("User-Agent", ""),
            })
            for f in state.faults:
                if f.get("after") or not fault_applies(f):
                    continue
                f["times"] -= 1
                f["hits"] = f.get("hits", 0) + 1
                headers = dict(f.get("headers", {}))
                if f.get("kind") == "expire":
                    # The token dies just before this request: mid-run.
                    for t in state.tokens.values():
                        t["expires"] = 0
                    continue
                if f.get("kind") == "primary":
                    headers["x-ratelimit-limit"] = "5000"
                    headers["x-ratelimit-remaining"] = "0"
                    headers["x-ratelimit-reset"] = str(int(time.time()) + f.get("reset_in", 2))
                    return err(403, "API rate limit exceeded for installation ID 1.",
                               headers)
                if f.get("kind") == "secondary":
                    headers["Retry-After"] = str(f.get("retry_after", 1))
                    return err(403, "You have exceeded a secondary rate limit. Please "
                               "wait a few minutes before you try again.", headers)
                return err(f.get("status", 500), f.get("message", "Server Error"), headers)
        return None

    @app.after_request
    def delay_after(resp):
        """A fault with "after": the request was carried out; the answer
        is held back for `delay` seconds (the client may be killed)."""
        if request.path.startswith("/_fake/"):
            return resp
        delay = 0
        with state.lock:
            for f in state.faults:
                if not f.get("after") or resp.status_code >= 300 or not fault_applies(f):
                    continue
                f["times"] -= 1
                f["hits"] = f.get("hits", 0) + 1
                if f.get("kind") == "truncate":
                    return truncate(resp)
                delay = f.get("delay", 30)
        if delay:
            time.sleep(delay)
        return resp

    # ---- authentication -----------------------------------------------------

    def verify_jwt():
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return None, err(401, "A JSON web token could not be decoded")
        token = auth[len("Bearer "):]
        try:
            h, p, s = token.split(".")
            header = json.loads(b64url_decode(h))
            claims = json.loads(b64url_decode(p))
            if header.get("alg") != "RS256":
                raise ValueError("alg")
            state.public_key.verify(b64url_decode(s), (h + "." + p).encode(),
                                    padding.PKCS1v15(), hashes.SHA256())
        except Exception as e:  # noqa: BLE001 - any failure is a 401
            with state.lock:
                state.jwt_rejected.append(repr(e))
            return None, err(401, "A JSON web token could not be decoded")
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int) or iat > now + 60 \
                or exp <= now or exp - iat > 660 or \
                str(claims.get("iss")) != str(state.app_id):
            with state.lock:
                state.jwt_rejected.append(claims)
            return None, err(401, "'Expiration time' claim ('exp') is too far in the "
                             "future" if isinstance(exp, int) and exp - now > 600
                             else "Integration not found")
        with state.lock:
            state.jwts.append(claims)
        return claims, None

    def token_for(repo, need=None):
        """The token's record, or an error response. `need` is
        (permission, level) the endpoint requires."""
        auth = request.headers.get("Authorization", "")
        parts = auth.split(" ", 1)
        if len(parts) != 2 or parts[0] not in ("Bearer", "token"):
            return None, err(401, "Requires authentication")
        with state.lock:
            t = state.tokens.get(parts[1])
            if t is None or t["expires"] <= time.time():
                return None, err(401, "Bad credentials")
            if t["repos"] is not None and repo not in t["repos"]:
                return None, err(404, "Not Found")
            inst = state.installations.get(t["inst"], {})
            if repo not in inst.get("repos", []):
                return None, err(404, "Not Found")
            if need:
                perm, level = need
                have = t["permissions"].get(perm)
                if have is None or (level == "write" and have != "write"):
                    return None, err(403, "Resource not accessible by integration")
        return t, None

    # ---- App endpoints ------------------------------------------------------

    @app.post("/app/installations/<int:inst>/access_tokens")
    def access_token(inst):
        _, e = verify_jwt()
        if e:
            return e
        try:
            req = json.loads(request.get_data(as_text=True) or "{}")
            if not isinstance(req, dict):
                raise ValueError
        except ValueError:
            return err(400, "Problems parsing JSON")
        with state.lock:
            if inst not in state.installations:
                return err(404, "Not Found")
            granted = dict(state.installations[inst]["permissions"])
            perms = req.get("permissions", granted)
            if not isinstance(perms, dict):
                return err(400, "Problems parsing JSON")
            for k, v in perms.items():
                if k not in granted or (v == "write" and granted[k] != "write"):
                    return err(422, "The permissions requested are not granted to "
                               "this installation.")
            repos = None
            if "repositories" in req:
                owner_repos = state.installations[inst]["repos"]
                repos = []
                for name in req["repositories"]:
                    full = [r for r in owner_repos if r.split("/", 1)[1] == name]
                    if not full:
                        return err(422, "There is at least one repository that does "
                                   "not exist or is not accessible to the parent "
                                   "installation.")
                    repos += full
            token = "ghs_" + secrets.token_urlsafe(27)[:36]
            expires = time.time() + state.token_ttl
            state.tokens[token] = {"inst": inst, "expires": expires, "repos": repos,
                                   "permissions": perms}
            state.tokens_issued.append({"inst": inst, "repositories": repos,
                                        "permissions": perms})
        return ok({"token": token, "expires_at": iso(expires), "permissions": perms,
                   "repository_selection": "selected" if repos else "all"}, 201)

    @app.get("/repos/<owner>/<repo>/installation")
    def repo_installation(owner, repo):
        _, e = verify_jwt()
        if e:
            return e
        full = owner + "/" + repo
        with state.lock:
            for inst, v in state.installations.items():
                if full in v["repos"]:
                    return ok({"id": inst, "app_id": state.app_id,
                               "permissions": v["permissions"], "target_type": "User",
                               "access_tokens_url": "%s/app/installations/%d/"
                               "access_tokens" % (base(), inst)})
        return err(404, "Not Found")

    # ---- comments -----------------------------------------------------------

    def comment_json(c):
        return {k: v for k, v in c.items() if not k.startswith("_")}

    @app.get("/repos/<owner>/<repo>/issues/<int:num>/comments")
    def list_comments(owner, repo, num):
        full = owner + "/" + repo
        _, e = token_for(full, ("issues", "read"))
        if e:
            return e
        per_page = min(int(request.args.get("per_page", 30)), 100)
        page = max(int(request.args.get("page", 1)), 1)
        with state.lock:
            items = [c for c in sorted(state.comments.values(), key=lambda c: c["id"])
                     if c["_repo"] == full and c["_issue"] == num]
        last = max(1, (len(items) + per_page - 1) // per_page)
        chunk = items[(page - 1) * per_page:page * per_page]
        url = "%s/repos/%s/issues/%d/comments?per_page=%d&page=" % (base(), full, num,
                                                                     per_page)
        links = []
        if page < last:
            links.append('<%s%d>; rel="next"' % (url, page + 1))
            links.append('<%s%d>; rel="last"' % (url, last))
        if page > 1:
            links.append('<%s1>; rel="first"' % url)
            links.append('<%s%d>; rel="prev"' % (url, page - 1))
        headers = {"Link": ", ".join(links)} if links else {}
        return ok([comment_json(c) for c in chunk], 200, headers)

    def new_comment(full, num, body, login, user_type, app=True):
        cid = state.new_id()
        now = iso(time.time())
        c = {"id": cid, "node_id": "IC_%d" % cid,
             "url": "%s/repos/%s/issues/comments/%d" % (base(), full, cid),
             "html_url": "https://github.com/%s/pull/%d#issuecomment-%d" % (full, num,
                                                                           cid),
             "issue_url": "%s/repos/%s/issues/%d" % (base(), full, num),
             "body": body, "user": {"login": login, "id": 1, "type": user_type},
             "created_at": now, "updated_at": now, "author_association": "NONE",
             "performed_via_github_app": {"id": state.app_id, "slug": "ephemera-test"}
             if app else None,
             "_repo": full, "_issue": num, "_edits": 0}
        state.comments[cid] = c
        return c

    @app.post("/repos/<owner>/<repo>/issues/<int:num>/comments")
    def create_comment(owner, repo, num):
        full = owner + "/" + repo
        _, e = token_for(full, ("issues", "write"))
        if e:
            return e
        body = (request.get_json(silent=True) or {}).get("body")
        if not isinstance(body, str) or not body:
            return err(422, "Validation Failed",
                       errors=[{"resource": "IssueComment", "code": "missing_field",
                                "field": "body"}])
        if len(body) > 65536:
            return err(422, "Validation Failed",
                       errors=[{"resource": "IssueComment", "code": "custom",
                                "field": "body", "message": "body is too long"}])
        with state.lock:
            c = new_comment(full, num, body, state.bot, "Bot")
        return ok(comment_json(c), 201, {"Location": c["url"]})

    @app.patch("/repos/<owner>/<repo>/issues/comments/<int:cid>")
    def edit_comment(owner, repo, cid):
        full = owner + "/" + repo
        _, e = token_for(full, ("issues", "write"))
        if e:
            return e
        body = (request.get_json(silent=True) or {}).get("body")
        with state.lock:
            c = state.comments.get(cid)
            if c is None or c["_repo"] != full:
                return err(404, "Not Found")
            if c["user"]["login"] != state.bot:
                return err(403, "Resource not accessible by integration")
            if not isinstance(body, str) or not body:
                return err(422, "Validation Failed")
            c["body"] = body
            c["updated_at"] = iso(time.time())
            c["_edits"] += 1
            return ok(comment_json(c))

    @app.post("/repos/<owner>/<repo>/issues/comments/<int:cid>/reactions")
    def react(owner, repo, cid):
        full = owner + "/" + repo
        _, e = token_for(full, ("issues", "write"))
        if e:
            return e
        content = (request.get_json(silent=True) or {}).get("content")
        if content not in REACTIONS:
            return err(422, "Validation Failed")
        with state.lock:
            if cid not in state.comments:
                return err(404, "Not Found")
            for r in state.reactions:
                if r["comment_id"] == cid and r["content"] == content:
                    return ok(r, 200)
            r = {"id": state.new_id(), "comment_id": cid, "content": content,
                 "user": {"login": state.bot, "type": "Bot"}}
            state.reactions.append(r)
        return ok(r, 201)

    # ---- deployments and statuses -------------------------------------------

    @app.post("/repos/<owner>/<repo>/deployments")
    def create_deployment(owner, repo):
        full = owner + "/" + repo
        _, e = token_for(full, ("deployments", "write"))
        if e:
            return e
        req = request.get_json(silent=True)
        if not isinstance(req, dict) or not isinstance(req.get("ref"), str):
            return err(422, "Validation Failed",
                       errors=[{"resource": "Deployment", "code": "missing_field",
                                "field": "ref"}])
        with state.lock:
            did = state.new_id()
            env = req.get("environment", "production")
            d = {"id": did, "url": "%s/repos/%s/deployments/%d" % (base(), full, did),
                 "sha": req["ref"], "ref": req["ref"], "task": req.get("task", "deploy"),
                 "payload": req.get("payload", {}), "environment": env,
                 "original_environment": env, "description": req.get("description"),
                 "transient_environment": bool(req.get("transient_environment", False)),
                 "production_environment": bool(req.get("production_environment",
                                                        env == "production")),
                 "created_at": iso(time.time()), "updated_at": iso(time.time()),
                 "statuses_url": "%s/repos/%s/deployments/%d/statuses" % (base(), full,
                                                                          did),
                 "_repo": full, "_request": req, "_statuses": []}
            state.deployments[did] = d
        return ok(comment_json(d), 201, {"Location": d["url"]})

    @app.get("/repos/<owner>/<repo>/deployments")
    def list_deployments(owner, repo):
        full = owner + "/" + repo
        _, e = token_for(full, ("deployments", "read"))
        if e:
            return e
        sha, env = request.args.get("sha"), request.args.get("environment")
        with state.lock:
            out = [comment_json(d) for d in sorted(state.deployments.values(),
                                                   key=lambda d: -d["id"])
                   if d["_repo"] == full and (sha is None or d["sha"] == sha)
                   and (env is None or d["environment"] == env)]
        return ok(out[:int(request.args.get("per_page", 30))])

    @app.post("/repos/<owner>/<repo>/deployments/<int:did>/statuses")
    def deployment_status(owner, repo, did):
        full = owner + "/" + repo
        _, e = token_for(full, ("deployments", "write"))
        if e:
            return e
        req = request.get_json(silent=True) or {}
        with state.lock:
            d = state.deployments.get(did)
            if d is None or d["_repo"] != full:
                return err(404, "Not Found")
            if req.get("state") not in DEPLOY_STATES:
                return err(422, "Validation Failed",
                           errors=[{"resource": "DeploymentStatus", "code": "custom",
                                    "field": "state",
                                    "message": "state is not included in the list"}])
            st = {"id": state.new_id(), "state": req["state"],
                  "log_url": req.get("log_url", req.get("target_url", "")),
                  "environment_url": req.get("environment_url", ""),
                  "description": req.get("description", ""),
                  "environment": d["environment"], "created_at": iso(time.time())}
            d["_statuses"].append(st)
            # Documented: auto_inactive retires prior *non-transient*,
            # non-production deployments of the same environment.
            if req["state"] == "success" and req.get("auto_inactive", True):
                for o in state.deployments.values():
                    if o["id"] != did and o["_repo"] == full and \
                            o["environment"] == d["environment"] and \
                            not o["transient_environment"] and \
                            not o["production_environment"] and \
                            (not o["_statuses"] or
                             o["_statuses"][-1]["state"] != "inactive"):
                        o["_statuses"].append({"id": state.new_id(), "state": "inactive",
                                               "auto": True})
        return ok(st, 201)

    @app.post("/repos/<owner>/<repo>/statuses/<sha>")
    def commit_status(owner, repo, sha):
        full = owner + "/" + repo
        _, e = token_for(full, ("statuses", "write"))
        if e:
            return e
        req = request.get_json(silent=True) or {}
        if req.get("state") not in COMMIT_STATES:
            return err(422, "Validation Failed",
                       errors=[{"resource": "Status", "code": "custom", "field": "state"}])
        with state.lock:
            st = {"id": state.new_id(), "sha": sha, "repo": full, "state": req["state"],
                  "target_url": req.get("target_url"),
                  "description": req.get("description"),
                  "context": req.get("context", "default"),
                  "created_at": iso(time.time())}
            state.statuses.append(st)
        return ok(st, 201)

    @app.get("/repos/<owner>/<repo>/collaborators/<user>/permission")
    def permission(owner, repo, user):
        full = owner + "/" + repo
        _, e = token_for(full, ("metadata", "read"))
        if e:
            return e
        with state.lock:
            if user not in state.collaborators:
                return ok({"permission": "none", "role_name": "none",
                           "user": {"login": user}})
            v = state.collaborators[user]
        if v is None:
            return err(404, "Not Found")
        return ok({"permission": v[0], "role_name": v[1], "user": {"login": user}})

    # ---- git over smart HTTP ---------------------------------------------------

    def git_auth(repo):
        """"ok", or why not: none (no credentials), bad, denied."""
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            return "none"
        try:
            _, _, token = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            return "bad"
        with state.lock:
            t = state.tokens.get(token)
            if t is None or t["expires"] <= time.time():
                return "bad"
            inst = state.installations.get(t["inst"], {})
            if (t["repos"] is not None and repo not in t["repos"]) or \
                    repo not in inst.get("repos", []) or \
                    t["permissions"].get("contents") not in ("read", "write"):
                return "denied"
        return "ok"

    @app.route("/<owner>/<name>.git/<path:rest>", methods=["GET", "POST"])
    def git_http(owner, name, rest):
        repo = "%s/%s" % (owner, name)
        service = request.args.get("service") or rest.rsplit("/", 1)[-1]
        with state.lock:
            path = state.git_repos.get(repo)
        if service == "git-receive-pack":
            return err(403, "Write access to repository not granted.")
        how = git_auth(repo) if path else "denied"
        with state.lock:
            state.git.append({"repo": repo, "service": service, "auth": how})
        if how in ("none", "bad"):
            return Response("Invalid username or token.\n", 401,
                            {"WWW-Authenticate": 'Basic realm="GitHub"'})
        if how == "denied":
            return Response("Repository not found.\n", 404)
        if os.path.isdir(os.path.join(path, ".git")):
            path = os.path.join(path, ".git")
        env = {"PATH": "/usr/bin:/bin", "GIT_PROJECT_ROOT": path,
               "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": "/" + rest,
               "REQUEST_METHOD": request.method,
               "QUERY_STRING": request.query_string.decode(),
               "CONTENT_TYPE": request.headers.get("Content-Type", ""),
               "HTTP_CONTENT_ENCODING": request.headers.get("Content-Encoding", ""),
               "GIT_PROTOCOL": request.headers.get("Git-Protocol", ""),
               # GitHub serves any commit by id, as a shallow fetch needs.
               "GIT_CONFIG_COUNT": "1",
               "GIT_CONFIG_KEY_0": "uploadpack.allowAnySHA1InWant",
               "GIT_CONFIG_VALUE_0": "true"}
        out = subprocess.run(["git", "http-backend"], input=request.get_data(), env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
        head, _, body = out.partition(b"\r\n\r\n")
        status, headers = 200, {}
        for line in head.decode().split("\r\n"):
            k, _, v = line.partition(": ")
            if k.lower() == "status":
                status = int(v.split()[0])
            elif k:
                headers[k] = v
        return Response(body, status, headers)

    # ---- control --------------------------------------------------------------

    @app.post("/_fake/config")
    def fake_config():
        req = request.get_json()
        with state.lock:
            if "token_ttl" in req:
                state.token_ttl = req["token_ttl"]
            for inst, v in req.get("installations", {}).items():
                state.installations[int(inst)] = v
            for user, v in req.get("collaborators", {}).items():
                state.collaborators[user] = tuple(v) if v else None
            state.git_repos.update(req.get("git", {}))
        return ok({})

    @app.post("/_fake/fault")
    def fake_fault():
        req = request.get_json()
        req.setdefault("method", "*")
        req.setdefault("times", 1)
        with state.lock:
            state.faults.append(req)
        return ok({})

    @app.post("/_fake/fault/clear")
    def fake_fault_clear():
        with state.lock:
            state.faults[:] = []
        return ok({})

    @app.post("/_fake/expire_tokens")
    def fake_expire():
        with state.lock:
            for t in state.tokens.values():
                t["expires"] = 0
        return ok({})

    @app.post("/_fake/comment")
    def fake_comment():
        req = request.get_json()
        with state.lock:
            c = new_comment(req["repo"], req["issue"], req["body"],
                            req.get("login", "someone"), req.get("type", "User"),
                            app=False)
        return ok(comment_json(c), 201)

    @app.post("/_fake/reset")
    def fake_reset():
        with state.lock:
            state.reset()
        return ok({})

    @app.get("/_fake/state")
    def fake_state():
        with state.lock:
            return ok({
                "comments": [dict(comment_json(c), repo=c["_repo"], issue=c["_issue"],
                                  edits=c["_edits"])
                             for c in sorted(state.comments.values(),
                                             key=lambda c: c["id"])],
                "deployments": [dict(comment_json(d), repo=d["_repo"],
                                     request=d["_request"], statuses=d["_statuses"])
                                for d in sorted(state.deployments.values(),
                                                key=lambda d: d["id"])],
                "statuses": state.statuses,
                "reactions": state.reactions,
                "requests": state.requests,
                "tokens_issued": state.tokens_issued,
                "jwts": state.jwts,
                "jwt_rejected": [str(x) for x in state.jwt_rejected],
                "faults": state.faults,
                "git": state.git,
            })

    @app.get("/_fake/pr/<owner>/<repo>/<int:num>")
    def fake_pr(owner, repo, num):
        full = owner + "/" + repo
        env = request.args.get("environment", "pr-%d" % num)
        with state.lock:
            comments = [c["body"] for c in sorted(state.comments.values(),
                                                  key=lambda c: c["id"])
                        if c["_repo"] == full and c["_issue"] == num and
                        c["user"]["type"] == "Bot"]
            deployments = []
            for d in sorted(state.deployments.values(), key=lambda d: d["id"]):
                if d["_repo"] != full or d["environment"] != env:
                    continue
                last = d["_statuses"][-1] if d["_statuses"] else {}
                deployments.append({
                    "id": d["id"], "sha": d["sha"], "state": last.get("state"),
                    "environment_url": last.get("environment_url", ""),
                    "log_url": last.get("log_url", ""),
                    "description": last.get("description", ""),
                    "history": [s["state"] for s in d["_statuses"]]})
            statuses = {}
            for s in state.statuses:  # in order: the last one wins
                if s["repo"] == full:
                    statuses["%s %s" % (s["sha"], s["context"])] = {
                        "sha": s["sha"], "context": s["context"], "state": s["state"],
                        "description": s["description"], "target_url": s["target_url"]}
        return ok({"comments": comments, "deployments": deployments,
                   "commit_statuses": list(statuses.values())})

    manifest_routes(app, state, err, ok)
    return app


# ---- the App manifest flow (`ephemera github-app create`) -------------------
# Self-contained: make_app calls manifest_routes() once. GitHub's side of
# https://docs.github.com/apps/sharing-github-apps/registering-a-github-app-from-a-manifest:
# the form post to /settings/apps/new (or an organisation's) that, once the
# user confirms, creates the App and redirects to the manifest's
# redirect_url with a one-time `code` and the caller's `state`; and
# POST /app-manifests/{code}/conversions, which answers 201 with the App's
# id, private key (pem), webhook secret and client credentials once, then
# 404 for that code (as for an unknown or expired one, after an hour).
# The created App becomes the one whose JWTs the fake verifies.

MANIFEST_PERMISSION_LEVELS = {"read", "write", "admin"}


def manifest_routes(app, state, err, ok):
    from cryptography.hazmat.primitives.asymmetric import rsa
    from flask import redirect

    with state.lock:
        state.manifest_codes = {}   # code -> (manifest, owner, expires)
        state.manifest_apps = []    # what was created, without secrets

    def new_app(org):
        try:
            m = json.loads(request.form.get("manifest", ""))
        except ValueError:
            return err(422, "Invalid manifest: not JSON")
        if not isinstance(m, dict):
            return err(422, "Invalid manifest")
        hook = m.get("hook_attributes") or {}
        if not m.get("url") or not isinstance(hook, dict) or not hook.get("url"):
            return err(422, "Invalid manifest: url and hook_attributes.url are required")
        perms = m.get("default_permissions") or {}
        if not isinstance(perms, dict) or \
                any(v not in MANIFEST_PERMISSION_LEVELS for v in perms.values()):
            return err(422, "Invalid manifest: default_permissions")
        if not isinstance(m.get("default_events", []), list):
            return err(422, "Invalid manifest: default_events")
        target = m.get("redirect_url")
        if not target:
            return err(422, "Invalid manifest: redirect_url is required here")
        code = secrets.token_hex(10)
        with state.lock:
            state.manifest_codes[code] = (m, org or "octocat", time.time() + 3600)
        sep = "&" if "?" in target else "?"
        q = "code=" + code
        if request.args.get("state") is not None:
            from urllib.parse import quote
            q += "&state=" + quote(request.args["state"], safe="")
        return redirect(target + sep + q, 302)

    @app.post("/settings/apps/new")
    def manifest_new_user_app():
        return new_app(None)

    @app.post("/organizations/<org>/settings/apps/new")
    def manifest_new_org_app(org):
        return new_app(org)

    @app.post("/app-manifests/<code>/conversions")
    def manifest_conversion(code):
        with state.lock:
            entry = state.manifest_codes.pop(code, None)
        if entry is None or entry[2] < time.time():
            return err(404, "Not Found")
        m, owner, _ = entry
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
        name = m.get("name") or "ephemera"
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        with state.lock:
            app_id = state.new_id()
            state.app_id = app_id
            state.public_key = key.public_key()
            state.manifest_apps.append({"id": app_id, "slug": slug, "owner": owner,
                                        "manifest": m})
        return ok({
            "id": app_id, "slug": slug, "node_id": "A_%d" % app_id, "name": name,
            "owner": {"login": owner, "id": 1, "type": "Organization"},
            "description": m.get("description"), "external_url": m["url"],
            "html_url": "https://github.com/apps/%s" % slug,
            "created_at": iso(time.time()), "updated_at": iso(time.time()),
            "permissions": m.get("default_permissions", {}),
            "events": m.get("default_events", []),
            "client_id": "Iv1.%s" % secrets.token_hex(8),
            "client_secret": secrets.token_hex(20),
            "webhook_secret": m.get("hook_attributes", {}).get("secret") or secrets.token_hex(20),
            "pem": pem,
        }, 201)

    @app.get("/_fake/manifest_apps")
    def manifest_apps():
        with state.lock:
            return ok(state.manifest_apps)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--app-id", type=int, required=True)
    ap.add_argument("--public-key", required=True)
    args = ap.parse_args()
    with open(args.public_key, "rb") as f:
        key = serialization.load_pem_public_key(f.read())
    app = make_app(State(args.app_id, key))
    import logging
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app.run(host="127.0.0.1", port=args.port, threaded=True)


if __name__ == "__main__":
    main()
