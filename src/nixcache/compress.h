/* Push compression of NARs for writing a binary cache, the mirror of
 * decompress.h: the NAR goes in as it is rendered, compressed bytes come
 * out through a sink in pieces of at most CASFS_DECOMPRESS_CHUNK bytes.
 * Levels are the libraries' defaults, as Nix 2.8 uses them: xz preset 6,
 * zstd 3, bzip2 9.  What _finish has produced decompresses with
 * decompress.h (and with Nix).  One compressor per stream; not
 * thread-safe. */
#pragma once

#include "decompress.h"

struct casfs_compress;

/* NULL on OOM. */
struct casfs_compress *casfs_compress_new(enum casfs_compression c);
void casfs_compress_free(struct casfs_compress *z);
int casfs_compress_feed(struct casfs_compress *z, const void *p, size_t n,
			casfs_decompress_sink sink, void *userdata, struct casfs_error *err);
/* End the stream (flushes everything). */
int casfs_compress_finish(struct casfs_compress *z, casfs_decompress_sink sink, void *userdata,
			  struct casfs_error *err);
