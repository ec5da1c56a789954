#!/usr/bin/env bash
# bench/status/run.sh - server time of the status page and the JSON API
# with 1,000 environments and 20,000 builds, against /healthz and a static
# file measured in the same run. Not a pass/fail test: it prints figures.
#   bench/status/run.sh [requests-per-path]
set -euo pipefail
cd "$(dirname "$0")/../.."
make -s all >/dev/null
exec python3 bench/status/bench.py "$@"
