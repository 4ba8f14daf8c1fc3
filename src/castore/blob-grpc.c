/* The remote BlobService over gRPC (castore-grpc.h). */
#include "blob-grpc-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../basic/buf.h"
#include "../basic/io.h"
#include "../basic/util.h"
#include "../proto/rpc-proto.h"
#include "../rpc/grpc.h"

/* Blobs up to this size are spooled in memory, bigger ones in a file. */
#define SPOOL_MEMORY_MAX (64u << 20)

struct grpc_blob_reader {
	struct casfs_blob_reader base;
	struct spool spool;
};

struct grpc_blob_writer {
	struct casfs_blob_writer base;
	struct grpc_blob_service *service;
	struct casfs_grpc_call *call;
	struct casfs_b3_hasher hasher;
	uint64_t size;
	struct casfs_buf msg;
	int error;
	struct casfs_error err;
};

static struct grpc_blob_service *service_of(struct casfs_blob_service *s)
{
	return (struct grpc_blob_service *)s;
}

void grpc_spool_release(struct spool *sp)
{
	casfs_buf_release(&sp->mem);
	if (sp->fd >= 0)
		close(sp->fd);
	sp->fd = -1;
}

static int spool_to_file(struct spool *sp)
{
	const char *dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	sp->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (sp->fd < 0) {
		char tmpl[4096];
		snprintf(tmpl, sizeof(tmpl), "%s/casfs-blob.XXXXXX", dir);
		sp->fd = mkostemp(tmpl, O_CLOEXEC);
		if (sp->fd < 0)
			return casfs_neg_errno();
		unlink(tmpl);
	}
	int r = casfs_write_all(sp->fd, sp->mem.data, sp->mem.len);
	casfs_buf_release(&sp->mem);
	return r;
}

static int spool_append(struct spool *sp, const uint8_t *p, size_t n)
{
	int r = 0;
	if (sp->fd < 0 && sp->mem.len + n > SPOOL_MEMORY_MAX)
		r = spool_to_file(sp);
	if (r >= 0)
		r = sp->fd >= 0 ? casfs_write_all(sp->fd, p, n) : casfs_buf_append(&sp->mem, p, n);
	if (r >= 0)
		sp->size += n;
	return r;
}

static void digest_strings(const uint8_t a[CASFS_B3_LEN], const uint8_t b[CASFS_B3_LEN],
			   char sa[CASFS_B3_STR_LEN + 1], char sb[CASFS_B3_STR_LEN + 1])
{
	casfs_b3_format(a, sa);
	casfs_b3_format(b, sb);
}

int grpc_blob_fetch(struct grpc_blob_service *gs, const uint8_t digest[CASFS_B3_LEN], struct spool *sp,
		 struct casfs_error *err)
{
	struct casfs_buf req = CASFS_BUF_INIT;
	struct casfs_grpc_call *call = NULL;
	struct casfs_b3_hasher h;
	casfs_b3_init(&h);
	*sp = (struct spool){ .fd = -1 };
	int r = casfs_rpc_bytes1_encode(digest, CASFS_B3_LEN, &req);
	if (r >= 0)
		r = casfs_grpc_call_start(gs->client, CASFS_GRPC_CASTORE, "BlobService/Read", &call, err);
	if (r >= 0)
		r = casfs_grpc_call_send(call, req.data, req.len, true, err);
	while (r >= 0) {
		const uint8_t *m;
		size_t n;
		r = casfs_grpc_call_recv(call, &m, &n, err);
		if (r <= 0)
			break;
		struct casfs_rpc_bytes data;
		if ((r = casfs_rpc_bytes1_decode(m, n, &data, err)) < 0) {
			r = casfs_error_prefix(err, -EBADMSG, "%s: BlobChunk",
					       casfs_grpc_client_target(gs->client));
			break;
		}
		casfs_b3_update(&h, data.p, data.len);
		r = spool_append(sp, data.p, data.len);
	}
	casfs_grpc_call_end(call);
	casfs_buf_release(&req);
	if (r >= 0) {
		uint8_t got[CASFS_B3_LEN];
		casfs_b3_final(&h, got);
		if (memcmp(got, digest, CASFS_B3_LEN) != 0) {
			char want[CASFS_B3_STR_LEN + 1], have[CASFS_B3_STR_LEN + 1];
			digest_strings(digest, got, want, have);
			r = casfs_error_set(err, -EBADMSG, "%s sent blob %s with digest %s (%" PRIu64
					    " bytes)", casfs_grpc_client_target(gs->client), want, have,
					    sp->size);
		}
	}
	if (r < 0)
		grpc_spool_release(sp);
	return r;
}

/* Stat: the size (the sum of the chunks), and with `bao` the outboard
 * bytes (malloc'd, NULL if none).  A server that lists no chunks makes us
 * read the blob to learn its size. */
static int remote_stat(struct grpc_blob_service *gs, const uint8_t digest[CASFS_B3_LEN],
		       uint64_t *ret_size, uint8_t **bao, size_t *bao_len, struct casfs_error *err)
{
	struct casfs_buf req = CASFS_BUF_INIT, resp = CASFS_BUF_INIT;
	struct casfs_stat_blob_request q = {
		.digest = { digest, CASFS_B3_LEN, true },
		.send_chunks = true,
		.send_bao = bao != NULL,
	};
	struct casfs_stat_blob_response m = { 0 };
	int r = casfs_stat_blob_request_encode(&q, &req);
	if (r >= 0)
		r = casfs_grpc_unary(gs->client, CASFS_GRPC_CASTORE, "BlobService/Stat", req.data,
				     req.len, &resp, err);
	if (r >= 0 && casfs_stat_blob_response_decode(resp.data, resp.len, &m, err) < 0)
		r = casfs_error_prefix(err, -EBADMSG, "%s: StatBlobResponse",
				       casfs_grpc_client_target(gs->client));
	uint64_t size = 0;
	for (size_t i = 0; r >= 0 && i < m.n_chunks; i++) {
		if (size + m.chunks[i].size < size)
			r = casfs_error_set(err, -EBADMSG, "%s: chunk sizes overflow",
					    casfs_grpc_client_target(gs->client));
		size += m.chunks[i].size;
	}
	if (r >= 0 && m.n_chunks == 0) {
		struct spool sp;
		r = grpc_blob_fetch(gs, digest, &sp, err);
		size = sp.size;
		if (r >= 0)
			grpc_spool_release(&sp);
	}
	if (r >= 0 && bao) {
		*bao = NULL;
		*bao_len = m.bao.len;
		if (m.bao.len && !(*bao = malloc(m.bao.len)))
			r = -ENOMEM;
		else if (m.bao.len)
			memcpy(*bao, m.bao.p, m.bao.len);
	}
	casfs_stat_blob_response_release(&m);
	casfs_buf_release(&req);
	casfs_buf_release(&resp);
	if (r >= 0)
		*ret_size = size;
	return r;
}

static int grpc_stat(struct casfs_blob_service *s, const uint8_t digest[CASFS_B3_LEN],
		     uint64_t *ret_size)
{
	struct casfs_error err;
	casfs_error_clear(&err);
	uint64_t size;
	int r = remote_stat(service_of(s), digest, &size, NULL, NULL, &err);
	if (r < 0 && r != -ENOENT)
		casfs_log_error(&err, r);
	if (r >= 0 && ret_size)
		*ret_size = size;
	return r;
}

ssize_t grpc_spool_pread(const struct spool *sp, void *buf, size_t len, uint64_t off)
{
	if (off >= sp->size)
		return 0;
	size_t n = (size_t)MIN((uint64_t)len, sp->size - off);
	if (sp->fd < 0) {
		memcpy(buf, sp->mem.data + off, n);
		return (ssize_t)n;
	}
	ssize_t got = pread(sp->fd, buf, n, (off_t)off);
	return got < 0 ? casfs_neg_errno() : got;
}

static ssize_t reader_pread(struct casfs_blob_reader *r, void *buf, size_t len, uint64_t off)
{
	return grpc_spool_pread(&((struct grpc_blob_reader *)r)->spool, buf, len, off);
}

static int reader_fd(struct casfs_blob_reader *r)
{
	return ((struct grpc_blob_reader *)r)->spool.fd;
}

static void reader_close(struct casfs_blob_reader *r)
{
	struct grpc_blob_reader *gr = (struct grpc_blob_reader *)r;
	grpc_spool_release(&gr->spool);
	free(gr);
}

static const struct casfs_blob_reader_ops reader_ops = {
	.pread = reader_pread,
	.fd = reader_fd,
	.close = reader_close,
};

/* A blob of more than one group with an outboard from the server is
 * streamed and checked group by group (blob-grpc-stream.c); anything else
 * is fetched whole and checked before the first byte is handed out. */
static int open_blob(struct casfs_blob_service *s, const uint8_t digest[CASFS_B3_LEN],
		     const uint64_t *hint, struct casfs_blob_reader **ret)
{
	struct grpc_blob_service *gs = service_of(s);
	struct casfs_error err;
	casfs_error_clear(&err);
	uint64_t size = hint ? *hint : 0;
	_cleanup_free_ uint8_t *bao = NULL;
	size_t bao_len = 0;
	/* one group or less by the caller's word: no outboard to ask for */
	int r = hint && !casfs_outboard_wanted(*hint) ? 0 : remote_stat(gs, digest, &size, &bao, &bao_len, &err);
	struct casfs_outboard ob = { 0 };
	if (r >= 0 && casfs_outboard_wanted(size) && bao_len) {
		struct casfs_error ob_err;
		if (casfs_outboard_decode(bao, bao_len, digest, size, &ob, &ob_err) == 0) {
			r = grpc_blob_stream_open(gs, digest, &ob, ret);
			casfs_outboard_release(&ob);
			return r;
		}
		/* a bad outboard is not used: the blob is checked whole */
	}
	struct grpc_blob_reader *gr = r >= 0 ? calloc(1, sizeof(*gr)) : NULL;
	if (r >= 0 && !gr)
		r = -ENOMEM;
	if (r >= 0)
		r = grpc_blob_fetch(gs, digest, &gr->spool, &err);
	if (r >= 0 && gr->spool.size != size && !hint) {
		char b3[CASFS_B3_STR_LEN + 1];
		casfs_b3_format(digest, b3);
		grpc_spool_release(&gr->spool);
		r = casfs_error_set(&err, -EBADMSG, "%s: blob %s has %" PRIu64 " bytes, Stat said %" PRIu64,
				    casfs_grpc_client_target(gs->client), b3, gr->spool.size, size);
	}
	if (r < 0) {
		if (r != -ENOENT)
			casfs_log_error(&err, r);
		free(gr);
		return r;
	}
	gr->base.ops = &reader_ops;
	gr->base.size = gr->spool.size;
	gr->base.verified = true;
	memcpy(gr->base.digest, digest, CASFS_B3_LEN);
	*ret = &gr->base;
	return 0;
}

static int grpc_open(struct casfs_blob_service *s, const uint8_t digest[CASFS_B3_LEN],
		     struct casfs_blob_reader **ret)
{
	return open_blob(s, digest, NULL, ret);
}

static int grpc_open_sized(struct casfs_blob_service *s, const uint8_t digest[CASFS_B3_LEN],
			   uint64_t size, struct casfs_blob_reader **ret)
{
	return open_blob(s, digest, &size, ret);
}

/* ---- writing ---------------------------------------------------------------- */

static int writer_write(struct casfs_blob_writer *w, const void *p, size_t n)
{
	struct grpc_blob_writer *gw = (struct grpc_blob_writer *)w;
	const uint8_t *q = p;
	if (gw->error < 0)
		return gw->error;
	casfs_b3_update(&gw->hasher, p, n);
	gw->size += n;
	while (n > 0 && gw->error >= 0) {
		size_t take = MIN(n, (size_t)CASFS_GRPC_CHUNK);
		gw->msg.len = 0;
		int r = casfs_rpc_bytes1_encode(q, take, &gw->msg);
		if (r >= 0)
			r = casfs_grpc_call_send(gw->call, gw->msg.data, gw->msg.len, false, &gw->err);
		if (r < 0)
			gw->error = r;
		q += take;
		n -= take;
	}
	if (gw->error < 0)
		casfs_log_error(&gw->err, gw->error);
	return gw->error;
}

static void writer_abort(struct casfs_blob_writer *w)
{
	struct grpc_blob_writer *gw = (struct grpc_blob_writer *)w;
	casfs_grpc_call_end(gw->call);
	casfs_buf_release(&gw->msg);
	free(gw);
}

static int writer_commit(struct casfs_blob_writer *w, const uint8_t *expected,
			 uint8_t ret_digest[CASFS_B3_LEN], uint64_t *ret_size)
{
	struct grpc_blob_writer *gw = (struct grpc_blob_writer *)w;
	const char *target = casfs_grpc_client_target(gw->service->client);
	uint8_t ours[CASFS_B3_LEN];
	casfs_b3_final(&gw->hasher, ours);
	int r = gw->error;
	if (r >= 0 && expected && memcmp(expected, ours, CASFS_B3_LEN) != 0)
		r = -EBADMSG; /* the caller's bytes are not what it expected: send nothing more */
	const uint8_t *m = NULL;
	size_t n = 0;
	if (r >= 0)
		r = casfs_grpc_call_recv(gw->call, &m, &n, &gw->err);
	if (r == 0)
		r = casfs_error_set(&gw->err, -EPROTO, "%s sent no PutBlobResponse", target);
	struct casfs_rpc_bytes d = { 0 };
	if (r > 0)
		r = casfs_rpc_bytes1_decode(m, n, &d, &gw->err);
	if (r >= 0 && (d.len != CASFS_B3_LEN || memcmp(d.p, ours, CASFS_B3_LEN) != 0)) {
		char want[CASFS_B3_STR_LEN + 1] = "?", have[CASFS_B3_STR_LEN + 1] = "?";
		casfs_b3_format(ours, want);
		if (d.len == CASFS_B3_LEN)
			casfs_b3_format(d.p, have);
		r = casfs_error_set(&gw->err, -EBADMSG, "%s stored blob %s as %s", target, want, have);
	}
	if (r < 0 && r != -EBADMSG)
		casfs_log_error(&gw->err, r);
	else if (r == -EBADMSG && gw->err.code == -EBADMSG)
		casfs_log_error(&gw->err, r);
	if (r >= 0) {
		if (ret_digest)
			memcpy(ret_digest, ours, CASFS_B3_LEN);
		if (ret_size)
			*ret_size = gw->size;
		r = 0;
	}
	writer_abort(w);
	return r;
}

static const struct casfs_blob_writer_ops writer_ops = {
	.write = writer_write,
	.commit = writer_commit,
	.abort = writer_abort,
};

static int grpc_create(struct casfs_blob_service *s, struct casfs_blob_writer **ret)
{
	struct grpc_blob_writer *gw = calloc(1, sizeof(*gw));
	if (!gw)
		return -ENOMEM;
	gw->base.ops = &writer_ops;
	gw->service = service_of(s);
	casfs_b3_init(&gw->hasher);
	casfs_buf_init(&gw->msg);
	casfs_error_clear(&gw->err);
	int r = casfs_grpc_call_start(gw->service->client, CASFS_GRPC_CASTORE, "BlobService/Put",
				      &gw->call, &gw->err);
	if (r < 0) {
		casfs_log_error(&gw->err, r);
		free(gw);
		return r;
	}
	*ret = &gw->base;
	return 0;
}

static int grpc_outboard_get(struct casfs_blob_service *s, const uint8_t digest[CASFS_B3_LEN],
			     uint8_t **ret, size_t *ret_len)
{
	struct casfs_error err;
	casfs_error_clear(&err);
	uint64_t size;
	int r = remote_stat(service_of(s), digest, &size, ret, ret_len, &err);
	if (r < 0 && r != -ENOENT)
		casfs_log_error(&err, r);
	if (r >= 0 && !*ret)
		r = -ENOENT;
	return r;
}

static void grpc_free(struct casfs_blob_service *s)
{
	free(s);
}

static const struct casfs_blob_service_ops grpc_blob_ops = {
	.name = "grpc",
	.blind_puts = true,
	.stat = grpc_stat,
	.open = grpc_open,
	.open_sized = grpc_open_sized,
	.create = grpc_create,
	.outboard_get = grpc_outboard_get,
	.free = grpc_free,
};

int casfs_blob_service_grpc_new(struct casfs_grpc_client *c, struct casfs_blob_service **ret)
{
	struct grpc_blob_service *gs = calloc(1, sizeof(*gs));
	if (!gs)
		return -ENOMEM;
	gs->base.ops = &grpc_blob_ops;
	gs->client = c;
	*ret = &gs->base;
	return 0;
}
