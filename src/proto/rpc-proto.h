/* The small request and response messages of the tvix/snix gRPC services
 * (shared/DESIGN.md section 7; Directory, Node and PathInfo themselves are
 * in castore-proto.h and pathinfo-proto.h).  Field numbers:
 *
 *   StatBlobRequest       1 bytes digest, 2 bool send_chunks, 3 bool send_bao
 *   StatBlobResponse      2 repeated ChunkMeta chunks, 3 bytes bao
 *   ChunkMeta             1 bytes digest, 2 uint64 size
 *   ReadBlobRequest       1 bytes digest
 *   BlobChunk             1 bytes data
 *   PutBlobResponse       1 bytes digest
 *   GetDirectoryRequest   oneof by_what { 1 bytes digest }, 2 bool recursive
 *   PutDirectoryResponse  1 bytes root_digest
 *   GetPathInfoRequest    oneof by_what { 1 bytes by_output_hash }
 *   CalculateNARResponse  1 uint64 nar_size, 2 bytes nar_sha256
 *   ListPathInfoRequest   (no fields)
 *   HealthCheckRequest    1 string service
 *   HealthCheckResponse   1 enum status (UNKNOWN 0, SERVING 1, NOT_SERVING 2)
 *
 * Decoders follow the protobuf rules: unknown fields are skipped, a
 * repeated scalar field's last occurrence wins, a field of the wrong wire
 * type is -EPROTO.  They do NOT judge lengths (a digest of 31 bytes decodes,
 * `digest.len` says 31): the service answers INVALID_ARGUMENT itself, as
 * snix does.  Decoded byte fields point into the input (borrowed), except
 * StatBlobResponse's chunk array, which is owned (release it).  Encoders
 * append canonical bytes (fields in number order, defaults omitted; a set
 * oneof member is written even when empty).
 *
 * Decoders write *ret only on success.  Encoders return 0, or -ENOMEM /
 * -EOVERFLOW from the buffer, or -EINVAL for a bytes field with p NULL and
 * len > 0; on failure they append nothing.  No shared state: thread-safe
 * on distinct objects. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../basic/buf.h"
#include "../basic/error.h"
#include "../digest/digest.h"

/* A bytes field: points into the decoded input, or (encoders) at the
 * caller's bytes. */
struct casfs_rpc_bytes {
	const uint8_t *p;
	size_t len;
	bool present; /* decoders: the field occurred; encoders read it only
		       * for oneof fields (GetDirectoryRequest.digest) */
};

struct casfs_stat_blob_request {
	struct casfs_rpc_bytes digest;
	bool send_chunks;
	bool send_bao;
};

struct casfs_chunk_meta {
	uint8_t digest[CASFS_B3_LEN];
	uint64_t size;
};

struct casfs_stat_blob_response {
	struct casfs_chunk_meta *chunks; /* owned after decode */
	size_t n_chunks;
	struct casfs_rpc_bytes bao;      /* borrowed */
};

struct casfs_get_directory_request {
	struct casfs_rpc_bytes digest; /* present = false: by_what unset */
	bool recursive;
};

struct casfs_calculate_nar_response {
	uint64_t nar_size;
	struct casfs_rpc_bytes nar_sha256;
};

enum casfs_health_status {
	CASFS_HEALTH_UNKNOWN = 0,
	CASFS_HEALTH_SERVING = 1,
	CASFS_HEALTH_NOT_SERVING = 2,
};

/* All decoders: 0, or -EPROTO with the message and offset in err
 * (StatBlobResponse also -ENOMEM). */
int casfs_stat_blob_request_decode(const uint8_t *p, size_t len,
				   struct casfs_stat_blob_request *ret, struct casfs_error *err);
int casfs_stat_blob_request_encode(const struct casfs_stat_blob_request *m, struct casfs_buf *out);

/* A ChunkMeta whose digest is not 32 bytes (absent: 0 bytes) is -EPROTO.
 * The chunk array is allocated once, at the number of chunks the input
 * holds; NULL when there are none. */
int casfs_stat_blob_response_decode(const uint8_t *p, size_t len,
				    struct casfs_stat_blob_response *ret, struct casfs_error *err);
int casfs_stat_blob_response_encode(const struct casfs_stat_blob_response *m,
				    struct casfs_buf *out);
void casfs_stat_blob_response_release(struct casfs_stat_blob_response *m);

/* Messages with one bytes field numbered 1: ReadBlobRequest (digest),
 * BlobChunk (data), PutBlobResponse (digest), PutDirectoryResponse
 * (root_digest), GetPathInfoRequest (by_output_hash; present = false when
 * by_what is unset).  The encoder writes field 1 whenever p != NULL, even
 * with len 0 (a set but empty oneof); p NULL with len 0 writes nothing. */
int casfs_rpc_bytes1_decode(const uint8_t *p, size_t len, struct casfs_rpc_bytes *ret,
			    struct casfs_error *err);
int casfs_rpc_bytes1_encode(const uint8_t *p, size_t len, struct casfs_buf *out);
/* The 5-byte gRPC frame header and BlobChunk's own header (tag, length),
 * for a sender that writes `len` data bytes straight after it without
 * copying them into a buffer: appends the header only, i.e.
 *   00 <u32 BE 1 + varint_size(len) + len> 0a <varint len>
 * (len 0 gives the valid, if not canonical, 0a 00).  -EOVERFLOW when the
 * framed message would not fit 32 bits. */
int casfs_blob_chunk_header_append(size_t len, struct casfs_buf *out);

int casfs_get_directory_request_decode(const uint8_t *p, size_t len,
				       struct casfs_get_directory_request *ret,
				       struct casfs_error *err);
int casfs_get_directory_request_encode(const struct casfs_get_directory_request *m,
				       struct casfs_buf *out);

int casfs_calculate_nar_response_decode(const uint8_t *p, size_t len,
					struct casfs_calculate_nar_response *ret,
					struct casfs_error *err);
int casfs_calculate_nar_response_encode(const struct casfs_calculate_nar_response *m,
					struct casfs_buf *out);

/* HealthCheckRequest: the service name (borrowed, not NUL-terminated;
 * invalid UTF-8 is -EPROTO, as for any proto3 string).  The response
 * decoder gives CASFS_HEALTH_UNKNOWN for status values it does not know
 * (grpc's SERVICE_UNKNOWN 3 included). */
int casfs_health_check_request_decode(const uint8_t *p, size_t len, struct casfs_rpc_bytes *ret,
				      struct casfs_error *err);
int casfs_health_check_response_encode(enum casfs_health_status status, struct casfs_buf *out);
int casfs_health_check_response_decode(const uint8_t *p, size_t len,
				       enum casfs_health_status *ret, struct casfs_error *err);
