/* Substituters: where store paths that a casfs store does not hold yet
 * come from (a Nix binary cache, this machine's Nix store), and the
 * read-through PathInfoService built over one.
 *
 * A substituter answers two questions: what a store path is (its narinfo:
 * references, NAR hash and size, signatures, deriver, CA) and what it
 * contains (its tree, ingested into a casfs store's blob and directory
 * services).  It registers nothing itself: casfs_substitute() checks what
 * it was told (trust, NAR hash and size, content address) and builds the
 * PathInfo, and the caller registers it once every reference is there.
 *
 * Thread safety: ops are called from many threads at once. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "../basic/error.h"
#include "../nixcache/narinfo.h"
#include "../nixcache/nixkey.h"
#include "store.h"

struct casfs_substituter;

struct casfs_substituter_ops {
	/* Look up a store path by digest.  Fills *ret (caller releases) or
	 * returns -ENOENT ("... is not in <where>") when the source does not
	 * have it; other errors (-EIO, -EBADMSG for a malformed answer, a
	 * timeout -ETIMEDOUT) with a message.  ret->url and ->compression
	 * say where the content is, in the substituter's own terms. */
	int (*query)(struct casfs_substituter *s, const uint8_t digest[CASFS_STORE_DIGEST_LEN],
		     struct casfs_narinfo *ret, struct casfs_error *err);
	/* Ingest the content `ni` (as query returned it) describes into
	 * `into`'s blob and directory services: the root node named by the
	 * store path basename in *ret_root (owned by the caller), and the
	 * SHA-256 and size of the NAR as actually read, which the caller
	 * compares with ni's.  May be called concurrently for different
	 * paths.  Registers nothing. */
	int (*fetch)(struct casfs_substituter *s, const struct casfs_narinfo *ni,
		     struct casfs_store *into, struct casfs_node *ret_root,
		     uint8_t ret_nar_sha256[CASFS_SHA256_LEN], uint64_t *ret_nar_size,
		     struct casfs_error *err);
	void (*free)(struct casfs_substituter *s);
};

struct casfs_substituter {
	const struct casfs_substituter_ops *ops;
	/* A printable name for messages ("file:///srv/cache", "nix:"). */
	const char *url;
	/* Its narinfos need no signature (this machine's own Nix store,
	 * whose database is as trusted as the casfs store itself). */
	bool trusted;
};

static inline void casfs_substituter_free(struct casfs_substituter *s)
{
	if (s)
		s->ops->free(s);
}

/* Fetch one path from `sub` into `into` and check it: trust (unless
 * sub->trusted: a valid signature by one of `keys`, or a content address
 * that binds it; narinfo-pathinfo.h), then the NAR hash and size of what
 * was read against `ni`, and a flat CA's file hash.  On success *ret is
 * the PathInfo to register (caller releases; references are NOT checked
 * here).  On failure nothing is registered; blobs already ingested stay
 * unreferenced (content-addressed, harmless). */
int casfs_substitute(struct casfs_substituter *sub, const struct casfs_nixkey_list *keys,
		     const struct casfs_narinfo *ni, struct casfs_store *into,
		     struct casfs_pathinfo *ret, struct casfs_error *err);

/* The substituters by URL: "file:///DIR", "http://…", "https://…" (a Nix
 * binary cache, binary-cache.h), "nix:" / "nix:ROOT" (nix-store.h).
 * -EPROTONOSUPPORT for anything else. */
bool casfs_substituter_url_known(const char *url);
int casfs_substituter_open(const char *url, struct casfs_substituter **ret,
			   struct casfs_error *err);
/* Open "nix:" (ROOT NULL: the real /nix/var/nix/db and /nix/store) or
 * "nix:ROOT" (a chroot store: ROOT/nix/var/nix/db/db.sqlite and
 * ROOT/nix/store), read-only. */
int casfs_substituter_nix_open(const char *root, struct casfs_substituter **ret,
			       struct casfs_error *err);
