/* The read-through PathInfoService (through.h). */
#include "through.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../storepath/storepath.h"

/* Deeper reference chains than this are refused (a loop in a lying
 * cache's references, or a stack about to run out). */
#define MAX_DEPTH 2048

/* A path being substituted, and who waits for it. */
struct inflight {
	uint8_t digest[CASFS_STORE_DIGEST_LEN];
	bool done;
	int result;
	struct casfs_error err;
	unsigned refs; /* the fetching thread + waiters */
	struct inflight *next;
};

struct through {
	struct casfs_pathinfo_service base;
	struct casfs_store *cache;
	struct casfs_substituter *sub;
	struct casfs_nixkey_list keys;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct inflight *inflight;
};

static int substitute_path(struct through *t, const uint8_t digest[CASFS_STORE_DIGEST_LEN],
			   unsigned depth, struct casfs_error *err);

/* The path's references are registered in the cache, fetching the missing
 * ones first. */
static int ensure_references(struct through *t, const struct casfs_narinfo *ni, unsigned depth,
			     struct casfs_error *err)
{
	char path[CASFS_STORE_PATH_MAX + 1];
	casfs_store_path_format(&ni->path, path);
	for (size_t i = 0; i < ni->n_references; i++) {
		const uint8_t *d = ni->references[i].digest;
		if (!memcmp(d, ni->path.digest, CASFS_STORE_DIGEST_LEN))
			continue;
		struct casfs_pathinfo have = { 0 };
		int r = casfs_pathinfo_get(t->cache->pathinfos, d, &have, err);
		casfs_pathinfo_release(&have);
		if (r == -ENOENT)
			r = substitute_path(t, d, depth + 1, err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int fetch_and_register(struct through *t, const uint8_t digest[CASFS_STORE_DIGEST_LEN],
			      unsigned depth, struct casfs_error *err)
{
	if (depth > MAX_DEPTH)
		return casfs_error_set(err, -ELOOP, "references nest deeper than %d paths", MAX_DEPTH);
	struct casfs_narinfo ni = { 0 };
	int r = t->sub->ops->query(t->sub, digest, &ni, err);
	if (r < 0)
		return r;
	r = ensure_references(t, &ni, depth, err);
	struct casfs_pathinfo pi = { 0 };
	if (r >= 0)
		r = casfs_substitute(t->sub, &t->keys, &ni, t->cache, &pi, err);
	if (r >= 0)
		r = casfs_store_add_ingested(t->cache, digest, &pi, err);
	casfs_pathinfo_release(&pi);
	casfs_narinfo_release(&ni);
	return r;
}

static void inflight_unref(struct inflight *f)
{
	if (--f->refs == 0)
		free(f);
}

/* Substitute one path into the cache, or wait for the thread already
 * doing it. */
static int substitute_path(struct through *t, const uint8_t digest[CASFS_STORE_DIGEST_LEN],
			   unsigned depth, struct casfs_error *err)
{
	pthread_mutex_lock(&t->lock);
	struct inflight *f = t->inflight;
	while (f && memcmp(f->digest, digest, CASFS_STORE_DIGEST_LEN) != 0)
		f = f->next;
	if (f) {
		f->refs++;
		while (!f->done)
			pthread_cond_wait(&t->cond, &t->lock);
		int r = f->result;
		if (r < 0 && err)
			*err = f->err;
		inflight_unref(f);
		pthread_mutex_unlock(&t->lock);
		return r;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		pthread_mutex_unlock(&t->lock);
		return casfs_error_set(err, -ENOMEM, "out of memory");
	}
	memcpy(f->digest, digest, CASFS_STORE_DIGEST_LEN);
	f->refs = 1;
	f->next = t->inflight;
	t->inflight = f;
	pthread_mutex_unlock(&t->lock);

	struct casfs_error mine = { 0 };
	int r = fetch_and_register(t, digest, depth, &mine);

	pthread_mutex_lock(&t->lock);
	for (struct inflight **p = &t->inflight; *p; p = &(*p)->next)
		if (*p == f) {
			*p = f->next;
			break;
		}
	f->done = true;
	f->result = r;
	f->err = mine;
	pthread_cond_broadcast(&t->cond);
	inflight_unref(f);
	pthread_mutex_unlock(&t->lock);
	if (r < 0 && err)
		*err = mine;
	return r;
}

static int through_get(struct casfs_pathinfo_service *s, const uint8_t digest[CASFS_STORE_DIGEST_LEN],
		       struct casfs_pathinfo *ret, struct casfs_error *err)
{
	struct through *t = (struct through *)s;
	int r = casfs_pathinfo_get(t->cache->pathinfos, digest, ret, err);
	if (r != -ENOENT)
		return r;
	r = substitute_path(t, digest, 0, err);
	if (r < 0)
		return r;
	return casfs_pathinfo_get(t->cache->pathinfos, digest, ret, err);
}

static int through_put(struct casfs_pathinfo_service *s, const uint8_t digest[CASFS_STORE_DIGEST_LEN],
		       const struct casfs_pathinfo *pi, struct casfs_error *err)
{
	struct through *t = (struct through *)s;
	return casfs_pathinfo_put(t->cache->pathinfos, digest, pi, err);
}

static int through_list(struct casfs_pathinfo_service *s,
			int (*cb)(const uint8_t digest[CASFS_STORE_DIGEST_LEN],
				  const struct casfs_pathinfo *pi, void *userdata),
			void *userdata, struct casfs_error *err)
{
	struct through *t = (struct through *)s;
	return casfs_pathinfo_list(t->cache->pathinfos, cb, userdata, err);
}

static int through_list_from(struct casfs_pathinfo_service *s,
			     const uint8_t after[CASFS_STORE_DIGEST_LEN], size_t max,
			     casfs_pathinfo_entry_cb cb, void *userdata, struct casfs_error *err)
{
	struct through *t = (struct through *)s;
	return casfs_pathinfo_list_from(t->cache->pathinfos, after, max, cb, userdata, err);
}

static void through_free(struct casfs_pathinfo_service *s)
{
	struct through *t = (struct through *)s;
	casfs_substituter_free(t->sub);
	casfs_nixkey_list_release(&t->keys);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->cond);
	free(t);
}

static const struct casfs_pathinfo_service_ops through_ops = {
	.name = "through",
	.get = through_get,
	.put = through_put,
	.list = through_list,
	.list_from = through_list_from,
	.free = through_free,
};

int casfs_through_pathinfo_new(struct casfs_store *cache, struct casfs_substituter *sub,
			       struct casfs_nixkey_list *keys, struct casfs_pathinfo_service **ret)
{
	struct through *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->base.ops = &through_ops;
	t->cache = cache;
	t->sub = sub;
	t->keys = *keys;
	*keys = (struct casfs_nixkey_list){ 0 };
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	*ret = &t->base;
	return 0;
}
