#!/usr/bin/env bash
# bench/wake/run.sh - a visit to a preview stopped as idle until the app
# serves, against `docker compose start` + health of the same app in the
# same run (issue 20). Not a pass/fail test: it prints figures.
#   bench/wake/run.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/../.."
make -s all >/dev/null
exec python3 bench/wake/bench.py "$@"
