#!/usr/bin/env python3
# lmdb-put.py STORE TABLE BASENAME HEXBYTES: overwrite the record of store
# path BASENAME ("<32 nixbase32 chars>-name") in table TABLE of the local
# store's LMDB (STORE/db) with HEXBYTES, behind the store's back, to damage
# it.  The record must exist (exit 1 otherwise, so a wrong key cannot pass
# unnoticed).  Nobody may have the store open.  Uses liblmdb through ctypes
# (no Python binding needed).
import ctypes
import sys

ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"


def nixbase32_decode(s, n):
    """The inverse of Nix's printHash32 (last character = lowest bits)."""
    out = bytearray(n)
    for k, c in enumerate(reversed(s)):
        digit = ALPHABET.index(c)
        b = k * 5
        i, j = b // 8, b % 8
        out[i] |= (digit << j) & 0xFF
        if i + 1 < n:
            out[i + 1] |= digit >> (8 - j)
    return bytes(out)


class Val(ctypes.Structure):
    _fields_ = [("mv_size", ctypes.c_size_t), ("mv_data", ctypes.c_void_p)]


def main():
    store, table, base, hexbytes = sys.argv[1:5]
    key = nixbase32_decode(base[:32], 20)
    value = bytes.fromhex(hexbytes)
    lib = ctypes.CDLL("liblmdb.so.0")
    env, txn, dbi = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_uint()

    def ok(rc, what):
        if rc != 0:
            lib.mdb_strerror.restype = ctypes.c_char_p
            sys.exit("lmdb-put: %s: %s" % (what, lib.mdb_strerror(rc).decode()))

    ok(lib.mdb_env_create(ctypes.byref(env)), "env_create")
    ok(lib.mdb_env_set_maxdbs(env, 4), "set_maxdbs")
    ok(lib.mdb_env_open(env, (store + "/db").encode(), 0, 0o644), "env_open")
    ok(lib.mdb_txn_begin(env, None, 0, ctypes.byref(txn)), "txn_begin")
    ok(lib.mdb_dbi_open(txn, table.encode(), 0, ctypes.byref(dbi)), "dbi_open")
    kbuf = ctypes.create_string_buffer(key, len(key))
    vbuf = ctypes.create_string_buffer(value, len(value))
    k = Val(len(key), ctypes.cast(kbuf, ctypes.c_void_p))
    old = Val()
    ok(lib.mdb_get(txn, dbi, ctypes.byref(k), ctypes.byref(old)), "no record for " + base)
    v = Val(len(value), ctypes.cast(vbuf, ctypes.c_void_p))
    ok(lib.mdb_put(txn, dbi, ctypes.byref(k), ctypes.byref(v), 0), "put")
    ok(lib.mdb_txn_commit(txn), "commit")
    lib.mdb_env_close(env)


main()
