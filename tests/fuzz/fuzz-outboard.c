/* Fuzz the outboard decoder (casfs_outboard_decode) and range checks.
 *
 * The input is an encoded outboard.  It is decoded for the size its own
 * header states and the digest its own CVs hash to (when it holds two or
 * more), so that any well-formed input reaches the success path; acceptance
 * must agree with a small model of the format written from outboard.h.  An
 * accepted outboard must re-encode to the very input, keep its fields and
 * CVs, be refused for another digest, another size or one byte less, and
 * casfs_outboard_check over synthetic data (zeros, and a pattern) must name
 * exactly the first group whose CV the model recomputes differently.
 * Every rejection is -EBADMSG with a message, the output untouched. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "digest/b3tree.h"
#include "digest/digest.h"
#include "digest/outboard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                         \
	do {                                                                             \
		if (!(c))                                                                \
			abort();                                                         \
	} while (0)

/* At most this many bytes of synthetic blob per check. */
#define MAX_CHECK_BYTES (256u * 1024u)

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* The format, restated from outboard.h without looking at outboard.c:
 * whether `len` bytes are a well-formed outboard of a blob of `size`
 * bytes (the digest aside). */
static bool model_ok(const uint8_t *p, size_t len, uint64_t size)
{
	if (len < 24 || memcmp(p, "casfsob1", 8) != 0)
		return false;
	unsigned shift = p[8];
	if (shift < 10 || shift > 18)
		return false;
	for (int i = 9; i < 16; i++)
		if (p[i])
			return false;
	if (le64(p + 16) != size)
		return false;
	uint64_t group = UINT64_C(1) << shift;
	if (size <= group || size > (UINT64_C(1) << 42))
		return false;
	uint64_t n = size / group + (size % group != 0);
	return (len - 24) % 32 == 0 && (len - 24) / 32 == n;
}

static bool untouched(const struct casfs_outboard *ob)
{
	const uint8_t *b = (const uint8_t *)ob;
	for (size_t i = 0; i < sizeof(*ob); i++)
		if (b[i] != 0xa5)
			return false;
	return true;
}

/* decode must refuse this, properly. */
static void refused(const uint8_t *p, size_t len, const uint8_t digest[32], uint64_t size)
{
	struct casfs_outboard ob;
	struct casfs_error err = { 0 };
	memset(&ob, 0xa5, sizeof(ob));
	int r = casfs_outboard_decode(p, len, digest, size, &ob, &err);
	CHECK(r == -EBADMSG && err.code == -EBADMSG && err.msg[0] && untouched(&ob));
}

/* Byte x of the synthetic blob. */
static uint8_t synth(uint64_t x, unsigned kind)
{
	return kind == 0 ? 0 : (uint8_t)(x * 7 + (x >> 10));
}

/* Check groups [first, first + count) of `ob` over synthetic bytes of
 * `kind`, against CVs recomputed group by group. */
static void check_range(const struct casfs_outboard *ob, size_t first, size_t count,
			unsigned kind, unsigned threads)
{
	uint64_t group = casfs_outboard_group_len(ob);
	uint64_t start = (uint64_t)first * group;
	uint64_t end = (uint64_t)(first + count) * group;
	if (end > ob->size)
		end = ob->size;
	size_t len = (size_t)(end - start);
	uint8_t *buf = malloc(len ? len : 1); /* exact size: ASan sees overreads */
	CHECK(buf != NULL);
	for (size_t i = 0; i < len; i++)
		buf[i] = synth(start + i, kind);
	size_t want = SIZE_MAX;
	for (size_t i = 0; i < count && want == SIZE_MAX; i++) {
		uint64_t off = (uint64_t)i * group;
		size_t k = len - off < group ? (size_t)(len - off) : (size_t)group;
		uint8_t cv[CASFS_B3_LEN];
		casfs_b3_subtree_cv(buf + off, k, (start + off) / CASFS_B3_CHUNK_LEN, cv);
		if (memcmp(cv, ob->cvs[first + i], CASFS_B3_LEN) != 0)
			want = first + i;
	}
	size_t bad = SIZE_MAX - 1;
	int r = casfs_outboard_check(ob, first, count, buf, threads, &bad);
	if (want == SIZE_MAX)
		CHECK(r == 0 && bad == SIZE_MAX - 1);
	else
		CHECK(r == -EBADMSG && bad == want);
	free(buf);
}

static void accepted(const uint8_t *p, size_t len, const uint8_t digest[32],
		     const struct casfs_outboard *ob)
{
	uint64_t size = le64(p + 16);
	CHECK(ob->size == size && ob->shift == p[8] && ob->n == (len - 24) / 32 && ob->n >= 2);
	CHECK(memcmp(ob->cvs, p + 24, len - 24) == 0);
	uint8_t *enc = NULL;
	size_t enc_len = 0;
	CHECK(casfs_outboard_encode(ob, &enc, &enc_len) == 0);
	CHECK(enc_len == len && memcmp(enc, p, len) == 0);
	free(enc);

	/* the same bytes, for another blob */
	uint8_t other[32];
	memcpy(other, digest, 32);
	other[p[len - 1] % 32] ^= (uint8_t)(1u << (p[len - 2] % 8));
	refused(p, len, other, size);
	refused(p, len, digest, size + 1);
	refused(p, len, digest, size - 1);
	refused(p, len - 1, digest, size);

	/* a few ranges, chosen by the CVs, no more than MAX_CHECK_BYTES each */
	uint64_t group = casfs_outboard_group_len(ob);
	size_t most = group >= MAX_CHECK_BYTES ? 1 : (size_t)(MAX_CHECK_BYTES / group);
	uint8_t h[32];
	casfs_b3(p, len, h);
	for (int i = 0; i < 3; i++) {
		size_t first = i == 0 ? 0 : i == 1 ? ob->n - 1 : (h[i] | (size_t)h[4 + i] << 8) % ob->n;
		size_t count = 1 + h[8 + i] % most;
		if (count > ob->n - first)
			count = ob->n - first;
		for (unsigned kind = 0; kind < 2; kind++)
			check_range(ob, first, count, kind, 1 + h[16 + i] % 2);
	}
	check_range(ob, h[20] % ob->n, 0, 0, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > (64u << 10) + 24)
		return 0;
	/* Exact-size copy: a read past `size` is an ASan error. */
	uint8_t *p = malloc(size ? size : 1);
	if (!p)
		return 0;
	memcpy(p, data, size);

	uint64_t blob = size >= 24 ? le64(p + 16) : size;
	size_t m = size >= 24 ? (size - 24) / 32 : 0;
	uint8_t digest[32];
	if (m >= 2)
		casfs_b3_root_from_groups((const uint8_t (*)[32])(p + 24), m, digest);
	else
		casfs_b3(p, size, digest);

	bool ok = m >= 2 && model_ok(p, size, blob);
	struct casfs_outboard ob;
	struct casfs_error err = { 0 };
	memset(&ob, 0xa5, sizeof(ob));
	int r = casfs_outboard_decode(p, size, digest, blob, &ob, &err);
	CHECK((r == 0) == ok);
	if (r == 0) {
		accepted(p, size, digest, &ob);
		casfs_outboard_release(&ob);
	} else {
		CHECK(r == -EBADMSG && err.code == -EBADMSG && err.msg[0] && untouched(&ob));
	}

	/* and for a digest taken from the input's first bytes: refused unless
	 * it happens to be the root (a copy of it, in the input) */
	uint8_t given[32] = { 0 };
	memcpy(given, p, size < 32 ? size : 32);
	if (!ok || memcmp(given, digest, 32) != 0)
		refused(p, size, given, blob);
	free(p);
	return 0;
}
