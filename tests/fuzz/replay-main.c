/* Replays a libFuzzer target over corpus files/directories given on the
 * command line, so the corpora run as ordinary tests (under ASan+UBSan in
 * the sanitizer build).  Prints PASS/FAIL per corpus argument. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "cannot open %s\n", path);
		return -1;
	}
	size_t cap = 1 << 16, len = 0;
	uint8_t *buf = malloc(cap);
	size_t n;
	while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
		len += n;
		if (len == cap) {
			uint8_t *nb = realloc(buf, cap *= 2);
			if (!nb) {
				free(buf);
				buf = NULL;
			}
			buf = nb;
		}
	}
	fclose(f);
	if (!buf)
		return -1;
	/* exact-size copy so ASan catches reads past the input */
	uint8_t *exact = malloc(len ? len : 1);
	memcpy(exact, buf, len);
	free(buf);
	LLVMFuzzerTestOneInput(exact, len);
	free(exact);
	return 0;
}

int main(int argc, char **argv)
{
	const char *name = strrchr(argv[0], '/');
	name = name ? name + 1 : argv[0];
	int failed = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		int files = 0, bad = 0;
		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
			DIR *d = opendir(argv[i]);
			struct dirent *de;
			while (d && (de = readdir(d))) {
				if (de->d_name[0] == '.')
					continue;
				char path[4096];
				snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
				files++;
				bad += run_file(path) < 0;
			}
			if (d)
				closedir(d);
		} else {
			files++;
			bad += run_file(argv[i]) < 0;
		}
		printf("%s %s:%s (%d inputs)\n", bad || !files ? "FAIL" : "PASS", name, argv[i], files);
		failed |= bad || !files;
	}
	return failed;
}
