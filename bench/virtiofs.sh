#!/bin/bash
# virtiofs benchmark (issue 11), one run on this machine: a QEMU/TCG guest
# (tests/sh/lib/vm.sh) reads a store served by `casfs virtiofs` and the
# same tree, unpacked, served by Debian's virtiofsd (-o cache=auto),
# timed in the guest (/proc/uptime, 10 ms):
#
#   sequential read of a BENCH_BIG_MB (default 1024) MiB file (dd bs=1M),
#   find and tar (to /dev/null) of a tree of WALK_FILES (default 40000)
#   small files; each cold: a fresh boot and the host's caches dropped.
#   Target: virtiofsd/casfs >= 1.0 on each.  Also printed: the guest's
#   boot to a shell with the store mounted at /nix/store.
#
# Each figure is the median of REPS (default 3) boots, the backends taking
# turns.  Needs root (drop_caches), qemu-system-x86, Debian's cloud
# kernel (fetched by vm.sh); BENCH_DIR (default /var/tmp) needs about 2.5 GiB.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
CASFS=${CASFS:-$top/build/casfs}
REPS=${REPS:-3}
BENCH_BIG_MB=${BENCH_BIG_MB:-1024}
WALK_FILES=${WALK_FILES:-40000}
[ "$(id -u)" -eq 0 ] || { echo "bench/virtiofs.sh: run as root" >&2; exit 1; }
TMP=$(mktemp -d "${BENCH_DIR:-/var/tmp}/casfs-bench-virtiofs.XXXXXX")
backend=
# vm.sh wants these two from tests/sh/lib/common.sh
skip() { echo "skip $*" >&2; }
. "$top/tests/sh/lib/vm.sh"
cleanup() {
	vm_cleanup
	[ -n "$backend" ] && kill "$backend" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
vm_prepare || { echo "bench/virtiofs.sh: no VM: $VM_SKIP_REASON" >&2; exit 1; }

# ---- the trees: a big file, many small ones --------------------------------------
mkdir -p "$TMP/big" "$TMP/tree"
head -c $((BENCH_BIG_MB * 1024 * 1024)) /dev/urandom >"$TMP/big/data"
python3 - "$TMP/tree" "$WALK_FILES" <<'PY'
import os, random, sys
random.seed(1)
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "d%03d" % (i // 400))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(os.urandom(random.randint(100, 3000)))
PY
S=$TMP/store
big=$(basename "$("$CASFS" --store "$S" import "$TMP/big" | tail -1)")
tree=$(basename "$("$CASFS" --store "$S" import "$TMP/tree" | tail -1)")
mkdir -p "$TMP/unpacked"
cp -a "$TMP/big" "$TMP/unpacked/$big"
cp -a "$TMP/tree" "$TMP/unpacked/$tree"

cat >"$TMP/guest.sh" <<EOF
up() { cut -d' ' -f1 /proc/uptime; }
mkdir -p /nix/store
mount -t virtiofs store /nix/store -o ro || exit 1
echo "BENCH mounted \$(up)"
t0=\$(up); dd if=/nix/store/$big/data of=/dev/null bs=1M 2>/dev/null; t1=\$(up)
echo "BENCH read \$t0 \$t1"
t0=\$(up); n=\$(find /nix/store/$tree | wc -l); t1=\$(up)
echo "BENCH find \$t0 \$t1"
echo "COUNT find \$n"
umount /nix/store; mount -t virtiofs store /nix/store -o ro || exit 1
t0=\$(up); n=\$(tar cf - /nix/store/$tree 2>/dev/null | wc -c); t1=\$(up)
echo "BENCH tar \$t0 \$t1"
echo "COUNT tar \$n"
umount /nix/store
EOF

start_backend() { # casfs|virtiofsd
	rm -f "$TMP/v.sock"
	if [ "$1" = casfs ]; then
		"$CASFS" --store "$S" virtiofs "$TMP/v.sock" >"$TMP/backend.log" 2>&1 &
	else
		/usr/lib/qemu/virtiofsd --socket-path="$TMP/v.sock" -o source="$TMP/unpacked" \
			-o sandbox=chroot -o cache=auto --rlimit-nofile=1048576 >"$TMP/backend.log" 2>&1 &
	fi
	backend=$!
	for _ in $(seq 200); do [ -S "$TMP/v.sock" ] && return 0; sleep 0.05; done
	echo "bench/virtiofs.sh: $1 did not listen: $(cat "$TMP/backend.log")" >&2
	exit 1
}
took() { # LOG WHAT: seconds between the two uptimes on "BENCH WHAT a b"
	sed -n "s/^BENCH $2 \([0-9.]*\) \([0-9.]*\)$/\1 \2/p" "$1" | awk '{ printf "%.2f", $2 - $1 }'
}
want_find=$((WALK_FILES + $(find "$TMP/tree" -type d | wc -l)))
want_tar_min=$(du -sb "$TMP/tree" | cut -f1)
declare -A t
for i in $(seq "$REPS"); do
	for b in virtiofsd casfs; do
		sync
		echo 3 >/proc/sys/vm/drop_caches
		start_backend $b
		vm_run "$TMP/v.sock" store "$TMP/guest.sh" "$TMP/vm.log" 600 ||
			{ echo "bench/virtiofs.sh: the $b run failed: $(tail -5 "$TMP/vm.log")" >&2; exit 1; }
		wait "$backend" 2>/dev/null || true
		backend=
		# the guest saw the whole tree (a failing mount would be fast)
		n=$(sed -n 's/^COUNT find //p' "$TMP/vm.log")
		[ "$n" = "$want_find" ] || { echo "bench/virtiofs.sh: $b: find saw '$n' entries, not $want_find" >&2; exit 1; }
		n=$(sed -n 's/^COUNT tar //p' "$TMP/vm.log")
		[ "${n:-0}" -gt "$want_tar_min" ] || { echo "bench/virtiofs.sh: $b: tar wrote only '$n' bytes" >&2; exit 1; }
		for w in read find tar; do t[$b-$w]="${t[$b-$w]:-} $(took "$TMP/vm.log" $w)"; done
		t[$b-boot]="${t[$b-boot]:-} $(sed -n 's/^BENCH mounted //p' "$TMP/vm.log")"
	done
done
median() { tr ' ' '\n' | grep . | sort -g | sed -n "$(((REPS + 1) / 2))p"; }
printf '%-44s %-5s %10s %10s %8s\n' what unit virtiofsd casfs ratio
for w in read find tar boot; do
	a=$(echo ${t[virtiofsd-$w]} | median) b=$(echo ${t[casfs-$w]} | median)
	case $w in
	read) what="sequential read ($BENCH_BIG_MB MiB, cold)" ;;
	find) what="find ($WALK_FILES files, cold)" ;;
	tar) what="tar ($WALK_FILES files, cold)" ;;
	boot) what="boot to the store mounted (guest uptime)" ;;
	esac
	printf '%-44s %-5s %10.2f %10.2f %8.2f\n' "$what" s "$a" "$b" "$(echo "$a / $b" | bc -l)"
done
