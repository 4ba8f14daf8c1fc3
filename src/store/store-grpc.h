/* A store whose three services are a remote daemon's, by URL:
 *
 *   grpc+unix:///ABS/PATH[?PARAMS]    a unix socket (no host allowed)
 *   grpc+http://HOST:PORT[?PARAMS]    h2c with prior knowledge (no path)
 *
 * PARAMS, '&'-separated: wait-connect=1 (connect now, fail now if the
 * daemon is not there; default: connect at the first call, as snix does),
 * timeout=SECONDS (every wait for progress; default 30).  Anything else is
 * refused with -EINVAL naming it.
 *
 * With a cache directory (casfs_store_options.cache, `--cache DIR`), blobs
 * are read through a local store there (castore/blob-cache.c): each is
 * fetched, verified and kept once, then served from the local file. */
#pragma once

#include "store.h"

int casfs_store_open_grpc(struct casfs_store *s, const char *url,
			  const struct casfs_store_options *o, struct casfs_error *err);
bool casfs_store_url_is_grpc(const char *url);
