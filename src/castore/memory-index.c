#include "memory-index.h"

#include <search.h>

#include "../basic/buf.h"

struct collect {
	struct casfs_buf digests;
	int r;
};

static void collect_action(const void *node, VISIT which, void *userdata)
{
	struct collect *c = userdata;
	if ((which == postorder || which == leaf) && c->r >= 0) {
		const uint8_t *digest = *(const uint8_t *const *)node;
		c->r = casfs_buf_append(&c->digests, digest, CASFS_B3_LEN);
	}
}

int casfs_memory_list_digests(void *const *root, pthread_mutex_t *lock,
			      int (*cb)(const uint8_t digest[CASFS_B3_LEN], void *userdata),
			      void *userdata)
{
	struct collect c = { CASFS_BUF_INIT, 0 };
	pthread_mutex_lock(lock);
	twalk_r(*root, collect_action, &c);
	pthread_mutex_unlock(lock);
	int r = c.r;
	for (size_t off = 0; r >= 0 && off < c.digests.len; off += CASFS_B3_LEN)
		r = cb(c.digests.data + off, userdata);
	casfs_buf_release(&c.digests);
	return r < 0 ? r : 0;
}
