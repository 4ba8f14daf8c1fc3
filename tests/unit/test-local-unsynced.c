/* The local store's unsynced records (local-store.h, "Crash safety"):
 * one durable record per sync cycle before any blob file gets its name,
 * dropped by the sync hook, and the recovery a writable open does for the
 * records of writers that are gone (same boot: syncfs only; another boot:
 * re-hash what was linked since).  tests/sh/test-crash.sh covers the same
 * through the CLI, with a record still locked by a live process. */
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "basic/encoding.h"
#include "basic/util.h"
#include "store/store.h"

/* ---- fixtures ---------------------------------------------------------- */

static uint8_t *vector_input(size_t n)
{
	uint8_t *p = malloc(n ? n : 1);
	for (size_t i = 0; p && i < n; i++)
		p[i] = (uint8_t)(i % 251);
	return p;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

/* A temp dir; the store goes to <tmp>/store. */
struct fixture {
	char tmp[64];
	char dir[96];
	struct casfs_store *s;
};

static int fixture_tmp(struct fixture *f)
{
	snprintf(f->tmp, sizeof(f->tmp), "/tmp/casfs-test-unsynced-XXXXXX");
	if (!mkdtemp(f->tmp))
		return -errno;
	snprintf(f->dir, sizeof(f->dir), "%s/store", f->tmp);
	return 0;
}

static void fixture_done(struct fixture *f)
{
	casfs_store_free(f->s);
	f->s = NULL;
	if (f->tmp[0])
		nftw(f->tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int open_local(struct fixture *f, unsigned flags, struct casfs_error *err)
{
	memset(err, 0, sizeof(*err));
	return casfs_store_open(f->dir, flags, &f->s, err);
}

static int put(struct casfs_store *s, const void *p, size_t n, uint8_t d[CASFS_B3_LEN])
{
	return casfs_blob_put(s->blobs, p, n, d);
}

static int count_cb(const uint8_t digest[CASFS_B3_LEN], void *userdata)
{
	(void)digest;
	(*(size_t *)userdata)++;
	return 0;
}

static size_t count_blobs(struct casfs_store *s)
{
	size_t n = 0;
	if (s->blobs->ops->list(s->blobs, count_cb, &n) < 0)
		return (size_t)-1;
	return n;
}

static int write_file(const char *path, const void *p, size_t n)
{
	chmod(path, 0644);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	ssize_t k = write(fd, p, n);
	close(fd);
	return k == (ssize_t)n ? 0 : -EIO;
}

static void blob_path(const struct fixture *f, const uint8_t d[CASFS_B3_LEN], char *out, size_t cap)
{
	char hex[65];
	casfs_hex_encode(d, CASFS_B3_LEN, hex);
	snprintf(out, cap, "%s/blobs/%.2s/%s", f->dir, hex, hex + 2);
}

/* ---- records ----------------------------------------------------------- */

/* Number of records in DIR/unsynced; the path of one of them in `one`. */
static int count_records(const struct fixture *f, char *one, size_t cap)
{
	char path[160];
	snprintf(path, sizeof(path), "%s/unsynced", f->dir);
	DIR *d = opendir(path);
	if (!d)
		return -errno;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' && n++ == 0 && one)
			snprintf(one, cap, "%s/%s", path, de->d_name);
	closedir(d);
	return n;
}

static ssize_t read_text(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, cap - 1);
	close(fd);
	if (n >= 0)
		buf[n] = 0;
	return n;
}

static void unsynced_cycle(void)
{
	struct fixture f = { 0 };
	struct casfs_error err;
	char rec[512], text[256], boot[64];
	CHECK_EQ_INT(fixture_tmp(&f), 0);
	CHECK_EQ_INT(open_local(&f, CASFS_STORE_CREATE, &err), 0);
	CHECK_EQ_INT(count_records(&f, NULL, 0), 0);
	_cleanup_free_ uint8_t *data = vector_input(102400);
	uint8_t d[CASFS_B3_LEN];
	time_t before = time(NULL);

	/* The first link of a cycle makes one durable record... */
	CHECK_EQ_INT(put(f.s, data, 102400, d), 0);
	CHECK_EQ_INT(count_records(&f, rec, sizeof(rec)), 1);
	CHECK(read_text(rec, text, sizeof(text)) > 0);
	CHECK(read_text("/proc/sys/kernel/random/boot_id", boot, sizeof(boot)) > 0);
	char want[128];
	snprintf(want, sizeof(want), "casfs-unsynced 1\nboot-id %s", boot); /* boot ends in \n */
	CHECK(!strncmp(text, want, strlen(want)));
	long long since;
	CHECK(sscanf(text + strlen(want), "since %lld.", &since) == 1);
	CHECK(since >= before - 1 && since <= time(NULL));
	/* ...which more links share; the sync drops it. */
	CHECK_EQ_INT(put(f.s, "more", 4, d), 0);
	CHECK_EQ_INT(count_records(&f, NULL, 0), 1);
	CHECK_EQ_INT(casfs_blob_sync(f.s->blobs), 0);
	CHECK_EQ_INT(count_records(&f, NULL, 0), 0);
	/* Content already present links nothing: no record. */
	CHECK_EQ_INT(put(f.s, data, 102400, d), 0);
	CHECK_EQ_INT(count_records(&f, NULL, 0), 0);
	/* The next cycle gets a fresh record. */
	CHECK_EQ_INT(put(f.s, "again", 5, d), 0);
	CHECK_EQ_INT(count_records(&f, NULL, 0), 1);
	CHECK_EQ_INT(casfs_blob_sync(f.s->blobs), 0);
	CHECK_EQ_INT(count_records(&f, NULL, 0), 0);
	/* Nothing stays in tmp/ either (records are built there). */
	snprintf(rec, sizeof(rec), "%s/tmp", f.dir);
	DIR *dir = opendir(rec);
	CHECK(dir);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(dir)))
		n += de->d_name[0] != '.';
	closedir(dir);
	CHECK_EQ_INT(n, 0);

	/* Replacing a crash-truncated file (rename) is a link too. */
	CHECK_EQ_INT(put(f.s, data, 102400, d), 0);
	CHECK_EQ_INT(casfs_blob_sync(f.s->blobs), 0);
	blob_path(&f, d, rec, sizeof(rec));
	CHECK_EQ_INT(write_file(rec, data, 1000), 0);
	CHECK_EQ_INT(put(f.s, data, 102400, d), 0);
	CHECK_EQ_INT(count_records(&f, NULL, 0), 1);
	uint64_t size;
	CHECK_EQ_INT(casfs_blob_stat(f.s->blobs, d, &size), 0);
	CHECK_EQ_INT(size, 102400);
	CHECK_EQ_INT(casfs_blob_sync(f.s->blobs), 0);
	CHECK_EQ_INT(count_records(&f, NULL, 0), 0);
	fixture_done(&f);
}

TEST(local_unsynced_cycle)
{
	unsynced_cycle();
}

/* The O_TMPFILE + linkat path (the knob is read at open). */
TEST(local_unsynced_cycle_o_tmpfile)
{
	char *saved = getenv("CASFS_LOCAL_O_TMPFILE");
	setenv("CASFS_LOCAL_O_TMPFILE", "1", 1);
	unsynced_cycle();
	if (!saved)
		unsetenv("CASFS_LOCAL_O_TMPFILE");
}

#define SYNC_THREADS 4
#define SYNC_PER_THREAD 64

struct sync_arg {
	struct casfs_blob_service *blobs;
	int id;
	int result;
};

/* Commits and syncs interleaved across threads: the record protocol must
 * neither deadlock nor leave a record once everything is synced. */
static void *sync_thread(void *p)
{
	struct sync_arg *a = p;
	for (int k = 0; k < SYNC_PER_THREAD && a->result == 0; k++) {
		char buf[64];
		int len = snprintf(buf, sizeof(buf), "thread %d blob %d", a->id, k);
		uint8_t d[CASFS_B3_LEN];
		a->result = casfs_blob_put(a->blobs, buf, (size_t)len, d);
		if (a->result == 0 && k % 4 == a->id % 4)
			a->result = casfs_blob_sync(a->blobs);
	}
	return NULL;
}

TEST(local_unsynced_threads)
{
	struct fixture f = { 0 };
	struct casfs_error err;
	CHECK_EQ_INT(fixture_tmp(&f), 0);
	CHECK_EQ_INT(open_local(&f, CASFS_STORE_CREATE, &err), 0);
	pthread_t t[SYNC_THREADS];
	struct sync_arg args[SYNC_THREADS];
	for (int i = 0; i < SYNC_THREADS; i++) {
		args[i] = (struct sync_arg){ f.s->blobs, i, 0 };
		CHECK_EQ_INT(pthread_create(&t[i], NULL, sync_thread, &args[i]), 0);
	}
	for (int i = 0; i < SYNC_THREADS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < SYNC_THREADS; i++)
		CHECK_EQ_INT(args[i].result, 0);
	CHECK_EQ_INT(count_blobs(f.s), SYNC_THREADS * SYNC_PER_THREAD);
	CHECK_EQ_INT(casfs_blob_sync(f.s->blobs), 0);
	CHECK_EQ_INT(count_records(&f, NULL, 0), 0);
	fixture_done(&f);
}

/* Recovery at a writable open, from the record a closed (as good as
 * killed) writer left: in the same boot only a syncfs (the damaged file,
 * planted after the fact, is not even looked at); from another boot every
 * file linked since is re-hashed and the bad ones go. */
TEST(local_unsynced_recovery)
{
	struct fixture f = { 0 };
	struct casfs_error err;
	char rec[512], text[256], path[256];
	CHECK_EQ_INT(fixture_tmp(&f), 0);
	CHECK_EQ_INT(open_local(&f, CASFS_STORE_CREATE, &err), 0);
	_cleanup_free_ uint8_t *data = vector_input(102400);
	_cleanup_free_ uint8_t *zeros = calloc(1, 102400);
	CHECK(zeros);
	uint8_t a[CASFS_B3_LEN], b[CASFS_B3_LEN];
	CHECK_EQ_INT(put(f.s, "synced", 6, a), 0);
	CHECK_EQ_INT(casfs_blob_sync(f.s->blobs), 0);
	CHECK_EQ_INT(put(f.s, data, 102400, b), 0);
	casfs_store_free(f.s);
	f.s = NULL;
	CHECK_EQ_INT(count_records(&f, rec, sizeof(rec)), 1);
	blob_path(&f, b, path, sizeof(path));
	CHECK_EQ_INT(write_file(path, zeros, 102400), 0);

	/* A record whose flock is held (its owner alive) is left alone. */
	int held = open(rec, O_RDONLY | O_CLOEXEC);
	CHECK(held >= 0);
	CHECK_EQ_INT(flock(held, LOCK_EX), 0);
	CHECK_EQ_INT(open_local(&f, 0, &err), 0);
	CHECK_EQ_INT(count_records(&f, NULL, 0), 1);
	casfs_store_free(f.s);
	f.s = NULL;
	close(held);

	/* Same boot. */
	CHECK_EQ_INT(open_local(&f, 0, &err), 0);
	CHECK_EQ_INT(count_records(&f, NULL, 0), 0);
	struct casfs_blob_reader *r;
	CHECK_EQ_INT(casfs_blob_open(f.s->blobs, b, &r), 0);
	int v = casfs_blob_verify(r, NULL, NULL);
	casfs_blob_reader_close(r);
	CHECK_EQ_INT(v, -EBADMSG);
	CHECK_EQ_INT(f.s->blobs->ops->remove(f.s->blobs, b), 0);

	/* Another boot: the same record as the writer made it, but for its
	 * boot id. */
	CHECK_EQ_INT(put(f.s, data, 102400, b), 0);
	casfs_store_free(f.s);
	f.s = NULL;
	CHECK_EQ_INT(count_records(&f, rec, sizeof(rec)), 1);
	CHECK_EQ_INT(write_file(path, zeros, 102400), 0);
	CHECK(read_text(rec, text, sizeof(text)) > 0);
	char *id = strstr(text, "boot-id ");
	CHECK(id && strlen(id) > 8 + 36);
	memcpy(id + 8, "00000000-0000-4000-8000-000000000000", 36);
	CHECK_EQ_INT(write_file(rec, text, strlen(text)), 0);
	CHECK_EQ_INT(open_local(&f, 0, &err), 0);
	CHECK_EQ_INT(count_records(&f, NULL, 0), 0);
	CHECK_EQ_INT(casfs_blob_stat(f.s->blobs, b, NULL), -ENOENT);
	CHECK_EQ_INT(casfs_blob_stat(f.s->blobs, a, NULL), 0);
	/* The next import writes it again. */
	CHECK_EQ_INT(put(f.s, data, 102400, b), 0);
	CHECK_EQ_INT(casfs_blob_open(f.s->blobs, b, &r), 0);
	v = casfs_blob_verify(r, NULL, NULL);
	casfs_blob_reader_close(r);
	CHECK_EQ_INT(v, 0);
	fixture_done(&f);
}
