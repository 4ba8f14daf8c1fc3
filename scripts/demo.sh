#!/bin/sh
# The main job on the embedded default store: import a real tree, show its
# store path and path-info, export its NAR and compare with Nix; then mount
# the store, run a program out of it and unmount.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
casfs="$top/build/casfs"
tree=${1:-/usr/share/zoneinfo}
nix_store() { nix-store --option build-users-group "" "$@"; }

store=${CASFS_STORE:-${XDG_DATA_HOME:-$HOME/.local/share}/casfs}
echo "== store: $store (the embedded default)"
echo "== casfs import $tree"
path=$("$casfs" import "$tree")
echo "$path"
nixpath=$(nix_store --add "$tree")
echo "== nix-store --add $tree"
echo "$nixpath"
[ "$path" = "$nixpath" ] && echo "-> same store path as Nix" || { echo "-> DIFFERENT from Nix" >&2; exit 1; }

echo "== casfs path-info $path"
"$casfs" path-info "$path"

echo "== casfs nar $path  vs  nix-store --dump $tree"
a=$("$casfs" nar "$path" | sha256sum | cut -d' ' -f1)
b=$(nix_store --dump "$tree" | sha256sum | cut -d' ' -f1)
echo "casfs nar:       sha256 $a"
echo "nix-store --dump: sha256 $b"
[ "$a" = "$b" ] && echo "-> byte-identical NARs" || { echo "-> NARs DIFFER" >&2; exit 1; }

if "$casfs" mount --help >/dev/null 2>&1 && [ -e /dev/fuse ]; then
	bindir=$(mktemp -d)
	mnt=$(mktemp -d)
	trap 'fusermount3 -u "$mnt" 2>/dev/null || true; rmdir "$mnt" 2>/dev/null || true; rm -rf "$bindir"' EXIT
	mkdir "$bindir/casfs-demo-bin"
	cp "$casfs" "$bindir/casfs-demo-bin/casfs"
	printf '#!/bin/sh\necho "hello from a program running out of a casfs mount: $0"\n' >"$bindir/casfs-demo-bin/hello"
	chmod +x "$bindir/casfs-demo-bin/hello"
	bin=$("$casfs" import "$bindir/casfs-demo-bin")
	echo "== casfs mount $mnt --background"
	"$casfs" mount "$mnt" --background
	base=${bin#/nix/store/}
	echo "== ls -l $mnt/$base"
	ls -l "$mnt/$base"
	echo "== run $mnt/$base/hello"
	"$mnt/$base/hello"
	echo "== $mnt/$base/casfs --help | head -3"
	"$mnt/$base/casfs" --help | head -3
	echo "== $(ls "$mnt/${path#/nix/store/}" | wc -l) entries in $mnt/${path#/nix/store/}; Europe/Paris is $(wc -c <"$mnt/${path#/nix/store/}/Europe/Paris") bytes"
	echo "== unmount"
	fusermount3 -u "$mnt"
fi
echo "== demo done"
