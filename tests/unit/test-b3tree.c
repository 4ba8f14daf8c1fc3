/* src/digest/b3tree.c: BLAKE3's tree from the compression function.
 *
 * Oracle: the official hasher (blake3_hasher, the one b3sum uses): for every
 * length around the tree's boundaries (empty input, one byte, 1023/1024/1025
 * bytes, 2^k chunks +- 1 byte, group boundaries, past 4 GiB) and several
 * group sizes, the digest joined from the group CVs must equal the
 * official digest of the same bytes. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "digest/b3tree.h"
#include "digest/digest.h"
#include "test.h"

/* Digest of data[0, len) through groups of `group` bytes (len > group). */
static void digest_by_groups(const uint8_t *data, uint64_t len, size_t group, uint8_t out[32])
{
	size_t n = (size_t)((len + group - 1) / group);
	uint8_t (*cvs)[CASFS_B3_LEN] = malloc(n * CASFS_B3_LEN);
	for (size_t i = 0; i < n; i++) {
		uint64_t off = (uint64_t)i * group;
		size_t k = len - off < group ? (size_t)(len - off) : group;
		casfs_b3_subtree_cv(data + off, k, off / CASFS_B3_CHUNK_LEN, cvs[i]);
	}
	casfs_b3_root_from_groups((const uint8_t (*)[CASFS_B3_LEN])cvs, n, out);
	free(cvs);
}

static const size_t groups[] = { 1 * 1024, 2 * 1024, 16 * 1024, 64 * 1024, 256 * 1024 };

TEST(groups_join_to_the_official_digest)
{
	size_t max = 6u << 20;
	uint8_t *data = malloc(max);
	CHECK(data != NULL);
	for (size_t i = 0; i < max; i++)
		data[i] = (uint8_t)(i % 251);
	size_t lens[512], n = 0;
	const size_t fixed[] = { 0, 1, 63, 64, 65, 1023, 1024, 1025, 2047, 2048, 2049, 3072, 3073,
				 5 * 1024 * 1024 + 12345 };
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		lens[n++] = fixed[i];
	for (unsigned k = 1; k <= 12; k++) /* 2^k chunks +- 1 byte */
		for (int d = -1; d <= 1; d++)
			lens[n++] = ((size_t)1024 << k) + (size_t)d;
	for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++)
		for (size_t m = 1; m <= 5; m++) /* group boundaries */
			for (int d = -1; d <= 1; d++)
				lens[n++] = groups[g] * m + (size_t)d;
	int checked = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t want[32], got[32];
		casfs_b3(data, lens[i], want);
		for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
			if (lens[i] <= groups[g])
				continue; /* one group: its digest is its hash */
			digest_by_groups(data, lens[i], groups[g], got);
			if (memcmp(got, want, 32) != 0) {
				FAILF("length %zu, groups of %zu: digest differs", lens[i], groups[g]);
				free(data);
				return;
			}
			checked++;
		}
	}
	free(data);
	CHECK(checked > 200);
}

/* A flipped byte changes exactly the CV of the group holding it. */
TEST(damage_changes_only_its_group)
{
	size_t group = 16 * 1024, len = 10 * group + 77;
	uint8_t *data = malloc(len);
	CHECK(data != NULL);
	for (size_t i = 0; i < len; i++)
		data[i] = (uint8_t)(i * 31 + 7);
	size_t n = (len + group - 1) / group;
	uint8_t good[16][CASFS_B3_LEN];
	for (size_t i = 0; i < n; i++)
		casfs_b3_subtree_cv(data + i * group, i + 1 < n ? group : len - i * group,
				    i * group / CASFS_B3_CHUNK_LEN, good[i]);
	const size_t at[] = { 0, group - 1, group, 5 * group + 1000, len - 1 };
	for (size_t a = 0; a < sizeof(at) / sizeof(at[0]); a++) {
		data[at[a]] ^= 0x01;
		for (size_t i = 0; i < n; i++) {
			uint8_t cv[CASFS_B3_LEN];
			casfs_b3_subtree_cv(data + i * group, i + 1 < n ? group : len - i * group,
					    i * group / CASFS_B3_CHUNK_LEN, cv);
			int differs = memcmp(cv, good[i], CASFS_B3_LEN) != 0;
			if (differs != (i == at[a] / group)) {
				FAILF("byte %zu flipped: group %zu %s", at[a], i,
				      differs ? "changed" : "unchanged");
				free(data);
				return;
			}
		}
		data[at[a]] ^= 0x01;
	}
	free(data);
}

/* Past 4 GiB: chunk counters above 2^32 / 1024 and group counts past
 * 2^16.  Zero pages cost no memory. */
TEST(past_4_gib)
{
	uint64_t len = (4ull << 30) + 2048 + 1;
	uint8_t *data = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	CHECK(data != MAP_FAILED);
	uint8_t want[32], got[32];
	casfs_b3(data, len, want);
	digest_by_groups(data, len, 256 * 1024, got);
	munmap(data, len);
	CHECK_EQ_MEM(got, want, 32);
}

/* Hashing on several threads gives the official digest. */
TEST(threads_give_the_official_digest)
{
	size_t max = (8u << 20) + 3;
	uint8_t *data = malloc(max);
	CHECK(data != NULL);
	for (size_t i = 0; i < max; i++)
		data[i] = (uint8_t)(i * 13 + (i >> 11));
	const size_t lens[] = { 0, 1, CASFS_B3_MAX_SUBTREE, CASFS_B3_MAX_SUBTREE + 1,
				2 * CASFS_B3_MAX_SUBTREE, 3 * CASFS_B3_MAX_SUBTREE - 1, max };
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		uint8_t want[32];
		casfs_b3(data, lens[i], want);
		for (unsigned t = 0; t <= 5; t++) {
			uint8_t got[32] = { 0 };
			CHECK_EQ_INT(casfs_b3_hash_threads(data, lens[i], t, got), 0);
			if (memcmp(got, want, 32) != 0) {
				FAILF("length %zu, %u threads: digest differs", lens[i], t);
				free(data);
				return;
			}
		}
	}
	free(data);
}
