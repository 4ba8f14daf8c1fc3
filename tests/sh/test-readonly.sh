#!/bin/bash
# A store that cannot be written can still be read: on a read-only file
# system (a read-only bind mount of a store) and as a user with read
# access only, every read command and `mount` work and show the same as on
# the writable store; writing fails with one clear line; nothing changes.
. "$(dirname "$0")/lib/common.sh"

MOUNTS=()
cleanup_hook() {
	local m
	for m in "${MOUNTS[@]}"; do
		fusermount3 -u "$m" 2>/dev/null || umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
}

mkdir -p "$TMP/tree/sub"
echo "in sub" >"$TMP/tree/sub/file"
printf '#!/bin/sh\necho ran\n' >"$TMP/tree/run"
chmod +x "$TMP/tree/run"
head -c 3000000 /dev/urandom >"$TMP/tree/big" # a large blob too
ln -s sub/file "$TMP/tree/link"
SP=$("$CASFS" import "$TMP/tree") || { fail setup "import failed"; exit 1; }
BASE=${SP#/nix/store/}
want_nar=$(nixstore --dump "$TMP/tree" | sha256sum)
want_info=$("$CASFS" path-info --json "$SP")
want_ls=$("$CASFS" ls "$SP")

# The read commands against STORE, as the command prefix given (e.g. a
# setpriv), compared with what the writable store shows.
check_reads() { # LABEL STORE [PREFIX...]
	local label=$1 store=$2
	shift 2
	local out
	out=$("$@" "$CASFS" --store "$store" path-info --json "$SP" 2>&1)
	check_eq "$label-path-info" "$out" "$want_info"
	out=$("$@" "$CASFS" --store "$store" ls "$SP" 2>&1)
	check_eq "$label-ls" "$out" "$want_ls"
	out=$("$@" "$CASFS" --store "$store" cat "$SP/sub/file" 2>&1)
	check_eq "$label-cat" "$out" "in sub"
	out=$("$@" "$CASFS" --store "$store" nar "$SP" 2>"$TMP/nar.err" | sha256sum)
	check_eq "$label-nar" "$out $(cat "$TMP/nar.err")" "$want_nar "
	"$@" "$CASFS" --store "$store" verify >"$TMP/verify.out" 2>&1
	check_eq "$label-verify" "$?" 0
}

# A write must fail with one line, exit 1, and leave the store as it was.
check_write_refused() { # LABEL STORE PATTERN [PREFIX...]
	local label=$1 store=$2 pat=$3 rc
	shift 3
	mkdir -p "$TMP/new"
	echo "new $label" >"$TMP/new/f"
	chmod -R a+rX "$TMP/new"
	"$@" "$CASFS" --store "$store" import "$TMP/new" >"$TMP/w.out" 2>"$TMP/w.err"
	rc=$?
	if [ "$rc" -eq 1 ] && [ "$(wc -l <"$TMP/w.err")" -eq 1 ] && grep -qE "$pat" "$TMP/w.err" && [ ! -s "$TMP/w.out" ]; then
		pass "$label-import-refused"
	else
		fail "$label-import-refused" "exit $rc: $(head -3 "$TMP/w.err" | tr '\n' '|')"
	fi
}

# mount MNT from STORE (as PREFIX), then compare a listing and run a program
check_mount() { # LABEL STORE MNT [PREFIX...]
	local label=$1 store=$2 mnt=$3
	shift 3
	mkdir -p "$mnt"
	MOUNTS+=("$mnt")
	if ! "$@" "$CASFS" --store "$store" mount "$mnt" --background 2>"$TMP/$label-mount.err"; then
		fail "$label-mount" "$(head -2 "$TMP/$label-mount.err" | tr '\n' '|')"
		return
	fi
	if diff -r --no-dereference "$TMP/tree" "$mnt/$BASE" >"$TMP/diff.out" 2>&1; then
		pass "$label-mount-diff"
	else
		fail "$label-mount-diff" "$(head -3 "$TMP/diff.out" | tr '\n' '|')"
	fi
	check_eq "$label-mount-run" "$("$mnt/$BASE/run" 2>&1)" "ran"
	fusermount3 -u "$mnt" || fail "$label-unmount" "fusermount3 -u failed"
}

store_state() { (cd "$CASFS_STORE" && find . -printf '%p %s %m\n' | sort && sha256sum db/data.mdb); }

if ! command -v fusermount3 >/dev/null || [ ! -e /dev/fuse ]; then
	have_fuse=
else
	have_fuse=1
fi
before=$(store_state)

# --- a read-only file system -------------------------------------------------
RO=$TMP/ro
mkdir -p "$RO"
if mount --bind "$CASFS_STORE" "$RO" 2>/dev/null && MOUNTS+=("$RO") && mount -o remount,bind,ro "$RO" 2>/dev/null; then
	if touch "$RO/probe" 2>/dev/null; then
		fail rofs-setup "the bind mount is writable"
	else
		check_reads rofs "$RO"
		check_write_refused rofs "$RO" "Read-only file system"
		[ -n "$have_fuse" ] && check_mount rofs "$RO" "$TMP/m-rofs"
	fi
else
	skip rofs "cannot make a read-only bind mount"
fi

# --- a user with read access only -------------------------------------------
if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
	chmod 755 "$TMP" # let the user reach the store (its files are 0644/0444)
	as_nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all)
	check_reads user "$CASFS_STORE" "${as_nobody[@]}"
	check_write_refused user "$CASFS_STORE" "Permission denied" "${as_nobody[@]}"
	if [ -n "$have_fuse" ] && [ -u "$(command -v fusermount3)" ] && "${as_nobody[@]}" test -r /dev/fuse -a -w /dev/fuse; then
		mkdir -p "$TMP/m-user" && chown nobody "$TMP/m-user"
		check_mount user "$CASFS_STORE" "$TMP/m-user" "${as_nobody[@]}"
	else
		skip user-mount "an unprivileged user cannot mount FUSE here (/dev/fuse $(stat -c %a /dev/fuse), fusermount3 setuid?)"
	fi
	chmod 700 "$TMP"
else
	skip user "not root, or no setpriv"
fi

check_eq store-unchanged "$(store_state)" "$before"
exit 0
