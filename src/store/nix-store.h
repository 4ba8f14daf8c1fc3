/* The "nix:" substituter: this machine's Nix store (or a chroot store made
 * by `nix copy --to ROOT`), read-only.  casfs_substituter_nix_open() is
 * declared in substituter.h; this header is its contract.
 *
 * Where things are:
 *
 *   nix:        /nix/var/nix/db/db.sqlite     and /nix/store
 *   nix:ROOT    ROOT/nix/var/nix/db/db.sqlite and ROOT/nix/store
 *
 * In both the database names paths by their logical /nix/store/... path.
 *
 * The database (Nix 2.8, libstore/schema.sql; SQLite, WAL journal), the
 * parts read here:
 *
 *   ValidPaths(id integer primary key, path text unique not null,
 *              hash text not null,    "sha256:<64 hex>" (Nix 2.8 writes
 *                                     base16; nixbase32 and SRI also read)
 *              registrationTime integer, deriver text (full .drv path,
 *              NULL or "" = none), narSize integer (NULL = unknown:
 *              refused), ultimate integer (ignored), sigs text (Sig
 *              values separated by spaces, NULL or "" = none), ca text
 *              (as a narinfo's CA, NULL or "" = none))
 *   Refs(referrer, reference)       ValidPaths ids; a path may refer to itself
 *
 * query(digest): the path is looked up by its hash part alone (the name is
 * not known) as a range on the unique path index,
 *   '/nix/store/<hash>-' <= path < '/nix/store/<hash>.'
 * ('.' follows '-' in ASCII), then its references, both in one read
 * transaction so a garbage collection in between cannot mix two states.
 * The narinfo it fills: path, references (sorted by basename, duplicates
 * dropped), nar_sha256/nar_size, deriver, sigs (sorted by their text),
 * ca verbatim, url = the path on disk (ROOT/nix/store/<basename>),
 * compression "none".  Absent: -ENOENT "/nix/store/<hash> is not in the
 * Nix store at ROOT".  A row that does not parse (hash, size, deriver,
 * sigs, ca, a reference): -EBADMSG naming the path and the field.  A
 * database that cannot be read: -EIO with SQLite's message.
 *
 * fetch(ni): ingests ROOT/nix/store/<basename> as casfs_import_tree()
 * reads a tree (import.h) and returns the NAR hash and size it read; the
 * caller (casfs_substitute) compares them with the database's, so a store
 * file changed after registration is caught there.  A registered path
 * missing on disk: -ENOENT with a message.
 *
 * Read-only: the database is opened SQLITE_OPEN_READONLY, without a
 * checkpoint on close; each query is one short read transaction, so a Nix
 * process writing meanwhile is neither blocked nor seen half-way (WAL
 * readers see the last commit), and no snapshot is held between queries
 * (which would stop Nix's checkpoints).  A busy database (a WAL recovery
 * in progress) is retried for up to 10 s.  When the database cannot be
 * opened that way because its -wal/-shm files are absent and cannot be
 * created (a user reading root's store while no Nix process has it open),
 * it is opened immutable instead: no locks, so a Nix that starts writing
 * later is not seen by this handle.
 *
 * Thread safety: one SQLite connection behind a mutex (queries are single
 * index lookups); fetches run concurrently. */
#pragma once

#include "substituter.h"
