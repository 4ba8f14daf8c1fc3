#!/bin/bash
# The hash bounds of bench/hashbound.c over one random file (1 GiB by
# default), warm page cache: the import bound (BLAKE3 + SHA-256) on one
# thread and pipelined on two, and BLAKE3 alone (the verify bound) on one
# thread and as a tree on 2 and on every core (casfs_b3_threads: online
# CPUs, at most 8).  Prints the median of $REPS runs of each, in seconds
# and MB/s, with the speed-up over the same bound on one thread.  Every
# multi-thread run checks its digests against the one-thread hashers.
#
# Knobs: REPS (default 3), BENCH_BIG_MB (file size, default 1024),
# BENCH_DIR (where the file goes, default /var/tmp), HASHBOUND (the
# binary, default build/bench-hashbound).  `make bench-hashbound`; also
# run by `make bench-b3`.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
hashbound=${HASHBOUND:-$top/build/bench-hashbound}
REPS=${REPS:-3}
BENCH_BIG_MB=${BENCH_BIG_MB:-1024}
[ -x "$hashbound" ] || { echo "bench/hashbound.sh: no binary at $hashbound" >&2; exit 1; }

f=$(mktemp "${BENCH_DIR:-/var/tmp}/casfs-hashbound.XXXXXX")
trap 'rm -f "$f"' EXIT
head -c "${BENCH_BIG_MB}M" /dev/urandom >"$f"
cat "$f" >/dev/null

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# bound ARGS...: median seconds of REPS runs; fails if a run fails
bound() {
	local out all=
	for _ in $(seq "$REPS"); do
		out=$("$hashbound" "$@" "$f") || { echo "bench/hashbound.sh: bench-hashbound $* failed" >&2; exit 1; }
		all+=$out$'\n'
	done
	printf '%s' "$all" | median
}
# div A B [SCALE]: A/B, or - when B is 0
div() {
	if [ "$(echo "$2 == 0" | bc)" -eq 1 ]; then echo -; else echo "scale=${3:-2}; $1 / $2" | bc | sed 's/^\./0./'; fi
}
mbps() { div "$BENCH_BIG_MB * 1.048576" "$1" 0; }
cores=$(nproc)
[ "$cores" -gt 8 ] && cores=8

echo
echo "hash bound over a $BENCH_BIG_MB MiB file (median of $REPS, warm cache, $(nproc) CPUs)"
printf '%-40s %7s %8s %8s %8s\n' bound threads s MB/s "vs 1"
one=
for t in 1 2; do
	s=$(bound --threads "$t")
	[ "$t" = 1 ] && one=$s
	printf '%-40s %7s %8s %8s %7sx\n' "import (BLAKE3 + SHA-256)" "$t" "$s" \
		"$(mbps "$s")" "$(div "$one" "$s")"
done
counts="1 2"
[ "$cores" -gt 2 ] && counts="$counts $cores"
for t in $counts; do
	s=$(bound --b3-only --threads "$t")
	[ "$t" = 1 ] && one=$s
	printf '%-40s %7s %8s %8s %7sx\n' "verify (BLAKE3 only)" "$t" "$s" \
		"$(mbps "$s")" "$(div "$one" "$s")"
done
echo "import, 2 threads: SHA-256 on the reading thread, BLAKE3 on the other (pipelined)"
echo "verify, 2+ threads: the BLAKE3 tree with its outboard (casfs_b3_stream), as casfs verify"
