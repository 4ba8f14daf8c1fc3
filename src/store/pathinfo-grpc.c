/* The remote PathInfoService over gRPC (pathinfo-grpc.h). */
#include "pathinfo-grpc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../basic/buf.h"
#include "../basic/encoding.h"
#include "../proto/rpc-proto.h"

#define NAME_DIGEST_LEN CASFS_NIXBASE32_LEN(CASFS_STORE_DIGEST_LEN)

struct grpc_pathinfo_service {
	struct casfs_pathinfo_service base;
	struct casfs_grpc_client *client;
};

static struct grpc_pathinfo_service *service_of(struct casfs_pathinfo_service *s)
{
	return (struct grpc_pathinfo_service *)s;
}

/* Decode and check one PathInfo the server sent; its store path digest in
 * ret_digest.  If `want` is given, it must be that path's. */
static int accept_pathinfo(struct grpc_pathinfo_service *gs, const uint8_t *p, size_t len,
			   const uint8_t *want, struct casfs_pathinfo *ret,
			   uint8_t ret_digest[CASFS_STORE_DIGEST_LEN], struct casfs_error *err)
{
	const char *target = casfs_grpc_client_target(gs->client);
	struct casfs_pathinfo pi = { 0 };
	int r = casfs_pathinfo_decode(p, len, &pi, err);
	if (r >= 0)
		r = casfs_pathinfo_validate(&pi, err);
	if (r < 0)
		return casfs_error_prefix(err, -EBADMSG, "%s sent a bad PathInfo", target);
	uint8_t digest[CASFS_STORE_DIGEST_LEN];
	if (pi.node.name_len <= NAME_DIGEST_LEN || pi.node.name[NAME_DIGEST_LEN] != '-' ||
	    casfs_nixbase32_decode(pi.node.name, NAME_DIGEST_LEN, digest, sizeof(digest)) !=
		    CASFS_STORE_DIGEST_LEN) {
		r = casfs_error_set(err, -EBADMSG, "%s sent a PathInfo named '%s', not a store path",
				    target, pi.node.name);
	} else if (want && memcmp(want, digest, CASFS_STORE_DIGEST_LEN) != 0) {
		char w[NAME_DIGEST_LEN + 1];
		casfs_nixbase32_encode(want, CASFS_STORE_DIGEST_LEN, w);
		w[NAME_DIGEST_LEN] = 0;
		r = casfs_error_set(err, -EBADMSG, "%s sent the PathInfo of '%s' for %s", target,
				    pi.node.name, w);
	}
	if (r < 0) {
		casfs_pathinfo_release(&pi);
		return r;
	}
	memcpy(ret_digest, digest, CASFS_STORE_DIGEST_LEN);
	*ret = pi;
	return 0;
}

static int grpc_get(struct casfs_pathinfo_service *s, const uint8_t digest[CASFS_STORE_DIGEST_LEN],
		    struct casfs_pathinfo *ret, struct casfs_error *err)
{
	struct grpc_pathinfo_service *gs = service_of(s);
	struct casfs_buf req = CASFS_BUF_INIT, resp = CASFS_BUF_INIT;
	int r = casfs_rpc_bytes1_encode(digest, CASFS_STORE_DIGEST_LEN, &req);
	if (r >= 0)
		r = casfs_grpc_unary(gs->client, CASFS_GRPC_STORE, "PathInfoService/Get", req.data,
				     req.len, &resp, err);
	uint8_t got[CASFS_STORE_DIGEST_LEN];
	if (r >= 0)
		r = accept_pathinfo(gs, resp.data, resp.len, digest, ret, got, err);
	casfs_buf_release(&req);
	casfs_buf_release(&resp);
	return r;
}

static int grpc_put(struct casfs_pathinfo_service *s, const uint8_t digest[CASFS_STORE_DIGEST_LEN],
		    const struct casfs_pathinfo *pi, struct casfs_error *err)
{
	struct grpc_pathinfo_service *gs = service_of(s);
	struct casfs_buf req = CASFS_BUF_INIT, resp = CASFS_BUF_INIT;
	struct casfs_pathinfo back = { 0 };
	int r = casfs_pathinfo_encode(pi, &req);
	if (r >= 0)
		r = casfs_grpc_unary(gs->client, CASFS_GRPC_STORE, "PathInfoService/Put", req.data,
				     req.len, &resp, err);
	uint8_t got[CASFS_STORE_DIGEST_LEN];
	if (r >= 0)
		r = accept_pathinfo(gs, resp.data, resp.len, digest, &back, got, err);
	casfs_pathinfo_release(&back);
	casfs_buf_release(&req);
	casfs_buf_release(&resp);
	return r;
}

/* Every entry of List, checked, to `cb`; a negative return stops. */
static int each_listed(struct grpc_pathinfo_service *gs,
		       int (*cb)(const uint8_t digest[CASFS_STORE_DIGEST_LEN],
				 const uint8_t *encoded, size_t len, const struct casfs_pathinfo *pi,
				 void *userdata),
		       void *userdata, struct casfs_error *err)
{
	struct casfs_grpc_call *call = NULL;
	int r = casfs_grpc_call_start(gs->client, CASFS_GRPC_STORE, "PathInfoService/List", &call,
				      err);
	if (r >= 0)
		r = casfs_grpc_call_send(call, (const uint8_t *)"", 0, true, err);
	while (r >= 0) {
		const uint8_t *m;
		size_t n;
		r = casfs_grpc_call_recv(call, &m, &n, err);
		if (r <= 0)
			break;
		struct casfs_pathinfo pi = { 0 };
		uint8_t digest[CASFS_STORE_DIGEST_LEN];
		r = accept_pathinfo(gs, m, n, NULL, &pi, digest, err);
		if (r >= 0)
			r = cb(digest, m, n, &pi, userdata);
		casfs_pathinfo_release(&pi);
	}
	casfs_grpc_call_end(call);
	return r;
}

struct list_adapter {
	int (*cb)(const uint8_t digest[CASFS_STORE_DIGEST_LEN], const struct casfs_pathinfo *pi,
		  void *userdata);
	void *userdata;
};

static int list_one(const uint8_t digest[CASFS_STORE_DIGEST_LEN], const uint8_t *encoded,
		    size_t len, const struct casfs_pathinfo *pi, void *userdata)
{
	(void)encoded, (void)len;
	struct list_adapter *a = userdata;
	return a->cb(digest, pi, a->userdata);
}

static int grpc_list(struct casfs_pathinfo_service *s,
		     int (*cb)(const uint8_t digest[CASFS_STORE_DIGEST_LEN],
			       const struct casfs_pathinfo *pi, void *userdata),
		     void *userdata, struct casfs_error *err)
{
	struct list_adapter a = { cb, userdata };
	return each_listed(service_of(s), list_one, &a, err);
}

struct kept {
	uint8_t digest[CASFS_STORE_DIGEST_LEN];
	uint8_t *encoded;
	size_t len;
};

struct keep {
	const uint8_t *after;
	struct kept *v;
	size_t n, cap;
};

static int keep_one(const uint8_t digest[CASFS_STORE_DIGEST_LEN], const uint8_t *encoded,
		    size_t len, const struct casfs_pathinfo *pi, void *userdata)
{
	(void)pi;
	struct keep *k = userdata;
	if (k->after && memcmp(digest, k->after, CASFS_STORE_DIGEST_LEN) <= 0)
		return 0;
	if (k->n == k->cap) {
		size_t cap = k->cap ? 2 * k->cap : 64;
		struct kept *v = realloc(k->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		k->v = v;
		k->cap = cap;
	}
	struct kept *e = &k->v[k->n];
	if (!(e->encoded = malloc(len ? len : 1)))
		return -ENOMEM;
	memcpy(e->digest, digest, CASFS_STORE_DIGEST_LEN);
	if (len)
		memcpy(e->encoded, encoded, len);
	e->len = len;
	k->n++;
	return 0;
}

static int kept_cmp(const void *a, const void *b)
{
	return memcmp(((const struct kept *)a)->digest, ((const struct kept *)b)->digest,
		      CASFS_STORE_DIGEST_LEN);
}

static int grpc_list_from(struct casfs_pathinfo_service *s,
			  const uint8_t after[CASFS_STORE_DIGEST_LEN], size_t max,
			  casfs_pathinfo_entry_cb cb, void *userdata, struct casfs_error *err)
{
	struct keep k = { .after = after };
	int r = each_listed(service_of(s), keep_one, &k, err);
	if (r >= 0 && k.n)
		qsort(k.v, k.n, sizeof(*k.v), kept_cmp);
	size_t given = 0;
	for (size_t i = 0; r >= 0 && i < k.n && given < max; i++) {
		if (i > 0 && !memcmp(k.v[i].digest, k.v[i - 1].digest, CASFS_STORE_DIGEST_LEN))
			continue; /* listed twice */
		struct casfs_pathinfo pi = { 0 };
		r = casfs_pathinfo_decode(k.v[i].encoded, k.v[i].len, &pi, err);
		if (r >= 0)
			r = cb(k.v[i].digest, &pi, NULL, userdata);
		casfs_pathinfo_release(&pi);
		given++;
	}
	for (size_t i = 0; i < k.n; i++)
		free(k.v[i].encoded);
	free(k.v);
	return r < 0 ? r : (int)given;
}

static void grpc_free(struct casfs_pathinfo_service *s)
{
	free(s);
}

static const struct casfs_pathinfo_service_ops grpc_pathinfo_ops = {
	.name = "grpc",
	.get = grpc_get,
	.put = grpc_put,
	.list = grpc_list,
	.list_from = grpc_list_from,
	.free = grpc_free,
};

int casfs_pathinfo_service_grpc_new(struct casfs_grpc_client *c, struct casfs_pathinfo_service **ret)
{
	struct grpc_pathinfo_service *gs = calloc(1, sizeof(*gs));
	if (!gs)
		return -ENOMEM;
	gs->base.ops = &grpc_pathinfo_ops;
	gs->client = c;
	*ret = &gs->base;
	return 0;
}
