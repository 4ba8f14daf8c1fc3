/* Fuzz the NAR reader.  The input is fed in several chunkings, which must
 * all agree; an accepted input is re-encoded through the writer and must
 * come out byte-identical (the reader accepts only canonical NARs), with
 * the reader's SHA-256 and size equal to those of the input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/buf.h"
#include "basic/util.h"
#include "nar/nar-reader.h"
#include "nar/nar-writer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int buf_sink(void *userdata, const void *p, size_t n)
{
	return casfs_buf_append(userdata, p, n);
}

/* Parse with the given chunk size; 0 if accepted (re-encoding in *out). */
static int run(const uint8_t *data, size_t size, size_t chunk, struct casfs_buf *out,
	       uint8_t sha[CASFS_SHA256_LEN], uint64_t *nar_size)
{
	struct casfs_nar_reader *rd = casfs_nar_reader_new();
	struct casfs_nar_writer w;
	if (!rd || casfs_nar_writer_init(&w, buf_sink, out, 7, false) < 0)
		abort();
	struct casfs_error err = { 0 };
	size_t off = 0;
	bool done = false;
	int r;
	for (;;) {
		struct casfs_nar_event ev;
		r = casfs_nar_reader_step(rd, &ev, &err);
		if (r < 0)
			break;
		if (ev.type == CASFS_NAR_NEED_DATA) {
			if (off == size) {
				r = casfs_nar_reader_end(rd, &err);
				break;
			}
			size_t n = MIN(chunk, size - off);
			casfs_nar_reader_feed(rd, data + off, n);
			off += n;
			continue;
		}
		if (ev.type == CASFS_NAR_DONE)
			done = true;
		if (casfs_nar_writer_event(&w, &ev) < 0) {
			fprintf(stderr, "writer refused an event the reader accepted (type %d)\n",
				ev.type);
			abort();
		}
	}
	if (r < 0 && (r != -EBADMSG || !strstr(err.msg, "at byte") || strchr(err.msg, '\n'))) {
		fprintf(stderr, "bad failure %d: %s\n", r, err.msg);
		abort();
	}
	if (r == 0) {
		if (!done)
			abort();
		casfs_nar_reader_result(rd, sha, nar_size);
	}
	casfs_nar_writer_release(&w);
	casfs_nar_reader_free(rd);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t chunks[] = { SIZE_MAX, 1, 7, 64 };
	int first = 0;
	for (size_t i = 0; i < ARRAY_SIZE(chunks); i++) {
		struct casfs_buf out = CASFS_BUF_INIT;
		uint8_t sha[CASFS_SHA256_LEN], want[CASFS_SHA256_LEN];
		uint64_t nar_size = 0;
		int r = run(data, size, chunks[i], &out, sha, &nar_size);
		if (i == 0)
			first = r;
		if (r != first) {
			fprintf(stderr, "chunk size %zu: %d, whole: %d\n", chunks[i], r, first);
			abort();
		}
		if (r == 0) {
			if (out.len != size || memcmp(out.data, data, size) != 0) {
				fprintf(stderr, "accepted a non-canonical NAR\n");
				abort();
			}
			casfs_sha256(data, size, want);
			if (nar_size != size || memcmp(sha, want, sizeof(want)) != 0)
				abort();
		}
		casfs_buf_release(&out);
	}
	return 0;
}
