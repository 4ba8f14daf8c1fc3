#!/bin/sh
# Seed corpus for fuzz-fuse-request: each file is a reply-room byte, then
# FUSE requests (linux/fuse.h layouts, little-endian) against the store
# fuzz-fuse-request.c builds (its one store path is named below; run
# `casfs import` of that tree to see it change if the tree does).
set -eu
out=${1:-$(dirname "$0")/corpus/fuse-request}
mkdir -p "$out"
/usr/bin/python3 - "$out" <<'PY'
import struct, sys
out = sys.argv[1]
NAME = b"bqf3zjzrbscckk5pfy75r6cf604vwb57-tree"
def req(op, nodeid, body=b""):
    return struct.pack("<IIQQIIII", 40 + len(body), op, 1, nodeid, 0, 0, 0, 0) + body
LOOKUP, FORGET, GETATTR, READLINK, OPEN, READ, RELEASE, STATFS = 1, 2, 3, 5, 14, 15, 18, 17
GETXATTR, LISTXATTR, FLUSH, OPENDIR, READDIR, RELEASEDIR, READDIRPLUS = 22, 23, 25, 27, 28, 29, 44
BATCH_FORGET, SETATTR, MKDIR, INTERRUPT = 42, 4, 9, 36
getattr_in = struct.pack("<IIQ", 0, 0, 0)
read_in = lambda fh, off, size: struct.pack("<QQIIIII", fh, off, size, 0, 0, 0, 0)
open_in = struct.pack("<II", 0, 0)
seeds = {
    "getattr-root": req(GETATTR, 1, getattr_in),
    "lookup": req(LOOKUP, 1, NAME + b"\0"),
    "lookup-missing": req(LOOKUP, 1, b"00000000000000000000000000000000-x\0"),
    "lookup-then-getattr": req(LOOKUP, 1, NAME + b"\0") + req(GETATTR, 2, getattr_in),
    "lookup-file-read": req(LOOKUP, 1, NAME + b"\0") + req(LOOKUP, 2, b"hello.txt\0")
        + req(OPEN, 3, open_in) + req(READ, 3, read_in(0, 0, 4096)) + req(RELEASE, 3, b"\0" * 24),
    "readlink": req(LOOKUP, 1, NAME + b"\0") + req(LOOKUP, 2, b"link\0") + req(READLINK, 3),
    "readdirplus-root": req(OPENDIR, 1, open_in) + req(READDIRPLUS, 1, read_in(0, 0, 4096))
        + req(RELEASEDIR, 1, b"\0" * 24),
    "readdir-path": req(LOOKUP, 1, NAME + b"\0") + req(OPENDIR, 2, open_in)
        + req(READDIR, 2, read_in(0, 0, 8192)),
    "statfs": req(STATFS, 1),
    "xattrs": req(LOOKUP, 1, NAME + b"\0") + req(LISTXATTR, 2, struct.pack("<II", 4096, 0))
        + req(GETXATTR, 2, struct.pack("<II", 4096, 0) + b"user.castore.blob.digest\0"),
    "forget": req(LOOKUP, 1, NAME + b"\0") + req(FORGET, 2, struct.pack("<Q", 1))
        + req(BATCH_FORGET, 0, struct.pack("<II", 1, 0) + struct.pack("<QQ", 2, 1)),
    "writes": req(SETATTR, 1, b"\0" * 88) + req(MKDIR, 1, struct.pack("<II", 0o755, 0) + b"d\0"),
    "flush-interrupt": req(FLUSH, 1, b"\0" * 24) + req(INTERRUPT, 0, struct.pack("<Q", 1)),
    "short-header": struct.pack("<II", 8, 3),
    "len-mismatch": struct.pack("<IIQQIIII", 1000, GETATTR, 1, 1, 0, 0, 0, 0),
    "unknown-opcode": req(9999, 1, b"x" * 16),
}
for name, body in seeds.items():
    for room, tag in ((255, ""), (0, "-small")):
        with open("%s/%s%s" % (out, name, tag), "wb") as f:
            f.write(bytes([room]) + body)
PY
