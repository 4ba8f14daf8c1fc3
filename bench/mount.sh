#!/bin/bash
# Mount benchmark: the same corpus read natively (ext4), through
# squashfuse_ll on an uncompressed squashfs image, and through `casfs
# mount` on a local store, in one run on the same machine.  Prints the
# median of $REPS runs of each measurement and the ratios casfs/native and
# casfs/squashfuse of the figure shown (see the "better" column).
#
# Targets (issue "casfs mount"): every figure at least as good as
# squashfuse_ll; warm sequential read >= 0.9x native; warm metadata walk
# <= 1.5x native.
#
# Cold vs warm.  A cold run starts after `sync; echo 3 >
# /proc/sys/vm/drop_caches`, which empties the page, dentry and inode
# caches (the FUSE mounts then get FORGETs for everything).  So that a FUSE
# daemon's own memory cannot make a cold run warm either, both FUSE
# filesystems are also unmounted and mounted afresh before every cold run:
# squashfuse_ll starts with no cached inode tables, casfs with no inodes,
# no directories and an empty "verified" set, so a cold casfs read pays for
# re-hashing the blob before its first byte is served (DESIGN 4).  A warm
# run follows one untimed run of the same command.  One extra row, cold*,
# drops the caches but keeps the daemons, which is what a long-running
# mount sees: there casfs has verified the blob already.
#
# Needs root (drop_caches, mounts), fio, squashfs-tools, squashfuse, fuse3.
# Knobs: REPS (default 3; warm runs WARM_REPS, default 3 x REPS),
# FIO_RUNTIME seconds (default 10), CASFS (the binary, default
# build/casfs), BENCH_DIR (parent of the work dir, default /var/tmp; needs
# about 2.5 GiB).  The machine should be otherwise idle.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
casfs=${CASFS:-$top/build/casfs}
REPS=${REPS:-3}
# Warm runs are short and noisier: more of them.
WARM_REPS=${WARM_REPS:-$((3 * REPS))}
FIO_RUNTIME=${FIO_RUNTIME:-10}

for tool in fio mksquashfs squashfuse_ll fusermount3 python3 bc; do
	command -v "$tool" >/dev/null || { echo "bench/mount.sh: '$tool' is missing" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "bench/mount.sh: run as root (drop_caches, mounts)" >&2; exit 1; }
[ -x "$casfs" ] || { echo "bench/mount.sh: no casfs binary at $casfs" >&2; exit 1; }

work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/casfs-bench-mount.XXXXXX")
src=$work/src sq=$work/mnt-squashfuse cm=$work/mnt-casfs
cleanup() {
	local m
	for m in "$sq" "$cm"; do
		mountpoint -q "$m" 2>/dev/null && { fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m"; }
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# wait_mounted DIR: bounded poll (squashfuse_ll daemonizes on its own)
wait_mounted() {
	for _ in $(seq 400); do
		mountpoint -q "$1" && return 0
		sleep 0.05
	done
	echo "bench/mount.sh: $1 did not get mounted" >&2
	exit 1
}
# wait_unmounted DIR: bounded poll until the daemon let go of the mount
wait_unmounted() {
	for _ in $(seq 400); do
		mountpoint -q "$1" || return 0
		sleep 0.05
	done
	echo "bench/mount.sh: $1 did not get unmounted" >&2
	exit 1
}
mount_squashfuse() { squashfuse_ll "$work/image.sqfs" "$sq"; wait_mounted "$sq"; }
mount_casfs() {
	"$casfs" mount "$cm" --background --store "$work/store" 2>>"$work/casfs.log"
	mountpoint -q "$cm" || { echo "bench/mount.sh: casfs mount failed: $(tail -1 "$work/casfs.log")" >&2; exit 1; }
}
remount() { # TARGET: a fresh daemon for a FUSE target, nothing for native
	case $1 in
	squashfuse) fusermount3 -u "$sq"; wait_unmounted "$sq"; mount_squashfuse ;;
	casfs) fusermount3 -u "$cm"; wait_unmounted "$cm"; mount_casfs ;;
	esac
}

# --- the corpus ------------------------------------------------------------

echo "building the corpus in $work ..."
mkdir -p "$src/big" "$sq" "$cm"
head -c 1G /dev/urandom >"$src/big/random-1g"
# 20 x 20 directories of 100 files (0-8 KiB, a tenth of them duplicates of
# another) and 10 symlinks each: 40,000 files, 4,000 symlinks, 421 dirs.
python3 - "$src/tree" <<'PY'
import os, random, sys
rng = random.Random(1)
root = sys.argv[1]
pool = []
for a in range(20):
    for b in range(20):
        d = os.path.join(root, "a%02d" % a, "b%02d" % b)
        os.makedirs(d)
        for f in range(100):
            if pool and rng.random() < 0.1:
                data = rng.choice(pool)
            else:
                data = rng.randbytes(rng.randint(0, 8192))
                if len(pool) < 1000:
                    pool.append(data)
            with open(os.path.join(d, "file%03d" % f), "wb") as fh:
                fh.write(data)
            if f % 7 == 0:
                os.chmod(os.path.join(d, "file%03d" % f), 0o755)
        for s in range(10):
            os.symlink("file%03d" % (s * 10), os.path.join(d, "link%02d" % s))
PY
echo "corpus: $(find "$src/tree" -type f | wc -l) files, $(find "$src/tree" -type l | wc -l) symlinks," \
	"$(find "$src/tree" -type d | wc -l) directories, $(du -sh "$src/tree" | cut -f1); one 1 GiB random file"

mksquashfs "$src" "$work/image.sqfs" -noI -noD -noF -noX -no-progress -quiet >/dev/null
sp=$("$casfs" --store "$work/store" import "$src")
mount_squashfuse
mount_casfs

# Each target's view of the corpus.
declare -A root=([native]=$src [squashfuse]=$sq [casfs]=$cm/${sp#/nix/store/})
for t in squashfuse casfs; do
	cmp -s "$src/big/random-1g" "${root[$t]}/big/random-1g" ||
		{ echo "bench/mount.sh: $t shows other bytes" >&2; exit 1; }
done
targets=(native squashfuse casfs)

# --- measurements -------------------------------------------------------------

# The timed commands; $1 is a target's root.
seq_read() { dd if="$1/big/random-1g" of=/dev/null bs=1M status=none; }
walk() { find "$1/tree" -printf '%p %y %m %s %l\n' >/dev/null; }
# GNU tar skips reading file contents when the archive is /dev/null.
tar_all() { tar -C "$1" -cf - tree | cat >/dev/null; }

# secs MODE TARGET CMD: median seconds of REPS runs.  MODE: cold (fresh
# daemon, caches dropped), kept (caches dropped, same daemon) or warm.
secs() {
	local mode=$1 t=$2 cmd=$3 a b n=$REPS
	[ "$mode" = warm ] && $cmd "${root[$t]}" && n=$WARM_REPS
	for _ in $(seq "$n"); do
		[ "$mode" = cold ] && remount "$t" >/dev/null
		[ "$mode" != warm ] && drop_caches
		a=$(now)
		$cmd "${root[$t]}"
		b=$(now)
		echo "scale=3; ($b - $a) / 1000000000" | bc
	done | median
}
# fio_iops TARGET: median IOPS of 4 KiB random reads, warm
fio_iops() {
	local f=${root[$1]}/big/random-1g
	cat "$f" >/dev/null
	for _ in $(seq "$REPS"); do
		fio --name=r --filename="$f" --readonly --rw=randread --bs=4k --size=1G --invalidate=0 \
			--runtime="$FIO_RUNTIME" --time_based --ioengine=psync --output-format=json |
			python3 -c 'import json,sys; print(int(json.load(sys.stdin)["jobs"][0]["read"]["iops"]))'
	done | median
}

declare -A val
rows=()
# row KEY LABEL UNIT BETTER: one line of the table; val[KEY,target] set
row() { rows+=("$1|$2|$3|$4"); }
mbps() { echo "scale=0; 1024 / $1" | bc; }

for mode in cold kept warm; do
	for t in "${targets[@]}"; do
		s=$(secs "$mode" "$t" seq_read)
		val[seq-$mode,$t]=$(mbps "$s")
	done
	case $mode in
	kept) row "seq-$mode" "sequential read 1 GiB, cold*" "MB/s" higher ;;
	*) row "seq-$mode" "sequential read 1 GiB, $mode" "MB/s" higher ;;
	esac
done
for t in "${targets[@]}"; do
	val[fio,$t]=$(fio_iops "$t")
done
row fio "fio randread 4 KiB psync, warm" "IOPS" higher
for cmd in walk tar_all; do
	for mode in cold warm; do
		for t in "${targets[@]}"; do
			val[$cmd-$mode,$t]=$(secs "$mode" "$t" "$cmd")
		done
		case $cmd in
		walk) row "$cmd-$mode" "find -printf walk, $mode" s lower ;;
		tar_all) row "$cmd-$mode" "tar c tree (piped), $mode" s lower ;;
		esac
	done
done

# --- the table --------------------------------------------------------------

ratio() { # A B: A/B with 2 decimals, or - when B is 0
	if [ "$(echo "$2 == 0" | bc)" -eq 1 ]; then echo -; else echo "scale=2; $1 / $2" | bc | sed 's/^\./0./'; fi
}
echo
echo "median of $REPS (warm: $WARM_REPS); ratios are casfs's figure divided by the other's (see 'better')"
printf '%-32s %-5s %-6s %10s %10s %10s %8s %8s\n' measurement unit better native squashfuse casfs \
	/native /squashfs
for r in "${rows[@]}"; do
	IFS='|' read -r key label unit better <<<"$r"
	n=${val[$key,native]} s=${val[$key,squashfuse]} c=${val[$key,casfs]}
	printf '%-32s %-5s %-6s %10s %10s %10s %8s %8s\n' "$label" "$unit" "$better" "$n" "$s" "$c" \
		"$(ratio "$c" "$n")" "$(ratio "$c" "$s")"
done
echo "cold: fresh daemons and dropped caches; cold*: dropped caches, daemons kept" \
	"(casfs: the blob was verified by the previous run)"
if [ -s "$work/casfs.log" ]; then
	echo
	echo "casfs mount stderr:"
	head -5 "$work/casfs.log"
fi
