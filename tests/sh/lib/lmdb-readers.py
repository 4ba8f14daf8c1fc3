#!/usr/bin/env python3
# lmdb-readers.py STORE: print "SLOTS USED" for the reader table of the
# local store's LMDB (STORE/db): its size, and the most slots in use at
# once since it was set up (mdb_env_info's me_numreaders), as a process
# opening it now sees them (while another process has the store open, the
# table is used as it is).  Read-only; liblmdb through ctypes.
import ctypes
import sys


class EnvInfo(ctypes.Structure):
    _fields_ = [("me_mapaddr", ctypes.c_void_p), ("me_mapsize", ctypes.c_size_t),
                ("me_last_pgno", ctypes.c_size_t), ("me_last_txnid", ctypes.c_size_t),
                ("me_maxreaders", ctypes.c_uint), ("me_numreaders", ctypes.c_uint)]


lib = ctypes.CDLL("liblmdb.so.0")
env, info = ctypes.c_void_p(), EnvInfo()
MDB_RDONLY = 0x20000
rc = lib.mdb_env_create(ctypes.byref(env))
if rc == 0:
    rc = lib.mdb_env_set_maxdbs(env, 4)
if rc == 0:
    rc = lib.mdb_env_open(env, (sys.argv[1] + "/db").encode(), MDB_RDONLY, 0o644)
if rc == 0:
    rc = lib.mdb_env_info(env, ctypes.byref(info))
if rc != 0:
    lib.mdb_strerror.restype = ctypes.c_char_p
    sys.exit("lmdb-readers: %s" % lib.mdb_strerror(rc).decode())
print(info.me_maxreaders, info.me_numreaders)
lib.mdb_env_close(env)
