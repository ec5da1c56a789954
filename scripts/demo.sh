#!/usr/bin/env bash
# demo.sh - what `make run` does when no GitHub App is configured: makes a
# git repository from examples/hello under var/demo/hello, posts a signed
# pull_request "opened" delivery for it to our own /webhook, waits until the
# preview serves, and prints its URL. The repository is the `demo/hello`
# entry of config/example.conf (its `source` points at var/demo/hello).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CONFIG=${CONFIG:-config/example.conf}
EPH=(bin/ephemera -c "$CONFIG")
VAR=$("${EPH[@]}" config get var_dir)
PORT=$("${EPH[@]}" config get http.port)
REPO=$VAR/demo/hello

examples/busybox-image.sh

if [ ! -d "$REPO/.git" ]; then
	mkdir -p "$REPO"
	cp -R examples/hello/. "$REPO/"
	git -C "$REPO" init -q -b main
	git -C "$REPO" add -A
	git -C "$REPO" -c user.name=Ephemera -c user.email=demo@ephemera.invalid \
		commit -q -m "hello: first version"
fi
SHA=$(git -C "$REPO" rev-parse HEAD)
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)

payload=$(mktemp)
trap 'rm -f "$payload"' EXIT
cat >"$payload" <<JSON
{
  "action": "opened",
  "number": 1,
  "pull_request": {
    "number": 1, "state": "open", "draft": false, "locked": false,
    "title": "Demo: hello", "body": "A demo pull request made by make run.",
    "user": {"login": "demo", "type": "User"},
    "author_association": "OWNER",
    "created_at": "$NOW", "updated_at": "$NOW",
    "labels": [],
    "head": {"ref": "demo", "sha": "$SHA", "label": "demo:demo",
             "repo": {"name": "hello", "full_name": "demo/hello",
                      "clone_url": "https://github.invalid/demo/hello.git"}},
    "base": {"ref": "main", "sha": "$SHA", "label": "demo:main",
             "repo": {"name": "hello", "full_name": "demo/hello",
                      "clone_url": "https://github.invalid/demo/hello.git"}}
  },
  "repository": {"name": "hello", "full_name": "demo/hello",
                 "owner": {"login": "demo"},
                 "clone_url": "https://github.invalid/demo/hello.git"},
  "sender": {"login": "demo", "type": "User"}
}
JSON

echo "demo: posting a signed pull_request.opened for demo/hello@${SHA:0:12}" >&2
"${EPH[@]}" deliver pull_request "$payload" >/dev/null

url=""
for _ in $(seq 1 600); do
	line=$(curl -s "http://127.0.0.1:$PORT/api/v1/environments" |
		python3 -c 'import json,sys
for e in json.load(sys.stdin):
    if e["repo"] == "demo/hello" and e["pr"] == 1:
        print(e["phase"], e["url"] or "")' 2>/dev/null || true)
	phase=${line%% *}
	case "$phase" in
	ready) url=${line#* }; break ;;
	failed) echo "demo: the preview failed; see http://127.0.0.1:$PORT/" >&2; exit 1 ;;
	esac
	sleep 0.5
done
[ -n "$url" ] || { echo "demo: the preview did not become ready" >&2; exit 1; }
echo "demo: the preview of demo/hello PR #1 serves at $url" >&2
echo "demo:   curl $url   (and ${url}api/)" >&2
