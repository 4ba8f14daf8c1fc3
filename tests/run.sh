#!/bin/sh
# Run the whole suite for each build directory given (default: build) and
# print one closing line "N passed, N failed, N skipped".
#
# Each test program prints "PASS <name>", "FAIL <name>[: why]" or
# "SKIP <name>[: why]" lines; a program that exits non-zero without
# printing a FAIL line counts as one failure.  Full output goes to
# $BUILD/test-logs/; failures are echoed.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
[ $# -eq 0 ] && set -- build
passed=0 failed=0 skipped=0

run_one() { # build label command...
	b=$1 label=$2
	shift 2
	log="$top/$b/test-logs/$(echo "$label" | tr '/ ' '__').log"
	mkdir -p "$(dirname "$log")"
	start=$(date +%s)
	"$@" >"$log" 2>&1
	rc=$?
	p=$(grep -c '^PASS ' "$log")
	f=$(grep -c '^FAIL ' "$log")
	s=$(grep -c '^SKIP ' "$log")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
		echo "FAIL $b/$label: exited $rc without a FAIL line" >>"$log"
	fi
	passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
	printf '%-14s %-34s %4d passed %3d failed %3d skipped (%ds)\n' "$b" "$label" "$p" "$f" "$s" \
		$(($(date +%s) - start))
	if [ "$f" -ne 0 ]; then
		grep -A8 '^FAIL ' "$log" | head -40 | sed 's/^/    /'
		tail -5 "$log" | sed 's/^/    | /'
	fi
}

for b in "$@"; do
	export CASFS_SANITIZED=
	case "$b" in *asan*)
		export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
		export CASFS_SANITIZED=asan ;;
	esac
	export CASFS="$top/$b/casfs" CASFS_BUILD="$top/$b"
	for t in "$top/$b"/tests/test-*; do
		[ -x "$t" ] || continue
		run_one "$b" "unit/$(basename "$t")" "$t"
	done
	# the local store's other temp-file path (O_TMPFILE + linkat)
	[ -x "$top/$b/tests/test-services" ] &&
		run_one "$b" "unit/test-services+O_TMPFILE" env CASFS_LOCAL_O_TMPFILE=1 "$top/$b/tests/test-services"
	for t in "$top/$b"/fuzz-replay/fuzz-*; do
		[ -x "$t" ] || continue
		name=$(basename "$t" | sed 's/^fuzz-//')
		run_one "$b" "fuzz/$name" "$t" "$top/tests/fuzz/corpus/$name"
	done
	for t in "$top"/tests/sh/test-*.sh; do
		[ -f "$t" ] || continue
		run_one "$b" "sh/$(basename "$t" .sh)" bash "$t"
	done
done

# The mount's concurrency test once more, with a ThreadSanitizer daemon;
# the export's slice workers (nar), the import's blob worker (ingest), the
# fs core's prefetcher, and the binary cache client (parallel copies, the
# download thread, one fetch for concurrent lookups) under ThreadSanitizer.
if [ -x "$top/build-tsan/casfs" ]; then
	export CASFS="$top/build/casfs" CASFS_TSAN="$top/build-tsan/casfs" CASFS_SANITIZED=tsan
	run_one build-tsan "sh/tsan-mount" bash "$top/tests/sh/tsan-mount.sh"
	run_one build-tsan "sh/tsan-nar-slices" env CASFS="$top/build-tsan/casfs" \
		TSAN_OPTIONS=exitcode=66 bash "$top/tests/sh/test-nar-slices.sh"
	run_one build-tsan "sh/tsan-binary-cache-http" env CASFS="$top/build-tsan/casfs" \
		TSAN_OPTIONS=exitcode=66 setarch "$(uname -m)" -R bash "$top/tests/sh/test-binary-cache-http.sh"
	run_one build-tsan "sh/tsan-remote-store" env CASFS="$top/build-tsan/casfs" CASFS_TEST_NO_NPM=1 \
		TSAN_OPTIONS=exitcode=66 setarch "$(uname -m)" -R bash "$top/tests/sh/test-remote-store.sh"
	run_one build-tsan "sh/tsan-virtiofs" env CASFS="$top/build-tsan/casfs" \
		TSAN_OPTIONS=exitcode=66 setarch "$(uname -m)" -R bash "$top/tests/sh/test-virtiofs.sh"
	run_one build-tsan "sh/tsan-daemon" env CASFS="$top/build-tsan/casfs" CASFS_TEST_NO_NPM=1 TSAN_OPTIONS=exitcode=66 setarch "$(uname -m)" -R bash "$top/tests/sh/test-daemon.sh"
	for t in test-ingest test-fs-prefetch test-chunk-pipe; do
		[ -x "$top/build-tsan/tests/$t" ] &&
			run_one build-tsan "unit/$t" env TSAN_OPTIONS=exitcode=66 \
				setarch "$(uname -m)" -R "$top/build-tsan/tests/$t"
	done
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
