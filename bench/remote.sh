#!/bin/bash
# Remote store benchmark (issue 10), one run on this machine, a casfs
# daemon on a unix socket:
#
# 1. A mount over grpc+unix against the same store mounted locally:
#    sequential read of a BENCH_BIG_MB (default 1024) MiB file, cold
#    (caches dropped, both mounts and the daemon started afresh) and warm
#    (page cache); and a `find` walk of a tree of WALK_FILES (default
#    40000) small files, cold.  Targets: cold read >= 0.7x local, warm
#    equal, cold walk <= 2x local.
# 2. Read of the big file's blob from the daemon: `casfs cat` over
#    grpc+unix (every byte checked) against a python grpcio client of the
#    same daemon reading the same blob (checking nothing): the usual one,
#    with stubs made from tests/proto (BlobChunk messages parsed), and the
#    fastest one can write, taking raw bytes.  Target >= 3x.
#    And 64 concurrent clients (grpcio, one channel each) doing Stat:
#    p50/p99 latency.
# 3. casfs copy of the WALK_FILES tree (4 store paths) to a daemon and
#    back, against a local store-to-store copy.  Target <= 2x each way.
#
# Each figure is the median of REPS (default 3) runs, the contenders taking
# turns.  Directories written are never removed before the end (ext4 makes
# creating files slow right after many were deleted).  Prints rows "what
# unit local remote ratio".  Needs root (drop_caches, mounts); BENCH_DIR
# (default /var/tmp) needs about 2.5 GiB.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
casfs=${CASFS:-$top/build/casfs}
REPS=${REPS:-3}
BENCH_BIG_MB=${BENCH_BIG_MB:-1024}
WALK_FILES=${WALK_FILES:-40000}
py=/usr/bin/python3
[ "$(id -u)" -eq 0 ] || { echo "bench/remote.sh: run as root" >&2; exit 1; }
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/casfs-bench-remote.XXXXXX")
daemon_pid=
cleanup() {
	local m
	for m in "$work"/mnt-*; do
		mountpoint -q "$m" 2>/dev/null && { fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m"; }
	done
	[ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
median() { tr ' ' '\n' | grep . | sort -g | sed -n "$(((REPS + 1) / 2))p"; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
printf '%-46s %-5s %10s %10s %8s\n' what unit local remote ratio
row() { printf '%-46s %-5s %10.3f %10.3f %8.2f\n' "$1" "$2" "$3" "$4" "$5"; }

daemon_start() { # STORE
	rm -f "$work/d.sock" "$work/d.pid"
	"$casfs" --store "$1" daemon --listen "unix:$work/d.sock" --background \
		--pid-file "$work/d.pid" >/dev/null
	daemon_pid=$(cat "$work/d.pid")
}
daemon_stop() {
	kill "$daemon_pid"
	for _ in $(seq 100); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.05; done
	daemon_pid=
}
U="grpc+unix://$work/d.sock"

# ---- the store ----------------------------------------------------------------
S=$work/store
mkdir -p "$work/big" "$work/tree"
head -c $((BENCH_BIG_MB * 1024 * 1024)) /dev/urandom >"$work/big/data"
$py - "$work/tree" "$WALK_FILES" <<'PY'
import os, random, sys
random.seed(1)
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "p%d" % (i % 4), "d%03d" % (i // 400))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(os.urandom(random.randint(100, 3000)))
PY
big=$("$casfs" --store "$S" import "$work/big" | tail -1)
paths=()
for p in 0 1 2 3; do paths+=("$("$casfs" --store "$S" import "$work/tree/p$p" | tail -1)"); done
big_b64=$(b3sum --no-names "$work/big/data" | xxd -r -p | base64 -w0)

# ---- 1. mounts ------------------------------------------------------------------
mkdir -p "$work/mnt-local" "$work/mnt-remote"
mount_both() {
	"$casfs" mount "$work/mnt-local" --store "$S" --background
	daemon_start "$S"
	"$casfs" mount "$work/mnt-remote" --store "$U" --background
}
umount_both() {
	fusermount3 -u "$work/mnt-local"
	fusermount3 -u "$work/mnt-remote"
	daemon_stop
}
timed() { local t0 t1; t0=$(now); "$@" >/dev/null; t1=$(now); echo "$t1 - $t0" | bc; }
cl="" cr="" wl="" wr="" fl="" fr=""
for i in $(seq "$REPS"); do
	for side in local remote; do
		mount_both
		drop_caches
		t=$(timed cat "$work/mnt-$side/$(basename "$big")/data")
		[ $side = local ] && cl="$cl $t" || cr="$cr $t"
		cat "$work/mnt-$side/$(basename "$big")/data" >/dev/null
		t=$(timed cat "$work/mnt-$side/$(basename "$big")/data")
		[ $side = local ] && wl="$wl $t" || wr="$wr $t"
		umount_both
		mount_both
		drop_caches
		t=$(timed find "$work/mnt-$side/$(basename "${paths[0]}")" "$work/mnt-$side/$(basename "${paths[1]}")" \
			"$work/mnt-$side/$(basename "${paths[2]}")" "$work/mnt-$side/$(basename "${paths[3]}")")
		[ $side = local ] && fl="$fl $t" || fr="$fr $t"
		umount_both
	done
done
mb=$BENCH_BIG_MB
a=$(echo $cl | median) b=$(echo $cr | median)
row "mount, cold sequential read ($mb MiB)" MB/s "$(echo "$mb / $a" | bc -l)" "$(echo "$mb / $b" | bc -l)" "$(echo "$a / $b" | bc -l)"
a=$(echo $wl | median) b=$(echo $wr | median)
row "mount, warm sequential read ($mb MiB)" MB/s "$(echo "$mb / $a" | bc -l)" "$(echo "$mb / $b" | bc -l)" "$(echo "$a / $b" | bc -l)"
a=$(echo $fl | median) b=$(echo $fr | median)
row "mount, cold find walk ($WALK_FILES files)" s "$a" "$b" "$(echo "$b / $a" | bc -l)"

# ---- 2. Read of one blob; 64 concurrent Stats ---------------------------------------
mkdir -p "$work/stubs"
(cd "$top/tests/proto" && $py -m grpc_tools.protoc -I. --python_out="$work/stubs" \
	--grpc_python_out="$work/stubs" snix/castore/v1/castore.proto snix/castore/v1/rpc_blobstore.proto)
py_read() { # raw|stubs
	$py - "unix:$work/d.sock" "$big_b64" "$1" "$work/stubs" <<'PY'
import base64, sys, time
sys.path.insert(0, sys.argv[4])
import grpc
target, digest, kind = sys.argv[1], base64.b64decode(sys.argv[2]), sys.argv[3]
ch = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", 8 << 20)])
t = time.time()
if kind == "raw":
    read = ch.unary_stream("/snix.castore.v1.BlobService/Read", request_serializer=None,
                           response_deserializer=None)
    n = sum(len(m) for m in read(b"\x0a\x20" + digest))
else:
    from snix.castore.v1 import rpc_blobstore_pb2 as pb, rpc_blobstore_pb2_grpc as pbg
    stub = pbg.BlobServiceStub(ch)
    n = sum(len(c.data) for c in stub.Read(pb.ReadBlobRequest(digest=digest)))
print("%.3f" % (time.time() - t))
PY
}
daemon_start "$S"
"$casfs" --store "$U" cat "$big/data" >/dev/null # the daemon's page cache, for all
tc="" tp="" tr=""
for i in $(seq "$REPS"); do
	tc="$tc $(timed "$casfs" --store "$U" cat "$big/data")"
	tp="$tp $(py_read stubs)"
	tr="$tr $(py_read raw)"
done
b=$(echo $tc | median)
printf '%-46s %-5s %10s %10s %8s\n' "" "" grpcio casfs ""
a=$(echo $tp | median)
row "Read of the $mb MiB blob, grpcio with stubs" s "$a" "$b" "$(echo "$a / $b" | bc -l)"
a=$(echo $tr | median)
row "Read of the $mb MiB blob, grpcio raw bytes" s "$a" "$b" "$(echo "$a / $b" | bc -l)"
$py - "unix:$work/d.sock" "$big_b64" <<'PY'
import base64, grpc, sys, threading, time
digest = base64.b64decode(sys.argv[2])
lat, lock = [], threading.Lock()
def client():
    ch = grpc.insecure_channel(sys.argv[1])
    stat = ch.unary_unary("/snix.castore.v1.BlobService/Stat", request_serializer=None,
                          response_deserializer=None)
    stat(b"\x0a\x20" + digest)  # connected
    mine = []
    for _ in range(50):
        t = time.perf_counter()
        stat(b"\x0a\x20" + digest)
        mine.append(time.perf_counter() - t)
    with lock:
        lat.extend(mine)
threads = [threading.Thread(target=client) for _ in range(64)]
[t.start() for t in threads]
[t.join() for t in threads]
lat.sort()
print("%-46s %-5s %10.3f %10.3f" % ("64 clients x 50 Stat: p50, p99 latency", "ms",
      1000 * lat[len(lat) // 2], 1000 * lat[int(len(lat) * 0.99)]))
PY
daemon_stop

# ---- 3. copy to a daemon and back -------------------------------------------------------
tl="" tt="" tb=""
for i in $(seq "$REPS"); do
	sync
	tl="$tl $(timed "$casfs" --store "$S" copy --to "$work/copy-local-$i" "${paths[@]}")"
	daemon_start "$work/copy-daemon-$i"
	sync
	tt="$tt $(timed "$casfs" --store "$S" copy --to "$U" "${paths[@]}")"
	sync
	tb="$tb $(timed "$casfs" --store "$work/copy-back-$i" copy --from "$U" "${paths[@]}")"
	daemon_stop
done
a=$(echo $tl | median)
b=$(echo $tt | median)
row "copy $WALK_FILES files to a daemon" s "$a" "$b" "$(echo "$b / $a" | bc -l)"
b=$(echo $tb | median)
row "copy $WALK_FILES files back from the daemon" s "$a" "$b" "$(echo "$b / $a" | bc -l)"
