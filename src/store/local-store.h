/* The embedded local store: the three services over one directory.
 *
 * On-disk layout, version 1 (DIR is the store directory):
 *
 *   DIR/casfs-store     the marker, exactly "casfs-store-version 1\n".  It is
 *                       written last when a store is created, so a directory
 *                       without it is not (yet) a store.  Any other version
 *                       or content is refused.
 *   DIR/blobs/XX/REST   one file per blob, named by the lowercase hex of its
 *                       BLAKE3 digest: XX the first byte (256 fan-out
 *                       directories 00..ff, made at creation), REST the other
 *                       62 hex characters.  Content is the blob's bytes,
 *                       nothing else; mode 0444.  Written chunks that are
 *                       all zeros (>= 4 KiB) are left as holes: sparse
 *                       sources stay sparse.
 *   DIR/tmp/            temp files of blobs being written.  Anything here is
 *                       garbage once no process is writing (see `lock`).
 *   DIR/lock            advisory flock(2): every process that has the store
 *                       open for writing holds LOCK_SH; opening for writing
 *                       empties tmp/ only if LOCK_EX can be had at once.
 *   DIR/db/             an LMDB environment (data.mdb, lock.mdb) with two
 *                       named databases:
 *                         "directories"  32-byte BLAKE3 digest -> canonical
 *                                        Directory encoding (castore-proto.h)
 *                         "pathinfo"     20-byte store path digest ->
 *                                        PathInfo encoding (pathinfo-proto.h)
 *
 * Writing a blob: a temp file in tmp/ (a named file; O_TMPFILE with
 * CASFS_LOCAL_O_TMPFILE=1), hashed while written, then linked (or renamed) to its final
 * name: a blob file is never partial under its name.  Blobs are NOT fsync'd
 * one by one: the blob service's sync hook does one syncfs(2), which
 * casfs_store_add_pathinfo() calls before committing a PathInfo (LMDB
 * commits are durable), so a store path only appears once everything below
 * it is on disk.  A blob file that already exists with the right size is
 * kept (EEXIST is success); one with another size (a crash-truncated file)
 * is replaced.  Readers get a plain file descriptor (for splice).
 *
 * Directory records are re-hashed on every get (-EBADMSG on mismatch);
 * blobs are verified by their consumers (casfs_blob_verify).
 *
 * Thread safety: all services are thread-safe; several processes may use
 * one store at once (LMDB serialises writers, blob commits are atomic). */
#pragma once

#include "../basic/error.h"
#include "../castore/blobservice.h"
#include "../castore/directoryservice.h"
#include "pathinfoservice.h"

#define CASFS_LOCAL_STORE_VERSION 1
#define CASFS_LOCAL_STORE_MARKER "casfs-store"

/* Open (or, with CASFS_STORE_CREATE from store.h, create) the store in
 * `dir`.  On success the three services are returned, each owned by the
 * caller; they share the open store, which closes when the last of them is
 * freed.  Errors: -ENOENT no store there (and not asked to create);
 * -EBADMSG not a casfs store, or an unknown version (message says which);
 * -errno from the file system or LMDB. */
int casfs_local_store_open(const char *dir, unsigned flags,
			   struct casfs_blob_service **ret_blobs,
			   struct casfs_directory_service **ret_directories,
			   struct casfs_pathinfo_service **ret_pathinfos, struct casfs_error *err);
