#!/bin/bash
# The nix: substituter (src/store/nix-store.c) against real Nix 2.8.
#
# Paths are built in this machine's Nix store (unsandboxed, offline: works
# in a plain chroot): a tree with every awkward case (nix-store --add), a
# builtins.toFile text, and an input-addressed directory output with a
# deriver that refers to both and to itself.  The closure is copied to a
# chroot store (nix copy --to ROOT) and signed there by two keys.  Then:
#   - test-nix-store's oracle compares query (references, narHash,
#     narSize, deriver, signatures, ca) with `nix path-info --json` and the
#     NAR of what fetch ingested with `nix-store --dump`, for nix: and for
#     nix:ROOT, and once more as an unprivileged user (who cannot create
#     the database's -shm file);
#   - casfs copy --from nix:ROOT and --from nix: take the closure into a
#     casfs store, whose NARs equal nix-store --dump;
#   - a path absent from the database, a damaged database value and a
#     store file changed after registration are one-line errors naming the
#     path, and nothing of them is registered;
#   - the chroot database file is not written.
. "$(dirname "$0")/lib/common.sh"

UNIT=$(dirname "$CASFS")/tests/test-nix-store
if ! command -v nix >/dev/null || ! command -v nix-build >/dev/null; then
	skip nix-substituter "nix is not installed"
	exit 0
fi
if [ ! -x "$UNIT" ]; then
	fail nix-substituter "no unit binary $UNIT (build it first)"
	exit 1
fi

TEST=nix-substituter
. "$TOP/tests/sh/lib/nix-env.sh"

# ---- the paths ---------------------------------------------------------------
python3 "$TOP/tests/sh/lib/make-tree.py" tricky "$TMP/tree" >/dev/null
step add nix-store "${NIXOPTS[@]}" --add "$TMP/tree"
P_TREE=$(tail -1 "$TMP/out")
nonce="$RANDOM$$$(date +%s%N)"
cat >"$TMP/drv.nix" <<EOF
derivation {
  name = "casfs-nixsub";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  PATH = "/usr/bin:/bin";
  args = [ "-c" ''
    mkdir -p \$out/bin
    echo \${builtins.storePath "$P_TREE"} \${builtins.toFile "casfs-note" "a note $nonce"} > \$out/refs
    echo \$out > \$out/self
    printf '#!/bin/sh\necho hi\n' > \$out/bin/run
    chmod +x \$out/bin/run
    ln -s ../refs \$out/bin/refs
  '' ];
}
EOF
step build nix-build "${NIXOPTS[@]}" --option sandbox false --no-out-link "$TMP/drv.nix"
P_OUT=$(tail -1 "$TMP/out")
case "$P_OUT" in
/nix/store/*-casfs-nixsub) pass nix-substituter/build ;;
*) fail nix-substituter/build "nix-build printed '$P_OUT'"; exit 1 ;;
esac

ROOT=$TMP/root
step copy-chroot "${NIXCMD[@]}" copy --no-check-sigs --to "$ROOT" "$P_OUT"
for k in 1 0; do
	step "keygen$k" "${NIXCMD[@]}" key generate-secret --key-name "casfs-nixsub-$k"
	cp "$TMP/out" "$TMP/key$k.sec"
	step "sign$k" "${NIXCMD[@]}" store sign --store "$ROOT" --key-file "$TMP/key$k.sec" -r "$P_OUT"
done
DB=$ROOT/nix/var/nix/db/db.sqlite

# ---- query and fetch against nix path-info --json and nix-store --dump ----------
# expect ROOT_LABEL STORE_ARGS...: one oracle line per closure path
expect() {
	local label=$1
	shift
	"${NIXCMD[@]}" path-info --json -r "$@" "$P_OUT" >"$TMP/info.json" 2>"$TMP/out" ||
		step_failed "path-info-$label"
	python3 - "$label" "$TMP/info.json" "$TMP/dumps" <<'PY' || step_failed "expect-$label"
import json, os, sys
label, info, dumps = sys.argv[1:]
for p in json.load(open(info)):
    dump = os.path.join(dumps, os.path.basename(p["path"]))
    fields = [label, p["path"], p["narHash"], str(p["narSize"]), p.get("deriver", ""),
              " ".join(sorted(p.get("references", []))), " ".join(sorted(p.get("signatures", []))),
              p.get("ca", ""), dump]
    print("\t".join(fields))
PY
}
mkdir -p "$TMP/dumps"
for p in $(nix-store -qR "$P_OUT"); do
	nix-store --dump "$p" >"$TMP/dumps/$(basename "$p")" || step_failed dump
done
{ expect "$ROOT" --store "$ROOT"; expect / ; } >"$TMP/oracle"
n=$(wc -l <"$TMP/oracle")
check_eq nix-substituter/closure-size "$n" 6
grep -q "	casfs-nixsub-0:.* casfs-nixsub-1:" "$TMP/oracle" ||
	fail nix-substituter/oracle-sigs "the chroot store's paths have no two signatures"
grep -q "	text:sha256:" "$TMP/oracle" || fail nix-substituter/oracle-text-ca "no text: CA path"
grep -q "	/nix/store/[^	]*\.drv	" "$TMP/oracle" || fail nix-substituter/oracle-deriver "no deriver"

# (the chroot one only: other tests may use this machine's Nix meanwhile)
db_sums() { sha256sum "$DB" | cut -d' ' -f1; }
sums_before=$(db_sums)

run_oracle() { # name [command prefix...]
	local name=$1
	shift
	out=$("$@" env CASFS_NIX_STORE_ORACLE="$TMP/oracle" "$UNIT" oracle 2>&1)
	rc=$?
	echo "$out" | sed 's/^/    /'
	if [ $rc -eq 0 ] && echo "$out" | grep -q '^PASS .*oracle' && ! echo "$out" | grep -q '^FAIL\|^SKIP'; then
		pass "nix-substituter/$name"
	else
		fail "nix-substituter/$name" "test-nix-store oracle exited $rc"
	fi
}
# First as nobody, while no process has the chroot database open (Nix
# removes the -wal and -shm files as it closes it): SQLite's read-only
# mode cannot create them then, so the substituter reads it immutable.
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
if ! command -v setpriv >/dev/null || [ "$(id -u)" != 0 ]; then
	skip nix-substituter/oracle-unprivileged "needs root and setpriv"
elif ! as_nobody test -x "$UNIT"; then
	# (a checkout below a directory only root may enter, as /root)
	skip nix-substituter/oracle-unprivileged "nobody cannot run $UNIT here"
else
	[ -e "$DB-wal" ] && skip nix-substituter/oracle-immutable "$DB-wal exists: not the immutable case"
	chmod 755 "$TMP"
	chmod -R a+rX "$TMP/oracle" "$TMP/dumps"
	run_oracle oracle-unprivileged setpriv --reuid=65534 --regid=65534 --clear-groups
	chmod 700 "$TMP"
fi
run_oracle oracle

# ---- casfs copy --from nix: ------------------------------------------------------
compare_nars() { # name store
	local bad=0
	for p in $(nix-store -qR "$P_OUT"); do
		if ! "$CASFS" --store "$2" nar "$p" 2>"$TMP/err" | cmp -s - "$TMP/dumps/$(basename "$p")"; then
			fail "nix-substituter/$1" "casfs nar $p differs from nix-store --dump: $(head -1 "$TMP/err")"
			bad=1
		fi
	done
	[ $bad = 0 ] && pass "nix-substituter/$1"
}
if "$CASFS" --store "$TMP/cs-root" copy --from "nix:$ROOT" "$P_OUT" >"$TMP/out" 2>&1; then
	compare_nars copy-chroot "$TMP/cs-root"
	refs=$("$CASFS" --store "$TMP/cs-root" path-info --json "$P_OUT" 2>/dev/null |
		python3 -c 'import json,sys; print(" ".join(sorted(json.load(sys.stdin)[0]["references"])))')
	check_eq nix-substituter/copy-chroot-references "$refs" \
		"$(nix-store -q --references "$P_OUT" | sort | tr '\n' ' ' | sed 's/ $//')"
else
	fail nix-substituter/copy-chroot "$(tail -3 "$TMP/out" | tr '\n' ' ')"
fi
if "$CASFS" --store "$TMP/cs-real" copy --from nix: "$P_OUT" >"$TMP/out" 2>&1; then
	compare_nars copy-real "$TMP/cs-real"
else
	fail nix-substituter/copy-real "$(tail -3 "$TMP/out" | tr '\n' ' ')"
fi

# ---- errors ----------------------------------------------------------------------
# expect_error NAME STORE PATTERN PATH: copy fails, exit 1, one line matching PATTERN
expect_error() {
	"$CASFS" --store "$2" copy --from "nix:$ROOT" "$4" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	if [ $rc -ne 1 ] || ! grep -q -- "$3" "$TMP/err" || [ "$(wc -l <"$TMP/err")" -ne 1 ]; then
		fail "nix-substituter/$1" "exit $rc: $(tr '\n' ' ' <"$TMP/err")"
	else
		pass "nix-substituter/$1"
		sed 's/^/    /' "$TMP/err"
	fi
	if "$CASFS" --store "$2" path-info "$4" >/dev/null 2>&1; then
		fail "nix-substituter/$1-registered" "$4 was registered all the same"
	fi
}
absent=/nix/store/00000000000000000000000000000000-absent
expect_error absent "$TMP/cs-err" "${absent:0:43} is not in the Nix store at $ROOT" "$absent"

sums_after=$(db_sums)
check_eq nix-substituter/databases-unwritten "$sums_after" "$sums_before"

# a store file changed after registration (Nix keeps the store read-only)
f=$(find "$ROOT$P_TREE" -type f -size +0 | head -1)
chmod u+w "$f" "$(dirname "$f")"
printf 'changed' >>"$f"
expect_error tampered "$TMP/cs-err" "hash mismatch importing '$P_TREE'" "$P_TREE"

# a damaged database value
python3 - "$DB" "$P_OUT" <<'PY' || fail nix-substituter/damage "cannot write the chroot database"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("update ValidPaths set hash = 'sha256:not-a-hash' where path = ?", (sys.argv[2],))
db.commit()
db.close()
PY
expect_error damaged-db "$TMP/cs-err" "'$P_OUT': hash 'sha256:not-a-hash'" "$P_OUT"

exit 0
