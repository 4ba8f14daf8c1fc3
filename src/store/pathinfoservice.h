/* PathInfoService: 20-byte store path digest -> PathInfo.
 *
 * Same shape as the castore services: a backend embeds the base struct,
 * callers use the inline wrappers.  Hooks are thread-safe.  get fills a
 * caller-owned struct (casfs_pathinfo_release).  put replaces an existing
 * entry atomically.  Callers that add store paths go through
 * casfs_store_add_pathinfo() (store.h), which checks the closure first. */
#pragma once

#include <stdint.h>

#include "../basic/error.h"
#include "../proto/pathinfo-proto.h"

struct casfs_pathinfo_service;

struct casfs_pathinfo_service_ops {
	const char *name;
	/* -ENOENT if absent; -EBADMSG if the stored record is damaged. */
	int (*get)(struct casfs_pathinfo_service *s, const uint8_t digest[CASFS_STORE_DIGEST_LEN],
		   struct casfs_pathinfo *ret, struct casfs_error *err);
	/* Store (durably, when the backend is durable) under the digest. */
	int (*put)(struct casfs_pathinfo_service *s, const uint8_t digest[CASFS_STORE_DIGEST_LEN],
		   const struct casfs_pathinfo *pi, struct casfs_error *err);
	/* Call cb for each entry, in digest order; a negative return stops. */
	int (*list)(struct casfs_pathinfo_service *s,
		    int (*cb)(const uint8_t digest[CASFS_STORE_DIGEST_LEN],
			      const struct casfs_pathinfo *pi, void *userdata),
		    void *userdata, struct casfs_error *err);
	void (*free)(struct casfs_pathinfo_service *s);
};

struct casfs_pathinfo_service {
	const struct casfs_pathinfo_service_ops *ops;
};

static inline int casfs_pathinfo_get(struct casfs_pathinfo_service *s,
				     const uint8_t d[CASFS_STORE_DIGEST_LEN],
				     struct casfs_pathinfo *ret, struct casfs_error *err)
{
	return s->ops->get(s, d, ret, err);
}

static inline int casfs_pathinfo_put(struct casfs_pathinfo_service *s,
				     const uint8_t d[CASFS_STORE_DIGEST_LEN],
				     const struct casfs_pathinfo *pi, struct casfs_error *err)
{
	return s->ops->put(s, d, pi, err);
}

static inline int casfs_pathinfo_list(struct casfs_pathinfo_service *s,
				      int (*cb)(const uint8_t digest[CASFS_STORE_DIGEST_LEN],
						const struct casfs_pathinfo *pi, void *userdata),
				      void *userdata, struct casfs_error *err)
{
	return s->ops->list(s, cb, userdata, err);
}

static inline void casfs_pathinfo_service_free(struct casfs_pathinfo_service *s)
{
	if (s)
		s->ops->free(s);
}

int casfs_pathinfo_service_memory_new(struct casfs_pathinfo_service **ret);
