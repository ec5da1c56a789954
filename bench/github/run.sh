#!/usr/bin/env bash
# bench/github/run.sh - what notifying GitHub costs per deploy: API
# requests per build (the rate-limit budget) against the minimum a build
# needs, and the time of a notify job through the release worker pool
# against a no-op job through the same pool, measured in the same run,
# with tests/fakes/github.py standing in for GitHub. Not a pass/fail test.
#   bench/github/run.sh [builds]
set -euo pipefail
cd "$(dirname "$0")/../.."
make -s all >/dev/null
exec python3 bench/github/bench.py "$@"
