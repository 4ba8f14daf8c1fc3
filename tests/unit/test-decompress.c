/* Push decompression (src/nixcache/decompress.h).  Compressed inputs are
 * made here by the libraries' own encoders (liblzma, libzstd, libbz2), fed
 * in random pieces, and the output compared with the original; then cut,
 * damaged, followed by garbage, or given to the wrong method. */
#include <bzlib.h>
#include <errno.h>
#include <lzma.h>
#include <zstd.h>

#include "basic/buf.h"
#include "nixcache/compress.h"
#include "nixcache/decompress.h"
#include "test.h"

#define PLAIN_LEN (3u * 1024 * 1024 + 17)

static uint8_t *plain_data(void)
{
	uint8_t *p = malloc(PLAIN_LEN);
	uint32_t x = 12345;
	for (size_t i = 0; p && i < PLAIN_LEN; i++) {
		x = x * 1103515245 + 12345;
		/* compressible, but not trivially */
		p[i] = (uint8_t)((i % 251) ^ ((x >> 24) & 0x0f));
	}
	return p;
}

/* Compress with the library's encoder; *len set; NULL on failure. */
static uint8_t *compress(enum casfs_compression c, const uint8_t *p, size_t n, size_t *len)
{
	size_t cap = n + n / 2 + 65536;
	uint8_t *out = malloc(cap);
	if (!out)
		return NULL;
	switch (c) {
	case CASFS_COMPRESSION_NONE:
		memcpy(out, p, n);
		*len = n;
		return out;
	case CASFS_COMPRESSION_XZ: {
		size_t pos = 0;
		if (lzma_easy_buffer_encode(6, LZMA_CHECK_CRC64, NULL, p, n, out, &pos, cap) !=
		    LZMA_OK)
			break;
		*len = pos;
		return out;
	}
	case CASFS_COMPRESSION_ZSTD: {
		size_t r = ZSTD_compress(out, cap, p, n, 3);
		if (ZSTD_isError(r))
			break;
		*len = r;
		return out;
	}
	case CASFS_COMPRESSION_BZIP2: {
		unsigned int l = (unsigned int)cap;
		if (BZ2_bzBuffToBuffCompress((char *)out, &l, (char *)p, (unsigned int)n, 9, 0,
					     0) != BZ_OK)
			break;
		*len = l;
		return out;
	}
	}
	free(out);
	return NULL;
}

static int collect(void *userdata, const void *p, size_t n, struct casfs_error *err)
{
	(void)err;
	if (n > CASFS_DECOMPRESS_CHUNK)
		return -E2BIG;
	return casfs_buf_append(userdata, p, n);
}

static uint32_t rng = 7;
static size_t piece(void)
{
	rng = rng * 1664525 + 1013904223;
	switch (rng >> 30) {
	case 0: return 1 + (rng >> 8) % 7;
	case 1: return 1 + (rng >> 8) % 4096;
	default: return 1 + (rng >> 8) % 200000;
	}
}

/* Decompress `in` in random pieces into *out (emptied first); 0 or the
 * first error (its message alone in *err). */
static int run(enum casfs_compression c, const uint8_t *in, size_t len, struct casfs_buf *out,
	       uint64_t *ret_in, uint64_t *ret_out, struct casfs_error *err)
{
	struct casfs_decompress *d = casfs_decompress_new(c);
	if (!d)
		return -ENOMEM;
	casfs_error_clear(err);
	out->len = 0;
	int r = 0;
	for (size_t off = 0; off < len && r >= 0;) {
		size_t n = piece();
		if (n > len - off)
			n = len - off;
		r = casfs_decompress_feed(d, in + off, n, collect, out, err);
		off += n;
	}
	if (r >= 0)
		r = casfs_decompress_finish(d, collect, out, ret_in, ret_out, err);
	casfs_decompress_free(d);
	return r;
}

static const enum casfs_compression all[] = { CASFS_COMPRESSION_NONE, CASFS_COMPRESSION_XZ,
					      CASFS_COMPRESSION_ZSTD, CASFS_COMPRESSION_BZIP2 };

TEST(round_trip_in_random_pieces)
{
	uint8_t *p = plain_data();
	CHECK(p != NULL);
	for (size_t k = 0; k < sizeof(all) / sizeof(all[0]); k++) {
		size_t len;
		uint8_t *z = compress(all[k], p, PLAIN_LEN, &len);
		CHECK(z != NULL);
		struct casfs_buf out = CASFS_BUF_INIT;
		struct casfs_error err = { 0 };
		uint64_t in_total = 0, out_total = 0;
		int r = run(all[k], z, len, &out, &in_total, &out_total, &err);
		if (r < 0)
			FAILF("%s: %s", casfs_compression_name(all[k]), casfs_error_message(&err, r));
		CHECK_EQ_INT(r, 0);
		CHECK_EQ_INT(out.len, PLAIN_LEN);
		CHECK(memcmp(out.data, p, PLAIN_LEN) == 0);
		CHECK_EQ_INT(in_total, len);
		CHECK_EQ_INT(out_total, PLAIN_LEN);
		casfs_buf_release(&out);
		free(z);
	}
	free(p);
}

TEST(truncated_streams_are_refused)
{
	uint8_t *p = plain_data();
	CHECK(p != NULL);
	for (size_t k = 1; k < sizeof(all) / sizeof(all[0]); k++) {
		size_t len;
		uint8_t *z = compress(all[k], p, PLAIN_LEN, &len);
		CHECK(z != NULL);
		const size_t cuts[] = { 0, 1, 10, len / 2, len - 1 };
		for (size_t c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++) {
			struct casfs_buf out = CASFS_BUF_INIT;
			struct casfs_error err = { 0 };
			int r = run(all[k], z, cuts[c], &out, NULL, NULL, &err);
			if (r != -EBADMSG ||
			    !strstr(casfs_error_message(&err, r), casfs_compression_name(all[k])))
				FAILF("%s cut at %zu: %d '%s'", casfs_compression_name(all[k]), cuts[c],
				      r, casfs_error_message(&err, r));
			casfs_buf_release(&out);
		}
		free(z);
	}
	free(p);
}

TEST(damage_garbage_and_wrong_method_are_refused)
{
	uint8_t *p = plain_data();
	CHECK(p != NULL);
	size_t xz_len, bz_len, zs_len;
	uint8_t *xz = compress(CASFS_COMPRESSION_XZ, p, PLAIN_LEN, &xz_len);
	uint8_t *bz = compress(CASFS_COMPRESSION_BZIP2, p, PLAIN_LEN, &bz_len);
	uint8_t *zs = compress(CASFS_COMPRESSION_ZSTD, p, PLAIN_LEN, &zs_len);
	CHECK(xz && bz && zs);
	struct casfs_buf out = CASFS_BUF_INIT;
	struct casfs_error err = { 0 };

	/* xz and bzip2 check their data (CRC): a flipped byte is found. */
	xz[xz_len / 2] ^= 0x10;
	CHECK_EQ_INT(run(CASFS_COMPRESSION_XZ, xz, xz_len, &out, NULL, NULL, &err), -EBADMSG);
	xz[xz_len / 2] ^= 0x10;
	bz[bz_len / 2] ^= 0x10;
	CHECK_EQ_INT(run(CASFS_COMPRESSION_BZIP2, bz, bz_len, &out, NULL, NULL, &err), -EBADMSG);
	bz[bz_len / 2] ^= 0x10;

	/* The wrong method: each refuses the others' bytes. */
	CHECK_EQ_INT(run(CASFS_COMPRESSION_ZSTD, xz, xz_len, &out, NULL, NULL, &err), -EBADMSG);
	CHECK(strstr(casfs_error_message(&err, -EBADMSG), "zstd") != NULL);
	CHECK_EQ_INT(run(CASFS_COMPRESSION_XZ, zs, zs_len, &out, NULL, NULL, &err), -EBADMSG);
	CHECK_EQ_INT(run(CASFS_COMPRESSION_BZIP2, xz, xz_len, &out, NULL, NULL, &err), -EBADMSG);

	/* Bytes after the end of an xz or bzip2 stream. */
	uint8_t *more = malloc(bz_len + 4);
	CHECK(more != NULL);
	memcpy(more, bz, bz_len);
	memcpy(more + bz_len, "junk", 4);
	CHECK_EQ_INT(run(CASFS_COMPRESSION_BZIP2, more, bz_len + 4, &out, NULL, NULL, &err),
		     -EBADMSG);
	free(more);
	more = malloc(xz_len + 4);
	CHECK(more != NULL);
	memcpy(more, xz, xz_len);
	memcpy(more + xz_len, "junk", 4);
	CHECK_EQ_INT(run(CASFS_COMPRESSION_XZ, more, xz_len + 4, &out, NULL, NULL, &err), -EBADMSG);
	free(more);

	/* Two zstd frames back to back are one stream (as zstd -c a b). */
	more = malloc(2 * zs_len);
	CHECK(more != NULL);
	memcpy(more, zs, zs_len);
	memcpy(more + zs_len, zs, zs_len);
	CHECK_EQ_INT(run(CASFS_COMPRESSION_ZSTD, more, 2 * zs_len, &out, NULL, NULL, &err), 0);
	CHECK_EQ_INT(out.len, 2 * PLAIN_LEN);
	CHECK(memcmp(out.data + PLAIN_LEN, p, PLAIN_LEN) == 0);
	free(more);

	casfs_buf_release(&out);
	free(xz);
	free(bz);
	free(zs);
	free(p);
}

static int refuse(void *userdata, const void *p, size_t n, struct casfs_error *err)
{
	(void)userdata, (void)p, (void)n;
	return casfs_error_set(err, -ENOSPC, "sink full");
}

TEST(a_sink_error_stops_and_is_returned)
{
	for (size_t k = 0; k < sizeof(all) / sizeof(all[0]); k++) {
		uint8_t *p = plain_data();
		size_t len;
		uint8_t *z = compress(all[k], p, 100000, &len);
		CHECK(z != NULL);
		struct casfs_decompress *d = casfs_decompress_new(all[k]);
		CHECK(d != NULL);
		struct casfs_error err = { 0 };
		int r = casfs_decompress_feed(d, z, len, refuse, NULL, &err);
		if (r == 0) /* xz may hold everything back until the end */
			r = casfs_decompress_finish(d, refuse, NULL, NULL, NULL, &err);
		CHECK_EQ_INT(r, -ENOSPC);
		CHECK_EQ_STR(casfs_error_message(&err, r), "sink full");
		/* Dead after a failure. */
		CHECK(casfs_decompress_feed(d, z, 1, refuse, NULL, &err) < 0);
		casfs_decompress_free(d);
		free(z);
		free(p);
	}
}

TEST(method_names)
{
	enum casfs_compression c;
	struct casfs_error err = { 0 };
	for (size_t k = 0; k < sizeof(all) / sizeof(all[0]); k++) {
		CHECK_EQ_INT(casfs_compression_parse(casfs_compression_name(all[k]), &c, &err), 0);
		CHECK_EQ_INT(c, all[k]);
	}
	CHECK_EQ_INT(casfs_compression_parse("br", &c, &err), -ENOTSUP);
	CHECK(strstr(casfs_error_message(&err, -ENOTSUP), "'br'") != NULL);
	CHECK_EQ_INT(casfs_compression_parse("", &c, &err), -ENOTSUP);
}

/* ---- compress.h: what it writes, the libraries' one-shot decoders read -- */

static int collect_any(void *userdata, const void *p, size_t n, struct casfs_error *err)
{
	(void)err;
	return casfs_buf_append(userdata, p, n);
}

/* The libraries' own buffer decoders, independent of decompress.c. */
static int library_decode(enum casfs_compression c, const uint8_t *in, size_t len, uint8_t *out,
			  size_t cap, size_t *ret_len)
{
	switch (c) {
	case CASFS_COMPRESSION_NONE:
		if (len > cap)
			return -1;
		memcpy(out, in, len);
		*ret_len = len;
		return 0;
	case CASFS_COMPRESSION_XZ: {
		uint64_t limit = UINT64_MAX;
		size_t in_pos = 0, out_pos = 0;
		if (lzma_stream_buffer_decode(&limit, 0, NULL, in, &in_pos, len, out, &out_pos, cap) !=
		    LZMA_OK || in_pos != len)
			return -1;
		*ret_len = out_pos;
		return 0;
	}
	case CASFS_COMPRESSION_ZSTD: {
		size_t r = ZSTD_decompress(out, cap, in, len);
		if (ZSTD_isError(r))
			return -1;
		*ret_len = r;
		return 0;
	}
	case CASFS_COMPRESSION_BZIP2: {
		unsigned int l = (unsigned int)cap;
		if (BZ2_bzBuffToBuffDecompress((char *)out, &l, (char *)in, (unsigned int)len, 0, 0) !=
		    BZ_OK)
			return -1;
		*ret_len = l;
		return 0;
	}
	}
	return -1;
}

TEST(compress_round_trip_in_random_pieces)
{
	uint8_t *p = plain_data();
	uint8_t *back = malloc(PLAIN_LEN + 1);
	CHECK(p != NULL && back != NULL);
	for (size_t k = 0; k < sizeof(all) / sizeof(all[0]); k++) {
		struct casfs_compress *z = casfs_compress_new(all[k]);
		CHECK(z != NULL);
		struct casfs_buf out = CASFS_BUF_INIT;
		struct casfs_error err = { 0 };
		int r = 0;
		for (size_t off = 0; off < PLAIN_LEN && r >= 0;) {
			size_t n = piece();
			if (n > PLAIN_LEN - off)
				n = PLAIN_LEN - off;
			r = casfs_compress_feed(z, p + off, n, collect_any, &out, &err);
			off += n;
		}
		if (r >= 0)
			r = casfs_compress_finish(z, collect_any, &out, &err);
		casfs_compress_free(z);
		CHECK_EQ_INT(r, 0);
		size_t got = 0;
		CHECK_EQ_INT(library_decode(all[k], out.data, out.len, back, PLAIN_LEN + 1, &got), 0);
		CHECK_EQ_INT(got, PLAIN_LEN);
		CHECK(memcmp(back, p, PLAIN_LEN) == 0);
		/* and decompress.h reads it too */
		struct casfs_buf again = CASFS_BUF_INIT;
		CHECK_EQ_INT(run(all[k], out.data, out.len, &again, NULL, NULL, &err), 0);
		CHECK_EQ_INT(again.len, PLAIN_LEN);
		casfs_buf_release(&again);
		casfs_buf_release(&out);
	}
	free(back);
	free(p);
}
