/* A store: the three services behind one handle, chosen by URL.
 *
 *   memory:           all three in memory (tests)
 *   local:DIR, DIR    the embedded local store (local-store.h)
 *   file:///DIR, http://…, https://…   a Nix binary cache (binary-cache.h)
 *   nix:, nix:ROOT    this machine's Nix store, read-only
 *
 * The last two are substituters (substituter.h), not stores: opened as a
 * store, one is put behind a local store used as a read-through cache
 * (through.h; the cache's blobs and directories, its PathInfos first, the
 * substituter's when absent).  The cache is --cache DIR, default
 * $XDG_CACHE_HOME/casfs, else ~/.cache/casfs; paths from a binary cache
 * need a signature by one of the trusted public keys (or a checkable
 * content address).
 *
 * The embedded default (no --store): $CASFS_STORE, else
 * $XDG_DATA_HOME/casfs, else $HOME/.local/share/casfs.
 *
 * Thread safety: the services are thread-safe; the store handle itself is
 * immutable after open. */
#pragma once

#include <stdint.h>

#include "../basic/error.h"
#include "../castore/blobservice.h"
#include "../castore/directoryservice.h"
#include "../nixcache/nixkey.h"
#include "pathinfoservice.h"

enum {
	CASFS_STORE_CREATE = 1 << 0,   /* create a local store that does not exist yet */
	CASFS_STORE_READONLY = 1 << 1, /* open read-only (no writes, shared lock) */
};

/* How many reads may be in flight at once, in the upper 16 bits of the
 * open flags: CASFS_STORE_READERS(n), n from 1 to 65535; without it,
 * CASFS_STORE_DEFAULT_READERS.  For the local store this sizes LMDB's
 * reader table, one slot per read transaction in flight, shared by every
 * process that has the store open (each store call runs one short
 * transaction; none stays open between calls).  A read that finds the
 * table full fails (-EIO).  The table lives in DIR/db/lock.mdb: a process
 * that opens the store while no other has it open makes it at least this
 * large, and it never shrinks; one that opens it while another has it open
 * gets the table as it is. */
#define CASFS_STORE_READERS_SHIFT 16
#define CASFS_STORE_READERS(n) ((unsigned)(n) << CASFS_STORE_READERS_SHIFT)
#define CASFS_STORE_READERS_OF(flags) ((unsigned)(flags) >> CASFS_STORE_READERS_SHIFT)
/* Covers the CLI and a mount with libfuse's default threads, with room
 * for a few other processes at once. */
#define CASFS_STORE_DEFAULT_READERS 256

struct casfs_store {
	/* With `inner` set, blobs and directories are inner's (borrowed) and
	 * pathinfos reads through to a substituter. */
	struct casfs_blob_service *blobs;
	struct casfs_directory_service *directories;
	struct casfs_pathinfo_service *pathinfos;
	char *url;                     /* owned, normalised (e.g. "local:/abs/dir") */
	struct casfs_store *inner;     /* owned: the read-through cache, or NULL */
	/* A composed store (--blob-store etc.): its services are borrowed
	 * from these, which it owns; nothing else is set. */
	struct casfs_store *parts[4];
	size_t n_parts;
	/* Set by servers: never map blob files (the NAR export otherwise
	 * hashes big ones from a mapping, and a file truncated meanwhile
	 * would SIGBUS the process). */
	bool no_map;
	void *backend;                 /* backend-private, freed by free_backend */
	void (*free_backend)(void *backend);
};

/* Open by URL (NULL: the embedded default).  -ENOENT if a local store does
 * not exist and CASFS_STORE_CREATE is not given; -EBADMSG if the directory
 * is not a casfs store or of an unknown version (message says which). */
int casfs_store_open(const char *url, unsigned flags, struct casfs_store **ret,
		     struct casfs_error *err);
void casfs_store_free(struct casfs_store *s);

struct casfs_store_options {
	unsigned flags;                  /* as for casfs_store_open */
	const char *cache;               /* read-through cache directory; NULL: default */
	/* Space-separated "name:base64" public keys; NULL: the environment's
	 * $CASFS_TRUSTED_PUBLIC_KEYS (none if unset). */
	const char *trusted_public_keys;
	/* One service from another store each (NULL: the main URL's), e.g.
	 * blobs from a remote daemon, metadata local: --blob-store,
	 * --directory-store, --pathinfo-store. */
	const char *blob_store, *directory_store, *pathinfo_store;
};

/* casfs_store_open with the options above.  A bad key list is -EBADMSG
 * naming the key. */
int casfs_store_open_with(const char *url, const struct casfs_store_options *o,
			  struct casfs_store **ret, struct casfs_error *err);

/* The default read-through cache location (malloc'd), or NULL. */
char *casfs_store_default_cache_path(void);

/* Parse a trusted key list (NULL: $CASFS_TRUSTED_PUBLIC_KEYS). */
int casfs_store_trusted_keys(const char *text, struct casfs_nixkey_list *ret,
			     struct casfs_error *err);

/* The embedded default location as a malloc'd path, or NULL on OOM or when
 * neither $CASFS_STORE, $XDG_DATA_HOME nor $HOME is set. */
char *casfs_store_default_path(void);

/* Register a store path: checks that the PathInfo is valid, that every
 * reference but the path itself is a registered store path (named by its
 * basename), and that its whole tree is present (root blob, or every
 * directory and every blob below the root directory), makes the blobs
 * durable, then puts the PathInfo.  -EBADMSG/-ENOENT with a message
 * naming what is wrong or missing. */
int casfs_store_add_pathinfo(struct casfs_store *s, const uint8_t digest[CASFS_STORE_DIGEST_LEN],
			     const struct casfs_pathinfo *pi, struct casfs_error *err);

/* The same for an importer that has itself just stored (or found present
 * with the right size) every blob of the closure: everything is checked
 * but the blobs' presence, which would cost one stat per file again. */
int casfs_store_add_ingested(struct casfs_store *s, const uint8_t digest[CASFS_STORE_DIGEST_LEN],
			     const struct casfs_pathinfo *pi, struct casfs_error *err);
