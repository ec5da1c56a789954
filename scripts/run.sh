#!/usr/bin/env bash
# run.sh - `make run`: installs what is missing (as root), builds, brings
# up the private stack under var_dir, prints the status URL, and stops
# everything it started on Ctrl-C or TERM.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export CONFIG=${CONFIG:-config/example.conf}

scripts/deps.sh
make -s all

stopping=false
cleanup() {
	$stopping && return
	stopping=true
	echo "ephemera: stopping" >&2
	scripts/stack.sh down || true
	echo "ephemera: stopped" >&2
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

scripts/stack.sh up
port=$(bin/ephemera -c "$CONFIG" config get http.port)
echo "ephemera: running at http://127.0.0.1:$port/  (Ctrl-C stops it)"
# A foreground sleep: Ctrl-C reaches it (an async one would ignore INT
# and keep our stdout open after we exit).
while :; do
	sleep 1
done
