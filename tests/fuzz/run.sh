#!/usr/bin/env bash
# run.sh - `make fuzz`: builds every tests/fuzz/fuzz_*.c with libFuzzer,
# ASan and UBSan, seeds its corpus from the shared recorded payloads, and
# runs each for FUZZ_SECONDS (default 60). Any finding fails the run and
# leaves its crash file under build/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/../.."

SECONDS_EACH=${FUZZ_SECONDS:-60}
FIXTURES=${EPHEMERA_FIXTURES:-tests/fixtures}
CC=${FUZZ_CC:-clang}
OUT=build/fuzz
mkdir -p "$OUT"

# shellcheck disable=SC2207
pkg=($(pkg-config --cflags --libs libconfig json-c libcurl openssl libmariadb \
	yaml-0.1 libxml-2.0))
sanitize=fuzzer,address,undefined
flags=(-std=c11 -Wall -Wextra -Werror -g -O1 -D_GNU_SOURCE
	-fno-omit-frame-pointer "-fsanitize=$sanitize"
	-fno-sanitize-recover=undefined)
core=()
# Everything but the two programs' main.c, so a harness may reach any core.
for f in lib/*.c fcgi-app/*.c workers/*.c workers/*/*.c cli/manifest.c; do
	case $f in */main.c) ;; *) core+=("$f") ;; esac
done

failed=0 passed=0
for src in tests/fuzz/fuzz_*.c; do
	name=$(basename "$src" .c)
	echo "fuzz: building $name"
	"$CC" "${flags[@]}" -o "$OUT/$name" "$src" "${core[@]}" "${pkg[@]}" -lfcgi
	corpus=$OUT/corpus/$name
	mkdir -p "$corpus"
	# Seeds: every recorded payload, behind each selector the harness
	# understands (event name, plain or form-encoded).
	if [ -d "$FIXTURES/github/webhooks" ]; then
		i=0
		for f in "$FIXTURES"/github/webhooks/*.json \
			"$FIXTURES"/github/webhooks/signed/*.body; do
			for sel in '\000\000' '\001\000' '\002\010' '\003\001' \
				'\004\000' '\000\107'; do
				{ printf '%b' "$sel"; cat "$f"; } >"$corpus/seed-$i"
				i=$((i + 1))
			done
		done
	fi
	# fuzz_aws: the recorded AWS answers behind their parser's selector.
	if [ "$name" = fuzz_aws ] && [ -d "$FIXTURES/aws" ]; then
		i=0
		for f in "$FIXTURES"/aws/ec2/*.xml; do
			for sel in '\000' '\001'; do
				{ printf '%b' "$sel"; cat "$f"; } >"$corpus/aws-$i"
				i=$((i + 1))
			done
		done
		for f in "$FIXTURES"/aws/ssm/*.json; do
			for sel in '\002' '\003'; do
				{ printf '%b' "$sel"; cat "$f"; } >"$corpus/aws-$i"
				i=$((i + 1))
			done
		done
	fi
	# The Cloudflare harness: every recorded API body, behind each target.
	if [ "$name" = fuzz_cloudflare ] && [ -d "$FIXTURES/cloudflare" ]; then
		i=0
		for f in "$FIXTURES"/cloudflare/*/*.json; do
			for sel in '\000' '\001' '\002'; do
				{ printf '%b' "$sel"; cat "$f"; } >"$corpus/seed-$i"
				i=$((i + 1))
			done
		done
	fi
	dict=()
	[ -f "tests/fuzz/$name.dict" ] && dict=("-dict=$PWD/tests/fuzz/$name.dict")
	echo "fuzz: running $name for ${SECONDS_EACH}s"
	if (cd "$OUT" && ASAN_OPTIONS=detect_leaks=1 "./$name" \
		-max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 \
		-max_len=262144 -timeout=10 -print_final_stats=1 \
		"${dict[@]}" "corpus/$name") \
		>"$OUT/$name.log" 2>&1; then
		passed=$((passed + 1))
		grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' \
			"$OUT/$name.log" | tail -2 | sed 's/^/fuzz: /'
		echo "fuzz: $name: no findings"
	else
		failed=$((failed + 1))
		tail -40 "$OUT/$name.log"
		echo "fuzz: $name: FINDING (see $OUT/$name.log)"
	fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
