#!/bin/bash
# A file over 4 GiB through the mount: a sparse 4 GiB + 5 bytes file with
# data at the start, across the 4 GiB boundary and at the end, imported
# and mounted; size, stat, bytes at those offsets and the SHA-256 of the
# whole file must match the source (offsets and sizes past 32 bits).
# Needs about 4 GiB of disk for the store's copy.
. "$(dirname "$0")/lib/common.sh"

M=$TMP/mnt
cleanup_hook() {
	if mountpoint -q "$M" 2>/dev/null || ! stat "$M" >/dev/null 2>&1; then
		fusermount3 -u "$M" 2>/dev/null || fusermount3 -uz "$M" 2>/dev/null
	fi
}

if [ ! -e /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
	skip mount-bigfile "no /dev/fuse or fusermount3"
	exit 0
fi

G4=$((4 * 1024 * 1024 * 1024))
f=$TMP/big
truncate -s $((G4 + 5)) "$f"
printf 'head' | dd of="$f" conv=notrunc status=none
printf 'acrotail!' | dd of="$f" bs=1 seek=$((G4 - 4)) conv=notrunc status=none
SP=$("$CASFS" import "$f" 2>"$TMP/import.err")
if [ -z "$SP" ]; then
	fail setup "casfs import failed: $(head -2 "$TMP/import.err")"
	exit 1
fi

mkdir -p "$M"
if ! "$CASFS" mount "$M" --background 2>"$TMP/daemon.log"; then
	fail mount "$(tail -2 "$TMP/daemon.log")"
	exit 1
fi
P=$M/${SP#/nix/store/}

check_eq stat "$(stat -c '%s %b %F %a %h' "$P")" "$((G4 + 5)) $(((G4 + 5 + 511) / 512)) regular file 444 1"
# The daemon (as root) widened the mount's readahead window to 512 KiB.
if [ "$(id -u)" -eq 0 ]; then
	check_eq readahead-kb "$(cat "/sys/class/bdi/$(mountpoint -d "$M")/read_ahead_kb")" 512
fi
check_eq tail-bytes "$(tail -c 9 "$P" | od -An -c | tr -s ' ')" "$(tail -c 9 "$f" | od -An -c | tr -s ' ')"
check_eq tail-text "$(tail -c 9 "$P")" "acrotail!"

# Positioned reads around the boundaries, through the mount and from the source.
preads() {
	python3 - "$1" "$G4" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
g4 = int(sys.argv[2])
for off, n in ((0, 8), (g4 - 6, 12), (g4 - 1, 100), (g4 + 4, 10), (g4 + 5, 10), (g4 + 100, 1)):
    print(off, os.pread(fd, n, off).hex())
EOF
}
check_eq preads "$(preads "$P")" "$(preads "$f")"

# openssl: three times sha256sum's speed here; both files at once.
sha256() { openssl dgst -sha256 -r <"$1" | cut -d' ' -f1 >"$2"; }
sha256 "$f" "$TMP/want.sha" &
sha256 "$P" "$TMP/got.sha"
wait $!
check_eq sha256 "$(cat "$TMP/got.sha")" "$(cat "$TMP/want.sha")"

fusermount3 -u "$M"
bad=$(grep -E 'AddressSanitizer|LeakSanitizer|runtime error|ThreadSanitizer' "$TMP/daemon.log" | head -3)
check_eq daemon-no-sanitizer-reports "$bad" ""
exit 0
