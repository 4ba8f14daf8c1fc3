/* BLAKE3 on one thread and on several (src/digest/b3tree.h) over the same
 * 1 GiB in memory: prints one row per thread count, with the speed-up
 * over one thread; then the speed of checking groups of each size
 * (a range check hashes whole groups).  `make bench-b3`; BENCH_MB sets the size. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "digest/b3tree.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(void)
{
	const char *mb = getenv("BENCH_MB");
	size_t len = (size_t)(mb ? atol(mb) : 1024) << 20;
	uint8_t *data = malloc(len);
	if (!data)
		return 1;
	for (size_t i = 0; i < len; i++)
		data[i] = (uint8_t)(i * 131 + (i >> 12));
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	double one = 0;
	uint8_t want[32];
	casfs_b3(data, len, want);
	printf("%-10s %10s %10s\n", "threads", "MB/s", "vs 1");
	for (long t = 1; t <= (cores < 2 ? 2 : cores); t++) {
		double best = 1e9;
		for (int rep = 0; rep < 3; rep++) {
			uint8_t got[32];
			double t0 = now();
			casfs_b3_hash_threads(data, len, (unsigned)t, got);
			double dt = now() - t0;
			if (memcmp(got, want, 32) != 0)
				return fprintf(stderr, "digest differs with %ld threads\n", t), 1;
			best = dt < best ? dt : best;
		}
		if (t == 1)
			one = best;
		printf("%-10ld %10.0f %9.2fx\n", t, (double)len / 1e6 / best, one / best);
	}

	/* Group size: one subtree_cv call per group, as a range check does. */
	printf("\n%-10s %10s %10s\n", "group KiB", "MB/s", "vs 256");
	double full = 0;
	for (size_t g = CASFS_B3_MAX_SUBTREE; g >= 4 * CASFS_B3_CHUNK_LEN; g /= 2) {
		double best = 1e9;
		for (int rep = 0; rep < 3; rep++) {
			uint8_t cv[32];
			double t0 = now();
			for (size_t off = 0; off + g <= len; off += g)
				casfs_b3_subtree_cv(data + off, g, off / CASFS_B3_CHUNK_LEN, cv);
			double dt = now() - t0;
			best = dt < best ? dt : best;
		}
		if (g == CASFS_B3_MAX_SUBTREE)
			full = best;
		printf("%-10zu %10.0f %9.2fx\n", g / 1024, (double)len / 1e6 / best, full / best);
	}
	free(data);
	return 0;
}
