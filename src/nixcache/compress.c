/* Push compression over liblzma, libzstd and libbz2 (compress.h): each
 * method runs its stream encoder into a fixed buffer and hands every
 * filled (and the last) buffer to the sink. */
#include "compress.h"

#include <bzlib.h>
#include <errno.h>
#include <lzma.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

struct casfs_compress {
	enum casfs_compression method;
	bool failed;
	uint8_t *buf;
	lzma_stream xz;
	ZSTD_CStream *zstd;
	bz_stream bz;
	bool bz_ready;
};

struct casfs_compress *casfs_compress_new(enum casfs_compression c)
{
	struct casfs_compress *z = calloc(1, sizeof(*z));
	if (!z)
		return NULL;
	z->method = c;
	z->buf = malloc(CASFS_DECOMPRESS_CHUNK);
	bool ok = z->buf != NULL;
	switch (c) {
	case CASFS_COMPRESSION_XZ:
		z->xz = (lzma_stream)LZMA_STREAM_INIT;
		ok = ok && lzma_easy_encoder(&z->xz, 6, LZMA_CHECK_CRC64) == LZMA_OK;
		break;
	case CASFS_COMPRESSION_ZSTD:
		ok = ok && (z->zstd = ZSTD_createCStream()) != NULL &&
		     !ZSTD_isError(ZSTD_initCStream(z->zstd, 3));
		break;
	case CASFS_COMPRESSION_BZIP2:
		ok = ok && BZ2_bzCompressInit(&z->bz, 9, 0, 0) == BZ_OK;
		z->bz_ready = ok;
		break;
	case CASFS_COMPRESSION_NONE:
		break;
	}
	if (!ok) {
		casfs_compress_free(z);
		return NULL;
	}
	return z;
}

void casfs_compress_free(struct casfs_compress *z)
{
	if (!z)
		return;
	lzma_end(&z->xz);
	ZSTD_freeCStream(z->zstd);
	if (z->bz_ready)
		BZ2_bzCompressEnd(&z->bz);
	free(z->buf);
	free(z);
}

static int fail(struct casfs_compress *z, int r, struct casfs_error *err)
{
	z->failed = true;
	return casfs_error_set(err, r, "%s compression failed", casfs_compression_name(z->method));
}

/* Run the encoder over p..p+n (finishing if `end`), emitting full buffers. */
static int run(struct casfs_compress *z, const void *p, size_t n, bool end,
	       casfs_decompress_sink sink, void *userdata, struct casfs_error *err)
{
	size_t out_len;
	for (;;) {
		bool done;
		switch (z->method) {
		case CASFS_COMPRESSION_XZ: {
			z->xz.next_in = p;
			z->xz.avail_in = n;
			z->xz.next_out = z->buf;
			z->xz.avail_out = CASFS_DECOMPRESS_CHUNK;
			lzma_ret lr = lzma_code(&z->xz, end ? LZMA_FINISH : LZMA_RUN);
			if (lr != LZMA_OK && lr != LZMA_STREAM_END)
				return fail(z, lr == LZMA_MEM_ERROR ? -ENOMEM : -EIO, err);
			out_len = CASFS_DECOMPRESS_CHUNK - z->xz.avail_out;
			p = z->xz.next_in;
			n = z->xz.avail_in;
			done = end ? lr == LZMA_STREAM_END : n == 0 && z->xz.avail_out != 0;
			break;
		}
		case CASFS_COMPRESSION_ZSTD: {
			ZSTD_inBuffer in = { p, n, 0 };
			ZSTD_outBuffer out = { z->buf, CASFS_DECOMPRESS_CHUNK, 0 };
			size_t left = ZSTD_compressStream2(z->zstd, &out, &in, end ? ZSTD_e_end : ZSTD_e_continue);
			if (ZSTD_isError(left))
				return fail(z, -EIO, err);
			out_len = out.pos;
			p = (const uint8_t *)p + in.pos;
			n -= in.pos;
			done = end ? left == 0 : n == 0 && out.pos < out.size;
			break;
		}
		case CASFS_COMPRESSION_BZIP2: {
			z->bz.next_in = (char *)p;
			z->bz.avail_in = (unsigned)n;
			z->bz.next_out = (char *)z->buf;
			z->bz.avail_out = CASFS_DECOMPRESS_CHUNK;
			int br = BZ2_bzCompress(&z->bz, end ? BZ_FINISH : BZ_RUN);
			if (br != BZ_RUN_OK && br != BZ_FINISH_OK && br != BZ_STREAM_END)
				return fail(z, -EIO, err);
			out_len = CASFS_DECOMPRESS_CHUNK - z->bz.avail_out;
			p = z->bz.next_in;
			n = z->bz.avail_in;
			done = end ? br == BZ_STREAM_END : n == 0;
			break;
		}
		default:
			return sink(userdata, p, n, err);
		}
		if (out_len) {
			int r = sink(userdata, z->buf, out_len, err);
			if (r < 0) {
				z->failed = true;
				return r;
			}
		}
		if (done)
			return 0;
	}
}

int casfs_compress_feed(struct casfs_compress *z, const void *p, size_t n,
			casfs_decompress_sink sink, void *userdata, struct casfs_error *err)
{
	if (z->failed)
		return casfs_error_set(err, -EIO, "compression already failed");
	/* bzip2 counts input in unsigned int. */
	while (n) {
		size_t k = n > (1u << 30) ? (1u << 30) : n;
		int r = run(z, p, k, false, sink, userdata, err);
		if (r < 0)
			return r;
		p = (const uint8_t *)p + k;
		n -= k;
	}
	return 0;
}

int casfs_compress_finish(struct casfs_compress *z, casfs_decompress_sink sink, void *userdata,
			  struct casfs_error *err)
{
	if (z->failed)
		return casfs_error_set(err, -EIO, "compression already failed");
	if (z->method == CASFS_COMPRESSION_NONE)
		return 0;
	return run(z, NULL, 0, true, sink, userdata, err);
}
