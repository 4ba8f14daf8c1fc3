#!/bin/bash
# casfs as a gRPC client: --store grpc+unix:// and grpc+http:// against a
# casfs daemon, against a python grpcio server (tests/peers/
# grpc_proxy.py, grpc core) relaying to it that serves one package name
# only, lies or stalls, and against a @grpc/grpc-js server (tests/peers/
# grpc_js_server.js, node's http2) that serves one package or lies.
#
#   commands    path-info, nar, ls, cat, verify, import, copy --from/--to
#               over both URL forms; NARs compared with nix-store --dump
#               of the source trees, files with the source tree
#   mount       every file of the tree through a mount over gRPC, cmp'd
#   cache       --cache DIR: a blob is Read from the daemon once, then
#               served from the cache's blob file
#   compose     --blob-store from the daemon under a local store's metadata:
#               only blob calls reach the daemon
#   packages    a tvix-only and a snix-only server both work; one serving
#               neither gets a clear error
#   lies        a flipped blob byte, a truncated blob, a flipped directory
#               byte: exit 1 naming the digest, nothing printed but the
#               checked groups before the damage; through a mount: EIO
#   faults      a stalled Read times out (?timeout=2); a killed daemon is
#               an error within seconds, the mount stays up and works
#               again once a daemon is back on the same socket; a missing
#               socket with ?wait-connect=1; malformed URLs
# tests/run.sh runs it once more with ThreadSanitizer builds (the mount's
# threads share the client's connection pool); logs are scanned for
# sanitizer reports.
. "$(dirname "$0")/lib/common.sh"
. "$TOP/tests/sh/lib/grpc-peer.sh"
T=remote
PROXIES=()
MOUNTS=()

cleanup_hook() {
	local m p
	for m in "${MOUNTS[@]}"; do
		mountpoint -q "$m" 2>/dev/null && { fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m"; }
	done
	for p in "${PROXIES[@]}"; do kill -TERM "$p" 2>/dev/null; done
	daemon_cleanup
	for p in "${PROXIES[@]}"; do daemon_gone "$p" 5 || kill -KILL "$p" 2>/dev/null; done
	if grep -q 'ERROR: AddressSanitizer\|runtime error:\|LeakSanitizer\|WARNING: ThreadSanitizer' \
		"$TMP"/mount*.log "$TMP"/daemon-*.log "$TMP"/*.err 2>/dev/null; then
		echo "FAIL $T/sanitizer: $(grep -h -m3 'ERROR\|runtime error\|WARNING: ThreadSanitizer' \
			"$TMP"/mount*.log "$TMP"/daemon-*.log "$TMP"/*.err)"
	fi
}

# proxy_start NAME ARGS...: a grpcio proxy on unix:$TMP/NAME.sock in front of
# daemon "main"; waits (bounded) until it serves.
proxy_start() {
	local name=$1
	shift
	rm -f "$TMP/$name.ready" "$TMP/$name.sock"
	"$GRPC_PY" "$TOP/tests/peers/grpc_proxy.py" --upstream "$DAEMON_UNIX_main" \
		--listen "unix:$TMP/$name.sock" --ready "$TMP/$name.ready" --count "$TMP/$name.count" \
		"$@" 2>>"$TMP/proxy-$name.log" &
	PROXIES+=("$!")
	printf -v "PROXY_PID_${name//-/_}" %s "$!"
	local i
	for i in $(seq 200); do
		[ -e "$TMP/$name.ready" ] && return 0
		sleep 0.05
	done
	return 1
}
proxy_stop() { # NAME: SIGTERM, wait (bounded) so that its count file is written
	local v="PROXY_PID_${1//-/_}"
	kill -TERM "${!v}" 2>/dev/null
	daemon_gone "${!v}" 10
}

# --- set-up ------------------------------------------------------------------
mkdir -p "$TMP/tree/sub/deeper" "$TMP/tree2"
echo hello >"$TMP/tree/a.txt"
printf '#!/bin/sh\necho run\n' >"$TMP/tree/sub/run.sh"
chmod +x "$TMP/tree/sub/run.sh"
head -c 3000000 /dev/urandom >"$TMP/tree/sub/big"
head -c 70000 /dev/urandom >"$TMP/tree/sub/deeper/mid"
head -c 20000 /dev/urandom >"$TMP/tree/sub/deeper/unread" # first read with the daemon gone
head -c 2500000 /dev/urandom >"$TMP/tree/sub/backwards"    # read end first through the mount
: >"$TMP/tree/empty"
ln -s sub/run.sh "$TMP/tree/link"
echo second >"$TMP/tree2/b.txt"
S=$TMP/server-store
P=$("$CASFS" --store "$S" import "$TMP/tree" 2>"$TMP/import.err" | tail -1)
[ -n "$P" ] || { fail $T/setup "import: $(cat "$TMP/import.err")"; exit 1; }
B=$(basename "$P")
if ! grpc_peer_stubs; then
	skip $T "python3 grpc_tools cannot make stubs: $(tail -1 "$TMP/protoc.log")"
	exit 0
fi
daemon_start main "$S" || { fail $T/daemon-start "$(cat "$TMP/daemon-main.log")"; exit 1; }
U="grpc+unix://${DAEMON_UNIX_main#unix:}"
H="grpc+http://$DAEMON_TCP_main"
want_nar=$(nixstore --dump "$TMP/tree" | sha256sum | cut -d' ' -f1)

# --- commands over both URL forms ---------------------------------------------
for url in "$U" "$H"; do
	k=${url%%:*}
	check_eq $T/$k/path-info "$(timeout 30 "$CASFS" --store "$url" path-info "$P" 2>&1)" \
		"$("$CASFS" --store "$S" path-info "$P" 2>&1)"
	check_eq $T/$k/nar "$(timeout 30 "$CASFS" --store "$url" nar "$P" | sha256sum | cut -d' ' -f1)" "$want_nar"
	check_eq $T/$k/ls "$(timeout 30 "$CASFS" --store "$url" ls "$P/sub" 2>&1)" \
		"$("$CASFS" --store "$S" ls "$P/sub" 2>&1)"
	if timeout 30 "$CASFS" --store "$url" cat "$P/sub/big" | cmp -s - "$TMP/tree/sub/big"; then
		pass $T/$k/cat
	else
		fail $T/$k/cat "3 MB file differs"
	fi
	out=$(timeout 60 "$CASFS" --store "$url" verify "$P" 2>&1)
	case "$out" in *"0 damaged"*) pass $T/$k/verify ;; *) fail $T/$k/verify "$out" ;; esac
done

# import over gRPC lands in the daemon's store, byte for byte
P2=$(timeout 30 "$CASFS" --store "$H" import "$TMP/tree2" 2>"$TMP/import2.err" | tail -1)
check_eq $T/import "$("$CASFS" --store "$S" nar "$P2" 2>&1 | sha256sum | cut -d' ' -f1)" \
	"$(nixstore --dump "$TMP/tree2" | sha256sum | cut -d' ' -f1)"
# copy --from the daemon into a fresh local store, and --to it from another
timeout 60 "$CASFS" --store "$TMP/copy-into" copy --from "$U" "$P" >"$TMP/copy.out" 2>&1
check_eq $T/copy-from "$("$CASFS" --store "$TMP/copy-into" nar "$P" 2>&1 | sha256sum | cut -d' ' -f1)" "$want_nar"
mkdir -p "$TMP/tree3"
echo third >"$TMP/tree3/c"
P3=$("$CASFS" --store "$TMP/other" import "$TMP/tree3" | tail -1)
timeout 60 "$CASFS" --store "$TMP/other" copy --to "$U" "$P3" >"$TMP/copy-to.out" 2>&1
check_eq $T/copy-to "$("$CASFS" --store "$S" cat "$P3/c" 2>&1)" third

# --- a mount over gRPC -----------------------------------------------------------
if [ -e /dev/fuse ] && command -v fusermount3 >/dev/null; then
	M=$TMP/mnt
	mkdir -p "$M"
	MOUNTS+=("$M")
	if timeout 30 "$CASFS" mount "$M" --store "$U" --background 2>>"$TMP/mount.log"; then
		bad=""
		for f in a.txt sub/run.sh sub/big sub/deeper/mid empty; do
			cmp -s "$M/$B/$f" "$TMP/tree/$f" || bad="$bad $f"
		done
		[ -x "$M/$B/sub/run.sh" ] || bad="$bad exec-bit"
		[ "$(readlink "$M/$B/link")" = sub/run.sh ] || bad="$bad link"
		[ -z "$bad" ] && pass $T/mount || fail $T/mount "differs:$bad"
		# reads behind what the stream holds: the blob is fetched whole
		check_eq $T/mount-backwards "$(python3 - "$M/$B/sub/backwards" "$TMP/tree/sub/backwards" <<'PY'
import sys
a, b = open(sys.argv[1], "rb"), open(sys.argv[2], "rb")
bad = []
for off in (2400000, 100, 2499990, 0, 1300000, 65536):
    a.seek(off); b.seek(off)
    if a.read(10000) != b.read(10000):
        bad.append(off)
print("ok" if not bad else "differs at %s" % bad)
PY
)" ok

		# the daemon killed: an error within seconds, the mount stays up
		kill -KILL "$DAEMON_PID_main"
		daemon_gone "$DAEMON_PID_main" 5
		start=$(date +%s)
		if timeout 20 cat "$M/$B/sub/deeper/unread" >/dev/null 2>"$TMP/dead.err"; then
			fail $T/mount-daemon-killed "read succeeded with the daemon gone"
		else
			took=$(($(date +%s) - start))
			[ "$took" -le 10 ] && mountpoint -q "$M" && pass $T/mount-daemon-killed ||
				fail $T/mount-daemon-killed "took ${took}s, mounted: $(mountpoint -q "$M" && echo yes || echo no)"
		fi
		# a daemon back on the same socket: the mount works again
		rm -f "${DAEMON_UNIX_main#unix:}"
		timeout 20 "$CASFS" --store "$S" daemon --listen "$DAEMON_UNIX_main" --background \
			--pid-file "$TMP/daemon-again.pid" >/dev/null 2>>"$TMP/daemon-again.log"
		[ -s "$TMP/daemon-again.pid" ] && DAEMON_PIDS+=("$(cat "$TMP/daemon-again.pid")")
		if timeout 20 cmp -s "$M/$B/sub/deeper/unread" "$TMP/tree/sub/deeper/unread"; then
			pass $T/mount-reconnect
		else
			fail $T/mount-reconnect "still failing: $(tail -2 "$TMP/mount.log")"
		fi
		fusermount3 -u "$M"
		kill -TERM "$(cat "$TMP/daemon-again.pid" 2>/dev/null)" 2>/dev/null
		daemon_gone "$(cat "$TMP/daemon-again.pid" 2>/dev/null)" 10
	else
		fail $T/mount "did not mount: $(tail -3 "$TMP/mount.log")"
	fi
	# the daemon answering on TCP died with the first one: restart it for the rest
	daemon_start main "$S" || { fail $T/daemon-restart "$(tail -3 "$TMP/daemon-main.log")"; exit 1; }
else
	skip $T/mount "no /dev/fuse or fusermount3"
fi

# --- --cache: one Read per blob ------------------------------------------------
proxy_start cached || fail $T/proxy-start "$(tail -3 "$TMP/proxy-cached.log")"
C=$TMP/cache
for i in 1 2; do
	timeout 30 "$CASFS" --store "grpc+unix://$TMP/cached.sock" --cache "$C" cat "$P/sub/big" |
		cmp -s - "$TMP/tree/sub/big" || fail $T/cache-read-$i "content differs"
done
proxy_stop cached
big_b3=$(b3sum --no-names "$TMP/tree/sub/big")
check_eq $T/cache-one-read "$(grep '^BlobService/Read ' "$TMP/cached.count" | cut -d' ' -f2)" 1
[ -f "$C/blobs/${big_b3:0:2}/${big_b3:2}" ] && pass $T/cache-blob-file ||
	fail $T/cache-blob-file "no blob file for $big_b3 under $C/blobs"

# --- composition: metadata from a local store, blobs from the daemon ---------------
proxy_start blobs-only || fail $T/proxy-blobs-only "$(tail -3 "$TMP/proxy-blobs-only.log")"
if timeout 30 "$CASFS" --store "$TMP/copy-into" --blob-store "grpc+unix://$TMP/blobs-only.sock" \
	cat "$P/sub/big" | cmp -s - "$TMP/tree/sub/big"; then
	pass $T/compose-blob-store
else
	fail $T/compose-blob-store "content differs"
fi
proxy_stop blobs-only
check_eq $T/compose-blob-store-remote "$(grep -c 'BlobService/Read\|PathInfoService\|DirectoryService' \
	"$TMP/blobs-only.count") $(grep -c 'PathInfoService\|DirectoryService' "$TMP/blobs-only.count")" "1 0"
out=$("$CASFS" --store memory: --pathinfo-store "bogus://x" path-info "$P" 2>&1)
case "$out" in *"--pathinfo-store: unsupported store URL 'bogus://x'"*) pass $T/compose-bad-url ;; *) fail $T/compose-bad-url "$out" ;; esac

# --- servers that know one package name ------------------------------------------
for pkgs in tvix snix; do
	proxy_start only-$pkgs --packages $pkgs || fail $T/proxy-$pkgs "$(tail -3 "$TMP/proxy-only-$pkgs.log")"
	check_eq $T/package-$pkgs-only \
		"$(timeout 30 "$CASFS" --store "grpc+unix://$TMP/only-$pkgs.sock" cat "$P/a.txt" 2>&1)" hello
done
proxy_start neither --packages none || true
out=$(timeout 30 "$CASFS" --store "grpc+unix://$TMP/neither.sock" cat "$P/a.txt" 2>&1)
rc=$?
case "$rc:$out" in 1:*"neither snix nor tvix"*) pass $T/package-neither ;; *) fail $T/package-neither "rc $rc: $out" ;; esac

# --- lying servers ------------------------------------------------------------------
lie() { # NAME PROXY-FLAGS FILE WANT-IN-MESSAGE
	proxy_start "$1" $2 || { fail $T/$1 "proxy: $(tail -3 "$TMP/proxy-$1.log")"; return; }
	timeout 30 "$CASFS" --store "grpc+unix://$TMP/$1.sock" cat "$P/$3" >"$TMP/$1.out" 2>"$TMP/$1.err"
	rc=$?
	# what was printed before the error (a streamed blob's checked groups)
	# is the file's own beginning, never a damaged byte
	local n
	n=$(wc -c <"$TMP/$1.out")
	if [ $rc = 1 ] && grep -q "$4" "$TMP/$1.err" && [ "$n" -lt "$(wc -c <"$TMP/tree/$3")" ] &&
		cmp -s -n "$n" "$TMP/$1.out" "$TMP/tree/$3"; then
		pass $T/$1
	else
		fail $T/$1 "rc $rc, $(wc -c <"$TMP/$1.out") bytes out, stderr: $(head -c 300 "$TMP/$1.err")"
	fi
}
mid_b3=$(b3sum --no-names "$TMP/tree/sub/deeper/mid")
lie lie-blob-byte "--corrupt-read --only-blob $mid_b3" sub/deeper/mid "sent blob b3:$(echo "$mid_b3" | xxd -r -p | base64)"
lie lie-blob-truncated --truncate-read sub/big "sent blob b3:.* short: 2097152 of 3000000 bytes"
lie lie-directory --corrupt-directory sub/deeper/mid "sent directory"
lie lie-oversized --oversized-read sub/big "gRPC message of 5242885 bytes, over the limit of 4194304"
if [ -e /dev/fuse ] && command -v fusermount3 >/dev/null; then
	M=$TMP/mnt-lie
	mkdir -p "$M"
	MOUNTS+=("$M")
	if timeout 30 "$CASFS" mount "$M" --store "grpc+unix://$TMP/lie-blob-byte.sock" --background \
		2>>"$TMP/mount-lie.log"; then
		if timeout 20 cat "$M/$B/sub/deeper/mid" >"$TMP/lie-mount.out" 2>"$TMP/lie-mount.err"; then
			fail $T/lie-mount "served a corrupt blob"
		else
			grep -q "Input/output error" "$TMP/lie-mount.err" && [ ! -s "$TMP/lie-mount.out" ] &&
				pass $T/lie-mount || fail $T/lie-mount "$(cat "$TMP/lie-mount.err")"
		fi
		check_eq $T/lie-mount-other-files "$(timeout 20 cat "$M/$B/a.txt" 2>&1)" hello
		fusermount3 -u "$M"
	else
		fail $T/lie-mount "did not mount: $(tail -3 "$TMP/mount-lie.log")"
	fi
fi

# --- a grpc-js server (node's http2, no grpc core) ----------------------------------
. "$TOP/tests/sh/lib/grpc-js.sh"
js_start() { # NAME PACKAGES [--corrupt-blob HEX]
	local name=$1
	shift
	rm -f "$TMP/$name.ready"
	NODE_PATH="$GRPC_JS_CACHE/node_modules" node "$TOP/tests/peers/grpc_js_server.js" \
		"unix://${DAEMON_UNIX_main#unix:}" "unix://$TMP/$name.sock" "$TMP/$name.ready" "$@" \
		2>>"$TMP/js-$name.log" &
	PROXIES+=("$!")
	local i
	for i in $(seq 400); do
		[ -e "$TMP/$name.ready" ] && return 0
		sleep 0.05
	done
	return 1
}
if [ -n "${CASFS_TEST_NO_NPM:-}" ]; then
	skip $T/grpc-js "CASFS_TEST_NO_NPM is set"
elif ! command -v node >/dev/null || [ ! -f "$NPM_CLI" ]; then
	skip $T/grpc-js "node or its bundled npm is not installed"
elif ! grpc_js_install; then
	skip $T/grpc-js "npm could not install @grpc/grpc-js: $(tail -2 "$TMP/npm.log" | tr '\n' ' ')"
elif ! js_start js tvix || ! js_start js-lie snix --corrupt-blob "$mid_b3"; then
	fail $T/grpc-js-start "$(tail -3 "$TMP"/js-*.log)"
else
	check_eq $T/grpc-js-tvix-cat "$(timeout 30 "$CASFS" --store "grpc+unix://$TMP/js.sock" cat "$P/a.txt" 2>&1)" hello
	if timeout 60 "$CASFS" --store "grpc+unix://$TMP/js.sock" nar "$P" | sha256sum | grep -q "^$want_nar "; then
		pass $T/grpc-js-nar
	else
		fail $T/grpc-js-nar "NAR through grpc-js differs"
	fi
	out=$(timeout 30 "$CASFS" --store "grpc+unix://$TMP/js-lie.sock" cat "$P/sub/deeper/mid" 2>&1 >/dev/null)
	rc=$?
	case "$rc:$out" in 1:*"sent blob b3:"*) pass $T/grpc-js-lie ;; *) fail $T/grpc-js-lie "rc $rc: $out" ;; esac
	if [ -e /dev/fuse ] && command -v fusermount3 >/dev/null; then
		M=$TMP/mnt-js
		mkdir -p "$M"
		MOUNTS+=("$M")
		if timeout 30 "$CASFS" mount "$M" --store "grpc+unix://$TMP/js-lie.sock" --background \
			2>>"$TMP/mount-js.log"; then
			cmp -s "$M/$B/sub/big" "$TMP/tree/sub/big" && pass $T/grpc-js-mount ||
				fail $T/grpc-js-mount "big file differs"
			if timeout 20 cat "$M/$B/sub/deeper/mid" >/dev/null 2>"$TMP/js-mount.err"; then
				fail $T/grpc-js-mount-lie "served a corrupt blob"
			else
				grep -q "Input/output error" "$TMP/js-mount.err" && pass $T/grpc-js-mount-lie ||
					fail $T/grpc-js-mount-lie "$(cat "$TMP/js-mount.err")"
			fi
			fusermount3 -u "$M"
		else
			fail $T/grpc-js-mount "did not mount: $(tail -3 "$TMP/mount-js.log")"
		fi
	fi
fi

# --- stalls, missing daemons, bad URLs ------------------------------------------------
proxy_start stall --stall BlobService/Read || fail $T/proxy-stall "$(tail -3 "$TMP/proxy-stall.log")"
start=$(date +%s)
out=$(timeout 60 "$CASFS" --store "grpc+unix://$TMP/stall.sock?timeout=2" cat "$P/a.txt" 2>&1)
rc=$? took=$(($(date +%s) - start))
case "$rc:$out" in
1:*"no answer from unix:$TMP/stall.sock in 2 s"*) [ $took -le 15 ] && pass $T/stall-timeout ||
	fail $T/stall-timeout "took ${took}s" ;;
*) fail $T/stall-timeout "rc $rc: $out" ;;
esac
out=$(timeout 30 "$CASFS" --store "grpc+unix://$TMP/nobody.sock?wait-connect=1" path-info "$P" 2>&1)
rc=$?
case "$rc:$out" in 1:*"cannot connect to unix:$TMP/nobody.sock"*) pass $T/wait-connect ;; *) fail $T/wait-connect "rc $rc: $out" ;; esac
out=$(timeout 30 "$CASFS" --store "grpc+unix://$TMP/nobody.sock" cat "$P/a.txt" 2>&1)
rc=$?
case "$rc:$out" in 1:*"cannot connect"*) pass $T/no-daemon ;; *) fail $T/no-daemon "rc $rc: $out" ;; esac
for bad in "grpc+unix://host/x.sock:takes no host" "grpc+http://127.0.0.1:1/path:no path" \
	"grpc+unix://$TMP/x.sock?colour=red:unknown parameter 'colour=red'" \
	"grpc+http://127.0.0.1:1?timeout=0:timeout wants"; do
	url=${bad%:*} want=${bad##*:}
	out=$(timeout 10 "$CASFS" --store "$url" path-info "$P" 2>&1)
	rc=$?
	case "$rc:$out" in 1:*"$want"*) pass "$T/bad-url-${want// /-}" ;; *) fail "$T/bad-url-${want// /-}" "rc $rc: $out" ;; esac
done
exit $FAILED
