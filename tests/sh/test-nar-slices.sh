#!/bin/bash
# casfs nar of a blob of several export slices (8 MiB, checked on worker
# threads and written in order): the NAR equals nix-store --dump's, and a
# byte flipped in the blob file stops the output before the slice holding
# it, after all slices before it (the header may still sit in the NAR
# writer's buffer when slice 0 is bad), every byte written good, with the
# digest and the damaged group's offset in the error.
#
# tests/run.sh runs it once more with a ThreadSanitizer casfs
# (CASFS_SANITIZED=tsan): any race report fails it.
. "$(dirname "$0")/lib/common.sh"

if [ "${CASFS_SANITIZED:-}" = tsan ]; then
	# TSan's fixed layout leaves no room for the store's LMDB map about
	# one run in three unless address randomisation is off
	casfs() { setarch "$(uname -m)" -R "$CASFS" "$@" 2> >(tee -a "$TMP/tsan.log" >&2); }
else
	casfs() { "$CASFS" "$@"; }
fi

MiB=$((1024 * 1024))
SLICE=$((8 * MiB))
GROUP=65536
size=$((5 * SLICE + 12345))
mkdir "$TMP/src"
f="$TMP/src/big"
python3 - "$f" "$size" <<'PY'
import random, sys
random.seed(8)
with open(sys.argv[1], "wb") as fh:
    fh.write(random.randbytes(int(sys.argv[2])))
PY
p=$(casfs import "$f" 2>"$TMP/err") || fail import "$(cat "$TMP/err")"
casfs nar "$p" >"$TMP/good.nar" 2>"$TMP/err" || fail nar "$(cat "$TMP/err")"
if command -v nix-store >/dev/null; then
	nixstore --dump "$f" >"$TMP/nix.nar"
	cmp -s "$TMP/good.nar" "$TMP/nix.nar" && pass nar-equals-nix-store-dump ||
		fail nar-equals-nix-store-dump "NARs differ"
else
	skip nar-equals-nix-store-dump "nix-store is not installed"
fi
# the content starts after the header; the padding and ")" follow it
header=$(($(stat -c %s "$TMP/good.nar") - size - (8 - size % 8) % 8 - 16))
check_eq nar-content-is-file "$(tail -c +$((header + 1)) "$TMP/good.nar" | head -c "$size" | cmp - "$f" && echo same)" same

blob=$(find "$CASFS_STORE/blobs" -type f -size "${size}c")
if [ "$(echo "$blob" | wc -l)" != 1 ] || [ -z "$blob" ]; then
	fail find-blob "no single blob file of $size bytes"
	exit 0
fi
flip() { # OFFSET: flip one byte of the blob file
	python3 - "$blob" "$1" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
off = int(sys.argv[2])
b = os.pread(fd, 1, off)
os.pwrite(fd, bytes([b[0] ^ 0x40]), off)
os.close(fd)
PY
}
chmod u+w "$blob"
# damage: in the first byte, inside slice 2, at a slice boundary, the last byte
for at in 0 $((2 * SLICE + 5 * GROUP + 7)) $((3 * SLICE)) $((3 * SLICE - 1)) $((size - 1)); do
	flip "$at"
	casfs nar "$p" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	slice_start=$((at / SLICE * SLICE))
	group_start=$((at / GROUP * GROUP))
	max_len=$((header + slice_start))
	got_len=$(stat -c %s "$TMP/out")
	if [ "$rc" -eq 1 ] && [ "$got_len" -le "$max_len" ] && [ "$got_len" -ge "$slice_start" ] &&
		cmp -s "$TMP/out" <(head -c "$got_len" "$TMP/good.nar") &&
		grep -q "blob b3:.* at offset $group_start " "$TMP/err"; then
		pass "nar-stops-before-damage-at-$at"
	else
		fail "nar-stops-before-damage-at-$at" "rc $rc, $got_len bytes (want $slice_start..$max_len): $(head -1 "$TMP/err")"
	fi
	flip "$at" # repaired
done
casfs nar "$p" 2>"$TMP/err" | cmp -s - "$TMP/good.nar" && pass nar-after-repair ||
	fail nar-after-repair "$(cat "$TMP/err")"
if [ "${CASFS_SANITIZED:-}" = tsan ]; then
	grep -q "WARNING: ThreadSanitizer" "$TMP/tsan.log" &&
		fail tsan-nar-slices "$(grep -A6 "WARNING: ThreadSanitizer" "$TMP/tsan.log" | head -20)" ||
		pass tsan-nar-slices
fi
exit 0
