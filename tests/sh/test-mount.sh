#!/bin/bash
# Mount tests: mount a store for real and compare what the kernel shows
# with the source tree.  Waits for readiness (--background returns once
# mounted; otherwise bounded polls), never sleeps and hopes, and always
# unmounts (cleanup_hook).  The daemons' stderr is scanned at the end for
# sanitizer reports and unexpected lines.
. "$(dirname "$0")/lib/common.sh"

MOUNTS=()   # every mount point used, unmounted on exit
PIDS=()     # foreground daemons started here (killed by pid on exit)
LOGS=()     # daemon stderr files, scanned at the end

cleanup_hook() {
	local m p
	for m in "${MOUNTS[@]}"; do
		if mountpoint -q "$m" 2>/dev/null || ! stat "$m" >/dev/null 2>&1; then
			fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null
		fi
	done
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null
	done
}

if [ ! -e /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
	skip mount "no /dev/fuse or fusermount3"
	exit 0
fi

# --- helpers -------------------------------------------------------------

# mount_bg NAME DIR ARGS...: mount with --background, logging to $TMP/NAME.log
mount_bg() {
	local name=$1 dir=$2
	shift 2
	mkdir -p "$dir"
	MOUNTS+=("$dir")
	LOGS+=("$TMP/$name.log")
	"$CASFS" mount "$dir" --background "$@" 2>>"$TMP/$name.log"
}

# unmount DIR LOG: unmount, then wait (bounded) until the daemon closed its log
unmount() {
	fusermount3 -u "$1" 2>/dev/null || return 1
	local i
	for i in $(seq 200); do
		fuser -s "$2" 2>/dev/null || return 0
		sleep 0.05
	done
	return 1
}

# wait_mounted DIR: bounded poll for a foreground daemon's mount
wait_mounted() {
	local i
	for i in $(seq 200); do
		mountpoint -q "$1" && return 0
		sleep 0.05
	done
	return 1
}

# errno_of OP PATH [ARG]: do one syscall-level operation, print the errno
# name (or OK).
errno_of() {
	python3 - "$@" <<'EOF'
import errno, os, sys
op, path = sys.argv[1], os.fsencode(sys.argv[2])
arg = os.fsencode(sys.argv[3]) if len(sys.argv) > 3 else None
try:
    if op == "stat": os.stat(path)
    elif op == "lstat": os.lstat(path)
    elif op == "listdir": os.listdir(path)
    elif op == "read":
        with open(path, "rb") as f: f.read()
    elif op == "write": os.close(os.open(path, os.O_WRONLY))
    elif op == "creat": os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
    elif op == "trunc": os.truncate(path, 0)
    elif op == "mkdir": os.mkdir(path)
    elif op == "unlink": os.unlink(path)
    elif op == "rmdir": os.rmdir(path)
    elif op == "rename": os.rename(path, arg)
    elif op == "link": os.link(path, arg)
    elif op == "symlink": os.symlink(b"x", path)
    elif op == "chmod": os.chmod(path, 0o777)
    elif op == "utime": os.utime(path, (5, 5))
    elif op == "setxattr": os.setxattr(path, b"user.x", b"y")
    elif op == "rmxattr": os.removexattr(path, b"user.castore.blob.digest")
    elif op == "getxattr": os.getxattr(path, arg)
    elif op == "lgetxattr": os.getxattr(path, arg, follow_symlinks=False)
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
EOF
}

check_errno() { # NAME WANT OP PATH [ARG]
	local name=$1 want=$2
	shift 2
	check_eq "$name" "$(errno_of "$@")" "$want"
}

# listing DIR: "%P %y %m %s %l" of everything below DIR, sorted (bytes)
listing() { (cd "$1" && find . -printf '%P %y %m %s %l\n' | LC_ALL=C sort); }

# expected_listing DIR: the same lines as casfs should show them for the
# source tree DIR: dirs 555 size 0, files 444/555, symlinks 777.
expected_listing() {
	python3 - "$1" <<'EOF' | LC_ALL=C sort
import os, stat, sys
top = os.fsencode(sys.argv[1])
out = sys.stdout.buffer
def line(rel, st, full):
    if stat.S_ISDIR(st.st_mode):
        y, m, s, l = b"d", b"555", 0, b""
    elif stat.S_ISLNK(st.st_mode):
        l = os.readlink(full)
        y, m, s = b"l", b"777", len(l)
    else:
        y, m, s, l = b"f", (b"555" if st.st_mode & 0o100 else b"444"), st.st_size, b""
    out.write(b"%s %s %s %d %s\n" % (rel, y, m, s, l))
for dirpath, dirnames, filenames in os.walk(top):
    rel = os.path.relpath(dirpath, top)
    rel = b"" if rel == b"." else rel
    line(rel, os.lstat(dirpath), dirpath)
    for n in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
        full = os.path.join(dirpath, n)
        line(os.path.join(rel, n) if rel else n, os.lstat(full), full)
EOF
}

# content_sums DIR: sha256 of every regular file, by relative path
content_sums() { (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum); }

# normalised tar of DIR (modes reduced to a=rX, times/owners fixed)
tar_sum() {
	local dir=$1
	shift
	tar -C "$dir" -c --format=gnu --sort=name --mtime=@1 --owner=0 --group=0 \
		--numeric-owner --mode=a=rX "$@" . | sha256sum | cut -d' ' -f1
}

b3_of() { # FILE: "b3:" + base64 of the BLAKE3 digest, from b3sum
	echo "b3:$(b3sum --no-names "$1" | xxd -r -p | base64 -w0)"
}

# --- the fixture ---------------------------------------------------------

SRC=$TMP/tree
python3 "$TOP/tests/sh/lib/make-tree.py" tricky "$SRC" >/dev/null
mkdir -p "$SRC/bin"
cp /bin/echo "$SRC/bin/echo" && chmod 755 "$SRC/bin/echo"
printf '#!/bin/sh\necho "script says $1"\n' >"$SRC/bin/script" && chmod 755 "$SRC/bin/script"
head -c $((5 * 1024 * 1024 + 123)) /dev/urandom >"$SRC/random-big"
printf 'only this file has these bytes: %s\n' "$$-$RANDOM-$(date +%s%N)" >"$SRC/corrupt-me"
printf 'a bystander\n' >"$SRC/bystander"

SP=$("$CASFS" import "$SRC" 2>"$TMP/import.err")
WANT_SP=$(nixstore --add "$SRC" 2>/dev/null)
if [ -z "$SP" ]; then
	fail setup "casfs import failed: $(head -2 "$TMP/import.err")"
	exit 1
fi
check_eq import-path "$SP" "${WANT_SP:-$SP}"
BASE=${SP#/nix/store/}
M=$TMP/mnt
# A second tree, imported while mounted.
mkdir -p "$TMP/late"
echo late >"$TMP/late/file"

# --- mount and compare -----------------------------------------------------

if mount_bg main "$M"; then
	if mountpoint -q "$M"; then pass mount-background-ready; else fail mount-background-ready "returned 0 but not mounted"; fi
else
	fail mount-background "exit $?: $(tail -2 "$TMP/main.log")"
	exit 1
fi
P=$M/$BASE

if diff -r --no-dereference "$SRC" "$P" >"$TMP/diff.out" 2>&1; then
	pass diff-r
else
	fail diff-r "$(head -5 "$TMP/diff.out")"
fi

listing "$P" >"$TMP/list.got"
expected_listing "$SRC" >"$TMP/list.want"
if cmp -s "$TMP/list.got" "$TMP/list.want"; then
	pass find-listing
else
	fail find-listing "$(diff "$TMP/list.want" "$TMP/list.got" | head -6 | tr '\n' '|')"
fi

# tar: identical archives.  The source has a real hard link, which tar
# must dereference to compare; the mount shares inodes between identical
# files but reports st_nlink 1, so tar must NOT find hard links there even
# without --hard-dereference.
want_tar=$(tar_sum "$SRC" --hard-dereference)
check_eq tar-identical "$(tar_sum "$P")" "$want_tar"
if tar -C "$P" -cf - . | tar -tvf - | grep -q '^h'; then
	fail tar-no-false-hardlinks "tar stored hard links"
else
	pass tar-no-false-hardlinks
fi

check_eq readlink-relative "$(readlink "$P/dangling")" "$(readlink "$SRC/dangling")"
check_eq readlink-absolute "$(readlink "$P/abs-link")" "/absolute/target with space"
check_eq readlink-dir "$(cat "$P/link-to-dir/file")" "in sub"

f=$P/size-4097
check_eq stat-file "$(stat -c '%u %g %X %Y %Z %h %s %b %a %F' "$f")" \
	"0 0 1 1 1 1 4097 9 444 regular file"
check_eq stat-exec "$(stat -c '%a %h' "$P/exec-dir/run.sh")" "555 1"
check_eq stat-dir "$(stat -c '%u %g %Y %a %F' "$P/sub")" "0 0 1 555 directory"
check_eq stat-symlink "$(stat -c '%s %a %h %Y %F' "$P/abs-link")" "27 777 1 1 symbolic link"
check_eq stat-root "$(stat -c '%a %F' "$M")" "555 directory"
check_eq statfs-type "$(stat -f -c '%T' "$M")" "fuseblk"
# shared inode for identical content, distinct for the exec twin
ino() { stat -c %i "$1"; }
if [ "$(ino "$P/twin")" = "$(ino "$P/hardlink-to-twin")" ] && [ "$(ino "$P/twin")" != "$(ino "$P/twin-exec")" ]; then
	pass inode-sharing
else
	fail inode-sharing "twin $(ino "$P/twin") hardlink $(ino "$P/hardlink-to-twin") exec $(ino "$P/twin-exec")"
fi

# xattrs against path-info --json and b3sum
root_digest=$("$CASFS" path-info --json "$SP" | python3 -c \
	'import json,sys; d=json.load(sys.stdin); d=d[0] if isinstance(d,list) else d; print(d["castore"]["digest"])')
check_eq xattr-root-dir "$(getfattr --only-values -n user.castore.directory.digest "$P" 2>/dev/null)" "$root_digest"
check_eq xattr-file "$(getfattr --only-values -n user.castore.blob.digest "$P/size-4097" 2>/dev/null)" \
	"$(b3_of "$SRC/size-4097")"
check_eq xattr-empty-dir "$(getfattr --only-values -n user.castore.directory.digest "$P/empty-dir" 2>/dev/null)" \
	"b3:rxNJufX5oaagQE3qNtzJSZvLJcmtwRK3zJqTyuQfMmI="
check_eq xattr-list-file "$(getfattr -d -m - "$P/twin" 2>/dev/null | grep -c '^user\.castore\.blob\.digest=')" 1
check_errno xattr-missing ENODATA getxattr "$P/twin" user.castore.directory.digest
check_errno xattr-symlink ENODATA lgetxattr "$P/sub/rep3/to-x" user.castore.blob.digest

# exec
check_eq exec-script "$("$P/bin/script" ok 2>&1)" "script says ok"
check_eq exec-binary "$("$P/bin/echo" from the mount 2>&1)" "from the mount"
if "$P/twin" 2>/dev/null; then fail exec-denied "a 0444 file ran"; else pass exec-denied; fi

# writes of any kind: EROFS
check_errno erofs-write EROFS write "$P/twin"
check_errno erofs-create EROFS creat "$P/new-file"
check_errno erofs-create-root EROFS creat "$M/new-file"
check_errno erofs-truncate EROFS trunc "$P/twin"
check_errno erofs-mkdir EROFS mkdir "$P/new-dir"
check_errno erofs-unlink EROFS unlink "$P/twin"
check_errno erofs-rmdir EROFS rmdir "$P/empty-dir"
check_errno erofs-rename EROFS rename "$P/twin" "$P/twin2"
check_errno erofs-link EROFS link "$P/twin" "$P/twin3"
check_errno erofs-symlink EROFS symlink "$P/sym"
check_errno erofs-chmod EROFS chmod "$P/twin"
check_errno erofs-utime EROFS utime "$P/twin"
check_errno erofs-setxattr EROFS setxattr "$P/twin"
check_errno erofs-removexattr EROFS rmxattr "$P/twin"

# names
check_errno enoent-unknown-path ENOENT stat "$M/00000000000000000000000000000000-nothing"
check_errno enoent-not-a-store-path ENOENT stat "$M/hello"
check_errno enoent-bad-hash ENOENT stat "$M/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x"
check_errno enoent-inside ENOENT stat "$P/no-such-file"
check_errno enoent-inside-again ENOENT lstat "$P/no-such-file"
check_errno enotdir-inside ENOTDIR stat "$P/twin/x"
check_errno eperm-list-root EPERM listdir "$M"

# a store path imported while mounted appears (root lookups are not cached
# negatively)
LATE=$("$CASFS" import "$TMP/late" 2>/dev/null)
check_errno late-before ENOENT stat "$M/00000000000000000000000000000000-late"
check_eq late-visible "$(cat "$M/${LATE#/nix/store/}/file" 2>&1)" "late"

# --- --list-root, --threads, concurrency ----------------------------------

M2=$TMP/mnt2
if mount_bg list "$M2" --list-root --threads 16; then
	got=$(ls "$M2" 2>&1 | LC_ALL=C sort | tr '\n' ' ')
	want=$(printf '%s\n' "$BASE" "${LATE#/nix/store/}" | LC_ALL=C sort | tr '\n' ' ')
	check_eq list-root "$got" "$want"
	LATE2=$(mkdir -p "$TMP/late2" && echo x >"$TMP/late2/y" && "$CASFS" import "$TMP/late2" 2>/dev/null)
	if ls "$M2" | grep -qx "${LATE2#/nix/store/}"; then pass list-root-late; else fail list-root-late "new store path not listed"; fi

	# 16 processes reading, listing and stat-ing at once, on a fresh mount
	content_sums "$SRC" >"$TMP/sums.want"
	(cd "$SRC" && find . -printf '%P %y %s\n' | LC_ALL=C sort) >"$TMP/stat.want"
	pids=()
	for i in $(seq 16); do
		(
			content_sums "$M2/$BASE" >"$TMP/sums.$i" 2>&1
			(cd "$M2/$BASE" && find . -printf '%P %y %s\n' | LC_ALL=C sort) >"$TMP/stat.$i" 2>&1
			ls -laR "$M2/$BASE" >/dev/null 2>&1
		) &
		pids+=($!)
	done
	bad=0
	for i in $(seq 16); do
		wait "${pids[$((i - 1))]}"
		cmp -s "$TMP/sums.$i" "$TMP/sums.want" || bad=$((bad + 1))
		# directories and symlinks have other sizes on the mount; compare files
		grep -a ' f ' "$TMP/stat.$i" | cmp -s - <(grep -a ' f ' "$TMP/stat.want") || bad=$((bad + 1))
	done
	check_eq concurrent-16 "$bad mismatches" "0 mismatches"
	unmount "$M2" "$TMP/list.log" && pass unmount-clean || fail unmount-clean "daemon did not exit"
else
	fail mount-list-root "$(tail -2 "$TMP/list.log")"
fi

# --- a corrupted blob: EIO, logged, the rest keeps working ------------------

unmount "$M" "$TMP/main.log" || fail unmount-main "daemon did not exit"
digest=$(getfattr --only-values -n user.castore.blob.digest "$SRC/corrupt-me" 2>/dev/null)
b3=$(b3_of "$SRC/corrupt-me")
hex=$(b3sum --no-names "$SRC/corrupt-me")
blob=$CASFS_STORE/blobs/${hex:0:2}/${hex:2}
if [ -f "$blob" ]; then
	chmod u+w "$blob"
	# same size, one byte different
	printf 'O' | dd of="$blob" bs=1 seek=0 count=1 conv=notrunc 2>/dev/null
	mount_bg corrupt "$M"
	check_errno corrupt-eio EIO read "$P/corrupt-me"
	check_errno corrupt-eio-again EIO read "$P/corrupt-me"
	check_eq corrupt-others-fine "$(cat "$P/bystander" 2>&1)" "a bystander"
	if grep -q "$b3" "$TMP/corrupt.log"; then pass corrupt-logged; else fail corrupt-logged "no line naming $b3: $(head -2 "$TMP/corrupt.log")"; fi
	# --no-verify serves it (the user asked for it)
	unmount "$M" "$TMP/corrupt.log"
	mount_bg noverify "$M" --no-verify
	check_eq no-verify-serves "$(head -c 4 "$P/corrupt-me")" "Only"
	unmount "$M" "$TMP/noverify.log"
	cp "$SRC/corrupt-me" "$blob"
else
	fail corrupt-setup "blob file $blob not found (layout changed?)"
fi
: "$digest"

# --- signals, a killed daemon, mount errors ----------------------------------

LOGS+=("$TMP/fg.log")
MOUNTS+=("$M")
"$CASFS" mount "$M" 2>>"$TMP/fg.log" &
fg=$!
PIDS+=("$fg")
if wait_mounted "$M"; then
	cat "$P/twin" >/dev/null
	kill -TERM "$fg"
	wait "$fg"
	rc=$?
	if [ "$rc" -eq 0 ] && ! mountpoint -q "$M"; then pass sigterm-unmounts; else fail sigterm-unmounts "exit $rc, mounted: $(mountpoint "$M")"; fi
else
	fail sigterm-unmounts "foreground mount never appeared: $(tail -2 "$TMP/fg.log")"
fi

"$CASFS" mount "$M" 2>>"$TMP/fg.log" &
fg=$!
PIDS+=("$fg")
if wait_mounted "$M"; then
	kill -KILL "$fg"
	wait "$fg" 2>/dev/null
	check_errno killed-enotconn ENOTCONN stat "$P"
	"$CASFS" mount "$M" --background 2>"$TMP/dead.err"
	rc=$?
	if [ "$rc" -eq 1 ] && grep -q "fusermount3 -u" "$TMP/dead.err"; then pass killed-clear-error; else fail killed-clear-error "exit $rc: $(cat "$TMP/dead.err")"; fi
	fusermount3 -u "$M"
	if mount_bg remount "$M" && [ "$(cat "$P/twin")" = "same bytes" ]; then pass killed-remount; else fail killed-remount "$(tail -2 "$TMP/remount.log")"; fi
else
	fail killed-daemon "foreground mount never appeared"
fi

# mount errors: one line, exit 1 (busy: $M is still mounted here)
expect_error() { # NAME PATTERN ARGS...
	local name=$1 pat=$2 rc
	shift 2
	"$CASFS" mount "$@" >"$TMP/err.out" 2>"$TMP/err.err"
	rc=$?
	if [ "$rc" -eq 1 ] && [ "$(wc -l <"$TMP/err.err")" -eq 1 ] && grep -qE "^casfs mount: .*$pat" "$TMP/err.err" && [ ! -s "$TMP/err.out" ]; then
		pass "$name"
	else
		fail "$name" "exit $rc: $(head -3 "$TMP/err.err" | tr '\n' '|')"
	fi
}
expect_error error-missing "does not exist" "$TMP/nope" --background
expect_error error-not-dir "not a directory" "$SRC/twin" --background
expect_error error-busy "busy" "$M" --background
expect_error error-busy-fg "busy" "$M"
mkdir -p "$TMP/m3"
expect_error error-store "cannot open store" "$TMP/m3" --store "$TMP/no-store" --background
"$CASFS" mount >/dev/null 2>&1
check_eq usage-exit "$?" 2
# Bad numbers for --threads and --prefetch: exit 2, one line naming the option.
for bad in "--threads 0" "--threads 1025" "--threads x" "--prefetch 65" "--prefetch -1" "--prefetch 3x"; do
	# shellcheck disable=SC2086 # option and value
	"$CASFS" mount "$TMP/m3" $bad >"$TMP/usage.out" 2>"$TMP/usage.err"
	rc=$?
	opt=${bad%% *}
	if [ "$rc" -eq 2 ] && grep -q -- "^casfs mount: $opt wants a number" "$TMP/usage.err" && [ ! -s "$TMP/usage.out" ] &&
		! mountpoint -q "$TMP/m3"; then
		pass "usage-bad-number $bad"
	else
		fail "usage-bad-number $bad" "exit $rc: $(head -2 "$TMP/usage.err" | tr '\n' '|')"
	fi
done
"$CASFS" mount --help >/dev/null 2>&1
check_eq help-exit "$?" 0
unmount "$M" "$TMP/remount.log" || fail unmount-remount "daemon did not exit"

# -v -v given before the command reaches libfuse's debug trace
mkdir -p "$TMP/mdebug"
MOUNTS+=("$TMP/mdebug")
if "$CASFS" -v -v mount "$TMP/mdebug" --background 2>"$TMP/debug.trace"; then
	cat "$TMP/mdebug/$BASE/twin" >/dev/null
	unmount "$TMP/mdebug" "$TMP/debug.trace" || fail unmount-debug "daemon did not exit"
	if grep -q 'opcode: LOOKUP' "$TMP/debug.trace"; then pass verbose-twice-debug-trace; else fail verbose-twice-debug-trace "no libfuse trace: $(head -3 "$TMP/debug.trace" | tr '\n' '|')"; fi
else
	fail verbose-twice-debug-trace "mount failed: $(tail -2 "$TMP/debug.trace")"
fi

# --- the daemons' stderr -----------------------------------------------------

bad=$(cat "${LOGS[@]}" 2>/dev/null | grep -E 'AddressSanitizer|LeakSanitizer|runtime error|Segmentation' | head -3)
check_eq daemon-no-sanitizer-reports "$bad" ""
# only the corrupt blob may be logged
other=$(cat "${LOGS[@]}" 2>/dev/null | grep -v "$b3" | grep -v '^$' | head -3)
check_eq daemon-no-other-lines "$other" ""
exit 0
