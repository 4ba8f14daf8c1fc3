/* Copying closures between stores, substituters and binary caches
 * (`casfs copy`).
 *
 * From a casfs store (any URL casfs_store_open takes, read-through ones
 * included) or straight from a substituter (a binary cache or the Nix
 * store: its paths are checked and ingested into the destination with no
 * store in between); to a casfs store or a Nix binary cache.
 *
 * The closure of the given paths is walked first, its lookups (does the
 * destination have it; the source's narinfo or PathInfo) on `jobs` threads
 * so that a remote cache's latency is paid in parallel (a path the destination
 * has already is skipped together with its closure, which the destination
 * has by the closure property).  Then `jobs` threads copy the remaining
 * paths' contents in parallel (fetch and ingest, or render and upload the
 * NAR), and each path is committed (registered, or its narinfo written) as
 * soon as its content is in and all its references are committed: the
 * destination only ever holds complete closures.  On the first failure no
 * more paths are started, the ones running finish, what was committed
 * stays (complete closures), and the error is returned.
 *
 * With no_recursive only the given paths are copied; their references
 * must be in the destination already (-ENOENT naming the first missing). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "../basic/error.h"
#include "../storepath/storepath.h"
#include "binary-cache.h"
#include "store.h"
#include "substituter.h"

struct casfs_copy_source {
	struct casfs_store *store;       /* either this */
	struct casfs_substituter *sub;   /* or this, with the keys it needs */
	const struct casfs_nixkey_list *keys;
};

struct casfs_copy_dest {
	struct casfs_store *store;       /* either this */
	struct casfs_binary_cache *cache; /* or this */
};

struct casfs_copy_stats {
	size_t total;     /* paths in the closure */
	size_t present;   /* of which the destination had already */
	size_t copied;    /* committed by this copy */
	uint64_t nar_bytes; /* NAR bytes of the paths copied */
};

struct casfs_copy_options {
	unsigned jobs;    /* parallel copies; 0: 4 */
	bool no_recursive;
	/* After the walk and after each commit (under the copy's lock: keep
	 * it short); may be NULL. */
	void (*progress)(void *userdata, const struct casfs_copy_stats *st);
	void *progress_userdata;
};

int casfs_copy(const struct casfs_copy_source *from, const struct casfs_copy_dest *to,
	       const struct casfs_store_path *paths, size_t n_paths,
	       const struct casfs_copy_options *o, struct casfs_copy_stats *ret,
	       struct casfs_error *err);
