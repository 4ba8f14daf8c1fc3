/* Nix signing keys and narinfo signatures (Nix 2.8 libstore/crypto.cc),
 * Ed25519 through libcrypto.
 *
 *   secret key   <name>:<base64 of 64 bytes: 32-byte seed || 32-byte public key>
 *   public key   <name>:<base64 of 32 bytes>
 *   signature    <name>:<base64 of 64 bytes>   (narinfo.h struct casfs_narinfo_sig)
 *   key list     public keys separated by spaces (tabs, newlines), as in
 *                `trusted-public-keys`
 *
 * Names follow casfs_nixkey_name_valid() (narinfo.h).  What is signed is
 * the fingerprint of narinfo.h.  Ed25519 is deterministic: the same key and
 * fingerprint give the Sig Nix writes.  Key files may end in whitespace
 * (a newline), which is ignored.
 *
 * Plain structs owned by the caller; functions are thread-safe on
 * distinct objects. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "../basic/error.h"
#include "narinfo.h"

#define CASFS_NIXKEY_SEED_LEN 32
#define CASFS_NIXKEY_PUBLIC_LEN 32
/* Room for a formatted key, with the NUL. */
#define CASFS_NIXKEY_SECRET_STR_MAX (CASFS_NIXKEY_NAME_MAX + 1 + CASFS_BASE64_LEN(64) + 1)
#define CASFS_NIXKEY_PUBLIC_STR_MAX (CASFS_NIXKEY_NAME_MAX + 1 + CASFS_BASE64_LEN(32) + 1)
#define CASFS_NIXKEY_LIST_MAX 1024 /* more keys in a list: -EOVERFLOW */

struct casfs_nixkey_secret {
	char name[CASFS_NIXKEY_NAME_MAX + 1];
	uint8_t seed[CASFS_NIXKEY_SEED_LEN];
	uint8_t pub[CASFS_NIXKEY_PUBLIC_LEN];
};

struct casfs_nixkey_public {
	char name[CASFS_NIXKEY_NAME_MAX + 1];
	uint8_t key[CASFS_NIXKEY_PUBLIC_LEN];
};

/* Embedded struct: zero it or parse into it; _release frees. */
struct casfs_nixkey_list {
	struct casfs_nixkey_public *keys; /* owned */
	size_t n;
};

/* Parse a secret key.  -EBADMSG with a message for a malformed key, and
 * for one whose embedded public key is not the one its seed gives
 * ("secret key ... is inconsistent"); -ENOMEM.  *ret written on success
 * only; clear it with casfs_nixkey_secret_clear() when done. */
int casfs_nixkey_secret_parse(const char *text, size_t len, struct casfs_nixkey_secret *ret,
			      struct casfs_error *err);
/* Wipe the seed. */
void casfs_nixkey_secret_clear(struct casfs_nixkey_secret *sk);
/* A fresh random key named `name`.  -EINVAL for a bad name, -EIO if
 * libcrypto fails. */
int casfs_nixkey_secret_generate(const char *name, struct casfs_nixkey_secret *ret,
				 struct casfs_error *err);
/* The public half. */
void casfs_nixkey_secret_to_public(const struct casfs_nixkey_secret *sk,
				   struct casfs_nixkey_public *ret);
/* `out` holds CASFS_NIXKEY_SECRET_STR_MAX / _PUBLIC_STR_MAX; returns the
 * length (no newline). */
size_t casfs_nixkey_secret_format(const struct casfs_nixkey_secret *sk, char *out);
size_t casfs_nixkey_public_format(const struct casfs_nixkey_public *pk, char *out);

/* Parse one public key.  -EBADMSG with a message. */
int casfs_nixkey_public_parse(const char *text, size_t len, struct casfs_nixkey_public *ret,
			      struct casfs_error *err);

/* Parse a whitespace-separated list (may be empty).  -EBADMSG naming the
 * bad key, -EOVERFLOW, -ENOMEM.  *ret written on success only. */
int casfs_nixkey_list_parse(const char *text, size_t len, struct casfs_nixkey_list *ret,
			    struct casfs_error *err);
/* Append a copy of `pk`.  -ENOMEM, -EOVERFLOW. */
int casfs_nixkey_list_add(struct casfs_nixkey_list *l, const struct casfs_nixkey_public *pk);
void casfs_nixkey_list_release(struct casfs_nixkey_list *l);

/* Sign `msg` (a fingerprint).  -EIO if libcrypto fails. */
int casfs_nixkey_sign(const struct casfs_nixkey_secret *sk, const void *msg, size_t len,
		      struct casfs_narinfo_sig *ret, struct casfs_error *err);
/* Sign the fingerprint of `ni` (the Sig line Nix would add).  -EINVAL if
 * nar_size is 0, -ENOMEM, -EIO. */
int casfs_nixkey_sign_narinfo(const struct casfs_nixkey_secret *sk, const struct casfs_narinfo *ni,
			      struct casfs_narinfo_sig *ret, struct casfs_error *err);

/* Sign `ni` and add that Sig to its signatures unless it is there
 * already (as `nix store sign` does: other signatures, also by other keys
 * of the same name, stay).  -ENOMEM, -EINVAL, -EIO. */
int casfs_nixkey_add_signature(const struct casfs_nixkey_secret *sk, struct casfs_narinfo *ni,
			       struct casfs_error *err);

/* 1 if `sig` is a valid signature of `msg` by `pk` (names not compared),
 * 0 if not, -EIO if libcrypto fails. */
int casfs_nixkey_verify(const struct casfs_nixkey_public *pk, const void *msg, size_t len,
			const struct casfs_narinfo_sig *sig);

/* How many of `ni`'s signatures are by a key of `trusted` with the same
 * name and verify over its fingerprint (what Nix's checkSignatures counts).
 * 0 means "not signed by any trusted key"; -EINVAL (nar_size 0), -ENOMEM,
 * -EIO. */
int casfs_nixkey_verify_narinfo(const struct casfs_nixkey_list *trusted,
				const struct casfs_narinfo *ni, struct casfs_error *err);
