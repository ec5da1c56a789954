#!/usr/bin/env bash
# run.sh - `make bench`: runs every bench/<name>/run.sh in turn. Each
# prints its figures and ends with a line starting with its name.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
rc=0
for b in bench/*/run.sh; do
	echo "bench: $(basename "$(dirname "$b")")"
	"$b" || rc=1
done
exit $rc
