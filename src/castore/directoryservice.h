/* DirectoryService: BLAKE3 digest -> Directory.
 *
 * Directories are put as closures: a list in leaves-first order whose last
 * element is the root.  casfs_directory_put_closure() checks, before the
 * backend sees anything: every directory valid (castore-proto.h rules);
 * every DirectoryNode it contains points at a directory earlier in the list
 * or already present in the service, with a `size` equal to that child's
 * computed size; every directory in the list reachable from the root; no
 * duplicates.  The backend then stores the whole list atomically (all or
 * nothing).  get() re-hashes what it read: a stored message whose digest
 * does not match is -EBADMSG, never returned.
 *
 * The contract, for a stranger writing a backend (memory, local, gRPC
 * in castore/directory-grpc.c):
 *
 *   Errors     >= 0 or -errno, with a one-line message in `err` where the
 *              hook takes one.  -ENOENT means absent and only that (an
 *              unreachable server is -ECONNREFUSED/-ECONNRESET/-ETIMEDOUT);
 *              -EBADMSG damaged or lied-about bytes, naming the digest.
 *   get        fills *ret only on success; what it returns is valid
 *              (casfs_directory_validate) and hashes to the digest asked.
 *   put_many   gets entries already validated as a closure, leaves first,
 *              and stores all of them or none.  A remote backend whose
 *              server wants self-contained streams sends the children it
 *              was not given along (directory-grpc.c).
 *   Timeouts   no hook blocks without bound (-ETIMEDOUT).
 *   Threads    hooks are thread-safe.
 *   Ownership  get fills a caller-owned struct that the caller releases
 *              (casfs_directory_release); entries are borrowed. */
#pragma once

#include <stdint.h>

#include "../basic/error.h"
#include "../proto/castore-proto.h"

struct casfs_directory_service;

/* One directory of a closure, with its digest precomputed by the caller
 * of the backend hook (the wrapper). */
struct casfs_directory_entry {
	const struct casfs_directory *dir;
	uint8_t digest[CASFS_B3_LEN];
	const uint8_t *encoded; /* canonical encoding */
	size_t encoded_len;
};

struct casfs_directory_service_ops {
	const char *name;
	/* -ENOENT if absent, -EBADMSG if stored bytes are damaged. */
	int (*get)(struct casfs_directory_service *s, const uint8_t digest[CASFS_B3_LEN],
		   struct casfs_directory *ret, struct casfs_error *err);
	/* 0 if present, -ENOENT if not. */
	int (*has)(struct casfs_directory_service *s, const uint8_t digest[CASFS_B3_LEN]);
	/* Store already-validated entries atomically. */
	int (*put_many)(struct casfs_directory_service *s, const struct casfs_directory_entry *e,
			size_t n, struct casfs_error *err);
	/* Every stored digest; negative return from cb stops. May be NULL. */
	int (*list)(struct casfs_directory_service *s,
		    int (*cb)(const uint8_t digest[CASFS_B3_LEN], void *userdata), void *userdata);
	void (*free)(struct casfs_directory_service *s);
};

struct casfs_directory_service {
	const struct casfs_directory_service_ops *ops;
};

static inline int casfs_directory_get(struct casfs_directory_service *s,
				      const uint8_t d[CASFS_B3_LEN], struct casfs_directory *ret,
				      struct casfs_error *err)
{
	return s->ops->get(s, d, ret, err);
}

static inline int casfs_directory_has(struct casfs_directory_service *s,
				      const uint8_t d[CASFS_B3_LEN])
{
	return s->ops->has(s, d);
}

static inline void casfs_directory_service_free(struct casfs_directory_service *s)
{
	if (s)
		s->ops->free(s);
}

/* Validate and store a closure (leaves first, root last).  On success the
 * root digest is written to ret_root.  -EBADMSG with a message naming the
 * offending directory/entry for any violation. */
int casfs_directory_put_closure(struct casfs_directory_service *s,
				const struct casfs_directory *dirs, size_t n,
				uint8_t ret_root[CASFS_B3_LEN], struct casfs_error *err);

/* Walk the closure of `root`, root first (breadth-first), each directory
 * once, calling cb with its digest and content.  -ENOENT/-EBADMSG if a
 * directory is missing or damaged (message names it). */
int casfs_directory_get_closure(struct casfs_directory_service *s,
				const uint8_t root[CASFS_B3_LEN],
				int (*cb)(const uint8_t digest[CASFS_B3_LEN],
					  const struct casfs_directory *d, void *userdata),
				void *userdata, struct casfs_error *err);

/* The memory backend. */
int casfs_directory_service_memory_new(struct casfs_directory_service **ret);
