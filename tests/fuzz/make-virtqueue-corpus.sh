#!/bin/sh
# Regenerate the seed corpus of fuzz-virtqueue: small guests (the input
# layout is in fuzz-virtqueue.c) with well-formed chains (across regions,
# a full ring, avail and used indices wrapping past 65535, several pops
# with replies) and one of each refusal (loop, bad next, bad head, outside
# memory, crossing adjacent regions, addr + len wrapping, readable after
# writable, indirect, avail idx jumping, bad num, rings outside memory or
# misaligned).  Run from anywhere.
set -eu
out=$(cd "$(dirname "$0")" && pwd)/corpus/virtqueue
rm -rf "$out"
mkdir -p "$out"
exec python3 - "$out" <<'PY'
import os, struct, sys

out = sys.argv[1]
RS = 4096
GPA0 = 0x10000
NEXT, WRITE, INDIRECT = 1, 2, 4
DESC, AVAIL, USED = 0x000, 0x800, 0xa00   # offsets in region 0 (num <= 64)


def gpa1(adjacent=False):
    return GPA0 + RS + (0 if adjacent else 0x10000)


class Guest:
    def __init__(self, log2=4, base=0, two=True, adjacent=False, pops=15, reply=37,
                 raw_num=None, offs=(DESC, AVAIL, USED)):
        self.num = raw_num if raw_num is not None else 1 << log2
        b0 = (0x80 | raw_num) if raw_num is not None else log2
        b1 = (1 if two else 0) | (2 if adjacent else 0) | ((pops - 1) << 4)
        self.hdr = struct.pack('<BBHHHHB5x', b0, b1, base, *offs, reply)
        self.mem = [bytearray(RS), bytearray(RS)]
        self.offs = offs
        self.avail_idx = base
        self.adjacent = adjacent
        self.poke16(offs[1] + 2, base)
        self.poke16(offs[2] + 2, base)

    def poke16(self, off, v):
        self.mem[0][off:off + 2] = struct.pack('<H', v & 0xffff)

    def desc(self, i, addr, ln, flags=0, nxt=0):
        o = self.offs[0] + 16 * i
        self.mem[0][o:o + 16] = struct.pack('<QIHH', addr, ln, flags, nxt)

    def offer(self, head):
        self.poke16(self.offs[1] + 4 + 2 * (self.avail_idx % self.num), head)
        self.avail_idx += 1
        self.poke16(self.offs[1] + 2, self.avail_idx)

    def data(self, region, off, b):
        self.mem[region][off:off + len(b)] = b

    def write(self, name, trim=True):
        body = bytes(self.mem[0]) + bytes(self.mem[1])
        if trim:
            body = body.rstrip(b'\0')
        with open(os.path.join(out, name), 'wb') as f:
            f.write(self.hdr + body)


# well-formed: readable in region 0 and 1, writable in 1 and 0; two requests
g = Guest()
g.data(0, 0x400, b'FUSE request header...')
g.data(1, 0x10, b'and its argument')
g.desc(3, GPA0 + 0x400, 22, NEXT, 7)
g.desc(7, gpa1() + 0x10, 16, NEXT, 1)
g.desc(1, gpa1() + 0x100, 64, NEXT | WRITE, 2)
g.desc(2, GPA0 + 0x600, 16, WRITE)
g.offer(3)
g.desc(5, GPA0 + 0x420, 8, NEXT, 6)
g.desc(6, gpa1() + 0x200, 300, WRITE)
g.offer(5)
g.write('good-two-requests')

# a full ring of single-descriptor requests
g = Guest(log2=3)
for i in range(8):
    g.desc(i, GPA0 + 0x400 + 32 * i, 16, WRITE if i % 2 else 0)
    g.offer(7 - i)
g.write('full-ring')

# avail and used indices crossing 65535 -> 0
g = Guest(log2=2, base=65534)
for i in range(4):
    g.desc(i, GPA0 + 0x400 + 8 * i, 4, 0)
    g.offer(i)
g.write('wrap')

# one chain using every descriptor of a 64-entry ring
g = Guest(log2=6)
for i in range(64):
    w = i >= 32
    g.desc(i, (gpa1() if w else GPA0 + 0x1000 - 0x400) + 16 * (i % 32), 16,
           (WRITE if w else 0) | (NEXT if i < 63 else 0), i + 1)
g.offer(0)
g.write('longest-chain')

# rings overlapping each other: used entries land on the avail ring
g = Guest(log2=3, offs=(DESC, AVAIL, AVAIL))
g.desc(0, GPA0 + 0x400, 8, 0)
g.offer(0)
g.offer(0)
g.write('overlapping-rings')

# refusals
def one(name, *descs, **kw):
    g = Guest(**kw)
    for d in descs:
        g.desc(*d)
    g.offer(0)
    g.write(name)

one('loop', (0, GPA0 + 0x400, 4, NEXT, 1), (1, GPA0 + 0x400, 4, NEXT, 0))
one('next-out-of-range', (0, GPA0 + 0x400, 4, NEXT, 16))
one('outside-memory', (0, 0x30000, 4, 0))
one('crossing-adjacent-regions', (0, GPA0 + RS - 8, 16, 0), adjacent=True)
one('len-wraps', (0, 0xfffffffffffffff0, 0x10030, 0))
one('readable-after-writable', (0, GPA0 + 0x400, 4, NEXT | WRITE, 1), (1, GPA0 + 0x400, 4, 0))
one('indirect', (0, gpa1(), 32, INDIRECT))
g = Guest()
g.desc(0, GPA0 + 0x400, 4)
g.poke16(AVAIL + 4, 16)
g.poke16(AVAIL + 2, 1)
g.write('head-out-of-range')
g = Guest(base=100)
g.desc(0, GPA0 + 0x400, 4)
g.poke16(AVAIL + 2, 100 + 17)
g.write('avail-jump')
Guest(raw_num=3).write('num-not-power-of-two')
Guest(raw_num=0).write('num-zero')
Guest(offs=(0xff00, AVAIL, USED)).write('desc-outside')
Guest(offs=(DESC, RS - 36, USED)).write('avail-past-region')
Guest(offs=(DESC, AVAIL, RS - 130)).write('used-past-region')
Guest(offs=(DESC + 8, AVAIL, USED)).write('desc-misaligned')
PY
