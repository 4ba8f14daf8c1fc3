/* The HTTP routes of `casfs serve-cache`: a Nix binary cache (Nix 2.8
 * layout, DESIGN section 8) rendered from the store.
 *
 *   route                              GET/HEAD                       PUT (--allow-upload)
 *   /nix-cache-info                    StoreDir, WantMassQuery,        accepted, ignored
 *                                      Priority (text/x-nix-cache-info)
 *   /<hash>.narinfo                    narinfo of the PathInfo         parse, register the
 *                                      (text/x-nix-narinfo)            pending NAR (commit)
 *   /<hash>.ls                         NAR listing (application/json)  accepted, ignored
 *   /nar/<narhash>.nar[?hash=<hash>]   the NAR (application/x-nix-nar) ingest as pending
 *   /nar/<filehash>.nar.xz|.zst|.bz2   404                             ingest (decompressed)
 *
 * <hash> is 32 nixbase32 characters (a store path's hash part),
 * <narhash>/<filehash> 52 (a SHA-256).  The URL a narinfo names is
 * `nar/<nixbase32 NarHash>.nar?hash=<hash>`: stable across restarts, and
 * with the store path in it so no index is needed.
 *
 * Parsing is strict and byte-exact on the raw request target (the server
 * does not percent-decode): anything else, including `..`, `%`, `//`, NUL
 * and targets longer than CASFS_SERVE_TARGET_MAX, is CASFS_ROUTE_NONE (404).
 * Of the query only `hash=` is read, on nar/ routes (the server hands its
 * value over); other parameters are ignored.  Pure and thread-safe. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../digest/digest.h"
#include "../storepath/storepath.h"

#define CASFS_SERVE_TARGET_MAX 1024

enum casfs_route_kind {
	CASFS_ROUTE_NONE = 0,
	CASFS_ROUTE_CACHE_INFO,
	CASFS_ROUTE_NARINFO,
	CASFS_ROUTE_LISTING,
	CASFS_ROUTE_NAR,
};

struct casfs_route {
	enum casfs_route_kind kind;
	/* NARINFO, LISTING; NAR when has_path (?hash=) */
	uint8_t path_digest[CASFS_STORE_PATH_DIGEST_LEN];
	bool has_path;
	/* NAR: the SHA-256 in the name and the compression its extension says
	 * ("none", "xz", "zstd", "bzip2") */
	uint8_t sha256[CASFS_SHA256_LEN];
	const char *compression;
};

/* Parse a path (`path`, `len` bytes, no query) and the value of its
 * `hash` query parameter (`hash_arg`, NULL if none).  Returns the kind
 * (ret filled) or CASFS_ROUTE_NONE.  A malformed hash_arg is ignored. */
enum casfs_route_kind casfs_route_parse(const char *path, size_t len, const char *hash_arg,
					struct casfs_route *ret);
