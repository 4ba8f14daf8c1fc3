/* BlobService: BLAKE3 digest -> bytes.
 *
 * A backend embeds `struct casfs_blob_service` first and fills `ops`.
 * Callers use the casfs_blob_* inline wrappers (the one seam for fault
 * injection and decorators: a cache layer, castore/blob-cache.c, wraps two
 * services and exposes the same table).  Backends: memory, local
 * (store/local-blobs.c), gRPC (castore/blob-grpc.c), cache.
 *
 * The contract, for a stranger writing a backend:
 *
 *   Errors     every hook returns >= 0 or -errno.  -ENOENT means "absent"
 *              and only that: a backend that cannot tell (its server is
 *              down, a socket is missing) says -ECONNREFUSED, -ECONNRESET,
 *              -ETIMEDOUT or -EIO instead, so that nobody concludes a blob
 *              is missing when it is unreachable.  -EBADMSG means damaged
 *              bytes or a server that lied.  Hooks have no error object: a
 *              remote backend logs its server's own words once
 *              (casfs_log_error) and returns the code.
 *   Timeouts   a hook never blocks without bound: remote backends bound
 *              every wait (grpc-client.h) and fail with -ETIMEDOUT.
 *   Threads    every service hook is thread-safe: many threads stat, open
 *              and create at once.  A reader may be pread from several
 *              threads at once (the mount and the export do); a writer
 *              belongs to one thread.
 *   Ownership  readers and writers belong to the caller until close,
 *              commit or abort; digests are copied.
 *
 * Reading.  pread may return fewer bytes than asked (a short read is not
 * an error; 0 only at or past the end); casfs_blob_reader_pread_full
 * loops.  Readers of stored bytes do NOT verify content:
 * casfs_blob_verify() and the outboard checks do, and every consumer that
 * serves bytes uses them -- unless the reader says `verified` (it checked
 * every byte it hands out itself, as the gRPC reader does).
 *
 * Writing.  Writers hash what they are given and commit under the digest
 * they computed; a blob is either fully present or absent (never partial
 * under its name, even after a crash), and committing content that is
 * already present succeeds. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../basic/error.h"
#include "../digest/digest.h"
#include "../digest/outboard.h"

struct casfs_blob_service;
struct casfs_blob_reader;
struct casfs_blob_writer;

struct casfs_blob_service_ops {
	const char *name;
	/* A put costs no more than a stat (a remote service, which keeps one
	 * copy of each blob anyway): writers need not ask first. */
	bool blind_puts;
	/* Size of a present blob; -ENOENT if absent. */
	int (*stat)(struct casfs_blob_service *s, const uint8_t digest[CASFS_B3_LEN],
		    uint64_t *ret_size);
	/* Open for reading; -ENOENT if absent.  *ret owned by the caller
	 * (casfs_blob_reader_close). */
	int (*open)(struct casfs_blob_service *s, const uint8_t digest[CASFS_B3_LEN],
		    struct casfs_blob_reader **ret);
	/* open() for a caller that knows the size the blob should have (a
	 * file node's): a remote backend may then skip asking for it.  The
	 * reader's size is still the blob's own, for the caller to compare.
	 * May be NULL (casfs_blob_open_sized calls open). */
	int (*open_sized)(struct casfs_blob_service *s, const uint8_t digest[CASFS_B3_LEN],
			  uint64_t size, struct casfs_blob_reader **ret);
	/* Start a new blob.  *ret owned by the caller until commit/abort. */
	int (*create)(struct casfs_blob_service *s, struct casfs_blob_writer **ret);
	/* The same for a blob whose digest the caller has just computed from
	 * the very bytes it will write, of a size that needs no outboard
	 * (!casfs_outboard_wanted): the backend may place it by its digest
	 * from the start and need not hash it again.  May be NULL. */
	int (*create_known)(struct casfs_blob_service *s, const uint8_t digest[CASFS_B3_LEN],
			    struct casfs_blob_writer **ret);
	/* Make every committed blob durable (fsync/syncfs).  May be NULL. */
	int (*sync)(struct casfs_blob_service *s);
	/* Call cb for every blob digest present, in no particular order; a
	 * negative return from cb stops and is returned.  May be NULL. */
	int (*list)(struct casfs_blob_service *s,
		    int (*cb)(const uint8_t digest[CASFS_B3_LEN], void *userdata), void *userdata);
	/* The outboard stored for a blob (outboard.h encoding, not checked:
	 * the caller decodes it against the digest), malloc'd into *ret;
	 * -ENOENT if none is stored.  May be NULL: the backend stores none. */
	int (*outboard_get)(struct casfs_blob_service *s, const uint8_t digest[CASFS_B3_LEN],
			    uint8_t **ret, size_t *ret_len);
	/* Store the outboard of a present blob, checked by the caller; if one
	 * is stored already, keep it unless `replace`.  May be NULL; -EROFS
	 * when read-only. */
	int (*outboard_put)(struct casfs_blob_service *s, const uint8_t digest[CASFS_B3_LEN],
			    const struct casfs_outboard *ob, bool replace);
	/* Remove a blob and its outboard (used by verify --repair and tests).
	 * May be NULL. */
	int (*remove)(struct casfs_blob_service *s, const uint8_t digest[CASFS_B3_LEN]);
	void (*free)(struct casfs_blob_service *s);
};

struct casfs_blob_service {
	const struct casfs_blob_service_ops *ops;
};

struct casfs_blob_reader_ops {
	/* Read up to `len` bytes at `off`; returns bytes read, 0 at end, -errno.
	 * Safe from several threads at once (the mount and the export do). */
	ssize_t (*pread)(struct casfs_blob_reader *r, void *buf, size_t len, uint64_t off);
	/* A file descriptor whose bytes [0, size) are the blob (for splice and
	 * sendfile), or -1 when the backend has none.  Owned by the reader. */
	int (*fd)(struct casfs_blob_reader *r);
	void (*close)(struct casfs_blob_reader *r);
};

struct casfs_blob_reader {
	const struct casfs_blob_reader_ops *ops;
	uint64_t size;
	uint8_t digest[CASFS_B3_LEN];
	/* Every byte pread returns was checked against `digest` by the reader
	 * itself (a remote reader does, before handing anything out), so a
	 * consumer need not hash it again.  Backends that serve stored bytes
	 * as they are leave it false. */
	bool verified;
};

struct casfs_blob_writer_ops {
	/* Append bytes.  -errno (e.g. -ENOSPC) leaves the writer to be aborted. */
	int (*write)(struct casfs_blob_writer *w, const void *p, size_t n);
	/* Finish: the blob becomes visible under its BLAKE3 digest.  If
	 * `expected` is not NULL and differs, nothing is stored and -EBADMSG
	 * is returned.  The writer is freed whatever the result. */
	int (*commit)(struct casfs_blob_writer *w, const uint8_t *expected,
		      uint8_t ret_digest[CASFS_B3_LEN], uint64_t *ret_size);
	/* Discard everything written; frees the writer.  Accepts NULL via wrapper. */
	void (*abort)(struct casfs_blob_writer *w);
};

struct casfs_blob_writer {
	const struct casfs_blob_writer_ops *ops;
};

static inline int casfs_blob_stat(struct casfs_blob_service *s, const uint8_t d[CASFS_B3_LEN],
				  uint64_t *ret_size)
{
	return s->ops->stat(s, d, ret_size);
}

static inline int casfs_blob_open(struct casfs_blob_service *s, const uint8_t d[CASFS_B3_LEN],
				  struct casfs_blob_reader **ret)
{
	return s->ops->open(s, d, ret);
}

static inline int casfs_blob_open_sized(struct casfs_blob_service *s, const uint8_t d[CASFS_B3_LEN],
					uint64_t size, struct casfs_blob_reader **ret)
{
	return s->ops->open_sized ? s->ops->open_sized(s, d, size, ret) : s->ops->open(s, d, ret);
}

static inline int casfs_blob_create(struct casfs_blob_service *s, struct casfs_blob_writer **ret)
{
	return s->ops->create(s, ret);
}

static inline int casfs_blob_sync(struct casfs_blob_service *s)
{
	return s->ops->sync ? s->ops->sync(s) : 0;
}

static inline void casfs_blob_service_free(struct casfs_blob_service *s)
{
	if (s)
		s->ops->free(s);
}

static inline ssize_t casfs_blob_reader_pread(struct casfs_blob_reader *r, void *buf, size_t len,
					      uint64_t off)
{
	return r->ops->pread(r, buf, len, off);
}

/* Read [off, off + n) fully: 0, -errno, or -EBADMSG if the blob ends
 * before (shorter than a node says). */
int casfs_blob_reader_pread_full(struct casfs_blob_reader *r, void *buf, size_t n, uint64_t off);

static inline int casfs_blob_reader_fd(struct casfs_blob_reader *r)
{
	return r->ops->fd ? r->ops->fd(r) : -1;
}

static inline void casfs_blob_reader_close(struct casfs_blob_reader *r)
{
	if (r)
		r->ops->close(r);
}

static inline int casfs_blob_writer_write(struct casfs_blob_writer *w, const void *p, size_t n)
{
	return w->ops->write(w, p, n);
}

static inline int casfs_blob_writer_commit(struct casfs_blob_writer *w, const uint8_t *expected,
					   uint8_t ret_digest[CASFS_B3_LEN], uint64_t *ret_size)
{
	return w->ops->commit(w, expected, ret_digest, ret_size);
}

static inline void casfs_blob_writer_abort(struct casfs_blob_writer *w)
{
	if (w)
		w->ops->abort(w);
}

/* Store `n` bytes as one blob (create + write + commit). */
int casfs_blob_put(struct casfs_blob_service *s, const void *p, size_t n,
		   uint8_t ret_digest[CASFS_B3_LEN]);
/* The same for bytes whose BLAKE3 `digest` the caller has computed and
 * that need no outboard (create_known where the backend has it, else a
 * checked create: -EBADMSG if they differ). */
int casfs_blob_put_known(struct casfs_blob_service *s, const void *p, size_t n,
			 const uint8_t digest[CASFS_B3_LEN]);

/* Re-hash a reader's whole content (on up to casfs_b3_threads() threads)
 * and compare with its digest: 0 if it matches, -EBADMSG if not (message
 * names the digest), -errno on I/O errors.  Leaves no state in the
 * reader.  With `ret_ob`, a match also yields the blob's outboard
 * (n == 0 for a blob of one group or less). */
int casfs_blob_verify(struct casfs_blob_reader *r, struct casfs_outboard *ret_ob,
		      struct casfs_error *err);

/* The stored outboard of the open blob `r`, decoded and checked against
 * its digest and size: 0; -ENOENT if none is stored; -EBADMSG (err says
 * what is wrong) or -errno if it cannot be used. */
int casfs_blob_stored_outboard(struct casfs_blob_service *s, struct casfs_blob_reader *r,
			       struct casfs_outboard *ret, struct casfs_error *err);

/* A read-only mapping of the blob's bytes [0, size) through the reader's
 * file descriptor, advised sequential; unmap it with munmap(*ret,
 * r->size).  For commands, not daemons: a blob file truncated while it is
 * mapped raises SIGBUS on access.  0; -ENOTSUP if the reader has no file
 * descriptor or the mapping fails (read instead); -EBADMSG if the file is
 * not the blob's size (*ret_file_size, if not NULL, gets its size). */
int casfs_blob_reader_map(struct casfs_blob_reader *r, const uint8_t **ret,
			  uint64_t *ret_file_size);

/* casfs_blob_verify, hashing a read-only mapping of the reader's file
 * descriptor instead of copies (2x faster on 2 cores) when it has one and
 * the blob is big.  For commands, not daemons: a blob file truncated
 * while it is hashed raises SIGBUS. */
int casfs_blob_verify_mapped(struct casfs_blob_reader *r, struct casfs_outboard *ret_ob,
			     struct casfs_error *err);

/* Where casfs_blob_outboard() found the outboard. */
enum casfs_outboard_source {
	CASFS_OUTBOARD_STORED,  /* stored, and it checked out */
	CASFS_OUTBOARD_BUILT,   /* none stored: built from the blob */
	CASFS_OUTBOARD_REBUILT, /* the stored one was damaged: built anew */
};

/* The checked outboard of the open blob `r` (of more than one group, see
 * casfs_outboard_wanted): the stored one if it decodes and hashes to the
 * digest; else built by hashing the whole blob, which must then match its
 * digest (as casfs_blob_verify; -EBADMSG if not), and stored where the
 * backend can (failures to store are ignored: it is built again next
 * time).  A damaged stored outboard is never used; `stored_err` (may be
 * NULL) gets what was wrong with it.  0, or -errno with err set. */
int casfs_blob_outboard(struct casfs_blob_service *s, struct casfs_blob_reader *r,
			struct casfs_outboard *ret, enum casfs_outboard_source *ret_source,
			struct casfs_error *stored_err, struct casfs_error *err);

/* The memory backend: blobs in a hash table guarded by a mutex. */
int casfs_blob_service_memory_new(struct casfs_blob_service **ret);

/* A read-through cache: `local` in front of `remote` (both borrowed; the
 * contract is at the top of castore/blob-cache.c). */
int casfs_blob_service_cache_new(struct casfs_blob_service *local, struct casfs_blob_service *remote,
				 struct casfs_blob_service **ret);
