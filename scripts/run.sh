#!/usr/bin/env bash
# run.sh - `make run`: installs what is missing (as root), builds, brings
# up the private stack under var_dir, prints the status URL, and stops
# everything it started on Ctrl-C or TERM.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export CONFIG=${CONFIG:-config/example.conf}
# `make run PORT=9000` or `PORT=9000 make run`: every program reads it
# through the configuration loader (it overrides http.port).
if [ -n "${PORT:-}" ]; then
	export EPHEMERA_HTTP_PORT=$PORT
fi

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

# Without a configured webhook secret, generate one into var/ (the config
# loader reads <var_dir>/webhook-secret when the setting is empty).
var=$(bin/ephemera -c "$CONFIG" config get var_dir)
if [ -z "$(bin/ephemera -c "$CONFIG" config get github.webhook_secret_file)" ] &&
	[ ! -s "$var/webhook-secret" ]; then
	mkdir -p "$var"
	(umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$var/webhook-secret")
	echo "ephemera: generated a webhook secret in $var/webhook-secret" >&2
fi

port=$(bin/ephemera -c "$CONFIG" config get http.port)
# Someone else on our port: say what to do rather than let nginx fail.
if ! scripts/stack.sh status | grep -q '^nginx running' &&
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
	echo "ephemera: port $port is taken; run on another one: make run PORT=9000" >&2
	exit 1
fi
scripts/stack.sh up
echo "ephemera: running at http://127.0.0.1:$port/  (Ctrl-C stops it)"
# No GitHub App configured: show a preview of the bundled example.
if [ "$(bin/ephemera -c "$CONFIG" config get github.enabled)" = false ] &&
	[ "${EPHEMERA_DEMO:-1}" = 1 ]; then
	scripts/demo.sh || echo "ephemera: the demo did not complete" >&2
fi
# A foreground sleep: Ctrl-C reaches it (an async one would ignore INT
# and keep our stdout open after we exit).
while :; do
	sleep 1
done
