#!/bin/bash
# LMDB reader slots: every store read runs in its own read transaction,
# which holds a slot of the store's reader table (DIR/db/lock.mdb) for its
# lifetime, and LMDB's default table has 126 slots.  A mount serving with
# --threads 600 must size the table for its threads, so that hundreds of
# reads in flight at once never fail:
#
#  - structural: while `casfs mount --threads 600` runs, the store's
#    reader table has room for 600 readers and more;
#  - under load: 400 threads released at once each make a cold lookup in
#    their own store path (its root Directory read) and list its
#    200-entry directory (another Directory read), on a fresh mount after
#    dropping the page cache, with no error; and at least once more than
#    126 reads were in flight at once (mdb_env_info's high-water mark), or
#    the load proved nothing.  Transactions overlap when they wait for the
#    disk inside them (a page fault on the store's map), so where the
#    machine allows it (root, a block device under the store, cgroup
#    blkio/io throttling) the daemon's reads are throttled to a slow
#    disk's pace (50 reads/s), which makes hundreds of them overlap even
#    on a 2-core machine; elsewhere the load runs at full speed and the
#    overlap is only reported.  Without the sizing, about two thirds of the
#    readers get EIO (MDB_READERS_FULL).
#
# Mounts with --background (returns once mounted), always unmounts, and
# removes the cgroup it made.
. "$(dirname "$0")/lib/common.sh"

M=$TMP/mnt
CG=            # the throttling cgroup made here, if any
CG_PARENT=     # where its processes go back to
cleanup_hook() {
	if mountpoint -q "$M" 2>/dev/null || ! stat "$M" >/dev/null 2>&1; then
		fusermount3 -u "$M" 2>/dev/null || fusermount3 -uz "$M" 2>/dev/null
	fi
	if [ -n "$CG" ] && [ -d "$CG" ]; then
		local p
		for p in $(cat "$CG/cgroup.procs" 2>/dev/null); do
			echo "$p" >"$CG_PARENT/cgroup.procs" 2>/dev/null
		done
		rmdir "$CG" 2>/dev/null
	fi
}
if [ ! -e /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
	skip mount-readers "no /dev/fuse or fusermount3"
	exit 0
fi

N=400       # store paths, and concurrent readers
THREADS=600
ROUNDS=2
IOPS=50     # the slow disk: reads per second for the daemon

# 400 trees, each a file and a directory of 200 symlinks (no blobs to
# store; a Directory of some kilobytes, on pages of its own).
python3 - "$TMP/src" "$N" <<'EOF'
import os, sys
top, n = sys.argv[1], int(sys.argv[2])
for i in range(1, n + 1):
    t = os.path.join(top, "t%d" % i)
    os.makedirs(os.path.join(t, "d"))
    with open(os.path.join(t, "file"), "w") as f:
        f.write("tree %d\n" % i)
    for k in range(200):
        os.symlink("../file", os.path.join(t, "d", "link-%03d-%d" % (k, i)))
EOF
"$CASFS" import "$TMP"/src/t* >"$TMP/paths" 2>"$TMP/import.err" ||
	{ fail import "$(head -2 "$TMP/import.err")"; exit 1; }
check_eq imported "$(wc -l <"$TMP/paths")" "$N"
sed -i 's|^/nix/store/||' "$TMP/paths"

# The throttle: a blkio (cgroup v1) or io (v2) cgroup limiting reads from
# the disk under the store.
setup_throttle() {
	[ "$(id -u)" = 0 ] || { echo "not root"; return 1; }
	local dev
	dev=$(stat -c '%Hd:%Ld' "$CASFS_STORE/db/data.mdb") || return 1
	[ -e "/sys/dev/block/$dev" ] || { echo "the store is on no block device ($dev)"; return 1; }
	# a partition: throttle its disk
	[ -e "/sys/dev/block/$dev/partition" ] && dev=$(cat "/sys/dev/block/$dev/../dev")
	local name=casfs-test-readers-$$
	if [ -w /sys/fs/cgroup/blkio/cgroup.procs ]; then
		CG_PARENT=/sys/fs/cgroup/blkio CG=$CG_PARENT/$name
		mkdir "$CG" && echo "$dev $IOPS" >"$CG/blkio.throttle.read_iops_device" && return 0
	elif grep -qw io /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; then
		CG_PARENT=/sys/fs/cgroup CG=$CG_PARENT/$name
		mkdir "$CG" && echo "$dev riops=$IOPS" >"$CG/io.max" && return 0
	else
		echo "no blkio or io cgroup controller"
		return 1
	fi
	echo "cannot set up $CG"
	return 1
}
# (not in a subshell: it sets CG for cleanup_hook)
if setup_throttle >"$TMP/throttle.why" 2>&1; then
	throttled=1
else
	throttled=0
	skip mount-readers-slow-disk "cannot throttle the store's disk ($(head -1 "$TMP/throttle.why")); loading at full speed"
fi

# The readers: 400 threads of one process, released together by a barrier,
# each making blocking calls into the mount (400 processes would cost more
# than the reads on a small machine, and start one after the other).  With
# libfuse before 3.17 the kernel serialises lookups within one directory
# (FUSE_PARALLEL_DIROPS is never granted), so the store paths are looked
# up first, one by one, and held (O_PATH, which pins the dentry through
# the cache drop); the readers then look up and list inside 400 distinct
# directories, which the kernel sends in parallel.
load() { # ROUND
	python3 - "$M" "$TMP/paths" >"$TMP/readers.$1" 2>&1 <<'EOF'
import errno, os, sys, threading
mnt, paths = sys.argv[1], open(sys.argv[2]).read().split()[:-1]
fds = {p: os.open(os.path.join(mnt, p), os.O_PATH | os.O_DIRECTORY) for p in paths}
os.sync()
try:
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")
except OSError:
    pass  # not root: the mount is fresh, the store's pages may be cached
barrier = threading.Barrier(len(paths))
errors = []
def reader(p):
    try:
        barrier.wait()
        os.stat("file", dir_fd=fds[p])
        d = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fds[p])
        try:
            n = len(os.listdir(d))
        finally:
            os.close(d)
        if n != 200:
            raise OSError(errno.EBADMSG, "%d entries" % n)
    except OSError as e:
        errors.append("%s: %s" % (p, e))
threads = [threading.Thread(target=reader, args=(p,)) for p in paths]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("%d failed" % len(errors))
for e in errors[:3]:
    print(e)
EOF
	sed -n 's/^\([0-9]*\) failed$/\1/p' "$TMP/readers.$1"
}

mkdir -p "$M"
failed=0 bad_rounds=0 most=0
last=$(tail -1 "$TMP/paths") # the warm-up's; not among the readers'
for round in $(seq "$ROUNDS"); do
	log=$TMP/daemon.$round.log
	"$CASFS" mount "$M" --background --threads "$THREADS" 2>"$log" ||
		{ fail "mount-$round" "$(tail -2 "$log")"; exit 1; }
	pid=$(fuser "$log" 2>/dev/null | tr -d ' ')
	if [ "$round" = 1 ]; then
		read -r slots _ < <(python3 "$TOP/tests/sh/lib/lmdb-readers.py" "$CASFS_STORE" 2>&1)
		if [ "$slots" -gt "$THREADS" ] 2>/dev/null; then pass reader-table-sized; else
			fail reader-table-sized "$slots reader slots for --threads $THREADS"
		fi
	fi
	if [ "$throttled" = 1 ] && ! echo "$pid" >"$CG/cgroup.procs"; then
		fail "throttle-$round" "cannot move the daemon ($pid) into $CG"
		exit 1
	fi
	# Warm-up: the daemon's code paths (mapped, so they survive the cache
	# drop in load(), unlike the store's pages).
	cat "$M/$last/file" >/dev/null && ls -l "$M/$last/d" >/dev/null
	n_failed=$(load "$round")
	# the most reads that were in flight at once (while the daemon holds
	# the table, so it is this mount's)
	read -r _ used < <(python3 "$TOP/tests/sh/lib/lmdb-readers.py" "$CASFS_STORE" 2>&1)
	most=$((most > ${used:-0} ? most : ${used:-0}))
	if [ "${n_failed:-x}" != 0 ]; then
		failed=$((failed + ${n_failed:-1})) bad_rounds=$((bad_rounds + 1))
		echo "round $round: $(head -2 "$TMP/readers.$round" | tr '\n' ' ')"
	fi
	fusermount3 -u "$M" || { fail "unmount-$round" "fusermount3 -u failed"; exit 1; }
	# the daemon closes its log when it exits (bounded wait)
	for _ in $(seq 200); do fuser -s "$log" 2>/dev/null || break; sleep 0.05; done
done
check_eq concurrent-cold-reads "$failed failed readers in $bad_rounds of $ROUNDS rounds" \
	"0 failed readers in 0 of $ROUNDS rounds"
# On the slow disk the load must really have outgrown LMDB's default
# table (126), or the check above proved nothing.
echo "at most $most reads were in flight at once"
if [ "$throttled" = 1 ]; then
	if [ "$most" -gt 126 ]; then pass reads-overlapped; else
		fail reads-overlapped "at most $most reads were in flight at once"
	fi
fi

bad=$(cat "$TMP"/daemon.*.log | grep -v '^$' | head -3)
check_eq daemon-no-errors "$bad" ""
exit 0
