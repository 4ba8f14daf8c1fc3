/* NAR hash -> store path, for `nar/<narhash>.nar` requests that do not
 * say which path they want (no `?hash=`; Nix asks so when it checks
 * whether an uncompressed NAR is there before uploading it, and a client
 * may drop the query).
 *
 * A bounded memory table (CASFS_NARMAP_CAP entries; cleared when full),
 * filled as narinfos are served and paths uploaded; on a miss the whole
 * PathInfo listing is scanned (paged, O(paths)), and a hit is remembered.
 * Every answer is checked against the PathInfo (its NarHash), so a stale
 * entry only costs a scan.  Thread-safe. */
#pragma once

#include <stdint.h>

#include "../basic/error.h"
#include "../digest/digest.h"
#include "../proto/pathinfo-proto.h"
#include "../store/store.h"

#define CASFS_NARMAP_CAP 65536

struct casfs_narmap;

struct casfs_narmap *casfs_narmap_new(void);
void casfs_narmap_free(struct casfs_narmap *m);
void casfs_narmap_put(struct casfs_narmap *m, const uint8_t nar_sha256[CASFS_SHA256_LEN],
		      const uint8_t path_digest[CASFS_STORE_DIGEST_LEN]);
/* The PathInfo (caller releases) of a registered path with this NAR hash:
 * 0, -ENOENT if none, -errno if the store cannot be read (err set). */
int casfs_narmap_find(struct casfs_narmap *m, struct casfs_store *s,
		      const uint8_t nar_sha256[CASFS_SHA256_LEN], uint8_t ret_digest[CASFS_STORE_DIGEST_LEN],
		      struct casfs_pathinfo *ret, struct casfs_error *err);
