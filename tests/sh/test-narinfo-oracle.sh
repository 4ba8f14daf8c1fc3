#!/bin/bash
# Oracle test for src/nixcache against real Nix 2.8: Nix writes a binary
# cache (file://, signed with a key `nix key generate-secret` made) from
# this machine's Nix store (as test-nix-compat.sh adds to it; the build
# runs unsandboxed, so it also works in a plain chroot), and the unit binary test-narinfo, with
# CASFS_NARINFO_ORACLE_DIR set, parses every narinfo, renders it back byte
# for byte, verifies Nix's signatures and re-signs to the same Sig.
# Two caches: compression=none, and xz with a second signature added by
# `nix store sign` (two Sig lines, sorted).
. "$(dirname "$0")/lib/common.sh"

UNIT=$(dirname "$CASFS")/tests/test-narinfo
if ! command -v nix >/dev/null || ! command -v nix-store >/dev/null || ! command -v nix-build >/dev/null; then
	skip narinfo-oracle "nix is not installed"
	exit 0
fi
if [ ! -x "$UNIT" ]; then
	fail narinfo-oracle "no unit binary $UNIT (build it first)"
	exit 1
fi

TEST=narinfo-oracle
. "$TOP/tests/sh/lib/nix-env.sh"

"${NIXCMD[@]}" key generate-secret --key-name casfs-test-1 >"$TMP/key.sec" 2>"$TMP/out" ||
	step_failed keygen
"${NIXCMD[@]}" key convert-secret-to-public <"$TMP/key.sec" >"$TMP/key.pub" 2>"$TMP/out" ||
	step_failed keypub
"${NIXCMD[@]}" key generate-secret --key-name casfs-test-0 >"$TMP/key0.sec" 2>"$TMP/out" ||
	step_failed keygen0

mkdir -p "$TMP/tree/sub"
echo hello >"$TMP/tree/hello.txt"
printf '#!/bin/sh\necho hi\n' >"$TMP/tree/sub/run.sh"
chmod +x "$TMP/tree/sub/run.sh"
ln -s ../hello.txt "$TMP/tree/sub/link"
step add nix-store "${NIXOPTS[@]}" --add "$TMP/tree"
P1=$(tail -1 "$TMP/out")

# P2 refers to P1 and to a builtins.toFile text (a text: CA path), and has a Deriver.
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
case "$P2" in
/nix/store/*-withref) pass narinfo-oracle/build ;;
*) fail narinfo-oracle/build "nix-build printed '$P2'"; exit 1 ;;
esac

step copy-none "${NIXCMD[@]}" copy \
	--to "file://$TMP/cache-none?secret-key=$TMP/key.sec&compression=none" "$P2"
step copy-xz "${NIXCMD[@]}" copy \
	--to "file://$TMP/cache-xz?secret-key=$TMP/key.sec&compression=xz" "$P2"
step sign-xz "${NIXCMD[@]}" store sign --store "file://$TMP/cache-xz" --key-file "$TMP/key0.sec" -r "$P2"

for c in none xz; do
	dir="$TMP/cache-$c"
	cp "$TMP/key.sec" "$TMP/key.pub" "$dir/"
	n=$(ls "$dir"/*.narinfo 2>/dev/null | wc -l)
	if [ "$n" -ne 3 ]; then
		fail "narinfo-oracle/$c-count" "Nix wrote $n narinfo files, want 3"
		continue
	fi
	pass "narinfo-oracle/$c-count"
	if [ "$c" = xz ] && [ "$(grep -c '^Sig: ' "$dir/${P2:11:32}.narinfo")" -ne 2 ]; then
		fail "narinfo-oracle/xz-two-sigs" "nix store sign did not add a second Sig"
	fi
	if ! cat "$dir"/*.narinfo | grep -q '^CA: text:sha256:'; then
		fail "narinfo-oracle/$c-text-ca" "no narinfo with a text: CA (the toFile path)"
	fi
	out=$(CASFS_NARINFO_ORACLE_DIR="$dir" "$UNIT" oracle 2>&1)
	rc=$?
	echo "$out" | sed 's/^/    /'
	if [ $rc -eq 0 ] && echo "$out" | grep -q '^PASS .*oracle' && ! echo "$out" | grep -q '^FAIL\|^SKIP'; then
		pass "narinfo-oracle/$c"
	else
		fail "narinfo-oracle/$c" "test-narinfo oracle exited $rc"
	fi
done

exit 0
