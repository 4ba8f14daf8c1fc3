/* Push decompression of NARs as binary caches store them: the bytes of a
 * `nar/…` file go in as they arrive (an HTTP body, a file, an RPC stream),
 * the uncompressed bytes come out through a callback in pieces of at most
 * CASFS_DECOMPRESS_CHUNK bytes.
 *
 * Methods are Nix's `Compression:` names: "none", "xz" (liblzma), "zstd"
 * (libzstd), "bzip2" (libbz2).  A narinfo without the field means bzip2
 * (narinfo.h); other names are refused at _new (-ENOTSUP).
 *
 * Every input is untrusted: corrupt data is -EBADMSG naming the method; a
 * stream that stops before its end is -EBADMSG "... truncated" at
 * _finish; bytes after the end of a stream are -EBADMSG too (xz and bzip2
 * end exactly; zstd frames may follow each other).  Output may be any
 * size (a NAR may be huge); the caller bounds it (NarSize).  A sink's
 * negative return stops the decompression and is returned as is.
 *
 * One decompressor per stream; not thread-safe. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "../basic/error.h"

#define CASFS_DECOMPRESS_CHUNK (256u * 1024)

enum casfs_compression {
	CASFS_COMPRESSION_NONE,
	CASFS_COMPRESSION_XZ,
	CASFS_COMPRESSION_ZSTD,
	CASFS_COMPRESSION_BZIP2,
};

/* The method of a Nix `Compression:` value, or -ENOTSUP (with a message). */
int casfs_compression_parse(const char *name, enum casfs_compression *ret,
			    struct casfs_error *err);
const char *casfs_compression_name(enum casfs_compression c);

typedef int (*casfs_decompress_sink)(void *userdata, const void *p, size_t n,
				     struct casfs_error *err);

struct casfs_decompress;

/* NULL on OOM. */
struct casfs_decompress *casfs_decompress_new(enum casfs_compression c);
void casfs_decompress_free(struct casfs_decompress *d);

/* Decompress `n` more input bytes, handing every output byte to `sink`. */
int casfs_decompress_feed(struct casfs_decompress *d, const void *p, size_t n,
			  casfs_decompress_sink sink, void *userdata, struct casfs_error *err);
/* The input is complete: flush what is left; -EBADMSG if the stream did
 * not end.  Total bytes in and out are in *ret_in / *ret_out (either may
 * be NULL). */
int casfs_decompress_finish(struct casfs_decompress *d, casfs_decompress_sink sink,
			    void *userdata, uint64_t *ret_in, uint64_t *ret_out,
			    struct casfs_error *err);
