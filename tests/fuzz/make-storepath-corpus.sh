#!/bin/sh
# Regenerate the seed corpus of fuzz-storepath: a few valid store paths
# (basenames, absolute, with a sub path) and one of each rejection.
set -eu
out=$(cd "$(dirname "$0")" && pwd)/corpus/storepath
rm -rf "$out"
mkdir -p "$out"
h=00bgd045z0d4icpbc2yyz4gx48ak44la
nt=$h-net-tools-1.60_p20170221182432
w() { printf '%s' "$2" >"$out/$1"; }
w base "$nt"
w abs "/nix/store/$nt"
w abs-sub "/nix/store/$nt/bin/arp"
w abs-slash "/nix/store/$nt/"
w punct "$h-+-._?=AZaz09"
w name-211 "$h-$(head -c 211 /dev/zero | tr '\0' a)"
w name-212 "$h-$(head -c 212 /dev/zero | tr '\0' a)"
w empty-name "$h-"
w dot "$h-.gitignore"
w bad-char "$h-a b"
w bad-hash-u "00bgd045z0d4icpbc2yyz4gx48aku4la-net-tools"
w short-hash "00bgd045z0d4icpbc2yy-net-tools"
w no-dash "${h}net-tools"
w not-store "/nix/stor/$nt"
w store-dir "/nix/store/"
printf '%s-a\000b' "$h" >"$out/nul-in-name"
printf '%s-\303\251' "$h" >"$out/utf8-name"
