#!/bin/sh
# make fresh-check: prove the README on a machine nobody has touched.
#
# Builds a minimal Debian 12 root (debootstrap --variant=minbase, plus git,
# as a new user who only cloned the repo would have), copies a clean clone of
# HEAD into it, and runs the two commands of the README's first sh block in
# it, as root, with /dev bound and /proc, /sys and a tmpfs /tmp mounted.
# Prints the inner suite's "N passed, N failed" line; exits non-zero when
# either command fails.  Everything it mounted is unmounted and every
# process left inside the root is killed on the way out, even on failure.
#
# The pristine root is cached as a tarball in /var/tmp (a rerun unpacks it in
# seconds), and so are the .debs the inner set-up downloads.  The mirror is
# read from this machine's apt sources at run time.
#
#   CASFS_FRESH_CACHE   cache directory (default /var/tmp/casfs-fresh-cache)
#   CASFS_FRESH_KEEP=1  keep the root after the run (for a look inside)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cache=${CASFS_FRESH_CACHE:-/var/tmp/casfs-fresh-cache}
suite=bookworm

die() { echo "fresh-check: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot, mounts)"
sh "$top/scripts/deps.sh" debootstrap git

# --- the mirror, from this machine's apt sources --------------------------
# Prints "URI SUITE" for each Debian source of the given suite, one-line
# (.list) and deb822 (.sources) formats both.
apt_sources() {
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk '$1 == "deb" { print $2, $3 }'
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk 'function flush() { if (types ~ /(^| )deb( |$)/) for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) print u[i], s[j]; nu = ns = 0; types = "" }
		     /^[ \t]*#/ { next }
		     /^[ \t]*$/ { flush(); next }
		     tolower($1) == "types:" { types = ""; for (i = 2; i <= NF; i++) types = types " " $i; types = types " " }
		     tolower($1) == "uris:" { for (i = 2; i <= NF; i++) u[++nu] = $i }
		     tolower($1) == "suites:" { for (i = 2; i <= NF; i++) s[++ns] = $i }
		     END { flush() }' "$f"
	done
}
mirror_for() { apt_sources | awk -v s="$1" '$2 == s { print $1; exit }'; }
mirror=$(mirror_for "$suite")
[ -n "$mirror" ] || die "no apt source for '$suite' on this machine to take the mirror from"
security=$(mirror_for "$suite-security")

# --- the pristine root, cached ---------------------------------------------
mkdir -p "$cache/debs"
tarball="$cache/root-$suite-minbase-git.tar"
if [ ! -s "$tarball" ]; then
	echo "fresh-check: debootstrap $suite (minbase + git) from $mirror" >&2
	build=$(mktemp -d "$cache/debootstrap.XXXXXX")
	if ! debootstrap --variant=minbase --include=git,ca-certificates "$suite" "$build" "$mirror" \
		>"$cache/debootstrap.log" 2>&1; then
		tail -20 "$cache/debootstrap.log" >&2
		rm -rf "$build"
		die "debootstrap failed (log: $cache/debootstrap.log)"
	fi
	rm -f "$build"/var/cache/apt/archives/*.deb
	tar -C "$build" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
	rm -rf "$build"
fi

root=$(mktemp -d /var/tmp/casfs-fresh-root.XXXXXX)
teardown() {
	rc=$?
	set +e
	# processes still running inside the root (a daemon a test left behind)
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && kill -9 "${p#/proc/}" 2>/dev/null
	done
	# every mount under the root, deepest first
	awk -v r="$root" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r |
		while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
	if awk -v r="$root" '$5 == r || index($5, r "/") == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo; then
		echo "fresh-check: mounts left under $root; not removing it" >&2
		rc=1
	elif [ "${CASFS_FRESH_KEEP:-}" = 1 ]; then
		echo "fresh-check: root kept at $root" >&2
	else
		rm -rf "$root"
	fi
	exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM HUP

tar -C "$root" -xf "$tarball"
chmod 755 "$root" # mktemp made it 0700: other users (tests drop privileges) must reach /usr
{
	echo "deb $mirror $suite main"
	echo "deb $mirror $suite-updates main"
	[ -n "$security" ] && echo "deb $security $suite-security main"
} >"$root/etc/apt/sources.list"
rm -f "$root"/etc/apt/sources.list.d/*
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || :
apt-config dump | grep -i '^Acquire::[a-z]*::Proxy ' >"$root/etc/apt/apt.conf.d/01casfs-proxy" || :

# a clean clone of HEAD, nothing of this working tree's state
git clone -q --no-hardlinks "$top" "$root/root/casfs"
git -C "$root/root/casfs" checkout -q "$(git -C "$top" rev-parse HEAD)"
rm -rf "$root/root/casfs/.git/hooks"

mount --rbind /dev "$root/dev"
mount --make-rslave "$root/dev"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
mount --bind "$cache/debs" "$root/var/cache/apt/archives"

# The README's first sh block, comments dropped: it must be two commands.
awk '/^```(sh|bash)?$/ { if (inb) exit; inb = 1; next } inb' "$top/README.md" |
	sed -e 's/[[:space:]]#.*$//' -e 's/^#.*$//' -e '/^[[:space:]]*$/d' >"$root/root/readme-commands"
n=$(wc -l <"$root/root/readme-commands")
[ "$n" -eq 2 ] || die "the README's first sh block holds $n commands, not two"

log="$cache/last-run.log"
rm -f "$log".*
status=0
i=0
while read -r cmd; do
	i=$((i + 1))
	echo "fresh-check: [$i/2] $cmd" >&2
	chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		/bin/sh -c "cd /root/casfs && $cmd" </dev/null >"$log.$i" 2>&1 || status=$?
	[ "$status" -eq 0 ] || { tail -40 "$log.$i" >&2; echo "fresh-check: '$cmd' failed (exit $status; log $log.$i)" >&2; break; }
done <"$root/root/readme-commands"

line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log.2" 2>/dev/null | tail -1)
# a tool the set-up forgot shows as "command not found" somewhere
missing=$(cat "$log".* "$root"/root/casfs/build*/test-logs/*.log 2>/dev/null | grep -E 'command not found|: not found$' | sort -u | head -5)
if [ -n "$missing" ]; then
	echo "fresh-check: tools missing in the fresh root:" >&2
	echo "$missing" >&2
	status=1
fi
echo "fresh-check (inner suite): ${line:-no result line}"
[ "$status" -eq 0 ] && [ -n "$line" ]
