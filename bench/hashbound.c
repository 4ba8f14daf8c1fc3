/* The raw hashing bound for the import benchmark: read each file given in
 * 1 MiB chunks and hash every byte with BLAKE3 and SHA-256 (what an import
 * must at least do).  Files come as arguments, or one per line on stdin
 * with the single argument "-".  Prints the elapsed seconds. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "digest/digest.h"

static int hash_file(const char *path)
{
	static uint8_t buf[1 << 20];
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		perror(path);
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
	return 0;
}

int main(int argc, char **argv)
{
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	if (argc == 2 && strcmp(argv[1], "-") == 0) {
		char line[4096];
		while (fgets(line, sizeof(line), stdin)) {
			line[strcspn(line, "\n")] = 0;
			if (hash_file(line))
				return 1;
		}
	}
	for (int i = 1; i < argc && strcmp(argv[1], "-") != 0; i++)
		if (hash_file(argv[i]))
			return 1;
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.3f\n", (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9);
	return 0;
}
