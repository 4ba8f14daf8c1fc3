/* BLAKE3's tree from its compression function (see b3tree.h).  Chunks and
 * parents go through blake3_hash_many, which hashes as many of them at
 * once as the CPU's SIMD width allows; only a final partial chunk is
 * compressed block by block. */
#include "b3tree.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "blake3_impl.h"

#define CHUNK_BLOCKS (CASFS_B3_CHUNK_LEN / BLAKE3_BLOCK_LEN)
#define MAX_CHUNKS (CASFS_B3_MAX_SUBTREE / CASFS_B3_CHUNK_LEN)

static void cv_bytes(uint32_t words[8], uint8_t out[CASFS_B3_LEN])
{
	store_cv_words(out, words);
}

/* A chunk shorter than CASFS_B3_CHUNK_LEN (at least one byte, or empty). */
static void partial_chunk_cv(const uint8_t *p, size_t len, uint64_t counter, uint8_t flags,
			     uint8_t out[CASFS_B3_LEN])
{
	uint32_t cv[8];
	memcpy(cv, IV, sizeof(cv));
	size_t off = 0;
	uint8_t start = CHUNK_START;
	do {
		uint8_t block[BLAKE3_BLOCK_LEN] = { 0 };
		size_t n = len - off < BLAKE3_BLOCK_LEN ? len - off : BLAKE3_BLOCK_LEN;
		memcpy(block, p + off, n);
		off += n;
		uint8_t last = off == len ? CHUNK_END | flags : 0;
		blake3_compress_in_place(cv, block, (uint8_t)n, counter, start | last);
		start = 0;
	} while (off < len);
	cv_bytes(cv, out);
}

/* Join n >= 1 CVs (consecutive subtrees, all of one power-of-two size but
 * maybe the last) into the CV of the subtree they make; `tmp` holds n CVs.
 * Full levels go through hash_many; the tree rule (left = the largest
 * power of two below n) decides where an uneven level splits. */
static void join(uint8_t (*cvs)[CASFS_B3_LEN], size_t n, uint8_t (*tmp)[CASFS_B3_LEN],
		 uint8_t out[CASFS_B3_LEN])
{
	if (n == 1) {
		memcpy(out, cvs[0], CASFS_B3_LEN);
		return;
	}
	if ((n & (n - 1)) != 0) {
		size_t left = (size_t)round_down_to_power_of_2(n - 1);
		uint8_t pair[2][CASFS_B3_LEN];
		join(cvs, left, tmp, pair[0]);
		join(cvs + left, n - left, tmp, pair[1]);
		casfs_b3_parent_cv(pair[0], pair[1], out);
		return;
	}
	uint8_t (*from)[CASFS_B3_LEN] = cvs, (*to)[CASFS_B3_LEN] = tmp;
	const uint8_t *inputs[MAX_CHUNKS / 2];
	while (n > 1) {
		/* a power of two: every level pairs up evenly */
		for (size_t i = 0; i < n / 2; i++)
			inputs[i] = from[2 * i];
		blake3_hash_many(inputs, n / 2, 1, IV, 0, false, PARENT, 0, 0, (uint8_t *)to);
		n /= 2;
		uint8_t (*t)[CASFS_B3_LEN] = from;
		from = to;
		to = t;
	}
	memcpy(out, from[0], CASFS_B3_LEN);
}

void casfs_b3_parent_cv(const uint8_t left[CASFS_B3_LEN], const uint8_t right[CASFS_B3_LEN],
			uint8_t ret_cv[CASFS_B3_LEN])
{
	casfs_b3_cpu_once();
	uint8_t block[BLAKE3_BLOCK_LEN];
	memcpy(block, left, CASFS_B3_LEN);
	memcpy(block + CASFS_B3_LEN, right, CASFS_B3_LEN);
	uint32_t cv[8];
	memcpy(cv, IV, sizeof(cv));
	blake3_compress_in_place(cv, block, BLAKE3_BLOCK_LEN, 0, PARENT);
	cv_bytes(cv, ret_cv);
}

void casfs_b3_subtree_cv(const void *data, size_t len, uint64_t chunk_index,
			 uint8_t ret_cv[CASFS_B3_LEN])
{
	casfs_b3_cpu_once();
	const uint8_t *p = data;
	size_t full = len / CASFS_B3_CHUNK_LEN, rest = len % CASFS_B3_CHUNK_LEN;
	if (full == 0) {
		partial_chunk_cv(p, rest, chunk_index, 0, ret_cv);
		return;
	}
	uint8_t cvs[MAX_CHUNKS][CASFS_B3_LEN], tmp[MAX_CHUNKS][CASFS_B3_LEN];
	const uint8_t *inputs[MAX_CHUNKS];
	for (size_t i = 0; i < full; i++)
		inputs[i] = p + i * CASFS_B3_CHUNK_LEN;
	blake3_hash_many(inputs, full, CHUNK_BLOCKS, IV, chunk_index, true, 0, CHUNK_START,
			 CHUNK_END, (uint8_t *)cvs);
	size_t n = full;
	if (rest)
		partial_chunk_cv(p + full * CASFS_B3_CHUNK_LEN, rest, chunk_index + full, 0, cvs[n++]);
	join(cvs, n, tmp, ret_cv);
}

/* The CV (or, with ROOT, the digest) over groups [0, n). */
static void groups_node(const uint8_t (*cvs)[CASFS_B3_LEN], size_t n, uint8_t flags,
			uint8_t out[CASFS_B3_LEN])
{
	size_t left = (size_t)round_down_to_power_of_2(n - 1);
	uint8_t block[BLAKE3_BLOCK_LEN];
	if (left == 1)
		memcpy(block, cvs[0], CASFS_B3_LEN);
	else
		groups_node(cvs, left, 0, block);
	if (n - left == 1)
		memcpy(block + CASFS_B3_LEN, cvs[left], CASFS_B3_LEN);
	else
		groups_node(cvs + left, n - left, 0, block + CASFS_B3_LEN);
	uint32_t cv[8];
	memcpy(cv, IV, sizeof(cv));
	blake3_compress_in_place(cv, block, BLAKE3_BLOCK_LEN, 0, PARENT | flags);
	cv_bytes(cv, out);
}

void casfs_b3_root_from_groups(const uint8_t (*cvs)[CASFS_B3_LEN], size_t n,
			       uint8_t ret_digest[CASFS_B3_LEN])
{
	casfs_b3_cpu_once();
	groups_node(cvs, n, ROOT, ret_digest);
}

struct hash_job {
	const uint8_t *data;
	uint64_t len;
	unsigned shift;
	uint64_t offset; /* of data[0] in the input */
	uint8_t (*cvs)[CASFS_B3_LEN];
	size_t first, end; /* groups [first, end) */
};

static void *hash_groups(void *userdata)
{
	struct hash_job *j = userdata;
	uint64_t group = UINT64_C(1) << j->shift;
	for (size_t i = j->first; i < j->end; i++) {
		uint64_t off = (uint64_t)i * group;
		size_t n = j->len - off < group ? (size_t)(j->len - off) : (size_t)group;
		casfs_b3_subtree_cv(j->data + off, n, (j->offset + off) / CASFS_B3_CHUNK_LEN, j->cvs[i]);
	}
	return NULL;
}

#define MAX_HASH_THREADS 64
/* Below this much work per extra thread, starting one costs more than it
 * saves. */
#define MIN_BYTES_PER_THREAD (1u << 20)

void casfs_b3_group_cvs(const void *data, uint64_t len, unsigned shift, uint64_t offset,
			unsigned threads, uint8_t (*ret_cvs)[CASFS_B3_LEN])
{
	uint64_t group = UINT64_C(1) << shift;
	size_t n = (size_t)((len + group - 1) / group);
	if (threads > len / MIN_BYTES_PER_THREAD)
		threads = (unsigned)(len / MIN_BYTES_PER_THREAD);
	if (threads > n)
		threads = (unsigned)n;
	if (threads > MAX_HASH_THREADS)
		threads = MAX_HASH_THREADS;
	if (threads < 1)
		threads = 1;
	struct hash_job jobs[MAX_HASH_THREADS];
	pthread_t tids[MAX_HASH_THREADS];
	bool started[MAX_HASH_THREADS] = { false };
	for (unsigned t = 0; t < threads; t++)
		jobs[t] = (struct hash_job){ .data = data, .len = len, .shift = shift,
					     .offset = offset, .cvs = ret_cvs,
					     .first = n * t / threads, .end = n * (t + 1) / threads };
	/* jobs 1.. on threads of their own; one that cannot start runs here */
	for (unsigned t = 1; t < threads; t++)
		started[t] = pthread_create(&tids[t], NULL, hash_groups, &jobs[t]) == 0;
	hash_groups(&jobs[0]);
	for (unsigned t = 1; t < threads; t++) {
		if (started[t])
			pthread_join(tids[t], NULL);
		else
			hash_groups(&jobs[t]);
	}
}

#define MAX_SUBTREE_SHIFT 18
_Static_assert(CASFS_B3_MAX_SUBTREE == 1u << MAX_SUBTREE_SHIFT, "shift of the largest subtree");

int casfs_b3_hash_threads(const void *data, uint64_t len, unsigned threads,
			  uint8_t ret_digest[CASFS_B3_LEN])
{
	if (len <= CASFS_B3_MAX_SUBTREE || threads <= 1) {
		casfs_b3(data, (size_t)len, ret_digest);
		return 0;
	}
	size_t n = (size_t)((len + CASFS_B3_MAX_SUBTREE - 1) / CASFS_B3_MAX_SUBTREE);
	uint8_t (*cvs)[CASFS_B3_LEN] = malloc(n * CASFS_B3_LEN);
	if (!cvs)
		return -ENOMEM;
	casfs_b3_group_cvs(data, len, MAX_SUBTREE_SHIFT, 0, threads, cvs);
	casfs_b3_root_from_groups((const uint8_t (*)[CASFS_B3_LEN])cvs, n, ret_digest);
	free(cvs);
	return 0;
}
