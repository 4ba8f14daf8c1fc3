/* BLAKE3's hash tree, for checking any part of a blob against its digest.
 *
 * BLAKE3 (spec, section 2.1-2.6) splits its input into 1024-byte chunks
 * (the last may be shorter; an empty input is one empty chunk).  Each
 * chunk is compressed block by block (64 bytes) into a chaining value
 * (CV), its chunk index as the counter, CHUNK_START on the first block and
 * CHUNK_END on the last.  CVs are then joined pairwise: a parent node is
 * the compression of left CV || right CV with the PARENT flag and counter
 * 0.  The tree's shape is fixed by the input length alone: a node over n
 * chunks (n > 1) has as its left subtree the largest power of two of
 * chunks that is less than n, and the rest on the right.  The root node
 * (a chunk, when there is only one) carries the ROOT flag, and its output
 * is the digest.  So the digest is plain BLAKE3 of the content, as tvix
 * and b3sum give it.
 *
 * Groups.  Cut the input into groups of 2^k chunks (the last may be
 * shorter).  Every group is a complete subtree of that tree (a power of
 * two of chunks at a multiple of its own size), so the CVs of all groups
 * determine the digest (casfs_b3_root_from_groups), and one group's bytes
 * can be checked by recomputing its CV alone (casfs_b3_subtree_cv).  An
 * input of one group or less has no group CVs: its digest is its hash.
 *
 * Everything here is pure computation on the caller's buffers, with the
 * SIMD code of the official C sources; thread-safe.  Big inputs can be
 * hashed on several threads at once (casfs_b3_hash_threads): the groups
 * are independent subtrees. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "digest.h"

#define CASFS_B3_CHUNK_LEN 1024u
/* The largest subtree casfs_b3_subtree_cv computes in one call. */
#define CASFS_B3_MAX_SUBTREE (256u * CASFS_B3_CHUNK_LEN)

/* The CV of the (non-root) subtree over `len` bytes that starts at chunk
 * `chunk_index` of the input: 0 < len <= CASFS_B3_MAX_SUBTREE, and len a
 * power of two of chunks, or the input's last, shorter, subtree. */
void casfs_b3_subtree_cv(const void *data, size_t len, uint64_t chunk_index,
			 uint8_t ret_cv[CASFS_B3_LEN]);

/* The digest of an input made of `n` >= 2 groups of equal size (a power of
 * two of chunks; the last group may be shorter) from their CVs, in order. */
void casfs_b3_root_from_groups(const uint8_t (*cvs)[CASFS_B3_LEN], size_t n,
			       uint8_t ret_digest[CASFS_B3_LEN]);

/* The CV of a parent node over two child CVs (not the root). */
void casfs_b3_parent_cv(const uint8_t left[CASFS_B3_LEN], const uint8_t right[CASFS_B3_LEN],
			uint8_t ret_cv[CASFS_B3_LEN]);

/* The CVs of the consecutive groups of 1 << shift bytes (a power of two
 * of chunks, at most CASFS_B3_MAX_SUBTREE) in data[0, len), which starts
 * at byte `offset` of its input (a multiple of the group length): every
 * group full but maybe the last, which may be shorter.  Not for an input
 * of one group (its only node is the root).  Up to `threads` threads share
 * the groups (the caller's included; fewer when there is under 1 MiB each,
 * a thread that cannot be started leaves its share to the caller). */
void casfs_b3_group_cvs(const void *data, uint64_t len, unsigned shift, uint64_t offset,
			unsigned threads, uint8_t (*ret_cvs)[CASFS_B3_LEN]);

/* Plain BLAKE3 of data[0, len), the groups (of CASFS_B3_MAX_SUBTREE) shared
 * among up to `threads` threads (the caller's included; 0 or 1: the
 * caller's alone; a thread that cannot be started leaves its share to the
 * caller).  0, or -ENOMEM (nothing written). */
int casfs_b3_hash_threads(const void *data, uint64_t len, unsigned threads,
			  uint8_t ret_digest[CASFS_B3_LEN]);
