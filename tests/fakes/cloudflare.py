#!/usr/bin/env python3
"""A fake of the Cloudflare API v4 and of Cloudflare's edge, for the points
Ephemera depends on. Shaped on tests/fixtures/cloudflare/ (see its README).

API (on --port), every answer in the envelope
{"success", "errors", "messages", "result"} (+ "result_info" on lists):
- Bearer tokens with permissions (set through /_fake/config "tokens":
  {token: [permission, ...]}). Permission names are the dashboard's:
  "Cloudflare Tunnel Read|Edit", "DNS Read|Edit",
  "Access: Apps and Policies Read|Edit", "Access: Service Tokens Read|Edit";
  Edit implies Read. No or an unknown token: 401; a token without the
  endpoint's permission, or a path naming another account or zone: 403. Both
  with code 10000 "Authentication error" and no result, as recorded
  (errors/error.authentication.json): Cloudflare does not say which
  permission is missing, so the client has to know.
- Tunnels: create (409 code 1013 for a live duplicate name; remote_config
  only with config_src "cloudflare"), get, list (?name= returns deleted
  tunnels too unless is_deleted=false; page/per_page), token (a bare
  string), configurations PUT/GET (validated: the last rule a catch-all
  without hostname or path, paths valid regexes, hostnames inside the zone,
  service URLs with no path; version counts up), delete (400 code 1022
  while connections exist), connections DELETE (a connector still running
  reconnects at once, as cloudflared does, so its tunnel keeps refusing
  deletion: the provider must stop the connector first).
- DNS records: create (CNAME beside any record of the same name: 400 code
  81053; names outside the zone: 400 code 9005), list (type, name, comment,
  page, per_page), get, delete (404 code 81044 when gone). A new record
  enters lists only `list_lag` seconds after it was created (eventual
  consistency); GET by id sees it at once.
- Access: apps (create, list, get, delete), app policies, service tokens
  (create shows client_secret once; list; delete).
- Faults: /_fake/fault {"status": 429, "retry_after": S, "match": "dns"}
  blocks every matching request for S seconds with HTTP 429, a Retry-After
  header and the recorded body (code 10100); {"status": 5xx, "count": n}
  fails the next n matching requests; {"delay_after": S} carries out the
  request, then waits (to kill a client between the call and its record);
  {"truncate": true} carries it out and cuts the answer short. With
  "each": true a fault hits the first call of each kind only (faults.py).
  A fault applies to its "method" if given, and to paths holding "match",
  or found by the regex "pattern" instead.
- Error codes not in the fixtures (1022, 1056, 7003, 81044, 81053, 9005)
  are Cloudflare's as reported in public client code and issues; bodies are
  the envelope's shape.

Connector protocol (the stand-in connector, tests/connector/; with
--unix-dir the API is also served on DIR/api.sock and an address
"unix:<name>.sock" means DIR/<name>.sock):
  POST /_fake/connector/register {"token": ..., "address": "ip:port"}
  -> the tunnel gains a connection (status healthy); the answer carries the
  tunnel id and its current ingress. Re-registering refreshes it.

Edge (on --edge-port): a request whose Host is a proxied CNAME to
<tunnel-id>.cfargotunnel.com in the zone goes through Access (when the
zone's Access is on: /_fake/config "access": true) and then the tunnel's
ingress (unanchored regex paths, as cloudflared matches them) to the
connector's registered address, with the header X-Ephemera-Ingress naming
the chosen service URL (a rule's hostname "*.<domain>" matches any name
under it, as cloudflared's does). Access: a bypass app for the host and path lets it
through; CF-Access-Client-Id/-Secret of a valid service token allowed by a
policy lets it through; a CF_Authorization cookie issued by
/_fake/login lets it through; anything else is a 302 to the login page.

/_fake/inventory lists what is live; /_fake/calls the API calls made.
Run: python3 tests/fakes/cloudflare.py --port P --edge-port E
  --account ACC --zone-id Z --zone example-previews.com
Listens on 127.0.0.1 only.
"""
import argparse
import base64
import http.client
import json
import os
import re
import secrets
import socket
import threading
import time
import uuid

from flask import Flask, Response, request

from faults import first_of_each, truncate

PERM_IMPLIES = {"Edit": ["Edit", "Read"], "Read": ["Read"]}
LOGIN = "https://ephemera-test.cloudflareaccess.com/cdn-cgi/access/login/"


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class State:
    def __init__(self, account, zone_id, zone):
        self.lock = threading.RLock()
        self.account = account
        self.zone_id = zone_id
        self.zone = zone
        self.reset()

    def reset(self):
        self.tokens = {}
        self.tunnels = {}  # id -> tunnel (deleted ones stay, deleted_at set)
        self.configs = {}  # tunnel id -> {"config", "version"}
        self.secrets = {}  # tunnel id -> secret
        self.connectors = {}  # tunnel id -> "ip:port"
        self.records = {}  # id -> record (+ "_visible_at")
        self.apps = {}
        self.policies = {}  # id -> policy (+ "_app")
        self.service_tokens = {}  # id -> token (+ "_secret")
        self.sessions = set()
        self.access = False
        self.list_lag = 0.0
        self.default_per_page = 20
        self.faults = []
        self.blocked = []  # (until, match)
        self.calls = []


def make_api(st):
    app = Flask("cloudflare-fake")

    def envelope(result, status=200, info=None, headers=None):
        body = {"success": True, "errors": [], "messages": [], "result": result}
        if info is not None:
            body["result_info"] = info
        r = Response(json.dumps(body), status=status, mimetype="application/json")
        for k, v in (headers or {}).items():
            r.headers[k] = v
        return r

    def fail(status, code, message, headers=None, result=True):
        body = {"success": False, "errors": [{"code": code, "message": message}],
                "messages": []}
        if result:
            body["result"] = None
        r = Response(json.dumps(body), status=status, mimetype="application/json")
        for k, v in (headers or {}).items():
            r.headers[k] = v
        return r

    def paged(items):
        try:
            page = max(1, int(request.args.get("page", "1")))
            per = int(request.args.get("per_page", str(st.default_per_page)))
        except ValueError:
            return fail(400, 1001, "Invalid page or per_page")
        per = max(5, min(per, 1000)) if per >= 5 else max(1, per)
        total = len(items)
        chunk = items[(page - 1) * per: page * per]
        return envelope(chunk, info={"page": page, "per_page": per,
                                     "count": len(chunk), "total_count": total,
                                     "total_pages": (total + per - 1) // per})

    def public(obj):
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    # ---- auth, faults, the call log ----------------------------------------

    def permission_for(method, path):
        kind = "Read" if method == "GET" else "Edit"
        if "/cfd_tunnel" in path:
            return "Cloudflare Tunnel " + kind
        if "/dns_records" in path:
            return "DNS " + kind
        if "/access/service_tokens" in path:
            return "Access: Service Tokens " + kind
        if "/access/" in path:
            return "Access: Apps and Policies " + kind
        return None

    def fault_matches(f):
        """A fault applies to its method (any when none) and to paths that
        hold its `match`, or that its `pattern` (a regex) finds."""
        if f.get("method", request.method) != request.method:
            return False
        if "pattern" in f:
            return re.search(f["pattern"], request.path) is not None
        return f.get("match", "") in request.path

    @app.before_request
    def gate():
        if request.path.startswith("/_fake/"):
            return None
        now = time.time()
        with st.lock:
            st.calls.append({"method": request.method, "path": request.path,
                             "query": request.query_string.decode(), "t": now})
            for until, match in st.blocked:
                if now < until and match in request.path:
                    wait = int(until - now + 0.999)
                    return fail(429, 10100, "More than 1200 requests per 300 "
                                "seconds reached. Please wait and consider "
                                "throttling your request speed",
                                headers={"Retry-After": str(max(1, wait))})
            for f in st.faults:
                if f["count"] > 0 and f.get("status") and fault_matches(f) and \
                        first_of_each(f, request.method, request.path):
                    if f.get("status") == 429:
                        f["count"] -= 1
                        st.blocked.append((now + f["retry_after"], f.get("match", "")))
                        return fail(429, 10100, "More than 1200 requests per 300 "
                                    "seconds reached. Please wait and consider "
                                    "throttling your request speed",
                                    headers={"Retry-After": str(f["retry_after"])})
                    f["count"] -= 1
                    return fail(f["status"], 1000, "Internal fault (injected)")
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        with st.lock:
            perms = st.tokens.get(token) if token else None
        if perms is None:
            return fail(401, 10000, "Authentication error", result=False)
        m = re.match(r"^/client/v4/(accounts|zones)/([^/]+)/", request.path)
        if not m:
            return fail(400, 7003, "No route for the URI")
        if (m.group(1) == "accounts" and m.group(2) != st.account) or \
                (m.group(1) == "zones" and m.group(2) != st.zone_id):
            return fail(403, 10000, "Authentication error", result=False)
        need = permission_for(request.method, request.path)
        if need is None:
            return fail(400, 7003, "No route for the URI")
        base, kind = need.rsplit(" ", 1)
        have = set()
        for p in perms:
            b, k = p.rsplit(" ", 1)
            if b == base:
                have.update(PERM_IMPLIES.get(k, []))
        if kind not in have:
            return fail(403, 10000, "Authentication error", result=False)
        return None

    @app.after_request
    def delay_after(resp):
        if request.path.startswith("/_fake/"):
            return resp
        d = 0
        with st.lock:
            for f in st.faults:
                if (f.get("delay_after") or f.get("truncate")) and f["count"] > 0 and \
                        (not f.get("each") or resp.status_code < 300) and fault_matches(f) and \
                        first_of_each(f, request.method, request.path):
                    f["count"] -= 1
                    if f.get("truncate"):
                        return truncate(resp)
                    d = f["delay_after"]
                    break
        if d:
            time.sleep(d)
        return resp

    def body():
        try:
            b = json.loads(request.get_data(as_text=True) or "null")
        except ValueError:
            return None
        return b if isinstance(b, dict) else None

    A = "/client/v4/accounts/<acc>"
    Z = "/client/v4/zones/<zone>"

    # ---- tunnels -----------------------------------------------------------

    def tunnel_view(t):
        v = public(t)
        v["connections"] = [dict(c) for c in t["connections"]]
        v["status"] = "healthy" if t["connections"] else (
            "down" if t["conns_active_at"] else "inactive")
        return v

    def live_tunnel(tid):
        t = st.tunnels.get(tid)
        return t if t and t["deleted_at"] is None else None

    @app.post(A + "/cfd_tunnel")
    def tunnel_create(acc):
        b = body()
        if b is None or not isinstance(b.get("name"), str) or not b["name"]:
            return fail(400, 1001, "Invalid request: name is required")
        with st.lock:
            for t in st.tunnels.values():
                if t["name"] == b["name"] and t["deleted_at"] is None:
                    return fail(409, 1013, "You already have a tunnel with this name.")
            tid = str(uuid.uuid4())
            secret = base64.b64encode(secrets.token_bytes(32)).decode()
            st.secrets[tid] = secret
            now = time.time()
            t = {"id": tid, "account_tag": st.account, "created_at": iso(now),
                 "deleted_at": None, "name": b["name"], "connections": [],
                 "conns_active_at": None, "conns_inactive_at": iso(now),
                 "tun_type": "cfd_tunnel", "metadata": {},
                 "remote_config": b.get("config_src") == "cloudflare"}
            st.tunnels[tid] = t
            v = tunnel_view(t)
            v["credentials_file"] = {"AccountTag": st.account, "TunnelID": tid,
                                     "TunnelName": b["name"], "TunnelSecret": secret}
            v["token"] = tunnel_token(tid)
            return envelope(v)

    def tunnel_token(tid):
        raw = json.dumps({"a": st.account, "t": tid, "s": st.secrets[tid]})
        return base64.b64encode(raw.encode()).decode()

    @app.get(A + "/cfd_tunnel")
    def tunnel_list(acc):
        name = request.args.get("name")
        deleted = request.args.get("is_deleted")
        with st.lock:
            items = []
            for t in st.tunnels.values():
                if name is not None and t["name"] != name:
                    continue
                if deleted == "false" and t["deleted_at"] is not None:
                    continue
                if deleted == "true" and t["deleted_at"] is None:
                    continue
                items.append(tunnel_view(t))
        return paged(items)

    @app.get(A + "/cfd_tunnel/<tid>")
    def tunnel_get(acc, tid):
        with st.lock:
            t = st.tunnels.get(tid)
            if t is None:
                return fail(404, 1003, "Tunnel not found")
            return envelope(tunnel_view(t))

    @app.get(A + "/cfd_tunnel/<tid>/token")
    def tunnel_token_get(acc, tid):
        with st.lock:
            if live_tunnel(tid) is None:
                return fail(404, 1003, "Tunnel not found")
            return envelope(tunnel_token(tid))

    def ingress_check(ingress):
        if not isinstance(ingress, list) or not ingress:
            return "ingress must be a non-empty list"
        for i, r in enumerate(ingress):
            if not isinstance(r, dict) or not isinstance(r.get("service"), str):
                return "rule %d: a service is required" % i
            last = i == len(ingress) - 1
            h, p = r.get("hostname"), r.get("path")
            if last and (h or p):
                return "The last ingress rule must match all URLs (i.e. it " \
                       "should not have a hostname or path filter)"
            if not last and not h and not p:
                return "Rule #%d is matching all URLs but it is not the last " \
                       "rule" % (i + 1)
            if h is not None:
                if not isinstance(h, str) or not (h == st.zone or h.endswith("." + st.zone)):
                    return "hostname %r is not in the zone %s" % (h, st.zone)
            if p is not None:
                try:
                    re.compile(p)
                except (re.error, TypeError):
                    return "rule %d: path %r is not a valid regular expression" % (i, p)
            s = r["service"]
            if s.startswith("http_status:"):
                if not re.fullmatch(r"http_status:[1-5][0-9][0-9]", s):
                    return "rule %d: bad http_status service" % i
                continue
            m = re.fullmatch(r"(https?)://([A-Za-z0-9._-]+)(:[0-9]{1,5})?(/.*)?", s)
            if not m:
                return "rule %d: service %r is not a valid URL" % (i, s)
            if m.group(4) and m.group(4) != "/":
                return "rule %d: %s is an invalid address, ingress rules " \
                       "don't support proxying to a different path on the " \
                       "origin service" % (i, s)
        return None

    @app.put(A + "/cfd_tunnel/<tid>/configurations")
    def config_put(acc, tid):
        b = body()
        with st.lock:
            t = live_tunnel(tid)
            if t is None:
                return fail(404, 1003, "Tunnel not found")
            if b is None or not isinstance(b.get("config"), dict):
                return fail(400, 1056, "Bad configuration: config is required")
            why = ingress_check(b["config"].get("ingress"))
            if why:
                return fail(400, 1056, "Bad configuration: " + why)
            old = st.configs.get(tid, {"version": 0})
            st.configs[tid] = {"config": b["config"], "version": old["version"] + 1,
                               "created_at": iso(time.time())}
            return envelope({"tunnel_id": tid, **st.configs[tid]})

    @app.get(A + "/cfd_tunnel/<tid>/configurations")
    def config_get(acc, tid):
        with st.lock:
            if tid not in st.tunnels:
                return fail(404, 1003, "Tunnel not found")
            c = st.configs.get(tid, {"config": None, "version": 0})
            return envelope({"tunnel_id": tid, **c})

    @app.delete(A + "/cfd_tunnel/<tid>")
    def tunnel_delete(acc, tid):
        with st.lock:
            t = live_tunnel(tid)
            if t is None:
                return fail(404, 1003, "Tunnel not found")
            if t["connections"]:
                return fail(400, 1022, "Cannot delete tunnel because it has "
                            "active connections")
            t["deleted_at"] = iso(time.time())
            st.connectors.pop(tid, None)
            return envelope(tunnel_view(t))

    def connector_running(tid):
        """Whether the stand-in that registered for `tid` still runs: its
        socket accepts a connection (a killed one refuses at once)."""
        addr = st.connectors.get(tid) or ""
        name = addr[5:] if addr.startswith("unix:") else ""
        if not re.fullmatch(r"[A-Za-z0-9._-]+\.sock", name) or not st.unix_dir:
            return False
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(1)
        try:
            s.connect(os.path.join(st.unix_dir, name))
            return True
        except OSError:
            return False
        finally:
            s.close()

    @app.delete(A + "/cfd_tunnel/<tid>/connections")
    def tunnel_clean(acc, tid):
        with st.lock:
            t = live_tunnel(tid)
            if t is None:
                return fail(404, 1003, "Tunnel not found")
            if connector_running(tid):
                # cloudflared reconnects at once: nothing changes.
                t["conns_active_at"] = iso(time.time())
                body_ = {"success": True, "errors": [], "messages": []}
                return Response(json.dumps(body_), mimetype="application/json")
            if t["connections"]:
                t["conns_inactive_at"] = iso(time.time())
            t["connections"] = []
            st.connectors.pop(tid, None)
        body_ = {"success": True, "errors": [], "messages": []}
        return Response(json.dumps(body_), mimetype="application/json")

    # ---- DNS ---------------------------------------------------------------

    def in_zone(name):
        return name == st.zone or name.endswith("." + st.zone)

    @app.post(Z + "/dns_records")
    def dns_create(zone):
        b = body()
        if b is None or b.get("type") not in ("A", "AAAA", "CNAME", "TXT") or \
                not isinstance(b.get("name"), str) or \
                not isinstance(b.get("content"), str):
            return fail(400, 9000, "DNS name, type and content are required")
        name = b["name"].lower().rstrip(".")
        if not in_zone(name):
            return fail(400, 9005, "Content for CNAME record is invalid: "
                        "name is not in the zone")
        if len(b.get("comment") or "") > 100:
            return fail(400, 9101, "comment exceeds 100 characters")
        with st.lock:
            for r in st.records.values():
                if r["name"] == name and (b["type"] == "CNAME" or r["type"] == "CNAME"):
                    return fail(400, 81053, "An A, AAAA, or CNAME record with "
                                "that host already exists.")
            now = time.time()
            rid = secrets.token_hex(16)
            r = {"id": rid, "zone_id": st.zone_id, "zone_name": st.zone,
                 "type": b["type"], "name": name, "content": b["content"],
                 "proxiable": True, "proxied": bool(b.get("proxied")),
                 "ttl": b.get("ttl", 1), "comment": b.get("comment"),
                 "tags": b.get("tags", []), "created_on": iso(now),
                 "modified_on": iso(now), "meta": {},
                 "_visible_at": now + st.list_lag}
            st.records[rid] = r
            return envelope(public(r))

    @app.get(Z + "/dns_records")
    def dns_list(zone):
        now = time.time()
        with st.lock:
            items = []
            for r in st.records.values():
                if r["_visible_at"] > now:
                    continue
                if "type" in request.args and r["type"] != request.args["type"]:
                    continue
                if "name" in request.args and \
                        r["name"] != request.args["name"].lower().rstrip("."):
                    continue
                c = request.args.get("comment.startswith")
                if c is not None and not (r["comment"] or "").startswith(c):
                    continue
                items.append(public(r))
        return paged(items)

    @app.get(Z + "/dns_records/<rid>")
    def dns_get(zone, rid):
        with st.lock:
            r = st.records.get(rid)
            if r is None:
                return fail(404, 81044, "Record does not exist.")
            return envelope(public(r))

    @app.delete(Z + "/dns_records/<rid>")
    def dns_delete(zone, rid):
        with st.lock:
            if st.records.pop(rid, None) is None:
                return fail(404, 81044, "Record does not exist.")
            return envelope({"id": rid})

    # ---- Access ------------------------------------------------------------

    @app.post(A + "/access/apps")
    def app_create(acc):
        b = body()
        if b is None or not isinstance(b.get("domain"), str) or \
                not isinstance(b.get("name"), str):
            return fail(400, 12130, "access.api.error.invalid_request: name "
                        "and domain are required")
        host = b["domain"].split("/", 1)[0]
        if not in_zone(host.lstrip("*.")):
            return fail(400, 12130, "access.api.error.invalid_request: domain "
                        "is not in a zone of the account")
        with st.lock:
            aid = str(uuid.uuid4())
            a = {"id": aid, "name": b["name"], "domain": b["domain"],
                 "type": b.get("type", "self_hosted"),
                 "session_duration": b.get("session_duration", "24h"),
                 "aud": secrets.token_hex(32), "created_at": iso(time.time())}
            st.apps[aid] = a
            for p in b.get("policies") or []:
                if isinstance(p, dict):
                    policy_add(aid, p)
            return envelope(a, status=201)

    def policy_add(aid, p):
        pid = str(uuid.uuid4())
        pol = {"id": pid, "name": p.get("name", ""), "decision": p.get("decision"),
               "include": p.get("include", []), "exclude": p.get("exclude", []),
               "require": p.get("require", []), "_app": aid}
        st.policies[pid] = pol
        return pol

    @app.get(A + "/access/apps")
    def app_list(acc):
        with st.lock:
            return paged(list(st.apps.values()))

    @app.delete(A + "/access/apps/<aid>")
    def app_delete(acc, aid):
        with st.lock:
            if st.apps.pop(aid, None) is None:
                return fail(404, 12131, "access.api.error.not_found: "
                            "application not found")
            for pid in [k for k, v in st.policies.items() if v["_app"] == aid]:
                del st.policies[pid]
            return envelope({"id": aid}, status=202)

    @app.post(A + "/access/apps/<aid>/policies")
    def policy_create(acc, aid):
        b = body()
        with st.lock:
            if aid not in st.apps:
                return fail(404, 12131, "access.api.error.not_found: "
                            "application not found")
            if b is None or b.get("decision") not in ("allow", "deny", "bypass",
                                                      "non_identity"):
                return fail(400, 12130, "access.api.error.invalid_request: "
                            "decision must be allow, deny, bypass or non_identity")
            return envelope(public(policy_add(aid, b)))

    @app.delete(A + "/access/apps/<aid>/policies/<pid>")
    def policy_delete(acc, aid, pid):
        with st.lock:
            p = st.policies.get(pid)
            if p is None or p["_app"] != aid:
                return fail(404, 12131, "access.api.error.not_found: policy")
            del st.policies[pid]
            return envelope({"id": pid})

    @app.post(A + "/access/service_tokens")
    def stoken_create(acc):
        b = body()
        if b is None or not isinstance(b.get("name"), str):
            return fail(400, 12130, "access.api.error.invalid_request: name")
        with st.lock:
            tid = str(uuid.uuid4())
            t = {"id": tid, "name": b["name"],
                 "client_id": secrets.token_hex(16) + ".access",
                 "duration": b.get("duration", "8760h"),
                 "created_at": iso(time.time()),
                 "_secret": secrets.token_hex(32)}
            st.service_tokens[tid] = t
            out = public(t)
            out["client_secret"] = t["_secret"]
            return envelope(out, status=201)

    @app.get(A + "/access/service_tokens")
    def stoken_list(acc):
        with st.lock:
            return paged([public(t) for t in st.service_tokens.values()])

    @app.delete(A + "/access/service_tokens/<tid>")
    def stoken_delete(acc, tid):
        with st.lock:
            t = st.service_tokens.pop(tid, None)
            if t is None:
                return fail(404, 12131, "access.api.error.not_found: token")
            return envelope(public(t))

    # ---- fake control ------------------------------------------------------

    def ctl_body():
        return json.loads(request.get_data(as_text=True) or "{}")

    @app.post("/_fake/config")
    def fake_config():
        b = ctl_body()
        with st.lock:
            if "tokens" in b:
                st.tokens = {k: list(v) for k, v in b["tokens"].items()}
            for k in ("access", "list_lag", "default_per_page"):
                if k in b:
                    setattr(st, k, b[k])
        return envelope({"ok": True})

    @app.post("/_fake/fault")
    def fake_fault():
        b = ctl_body()
        b.setdefault("count", 1)
        b.setdefault("retry_after", 2)
        with st.lock:
            st.faults.append(b)
        return envelope({"ok": True})

    @app.post("/_fake/backdate")
    def fake_backdate():
        """Makes every object `seconds` older (the sweep's grace period)."""
        d = float(ctl_body().get("seconds", 0))

        def older(v):
            t = time.mktime(time.strptime(v[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
            return iso(t - d)
        with st.lock:
            for t in st.tunnels.values():
                t["created_at"] = older(t["created_at"])
            for r in st.records.values():
                r["created_on"] = older(r["created_on"])
            for a in st.apps.values():
                a["created_at"] = older(a["created_at"])
        return envelope({"ok": True})

    @app.post("/_fake/fault/clear")
    def fake_fault_clear():
        with st.lock:
            st.faults[:] = []
            st.blocked[:] = []
        return envelope({"ok": True})

    @app.get("/_fake/faults")
    def fake_faults():
        with st.lock:
            return envelope(json.loads(json.dumps(st.faults)))

    @app.post("/_fake/reset")
    def fake_reset():
        with st.lock:
            tokens = st.tokens
            st.reset()
            st.tokens = tokens
        return envelope({"ok": True})

    @app.post("/_fake/connector/register")
    def connector_register():
        b = ctl_body()
        try:
            raw = json.loads(base64.b64decode(b.get("token", "")))
            tid, secret = raw["t"], raw["s"]
        except (ValueError, KeyError, TypeError):
            return fail(401, 10000, "Authentication error")
        with st.lock:
            t = live_tunnel(tid)
            if t is None or st.secrets.get(tid) != secret or raw.get("a") != st.account:
                return fail(401, 10000, "Authentication error")
            st.connectors[tid] = b.get("address", "")
            if not t["connections"]:
                t["connections"] = [{
                    "id": str(uuid.uuid4()), "colo_name": "LOC",
                    "client_id": b.get("client_id") or str(uuid.uuid4()),
                    "client_version": "ephemera-standin",
                    "is_pending_reconnect": False, "opened_at": iso(time.time()),
                    "origin_ip": (b.get("address") or "").split(":")[0]}]
                t["conns_active_at"] = iso(time.time())
            c = st.configs.get(tid, {"config": None, "version": 0})
            return envelope({"tunnel_id": tid, "config": c["config"],
                             "version": c["version"]})

    @app.get("/_fake/inventory")
    def fake_inventory():
        with st.lock:
            return envelope({
                "tunnels": [tunnel_view(t) for t in st.tunnels.values()
                            if t["deleted_at"] is None],
                "deleted_tunnels": [t["name"] for t in st.tunnels.values()
                                    if t["deleted_at"] is not None],
                "configs": {k: v for k, v in st.configs.items()
                            if live_tunnel(k) is not None},
                "dns_records": [public(r) for r in st.records.values()],
                "access_apps": list(st.apps.values()),
                "access_policies": [public(p) for p in st.policies.values()],
                "service_tokens": [public(t) for t in st.service_tokens.values()],
            })

    @app.get("/_fake/calls")
    def fake_calls():
        with st.lock:
            return envelope(list(st.calls))

    return app


class UnixConnection(http.client.HTTPConnection):
    """HTTP to the stand-in connector's Unix socket."""

    def __init__(self, path):
        super().__init__("connector", timeout=30)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self.path)


def make_edge(st):
    """Cloudflare's edge, as far as a preview request goes."""
    app = Flask("cloudflare-edge")

    def access_allows(host, path):
        if not st.access:
            return True
        for a in st.apps.values():
            dom = a["domain"]
            dh, _, dp = dom.partition("/")
            if dh != host or not dp:
                continue
            pat = "/" + re.escape(dp).replace(r"\*", ".*")
            if re.fullmatch(pat, path) and any(
                    p["_app"] == a["id"] and p["decision"] == "bypass"
                    for p in st.policies.values()):
                return True
        cid = request.headers.get("CF-Access-Client-Id")
        csec = request.headers.get("CF-Access-Client-Secret")
        if cid and csec:
            for t in st.service_tokens.values():
                if t["client_id"] == cid and t["_secret"] == csec:
                    for p in st.policies.values():
                        if p["decision"] != "non_identity":
                            continue
                        for inc in p["include"]:
                            if "any_valid_service_token" in inc or \
                                    inc.get("service_token", {}).get("token_id") == t["id"]:
                                return True
        return request.cookies.get("CF_Authorization") in st.sessions

    @app.route("/_fake/login", methods=["GET"])
    def login():
        sid = secrets.token_hex(16)
        with st.lock:
            st.sessions.add(sid)
        r = Response("logged in\n")
        r.set_cookie("CF_Authorization", sid)
        return r

    @app.route("/", defaults={"path": ""}, methods=["GET", "POST", "PUT", "DELETE", "HEAD"])
    @app.route("/<path:path>", methods=["GET", "POST", "PUT", "DELETE", "HEAD"])
    def edge(path):
        host = request.host.split(":")[0].lower()
        full = "/" + path
        with st.lock:
            rec = next((r for r in st.records.values() if r["name"] == host), None)
            if rec is None or rec["type"] != "CNAME" or not rec["proxied"]:
                return Response("no such host\n", status=530)
            m = re.fullmatch(r"([0-9a-f-]{36})\.cfargotunnel\.com", rec["content"])
            t = st.tunnels.get(m.group(1)) if m else None
            if t is None or t["deleted_at"] is not None:
                return Response("error 1033: tunnel not found\n", status=530)
            if not t["connections"] or not st.connectors.get(t["id"]):
                return Response("error 1033: tunnel has no connector\n", status=530)
            if not access_allows(host, full):
                return Response("", status=302,
                                headers={"Location": LOGIN + host})
            cfg = (st.configs.get(t["id"]) or {}).get("config") or {}
            target = None
            for r in cfg.get("ingress", []):
                # cloudflared's matching: exact, or "*.<domain>" for any
                # name under it.
                h = r.get("hostname")
                if h and h != host and not (h.startswith("*.") and host.endswith(h[1:])):
                    continue
                if r.get("path") and not re.search(r["path"], full):
                    continue
                target = r["service"]
                break
            connector = st.connectors[t["id"]]
        if target is None or target.startswith("http_status:"):
            code = int(target.split(":")[1]) if target else 502
            return Response("", status=code)
        return forward(connector, target, full)

    def forward(connector, target, full):
        q = request.query_string.decode()
        if connector.startswith("unix:"):
            name = connector[5:]
            if not re.fullmatch(r"[A-Za-z0-9._-]+\.sock", name) or not st.unix_dir:
                return Response("error 502: bad connector address\n", status=502)
            c = UnixConnection(os.path.join(st.unix_dir, name))
        else:
            host, _, port = connector.rpartition(":")
            c = http.client.HTTPConnection(host, int(port), timeout=30)
        hdrs = {k: v for k, v in request.headers.items()
                if k.lower() not in ("host", "connection", "cf-access-client-secret")}
        hdrs["X-Ephemera-Ingress"] = target
        hdrs["Host"] = request.host
        try:
            c.request(request.method, full + ("?" + q if q else ""),
                      body=request.get_data(), headers=hdrs)
            r = c.getresponse()
            data = r.read()
        except OSError as e:
            return Response("error 502: %s\n" % e, status=502)
        finally:
            c.close()
        out = Response(data, status=r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                out.headers[k] = v
        return out

    return app


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--edge-port", type=int, required=True)
    ap.add_argument("--account", required=True)
    ap.add_argument("--zone-id", required=True)
    ap.add_argument("--zone", required=True)
    ap.add_argument("--unix-dir", help="also serve the API on DIR/api.sock "
                    "and reach connectors' sockets there (the stand-in)")
    a = ap.parse_args()
    st = State(a.account, a.zone_id, a.zone)
    st.unix_dir = a.unix_dir
    if a.unix_dir:
        sock = os.path.join(a.unix_dir, "api.sock")
        if os.path.exists(sock):
            os.unlink(sock)
        api2 = make_api(st)
        threading.Thread(target=lambda: api2.run("unix://" + sock, threaded=True),
                         daemon=True).start()
        for _ in range(100):
            if os.path.exists(sock):
                os.chmod(sock, 0o666)  # the connector runs as uid 65532
                break
            time.sleep(0.05)
    edge = make_edge(st)
    threading.Thread(target=lambda: edge.run("127.0.0.1", a.edge_port, threaded=True),
                     daemon=True).start()
    make_api(st).run("127.0.0.1", a.port, threaded=True)


if __name__ == "__main__":
    main()
