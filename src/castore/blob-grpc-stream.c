/* The streaming remote blob reader (blob-grpc-internal.h).
 *
 * There are no offsets in BlobService/Read: a blob comes from its first
 * byte.  This reader keeps one Read going and checks the bytes group by
 * group against the outboard (Stat's bao) as they arrive, so a sequential
 * reader gets each group as soon as it is in and checked, not after the
 * whole blob, and nothing is stored on disk:
 *
 *   pread(off): in a kept batch (the last SLOTS checked batches) -> copy
 *               at or after the stream position -> receive messages until
 *               it is covered (skipping is receiving and dropping)
 *               behind what is kept -> fall back: the whole blob is
 *               fetched and checked (grpc_blob_fetch) and served from there
 *   a group that does not match its CV, a stream longer or shorter than
 *   the blob: -EBADMSG (logged with the server's name), for this read and
 *   every later one.
 *
 * One mutex: reads of one open blob take turns (the kernel reads a file
 * mostly in order anyway). */
#include "blob-grpc-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../basic/util.h"
#include "../proto/rpc-proto.h"

#define SLOTS 16

struct batch {
	uint64_t off;
	size_t len;
	uint8_t *data;
};

struct stream_reader {
	struct casfs_blob_reader base;
	struct grpc_blob_service *gs;
	struct casfs_outboard ob;
	pthread_mutex_t lock;
	struct casfs_grpc_call *call;
	uint64_t recv_pos;        /* blob bytes received by `call` */
	struct casfs_buf pending; /* received, not checked yet: from pend_off */
	uint64_t pend_off;
	struct batch batches[SLOTS];
	unsigned next;
	struct spool spool;
	bool spooled;
	int error;
};

static const struct batch *find_batch(const struct stream_reader *sr, uint64_t off)
{
	for (unsigned i = 0; i < SLOTS; i++) {
		const struct batch *b = &sr->batches[i];
		if (b->data && off >= b->off && off - b->off < b->len)
			return b;
	}
	return NULL;
}

static uint64_t oldest_kept(const struct stream_reader *sr)
{
	uint64_t o = sr->pend_off;
	for (unsigned i = 0; i < SLOTS; i++)
		if (sr->batches[i].data && sr->batches[i].off < o)
			o = sr->batches[i].off;
	return o;
}

static int fail(struct stream_reader *sr, int code, struct casfs_error *err)
{
	casfs_log_error(err, code);
	sr->error = code;
	casfs_grpc_call_end(sr->call);
	sr->call = NULL;
	return code;
}

/* Check the whole groups now pending and keep them as a batch. */
static int check_pending(struct stream_reader *sr, struct casfs_error *err)
{
	uint64_t g = casfs_outboard_group_len(&sr->ob);
	size_t full = (size_t)(sr->pending.len / g);
	size_t bytes = (size_t)(full * g);
	if (sr->recv_pos == sr->base.size && bytes < sr->pending.len) {
		full++; /* the last, shorter group */
		bytes = sr->pending.len;
	}
	if (full == 0)
		return 0;
	size_t first = (size_t)(sr->pend_off / g), bad = 0;
	int r = casfs_outboard_check(&sr->ob, first, full, sr->pending.data, 1, &bad);
	if (r < 0) {
		char b3[CASFS_B3_STR_LEN + 1];
		casfs_b3_format(sr->base.digest, b3);
		return casfs_error_set(err, r == -EBADMSG ? -EBADMSG : r,
				       "%s sent blob %s with group %zu (at byte %" PRIu64 ") damaged",
				       casfs_grpc_client_target(sr->gs->client), b3, bad, (uint64_t)bad * g);
	}
	size_t len;
	uint8_t *data = casfs_buf_steal(&sr->pending, &len);
	struct batch *b = &sr->batches[sr->next];
	sr->next = (sr->next + 1) % SLOTS;
	free(b->data);
	*b = (struct batch){ .off = sr->pend_off, .len = bytes, .data = data };
	sr->pend_off += bytes;
	return len > bytes ? casfs_buf_append(&sr->pending, data + bytes, len - bytes) : 0;
}

struct chunk_sink {
	struct stream_reader *sr;
	struct casfs_error *err;
};

/* A BlobChunk as it arrives: its bytes join the pending ones. */
static int take_chunk(void *userdata, const uint8_t *m, size_t n)
{
	struct chunk_sink *cs = userdata;
	struct stream_reader *sr = cs->sr;
	const char *target = casfs_grpc_client_target(sr->gs->client);
	char b3[CASFS_B3_STR_LEN + 1];
	struct casfs_rpc_bytes data;
	if (casfs_rpc_bytes1_decode(m, n, &data, cs->err) < 0) {
		casfs_b3_format(sr->base.digest, b3);
		return casfs_error_prefix(cs->err, -EBADMSG, "%s: BlobChunk of %s", target, b3);
	}
	if (data.len > sr->base.size - sr->recv_pos) {
		casfs_b3_format(sr->base.digest, b3);
		return casfs_error_set(cs->err, -EBADMSG, "%s sent blob %s longer than its %" PRIu64
				       " bytes", target, b3, sr->base.size);
	}
	int r = casfs_buf_append(&sr->pending, data.p, data.len);
	if (r >= 0)
		sr->recv_pos += data.len;
	return r;
}

/* More of the stream (starting it if need be). */
static int advance(struct stream_reader *sr, struct casfs_error *err)
{
	const char *target = casfs_grpc_client_target(sr->gs->client);
	char b3[CASFS_B3_STR_LEN + 1];
	casfs_b3_format(sr->base.digest, b3);
	int r;
	if (!sr->call) {
		struct casfs_buf req = CASFS_BUF_INIT;
		r = casfs_rpc_bytes1_encode(sr->base.digest, CASFS_B3_LEN, &req);
		if (r >= 0)
			r = casfs_grpc_call_start(sr->gs->client, CASFS_GRPC_CASTORE, "BlobService/Read",
						  &sr->call, err);
		if (r >= 0)
			r = casfs_grpc_call_send(sr->call, req.data, req.len, true, err);
		casfs_buf_release(&req);
		if (r < 0)
			return r;
		sr->recv_pos = sr->pend_off = 0;
		sr->pending.len = 0;
	}
	struct chunk_sink cs = { sr, err };
	r = casfs_grpc_call_recv_each(sr->call, take_chunk, &cs, err);
	if (r < 0)
		return r;
	if (r == 0) {
		casfs_grpc_call_end(sr->call);
		sr->call = NULL;
		if (sr->recv_pos != sr->base.size)
			return casfs_error_set(err, -EBADMSG, "%s sent blob %s short: %" PRIu64 " of %" PRIu64
					       " bytes", target, b3, sr->recv_pos, sr->base.size);
		return 0;
	}
	return check_pending(sr, err);
}

static ssize_t stream_pread(struct casfs_blob_reader *r, void *buf, size_t len, uint64_t off)
{
	struct stream_reader *sr = (struct stream_reader *)r;
	struct casfs_error err;
	casfs_error_clear(&err);
	ssize_t got = 0;
	pthread_mutex_lock(&sr->lock);
	for (;;) {
		const struct batch *b;
		if (off >= sr->base.size || len == 0)
			break;
		if ((b = find_batch(sr, off))) {
			size_t n = (size_t)MIN((uint64_t)len, b->len - (off - b->off));
			memcpy(buf, b->data + (off - b->off), n);
			got = (ssize_t)n;
			break;
		}
		if (sr->spooled) {
			got = grpc_spool_pread(&sr->spool, buf, len, off);
			break;
		}
		if (sr->error < 0) {
			got = sr->error;
			break;
		}
		int rc;
		if (sr->call && off < oldest_kept(sr)) {
			/* behind the stream: the whole blob, once */
			casfs_grpc_call_end(sr->call);
			sr->call = NULL;
			rc = grpc_blob_fetch(sr->gs, sr->base.digest, &sr->spool, &err);
			if (rc >= 0 && sr->spool.size != sr->base.size)
				rc = casfs_error_set(&err, -EBADMSG, "blob size changed on a second read");
			sr->spooled = rc >= 0;
		} else {
			rc = advance(sr, &err);
		}
		if (rc < 0) {
			got = fail(sr, rc, &err);
			break;
		}
	}
	pthread_mutex_unlock(&sr->lock);
	return got;
}

static void stream_close(struct casfs_blob_reader *r)
{
	struct stream_reader *sr = (struct stream_reader *)r;
	casfs_grpc_call_end(sr->call);
	for (unsigned i = 0; i < SLOTS; i++)
		free(sr->batches[i].data);
	casfs_buf_release(&sr->pending);
	grpc_spool_release(&sr->spool);
	casfs_outboard_release(&sr->ob);
	pthread_mutex_destroy(&sr->lock);
	free(sr);
}

static const struct casfs_blob_reader_ops stream_ops = {
	.pread = stream_pread,
	.close = stream_close,
};

int grpc_blob_stream_open(struct grpc_blob_service *gs, const uint8_t digest[CASFS_B3_LEN],
			  struct casfs_outboard *ob, struct casfs_blob_reader **ret)
{
	struct stream_reader *sr = calloc(1, sizeof(*sr));
	if (!sr)
		return -ENOMEM;
	sr->base.ops = &stream_ops;
	sr->base.size = ob->size;
	sr->base.verified = true;
	memcpy(sr->base.digest, digest, CASFS_B3_LEN);
	sr->gs = gs;
	sr->ob = *ob;
	*ob = (struct casfs_outboard){ 0 };
	sr->spool.fd = -1;
	casfs_buf_init(&sr->pending);
	pthread_mutex_init(&sr->lock, NULL);
	*ret = &sr->base;
	return 0;
}
