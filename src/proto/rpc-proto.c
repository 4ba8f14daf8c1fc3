#include "rpc-proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wire-internal.h"

/* Field numbers, per message (see the table in rpc-proto.h). */
enum {
	SBQ_DIGEST = 1,
	SBQ_SEND_CHUNKS = 2,
	SBQ_SEND_BAO = 3,

	SBR_CHUNKS = 2,
	SBR_BAO = 3,

	CM_DIGEST = 1,
	CM_SIZE = 2,

	B1_FIELD = 1,

	GDR_DIGEST = 1,
	GDR_RECURSIVE = 2,

	CNR_NAR_SIZE = 1,
	CNR_NAR_SHA256 = 2,

	HC_SERVICE = 1,
	HC_STATUS = 1,
};

/* --- helpers --- */

static int expect(const struct casfs_wire_field *f, enum casfs_wire_type t, const char *message,
		  struct casfs_error *err)
{
	return f->type == t ? 0 : casfs_wire_bad_type(f, message, err);
}

static struct casfs_rpc_bytes bytes_of(const struct casfs_wire_field *f)
{
	return (struct casfs_rpc_bytes){ .p = f->data, .len = f->len, .present = true };
}

/* Caller's bytes that memcpy cannot read: a programming error, refused
 * rather than crashed on. */
static bool bytes_bad(const void *p, size_t len)
{
	return !p && len;
}

/* Encoders build on the end of `out` and take it back on failure, so
 * that a failed encode appends nothing. */
static int finish(struct casfs_buf *out, size_t start, int k)
{
	if (k < 0)
		out->len = start;
	return k;
}

/* --- StatBlobRequest --- */

int casfs_stat_blob_request_decode(const uint8_t *p, size_t len,
				   struct casfs_stat_blob_request *ret, struct casfs_error *err)
{
	struct casfs_stat_blob_request m = { 0 };
	struct casfs_wire_reader r;
	struct casfs_wire_field f;
	int k;
	casfs_wire_reader_init(&r, p, len);
	while ((k = casfs_wire_next(&r, &f, err)) > 0) {
		switch (f.number) {
		case SBQ_DIGEST:
			k = expect(&f, CASFS_WIRE_LEN, "StatBlobRequest", err);
			if (k >= 0)
				m.digest = bytes_of(&f);
			break;
		case SBQ_SEND_CHUNKS:
		case SBQ_SEND_BAO:
			k = expect(&f, CASFS_WIRE_VARINT, "StatBlobRequest", err);
			if (k >= 0 && f.number == SBQ_SEND_CHUNKS)
				m.send_chunks = f.varint != 0;
			else if (k >= 0)
				m.send_bao = f.varint != 0;
			break;
		default:
			continue;
		}
		if (k < 0)
			return k;
	}
	if (k < 0)
		return k;
	*ret = m;
	return 0;
}

int casfs_stat_blob_request_encode(const struct casfs_stat_blob_request *m, struct casfs_buf *out)
{
	if (bytes_bad(m->digest.p, m->digest.len))
		return -EINVAL;
	size_t start = out->len;
	int k = casfs_wire_put_bytes_opt(out, SBQ_DIGEST, m->digest.p, m->digest.len);
	if (k >= 0)
		k = casfs_wire_put_uint64_opt(out, SBQ_SEND_CHUNKS, m->send_chunks);
	if (k >= 0)
		k = casfs_wire_put_uint64_opt(out, SBQ_SEND_BAO, m->send_bao);
	return finish(out, start, k);
}

/* --- StatBlobResponse --- */

/* Merge one ChunkMeta body; its digest must end up 32 bytes long (the
 * last occurrence wins, as for any scalar; none at all is 0 bytes). */
static int chunk_meta_decode(struct casfs_wire_reader *r, size_t index, size_t offset,
			     struct casfs_chunk_meta *ret, struct casfs_error *err)
{
	struct casfs_wire_field f;
	struct casfs_rpc_bytes digest = { 0 };
	size_t digest_offset = offset;
	uint64_t size = 0;
	int k;
	while ((k = casfs_wire_next(r, &f, err)) > 0) {
		if (f.number == CM_DIGEST) {
			k = expect(&f, CASFS_WIRE_LEN, "ChunkMeta", err);
			if (k < 0)
				return k;
			digest = bytes_of(&f);
			digest_offset = f.offset;
		} else if (f.number == CM_SIZE) {
			k = expect(&f, CASFS_WIRE_VARINT, "ChunkMeta", err);
			if (k < 0)
				return k;
			size = f.varint;
		}
	}
	if (k < 0)
		return k;
	if (digest.len != CASFS_B3_LEN)
		return casfs_error_set(err, -EPROTO,
				       "ChunkMeta %zu: digest is %zu bytes, not %d, at offset %zu",
				       index, digest.len, CASFS_B3_LEN, digest_offset);
	memcpy(ret->digest, digest.p, CASFS_B3_LEN);
	ret->size = size;
	return 0;
}

/* The number of chunks field elements: a first pass over the message, so
 * that the array is allocated once at its exact size, never larger than
 * what the input holds (each element costs at least 2 input bytes). */
static int count_chunks(const uint8_t *p, size_t len, size_t *ret, struct casfs_error *err)
{
	struct casfs_wire_reader r;
	struct casfs_wire_field f;
	size_t n = 0;
	int k;
	casfs_wire_reader_init(&r, p, len);
	while ((k = casfs_wire_next(&r, &f, err)) > 0)
		if (f.number == SBR_CHUNKS)
			n++;
	if (k < 0)
		return k;
	*ret = n;
	return 0;
}

int casfs_stat_blob_response_decode(const uint8_t *p, size_t len,
				    struct casfs_stat_blob_response *ret, struct casfs_error *err)
{
	struct casfs_stat_blob_response m = { 0 };
	struct casfs_wire_reader r, sub;
	struct casfs_wire_field f;
	size_t cap;
	int k = count_chunks(p, len, &cap, err);
	if (k < 0)
		return k;
	if (cap) {
		m.chunks = calloc(cap, sizeof(*m.chunks));
		if (!m.chunks)
			return casfs_error_set(err, -ENOMEM, "out of memory");
	}
	casfs_wire_reader_init(&r, p, len);
	while ((k = casfs_wire_next(&r, &f, err)) > 0) {
		if (f.number == SBR_CHUNKS) {
			k = expect(&f, CASFS_WIRE_LEN, "StatBlobResponse", err);
			if (k < 0)
				break;
			casfs_wire_reader_sub(&sub, &r, &f);
			k = chunk_meta_decode(&sub, m.n_chunks, f.offset, &m.chunks[m.n_chunks],
					      err);
			if (k < 0)
				break;
			m.n_chunks++;
		} else if (f.number == SBR_BAO) {
			k = expect(&f, CASFS_WIRE_LEN, "StatBlobResponse", err);
			if (k < 0)
				break;
			m.bao = bytes_of(&f);
		}
	}
	if (k < 0) {
		casfs_stat_blob_response_release(&m);
		return k;
	}
	*ret = m;
	return 0;
}

static size_t chunk_meta_size(const struct casfs_chunk_meta *c)
{
	return casfs_wire_bytes_size(CM_DIGEST, CASFS_B3_LEN) +
	       casfs_wire_uint64_opt_size(CM_SIZE, c->size);
}

int casfs_stat_blob_response_encode(const struct casfs_stat_blob_response *m,
				    struct casfs_buf *out)
{
	if (bytes_bad(m->bao.p, m->bao.len) || (m->n_chunks && !m->chunks))
		return -EINVAL;
	size_t start = out->len;
	int k = 0;
	for (size_t i = 0; k >= 0 && i < m->n_chunks; i++) {
		const struct casfs_chunk_meta *c = &m->chunks[i];
		k = casfs_wire_put_tag(out, SBR_CHUNKS, CASFS_WIRE_LEN);
		if (k >= 0)
			k = casfs_wire_put_varint(out, chunk_meta_size(c));
		if (k >= 0)
			k = casfs_wire_put_bytes(out, CM_DIGEST, c->digest, CASFS_B3_LEN);
		if (k >= 0)
			k = casfs_wire_put_uint64_opt(out, CM_SIZE, c->size);
	}
	if (k >= 0)
		k = casfs_wire_put_bytes_opt(out, SBR_BAO, m->bao.p, m->bao.len);
	return finish(out, start, k);
}

void casfs_stat_blob_response_release(struct casfs_stat_blob_response *m)
{
	if (!m)
		return;
	free(m->chunks);
	*m = (struct casfs_stat_blob_response){ 0 };
}

/* --- messages of one bytes field 1 --- */

int casfs_rpc_bytes1_decode(const uint8_t *p, size_t len, struct casfs_rpc_bytes *ret,
			    struct casfs_error *err)
{
	struct casfs_rpc_bytes b = { 0 };
	struct casfs_wire_reader r;
	struct casfs_wire_field f;
	int k;
	casfs_wire_reader_init(&r, p, len);
	while ((k = casfs_wire_next(&r, &f, err)) > 0) {
		if (f.number != B1_FIELD)
			continue;
		/* The message names vary (five share this shape); the field
		 * number and offset are what locate the fault. */
		k = expect(&f, CASFS_WIRE_LEN, "bytes message", err);
		if (k < 0)
			return k;
		b = bytes_of(&f);
	}
	if (k < 0)
		return k;
	*ret = b;
	return 0;
}

int casfs_rpc_bytes1_encode(const uint8_t *p, size_t len, struct casfs_buf *out)
{
	if (bytes_bad(p, len))
		return -EINVAL;
	if (!p)
		return 0;
	/* Written even when empty: for GetPathInfoRequest an empty
	 * by_output_hash is a set oneof, not an absent one. */
	size_t start = out->len;
	return finish(out, start, casfs_wire_put_bytes(out, B1_FIELD, p, len));
}

int casfs_blob_chunk_header_append(size_t len, struct casfs_buf *out)
{
	/* The frame's length covers BlobChunk's tag, the varint of `len` and
	 * the data; it has to fit the frame header's 32 bits. */
	size_t body;
	if (__builtin_add_overflow(casfs_wire_tag_size(B1_FIELD) + casfs_wire_varint_size(len),
				   len, &body) ||
	    body > UINT32_MAX)
		return -EOVERFLOW;
	uint8_t frame[5] = {
		0, /* not compressed */
		(uint8_t)(body >> 24), (uint8_t)(body >> 16), (uint8_t)(body >> 8), (uint8_t)body,
	};
	size_t start = out->len;
	int k = casfs_buf_append(out, frame, sizeof(frame));
	if (k >= 0)
		k = casfs_wire_put_tag(out, B1_FIELD, CASFS_WIRE_LEN);
	if (k >= 0)
		k = casfs_wire_put_varint(out, len);
	return finish(out, start, k);
}

/* --- GetDirectoryRequest --- */

int casfs_get_directory_request_decode(const uint8_t *p, size_t len,
				       struct casfs_get_directory_request *ret,
				       struct casfs_error *err)
{
	struct casfs_get_directory_request m = { 0 };
	struct casfs_wire_reader r;
	struct casfs_wire_field f;
	int k;
	casfs_wire_reader_init(&r, p, len);
	while ((k = casfs_wire_next(&r, &f, err)) > 0) {
		if (f.number == GDR_DIGEST) {
			k = expect(&f, CASFS_WIRE_LEN, "GetDirectoryRequest", err);
			if (k < 0)
				return k;
			m.digest = bytes_of(&f);
		} else if (f.number == GDR_RECURSIVE) {
			k = expect(&f, CASFS_WIRE_VARINT, "GetDirectoryRequest", err);
			if (k < 0)
				return k;
			m.recursive = f.varint != 0;
		}
	}
	if (k < 0)
		return k;
	*ret = m;
	return 0;
}

int casfs_get_directory_request_encode(const struct casfs_get_directory_request *m,
				       struct casfs_buf *out)
{
	if (bytes_bad(m->digest.p, m->digest.len))
		return -EINVAL;
	size_t start = out->len;
	int k = 0;
	/* a set oneof member is written even when empty */
	if (m->digest.present)
		k = casfs_wire_put_bytes(out, GDR_DIGEST, m->digest.p, m->digest.len);
	if (k >= 0)
		k = casfs_wire_put_uint64_opt(out, GDR_RECURSIVE, m->recursive);
	return finish(out, start, k);
}

/* --- CalculateNARResponse --- */

int casfs_calculate_nar_response_decode(const uint8_t *p, size_t len,
					struct casfs_calculate_nar_response *ret,
					struct casfs_error *err)
{
	struct casfs_calculate_nar_response m = { 0 };
	struct casfs_wire_reader r;
	struct casfs_wire_field f;
	int k;
	casfs_wire_reader_init(&r, p, len);
	while ((k = casfs_wire_next(&r, &f, err)) > 0) {
		if (f.number == CNR_NAR_SIZE) {
			k = expect(&f, CASFS_WIRE_VARINT, "CalculateNARResponse", err);
			if (k < 0)
				return k;
			m.nar_size = f.varint;
		} else if (f.number == CNR_NAR_SHA256) {
			k = expect(&f, CASFS_WIRE_LEN, "CalculateNARResponse", err);
			if (k < 0)
				return k;
			m.nar_sha256 = bytes_of(&f);
		}
	}
	if (k < 0)
		return k;
	*ret = m;
	return 0;
}

int casfs_calculate_nar_response_encode(const struct casfs_calculate_nar_response *m,
					struct casfs_buf *out)
{
	if (bytes_bad(m->nar_sha256.p, m->nar_sha256.len))
		return -EINVAL;
	size_t start = out->len;
	int k = casfs_wire_put_uint64_opt(out, CNR_NAR_SIZE, m->nar_size);
	if (k >= 0)
		k = casfs_wire_put_bytes_opt(out, CNR_NAR_SHA256, m->nar_sha256.p,
					     m->nar_sha256.len);
	return finish(out, start, k);
}

/* --- grpc.health.v1 --- */

int casfs_health_check_request_decode(const uint8_t *p, size_t len, struct casfs_rpc_bytes *ret,
				      struct casfs_error *err)
{
	struct casfs_rpc_bytes service = { 0 };
	struct casfs_wire_reader r;
	struct casfs_wire_field f;
	int k;
	casfs_wire_reader_init(&r, p, len);
	while ((k = casfs_wire_next(&r, &f, err)) > 0) {
		if (f.number != HC_SERVICE)
			continue;
		k = expect(&f, CASFS_WIRE_LEN, "HealthCheckRequest", err);
		if (k < 0)
			return k;
		/* proto3 `string`: protobuf runtimes refuse invalid UTF-8 as a
		 * parse error, and so does pathinfo-proto.c */
		if (!casfs_wire_utf8_valid(f.data, f.len))
			return casfs_error_set(err, -EPROTO,
					       "HealthCheckRequest service: invalid UTF-8 at offset %zu",
					       f.offset);
		service = bytes_of(&f);
	}
	if (k < 0)
		return k;
	*ret = service;
	return 0;
}

/* proto3 enums are int32 on the wire, negative ones sign-extended. */
static uint64_t enum_wire(int v)
{
	return (uint64_t)(int64_t)(int32_t)v;
}

int casfs_health_check_response_encode(enum casfs_health_status status, struct casfs_buf *out)
{
	size_t start = out->len;
	return finish(out, start, casfs_wire_put_uint64_opt(out, HC_STATUS, enum_wire((int)status)));
}

int casfs_health_check_response_decode(const uint8_t *p, size_t len,
				       enum casfs_health_status *ret, struct casfs_error *err)
{
	int32_t status = 0;
	struct casfs_wire_reader r;
	struct casfs_wire_field f;
	int k;
	casfs_wire_reader_init(&r, p, len);
	while ((k = casfs_wire_next(&r, &f, err)) > 0) {
		if (f.number != HC_STATUS)
			continue;
		k = expect(&f, CASFS_WIRE_VARINT, "HealthCheckResponse", err);
		if (k < 0)
			return k;
		/* int32: the low 32 bits, as protobuf reads it */
		status = (int32_t)(uint32_t)f.varint;
	}
	if (k < 0)
		return k;
	/* Open enum: values we do not know (grpc's SERVICE_UNKNOWN 3, used
	 * by Watch, or anything newer) say nothing about serving. */
	switch (status) {
	case CASFS_HEALTH_SERVING:
	case CASFS_HEALTH_NOT_SERVING:
		*ret = (enum casfs_health_status)status;
		break;
	default:
		*ret = CASFS_HEALTH_UNKNOWN;
		break;
	}
	return 0;
}
