#!/usr/bin/env bash
# bench/cloudflare/run.sh - what the Cloudflare provider costs: API calls
# per lifecycle (open, push, close) against the minimum the steps need,
# and the proxy path (fake edge -> stand-in connector -> container) against
# the same request straight to the container, in the same run, with
# tests/fakes/cloudflare.py standing in for Cloudflare. Not a pass/fail test.
#   bench/cloudflare/run.sh [requests]
set -euo pipefail
cd "$(dirname "$0")/../.."
make -s asan >/dev/null
exec python3 bench/cloudflare/bench.py "$@"
