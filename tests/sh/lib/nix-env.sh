# Real Nix for a test, as root and offline.  Source after common.sh with
# TEST set to the prefix of the test's result names.  Sets
#   XDG_CACHE_HOME  the test's own (Nix caches narinfo answers there)
#   NIXOPTS         no build users, no substituters
#   NIXCMD          `nix` with nix-command and NIXOPTS
#   step NAME CMD...  run CMD into $TMP/out; on failure FAIL TEST/NAME
#                     with the end of its output, and stop the test
export XDG_CACHE_HOME="$TMP/xdg-cache"
export NIX_CONFIG=
NIXOPTS=(--option build-users-group '' --option substituters '')
NIXCMD=(nix --extra-experimental-features nix-command "${NIXOPTS[@]}")
step_failed() {
	fail "$TEST/$1" "$(tail -5 "$TMP/out" | tr '\n' ' ')"
	exit 1
}
step() {
	local name=$1
	shift
	"$@" >"$TMP/out" 2>&1 || step_failed "$name"
}
