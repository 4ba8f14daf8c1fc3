/* The prefetcher of the filesystem core (src/fs/fs-prefetch.c), over a
 * memory: store with one store path, a directory of
 *   f000 .. f199   small files, each its own content (100 .. 2687 bytes)
 *   f005x          a file of more than one outboard group
 *   f007x          an (empty) directory
 *   f008x          a symlink
 *   f009x          an empty file
 * A spy in front of the BlobService (test-spy-blobs.h) tells which blobs
 * the core opened, and when; fs_prefetch_wait_idle() says when the
 * prefetch threads are done.  Which entries are small files, and so where
 * a window ends, is worked out here from the names, not asked of the
 * core. */
#include <errno.h>
#include <pthread.h>

#include "basic/encoding.h"
#include "castore/directoryservice.h"
#include "digest/outboard.h"
#include "fs/fs-internal.h"
#include "fs/fs.h"
#include "store/store.h"
#include "test-spy-blobs.h"
#include "test.h"

#define N_SMALL 200
#define WINDOW 64 /* fs-prefetch.c's PREFETCH_WINDOW: the documented behaviour */
#define BIG_LEN (CASFS_OUTBOARD_GROUP_LEN + 10)

struct fixture {
	struct casfs_store *store;
	struct spy_blobs *spy;
	struct casfs_fs *fs;
	char name[64];             /* the store path's basename */
	uint64_t dir_ino;
	uint8_t small[N_SMALL][CASFS_B3_LEN], big[CASFS_B3_LEN];
	pthread_mutex_t log_lock;
	char log[2048];
	int n_log;
};

static size_t small_len(int k)
{
	return 100 + (size_t)k * 13;
}

static void small_content(int k, uint8_t *buf)
{
	for (size_t i = 0; i < small_len(k); i++)
		buf[i] = (uint8_t)(k * 31 + i * 7 + (i >> 8));
}

static void fixture_log(void *userdata, enum casfs_fs_log_level level, const char *msg)
{
	struct fixture *f = userdata;
	(void)level;
	pthread_mutex_lock(&f->log_lock);
	size_t len = strlen(f->log);
	snprintf(f->log + len, sizeof(f->log) - len, "%s\n", msg);
	f->n_log++;
	pthread_mutex_unlock(&f->log_lock);
}

static int build_store(struct fixture *f)
{
	struct casfs_error err = { 0 };
	int r = casfs_store_open("memory:", CASFS_STORE_CREATE, &f->store, &err);
	if (r < 0)
		return r;
	struct casfs_blob_service *b = f->store->blobs;
	struct casfs_directory dirs[2] = { { 0 } };
	struct casfs_directory *empty_dir = &dirs[0], *top = &dirs[1];
	uint8_t buf[4096], empty_blob[CASFS_B3_LEN], empty_digest[CASFS_B3_LEN];
	uint64_t empty_size;
	for (int k = 0; k < N_SMALL; k++) {
		char name[8];
		snprintf(name, sizeof(name), "f%03d", k);
		small_content(k, buf);
		if ((r = casfs_blob_put(b, buf, small_len(k), f->small[k])) < 0 ||
		    (r = casfs_directory_add_file(top, name, 4, f->small[k], small_len(k),
						  false)) < 0)
			return r;
	}
	uint8_t *big = malloc(BIG_LEN);
	if (!big)
		return -ENOMEM;
	memset(big, 'b', BIG_LEN);
	r = casfs_blob_put(b, big, BIG_LEN, f->big);
	free(big);
	if (r < 0 || (r = casfs_blob_put(b, "", 0, empty_blob)) < 0 ||
	    (r = casfs_directory_digest(empty_dir, empty_digest)) < 0 ||
	    (r = casfs_directory_size(empty_dir, &empty_size)) < 0 ||
	    (r = casfs_directory_add_file(top, "f005x", 5, f->big, BIG_LEN, false)) < 0 ||
	    (r = casfs_directory_add_directory(top, "f007x", 5, empty_digest, empty_size)) < 0 ||
	    (r = casfs_directory_add_symlink(top, "f008x", 5, "f000", 4)) < 0 ||
	    (r = casfs_directory_add_file(top, "f009x", 5, empty_blob, 0, false)) < 0)
		return r;
	casfs_directory_sort(top);
	uint8_t top_digest[CASFS_B3_LEN];
	uint64_t top_size;
	if ((r = casfs_directory_size(top, &top_size)) < 0 ||
	    (r = casfs_directory_put_closure(f->store->directories, dirs, 2, top_digest, &err)) < 0)
		return r;
	casfs_directory_release(&dirs[0]);
	casfs_directory_release(&dirs[1]);

	uint8_t sp[CASFS_STORE_DIGEST_LEN];
	memset(sp, 0x42, sizeof(sp));
	casfs_nixbase32_encode(sp, sizeof(sp), f->name);
	strcat(f->name, "-many");
	struct casfs_pathinfo pi = { 0 };
	pi.node = (struct casfs_node){ .type = CASFS_NODE_DIRECTORY, .name = f->name,
				       .name_len = strlen(f->name), .size = top_size,
				       .digest_set = true };
	memcpy(pi.node.digest, top_digest, CASFS_B3_LEN);
	pi.has_narinfo = true;
	return casfs_store_add_pathinfo(f->store, sp, &pi, &err);
}

static int fixture_init(struct fixture *f, size_t prefetch_threads)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->log_lock, NULL);
	int r = build_store(f);
	if (r < 0)
		return r;
	if (!(f->spy = spy_wrap(f->store)))
		return -ENOMEM;
	struct casfs_fs_options o = { .prefetch_threads = prefetch_threads, .log = fixture_log,
				      .log_userdata = f };
	if ((r = casfs_fs_new(f->store, &o, &f->fs)) < 0)
		return r;
	struct stat st;
	r = casfs_fs_lookup(f->fs, CASFS_FS_ROOT_INO, f->name, &st);
	f->dir_ino = (uint64_t)st.st_ino;
	return r;
}

static void fixture_done(struct fixture *f)
{
	casfs_fs_free(f->fs);
	casfs_store_free(f->store);
	pthread_mutex_destroy(&f->log_lock);
}

#define SETUP(threads)                                                               \
	struct fixture F;                                                            \
	int setup_r = fixture_init(&F, threads);                                     \
	if (setup_r < 0)                                                             \
		fixture_done(&F);                                                    \
	CHECK_EQ_INT(setup_r, 0)

/* Look up small file k and read it whole through the open-blob cache (as
 * FUSE's no_open reads do): 0 if it reads back as written, -EILSEQ if
 * not, or -errno. */
static int read_small(struct fixture *f, int k)
{
	char name[8];
	snprintf(name, sizeof(name), "f%03d", k);
	struct stat st;
	int r = casfs_fs_lookup(f->fs, f->dir_ino, name, &st);
	if (r < 0)
		return r;
	struct casfs_fs_file *file;
	if ((r = casfs_fs_file_get(f->fs, (uint64_t)st.st_ino, &file)) < 0)
		return r;
	uint8_t got[4096], want[4096];
	ssize_t n = casfs_fs_read(f->fs, file, got, sizeof(got), 0);
	casfs_fs_file_put(f->fs, file);
	small_content(k, want);
	if (n < 0)
		return (int)n;
	return (size_t)n == small_len(k) && memcmp(got, want, (size_t)n) == 0 ? 0 : -EILSEQ;
}

/* Position of small file k among the directory's entries, in bytewise
 * name order: f005x, f007x, f008x and f009x sort right after f005, f007,
 * f008 and f009. */
static int position_of(int k)
{
	return k + (k > 5) + (k > 7) + (k > 8) + (k > 9);
}

/* Small file k (or -1) at position p. */
static int small_at(int p)
{
	for (int k = 0; k < N_SMALL; k++)
		if (position_of(k) == p)
			return k;
	return -1;
}

TEST(reading_a_small_file_reads_the_next_window_ahead)
{
	SETUP(4);
	CHECK_EQ_INT(read_small(&F, 0), 0);
	fs_prefetch_wait_idle(F.fs);
	/* Opened: f000 by the read, and each small file in the WINDOW
	 * entries after it by the prefetcher -- nothing else. */
	uint64_t want = 1;
	for (int k = 1; k < N_SMALL; k++) {
		size_t expect = position_of(k) <= WINDOW ? 1 : 0;
		if (spy_opened(F.spy, F.small[k]) != expect)
			FAILF("f%03d opened %zu times, expected %zu", k,
			      spy_opened(F.spy, F.small[k]), expect);
		want += expect;
	}
	CHECK(small_at(WINDOW) > 0 && spy_opened(F.spy, F.small[small_at(WINDOW)]) == 1);
	CHECK_EQ_INT(spy_opened(F.spy, F.big), 0);
	CHECK_EQ_INT(spy_opens(F.spy), want);
	CHECK_EQ_INT(F.n_log, 0);
	fixture_done(&F);
}

TEST(a_reader_walking_the_directory_waits_for_no_disk_after_the_first_file)
{
	SETUP(4);
	/* Read every small file in order, letting the prefetcher finish
	 * after each read: only the first was not opened before its read. */
	int misses = 0;
	for (int k = 0; k < N_SMALL; k++) {
		bool before = spy_opened(F.spy, F.small[k]) > 0;
		CHECK_EQ_INT(read_small(&F, k), 0);
		fs_prefetch_wait_idle(F.fs);
		if (!before) {
			misses++;
			if (k != 0)
				FAILF("f%03d was not read ahead", k);
		}
	}
	CHECK_EQ_INT(misses, 1);
	/* Each blob was opened once: reads found the prefetched files. */
	for (int k = 0; k < N_SMALL; k++)
		CHECK_EQ_INT(spy_opened(F.spy, F.small[k]), 1);
	CHECK_EQ_INT(spy_opens(F.spy), N_SMALL);
	fixture_done(&F);
}

static int count_entry(void *userdata, const char *name, const struct stat *attr,
		       uint64_t next)
{
	(void)name, (void)attr, (void)next;
	(*(int *)userdata)++;
	return 0;
}

TEST(listing_and_large_files_read_nothing_ahead)
{
	SETUP(4);
	struct casfs_fs_dir *d = NULL;
	CHECK_EQ_INT(casfs_fs_opendir(F.fs, F.dir_ino, &d), 0);
	int n = 0;
	CHECK_EQ_INT(casfs_fs_readdir(F.fs, d, 0, true, count_entry, &n), 0);
	casfs_fs_releasedir(F.fs, d);
	CHECK_EQ_INT(n, 2 + N_SMALL + 4);
	fs_prefetch_wait_idle(F.fs);
	CHECK_EQ_INT(spy_opens(F.spy), 0);

	struct stat st;
	CHECK_EQ_INT(casfs_fs_lookup(F.fs, F.dir_ino, "f005x", &st), 0);
	struct casfs_fs_file *file;
	CHECK_EQ_INT(casfs_fs_file_get(F.fs, (uint64_t)st.st_ino, &file), 0);
	char buf[16];
	CHECK_EQ_INT(casfs_fs_read(F.fs, file, buf, sizeof(buf), 0), sizeof(buf));
	casfs_fs_file_put(F.fs, file);
	fs_prefetch_wait_idle(F.fs);
	CHECK_EQ_INT(spy_opens(F.spy), 1);
	CHECK_EQ_INT(spy_opened(F.spy, F.big), 1);
	fixture_done(&F);
}

TEST(without_threads_nothing_is_read_ahead)
{
	SETUP(0);
	CHECK_EQ_INT(read_small(&F, 0), 0);
	CHECK_EQ_INT(read_small(&F, 40), 0);
	fs_prefetch_wait_idle(F.fs);
	CHECK_EQ_INT(spy_opens(F.spy), 2);
	fixture_done(&F);
}

TEST(a_damaged_sibling_is_never_served)
{
	SETUP(4);
	spy_set_victim(F.spy, F.small[3]);
	char b3[CASFS_B3_STR_LEN + 1];
	casfs_b3_format(F.small[3], b3);
	CHECK_EQ_INT(read_small(&F, 0), 0);
	fs_prefetch_wait_idle(F.fs);
	/* The prefetcher found the damage and logged it, as a read would. */
	CHECK_EQ_INT(F.n_log, 1);
	CHECK(strstr(F.log, b3) != NULL);
	/* The read that follows fails (and logs) on its own; the others are
	 * served. */
	CHECK_EQ_INT(read_small(&F, 3), -EIO);
	CHECK_EQ_INT(F.n_log, 2);
	CHECK_EQ_INT(read_small(&F, 2), 0);
	CHECK_EQ_INT(read_small(&F, 4), 0);
	fixture_done(&F);
}

/* Readers on several threads at once (for TSan), and the fs freed while
 * jobs are still queued (for ASan: nothing leaks or is used after). */
struct reader_arg {
	struct fixture *f;
	int first, failures;
};

static void *reader(void *p)
{
	struct reader_arg *a = p;
	for (int k = a->first; k < N_SMALL; k += 4)
		a->failures += read_small(a->f, k) != 0;
	return NULL;
}

TEST(concurrent_readers)
{
	SETUP(8);
	pthread_t t[4];
	struct reader_arg args[4];
	for (int i = 0; i < 4; i++) {
		args[i] = (struct reader_arg){ .f = &F, .first = i };
		CHECK_EQ_INT(pthread_create(&t[i], NULL, reader, &args[i]), 0);
	}
	int failures = 0;
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		failures += args[i].failures;
	}
	CHECK_EQ_INT(failures, 0);
	fs_prefetch_wait_idle(F.fs);
	/* Concurrent opens of one blob wait for each other (and the cache
	 * holds all of them): once each. */
	for (int k = 0; k < N_SMALL; k++)
		CHECK_EQ_INT(spy_opened(F.spy, F.small[k]), 1);
	fixture_done(&F);
}

TEST(free_while_jobs_are_queued)
{
	SETUP(1);
	CHECK_EQ_INT(read_small(&F, 0), 0);
	fixture_done(&F); /* a window queued, one job maybe running */
}
