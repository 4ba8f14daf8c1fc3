/* src/digest/outboard.c: the outboard encoding, its checked decoding,
 * range checks, and the stream hasher that yields digest and outboard.
 *
 * Oracle: the official hasher (casfs_b3, blake3_hasher): for every length
 * around the tree's and the groups' boundaries, fed in pieces of many
 * sizes on one and two threads, the stream's digest must be the official
 * digest of the same bytes, and its outboard must decode against that
 * digest.  Decoding must refuse every damaged encoding with -EBADMSG and a
 * message, and leave its output alone; checking must name exactly the
 * group whose byte was flipped.  Random piece sizes print their seed
 * (CASFS_TEST_SEED replays them). */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "basic/error.h"
#include "basic/util.h"
#include "digest/b3tree.h"
#include "digest/digest.h"
#include "digest/outboard.h"
#include "test.h"

#define G CASFS_OUTBOARD_GROUP_LEN
#define KIB 1024u
#define MIB (1024u * 1024u)

static void fill(uint8_t *p, size_t len, uint32_t salt)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)((i * 131 + (i >> 9) * 7 + (i >> 17) + salt) ^ (salt >> 8));
}

static uint64_t rng_state;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void seed_rng(void)
{
	if (rng_state)
		return;
	const char *s = getenv("CASFS_TEST_SEED");
	rng_state = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) * 2654435761u + (uint64_t)getpid();
	if (!rng_state)
		rng_state = 1;
	printf("  test-outboard: CASFS_TEST_SEED=%" PRIu64 "\n", rng_state);
}

static uint64_t groups_of(uint64_t size, unsigned shift)
{
	return (size + (UINT64_C(1) << shift) - 1) >> shift;
}

/* Everything the stream says about data[0, len) fed in pieces of `piece`
 * bytes (0: random sizes from the rng, 0 included) on `threads` threads,
 * against the official digest `want`.  Writes one line and returns -1 on a
 * difference. */
static int stream_matches(const uint8_t *data, size_t len, size_t piece, unsigned threads,
			  const uint8_t want[CASFS_B3_LEN])
{
	struct casfs_b3_stream s;
	casfs_b3_stream_init(&s, threads);
	for (size_t off = 0; off < len || (piece == 0 && off == 0 && rng() % 2);) {
		size_t k = piece;
		if (piece == 0) {
			static const size_t sizes[] = { 0, 1, 7, 1000, G - 1, G, G + 1, 2 * G + 3, 3 * MIB };
			k = rng() % 4 == 0 ? (size_t)(rng() % (3 * G)) : sizes[rng() % ARRAY_SIZE(sizes)];
		}
		if (k > len - off)
			k = len - off;
		int r = casfs_b3_stream_update(&s, data + off, k);
		if (r != 0) {
			FAILF("length %zu, pieces %zu, %u threads: update at %zu returned %d", len, piece,
			      threads, off, r);
			casfs_b3_stream_release(&s);
			return -1;
		}
		off += k;
		if (k == 0 && off == len)
			break;
	}
	uint8_t got[CASFS_B3_LEN] = { 0 };
	struct casfs_outboard ob;
	memset(&ob, 0xa5, sizeof(ob));
	int r = casfs_b3_stream_final(&s, got, &ob);
	casfs_b3_stream_release(&s); /* a second release is harmless */
	if (r != 0) {
		FAILF("length %zu, pieces %zu, %u threads: final returned %d", len, piece, threads, r);
		return -1;
	}
	int bad = 0;
	if (memcmp(got, want, CASFS_B3_LEN) != 0) {
		FAILF("length %zu, pieces %zu, %u threads: digest differs from the official one", len,
		      piece, threads);
		bad = -1;
	} else if (ob.size != len) {
		FAILF("length %zu, pieces %zu, %u threads: outboard size %" PRIu64, len, piece, threads,
		      ob.size);
		bad = -1;
	} else if (len <= G) {
		if (ob.n != 0 || ob.cvs != NULL) {
			FAILF("length %zu: %zu group CVs, expected none", len, ob.n);
			bad = -1;
		}
	} else if (ob.n != groups_of(len, 16) || ob.shift != 16 || !ob.cvs) {
		FAILF("length %zu, pieces %zu, %u threads: %zu groups of shift %u, expected %" PRIu64,
		      len, piece, threads, ob.n, ob.shift, groups_of(len, 16));
		bad = -1;
	} else {
		/* the CVs hash to the official digest, and the bytes check */
		_cleanup_free_ uint8_t *enc = NULL;
		size_t enc_len = 0;
		struct casfs_outboard back = { 0 };
		struct casfs_error err = { 0 };
		size_t bad_group = SIZE_MAX;
		if (casfs_outboard_encode(&ob, &enc, &enc_len) != 0 ||
		    enc_len != CASFS_OUTBOARD_HEADER_LEN + ob.n * CASFS_B3_LEN) {
			FAILF("length %zu: encoding failed or has %zu bytes", len, enc_len);
			bad = -1;
		} else if ((r = casfs_outboard_decode(enc, enc_len, want, len, &back, &err)) != 0) {
			FAILF("length %zu, pieces %zu, %u threads: decode: %d %s", len, piece, threads, r,
			      casfs_error_message(&err, r));
			bad = -1;
		} else if (back.n != ob.n || back.shift != 16 || back.size != len ||
			   memcmp(back.cvs, ob.cvs, ob.n * CASFS_B3_LEN) != 0) {
			FAILF("length %zu: decoded outboard differs from the stream's", len);
			bad = -1;
		} else if ((r = casfs_outboard_check(&ob, 0, ob.n, data, threads, &bad_group)) != 0) {
			FAILF("length %zu, pieces %zu, %u threads: check: %d, group %zu", len, piece,
			      threads, r, bad_group);
			bad = -1;
		}
		casfs_outboard_release(&back);
	}
	casfs_outboard_release(&ob);
	return bad;
}

TEST(stream_gives_the_official_digest)
{
	size_t max = 8 * MIB + 17;
	_cleanup_free_ uint8_t *data = malloc(max);
	CHECK(data != NULL);
	fill(data, max, 0);
	size_t lens[128], n = 0;
	const size_t fixed[] = { 0, 1, 63, 64, 65, 1023, 1024, 1025, G - 1, G, G + 1,
				 MIB - 1, MIB, MIB + 1, 8 * MIB + 17 };
	for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
		lens[n++] = fixed[i];
	for (unsigned k = 1; k <= 13; k++) /* 2^k chunks +- 1 byte */
		for (int d = -1; d <= 1; d++)
			lens[n++] = ((size_t)KIB << k) + (size_t)d;
	const size_t mult[] = { 2, 3, 4, 5, 16, 17, 33 };
	for (size_t m = 0; m < ARRAY_SIZE(mult); m++) /* group boundaries */
		for (int d = -1; d <= 1; d++)
			lens[n++] = G * mult[m] + (size_t)d;
	const size_t pieces[] = { 1, 7, 4096, G, G + 1, MIB, SIZE_MAX };
	int runs = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t want[CASFS_B3_LEN];
		casfs_b3(data, lens[i], want);
		for (size_t p = 0; p < ARRAY_SIZE(pieces); p++) {
			if (pieces[p] == 1 && lens[i] > 4 * G + 1)
				continue; /* one byte at a time: small inputs only */
			for (unsigned t = 1; t <= 2; t++) {
				if (stream_matches(data, lens[i], pieces[p], t, want) < 0)
					return;
				runs++;
			}
		}
	}
	CHECK(runs > 500);
}

/* Random piece sizes, zero-length pieces included, on 0..3 threads. */
TEST(stream_random_pieces)
{
	seed_rng();
	size_t max = 7 * MIB + 3 * G + 5;
	_cleanup_free_ uint8_t *data = malloc(max);
	CHECK(data != NULL);
	fill(data, max, 77);
	for (int round = 0; round < 60; round++) {
		size_t len = round < 10 ? (size_t)round * G + (size_t)(rng() % 3) - 1
				       : (size_t)(rng() % (round < 40 ? 6 * G : max));
		if (len > max)
			len = 0;
		uint8_t want[CASFS_B3_LEN];
		casfs_b3(data, len, want);
		if (stream_matches(data, len, 0, (unsigned)(rng() % 4), want) < 0)
			return;
	}
}

/* Edge uses of the stream: no update at all, empty updates, no outboard
 * wanted, release without final. */
TEST(stream_edges)
{
	uint8_t got[CASFS_B3_LEN];
	struct casfs_b3_stream s;
	struct casfs_outboard ob;

	casfs_b3_stream_init(&s, 1);
	memset(&ob, 0xa5, sizeof(ob));
	CHECK_EQ_INT(casfs_b3_stream_final(&s, got, &ob), 0);
	CHECK_EQ_MEM(got, casfs_b3_empty, CASFS_B3_LEN);
	CHECK(ob.n == 0 && ob.size == 0 && ob.cvs == NULL);

	casfs_b3_stream_init(&s, 2);
	CHECK_EQ_INT(casfs_b3_stream_update(&s, "", 0), 0);
	CHECK_EQ_INT(casfs_b3_stream_update(&s, "", 0), 0);
	CHECK_EQ_INT(casfs_b3_stream_final(&s, got, NULL), 0);
	CHECK_EQ_MEM(got, casfs_b3_empty, CASFS_B3_LEN);

	size_t len = 3 * G + 9;
	_cleanup_free_ uint8_t *data = malloc(len);
	CHECK(data != NULL);
	fill(data, len, 5);
	uint8_t want[CASFS_B3_LEN];
	casfs_b3(data, len, want);
	casfs_b3_stream_init(&s, 1);
	CHECK_EQ_INT(casfs_b3_stream_update(&s, data, G), 0);
	CHECK_EQ_INT(casfs_b3_stream_update(&s, data + G, 0), 0);
	CHECK_EQ_INT(casfs_b3_stream_update(&s, data + G, len - G), 0);
	CHECK_EQ_INT(casfs_b3_stream_final(&s, got, NULL), 0); /* the CVs are freed */
	CHECK_EQ_MEM(got, want, CASFS_B3_LEN);

	casfs_b3_stream_init(&s, 1);
	CHECK_EQ_INT(casfs_b3_stream_update(&s, data, len), 0);
	casfs_b3_stream_release(&s); /* no final: nothing leaks */
	casfs_b3_stream_release(&s);

	/* exactly one group: hashed whole, no outboard */
	casfs_b3_stream_init(&s, 1);
	CHECK_EQ_INT(casfs_b3_stream_update(&s, data, G), 0);
	memset(&ob, 0xa5, sizeof(ob));
	CHECK_EQ_INT(casfs_b3_stream_final(&s, got, &ob), 0);
	casfs_b3(data, G, want);
	CHECK_EQ_MEM(got, want, CASFS_B3_LEN);
	CHECK(ob.n == 0 && ob.size == G && ob.cvs == NULL);

	casfs_outboard_release(NULL);
	struct casfs_outboard zero = { 0 };
	casfs_outboard_release(&zero);
	unsigned t = casfs_b3_threads();
	CHECK(t >= 1 && t <= 8);
}

/* The outboard of `len` pattern bytes through the stream; *ret_data owns
 * them, ret_digest is the official digest. */
static int make_outboard(size_t len, uint32_t salt, uint8_t **ret_data, uint8_t ret_digest[32],
			 struct casfs_outboard *ret_ob)
{
	uint8_t *data = malloc(len ? len : 1);
	if (!data)
		return -ENOMEM;
	fill(data, len, salt);
	casfs_b3(data, len, ret_digest);
	struct casfs_b3_stream s;
	casfs_b3_stream_init(&s, 1);
	uint8_t got[CASFS_B3_LEN];
	int r = casfs_b3_stream_update(&s, data, len);
	if (r >= 0)
		r = casfs_b3_stream_final(&s, got, ret_ob);
	casfs_b3_stream_release(&s);
	if (r < 0 || memcmp(got, ret_digest, CASFS_B3_LEN) != 0) {
		free(data);
		return r < 0 ? r : -EBADMSG;
	}
	*ret_data = data;
	return 0;
}

/* decode(p, len, digest, size) must fail with -EBADMSG, a message, and
 * *ret untouched.  Returns 0 if so, else writes one line. */
static int decode_fails(const void *p, size_t len, const uint8_t digest[32], uint64_t size,
			const char *what)
{
	struct casfs_outboard ob;
	memset(&ob, 0xa5, sizeof(ob));
	struct casfs_error err = { 0 };
	int r = casfs_outboard_decode(p, len, digest, size, &ob, &err);
	const uint8_t *b = (const uint8_t *)&ob;
	int untouched = 1;
	for (size_t i = 0; i < sizeof(ob); i++)
		untouched &= b[i] == 0xa5;
	if (r == 0) {
		FAILF("%s: decode accepted it", what);
		casfs_outboard_release(&ob);
		return -1;
	}
	if (r != -EBADMSG || err.code != -EBADMSG || !err.msg[0] ||
	    strncmp(err.msg, "outboard", 8) != 0 || !untouched) {
		FAILF("%s: decode returned %d, message \"%s\", output %s", what, r, err.msg,
		      untouched ? "untouched" : "written");
		return -1;
	}
	return 0;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

TEST(encode_decode_round_trip)
{
	const size_t lens[] = { G + 1, 2 * G - 1, 2 * G, 2 * G + 1, 3 * G + 100, 17 * G, MIB + 1 };
	for (size_t i = 0; i < ARRAY_SIZE(lens); i++) {
		_cleanup_free_ uint8_t *data = NULL;
		uint8_t digest[32];
		struct casfs_outboard ob = { 0 };
		CHECK_EQ_INT(make_outboard(lens[i], (uint32_t)i, &data, digest, &ob), 0);
		CHECK_EQ_INT(ob.n, groups_of(lens[i], 16));
		_cleanup_free_ uint8_t *enc = NULL;
		size_t enc_len = 0;
		CHECK_EQ_INT(casfs_outboard_encode(&ob, &enc, &enc_len), 0);
		CHECK_EQ_INT(enc_len, 24 + 32 * ob.n);
		/* the layout of outboard.h, byte by byte */
		uint8_t head[24] = "casfsob1";
		head[8] = 16;
		put_le64(head + 16, lens[i]);
		CHECK_EQ_MEM(enc, head, 24);
		CHECK_EQ_MEM(enc + 24, ob.cvs, 32 * ob.n);

		struct casfs_outboard back;
		struct casfs_error err = { 0 };
		int r = casfs_outboard_decode(enc, enc_len, digest, lens[i], &back, &err);
		if (r != 0)
			FAILF("length %zu: %s", lens[i], casfs_error_message(&err, r));
		CHECK_EQ_INT(r, 0);
		CHECK(back.size == lens[i] && back.shift == 16 && back.n == ob.n);
		CHECK(casfs_outboard_group_len(&back) == G);
		CHECK(back.cvs != ob.cvs);
		CHECK_EQ_MEM(back.cvs, ob.cvs, 32 * ob.n);
		_cleanup_free_ uint8_t *again = NULL;
		size_t again_len = 0;
		CHECK_EQ_INT(casfs_outboard_encode(&back, &again, &again_len), 0);
		CHECK(again_len == enc_len && memcmp(again, enc, enc_len) == 0);
		casfs_outboard_release(&back);
		CHECK(back.cvs == NULL && back.n == 0);
		casfs_outboard_release(&ob);
	}
}

TEST(decode_rejects_damage)
{
	size_t len = 3 * G + 100;
	_cleanup_free_ uint8_t *data = NULL;
	uint8_t digest[32];
	struct casfs_outboard ob = { 0 };
	CHECK_EQ_INT(make_outboard(len, 9, &data, digest, &ob), 0);
	CHECK_EQ_INT(ob.n, 4);
	_cleanup_free_ uint8_t *enc = NULL;
	size_t n = 0;
	CHECK_EQ_INT(casfs_outboard_encode(&ob, &enc, &n), 0);
	casfs_outboard_release(&ob);
	/* room for an extra CV, and a copy to damage */
	_cleanup_free_ uint8_t *buf = calloc(1, n + 64);
	CHECK(buf != NULL);
	memcpy(buf, enc, n);
	char what[128];

	uint8_t other[32];
	memcpy(other, digest, 32);
	for (int bit = 0; bit < 256; bit += 37) {
		other[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		snprintf(what, sizeof(what), "digest bit %d flipped", bit);
		CHECK(decode_fails(buf, n, other, len, what) == 0);
		other[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	CHECK(decode_fails(buf, n, casfs_b3_empty, len, "the empty digest") == 0);
	CHECK(decode_fails(buf, n, digest, len + 1, "size + 1") == 0);
	CHECK(decode_fails(buf, n, digest, len - 1, "size - 1") == 0);
	CHECK(decode_fails(buf, n, digest, len + G, "size + a group") == 0);
	CHECK(decode_fails(buf, n, digest, 0, "size 0") == 0);
	CHECK(decode_fails(buf, n, digest, UINT64_MAX, "size 2^64-1") == 0);

	const size_t short_lens[] = { 0, 1, 8, 23, 24, 24 + 32, n - 32, n - 31, n - 1 };
	for (size_t i = 0; i < ARRAY_SIZE(short_lens); i++) {
		/* an exact-size copy, so that ASan sees a read past the end */
		_cleanup_free_ uint8_t *cut = malloc(short_lens[i] ? short_lens[i] : 1);
		CHECK(cut != NULL);
		memcpy(cut, buf, short_lens[i]);
		snprintf(what, sizeof(what), "truncated to %zu bytes", short_lens[i]);
		CHECK(decode_fails(cut, short_lens[i], digest, len, what) == 0);
	}
	CHECK(decode_fails(buf, n + 1, digest, len, "an extra byte") == 0);
	CHECK(decode_fails(buf, n + 31, digest, len, "31 extra bytes") == 0);
	CHECK(decode_fails(buf, n + 32, digest, len, "an extra (zero) CV") == 0);
	memcpy(buf + n, buf + n - 32, 32);
	CHECK(decode_fails(buf, n + 32, digest, len, "the last CV twice") == 0);
	memset(buf + n, 0, 64);

	for (int i = 0; i < 8; i++) {
		buf[i] ^= 0x20;
		snprintf(what, sizeof(what), "magic byte %d changed", i);
		CHECK(decode_fails(buf, n, digest, len, what) == 0);
		buf[i] ^= 0x20;
	}
	for (int i = 9; i < 16; i++) {
		for (int bit = 0; bit < 8; bit += 7) {
			buf[i] ^= (uint8_t)(1u << bit);
			snprintf(what, sizeof(what), "reserved byte %d bit %d set", i, bit);
			CHECK(decode_fails(buf, n, digest, len, what) == 0);
			buf[i] ^= (uint8_t)(1u << bit);
		}
	}
	const uint8_t shifts[] = { 0, 1, 9, 15, 17, 18, 19, 20, 64, 255 };
	for (size_t i = 0; i < ARRAY_SIZE(shifts); i++) {
		buf[8] = shifts[i];
		snprintf(what, sizeof(what), "group shift %u", shifts[i]);
		CHECK(decode_fails(buf, n, digest, len, what) == 0);
	}
	buf[8] = 16;
	/* the header's size, changed together with the caller's */
	for (int i = 16; i < 24; i++) {
		buf[i] ^= 0x80;
		uint64_t said = 0;
		for (int j = 7; j >= 0; j--)
			said = said << 8 | buf[16 + j];
		snprintf(what, sizeof(what), "header size byte %d changed", i);
		CHECK(decode_fails(buf, n, digest, len, what) == 0);
		if (groups_of(said, 16) != 4) { /* the same number of groups would pass */
			snprintf(what, sizeof(what), "header size %" PRIu64 ", and the caller's", said);
			CHECK(decode_fails(buf, n, digest, said, what) == 0);
		}
		buf[i] ^= 0x80;
	}
	for (size_t cv = 0; cv < 4; cv++)
		for (int bit = 0; bit < 256; bit++) {
			uint8_t *b = buf + 24 + 32 * cv + bit / 8;
			*b ^= (uint8_t)(1u << (bit % 8));
			snprintf(what, sizeof(what), "CV %zu bit %d flipped", cv, bit);
			int r = decode_fails(buf, n, digest, len, what);
			*b ^= (uint8_t)(1u << (bit % 8));
			CHECK(r == 0);
		}
	/* two CVs swapped */
	uint8_t tmp[32];
	memcpy(tmp, buf + 24, 32);
	memcpy(buf + 24, buf + 56, 32);
	memcpy(buf + 56, tmp, 32);
	CHECK(decode_fails(buf, n, digest, len, "CVs 0 and 1 swapped") == 0);
	memcpy(buf, enc, n);

	/* still good after all that */
	struct casfs_outboard back;
	CHECK_EQ_INT(casfs_outboard_decode(buf, n, digest, len, &back, NULL), 0);
	casfs_outboard_release(&back);
	/* and failures without an error object */
	CHECK_EQ_INT(casfs_outboard_decode(buf, n - 1, digest, len, &back, NULL), -EBADMSG);
}

/* Blobs of one group or less have no outboard: any encoding is refused,
 * whatever digest and CVs it comes with. */
TEST(decode_rejects_small_blobs)
{
	const uint64_t sizes[] = { 0, 1, 1024, G - 1, G };
	char what[128];
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		uint64_t size = sizes[i];
		_cleanup_free_ uint8_t *data = malloc(G);
		CHECK(data != NULL);
		fill(data, G, 3);
		uint8_t digest[32];
		casfs_b3(data, (size_t)size, digest);
		for (unsigned shift = 10; shift <= 18; shift++) {
			if (size > (UINT64_C(1) << shift))
				continue;
			/* one CV, the subtree's, or two made up ones whose root is `digest` */
			uint8_t enc[24 + 64] = "casfsob1";
			enc[8] = (uint8_t)shift;
			put_le64(enc + 16, size);
			if (size)
				casfs_b3_subtree_cv(data, (size_t)size, 0, enc + 24);
			else
				memset(enc + 24, 0x33, 32);
			snprintf(what, sizeof(what), "size %" PRIu64 ", shift %u, one CV", size, shift);
			CHECK(decode_fails(enc, 24 + 32, digest, size, what) == 0);
			snprintf(what, sizeof(what), "size %" PRIu64 ", shift %u, no CV", size, shift);
			CHECK(decode_fails(enc, 24, digest, size, what) == 0);
			memset(enc + 24, 0x11, 64);
			uint8_t root[32];
			casfs_b3_root_from_groups((const uint8_t (*)[32])(enc + 24), 2, root);
			snprintf(what, sizeof(what), "size %" PRIu64 ", shift %u, two CVs", size, shift);
			CHECK(decode_fails(enc, 24 + 64, root, size, what) == 0);
		}
	}
	/* and past the largest blob */
	uint8_t enc[24 + 64] = "casfsob1";
	enc[8] = 18;
	put_le64(enc + 16, CASFS_OUTBOARD_MAX_SIZE + 1);
	memset(enc + 24, 0x22, 64);
	uint8_t root[32];
	casfs_b3_root_from_groups((const uint8_t (*)[32])(enc + 24), 2, root);
	CHECK(decode_fails(enc, sizeof(enc), root, CASFS_OUTBOARD_MAX_SIZE + 1, "size 2^42 + 1") == 0);
	put_le64(enc + 16, UINT64_MAX);
	CHECK(decode_fails(enc, sizeof(enc), root, UINT64_MAX, "size 2^64 - 1") == 0);
	/* (size + group - 1) / group wraps to 0 groups: a bare header */
	for (unsigned shift = 10; shift <= 18; shift++) {
		enc[8] = (uint8_t)shift;
		for (uint64_t d = 0; d < 3; d++) {
			put_le64(enc + 16, UINT64_MAX - d);
			CHECK(decode_fails(enc, 24, root, UINT64_MAX - d, "size near 2^64, no CV") == 0);
		}
	}
	/* shifts out of range in an otherwise consistent outboard: 4 CVs
	 * whose root is the digest, the size 3 groups and 5 bytes */
	const unsigned bad_shifts[] = { 0, 1, 5, 9, 19, 20, 30 };
	uint8_t four[24 + 4 * 32] = "casfsob1";
	for (int i = 0; i < 4 * 32; i++)
		four[24 + i] = (uint8_t)(i * 7 + 1);
	casfs_b3_root_from_groups((const uint8_t (*)[32])(four + 24), 4, root);
	for (size_t i = 0; i < ARRAY_SIZE(bad_shifts); i++) {
		uint64_t size = (UINT64_C(3) << bad_shifts[i]) + 5;
		if (bad_shifts[i] < 2)
			size = (UINT64_C(3) << bad_shifts[i]) + 1; /* still 4 groups */
		four[8] = (uint8_t)bad_shifts[i];
		put_le64(four + 16, size);
		snprintf(what, sizeof(what), "shift %u, size %" PRIu64 ", 4 CVs", bad_shifts[i], size);
		CHECK(decode_fails(four, sizeof(four), root, size, what) == 0);
	}
	/* the same with shift 16 is accepted: the CVs are all decode sees */
	four[8] = 16;
	put_le64(four + 16, 3 * G + 5);
	struct casfs_outboard four_ob;
	CHECK_EQ_INT(casfs_outboard_decode(four, sizeof(four), root, 3 * G + 5, &four_ob, NULL), 0);
	CHECK(four_ob.n == 4);
	casfs_outboard_release(&four_ob);
	/* the smallest blob with one: two groups, the second of one byte */
	for (unsigned shift = 10; shift <= 18; shift++) {
		uint64_t size = (UINT64_C(1) << shift) + 1;
		_cleanup_free_ uint8_t *data = malloc((size_t)size);
		CHECK(data != NULL);
		fill(data, (size_t)size, shift);
		uint8_t want[32], got[32];
		casfs_b3(data, (size_t)size, want);
		enc[8] = (uint8_t)shift;
		put_le64(enc + 16, size);
		casfs_b3_group_cvs(data, size, shift, 0, 1, (uint8_t (*)[32])(enc + 24));
		casfs_b3_root_from_groups((const uint8_t (*)[32])(enc + 24), 2, got);
		CHECK_EQ_MEM(got, want, 32);
		struct casfs_outboard ob;
		CHECK_EQ_INT(casfs_outboard_decode(enc, sizeof(enc), want, size, &ob, NULL), 0);
		CHECK(ob.n == 2 && ob.shift == shift && ob.size == size);
		size_t bad = SIZE_MAX;
		CHECK_EQ_INT(casfs_outboard_check(&ob, 0, 2, data, 1, &bad), 0);
		CHECK_EQ_INT(casfs_outboard_check(&ob, 1, 1, data + size - 1, 1, &bad), 0);
		data[size - 1] ^= 1;
		CHECK_EQ_INT(casfs_outboard_check(&ob, 1, 1, data + size - 1, 1, &bad), -EBADMSG);
		CHECK_EQ_INT(bad, 1);
		casfs_outboard_release(&ob);
	}
}

/* For data[0, len) under `ob`: every subrange checks, on 1 and 2
 * threads; with byte `flip` flipped (SIZE_MAX: none), exactly the ranges
 * holding its group fail, naming it. */
static int check_ranges(const struct casfs_outboard *ob, uint8_t *data, size_t flip,
			unsigned max_threads)
{
	size_t group = (size_t)casfs_outboard_group_len(ob);
	size_t bad_group = flip == SIZE_MAX ? SIZE_MAX : flip / group;
	if (flip != SIZE_MAX)
		data[flip] ^= 0x40;
	int ret = 0;
	for (size_t first = 0; first < ob->n && ret == 0; first++)
		for (size_t count = 0; first + count <= ob->n && ret == 0; count++)
			for (unsigned t = 1; t <= max_threads; t++) {
				size_t got = SIZE_MAX - 1;
				int r = casfs_outboard_check(ob, first, count, data + first * group, t, &got);
				int want_bad = bad_group >= first && bad_group < first + count;
				if (want_bad ? r != -EBADMSG || got != bad_group : r != 0 || got != SIZE_MAX - 1) {
					FAILF("byte %zu flipped, groups [%zu, +%zu), %u threads: returned %d, "
					      "bad group %zu, expected %zu",
					      flip, first, count, t, r, got, want_bad ? bad_group : SIZE_MAX - 1);
					ret = -1;
					break;
				}
			}
	if (flip != SIZE_MAX)
		data[flip] ^= 0x40;
	return ret;
}

TEST(check_finds_the_flipped_group)
{
	size_t len = 5 * G + 100;
	_cleanup_free_ uint8_t *data = NULL;
	uint8_t digest[32];
	struct casfs_outboard ob = { 0 };
	CHECK_EQ_INT(make_outboard(len, 11, &data, digest, &ob), 0);
	CHECK_EQ_INT(ob.n, 6);
	CHECK(check_ranges(&ob, data, SIZE_MAX, 2) == 0);
	size_t flips[32], n = 0;
	flips[n++] = 0;
	for (size_t g = 1; g <= 5; g++) {
		flips[n++] = g * G;     /* first byte of group g */
		flips[n++] = g * G - 1; /* last byte of group g - 1 */
		flips[n++] = g * G + (g < 5 ? 1234 : 50); /* inside it */
	}
	flips[n++] = len - 1;
	for (size_t i = 0; i < n; i++)
		if (check_ranges(&ob, data, flips[i], 2) < 0) {
			casfs_outboard_release(&ob);
			return;
		}
	/* two bad groups: the first is named */
	data[G + 5] ^= 1;
	data[4 * G + 5] ^= 1;
	size_t bad = SIZE_MAX;
	int r = casfs_outboard_check(&ob, 0, 6, data, 2, &bad);
	int r2 = r == -EBADMSG && bad == 1 ? casfs_outboard_check(&ob, 2, 4, data + 2 * G, 2, &bad) : 0;
	casfs_outboard_release(&ob);
	CHECK_EQ_INT(r, -EBADMSG);
	CHECK_EQ_INT(r2, -EBADMSG);
	CHECK_EQ_INT(bad, 4);
}

/* Enough groups that checking really splits among threads (1 MiB each). */
TEST(check_on_threads)
{
	size_t len = 70 * G + 100;
	_cleanup_free_ uint8_t *data = NULL;
	uint8_t digest[32];
	struct casfs_outboard ob = { 0 };
	CHECK_EQ_INT(make_outboard(len, 13, &data, digest, &ob), 0);
	CHECK_EQ_INT(ob.n, 71);
	const size_t flips[] = { SIZE_MAX, 0, 16 * G - 1, 16 * G, 35 * G + 17, 36 * G - 1, 53 * G,
				 70 * G - 1, 70 * G, len - 1 };
	int bad = 0;
	for (size_t f = 0; f < ARRAY_SIZE(flips) && !bad; f++) {
		size_t want = flips[f] == SIZE_MAX ? SIZE_MAX : flips[f] / G;
		if (flips[f] != SIZE_MAX)
			data[flips[f]] ^= 0x80;
		/* the whole blob, and ranges that start and end inside */
		const size_t ranges[][2] = { { 0, 71 }, { 1, 70 }, { 0, 70 }, { 16, 40 }, { 35, 36 } };
		for (size_t i = 0; i < ARRAY_SIZE(ranges) && !bad; i++)
			for (unsigned t = 0; t <= 5 && !bad; t++) {
				size_t first = ranges[i][0], count = ranges[i][1], got = SIZE_MAX;
				int r = casfs_outboard_check(&ob, first, count, data + first * G, t, &got);
				int in = want != SIZE_MAX && want >= first && want < first + count;
				if (in ? r != -EBADMSG || got != want : r != 0) {
					FAILF("byte %zu flipped, groups [%zu, +%zu), %u threads: %d, group %zu",
					      flips[f], first, count, t, r, got);
					bad = 1;
				}
			}
		if (flips[f] != SIZE_MAX)
			data[flips[f]] ^= 0x80;
	}
	casfs_outboard_release(&ob);
	CHECK(!bad);
}

/* Outboards of other group lengths, made by hand from b3tree.h: decode
 * takes any shift in range, and checks by it. */
TEST(other_group_shifts)
{
	const unsigned shifts[] = { 10, 11, 12, 15, 17, 18 };
	for (size_t i = 0; i < ARRAY_SIZE(shifts); i++) {
		unsigned shift = shifts[i];
		size_t group = (size_t)1 << shift;
		size_t len = shift == 18 ? 5 * group + 333 : 37 * group + 5;
		size_t n = (len + group - 1) / group;
		_cleanup_free_ uint8_t *data = malloc(len);
		_cleanup_free_ uint8_t *enc = malloc(24 + 32 * n);
		CHECK(data && enc);
		fill(data, len, shift);
		uint8_t want[32], got[32];
		casfs_b3(data, len, want);
		memset(enc, 0, 24);
		memcpy(enc, "casfsob1", 8);
		enc[8] = (uint8_t)shift;
		put_le64(enc + 16, len);
		uint8_t (*cvs)[32] = (uint8_t (*)[32])(enc + 24);
		casfs_b3_group_cvs(data, len, shift, 0, 2, cvs);
		casfs_b3_root_from_groups((const uint8_t (*)[32])cvs, n, got);
		CHECK_EQ_MEM(got, want, 32);

		struct casfs_outboard ob;
		struct casfs_error err = { 0 };
		int r = casfs_outboard_decode(enc, 24 + 32 * n, want, len, &ob, &err);
		if (r != 0)
			FAILF("shift %u: %s", shift, casfs_error_message(&err, r));
		CHECK_EQ_INT(r, 0);
		CHECK(ob.shift == shift && ob.n == n && ob.size == len);
		CHECK(casfs_outboard_group_len(&ob) == group);
		_cleanup_free_ uint8_t *again = NULL;
		size_t again_len = 0;
		int re = casfs_outboard_encode(&ob, &again, &again_len);
		int same = re == 0 && again_len == 24 + 32 * n && memcmp(again, enc, again_len) == 0;
		const size_t flips[] = { SIZE_MAX, 0, group - 1, group, 3 * group + 7, len - 1 };
		int bad = 0;
		for (size_t f = 0; f < ARRAY_SIZE(flips) && !bad; f++) {
			if (shift <= 12) { /* every subrange: cheap at small groups */
				bad = check_ranges(&ob, data, flips[f], 2) < 0;
				continue;
			}
			size_t want_bad = flips[f] == SIZE_MAX ? SIZE_MAX : flips[f] / group, got_bad = SIZE_MAX;
			if (flips[f] != SIZE_MAX)
				data[flips[f]] ^= 4;
			for (size_t first = 0; first < n && !bad; first++) {
				r = casfs_outboard_check(&ob, first, n - first, data + first * group, 2, &got_bad);
				int in = want_bad != SIZE_MAX && want_bad >= first;
				if (in ? r != -EBADMSG || got_bad != want_bad : r != 0) {
					FAILF("shift %u, byte %zu flipped, groups [%zu, %zu): %d, group %zu", shift,
					      flips[f], first, n, r, got_bad);
					bad = 1;
				}
			}
			if (flips[f] != SIZE_MAX)
				data[flips[f]] ^= 4;
		}
		casfs_outboard_release(&ob);
		CHECK(same);
		CHECK(!bad);
		/* an outboard of another shift, for the same blob, is refused */
		CHECK(decode_fails(enc, 24 + 32 * n, want, len + 1, "size + 1") == 0);
		enc[8] = (uint8_t)(shift == 18 ? 17 : shift + 1);
		CHECK(decode_fails(enc, 24 + 32 * n, want, len, "the shift one off") == 0);
	}
}

/* Past 4 GiB: a pattern buffer fed again and again (pieces that are not
 * a multiple of the group, big enough for two threads), against the
 * official hasher fed the same pieces. */
TEST(past_4_gib)
{
	const char *san = getenv("CASFS_SANITIZED");
	if (san && *san) {
		printf("SKIP test-outboard:past_4_gib: too slow under %s\n", san);
		return;
	}
	uint64_t total = (UINT64_C(4) << 30) + KIB + 5;
	size_t plen = 3 * MIB + 1029;
	_cleanup_free_ uint8_t *pat = malloc(plen);
	CHECK(pat != NULL);
	fill(pat, plen, 99);
	struct casfs_b3_hasher official;
	casfs_b3_init(&official);
	struct casfs_b3_stream s;
	casfs_b3_stream_init(&s, 2);
	for (uint64_t off = 0; off < total;) {
		size_t k = total - off < plen ? (size_t)(total - off) : plen;
		casfs_b3_update(&official, pat, k);
		CHECK_EQ_INT(casfs_b3_stream_update(&s, pat, k), 0);
		off += k;
	}
	uint8_t want[32], got[32];
	casfs_b3_final(&official, want);
	struct casfs_outboard ob = { 0 };
	CHECK_EQ_INT(casfs_b3_stream_final(&s, got, &ob), 0);
	CHECK_EQ_MEM(got, want, 32);
	CHECK(ob.size == total);
	CHECK_EQ_INT(ob.n, 65537);
	_cleanup_free_ uint8_t *enc = NULL;
	size_t enc_len = 0;
	CHECK_EQ_INT(casfs_outboard_encode(&ob, &enc, &enc_len), 0);
	struct casfs_outboard back;
	struct casfs_error err = { 0 };
	int r = casfs_outboard_decode(enc, enc_len, want, total, &back, &err);
	if (r != 0)
		FAILF("%s", casfs_error_message(&err, r));
	CHECK_EQ_INT(r, 0);
	/* groups rebuilt from the pattern, checked alone and in pairs */
	_cleanup_free_ uint8_t *buf = malloc(2 * G);
	CHECK(buf != NULL);
	const size_t at[] = { 0, 1, 47, 32767, 32768, 65535, 65536 };
	int bad = 0;
	for (size_t i = 0; i < ARRAY_SIZE(at) && !bad; i++) {
		uint64_t start = (uint64_t)at[i] * G;
		size_t count = at[i] + 2 <= back.n ? 2 : 1;
		uint64_t end = start + (uint64_t)count * G < total ? start + (uint64_t)count * G : total;
		for (uint64_t x = start; x < end; x++)
			buf[x - start] = pat[x % plen];
		size_t g = SIZE_MAX;
		r = casfs_outboard_check(&back, at[i], count, buf, 1, &g);
		if (r != 0) {
			FAILF("group %zu (+%zu): %d, bad %zu", at[i], count, r, g);
			bad = 1;
		}
		buf[end - start - 1] ^= 1;
		r = casfs_outboard_check(&back, at[i], count, buf, 1, &g);
		if (r != -EBADMSG || g != at[i] + count - 1) {
			FAILF("group %zu (+%zu), last byte flipped: %d, bad %zu", at[i], count, r, g);
			bad = 1;
		}
	}
	casfs_outboard_release(&back);
	casfs_outboard_release(&ob);
	CHECK(!bad);
}
