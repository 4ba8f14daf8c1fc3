/* The memory PathInfoService: canonical encodings in a tsearch(3) tree
 * (ordered by digest, as list() promises) under one mutex. */
#include "pathinfoservice.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>

#include "../basic/buf.h"
#include "../basic/encoding.h"
#include "../basic/util.h"

struct mem_pi {
	uint8_t digest[CASFS_STORE_DIGEST_LEN]; /* first: the tree compares on it */
	struct casfs_buf encoded;
};

struct mem_pi_service {
	struct casfs_pathinfo_service base;
	pthread_mutex_t lock;
	void *root; /* tsearch tree of struct mem_pi * */
};

static int digest_cmp(const void *a, const void *b)
{
	return memcmp(a, b, CASFS_STORE_DIGEST_LEN);
}

static void mem_pi_free(void *p)
{
	struct mem_pi *e = p;
	if (e) {
		casfs_buf_release(&e->encoded);
		free(e);
	}
}

static int decode_record(const uint8_t digest[CASFS_STORE_DIGEST_LEN], const struct casfs_buf *b,
			 struct casfs_pathinfo *ret, struct casfs_error *err)
{
	int r = casfs_pathinfo_decode(b->data, b->len, ret, err);
	if (r < 0 && r != -ENOMEM) {
		char name[CASFS_NIXBASE32_LEN(CASFS_STORE_DIGEST_LEN) + 1];
		casfs_nixbase32_encode(digest, CASFS_STORE_DIGEST_LEN, name);
		return casfs_error_prefix(err, -EBADMSG, "path info %s is damaged", name);
	}
	return r;
}

static int mem_get(struct casfs_pathinfo_service *s, const uint8_t digest[CASFS_STORE_DIGEST_LEN],
		   struct casfs_pathinfo *ret, struct casfs_error *err)
{
	struct mem_pi_service *m = (struct mem_pi_service *)s;
	struct casfs_buf copy = CASFS_BUF_INIT;
	int r = -ENOENT;
	pthread_mutex_lock(&m->lock);
	struct mem_pi **p = tfind(digest, &m->root, digest_cmp);
	if (p)
		r = casfs_buf_append(&copy, (*p)->encoded.data, (*p)->encoded.len);
	pthread_mutex_unlock(&m->lock);
	if (r >= 0)
		r = decode_record(digest, &copy, ret, err);
	casfs_buf_release(&copy);
	return r;
}

static int mem_put(struct casfs_pathinfo_service *s, const uint8_t digest[CASFS_STORE_DIGEST_LEN],
		   const struct casfs_pathinfo *pi, struct casfs_error *err)
{
	struct mem_pi_service *m = (struct mem_pi_service *)s;
	struct mem_pi *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	memcpy(e->digest, digest, CASFS_STORE_DIGEST_LEN);
	int r = casfs_pathinfo_encode(pi, &e->encoded);
	if (r < 0) {
		mem_pi_free(e);
		return casfs_error_set(err, r, "cannot encode path info");
	}
	pthread_mutex_lock(&m->lock);
	struct mem_pi **p = tsearch(e, &m->root, digest_cmp);
	if (p && *p != e) { /* replace: swap the bytes in place */
		struct casfs_buf old = (*p)->encoded;
		(*p)->encoded = e->encoded;
		e->encoded = old;
	}
	pthread_mutex_unlock(&m->lock);
	if (!p)
		r = -ENOMEM;
	if (!p || *p != e)
		mem_pi_free(e);
	return r;
}

/* A copy of a record for a snapshot (NULL on OOM). */
static struct mem_pi *mem_pi_copy(const struct mem_pi *src)
{
	struct mem_pi *e = calloc(1, sizeof(*e));
	if (!e || casfs_buf_append(&e->encoded, src->encoded.data, src->encoded.len) < 0) {
		mem_pi_free(e);
		return NULL;
	}
	memcpy(e->digest, src->digest, CASFS_STORE_DIGEST_LEN);
	return e;
}

struct collect {
	struct mem_pi **recs;
	size_t n, cap;
	int r;
};

static void collect_action(const void *node, VISIT which, void *userdata)
{
	struct collect *c = userdata;
	if ((which != postorder && which != leaf) || c->r < 0)
		return;
	const struct mem_pi *src = *(struct mem_pi *const *)node;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		struct mem_pi **p = reallocarray(c->recs, cap, sizeof(*p));
		if (!p) {
			c->r = -ENOMEM;
			return;
		}
		c->recs = p;
		c->cap = cap;
	}
	struct mem_pi *e = mem_pi_copy(src);
	if (!e) {
		c->r = -ENOMEM;
		return;
	}
	c->recs[c->n++] = e;
}

/* twalk visits in key order; the callback runs on a snapshot, unlocked. */
static int mem_list(struct casfs_pathinfo_service *s,
		    int (*cb)(const uint8_t digest[CASFS_STORE_DIGEST_LEN],
			      const struct casfs_pathinfo *pi, void *userdata),
		    void *userdata, struct casfs_error *err)
{
	struct mem_pi_service *m = (struct mem_pi_service *)s;
	struct collect c = { 0 };
	pthread_mutex_lock(&m->lock);
	twalk_r(m->root, collect_action, &c);
	pthread_mutex_unlock(&m->lock);
	int r = c.r;
	for (size_t i = 0; r >= 0 && i < c.n; i++) {
		struct casfs_pathinfo pi = { 0 };
		r = decode_record(c.recs[i]->digest, &c.recs[i]->encoded, &pi, err);
		if (r >= 0)
			r = cb(c.recs[i]->digest, &pi, userdata);
		casfs_pathinfo_release(&pi);
	}
	for (size_t i = 0; i < c.n; i++)
		mem_pi_free(c.recs[i]);
	free(c.recs);
	return r < 0 ? r : 0;
}

/* One page: copies of at most `max` records after `after`.  twalk cannot
 * start in the middle or stop early, so a page costs a walk over the
 * tree (compares only, past the page) but holds only its own records. */
struct collect_page {
	const uint8_t *after; /* NULL: from the first */
	struct mem_pi **recs; /* max slots */
	size_t n, max;
	int r;
};

static void collect_page_action(const void *node, VISIT which, void *userdata)
{
	struct collect_page *c = userdata;
	if ((which != postorder && which != leaf) || c->r < 0 || c->n == c->max)
		return;
	const struct mem_pi *src = *(struct mem_pi *const *)node;
	if (c->after && memcmp(src->digest, c->after, CASFS_STORE_DIGEST_LEN) <= 0)
		return;
	struct mem_pi *e = mem_pi_copy(src);
	if (!e) {
		c->r = -ENOMEM;
		return;
	}
	c->recs[c->n++] = e;
}

static int mem_list_from(struct casfs_pathinfo_service *s,
			 const uint8_t after[CASFS_STORE_DIGEST_LEN], size_t max,
			 casfs_pathinfo_entry_cb cb, void *userdata, struct casfs_error *err)
{
	(void)err; /* nothing here can fail but memory */
	struct mem_pi_service *m = (struct mem_pi_service *)s;
	max = MIN(max, (size_t)INT_MAX);
	if (max == 0)
		return 0;
	struct collect_page c = { .after = after, .max = max };
	c.recs = calloc(max, sizeof(*c.recs));
	if (!c.recs)
		return -ENOMEM;
	pthread_mutex_lock(&m->lock);
	twalk_r(m->root, collect_page_action, &c);
	pthread_mutex_unlock(&m->lock);
	int r = c.r;
	size_t given = 0;
	for (size_t i = 0; r >= 0 && i < c.n; i++) {
		struct casfs_pathinfo pi = { 0 };
		struct casfs_error damage = { 0 };
		r = decode_record(c.recs[i]->digest, &c.recs[i]->encoded, &pi, &damage);
		if (r == -ENOMEM)
			break;
		r = r < 0 ? cb(c.recs[i]->digest, NULL, &damage, userdata)
			  : cb(c.recs[i]->digest, &pi, NULL, userdata);
		casfs_pathinfo_release(&pi);
		given++;
	}
	for (size_t i = 0; i < c.n; i++)
		mem_pi_free(c.recs[i]);
	free(c.recs);
	return r < 0 ? r : (int)given;
}

static void mem_free(struct casfs_pathinfo_service *s)
{
	struct mem_pi_service *m = (struct mem_pi_service *)s;
	tdestroy(m->root, mem_pi_free);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static const struct casfs_pathinfo_service_ops mem_ops = {
	.name = "memory",
	.get = mem_get,
	.put = mem_put,
	.list = mem_list,
	.list_from = mem_list_from,
	.free = mem_free,
};

int casfs_pathinfo_service_memory_new(struct casfs_pathinfo_service **ret)
{
	struct mem_pi_service *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->base.ops = &mem_ops;
	pthread_mutex_init(&m->lock, NULL);
	*ret = &m->base;
	return 0;
}
