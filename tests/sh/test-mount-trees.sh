#!/bin/bash
# The deep (250 levels) and wide (50,000 entries) trees through a real
# mount: listings and archives equal the source's, `cd` deep inside and
# `pwd` work, and the mount behaves like /nix/store for the tools.
. "$(dirname "$0")/lib/common.sh"

if [ ! -e /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
	skip mount-trees "no /dev/fuse or fusermount3"
	exit 0
fi
mnt="$TMP/mnt"
mkdir -p "$mnt"
cleanup_hook() { fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null; }

python3 "$TOP/tests/sh/lib/make-tree.py" deep "$TMP/deep" >/dev/null
python3 "$TOP/tests/sh/lib/make-tree.py" wide "$TMP/wide" >/dev/null
deep=$("$CASFS" import "$TMP/deep") && wide=$("$CASFS" import "$TMP/wide") || fail import "import failed"
"$CASFS" mount "$mnt" --background 2>"$TMP/daemon.log" || { fail mount "$(cat "$TMP/daemon.log")"; exit 0; }

# what casfs shows for a source entry: dirs 0555, files 0444/0555, links 0777
listing() { # DIR
	(cd "$1" && find . -printf '%P|%y|%s|%l|%m\n' | LC_ALL=C sort)
}
expected() { # SRC
	(cd "$1" && find . -printf '%P|%y|%s|%l|%m\n' | LC_ALL=C sort) | awk -F'|' -v OFS='|' '{
		if ($2 == "d") { $3 = 0; $5 = 555 }
		else if ($2 == "l") { $5 = 777 }
		else { $5 = (index("1357", substr($5, 1, 1)) ? 555 : 444) }
		print }'
}

for t in deep wide; do
	src="$TMP/$t"
	m="$mnt/${!t#/nix/store/}"
	if [ "$(listing "$m")" = "$(expected "$src")" ]; then pass "$t-listing"; else
		fail "$t-listing" "$(diff <(listing "$m") <(expected "$src") | head -5)"
	fi
	a=$(tar -C "$src" --sort=name --mtime=@1 --owner=0 --group=0 --numeric-owner --mode=a-w -cf - . | sha256sum)
	b=$(tar -C "$m" --sort=name --mtime=@1 --owner=0 --group=0 --numeric-owner --mode=a-w -cf - . | sha256sum)
	check_eq "$t-tar" "$b" "$a"
	diff -r "$src" "$m" >/dev/null 2>&1 && pass "$t-diff" || fail "$t-diff" "diff -r differs"
done

# cd 250 levels down and back: the kernel walks lookups all the way
sub=$(cd "$TMP/deep" && find . -name bottom -printf '%h')
m="$mnt/${deep#/nix/store/}"
got=$(cd "$m/$sub" && pwd -P && cat bottom)
check_eq deep-cd-pwd "$got" "$(printf '%s\ndeep' "$m/${sub#./}")"
check_eq wide-count "$(ls -f "$mnt/${wide#/nix/store/}" | wc -l)" "$((50000 + 2))"

fusermount3 -u "$mnt" && pass unmount || fail unmount "fusermount3 -u failed"
grep -E "ERROR|Sanitizer|runtime error" "$TMP/daemon.log" && fail daemon-log "$(head -3 "$TMP/daemon.log")" || pass daemon-log
exit 0
