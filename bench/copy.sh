#!/bin/bash
# Binary cache client benchmark (issue 9), one run on this machine:
#
# 1. `casfs copy --from file://…` against `nix copy --from file://…` into a
#    fresh chroot store, the same closure (a Python library tree, a Perl
#    library tree, and an input-addressed path referring to both), from
#    caches Nix itself wrote with compression xz (Nix's default) and zstd.
#    Target: casfs >= 2x faster.
# 2. A read-through mount of one big path (BENCH_BIG_MB, default 1024 MiB
#    of random bytes, compression none) served over HTTP by
#    `python3 -m http.server`: time to the first byte of the file through
#    `casfs mount --store http://…` (the path is fetched, checked and
#    ingested on lookup), and to the whole read; against `nix copy --from
#    http://…` of the same path into a fresh chroot store (Nix's first byte
#    is after its whole copy).
#
# Each figure is the median of REPS (default 3) runs, the tools taking
# turns.  Prints rows "what  unit  nix  casfs  nix/casfs".  Needs root
# (mounts, Nix as root); BENCH_DIR (default /var/tmp) needs about 3 GiB.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
casfs=${CASFS:-$top/build/casfs}
REPS=${REPS:-3}
BENCH_BIG_MB=${BENCH_BIG_MB:-1024}
[ "$(id -u)" -eq 0 ] || { echo "bench/copy.sh: run as root" >&2; exit 1; }
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/casfs-bench-copy.XXXXXX")
server=
cleanup() {
	[ -n "$server" ] && kill "$server" 2>/dev/null
	mountpoint -q "$work/mnt" 2>/dev/null && fusermount3 -u "$work/mnt"
	rm -rf "$work"
}
trap cleanup EXIT
export XDG_CACHE_HOME=$work/xdg
nixflags=(--extra-experimental-features nix-command --option build-users-group ""
	--option substituters "" --option narinfo-cache-negative-ttl 0)
now() { date +%s.%N; }
median() { tr ' ' '\n' | sort -g | sed -n "$(((REPS + 1) / 2))p"; }

nix key generate-secret "${nixflags[@]}" --key-name bench-1 >"$work/sk"
pk=$(nix key convert-secret-to-public "${nixflags[@]}" <"$work/sk")

# ---- the closure -------------------------------------------------------------
cp -r /usr/lib/python3.11 "$work/python-lib"
cp -r /usr/share/perl "$work/perl-lib"
py=$(nix-store --option build-users-group "" --add "$work/python-lib")
pl=$(nix-store --option build-users-group "" --add "$work/perl-lib")
cat >"$work/top.nix" <<NIX
derivation { name = "bench-top"; system = builtins.currentSystem; builder = "/bin/sh";
  args = [ "-c" "echo \${builtins.storePath $py} \${builtins.storePath $pl} $RANDOM$$ > \$out" ]; }
NIX
top_path=$(nix-build --option build-users-group "" --option sandbox false --option substituters "" \
	--no-out-link "$work/top.nix" 2>/dev/null)
closure_mb=$(du -smc "$py" "$pl" | tail -1 | cut -f1)

printf '%-44s %-5s %10s %10s %10s\n' what unit nix casfs nix/casfs
row() { printf '%-44s %-5s %10s %10s %10s\n' "$1" "$2" "$3" "$4" "$(echo "scale=2; $3 / $4" | bc)"; }

for m in xz zstd; do
	nix copy "${nixflags[@]}" --to "file://$work/cache-$m?compression=$m&secret-key=$work/sk" "$top_path"
	tn="" tc=""
	for i in $(seq "$REPS"); do
		rm -rf "$work/root" "$work/store"; sync
		t0=$(now)
		nix copy "${nixflags[@]}" --option trusted-public-keys "$pk" --from "file://$work/cache-$m" \
			--to "$work/root" "$top_path"
		t1=$(now)
		"$casfs" --store "$work/store" copy --from "file://$work/cache-$m" --trusted-public-keys "$pk" \
			"$top_path"
		t2=$(now)
		tn="$tn $(echo "$t1 - $t0" | bc)" tc="$tc $(echo "$t2 - $t1" | bc)"
	done
	row "copy --from file:// ($m, $closure_mb MiB closure)" s "$(echo $tn | median)" "$(echo $tc | median)"
done

# ---- a read-through mount of a big path over HTTP -----------------------------
mkdir -p "$work/big"
head -c $((BENCH_BIG_MB * 1024 * 1024)) /dev/urandom >"$work/big/data"
big=$(nix-store --option build-users-group "" --add "$work/big")
rm -rf "$work/big"
nix copy "${nixflags[@]}" --to "file://$work/http?compression=none&secret-key=$work/sk" "$big"
nix-store --option build-users-group "" --delete "$big" >/dev/null 2>&1 || true
port_file=$work/port
python3 - "$work/http" "$port_file" <<'PY' &
import functools, http.server, os, sys
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
h.func.log_message = lambda *a: None
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), h)
open(sys.argv[2] + ".tmp", "w").write(str(s.server_address[1]))
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
s.serve_forever()
PY
server=$!
for _ in $(seq 100); do [ -s "$port_file" ] && break; sleep 0.05; done
url=http://127.0.0.1:$(cat "$port_file")
mkdir -p "$work/mnt"
tn="" tf="" tw=""
for i in $(seq "$REPS"); do
	rm -rf "$work/root" "$work/cache" "$work/xdg"; sync
	t0=$(now)
	nix copy "${nixflags[@]}" --option trusted-public-keys "$pk" --from "$url" --to "$work/root" "$big"
	t1=$(now)
	"$casfs" mount "$work/mnt" --store "$url" --cache "$work/cache" --trusted-public-keys "$pk" \
		--background >/dev/null
	t2=$(now)
	head -c 1 "$work/mnt/$(basename "$big")/data" >/dev/null
	t3=$(now)
	cat "$work/mnt/$(basename "$big")/data" >/dev/null
	t4=$(now)
	fusermount3 -u "$work/mnt"
	tn="$tn $(echo "$t1 - $t0" | bc)" tf="$tf $(echo "$t3 - $t2" | bc)" tw="$tw $(echo "$t4 - $t2" | bc)"
done
n=$(echo $tn | median)
row "read-through mount, first byte ($BENCH_BIG_MB MiB)" s "$n" "$(echo $tf | median)"
row "read-through mount, whole file ($BENCH_BIG_MB MiB)" s "$n" "$(echo $tw | median)"
