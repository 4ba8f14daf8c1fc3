/* Outboards: the chaining values of a blob's groups, so that any byte
 * range can be checked against the blob's BLAKE3 digest without reading
 * the rest (the idea of Bao, on the tree of b3tree.h).
 *
 * A blob larger than one group (CASFS_OUTBOARD_GROUP_LEN) is cut into n >= 2
 * groups of that length, the last maybe shorter; its outboard is the n
 * group CVs, in order.  They hash up to the digest
 * (casfs_b3_root_from_groups), so an outboard is itself checked before it
 * is trusted, and then each group's bytes are checked by recomputing that
 * group's CV alone.  A blob of one group or less has no outboard: it is
 * checked whole, against its digest.
 *
 * Encoding (stored in the local store, and the bytes a remote reader
 * gets), little-endian:
 *
 *   offset  size  field
 *   0       8     magic "casfsob1"
 *   8       1     group_shift: the group length is 1 << group_shift bytes,
 *                 10 (one chunk) .. 18 (CASFS_B3_MAX_SUBTREE)
 *   9       7     zero
 *   16      8     the blob's size, > the group length
 *   24      32*n  the group CVs, n = ceil(size / group length)
 *
 * The group length is chosen by `make bench-b3` (checking speed per group
 * size): 64 KiB hashes at 0.99x the speed of 256 KiB groups while a random
 * 4 KiB read hashes a quarter as much, and the outboard is 1/2048 of the
 * blob.  Decoders accept any group_shift in range.
 *
 * Everything here is thread-safe on distinct objects; a decoded outboard
 * is immutable and may be shared. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../basic/error.h"
#include "digest.h"

#define CASFS_OUTBOARD_GROUP_SHIFT 16
#define CASFS_OUTBOARD_GROUP_LEN (1u << CASFS_OUTBOARD_GROUP_SHIFT)
#define CASFS_OUTBOARD_HEADER_LEN 24
#define CASFS_OUTBOARD_MAGIC "casfsob1"
/* Blobs up to 2^42 bytes (4 TiB): at most 2^26 groups, a 2 GiB outboard at the
 * smallest group. */
#define CASFS_OUTBOARD_MAX_SIZE (UINT64_C(1) << 42)

struct casfs_outboard {
	uint64_t size;      /* the blob's */
	unsigned shift;     /* log2 of the group length */
	size_t n;           /* groups */
	uint8_t (*cvs)[CASFS_B3_LEN]; /* owned */
};

/* Whether a blob of `size` bytes has an outboard. */
static inline bool casfs_outboard_wanted(uint64_t size)
{
	return size > CASFS_OUTBOARD_GROUP_LEN;
}

static inline uint64_t casfs_outboard_group_len(const struct casfs_outboard *ob)
{
	return UINT64_C(1) << ob->shift;
}

void casfs_outboard_release(struct casfs_outboard *ob);

/* The encoding of `ob` (above), malloc'd into *ret.  0 or -ENOMEM. */
int casfs_outboard_encode(const struct casfs_outboard *ob, uint8_t **ret, size_t *ret_len);

/* Parse `len` bytes of an encoded outboard and check that they belong to
 * the blob `digest` of `size` bytes: the header must be well-formed, say
 * `size`, hold exactly its CVs, and the CVs must hash to `digest`.  The
 * size itself is the caller's (the tree's shape depends only on the number
 * of groups): a wrong size with as many groups passes here, and fails the
 * check of the last group's bytes.  Fills
 * *ret (release it) and returns 0; -EBADMSG with a message saying what is
 * wrong; -ENOMEM. */
int casfs_outboard_decode(const void *p, size_t len, const uint8_t digest[CASFS_B3_LEN],
			  uint64_t size, struct casfs_outboard *ret, struct casfs_error *err);

/* Check the bytes of groups [first, first + count) of a blob: `data` holds
 * them, from group `first`'s start, and must be exactly their length (the
 * last group may be shorter).  Up to `threads` threads share the work (0
 * or 1: the caller's alone).  Returns 0; -EBADMSG with *ret_bad the first
 * group whose bytes do not match; -EINVAL if the groups are not all the
 * blob's; -ENOMEM.  Any error means: do not serve the bytes. */
int casfs_outboard_check(const struct casfs_outboard *ob, size_t first, size_t count,
			 const void *data, unsigned threads, size_t *ret_bad);

/* Hashing a stream into its digest and its outboard at once.  Bytes come
 * in any pieces; full groups are hashed straight from the caller's buffer
 * (on up to `threads` threads when a piece holds many), only a partial
 * group is copied.  Not thread-safe; release it whatever happens. */
struct casfs_b3_stream {
	unsigned threads;
	uint64_t total;
	uint8_t *pending;   /* CASFS_OUTBOARD_GROUP_LEN bytes, once needed */
	size_t pending_len;
	uint8_t (*cvs)[CASFS_B3_LEN];
	size_t n, cap;
	int error;          /* -ENOMEM once an allocation failed */
};

void casfs_b3_stream_init(struct casfs_b3_stream *s, unsigned threads);
/* 0, or -ENOMEM (kept: final fails too). */
int casfs_b3_stream_update(struct casfs_b3_stream *s, const void *p, size_t n);
/* The digest of everything given, and, if `ret_ob` is not NULL, the
 * outboard (ret_ob->n == 0 for a stream of one group or less: no
 * outboard).  Releases the stream's buffers.  0 or -ENOMEM. */
int casfs_b3_stream_final(struct casfs_b3_stream *s, uint8_t ret_digest[CASFS_B3_LEN],
			  struct casfs_outboard *ret_ob);
void casfs_b3_stream_release(struct casfs_b3_stream *s);

/* Threads worth using for hashing on this machine (online CPUs, at most
 * 8). */
unsigned casfs_b3_threads(void);
