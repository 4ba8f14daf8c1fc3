/* A Nix binary cache (file:///DIR, http://HOST[:PORT][/PREFIX], https://…)
 * as a substituter (substituter.h: narinfo lookups, NARs streamed through
 * decompression into a casfs store) and as a destination (upload a store
 * path: NAR, then narinfo).
 *
 * URL query parameters, as Nix names them:
 *   secret-key=FILE            sign the narinfos written (Nix key file)
 *   compression=zstd|xz|bzip2|none   for the NARs written (default zstd:
 *                              as small as xz at a tenth of the time; every
 *                              Nix since 2.1 reads it)
 *   write-nar-listing=1        also write <hash>.ls, the file listing with
 *                              NAR offsets (nar-plan.h)
 *   stalled-download-timeout=N seconds without progress before a transfer
 *                              fails (default 60)
 *   priority=N, want-mass-query=B   accepted and ignored
 * Anything else is refused, so a typo does not silently change nothing.
 *
 * Reading: the narinfo of <hash> must be for that store path (a server
 * answering with another path's narinfo is caught), and its NAR may not
 * grow past NarSize.  /nix-cache-info is read at open when present; a
 * cache for another store directory is refused.
 *
 * Writing: the NAR is rendered from the source store (every byte
 * verified), checked against the PathInfo's NarHash and NarSize,
 * compressed into a temporary file (hashed: FileHash, FileSize), stored
 * as nar/<FileHash>.nar<ext> unless present, and the narinfo is written
 * last: a reader sees a path only once its NAR is complete.  The caller
 * uploads references first.
 *
 * Thread-safe. */
#pragma once

#include "../proto/pathinfo-proto.h"
#include "substituter.h"

struct casfs_binary_cache;

/* Open for reading and writing.  -EINVAL for a bad URL or parameter,
 * -EBADMSG for a bad nix-cache-info or secret key file, with a message. */
int casfs_binary_cache_open(const char *url, struct casfs_binary_cache **ret,
			    struct casfs_error *err);
/* The substituter view (freeing it frees the cache). */
struct casfs_substituter *casfs_binary_cache_substituter(struct casfs_binary_cache *bc);

/* 1 if the cache has a narinfo for the digest, 0 if not. */
int casfs_binary_cache_has(struct casfs_binary_cache *bc, const uint8_t digest[CASFS_STORE_DIGEST_LEN],
			   struct casfs_error *err);
/* Upload the store path `pi` of `from` in two steps (see above): its NAR
 * (skipped when the cache has that file already; *ret_file_size is the
 * bytes written, 0 then), with its narinfo rendered (and signed) into
 * `narinfo` (appended); then, once the path's references are in the
 * cache, the narinfo, which makes the path appear. */
int casfs_binary_cache_upload_nar(struct casfs_binary_cache *bc, struct casfs_store *from,
				  const struct casfs_pathinfo *pi, struct casfs_buf *narinfo,
				  uint64_t *ret_file_size, struct casfs_error *err);
int casfs_binary_cache_put_narinfo(struct casfs_binary_cache *bc,
				   const uint8_t digest[CASFS_STORE_DIGEST_LEN],
				   const struct casfs_buf *narinfo, struct casfs_error *err);
