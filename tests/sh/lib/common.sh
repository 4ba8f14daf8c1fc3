# Shared helpers for the shell tests.  Source it; it sets:
#   CASFS    the casfs binary (from tests/run.sh, or build/casfs)
#   TMP      a private temp dir, removed on exit
#   pass NAME / fail NAME WHY / skip NAME WHY   print result lines
#   check_eq NAME GOT WANT                      compare two strings
#   nixstore ARGS...                             nix-store as root, no build users
# A test file may define cleanup_hook; it runs on exit before TMP is removed.
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
: "${CASFS:=$TOP/build/casfs}"
TMP=$(mktemp -d /tmp/casfs-test.XXXXXX)
export CASFS_STORE="$TMP/store"
FAILED=0

cleanup_hook() { :; }
on_exit() {
	cleanup_hook
	rm -rf "$TMP" 2>/dev/null || { chmod -R u+rwx "$TMP" 2>/dev/null; rm -rf "$TMP"; }
}
trap on_exit EXIT
trap 'exit 130' INT TERM

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; FAILED=1; }
skip() { echo "SKIP $1: $2"; }
check_eq() {
	if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "got '$2', want '$3'"; fi
}
nixstore() { nix-store --option build-users-group "" "$@"; }
nixcmd() { nix --extra-experimental-features nix-command --option build-users-group "" "$@"; }
