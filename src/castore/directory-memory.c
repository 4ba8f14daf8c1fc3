/* The memory DirectoryService: canonical encodings in a tsearch(3) tree
 * under one mutex.  Keeping bytes rather than structs makes get() the same
 * decode-and-verify path as the persistent backends. */
#include "directoryservice.h"
#include "memory-index.h"

#include <errno.h>
#include <pthread.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>

#include "../basic/buf.h"
#include "../basic/util.h"

struct mem_dir {
	uint8_t digest[CASFS_B3_LEN]; /* first: the tree compares on it */
	uint8_t *encoded;
	size_t encoded_len;
};

struct mem_dir_service {
	struct casfs_directory_service base;
	pthread_mutex_t lock;
	void *root; /* tsearch tree of struct mem_dir * */
};

static int digest_cmp(const void *a, const void *b)
{
	return memcmp(a, b, CASFS_B3_LEN);
}

static void mem_dir_free(void *p)
{
	struct mem_dir *d = p;
	if (d) {
		free(d->encoded);
		free(d);
	}
}

static int mem_get(struct casfs_directory_service *s, const uint8_t digest[CASFS_B3_LEN],
		   struct casfs_directory *ret, struct casfs_error *err)
{
	struct mem_dir_service *m = (struct mem_dir_service *)s;
	_cleanup_free_ uint8_t *copy = NULL;
	size_t len = 0;
	bool found = false;

	pthread_mutex_lock(&m->lock);
	struct mem_dir **p = tfind(digest, &m->root, digest_cmp);
	if (p) {
		found = true;
		len = (*p)->encoded_len;
		copy = malloc(len ? len : 1);
		if (copy)
			memcpy(copy, (*p)->encoded, len);
	}
	pthread_mutex_unlock(&m->lock);

	char name[CASFS_B3_STR_LEN + 1];
	casfs_b3_format(digest, name);
	if (!found)
		return casfs_error_set(err, -ENOENT, "directory %s not found", name);
	if (!copy)
		return -ENOMEM;
	uint8_t got[CASFS_B3_LEN];
	casfs_b3(copy, len, got);
	if (memcmp(got, digest, CASFS_B3_LEN) != 0)
		return casfs_error_set(err, -EBADMSG, "directory %s is damaged", name);
	int r = casfs_directory_decode(copy, len, ret, err);
	if (r < 0)
		return casfs_error_prefix(err, r == -ENOMEM ? r : -EBADMSG, "directory %s", name);
	return 0;
}

static int mem_has(struct casfs_directory_service *s, const uint8_t digest[CASFS_B3_LEN])
{
	struct mem_dir_service *m = (struct mem_dir_service *)s;
	pthread_mutex_lock(&m->lock);
	void *p = tfind(digest, &m->root, digest_cmp);
	pthread_mutex_unlock(&m->lock);
	return p ? 0 : -ENOENT;
}

/* All or nothing: every record is allocated before the tree is touched, and
 * a tsearch() failure (ENOMEM) undoes the insertions made so far. */
static int mem_put_many(struct casfs_directory_service *s, const struct casfs_directory_entry *e,
			size_t n, struct casfs_error *err)
{
	struct mem_dir_service *m = (struct mem_dir_service *)s;
	_cleanup_free_ struct mem_dir **recs = calloc(n ? n : 1, sizeof(*recs));
	_cleanup_free_ bool *inserted = calloc(n ? n : 1, sizeof(*inserted));
	int r = 0;
	if (!recs || !inserted)
		return casfs_error_set(err, -ENOMEM, "out of memory storing directories");
	for (size_t i = 0; i < n; i++) {
		recs[i] = calloc(1, sizeof(**recs));
		if (!recs[i] || !(recs[i]->encoded = malloc(e[i].encoded_len ? e[i].encoded_len : 1))) {
			r = casfs_error_set(err, -ENOMEM, "out of memory storing directories");
			goto out;
		}
		memcpy(recs[i]->digest, e[i].digest, CASFS_B3_LEN);
		if (e[i].encoded_len)
			memcpy(recs[i]->encoded, e[i].encoded, e[i].encoded_len);
		recs[i]->encoded_len = e[i].encoded_len;
	}

	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < n; i++) {
		struct mem_dir **p = tsearch(recs[i], &m->root, digest_cmp);
		if (!p) {
			for (size_t j = 0; j < i; j++)
				if (inserted[j])
					tdelete(recs[j], &m->root, digest_cmp);
			memset(inserted, 0, n * sizeof(*inserted));
			r = casfs_error_set(err, -ENOMEM, "out of memory storing directories");
			break;
		}
		inserted[i] = *p == recs[i];
	}
	pthread_mutex_unlock(&m->lock);
out:
	for (size_t i = 0; i < n; i++)
		if (!inserted[i])
			mem_dir_free(recs[i]);
	return r;
}

static int mem_list(struct casfs_directory_service *s,
		    int (*cb)(const uint8_t digest[CASFS_B3_LEN], void *userdata), void *userdata)
{
	struct mem_dir_service *m = (struct mem_dir_service *)s;
	return casfs_memory_list_digests(&m->root, &m->lock, cb, userdata);
}

static void mem_free(struct casfs_directory_service *s)
{
	struct mem_dir_service *m = (struct mem_dir_service *)s;
	tdestroy(m->root, mem_dir_free);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static const struct casfs_directory_service_ops mem_ops = {
	.name = "memory",
	.get = mem_get,
	.has = mem_has,
	.put_many = mem_put_many,
	.list = mem_list,
	.free = mem_free,
};

int casfs_directory_service_memory_new(struct casfs_directory_service **ret)
{
	struct mem_dir_service *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->base.ops = &mem_ops;
	pthread_mutex_init(&m->lock, NULL);
	*ret = &m->base;
	return 0;
}
