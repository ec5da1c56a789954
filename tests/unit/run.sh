#!/usr/bin/env bash
# run.sh - runs each unit test program, sums their closing lines and
# prints the total "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
passed=0 failed=0
for t in "$@"; do
	out=$(ASAN_OPTIONS=detect_leaks=1 "$t" 2>&1)
	rc=$?
	line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -1)
	if [ -z "$line" ] || [ $rc -ne 0 ]; then
		printf '%s\n' "$out" | grep -v -E '^[0-9]+ passed' | sed 's/^/  /'
	fi
	if [ -z "$line" ]; then
		echo "unit: $(basename "$t"): crashed (exit $rc)"
		failed=$((failed + 1))
		continue
	fi
	p=${line%% passed*}
	f=${line#*, }
	f=${f%% failed*}
	# A leak or sanitizer report fails the program even if checks passed.
	if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
	echo "unit: $(basename "$t"): $line"
	passed=$((passed + p))
	failed=$((failed + f))
done
echo "unit: $passed passed, $failed failed"
[ $failed -eq 0 ]
