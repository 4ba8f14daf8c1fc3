/* The raw hashing bound for the import benchmark: read each file given in
 * 1 MiB chunks and hash every byte with BLAKE3 and SHA-256 (what an import
 * must at least do).  Prints the elapsed seconds. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "digest/digest.h"

int main(int argc, char **argv)
{
	static uint8_t buf[1 << 20];
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 1; i < argc; i++) {
		int fd = open(argv[i], O_RDONLY);
		if (fd < 0) {
			perror(argv[i]);
			return 1;
		}
		struct casfs_b3_hasher h3;
		struct casfs_sha256_hasher h2;
		casfs_b3_init(&h3);
		if (casfs_sha256_init(&h2) < 0)
			return 1;
		ssize_t n;
		while ((n = read(fd, buf, sizeof(buf))) > 0) {
			casfs_b3_update(&h3, buf, (size_t)n);
			casfs_sha256_update(&h2, buf, (size_t)n);
		}
		uint8_t d[32];
		casfs_b3_final(&h3, d);
		casfs_sha256_final(&h2, d);
		close(fd);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.3f\n", (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9);
	return 0;
}
