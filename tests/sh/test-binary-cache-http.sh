#!/bin/bash
# Nix binary caches over HTTP (a small Python server with faults,
# tests/sh/lib/cache-server.py, serving what real Nix wrote): casfs copy
# --from http://…, answers 403/404/500, a server that stalls, and a
# binary cache as the store behind a mount in a private mount namespace,
# running a program whose closure comes through the mount; concurrent
# reads of one path fetch it once.
. "$(dirname "$0")/lib/common.sh"
. "$TOP/tests/sh/lib/nix-closure.sh"

# A program whose closure is two paths: a script (input-addressed, signed)
# that cats a file of P_TREE.
cat >"$TMP/prog.nix" <<NIX
derivation {
  name = "casfs-test-prog"; system = builtins.currentSystem; builder = "/bin/sh";
  args = [ "-c" "printf '#!/bin/sh\\\\nexec /bin/cat \${builtins.storePath $P_TREE}/size-16\\\\n' > \$out; /bin/chmod +x \$out" ];
}
NIX
P_PROG=$(nix-build --option build-users-group "" --option sandbox false --option substituters "" \
	--no-out-link "$TMP/prog.nix" 2>/dev/null)
cache=$TMP/cache
nix copy "${nixflags[@]}" --to "file://$cache?compression=zstd&secret-key=$SK" "$P_REF" "$P_PROG" \
	2>/dev/null || fail setup "nix copy --to file:// failed"

SERVER_PIDS=()
cleanup_hook() {
	for p in "${SERVER_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	[ -n "${MNT:-}" ] && fusermount3 -u "$MNT" 2>/dev/null
	return 0
}
# serve NAME [RULE...]: start a server on $cache, set URL and LOG
serve() {
	LOG=$TMP/$1.log
	rm -f "$TMP/$1.port"
	python3 "$TOP/tests/sh/lib/cache-server.py" "$cache" "$TMP/$1.port" "$LOG" "${@:2}" &
	SERVER_PIDS+=($!)
	for _ in $(seq 100); do
		[ -s "$TMP/$1.port" ] && break
		kill -0 "${SERVER_PIDS[-1]}" 2>/dev/null || break
		sleep 0.05
	done
	URL=http://127.0.0.1:$(cat "$TMP/$1.port" 2>/dev/null)
}
one_line_error() {
	if [ "$2" = 1 ] && [ "$(wc -l <"$3")" = 1 ] && grep -q -- "$4" "$3"; then
		pass "$1"
	else
		fail "$1" "rc $2: $(head -3 "$3" | tr '\n' '|')"
	fi
}
registered() { "$CASFS" --store "$1" path-info "$2" >/dev/null 2>&1; }

# ---- copy over HTTP ----------------------------------------------------------
serve plain
"$CASFS" --store "$TMP/s1" copy --from "$URL" --trusted-public-keys "$PK_TEXT" "$P_REF" 2>"$TMP/err"
check_eq http-copy "$?" 0
"$CASFS" --store "$TMP/s1" nar "$P_REF" | cmp -s - <(nixstore --dump "$P_REF") &&
	pass http-nar-as-nix || fail http-nar-as-nix "NAR differs"
"$CASFS" --store "$TMP/s1" copy --from "$URL/" --trusted-public-keys "$PK_TEXT" "$P_REF" 2>"$TMP/err"
check_eq http-copy-again-trailing-slash "$?" 0
absent=/nix/store/$(printf '%032d' 0 | tr 0 a)-absent
"$CASFS" --store "$TMP/s1" copy --from "$URL" "$absent" 2>"$TMP/err"
one_line_error http-404 "$?" "$TMP/err" "not in binary cache"
check_eq http-404-not-retried "$(grep -c "GET /$(hashpart "$absent").narinfo" "$LOG")" 1

serve forbidden ".narinfo=403"
"$CASFS" --store "$TMP/s2" copy --from "$URL" --trusted-public-keys "$PK_TEXT" "$P_REF" 2>"$TMP/err"
one_line_error http-403-is-absent "$?" "$TMP/err" "not in binary cache"

serve broken "nar/=500"
"$CASFS" --store "$TMP/s2" copy --from "$URL" --trusted-public-keys "$PK_TEXT" "$P_REF" 2>"$TMP/err"
one_line_error http-500 "$?" "$TMP/err" "HTTP 500"
registered "$TMP/s2" "$P_REF" && fail http-500-nothing-registered "registered" ||
	pass http-500-nothing-registered
# 500 is retried (three tries), 404 is not.
nar=$(sed -n 's/^URL: //p' "$cache/$(hashpart "$P_REF").narinfo")
check_eq http-500-retried "$(grep -c "GET /$nar" "$LOG")" 3

serve stalled "nar/=stall"
start=$(date +%s)
timeout 60 "$CASFS" --store "$TMP/s3" copy --from "$URL?stalled-download-timeout=2" \
	--trusted-public-keys "$PK_TEXT" "$P_REF" 2>"$TMP/err"
rc=$?
one_line_error http-stall-times-out "$rc" "$TMP/err" "timed out"
[ $(($(date +%s) - start)) -lt 30 ] && pass http-stall-bounded || fail http-stall-bounded "took too long"

"$CASFS" --store "$TMP/s3" copy --from "http://127.0.0.1:1" "$P_REF" 2>"$TMP/err"
one_line_error http-refused "$?" "$TMP/err" "127.0.0.1:1"

# ---- casfs to casfs through serve-cache --allow-upload --------------------------
surl=$("$CASFS" --store "$TMP/served" serve-cache --listen 127.0.0.1:0 --allow-upload \
	--sign-key "$SK" --background 2>"$TMP/serve.err")
if [ -n "$surl" ]; then
	SERVER_PIDS+=($(fuser "${surl##*:}/tcp" 2>/dev/null))
	"$CASFS" --store "$TMP/s1" copy --to "$surl" "$P_REF" 2>"$TMP/err"
	check_eq upload-to-serve-cache "$?" 0
	"$CASFS" --store "$TMP/s4" copy --from "$surl" --trusted-public-keys "$PK_TEXT" "$P_REF" 2>"$TMP/err"
	check_eq copy-from-serve-cache "$?" 0
	"$CASFS" --store "$TMP/s4" nar "$P_REF" | cmp -s - <(nixstore --dump "$P_REF") &&
		pass serve-cache-round-trip-nar || fail serve-cache-round-trip-nar "NAR differs"
else
	fail serve-cache-start "$(head -1 "$TMP/serve.err")"
fi

# ---- a binary cache as the store ----------------------------------------------
serve through
"$CASFS" --store "$URL" --cache "$TMP/c1" --trusted-public-keys "$PK_TEXT" cat "$P_PROG" >"$TMP/prog.out" 2>&1
cmp -s "$TMP/prog.out" "$P_PROG" && pass through-cat || fail through-cat "$(head -c 200 "$TMP/prog.out")"
"$CASFS" --store "$TMP/c1" path-info "$P_TREE" >/dev/null 2>&1 &&
	pass through-registers-references-in-cache || fail through-registers-references-in-cache "absent"
"$CASFS" --store "$URL" --cache "$TMP/c2" cat "$P_PROG" 2>"$TMP/err" >/dev/null
one_line_error through-unsigned-refused "$?" "$TMP/err" "lacks a valid signature"

if [ ! -e /dev/fuse ] || ! unshare -m --propagation private true 2>/dev/null; then
	skip through-mount "no FUSE or no private mount namespaces here"
	exit $FAILED
fi
# A private mount namespace with the cache mounted on /nix/store: the
# program and its reference are fetched through the mount.
serve mount
cat >"$TMP/inns.sh" <<SH
set -e
"$CASFS" mount /nix/store --store "$URL" --cache "$TMP/c3" --trusted-public-keys "$PK_TEXT" --background >/dev/null
trap 'fusermount3 -u /nix/store' EXIT
$P_PROG
# eight readers of one file of a path not fetched yet
for i in 1 2 3 4 5 6 7 8; do cat $P_REF >"$TMP/par.\$i" & done
wait
SH
out=$(timeout 120 unshare -m --propagation private bash "$TMP/inns.sh" 2>"$TMP/mount.err")
check_eq through-mount-runs-program "$out" "$(cat "$P_TREE/size-16")"
ok=1
for i in 1 2 3 4 5 6 7 8; do cmp -s "$TMP/par.$i" "$P_REF" || ok=0; done
[ $ok = 1 ] && pass through-mount-parallel-reads || fail through-mount-parallel-reads "$(head -2 "$TMP/mount.err")"
nar=$(sed -n 's/^URL: //p' "$cache/$(hashpart "$P_REF").narinfo")
check_eq through-mount-fetched-once "$(grep -c "GET /$nar" "$LOG")" 1
exit $FAILED
