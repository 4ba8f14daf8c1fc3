#!/bin/bash
# Nix binary caches on disk (file://) as real Nix 2.8 writes and reads
# them: `casfs copy --from file://…` takes closures Nix wrote (every
# compression), checks signatures and content addresses, and refuses
# tampered narinfos and NARs with one line and nothing registered;
# `casfs copy --to file://…` writes caches Nix copies from and verifies.
. "$(dirname "$0")/lib/common.sh"
. "$TOP/tests/sh/lib/nix-closure.sh"

ALL=("$P_REF" "$P_FLAT" "$P_TEXT")
# registered STORE PATH: 0 if the path is in the casfs store
registered() { "$CASFS" --store "$1" path-info "$2" >/dev/null 2>&1; }
# same_nar NAME STORE PATH: the NAR casfs renders is Nix's
same_nar() {
	if "$CASFS" --store "$2" nar "$3" >"$TMP/got.nar" 2>"$TMP/nar.err" &&
		nixstore --dump "$3" | cmp -s - "$TMP/got.nar"; then
		pass "$1"
	else
		fail "$1" "$(head -c 200 "$TMP/nar.err")"
	fi
}
# one_line_error NAME RC ERRFILE PATTERN: exit 1, one line, naming PATTERN
one_line_error() {
	if [ "$2" = 1 ] && [ "$(wc -l <"$3")" = 1 ] && grep -q -- "$4" "$3"; then
		pass "$1"
	else
		fail "$1" "rc $2: $(head -3 "$3" | tr '\n' '|')"
	fi
}

# ---- reading what Nix wrote, every compression ---------------------------
for m in none xz zstd bzip2; do
	cache=$TMP/cache-$m
	if ! nix copy "${nixflags[@]}" --to "file://$cache?compression=$m&secret-key=$SK" \
		"${ALL[@]}" 2>"$TMP/copy.err"; then
		fail "$m/nix-copy" "$(head -2 "$TMP/copy.err" | tr '\n' '|')"
		continue
	fi
	store=$TMP/store-$m
	"$CASFS" --store "$store" copy --from "file://$cache" --trusted-public-keys "$PK_TEXT" \
		"${ALL[@]}" 2>"$TMP/err"
	check_eq "$m/copy-rc" "$?" 0
	for p in "$P_TREE" "${ALL[@]}"; do
		same_nar "$m/nar-$(basename "$p" | cut -c34-)" "$store" "$p"
	done
done

# Metadata as Nix has it: references, deriver, signature, CA.
store=$TMP/store-xz
"$CASFS" --store "$store" path-info --json "$P_REF" "$P_FLAT" >"$TMP/casfs.json" 2>&1
nixcmd path-info --json --store "file://$TMP/cache-xz" "$P_REF" "$P_FLAT" >"$TMP/nix.json" 2>/dev/null
python3 - "$TMP/casfs.json" "$TMP/nix.json" >"$TMP/cmp.out" 2>&1 <<'PY'
import json, sys
got = {p["path"]: p for p in json.load(open(sys.argv[1]))}
want = {p["path"]: p for p in json.load(open(sys.argv[2]))}
for path, w in want.items():
    g = got[path]
    for k in ("narHash", "narSize", "references", "deriver", "signatures", "ca"):
        if (g.get(k) or None) != (w.get(k) or None):
            print(path, k, g.get(k), w.get(k))
PY
check_eq metadata-as-nix "$(cat "$TMP/cmp.out")" ""

# ---- trust -----------------------------------------------------------------
# No key: the content-addressed paths come in, the input-addressed one not.
store=$TMP/store-nokey
"$CASFS" --store "$store" copy --from "file://$TMP/cache-zstd" "${ALL[@]}" 2>"$TMP/err"
one_line_error unsigned-refused "$?" "$TMP/err" "lacks a valid signature"
registered "$store" "$P_REF" && fail unsigned-not-registered "$P_REF is registered" ||
	pass unsigned-not-registered
"$CASFS" --store "$store" copy --from "file://$TMP/cache-zstd" "$P_FLAT" "$P_TEXT" "$P_TREE" 2>"$TMP/err"
check_eq ca-paths-need-no-key "$?" 0
same_nar flat-ca-nar "$store" "$P_FLAT"
same_nar text-ca-nar "$store" "$P_TEXT"

# Another key of the same name; a malformed key list; the environment.
nix key generate-secret "${nixflags[@]}" --key-name casfs-test-1 >"$TMP/other.sk"
OTHER=$(nix key convert-secret-to-public "${nixflags[@]}" <"$TMP/other.sk")
"$CASFS" --store "$TMP/store-other" copy --from "file://$TMP/cache-zstd" \
	--trusted-public-keys "$OTHER" "$P_REF" 2>"$TMP/err"
one_line_error wrong-key-refused "$?" "$TMP/err" "lacks a valid signature"
"$CASFS" --store "$TMP/store-other" copy --from "file://$TMP/cache-zstd" \
	--trusted-public-keys "casfs-test-1:bm90IGEga2V5" "$P_REF" 2>"$TMP/err"
one_line_error bad-key-list "$?" "$TMP/err" "trusted public keys"
CASFS_TRUSTED_PUBLIC_KEYS="$OTHER $PK_TEXT" "$CASFS" --store "$TMP/store-env" copy \
	--from "file://$TMP/cache-zstd" "$P_REF" 2>"$TMP/err"
check_eq keys-from-environment "$?" 0

# ---- tampering: a fresh copy of the cache for each case --------------------
# tamper NAME EDIT PATTERN: edit the copy with EDIT (a shell snippet run in
# it, $NI the narinfo of P_REF, $NT that of P_TREE), then the copy must
# fail naming PATTERN and register neither path of the closure.
tamper() {
	local t=$TMP/tamper-$1
	rm -rf "$t" "$TMP/store-t"
	cp -r "$TMP/cache-$4" "$t"
	(cd "$t" && NI=$(hashpart "$P_REF").narinfo NT=$(hashpart "$P_TREE").narinfo && eval "$2")
	"$CASFS" --store "$TMP/store-t" copy --from "file://$t" --trusted-public-keys "$PK_TEXT" \
		"$P_REF" 2>"$TMP/err"
	one_line_error "tamper/$1" "$?" "$TMP/err" "$3"
	registered "$TMP/store-t" "$P_REF" && fail "tamper/$1-nothing-registered" "$P_REF registered" ||
		pass "tamper/$1-nothing-registered"
}
other_hash=sha256:$(printf '%052d' 0 | tr 0 1)
tamper narhash "sed -i 's|^NarHash: .*|NarHash: $other_hash|' \$NI" "lacks a valid signature" xz
tamper narsize "sed -i 's|^NarSize: .*|NarSize: 999|' \$NI" "lacks a valid signature" xz
tamper references "sed -i 's|^References: .*|References: |' \$NI" "lacks a valid signature" xz
tamper syntax "sed -i 's|^NarSize: |NarSize = |' \$NI" "narinfo" xz
tamper no-newline "truncate -s -1 \$NI" "narinfo" xz
tamper other-path "cp \$NT \$NI" "another path" xz
tamper missing-reference "rm \$NT" "not in binary cache" xz
tamper truncated-nar "f=\$(sed -n 's/^URL: //p' \$NI); truncate -s 60 \$f" "NAR" xz
tamper corrupt-nar "f=\$(sed -n 's/^URL: //p' \$NI); printf 'garbage!' | dd of=\$f bs=1 seek=40 conv=notrunc status=none" "NAR" xz
# (byte 100 is inside the one file's contents, which start at 96)
tamper nar-mismatch "f=\$(sed -n 's/^URL: //p' \$NI); printf X | dd of=\$f bs=1 seek=100 conv=notrunc status=none" "hash mismatch" none
tamper missing-nar "rm \$(sed -n 's/^URL: //p' \$NI)" "does not exist" zstd
tamper wrong-compression "sed -i 's|^Compression: .*|Compression: bzip2|' \$NI" "bzip2" zstd
tamper unknown-compression "sed -i 's|^Compression: .*|Compression: lz4|' \$NI" "not supported" zstd
tamper store-dir "echo 'StoreDir: /gnu/store' >nix-cache-info" "/gnu/store" zstd

# ---- --no-recursive ----------------------------------------------------------
"$CASFS" --store "$TMP/store-nr" copy --no-recursive --from "file://$TMP/cache-zstd" \
	--trusted-public-keys "$PK_TEXT" "$P_REF" 2>"$TMP/err"
one_line_error no-recursive-needs-references "$?" "$TMP/err" "$(hashpart "$P_TREE")"
"$CASFS" --store "$TMP/store-nr" copy --no-recursive --from "file://$TMP/cache-zstd" "$P_TREE" &&
	"$CASFS" --store "$TMP/store-nr" copy --no-recursive --from "file://$TMP/cache-zstd" \
		--trusted-public-keys "$PK_TEXT" "$P_REF" 2>"$TMP/err"
check_eq no-recursive-after-references "$?" 0

# ---- writing caches Nix reads ---------------------------------------------
src=$TMP/store-xz
for m in zstd xz bzip2 none; do
	out=$TMP/out-$m
	"$CASFS" --store "$src" copy --to "file://$out?compression=$m&secret-key=$SK" "${ALL[@]}" 2>"$TMP/err"
	check_eq "write-$m/rc" "$?" 0
	root=$TMP/nixroot-$m
	if nix copy "${nixflags[@]}" --option trusted-public-keys "$PK_TEXT" --from "file://$out" \
		--to "$root" "${ALL[@]}" 2>"$TMP/nix.err" &&
		nix store verify "${nixflags[@]}" --option trusted-public-keys "$PK_TEXT" --store "$root" \
			--sigs-needed 1 -r "${ALL[@]}" 2>"$TMP/nix.err"; then
		pass "write-$m/nix-copies-and-verifies"
	else
		fail "write-$m/nix-copies-and-verifies" "$(grep error "$TMP/nix.err" | head -2 | tr '\n' '|')"
	fi
done
# The narinfo casfs writes is Nix's but for the file it points at.
nix copy "${nixflags[@]}" --to "file://$TMP/nix-none?compression=none&secret-key=$SK" "$P_REF" 2>/dev/null
strip() { grep -v '^URL: \|^FileHash: \|^FileSize: \|^Compression: ' "$1"; }
check_eq narinfo-as-nix "$(strip "$TMP/out-zstd/$(hashpart "$P_REF").narinfo")" \
	"$(strip "$TMP/nix-none/$(hashpart "$P_REF").narinfo")"
check_eq narinfo-none-identical "$(cat "$TMP/out-none/$(hashpart "$P_REF").narinfo")" \
	"$(cat "$TMP/nix-none/$(hashpart "$P_REF").narinfo")"
# Listings (write-nar-listing): byte for byte what Nix writes.
nix copy "${nixflags[@]}" --to "file://$TMP/nix-ls?compression=none&write-nar-listing=true" \
	"$P_REF" 2>/dev/null
"$CASFS" --store "$src" copy --to "file://$TMP/out-ls?write-nar-listing=1" "$P_REF" 2>"$TMP/err"
for p in "$P_TREE" "$P_REF"; do
	f=$(hashpart "$p").ls
	if [ -s "$TMP/nix-ls/$f" ] && cmp -s "$TMP/nix-ls/$f" "$TMP/out-ls/$f"; then
		pass "listing-as-nix-$(basename "$p" | cut -c34-)"
	else
		fail "listing-as-nix-$(basename "$p" | cut -c34-)" "$(head -c 200 "$TMP/out-ls/$f" 2>&1)"
	fi
done
# Copying again writes nothing new.
before=$(find "$TMP/out-zstd" -type f -printf '%p %T@\n' | sort)
"$CASFS" --store "$src" copy --to "file://$TMP/out-zstd?secret-key=$SK" "${ALL[@]}"
check_eq write-again-is-a-no-op "$(find "$TMP/out-zstd" -type f -printf '%p %T@\n' | sort)" "$before"

# ---- bad arguments -----------------------------------------------------------
"$CASFS" --store "$src" copy --to "file://$TMP/out-bad?compresion=xz" "$P_TREE" 2>"$TMP/err"
one_line_error unknown-parameter "$?" "$TMP/err" "unknown parameter 'compresion'"
"$CASFS" --store "$src" copy --to "file://$TMP/out-bad?secret-key=$TMP/nope" "$P_TREE" 2>"$TMP/err"
one_line_error missing-secret-key "$?" "$TMP/err" "secret key file"
"$CASFS" --store "$src" copy --to "nix:" "$P_TREE" 2>"$TMP/err"
one_line_error nix-is-read-only "$?" "$TMP/err" "read-only"
"$CASFS" --store "$src" copy "/nix/store/not-a-path" 2>"$TMP/err"
one_line_error bad-store-path "$?" "$TMP/err" "not-a-path"
"$CASFS" --store "$src" copy --jobs 0 "$P_TREE" 2>"$TMP/err"
check_eq bad-jobs-usage "$?" 2
exit $FAILED
