/* The castore data model and its protobuf wire format (tvix.castore.v1).
 *
 *   Directory      1 repeated DirectoryNode directories
 *                  2 repeated FileNode      files
 *                  3 repeated SymlinkNode   symlinks
 *   DirectoryNode  1 bytes name, 2 bytes digest (32), 3 uint64 size
 *   FileNode       1 bytes name, 2 bytes digest (32), 3 uint64 size,
 *                  4 bool executable
 *   SymlinkNode    1 bytes name, 2 bytes target
 *   Node           oneof 1 DirectoryNode directory, 2 FileNode file,
 *                        3 SymlinkNode symlink
 *
 * Canonical encoding (what casfs_directory_encode writes, and what the
 * digest is taken over): fields in field-number order, repeated fields in
 * list order, proto3 defaults (0, false, empty bytes) omitted, no unknown
 * fields.  The empty Directory encodes to zero bytes.  A Directory's digest
 * is BLAKE3-256 of its canonical encoding, so it matches tvix bit for bit.
 *
 * The decoders accept any valid protobuf encoding of these messages (fields
 * in any order, repeated scalars, unknown fields skipped) and reject wire
 * violations with -EPROTO (truncated varints/lengths, bad wire types,
 * lengths past the end, varints over 10 bytes).  They do NOT apply the
 * semantic rules; casfs_directory_validate() does:
 *   - each list sorted by name bytewise, no name twice across all lists;
 *   - names 1..255 bytes, not "." or "..", no '/' or NUL;
 *   - digests exactly 32 bytes; symlink targets 1..4095 bytes, no NUL;
 *   - the sum of the entry count and the children's sizes fits in u64.
 * Violations are -EBADMSG with a one-line message in `err`.
 *
 * Memory: names and targets are heap copies, NUL-terminated (a valid name
 * has no NUL; the decoder keeps the length so validation sees the truth).
 * Not thread-safe per object; distinct objects are independent. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../basic/buf.h"
#include "../basic/error.h"
#include "../digest/digest.h"

#define CASFS_NAME_MAX 255
#define CASFS_SYMLINK_TARGET_MAX 4095

enum casfs_node_type {
	CASFS_NODE_NONE = 0,
	CASFS_NODE_DIRECTORY = 1,
	CASFS_NODE_FILE = 2,
	CASFS_NODE_SYMLINK = 3,
};

/* One named node.  For a Node at the root of a PathInfo the name is the
 * store path's basename. */
struct casfs_node {
	enum casfs_node_type type;
	char *name;                   /* owned, NUL-terminated */
	size_t name_len;
	uint8_t digest[CASFS_B3_LEN]; /* directory: Directory digest; file: blob digest */
	bool digest_set;              /* digest holds a value.  Decoder: the digest field
				       * was present with exactly 32 bytes (another length
				       * leaves it false; validation rejects that).
				       * Encoder: the digest is written only if set. */
	uint64_t size;                /* directory: nodes below; file: bytes */
	bool executable;              /* file only */
	char *target;                 /* symlink only: owned, NUL-terminated */
	size_t target_len;
};

/* Each list: the array, its length, and the room the builders know it has
 * (0 when unknown, e.g. a hand-built array: the next append reallocates;
 * never more than the array really has). */
struct casfs_directory {
	struct casfs_node *directories; /* type CASFS_NODE_DIRECTORY */
	size_t n_directories;
	size_t directories_cap;
	struct casfs_node *files;       /* type CASFS_NODE_FILE */
	size_t n_files;
	size_t files_cap;
	struct casfs_node *symlinks;    /* type CASFS_NODE_SYMLINK */
	size_t n_symlinks;
	size_t symlinks_cap;
};

/* Embedded-struct lifecycle; release accepts a zeroed struct. */
void casfs_node_release(struct casfs_node *n);
void casfs_directory_release(struct casfs_directory *d);
/* Deep copy.  -ENOMEM. */
int casfs_node_copy(const struct casfs_node *src, struct casfs_node *ret);
int casfs_directory_copy(const struct casfs_directory *src, struct casfs_directory *ret);

/* Builders: deep-copy `name` (and `target`) into a new entry appended to the
 * matching list.  The caller appends in sorted order or sorts with
 * casfs_directory_sort().  -ENOMEM. */
int casfs_directory_add_directory(struct casfs_directory *d, const char *name, size_t name_len,
				  const uint8_t digest[CASFS_B3_LEN], uint64_t size);
int casfs_directory_add_file(struct casfs_directory *d, const char *name, size_t name_len,
			     const uint8_t digest[CASFS_B3_LEN], uint64_t size, bool executable);
int casfs_directory_add_symlink(struct casfs_directory *d, const char *name, size_t name_len,
				const char *target, size_t target_len);
/* Sort each list by name, bytewise (memcmp, shorter prefix first). */
void casfs_directory_sort(struct casfs_directory *d);

/* Total number of entries. */
size_t casfs_directory_n_entries(const struct casfs_directory *d);
/* The `size` a DirectoryNode pointing at `d` must carry: entries of d plus
 * the sizes of its directory entries.  -EOVERFLOW if it does not fit. */
int casfs_directory_size(const struct casfs_directory *d, uint64_t *ret_size);

/* Bytewise name order as used everywhere (memcmp, then length). */
int casfs_name_cmp(const char *a, size_t alen, const char *b, size_t blen);
/* Validate one entry name / symlink target per the rules above. */
int casfs_name_validate(const char *name, size_t len, struct casfs_error *err);
int casfs_symlink_target_validate(const char *target, size_t len, struct casfs_error *err);

/* Apply the semantic rules.  0 or -EBADMSG (message in err). */
int casfs_directory_validate(const struct casfs_directory *d, struct casfs_error *err);

/* Canonical encoding, appended to `out`.  -ENOMEM. */
int casfs_directory_encode(const struct casfs_directory *d, struct casfs_buf *out);
/* BLAKE3 of the canonical encoding.  -ENOMEM. */
int casfs_directory_digest(const struct casfs_directory *d, uint8_t ret[CASFS_B3_LEN]);
/* Decode any valid encoding; -EPROTO on wire violations, -ENOMEM.  On
 * failure *ret is untouched.  Does not validate. */
int casfs_directory_decode(const uint8_t *p, size_t len, struct casfs_directory *ret,
			   struct casfs_error *err);

/* Node (the oneof wrapper): canonical encoding and decoding.  A Node with
 * no member set decodes to type CASFS_NODE_NONE. */
int casfs_node_encode(const struct casfs_node *n, struct casfs_buf *out);
int casfs_node_decode(const uint8_t *p, size_t len, struct casfs_node *ret,
		      struct casfs_error *err);
/* Validate a standalone node (root of a PathInfo): name rules, digest
 * length, target rules.  -EBADMSG. */
int casfs_node_validate(const struct casfs_node *n, struct casfs_error *err);
