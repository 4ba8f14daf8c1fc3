/* The embedded local store: the three services over one directory.
 *
 * On-disk layout, version 2 (DIR is the store directory):
 *
 *   DIR/casfs-store     the marker, exactly "casfs-store-version 2\n".  It is
 *                       written last when a store is created, so a directory
 *                       without it is not (yet) a store.  Version 1 (the
 *                       same layout without outboards/) is read as it is by
 *                       a read-only open, and upgraded by a writable one
 *                       (outboards/ made, then the marker renamed over).
 *                       Any other version or content is refused.
 *   DIR/blobs/XX/REST   one file per blob, named by the lowercase hex of its
 *                       BLAKE3 digest: XX the first byte (256 fan-out
 *                       directories 00..ff, made at creation), REST the other
 *                       62 hex characters.  Content is the blob's bytes,
 *                       nothing else; mode 0444.  Written chunks that are
 *                       all zeros (>= 4 KiB) are left as holes: sparse
 *                       sources stay sparse.
 *   DIR/outboards/XX/REST  the outboard (digest/outboard.h encoding) of
 *                       the blob of the same name, for blobs of more than
 *                       one group; mode 0444.  Written (temp file, then
 *                       renamed) after the blob it belongs to, not
 *                       fsync'd: an outboard is checked against its digest
 *                       whenever it is read, and one that is missing (an
 *                       upgraded store, a crash) or damaged is built again
 *                       from the blob by whoever needs it, and stored
 *                       again when the store is writable (an import of the
 *                       same content, `casfs verify --outboards`, or a
 *                       read through a writable open).
 *   DIR/tmp/            temp files of blobs (and records) being written.
 *                       Anything here is garbage once no process is writing
 *                       (see `lock`).
 *   DIR/unsynced/       unsynced records, one per writing process that has
 *                       linked blob files since its last completed sync
 *                       (below).  Each is a text file (named
 *                       "record.<16 hex>"; recovery reads any name):
 *                         casfs-unsynced 1\n
 *                         boot-id <the kernel's boot_id, or "unknown">\n
 *                         since <seconds>.<9-digit nanoseconds>\n
 *                       and its writer holds flock(LOCK_EX) on it while it
 *                       lives.  Made at creation or by the first writable
 *                       open (stores made before it existed just gain it).
 *   DIR/lock            advisory flock(2): every process that has the store
 *                       open for writing holds LOCK_SH; opening for writing
 *                       empties tmp/ and recovers unsynced/ only if LOCK_EX
 *                       can be had at once.
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
 * kept (EEXIST is success; a re-import neither re-hashes nor stats it
 * twice); one with another size (a crash-truncated file) is replaced.
 * Readers get a plain file descriptor (for splice).
 *
 * Crash safety of that trust.  A power cut between a link and the syncfs
 * can leave a file with its name and its size but not its bytes (zeros,
 * or old blocks), which "the right size" would keep for ever.  So no blob
 * file gets its name without a durable record saying "links since `since`
 * may not be on disk":
 *
 *   - Before a process links (or renames) its first blob file after its
 *     last completed sync, it writes a record in tmp/ with the flock held,
 *     fsyncs it, links it into unsynced/ and fsyncs unsynced/ (one fsync
 *     pair per sync cycle, not per blob).  "since" is the earlier of
 *     CLOCK_REALTIME and the new file's ctime (the file system's clock).
 *   - The sync hook snapshots a per-process link counter while no link is
 *     in flight, runs syncfs(), and if no link happened since the
 *     snapshot, unlinks the record (no fsync: a lost unlink only costs a
 *     re-hash).  The next link makes a fresh one.
 *   - A writable open that gets LOCK_EX on `lock` at once (no live writer)
 *     takes each record whose flock it can get (its owner is gone;
 *     records still locked are left alone).  Same boot id: the owner died
 *     but the kernel still has its data, so a syncfs() is enough -- no
 *     blob file is read.  Another boot (or "unknown", or a record that
 *     does not parse, read as "since 0"): the machine went down with the
 *     record in place, so every blob file whose ctime (set by link and
 *     rename) is >= since - 60 s (coarse clocks, small steps) is
 *     re-hashed and removed if its content does not match its name; the
 *     next import writes it again.  Then one syncfs() and the records go.
 *     Read-only opens do none of this.
 *   A file a crash damaged in this way is thus never trusted by a later
 *   commit: recovery runs before any writer can commit (others wait for
 *   LOCK_SH meanwhile).  Not covered: a clock stepped back by more than
 *   the slack between a record's creation and a link.
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

#define CASFS_LOCAL_STORE_VERSION 2
#define CASFS_LOCAL_STORE_MARKER "casfs-store"

/* Open (or, with CASFS_STORE_CREATE from store.h, create) the store in
 * `dir`.  On success the three services are returned, each owned by the
 * caller; they share the open store, which closes when the last of them is
 * freed.  Errors: -ENOENT no store there (and not asked to create);
 * -EBADMSG not a casfs store, or an unknown version (message says which);
 * -errno from the file system or LMDB.  A writable open with no other
 * writer first recovers unsynced records (above): after a crash it may
 * re-hash the blob files linked just before, and fails with -errno if it
 * cannot finish (the records stay for the next open). */
int casfs_local_store_open(const char *dir, unsigned flags,
			   struct casfs_blob_service **ret_blobs,
			   struct casfs_directory_service **ret_directories,
			   struct casfs_pathinfo_service **ret_pathinfos, struct casfs_error *err);
