#!/bin/bash
# A store handed to a virtual machine over virtiofs.  A QEMU/TCG guest
# (tests/sh/lib/vm.sh: Debian's cloud kernel, a busybox initramfs) mounts
# the tag read-only at /nix/store, lists the store path, hashes every file,
# runs a shell script and a static program from it, follows symlinks, and
# tries writes (ro mount, then remounted rw so that the backend itself must
# refuse).  The host compares what the guest printed with the source tree.
# The same guest script runs first against Debian's C virtiofsd serving the
# tree unpacked (the harness's own check and the differential peer), then
# against `casfs --store STORE virtiofs SOCKET`.
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/vm.sh"

BACKEND_PID=
cleanup_hook() {
	vm_cleanup
	if [ -n "$BACKEND_PID" ]; then
		kill "$BACKEND_PID" 2>/dev/null
		sleep 0.2
		kill -9 "$BACKEND_PID" 2>/dev/null
		wait "$BACKEND_PID" 2>/dev/null
	fi
}

if ! vm_prepare; then
	skip virtiofs "$VM_SKIP_REASON"
	exit 0
fi
TAG=casfs-store

# --- the source tree ---------------------------------------------------------
T=$TMP/vfs-tree
mkdir -p "$T/bin" "$T/share/doc/a/b/c" "$T/data"
printf '#!/bin/sh\necho "hello from the store"\ncat "$(dirname "$0")/../share/greeting"\n' >"$T/bin/hello"
chmod 755 "$T/bin/hello"
ln -s hello "$T/bin/greet"
echo "greetings, guest" >"$T/share/greeting"
echo "deep down" >"$T/share/doc/a/b/c/deep.txt"
printf 'no newline' >"$T/share/doc/a/partial"
: >"$T/share/empty"
echo "spaced" >"$T/share/with space.txt"
head -c 3145728 /dev/urandom >"$T/data/random.bin"
ln -s share/doc "$T/lib"
ln -s ../does-not-exist "$T/share/dangling"
HAVE_BB=0
if ldd "$VM_BUSYBOX" 2>&1 | grep -q 'not a dynamic'; then
	cp "$VM_BUSYBOX" "$T/bin/busybox"
	chmod 755 "$T/bin/busybox"
	HAVE_BB=1
fi

STORE=$TMP/store
SP=$("$CASFS" --store "$STORE" import "$T") || { fail setup "import failed"; exit 1; }
BASE=${SP#/nix/store/}

# What the guest must print between LIST BEGIN and LIST END, from the tree.
(cd "$T" && find . | LC_ALL=C sort | while IFS= read -r f; do
	if [ -L "$f" ]; then
		printf 'L\t%s\t%s\n' "$f" "$(readlink "$f")"
	elif [ -d "$f" ]; then
		printf 'D\t%s\n' "$f"
	else
		printf 'F\t%s\t%s\t%s\t%s\n' "$f" "$(stat -c %A "$f" | cut -c4)" "$(stat -c %s "$f")" \
			"$(sha256sum <"$f" | cut -d' ' -f1)"
	fi
done) >"$TMP/want-list"

# --- the guest script ----------------------------------------------------------
{
	printf 'TAG=%s\nBASE=%s\nHAVE_BB=%s\n' "$TAG" "$BASE" "$HAVE_BB"
	cat <<'EOF'
S=/nix/store
P=$S/$BASE
up() { cut -d' ' -f1 /proc/uptime; }
if mount -t virtiofs "$TAG" "$S" -o ro; then echo "MOUNT ok $(up)"; else echo "MOUNT failed"; exit 1; fi
echo "=== ls /nix/store"
ls -l "$S" 2>&1 | head -n 20
echo "=== ls -lR"
ls -lR "$P" 2>&1
echo "=== LIST BEGIN"
(cd "$P" && find . | sort | while IFS= read -r f; do
	if [ -L "$f" ]; then
		printf 'L\t%s\t%s\n' "$f" "$(readlink "$f")"
	elif [ -d "$f" ]; then
		printf 'D\t%s\n' "$f"
	elif [ -f "$f" ]; then
		printf 'F\t%s\t%s\t%s\t%s\n' "$f" "$(stat -c %A "$f" | cut -c4)" "$(stat -c %s "$f")" \
			"$(sha256sum <"$f" | cut -d' ' -f1)"
	else
		printf 'O\t%s\n' "$f"
	fi
done)
echo "=== LIST END"
echo "RUN hello [$("$P/bin/hello" 2>&1 | tr '\n' '|')] rc=$?"
echo "RUN greet [$("$P/bin/greet" 2>&1 | tr '\n' '|')]"
[ "$HAVE_BB" = 1 ] && echo "RUN bb [$("$P/bin/busybox" echo hi from busybox 2>&1)]"
echo "READ deep [$(cat "$P/lib/a/b/c/deep.txt" 2>&1)]"
echo "READ partial [$(cat "$P/share/doc/a/partial" 2>&1)]"
echo "READ space [$(cat "$P/share/with space.txt" 2>&1)]"
echo "READ dangling [$(cat "$P/share/dangling" 2>&1)]"
echo "READ missing [$(cat "$P/no-such-file" 2>&1)]"
echo "READ absent-path [$(ls "$S/00000000000000000000000000000000-absent" 2>&1)]"
echo "READLINK lib [$(readlink "$P/lib")]"
# every write refused: by the guest kernel (ro), then by the backend (rw)
writes() { # LABEL
	for w in "create:echo x > '$P/new-file'" "append:echo x >> '$P/share/empty'" \
		"truncate:: > '$P/share/greeting'" "mkdir:mkdir '$P/new-dir'" \
		"rm:rm -f '$P/share/empty'" "rmdir:rm -rf '$P/share/doc/a/b/c'" \
		"mv:mv '$P/share/greeting' '$P/share/moved'" "chmod:chmod 777 '$P/bin/hello'" \
		"touch:touch '$P/bin/hello'" "ln:ln -s x '$P/new-link'" "create-root:echo x > '$S/new-path'"; do
		name=${w%%:*}
		if out=$(sh -c "${w#*:}" 2>&1); then
			echo "WRITE $1-$name allowed"
		else
			echo "WRITE $1-$name refused [$(echo "$out" | tr '\n' ' ')]"
		fi
	done
}
writes ro
if mount -o remount,rw "$S" 2>/dev/null; then
	echo "REMOUNT rw ok"
	writes rw
	mount -o remount,ro "$S"
else
	echo "REMOUNT rw failed"
fi
echo "SUM after [$(sha256sum "$P/share/greeting" "$P/share/empty" | cut -d' ' -f1 | tr '\n' ' ')]"
cd /
umount "$S" && echo "UMOUNT ok"
# mounted again (a new FUSE_INIT on the same device)
mount -t virtiofs "$TAG" "$S" -o ro && echo "REMOUNT [$(cat "$P/share/greeting")]" && umount "$S"
echo "GUEST END $(up)"
EOF
} >"$TMP/guest.sh"

# The lines the host expects, apart from the listing.
want_hello="RUN hello [hello from the store|greetings, guest|] rc=0"
want_greet="RUN greet [hello from the store|greetings, guest|]"
sum_greeting=$(sha256sum <"$T/share/greeting" | cut -d' ' -f1)
sum_empty=$(sha256sum </dev/null | cut -d' ' -f1)

# check_guest LABEL LOG: compare one guest run with the tree.
check_guest() {
	local l=$1 log=$2 got
	if ! grep -q '^MOUNT ok' "$log"; then
		fail "$l-mount" "the guest could not mount the tag: $(grep -v '^CASFS-VM' "$log" | tail -n 3 | tr '\n' ' ')"
		return
	fi
	pass "$l-mount"
	sed -n '/^=== LIST BEGIN$/,/^=== LIST END$/p' "$log" | sed '1d;$d' >"$TMP/$l-list"
	if cmp -s "$TMP/$l-list" "$TMP/want-list"; then
		pass "$l-listing ($(wc -l <"$TMP/want-list") entries: names, types, sizes, sha256, exec bits, link targets)"
	else
		fail "$l-listing" "differs from the tree: $(diff "$TMP/want-list" "$TMP/$l-list" | head -n 12 | tr '\t\n' ' |')"
	fi
	check_eq "$l-run-script" "$(grep '^RUN hello ' "$log")" "$want_hello"
	check_eq "$l-run-via-symlink" "$(grep '^RUN greet ' "$log")" "$want_greet"
	[ "$HAVE_BB" = 1 ] && check_eq "$l-run-static-binary" "$(grep '^RUN bb ' "$log")" "RUN bb [hi from busybox]"
	check_eq "$l-read-through-dir-symlink" "$(grep '^READ deep ' "$log")" "READ deep [deep down]"
	check_eq "$l-read-no-newline" "$(grep '^READ partial ' "$log")" "READ partial [no newline]"
	check_eq "$l-read-space" "$(grep '^READ space ' "$log")" "READ space [spaced]"
	check_eq "$l-readlink" "$(grep '^READLINK lib ' "$log")" "READLINK lib [share/doc]"
	got=$(grep '^READ dangling ' "$log")
	case "$got" in *"No such file or directory"*) pass "$l-dangling-symlink-enoent" ;;
	*) fail "$l-dangling-symlink-enoent" "got '$got'" ;; esac
	got=$(grep '^READ missing ' "$log")
	case "$got" in *"No such file or directory"*) pass "$l-missing-enoent" ;;
	*) fail "$l-missing-enoent" "got '$got'" ;; esac
	got=$(grep '^READ absent-path ' "$log")
	case "$got" in *"No such file or directory"*) pass "$l-absent-store-path-enoent" ;;
	*) fail "$l-absent-store-path-enoent" "got '$got'" ;; esac
	# writes: EROFS under the ro mount; after remount,rw the backend refuses
	local n bad=
	n=$(grep -c '^WRITE ro-' "$log")
	bad=$(grep '^WRITE ro-' "$log" | grep -v 'refused \[.*Read-only file system' | head -n 3 | tr '\n' ' ')
	if [ "$n" -eq 11 ] && [ -z "$bad" ]; then pass "$l-writes-ro-erofs ($n kinds)"; else fail "$l-writes-ro-erofs" "$n tries; $bad"; fi
	if grep -q '^REMOUNT rw ok' "$log"; then
		n=$(grep -c '^WRITE rw-' "$log")
		bad=$(grep '^WRITE rw-' "$log" | grep -Ev 'refused \[.*(Read-only file system|Operation not permitted)' | head -n 3 | tr '\n' ' ')
		if [ "$n" -eq 11 ] && [ -z "$bad" ]; then pass "$l-writes-rw-refused-by-backend ($n kinds)"; else fail "$l-writes-rw-refused-by-backend" "$n tries; $bad"; fi
	else
		fail "$l-writes-rw-refused-by-backend" "remount,rw failed in the guest"
	fi
	check_eq "$l-unchanged" "$(grep '^SUM after ' "$log")" "SUM after [$sum_greeting $sum_empty ]"
	grep -q '^UMOUNT ok' "$log" && pass "$l-umount" || fail "$l-umount" "umount failed in the guest"
	check_eq "$l-mount-again" "$(grep '^REMOUNT \[' "$log")" "REMOUNT [$(cat "$T/share/greeting")]"
	check_eq "$l-guest-script-exit" "$(grep -c '^CASFS-VM: exit 0 ' "$log")" 1
	echo "# $l boot: $VM_KERNEL_NAME under TCG; guest uptime at init $(vm_uptime "$log" init) s," \
		"modules loaded $(vm_uptime "$log" modules) s, store mounted $(sed -n 's/^MOUNT ok //p' "$log") s," \
		"guest end $(vm_uptime "$log" exit) s; wall $VM_WALL s (QEMU start to exit)"
}

wait_socket() { # SOCKET PID
	local i
	for i in $(seq 100); do
		[ -S "$1" ] && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# wait_backend LABEL: the backend exits by itself once QEMU has gone.
wait_backend() { # LABEL LOG
	local i rc
	for i in $(seq 100); do
		kill -0 "$BACKEND_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$BACKEND_PID" 2>/dev/null; then
		fail "$1-backend-exits" "still running 10 s after QEMU exited; killed"
		kill -9 "$BACKEND_PID" 2>/dev/null
		wait "$BACKEND_PID" 2>/dev/null
	else
		wait "$BACKEND_PID"
		rc=$?
		check_eq "$1-backend-exit-status" "$rc" 0
	fi
	BACKEND_PID=
	if grep -qE 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$2"; then
		fail "$1-sanitizer" "$(grep -E 'ERROR: |runtime error:' "$2" | head -n 2 | tr '\n' ' ')"
	fi
}

run_guest() { # LABEL SOCKET BACKEND_LOG
	local rc
	vm_run "$2" "$TAG" "$TMP/guest.sh" "$TMP/$1-console.log" 90
	rc=$?
	case $rc in
	0) pass "$1-vm-ran" ;;
	124) fail "$1-vm-ran" "timed out: $(tail -n 5 "$TMP/$1-console.log" | tr '\n' ' ')" ;;
	*) fail "$1-vm-ran" "no end marker: $(tail -n 5 "$TMP/$1-console.log" | tr '\n' ' ')" ;;
	esac
	wait_backend "$1" "$3"
	check_guest "$1" "$TMP/$1-console.log"
	[ "$FAILED" = 0 ] || { sed 's/^/  console| /' "$TMP/$1-console.log" | tail -n 60; sed 's/^/  backend| /' "$3" | tail -n 20; }
}

# --- 1. the differential peer: Debian's virtiofsd over the tree unpacked ------
VFSD=/usr/lib/qemu/virtiofsd
if [ ! -x "$VFSD" ]; then
	skip peer "no $VFSD (package qemu-system-x86)"
elif [ "$(id -u)" != 0 ]; then
	skip peer "virtiofsd's sandbox needs root"
else
	mkdir -p "$TMP/peer"
	cp -a "$T" "$TMP/peer/$BASE"
	# a read-only bind mount in a private mount namespace, so that the
	# writes the guest tries after remount,rw are refused here too.  Only
	# the mount holding $TMP is made private (in a chroot "/" is no mount
	# point, so unshare's own --propagation private fails there).
	unshare -m --propagation unchanged sh -c '
		mp=$(findmnt -n -o TARGET -T "$1") && mount --make-rprivate "$mp" &&
			mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" || exit 97
		shift; exec "$@"' sh "$TMP/peer" \
		"$VFSD" --socket-path="$TMP/peer.sock" -o source="$TMP/peer" -o sandbox=chroot -o cache=auto \
		>"$TMP/peer-backend.log" 2>&1 &
	BACKEND_PID=$!
	if wait_socket "$TMP/peer.sock" "$BACKEND_PID"; then
		run_guest peer "$TMP/peer.sock" "$TMP/peer-backend.log"
	else
		fail peer-start "virtiofsd did not listen: $(tail -n 3 "$TMP/peer-backend.log" | tr '\n' ' ')"
		cleanup_hook
		BACKEND_PID=
	fi
fi

# --- 2. casfs virtiofs ----------------------------------------------------------
if "$CASFS" virtiofs --help 2>&1 | grep -q "unknown command 'virtiofs'"; then
	skip casfs "this casfs has no virtiofs command (built without FUSE)"
	exit 0
fi
if ! "$CASFS" virtiofs --help >"$TMP/help.out" 2>&1; then
	fail casfs-help "'casfs virtiofs --help' fails: $(head -n 5 "$TMP/help.out")"
fi
"$CASFS" --store "$STORE" virtiofs "$TMP/casfs.sock" >"$TMP/casfs-backend.log" 2>&1 &
BACKEND_PID=$!
if ! wait_socket "$TMP/casfs.sock" "$BACKEND_PID"; then
	fail casfs-start "casfs virtiofs did not listen on $TMP/casfs.sock within 5 s: $(tail -n 3 "$TMP/casfs-backend.log" | tr '\n' ' ')"
	exit 1
fi
run_guest casfs "$TMP/casfs.sock" "$TMP/casfs-backend.log"
[ -S "$TMP/casfs.sock" ] && echo "# note: casfs virtiofs left its socket behind"
check_eq casfs-store-verifies "$("$CASFS" --store "$STORE" verify >/dev/null 2>&1; echo $?)" 0
exit 0
