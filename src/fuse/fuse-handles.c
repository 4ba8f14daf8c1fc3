/* File handles handed to the kernel (fuse-internal.h).
 *
 * A handle is never a pointer: a virtiofs guest sends whatever fh it
 * likes, so fh = generation << 32 | (slot + 1), and a lookup checks the
 * slot, its generation and its kind before anything is touched.  Slots are
 * reused through a free list; their generation moves on at each reuse, so
 * a stale fh finds nothing. */
#include "fuse-internal.h"

#include <stdlib.h>

void casfs_fuse_handles_init(struct casfs_fuse_handles *h)
{
	*h = (struct casfs_fuse_handles){ 0 };
	pthread_mutex_init(&h->lock, NULL);
}

void casfs_fuse_handles_release(struct casfs_fuse_handles *h, struct casfs_fs *fs)
{
	for (uint32_t i = 0; i < h->n; i++) {
		if (!h->slots[i].ptr)
			continue;
		if (h->slots[i].kind == CASFS_FUSE_HANDLE_DIR)
			casfs_fs_releasedir(fs, h->slots[i].ptr);
		else
			casfs_fs_release(fs, h->slots[i].ptr);
	}
	free(h->slots);
	free(h->free_slots);
	pthread_mutex_destroy(&h->lock);
	*h = (struct casfs_fuse_handles){ 0 };
}

uint64_t casfs_fuse_handle_put(struct casfs_fuse_handles *h, void *ptr, int kind)
{
	uint64_t fh = 0;
	pthread_mutex_lock(&h->lock);
	uint32_t i;
	if (h->n_free) {
		i = h->free_slots[--h->n_free];
	} else {
		if (h->n == h->cap) {
			uint32_t cap = h->cap ? 2 * h->cap : 64;
			void *s = cap > (1u << 24) ? NULL : realloc(h->slots, cap * sizeof(*h->slots));
			void *f = s ? realloc(h->free_slots, cap * sizeof(*h->free_slots)) : NULL;
			if (s)
				h->slots = s;
			if (!f)
				goto out;
			h->free_slots = f;
			h->cap = cap;
		}
		i = h->n++;
		h->slots[i].gen = 1;
	}
	h->slots[i].ptr = ptr;
	h->slots[i].kind = kind;
	fh = (uint64_t)h->slots[i].gen << 32 | (i + 1);
out:
	pthread_mutex_unlock(&h->lock);
	return fh;
}

/* The slot of `fh` if it is live and of `kind`, else NULL.  Under the lock. */
static struct casfs_fuse_handle_slot *slot_of(struct casfs_fuse_handles *h, uint64_t fh, int kind)
{
	uint32_t i = (uint32_t)fh, gen = (uint32_t)(fh >> 32);
	if (i == 0 || i > h->n)
		return NULL;
	struct casfs_fuse_handle_slot *s = &h->slots[i - 1];
	return s->ptr && s->gen == gen && s->kind == kind ? s : NULL;
}

void *casfs_fuse_handle_get(struct casfs_fuse_handles *h, uint64_t fh, int kind)
{
	pthread_mutex_lock(&h->lock);
	struct casfs_fuse_handle_slot *s = slot_of(h, fh, kind);
	void *p = s ? s->ptr : NULL;
	pthread_mutex_unlock(&h->lock);
	return p;
}

void *casfs_fuse_handle_take(struct casfs_fuse_handles *h, uint64_t fh, int kind)
{
	pthread_mutex_lock(&h->lock);
	struct casfs_fuse_handle_slot *s = slot_of(h, fh, kind);
	void *p = NULL;
	if (s) {
		p = s->ptr;
		s->ptr = NULL;
		s->gen++;
		h->free_slots[h->n_free++] = (uint32_t)(s - h->slots);
	}
	pthread_mutex_unlock(&h->lock);
	return p;
}
