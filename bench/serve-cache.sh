#!/bin/bash
# casfs serve-cache vs `python3 -m http.server` over the binary cache
# `nix copy --to file://…?compression=none` wrote for the same closure
# (both signed with the same key: Nix wrote the Sig lines, casfs signs on
# the fly).  One run each, keep-alive clients (curl processes given many
# URLs each; http.server answers HTTP/1.0 and closes, which is what it is):
#
#   narinfo  BENCH_CLIENTS curl processes x BENCH_NARINFO requests
#            spread over the closure's narinfos              -> requests/s
#   NAR      BENCH_CLIENTS curl processes x BENCH_NAR_REPS downloads of the
#            largest NAR (a BENCH_NAR_MB MiB file plus small ones) -> MB/s
#
# Prints rows `name unit python casfs ratio` and whether the targets
# (narinfo >= 5x, NAR >= 1x) are met.  CASFS: the binary (default build/casfs).
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
: "${CASFS:=$TOP/build/casfs}"
: "${BENCH_CLIENTS:=4}" "${BENCH_NARINFO:=5000}" "${BENCH_NAR_MB:=64}" "${BENCH_NAR_REPS:=4}"
D=$(mktemp -d /tmp/casfs-bench-serve.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$D"
}
trap cleanup EXIT
export XDG_CACHE_HOME="$D/xdg" NIX_CONFIG=
NIXOPTS=(--option build-users-group '' --option substituters '')
NIX=(nix --extra-experimental-features nix-command "${NIXOPTS[@]}")
die() { echo "bench-serve: $*" >&2; exit 1; }

# The closure: a tree with one big file and 300 small ones, a path
# referring to it, and a text file.
mkdir -p "$D/tree/small"
head -c $((BENCH_NAR_MB << 20)) /dev/urandom >"$D/tree/big.bin"
for i in $(seq 300); do head -c $((i * 37)) /dev/urandom >"$D/tree/small/f$i"; done
P1=$(nix-store "${NIXOPTS[@]}" --add "$D/tree" 2>/dev/null) || die "nix-store --add failed"
cat >"$D/drv.nix" <<EOF
derivation {
  name = "bench-withref"; system = builtins.currentSystem; builder = "/bin/sh";
  args = [ "-c" "echo \${builtins.storePath "$P1"} \${builtins.toFile "note" "a note"} > \$out" ];
}
EOF
P2=$(nix-build "${NIXOPTS[@]}" --option sandbox false --no-out-link "$D/drv.nix" 2>/dev/null) || die "nix-build failed"
"${NIX[@]}" key generate-secret --key-name bench-1 >"$D/key.sec" 2>/dev/null || die "nix key generate-secret failed"
"${NIX[@]}" copy --to "file://$D/fc?compression=none&secret-key=$D/key.sec" "$P2" 2>/dev/null ||
	die "nix copy --to file:// failed"

wait_url() { # url: until it answers 200, at most 10 s
	for _ in $(seq 200); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ] && return 0
		sleep 0.05
	done
	die "$1 did not come up"
}

# python3 -m http.server on a free port
PYPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$D/fc" "$PYPORT" >/dev/null 2>&1 &
PIDS+=($!)
PYURL="http://127.0.0.1:$PYPORT"
wait_url "$PYURL/nix-cache-info"

# casfs: fill its store through its own upload route, then serve signed
"$CASFS" --store "$D/store" serve-cache --listen 127.0.0.1:0 --allow-upload >"$D/up.url" 2>"$D/up.log" &
PIDS+=($!)
for _ in $(seq 200); do [ -s "$D/up.url" ] && break; sleep 0.05; done
"${NIX[@]}" copy --to "$(cat "$D/up.url")?compression=none" "$P2" 2>"$D/out" || die "upload: $(tail -2 "$D/out")"
"$CASFS" --store "$D/store" serve-cache --listen 127.0.0.1:0 --sign-key "$D/key.sec" >"$D/rd.url" 2>"$D/rd.log" &
PIDS+=($!)
for _ in $(seq 200); do [ -s "$D/rd.url" ] && break; sleep 0.05; done
CAURL=$(cat "$D/rd.url")
wait_url "$CAURL/nix-cache-info"

HASHES=$(nix-store "${NIXOPTS[@]}" -qR "$P2" 2>/dev/null | cut -c12-43)
BIGH=${P1:11:32}
now() { date +%s.%N; }

# run_clients CONFIG_PREFIX: BENCH_CLIENTS curls, one config file each; seconds
run_clients() {
	local t0 t1 i
	t0=$(now)
	for i in $(seq "$BENCH_CLIENTS"); do curl -s -K "$1.$i" >/dev/null & done
	wait $(jobs -p | grep -v -x -F "$(printf '%s\n' "${PIDS[@]}")") 2>/dev/null
	t1=$(now)
	echo "$t1 - $t0" | bc -l
}

narinfo_rate() { # base url -> requests/s
	local i k
	for i in $(seq "$BENCH_CLIENTS"); do
		: >"$D/ni.$i"
		k=0
		while [ $k -lt "$BENCH_NARINFO" ]; do
			for h in $HASHES; do
				echo "url = \"$1/$h.narinfo\"" >>"$D/ni.$i"
				echo 'output = "/dev/null"' >>"$D/ni.$i"
				k=$((k + 1))
			done
		done
	done
	local s
	s=$(run_clients "$D/ni")
	echo "$BENCH_CLIENTS * $k / $s" | bc -l
}

nar_rate() { # base url -> MB/s
	local url="$1/$(curl -s "$1/$BIGH.narinfo" | sed -n 's/^URL: //p')" i
	local size
	size=$(curl -s -o /dev/null -w '%{size_download}' "$url")
	for i in $(seq "$BENCH_CLIENTS"); do
		: >"$D/nar.$i"
		for _ in $(seq "$BENCH_NAR_REPS"); do
			echo "url = \"$url\"" >>"$D/nar.$i"
			echo 'output = "/dev/null"' >>"$D/nar.$i"
		done
	done
	local s
	s=$(run_clients "$D/nar")
	echo "$BENCH_CLIENTS * $BENCH_NAR_REPS * $size / $s / 1000000" | bc -l
}

# the two must serve the same NAR
cmp -s <(curl -s "$PYURL/$(curl -s "$PYURL/$BIGH.narinfo" | sed -n 's/^URL: //p')") \
	<(curl -s "$CAURL/$(curl -s "$CAURL/$BIGH.narinfo" | sed -n 's/^URL: //p')") ||
	die "the two servers serve different NARs"

py_ni=$(narinfo_rate "$PYURL")
ca_ni=$(narinfo_rate "$CAURL")
py_nar=$(nar_rate "$PYURL")
ca_nar=$(nar_rate "$CAURL")

printf '%-10s %-8s %10s %10s %7s\n' name unit python casfs ratio
row() { printf '%-10s %-8s %10.0f %10.0f %7.2f\n' "$1" "$2" "$3" "$4" "$(echo "$4 / $3" | bc -l)"; }
row narinfo req/s "$py_ni" "$ca_ni"
row nar MB/s "$py_nar" "$ca_nar"
verdict() { if [ "$(echo "$2 >= $3" | bc -l)" = 1 ]; then echo "met"; else echo "NOT met"; fi; }
echo "target narinfo >= 5x: $(verdict narinfo "$(echo "$ca_ni / $py_ni" | bc -l)" 5)"
echo "target nar >= 1x: $(verdict nar "$(echo "$ca_nar / $py_nar" | bc -l)" 1)"
echo "($BENCH_CLIENTS clients; narinfo: $BENCH_NARINFO requests each over $(echo $HASHES | wc -w) paths; NAR: ${BENCH_NAR_MB} MiB + 300 small files, $BENCH_NAR_REPS downloads each; $(nproc) cores)"
