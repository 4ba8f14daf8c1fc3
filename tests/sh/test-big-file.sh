#!/bin/bash
# A file over 4 GiB (sparse): import, NAR and path-info against an
# independent computation of the NAR (header + content + padding + trailer
# hashed by sha256sum), and import memory independent of the file size.
. "$(dirname "$0")/lib/common.sh"

f="$TMP/big"
truncate -s $((4 * 1024 * 1024 * 1024 + 3)) "$f"
printf 'tail' | dd of="$f" bs=1 seek=$((4 * 1024 * 1024 * 1024 - 1)) conv=notrunc status=none

# NAR of a single regular file, built by hand
nar_str() { # string -> NAR string encoding
	python3 -c 'import sys,struct; s=sys.argv[1].encode(); sys.stdout.buffer.write(struct.pack("<Q",len(s))+s+b"\0"*((8-len(s)%8)%8))' "$1"
}
size=$(stat -c %s "$f")
{
	for t in nix-archive-1 "(" type regular contents; do nar_str "$t"; done
	python3 -c 'import sys,struct; sys.stdout.buffer.write(struct.pack("<Q",int(sys.argv[1])))' "$size"
	cat "$f"
	head -c $(((8 - size % 8) % 8)) /dev/zero
	nar_str ")"
} | sha256sum | cut -d' ' -f1 >"$TMP/want.hex"
want_hex=$(cat "$TMP/want.hex")
want_sri="sha256-$(echo "$want_hex" | xxd -r -p | base64 -w0)"
want_path=$(python3 - "$want_hex" <<'PY'
import hashlib, sys
h = hashlib.sha256(("source:sha256:%s:/nix/store:big" % sys.argv[1]).encode()).digest()
d = bytearray(20)
for i, b in enumerate(h):
    d[i % 20] ^= b
alpha = "0123456789abcdfghijklmnpqrsvwxyz"
out = ""
for n in range(31, -1, -1):
    b = n * 5
    i, j = b // 8, b % 8
    c = d[i] >> j
    if i + 1 < 20:
        c |= d[i + 1] << (8 - j)
    out += alpha[c & 31]
print("/nix/store/" + out + "-big")
PY
)
/usr/bin/time -f '%M' -o "$TMP/rss" "$CASFS" import "$f" >"$TMP/path" 2>"$TMP/err"
check_eq big-import-path "$(cat "$TMP/path")" "$want_path"
rss_kib=$(tail -1 "$TMP/rss")
echo "import peak RSS: $rss_kib KiB"
if [ -n "${CASFS_SANITIZED:-}" ]; then
	skip big-import-rss "sanitizer runtimes own the memory figures"
elif [ "$rss_kib" -lt 65536 ]; then
	pass big-import-rss
else
	fail big-import-rss "$rss_kib KiB >= 64 MiB"
fi
case "$("$CASFS" path-info --json "$want_path")" in
*"\"narHash\":\"$want_sri\",\"narSize\":$((size + (8 - size % 8) % 8 + 112))"*) pass big-path-info ;;
*) fail big-path-info "$("$CASFS" path-info --json "$want_path")" ;;
esac
got=$("$CASFS" nar "$want_path" | sha256sum | cut -d' ' -f1)
check_eq big-nar "$got" "$want_hex"
exit 0
