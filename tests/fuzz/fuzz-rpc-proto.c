/* Fuzz the gRPC request/response decoders of rpc-proto.h: every decoder
 * runs on the same input.  Each either fails cleanly (-EPROTO with a
 * message; -ENOMEM) or gives a model whose canonical encoding decodes to
 * the same model and re-encodes to the same bytes.  Also: a StatBlobResponse
 * holds no more chunks than its bytes can carry, a health status is one of
 * the three known, and a BlobChunk header plus its data is the framed
 * encoding of the same message. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/rpc-proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The smallest ChunkMeta element: 12 22 0a 20 <32 bytes>. */
#define CHUNK_MIN_WIRE 36

static int same_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static int same_rb(const struct casfs_rpc_bytes *a, const struct casfs_rpc_bytes *b)
{
	return same_bytes(a->p, a->len, b->p, b->len);
}

static void check_failure(int r, const struct casfs_error *err)
{
	if (r != -EPROTO && r != -ENOMEM)
		abort();
	if (r == -EPROTO && err->msg[0] == 0)
		abort();
}

/* A bytes field encoders write when not empty: after the round trip it
 * is present exactly when it has bytes. */
static void check_opt(const struct casfs_rpc_bytes *orig, const struct casfs_rpc_bytes *back)
{
	if (!same_rb(orig, back) || back->present != (orig->len > 0))
		abort();
}

static void fuzz_stat_blob_request(const uint8_t *data, size_t size)
{
	struct casfs_stat_blob_request m, back, back2;
	struct casfs_error err = { 0 };
	int r = casfs_stat_blob_request_decode(data, size, &m, &err);
	if (r < 0) {
		check_failure(r, &err);
		return;
	}
	struct casfs_buf b1 = CASFS_BUF_INIT, b2 = CASFS_BUF_INIT;
	if (casfs_stat_blob_request_encode(&m, &b1) < 0 ||
	    casfs_stat_blob_request_decode(b1.data, b1.len, &back, NULL) < 0)
		abort();
	check_opt(&m.digest, &back.digest);
	if (back.send_chunks != m.send_chunks || back.send_bao != m.send_bao)
		abort();
	if (casfs_stat_blob_request_encode(&back, &b2) < 0 ||
	    !same_bytes(b1.data, b1.len, b2.data, b2.len))
		abort();
	if (casfs_stat_blob_request_decode(b2.data, b2.len, &back2, NULL) < 0 ||
	    !same_rb(&back.digest, &back2.digest))
		abort();
	casfs_buf_release(&b1);
	casfs_buf_release(&b2);
}

static void fuzz_stat_blob_response(const uint8_t *data, size_t size)
{
	struct casfs_stat_blob_response m, back;
	struct casfs_error err = { 0 };
	int r = casfs_stat_blob_response_decode(data, size, &m, &err);
	if (r < 0) {
		check_failure(r, &err);
		return;
	}
	if (m.n_chunks > size / CHUNK_MIN_WIRE || (m.n_chunks == 0) != (m.chunks == NULL))
		abort();
	struct casfs_buf b1 = CASFS_BUF_INIT, b2 = CASFS_BUF_INIT;
	if (casfs_stat_blob_response_encode(&m, &b1) < 0 ||
	    casfs_stat_blob_response_decode(b1.data, b1.len, &back, NULL) < 0)
		abort();
	if (back.n_chunks != m.n_chunks ||
	    (m.n_chunks && memcmp(back.chunks, m.chunks, m.n_chunks * sizeof(*m.chunks)) != 0))
		abort();
	check_opt(&m.bao, &back.bao);
	/* canonical bytes are no longer than the input they came from */
	if (b1.len > size)
		abort();
	if (casfs_stat_blob_response_encode(&back, &b2) < 0 ||
	    !same_bytes(b1.data, b1.len, b2.data, b2.len))
		abort();
	casfs_buf_release(&b1);
	casfs_buf_release(&b2);
	casfs_stat_blob_response_release(&back);
	casfs_stat_blob_response_release(&m);
}

/* Encode a decoded bytes1-shaped field: present (even empty) or not. */
static int bytes1_reencode(const struct casfs_rpc_bytes *v, struct casfs_buf *out)
{
	const uint8_t *p = v->present ? (v->p ? v->p : (const uint8_t *)"") : NULL;
	return casfs_rpc_bytes1_encode(p, v->len, out);
}

static void fuzz_bytes1(const uint8_t *data, size_t size)
{
	struct casfs_rpc_bytes v, back;
	struct casfs_error err = { 0 };
	int r = casfs_rpc_bytes1_decode(data, size, &v, &err);
	if (r < 0) {
		check_failure(r, &err);
		return;
	}
	if (!v.present && v.len != 0)
		abort();
	struct casfs_buf b1 = CASFS_BUF_INIT, b2 = CASFS_BUF_INIT, framed = CASFS_BUF_INIT;
	if (bytes1_reencode(&v, &b1) < 0 || casfs_rpc_bytes1_decode(b1.data, b1.len, &back, NULL) < 0)
		abort();
	if (back.present != v.present || !same_rb(&v, &back))
		abort();
	if (bytes1_reencode(&back, &b2) < 0 || !same_bytes(b1.data, b1.len, b2.data, b2.len))
		abort();
	if (v.present) {
		/* the zero-copy BlobChunk header, then the data: a frame
		 * around exactly what the encoder writes */
		if (casfs_blob_chunk_header_append(v.len, &framed) < 0 ||
		    casfs_buf_append(&framed, v.p, v.len) < 0 || framed.len != b1.len + 5)
			abort();
		uint32_t flen = (uint32_t)framed.data[1] << 24 | (uint32_t)framed.data[2] << 16 |
				(uint32_t)framed.data[3] << 8 | framed.data[4];
		if (framed.data[0] != 0 || flen != b1.len ||
		    !same_bytes(framed.data + 5, flen, b1.data, b1.len))
			abort();
	}
	casfs_buf_release(&b1);
	casfs_buf_release(&b2);
	casfs_buf_release(&framed);
}

static void fuzz_get_directory_request(const uint8_t *data, size_t size)
{
	struct casfs_get_directory_request m, back;
	struct casfs_error err = { 0 };
	int r = casfs_get_directory_request_decode(data, size, &m, &err);
	if (r < 0) {
		check_failure(r, &err);
		return;
	}
	struct casfs_buf b1 = CASFS_BUF_INIT, b2 = CASFS_BUF_INIT;
	if (casfs_get_directory_request_encode(&m, &b1) < 0 ||
	    casfs_get_directory_request_decode(b1.data, b1.len, &back, NULL) < 0)
		abort();
	/* a oneof: presence survives, empty or not */
	if (back.digest.present != m.digest.present || !same_rb(&m.digest, &back.digest) ||
	    back.recursive != m.recursive)
		abort();
	if (casfs_get_directory_request_encode(&back, &b2) < 0 ||
	    !same_bytes(b1.data, b1.len, b2.data, b2.len))
		abort();
	casfs_buf_release(&b1);
	casfs_buf_release(&b2);
}

static void fuzz_calculate_nar_response(const uint8_t *data, size_t size)
{
	struct casfs_calculate_nar_response m, back;
	struct casfs_error err = { 0 };
	int r = casfs_calculate_nar_response_decode(data, size, &m, &err);
	if (r < 0) {
		check_failure(r, &err);
		return;
	}
	struct casfs_buf b1 = CASFS_BUF_INIT, b2 = CASFS_BUF_INIT;
	if (casfs_calculate_nar_response_encode(&m, &b1) < 0 ||
	    casfs_calculate_nar_response_decode(b1.data, b1.len, &back, NULL) < 0)
		abort();
	if (back.nar_size != m.nar_size)
		abort();
	check_opt(&m.nar_sha256, &back.nar_sha256);
	if (casfs_calculate_nar_response_encode(&back, &b2) < 0 ||
	    !same_bytes(b1.data, b1.len, b2.data, b2.len))
		abort();
	casfs_buf_release(&b1);
	casfs_buf_release(&b2);
}

static void fuzz_health(const uint8_t *data, size_t size)
{
	struct casfs_rpc_bytes svc, back;
	struct casfs_error err = { 0 };
	int r = casfs_health_check_request_decode(data, size, &svc, &err);
	if (r < 0) {
		check_failure(r, &err);
	} else {
		/* HealthCheckRequest has bytes1's shape; no encoder of its own */
		struct casfs_buf b = CASFS_BUF_INIT;
		if (bytes1_reencode(&svc, &b) < 0 ||
		    casfs_health_check_request_decode(b.data, b.len, &back, NULL) < 0 ||
		    back.present != svc.present || !same_rb(&svc, &back))
			abort();
		casfs_buf_release(&b);
	}

	enum casfs_health_status s, s2;
	err = (struct casfs_error){ 0 };
	r = casfs_health_check_response_decode(data, size, &s, &err);
	if (r < 0) {
		check_failure(r, &err);
		return;
	}
	if (s != CASFS_HEALTH_UNKNOWN && s != CASFS_HEALTH_SERVING && s != CASFS_HEALTH_NOT_SERVING)
		abort();
	struct casfs_buf b = CASFS_BUF_INIT;
	if (casfs_health_check_response_encode(s, &b) < 0 ||
	    casfs_health_check_response_decode(b.data, b.len, &s2, NULL) < 0 || s2 != s ||
	    b.len != (s == CASFS_HEALTH_UNKNOWN ? 0 : 2))
		abort();
	casfs_buf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_stat_blob_request(data, size);
	fuzz_stat_blob_response(data, size);
	fuzz_bytes1(data, size);
	fuzz_get_directory_request(data, size);
	fuzz_calculate_nar_response(data, size);
	fuzz_health(data, size);
	return 0;
}
