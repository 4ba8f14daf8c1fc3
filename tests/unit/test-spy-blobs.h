/* A BlobService wrapper for tests of what the core reads ("spy"): it
 * counts opens and bytes read, remembers the digests opened (in order, the
 * first SPY_LOG of them), can serve one blob ("victim") with its first
 * byte flipped (same size, same claimed digest), and hides the inner
 * readers' file descriptors, so every byte goes through its pread.
 *
 *   struct spy_blobs *spy = spy_wrap(store);   (store->blobs now the spy)
 *   spy_opens(spy), spy_bytes(spy), spy_opened(spy, digest)
 *
 * Thread-safe like any BlobService.  Freed with the store. */
#pragma once

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "castore/blobservice.h"
#include "store/store.h"

#define SPY_LOG 4096

struct spy_blobs {
	struct casfs_blob_service base;
	struct casfs_blob_service *inner;
	uint8_t victim[CASFS_B3_LEN];
	bool has_victim;
	uint64_t opens; /* atomic */
	uint64_t bytes; /* atomic */
	pthread_mutex_t lock;
	uint8_t (*log)[CASFS_B3_LEN]; /* SPY_LOG digests, guarded by lock */
	size_t n_log;
};

struct spy_reader {
	struct casfs_blob_reader base;
	struct casfs_blob_reader *inner;
	struct spy_blobs *spy;
	bool corrupt;
};

static inline struct spy_blobs *spy_of(struct casfs_blob_service *s)
{
	return (struct spy_blobs *)s;
}

static ssize_t spy_pread(struct casfs_blob_reader *r, void *buf, size_t len, uint64_t off)
{
	struct spy_reader *sr = (struct spy_reader *)r;
	ssize_t n = casfs_blob_reader_pread(sr->inner, buf, len, off);
	if (n > 0)
		__atomic_add_fetch(&sr->spy->bytes, (uint64_t)n, __ATOMIC_RELAXED);
	if (n > 0 && off == 0 && sr->corrupt)
		((uint8_t *)buf)[0] ^= 0x20;
	return n;
}

static void spy_rclose(struct casfs_blob_reader *r)
{
	casfs_blob_reader_close(((struct spy_reader *)r)->inner);
	free(r);
}

static const struct casfs_blob_reader_ops spy_reader_ops = { .pread = spy_pread,
							     .close = spy_rclose };

static int spy_stat(struct casfs_blob_service *s, const uint8_t d[CASFS_B3_LEN], uint64_t *sz)
{
	return casfs_blob_stat(spy_of(s)->inner, d, sz);
}

static int spy_open(struct casfs_blob_service *s, const uint8_t d[CASFS_B3_LEN],
		    struct casfs_blob_reader **ret)
{
	struct spy_blobs *spy = spy_of(s);
	__atomic_add_fetch(&spy->opens, 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&spy->lock);
	if (spy->n_log < SPY_LOG)
		memcpy(spy->log[spy->n_log++], d, CASFS_B3_LEN);
	pthread_mutex_unlock(&spy->lock);
	struct casfs_blob_reader *in;
	int r = casfs_blob_open(spy->inner, d, &in);
	if (r < 0)
		return r;
	struct spy_reader *sr = calloc(1, sizeof(*sr));
	if (!sr) {
		casfs_blob_reader_close(in);
		return -ENOMEM;
	}
	sr->base = (struct casfs_blob_reader){ .ops = &spy_reader_ops, .size = in->size };
	memcpy(sr->base.digest, in->digest, CASFS_B3_LEN);
	sr->inner = in;
	sr->spy = spy;
	sr->corrupt = spy->has_victim && memcmp(d, spy->victim, CASFS_B3_LEN) == 0;
	*ret = &sr->base;
	return 0;
}

static int spy_create(struct casfs_blob_service *s, struct casfs_blob_writer **ret)
{
	return casfs_blob_create(spy_of(s)->inner, ret);
}

static int spy_ob_get(struct casfs_blob_service *s, const uint8_t d[CASFS_B3_LEN], uint8_t **ret,
		      size_t *len)
{
	struct casfs_blob_service *in = spy_of(s)->inner;
	return in->ops->outboard_get ? in->ops->outboard_get(in, d, ret, len) : -ENOENT;
}

static int spy_ob_put(struct casfs_blob_service *s, const uint8_t d[CASFS_B3_LEN],
		      const struct casfs_outboard *ob, bool replace)
{
	struct casfs_blob_service *in = spy_of(s)->inner;
	return in->ops->outboard_put ? in->ops->outboard_put(in, d, ob, replace) : 0;
}

static void spy_free(struct casfs_blob_service *s)
{
	struct spy_blobs *spy = spy_of(s);
	casfs_blob_service_free(spy->inner);
	pthread_mutex_destroy(&spy->lock);
	free(spy->log);
	free(spy);
}

static const struct casfs_blob_service_ops spy_ops = {
	.name = "spy", .stat = spy_stat, .open = spy_open, .create = spy_create,
	.outboard_get = spy_ob_get, .outboard_put = spy_ob_put, .free = spy_free,
};

/* Put a spy in front of the store's BlobService; NULL on OOM (the store
 * is then unchanged). */
static inline struct spy_blobs *spy_wrap(struct casfs_store *store)
{
	struct spy_blobs *spy = calloc(1, sizeof(*spy));
	if (!spy || !(spy->log = calloc(SPY_LOG, CASFS_B3_LEN))) {
		free(spy);
		return NULL;
	}
	spy->base.ops = &spy_ops;
	spy->inner = store->blobs;
	pthread_mutex_init(&spy->lock, NULL);
	store->blobs = &spy->base;
	return spy;
}

static inline void spy_set_victim(struct spy_blobs *spy, const uint8_t d[CASFS_B3_LEN])
{
	memcpy(spy->victim, d, CASFS_B3_LEN);
	spy->has_victim = true;
}

static inline uint64_t spy_opens(struct spy_blobs *spy)
{
	return __atomic_load_n(&spy->opens, __ATOMIC_RELAXED);
}

static inline uint64_t spy_bytes(struct spy_blobs *spy)
{
	return __atomic_load_n(&spy->bytes, __ATOMIC_RELAXED);
}

static inline void spy_reset(struct spy_blobs *spy)
{
	pthread_mutex_lock(&spy->lock);
	spy->n_log = 0;
	pthread_mutex_unlock(&spy->lock);
	__atomic_store_n(&spy->opens, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&spy->bytes, 0, __ATOMIC_RELAXED);
}

/* How many times blob `d` was opened (among the first SPY_LOG opens). */
static inline size_t spy_opened(struct spy_blobs *spy, const uint8_t d[CASFS_B3_LEN])
{
	size_t n = 0;
	pthread_mutex_lock(&spy->lock);
	for (size_t k = 0; k < spy->n_log; k++)
		n += memcmp(spy->log[k], d, CASFS_B3_LEN) == 0;
	pthread_mutex_unlock(&spy->lock);
	return n;
}
