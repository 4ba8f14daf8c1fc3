#!/bin/sh
# Regenerate the seed corpus of fuzz-outboard: outboards (outboard.h) whose
# CVs are those of the fuzz target's synthetic blobs (zeros, and the
# pattern x * 7 + (x >> 10)), so that casfs_outboard_check passes on them,
# for several group shifts; one with made-up CVs; and one of each
# rejection.  The CVs come from a small BLAKE3 tree in Python, written from
# the spec; each digest is checked against b3sum when it is installed.
# Run from anywhere.
set -eu
out=$(cd "$(dirname "$0")" && pwd)/corpus/outboard
rm -rf "$out"
mkdir -p "$out"
exec python3 - "$out" <<'EOF'
import os, shutil, struct, subprocess, sys

out = sys.argv[1]
IV = [0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
      0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19]
PERM = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8]
CHUNK_START, CHUNK_END, PARENT, ROOT = 1, 2, 4, 8
M = 0xFFFFFFFF

def g(v, a, b, c, d, x, y):
    v[a] = (v[a] + v[b] + x) & M; v[d] ^= v[a]; v[d] = (v[d] >> 16 | v[d] << 16) & M
    v[c] = (v[c] + v[d]) & M; v[b] ^= v[c]; v[b] = (v[b] >> 12 | v[b] << 20) & M
    v[a] = (v[a] + v[b] + y) & M; v[d] ^= v[a]; v[d] = (v[d] >> 8 | v[d] << 24) & M
    v[c] = (v[c] + v[d]) & M; v[b] ^= v[c]; v[b] = (v[b] >> 7 | v[b] << 25) & M

def compress(cv, block, counter, blen, flags):
    m = list(struct.unpack('<16I', block.ljust(64, b'\0')))
    v = cv[:] + IV[:4] + [counter & M, counter >> 32, blen, flags]
    for r in range(7):
        g(v, 0, 4, 8, 12, m[0], m[1]); g(v, 1, 5, 9, 13, m[2], m[3])
        g(v, 2, 6, 10, 14, m[4], m[5]); g(v, 3, 7, 11, 15, m[6], m[7])
        g(v, 0, 5, 10, 15, m[8], m[9]); g(v, 1, 6, 11, 12, m[10], m[11])
        g(v, 2, 7, 8, 13, m[12], m[13]); g(v, 3, 4, 9, 14, m[14], m[15])
        m = [m[p] for p in PERM]
    return [v[i] ^ v[i + 8] for i in range(8)]

def chunk_cv(data, index, flags=0):
    cv, blocks = IV[:], [data[i:i + 64] for i in range(0, len(data), 64)] or [b'']
    for i, b in enumerate(blocks):
        f = (CHUNK_START if i == 0 else 0) | (CHUNK_END | flags if i == len(blocks) - 1 else 0)
        cv = compress(cv, b, index, len(b), f)
    return cv

def parent(l, r, flags=0):
    return compress(IV[:], struct.pack('<16I', *(l + r)), 0, 64, PARENT | flags)

def join(cvs, flags=0):
    # the tree rule: the left subtree is the largest power of two below n
    if len(cvs) == 1:
        return cvs[0]
    left = 1
    while left * 2 < len(cvs):
        left *= 2
    return parent(join(cvs[:left]), join(cvs[left:]), flags)

def subtree_cv(data, chunk_index):
    chunks = [data[i:i + 1024] for i in range(0, len(data), 1024)]
    return join([chunk_cv(c, chunk_index + i) for i, c in enumerate(chunks)])

def cv_bytes(cv):
    return struct.pack('<8I', *cv)

def synth(size, kind):
    if kind == 0:
        return bytes(size)
    return bytes((x * 7 + (x >> 10)) & 0xFF for x in range(size))

def header(shift, size, magic=b'casfsob1', reserved=bytes(7)):
    return magic + bytes([shift]) + reserved + struct.pack('<Q', size)

def outboard(shift, size, kind):
    data, group = synth(size, kind), 1 << shift
    cvs = [subtree_cv(data[o:o + group], o // 1024) for o in range(0, size, group)]
    digest = cv_bytes(join(cvs, ROOT))
    if shutil.which('b3sum'):
        got = subprocess.run(['b3sum', '--no-names'], input=data, check=True,
                             capture_output=True).stdout.split()[0].decode()
        assert got == digest.hex(), (shift, size, kind, got, digest.hex())
    return header(shift, size) + b''.join(cv_bytes(c) for c in cvs)

def put(name, b):
    assert len(b) < 65536
    with open(os.path.join(out, name), 'wb') as f:
        f.write(b)

# valid: accepted, and checked over the synthetic blob they belong to
put('zeros-s10-2', outboard(10, 1025, 0))
put('pattern-s10-6', outboard(10, 5 * 1024 + 77, 1))
put('pattern-s12-9', outboard(12, 8 * 4096 + 1, 1))
put('zeros-s14-3', outboard(14, 3 * 16384, 0))
put('pattern-s16-3', outboard(16, 2 * 65536 + 100, 1))
put('zeros-s18-2', outboard(18, (1 << 18) + 1, 0))
# valid, made-up CVs: accepted, every check fails
put('madeup-s16-4', header(16, 3 * 65536 + 5) + bytes(range(128)))
good = outboard(10, 3 * 1024 + 10, 1)
put('pattern-s10-4', good)
# invalid
put('empty', b'')
put('magic-only', b'casfsob1')
put('header-only', header(16, 2 * 65536))
put('bad-magic', b'casfsob2' + good[8:])
put('reserved', header(10, 3 * 1024 + 10, reserved=b'\0\0\0\x01\0\0\0') + good[24:])
put('shift-9', header(9, 3 * 512 + 10) + good[24:])
put('shift-19', header(19, 3 * (1 << 19) + 10) + good[24:])
put('one-group', header(16, 65536) + good[24:56])
put('truncated', good[:-1])
put('extra-byte', good + b'\0')
put('extra-cv', good + good[-32:])
put('too-big', header(18, (1 << 42) + 1) + good[24:88])
put('size-wraps', header(18, (1 << 64) - 1))
EOF
