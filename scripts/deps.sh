#!/bin/sh
# Install the Debian packages casfs needs to build, test, benchmark and run
# its demo, plus any extra package names given as arguments.  Needs only
# POSIX sh and dpkg/apt (a minimal Debian 12 root has both).  Idempotent:
# does nothing, and no apt-get update, when everything is present.
set -eu
PKGS="build-essential make pkg-config clang libclang-rt-14-dev llvm \
librust-blake3-dev libssl-dev liblmdb-dev libfuse3-dev fuse3 \
liblzma-dev libzstd-dev libbz2-dev xz-utils zstd bzip2 \
libcurl4-openssl-dev libmicrohttpd-dev libsqlite3-dev curl libnghttp2-dev \
python3-grpcio python3-grpc-tools python3-protobuf python3-pkg-resources \
nix-bin attr squashfuse squashfs-tools fio python3 bc time xxd b3sum openssl psmisc \
qemu-system-x86 busybox-static \
$*"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing" >&2
if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
