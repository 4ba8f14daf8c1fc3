#!/bin/bash
# Bad input, damaged stores, crashes and concurrency: clear one-line
# errors, the right exit codes, nothing lost or half-written.
. "$(dirname "$0")/lib/common.sh"

# expect_fail NAME EXIT PATTERN CMD...: CMD exits EXIT, prints exactly one
# stderr line matching PATTERN (grep -E) and nothing on stdout.
expect_fail() {
	local name=$1 want=$2 pat=$3 rc
	shift 3
	"$@" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	if [ "$rc" -ne "$want" ]; then
		fail "$name" "exit $rc, want $want; stderr: $(head -3 "$TMP/err")"
	elif [ "$(wc -l <"$TMP/err")" -ne 1 ] && [ "$want" -ne 2 ]; then
		fail "$name" "stderr is not one line: $(head -5 "$TMP/err")"
	elif ! grep -qE -- "$pat" "$TMP/err"; then
		fail "$name" "stderr '$(head -1 "$TMP/err")' does not match '$pat'"
	elif [ -s "$TMP/out" ]; then
		fail "$name" "wrote to stdout: $(head -c 200 "$TMP/out")"
	else
		pass "$name"
	fi
}

# the number of store paths in the store, from verify's summary
n_paths() { "$CASFS" verify 2>/dev/null | sed -n 's/^checked \([0-9]*\) store paths.*/\1/p'; }

python3 "$TOP/tests/sh/lib/make-tree.py" tricky "$TMP/tree" >/dev/null
good=$("$CASFS" import "$TMP/tree")
[ -n "$good" ] && pass setup || fail setup "import failed"

# --- usage errors: exit 2 -------------------------------------------------
expect_fail usage-no-command 2 'usage' "$CASFS"
expect_fail usage-unknown-command 2 "unknown command 'frobnicate'" "$CASFS" frobnicate
expect_fail usage-unknown-option 2 "unknown option '--bogus'" "$CASFS" import --bogus x
expect_fail usage-import-no-path 2 'no PATH' "$CASFS" import
expect_fail usage-name-many 2 'exactly one PATH' "$CASFS" import --name x a b
expect_fail usage-store-no-url 2 'needs a URL' "$CASFS" import --store
for cmd in import import-nar nar path-info ls cat verify; do
	if out=$("$CASFS" "$cmd" --help 2>&1); then
		case "$out" in "usage: casfs $cmd"*) pass "help-$cmd" ;; *) fail "help-$cmd" "$out" ;; esac
	else
		fail "help-$cmd" "exit $?: $out"
	fi
done

# --- bad input: exit 1, one line naming the problem ----------------------
expect_fail missing-path 1 "$TMP/nope" "$CASFS" import "$TMP/nope"
mkdir -p "$TMP/with-socket" "$TMP/with-fifo" "$TMP/with-dev"
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$TMP/with-socket/sock"
mkfifo "$TMP/with-fifo/fifo"
mknod "$TMP/with-dev/null" c 1 3
expect_fail socket-in-tree 1 "with-socket/sock.*socket" "$CASFS" import "$TMP/with-socket"
expect_fail fifo-in-tree 1 "with-fifo/fifo.*fifo" "$CASFS" import "$TMP/with-fifo"
expect_fail device-in-tree 1 "with-dev/null.*character device" "$CASFS" import "$TMP/with-dev"
expect_fail bad-name-dot 1 "starts with '.'" "$CASFS" import --name .hidden "$TMP/tree/sub"
expect_fail bad-name-char 1 "invalid character" "$CASFS" import --name 'a/b' "$TMP/tree/sub"
expect_fail bad-default-name 1 "invalid character" "$CASFS" import "$TMP/tree/ünïcödé-名前"
expect_fail store-path-not-in-store 1 "not in the store \(/nix/store\)" "$CASFS" path-info /usr/bin
expect_fail store-path-bad-hash 1 "invalid nixbase32" "$CASFS" path-info /nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x
expect_fail store-path-short 1 "not a store path" "$CASFS" nar /nix/store/abc-x
expect_fail store-path-unknown 1 "not in the store" "$CASFS" path-info /nix/store/00000000000000000000000000000000-x
expect_fail cat-missing-sub 1 "no such file.*nothere" "$CASFS" cat "$good/nothere"
expect_fail cat-directory 1 "is a directory" "$CASFS" cat "$good/sub"
expect_fail cat-through-file 1 "not a directory" "$CASFS" cat "$good/twin/x"

# unreadable file: run as an unprivileged user (root reads everything)
if command -v setpriv >/dev/null; then
	mkdir -p "$TMP/unreadable" "$TMP/nobody-store"
	echo secret >"$TMP/unreadable/secret"
	chmod 000 "$TMP/unreadable/secret"
	chmod 755 "$TMP" "$TMP/unreadable"
	chown nobody "$TMP/nobody-store"
	expect_fail unreadable-file 1 "cannot open.*secret.*Permission denied" \
		setpriv --reuid=nobody --regid=nogroup --clear-groups "$CASFS" --store "$TMP/nobody-store" import "$TMP/unreadable"
	chmod 700 "$TMP"
else
	skip unreadable-file "no setpriv"
fi

# not a store / unknown version
mkdir -p "$TMP/notastore"
echo hello >"$TMP/notastore/file"
expect_fail not-a-store 1 "not a casfs store" "$CASFS" --store "$TMP/notastore" import "$TMP/tree/sub"
[ "$(ls "$TMP/notastore")" = file ] && pass not-a-store-untouched || fail not-a-store-untouched "$(ls "$TMP/notastore")"
cp -a "$CASFS_STORE" "$TMP/future-store"
echo "casfs-store-version 99" >"$TMP/future-store/casfs-store"
expect_fail unknown-version 1 "version" "$CASFS" --store "$TMP/future-store" path-info "$good"
expect_fail no-store-yet 1 "$TMP/never" "$CASFS" --store "$TMP/never" path-info "$good"

# malformed NARs leave the store unchanged
before=$(n_paths)
nixstore --dump "$TMP/tree" >"$TMP/good.nar"
head -c 1000 "$TMP/good.nar" >"$TMP/trunc.nar"
{ cat "$TMP/good.nar"; printf 'garbage!'; } >"$TMP/trailing.nar"
printf 'not a nar at all, not even close' >"$TMP/junk.nar"
expect_fail nar-truncated 1 "invalid NAR.*truncated" "$CASFS" import-nar tree "$TMP/trunc.nar"
expect_fail nar-trailing 1 "invalid NAR.*trailing" "$CASFS" import-nar tree "$TMP/trailing.nar"
expect_fail nar-junk 1 "invalid NAR" "$CASFS" import-nar tree "$TMP/junk.nar"
expect_fail nar-wrong-path 1 "gives store path" "$CASFS" import-nar /nix/store/00000000000000000000000000000000-tree "$TMP/good.nar"
check_eq bad-nars-store-unchanged "$(n_paths)" "$before"

# --- a damaged blob is reported and never served ---------------------------
cp -a "$CASFS_STORE" "$TMP/damaged"
digest_hex=$(b3sum --no-names "$TMP/tree/sub/file" 2>/dev/null || python3 - "$TMP/damaged" "$TMP/tree/sub/file" <<'PY'
import os, sys
# find the blob file whose size and content equal the source file
want = open(sys.argv[2], "rb").read()
for root, _, files in os.walk(os.path.join(sys.argv[1], "blobs")):
    for f in files:
        p = os.path.join(root, f)
        if open(p, "rb").read() == want:
            print(os.path.basename(root) + f)
PY
)
blob="$TMP/damaged/blobs/${digest_hex:0:2}/${digest_hex:2}"
if [ -f "$blob" ]; then
	chmod u+w "$blob"
	printf 'IN SUB\n' | dd of="$blob" conv=notrunc status=none
	b3=$(python3 -c 'import base64,sys; print("b3:"+base64.b64encode(bytes.fromhex(sys.argv[1])).decode())' "$digest_hex")
	"$CASFS" --store "$TMP/damaged" verify >"$TMP/out" 2>"$TMP/err"
	rc=$?
	if [ $rc -eq 1 ] && grep -qF "$b3" "$TMP/err" && grep -q "1 damaged" "$TMP/out"; then pass verify-reports-damage; else fail verify-reports-damage "rc $rc: $(cat "$TMP/err" "$TMP/out")"; fi
	expect_fail cat-damaged 1 "$b3.*(corrupt|damaged)" "$CASFS" --store "$TMP/damaged" cat "$good/sub/file"
	"$CASFS" --store "$TMP/damaged" nar "$good" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	if [ $rc -eq 1 ] && grep -qF "$b3" "$TMP/err" && ! grep -q "IN SUB" "$TMP/out"; then pass nar-damaged; else fail nar-damaged "rc $rc: $(cat "$TMP/err")"; fi
	check_eq cat-undamaged "$("$CASFS" --store "$TMP/damaged" cat "$good/twin")" "same bytes"
	# the original store is intact
	"$CASFS" verify >/dev/null 2>&1 && pass verify-clean || fail verify-clean "$("$CASFS" verify 2>&1)"
else
	fail damage-setup "no blob file for sub/file"
fi

# --- a damaged PathInfo record: verify reports it and checks the rest ------
cp -a "$CASFS_STORE" "$TMP/damaged-pi"
other=$("$CASFS" --store "$TMP/damaged-pi" import "$TMP/tree/sub")
if python3 "$TOP/tests/sh/lib/lmdb-put.py" "$TMP/damaged-pi" pathinfo "${good#/nix/store/}" 0aff0112 2>"$TMP/err"; then
	"$CASFS" --store "$TMP/damaged-pi" verify >"$TMP/out" 2>"$TMP/err"
	rc=$?
	total=$("$CASFS" verify 2>/dev/null | sed -n 's/^checked \([0-9]*\) store paths.*/\1/p')
	if [ "$rc" -eq 1 ] && grep -q "path info ${good:11:32} is damaged" "$TMP/err" &&
		grep -q "^checked $((total + 1)) store paths, .*: 1 damaged" "$TMP/out"; then
		pass verify-damaged-pathinfo
	else
		fail verify-damaged-pathinfo "rc $rc: $(cat "$TMP/err" "$TMP/out" | head -4 | tr '\n' '|')"
	fi
	check_eq verify-damaged-pathinfo-others "$("$CASFS" --store "$TMP/damaged-pi" verify "$other" >/dev/null 2>&1; echo $?)" 0
else
	fail verify-damaged-pathinfo "cannot damage the record: $(cat "$TMP/err")"
fi

# --- full disk: a clear error, the store stays consistent -----------------
if mkdir -p "$TMP/small" && mount -t tmpfs -o size=3m tmpfs "$TMP/small" 2>/dev/null; then
	cleanup_hook() { umount "$TMP/small" 2>/dev/null; }
	"$CASFS" --store "$TMP/small/store" import "$TMP/tree/sub" >/dev/null
	head -c 8M /dev/urandom >"$TMP/big-random"
	expect_fail disk-full 1 "No space left" "$CASFS" --store "$TMP/small/store" import "$TMP/big-random"
	"$CASFS" --store "$TMP/small/store" verify >"$TMP/out" 2>&1 && pass disk-full-verify || fail disk-full-verify "$(cat "$TMP/out")"
	[ -z "$(ls -A "$TMP/small/store/tmp")" ] && pass disk-full-no-temp || fail disk-full-no-temp "$(ls "$TMP/small/store/tmp")"
else
	skip disk-full "cannot mount a tmpfs"
fi

# --- full disk while the database writes: says so, not "I/O error" -------
# Blobs fit (the files are empty) but the directory records do not: the
# file system keeps 128 KiB free, so LMDB's commit is cut short mid-write.
if mkdir -p "$TMP/small-db" && mount -t tmpfs -o size=4m tmpfs "$TMP/small-db" 2>/dev/null; then
	cleanup_hook() { umount "$TMP/small" 2>/dev/null; umount "$TMP/small-db" 2>/dev/null; }
	"$CASFS" --store "$TMP/small-db/store" import "$TMP/tree/sub" >/dev/null
	mkdir "$TMP/many-dirs"
	long=$(printf 'd%.0s' $(seq 120))
	for i in $(seq 3000); do mkdir "$TMP/many-dirs/$long$i" && : >"$TMP/many-dirs/$long$i/e$i"; done
	dd if=/dev/zero of="$TMP/small-db/filler" bs=64k status=none 2>/dev/null
	truncate -s "-128K" "$TMP/small-db/filler"
	expect_fail disk-full-db 1 "storing directories: no space left on device" \
		"$CASFS" --store "$TMP/small-db/store" import "$TMP/many-dirs"
	"$CASFS" --store "$TMP/small-db/store" verify >"$TMP/out" 2>&1 && pass disk-full-db-verify || fail disk-full-db-verify "$(cat "$TMP/out")"
	rm -f "$TMP/small-db/filler"
	"$CASFS" --store "$TMP/small-db/store" import "$TMP/many-dirs" >"$TMP/out" 2>&1 &&
		check_eq disk-full-db-then-fits "$(cat "$TMP/out")" "$(nixstore --add "$TMP/many-dirs")" ||
		fail disk-full-db-then-fits "$(cat "$TMP/out")"
else
	skip disk-full-db "cannot mount a tmpfs"
fi

# --- kill -9 during imports: the store always verifies -------------------
# The kill moments are spread over one measured import time, so that they
# land in every phase (blobs, directories, the PathInfo commit).
mkdir -p "$TMP/killtree"
python3 "$TOP/tests/sh/lib/make-tree.py" random "$TMP/killtree/a" 7 >/dev/null
python3 "$TOP/tests/sh/lib/make-tree.py" random "$TMP/killtree/b" 8 >/dev/null
head -c 20M /dev/urandom >"$TMP/killtree/big"
want=$(nixstore --add "$TMP/killtree")
ks="$TMP/killstore"
start=$(date +%s%N)
"$CASFS" --store "$TMP/timing-store" import "$TMP/killtree" >/dev/null
span_ms=$((($(date +%s%N) - start) / 1000000 * 4 / 5 + 10))
bad=0 completed=0
seed=${CASFS_TEST_SEED:-$RANDOM}
echo "kill -9 test: seed $seed, kill moments within ${span_ms} ms"
RANDOM=$seed
for i in $(seq 1 50); do
	"$CASFS" --store "$ks" import "$TMP/killtree" >/dev/null 2>&1 &
	pid=$!
	ms=$((RANDOM % span_ms))
	sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))" # a random moment, not a readiness wait
	kill -9 $pid 2>/dev/null
	wait $pid 2>/dev/null
	if [ -e "$ks/casfs-store" ] && ! "$CASFS" --store "$ks" verify >"$TMP/out" 2>&1; then
		bad=$((bad + 1))
		echo "iteration $i (${ms} ms): $(head -3 "$TMP/out")"
	fi
	# a path that is visible must be complete (verify checked) and exact
	if "$CASFS" --store "$ks" path-info "$want" >/dev/null 2>&1; then
		completed=$((completed + 1))
		"$CASFS" --store "$ks" nar "$want" | cmp -s - <(nixstore --dump "$TMP/killtree") || bad=$((bad + 1))
		rm -rf "$ks" # start over so later kills hit earlier phases again
	fi
done
echo "kill -9 test: $completed of 50 imports completed before the kill"
check_eq kill9-store-always-consistent "$bad" 0
got=$("$CASFS" --store "$ks" import "$TMP/killtree")
check_eq kill9-reimport "$got" "$want"

# --- two imports at once into one store -----------------------------------
cs="$TMP/concurrent"
"$CASFS" --store "$cs" import "$TMP/killtree" >"$TMP/c1" 2>&1 &
p1=$!
"$CASFS" --store "$cs" import "$TMP/tree" >"$TMP/c2" 2>&1 &
p2=$!
"$CASFS" --store "$cs" import "$TMP/killtree" >"$TMP/c3" 2>&1 &
p3=$!
wait $p1; r1=$?
wait $p2; r2=$?
wait $p3; r3=$?
check_eq concurrent-exit "$r1 $r2 $r3" "0 0 0"
check_eq concurrent-paths "$(cat "$TMP/c1") $(cat "$TMP/c2") $(cat "$TMP/c3")" "$want $good $want"
"$CASFS" --store "$cs" verify >"$TMP/out" 2>&1 && pass concurrent-verify || fail concurrent-verify "$(cat "$TMP/out")"
exit 0
