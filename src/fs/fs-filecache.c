/* The open-blob cache behind casfs_fs_file_get()/_put().
 *
 * Why: with FUSE "no_open" the kernel sends no open or release, so a read
 * names only an inode; opening the blob file (and closing it) on every
 * read request would cost two syscalls per 128 KiB.  Instead open blobs
 * are kept by digest (and size): every inode with the same content shares one, and
 * the first user opens and verifies it while later ones wait on `opened`
 * (readahead sends several reads of one file at once; they must not all
 * hash it).  A failed open is handed to the waiters and then forgotten,
 * so the next read tries again (and logs again).
 *
 * Bound: at most `cap` files stay open once nobody holds them; the least
 * recently used unheld one is closed first.  Held files are never closed,
 * so the count can exceed `cap` by the number of reads in flight. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs-internal.h"

#define FILECACHE_DEFAULT_CAP 256

int fs_filecache_init(struct fs_filecache *c, size_t cap)
{
	memset(c, 0, sizeof(*c));
	c->cap = cap ? cap : FILECACHE_DEFAULT_CAP;
	c->n_buckets = 64;
	while (c->n_buckets < c->cap * 2 && c->n_buckets < (1u << 20))
		c->n_buckets *= 2;
	c->buckets = calloc(c->n_buckets, sizeof(*c->buckets));
	if (!c->buckets)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->opened, NULL);
	return 0;
}

void fs_filecache_release(struct fs_filecache *c)
{
	if (!c->buckets)
		return;
	for (size_t b = 0; b < c->n_buckets; b++) {
		struct casfs_fs_file *f = c->buckets[b];
		while (f) {
			struct casfs_fs_file *next = f->hnext;
			fs_file_free(f);
			f = next;
		}
	}
	free(c->buckets);
	c->buckets = NULL;
	pthread_cond_destroy(&c->opened);
	pthread_mutex_destroy(&c->lock);
}

static struct casfs_fs_file **bucket(struct fs_filecache *c, const uint8_t d[CASFS_B3_LEN])
{
	uint64_t v;
	memcpy(&v, d, sizeof(v)); /* a digest: uniformly distributed already */
	return &c->buckets[v & (c->n_buckets - 1)];
}

static void lru_unlink(struct fs_filecache *c, struct casfs_fs_file *f)
{
	if (f->lru_prev)
		f->lru_prev->lru_next = f->lru_next;
	else
		c->lru_head = f->lru_next;
	if (f->lru_next)
		f->lru_next->lru_prev = f->lru_prev;
	else
		c->lru_tail = f->lru_prev;
	f->lru_prev = f->lru_next = NULL;
}

static void lru_push(struct fs_filecache *c, struct casfs_fs_file *f)
{
	f->lru_prev = NULL;
	f->lru_next = c->lru_head;
	if (c->lru_head)
		c->lru_head->lru_prev = f;
	else
		c->lru_tail = f;
	c->lru_head = f;
}

static void unhash(struct fs_filecache *c, struct casfs_fs_file *f)
{
	struct casfs_fs_file **p = bucket(c, f->digest);
	while (*p && *p != f)
		p = &(*p)->hnext;
	if (*p)
		*p = f->hnext;
	f->hnext = NULL;
	c->n--;
}

/* Take unheld files beyond the bound out of the cache; they are chained
 * on *victims through hnext, to be closed after the lock is dropped. */
static void evict_locked(struct fs_filecache *c, struct casfs_fs_file **victims)
{
	while (c->n > c->cap && c->lru_tail) {
		struct casfs_fs_file *f = c->lru_tail;
		lru_unlink(c, f);
		unhash(c, f);
		f->hnext = *victims;
		*victims = f;
	}
}

/* Drop one reference; the last one of a FAILED file removes it. */
static void put_locked(struct fs_filecache *c, struct casfs_fs_file *f,
		       struct casfs_fs_file **victims)
{
	if (--f->refs > 0)
		return;
	if (f->state == FS_FILE_FAILED) {
		unhash(c, f);
		f->hnext = *victims;
		*victims = f;
		return;
	}
	lru_push(c, f);
	evict_locked(c, victims);
}

static void free_victims(struct casfs_fs_file *v)
{
	while (v) {
		struct casfs_fs_file *next = v->hnext;
		fs_file_free(v);
		v = next;
	}
}

int casfs_fs_file_get(struct casfs_fs *fs, uint64_t ino, struct casfs_fs_file **ret)
{
	uint8_t digest[CASFS_B3_LEN];
	uint64_t size = 0;
	int r = fs_file_target(fs, ino, digest, &size);
	if (r < 0)
		return r;
	fs_prefetch_siblings(fs, ino, size);
	return fs_filecache_get(fs, digest, size, ret);
}

int fs_filecache_get(struct casfs_fs *fs, const uint8_t digest[CASFS_B3_LEN], uint64_t size,
		     struct casfs_fs_file **ret)
{
	int r;
	struct fs_filecache *c = &fs->files;
	struct casfs_fs_file *victims = NULL;
	pthread_mutex_lock(&c->lock);
	/* Keyed by digest and size: a node that claims another size for the
	 * same digest gets an entry of its own, whose open fails (EIO) as it
	 * would uncached, instead of another node's open file. */
	struct casfs_fs_file *f = *bucket(c, digest);
	while (f && (memcmp(f->digest, digest, CASFS_B3_LEN) != 0 || f->size != size))
		f = f->hnext;
	if (f) {
		if (f->refs++ == 0)
			lru_unlink(c, f);
		while (f->state == FS_FILE_OPENING)
			pthread_cond_wait(&c->opened, &c->lock);
		r = f->state == FS_FILE_FAILED ? f->error : 0;
		if (r < 0)
			put_locked(c, f, &victims);
		pthread_mutex_unlock(&c->lock);
		free_victims(victims);
		if (r < 0)
			return r;
		*ret = f;
		return 0;
	}

	f = calloc(1, sizeof(*f));
	if (!f) {
		pthread_mutex_unlock(&c->lock);
		return -ENOMEM;
	}
	pthread_mutex_init(&f->lock, NULL);
	f->fd = -1;
	f->state = FS_FILE_OPENING;
	f->refs = 1;
	f->size = size; /* the cache key, with the digest; set once, here */
	memcpy(f->digest, digest, CASFS_B3_LEN);
	struct casfs_fs_file **b = bucket(c, digest);
	f->hnext = *b;
	*b = f;
	c->n++;
	pthread_mutex_unlock(&c->lock);

	/* Open and verify without the lock: this may hash a large blob. */
	r = fs_file_open_blob(fs, digest, size, f);

	pthread_mutex_lock(&c->lock);
	f->state = r < 0 ? FS_FILE_FAILED : FS_FILE_READY;
	f->error = r;
	pthread_cond_broadcast(&c->opened);
	if (r < 0)
		put_locked(c, f, &victims);
	else
		evict_locked(c, &victims);
	pthread_mutex_unlock(&c->lock);
	free_victims(victims);
	if (r < 0)
		return r;
	*ret = f;
	return 0;
}

void casfs_fs_file_put(struct casfs_fs *fs, struct casfs_fs_file *f)
{
	if (!f)
		return;
	struct fs_filecache *c = &fs->files;
	struct casfs_fs_file *victims = NULL;
	pthread_mutex_lock(&c->lock);
	put_locked(c, f, &victims);
	pthread_mutex_unlock(&c->lock);
	free_victims(victims);
}
