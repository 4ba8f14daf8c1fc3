/* Digests: BLAKE3-256 (castore addresses, from the official C sources) and
 * SHA-256 (NAR hashes, store paths; from libcrypto), and the ways they are
 * printed.
 *
 *   castore digest   "b3:" + standard base64 of the 32 bytes (47 chars)
 *   NAR hash, text   "sha256:" + nixbase32 (as `nix-store -q --hash`)
 *   NAR hash, SRI    "sha256-" + base64 (as `nix path-info --json`)
 *
 * Hashers are plain structs owned by the caller, not thread-safe. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blake3.h"

#define CASFS_B3_LEN 32
#define CASFS_SHA256_LEN 32
#define CASFS_B3_STR_LEN (3 + 44)        /* "b3:" + base64(32) */
#define CASFS_SHA256_NIX_STR_LEN (7 + 52) /* "sha256:" + nixbase32(32) */
#define CASFS_SHA256_SRI_STR_LEN (7 + 44) /* "sha256-" + base64(32) */

/* BLAKE3 of the empty string: the digest of the empty Directory. */
extern const uint8_t casfs_b3_empty[CASFS_B3_LEN];

struct casfs_b3_hasher {
	blake3_hasher h;
};

void casfs_b3_init(struct casfs_b3_hasher *h);
/* Make the official sources choose their SIMD code (once per process);
 * every BLAKE3 entry point of src/digest calls it first. */
void casfs_b3_cpu_once(void);
void casfs_b3_update(struct casfs_b3_hasher *h, const void *p, size_t n);
void casfs_b3_final(struct casfs_b3_hasher *h, uint8_t out[CASFS_B3_LEN]);
void casfs_b3(const void *p, size_t n, uint8_t out[CASFS_B3_LEN]);

struct casfs_sha256_hasher {
	void *ctx; /* EVP_MD_CTX */
};

/* -ENOMEM if libcrypto cannot allocate a context. */
int casfs_sha256_init(struct casfs_sha256_hasher *h);
void casfs_sha256_update(struct casfs_sha256_hasher *h, const void *p, size_t n);
/* Writes the digest and releases the context. */
void casfs_sha256_final(struct casfs_sha256_hasher *h, uint8_t out[CASFS_SHA256_LEN]);
/* Releases without a result (safe on an already finalised/zeroed hasher). */
void casfs_sha256_release(struct casfs_sha256_hasher *h);
void casfs_sha256(const void *p, size_t n, uint8_t out[CASFS_SHA256_LEN]);

/* Formatting: `out` must hold the *_STR_LEN + 1 bytes. */
void casfs_b3_format(const uint8_t d[CASFS_B3_LEN], char *out);
void casfs_sha256_format_nix(const uint8_t d[CASFS_SHA256_LEN], char *out);
void casfs_sha256_format_sri(const uint8_t d[CASFS_SHA256_LEN], char *out);

/* Parse "b3:<base64>" (also bare 64-char hex).  -EBADMSG if malformed. */
int casfs_b3_parse(const char *s, uint8_t ret[CASFS_B3_LEN]);
/* Parse a SHA-256 as Nix prints it: "sha256:<nixbase32|hex>" or
 * "sha256-<base64>".  -EBADMSG if malformed. */
int casfs_sha256_parse(const char *s, uint8_t ret[CASFS_SHA256_LEN]);
