#!/bin/bash
# Crash safety of blob files (local-store.h, "unsynced records"): the state
# a power cut leaves is built by hand, since a test cannot cut the power.
# A blob file under its right name, of the right size, but whose bytes
# never reached the disk (zeros), with no PathInfo referencing it, and a
# record in DIR/unsynced/ from another boot: the next import must not trust
# that file.  A record from this boot (a killed writer: the kernel still
# has its data) costs no re-hash; a record whose owner is alive is left
# alone; a normal import leaves no record.
. "$(dirname "$0")/lib/common.sh"

BOOT=$(cat /proc/sys/kernel/random/boot_id)
OTHER_BOOT=00000000-0000-4000-8000-000000000000
[ "$BOOT" != "$OTHER_BOOT" ] || OTHER_BOOT=11111111-1111-4111-8111-111111111111
HOLDER=

cleanup_hook() {
	if [ -n "$HOLDER" ]; then
		kill "$HOLDER" 2>/dev/null
		wait "$HOLDER" 2>/dev/null
	fi
}

# blob_file STORE FILE: where STORE keeps the blob of FILE's bytes
blob_file() {
	local hex
	hex=$(b3sum --no-names "$2") || return 1
	echo "$1/blobs/${hex:0:2}/${hex:2}"
}
# plant_zeros STORE FILE: FILE's blob under its name and size, all zeros
plant_zeros() {
	local b
	b=$(blob_file "$1" "$2") || return 1
	mkdir -p "$(dirname "$b")"
	rm -f "$b"
	head -c "$(stat -c %s "$2")" /dev/zero >"$b"
	chmod 444 "$b"
}
# is_zeros FILE SIZE: FILE exists and is SIZE zero bytes
is_zeros() { [ -f "$1" ] && cmp -s "$1" <(head -c "$2" /dev/zero); }
# record STORE NAME BOOT_ID SINCE: a record as a writer leaves it
record() {
	mkdir -p "$1/unsynced"
	printf 'casfs-unsynced 1\nboot-id %s\nsince %s.000000000\n' "$3" "$4" >"$1/unsynced/$2"
}
n_records() { ls -A "$1/unsynced" 2>/dev/null | wc -l; }
early=$(($(date +%s) - 600))

# good_store NAME STORE PATH: the store serves TREE exactly
good_store() {
	local name=$1 st=$2 p=$3
	if [ -z "$p" ]; then
		fail "$name-import" "import failed: $(cat "$TMP/err")"
		return
	fi
	check_eq "$name-path" "$p" "$want"
	if "$CASFS" --store "$st" nar "$p" 2>"$TMP/err" | cmp -s - "$TMP/tree.nar"; then
		pass "$name-nar"
	else
		fail "$name-nar" "casfs nar differs from nix-store --dump: $(head -2 "$TMP/err")"
	fi
	if "$CASFS" --store "$st" verify >"$TMP/out" 2>&1; then
		pass "$name-verify"
	else
		fail "$name-verify" "$(head -3 "$TMP/out")"
	fi
	if "$CASFS" --store "$st" cat "$p/sub/file" 2>"$TMP/err" | cmp -s - "$TMP/tree/sub/file"; then
		pass "$name-cat"
	else
		fail "$name-cat" "casfs cat differs: $(head -2 "$TMP/err")"
	fi
}

if ! command -v b3sum >/dev/null; then
	skip crash "no b3sum"
	exit 0
fi
mkdir -p "$TMP/tree/sub" "$TMP/other"
head -c 100000 /dev/urandom >"$TMP/tree/sub/file"
python3 "$TOP/tests/sh/lib/make-tree.py" random "$TMP/tree/more" "${CASFS_TEST_SEED:-$RANDOM}" |
	sed 's/^/crash test: /'
echo "not in the tree" >"$TMP/other/note"
want=$(nixstore --add "$TMP/tree")
nixstore --dump "$TMP/tree" >"$TMP/tree.nar"
size=$(stat -c %s "$TMP/tree/sub/file")

# --- a normal import leaves no record --------------------------------------
st="$TMP/normal"
"$CASFS" --store "$st" import "$TMP/tree" >/dev/null
if [ -d "$st/unsynced" ] && [ "$(n_records "$st")" -eq 0 ]; then
	pass normal-import-no-record
else
	fail normal-import-no-record "unsynced/: $(ls -A "$st/unsynced" 2>&1)"
fi
"$CASFS" --store "$st" import "$TMP/tree" >/dev/null
check_eq reimport-no-record "$(n_records "$st")" 0

# --- power cut: a record from another boot ---------------------------------
st="$TMP/powercut"
"$CASFS" --store "$st" import "$TMP/other" >/dev/null
plant_zeros "$st" "$TMP/tree/sub/file"
record "$st" record.powercut "$OTHER_BOOT" "$early"
good_store powercut "$st" "$("$CASFS" --store "$st" import "$TMP/tree" 2>"$TMP/err")"
check_eq powercut-record-removed "$(n_records "$st")" 0

# a record that cannot be parsed counts as "since 0": everything re-hashed
st="$TMP/garbled"
"$CASFS" --store "$st" import "$TMP/other" >/dev/null
plant_zeros "$st" "$TMP/tree/sub/file"
record "$st" record.garbled "$OTHER_BOOT" 0
printf 'half a rec' >"$st/unsynced/record.garbled"
good_store garbled "$st" "$("$CASFS" --store "$st" import "$TMP/tree" 2>"$TMP/err")"
check_eq garbled-record-removed "$(n_records "$st")" 0

# a file older than the record's "since" (synced in an earlier cycle) is
# trusted without a re-hash: the re-hash is bounded by the record
st="$TMP/older"
"$CASFS" --store "$st" import "$TMP/other" >/dev/null
plant_zeros "$st" "$TMP/other/note"
record "$st" record.older "$OTHER_BOOT" "$(($(date +%s) + 3600))"
"$CASFS" --store "$st" import "$TMP/tree" >/dev/null
if is_zeros "$(blob_file "$st" "$TMP/other/note")" "$(stat -c %s "$TMP/other/note")"; then
	pass older-than-since-not-rehashed
else
	fail older-than-since-not-rehashed "the file was re-hashed or removed"
fi
check_eq older-record-removed "$(n_records "$st")" 0

# --- a killed writer of this boot: syncfs, no re-hash ----------------------
# The kernel still has every byte the dead process wrote, so making them
# durable is all it takes; the same-size wrong file planted here stays (it
# would be re-hashed and removed on the power-cut path).
st="$TMP/killed"
"$CASFS" --store "$st" import "$TMP/other" >/dev/null
plant_zeros "$st" "$TMP/tree/sub/file"
record "$st" record.killed "$BOOT" "$early"
"$CASFS" --store "$st" import "$TMP/other" >/dev/null
check_eq same-boot-record-removed "$(n_records "$st")" 0
if is_zeros "$(blob_file "$st" "$TMP/tree/sub/file")" "$size"; then
	pass same-boot-no-rehash
else
	fail same-boot-no-rehash "the planted file was re-hashed (removed or changed)"
fi

# --- a record whose owner is alive is left alone ---------------------------
st="$TMP/live"
"$CASFS" --store "$st" import "$TMP/other" >/dev/null
plant_zeros "$st" "$TMP/tree/sub/file"
record "$st" record.live "$OTHER_BOOT" "$early"
# hold its flock as its owner would; bounded: sleep 120 at most
(
	exec 9<"$st/unsynced/record.live"
	flock -x 9 && touch "$TMP/holding" && exec sleep 120
) &
HOLDER=$!
for _ in $(seq 100); do
	[ -e "$TMP/holding" ] && break
	sleep 0.1
done
if [ -e "$TMP/holding" ]; then
	"$CASFS" --store "$st" import "$TMP/other" >/dev/null # a writable open
	check_eq live-record-kept "$(n_records "$st")" 1
	if is_zeros "$(blob_file "$st" "$TMP/tree/sub/file")" "$size"; then
		pass live-record-files-untouched
	else
		fail live-record-files-untouched "the file was re-hashed under a live record"
	fi
	kill "$HOLDER" 2>/dev/null
	wait "$HOLDER" 2>/dev/null
	HOLDER=
	# once its owner is gone, the next opener recovers it
	good_store live-gone "$st" "$("$CASFS" --store "$st" import "$TMP/tree" 2>"$TMP/err")"
	check_eq live-gone-record-removed "$(n_records "$st")" 0
else
	fail live-record "the flock holder did not start within 10 s"
fi

# --- a store made before unsynced/ existed keeps working --------------------
st="$TMP/old"
"$CASFS" --store "$st" import "$TMP/other" >/dev/null
rm -rf "$st/unsynced"
p=$("$CASFS" --store "$st" import "$TMP/tree" 2>"$TMP/err")
good_store old-store "$st" "$p"
[ -d "$st/unsynced" ] && pass old-store-gets-unsynced || fail old-store-gets-unsynced "no unsynced/"
exit 0
