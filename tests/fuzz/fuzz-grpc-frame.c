/* Fuzz the gRPC deframer (rpc/grpc.h).
 *
 * The first input byte picks a feed step (1..64 bytes) and a limit; the
 * rest is DATA.  Whatever the split, the messages handed out must be the
 * same as a model deframing the whole input at once (written here from the
 * format in grpc.h), and the verdict (ok, -EPROTO, -EMSGSIZE, truncated at
 * the end) must agree. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "basic/buf.h"
#include "rpc/grpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                         \
	do {                                                                             \
		if (!(c))                                                                \
			abort();                                                         \
	} while (0)

static int collect(void *userdata, const uint8_t *msg, size_t len)
{
	struct casfs_buf *b = userdata;
	uint32_t n = (uint32_t)len;
	int r = casfs_buf_append(b, &n, sizeof(n));
	return r < 0 ? r : casfs_buf_append(b, msg, len);
}

/* The model: 0 complete, 1 truncated at the end, -EPROTO, -EMSGSIZE. */
static int model(const uint8_t *p, size_t n, size_t max, struct casfs_buf *out)
{
	size_t pos = 0;
	while (pos < n) {
		if (n - pos < 5)
			return 1;
		if (p[pos] != 0)
			return -EPROTO;
		uint32_t len = (uint32_t)p[pos + 1] << 24 | (uint32_t)p[pos + 2] << 16 |
			       (uint32_t)p[pos + 3] << 8 | p[pos + 4];
		if (len > max)
			return -EMSGSIZE;
		if (n - pos - 5 < len)
			return 1;
		CHECK(collect(out, p + pos + 5, len) == 0);
		pos += 5 + len;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = (data[0] & 63) + 1;
	size_t max = data[0] & 64 ? 4096 : 32;
	data++, size--;
	struct casfs_buf want = CASFS_BUF_INIT, got = CASFS_BUF_INIT;
	int verdict = model(data, size, max, &want);
	struct casfs_grpc_deframer d;
	struct casfs_error err;
	casfs_grpc_deframer_init(&d, max);
	int r = 0;
	for (size_t off = 0; r == 0 && off < size; off += step)
		r = casfs_grpc_deframer_feed(&d, data + off, size - off < step ? size - off : step,
					     collect, &got, &err);
	if (r == 0)
		r = casfs_grpc_deframer_end(&d, &err) == 0 ? 0 : 1;
	CHECK(r == verdict);
	if (r < 0)
		CHECK(err.code == r && err.msg[0]);
	/* every message before the failure was handed out, in order */
	CHECK(got.len == want.len && (!got.len || !memcmp(got.data, want.data, got.len)));
	casfs_grpc_deframer_release(&d);
	casfs_buf_release(&want);
	casfs_buf_release(&got);
	return 0;
}
