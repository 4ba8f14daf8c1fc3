#!/bin/sh
# Regenerate the seed corpus of fuzz-nar from small trees dumped by real
# Nix (`nix-store --dump`): one NAR per tree shape.  Run from anywhere.
set -eu
out=$(cd "$(dirname "$0")" && pwd)/corpus/nar
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -f "$out"/*.nar
mkdir -p "$out"

t=$tmp/t
mkdir "$t"
printf 'hello\n' >"$t/file"
printf '#!/bin/sh\necho hi\n' >"$t/exec"; chmod 755 "$t/exec"
: >"$t/empty"
printf '12345678' >"$t/eight"
ln -s file "$t/symlink"
ln -s /a/much/longer/target/with/several/parts "$t/abs-symlink"
mkdir -p "$t/dir/sub/subsub" "$t/empty-dir"
printf 'x' >"$t/dir/a"
printf 'yy' >"$t/dir/B"
printf 'zzz' >"$t/dir/a.b"
ln -s ../a "$t/dir/sub/up"
printf 'deep' >"$t/dir/sub/subsub/f"
head -c 300 /dev/zero | tr '\0' 'q' >"$t/dir/sub/big"

for p in file exec empty eight symlink abs-symlink empty-dir dir dir/sub; do
	nix-store --dump "$t/$p" >"$out/$(echo "$p" | tr / _).nar"
done
nix-store --dump "$t" >"$out/all.nar"
echo "wrote $(ls "$out" | wc -l) files to $out"
