/* Reading and writing the files of a Nix binary cache: a directory
 * (file:///DIR) or an HTTP server (http://HOST[:PORT][/PREFIX], https://…,
 * through libcurl).  Paths are relative to the cache root ("nix-cache-info",
 * "<hash>.narinfo", "nar/<x>.nar.zst"); a narinfo's URL may also be an
 * absolute http(s):// or file:// URL, which get() follows as is.
 *
 * HTTP: keep-alive connections (a pool of libcurl handles, one per call in
 * flight), redirects followed (at most 10), 404/410 and 401/403 mean
 * "absent" (-ENOENT, as Nix reads them: S3 answers 403 for a missing key),
 * 408/429/5xx and connection failures retried twice with backoff as long
 * as no byte of the body was handed out, any other status -EIO naming it.
 * A connection that makes no progress for `stall_timeout` seconds fails
 * with -ETIMEDOUT; connecting is bounded by the same time.
 *
 * file://: reads are plain files below DIR; writes go to a temporary file
 * in the target's directory, fsync'd and renamed into place, so a reader
 * never sees half a file.  Relative paths with "..", empty components or a
 * leading '/' are refused (-EINVAL) on both kinds.
 *
 * Thread-safe: any number of calls at once on one transport. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "../basic/buf.h"
#include "../basic/error.h"

#define CASFS_TRANSPORT_DEFAULT_STALL_TIMEOUT 60

/* Body sink: return >= 0, or a negative errno (with err set) to stop. */
typedef int (*casfs_transport_sink)(void *userdata, const void *p, size_t n,
				    struct casfs_error *err);

struct casfs_transport;

/* `base`: "file:///DIR" or "http(s)://HOST[:PORT][/PREFIX]", without a
 * query string.  stall_timeout 0: the default.  -EINVAL for anything else. */
int casfs_transport_open(const char *base, unsigned stall_timeout, struct casfs_transport **ret,
			 struct casfs_error *err);
void casfs_transport_free(struct casfs_transport *t);
/* The base as given (for messages). */
const char *casfs_transport_base(const struct casfs_transport *t);

/* Stream the body of `path` to `sink`.  At most `max` bytes (else
 * -EOVERFLOW); -ENOENT when absent. */
int casfs_transport_get(struct casfs_transport *t, const char *path, uint64_t max,
			casfs_transport_sink sink, void *userdata, struct casfs_error *err);
/* The whole body into `out` (appended). */
int casfs_transport_get_buf(struct casfs_transport *t, const char *path, size_t max,
			    struct casfs_buf *out, struct casfs_error *err);
/* 1 present, 0 absent (HEAD), or -errno. */
int casfs_transport_exists(struct casfs_transport *t, const char *path, struct casfs_error *err);
/* Write `len` bytes, or `size` bytes read from `fd` (from its current
 * offset), as `path`. */
int casfs_transport_put(struct casfs_transport *t, const char *path, const char *content_type,
			const void *data, size_t len, struct casfs_error *err);
int casfs_transport_put_fd(struct casfs_transport *t, const char *path, const char *content_type,
			   int fd, uint64_t size, struct casfs_error *err);
