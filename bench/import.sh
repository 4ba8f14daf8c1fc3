#!/bin/bash
# Import/export benchmark: casfs against nix-store on the same corpora, in
# one run on the same machine, warm page cache.  Prints medians of $REPS
# runs and the ratios the core issue asks for:
#   import          casfs import  vs nix-store --add      (target >= 2x faster)
#                   casfs makes the closure durable (syncfs) before it
#                   registers the path; nix-store does not sync, so the
#                   table also shows nix-store --add followed by sync.
#                   Every timed import starts from synced disks.
#   re-import       content already present vs hashing bound (target <= 1.3x)
#                   the bound: bench/hashbound.c, BLAKE3 + SHA-256 of every
#                   file on one thread; the same pipelined on 2 threads is
#                   shown too, and the two bounds side by side
#   nar export      casfs nar     vs nix-store --dump     (target <= 0.8x)
#   verify          `casfs verify` of the store holding the big file vs
#                   its one-thread BLAKE3 bound (hashbound --b3-only):
#                   verify/bound <= 0.56, i.e. verify >= 1.8x faster than
#                   one thread hashing (on 2 cores); the tree bound on every
#                   core (hashbound --b3-only --threads N) is shown too
#   peak RSS        of importing the 1 GiB file           (target < 64 MiB)
# Ratios are always casfs's time divided by the other's (lower is better).
# Knobs: REPS (default 3), BENCH_BIG_MB (the big file, default 1024 MiB).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
casfs="$top/build/casfs"
hashbound="$top/build/bench-hashbound"
REPS=${REPS:-3}
BENCH_BIG_MB=${BENCH_BIG_MB:-1024}
work=$(mktemp -d /var/tmp/casfs-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
nix_store() { nix-store --option build-users-group "" "$@"; }
nix_add_sync() { nix_store --add "$1" && sync; }

now() { date +%s%N; }
# time_cmd CMD...: seconds of one run (stdout discarded)
time_cmd() {
	local a b
	a=$(now)
	"$@" >/dev/null
	b=$(now)
	echo "scale=3; ($b - $a) / 1000000000" | bc | sed 's/^\./0./'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# measure LABEL SETUP CMD...: median over REPS, SETUP run before each rep
measure() {
	local setup=$1
	shift
	for _ in $(seq "$REPS"); do
		eval "$setup"
		time_cmd "$@"
	done | median
}
ratio() { # A B: A/B with 2 decimals, or - when B is 0
	if [ "$(echo "$2 == 0" | bc)" -eq 1 ]; then echo -; else echo "scale=2; $1 / $2" | bc | sed 's/^\./0./'; fi
}
# bound ARGS...: median seconds of REPS runs of bench-hashbound ARGS - over
# the files listed in $work/files; stops the benchmark if a run fails (a
# digest that differs from the one-thread hashers')
bound() {
	local out all=
	for _ in $(seq "$REPS"); do
		out=$("$hashbound" "$@" - <"$work/files") ||
			{ echo "bench/import.sh: bench-hashbound $* failed" >&2; exit 1; }
		all+=$out$'\n'
	done
	printf '%s' "$all" | median
}
cores=$(nproc)
[ "$cores" -gt 8 ] && cores=8 # casfs_b3_threads()

echo "building corpora in $work ..."
mkdir -p "$work/big" "$work/tree"
head -c "${BENCH_BIG_MB}M" /dev/urandom >"$work/big/random-1g"
python3 - "$work/tree/small-files" <<'PY'
import os, random, sys
rng = random.Random(1)
root = sys.argv[1]
for d in range(200):
    p = os.path.join(root, "dir%03d" % d)
    os.makedirs(p)
    for f in range(100):
        with open(os.path.join(p, "file%03d" % f), "wb") as fh:
            fh.write(rng.randbytes(rng.randint(0, 8192)))
    os.symlink("file000", os.path.join(p, "link"))
PY
echo "tree: $(find "$work/tree" -type f | wc -l) files, $(du -sh "$work/tree" | cut -f1); big: $BENCH_BIG_MB MiB"
cat "$work/big/random-1g" >/dev/null
tar cf - "$work/tree" >/dev/null 2>&1

printf '\n%-34s %10s %10s %8s\n' "measurement (median of $REPS, s)" casfs peer ratio
for corpus in big tree; do
	src="$work/$corpus/$(ls "$work/$corpus")"
	# import from scratch: empty casfs store vs nix path deleted first
	p=$(nix_store --add "$src")
	nixs=$(measure "nix_store --delete $p >/dev/null 2>&1 || true; sync" nix_store --add "$src")
	nixsync=$(measure "nix_store --delete $p >/dev/null 2>&1 || true; sync" nix_add_sync "$src")
	cas=$(measure "rm -rf $work/store; sync" "$casfs" --store "$work/store" import "$src")
	printf '%-34s %10s %10s %8s  (target <= 0.50)\n' "import $corpus vs nix-store --add" "$cas" "$nixs" "$(ratio "$cas" "$nixs")"
	printf '%-34s %10s %10s %8s\n' "import $corpus vs nix-store --add;sync" "$cas" "$nixsync" "$(ratio "$cas" "$nixsync")"

	# re-import of content already present vs the hashing bound
	"$casfs" --store "$work/store" import "$src" >/dev/null
	re=$(measure : "$casfs" --store "$work/store" import "$src")
	# the bound: read every file of the corpus and hash it with BLAKE3 and
	# SHA-256, one after the other, in one process; and the same with
	# SHA-256 and BLAKE3 on two threads
	find "$src" -type f | sort >"$work/files"
	bound1=$(bound)
	bound2=$(bound --threads 2)
	printf '%-34s %10s %10s %8s  (target <= 1.30)\n' "re-import $corpus vs hash bound" "$re" "$bound1" "$(ratio "$re" "$bound1")"
	printf '%-34s %10s %10s %8s\n' "re-import $corpus vs 2-thread bound" "$re" "$bound2" "$(ratio "$re" "$bound2")"
	printf '%-34s %10s %10s %8s\n' "hash bound $corpus, 2 vs 1 thread" "$bound2" "$bound1" "$(ratio "$bound2" "$bound1")"

	# NAR export
	cn=$(measure : "$casfs" --store "$work/store" nar "$p")
	nn=$(measure : nix_store --dump "$src")
	printf '%-34s %10s %10s %8s  (target <= 0.80)\n' "nar $corpus vs nix-store --dump" "$cn" "$nn" "$(ratio "$cn" "$nn")"

	# verify: the store holds just this corpus (and the big file is one
	# blob); the bound is BLAKE3 alone on one thread, and the tree on
	# every core
	if [ "$corpus" = big ]; then
		ve=$(measure : "$casfs" --store "$work/store" verify)
		vb1=$(bound --b3-only --threads 1)
		vbn=$(bound --b3-only --threads "$cores")
		printf '%-34s %10s %10s %8s  (target <= 0.56)\n' "verify big vs one-thread b3 bound" "$ve" "$vb1" "$(ratio "$ve" "$vb1")"
		printf '%-34s %10s %10s %8s\n' "verify big vs $cores-thread b3 bound" "$ve" "$vbn" "$(ratio "$ve" "$vbn")"
	fi
done

rm -rf "$work/store"
/usr/bin/time -f '%M' -o "$work/rss" "$casfs" --store "$work/store" import "$work/big/random-1g" >/dev/null
echo
echo "peak RSS importing the $BENCH_BIG_MB MiB file: $(($(tail -1 "$work/rss") / 1024)) MiB (target < 64 MiB)"
