/* Outboards and the stream hasher that makes them (see outboard.h). */
#include "outboard.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "b3tree.h"

#define MIN_SHIFT 10 /* one chunk */
#define MAX_SHIFT 18 /* CASFS_B3_MAX_SUBTREE */

void casfs_outboard_release(struct casfs_outboard *ob)
{
	if (!ob)
		return;
	free(ob->cvs);
	*ob = (struct casfs_outboard){ 0 };
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

int casfs_outboard_encode(const struct casfs_outboard *ob, uint8_t **ret, size_t *ret_len)
{
	size_t len = CASFS_OUTBOARD_HEADER_LEN + ob->n * CASFS_B3_LEN;
	uint8_t *p = calloc(1, len);
	if (!p)
		return -ENOMEM;
	memcpy(p, CASFS_OUTBOARD_MAGIC, 8);
	p[8] = (uint8_t)ob->shift;
	put_le64(p + 16, ob->size);
	memcpy(p + CASFS_OUTBOARD_HEADER_LEN, ob->cvs, ob->n * CASFS_B3_LEN);
	*ret = p;
	*ret_len = len;
	return 0;
}

int casfs_outboard_decode(const void *data, size_t len, const uint8_t digest[CASFS_B3_LEN],
			  uint64_t size, struct casfs_outboard *ret, struct casfs_error *err)
{
	const uint8_t *p = data;
	static const uint8_t zero[7];
	if (len < CASFS_OUTBOARD_HEADER_LEN || memcmp(p, CASFS_OUTBOARD_MAGIC, 8) != 0)
		return casfs_error_set(err, -EBADMSG, "outboard: no \"%s\" header", CASFS_OUTBOARD_MAGIC);
	unsigned shift = p[8];
	if (shift < MIN_SHIFT || shift > MAX_SHIFT || memcmp(p + 9, zero, sizeof(zero)) != 0)
		return casfs_error_set(err, -EBADMSG, "outboard: bad group length field (shift %u)", shift);
	uint64_t have = get_le64(p + 16);
	if (have != size)
		return casfs_error_set(err, -EBADMSG, "outboard: for %llu bytes, but the blob has %llu",
				       (unsigned long long)have, (unsigned long long)size);
	uint64_t group = UINT64_C(1) << shift;
	if (size <= group || size > CASFS_OUTBOARD_MAX_SIZE)
		return casfs_error_set(err, -EBADMSG, "outboard: a blob of %llu bytes has none with %llu-byte groups",
				       (unsigned long long)size, (unsigned long long)group);
	uint64_t n = (size + group - 1) / group;
	if ((len - CASFS_OUTBOARD_HEADER_LEN) % CASFS_B3_LEN != 0 ||
	    (len - CASFS_OUTBOARD_HEADER_LEN) / CASFS_B3_LEN != n)
		return casfs_error_set(err, -EBADMSG, "outboard: %zu bytes, expected %llu", len,
				       (unsigned long long)(CASFS_OUTBOARD_HEADER_LEN + n * CASFS_B3_LEN));
	const uint8_t (*cvs)[CASFS_B3_LEN] = (const void *)(p + CASFS_OUTBOARD_HEADER_LEN);
	uint8_t root[CASFS_B3_LEN];
	casfs_b3_root_from_groups(cvs, (size_t)n, root);
	if (memcmp(root, digest, CASFS_B3_LEN) != 0)
		return casfs_error_set(err, -EBADMSG, "outboard: its group hashes do not hash to the digest");
	struct casfs_outboard ob = { .size = size, .shift = shift, .n = (size_t)n };
	ob.cvs = malloc((size_t)n * CASFS_B3_LEN);
	if (!ob.cvs)
		return -ENOMEM;
	memcpy(ob.cvs, cvs, (size_t)n * CASFS_B3_LEN);
	*ret = ob;
	return 0;
}

int casfs_outboard_check(const struct casfs_outboard *ob, size_t first, size_t count,
			 const void *data, unsigned threads, size_t *ret_bad)
{
	if (count == 0)
		return 0;
	if (first >= ob->n || count > ob->n - first)
		return -EINVAL;
	uint64_t group = casfs_outboard_group_len(ob);
	uint64_t off = (uint64_t)first * group;
	uint64_t end = (uint64_t)(first + count) * group;
	if (end > ob->size)
		end = ob->size;
	uint8_t one[1][CASFS_B3_LEN];
	uint8_t (*cvs)[CASFS_B3_LEN] = count == 1 ? one : malloc(count * CASFS_B3_LEN);
	if (!cvs)
		return -ENOMEM;
	casfs_b3_group_cvs(data, end - off, ob->shift, off, threads, cvs);
	int r = 0;
	for (size_t i = 0; i < count; i++)
		if (memcmp(cvs[i], ob->cvs[first + i], CASFS_B3_LEN) != 0) {
			*ret_bad = first + i;
			r = -EBADMSG;
			break;
		}
	if (cvs != one)
		free(cvs);
	return r;
}

/* The stream: groups are CASFS_OUTBOARD_GROUP_LEN bytes.  A full group
 * is hashed (as a non-root subtree) only once a byte after it is known to
 * exist: a stream of exactly one group is hashed whole at the end. */

void casfs_b3_stream_init(struct casfs_b3_stream *s, unsigned threads)
{
	*s = (struct casfs_b3_stream){ .threads = threads };
}

static int reserve(struct casfs_b3_stream *s, size_t more)
{
	if (s->n + more <= s->cap)
		return 0;
	size_t cap = s->cap ? s->cap : 64;
	while (cap < s->n + more)
		cap *= 2;
	void *p = realloc(s->cvs, cap * CASFS_B3_LEN);
	if (!p)
		return s->error = -ENOMEM;
	s->cvs = p;
	s->cap = cap;
	return 0;
}

/* The buffer of a partial group, made on first need. */
static int need_pending(struct casfs_b3_stream *s)
{
	if (!s->pending && !(s->pending = malloc(CASFS_OUTBOARD_GROUP_LEN)))
		return s->error = -ENOMEM;
	return 0;
}

/* Hash `count` full groups at `p` (the stream continues after them). */
static int hash_full(struct casfs_b3_stream *s, const uint8_t *p, size_t count)
{
	if (reserve(s, count) < 0)
		return s->error;
	uint64_t offset = (uint64_t)s->n * CASFS_OUTBOARD_GROUP_LEN;
	casfs_b3_group_cvs(p, (uint64_t)count * CASFS_OUTBOARD_GROUP_LEN, CASFS_OUTBOARD_GROUP_SHIFT,
			   offset, s->threads, s->cvs + s->n);
	s->n += count;
	return 0;
}

int casfs_b3_stream_update(struct casfs_b3_stream *s, const void *data, size_t n)
{
	const uint8_t *p = data;
	if (s->error < 0)
		return s->error;
	s->total += n;
	/* top up a partial group first */
	if (s->pending_len > 0 || n <= CASFS_OUTBOARD_GROUP_LEN) {
		if (need_pending(s) < 0)
			return s->error;
		for (;;) {
			size_t take = CASFS_OUTBOARD_GROUP_LEN - s->pending_len;
			if (take > n)
				take = n;
			memcpy(s->pending + s->pending_len, p, take);
			s->pending_len += take;
			p += take, n -= take;
			if (n == 0)
				return 0; /* a full pending group waits for a byte after it */
			if (hash_full(s, s->pending, 1) < 0)
				return s->error;
			s->pending_len = 0;
			if (n > CASFS_OUTBOARD_GROUP_LEN)
				break;
		}
	}
	/* full groups with bytes after them, straight from the caller's buffer */
	size_t count = (n - 1) / CASFS_OUTBOARD_GROUP_LEN;
	if (count > 0 && hash_full(s, p, count) < 0)
		return s->error;
	p += count * CASFS_OUTBOARD_GROUP_LEN;
	n -= count * CASFS_OUTBOARD_GROUP_LEN;
	if (need_pending(s) < 0)
		return s->error;
	memcpy(s->pending, p, n);
	s->pending_len = n;
	return 0;
}

int casfs_b3_stream_final(struct casfs_b3_stream *s, uint8_t ret_digest[CASFS_B3_LEN],
			  struct casfs_outboard *ret_ob)
{
	int r = s->error;
	if (r >= 0 && s->n == 0) {
		casfs_b3(s->pending, s->pending_len, ret_digest);
		if (ret_ob)
			*ret_ob = (struct casfs_outboard){ .size = s->total };
	} else if (r >= 0 && (r = reserve(s, 1)) >= 0) {
		casfs_b3_subtree_cv(s->pending, s->pending_len,
				    (uint64_t)s->n * (CASFS_OUTBOARD_GROUP_LEN / CASFS_B3_CHUNK_LEN),
				    s->cvs[s->n]);
		s->n++;
		casfs_b3_root_from_groups((const uint8_t (*)[CASFS_B3_LEN])s->cvs, s->n, ret_digest);
		if (ret_ob) {
			*ret_ob = (struct casfs_outboard){ .size = s->total,
							   .shift = CASFS_OUTBOARD_GROUP_SHIFT,
							   .n = s->n, .cvs = s->cvs };
			s->cvs = NULL;
		}
	}
	casfs_b3_stream_release(s);
	return r;
}

void casfs_b3_stream_release(struct casfs_b3_stream *s)
{
	free(s->pending);
	free(s->cvs);
	s->pending = NULL;
	s->cvs = NULL;
	s->pending_len = s->n = s->cap = 0;
}

unsigned casfs_b3_threads(void)
{
	/* Asked once per blob written: sysconf reads /sys each time. */
	static unsigned cached;
	unsigned n = __atomic_load_n(&cached, __ATOMIC_RELAXED);
	if (!n) {
		long online = sysconf(_SC_NPROCESSORS_ONLN);
		n = online < 1 ? 1 : online > 8 ? 8 : (unsigned)online;
		__atomic_store_n(&cached, n, __ATOMIC_RELAXED);
	}
	return n;
}
