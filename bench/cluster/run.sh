#!/usr/bin/env bash
# bench/cluster/run.sh - no-op jobs/s with 1, 2 and 3 worker hosts against
# one database host (network namespaces, TCP+TLS: tests/harness/cluster.py),
# beside the bare SKIP LOCKED loop (bench/queue/bare.c) from the same hosts
# in the same run, with what the database did per job. Needs root and ip.
#   bench/cluster/run.sh [jobs-per-run [rounds]]
set -euo pipefail
cd "$(dirname "$0")/../.."
make -s all >/dev/null
mkdir -p build/bench
# shellcheck disable=SC2046
cc -O2 -o build/bench/queue_bare bench/queue/bare.c \
	$(pkg-config --cflags --libs libmariadb)
exec python3 bench/cluster/bench.py "$@"
