/* The remote DirectoryService over gRPC (castore-grpc.h). */
#include "castore-grpc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../basic/buf.h"
#include "../basic/keyset.h"
#include "../proto/rpc-proto.h"

struct grpc_directory_service {
	struct casfs_directory_service base;
	struct casfs_grpc_client *client;
};

static struct grpc_directory_service *service_of(struct casfs_directory_service *s)
{
	return (struct grpc_directory_service *)s;
}

static int grpc_get(struct casfs_directory_service *s, const uint8_t digest[CASFS_B3_LEN],
		    struct casfs_directory *ret, struct casfs_error *err)
{
	struct grpc_directory_service *gs = service_of(s);
	const char *target = casfs_grpc_client_target(gs->client);
	struct casfs_buf req = CASFS_BUF_INIT;
	struct casfs_grpc_call *call = NULL;
	struct casfs_get_directory_request q = { .digest = { digest, CASFS_B3_LEN, true } };
	struct casfs_directory d = { 0 };
	char want[CASFS_B3_STR_LEN + 1];
	casfs_b3_format(digest, want);
	int r = casfs_get_directory_request_encode(&q, &req);
	if (r >= 0)
		r = casfs_grpc_call_start(gs->client, CASFS_GRPC_CASTORE, "DirectoryService/Get", &call,
					  err);
	if (r >= 0)
		r = casfs_grpc_call_send(call, req.data, req.len, true, err);
	const uint8_t *m = NULL;
	size_t n = 0;
	if (r >= 0)
		r = casfs_grpc_call_recv(call, &m, &n, err);
	if (r == 0)
		r = casfs_error_set(err, -ENOENT, "%s: directory %s not found", target, want);
	if (r > 0 && casfs_directory_decode(m, n, &d, err) < 0)
		r = casfs_error_prefix(err, -EBADMSG, "%s sent directory %s", target, want);
	if (r > 0 && casfs_directory_validate(&d, err) < 0)
		r = casfs_error_prefix(err, -EBADMSG, "%s sent directory %s", target, want);
	uint8_t got[CASFS_B3_LEN];
	if (r > 0 && (r = casfs_directory_digest(&d, got)) >= 0 &&
	    memcmp(got, digest, CASFS_B3_LEN) != 0) {
		char have[CASFS_B3_STR_LEN + 1];
		casfs_b3_format(got, have);
		r = casfs_error_set(err, -EBADMSG, "%s sent directory %s for %s", target, have, want);
	}
	if (r > 0) { /* and nothing after it */
		const uint8_t *extra;
		int e = casfs_grpc_call_recv(call, &extra, &n, err);
		r = e > 0 ? casfs_error_set(err, -EBADMSG, "%s sent more than directory %s", target,
					    want)
			  : e;
	}
	casfs_grpc_call_end(call);
	casfs_buf_release(&req);
	if (r < 0) {
		casfs_directory_release(&d);
		return r;
	}
	*ret = d;
	return 0;
}

static int grpc_has(struct casfs_directory_service *s, const uint8_t digest[CASFS_B3_LEN])
{
	struct casfs_directory d = { 0 };
	struct casfs_error err;
	casfs_error_clear(&err);
	int r = grpc_get(s, digest, &d, &err);
	casfs_directory_release(&d);
	if (r < 0 && r != -ENOENT)
		casfs_log_error(&err, r);
	return r;
}

/* Directories to send ahead of the entries: children they name but do not
 * hold, with their closures, root first (sent in reverse). */
struct extra {
	struct casfs_keyset seen;
	struct casfs_buf *encoded;
	size_t n, cap;
};

static int collect(const uint8_t digest[CASFS_B3_LEN], const struct casfs_directory *d,
		   void *userdata)
{
	struct extra *x = userdata;
	if (casfs_keyset_get(&x->seen, digest, NULL))
		return 0;
	int r = casfs_keyset_put(&x->seen, digest, 0);
	if (r < 0)
		return r;
	if (x->n == x->cap) {
		size_t cap = x->cap ? 2 * x->cap : 16;
		struct casfs_buf *e = realloc(x->encoded, cap * sizeof(*e));
		if (!e)
			return -ENOMEM;
		x->encoded = e;
		x->cap = cap;
	}
	casfs_buf_init(&x->encoded[x->n]);
	return casfs_directory_encode(d, &x->encoded[x->n++]);
}

static int grpc_put_many(struct casfs_directory_service *s, const struct casfs_directory_entry *e,
			 size_t n, struct casfs_error *err)
{
	struct grpc_directory_service *gs = service_of(s);
	const char *target = casfs_grpc_client_target(gs->client);
	struct extra x = { 0 };
	casfs_keyset_init(&x.seen);
	int r = 0;
	for (size_t i = 0; r >= 0 && i < n; i++)
		r = casfs_keyset_put(&x.seen, e[i].digest, 0);
	for (size_t i = 0; r >= 0 && i < n; i++)
		for (size_t j = 0; r >= 0 && j < e[i].dir->n_directories; j++)
			if (!casfs_keyset_get(&x.seen, e[i].dir->directories[j].digest, NULL))
				r = casfs_directory_get_closure(s, e[i].dir->directories[j].digest,
								collect, &x, err);
	struct casfs_grpc_call *call = NULL;
	if (r >= 0 && n > 0)
		r = casfs_grpc_call_start(gs->client, CASFS_GRPC_CASTORE, "DirectoryService/Put", &call,
					  err);
	for (size_t i = x.n; r >= 0 && n > 0 && i-- > 0;)
		r = casfs_grpc_call_send(call, x.encoded[i].data, x.encoded[i].len, false, err);
	for (size_t i = 0; r >= 0 && i < n; i++)
		r = casfs_grpc_call_send(call, e[i].encoded, e[i].encoded_len, i + 1 == n, err);
	const uint8_t *m = NULL;
	size_t len = 0;
	if (r >= 0 && n > 0) {
		r = casfs_grpc_call_recv(call, &m, &len, err);
		if (r == 0)
			r = casfs_error_set(err, -EPROTO, "%s sent no PutDirectoryResponse", target);
	}
	struct casfs_rpc_bytes root = { 0 };
	if (r > 0)
		r = casfs_rpc_bytes1_decode(m, len, &root, err);
	if (r >= 0 && n > 0 &&
	    (root.len != CASFS_B3_LEN || memcmp(root.p, e[n - 1].digest, CASFS_B3_LEN) != 0)) {
		char want[CASFS_B3_STR_LEN + 1];
		casfs_b3_format(e[n - 1].digest, want);
		r = casfs_error_set(err, -EBADMSG, "%s answered the put of directory %s with another root",
				    target, want);
	}
	casfs_grpc_call_end(call);
	for (size_t i = 0; i < x.n; i++)
		casfs_buf_release(&x.encoded[i]);
	free(x.encoded);
	casfs_keyset_release(&x.seen);
	return r < 0 ? r : 0;
}

static void grpc_free(struct casfs_directory_service *s)
{
	free(s);
}

static const struct casfs_directory_service_ops grpc_directory_ops = {
	.name = "grpc",
	.get = grpc_get,
	.has = grpc_has,
	.put_many = grpc_put_many,
	.free = grpc_free,
};

int casfs_directory_service_grpc_new(struct casfs_grpc_client *c,
				     struct casfs_directory_service **ret)
{
	struct grpc_directory_service *gs = calloc(1, sizeof(*gs));
	if (!gs)
		return -ENOMEM;
	gs->base.ops = &grpc_directory_ops;
	gs->client = c;
	*ret = &gs->base;
	return 0;
}
