/* tvix.store.v1.PathInfo and its NARInfo, wire format and model.
 *
 *   PathInfo   1 Node node, 2 repeated bytes references (20 bytes each:
 *              store path digests), 3 NARInfo narinfo
 *   NARInfo    1 uint64 nar_size, 2 bytes nar_sha256 (32),
 *              3 repeated Signature signatures, 4 repeated string
 *              reference_names, 5 StorePath deriver, 6 CA ca
 *   Signature  1 string name, 2 bytes data
 *   StorePath  1 string name, 2 bytes digest (20)
 *   CA         1 enum Hash type, 2 bytes digest
 *
 * CA.type follows tvix (nix_compat): 0 NAR_SHA256 (fixed:r:sha256, what
 * `nix-store --add` makes), 1 NAR_SHA1, 2 NAR_SHA512, 3 NAR_MD5,
 * 4 TEXT_SHA256, 5 FLAT_SHA1, 6 FLAT_MD5, 7 FLAT_SHA256, 8 FLAT_SHA512.
 *
 * Canonical encoding as for Directory (field order, defaults omitted; the
 * node, narinfo, deriver and ca sub-messages are written when present, i.e.
 * node.type != NONE, has_narinfo, has_deriver, has_ca).
 *
 * Decoding: wire violations are -EPROTO (as for Directory; also a `string`
 * field that is not UTF-8).  Since the model keeps fixed-size digests in
 * arrays, a message it cannot represent is refused with -EBADMSG at decode
 * time: a reference that is not 20 bytes, a narinfo whose nar_sha256 is
 * absent or not 32 bytes, a deriver whose digest is absent or not 20 bytes,
 * a string field containing NUL.  Repeated sub-messages merge as protobuf
 * says (Node: same member merges, another replaces; narinfo/deriver/ca
 * merge field by field).
 *
 * Validation (casfs_pathinfo_validate): node present and valid
 * (casfs_node_validate); narinfo present; as many reference_names as
 * references, none empty; signatures with a non-empty name and 64 bytes of
 * data (ed25519); deriver (if present) with a non-empty name; ca (if present)
 * of a known type with a digest of that hash's length (md5 16, sha1 20,
 * sha256 32, sha512 64).  That each reference name is a store path basename
 * matching its digest, and that the node name is a store path basename, is
 * checked a layer up (storepath). 
 * Ownership: all pointers owned by the struct; release frees them. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "castore-proto.h"

#define CASFS_STORE_DIGEST_LEN 20

enum casfs_ca_type {
	CASFS_CA_NAR_SHA256 = 0,
	CASFS_CA_NAR_SHA1 = 1,
	CASFS_CA_NAR_SHA512 = 2,
	CASFS_CA_NAR_MD5 = 3,
	CASFS_CA_TEXT_SHA256 = 4,
	CASFS_CA_FLAT_SHA1 = 5,
	CASFS_CA_FLAT_MD5 = 6,
	CASFS_CA_FLAT_SHA256 = 7,
	CASFS_CA_FLAT_SHA512 = 8,
};

struct casfs_signature {
	char *name;       /* owned, NUL-terminated */
	uint8_t *data;    /* owned */
	size_t data_len;
};

struct casfs_pathinfo {
	struct casfs_node node;
	/* Arrays carry the room the decoder knows they have, as in
	 * struct casfs_directory (0: unknown). */
	uint8_t (*references)[CASFS_STORE_DIGEST_LEN]; /* owned array */
	size_t n_references;
	size_t references_cap;

	bool has_narinfo;
	uint64_t nar_size;
	uint8_t nar_sha256[CASFS_SHA256_LEN];
	struct casfs_signature *signatures; /* owned array */
	size_t n_signatures;
	size_t signatures_cap;
	char **reference_names;             /* owned array of owned strings */
	size_t n_reference_names;
	size_t reference_names_cap;
	bool has_deriver;
	char *deriver_name;                 /* owned */
	uint8_t deriver_digest[CASFS_STORE_DIGEST_LEN];
	bool has_ca;
	enum casfs_ca_type ca_type;
	uint8_t *ca_digest;                 /* owned */
	size_t ca_digest_len;
};

void casfs_pathinfo_release(struct casfs_pathinfo *pi);
int casfs_pathinfo_copy(const struct casfs_pathinfo *src, struct casfs_pathinfo *ret);
int casfs_pathinfo_encode(const struct casfs_pathinfo *pi, struct casfs_buf *out);
/* -EPROTO on wire violations; *ret untouched on failure. */
int casfs_pathinfo_decode(const uint8_t *p, size_t len, struct casfs_pathinfo *ret,
			  struct casfs_error *err);
int casfs_pathinfo_validate(const struct casfs_pathinfo *pi, struct casfs_error *err);
