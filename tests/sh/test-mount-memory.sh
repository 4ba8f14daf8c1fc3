#!/bin/bash
# The daemon's memory follows what the kernel holds: walk a store path of
# 200,000 entries through a mount, note the daemon's RSS, drop the
# kernel's caches (the kernel then forgets its inodes and the daemon frees
# them with their directories), and expect the RSS to fall back to less
# than half of its growth within 10 s.  Prints "peak RSS X KiB, settled
# RSS Y KiB".  Needs root (drop_caches).  Under ASan the allocator keeps
# freed memory in quarantine, so only the walk is checked there.
. "$(dirname "$0")/lib/common.sh"

M=$TMP/mnt
PID=
cleanup_hook() {
	if mountpoint -q "$M" 2>/dev/null || ! stat "$M" >/dev/null 2>&1; then
		fusermount3 -u "$M" 2>/dev/null || fusermount3 -uz "$M" 2>/dev/null
	fi
	[ -n "$PID" ] && kill "$PID" 2>/dev/null
}

if [ ! -e /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
	skip mount-memory "no /dev/fuse or fusermount3"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	skip mount-memory "needs root for /proc/sys/vm/drop_caches"
	exit 0
fi

# 2,000 directories of 100 files sharing 997 contents, a tenth of them
# executable: 202,001 entries, written straight as a NAR (creating and
# deleting 200,000 files takes longer than the rest of the test).
python3 - >"$TMP/tree.nar" <<'EOF'
import struct, sys
out = []
def s(b):
    b = b.encode()
    out.append(struct.pack("<Q", len(b)) + b + b"\0" * (-len(b) % 8))
def strs(*strings):
    for x in strings:
        s(x)
strs("nix-archive-1", "(", "type", "directory")
for d in range(2000):
    strs("entry", "(", "name", "d%04d" % d, "node", "(", "type", "directory")
    for f in range(100):
        n = d * 100 + f
        strs("entry", "(", "name", "file-with-a-longer-name-%03d" % f, "node")
        strs("(", "type", "regular")
        if n % 10 == 0:
            strs("executable", "")
        strs("contents", "content %d\n" % (n % 997), ")", ")")
    strs(")", ")")
strs(")")
sys.stdout.buffer.write(b"".join(out))
EOF
SP=$("$CASFS" import-nar tree "$TMP/tree.nar" 2>"$TMP/import.err")
if [ -z "$SP" ]; then
	fail setup "casfs import-nar failed: $(head -2 "$TMP/import.err")"
	exit 1
fi
rm -f "$TMP/tree.nar"

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$PID/status" 2>/dev/null; }

mkdir -p "$M"
"$CASFS" mount "$M" 2>"$TMP/daemon.log" &
PID=$!
for _ in $(seq 200); do
	mountpoint -q "$M" && break
	kill -0 "$PID" 2>/dev/null || break
	sleep 0.05
done
if ! mountpoint -q "$M"; then
	fail mount "not mounted within 10 s: $(tail -2 "$TMP/daemon.log")"
	exit 1
fi
base=$(rss)

n=$(find "$M/${SP#/nix/store/}" -printf '%p %y %m %s %l\n' | wc -l)
check_eq walk-entries "$n" 202001
peak=$(rss)

asan=0 # CASFS_SANITIZED comes from tests/run.sh
{ [ -n "${CASFS_SANITIZED:-}" ] || ldd "$CASFS" 2>/dev/null | grep -q libasan; } && asan=1
sync
echo 3 >/proc/sys/vm/drop_caches
threshold=$((base + (peak - base) / 2))
settled=$peak
for _ in $(seq $((asan ? 5 : 100))); do
	settled=$(rss)
	[ "$settled" -lt "$threshold" ] && break
	sleep 0.1
done
echo "baseline RSS $base KiB, peak RSS $peak KiB, settled RSS $settled KiB"

if [ "$asan" -eq 1 ]; then
	skip rss-falls "sanitizer allocators keep freed memory (quarantine)"
elif [ "$((peak - base))" -lt 8192 ]; then
	fail rss-grows "the walk grew the daemon by $((peak - base)) KiB only: nothing to measure"
elif [ "$settled" -lt "$threshold" ]; then
	pass rss-falls
else
	fail rss-falls "settled at $settled KiB, want < $threshold KiB (baseline $base, peak $peak)"
fi

# The tree is still all there after the kernel forgot it.
n=$(find "$M/${SP#/nix/store/}" -printf '%p %y %m %s %l\n' | wc -l)
check_eq walk-again "$n" 202001

fusermount3 -u "$M"
wait "$PID"
check_eq daemon-exit "$?" 0
PID=
bad=$(grep -E 'AddressSanitizer|LeakSanitizer|runtime error|ThreadSanitizer' "$TMP/daemon.log" | head -3)
check_eq daemon-no-sanitizer-reports "$bad" ""
check_eq daemon-quiet "$(head -3 "$TMP/daemon.log")" ""
exit 0
