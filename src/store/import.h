/* Importing into a store: filesystem trees (as `nix-store --add`) and NARs
 * (as `nix-store --import` of a single path, without references).
 *
 * Both compute the NAR SHA-256 and size while reading, store every blob
 * and directory, and register the store path last (store.h
 * casfs_store_add_pathinfo), so a store path only appears once everything
 * below it is present.  The resulting path is the fixed-output recursive
 * SHA-256 path Nix gives the same tree (storepath.h).
 *
 * Filesystem trees: regular files (executable if the owner may execute),
 * directories and symlinks; anything else (sockets, devices, FIFOs) is
 * refused, as Nix does.  Small files are read once: the NAR SHA-256 is
 * taken on the calling thread while a worker hashes (BLAKE3) and stores
 * the same bytes.  Large files are read once to hash them (SHA-256 here,
 * BLAKE3 on a worker) and, only if their blob is new, a second time to
 * copy them, the copy checked against the first digest; so re-importing
 * known content costs only the hashing, and a file that changes while
 * being imported is an error, never a corrupt blob.  Memory does not
 * depend on file sizes.  Depth is bounded by CASFS_NAR_MAX_DEPTH. */
#pragma once

#include <stdint.h>

#include "../basic/error.h"
#include "../nixcache/decompress.h"
#include "../storepath/storepath.h"
#include "store.h"

struct casfs_import_options {
	const char *name; /* store path name; NULL: the basename of the path */
	/* casfs_import_nar: how the NAR read is compressed (a binary cache's
	 * nar/ file); 0 is none. */
	enum casfs_compression compression;
	/* Called now and then during long imports; may be NULL. */
	void (*progress)(void *userdata, uint64_t files, uint64_t bytes);
	void *progress_userdata;
};

struct casfs_import_result {
	struct casfs_store_path path;
	uint8_t nar_sha256[CASFS_SHA256_LEN];
	uint64_t nar_size;
};

int casfs_import_path(struct casfs_store *s, const char *path,
		      const struct casfs_import_options *opts, struct casfs_import_result *ret,
		      struct casfs_error *err);

/* The tree ingest behind casfs_import_path, registering nothing: the tree
 * at `path` (read exactly as above; opts->name is not used) goes into s's
 * blob and directory services, *ret_root is its root node named
 * `root_name` (e.g. a store path basename; owned by the caller,
 * casfs_node_release), with the SHA-256 and size of its NAR.  On failure
 * nothing is written to the ret_ parameters; blobs already stored stay
 * (content-addressed, unreferenced).  For a substituter that reads a tree
 * another store already named (nix-store.h). */
int casfs_import_tree(struct casfs_store *s, const char *path, const char *root_name,
		      const struct casfs_import_options *opts, struct casfs_node *ret_root,
		      uint8_t ret_nar_sha256[CASFS_SHA256_LEN], uint64_t *ret_nar_size,
		      struct casfs_error *err);

/* Read a NAR from `fd` until EOF and register it as store path `name`
 * (a store path name, or a full "/nix/store/<hash>-<name>" whose hash must
 * then match the content). */
int casfs_import_nar(struct casfs_store *s, int fd, const char *name,
		     const struct casfs_import_options *opts, struct casfs_import_result *ret,
		     struct casfs_error *err);

/* The NAR importer behind casfs_import_nar(), fed bytes as they arrive
 * (an HTTP body, an RPC stream, a decompressor): _feed any number of
 * times, _end once the input is complete (the NAR must end exactly
 * there: its SHA-256 and size), then _finish to put the tree and get its
 * root node named `root_name` (*ret owned by the caller).  Registering a
 * store path is left to the caller.  Malformed NARs are -EBADMSG
 * ("invalid NAR: ..."); after any error every call fails.  Blobs already
 * stored by a failed import stay (content-addressed, harmless); nothing
 * refers to them.  new: NULL on OOM; `opts` borrowed (may be NULL; only
 * progress is used). */
struct casfs_nar_import;
struct casfs_nar_import *casfs_nar_import_new(struct casfs_store *s,
					      const struct casfs_import_options *opts);
void casfs_nar_import_free(struct casfs_nar_import *ni);
int casfs_nar_import_feed(struct casfs_nar_import *ni, const void *p, size_t n,
			  struct casfs_error *err);
int casfs_nar_import_end(struct casfs_nar_import *ni, uint8_t ret_sha256[CASFS_SHA256_LEN],
			 uint64_t *ret_size, struct casfs_error *err);
int casfs_nar_import_finish(struct casfs_nar_import *ni, const char *root_name,
			    struct casfs_node *ret, struct casfs_error *err);

/* Shared tail of both imports: build the PathInfo for a finished root
 * node (fixed-output recursive SHA-256, no references) and register it. */
int casfs_import_register(struct casfs_store *s, struct casfs_node *root_taken,
			  const struct casfs_store_path *sp,
			  const uint8_t nar_sha256[CASFS_SHA256_LEN], uint64_t nar_size,
			  struct casfs_error *err);
