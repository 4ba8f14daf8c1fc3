#!/bin/bash
# Golden tests against real Nix: for each tree, `casfs import` prints what
# `nix-store --add` prints, `casfs nar` equals `nix-store --dump`, and
# path-info reports what `nix hash path` / the dump's length say.
. "$(dirname "$0")/lib/common.sh"

compare_tree() { # label path
	local label=$1 t=$2 want got
	want=$(nixstore --add "$t" 2>&1) || { fail "$label/nix" "nix-store --add failed: $want"; return; }
	got=$("$CASFS" import "$t" 2>&1)
	check_eq "$label/import-path" "$got" "$want"
	nixstore --dump "$t" >"$TMP/nix.nar"
	if "$CASFS" nar "$got" >"$TMP/casfs.nar" 2>"$TMP/err" && cmp -s "$TMP/nix.nar" "$TMP/casfs.nar"; then
		pass "$label/nar-identical"
	else
		fail "$label/nar-identical" "$(head -c 300 "$TMP/err") $(cmp "$TMP/nix.nar" "$TMP/casfs.nar" 2>&1 | head -1)"
	fi
	local hash size info
	hash=$(nixcmd hash path "$t")
	size=$(stat -c %s "$TMP/nix.nar")
	info=$("$CASFS" path-info --json "$got")
	case "$info" in
	*"\"narHash\":\"$hash\""*"\"narSize\":$size,"*) pass "$label/path-info" ;;
	*) fail "$label/path-info" "$info (want $hash, $size)" ;;
	esac
	# a NAR import of Nix's own dump lands on the same path
	local name=${want#/nix/store/*-}
	got=$("$CASFS" --store "$TMP/store-nar" import-nar "$name" "$TMP/nix.nar" 2>&1)
	check_eq "$label/import-nar" "$got" "$want"
}

python3 "$TOP/tests/sh/lib/make-tree.py" tricky "$TMP/tricky" >/dev/null
compare_tree tricky "$TMP/tricky"
compare_tree single-file "$TMP/tricky/size-4097"
compare_tree exec-file "$TMP/tricky/exec-dir/run.sh"
compare_tree empty-file "$TMP/tricky/empty"
compare_tree empty-dir "$TMP/tricky/empty-dir"
compare_tree root-symlink "$TMP/tricky/dangling"
compare_tree large-file "$TMP/tricky/size-3145728"

python3 "$TOP/tests/sh/lib/make-tree.py" deep "$TMP/deep" >/dev/null
compare_tree deep "$TMP/deep"

python3 "$TOP/tests/sh/lib/make-tree.py" wide "$TMP/wide" >/dev/null
compare_tree wide "$TMP/wide"

for i in 1 2 3; do
	seed=${CASFS_TEST_SEED:-$RANDOM$RANDOM}
	seed=$((seed + i))
	echo "random tree $i: seed $seed (set CASFS_TEST_SEED to replay)"
	python3 "$TOP/tests/sh/lib/make-tree.py" random "$TMP/random$i" "$seed" >/dev/null
	compare_tree "random-seed-$seed" "$TMP/random$i"
done

# --name gives the path nix-store --add gives a tree of that name
mkdir -p "$TMP/named/othername"
cp -a "$TMP/tricky/sub/." "$TMP/named/othername/"
want=$(nixstore --add "$TMP/named/othername")
got=$("$CASFS" import --name othername "$TMP/tricky/sub")
check_eq import-name "$got" "$want"

# several paths in one call, one line each
want=$(printf '%s\n%s' "$(nixstore --add "$TMP/tricky/sub")" "$(nixstore --add "$TMP/tricky/twin")")
got=$("$CASFS" import "$TMP/tricky/sub" "$TMP/tricky/twin")
check_eq import-many "$got" "$want"

# ls and cat agree with the source tree
p=$("$CASFS" import "$TMP/tricky")
check_eq cat-file "$("$CASFS" cat "$p/sub/file")" "$(cat "$TMP/tricky/sub/file")"
check_eq cat-large "$("$CASFS" cat "$p/size-3145728" | sha256sum)" "$(sha256sum <"$TMP/tricky/size-3145728")"
want=$(cd "$TMP/tricky" && LC_ALL=C ls -A | LC_ALL=C sort)
got=$("$CASFS" ls "$p" | awk '{print $3}' | LC_ALL=C sort)
# names with spaces are cut by awk: compare counts and a few names instead
check_eq ls-count "$("$CASFS" ls "$p" | wc -l)" "$(ls -A "$TMP/tricky" | wc -l)"
"$CASFS" ls "$p" | grep -q -- '-r-xr-xr-x .* twin-exec$' && pass ls-exec || fail ls-exec "no executable twin-exec"
"$CASFS" ls "$p" | grep -q -- 'dangling -> does/not/exist$' && pass ls-symlink || fail ls-symlink "no dangling link"

exit 0
