#!/bin/bash
# Compressed NARs as real Nix writes them into a binary cache: for each of
# Nix's compressions, `nix copy --to file://…?compression=M` a tree; then
# `casfs import-nar --compression M` of the nar/ file the narinfo names
# must land on the same store path with the NAR `nix-store --dump` gives.
# A truncated or damaged file is refused in one line and registers
# nothing.
. "$(dirname "$0")/lib/common.sh"

export XDG_CACHE_HOME=$TMP/xdg-cache
nixflags=(--extra-experimental-features nix-command --option build-users-group ""
	--option substituters "")

python3 "$TOP/tests/sh/lib/make-tree.py" tricky "$TMP/tree" >/dev/null
P=$(nixstore --add "$TMP/tree")
nixstore --dump "$P" >"$TMP/want.nar"

# field NARINFO NAME: the value of one narinfo line
field() { sed -n "s/^$2: //p" "$1"; }

for m in none xz zstd bzip2; do
	cache=$TMP/cache-$m
	if ! nix copy "${nixflags[@]}" --to "file://$cache?compression=$m" "$P" 2>"$TMP/copy.err"; then
		fail "$m/nix-copy" "$(head -2 "$TMP/copy.err" | tr '\n' '|')"
		continue
	fi
	ni=$cache/$(basename "$P" | cut -c1-32).narinfo
	check_eq "$m/narinfo-compression" "$(field "$ni" Compression)" "$m"
	nar=$cache/$(field "$ni" URL)
	store=$TMP/store-$m
	got=$("$CASFS" --store "$store" import-nar --compression "$m" "$P" "$nar" 2>&1)
	check_eq "$m/import-nar" "$got" "$P"
	if "$CASFS" --store "$store" nar "$P" >"$TMP/got.nar" 2>&1 && cmp -s "$TMP/got.nar" "$TMP/want.nar"; then
		pass "$m/nar-identical"
	else
		fail "$m/nar-identical" "$(head -c 200 "$TMP/got.nar")"
	fi
	[ "$m" = none ] && continue

	# Cut the file short, or flip a byte in its middle: one line, exit 1,
	# nothing registered.
	size=$(stat -c %s "$nar")
	head -c $((size - 7)) "$nar" >"$TMP/short"
	cp "$nar" "$TMP/flipped"
	printf '\xff' | dd of="$TMP/flipped" bs=1 seek=$((size / 2)) conv=notrunc status=none
	for bad in short flipped; do
		bstore=$TMP/store-$m-$bad
		"$CASFS" --store "$bstore" import-nar --compression "$m" "$P" "$TMP/$bad" >"$TMP/out" 2>"$TMP/err"
		rc=$?
		if [ "$rc" -eq 1 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] && [ ! -s "$TMP/out" ] &&
			! "$CASFS" --store "$bstore" path-info "$P" >/dev/null 2>&1; then
			pass "$m/$bad-refused"
		else
			fail "$m/$bad-refused" "exit $rc: $(head -2 "$TMP/err" | tr '\n' '|')"
		fi
	done
done

# The wrong method, and an unknown one.
"$CASFS" --store "$TMP/store-wrong" import-nar --compression xz "$P" "$TMP/want.nar" >/dev/null 2>"$TMP/err"
rc=$?
if [ "$rc" -eq 1 ] && grep -q "xz data is corrupt" "$TMP/err"; then pass wrong-method; else fail wrong-method "exit $rc: $(cat "$TMP/err")"; fi
"$CASFS" import-nar --compression br "$P" "$TMP/want.nar" >/dev/null 2>"$TMP/err"
rc=$?
if [ "$rc" -eq 2 ] && grep -q "'br' is not supported" "$TMP/err"; then pass unknown-method; else fail unknown-method "exit $rc: $(cat "$TMP/err")"; fi
exit 0
