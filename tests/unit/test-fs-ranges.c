/* Range verification in the filesystem core, on a real local store: a
 * blob of 5 outboard groups and 100 bytes, served through casfs_fs_read
 * and casfs_fs_file_check (as FUSE does before splicing).  Damage is made
 * in the blob file (or its outboard file) and each read is compared with
 * the bytes put in.  A spy in front of the BlobService (test-spy-blobs.h;
 * reads go through it: it hides the file descriptor) tells how many bytes
 * a read made the core fetch.  The export (nar, cat) is tested here too, on the
 * path that reads the blob (no file descriptor, so no mapping). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/buf.h"
#include "basic/encoding.h"
#include "basic/util.h"
#include "castore/blobservice.h"
#include "digest/outboard.h"
#include "fs/fs.h"
#include "store/export.h"
#include "store/store.h"
#include "test-spy-blobs.h"
#include "test.h"

#define G CASFS_OUTBOARD_GROUP_LEN
#define SIZE (5 * G + 100)
#define GROUPS 6

struct fixture {
	char tmp[64], dir[96], blob_path[256], ob_path[256];
	uint8_t *data;
	uint8_t digest[CASFS_B3_LEN];
	char b3[CASFS_B3_STR_LEN + 1];
	char name[64];
	uint8_t sp_digest[CASFS_STORE_DIGEST_LEN];
	struct casfs_store *store;
	struct spy_blobs *spy; /* readers without a file descriptor */
	struct casfs_fs *fs;
	uint64_t ino;
	char log[4096];
	int n_log;
};

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void fixture_log(void *userdata, enum casfs_fs_log_level level, const char *msg)
{
	struct fixture *f = userdata;
	(void)level;
	pthread_mutex_lock(&log_lock);
	size_t len = strlen(f->log);
	snprintf(f->log + len, sizeof(f->log) - len, "%s\n", msg);
	f->n_log++;
	pthread_mutex_unlock(&log_lock);
}

static int store_open(struct fixture *f, unsigned flags)
{
	char url[128];
	struct casfs_error err = { 0 };
	snprintf(url, sizeof(url), "local:%s", f->dir);
	int r = casfs_store_open(url, flags, &f->store, &err);
	if (r < 0) {
		printf("  open: %s\n", casfs_error_message(&err, r));
		return r;
	}
	return (f->spy = spy_wrap(f->store)) ? 0 : -ENOMEM;
}

/* A fresh fs (nothing checked yet) with the file looked up. */
static int fs_start(struct fixture *f)
{
	f->log[0] = 0;
	f->n_log = 0;
	struct casfs_fs_options o = { .log = fixture_log, .log_userdata = f };
	int r = casfs_fs_new(f->store, &o, &f->fs);
	if (r < 0)
		return r;
	struct stat st;
	r = casfs_fs_lookup(f->fs, CASFS_FS_ROOT_INO, f->name, &st);
	f->ino = (uint64_t)st.st_ino;
	return r;
}

static void fs_stop(struct fixture *f)
{
	casfs_fs_free(f->fs);
	f->fs = NULL;
}

static int fixture_init(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->tmp, sizeof(f->tmp), "/tmp/casfs-test-ranges-XXXXXX");
	if (!mkdtemp(f->tmp))
		return -errno;
	snprintf(f->dir, sizeof(f->dir), "%s/store", f->tmp);
	int r = store_open(f, CASFS_STORE_CREATE);
	if (r < 0)
		return r;
	if (!(f->data = malloc(SIZE)))
		return -ENOMEM;
	for (size_t i = 0; i < SIZE; i++)
		f->data[i] = (uint8_t)(i * 7 + (i >> 9));
	if ((r = casfs_blob_put(f->store->blobs, f->data, SIZE, f->digest)) < 0)
		return r;
	casfs_b3_format(f->digest, f->b3);
	char hex[65];
	casfs_hex_encode(f->digest, CASFS_B3_LEN, hex);
	snprintf(f->blob_path, sizeof(f->blob_path), "%s/blobs/%.2s/%s", f->dir, hex, hex + 2);
	snprintf(f->ob_path, sizeof(f->ob_path), "%s/outboards/%.2s/%s", f->dir, hex, hex + 2);

	uint8_t h[CASFS_B3_LEN];
	casfs_b3("ranges", 6, h);
	memcpy(f->sp_digest, h, CASFS_STORE_DIGEST_LEN);
	casfs_nixbase32_encode(f->sp_digest, CASFS_STORE_DIGEST_LEN, f->name);
	strcat(f->name, "-big");
	struct casfs_pathinfo pi = { 0 };
	pi.node = (struct casfs_node){ .type = CASFS_NODE_FILE, .name = f->name,
				       .name_len = strlen(f->name), .size = SIZE, .digest_set = true };
	memcpy(pi.node.digest, f->digest, CASFS_B3_LEN);
	pi.has_narinfo = true;
	struct casfs_error err = { 0 };
	r = casfs_store_add_pathinfo(f->store, f->sp_digest, &pi, &err);
	if (r < 0)
		printf("  add: %s\n", casfs_error_message(&err, r));
	return r;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static void fixture_done(struct fixture *f)
{
	if (f->fs)
		casfs_fs_free(f->fs);
	casfs_store_free(f->store);
	free(f->data);
	if (f->tmp[0])
		nftw(f->tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Flip the byte at `off` of a file (the blob or its outboard). */
static int flip(const char *path, uint64_t off)
{
	int fd = open(path, O_RDWR);
	if (fd < 0)
		return -errno;
	uint8_t b;
	int r = pread(fd, &b, 1, (off_t)off) == 1 ? 0 : -EIO;
	b ^= 0x40;
	if (r == 0 && pwrite(fd, &b, 1, (off_t)off) != 1)
		r = -EIO;
	close(fd);
	return r;
}

/* Read [off, off+len) through a fresh open: the byte count, or -errno;
 * a wrong byte is -EILSEQ. */
static ssize_t read_range(struct fixture *f, uint64_t off, size_t len)
{
	struct casfs_fs_file *file;
	int r = casfs_fs_file_get(f->fs, f->ino, &file);
	if (r < 0)
		return r;
	uint8_t *buf = malloc(len ? len : 1);
	ssize_t n = buf ? casfs_fs_read(f->fs, file, buf, len, off) : -ENOMEM;
	if (n > 0 && memcmp(buf, f->data + off, (size_t)n) != 0)
		n = -EILSEQ;
	free(buf);
	casfs_fs_file_put(f->fs, file);
	return n;
}

TEST(good_blob_reads_everywhere_and_fetches_only_what_is_asked)
{
	struct fixture f;
	CHECK_EQ_INT(fixture_init(&f), 0);
	CHECK_EQ_INT(access(f.ob_path, F_OK), 0);
	CHECK_EQ_INT(fs_start(&f), 0);
	/* Opening fetches no content (the outboard is not a blob read); a
	 * 4 KiB read fetches its one group, once. */
	spy_reset(f.spy);
	CHECK_EQ_INT(read_range(&f, 3 * G + 100, 4096), 4096);
	CHECK_EQ_INT(spy_bytes(f.spy), G + 4096); /* the check, then the read */
	spy_reset(f.spy);
	CHECK_EQ_INT(read_range(&f, 3 * G + 8000, 4096), 4096);
	CHECK_EQ_INT(spy_bytes(f.spy), 4096); /* checked already */
	/* A read across a boundary checks both groups, the last group is short. */
	CHECK_EQ_INT(read_range(&f, 2 * G - 10, 20), 20);
	CHECK_EQ_INT(read_range(&f, 5 * G, 1000), 100);
	CHECK_EQ_INT(read_range(&f, 0, SIZE + 10), SIZE);
	CHECK_EQ_INT(f.n_log, 0);
	fixture_done(&f);
}

TEST(damage_at_each_group_boundary_fails_only_its_group)
{
	struct fixture f;
	CHECK_EQ_INT(fixture_init(&f), 0);
	const uint64_t at[] = { 0, G - 1, G, 2 * G - 1, 2 * G, 3 * G + 5, 4 * G - 1, 4 * G,
				5 * G - 1, 5 * G, SIZE - 1 };
	for (size_t k = 0; k < ARRAY_SIZE(at); k++) {
		size_t bad = (size_t)(at[k] / G);
		CHECK_EQ_INT(flip(f.blob_path, at[k]), 0);
		CHECK_EQ_INT(fs_start(&f), 0);
		for (size_t g = 0; g < GROUPS; g++) {
			uint64_t off = (uint64_t)g * G;
			size_t len = g == GROUPS - 1 ? 100 : G;
			ssize_t want = g == bad ? -EIO : (ssize_t)len;
			if (read_range(&f, off, len) != want) {
				FAILF("damage at %llu: reading group %zu gave %zd, expected %zd",
				      (unsigned long long)at[k], g, read_range(&f, off, len), want);
				return;
			}
			/* and a single byte at the group's other end */
			want = g == bad ? -EIO : 1;
			CHECK_EQ_INT(read_range(&f, off + len - 1, 1), want);
		}
		/* A read that only touches the group's neighbours is served. */
		if (bad > 0)
			CHECK_EQ_INT(read_range(&f, (bad - 1) * G, G), G);
		/* and one across the boundary into it is not */
		if (bad > 0)
			CHECK_EQ_INT(read_range(&f, bad * G - 1, 2), -EIO);
		/* The log names the digest and the group's offset. */
		char want_log[128];
		snprintf(want_log, sizeof(want_log), "at offset %llu ", (unsigned long long)bad * G);
		CHECK(strstr(f.log, f.b3) != NULL);
		CHECK(strstr(f.log, want_log) != NULL);
		fs_stop(&f);
		CHECK_EQ_INT(flip(f.blob_path, at[k]), 0); /* repaired */
	}
	CHECK_EQ_INT(fs_start(&f), 0);
	CHECK_EQ_INT(read_range(&f, 0, SIZE), SIZE);
	fixture_done(&f);
}

TEST(fuse_style_check_before_fd_use)
{
	struct fixture f;
	CHECK_EQ_INT(fixture_init(&f), 0);
	CHECK_EQ_INT(flip(f.blob_path, 4 * G + 3), 0);
	CHECK_EQ_INT(fs_start(&f), 0);
	struct casfs_fs_file *file;
	CHECK_EQ_INT(casfs_fs_file_get(f.fs, f.ino, &file), 0);
	CHECK_EQ_INT(casfs_fs_file_check(f.fs, file, 0, 4 * G), 0);
	CHECK_EQ_INT(casfs_fs_file_check(f.fs, file, 4 * G - 1, 2), -EIO);
	CHECK_EQ_INT(casfs_fs_file_check(f.fs, file, 5 * G, 100), 0);
	CHECK_EQ_INT(casfs_fs_file_check(f.fs, file, SIZE, 100), 0); /* past the end */
	/* Still failing on a second try: damage is never remembered as good. */
	CHECK_EQ_INT(casfs_fs_file_check(f.fs, file, 4 * G, 1), -EIO);
	casfs_fs_file_put(f.fs, file);
	fixture_done(&f);
}

TEST(missing_outboard_is_built_from_a_good_blob_and_stored_again)
{
	struct fixture f;
	CHECK_EQ_INT(fixture_init(&f), 0);
	CHECK_EQ_INT(unlink(f.ob_path), 0);
	CHECK_EQ_INT(fs_start(&f), 0);
	spy_reset(f.spy);
	CHECK_EQ_INT(read_range(&f, G, 10), 10);
	CHECK(spy_bytes(f.spy) >= SIZE); /* built: the whole blob hashed */
	CHECK_EQ_INT(access(f.ob_path, F_OK), 0); /* a writable store keeps it */
	CHECK_EQ_INT(read_range(&f, 0, SIZE), SIZE);
	fs_stop(&f);
	/* Read-only: built in memory, nothing written. */
	casfs_store_free(f.store);
	f.store = NULL;
	CHECK_EQ_INT(unlink(f.ob_path), 0);
	CHECK_EQ_INT(store_open(&f, CASFS_STORE_READONLY), 0);
	CHECK_EQ_INT(fs_start(&f), 0);
	CHECK_EQ_INT(read_range(&f, 0, SIZE), SIZE);
	CHECK(access(f.ob_path, F_OK) < 0);
	fixture_done(&f);
}

TEST(missing_outboard_and_damaged_blob_is_eio)
{
	struct fixture f;
	CHECK_EQ_INT(fixture_init(&f), 0);
	CHECK_EQ_INT(unlink(f.ob_path), 0);
	CHECK_EQ_INT(flip(f.blob_path, 2 * G + 1), 0);
	CHECK_EQ_INT(fs_start(&f), 0);
	CHECK_EQ_INT(read_range(&f, 0, 10), -EIO); /* nothing to check a part against */
	CHECK(strstr(f.log, f.b3) != NULL);
	CHECK(access(f.ob_path, F_OK) < 0); /* no outboard made from bad bytes */
	fixture_done(&f);
}

TEST(damaged_outboard_is_never_trusted)
{
	/* At each place: the header, the size, a CV. */
	const uint64_t at[] = { 0, 8, 17, CASFS_OUTBOARD_HEADER_LEN,
				CASFS_OUTBOARD_HEADER_LEN + 3 * CASFS_B3_LEN + 31 };
	for (size_t k = 0; k < ARRAY_SIZE(at); k++) {
		struct fixture f;
		CHECK_EQ_INT(fixture_init(&f), 0);
		CHECK_EQ_INT(flip(f.ob_path, at[k]), 0);
		/* and a damaged blob group, which a trusted bad outboard might hide */
		CHECK_EQ_INT(flip(f.blob_path, 3 * G), 0);
		CHECK_EQ_INT(fs_start(&f), 0);
		CHECK_EQ_INT(read_range(&f, 0, G), -EIO); /* rebuilding hashes it all: bad */
		CHECK(strstr(f.log, f.b3) != NULL);
		fs_stop(&f);
		CHECK_EQ_INT(flip(f.blob_path, 3 * G), 0);
		/* With a good blob, the outboard is rebuilt, logged, replaced. */
		CHECK_EQ_INT(fs_start(&f), 0);
		CHECK_EQ_INT(read_range(&f, 0, SIZE), SIZE);
		CHECK(strstr(f.log, "stored outboard not used") != NULL);
		fs_stop(&f);
		CHECK_EQ_INT(fs_start(&f), 0);
		CHECK_EQ_INT(read_range(&f, 0, SIZE), SIZE);
		CHECK_EQ_INT(f.n_log, 0); /* the replaced one is good */
		fixture_done(&f);
	}
}

TEST(truncated_outboard_and_short_blob)
{
	struct fixture f;
	CHECK_EQ_INT(fixture_init(&f), 0);
	CHECK_EQ_INT(truncate(f.ob_path, 100), 0);
	CHECK_EQ_INT(fs_start(&f), 0);
	CHECK_EQ_INT(read_range(&f, 0, SIZE), SIZE);
	CHECK(strstr(f.log, "stored outboard not used") != NULL);
	fs_stop(&f);
	/* A blob file cut short after the open checked its size. */
	CHECK_EQ_INT(fs_start(&f), 0);
	struct casfs_fs_file *file;
	CHECK_EQ_INT(casfs_fs_file_get(f.fs, f.ino, &file), 0);
	CHECK_EQ_INT(truncate(f.blob_path, 4 * G + 10), 0);
	uint8_t buf[100];
	CHECK_EQ_INT(casfs_fs_read(f.fs, file, buf, sizeof(buf), 5 * G), -EIO);
	CHECK(strstr(f.log, "ends at offset") != NULL);
	casfs_fs_file_put(f.fs, file);
	fixture_done(&f);
}

struct reader_arg {
	struct fixture *f;
	unsigned seed;
	int bad;
};

static void *reader(void *p)
{
	struct reader_arg *a = p;
	for (int i = 0; i < 200; i++) {
		a->seed = a->seed * 1103515245 + 12345;
		uint64_t off = (a->seed >> 4) % SIZE;
		size_t len = (size_t)MIN((uint64_t)(1 + (a->seed >> 8) % (2 * G)), SIZE - off);
		ssize_t want = off / G == 2 || (off + len - 1) / G == 2 || (off < 2 * G && off + len > 3 * G)
				       ? -EIO : (ssize_t)len;
		if (read_range(a->f, off, len) != want)
			a->bad++;
	}
	return NULL;
}

TEST(concurrent_range_reads)
{
	struct fixture f;
	CHECK_EQ_INT(fixture_init(&f), 0);
	CHECK_EQ_INT(flip(f.blob_path, 2 * G + 77), 0);
	CHECK_EQ_INT(fs_start(&f), 0);
	pthread_t t[8];
	struct reader_arg a[8];
	for (int i = 0; i < 8; i++) {
		a[i] = (struct reader_arg){ .f = &f, .seed = (unsigned)i * 7919 + 1 };
		CHECK_EQ_INT(pthread_create(&t[i], NULL, reader, &a[i]), 0);
	}
	int bad = 0;
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		bad += a[i].bad;
	}
	CHECK_EQ_INT(bad, 0);
	fixture_done(&f);
}

static int collect(void *userdata, const void *p, size_t n)
{
	return casfs_buf_append(userdata, p, n);
}

#define SLICE (8u << 20) /* the export's */

TEST(export_without_mapping_hands_out_only_checked_slices)
{
	struct fixture f;
	CHECK_EQ_INT(fixture_init(&f), 0);
	/* a blob of three slices, the last one short */
	size_t size = 2 * SLICE + 1000;
	uint8_t *data = malloc(size);
	CHECK(data != NULL);
	for (size_t i = 0; i < size; i++)
		data[i] = (uint8_t)(i * 13 + (i >> 11));
	struct casfs_node n = { .type = CASFS_NODE_FILE, .name = "x", .name_len = 1, .size = size,
				.digest_set = true };
	CHECK_EQ_INT(casfs_blob_put(f.store->blobs, data, size, n.digest), 0);
	char hex[65], path[256], b3[CASFS_B3_STR_LEN + 1];
	casfs_hex_encode(n.digest, CASFS_B3_LEN, hex);
	casfs_b3_format(n.digest, b3);
	snprintf(path, sizeof(path), "%s/blobs/%.2s/%s", f.dir, hex, hex + 2);

	struct casfs_buf out = CASFS_BUF_INIT;
	struct casfs_error err = { 0 };
	spy_reset(f.spy);
	CHECK_EQ_INT(casfs_export_file(f.store, &n, collect, &out, &err), 0);
	CHECK_EQ_INT(out.len, size);
	CHECK(memcmp(out.data, data, size) == 0);
	CHECK_EQ_INT(spy_bytes(f.spy), size); /* read once: checked and handed out */
	/* Damage in each slice stops the export before that slice. */
	const uint64_t at[] = { 5, SLICE + 3 * G + 5, 2 * SLICE, size - 1 };
	for (size_t k = 0; k < ARRAY_SIZE(at); k++) {
		CHECK_EQ_INT(flip(path, at[k]), 0);
		out.len = 0;
		CHECK_EQ_INT(casfs_export_file(f.store, &n, collect, &out, &err), -EBADMSG);
		CHECK_EQ_INT(out.len, at[k] / SLICE * SLICE);
		CHECK(memcmp(out.data, data, out.len) == 0);
		char want[64];
		snprintf(want, sizeof(want), "at offset %llu ", (unsigned long long)(at[k] / G * G));
		const char *msg = casfs_error_message(&err, -EBADMSG);
		if (!strstr(msg, b3) || !strstr(msg, want))
			FAILF("damage at %llu: '%s'", (unsigned long long)at[k], msg);
		casfs_error_clear(&err);
		CHECK_EQ_INT(flip(path, at[k]), 0);
	}
	casfs_buf_release(&out);
	free(data);
	fixture_done(&f);
}
