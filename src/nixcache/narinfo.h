/* Nix binary-cache `.narinfo` files (Nix 2.8, libstore/nar-info.cc).
 *
 * Grammar (untrusted input, at most CASFS_NARINFO_MAX_SIZE bytes):
 *
 *   narinfo = line*
 *   line    = name ": " value "\n"        every line ends in "\n", the last too
 *   name    = 1* byte except ":" "\n"     unknown names are ignored
 *   value   = * byte except "\n"          no NUL byte anywhere
 *
 * Fields, in the order Nix writes them (render uses exactly this order):
 *
 *   StorePath: /nix/store/<hash>-<name>      required, once
 *   URL: nar/<filehash>.nar.xz               required (non-empty), once
 *   Compression: xz                          once; absent or empty = "bzip2"
 *   FileHash: sha256:<nixbase32>             optional, once
 *   FileSize: <decimal>                      optional, once
 *   NarHash: sha256:<nixbase32>              required, once
 *   NarSize: <decimal, not 0>                required, once
 *   References: <basename> <basename> ...    once; written (empty) when none
 *   Deriver: <basename of the .drv>          optional, once; "unknown-deriver" = none
 *   System: x86_64-linux                     optional, once; empty = none
 *   Sig: <keyname>:<base64 of 64 bytes>      repeatable
 *   CA: fixed:r:sha256:<nixbase32> | text:sha256:...   optional, once; kept verbatim
 *
 * Hashes are read as "sha256:" followed by 52 nixbase32, 64 hex or 44
 * base64 characters, or as SRI "sha256-<base64>"; they are written as
 * "sha256:<nixbase32>".  Decimals are 1..20 ASCII digits without overflow.
 *
 * References and signatures are sets in Nix (std::set): the parser sorts
 * them (references by basename, signatures by their "name:base64" text)
 * and drops exact duplicates, and the renderer writes them in that order
 * whatever order the struct holds them in, so a narinfo Nix wrote parses
 * and renders back byte for byte.
 *
 * Signature fingerprint (store-api.cc ValidPathInfo::fingerprint):
 *
 *   "1;" <store path> ";sha256:" <nixbase32 NarHash> ";" <NarSize> ";"
 *        <full reference paths, sorted, joined with ",">
 *
 * URL, Compression and FileHash are not signed.
 *
 * All functions are thread-safe on distinct objects (no global state). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../basic/buf.h"
#include "../basic/encoding.h"
#include "../basic/error.h"
#include "../digest/digest.h"
#include "../storepath/storepath.h"

#define CASFS_NARINFO_MAX_SIZE (1024 * 1024) /* larger input: -EOVERFLOW */
#define CASFS_NARINFO_MAX_REFERENCES 16384    /* more: -EOVERFLOW */
#define CASFS_NARINFO_MAX_SIGS 256            /* more: -EOVERFLOW */
#define CASFS_NIXKEY_NAME_MAX 255             /* key names: 1..255 bytes */
#define CASFS_NIXSIG_LEN 64                   /* Ed25519 signature */

/* "name:base64(64 bytes)".  A name is 1..CASFS_NIXKEY_NAME_MAX bytes with
 * no ':' and no byte <= 0x20 or 0x7f (key lists are space-separated). */
struct casfs_narinfo_sig {
	char name[CASFS_NIXKEY_NAME_MAX + 1];
	uint8_t sig[CASFS_NIXSIG_LEN];
};
/* Room for a formatted signature, with the NUL. */
#define CASFS_NIXSIG_STR_MAX (CASFS_NIXKEY_NAME_MAX + 1 + CASFS_BASE64_LEN(CASFS_NIXSIG_LEN) + 1)

/* Owned strings are heap copies released by casfs_narinfo_release(); a
 * caller building one by hand sets them with strdup (or leaves them NULL
 * where optional). */
struct casfs_narinfo {
	struct casfs_store_path path;
	char *url;            /* owned, non-empty */
	char *compression;    /* owned, non-empty ("bzip2" when absent) */
	bool has_file_hash;
	uint8_t file_sha256[CASFS_SHA256_LEN];
	bool has_file_size;
	uint64_t file_size;
	uint8_t nar_sha256[CASFS_SHA256_LEN];
	uint64_t nar_size;    /* never 0 after a successful parse */
	struct casfs_store_path *references; /* owned array; sorted after parse */
	size_t n_references;
	bool has_deriver;
	struct casfs_store_path deriver;
	char *system;         /* owned, NULL if absent */
	struct casfs_narinfo_sig *sigs; /* owned array; sorted after parse */
	size_t n_sigs;
	char *ca;             /* owned verbatim CA value, NULL if absent */
};

/* Parse `len` bytes of `text` (need not be NUL-terminated).  On success
 * fills *ret (which the caller then owns and releases with
 * casfs_narinfo_release()) and returns 0; on failure *ret is untouched and
 * the return is -EBADMSG (malformed; `err` names the line and field),
 * -EOVERFLOW (input, reference or signature count over the bounds above)
 * or -ENOMEM. */
int casfs_narinfo_parse(const char *text, size_t len, struct casfs_narinfo *ret,
			struct casfs_error *err);

/* Free what the struct owns and zero it.  Accepts a zeroed struct. */
void casfs_narinfo_release(struct casfs_narinfo *ni);

/* Append the narinfo text, as Nix 2.8 writes it, to `out`.  -EINVAL if a
 * required string (url, compression) is NULL/empty or nar_size is 0;
 * -ENOMEM.  On failure `out` may hold a partial rendering. */
int casfs_narinfo_render(const struct casfs_narinfo *ni, struct casfs_buf *out);

/* Append the signature fingerprint of `ni` to `out` (no NUL).  -EINVAL if
 * nar_size is 0 (Nix refuses too), -ENOMEM. */
int casfs_narinfo_fingerprint(const struct casfs_narinfo *ni, struct casfs_buf *out);

/* The same from the parts (for callers that hold a path info, not a
 * narinfo): `refs` need not be sorted. */
int casfs_nix_fingerprint(const struct casfs_store_path *path,
			  const uint8_t nar_sha256[CASFS_SHA256_LEN], uint64_t nar_size,
			  const struct casfs_store_path *refs, size_t n_refs, struct casfs_buf *out);

/* Signatures as text.  parse: "name:base64" of exactly `len` bytes, no
 * surrounding space; -EBADMSG with a message.  format: `out` holds
 * CASFS_NIXSIG_STR_MAX bytes; returns the length. */
int casfs_narinfo_sig_parse(const char *s, size_t len, struct casfs_narinfo_sig *ret,
			    struct casfs_error *err);
size_t casfs_narinfo_sig_format(const struct casfs_narinfo_sig *sig, char *out);

/* Check a key name (shared with nixkey.h).  true if valid. */
bool casfs_nixkey_name_valid(const char *name, size_t len);
