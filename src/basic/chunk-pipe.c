#include "chunk-pipe.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct casfs_chunk_pipe {
	pthread_mutex_t lock;
	pthread_cond_t changed;
	size_t n_slots, slot_size;
	uint8_t **slot;
	size_t *len;
	size_t head, count; /* filled slots: head .. head + count - 1 (mod n_slots) */
	bool popped;        /* the consumer holds slot `head` (from its last pop) */
	bool closed, cancelled;
	int result;
};

struct casfs_chunk_pipe *casfs_chunk_pipe_new(size_t slots, size_t slot_size)
{
	struct casfs_chunk_pipe *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->n_slots = slots;
	p->slot_size = slot_size;
	p->slot = calloc(slots, sizeof(*p->slot));
	p->len = calloc(slots, sizeof(*p->len));
	bool ok = p->slot && p->len;
	for (size_t i = 0; ok && i < slots; i++)
		ok = (p->slot[i] = malloc(slot_size)) != NULL;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->changed, NULL);
	if (!ok) {
		casfs_chunk_pipe_free(p);
		return NULL;
	}
	return p;
}

void casfs_chunk_pipe_free(struct casfs_chunk_pipe *p)
{
	if (!p)
		return;
	for (size_t i = 0; p->slot && i < p->n_slots; i++)
		free(p->slot[i]);
	free(p->slot);
	free(p->len);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->changed);
	free(p);
}

int casfs_chunk_pipe_push(struct casfs_chunk_pipe *p, const void *data, size_t n)
{
	const uint8_t *d = data;
	pthread_mutex_lock(&p->lock);
	while (n) {
		while (p->count == p->n_slots && !p->cancelled)
			pthread_cond_wait(&p->changed, &p->lock);
		if (p->cancelled) {
			pthread_mutex_unlock(&p->lock);
			return -ECANCELED;
		}
		size_t i = (p->head + p->count) % p->n_slots;
		size_t k = n < p->slot_size ? n : p->slot_size;
		/* The copy needs no lock: no one else touches a free slot. */
		pthread_mutex_unlock(&p->lock);
		memcpy(p->slot[i], d, k);
		pthread_mutex_lock(&p->lock);
		p->len[i] = k;
		p->count++;
		pthread_cond_broadcast(&p->changed);
		d += k;
		n -= k;
	}
	pthread_mutex_unlock(&p->lock);
	return 0;
}

void casfs_chunk_pipe_close(struct casfs_chunk_pipe *p, int result)
{
	pthread_mutex_lock(&p->lock);
	p->closed = true;
	p->result = result;
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
}

ssize_t casfs_chunk_pipe_pop(struct casfs_chunk_pipe *p, const void **ret_data)
{
	pthread_mutex_lock(&p->lock);
	if (p->popped) { /* hand the previous chunk's slot back */
		p->popped = false;
		p->head = (p->head + 1) % p->n_slots;
		p->count--;
		pthread_cond_broadcast(&p->changed);
	}
	while (p->count == 0 && !p->closed)
		pthread_cond_wait(&p->changed, &p->lock);
	ssize_t r;
	if (p->count) {
		p->popped = true;
		*ret_data = p->slot[p->head];
		r = (ssize_t)p->len[p->head];
	} else {
		r = p->result;
	}
	pthread_mutex_unlock(&p->lock);
	return r;
}

void casfs_chunk_pipe_cancel(struct casfs_chunk_pipe *p)
{
	pthread_mutex_lock(&p->lock);
	p->cancelled = true;
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
}
