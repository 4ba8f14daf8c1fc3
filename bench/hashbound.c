/* The raw hashing bound for the import and verify benchmarks: read each
 * file and hash every byte of it; print the elapsed seconds (one line, on
 * stdout; nothing else goes there).  Files come as arguments, or one per
 * line on stdin with the single argument "-".
 *
 *   bench-hashbound [--b3-only] [--threads N] (FILE... | -)
 *
 * Modes:
 *   (default)                 the import bound on one thread: 1 MiB reads,
 *                             each hashed with BLAKE3 then SHA-256 (what an
 *                             import must at least do)
 *   --threads N (N >= 2)      the import bound on N threads, pipelined: the
 *                             main thread reads each chunk and hashes it with
 *                             BLAKE3 (plain casfs_b3_update when N == 2;
 *                             casfs_b3_stream on N - 1 threads otherwise)
 *                             while another thread hashes the same chunk
 *                             with SHA-256 (the slower of the two, so it
 *                             gets a thread of its own).  Chunks of 1 MiB
 *                             (8 MiB for N > 2) in a ring of 4, handed over
 *                             under a mutex; small files are packed into
 *                             one chunk, so a tree costs a handoff per
 *                             chunk, not per file.
 *   --b3-only                 the verify bound: BLAKE3 alone over 8 MiB reads;
 *                             plain casfs_b3_update with --threads 1 (the
 *                             default), casfs_b3_stream_update (tree hashing,
 *                             groups and outboard, as `casfs verify` does)
 *                             on N threads with --threads N >= 2
 *
 * Every mode but the two one-thread ones (which are the reference) checks
 * its digests, after the clock stopped, against the plain one-thread
 * hashers over the same files: a mismatch is reported on stderr and the
 * exit status is 1 (no time is printed), so a bound cannot be fast by
 * hashing wrongly. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "digest/digest.h"
#include "digest/outboard.h"

#define SMALL_CHUNK (1u << 20)
#define BIG_CHUNK (8u << 20)
#define RING 4

struct result {
	uint8_t b3[CASFS_B3_LEN], sha[CASFS_SHA256_LEN];
};

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static int open_file(const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		die(path);
	return fd;
}

static ssize_t read_some(int fd, void *buf, size_t len, const char *path)
{
	ssize_t n = read(fd, buf, len);
	if (n < 0)
		die(path);
	return n;
}

/* Plain BLAKE3 and (if `sha`) SHA-256 over `chunk`-byte reads: the
 * one-thread modes, and the reference of the checks. */
static void hash_plain(const char *path, size_t chunk, bool sha, uint8_t *buf, struct result *r)
{
	int fd = open_file(path);
	struct casfs_b3_hasher h3;
	struct casfs_sha256_hasher h2;
	casfs_b3_init(&h3);
	if (sha && casfs_sha256_init(&h2) < 0)
		die("sha256 init");
	ssize_t n;
	while ((n = read_some(fd, buf, chunk, path)) > 0) {
		casfs_b3_update(&h3, buf, (size_t)n);
		if (sha)
			casfs_sha256_update(&h2, buf, (size_t)n);
	}
	casfs_b3_final(&h3, r->b3);
	if (sha)
		casfs_sha256_final(&h2, r->sha);
	close(fd);
}

/* BLAKE3 as a tree on `threads` threads. */
static void hash_b3_tree(const char *path, unsigned threads, uint8_t *buf, struct result *r)
{
	int fd = open_file(path);
	struct casfs_b3_stream s;
	casfs_b3_stream_init(&s, threads);
	ssize_t n;
	while ((n = read_some(fd, buf, BIG_CHUNK, path)) > 0)
		if (casfs_b3_stream_update(&s, buf, (size_t)n) < 0)
			die("b3 stream");
	if (casfs_b3_stream_final(&s, r->b3, NULL) < 0)
		die("b3 stream");
	close(fd);
}

/* --- the pipelined import bound --------------------------------------- */

/* A slot is one chunk of bytes read by the main thread: a piece of a big
 * file, or many small files packed one after the other (so that a tree of
 * small files costs one handoff per chunk, not per file). */
#define MAX_SEGS 1024
struct seg {
	size_t file;       /* index into the results */
	size_t off, len;   /* in the slot's buffer */
	bool first, last;  /* of its file */
};
struct slot {
	uint8_t *buf;
	size_t fill, n_segs;
	struct seg segs[MAX_SEGS];
	bool quit;
};

static struct pipe {
	pthread_mutex_t lock;
	pthread_cond_t filled, drained;
	struct slot ring[RING];
	unsigned long posted, taken; /* slots handed to / done by the SHA thread */
	bool sha_waits, main_waits;
	unsigned b3_threads;
	size_t chunk;
	struct result *results;
	/* the main thread's BLAKE3, across slots */
	struct casfs_b3_hasher h;
	struct casfs_b3_stream s;
} P = { .lock = PTHREAD_MUTEX_INITIALIZER,
	.filled = PTHREAD_COND_INITIALIZER,
	.drained = PTHREAD_COND_INITIALIZER };

static void *sha_thread(void *unused)
{
	(void)unused;
	struct casfs_sha256_hasher h;
	for (unsigned long seq = 0;; seq++) {
		pthread_mutex_lock(&P.lock);
		while (P.posted == seq) {
			P.sha_waits = true;
			pthread_cond_wait(&P.filled, &P.lock);
		}
		P.sha_waits = false;
		pthread_mutex_unlock(&P.lock);

		struct slot *sl = &P.ring[seq % RING];
		if (sl->quit)
			return NULL;
		for (size_t i = 0; i < sl->n_segs; i++) {
			const struct seg *g = &sl->segs[i];
			if (g->first && casfs_sha256_init(&h) < 0)
				die("sha256 init");
			casfs_sha256_update(&h, sl->buf + g->off, g->len);
			if (g->last)
				casfs_sha256_final(&h, P.results[g->file].sha);
		}

		pthread_mutex_lock(&P.lock);
		P.taken = seq + 1;
		if (P.main_waits)
			pthread_cond_signal(&P.drained);
		pthread_mutex_unlock(&P.lock);
	}
}

/* The next free slot (the SHA thread is done with it), emptied. */
static struct slot *pipe_slot(void)
{
	pthread_mutex_lock(&P.lock);
	while (P.posted - P.taken >= RING) {
		P.main_waits = true;
		pthread_cond_wait(&P.drained, &P.lock);
	}
	P.main_waits = false;
	pthread_mutex_unlock(&P.lock);
	struct slot *sl = &P.ring[P.posted % RING];
	sl->fill = sl->n_segs = 0;
	sl->quit = false;
	return sl;
}

/* Hand `sl` to the SHA thread, then hash it with BLAKE3 here while the
 * SHA thread reads the same bytes; the slot is not reused before both are
 * done (this thread is, when this returns).  The next slot, emptied. */
static struct slot *pipe_post(struct slot *sl)
{
	pthread_mutex_lock(&P.lock);
	P.posted++;
	if (P.sha_waits)
		pthread_cond_signal(&P.filled);
	pthread_mutex_unlock(&P.lock);
	for (size_t i = 0; i < sl->n_segs; i++) {
		const struct seg *g = &sl->segs[i];
		if (g->first) {
			if (P.b3_threads > 1)
				casfs_b3_stream_init(&P.s, P.b3_threads);
			else
				casfs_b3_init(&P.h);
		}
		if (P.b3_threads > 1) {
			if (casfs_b3_stream_update(&P.s, sl->buf + g->off, g->len) < 0)
				die("b3 stream");
		} else {
			casfs_b3_update(&P.h, sl->buf + g->off, g->len);
		}
		if (g->last) {
			uint8_t *out = P.results[g->file].b3;
			if (P.b3_threads > 1) {
				if (casfs_b3_stream_final(&P.s, out, NULL) < 0)
					die("b3 stream");
			} else {
				casfs_b3_final(&P.h, out);
			}
		}
	}
	return pipe_slot();
}

/* Read file `file` into slots, posting each one that fills up. */
static struct slot *pipe_file(struct slot *sl, const char *path, size_t file)
{
	int fd = open_file(path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		die(path);
	off_t off = 0;
	for (bool first = true;; first = false) {
		if (sl->fill == P.chunk || sl->n_segs == MAX_SEGS)
			sl = pipe_post(sl);
		ssize_t n = read_some(fd, sl->buf + sl->fill, P.chunk - sl->fill, path);
		off += n;
		bool last = n == 0 || off >= st.st_size;
		sl->segs[sl->n_segs++] = (struct seg){
			.file = file, .off = sl->fill, .len = (size_t)n, .first = first, .last = last
		};
		sl->fill += (size_t)n;
		if (last)
			break;
	}
	close(fd);
	return sl;
}

static void hash_pipelined(char **files, size_t n_files)
{
	pthread_t th;
	if ((errno = pthread_create(&th, NULL, sha_thread, NULL)))
		die("pthread_create");
	struct slot *sl = pipe_slot();
	for (size_t f = 0; f < n_files; f++)
		sl = pipe_file(sl, files[f], f);
	if (sl->n_segs > 0)
		sl = pipe_post(sl);
	sl->quit = true;
	pipe_post(sl);
	pthread_join(th, NULL);
}

/* --- main --------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr, "usage: bench-hashbound [--b3-only] [--threads N] (FILE... | -)\n");
	exit(2);
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	bool b3_only = false;
	unsigned threads = 1;
	int i = 1;
	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (strcmp(argv[i], "--b3-only") == 0) {
			b3_only = true;
		} else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
			char *end;
			long t = strtol(argv[++i], &end, 10);
			if (*end || t < 1 || t > 64)
				usage();
			threads = (unsigned)t;
		} else if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else {
			usage();
		}
	}
	if (i >= argc)
		usage();

	/* the file list, before the clock starts */
	char **files;
	size_t n_files = 0;
	if (argc - i == 1 && strcmp(argv[i], "-") == 0) {
		size_t cap = 1024;
		if (!(files = malloc(cap * sizeof(*files))))
			die("malloc");
		char *line = NULL;
		size_t line_cap = 0;
		ssize_t len;
		while ((len = getline(&line, &line_cap, stdin)) >= 0) {
			line[strcspn(line, "\n")] = 0;
			if (!line[0])
				continue;
			if (n_files == cap && !(files = realloc(files, (cap *= 2) * sizeof(*files))))
				die("realloc");
			if (!(files[n_files++] = strdup(line)))
				die("strdup");
		}
		free(line);
	} else {
		files = argv + i;
		n_files = (size_t)(argc - i);
	}
	struct result *res = calloc(n_files ? n_files : 1, sizeof(*res));
	uint8_t *buf = malloc(BIG_CHUNK);
	if (!res || !buf)
		die("malloc");

	if (!b3_only && threads > 1) {
		P.b3_threads = threads - 1;
		P.chunk = threads > 2 ? BIG_CHUNK : SMALL_CHUNK;
		P.results = res;
		for (int s = 0; s < RING; s++)
			if (!(P.ring[s].buf = malloc(P.chunk)))
				die("malloc");
	}

	double t0 = now();
	if (!b3_only && threads > 1) {
		hash_pipelined(files, n_files);
	} else {
		for (size_t f = 0; f < n_files; f++) {
			if (!b3_only)
				hash_plain(files[f], SMALL_CHUNK, true, buf, &res[f]);
			else if (threads == 1)
				hash_plain(files[f], BIG_CHUNK, false, buf, &res[f]);
			else
				hash_b3_tree(files[f], threads, buf, &res[f]);
		}
	}
	double elapsed = now() - t0;

	/* the check: the plain one-thread hashers over the same files */
	if (threads > 1) {
		for (size_t f = 0; f < n_files; f++) {
			struct result want;
			hash_plain(files[f], SMALL_CHUNK, !b3_only, buf, &want);
			if (memcmp(want.b3, res[f].b3, CASFS_B3_LEN) != 0 ||
			    (!b3_only && memcmp(want.sha, res[f].sha, CASFS_SHA256_LEN) != 0)) {
				fprintf(stderr, "bench-hashbound: %s: %s differs from the one-thread digest"
					" (%s, %u threads)\n", files[f],
					memcmp(want.b3, res[f].b3, CASFS_B3_LEN) ? "BLAKE3" : "SHA-256",
					b3_only ? "b3 only" : "import", threads);
				return 1;
			}
		}
	}
	printf("%.3f\n", elapsed);
	return 0;
}
