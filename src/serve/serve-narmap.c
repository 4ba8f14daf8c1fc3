#include "serve-narmap.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct slot {
	bool used;
	uint8_t sha[CASFS_SHA256_LEN];
	uint8_t digest[CASFS_STORE_DIGEST_LEN];
};

struct casfs_narmap {
	pthread_mutex_t lock;
	struct slot *slots; /* CASFS_NARMAP_CAP * 2, open addressing */
	size_t n;
};

#define NSLOTS (2 * CASFS_NARMAP_CAP)

struct casfs_narmap *casfs_narmap_new(void)
{
	struct casfs_narmap *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->slots = calloc(NSLOTS, sizeof(*m->slots));
	if (!m->slots) {
		free(m);
		return NULL;
	}
	pthread_mutex_init(&m->lock, NULL);
	return m;
}

void casfs_narmap_free(struct casfs_narmap *m)
{
	if (!m)
		return;
	pthread_mutex_destroy(&m->lock);
	free(m->slots);
	free(m);
}

/* SHA-256 values are uniform: their first bytes are the hash. */
static size_t slot_of(const uint8_t sha[CASFS_SHA256_LEN])
{
	size_t h;
	memcpy(&h, sha, sizeof(h));
	return h % NSLOTS;
}

void casfs_narmap_put(struct casfs_narmap *m, const uint8_t sha[CASFS_SHA256_LEN],
		      const uint8_t digest[CASFS_STORE_DIGEST_LEN])
{
	pthread_mutex_lock(&m->lock);
	if (m->n >= CASFS_NARMAP_CAP) {
		memset(m->slots, 0, NSLOTS * sizeof(*m->slots));
		m->n = 0;
	}
	for (size_t i = slot_of(sha);; i = (i + 1) % NSLOTS) {
		struct slot *s = &m->slots[i];
		if (s->used && memcmp(s->sha, sha, CASFS_SHA256_LEN) != 0)
			continue;
		if (!s->used)
			m->n++;
		s->used = true;
		memcpy(s->sha, sha, CASFS_SHA256_LEN);
		memcpy(s->digest, digest, CASFS_STORE_DIGEST_LEN);
		break;
	}
	pthread_mutex_unlock(&m->lock);
}

static bool lookup(struct casfs_narmap *m, const uint8_t sha[CASFS_SHA256_LEN],
		   uint8_t ret[CASFS_STORE_DIGEST_LEN])
{
	bool found = false;
	pthread_mutex_lock(&m->lock);
	for (size_t i = slot_of(sha); m->slots[i].used; i = (i + 1) % NSLOTS) {
		if (memcmp(m->slots[i].sha, sha, CASFS_SHA256_LEN) == 0) {
			memcpy(ret, m->slots[i].digest, CASFS_STORE_DIGEST_LEN);
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&m->lock);
	return found;
}

struct scan {
	const uint8_t *sha;
	uint8_t digest[CASFS_STORE_DIGEST_LEN];
	uint8_t last[CASFS_STORE_DIGEST_LEN];
	bool found;
};

#define SCAN_FOUND (-EEXIST) /* stops the listing */

static int scan_cb(const uint8_t digest[CASFS_STORE_DIGEST_LEN], const struct casfs_pathinfo *pi,
		   const struct casfs_error *damage, void *userdata)
{
	(void)damage;
	struct scan *sc = userdata;
	memcpy(sc->last, digest, CASFS_STORE_DIGEST_LEN);
	if (pi && pi->has_narinfo && memcmp(pi->nar_sha256, sc->sha, CASFS_SHA256_LEN) == 0) {
		memcpy(sc->digest, digest, CASFS_STORE_DIGEST_LEN);
		sc->found = true;
		return SCAN_FOUND;
	}
	return 0;
}

int casfs_narmap_find(struct casfs_narmap *m, struct casfs_store *s,
		      const uint8_t sha[CASFS_SHA256_LEN], uint8_t ret_digest[CASFS_STORE_DIGEST_LEN],
		      struct casfs_pathinfo *ret, struct casfs_error *err)
{
	uint8_t d[CASFS_STORE_DIGEST_LEN];
	struct casfs_pathinfo pi = { 0 };
	if (lookup(m, sha, d)) {
		struct casfs_error ignored = { 0 };
		if (casfs_pathinfo_get(s->pathinfos, d, &pi, &ignored) >= 0) {
			if (pi.has_narinfo && memcmp(pi.nar_sha256, sha, CASFS_SHA256_LEN) == 0) {
				memcpy(ret_digest, d, sizeof(d));
				*ret = pi;
				return 0;
			}
			casfs_pathinfo_release(&pi);
		}
	}
	struct scan sc = { .sha = sha };
	const uint8_t *after = NULL;
	uint8_t after_buf[CASFS_STORE_DIGEST_LEN];
	for (;;) {
		int r = casfs_pathinfo_list_from(s->pathinfos, after, 256, scan_cb, &sc, err);
		if (r == SCAN_FOUND)
			break;
		if (r < 0)
			return r;
		if (r < 256)
			return -ENOENT;
		memcpy(after_buf, sc.last, sizeof(after_buf));
		after = after_buf;
	}
	int r = casfs_pathinfo_get(s->pathinfos, sc.digest, &pi, err);
	if (r < 0)
		return r;
	casfs_narmap_put(m, sha, sc.digest);
	memcpy(ret_digest, sc.digest, sizeof(sc.digest));
	*ret = pi;
	return 0;
}
