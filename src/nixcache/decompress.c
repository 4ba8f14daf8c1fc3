/* Push decompression over liblzma, libzstd and libbz2 (decompress.h).
 * Each method is a small adapter with the same shape: take input, run the
 * library's stream decoder into a fixed output buffer, hand each full (or
 * last) buffer to the sink, and remember whether the stream has ended. */
#include "decompress.h"

#include <bzlib.h>
#include <errno.h>
#include <lzma.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

/* xz streams may hold several concatenated streams (xz itself writes
 * one); this bounds the decoder's dictionary, far above xz -9's 64 MiB. */
#define XZ_MEMLIMIT (1ull << 30)

struct casfs_decompress {
	enum casfs_compression method;
	bool ended;  /* the stream is complete: nothing may follow */
	bool failed; /* an error was returned: no more calls do anything */
	uint64_t in, out;
	uint8_t *buf; /* CASFS_DECOMPRESS_CHUNK bytes */
	lzma_stream xz;
	ZSTD_DStream *zstd;
	bool zstd_in_frame; /* inside a frame: input ending here is truncation */
	bz_stream bz;
	bool bz_ready;
};

static const char *const names[] = {
	[CASFS_COMPRESSION_NONE] = "none",
	[CASFS_COMPRESSION_XZ] = "xz",
	[CASFS_COMPRESSION_ZSTD] = "zstd",
	[CASFS_COMPRESSION_BZIP2] = "bzip2",
};

int casfs_compression_parse(const char *name, enum casfs_compression *ret,
			    struct casfs_error *err)
{
	for (size_t c = 0; c < sizeof(names) / sizeof(names[0]); c++) {
		if (strcmp(name, names[c]) == 0) {
			*ret = (enum casfs_compression)c;
			return 0;
		}
	}
	return casfs_error_set(err, -ENOTSUP,
			       "compression '%.64s' is not supported (none, xz, zstd, bzip2)", name);
}

const char *casfs_compression_name(enum casfs_compression c)
{
	return (size_t)c < sizeof(names) / sizeof(names[0]) ? names[c] : "?";
}

struct casfs_decompress *casfs_decompress_new(enum casfs_compression c)
{
	struct casfs_decompress *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->method = c;
	d->buf = malloc(CASFS_DECOMPRESS_CHUNK);
	bool ok = d->buf != NULL;
	switch (c) {
	case CASFS_COMPRESSION_XZ:
		d->xz = (lzma_stream)LZMA_STREAM_INIT;
		ok = ok && lzma_stream_decoder(&d->xz, XZ_MEMLIMIT, LZMA_CONCATENATED) == LZMA_OK;
		break;
	case CASFS_COMPRESSION_ZSTD:
		ok = ok && (d->zstd = ZSTD_createDStream()) != NULL &&
		     !ZSTD_isError(ZSTD_initDStream(d->zstd));
		break;
	case CASFS_COMPRESSION_BZIP2:
		ok = ok && BZ2_bzDecompressInit(&d->bz, 0, 0) == BZ_OK;
		d->bz_ready = ok;
		break;
	case CASFS_COMPRESSION_NONE:
		break;
	}
	if (!ok) {
		casfs_decompress_free(d);
		return NULL;
	}
	return d;
}

void casfs_decompress_free(struct casfs_decompress *d)
{
	if (!d)
		return;
	if (d->method == CASFS_COMPRESSION_XZ)
		lzma_end(&d->xz);
	ZSTD_freeDStream(d->zstd);
	if (d->bz_ready)
		BZ2_bzDecompressEnd(&d->bz);
	free(d->buf);
	free(d);
}

static int corrupt(struct casfs_decompress *d, struct casfs_error *err, const char *what)
{
	d->failed = true;
	return casfs_error_set(err, -EBADMSG, "%s data is corrupt (%s) after %llu input bytes",
			       names[d->method], what, (unsigned long long)d->in);
}

/* Hand `n` output bytes at `p` to the sink. */
static int emit(struct casfs_decompress *d, const void *p, size_t n, casfs_decompress_sink sink,
		void *ud, struct casfs_error *err)
{
	if (n == 0)
		return 0;
	d->out += n;
	int r = sink(ud, p, n, err);
	if (r < 0)
		d->failed = true;
	return r;
}

static int feed_xz(struct casfs_decompress *d, const uint8_t *p, size_t n, bool finish,
		   casfs_decompress_sink sink, void *ud, struct casfs_error *err)
{
	d->xz.next_in = p;
	d->xz.avail_in = n;
	for (;;) {
		d->xz.next_out = d->buf;
		d->xz.avail_out = CASFS_DECOMPRESS_CHUNK;
		lzma_ret lr = lzma_code(&d->xz, finish ? LZMA_FINISH : LZMA_RUN);
		int r = emit(d, d->buf, CASFS_DECOMPRESS_CHUNK - d->xz.avail_out, sink, ud, err);
		if (r < 0)
			return r;
		if (lr == LZMA_STREAM_END) {
			d->ended = true;
			return 0;
		}
		if (lr == LZMA_BUF_ERROR && finish)
			break; /* no progress possible: the input stopped early */
		if (lr != LZMA_OK)
			return corrupt(d, err, lr == LZMA_FORMAT_ERROR ? "not xz"
					       : lr == LZMA_MEMLIMIT_ERROR ? "dictionary too large"
					       : lr == LZMA_DATA_ERROR ? "bad data"
					       : "decoder error");
		if (d->xz.avail_in == 0 && d->xz.avail_out != 0 && !finish)
			return 0;
	}
	d->failed = true;
	return casfs_error_set(err, -EBADMSG, "xz data is truncated after %llu bytes",
			       (unsigned long long)d->in);
}

static int feed_zstd(struct casfs_decompress *d, const uint8_t *p, size_t n,
		     casfs_decompress_sink sink, void *ud, struct casfs_error *err)
{
	ZSTD_inBuffer in = { p, n, 0 };
	for (;;) {
		ZSTD_outBuffer out = { d->buf, CASFS_DECOMPRESS_CHUNK, 0 };
		size_t zr = ZSTD_decompressStream(d->zstd, &out, &in);
		if (ZSTD_isError(zr))
			return corrupt(d, err, ZSTD_getErrorName(zr));
		int r = emit(d, d->buf, out.pos, sink, ud, err);
		if (r < 0)
			return r;
		/* 0: a frame just ended; more frames may follow. */
		d->zstd_in_frame = zr != 0;
		if (in.pos == in.size && out.pos < out.size)
			return 0;
	}
}

static int feed_bzip2(struct casfs_decompress *d, const uint8_t *p, size_t n,
		      casfs_decompress_sink sink, void *ud, struct casfs_error *err)
{
	d->bz.next_in = (char *)p; /* libbz2 does not write to it */
	d->bz.avail_in = (unsigned)n;
	for (;;) {
		d->bz.next_out = (char *)d->buf;
		d->bz.avail_out = CASFS_DECOMPRESS_CHUNK;
		int br = BZ2_bzDecompress(&d->bz);
		int r = emit(d, d->buf, CASFS_DECOMPRESS_CHUNK - d->bz.avail_out, sink, ud, err);
		if (r < 0)
			return r;
		if (br == BZ_STREAM_END) {
			d->ended = true;
			if (d->bz.avail_in != 0)
				return corrupt(d, err, "bytes after the end of the stream");
			return 0;
		}
		if (br != BZ_OK)
			return corrupt(d, err, br == BZ_DATA_ERROR_MAGIC ? "not bzip2" : "bad data");
		if (d->bz.avail_in == 0 && d->bz.avail_out != 0)
			return 0;
	}
}

/* libbz2 takes unsigned int lengths: feed big inputs in pieces. */
#define BZ_PIECE (1u << 30)

int casfs_decompress_feed(struct casfs_decompress *d, const void *p, size_t n,
			  casfs_decompress_sink sink, void *userdata, struct casfs_error *err)
{
	if (d->failed)
		return casfs_error_set(err, -EINVAL, "decompression already failed");
	if (n == 0)
		return 0;
	if (d->ended)
		return corrupt(d, err, "bytes after the end of the stream");
	d->in += n;
	const uint8_t *b = p;
	switch (d->method) {
	case CASFS_COMPRESSION_NONE:
		return emit(d, p, n, sink, userdata, err);
	case CASFS_COMPRESSION_XZ:
		return feed_xz(d, b, n, false, sink, userdata, err);
	case CASFS_COMPRESSION_ZSTD:
		return feed_zstd(d, b, n, sink, userdata, err);
	case CASFS_COMPRESSION_BZIP2:
		for (size_t off = 0; off < n; off += BZ_PIECE) {
			size_t piece = n - off < BZ_PIECE ? n - off : BZ_PIECE;
			if (d->ended)
				return corrupt(d, err, "bytes after the end of the stream");
			int r = feed_bzip2(d, b + off, piece, sink, userdata, err);
			if (r < 0)
				return r;
		}
		return 0;
	}
	return -EINVAL;
}

int casfs_decompress_finish(struct casfs_decompress *d, casfs_decompress_sink sink,
			    void *userdata, uint64_t *ret_in, uint64_t *ret_out,
			    struct casfs_error *err)
{
	if (d->failed)
		return casfs_error_set(err, -EINVAL, "decompression already failed");
	int r = 0;
	switch (d->method) {
	case CASFS_COMPRESSION_NONE:
		break;
	case CASFS_COMPRESSION_XZ:
		if (!d->ended)
			r = feed_xz(d, NULL, 0, true, sink, userdata, err);
		break;
	case CASFS_COMPRESSION_ZSTD:
		if (d->in == 0 || d->zstd_in_frame) {
			d->failed = true;
			r = casfs_error_set(err, -EBADMSG, "zstd data is truncated after %llu bytes",
					    (unsigned long long)d->in);
		}
		break;
	case CASFS_COMPRESSION_BZIP2:
		if (!d->ended) {
			d->failed = true;
			r = casfs_error_set(err, -EBADMSG, "bzip2 data is truncated after %llu bytes",
					    (unsigned long long)d->in);
		}
		break;
	}
	if (r < 0)
		return r;
	if (ret_in)
		*ret_in = d->in;
	if (ret_out)
		*ret_out = d->out;
	return 0;
}
