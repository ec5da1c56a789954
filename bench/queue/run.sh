#!/usr/bin/env bash
# bench/queue/run.sh - no-op jobs/s of the worker pool with 1, 4 and 8
# workers against a bare SQL claim+ack loop on the same schema (bare.c),
# measured in the same run, and dispatch latency (enqueue COMMIT → claim)
# p50/p99 with the wake-up nudge. Not a pass/fail test: it prints figures.
#   bench/queue/run.sh [jobs-per-run [rounds]]
set -euo pipefail
cd "$(dirname "$0")/../.."
make -s all >/dev/null
mkdir -p build/bench
# shellcheck disable=SC2046
cc -O2 -o build/bench/queue_bare bench/queue/bare.c \
	$(pkg-config --cflags --libs libmariadb)
exec python3 bench/queue/bench.py "$@"
