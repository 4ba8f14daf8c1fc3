/* src/proto/rpc-proto: the small gRPC request/response messages.
 *
 * Expected bytes are hand-computed from the protobuf encoding spec (each
 * literal spelled field by field beside it) and were checked once against
 * python3-protobuf 3.21.12 (SerializeToString of the same messages, from a
 * .proto written with the field numbers in rpc-proto.h); python is not
 * needed to run these tests. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "basic/encoding.h"
#include "basic/util.h"
#include "proto/rpc-proto.h"
#include "test.h"

/* --- helpers --- */

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
	ssize_t n = casfs_hex_decode(s, strlen(s), out, cap);
	if (n < 0) {
		fprintf(stdout, "bad hex in test: %s\n", s);
		abort();
	}
	return (size_t)n;
}

static bool bytes_eq(const void *a, size_t alen, const void *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static bool buf_is_hex(const struct casfs_buf *b, const char *hex)
{
	uint8_t want[4096];
	size_t n = unhex(hex, want, sizeof(want));
	if (!bytes_eq(b->data, b->len, want, n)) {
		fprintf(stdout, "  got ");
		for (size_t i = 0; i < b->len; i++)
			fprintf(stdout, "%02x", b->data[i]);
		fprintf(stdout, "\n  want %s\n", hex);
		return false;
	}
	return true;
}

static bool ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), t = strlen(tail);
	return n >= t && strcmp(s + n - t, tail) == 0;
}

static bool rb_is(const struct casfs_rpc_bytes *b, const void *p, size_t len, bool present)
{
	return b->present == present && bytes_eq(b->p, b->len, p, len);
}

/* D1 = 32 x 01, D2 = 32 x 02 */
#define D1 "0101010101010101010101010101010101010101010101010101010101010101"
#define D2 "0202020202020202020202020202020202020202020202020202020202020202"
/* 31 and 33 bytes */
#define D31 "01010101010101010101010101010101010101010101010101010101010101"
#define D33 D1 "01"

/* Unknown fields of every wire type, for messages whose numbers are all
 * below 9: field 15 VARINT 5; field 9 I64; field 10 LEN aa bb; field 11
 * I32; field 12 group holding field 15 VARINT 1.  2 + 9 + 4 + 5 + 4 = 24
 * bytes. */
#define UNKNOWN_LEN 24
#define UNKNOWN "7805" "490102030405060708" "5202aabb" "5d01020304" "63" "7801" "64"

static uint8_t d1[32], d2[32];

__attribute__((constructor)) static void init_digests(void)
{
	memset(d1, 1, 32);
	memset(d2, 2, 32);
}

/* --- StatBlobRequest --- */

TEST(stat_blob_request_bytes)
{
	struct casfs_buf b = CASFS_BUF_INIT;
	struct casfs_stat_blob_request m = {
		.digest = { d1, 32, true },
		.send_chunks = true,
	};
	/* 0a 20 <32>  digest; 10 01  send_chunks; send_bao false: omitted */
	CHECK(casfs_stat_blob_request_encode(&m, &b) == 0);
	CHECK(buf_is_hex(&b, "0a20" D1 "1001"));
	b.len = 0;
	m.send_chunks = false;
	m.send_bao = true;
	CHECK(casfs_stat_blob_request_encode(&m, &b) == 0);
	CHECK(buf_is_hex(&b, "0a20" D1 "1801"));
	b.len = 0;
	/* all defaults: nothing at all (an empty digest is not a oneof) */
	struct casfs_stat_blob_request empty = { .digest = { (const uint8_t *)"", 0, true } };
	CHECK(casfs_stat_blob_request_encode(&empty, &b) == 0);
	CHECK_EQ_INT(b.len, 0);
	casfs_buf_release(&b);
}

TEST(stat_blob_request_decode)
{
	uint8_t in[128];
	size_t n = unhex("0a20" D1 "1001" "1801", in, sizeof(in));
	struct casfs_stat_blob_request m;
	CHECK(casfs_stat_blob_request_decode(in, n, &m, NULL) == 0);
	CHECK(rb_is(&m.digest, d1, 32, true));
	CHECK(m.digest.p == in + 2); /* borrowed */
	CHECK(m.send_chunks && m.send_bao);

	/* empty: all defaults */
	m.send_chunks = true;
	CHECK(casfs_stat_blob_request_decode(in, 0, &m, NULL) == 0);
	CHECK(!m.digest.present && m.digest.len == 0 && !m.send_chunks && !m.send_bao);

	/* last occurrence wins; a bool is any non-zero varint (2, 2^32) */
	n = unhex("0a01aa" "1001" "0a01bb" "1000" "1802" "188080808010", in, sizeof(in));
	CHECK(casfs_stat_blob_request_decode(in, n, &m, NULL) == 0);
	CHECK(rb_is(&m.digest, "\xbb", 1, true));
	CHECK(!m.send_chunks && m.send_bao);
	n = unhex("1005" "18ff01", in, sizeof(in));
	CHECK(casfs_stat_blob_request_decode(in, n, &m, NULL) == 0);
	CHECK(m.send_chunks && m.send_bao);
}

TEST(stat_blob_request_31_bytes)
{
	/* the decoder does not judge lengths: 31 bytes are 31 bytes */
	uint8_t in[64];
	size_t n = unhex("0a1f" D31, in, sizeof(in));
	struct casfs_stat_blob_request m;
	CHECK(casfs_stat_blob_request_decode(in, n, &m, NULL) == 0);
	CHECK_EQ_INT(m.digest.len, 31);
	CHECK(m.digest.present);
	CHECK(m.digest.p == in + 2);
}

/* --- StatBlobResponse --- */

TEST(stat_blob_response_bytes)
{
	struct casfs_chunk_meta chunks[2];
	memcpy(chunks[0].digest, d1, 32);
	chunks[0].size = 4096;
	memcpy(chunks[1].digest, d2, 32);
	chunks[1].size = 0;
	struct casfs_stat_blob_response m = {
		.chunks = chunks,
		.n_chunks = 2,
		.bao = { (const uint8_t *)"ab", 2, true },
	};
	/* chunk 1: 12 25 { 0a 20 <D1>  10 80 20 (4096) }    34 + 3 = 0x25
	 * chunk 2: 12 22 { 0a 20 <D2> }  size 0 omitted     34 = 0x22
	 * bao:     1a 02 61 62 */
	static const char want[] = "1225" "0a20" D1 "108020" "1222" "0a20" D2 "1a026162";
	struct casfs_buf b = CASFS_BUF_INIT;
	CHECK(casfs_stat_blob_response_encode(&m, &b) == 0);
	CHECK(buf_is_hex(&b, want));

	struct casfs_stat_blob_response back;
	CHECK(casfs_stat_blob_response_decode(b.data, b.len, &back, NULL) == 0);
	CHECK_EQ_INT(back.n_chunks, 2);
	CHECK(back.chunks != chunks);
	CHECK_EQ_MEM(back.chunks[0].digest, d1, 32);
	CHECK(back.chunks[0].size == 4096);
	CHECK_EQ_MEM(back.chunks[1].digest, d2, 32);
	CHECK(back.chunks[1].size == 0);
	CHECK(rb_is(&back.bao, "ab", 2, true));
	CHECK(back.bao.p == b.data + b.len - 2); /* borrowed */
	casfs_stat_blob_response_release(&back);
	CHECK(back.chunks == NULL && back.n_chunks == 0);
	casfs_stat_blob_response_release(NULL);

	/* empty response: empty bytes, and decodes with no array */
	b.len = 0;
	struct casfs_stat_blob_response none = { 0 };
	CHECK(casfs_stat_blob_response_encode(&none, &b) == 0);
	CHECK_EQ_INT(b.len, 0);
	back.chunks = (void *)1;
	CHECK(casfs_stat_blob_response_decode(b.data, 0, &back, NULL) == 0);
	CHECK(back.chunks == NULL && back.n_chunks == 0 && !back.bao.present);
	casfs_buf_release(&b);
}

TEST(stat_blob_response_merge_and_unknown)
{
	/* ChunkMeta's fields: last digest and last size win; unknown fields,
	 * inside and outside, skipped; field 1 is not StatBlobResponse's */
	uint8_t in[512];
	size_t n = unhex("0807" UNKNOWN
			 "1260" "0a20" D2 "1005" UNKNOWN "0a20" D1 "1006"
			 "1a00" UNKNOWN,
			 in, sizeof(in));
	/* ChunkMeta body: 34 + 2 + 24 (UNKNOWN) + 34 + 2 = 96 = 0x60 */
	struct casfs_stat_blob_response m;
	struct casfs_error err = { 0 };
	int r = casfs_stat_blob_response_decode(in, n, &m, &err);
	CHECK_EQ_INT(r, 0);
	CHECK_EQ_INT(m.n_chunks, 1);
	CHECK_EQ_MEM(m.chunks[0].digest, d1, 32);
	CHECK(m.chunks[0].size == 6);
	CHECK(m.bao.present && m.bao.len == 0);
	casfs_stat_blob_response_release(&m);
}

TEST(stat_blob_response_chunk_digest_length)
{
	static const struct {
		const char *hex;
		const char *msg;
	} bad[] = {
		{ "1221" "0a1f" D31, "digest is 31 bytes" },
		{ "1223" "0a21" D33, "digest is 33 bytes" },
		{ "1202" "1005", "digest is 0 bytes" },   /* no digest */
		{ "1200", "digest is 0 bytes" },          /* empty ChunkMeta */
		/* good first chunk, then a bad one: index 1 */
		{ "1222" "0a20" D1 "1221" "0a1f" D31, "ChunkMeta 1" },
		/* the last digest wins, also when it is the wrong one */
		{ "1243" "0a20" D1 "0a1f" D31, "digest is 31" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		uint8_t in[256];
		size_t n = unhex(bad[i].hex, in, sizeof(in));
		struct casfs_stat_blob_response m = { .n_chunks = 77 };
		struct casfs_error err = { 0 };
		CHECK_EQ_INT(casfs_stat_blob_response_decode(in, n, &m, &err), -EPROTO);
		CHECK(m.n_chunks == 77 && m.chunks == NULL); /* untouched */
		if (!strstr(err.msg, bad[i].msg))
			FAILF("case %zu: \"%s\" lacks \"%s\"", i, err.msg, bad[i].msg);
		CHECK(strstr(err.msg, "offset") != NULL);
	}
	/* a wrong digest followed by a right one is fine: the last wins */
	uint8_t in[128];
	size_t n = unhex("1243" "0a1f" D31 "0a20" D2, in, sizeof(in));
	struct casfs_stat_blob_response m;
	CHECK(casfs_stat_blob_response_decode(in, n, &m, NULL) == 0);
	CHECK_EQ_INT(m.n_chunks, 1);
	CHECK_EQ_MEM(m.chunks[0].digest, d2, 32);
	casfs_stat_blob_response_release(&m);
}

TEST(stat_blob_response_many_chunks)
{
	enum { N = 1000 };
	struct casfs_chunk_meta *chunks = calloc(N, sizeof(*chunks));
	CHECK(chunks);
	for (size_t i = 0; i < N; i++) {
		memset(chunks[i].digest, (int)(i & 0xff), 32);
		chunks[i].size = (uint64_t)i * 65536 + 1;
	}
	chunks[N - 1].size = UINT64_MAX;
	struct casfs_stat_blob_response m = { .chunks = chunks, .n_chunks = N };
	struct casfs_buf b = CASFS_BUF_INIT, b2 = CASFS_BUF_INIT;
	CHECK(casfs_stat_blob_response_encode(&m, &b) == 0);
	struct casfs_stat_blob_response back;
	CHECK(casfs_stat_blob_response_decode(b.data, b.len, &back, NULL) == 0);
	CHECK_EQ_INT(back.n_chunks, N);
	CHECK(memcmp(back.chunks, chunks, N * sizeof(*chunks)) == 0);
	CHECK(casfs_stat_blob_response_encode(&back, &b2) == 0);
	CHECK(bytes_eq(b.data, b.len, b2.data, b2.len));
	casfs_stat_blob_response_release(&back);
	casfs_buf_release(&b);
	casfs_buf_release(&b2);
	free(chunks);
}

/* --- one bytes field 1 --- */

TEST(bytes1_encode)
{
	struct casfs_buf b = CASFS_BUF_INIT;
	CHECK(casfs_rpc_bytes1_encode(d1, 32, &b) == 0);
	CHECK(buf_is_hex(&b, "0a20" D1));
	b.len = 0;
	/* p != NULL, len 0: a set but empty oneof (GetPathInfoRequest) */
	CHECK(casfs_rpc_bytes1_encode((const uint8_t *)"", 0, &b) == 0);
	CHECK(buf_is_hex(&b, "0a00"));
	b.len = 0;
	CHECK(casfs_rpc_bytes1_encode(NULL, 0, &b) == 0);
	CHECK_EQ_INT(b.len, 0);
	/* 300 bytes: the length is a 2-byte varint, ac 02 */
	uint8_t big[300];
	memset(big, 0x5a, sizeof(big));
	CHECK(casfs_rpc_bytes1_encode(big, sizeof(big), &b) == 0);
	CHECK_EQ_INT(b.len, 303);
	CHECK(b.data[0] == 0x0a && b.data[1] == 0xac && b.data[2] == 0x02);
	CHECK(memcmp(b.data + 3, big, 300) == 0);
	/* caller error: appends nothing */
	CHECK_EQ_INT(casfs_rpc_bytes1_encode(NULL, 3, &b), -EINVAL);
	CHECK_EQ_INT(b.len, 303);
	casfs_buf_release(&b);
}

TEST(bytes1_decode_oneof)
{
	uint8_t in[128] = { 0 };
	struct casfs_rpc_bytes v = { (const uint8_t *)"x", 1, true };
	/* absent */
	CHECK(casfs_rpc_bytes1_decode(in, 0, &v, NULL) == 0);
	CHECK(!v.present && v.len == 0 && v.p == NULL);
	/* only unknown fields: still absent */
	size_t n = unhex(UNKNOWN "1203616263", in, sizeof(in));
	CHECK(casfs_rpc_bytes1_decode(in, n, &v, NULL) == 0);
	CHECK(!v.present);
	/* present and empty */
	n = unhex("0a00", in, sizeof(in));
	CHECK(casfs_rpc_bytes1_decode(in, n, &v, NULL) == 0);
	CHECK(v.present && v.len == 0);
	/* present between unknown fields; the last occurrence wins */
	n = unhex(UNKNOWN "0a0178" UNKNOWN "0a03616263" UNKNOWN, in, sizeof(in));
	CHECK(casfs_rpc_bytes1_decode(in, n, &v, NULL) == 0);
	CHECK(rb_is(&v, "abc", 3, true));
	CHECK(v.p == in + UNKNOWN_LEN + 3 + UNKNOWN_LEN + 2);
	/* no input at all */
	CHECK(casfs_rpc_bytes1_decode(NULL, 0, &v, NULL) == 0);
	CHECK(!v.present);
	/* a 20-byte by_output_hash and a 31-byte digest keep their lengths */
	n = unhex("0a14" "0102030405060708090a0b0c0d0e0f1011121314", in, sizeof(in));
	CHECK(casfs_rpc_bytes1_decode(in, n, &v, NULL) == 0);
	CHECK_EQ_INT(v.len, 20);
	n = unhex("0a1f" D31, in, sizeof(in));
	CHECK(casfs_rpc_bytes1_decode(in, n, &v, NULL) == 0);
	CHECK_EQ_INT(v.len, 31);
}

TEST(blob_chunk_header)
{
	static const struct {
		size_t len;
		const char *hex;
	} cases[] = {
		/* 00 <u32 BE 1 + varint size + len> 0a <varint len> */
		{ 0, "0000000002" "0a00" },
		{ 5, "0000000007" "0a05" },
		{ 127, "0000000081" "0a7f" },
		{ 128, "0000000083" "0a8001" },        /* 1 + 2 + 128 = 131 */
		{ 300, "000000012f" "0aac02" },        /* 303 */
		{ 1u << 20, "0000100004" "0a808040" }, /* 1 + 3 + 2^20 */
		{ 4096, "0000001003" "0a8020" },       /* 4099 */
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct casfs_buf b = CASFS_BUF_INIT;
		CHECK(casfs_buf_append(&b, "pre", 3) == 0);
		CHECK(casfs_blob_chunk_header_append(cases[i].len, &b) == 0);
		CHECK(memcmp(b.data, "pre", 3) == 0);
		uint8_t want[16];
		size_t n = unhex(cases[i].hex, want, sizeof(want));
		if (!bytes_eq(b.data + 3, b.len - 3, want, n))
			FAILF("case %zu (len %zu) differs", i, cases[i].len);
		casfs_buf_release(&b);
	}

	/* header + data is a framed BlobChunk the decoder reads back */
	struct casfs_buf b = CASFS_BUF_INIT;
	uint8_t data[1000];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7);
	CHECK(casfs_blob_chunk_header_append(sizeof(data), &b) == 0);
	CHECK(casfs_buf_append(&b, data, sizeof(data)) == 0);
	uint32_t flen = (uint32_t)b.data[1] << 24 | (uint32_t)b.data[2] << 16 |
			(uint32_t)b.data[3] << 8 | b.data[4];
	CHECK_EQ_INT(b.data[0], 0);
	CHECK_EQ_INT(flen, b.len - 5);
	struct casfs_rpc_bytes v;
	CHECK(casfs_rpc_bytes1_decode(b.data + 5, flen, &v, NULL) == 0);
	CHECK(rb_is(&v, data, sizeof(data), true));
	/* and is what casfs_rpc_bytes1_encode writes after the frame header */
	struct casfs_buf e = CASFS_BUF_INIT;
	CHECK(casfs_rpc_bytes1_encode(data, sizeof(data), &e) == 0);
	CHECK(bytes_eq(e.data, e.len, b.data + 5, flen));
	casfs_buf_release(&e);
	casfs_buf_release(&b);
}

TEST(blob_chunk_header_overflow)
{
	struct casfs_buf b = CASFS_BUF_INIT;
	CHECK(casfs_buf_append(&b, "pre", 3) == 0);
	CHECK_EQ_INT(casfs_blob_chunk_header_append(SIZE_MAX, &b), -EOVERFLOW);
	CHECK_EQ_INT(b.len, 3);
#if SIZE_MAX > UINT32_MAX
	/* the largest: 1 + 5 + (2^32 - 7) = 2^32 - 1 */
	CHECK(casfs_blob_chunk_header_append((size_t)UINT32_MAX - 6, &b) == 0);
	uint8_t want[16];
	size_t n = unhex("00ffffffff" "0af9ffffff0f", want, sizeof(want));
	CHECK(bytes_eq(b.data + 3, b.len - 3, want, n));
	b.len = 3;
	/* one more no longer fits the 32-bit frame length */
	CHECK_EQ_INT(casfs_blob_chunk_header_append((size_t)UINT32_MAX - 5, &b), -EOVERFLOW);
	CHECK_EQ_INT(casfs_blob_chunk_header_append((size_t)UINT32_MAX, &b), -EOVERFLOW);
	CHECK_EQ_INT(b.len, 3);
#endif
	casfs_buf_release(&b);
}

/* --- GetDirectoryRequest --- */

TEST(get_directory_request)
{
	static const struct {
		bool present;
		const uint8_t *p;
		size_t len;
		bool recursive;
		const char *hex;
	} cases[] = {
		{ true, d1, 32, true, "0a20" D1 "1001" },
		{ true, d1, 32, false, "0a20" D1 },
		/* a set oneof is written even when empty */
		{ true, (const uint8_t *)"", 0, false, "0a00" },
		{ true, NULL, 0, true, "0a00" "1001" },
		/* by_what unset */
		{ false, NULL, 0, true, "1001" },
		{ false, NULL, 0, false, "" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct casfs_get_directory_request m = {
			.digest = { cases[i].p, cases[i].len, cases[i].present },
			.recursive = cases[i].recursive,
		};
		struct casfs_buf b = CASFS_BUF_INIT;
		CHECK(casfs_get_directory_request_encode(&m, &b) == 0);
		if (!buf_is_hex(&b, cases[i].hex))
			FAILF("case %zu", i);
		struct casfs_get_directory_request back;
		CHECK(casfs_get_directory_request_decode(b.data, b.len, &back, NULL) == 0);
		CHECK(back.digest.present == cases[i].present);
		CHECK(bytes_eq(back.digest.p, back.digest.len, cases[i].p, cases[i].len));
		CHECK(back.recursive == cases[i].recursive);
		casfs_buf_release(&b);
	}
	/* a digest of 31 bytes, unknown fields around it */
	uint8_t in[128];
	size_t n = unhex(UNKNOWN "0a1f" D31 UNKNOWN "1001", in, sizeof(in));
	struct casfs_get_directory_request m;
	CHECK(casfs_get_directory_request_decode(in, n, &m, NULL) == 0);
	CHECK(m.digest.present && m.digest.len == 31 && m.recursive);
	/* present with p NULL but a length: a caller error, nothing appended */
	struct casfs_buf b = CASFS_BUF_INIT;
	struct casfs_get_directory_request bad = { .digest = { NULL, 32, true } };
	CHECK_EQ_INT(casfs_get_directory_request_encode(&bad, &b), -EINVAL);
	CHECK_EQ_INT(b.len, 0);
	casfs_buf_release(&b);
}

/* --- CalculateNARResponse --- */

TEST(calculate_nar_response)
{
	struct casfs_calculate_nar_response m = {
		.nar_size = 1234567,
		.nar_sha256 = { d2, 32, true },
	};
	/* 08 87 ad 4b: 1234567 = 0x07 + 0x2d << 7 + 0x4b << 14; 12 20 <D2> */
	struct casfs_buf b = CASFS_BUF_INIT;
	CHECK(casfs_calculate_nar_response_encode(&m, &b) == 0);
	CHECK(buf_is_hex(&b, "0887ad4b" "1220" D2));
	struct casfs_calculate_nar_response back;
	CHECK(casfs_calculate_nar_response_decode(b.data, b.len, &back, NULL) == 0);
	CHECK(back.nar_size == 1234567);
	CHECK(rb_is(&back.nar_sha256, d2, 32, true));

	b.len = 0;
	m.nar_size = UINT64_MAX;
	m.nar_sha256 = (struct casfs_rpc_bytes){ 0 };
	CHECK(casfs_calculate_nar_response_encode(&m, &b) == 0);
	CHECK(buf_is_hex(&b, "08ffffffffffffffffff01"));
	CHECK(casfs_calculate_nar_response_decode(b.data, b.len, &back, NULL) == 0);
	CHECK(back.nar_size == UINT64_MAX && !back.nar_sha256.present);

	b.len = 0;
	m.nar_size = 0;
	CHECK(casfs_calculate_nar_response_encode(&m, &b) == 0);
	CHECK_EQ_INT(b.len, 0);
	casfs_buf_release(&b);

	/* lengths are not judged; unknown fields skipped; last wins */
	uint8_t in[128];
	size_t n = unhex("0801" UNKNOWN "1203616263" "0802", in, sizeof(in));
	CHECK(casfs_calculate_nar_response_decode(in, n, &back, NULL) == 0);
	CHECK(back.nar_size == 2 && rb_is(&back.nar_sha256, "abc", 3, true));
}

/* --- health --- */

TEST(health_check)
{
	struct casfs_buf b = CASFS_BUF_INIT;
	CHECK(casfs_health_check_response_encode(CASFS_HEALTH_SERVING, &b) == 0);
	CHECK(buf_is_hex(&b, "0801"));
	b.len = 0;
	CHECK(casfs_health_check_response_encode(CASFS_HEALTH_NOT_SERVING, &b) == 0);
	CHECK(buf_is_hex(&b, "0802"));
	b.len = 0;
	CHECK(casfs_health_check_response_encode(CASFS_HEALTH_UNKNOWN, &b) == 0);
	CHECK_EQ_INT(b.len, 0);
	casfs_buf_release(&b);

	static const struct {
		const char *hex;
		enum casfs_health_status want;
	} cases[] = {
		{ "", CASFS_HEALTH_UNKNOWN },
		{ "0801", CASFS_HEALTH_SERVING },
		{ "0802", CASFS_HEALTH_NOT_SERVING },
		{ "0801" "0802", CASFS_HEALTH_NOT_SERVING }, /* last wins */
		{ "0803", CASFS_HEALTH_UNKNOWN },            /* SERVICE_UNKNOWN */
		{ "08ffffffffffffffffff01", CASFS_HEALTH_UNKNOWN }, /* -1 */
		{ "088180808010", CASFS_HEALTH_SERVING },    /* 2^32 + 1: int32 is 1 */
		{ UNKNOWN "0801" UNKNOWN, CASFS_HEALTH_SERVING },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint8_t in[128];
		size_t n = unhex(cases[i].hex, in, sizeof(in));
		enum casfs_health_status s = (enum casfs_health_status)42;
		CHECK(casfs_health_check_response_decode(in, n, &s, NULL) == 0);
		if (s != cases[i].want)
			FAILF("case %zu: status %d, want %d", i, (int)s, (int)cases[i].want);
	}

	uint8_t in[128];
	struct casfs_rpc_bytes svc;
	size_t n = unhex("0a056361736673", in, sizeof(in)); /* "casfs" */
	CHECK(casfs_health_check_request_decode(in, n, &svc, NULL) == 0);
	CHECK(rb_is(&svc, "casfs", 5, true));
	CHECK(casfs_health_check_request_decode(in, 0, &svc, NULL) == 0);
	CHECK(!svc.present && svc.len == 0);
	n = unhex("1001" UNKNOWN "0a02c3a9", in, sizeof(in)); /* field 2 unknown; "é" */
	CHECK(casfs_health_check_request_decode(in, n, &svc, NULL) == 0);
	CHECK(rb_is(&svc, "\xc3\xa9", 2, true));
	/* a string must be UTF-8 */
	struct casfs_error err = { 0 };
	svc = (struct casfs_rpc_bytes){ (const uint8_t *)"x", 1, true };
	n = unhex("0a0161" "0a02c328", in, sizeof(in));
	CHECK_EQ_INT(casfs_health_check_request_decode(in, n, &svc, &err), -EPROTO);
	CHECK(strstr(err.msg, "UTF-8") && strstr(err.msg, "offset 3"));
	CHECK(rb_is(&svc, "x", 1, true)); /* untouched */
}

/* --- violations, all decoders --- */

enum which {
	SBQ,
	SBR,
	B1,
	GDR,
	CNR,
	HCQ,
	HCR,
	N_WHICH,
};

static const char *const which_name[] = { "StatBlobRequest",     "StatBlobResponse",
					  "bytes1",              "GetDirectoryRequest",
					  "CalculateNARResponse", "HealthCheckRequest",
					  "HealthCheckResponse" };

/* Decode with decoder w; on failure check that nothing was written. */
static int decode_with(enum which w, const uint8_t *p, size_t len, struct casfs_error *err)
{
	union {
		struct casfs_stat_blob_request sbq;
		struct casfs_stat_blob_response sbr;
		struct casfs_rpc_bytes b;
		struct casfs_get_directory_request gdr;
		struct casfs_calculate_nar_response cnr;
		enum casfs_health_status hs;
		uint8_t raw[64];
	} u, before;
	memset(&u, 0xa5, sizeof(u));
	memcpy(&before, &u, sizeof(u));
	int r;
	switch (w) {
	case SBQ:
		r = casfs_stat_blob_request_decode(p, len, &u.sbq, err);
		break;
	case SBR:
		r = casfs_stat_blob_response_decode(p, len, &u.sbr, err);
		if (r == 0)
			casfs_stat_blob_response_release(&u.sbr);
		break;
	case B1:
		r = casfs_rpc_bytes1_decode(p, len, &u.b, err);
		break;
	case GDR:
		r = casfs_get_directory_request_decode(p, len, &u.gdr, err);
		break;
	case CNR:
		r = casfs_calculate_nar_response_decode(p, len, &u.cnr, err);
		break;
	case HCQ:
		r = casfs_health_check_request_decode(p, len, &u.b, err);
		break;
	case HCR:
	default:
		r = casfs_health_check_response_decode(p, len, &u.hs, err);
		break;
	}
	if (r < 0 && memcmp(&u, &before, sizeof(u)) != 0)
		return -1000; /* wrote *ret on failure */
	return r;
}

TEST(wrong_wire_type)
{
	static const struct {
		enum which w;
		const char *hex;
		const char *at; /* the offset the message names */
	} cases[] = {
		{ SBQ, "0801", "offset 0" },           /* digest as VARINT */
		{ SBQ, "0a00" "120100", "offset 2" },  /* send_chunks as LEN */
		{ SBQ, "1d01000000", "offset 0" },     /* send_bao as I32 */
		{ SBR, "1005", "offset 0" },           /* chunks as VARINT */
		{ SBR, "1a00" "1b" "1c", "offset 2" }, /* bao as a group */
		{ SBR, "1202" "0801", "offset 2" },    /* ChunkMeta digest as VARINT */
		{ SBR, "1224" "0a20" D1 "1200", "offset 36" }, /* size as LEN */
		{ B1, "0801", "offset 0" },
		{ B1, UNKNOWN "0d01020304", "offset 24" }, /* I32 */
		{ GDR, "0800", "offset 0" },
		{ GDR, "0a00" "1200", "offset 2" },
		{ CNR, "0a00", "offset 0" },
		{ CNR, "0801" "1000", "offset 2" },
		{ CNR, "110102030405060708", "offset 0" }, /* I64 */
		{ HCQ, "0800", "offset 0" },
		{ HCR, "0a00", "offset 0" },
		{ HCR, "0d01000000", "offset 0" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint8_t in[128];
		size_t n = unhex(cases[i].hex, in, sizeof(in));
		struct casfs_error err = { 0 };
		int r = decode_with(cases[i].w, in, n, &err);
		if (r != -EPROTO || !strstr(err.msg, "wire type") || !ends_with(err.msg, cases[i].at))
			FAILF("case %zu (%s): %d \"%s\"", i, which_name[cases[i].w], r, err.msg);
	}
}

TEST(unknown_fields_everywhere)
{
	/* unknown fields only: every decoder succeeds with the defaults */
	uint8_t in[128];
	size_t n = unhex(UNKNOWN UNKNOWN, in, sizeof(in));
	for (int w = 0; w < N_WHICH; w++) {
		int r = decode_with((enum which)w, in, n, NULL);
		if (r != 0)
			FAILF("%s: %d", which_name[w], r);
	}
	/* high field numbers (2^29 - 1, the largest) are skipped too */
	n = unhex("f8ffffff0f01", in, sizeof(in));
	for (int w = 0; w < N_WHICH; w++)
		if (decode_with((enum which)w, in, n, NULL) != 0)
			FAILF("%s: field 2^29-1", which_name[w]);
}

TEST(truncated)
{
	/* Proper prefixes of valid messages: -EPROTO unless the cut falls
	 * on a field boundary. */
	static const struct {
		enum which w;
		const char *hex;
		size_t boundaries[4]; /* prefix lengths that are whole messages */
	} cases[] = {
		{ SBQ, "0a20" D1 "1001" "1801", { 34, 36 } },
		{ SBR, "1225" "0a20" D1 "108020" "1a026162", { 39 } },
		{ B1, "0a03616263", { 0 } },
		{ GDR, "0a20" D1 "1001", { 34 } },
		{ CNR, "0887ad4b" "1220" D2, { 4 } },
		{ HCQ, "0a056361736673", { 0 } },
		{ HCR, "08ffffffffffffffffff01", { 0 } },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint8_t in[128];
		size_t n = unhex(cases[i].hex, in, sizeof(in));
		CHECK(decode_with(cases[i].w, in, n, NULL) == 0);
		for (size_t cut = 1; cut < n; cut++) {
			bool whole = false;
			for (size_t k = 0; k < ARRAY_SIZE(cases[i].boundaries); k++)
				whole |= cases[i].boundaries[k] == cut;
			/* an exact-size copy, so that ASan sees a read past it */
			uint8_t *p = malloc(cut);
			CHECK(p);
			memcpy(p, in, cut);
			struct casfs_error err = { 0 };
			int r = decode_with(cases[i].w, p, cut, &err);
			free(p);
			if (whole ? r != 0 : (r != -EPROTO || err.msg[0] == 0))
				FAILF("%s cut at %zu: %d \"%s\"", which_name[cases[i].w], cut, r,
				      err.msg);
		}
	}
}

TEST(huge_lengths)
{
	/* Declared lengths far past the end: -EPROTO, nothing allocated for
	 * them (ASan would report a failed huge allocation). */
	static const char *const lens[] = {
		"ffffffffffffffffff01", /* 2^64 - 1 */
		"8080808010",           /* 2^32 */
		"ffffffff07",           /* 2^31 - 1 */
		"21",                   /* 33, one more than there is */
	};
	for (int w = 0; w < N_WHICH; w++) {
		for (size_t i = 0; i < ARRAY_SIZE(lens); i++) {
			/* a LEN tag the decoder knows (HealthCheckResponse has
			 * none: its field 1 as LEN, whose length is read before
			 * the type is judged), the length, then 32 bytes */
			const char *tag = w == SBR || w == CNR ? "12" : "0a";
			char hex[256];
			snprintf(hex, sizeof(hex), "%s%s%s", tag, lens[i], D1);
			uint8_t in[128];
			size_t n = unhex(hex, in, sizeof(in));
			struct casfs_error err = { 0 };
			int r = decode_with((enum which)w, in, n, &err);
			if (r != -EPROTO || !strstr(err.msg, "past the end"))
				FAILF("%s, length %s: %d \"%s\"", which_name[w], lens[i], r, err.msg);
		}
	}
	/* inside a ChunkMeta: the inner length is past the sub-message's end
	 * though inside the input (an unknown field 10 holds 32 more bytes) */
	uint8_t in[128];
	size_t n = unhex("1202" "0a20" "5220" D1, in, sizeof(in));
	struct casfs_error err = { 0 };
	CHECK_EQ_INT(decode_with(SBR, in, n, &err), -EPROTO);
	CHECK(strstr(err.msg, "field 1: length 32 past the end at offset 2") != NULL);
}

TEST(chunk_array_bounded)
{
	/* A message of many tiny (invalid) chunks fails on the first; one of
	 * many valid chunks gets exactly that many.  The count comes from the
	 * input itself, so a short input cannot claim a large array. */
	struct casfs_buf b = CASFS_BUF_INIT;
	for (int i = 0; i < 3; i++) {
		uint8_t hdr[] = { 0x12, 0x22, 0x0a, 0x20 };
		CHECK(casfs_buf_append(&b, hdr, sizeof(hdr)) == 0);
		CHECK(casfs_buf_append(&b, d1, 32) == 0);
	}
	/* unknown fields and bao in between do not count */
	CHECK(casfs_buf_append(&b, "\x1a\x01z\x78\x01", 5) == 0);
	struct casfs_stat_blob_response m;
	CHECK(casfs_stat_blob_response_decode(b.data, b.len, &m, NULL) == 0);
	CHECK_EQ_INT(m.n_chunks, 3);
	CHECK(rb_is(&m.bao, "z", 1, true));
	casfs_stat_blob_response_release(&m);
	/* 10000 empty chunks: -EPROTO at the first, offset 0 */
	b.len = 0;
	for (int i = 0; i < 10000; i++)
		CHECK(casfs_buf_append(&b, "\x12\x00", 2) == 0);
	struct casfs_error err = { 0 };
	CHECK_EQ_INT(casfs_stat_blob_response_decode(b.data, b.len, &m, &err), -EPROTO);
	CHECK(strstr(err.msg, "ChunkMeta 0") && strstr(err.msg, "offset 0"));
	/* a wire violation after many chunks fails the whole message */
	b.len = 0;
	for (int i = 0; i < 100; i++) {
		uint8_t hdr[] = { 0x12, 0x22, 0x0a, 0x20 };
		CHECK(casfs_buf_append(&b, hdr, sizeof(hdr)) == 0);
		CHECK(casfs_buf_append(&b, d1, 32) == 0);
	}
	CHECK(casfs_buf_append(&b, "\x0f", 1) == 0); /* wire type 7 */
	err = (struct casfs_error){ 0 };
	CHECK_EQ_INT(casfs_stat_blob_response_decode(b.data, b.len, &m, &err), -EPROTO);
	CHECK(strstr(err.msg, "offset 3600") != NULL);
	casfs_buf_release(&b);
}

TEST(encoders_append_and_fail_cleanly)
{
	struct casfs_buf b = CASFS_BUF_INIT;
	CHECK(casfs_buf_append(&b, "pre", 3) == 0);
	struct casfs_stat_blob_request q = { .digest = { d1, 32, true }, .send_bao = true };
	CHECK(casfs_stat_blob_request_encode(&q, &b) == 0);
	CHECK(memcmp(b.data, "pre", 3) == 0);
	CHECK_EQ_INT(b.len, 3 + 34 + 2);
	size_t len = b.len;
	q.digest.p = NULL;
	CHECK_EQ_INT(casfs_stat_blob_request_encode(&q, &b), -EINVAL);
	struct casfs_stat_blob_response r = { .n_chunks = 1 };
	CHECK_EQ_INT(casfs_stat_blob_response_encode(&r, &b), -EINVAL);
	r = (struct casfs_stat_blob_response){ .bao = { NULL, 1, true } };
	CHECK_EQ_INT(casfs_stat_blob_response_encode(&r, &b), -EINVAL);
	struct casfs_calculate_nar_response c = { .nar_size = 1, .nar_sha256 = { NULL, 32, true } };
	CHECK_EQ_INT(casfs_calculate_nar_response_encode(&c, &b), -EINVAL);
	CHECK_EQ_INT(b.len, len);
	CHECK(casfs_health_check_response_encode(CASFS_HEALTH_SERVING, &b) == 0);
	CHECK_EQ_INT(b.len, len + 2);
	casfs_buf_release(&b);
}

TEST(encoders_report_buffer_errors)
{
	/* A buffer that cannot grow (doubling its capacity would overflow):
	 * every write is -EOVERFLOW, and nothing is written to its bytes. */
	uint8_t canary[8] = { 0 };
	const size_t full = SIZE_MAX / 2 + 1;
	struct casfs_buf b = { .data = canary, .len = full, .cap = full };
	struct casfs_stat_blob_request q = { .send_chunks = true };
	struct casfs_chunk_meta c = { .size = 1 };
	struct casfs_stat_blob_response r = { .chunks = &c, .n_chunks = 1 };
	struct casfs_get_directory_request g = { .digest = { NULL, 0, true } };
	struct casfs_calculate_nar_response n = { .nar_size = 1 };
	CHECK_EQ_INT(casfs_stat_blob_request_encode(&q, &b), -EOVERFLOW);
	CHECK_EQ_INT(casfs_stat_blob_response_encode(&r, &b), -EOVERFLOW);
	CHECK_EQ_INT(casfs_rpc_bytes1_encode((const uint8_t *)"", 0, &b), -EOVERFLOW);
	CHECK_EQ_INT(casfs_blob_chunk_header_append(0, &b), -EOVERFLOW);
	CHECK_EQ_INT(casfs_get_directory_request_encode(&g, &b), -EOVERFLOW);
	CHECK_EQ_INT(casfs_calculate_nar_response_encode(&n, &b), -EOVERFLOW);
	CHECK_EQ_INT(casfs_health_check_response_encode(CASFS_HEALTH_SERVING, &b), -EOVERFLOW);
	/* nothing to write is not an error */
	CHECK_EQ_INT(casfs_health_check_response_encode(CASFS_HEALTH_UNKNOWN, &b), 0);
	CHECK(b.len == full && b.cap == full && b.data == canary);
	static const uint8_t zero[8];
	CHECK_EQ_MEM(canary, zero, 8);
}
