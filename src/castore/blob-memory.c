/* The memory BlobService: a tsearch(3) tree of refcounted blobs under one
 * mutex.  Blobs are immutable once committed, so a reader only needs a
 * reference, never the lock: removing a blob while it is open just drops
 * the tree's reference. */
#include "blobservice.h"
#include "memory-index.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>

#include "../basic/buf.h"
#include "../basic/util.h"

struct mem_blob {
	uint8_t digest[CASFS_B3_LEN]; /* first: the tree compares on it */
	unsigned refs;                /* atomic */
	uint64_t size;
	uint8_t *data;
};

struct mem_blob_service {
	struct casfs_blob_service base;
	pthread_mutex_t lock;
	void *root; /* tsearch tree of struct mem_blob * */
};

struct mem_blob_reader {
	struct casfs_blob_reader base;
	struct mem_blob *blob;
};

struct mem_blob_writer {
	struct casfs_blob_writer base;
	struct mem_blob_service *service;
	struct casfs_buf buf;
	struct casfs_b3_hasher hasher;
};

static int digest_cmp(const void *a, const void *b)
{
	return memcmp(a, b, CASFS_B3_LEN);
}

static void blob_unref(struct mem_blob *b)
{
	if (b && __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		free(b->data);
		free(b);
	}
}

static void blob_unref_void(void *p)
{
	blob_unref(p);
}

/* A referenced blob, or NULL.  Takes the lock. */
static struct mem_blob *lookup_ref(struct mem_blob_service *m, const uint8_t digest[CASFS_B3_LEN])
{
	pthread_mutex_lock(&m->lock);
	struct mem_blob **p = tfind(digest, &m->root, digest_cmp);
	struct mem_blob *b = p ? *p : NULL;
	if (b)
		__atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&m->lock);
	return b;
}

static int mem_stat(struct casfs_blob_service *s, const uint8_t digest[CASFS_B3_LEN],
		    uint64_t *ret_size)
{
	struct mem_blob *b = lookup_ref((struct mem_blob_service *)s, digest);
	if (!b)
		return -ENOENT;
	if (ret_size)
		*ret_size = b->size;
	blob_unref(b);
	return 0;
}

static ssize_t mem_reader_pread(struct casfs_blob_reader *r, void *buf, size_t len, uint64_t off)
{
	struct mem_blob *b = ((struct mem_blob_reader *)r)->blob;
	if (off >= b->size)
		return 0;
	size_t n = (size_t)MIN((uint64_t)len, b->size - off);
	n = MIN(n, (size_t)SSIZE_MAX);
	memcpy(buf, b->data + off, n);
	return (ssize_t)n;
}

static void mem_reader_close(struct casfs_blob_reader *r)
{
	struct mem_blob_reader *mr = (struct mem_blob_reader *)r;
	blob_unref(mr->blob);
	free(mr);
}

static const struct casfs_blob_reader_ops mem_reader_ops = {
	.pread = mem_reader_pread,
	.fd = NULL,
	.close = mem_reader_close,
};

static int mem_open(struct casfs_blob_service *s, const uint8_t digest[CASFS_B3_LEN],
		    struct casfs_blob_reader **ret)
{
	struct mem_blob_reader *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->blob = lookup_ref((struct mem_blob_service *)s, digest);
	if (!r->blob) {
		free(r);
		return -ENOENT;
	}
	r->base.ops = &mem_reader_ops;
	r->base.size = r->blob->size;
	memcpy(r->base.digest, digest, CASFS_B3_LEN);
	*ret = &r->base;
	return 0;
}

static int mem_writer_write(struct casfs_blob_writer *w, const void *p, size_t n)
{
	struct mem_blob_writer *mw = (struct mem_blob_writer *)w;
	int r = casfs_buf_append(&mw->buf, p, n);
	if (r < 0)
		return r;
	casfs_b3_update(&mw->hasher, p, n);
	return 0;
}

static void mem_writer_abort(struct casfs_blob_writer *w)
{
	struct mem_blob_writer *mw = (struct mem_blob_writer *)w;
	casfs_buf_release(&mw->buf);
	free(mw);
}

static int mem_writer_commit(struct casfs_blob_writer *w, const uint8_t *expected,
			     uint8_t ret_digest[CASFS_B3_LEN], uint64_t *ret_size)
{
	struct mem_blob_writer *mw = (struct mem_blob_writer *)w;
	struct mem_blob_service *m = mw->service;
	uint8_t digest[CASFS_B3_LEN];
	casfs_b3_final(&mw->hasher, digest);
	uint64_t size = mw->buf.len;
	if (expected && memcmp(expected, digest, CASFS_B3_LEN) != 0) {
		mem_writer_abort(w);
		return -EBADMSG;
	}

	struct mem_blob *b = calloc(1, sizeof(*b));
	if (!b) {
		mem_writer_abort(w);
		return -ENOMEM;
	}
	memcpy(b->digest, digest, CASFS_B3_LEN);
	b->refs = 1;
	b->size = size;
	b->data = casfs_buf_steal(&mw->buf, NULL);
	mem_writer_abort(w);

	pthread_mutex_lock(&m->lock);
	struct mem_blob **p = tsearch(b, &m->root, digest_cmp);
	pthread_mutex_unlock(&m->lock);
	if (!p) {
		blob_unref(b);
		return -ENOMEM;
	}
	if (*p != b) /* already present: same content by definition */
		blob_unref(b);
	if (ret_digest)
		memcpy(ret_digest, digest, CASFS_B3_LEN);
	if (ret_size)
		*ret_size = size;
	return 0;
}

static const struct casfs_blob_writer_ops mem_writer_ops = {
	.write = mem_writer_write,
	.commit = mem_writer_commit,
	.abort = mem_writer_abort,
};

static int mem_create(struct casfs_blob_service *s, struct casfs_blob_writer **ret)
{
	struct mem_blob_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->base.ops = &mem_writer_ops;
	w->service = (struct mem_blob_service *)s;
	casfs_buf_init(&w->buf);
	casfs_b3_init(&w->hasher);
	*ret = &w->base;
	return 0;
}

/* The callback runs without the lock (it may well call back into us), on a
 * snapshot of the digests. */
static int mem_list(struct casfs_blob_service *s,
		    int (*cb)(const uint8_t digest[CASFS_B3_LEN], void *userdata), void *userdata)
{
	struct mem_blob_service *m = (struct mem_blob_service *)s;
	return casfs_memory_list_digests(&m->root, &m->lock, cb, userdata);
}

static int mem_remove(struct casfs_blob_service *s, const uint8_t digest[CASFS_B3_LEN])
{
	struct mem_blob_service *m = (struct mem_blob_service *)s;
	pthread_mutex_lock(&m->lock);
	struct mem_blob **p = tfind(digest, &m->root, digest_cmp);
	struct mem_blob *b = p ? *p : NULL;
	if (b)
		tdelete(digest, &m->root, digest_cmp);
	pthread_mutex_unlock(&m->lock);
	if (!b)
		return -ENOENT;
	blob_unref(b);
	return 0;
}

static void mem_free(struct casfs_blob_service *s)
{
	struct mem_blob_service *m = (struct mem_blob_service *)s;
	tdestroy(m->root, blob_unref_void);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static const struct casfs_blob_service_ops mem_ops = {
	.name = "memory",
	.stat = mem_stat,
	.open = mem_open,
	.create = mem_create,
	.sync = NULL,
	.list = mem_list,
	.remove = mem_remove,
	.free = mem_free,
};

int casfs_blob_service_memory_new(struct casfs_blob_service **ret)
{
	struct mem_blob_service *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->base.ops = &mem_ops;
	pthread_mutex_init(&m->lock, NULL);
	*ret = &m->base;
	return 0;
}
