# A tiny QEMU virtual machine for the virtiofs tests.  Source it after
# common.sh and call vm_cleanup from cleanup_hook, so that no QEMU outlives
# the test.
#
#   vm_prepare
#       Once per machine: `apt-get download` Debian's cloud kernel (the
#       version the linux-image-cloud-amd64 metapackage depends on), keep its
#       vmlinuz and the virtio/fuse modules, and build a base initramfs from
#       the installed busybox-static.  Quick when cached.  Returns non-zero
#       with the reason in VM_SKIP_REASON when something cannot be had (the
#       caller SKIPs).  Sets VM_KERNEL and VM_INITRD.
#   vm_run SOCKET TAG GUEST_SCRIPT LOGFILE TIMEOUT
#       Boots with a vhost-user-fs device on SOCKET (the backend must be
#       listening) carrying TAG, runs GUEST_SCRIPT (a file, run by the guest's
#       busybox sh as root, output on the serial console), powers off, and
#       returns when QEMU has exited: 0 when the guest reached its end marker,
#       124 when TIMEOUT seconds passed (QEMU killed), 1 otherwise.  The
#       console goes to LOGFILE, with carriage returns removed.  Sets
#       VM_WALL (seconds, QEMU start to exit).
#   vm_uptime LOGFILE WHAT     the guest uptime the log recorded at WHAT
#                              (init, modules, script, exit)
#
# The guest: /init mounts proc, sys and devtmpfs, loads the modules, prints
# "CASFS-VM: init <uptime>", "CASFS-VM: modules <uptime>", runs the script
# between "CASFS-VM: script <uptime>" and "CASFS-VM: exit <rc> <uptime>",
# then powers off.  The script arrives in a second cpio archive appended
# to the base one (the kernel unpacks concatenated archives in order).
#
# Cache: $CASFS_VM_CACHE, else /var/cache/casfs-vm as root, else
# ${XDG_CACHE_HOME:-~/.cache}/casfs-vm.  Removing it is always safe.

VM_MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci fuse virtiofs"
VM_QEMU_PID=
VM_SKIP_REASON=
VM_WALL=

vm_cache_dir() {
	if [ -n "${CASFS_VM_CACHE:-}" ]; then
		echo "$CASFS_VM_CACHE"
	elif [ "$(id -u)" = 0 ]; then
		echo /var/cache/casfs-vm
	else
		echo "${XDG_CACHE_HOME:-$HOME/.cache}/casfs-vm"
	fi
}

# The kernel package the metapackage points at, e.g. linux-image-6.1.0-57-cloud-amd64.
vm_kernel_package() {
	apt-cache depends linux-image-cloud-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[^ ]*-cloud-amd64\)$/\1/p' | head -n 1
}

# Unpack kernel package PKG (version VER) into the cache as DIR/PKG_VER:
# vmlinuz, lib/*.ko (the modules in load order, built-in ones left out)
# and builtin (the modules that are built into the kernel).
vm_fetch_kernel() { # CACHE PKG VER
	local cache=$1 pkg=$2 ver=$3 work deb kdir m f
	work=$(mktemp -d "$cache/.fetch.XXXXXX") || return 1
	if ! (cd "$work" && timeout 300 apt-get download -q "$pkg=$ver" >dl.log 2>&1); then
		VM_SKIP_REASON="apt-get download $pkg=$ver failed: $(tail -n 1 "$work/dl.log")"
		rm -rf "$work"
		return 1
	fi
	deb=$(ls "$work"/*.deb 2>/dev/null | head -n 1)
	if [ -z "$deb" ] || ! dpkg-deb -x "$deb" "$work/x"; then
		VM_SKIP_REASON="could not unpack $pkg"
		rm -rf "$work"
		return 1
	fi
	kdir=$(ls -d "$work"/x/lib/modules/*/ 2>/dev/null | head -n 1)
	mkdir -p "$work/out/lib"
	cp "$work"/x/boot/vmlinuz-* "$work/out/vmlinuz" || { VM_SKIP_REASON="no vmlinuz in $pkg"; rm -rf "$work"; return 1; }
	: >"$work/out/builtin"
	for m in $VM_MODULES; do
		# module files may spell the name with - or _; Debian 12 ships them uncompressed
		f=$(find "$kdir" -name "$m.ko*" -o -name "$(echo "$m" | tr _ -).ko*" | head -n 1)
		case "$f" in
		*.ko) cp "$f" "$work/out/lib/$m.ko" ;;
		*.ko.xz) xz -dc "$f" >"$work/out/lib/$m.ko" ;;
		*.ko.zst) zstd -qdc "$f" >"$work/out/lib/$m.ko" ;;
		"")
			if grep -qE "/$m\.ko$|/$(echo "$m" | tr _ -)\.ko$" "$kdir/modules.builtin" 2>/dev/null; then
				echo "$m" >>"$work/out/builtin"
			else
				VM_SKIP_REASON="$pkg has no module $m"
				rm -rf "$work"
				return 1
			fi
			;;
		*) VM_SKIP_REASON="$pkg: cannot read $f"; rm -rf "$work"; return 1 ;;
		esac
	done
	rm -rf "$cache/${pkg}_$ver"
	mv "$work/out" "$cache/${pkg}_$ver" && rm -rf "$work"
}

# The base initramfs for kernel dir KDIR: busybox, the modules, /init.
vm_build_initrd() { # KDIR BUSYBOX
	local kdir=$1 bb=$2 root m mods=
	root=$(mktemp -d "$kdir/.initrd.XXXXXX") || return 1
	mkdir -p "$root/bin" "$root/proc" "$root/sys" "$root/dev" "$root/tmp" \
		"$root/lib/modules" "$root/nix/store"
	cp "$bb" "$root/bin/busybox"
	for m in $VM_MODULES; do
		[ -f "$kdir/lib/$m.ko" ] || continue
		cp "$kdir/lib/$m.ko" "$root/lib/modules/"
		mods="$mods $m"
	done
	cat >"$root/init" <<EOF
#!/bin/busybox sh
# casfs test VM init (tests/sh/lib/vm.sh)
/bin/busybox --install -s /bin
export PATH=/bin HOME=/tmp
mount -t devtmpfs none /dev
exec </dev/console >/dev/console 2>&1
mount -t proc none /proc
mount -t sysfs none /sys
up() { cut -d' ' -f1 /proc/uptime; }
echo "CASFS-VM: init \$(up)"
for m in$mods; do
	insmod /lib/modules/\$m.ko || echo "CASFS-VM: insmod \$m failed"
done
echo "CASFS-VM: modules \$(up)"
if [ -f /guest.sh ]; then
	echo "CASFS-VM: script \$(up)"
	sh /guest.sh
	echo "CASFS-VM: exit \$? \$(up)"
else
	echo "CASFS-VM: no /guest.sh"
fi
sync
poweroff -f
EOF
	chmod 755 "$root/init"
	(cd "$root" && find . | "$bb" cpio -o -H newc 2>/dev/null) >"$kdir/initrd.tmp" &&
		mv "$kdir/initrd.tmp" "$kdir/initrd.cpio"
	local rc=$?
	rm -rf "$root"
	return $rc
}

vm_prepare() {
	local cache pkg ver kdir bb f
	VM_SKIP_REASON=
	command -v qemu-system-x86_64 >/dev/null || { VM_SKIP_REASON="no qemu-system-x86_64 (package qemu-system-x86)"; return 1; }
	bb=
	for f in /bin/busybox $(command -v busybox 2>/dev/null); do
		[ -x "$f" ] && ldd "$f" 2>&1 | grep -q 'not a dynamic' && { bb=$f; break; }
	done
	[ -n "$bb" ] || { VM_SKIP_REASON="no static busybox (package busybox-static)"; return 1; }
	VM_BUSYBOX=$bb
	[ -e /dev/shm ] || { VM_SKIP_REASON="no /dev/shm"; return 1; }
	cache=$(vm_cache_dir)
	mkdir -p "$cache" || { VM_SKIP_REASON="cannot create $cache"; return 1; }
	pkg=$(vm_kernel_package)
	if [ -z "$pkg" ] && [ "$(id -u)" = 0 ] && ! ls -d "$cache"/linux-image-*_* >/dev/null 2>&1; then
		timeout 120 apt-get update -qq >/dev/null 2>&1
		pkg=$(vm_kernel_package)
	fi
	if [ -n "$pkg" ]; then
		ver=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null | sed -n 's/^Version: //p' | head -n 1)
		kdir=$cache/${pkg}_$ver
		if [ ! -f "$kdir/vmlinuz" ]; then
			# a newer kernel than cached: fetch it, falling back to what is cached
			if ! vm_fetch_kernel "$cache" "$pkg" "$ver"; then
				kdir=$(ls -d "$cache"/linux-image-*_*/ 2>/dev/null | sort -V | tail -n 1)
				kdir=${kdir%/}
				[ -n "$kdir" ] || return 1
				VM_SKIP_REASON=
			fi
		fi
	else
		kdir=$(ls -d "$cache"/linux-image-*_*/ 2>/dev/null | sort -V | tail -n 1)
		kdir=${kdir%/}
		[ -n "$kdir" ] || { VM_SKIP_REASON="apt knows no linux-image-cloud-amd64 and nothing is cached in $cache"; return 1; }
	fi
	# the initramfs is rebuilt when busybox or this file changed
	local stamp
	stamp=$(cat "$bb" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)
	if [ ! -f "$kdir/initrd.cpio" ] || [ "$(cat "$kdir/initrd.stamp" 2>/dev/null)" != "$stamp" ]; then
		vm_build_initrd "$kdir" "$bb" || { VM_SKIP_REASON="could not build the initramfs"; return 1; }
		echo "$stamp" >"$kdir/initrd.stamp"
	fi
	VM_KERNEL=$kdir/vmlinuz
	VM_INITRD=$kdir/initrd.cpio
	VM_KERNEL_NAME=$(basename "$kdir")
}

vm_cleanup() {
	if [ -n "$VM_QEMU_PID" ]; then
		kill "$VM_QEMU_PID" 2>/dev/null
		local i
		for i in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$VM_QEMU_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$VM_QEMU_PID" 2>/dev/null
		wait "$VM_QEMU_PID" 2>/dev/null
		VM_QEMU_PID=
	fi
}

vm_run() { # SOCKET TAG GUEST_SCRIPT LOGFILE TIMEOUT
	local sock=$1 tag=$2 script=$3 log=$4 limit=$5 dir raw t0 t1 rc deadline
	dir=$(mktemp -d "${TMP:-${TMPDIR:-/tmp}}/casfs-vm.XXXXXX") || return 1
	mkdir "$dir/root"
	cp "$script" "$dir/root/guest.sh"
	(cd "$dir/root" && echo guest.sh | "$VM_BUSYBOX" cpio -o -H newc 2>/dev/null) >"$dir/extra.cpio"
	cat "$VM_INITRD" "$dir/extra.cpio" >"$dir/initrd"
	raw=$dir/console
	t0=$(date +%s.%N)
	qemu-system-x86_64 -accel tcg -smp 1 -m 256M \
		-object memory-backend-memfd,id=mem,size=256M,share=on -numa node,memdev=mem \
		-chardev socket,id=c0,path="$sock" -device vhost-user-fs-pci,chardev=c0,tag="$tag" \
		-kernel "$VM_KERNEL" -initrd "$dir/initrd" \
		-append "console=ttyS0 quiet loglevel=3 panic=-1" \
		-display none -nodefaults -no-reboot -monitor none \
		-chardev file,id=s0,path="$raw" -serial chardev:s0 \
		</dev/null >"$dir/qemu.err" 2>&1 &
	VM_QEMU_PID=$!
	deadline=$(($(date +%s) + limit))
	rc=0
	while kill -0 "$VM_QEMU_PID" 2>/dev/null; do
		if [ "$(date +%s)" -ge "$deadline" ]; then
			rc=124
			break
		fi
		sleep 0.05
	done
	[ $rc = 124 ] && vm_cleanup
	wait "$VM_QEMU_PID" 2>/dev/null
	VM_QEMU_PID=
	t1=$(date +%s.%N)
	VM_WALL=$(echo "$t1 - $t0" | bc | sed 's/^\./0./' | cut -c1-5)
	{ tr -d '\r' <"$raw" 2>/dev/null; sed 's/^/qemu: /' "$dir/qemu.err"; } >"$log"
	rm -rf "$dir"
	[ $rc = 124 ] && { echo "CASFS-VM: host timeout after ${limit}s" >>"$log"; return 124; }
	grep -q '^CASFS-VM: exit ' "$log" || return 1
	return 0
}

vm_uptime() { # LOGFILE WHAT
	sed -n "s/^CASFS-VM: $2 \(.* \)\{0,1\}\([0-9.]*\)\$/\2/p" "$1" | head -n 1
}
