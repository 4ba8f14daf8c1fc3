#!/bin/bash
# casfs daemon against gRPC peers (python grpcio; grpc-js when npm can
# fetch it), with stubs generated at test time from tests/proto/.
#
#   full        every RPC under both package names (tvix over the unix
#               socket, snix over TCP), compared against the source tree
#               and the casfs CLI: blob bytes = the files, digests = the
#               tree's (b3sum), recursive Get root first, each once,
#               complete; CalculateNAR = `casfs nar | sha256sum` (and
#               nix-store --dump where Nix is installed); Put/Get round
#               trips; NOT_FOUND / INVALID_ARGUMENT / UNIMPLEMENTED /
#               RESOURCE_EXHAUSTED / DEADLINE_EXCEEDED where due
#   garbage     random bytes, HTTP/1, malformed frames and HPACK, a
#               truncated frame, an idle connection: each closed by the
#               daemon, which serves on
#   concurrent  64 clients at once (Stat p50/p99 printed)
#   sigterm     a --background daemon exits and removes its socket; a
#               foreground one finishes a Read in flight, refuses new
#               calls, exits 0
# Run with CASFS set to a ThreadSanitizer build (tests/run.sh does), the
# daemon logs are scanned for sanitizer reports.
. "$(dirname "$0")/lib/common.sh"
. "$TOP/tests/sh/lib/grpc-peer.sh"
T=daemon

cleanup_hook() {
	daemon_cleanup
	if grep -q 'ERROR: AddressSanitizer\|runtime error:\|LeakSanitizer\|WARNING: ThreadSanitizer' \
		"$TMP"/daemon-*.log 2>/dev/null; then
		echo "FAIL $T/sanitizer: $(grep -h -m3 'ERROR\|runtime error\|WARNING: ThreadSanitizer' "$TMP"/daemon-*.log)"
	fi
}

if ! command -v b3sum >/dev/null; then
	skip $T "b3sum is not installed"
	exit 0
fi
if ! grpc_peer_stubs; then
	skip $T "python3 grpc_tools cannot make stubs: $(tail -1 "$TMP/protoc.log")"
	exit 0
fi

SEED=${CASFS_TEST_SEED:-$RANDOM}
echo "# seed $SEED"
mkdir -p "$TMP/tree/sub/a/b/c" "$TMP/tree/many" "$TMP/tree/emptydir"
echo hello >"$TMP/tree/hello.txt"
: >"$TMP/tree/empty"
printf '#!/bin/sh\necho hi\n' >"$TMP/tree/run.sh"
chmod +x "$TMP/tree/run.sh"
ln -s hello.txt "$TMP/tree/link"
ln -s ../../hello.txt "$TMP/tree/sub/a/up"
echo deep >"$TMP/tree/sub/a/b/c/deep.txt"
for i in $(seq 40); do echo "file $i" >"$TMP/tree/many/f$i"; done
"$GRPC_PY" -c 'import random,sys; r=random.Random(int(sys.argv[2])); open(sys.argv[1],"wb").write(r.randbytes(3*1024*1024+12345))' \
	"$TMP/tree/sub/big.bin" "$SEED"
"$GRPC_PY" -c 'import random,sys; r=random.Random(int(sys.argv[2])); open(sys.argv[1],"wb").write(r.randbytes(1 << 20))' \
	"$TMP/tree/sub/exactly-1MiB" "$((SEED + 1))"
head -c $((48 << 20)) /dev/urandom >"$TMP/drain.bin"

S="$TMP/s"
"$CASFS" --store "$S" import "$TMP/tree" >"$TMP/import.out" 2>&1 || { fail $T/import "$(cat "$TMP/import.out")"; exit 1; }
P=$(tail -1 "$TMP/import.out")
"$CASFS" --store "$S" import "$TMP/drain.bin" >/dev/null 2>&1 || { fail $T/import-drain "import failed"; exit 1; }
"$CASFS" --store "$S" path-info --json "$P" >"$TMP/pi.json" || { fail $T/path-info "failed"; exit 1; }
"$CASFS" --store "$S" nar "$P" >"$TMP/p.nar" || { fail $T/nar "failed"; exit 1; }
if command -v nix-store >/dev/null; then
	nix-store --dump "$TMP/tree" | cmp -s - "$TMP/p.nar" && pass $T/nar-is-nix-store-dump ||
		fail $T/nar-is-nix-store-dump "casfs nar differs from nix-store --dump"
fi
printf hello >"$TMP/small"
"$GRPC_PY" - "$TMP/pi.json" "$P" "$TMP/tree" "$TMP/p.nar" "$TMP/drain.bin" "$SEED" >"$TMP/expect.json" <<'PY'
import hashlib, json, subprocess, sys
pi = json.load(open(sys.argv[1]))[0]
nar = open(sys.argv[4], "rb").read()
drain = subprocess.run(["b3sum", "--no-names", sys.argv[5]], capture_output=True, check=True).stdout.decode().split()[0]
# the NAR of a lone file "hello\n" (hello.txt) as Nix writes it
def s(b): return len(b).to_bytes(8, "little") + b + b"\0" * ((8 - len(b) % 8) % 8)
small = b"".join(s(x) for x in [b"nix-archive-1", b"(", b"type", b"regular", b"contents", b"hello\n", b")"])
json.dump({"store_path": sys.argv[2], "tree": sys.argv[3], "castore_digest": pi["castore"]["digest"],
           "nar_hash": pi["narHash"], "nar_size": pi["narSize"], "nar_bytes": len(nar),
           "nar_sha256_hex": hashlib.sha256(nar).hexdigest(), "drain_blob_hex": drain,
           "small_nar_sha256_hex": hashlib.sha256(small).hexdigest(), "seed": int(sys.argv[6])}, sys.stdout)
PY

## full: both package names, both transports
if ! daemon_start main "$S" --idle-timeout 2; then
	fail $T/start "no listening lines: $(cat "$TMP/daemon-main.out" "$TMP/daemon-main.log")"
	exit 1
fi
pass $T/start
daemon_wait_health "$DAEMON_UNIX_main" && pass $T/ready-unix || fail $T/ready-unix "Health/Check never SERVING"
daemon_wait_health "$DAEMON_TCP_main" && pass $T/ready-tcp || fail $T/ready-tcp "Health/Check never SERVING"
grpc_client --target "$DAEMON_UNIX_main" --package tvix full "$TMP/expect.json" ||
	fail $T/tvix-client "exited $?"
grpc_client --target "$DAEMON_TCP_main" --package snix full "$TMP/expect.json" || fail $T/snix-client "exited $?"

## garbage on the socket, then still serving
H2_GARBAGE_BOUND=10 timeout 120 "$GRPC_PY" "$TOP/tests/peers/h2_garbage.py" "$DAEMON_UNIX_main" \
	random http1 bad-frame bad-hpack huge-frame truncated window-overflow idle >"$TMP/garbage.out" 2>&1
for c in random http1 bad-frame bad-hpack huge-frame truncated window-overflow idle; do
	got=$(sed -n "s/^$c //p" "$TMP/garbage.out")
	check_eq "$T/garbage-$c" "$got" closed
done
daemon_wait_health "$DAEMON_UNIX_main" && pass $T/serves-after-garbage ||
	fail $T/serves-after-garbage "no answer: $(tail -3 "$TMP/daemon-main.log")"

## 64 clients at once
grpc_client --target "$DAEMON_UNIX_main" --package tvix concurrent 64 "${CASFS_DAEMON_CONCURRENT_SECONDS:-3}" \
	"$TMP/expect.json" || fail $T/concurrent-client "exited $?"
daemon_wait_health "$DAEMON_TCP_main" && pass $T/serves-after-concurrent || fail $T/serves-after-concurrent "no answer"

## SIGTERM: the background daemon goes, its socket with it
kill -TERM "$DAEMON_PID_main"
if daemon_gone "$DAEMON_PID_main" 20; then pass $T/sigterm-exits; else fail $T/sigterm-exits "still running"; fi
[ -e "$TMP/main.sock" ] && fail $T/sigterm-socket-removed "$TMP/main.sock is still there" ||
	pass $T/sigterm-socket-removed

## SIGTERM with a call in flight (a foreground daemon: its exit code)
if daemon_start fg "$S" --foreground; then
	FGJOB=${DAEMON_PIDS[-2]}
	daemon_wait_health "$DAEMON_UNIX_fg" || fail $T/fg-ready "never SERVING"
	rm -f "$TMP/marker"
	GRPC_CLIENT_TIMEOUT=120 grpc_client --target "$DAEMON_UNIX_fg" --package snix drain "$TMP/expect.json" "$TMP/marker" \
		>"$TMP/drain.out" 2>&1 &
	CL=$!
	for i in $(seq 400); do [ -s "$TMP/marker" ] && break; kill -0 $CL 2>/dev/null || break; sleep 0.05; done
	kill -TERM "$DAEMON_PID_fg"
	sleep 0.2
	rm -f "$TMP/marker"
	wait $CL
	cat "$TMP/drain.out"
	grep -q '^PASS daemon/snix/drain-in-flight' "$TMP/drain.out" || fail $T/drain "client: $(tail -3 "$TMP/drain.out")"
	if daemon_gone "$FGJOB" 20; then
		wait "$FGJOB"
		check_eq $T/sigterm-exit-code "$?" 0
	else
		fail $T/sigterm-exit-code "still running 20 s after SIGTERM"
	fi
	[ -e "$TMP/fg.sock" ] && fail $T/fg-socket-removed "still there" || pass $T/fg-socket-removed
else
	fail $T/fg-start "$(cat "$TMP/daemon-fg.log")"
fi

## grpc-js as a client, both package names
if [ -n "${CASFS_TEST_NO_NPM:-}" ]; then
	skip $T/grpc-js "CASFS_TEST_NO_NPM is set"
elif [ -f "$TOP/tests/sh/lib/grpc-js.sh" ]; then
	. "$TOP/tests/sh/lib/grpc-js.sh"
	grpc_js_run "$S"
else
	skip $T/grpc-js "no grpc-js peer yet"
fi
exit 0
