/* A read-through blob cache: a local BlobService in front of a remote one
 * (declared in blobservice.h).
 *
 *   stat    local, else remote.
 *   open    local, else the remote's blob (which the remote backend has
 *           verified) is copied into the local service under its digest
 *           (the local commit checks it again) and opened from there, so
 *           the reader is always a local one (a file descriptor to splice).
 *   create  writes go to the remote, the store of record.
 *   outboard_get  local, else remote; outboard_put, remove, sync: local.
 *   list    the remote's (NULL if it has none).
 * Borrows both services, which must outlive it.  Thread-safe as they are;
 * two threads missing the same blob both fetch it (the local commit keeps
 * one). */
#include "blobservice.h"

#include <errno.h>
#include <stdlib.h>

#include "../basic/util.h"

#define COPY_CHUNK (1u << 20)

struct cache_blob_service {
	struct casfs_blob_service base;
	struct casfs_blob_service *local, *remote;
};

static struct cache_blob_service *cache_of(struct casfs_blob_service *s)
{
	return (struct cache_blob_service *)s;
}

static int cache_stat(struct casfs_blob_service *s, const uint8_t digest[CASFS_B3_LEN],
		      uint64_t *ret_size)
{
	struct cache_blob_service *c = cache_of(s);
	int r = casfs_blob_stat(c->local, digest, ret_size);
	return r == -ENOENT ? casfs_blob_stat(c->remote, digest, ret_size) : r;
}

/* Copy the remote blob into the local service. */
static int fill(struct cache_blob_service *c, const uint8_t digest[CASFS_B3_LEN])
{
	struct casfs_blob_reader *in = NULL;
	struct casfs_blob_writer *out = NULL;
	int r = casfs_blob_open(c->remote, digest, &in);
	if (r >= 0)
		r = casfs_blob_create(c->local, &out);
	uint8_t *buf = r >= 0 ? malloc(COPY_CHUNK) : NULL;
	if (r >= 0 && !buf)
		r = -ENOMEM;
	for (uint64_t off = 0; r >= 0 && in && off < in->size;) {
		size_t n = (size_t)MIN((uint64_t)COPY_CHUNK, in->size - off);
		r = casfs_blob_reader_pread_full(in, buf, n, off);
		if (r >= 0)
			r = casfs_blob_writer_write(out, buf, n);
		off += n;
	}
	free(buf);
	casfs_blob_reader_close(in);
	if (r < 0) {
		casfs_blob_writer_abort(out);
		return r;
	}
	return casfs_blob_writer_commit(out, digest, NULL, NULL);
}

static int cache_open(struct casfs_blob_service *s, const uint8_t digest[CASFS_B3_LEN],
		      struct casfs_blob_reader **ret)
{
	struct cache_blob_service *c = cache_of(s);
	int r = casfs_blob_open(c->local, digest, ret);
	if (r != -ENOENT)
		return r;
	r = fill(c, digest);
	return r < 0 ? r : casfs_blob_open(c->local, digest, ret);
}

static int cache_create(struct casfs_blob_service *s, struct casfs_blob_writer **ret)
{
	return casfs_blob_create(cache_of(s)->remote, ret);
}

static int cache_sync(struct casfs_blob_service *s)
{
	struct cache_blob_service *c = cache_of(s);
	int r = casfs_blob_sync(c->remote);
	return r < 0 ? r : casfs_blob_sync(c->local);
}

static int cache_list(struct casfs_blob_service *s,
		      int (*cb)(const uint8_t digest[CASFS_B3_LEN], void *userdata), void *userdata)
{
	struct cache_blob_service *c = cache_of(s);
	return c->remote->ops->list ? c->remote->ops->list(c->remote, cb, userdata) : -EOPNOTSUPP;
}

static int cache_outboard_get(struct casfs_blob_service *s, const uint8_t digest[CASFS_B3_LEN],
			      uint8_t **ret, size_t *ret_len)
{
	struct cache_blob_service *c = cache_of(s);
	int r = c->local->ops->outboard_get ? c->local->ops->outboard_get(c->local, digest, ret, ret_len)
					    : -ENOENT;
	if (r == -ENOENT && c->remote->ops->outboard_get)
		r = c->remote->ops->outboard_get(c->remote, digest, ret, ret_len);
	return r;
}

static int cache_outboard_put(struct casfs_blob_service *s, const uint8_t digest[CASFS_B3_LEN],
			      const struct casfs_outboard *ob, bool replace)
{
	struct cache_blob_service *c = cache_of(s);
	return c->local->ops->outboard_put ? c->local->ops->outboard_put(c->local, digest, ob, replace)
					   : -EROFS;
}

static int cache_remove(struct casfs_blob_service *s, const uint8_t digest[CASFS_B3_LEN])
{
	struct cache_blob_service *c = cache_of(s);
	return c->local->ops->remove ? c->local->ops->remove(c->local, digest) : -EOPNOTSUPP;
}

static void cache_free(struct casfs_blob_service *s)
{
	free(s);
}

static const struct casfs_blob_service_ops cache_ops = {
	.name = "cache",
	.blind_puts = true,
	.stat = cache_stat,
	.open = cache_open,
	.create = cache_create,
	.sync = cache_sync,
	.list = cache_list,
	.outboard_get = cache_outboard_get,
	.outboard_put = cache_outboard_put,
	.remove = cache_remove,
	.free = cache_free,
};

int casfs_blob_service_cache_new(struct casfs_blob_service *local, struct casfs_blob_service *remote,
				 struct casfs_blob_service **ret)
{
	struct cache_blob_service *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->base.ops = &cache_ops;
	c->local = local;
	c->remote = remote;
	*ret = &c->base;
	return 0;
}
