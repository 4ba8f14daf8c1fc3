/* Reading store paths back: resolving paths inside them, and rendering
 * nodes as NAR.
 *
 * Every byte handed out is verified first: a blob whose content does not
 * hash to its digest, a missing blob or directory, is an error (-EBADMSG,
 * -ENOENT) whose message names the digest, and no byte of that file is
 * written.  (Bytes of earlier files of a NAR may already have gone out:
 * callers writing to a stream must treat the failure as fatal.)  Large
 * local blobs are verified, then handed out from a memory mapping; the
 * store's blob files are immutable, so nothing truncates them meanwhile
 * short of tampering with the store directory. */
#pragma once

#include <stdint.h>

#include "../basic/error.h"
#include "../proto/castore-proto.h"
#include "store.h"

/* Write sink: return >= 0 or -errno. */
typedef int (*casfs_sink_fn)(void *userdata, const void *p, size_t n);

/* Render `root` (a PathInfo root node, or any node) as a NAR. */
int casfs_export_nar(struct casfs_store *s, const struct casfs_node *root, casfs_sink_fn sink,
		     void *userdata, struct casfs_error *err);

/* Write a file node's verified content to the sink: a small blob is
 * hashed whole first; a large one is checked slice by slice against its
 * outboard (on every core) before each slice goes out, so a damaged group
 * stops the export at its offset (-EBADMSG, err names digest and offset)
 * after only good bytes were written.  Large blob files are read through
 * a mapping: for commands (a blob file truncated meanwhile raises SIGBUS),
 * not for daemons. */
int casfs_export_file(struct casfs_store *s, const struct casfs_node *file, casfs_sink_fn sink,
		      void *userdata, struct casfs_error *err);

/* Look up "/nix/store/<hash>-<name>[/sub/path]": the PathInfo (if
 * ret_info is not NULL) and the node the path names (a copy, named after
 * the last component).  Symlinks inside are not followed.  -ENOENT with a
 * message naming the first missing component. */
int casfs_store_resolve(struct casfs_store *s, const char *path, struct casfs_node *ret_node,
			struct casfs_pathinfo *ret_info, struct casfs_error *err);

/* Iterate a directory's entries in bytewise name order (merging the
 * three lists), calling cb for each. */
int casfs_directory_foreach_sorted(const struct casfs_directory *d,
				   int (*cb)(const struct casfs_node *n, void *userdata),
				   void *userdata);
