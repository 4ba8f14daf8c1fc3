/* Nix store paths.
 *
 *   /nix/store/<digest>-<name>
 *
 * <digest>: 32 characters of nixbase32 (basic/encoding.h) encoding 20
 * bytes.  <name>: 1..211 characters of [A-Za-z0-9+-._?=], not starting
 * with '.'.  The store directory is fixed to /nix/store (what the Nix on
 * this machine uses, and what tvix assumes).
 *
 * Fixed-output, recursive SHA-256 paths (what `nix-store --add` makes):
 *   fingerprint = "source" (":" <ref>)* ":sha256:" <hex NAR sha256>
 *                 ":/nix/store:" <name>
 *   digest      = XOR-fold of sha256(fingerprint) to 20 bytes
 *                 (byte i of the hash goes into byte i % 20)
 * where <ref> are the absolute reference paths in sorted order.
 *
 * Every store path is made the same way (Nix's makeStorePath):
 *   digest = fold(sha256(<type> ":sha256:" <hex sha256> ":/nix/store:" <name>))
 * with <type> "source[:<ref>...][:self]", "text[:<ref>...]" or "output:out"
 * (ca.h says which hash goes with which).
 *
 * All functions are pure and thread-safe. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../basic/buf.h"
#include "../basic/error.h"
#include "../digest/digest.h"

#define CASFS_STORE_DIR "/nix/store"
#define CASFS_STORE_PATH_DIGEST_LEN 20
#define CASFS_STORE_PATH_HASH_CHARS 32
#define CASFS_STORE_PATH_NAME_MAX 211
/* "<32 chars>-<name>" */
#define CASFS_STORE_PATH_BASENAME_MAX (CASFS_STORE_PATH_HASH_CHARS + 1 + CASFS_STORE_PATH_NAME_MAX)
#define CASFS_STORE_PATH_MAX (sizeof(CASFS_STORE_DIR) + CASFS_STORE_PATH_BASENAME_MAX)

struct casfs_store_path {
	uint8_t digest[CASFS_STORE_PATH_DIGEST_LEN];
	char name[CASFS_STORE_PATH_NAME_MAX + 1];
};

/* Check a store path name.  0 or -EINVAL with a message naming the bad
 * character/length. */
int casfs_store_path_name_validate(const char *name, size_t len, struct casfs_error *err);

/* Parse "<hash>-<name>".  -EINVAL with a message. */
int casfs_store_path_parse_basename(const char *s, size_t len, struct casfs_store_path *ret,
				    struct casfs_error *err);
/* Parse "/nix/store/<hash>-<name>" (no trailing components). */
int casfs_store_path_parse(const char *s, struct casfs_store_path *ret, struct casfs_error *err);
/* Parse "/nix/store/<hash>-<name>[/sub/path]"; *ret_sub points into `s`
 * at the '/' that starts the sub path, or at the terminating NUL. */
int casfs_store_path_parse_prefix(const char *s, struct casfs_store_path *ret, const char **ret_sub,
				  struct casfs_error *err);

/* Format: out must hold CASFS_STORE_PATH_BASENAME_MAX + 1 (basename) or
 * CASFS_STORE_PATH_MAX + 1 (absolute) bytes.  Returns the length. */
size_t casfs_store_path_format_basename(const struct casfs_store_path *sp, char *out);
size_t casfs_store_path_format(const struct casfs_store_path *sp, char *out);

/* The path `nix-store --add` gives a tree with this NAR hash and name.
 * `refs` are absolute store paths (need not be sorted); n_refs may be 0.
 * -EINVAL for an invalid name. */
int casfs_store_path_make_source(const uint8_t nar_sha256[CASFS_SHA256_LEN], const char *name,
				 const char *const *refs, size_t n_refs,
				 struct casfs_store_path *ret, struct casfs_error *err);

/* The general form: `type` as above, `sha256` the hash that goes in. */
int casfs_store_path_make(const char *type, const uint8_t sha256[CASFS_SHA256_LEN],
			  const char *name, struct casfs_store_path *ret, struct casfs_error *err);
/* Append "<base>[:<ref>...][:self]" and a NUL to `out`, refs sorted.
 * -ENOMEM. */
int casfs_store_path_make_type(struct casfs_buf *out, const char *base, const char *const *refs,
			       size_t n_refs, bool self_ref);
