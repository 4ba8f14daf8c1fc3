/* PathInfoService: 20-byte store path digest -> PathInfo.
 *
 * Same shape as the castore services: a backend embeds the base struct,
 * callers use the inline wrappers.  Backends: memory, local, gRPC
 * (pathinfo-grpc.c), read-through from a binary cache (through.c).
 *
 *   Errors     >= 0 or -errno with a one-line message in `err`.  -ENOENT
 *              means absent and only that (an unreachable server is
 *              -ECONNREFUSED/-ECONNRESET/-ETIMEDOUT); -EBADMSG a damaged
 *              record or a server that sent the wrong one.
 *   get        fills a caller-owned struct (casfs_pathinfo_release) only
 *              on success; it is valid and for the digest asked.
 *   put        replaces an existing entry atomically.  Callers that add
 *              store paths go through casfs_store_add_pathinfo() (store.h),
 *              which checks the closure first.
 *   list       see below; a remote backend may list in its server's order.
 *   Timeouts   no hook blocks without bound (-ETIMEDOUT).
 *   Threads    hooks are thread-safe. */
#pragma once

#include <stdint.h>

#include "../basic/error.h"
#include "../proto/pathinfo-proto.h"

struct casfs_pathinfo_service;

/* One entry of a paged listing (casfs_pathinfo_list_from): `pi` is the
 * decoded entry and `damage` NULL, or, when the stored record cannot be
 * decoded, `pi` is NULL and `damage` says why (code -EBADMSG, the message
 * names the digest).  Both are valid during the call only.  Return 0 to go
 * on; a negative return stops the listing and is returned by it. */
typedef int (*casfs_pathinfo_entry_cb)(const uint8_t digest[CASFS_STORE_DIGEST_LEN],
				       const struct casfs_pathinfo *pi,
				       const struct casfs_error *damage, void *userdata);

struct casfs_pathinfo_service_ops {
	const char *name;
	/* -ENOENT if absent; -EBADMSG if the stored record is damaged. */
	int (*get)(struct casfs_pathinfo_service *s, const uint8_t digest[CASFS_STORE_DIGEST_LEN],
		   struct casfs_pathinfo *ret, struct casfs_error *err);
	/* Store (durably, when the backend is durable) under the digest. */
	int (*put)(struct casfs_pathinfo_service *s, const uint8_t digest[CASFS_STORE_DIGEST_LEN],
		   const struct casfs_pathinfo *pi, struct casfs_error *err);
	/* Call cb for each entry, in digest order; a negative return stops.
	 * A damaged record stops the listing with -EBADMSG (list_from goes
	 * past it).  Holds the whole listing in memory (memory backend) or
	 * one read transaction for its duration (local). */
	int (*list)(struct casfs_pathinfo_service *s,
		    int (*cb)(const uint8_t digest[CASFS_STORE_DIGEST_LEN],
			      const struct casfs_pathinfo *pi, void *userdata),
		    void *userdata, struct casfs_error *err);
	/* One page of the listing: cb for each entry whose digest sorts
	 * bytewise after `after` (NULL: from the first), in digest order, at
	 * most `max` (up to INT_MAX) of them, damaged ones included (handed over with pi NULL,
	 * they do not stop the listing).  Returns how many entries cb was
	 * given, so fewer than `max` means the listing is at its end; or
	 * -errno when the store cannot be read (its message in err), -ENOMEM,
	 * or cb's negative return.  Memory is O(max) whatever the store's
	 * size, and nothing stays open between calls, so a caller pages with
	 * after = the last digest it was given; entries put meanwhile appear
	 * if they sort after it.  cb must not call back into the service.
	 * Must not be NULL. */
	int (*list_from)(struct casfs_pathinfo_service *s,
			 const uint8_t after[CASFS_STORE_DIGEST_LEN], size_t max,
			 casfs_pathinfo_entry_cb cb, void *userdata, struct casfs_error *err);
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

static inline int casfs_pathinfo_list_from(struct casfs_pathinfo_service *s,
					   const uint8_t after[CASFS_STORE_DIGEST_LEN],
					   size_t max, casfs_pathinfo_entry_cb cb,
					   void *userdata, struct casfs_error *err)
{
	return s->ops->list_from(s, after, max, cb, userdata, err);
}

static inline void casfs_pathinfo_service_free(struct casfs_pathinfo_service *s)
{
	if (s)
		s->ops->free(s);
}

int casfs_pathinfo_service_memory_new(struct casfs_pathinfo_service **ret);
