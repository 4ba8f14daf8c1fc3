#!/bin/bash
# `casfs mount --list-root` over a store with more store paths than one
# page of the root listing (64) and a damaged PathInfo record among them
# (bad bytes written into LMDB behind the store's back): `ls` lists every
# other store path, in full, once each, and exits 0; the damage is logged
# once (naming the record) however often the root is listed; a lookup of
# the damaged one is EIO.  Mounts with --background (returns once mounted)
# and always unmounts.
. "$(dirname "$0")/lib/common.sh"

M=$TMP/mnt
cleanup_hook() {
	if mountpoint -q "$M" 2>/dev/null || ! stat "$M" >/dev/null 2>&1; then
		fusermount3 -u "$M" 2>/dev/null || fusermount3 -uz "$M" 2>/dev/null
	fi
}
if [ ! -e /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
	skip mount-list-root "no /dev/fuse or fusermount3"
	exit 0
fi

# 150 small trees, imported in one call.
N=150
for i in $(seq $N); do
	mkdir -p "$TMP/src/t$i"
	echo "tree $i" >"$TMP/src/t$i/file"
done
"$CASFS" import "$TMP"/src/t* >"$TMP/paths" 2>"$TMP/import.err" ||
	{ fail import "$(head -2 "$TMP/import.err")"; exit 1; }
check_eq imported "$(wc -l <"$TMP/paths")" "$N"
sed 's|^/nix/store/||' "$TMP/paths" | LC_ALL=C sort >"$TMP/all"

# Damage one: field 1 (node) claims 255 bytes, the record ends after 2.
victim=$(sed -n 75p "$TMP/all")
if python3 "$TOP/tests/sh/lib/lmdb-put.py" "$CASFS_STORE" pathinfo "$victim" 0aff0112 2>"$TMP/damage.err"; then
	pass damage-record
else
	fail damage-record "$(cat "$TMP/damage.err")"
	exit 1
fi
grep -vx "$victim" "$TMP/all" >"$TMP/want"

mkdir -p "$M"
"$CASFS" mount "$M" --background --list-root 2>"$TMP/daemon.log" ||
	{ fail mount "$(tail -2 "$TMP/daemon.log")"; exit 1; }

ls "$M" >"$TMP/ls.out" 2>"$TMP/ls.err"
check_eq ls-exit "$?" 0
check_eq ls-no-errors "$(head -2 "$TMP/ls.err")" ""
LC_ALL=C sort "$TMP/ls.out" >"$TMP/got"
if cmp -s "$TMP/got" "$TMP/want"; then
	pass ls-lists-the-others
else
	fail ls-lists-the-others "$(diff "$TMP/want" "$TMP/got" | head -4 | tr '\n' '|')"
fi
check_eq ls-each-once "$(uniq -d "$TMP/got" | wc -l)" 0
# readdir order is digest order, not name order; -f keeps it (with . and ..)
ls -f "$M" >"$TMP/ls-f.out" 2>&1
check_eq ls-f-count "$(wc -l <"$TMP/ls-f.out")" "$((N - 1 + 2))"
# a listing with readdirplus attributes (ls -l stats every entry)
ls -l "$M" >"$TMP/ls-l.out" 2>"$TMP/ls-l.err"
check_eq ls-l-exit "$?" 0
check_eq ls-l-count "$(grep -c '^d' "$TMP/ls-l.out")" "$((N - 1))"

# the others are served; the damaged one is EIO
ok=0
while read -r p; do
	[ "$(cat "$M/$p/file" 2>/dev/null)" = "tree ${p##*-t}" ] && ok=$((ok + 1))
done <"$TMP/want"
check_eq others-readable "$ok" "$((N - 1))"
if stat "$M/$victim" >/dev/null 2>"$TMP/stat.err"; then
	fail damaged-lookup-eio "stat succeeded"
else
	grep -q "Input/output error" "$TMP/stat.err" && pass damaged-lookup-eio ||
		fail damaged-lookup-eio "$(cat "$TMP/stat.err")"
fi

fusermount3 -u "$M" && pass unmount || fail unmount "fusermount3 -u failed"
# the daemon closes its log when it exits (bounded wait)
for i in $(seq 200); do fuser -s "$TMP/daemon.log" 2>/dev/null || break; sleep 0.05; done

# Three listings, one line about the damaged record; the failed lookup says
# so too (once); nothing else.
hash=${victim%%-*}
check_eq damage-logged-once "$(grep -c "root listing skips a damaged path info: .*$hash" "$TMP/daemon.log")" 1
other=$(grep -v "$hash" "$TMP/daemon.log" | head -3)
check_eq daemon-no-other-lines "$other" ""
exit 0
