/* Building castore trees from a depth-first stream of nodes in NAR order.
 *
 * Both importers feed this: `casfs import` walking a filesystem tree and
 * `casfs import-nar` reading NAR events.  Calls mirror the NAR structure:
 *
 *     root := file | symlink | directory_begin(child*) directory_end
 *
 * with `name` NULL for the root node.  File content goes to the blob
 * service through casfs_ingest_file_begin/_data/_end, or through
 * casfs_ingest_file_known() when the caller has already stored the blob.
 * Content is hashed and stored on a worker thread (castore/blob-worker.h)
 * while the caller reads on: small files (up to CASFS_INGEST_SMALL_FILE)
 * as one buffer, stored only if absent; larger ones streamed through a
 * blob writer.  File nodes get their digests as the worker's results come
 * in; an ended directory's digest is computed once all its entries have
 * theirs (its size at once), so the caller never waits for the worker at
 * a directory's end.  Finished directories are kept (deduplicated by
 * digest) until casfs_ingest_finish() puts them as one closure.
 *
 * Memory: one Directory per distinct directory of the tree plus at most
 * 32 MiB of queued file content, whatever the file sizes.
 * Not thread-safe: one ingest per import. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "../basic/error.h"
#include "../proto/castore-proto.h"
#include "store.h"

#define CASFS_INGEST_SMALL_FILE (1u << 20)

struct casfs_ingest;

struct casfs_ingest *casfs_ingest_new(struct casfs_store *store);
void casfs_ingest_free(struct casfs_ingest *in);

int casfs_ingest_directory_begin(struct casfs_ingest *in, const char *name, size_t name_len,
				 struct casfs_error *err);
int casfs_ingest_directory_end(struct casfs_ingest *in, struct casfs_error *err);
int casfs_ingest_symlink(struct casfs_ingest *in, const char *name, size_t name_len,
			 const char *target, size_t target_len, struct casfs_error *err);

/* Stream a file's content.  `size` is the announced size: _end checks it. */
int casfs_ingest_file_begin(struct casfs_ingest *in, const char *name, size_t name_len,
			    bool executable, uint64_t size, struct casfs_error *err);
int casfs_ingest_file_data(struct casfs_ingest *in, const void *p, size_t n,
			   struct casfs_error *err);
int casfs_ingest_file_end(struct casfs_ingest *in, struct casfs_error *err);

/* Add a file whose blob is already in the blob service. */
int casfs_ingest_file_known(struct casfs_ingest *in, const char *name, size_t name_len,
			    bool executable, const uint8_t digest[CASFS_B3_LEN], uint64_t size,
			    struct casfs_error *err);

/* Put the directory closure (if the root is a directory) and return the
 * root node, named `root_name` (the store path basename).  *ret is owned
 * by the caller (casfs_node_release). */
int casfs_ingest_finish(struct casfs_ingest *in, const char *root_name,
			struct casfs_node *ret, struct casfs_error *err);

/* Statistics so far (for progress display). */
void casfs_ingest_stats(const struct casfs_ingest *in, uint64_t *ret_files, uint64_t *ret_bytes);
