/* Between a binary cache's narinfo and a store's PathInfo, and whether a
 * narinfo is to be trusted.
 *
 * The two carry the same facts (tvix's nar-bridge maps them the same way):
 * StorePath = the root node's name, References = references and
 * reference_names, NarHash/NarSize, Sig = signatures, Deriver (the
 * deriver's name without its hash in the PathInfo), CA.  URL, Compression,
 * FileHash, FileSize and System belong to the cache file and are not kept.
 *
 * Trust (what Nix 2.8 asks of a substitute): a narinfo is acceptable if at
 * least one Sig is a valid signature of its fingerprint by a trusted key
 * of that name, or, unsigned, if it is content-addressed in a way that
 * binds the path to its content (ca.h: fixed:r:sha256 is bound by NarHash;
 * fixed:sha256 and text:sha256 need the file's SHA-256 checked once the
 * content is in).  Anything else is refused (-EACCES, "lacks a valid
 * signature"), as Nix does.  NarHash and NarSize are always checked by the
 * caller against the NAR actually read. */
#pragma once

#include "../basic/error.h"
#include "../proto/pathinfo-proto.h"
#include "../storepath/ca.h"
#include "narinfo.h"
#include "nixkey.h"

/* Fill *ret from `ni` with `root` as its node (taken: moved into *ret,
 * left zeroed; its name must already be the store path basename).  -ENOMEM
 * (root then still released), -EBADMSG for a CA that does not parse. */
int casfs_pathinfo_from_narinfo(const struct casfs_narinfo *ni, struct casfs_node *root,
				struct casfs_pathinfo *ret, struct casfs_error *err);

/* Fill *ret (release with casfs_narinfo_release) from a valid PathInfo,
 * with `url` and `compression` for the cache file (copied).  -EBADMSG if
 * the node name, a reference name or the CA is not what a store path
 * needs; -ENOMEM. */
int casfs_narinfo_from_pathinfo(const struct casfs_pathinfo *pi, const char *url,
				const char *compression, struct casfs_narinfo *ret,
				struct casfs_error *err);

enum casfs_narinfo_trust {
	CASFS_TRUST_SIGNED,            /* a trusted key signed it */
	CASFS_TRUST_CONTENT,           /* its CA binds it to its NarHash */
	CASFS_TRUST_FILE_SHA256,       /* trusted once the root file's SHA-256 is
				        * *ret_file_sha256 (caller checks) */
};

/* Decide whether `ni` may be accepted (see above).  Returns a trust level
 * (>= 0), -EACCES ("... lacks a valid signature ...") or -EBADMSG (a CA
 * that is malformed or does not match the path), with a message; -ENOMEM,
 * -EIO.  `trusted` may be empty. */
int casfs_narinfo_check_trust(const struct casfs_narinfo *ni, const struct casfs_nixkey_list *trusted,
			      uint8_t ret_file_sha256[CASFS_SHA256_LEN], struct casfs_error *err);
