#!/bin/bash
# The mount's concurrency test under ThreadSanitizer: a daemon built with
# `make TSAN=1` ($CASFS_TSAN) serves a tree with 16 threads while 16
# processes read, list and stat it at once, on a fresh mount (so first
# lookups, directory loads, blob verification and the open-blob cache all
# race), then again warm.  Fails on any "WARNING: ThreadSanitizer" in the
# daemon's stderr, and on any wrong byte.  SKIP when CASFS_TSAN is unset.
#
#   CASFS_TSAN=build-tsan/casfs bash tests/sh/tsan-mount.sh
. "$(dirname "$0")/lib/common.sh"

M=$TMP/mnt
cleanup_hook() {
	if mountpoint -q "$M" 2>/dev/null || ! stat "$M" >/dev/null 2>&1; then
		fusermount3 -u "$M" 2>/dev/null || fusermount3 -uz "$M" 2>/dev/null
	fi
}

if [ -z "${CASFS_TSAN:-}" ]; then
	skip tsan-mount "CASFS_TSAN is not set (build with 'make TSAN=1')"
	exit 0
fi
if [ ! -e /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
	skip tsan-mount "no /dev/fuse or fusermount3"
	exit 0
fi
if [ ! -x "$CASFS_TSAN" ]; then
	fail tsan-mount "CASFS_TSAN=$CASFS_TSAN is not an executable"
	exit 1
fi
# Report every race, keep going; the daemon's exit code is checked apart.
# io_sync stays at its default (1): TSan then orders a write to a file
# descriptor before a later read of one, which models FUSE's own ordering
# (the reply to opendir comes before the readdir that uses the handle) but
# also hides races between requests that do I/O in between.  Races inside
# overlapping requests are still found (a counter bumped in op_read without
# a lock is reported every run).
export TSAN_OPTIONS="halt_on_error=0 exitcode=0 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
# Without address randomisation: under TSan's fixed memory layout the
# store's 1 TiB LMDB map otherwise fails to fit about one run in three
# ("Cannot allocate memory").
tsan() { setarch "$(uname -m)" -R "$CASFS_TSAN" "$@"; }

# The fixture: the tricky tree plus enough files and directories that the
# 16 readers overlap, some of them sharing content (shared inodes and
# cached blobs) and one large enough for several concurrent read requests
# (49 outboard groups).
SRC=$TMP/tree
python3 "$TOP/tests/sh/lib/make-tree.py" tricky "$SRC" >/dev/null
python3 - "$SRC/many" <<'EOF'
import os, random, sys
rng = random.Random(7)
for d in range(20):
    p = os.path.join(sys.argv[1], "d%02d" % d, "sub")
    os.makedirs(p)
    for f in range(30):
        with open(os.path.join(p, "f%02d" % f), "wb") as fh:
            fh.write(b"shared %d\n" % (f % 7) if f % 2 else rng.randbytes(rng.randint(0, 20000)))
    os.symlink("sub/f00", os.path.join(p, "..", "link"))
EOF
head -c $((3 * 1024 * 1024 + 17)) /dev/urandom >"$SRC/random-big"

# Import with the plain binary ($CASFS) when there is one: only the daemon is
# under test here.
if [ -x "$CASFS" ]; then
	SP=$("$CASFS" import "$SRC" 2>"$TMP/import.err")
else
	SP=$(tsan import "$SRC" 2>"$TMP/import.err")
fi
if [ -z "$SP" ]; then
	fail setup "casfs import failed: $(head -2 "$TMP/import.err")"
	exit 1
fi
P=$M/${SP#/nix/store/}

content_sums() { (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum); }
content_sums "$SRC" >"$TMP/sums.want"
(cd "$SRC" && find . -printf '%P %y %s\n' | LC_ALL=C sort | grep -a ' f ') >"$TMP/stat.want"

# ROUND: 16 processes at once; prints the number of mismatching results.
hammer() {
	local round=$1 i bad=0 pids=()
	for i in $(seq 16); do
		(
			content_sums "$P" >"$TMP/sums.$round.$i" 2>&1
			(cd "$P" && find . -printf '%P %y %s\n' | LC_ALL=C sort | grep -a ' f ') >"$TMP/stat.$round.$i" 2>&1
			ls -laR "$P" >/dev/null 2>&1
			getfattr -R -d -m - "$P" >/dev/null 2>&1
		) &
		pids+=($!)
	done
	for i in $(seq 16); do
		wait "${pids[$((i - 1))]}"
		cmp -s "$TMP/sums.$round.$i" "$TMP/sums.want" || bad=$((bad + 1))
		cmp -s "$TMP/stat.$round.$i" "$TMP/stat.want" || bad=$((bad + 1))
	done
	echo "$bad mismatches"
}

# RANGES: 16 processes reading random ranges of the big file at once, on a
# fresh mount, so first checks of its outboard groups race with each other
# and with reads of checked ones; prints the number of wrong ranges.
ranges() {
	local i bad=0 pids=()
	for i in $(seq 16); do
		python3 - "$SRC/random-big" "$P/random-big" "$i" >"$TMP/ranges.$i" 2>&1 <<'PY' &
import os, random, sys
want = open(sys.argv[1], "rb").read()
fd = os.open(sys.argv[2], os.O_RDONLY)
rng = random.Random(int(sys.argv[3]))
bad = 0
for _ in range(200):
    off = rng.randrange(len(want))
    n = rng.choice([1, 4096, 65536, 65537, 200000])
    if os.pread(fd, n, off) != want[off:off + n]:
        bad += 1
print(bad)
PY
		pids+=($!)
	done
	for i in $(seq 16); do
		wait "${pids[$((i - 1))]}"
		[ "$(cat "$TMP/ranges.$i")" = 0 ] || bad=$((bad + 1))
	done
	echo "$bad wrong"
}

mkdir -p "$M"
if ! tsan mount "$M" --background --threads 16 2>"$TMP/daemon.log"; then
	fail mount "$(tail -3 "$TMP/daemon.log")"
	exit 1
fi
check_eq concurrent-16-ranges "$(ranges)" "0 wrong"
check_eq concurrent-16-cold "$(hammer cold)" "0 mismatches"
check_eq concurrent-16-warm "$(hammer warm)" "0 mismatches"
# The kernel forgets everything: forgets race with the next round's lookups.
if [ "$(id -u)" -eq 0 ]; then
	sync
	echo 3 >/proc/sys/vm/drop_caches
	check_eq concurrent-16-forgotten "$(hammer forgotten)" "0 mismatches"
fi

# Unmount and wait (bounded) for the daemon to finish writing its reports.
fusermount3 -u "$M"
for _ in $(seq 200); do
	fuser -s "$TMP/daemon.log" 2>/dev/null || break
	sleep 0.05
done
if fuser -s "$TMP/daemon.log" 2>/dev/null; then
	fail daemon-exit "the daemon did not exit within 10 s of the unmount"
fi
n=$(grep -c 'WARNING: ThreadSanitizer' "$TMP/daemon.log")
if [ "$n" -eq 0 ]; then
	pass daemon-no-tsan-reports
else
	fail daemon-no-tsan-reports "$n reports; the first:"
	sed -n '/WARNING: ThreadSanitizer/,/^SUMMARY/p' "$TMP/daemon.log" | head -60
	grep '^SUMMARY: ThreadSanitizer' "$TMP/daemon.log" | sort | uniq -c | sort -rn | head -20
fi
# Anything else on stderr (outside the "====" framed reports) is an error.
other=$(awk '/^==================$/ { inside = !inside; next } !inside' "$TMP/daemon.log" |
	grep -v -e '^$' -e '^ThreadSanitizer: reported' | head -3)
check_eq daemon-quiet "$other" ""
exit 0
