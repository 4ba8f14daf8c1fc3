#!/bin/bash
# casfs serve-cache against real Nix 2.8 as the client.
#
#   upload      `nix copy --to http://` (zstd, with listings) of a closure
#               with references into an empty store; each compression
#               (none, xz, bzip2) for a CA path; `casfs nar` = nix-store --dump
#   read        `nix copy --from` into a chroot store with the key trusted
#               (then `nix store verify`), refused without a signature;
#               `nix-store --realise` with the server as substituter
#   oracle      narinfo and .ls byte for byte against what
#               `nix copy --to file://…?compression=none&write-nar-listing=true`
#               wrote (URL aside; Sig identical with the same key)
#   http        Range requests against nix-store --dump bytes, 416, HEAD
#               headers, zstd Content-Encoding, keep-alive
#   bad input   uploads refused in one line with nothing registered (wrong
#               NarSize, NAR not matching its name, references missing, then
#               the retry once they are there), PUT without --allow-upload,
#               bad methods, `..`, %-escapes, garbage, huge headers, idle
#               connections closed, damaged blobs cut the NAR short
#
# Every server listens on 127.0.0.1:0 and is killed on exit; Nix gets its
# own XDG_CACHE_HOME and no narinfo caching.
. "$(dirname "$0")/lib/common.sh"

if ! command -v nix >/dev/null || ! command -v nix-build >/dev/null || ! command -v curl >/dev/null; then
	skip serve-cache "nix or curl is not installed"
	exit 0
fi
T=serve-cache TEST=serve-cache
. "$TOP/tests/sh/lib/nix-env.sh"
NO_NARINFO_CACHE=(--option narinfo-cache-positive-ttl 0 --option narinfo-cache-negative-ttl 0)
NIXOPTS+=("${NO_NARINFO_CACHE[@]}")
NIXCMD+=("${NO_NARINFO_CACHE[@]}")

PIDS=()
cleanup_hook() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	if grep -q 'ERROR: AddressSanitizer\|runtime error:\|LeakSanitizer' "$TMP"/server-*.log 2>/dev/null; then
		echo "FAIL $T/sanitizer: $(grep -h -m3 'ERROR\|runtime error' "$TMP"/server-*.log)"
	fi
}


# start NAME STORE ARGS...: a foreground server as a background job; sets
# URL_NAME once it printed its URL (bounded wait), PID_NAME.
NSERV=0
start() {
	local name=$1 store=$2
	shift 2
	NSERV=$((NSERV + 1))
	local out="$TMP/server-$name.url"
	: >"$out"
	"$CASFS" --store "$store" serve-cache --listen 127.0.0.1:0 "$@" >"$out" 2>"$TMP/server-$name.log" &
	local pid=$!
	PIDS+=("$pid")
	local i
	for i in $(seq 200); do
		[ -s "$out" ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	local url
	url=$(head -1 "$out")
	case "$url" in
	http://127.0.0.1:*) ;;
	*) fail "$T/start-$name" "no URL line ($(cat "$TMP/server-$name.log"))"; exit 1 ;;
	esac
	printf -v "URL_$name" %s "$url"
	printf -v "PID_$name" %s "$pid"
}
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

step keygen "${NIXCMD[@]}" key generate-secret --key-name casfs-test-1
cp "$TMP/out" "$TMP/key.sec"
"${NIXCMD[@]}" key convert-secret-to-public <"$TMP/key.sec" >"$TMP/key.pub" 2>"$TMP/out" || step_failed keypub
PUB=$(cat "$TMP/key.pub")

# A tree with odd names (for the listing's escaping), an empty file, a
# file of several outboard groups, an executable and a symlink.
mkdir -p "$TMP/tree/sub"
echo hello >"$TMP/tree/hello.txt"
: >"$TMP/tree/empty"
printf 'q' >"$TMP/tree/we\"ird\\name"
printf 't' >"$TMP/tree/tab	here"
printf 'u' >"$TMP/tree/caf$(printf '\303\251')"
python3 -c 'import os,random; r=random.Random(7); open(os.sys.argv[1],"wb").write(bytes(r.getrandbits(8) for _ in range(300000)))' "$TMP/tree/sub/blob.bin"
printf '#!/bin/sh\necho hi\n' >"$TMP/tree/sub/run.sh"
chmod +x "$TMP/tree/sub/run.sh"
ln -s ../hello.txt "$TMP/tree/sub/link"
step add nix-store "${NIXOPTS[@]}" --add "$TMP/tree"
P1=$(tail -1 "$TMP/out")
cat >"$TMP/drv.nix" <<EOF
derivation {
  name = "withref";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "echo \${builtins.storePath "$P1"} \${builtins.toFile "note" "a note"} > \$out" ];
}
EOF
step build nix-build "${NIXOPTS[@]}" --option sandbox false --no-out-link "$TMP/drv.nix"
P2=$(tail -1 "$TMP/out")
H1=${P1:11:32} H2=${P2:11:32}
nix-store --dump "$P1" >"$TMP/p1.nar"
nix-store --dump "$P2" >"$TMP/p2.nar"
CLOSURE=$(nix-store -qR "$P2" | sort)

# Nix's own cache of the same closure, uncompressed, signed, with listings.
step file-cache "${NIXCMD[@]}" copy --to "file://$TMP/fc?compression=none&write-nar-listing=true&secret-key=$TMP/key.sec" "$P2"

## upload: nix copy --to http:// into an empty store
start up "$TMP/s1" --allow-upload
step upload "${NIXCMD[@]}" copy --to "$URL_up?compression=zstd&write-nar-listing=true" "$P2"
ok=1
for p in $CLOSURE; do
	"$CASFS" --store "$TMP/s1" nar "$p" >"$TMP/got.nar" 2>"$TMP/out" || { ok=0; break; }
	nix-store --dump "$p" | cmp -s - "$TMP/got.nar" || { ok=0; break; }
done
[ $ok = 1 ] && pass "$T/upload-closure" || fail "$T/upload-closure" "$p: $(cat "$TMP/out")"
refs=$("$CASFS" --store "$TMP/s1" path-info --json "$P2" | python3 -c 'import json,sys; d=json.load(sys.stdin); d=d[0] if isinstance(d,list) else d; print(" ".join(sorted(d.get("references",[]))))')
want=$(nix-store -q --references "$P2" | sort | tr '\n' ' ' | sed 's/ $//')
check_eq "$T/upload-references" "$refs" "$want"
for c in none xz bzip2; do
	start "up$c" "$TMP/s-$c" --allow-upload
	if "${NIXCMD[@]}" copy --to "$(eval echo \$URL_up$c)?compression=$c" "$P1" >"$TMP/out" 2>&1 &&
		"$CASFS" --store "$TMP/s-$c" nar "$P1" | cmp -s - "$TMP/p1.nar"; then
		pass "$T/upload-$c"
	else
		fail "$T/upload-$c" "$(tail -3 "$TMP/out" | tr '\n' ' ')"
	fi
done

## read: a signing server over the uploaded store, and an unsigned one
start rd "$TMP/s1" --sign-key "$TMP/key.sec"
start un "$TMP/s1"
if "${NIXCMD[@]}" copy --from "$URL_rd" --to "$TMP/chroot1" --option trusted-public-keys "$PUB" "$P2" >"$TMP/out" 2>&1 &&
	"${NIXCMD[@]}" store verify --store "$TMP/chroot1" --option trusted-public-keys "$PUB" --sigs-needed 1 -r "$P2" >>"$TMP/out" 2>&1; then
	pass "$T/copy-from-verify"
else
	fail "$T/copy-from-verify" "$(tail -3 "$TMP/out" | tr '\n' ' ')"
fi
if "${NIXCMD[@]}" copy --from "$URL_un" --to "$TMP/chroot2" --option trusted-public-keys "$PUB" "$P2" >"$TMP/out" 2>&1; then
	fail "$T/copy-from-unsigned" "nix copy accepted an unsigned input-addressed path"
elif grep -q 'lacks a valid signature' "$TMP/out"; then
	pass "$T/copy-from-unsigned"
else
	fail "$T/copy-from-unsigned" "$(tail -2 "$TMP/out" | tr '\n' ' ')"
fi
if nix-store "${NIXOPTS[@]}" --store "$TMP/chroot3" --option substituters "$URL_rd" \
	--option trusted-public-keys "$PUB" --realise "$P2" >"$TMP/out" 2>&1 &&
	[ -f "$TMP/chroot3$P2" ] && cmp -s "$TMP/chroot3$P2" "$P2"; then
	pass "$T/realise"
else
	fail "$T/realise" "$(tail -3 "$TMP/out" | tr '\n' ' ')"
fi

## oracle: narinfo and .ls against Nix's file:// cache
ok=1
for p in $CLOSURE; do
	h=${p:11:32}
	curl -sf "$URL_rd/$h.narinfo" >"$TMP/got.narinfo" || { ok=0; why="GET $h.narinfo failed"; break; }
	if ! diff <(grep -v '^URL: ' "$TMP/fc/$h.narinfo") <(grep -v '^URL: ' "$TMP/got.narinfo") >"$TMP/out"; then
		ok=0; why="$h: $(tr '\n' ' ' <"$TMP/out")"; break
	fi
	grep -qx "URL: nar/$(sed -n 's/^NarHash: sha256://p' "$TMP/got.narinfo").nar?hash=$h" "$TMP/got.narinfo" ||
		{ ok=0; why="$h: URL $(grep '^URL' "$TMP/got.narinfo")"; break; }
done
[ $ok = 1 ] && pass "$T/narinfo-oracle" || fail "$T/narinfo-oracle" "$why"
# without --sign-key: what the upload stored (no Sig: it was unsigned)
curl -sf "$URL_un/$H2.narinfo" >"$TMP/un.narinfo"
if grep -q '^Sig:' "$TMP/un.narinfo"; then
	fail "$T/narinfo-unsigned" "a Sig appeared"
else
	check_eq "$T/narinfo-unsigned" "$(grep -v '^URL: \|^Sig: ' "$TMP/un.narinfo" | md5sum)" \
		"$(grep -v '^URL: \|^Sig: ' "$TMP/fc/$H2.narinfo" | md5sum)"
fi
ok=1
for p in $CLOSURE; do
	h=${p:11:32}
	curl -sf "$URL_rd/$h.ls" >"$TMP/got.ls" && cmp -s "$TMP/got.ls" "$TMP/fc/$h.ls" ||
		{ ok=0; why="$h: $(head -c 300 "$TMP/got.ls") vs $(head -c 300 "$TMP/fc/$h.ls")"; break; }
done
[ $ok = 1 ] && pass "$T/listing-oracle" || fail "$T/listing-oracle" "$why"
check_eq "$T/narinfo-absent" "$(code "$URL_rd/00000000000000000000000000000000.narinfo")" 404
check_eq "$T/cache-info" "$(curl -s "$URL_rd/nix-cache-info")" "$(printf 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40')"

## http: ranges, HEAD, zstd, keep-alive
NARURL="$URL_rd/$(sed -n 's/^URL: //p' "$TMP/got.narinfo" | head -1)"
NARURL="$URL_rd/$(curl -s "$URL_rd/$H1.narinfo" | sed -n 's/^URL: //p')"
SIZE1=$(stat -c %s "$TMP/p1.nar")
curl -sf "$NARURL" | cmp -s - "$TMP/p1.nar" && pass "$T/nar" || fail "$T/nar" "NAR differs from nix-store --dump"
curl -sf "${NARURL%%\?*}" | cmp -s - "$TMP/p1.nar" && pass "$T/nar-no-query" || fail "$T/nar-no-query" "differs"
ok=1
for r in 0-99 5-5 250-70000 70000-200000 131072-262143 200000- -500 -$((SIZE1 + 10)) 0-$((SIZE1 + 100)) $((SIZE1 - 1))-; do
	a=${r%-*} b=${r#*-}
	if [ -z "$a" ]; then a=$((SIZE1 - b)); [ $a -lt 0 ] && a=0; b=$((SIZE1 - 1)); fi
	[ -z "$b" ] || [ "$b" -ge "$SIZE1" ] && b=$((SIZE1 - 1))
	st=$(curl -s -r "$r" -o "$TMP/range" -D "$TMP/hdr" -w '%{http_code}' "$NARURL")
	tail -c +$((a + 1)) "$TMP/p1.nar" | head -c $((b - a + 1)) >"$TMP/want"
	cr=$(grep -i '^content-range:' "$TMP/hdr" | tr -d '\r' | cut -d' ' -f2-)
	if [ "$st" != 206 ] || ! cmp -s "$TMP/range" "$TMP/want" || [ "$cr" != "bytes $a-$b/$SIZE1" ]; then
		ok=0; why="range $r: status $st, Content-Range '$cr'"; break
	fi
done
[ $ok = 1 ] && pass "$T/ranges" || fail "$T/ranges" "$why"
check_eq "$T/range-416" "$(code -r "$SIZE1-" "$NARURL")" 416
check_eq "$T/range-multi-ignored" "$(curl -s -r 0-1,5-6 "$NARURL" | cmp -s - "$TMP/p1.nar" && echo whole)" whole
curl -s -I "$NARURL" | tr -d '\r' >"$TMP/hdr"
check_eq "$T/head-nar" "$(grep -i '^content-length:\|^accept-ranges:\|^content-type:\|^HTTP/' "$TMP/hdr" | sort | tr '\n' '|')" \
	"$(printf 'Accept-Ranges: bytes\nContent-Length: %s\nContent-Type: application/x-nix-nar\nHTTP/1.1 200 OK\n' "$SIZE1" | sort | tr '\n' '|')"
curl -s -I "$URL_rd/$H1.narinfo" | tr -d '\r' >"$TMP/hdr"
check_eq "$T/head-narinfo" "$(grep -i '^content-type:\|^content-length:' "$TMP/hdr" | sort | tr '\n' '|')" \
	"Content-Length: $(curl -s "$URL_rd/$H1.narinfo" | wc -c)|Content-Type: text/x-nix-narinfo|"
curl -s -H 'Accept-Encoding: zstd' -D "$TMP/hdr" "$NARURL" -o "$TMP/z" 
if grep -qi '^content-encoding: zstd' "$TMP/hdr" && zstd -dc "$TMP/z" | cmp -s - "$TMP/p1.nar"; then
	pass "$T/zstd"
else
	fail "$T/zstd" "no zstd encoding or wrong bytes"
fi
curl -s -D "$TMP/hdr" "$NARURL" -o /dev/null
grep -qi '^content-encoding' "$TMP/hdr" && fail "$T/no-zstd-unasked" "Content-Encoding without Accept-Encoding" || pass "$T/no-zstd-unasked"
n=$(curl -sv "$URL_rd/nix-cache-info" "$URL_rd/$H1.narinfo" "$NARURL" 2>&1 >/dev/null | grep -c 'Re-using existing connection')
check_eq "$T/keep-alive" "$n" 2

## bad input
# uploads: a fresh store; P1's NAR under the name of its hash
start bad "$TMP/s-bad" --allow-upload
NARH=$(sed -n 's/^NarHash: sha256://p' "$TMP/fc/$H1.narinfo")
NAR2H=$(sed -n 's/^NarHash: sha256://p' "$TMP/fc/$H2.narinfo")
put() { curl -s -o "$TMP/body" -w '%{http_code}' -X PUT --data-binary "@$1" "$2"; }
st=$(put "$TMP/p2.nar" "$URL_bad/nar/$NARH.nar")
check_eq "$T/put-nar-wrong-name" "$st $(grep -c 'does not match the hash in its name' "$TMP/body")" "400 1"
check_eq "$T/put-nar" "$(put "$TMP/p1.nar" "$URL_bad/nar/$NARH.nar")" 200
sed 's/^NarSize: .*/NarSize: 12345/' "$TMP/fc/$H1.narinfo" >"$TMP/bad.narinfo"
st=$(put "$TMP/bad.narinfo" "$URL_bad/$H1.narinfo")
check_eq "$T/put-narinfo-wrong-size" "$st $(wc -l <"$TMP/body") $(code "$URL_bad/$H1.narinfo")" "400 1 404"
sed "s/^NarHash: .*/NarHash: sha256:$NAR2H/" "$TMP/fc/$H1.narinfo" >"$TMP/bad.narinfo"
st=$(put "$TMP/bad.narinfo" "$URL_bad/$H1.narinfo")
check_eq "$T/put-narinfo-wrong-hash" "$st $(code "$URL_bad/$H1.narinfo")" "400 404"
printf 'StorePath: /nix/store/%s-x\nNarSize: 1\n' "$H1" >"$TMP/bad.narinfo"
check_eq "$T/put-narinfo-malformed" "$(put "$TMP/bad.narinfo" "$URL_bad/$H1.narinfo")" 400
check_eq "$T/put-narinfo-other-path" "$(put "$TMP/fc/$H1.narinfo" "$URL_bad/$H2.narinfo")" 400
check_eq "$T/put-nar2" "$(put "$TMP/p2.nar" "$URL_bad/nar/$NAR2H.nar")" 200
st=$(put "$TMP/fc/$H2.narinfo" "$URL_bad/$H2.narinfo")
check_eq "$T/put-narinfo-missing-refs" "$st $(wc -l <"$TMP/body") $(code "$URL_bad/$H2.narinfo")" "400 1 404"
# the references come, then the same narinfo again is taken
for p in $(nix-store -q --references "$P2"); do
	h=${p:11:32}
	nh=$(sed -n 's/^NarHash: sha256://p' "$TMP/fc/$h.narinfo")
	nix-store --dump "$p" >"$TMP/ref.nar"
	put "$TMP/ref.nar" "$URL_bad/nar/$nh.nar" >/dev/null
	put "$TMP/fc/$h.narinfo" "$URL_bad/$h.narinfo" >/dev/null
done
check_eq "$T/put-narinfo-retry" "$(put "$TMP/fc/$H2.narinfo" "$URL_bad/$H2.narinfo") $(code "$URL_bad/$H2.narinfo")" "200 200"
check_eq "$T/put-forbidden" "$(put "$TMP/p1.nar" "$URL_rd/nar/$NARH.nar")" 403
check_eq "$T/put-nowhere" "$(put "$TMP/p1.nar" "$URL_bad/foo")" 404
check_eq "$T/method-405" "$(code -X DELETE "$URL_rd/$H1.narinfo") $(code -X POST "$URL_rd/nix-cache-info")" "405 405"
check_eq "$T/dotdot" "$(code --path-as-is "$URL_rd/../../etc/passwd") $(code --path-as-is "$URL_rd/nar/../$H1.narinfo") $(code "$URL_rd/%2e%2e/$H1.narinfo") $(code "$URL_rd/$H1%2enarinfo")" "404 404 404 404"
check_eq "$T/not-found" "$(code "$URL_rd/") $(code "$URL_rd/$H1.narinfox") $(code "$URL_rd/nar/$NARH.nar.xz") $(code "$URL_rd/log/x")" "404 404 404 404"
# raw sockets: garbage, a NUL, half a request, huge headers; the server answers afterwards
PORT_rd=${URL_rd##*:}
raw() { # bytes(python literal) -> first status line or "closed"
	python3 - "$PORT_rd" "$1" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
try:
    s.sendall(eval(sys.argv[2]))  # the test's own literals
    s.shutdown(socket.SHUT_WR)
    d = s.recv(200)
    print(d.split(b"\r\n")[0].decode() if d else "closed")
except OSError:  # reset, broken pipe: the server hung up
    print("closed")
EOF
}
ok=1
for req in "b'GARBAGE\\r\\n\\r\\n'" "b'\\x00\\x01\\x02\\xff' * 1000" \
	"b'GET /nix-cache-info HTTP/1.1\\r\\nHost: a\\r\\n'" "b'GET /' + b'a' * 100000 + b' HTTP/1.1\\r\\n\\r\\n'" \
	"b'GET /nix-cache-info HTTP/1.1\\r\\nHost: a\\r\\nX: ' + b'a' * 100000 + b'\\r\\n\\r\\n'" \
	"b'GET /nix-cache-info HTTP/1.1\\r\\nHost: a\\r\\n' + b'X-A: b\\r\\n' * 20000 + b'\\r\\n'"; do
	got=$(raw "$req")
	case "$got" in
	"HTTP/1.1 4"* | closed) ;;
	*) ok=0; why="$req got '$got'"; break ;;
	esac
	[ "$(code "$URL_rd/nix-cache-info")" = 200 ] || { ok=0; why="no answer after $req"; break; }
done
[ $ok = 1 ] && pass "$T/garbage" || fail "$T/garbage" "$why"
big=$(python3 -c 'print("a"*100000)')
st=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Big: $big" "$URL_rd/nix-cache-info")
case "$st" in 413|431|400|000) pass "$T/huge-header" ;; *) fail "$T/huge-header" "status $st" ;; esac
# a client gone mid-NAR, many at once; then still serving
for i in $(seq 20); do curl -s --max-filesize 1000 "$NARURL" -o /dev/null & done
for i in $(seq 20); do (curl -s "$NARURL" | head -c 100 >/dev/null) & done
wait $(jobs -p | grep -v -x -F "$(printf '%s\n' "${PIDS[@]}")") 2>/dev/null
curl -sf "$NARURL" | cmp -s - "$TMP/p1.nar" && pass "$T/after-disconnects" || fail "$T/after-disconnects" "NAR wrong afterwards"
# idle connections are closed by the server
start idle "$TMP/s1" --idle-timeout 2
t=$(python3 - "${URL_idle##*:}" <<'EOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
t = time.time()
try:
    d = s.recv(10)
except (socket.timeout, ConnectionResetError):
    d = b"timeout"
print("%s %.0f" % ("closed" if d == b"" else d, time.time() - t))
EOF
)
case "$t" in "closed "[1-5]) pass "$T/idle-timeout" ;; *) fail "$T/idle-timeout" "$t (want closed within 2-5 s)" ;; esac

# damaged blobs: a copy of the store with the 300000-byte file's blob
# flipped at 150000 (its third group), and another with hello.txt's
cp -a "$TMP/s1" "$TMP/s-dmg"
blob=$(find "$TMP/s-dmg/blobs" -type f -size 300000c | head -1)
printf '\377' | dd of="$blob" bs=1 seek=150000 conv=notrunc 2>/dev/null
start dmg "$TMP/s-dmg"
DURL="$URL_dmg/$(curl -s "$URL_dmg/$H1.narinfo" | sed -n 's/^URL: //p')"
curl -s "$DURL" -o "$TMP/dmg.nar"
rc=$?
got=$(stat -c %s "$TMP/dmg.nar")
if [ $rc -ne 0 ] && [ "$got" -lt "$SIZE1" ] && cmp -s "$TMP/dmg.nar" <(head -c "$got" "$TMP/p1.nar") &&
	grep -q 'cut short.*corrupt' "$TMP/server-dmg.log"; then
	pass "$T/damaged-large"
else
	fail "$T/damaged-large" "curl rc $rc, $got of $SIZE1 bytes"
fi
# a range after the damaged group is still served (and verified)
st=$(curl -s -r 262144-262343 -o "$TMP/range" -w '%{http_code}' "$DURL")
off=$(grep -c '' /dev/null)
blob_off=$(python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); print(d.find(open(sys.argv[2],"rb").read()[:64]))' "$TMP/p1.nar" "$TMP/tree/sub/blob.bin")
st2=$(curl -s -r $((blob_off + 150000))-$((blob_off + 150010)) -o /dev/null -w '%{http_code}' "$DURL")
[ "$st" = 206 ] && cmp -s "$TMP/range" <(tail -c +262145 "$TMP/p1.nar" | head -c 200) && [ "$st2" != 206 -o "$(curl -s -r $((blob_off + 150000))-$((blob_off + 150010)) "$DURL" | wc -c)" -lt 11 ] &&
	pass "$T/damaged-range" || fail "$T/damaged-range" "good range $st, damaged range $st2"
cp -a "$TMP/s1" "$TMP/s-dmg2"
# hello.txt's blob (blobs/<2 hex>/<rest of its BLAKE3>), not just any 6-byte one
hex=$(b3sum --no-names "$TMP/tree/hello.txt")
blob=$TMP/s-dmg2/blobs/${hex:0:2}/${hex:2}
chmod u+w "$blob" 2>/dev/null
printf 'HELLO\n' >"$blob"
start dmg2 "$TMP/s-dmg2"
curl -s "$URL_dmg2/$(curl -s "$URL_dmg2/$H1.narinfo" | sed -n 's/^URL: //p')" -o "$TMP/dmg.nar"
rc=$?
got=$(stat -c %s "$TMP/dmg.nar")
if [ $rc -ne 0 ] && [ "$got" -lt "$SIZE1" ] && ! grep -q HELLO "$TMP/dmg.nar"; then
	pass "$T/damaged-small"
else
	fail "$T/damaged-small" "curl rc $rc, $got of $SIZE1 bytes"
fi

## --background: returns once listening, serves until SIGTERM
URLB=$("$CASFS" --store "$TMP/s1" serve-cache --listen 127.0.0.1:0 --background 2>"$TMP/server-bg.log")
rc=$?
PB=$(fuser -n tcp "${URLB##*:}" 2>/dev/null | tr -d ' ')
[ -n "$PB" ] && PIDS+=("$PB")
check_eq "$T/background" "$rc $(code "$URLB/nix-cache-info")" "0 200"
if [ -n "$PB" ]; then
	kill -TERM "$PB"
	for i in $(seq 100); do kill -0 "$PB" 2>/dev/null || break; sleep 0.05; done
	kill -0 "$PB" 2>/dev/null && fail "$T/background-sigterm" "still running" || pass "$T/background-sigterm"
fi
"$CASFS" --store "$TMP/s1" serve-cache --listen "127.0.0.1:${URL_rd##*:}" --background >/dev/null 2>"$TMP/out"
check_eq "$T/port-in-use" "$? $(wc -l <"$TMP/out")" "1 1"
exit 0
