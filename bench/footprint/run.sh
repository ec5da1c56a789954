#!/usr/bin/env bash
# bench/footprint - how small the control plane is: RSS (and PSS, which
# counts pages the forked processes share once) of the fcgi-app and the 8
# workers, idle and under a webhook load (wrk, 32 connections), and their
# CPU over an idle minute, beside MariaDB's and nginx's; printed against
# issue 20's goals. Twice: MariaDB with config/mariadb.cnf (`make run`'s)
# and with the flags it replaced, then MariaDB's RSS and PSS side by side
# (BENCH_MARIADB=new or old: one of them); then the workers' floor on
# this stack, and the workers after calling GitHub (the fake), replaced
# or not when idle (BENCH_CALLS=0 skips it). Not a pass/fail test.
#   BENCH_IDLE_SECONDS=60 BENCH_SECONDS=10 bench/footprint/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || {
	echo "footprint: wrk is not installed (scripts/deps.sh --test)" >&2
	exit 1
}
make -s all build/release/bench/footprint/floor >/dev/null
exec python3 bench/footprint/footprint.py
