/* Content addresses of store paths (Nix 2.8 content-address.cc), the CA
 * field of a narinfo and of a PathInfo.
 *
 *   fixed:r:<algo>:<hash>   recursive: the hash of the NAR
 *   fixed:<algo>:<hash>     flat: the hash of the (single) file's bytes
 *   text:sha256:<hash>      flat sha256 of a text file (builtins.toFile, .drv)
 *
 * <algo> md5, sha1, sha256 or sha512; <hash> nixbase32 (what Nix writes)
 * or hex.  The store path a CA gives (makeFixedOutputPathFromCA):
 *
 *   fixed:r:sha256   type "source[:<ref>...][:self]", the hash itself
 *   text:sha256      type "text[:<ref>...]", the hash itself
 *   any other fixed  type "output:out", sha256("fixed:out:" ["r:"]
 *                    <algo> ":" <hex hash> ":"); no references allowed
 *
 * Pure functions, thread-safe. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "../basic/buf.h"
#include "../basic/error.h"
#include "../proto/pathinfo-proto.h"
#include "storepath.h"

#define CASFS_CA_DIGEST_MAX 64

struct casfs_ca {
	enum casfs_ca_type type;
	uint8_t digest[CASFS_CA_DIGEST_MAX];
	size_t len; /* the algorithm's digest length */
};

/* Parse `len` bytes.  -EBADMSG with a message naming what is wrong. */
int casfs_ca_parse(const char *s, size_t len, struct casfs_ca *ret, struct casfs_error *err);
/* Append the text form (nixbase32) to `out`, no NUL.  -EINVAL for an
 * unknown type or a digest of the wrong length, -ENOMEM. */
int casfs_ca_format(const struct casfs_ca *ca, struct casfs_buf *out);
/* From the fields of a PathInfo.  -EBADMSG if the type is unknown or the
 * digest has the wrong length. */
int casfs_ca_from_pathinfo(enum casfs_ca_type type, const uint8_t *digest, size_t len,
			   struct casfs_ca *ret, struct casfs_error *err);

/* What casfs_ca_check() could establish. */
enum casfs_ca_verdict {
	/* fixed:r:sha256: the path is the one the CA gives and the NAR hash
	 * is the CA's hash: the content is bound to the path. */
	CASFS_CA_VERIFIED,
	/* fixed:sha256 and text:sha256: the path matches; the root must be a
	 * regular file whose bytes have this SHA-256 (the caller checks). */
	CASFS_CA_CHECK_FILE_SHA256,
	/* any other algorithm: the path matches, the content cannot be
	 * checked here; trust needs a signature. */
	CASFS_CA_UNCHECKED,
};

/* Check that `path` (with `refs`, which may include the path itself: a
 * self-reference) is the store path `ca` gives, and for recursive sha256
 * that `nar_sha256` is its hash.  Returns a verdict (>= 0) or -EBADMSG
 * with a message ("store path ... does not match its content address"). */
int casfs_ca_check(const struct casfs_ca *ca, const struct casfs_store_path *path,
		   const struct casfs_store_path *refs, size_t n_refs,
		   const uint8_t nar_sha256[CASFS_SHA256_LEN], struct casfs_error *err);
