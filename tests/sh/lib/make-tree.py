#!/usr/bin/env python3
"""Build test trees for casfs, to be compared against real Nix.

usage: make-tree.py KIND DIR [SEED]
  tricky   the cases the core issue lists: empty things, exec/non-exec twins,
           dangling symlinks, symlinks to directories, spaces, UTF-8, bytes
           that sort differently signed vs unsigned, NAR keywords as names,
           hard links, repeated identical subtrees
  deep     nesting of 250 levels
  wide     one directory with 50,000 entries
  random   a random tree (the seed is printed)
"""
import os
import random
import sys


def write(path, data, mode=0o644):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def tricky(d):
    os.makedirs(d)
    write(os.path.join(d, "empty"), b"")
    os.mkdir(os.path.join(d, "empty-dir"))
    write(os.path.join(d, "twin"), b"same bytes\n")
    write(os.path.join(d, "twin-exec"), b"same bytes\n", 0o755)
    os.symlink("does/not/exist", os.path.join(d, "dangling"))
    os.mkdir(os.path.join(d, "sub"))
    write(os.path.join(d, "sub", "file"), b"in sub\n")
    os.symlink("sub", os.path.join(d, "link-to-dir"))
    os.symlink("/absolute/target with space", os.path.join(d, "abs-link"))
    write(os.path.join(d, "name with spaces"), b"spaces\n")
    write(os.path.join(d, "ünïcödé-名前"), "utf-8 ✓\n".encode())
    # 0x7f vs 0x80 vs 0xff: signed char order would put 0x80.. first
    for b in (b"a\x7f", b"a\x80", b"a\xff", b"A", b"a", b"aa", b"b", b"_", b"-", b"0"):
        write(os.path.join(d.encode(), b"byte-" + b), b)
    for kw in ("entry", "node", "(", ")", "type", "contents", "nix-archive-1",
               "regular", "directory", "symlink", "target", "executable", "name"):
        write(os.path.join(d, kw), kw.encode())
    os.mkdir(os.path.join(d, "exec-dir"))
    write(os.path.join(d, "exec-dir", "run.sh"), b"#!/bin/sh\necho hello from casfs\n", 0o755)
    os.link(os.path.join(d, "twin"), os.path.join(d, "hardlink-to-twin"))
    # identical subtrees in several places (directory dedup)
    for where in ("rep1", "rep2", os.path.join("sub", "rep3")):
        p = os.path.join(d, where)
        os.makedirs(os.path.join(p, "inner"))
        write(os.path.join(p, "inner", "x"), b"repeated\n")
        os.symlink("inner/x", os.path.join(p, "to-x"))
    # sizes around the 8-byte padding and the import's small/large cut
    for n in (1, 7, 8, 9, 15, 16, 17, 4095, 4096, 4097, (1 << 20), (1 << 20) + 1, 3 << 20):
        write(os.path.join(d, "size-%d" % n), bytes((i * 7 + n) & 0xFF for i in range(n)))


def deep(d, levels=250):
    p = d
    os.makedirs(p)
    for i in range(levels):
        p = os.path.join(p, "d%d" % (i % 10))
        os.mkdir(p)
    write(os.path.join(p, "bottom"), b"deep\n")


def wide(d, n=50000):
    os.makedirs(d)
    for i in range(n):
        if i % 10 == 0:
            os.symlink("f%d" % (i + 1), os.path.join(d, "l%d" % i))
        else:
            write(os.path.join(d, "f%d" % i), b"%d\n" % (i % 97))


def rand_tree(d, seed):
    rng = random.Random(seed)
    alphabet = b"abcdefghijklmnopqrstuvwxyzABC0123456789._- \x80\xc3\xa9\xff"

    def name():
        while True:
            n = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
            if n not in (b".", b".."):
                return n

    def fill(p, depth):
        for _ in range(rng.randint(0, 8)):
            q = os.path.join(p, name())
            if os.path.lexists(q):
                continue
            kind = rng.random()
            if kind < 0.55:
                size = rng.choice([0, 1, 8, rng.randint(0, 5000), rng.randint(0, 300000)])
                write(q, rng.randbytes(size), rng.choice([0o644, 0o755]))
            elif kind < 0.7:
                os.symlink(name(), q)
            elif depth < 6:
                os.mkdir(q)
                fill(q, depth + 1)

    os.makedirs(d)
    fill(d.encode(), 0)


def main():
    kind, d = sys.argv[1], sys.argv[2]
    if kind == "tricky":
        tricky(d)
    elif kind == "deep":
        deep(d)
    elif kind == "wide":
        wide(d)
    elif kind == "random":
        seed = int(sys.argv[3]) if len(sys.argv) > 3 else random.randrange(1 << 32)
        print("seed %d" % seed)
        rand_tree(d, seed)
    else:
        sys.exit("unknown kind " + kind)


main()
