#!/usr/bin/env bash
# check-style.sh - fails when clang-format would change any C file, and
# when a shell script has a shellcheck finding.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
rc=0
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]')
for f in $files; do
	if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
		echo "style: $f differs from .clang-format (run: make format)"
		rc=1
	fi
done
if command -v shellcheck >/dev/null; then
	mapfile -t scripts < <(git ls-files '*.sh' 'host/*' '.ci/run' |
		grep -v '\.md$')
	shellcheck -x "${scripts[@]}" || rc=1
fi
[ $rc -eq 0 ] && echo "style: ok"
exit $rc
