/* Outboards in the local store (layout version 2, local-store.h): the
 * blob writer stores DIR/outboards/XX/REST for every blob of more than one
 * group and none for smaller ones; a version 1 store (no outboards/) is
 * read as it is by a read-only open and upgraded by a writable one;
 * casfs_blob_outboard (castore/blob.c) returns a checked outboard, stored
 * or built from a good blob, and stores it again where it can; imports
 * fill in what is missing.  The expected group CVs are computed here
 * group by group with casfs_b3_subtree_cv, not with the stream hasher the
 * code under test uses.  tests/sh/test-store-upgrade.sh does the same with
 * a version 1 store made by the casfs before outboards. */
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/encoding.h"
#include "basic/util.h"
#include "digest/b3tree.h"
#include "digest/outboard.h"
#include "store/import.h"
#include "store/ingest.h"
#include "store/local-store.h"
#include "store/store.h"

#define KIB 1024u
#define V1_MARKER "casfs-store-version 1\n"
#define V2_MARKER "casfs-store-version 2\n"

/* ---- fixtures ---------------------------------------------------------- */

/* Bytes that differ between seeds and have no all-zero 4 KiB run. */
static uint8_t *pattern(size_t n, unsigned seed)
{
	uint8_t *p = malloc(n ? n : 1);
	uint32_t x = 0x9e3779b9u * (seed + 1);
	for (size_t i = 0; p && i < n; i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		p[i] = (uint8_t)(x | 1);
	}
	return p;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	chmod(path, 0755); /* outboards and blobs are 0444 */
	return remove(path);
}

static void rm_rf(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A temp dir; the store goes to <tmp>/store. */
struct fixture {
	char tmp[64];
	char dir[96];
	struct casfs_store *s;
};

static int fixture_tmp(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->tmp, sizeof(f->tmp), "/tmp/casfs-test-outboard-XXXXXX");
	if (!mkdtemp(f->tmp))
		return -errno;
	snprintf(f->dir, sizeof(f->dir), "%s/store", f->tmp);
	return 0;
}

static void fixture_close(struct fixture *f)
{
	casfs_store_free(f->s);
	f->s = NULL;
}

static void fixture_done(struct fixture *f)
{
	fixture_close(f);
	if (f->tmp[0])
		rm_rf(f->tmp);
}

static int fixture_open(struct fixture *f, unsigned flags)
{
	fixture_close(f);
	struct casfs_error err = { 0 };
	int r = casfs_store_open(f->dir, flags, &f->s, &err);
	if (r < 0)
		printf("  open %s: %s\n", f->dir, casfs_error_message(&err, r));
	return r;
}

static void sub_path(const struct fixture *f, const char *top, const uint8_t d[CASFS_B3_LEN],
		     char *out, size_t cap)
{
	char hex[CASFS_B3_LEN * 2 + 1];
	casfs_hex_encode(d, CASFS_B3_LEN, hex);
	snprintf(out, cap, "%s/%s/%.2s/%s", f->dir, top, hex, hex + 2);
}

static void ob_path(const struct fixture *f, const uint8_t d[CASFS_B3_LEN], char *out, size_t cap)
{
	sub_path(f, "outboards", d, out, cap);
}

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/* The whole file, malloc'd; -errno. */
static ssize_t slurp(const char *path, uint8_t **ret)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return -errno;
	}
	uint8_t *p = malloc((size_t)st.st_size + 1);
	ssize_t n = p ? pread(fd, p, (size_t)st.st_size, 0) : -ENOMEM;
	close(fd);
	if (n != (ssize_t)st.st_size) {
		free(p);
		return n < 0 ? n : -EIO;
	}
	*ret = p;
	return n;
}

/* Replace a (0444) file's bytes. */
static int write_file(const char *path, const void *p, size_t n)
{
	chmod(path, 0644);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	ssize_t k = n ? write(fd, p, n) : 0;
	close(fd);
	return k == (ssize_t)n ? 0 : -EIO;
}

static int read_marker(const struct fixture *f, char *buf, size_t cap)
{
	char path[160];
	snprintf(path, sizeof(path), "%s/%s", f->dir, CASFS_LOCAL_STORE_MARKER);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, cap - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return 0;
}

/* Fan-out directories 00..ff under DIR/outboards: how many exist, or
 * -errno if outboards/ itself does not. */
static int count_fanouts(const struct fixture *f)
{
	char path[160];
	snprintf(path, sizeof(path), "%s/outboards", f->dir);
	struct stat st;
	if (stat(path, &st) < 0)
		return -errno;
	int n = 0;
	for (unsigned i = 0; i < 256; i++) {
		char fan[176];
		snprintf(fan, sizeof(fan), "%s/%02x", path, i);
		n += stat(fan, &st) == 0 && S_ISDIR(st.st_mode);
	}
	return n;
}

/* Files anywhere under DIR/outboards (0 if it does not exist). */
static int count_outboard_files(const struct fixture *f)
{
	char path[160];
	snprintf(path, sizeof(path), "%s/outboards", f->dir);
	int n = 0;
	for (unsigned i = 0; i < 256; i++) {
		char fan[176];
		snprintf(fan, sizeof(fan), "%s/%02x", path, i);
		DIR *d = opendir(fan);
		if (!d)
			continue;
		struct dirent *de;
		while ((de = readdir(d)))
			n += de->d_name[0] != '.';
		closedir(d);
	}
	return n;
}

/* Turn the (closed) store into what version 1 left: no outboards/, the
 * old marker. */
static int make_v1(const struct fixture *f)
{
	char path[160];
	snprintf(path, sizeof(path), "%s/outboards", f->dir);
	rm_rf(path);
	if (exists(path))
		return -EEXIST;
	snprintf(path, sizeof(path), "%s/%s", f->dir, CASFS_LOCAL_STORE_MARKER);
	return write_file(path, V1_MARKER, strlen(V1_MARKER));
}

/* The group CVs of data[0, n), group by group. */
static uint8_t (*expected_cvs(const uint8_t *data, size_t n, size_t *ret_groups))[CASFS_B3_LEN]
{
	size_t groups = (n + CASFS_OUTBOARD_GROUP_LEN - 1) / CASFS_OUTBOARD_GROUP_LEN;
	uint8_t (*cvs)[CASFS_B3_LEN] = malloc(groups * CASFS_B3_LEN);
	for (size_t g = 0; cvs && g < groups; g++) {
		size_t off = g * CASFS_OUTBOARD_GROUP_LEN;
		casfs_b3_subtree_cv(data + off, MIN((size_t)CASFS_OUTBOARD_GROUP_LEN, n - off),
				    off / CASFS_B3_CHUNK_LEN, cvs[g]);
	}
	*ret_groups = groups;
	return cvs;
}

/* Whether `ob` is the right outboard of data[0, n) (prints why not). */
static bool outboard_ok(const struct casfs_outboard *ob, const uint8_t *data, size_t n)
{
	size_t groups;
	_cleanup_free_ uint8_t (*cvs)[CASFS_B3_LEN] = expected_cvs(data, n, &groups);
	if (!cvs)
		return false;
	if (ob->size != n || ob->shift != CASFS_OUTBOARD_GROUP_SHIFT || ob->n != groups || !ob->cvs) {
		printf("  outboard: size %llu shift %u n %zu, expected %zu, %u, %zu\n",
		       (unsigned long long)ob->size, ob->shift, ob->n, n, CASFS_OUTBOARD_GROUP_SHIFT,
		       groups);
		return false;
	}
	for (size_t g = 0; g < groups; g++)
		if (memcmp(ob->cvs[g], cvs[g], CASFS_B3_LEN) != 0) {
			printf("  outboard: CV of group %zu differs\n", g);
			return false;
		}
	return true;
}

/* Whether the outboard file of blob `d` (data[0, n)) decodes against it
 * and holds the right CVs. */
static bool outboard_file_ok(const struct fixture *f, const uint8_t d[CASFS_B3_LEN],
			     const uint8_t *data, size_t n)
{
	char path[256];
	ob_path(f, d, path, sizeof(path));
	_cleanup_free_ uint8_t *p = NULL;
	ssize_t len = slurp(path, &p);
	if (len < 0) {
		printf("  %s: %s\n", path, strerror((int)-len));
		return false;
	}
	struct casfs_outboard ob;
	struct casfs_error err = { 0 };
	int r = casfs_outboard_decode(p, (size_t)len, d, n, &ob, &err);
	if (r < 0) {
		printf("  %s: %s\n", path, casfs_error_message(&err, r));
		return false;
	}
	bool ok = outboard_ok(&ob, data, n);
	casfs_outboard_release(&ob);
	return ok;
}

/* casfs_blob_outboard on blob `d`: its return value; the source in *src,
 * what was wrong with a stored one in *stored, and whether the CVs are
 * those of data[0, n) in *good. */
static int blob_outboard(struct casfs_store *s, const uint8_t d[CASFS_B3_LEN], const uint8_t *data,
			 size_t n, enum casfs_outboard_source *src, struct casfs_error *stored,
			 bool *good)
{
	struct casfs_blob_reader *r;
	*good = false;
	*src = (enum casfs_outboard_source)-1;
	memset(stored, 0, sizeof(*stored));
	int rc = casfs_blob_open(s->blobs, d, &r);
	if (rc < 0)
		return rc;
	struct casfs_outboard ob = { 0 };
	struct casfs_error err = { 0 };
	rc = casfs_blob_outboard(s->blobs, r, &ob, src, stored, &err);
	casfs_blob_reader_close(r);
	if (rc < 0) {
		printf("  (casfs_blob_outboard: %s)\n", casfs_error_message(&err, rc));
		return rc;
	}
	*good = outboard_ok(&ob, data, n);
	casfs_outboard_release(&ob);
	return rc;
}

/* The store's content for the version 1 tests: two large blobs (one of
 * several groups and a short last one, one of exactly two groups) and a
 * small one. */
struct blobs {
	size_t n[3];
	uint8_t *data[3];
	uint8_t d[3][CASFS_B3_LEN];
};

static int blobs_put(struct blobs *b, struct casfs_store *s)
{
	static const size_t sizes[3] = { 200 * KIB + 7, 128 * KIB, 10 };
	for (int i = 0; i < 3; i++) {
		b->n[i] = sizes[i];
		if (!(b->data[i] = pattern(sizes[i], 10 + (unsigned)i)))
			return -ENOMEM;
		int r = casfs_blob_put(s->blobs, b->data[i], b->n[i], b->d[i]);
		if (r < 0)
			return r;
	}
	return casfs_blob_sync(s->blobs);
}

static void blobs_free(struct blobs *b)
{
	for (int i = 0; i < 3; i++)
		free(b->data[i]);
}

/* ---- a new store ------------------------------------------------------- */

TEST(new_store_layout_version_2)
{
	struct fixture f;
	char marker[64];
	CHECK_EQ_INT(fixture_tmp(&f), 0);
	CHECK_EQ_INT(fixture_open(&f, CASFS_STORE_CREATE), 0);
	CHECK_EQ_INT(read_marker(&f, marker, sizeof(marker)), 0);
	CHECK_EQ_STR(marker, V2_MARKER);
	CHECK_EQ_INT(count_fanouts(&f), 256);
	CHECK_EQ_INT(count_outboard_files(&f), 0);
	fixture_done(&f);
}

TEST(put_large_blob_writes_outboard)
{
	struct fixture f;
	CHECK_EQ_INT(fixture_tmp(&f), 0);
	CHECK_EQ_INT(fixture_open(&f, CASFS_STORE_CREATE), 0);
	const size_t n = 200 * KIB;
	_cleanup_free_ uint8_t *data = pattern(n, 1);
	CHECK(data);
	uint8_t d[CASFS_B3_LEN], want[CASFS_B3_LEN];
	casfs_b3(data, n, want);
	CHECK_EQ_INT(casfs_blob_put(f.s->blobs, data, n, d), 0);
	CHECK_EQ_MEM(d, want, CASFS_B3_LEN);

	char path[256];
	ob_path(&f, d, path, sizeof(path));
	struct stat st;
	CHECK_EQ_INT(stat(path, &st), 0);
	CHECK(S_ISREG(st.st_mode));
	CHECK_EQ_INT(st.st_mode & 07777, 0444);
	/* header + 4 CVs (200 KiB is 3 groups and an eighth) */
	CHECK_EQ_INT(st.st_size, CASFS_OUTBOARD_HEADER_LEN + 4 * CASFS_B3_LEN);
	CHECK(outboard_file_ok(&f, d, data, n));
	/* The CVs hash up to the digest (a check of the expectation itself). */
	size_t groups;
	_cleanup_free_ uint8_t (*cvs)[CASFS_B3_LEN] = expected_cvs(data, n, &groups);
	CHECK(cvs);
	uint8_t root[CASFS_B3_LEN];
	casfs_b3_root_from_groups(cvs, groups, root);
	CHECK_EQ_MEM(root, want, CASFS_B3_LEN);

	/* The same bytes as the outboard casfs_blob_verify yields. */
	_cleanup_free_ uint8_t *file = NULL, *enc = NULL;
	ssize_t len = slurp(path, &file);
	CHECK(len > 0);
	struct casfs_blob_reader *r;
	CHECK_EQ_INT(casfs_blob_open(f.s->blobs, d, &r), 0);
	struct casfs_outboard ob = { 0 };
	struct casfs_error err = { 0 };
	int v = casfs_blob_verify(r, &ob, &err);
	casfs_blob_reader_close(r);
	CHECK_EQ_INT(v, 0);
	size_t enc_len = 0;
	v = casfs_outboard_encode(&ob, &enc, &enc_len);
	bool same = outboard_ok(&ob, data, n);
	casfs_outboard_release(&ob);
	CHECK_EQ_INT(v, 0);
	CHECK(same);
	CHECK_EQ_INT(enc_len, len);
	CHECK_EQ_MEM(enc, file, enc_len);

	/* casfs_blob_outboard finds it. */
	enum casfs_outboard_source src;
	struct casfs_error stored;
	bool good;
	CHECK_EQ_INT(blob_outboard(f.s, d, data, n, &src, &stored, &good), 0);
	CHECK_EQ_INT(src, CASFS_OUTBOARD_STORED);
	CHECK(good);

	/* Putting it again keeps the one file; nothing is left in tmp/. */
	CHECK_EQ_INT(casfs_blob_put(f.s->blobs, data, n, d), 0);
	CHECK_EQ_INT(count_outboard_files(&f), 1);
	char tmp[160];
	snprintf(tmp, sizeof(tmp), "%s/tmp", f.dir);
	DIR *dir = opendir(tmp);
	CHECK(dir);
	int left = 0;
	struct dirent *de;
	while ((de = readdir(dir)))
		left += de->d_name[0] != '.';
	closedir(dir);
	CHECK_EQ_INT(left, 0);
	fixture_done(&f);
}

/* Written through a blob writer in pieces that do not fall on group
 * boundaries, including a run of zeros left as a hole. */
TEST(writer_in_pieces_writes_outboard)
{
	struct fixture f;
	CHECK_EQ_INT(fixture_tmp(&f), 0);
	CHECK_EQ_INT(fixture_open(&f, CASFS_STORE_CREATE), 0);
	const size_t n = 1024 * KIB + 333;
	_cleanup_free_ uint8_t *data = pattern(n, 2);
	CHECK(data);
	memset(data + 300 * KIB, 0, 150 * KIB);
	struct casfs_blob_writer *w;
	CHECK_EQ_INT(casfs_blob_create(f.s->blobs, &w), 0);
	static const size_t steps[] = { 1, 4095, 65536, 70000, 13 };
	size_t off = 0;
	for (size_t i = 0; off < n; i++) {
		size_t k = MIN(steps[i % ARRAY_SIZE(steps)], n - off);
		if (off < 300 * KIB && off + k > 300 * KIB)
			k = 300 * KIB - off; /* the zeros as their own pieces */
		int r = casfs_blob_writer_write(w, data + off, k);
		if (r < 0) {
			casfs_blob_writer_abort(w);
			FAILF("write at %zu: %d", off, r);
			fixture_done(&f);
			return;
		}
		off += k;
	}
	uint8_t d[CASFS_B3_LEN], want[CASFS_B3_LEN];
	uint64_t size = 0;
	CHECK_EQ_INT(casfs_blob_writer_commit(w, NULL, d, &size), 0);
	casfs_b3(data, n, want);
	CHECK_EQ_MEM(d, want, CASFS_B3_LEN);
	CHECK_EQ_INT(size, n);
	CHECK(outboard_file_ok(&f, d, data, n));
	fixture_done(&f);
}

TEST(small_blobs_have_no_outboard)
{
	struct fixture f;
	CHECK_EQ_INT(fixture_tmp(&f), 0);
	CHECK_EQ_INT(fixture_open(&f, CASFS_STORE_CREATE), 0);
	static const size_t sizes[] = { 0, 10, 64 * KIB };
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		_cleanup_free_ uint8_t *data = pattern(sizes[i], 3);
		CHECK(data);
		uint8_t d[CASFS_B3_LEN];
		char path[256];
		CHECK_EQ_INT(casfs_blob_put(f.s->blobs, data, sizes[i], d), 0);
		ob_path(&f, d, path, sizeof(path));
		if (exists(path)) {
			FAILF("a %zu-byte blob got an outboard file", sizes[i]);
			break;
		}
		/* no outboard to be had either: verify yields n == 0... */
		struct casfs_blob_reader *r;
		CHECK_EQ_INT(casfs_blob_open(f.s->blobs, d, &r), 0);
		struct casfs_outboard ob = { .n = 99 };
		int v = casfs_blob_verify(r, &ob, NULL);
		size_t groups = ob.n;
		casfs_outboard_release(&ob);
		/* ...and casfs_blob_outboard refuses (and stores nothing) */
		struct casfs_error err = { 0 };
		int o = casfs_blob_outboard(f.s->blobs, r, &ob, NULL, NULL, &err);
		casfs_blob_reader_close(r);
		CHECK_EQ_INT(v, 0);
		CHECK_EQ_INT(groups, 0);
		CHECK(o < 0);
		CHECK(!exists(path));
	}
	CHECK_EQ_INT(count_outboard_files(&f), 0);

	/* One byte more than a group: two groups, an outboard. */
	const size_t n = 64 * KIB + 1;
	_cleanup_free_ uint8_t *data = pattern(n, 4);
	CHECK(data);
	uint8_t d[CASFS_B3_LEN];
	CHECK_EQ_INT(casfs_blob_put(f.s->blobs, data, n, d), 0);
	CHECK(outboard_file_ok(&f, d, data, n));
	CHECK_EQ_INT(count_outboard_files(&f), 1);
	fixture_done(&f);
}

/* A fan-out directory of outboards/ that went missing is made again. */
TEST(missing_fanout_made_again)
{
	struct fixture f;
	CHECK_EQ_INT(fixture_tmp(&f), 0);
	CHECK_EQ_INT(fixture_open(&f, CASFS_STORE_CREATE), 0);
	const size_t n = 300 * KIB;
	_cleanup_free_ uint8_t *data = pattern(n, 5);
	CHECK(data);
	uint8_t d[CASFS_B3_LEN];
	casfs_b3(data, n, d);
	char path[256], fan[256];
	ob_path(&f, d, path, sizeof(path));
	snprintf(fan, sizeof(fan), "%s", path);
	*strrchr(fan, '/') = 0;
	CHECK_EQ_INT(rmdir(fan), 0);
	CHECK_EQ_INT(casfs_blob_put(f.s->blobs, data, n, d), 0);
	CHECK(outboard_file_ok(&f, d, data, n));
	fixture_done(&f);
}

/* Removing a blob removes its outboard. */
TEST(remove_takes_outboard)
{
	struct fixture f;
	CHECK_EQ_INT(fixture_tmp(&f), 0);
	CHECK_EQ_INT(fixture_open(&f, CASFS_STORE_CREATE), 0);
	const size_t n = 100 * KIB;
	_cleanup_free_ uint8_t *data = pattern(n, 6);
	CHECK(data);
	uint8_t d[CASFS_B3_LEN];
	char path[256];
	CHECK_EQ_INT(casfs_blob_put(f.s->blobs, data, n, d), 0);
	ob_path(&f, d, path, sizeof(path));
	CHECK(exists(path));
	CHECK_EQ_INT(f.s->blobs->ops->remove(f.s->blobs, d), 0);
	CHECK(!exists(path));
	fixture_done(&f);
}

/* ---- version 1 stores -------------------------------------------------- */

/* A store with `b` in it, closed and turned into version 1. */
static int v1_store(struct fixture *f, struct blobs *b)
{
	int r = fixture_tmp(f);
	if (r >= 0)
		r = fixture_open(f, CASFS_STORE_CREATE);
	if (r >= 0)
		r = blobs_put(b, f->s);
	if (r >= 0 && count_outboard_files(f) != 2)
		r = -EIO;
	fixture_close(f);
	return r >= 0 ? make_v1(f) : r;
}

TEST(v1_readonly_as_is)
{
	struct fixture f;
	struct blobs b = { 0 };
	char marker[64];
	int r = v1_store(&f, &b);
	if (r < 0) {
		FAILF("make a version 1 store: %d", r);
		goto out;
	}
	if (fixture_open(&f, CASFS_STORE_READONLY) < 0) {
		FAILF("read-only open of a version 1 store failed");
		goto out;
	}
	for (int round = 0; round < 2; round++)
		for (int i = 0; i < 2; i++) {
			enum casfs_outboard_source src;
			struct casfs_error stored;
			bool good;
			r = blob_outboard(f.s, b.d[i], b.data[i], b.n[i], &src, &stored, &good);
			if (r < 0 || src != CASFS_OUTBOARD_BUILT || !good) {
				FAILF("round %d blob %d: r %d source %d good %d", round, i, r, (int)src,
				      good);
				goto out;
			}
		}
	/* the content reads as before */
	for (int i = 0; i < 3; i++) {
		struct casfs_blob_reader *rd;
		if (casfs_blob_open(f.s->blobs, b.d[i], &rd) < 0) {
			FAILF("blob %d cannot be opened", i);
			goto out;
		}
		r = casfs_blob_verify(rd, NULL, NULL);
		uint64_t size = rd->size;
		casfs_blob_reader_close(rd);
		if (r < 0 || size != b.n[i]) {
			FAILF("blob %d: verify %d, size %llu", i, r, (unsigned long long)size);
			goto out;
		}
	}
	/* writes are refused, and nothing was made */
	uint8_t d[CASFS_B3_LEN];
	if (casfs_blob_put(f.s->blobs, "x", 1, d) != -EROFS)
		FAILF("a put into a read-only store did not fail with -EROFS");
	fixture_close(&f);
	if (read_marker(&f, marker, sizeof(marker)) < 0 || strcmp(marker, V1_MARKER) != 0)
		FAILF("marker changed by a read-only open: \"%s\"", marker);
	char path[160];
	snprintf(path, sizeof(path), "%s/outboards", f.dir);
	if (exists(path))
		FAILF("a read-only open made %s", path);
	/* and it reopens read-only again */
	if (fixture_open(&f, CASFS_STORE_READONLY) < 0)
		FAILF("second read-only open failed");
out:
	blobs_free(&b);
	fixture_done(&f);
}

TEST(v1_writable_upgrades)
{
	struct fixture f;
	struct blobs b = { 0 };
	char marker[64], path[256];
	uint8_t *data = NULL;
	int r = v1_store(&f, &b);
	if (r < 0) {
		FAILF("make a version 1 store: %d", r);
		goto out;
	}
	if (fixture_open(&f, 0) < 0) {
		FAILF("writable open of a version 1 store failed");
		goto out;
	}
	if (read_marker(&f, marker, sizeof(marker)) < 0 || strcmp(marker, V2_MARKER) != 0) {
		FAILF("marker after a writable open: \"%s\"", marker);
		goto out;
	}
	if ((r = count_fanouts(&f)) != 256) {
		FAILF("outboards/ has %d fan-out directories", r);
		goto out;
	}
	if (count_outboard_files(&f) != 0) {
		FAILF("the upgrade wrote outboards (they are filled lazily)");
		goto out;
	}
	for (int i = 0; i < 2; i++) {
		enum casfs_outboard_source src;
		struct casfs_error stored;
		bool good;
		r = blob_outboard(f.s, b.d[i], b.data[i], b.n[i], &src, &stored, &good);
		if (r < 0 || src != CASFS_OUTBOARD_BUILT || !good) {
			FAILF("first: blob %d: r %d source %d good %d", i, r, (int)src, good);
			goto out;
		}
		if (!outboard_file_ok(&f, b.d[i], b.data[i], b.n[i])) {
			FAILF("blob %d: no good outboard file after the first casfs_blob_outboard", i);
			goto out;
		}
		r = blob_outboard(f.s, b.d[i], b.data[i], b.n[i], &src, &stored, &good);
		if (r < 0 || src != CASFS_OUTBOARD_STORED || !good) {
			FAILF("second: blob %d: r %d source %d good %d", i, r, (int)src, good);
			goto out;
		}
	}
	sub_path(&f, "outboards", b.d[2], path, sizeof(path));
	if (exists(path))
		FAILF("the small blob got an outboard");
	/* new blobs get theirs at once */
	data = pattern(150 * KIB, 7);
	uint8_t d[CASFS_B3_LEN];
	if (!data || casfs_blob_put(f.s->blobs, data, 150 * KIB, d) < 0 ||
	    !outboard_file_ok(&f, d, data, 150 * KIB))
		FAILF("a new blob in the upgraded store has no good outboard");
	/* still version 2, and opens read-only with its outboards */
	fixture_close(&f);
	if (fixture_open(&f, CASFS_STORE_READONLY) < 0) {
		FAILF("read-only open of the upgraded store failed");
		goto out;
	}
	enum casfs_outboard_source src;
	struct casfs_error stored;
	bool good;
	r = blob_outboard(f.s, b.d[0], b.data[0], b.n[0], &src, &stored, &good);
	if (r < 0 || src != CASFS_OUTBOARD_STORED || !good)
		FAILF("read-only, upgraded: r %d source %d good %d", r, (int)src, good);
	if (read_marker(&f, marker, sizeof(marker)) < 0 || strcmp(marker, V2_MARKER) != 0)
		FAILF("marker after reopening: \"%s\"", marker);
out:
	free(data);
	blobs_free(&b);
	fixture_done(&f);
}

/* An upgrade cut short after outboards/ was (partly) made, before the new
 * marker: still version 1 to a read-only open; the next writable open
 * finishes it. */
TEST(v1_upgrade_cut_short)
{
	struct fixture f;
	struct blobs b = { 0 };
	char marker[64], path[256];
	int r = v1_store(&f, &b);
	if (r < 0) {
		FAILF("make a version 1 store: %d", r);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/outboards", f.dir);
	if (mkdir(path, 0755) < 0) {
		FAILF("mkdir %s: %s", path, strerror(errno));
		goto out;
	}
	snprintf(path, sizeof(path), "%s/outboards/00", f.dir);
	if (mkdir(path, 0755) < 0) {
		FAILF("mkdir %s: %s", path, strerror(errno));
		goto out;
	}
	if (fixture_open(&f, CASFS_STORE_READONLY) < 0) {
		FAILF("read-only open of a half-upgraded version 1 store failed");
		goto out;
	}
	enum casfs_outboard_source src;
	struct casfs_error stored;
	bool good;
	r = blob_outboard(f.s, b.d[0], b.data[0], b.n[0], &src, &stored, &good);
	if (r < 0 || src != CASFS_OUTBOARD_BUILT || !good) {
		FAILF("read-only: r %d source %d good %d", r, (int)src, good);
		goto out;
	}
	fixture_close(&f);
	if (read_marker(&f, marker, sizeof(marker)) < 0 || strcmp(marker, V1_MARKER) != 0) {
		FAILF("marker changed by a read-only open: \"%s\"", marker);
		goto out;
	}
	if (fixture_open(&f, 0) < 0) {
		FAILF("writable open of a half-upgraded store failed");
		goto out;
	}
	if (read_marker(&f, marker, sizeof(marker)) < 0 || strcmp(marker, V2_MARKER) != 0)
		FAILF("marker after the writable open: \"%s\"", marker);
	if ((r = count_fanouts(&f)) != 256)
		FAILF("outboards/ has %d fan-out directories", r);
	r = blob_outboard(f.s, b.d[0], b.data[0], b.n[0], &src, &stored, &good);
	if (r < 0 || src != CASFS_OUTBOARD_BUILT || !good)
		FAILF("writable: r %d source %d good %d", r, (int)src, good);
out:
	blobs_free(&b);
	fixture_done(&f);
}

/* Markers of other versions are still refused. */
TEST(other_versions_refused)
{
	static const char *const bad[] = { "casfs-store-version 3\n", "casfs-store-version 0\n",
					   "casfs-store-version 2", "casfs-store-version 1\n\n" };
	struct fixture f;
	CHECK_EQ_INT(fixture_tmp(&f), 0);
	CHECK_EQ_INT(fixture_open(&f, CASFS_STORE_CREATE), 0);
	fixture_close(&f);
	char path[160];
	snprintf(path, sizeof(path), "%s/%s", f.dir, CASFS_LOCAL_STORE_MARKER);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		CHECK_EQ_INT(write_file(path, bad[i], strlen(bad[i])), 0);
		struct casfs_error err = { 0 };
		int r = casfs_store_open(f.dir, 0, &f.s, &err);
		if (r != -EBADMSG) {
			FAILF("marker \"%s\": open gave %d, expected -EBADMSG", bad[i], r);
			break;
		}
		r = casfs_store_open(f.dir, CASFS_STORE_READONLY, &f.s, &err);
		if (r != -EBADMSG) {
			FAILF("marker \"%s\": read-only open gave %d, expected -EBADMSG", bad[i], r);
			break;
		}
	}
	fixture_done(&f);
}

/* ---- damaged outboards ------------------------------------------------- */

enum damage { FLIP_CV, FLIP_SIZE, TRUNCATE, EMPTY, GARBAGE, OTHER_BLOB, LONGER, N_DAMAGE };
static const char *const damage_names[] = { "flipped CV byte", "flipped size byte", "truncated",
					    "empty",           "garbage",           "other blob's",
					    "one CV too many" };

/* Damage the outboard file `path` (good bytes in good[0, len)) as `how`;
 * `other` is the outboard file of another blob. */
static int damage(const char *path, enum damage how, const uint8_t *good, size_t len,
		  const char *other)
{
	_cleanup_free_ uint8_t *p = malloc(len + CASFS_B3_LEN);
	if (!p)
		return -ENOMEM;
	memcpy(p, good, len);
	switch (how) {
	case FLIP_CV:
		p[CASFS_OUTBOARD_HEADER_LEN + CASFS_B3_LEN + 5] ^= 0x40;
		return write_file(path, p, len);
	case FLIP_SIZE:
		p[17] ^= 0x01;
		return write_file(path, p, len);
	case TRUNCATE:
		return write_file(path, p, len - 7);
	case EMPTY:
		return write_file(path, p, 0);
	case GARBAGE:
		for (size_t i = 0; i < len; i++)
			p[i] = (uint8_t)(i * 7 + 3);
		return write_file(path, p, len);
	case OTHER_BLOB: {
		_cleanup_free_ uint8_t *q = NULL;
		ssize_t n = slurp(other, &q);
		return n < 0 ? (int)n : write_file(path, q, (size_t)n);
	}
	case LONGER:
		memcpy(p + len, good + len - CASFS_B3_LEN, CASFS_B3_LEN);
		return write_file(path, p, len + CASFS_B3_LEN);
	default:
		return -EINVAL;
	}
}

static void damaged_outboards(bool readonly)
{
	struct fixture f;
	CHECK_EQ_INT(fixture_tmp(&f), 0);
	CHECK_EQ_INT(fixture_open(&f, CASFS_STORE_CREATE), 0);
	const size_t n = 200 * KIB, n2 = 300 * KIB;
	_cleanup_free_ uint8_t *data = pattern(n, 8);
	_cleanup_free_ uint8_t *data2 = pattern(n2, 9);
	CHECK(data && data2);
	uint8_t d[CASFS_B3_LEN], d2[CASFS_B3_LEN];
	CHECK_EQ_INT(casfs_blob_put(f.s->blobs, data, n, d), 0);
	CHECK_EQ_INT(casfs_blob_put(f.s->blobs, data2, n2, d2), 0);
	CHECK_EQ_INT(casfs_blob_sync(f.s->blobs), 0);
	char path[256], other[256];
	ob_path(&f, d, path, sizeof(path));
	ob_path(&f, d2, other, sizeof(other));
	_cleanup_free_ uint8_t *good = NULL;
	ssize_t len = slurp(path, &good);
	CHECK(len > CASFS_OUTBOARD_HEADER_LEN + CASFS_B3_LEN);
	fixture_close(&f);

	for (int how = 0; how < N_DAMAGE; how++) {
		const char *name = damage_names[how];
		if (damage(path, (enum damage)how, good, (size_t)len, other) < 0) {
			FAILF("%s: cannot damage %s", name, path);
			break;
		}
		_cleanup_free_ uint8_t *bad = NULL;
		ssize_t bad_len = slurp(path, &bad);
		if (fixture_open(&f, readonly ? CASFS_STORE_READONLY : 0) < 0) {
			FAILF("%s: open failed", name);
			break;
		}
		enum casfs_outboard_source src;
		struct casfs_error stored;
		bool ok;
		int r = blob_outboard(f.s, d, data, n, &src, &stored, &ok);
		if (r < 0 || src != CASFS_OUTBOARD_REBUILT || !ok) {
			FAILF("%s: r %d source %d good %d", name, r, (int)src, ok);
			break;
		}
		if (!stored.msg[0] || stored.code >= 0) {
			FAILF("%s: stored_err has no message (code %d)", name, stored.code);
			break;
		}
		printf("  %s: %s\n", name, stored.msg);
		_cleanup_free_ uint8_t *now = NULL;
		ssize_t now_len = slurp(path, &now);
		if (readonly) {
			/* left alone; asked again, rebuilt again */
			if (now_len != bad_len || (now_len > 0 && memcmp(now, bad, (size_t)now_len))) {
				FAILF("%s: a read-only store changed the outboard file", name);
				break;
			}
			r = blob_outboard(f.s, d, data, n, &src, &stored, &ok);
			if (r < 0 || src != CASFS_OUTBOARD_REBUILT || !ok) {
				FAILF("%s, again: r %d source %d good %d", name, r, (int)src, ok);
				break;
			}
		} else {
			/* replaced by the good one, found the next time */
			if (now_len != len || memcmp(now, good, (size_t)len) != 0) {
				FAILF("%s: the outboard file was not replaced by a good one", name);
				break;
			}
			struct stat st;
			if (stat(path, &st) < 0 || (st.st_mode & 07777) != 0444) {
				FAILF("%s: the replaced outboard file is not mode 0444", name);
				break;
			}
			r = blob_outboard(f.s, d, data, n, &src, &stored, &ok);
			if (r < 0 || src != CASFS_OUTBOARD_STORED || !ok) {
				FAILF("%s, again: r %d source %d good %d", name, r, (int)src, ok);
				break;
			}
		}
		/* the other blob's outboard is untouched and good */
		if (!outboard_file_ok(&f, d2, data2, n2)) {
			FAILF("%s: the other blob's outboard went bad", name);
			break;
		}
		fixture_close(&f);
	}
	fixture_done(&f);
}

TEST(damaged_outboard_replaced)
{
	damaged_outboards(false);
}

TEST(damaged_outboard_readonly_left_alone)
{
	damaged_outboards(true);
}

/* Not a regular file where the outboard belongs: never read as one. */
TEST(outboard_not_a_file)
{
	struct fixture f;
	CHECK_EQ_INT(fixture_tmp(&f), 0);
	CHECK_EQ_INT(fixture_open(&f, CASFS_STORE_CREATE), 0);
	const size_t n = 200 * KIB;
	_cleanup_free_ uint8_t *data = pattern(n, 11);
	CHECK(data);
	uint8_t d[CASFS_B3_LEN];
	CHECK_EQ_INT(casfs_blob_put(f.s->blobs, data, n, d), 0);
	char path[256];
	ob_path(&f, d, path, sizeof(path));
	chmod(path, 0644);
	CHECK_EQ_INT(unlink(path), 0);
	CHECK_EQ_INT(mkdir(path, 0755), 0);
	enum casfs_outboard_source src;
	struct casfs_error stored;
	bool ok;
	CHECK_EQ_INT(blob_outboard(f.s, d, data, n, &src, &stored, &ok), 0);
	CHECK_EQ_INT(src, CASFS_OUTBOARD_REBUILT);
	CHECK(ok);
	CHECK(stored.msg[0]);
	fixture_done(&f);
}

/* ---- damaged blobs ----------------------------------------------------- */

/* Flip one byte of the blob file of `d`. */
static int damage_blob(const struct fixture *f, const uint8_t d[CASFS_B3_LEN], size_t at)
{
	char path[256];
	sub_path(f, "blobs", d, path, sizeof(path));
	chmod(path, 0644);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	uint8_t c;
	int r = pread(fd, &c, 1, (off_t)at) == 1 ? 0 : -EIO;
	c ^= 0x80;
	if (r == 0 && pwrite(fd, &c, 1, (off_t)at) != 1)
		r = -EIO;
	close(fd);
	return r;
}

/* A damaged blob whose outboard is missing or damaged: -EBADMSG, and no
 * outboard is made from its bytes. */
static void damaged_blob(bool readonly, bool outboard_damaged)
{
	struct fixture f;
	CHECK_EQ_INT(fixture_tmp(&f), 0);
	CHECK_EQ_INT(fixture_open(&f, CASFS_STORE_CREATE), 0);
	const size_t n = 256 * KIB + 100;
	_cleanup_free_ uint8_t *data = pattern(n, 12);
	CHECK(data);
	uint8_t d[CASFS_B3_LEN];
	CHECK_EQ_INT(casfs_blob_put(f.s->blobs, data, n, d), 0);
	CHECK_EQ_INT(casfs_blob_sync(f.s->blobs), 0);
	fixture_close(&f);
	char path[256];
	ob_path(&f, d, path, sizeof(path));
	_cleanup_free_ uint8_t *good = NULL;
	ssize_t len = slurp(path, &good);
	CHECK(len > 0);
	if (outboard_damaged) {
		good[CASFS_OUTBOARD_HEADER_LEN] ^= 1;
		CHECK_EQ_INT(write_file(path, good, (size_t)len), 0);
	} else {
		chmod(path, 0644);
		CHECK_EQ_INT(unlink(path), 0);
	}
	CHECK_EQ_INT(damage_blob(&f, d, 130 * KIB + 5), 0);
	CHECK_EQ_INT(fixture_open(&f, readonly ? CASFS_STORE_READONLY : 0), 0);
	struct casfs_blob_reader *r;
	CHECK_EQ_INT(casfs_blob_open(f.s->blobs, d, &r), 0);
	struct casfs_outboard ob = { 0 };
	struct casfs_error err = { 0 }, stored = { 0 };
	enum casfs_outboard_source src = (enum casfs_outboard_source)-1;
	int rc = casfs_blob_outboard(f.s->blobs, r, &ob, &src, &stored, &err);
	casfs_blob_reader_close(r);
	if (rc >= 0)
		casfs_outboard_release(&ob);
	CHECK_EQ_INT(rc, -EBADMSG);
	CHECK(err.msg[0]);
	printf("  %s\n", err.msg);
	if (outboard_damaged) {
		_cleanup_free_ uint8_t *now = NULL;
		CHECK_EQ_INT(slurp(path, &now), len);
		CHECK_EQ_MEM(now, good, (size_t)len); /* still the damaged one */
	} else {
		CHECK(!exists(path));
	}
	fixture_done(&f);
}

TEST(damaged_blob_missing_outboard)
{
	damaged_blob(false, false);
}

TEST(damaged_blob_missing_outboard_readonly)
{
	damaged_blob(true, false);
}

TEST(damaged_blob_damaged_outboard)
{
	damaged_blob(false, true);
}

/* A blob cut short (a different size than its outboard says), outboard
 * missing: -EBADMSG too. */
TEST(truncated_blob_missing_outboard)
{
	struct fixture f;
	CHECK_EQ_INT(fixture_tmp(&f), 0);
	CHECK_EQ_INT(fixture_open(&f, CASFS_STORE_CREATE), 0);
	const size_t n = 400 * KIB;
	_cleanup_free_ uint8_t *data = pattern(n, 13);
	CHECK(data);
	uint8_t d[CASFS_B3_LEN];
	CHECK_EQ_INT(casfs_blob_put(f.s->blobs, data, n, d), 0);
	CHECK_EQ_INT(casfs_blob_sync(f.s->blobs), 0);
	char path[256], blob[256];
	ob_path(&f, d, path, sizeof(path));
	sub_path(&f, "blobs", d, blob, sizeof(blob));
	chmod(path, 0644);
	CHECK_EQ_INT(unlink(path), 0);
	chmod(blob, 0644);
	CHECK_EQ_INT(truncate(blob, 300 * KIB), 0);
	struct casfs_blob_reader *r;
	CHECK_EQ_INT(casfs_blob_open(f.s->blobs, d, &r), 0);
	struct casfs_outboard ob = { 0 };
	struct casfs_error err = { 0 };
	int rc = casfs_blob_outboard(f.s->blobs, r, &ob, NULL, NULL, &err);
	casfs_blob_reader_close(r);
	if (rc >= 0)
		casfs_outboard_release(&ob);
	CHECK_EQ_INT(rc, -EBADMSG);
	CHECK(!exists(path));
	fixture_done(&f);
}

/* ---- imports fill in missing outboards --------------------------------- */

/* A tree with a file of more than CASFS_INGEST_SMALL_FILE (streamed, and
 * only hashed when known), one of exactly that size, one of 300 KiB (both
 * stored as one buffer) and a small one. */
#define TREE_FILES 4
static const size_t tree_sizes[TREE_FILES] = { 2 * CASFS_INGEST_SMALL_FILE + 5,
					       CASFS_INGEST_SMALL_FILE, 300 * KIB, 100 };

struct tree {
	char path[128];
	uint8_t *data[TREE_FILES];
	uint8_t d[TREE_FILES][CASFS_B3_LEN];
};

static int tree_make(struct tree *t, const struct fixture *f)
{
	snprintf(t->path, sizeof(t->path), "%s/tree", f->tmp);
	if (mkdir(t->path, 0755) < 0)
		return -errno;
	for (int i = 0; i < TREE_FILES; i++) {
		char p[192];
		snprintf(p, sizeof(p), "%s/f%d", t->path, i);
		if (!(t->data[i] = pattern(tree_sizes[i], 20 + (unsigned)i)))
			return -ENOMEM;
		int r = write_file(p, t->data[i], tree_sizes[i]);
		if (r < 0)
			return r;
		casfs_b3(t->data[i], tree_sizes[i], t->d[i]);
	}
	return 0;
}

static void tree_free(struct tree *t)
{
	for (int i = 0; i < TREE_FILES; i++)
		free(t->data[i]);
}

static int import(const struct fixture *f, const struct tree *t)
{
	struct casfs_import_result res;
	struct casfs_error err = { 0 };
	int r = casfs_import_path(f->s, t->path, NULL, &res, &err);
	if (r < 0)
		printf("  import %s: %s\n", t->path, casfs_error_message(&err, r));
	return r;
}

static int remove_outboards(const struct fixture *f, const struct tree *t)
{
	for (int i = 0; i < TREE_FILES; i++) {
		char p[256];
		ob_path(f, t->d[i], p, sizeof(p));
		if (unlink(p) < 0 && errno != ENOENT)
			return -errno;
	}
	return 0;
}

/* Which files of the tree have a good outboard: bit i for file i. */
static unsigned tree_outboards(const struct fixture *f, const struct tree *t)
{
	unsigned have = 0;
	for (int i = 0; i < TREE_FILES; i++) {
		char p[256];
		ob_path(f, t->d[i], p, sizeof(p));
		if (exists(p) && outboard_file_ok(f, t->d[i], t->data[i], tree_sizes[i]))
			have |= 1u << i;
	}
	return have;
}

/* Files 0, 1 and 2 are large enough for an outboard. */
#define TREE_WANTED 0x7u
/* The ones the import's hash jobs fill in: files streamed (over
 * CASFS_INGEST_SMALL_FILE) only. */
#define TREE_HASHED 0x1u

TEST(import_writes_outboards)
{
	struct fixture f;
	struct tree t = { 0 };
	if (fixture_tmp(&f) < 0 || tree_make(&t, &f) < 0 || fixture_open(&f, CASFS_STORE_CREATE) < 0 ||
	    import(&f, &t) < 0) {
		FAILF("setup failed");
		goto out;
	}
	unsigned have = tree_outboards(&f, &t);
	if (have != TREE_WANTED)
		FAILF("after the import, good outboards for files 0x%x, expected 0x%x", have,
		      TREE_WANTED);
out:
	tree_free(&t);
	fixture_done(&f);
}

/* Outboards deleted behind the store's back; importing the same tree
 * again writes those of the large files it hashes. */
TEST(reimport_fills_hashed)
{
	struct fixture f;
	struct tree t = { 0 };
	if (fixture_tmp(&f) < 0 || tree_make(&t, &f) < 0 || fixture_open(&f, CASFS_STORE_CREATE) < 0 ||
	    import(&f, &t) < 0) {
		FAILF("setup failed");
		goto out;
	}
	fixture_close(&f);
	if (remove_outboards(&f, &t) < 0 || tree_outboards(&f, &t) != 0) {
		FAILF("cannot remove the outboards");
		goto out;
	}
	if (fixture_open(&f, 0) < 0 || import(&f, &t) < 0) {
		FAILF("re-import failed");
		goto out;
	}
	unsigned have = tree_outboards(&f, &t);
	if ((have & TREE_HASHED) != TREE_HASHED)
		FAILF("after the re-import, good outboards for files 0x%x, expected 0x%x at least",
		      have, TREE_HASHED);
out:
	tree_free(&t);
	fixture_done(&f);
}

/* A version 1 store with the tree in it: a writable open for an import
 * upgrades it, and the import fills in the large files' outboards. */
TEST(v1_reimport_upgrades_and_fills)
{
	struct fixture f;
	struct tree t = { 0 };
	char marker[64];
	if (fixture_tmp(&f) < 0 || tree_make(&t, &f) < 0 || fixture_open(&f, CASFS_STORE_CREATE) < 0 ||
	    import(&f, &t) < 0) {
		FAILF("setup failed");
		goto out;
	}
	fixture_close(&f);
	if (make_v1(&f) < 0) {
		FAILF("cannot make it version 1");
		goto out;
	}
	/* read-only: readable as it is */
	if (fixture_open(&f, CASFS_STORE_READONLY) < 0) {
		FAILF("read-only open failed");
		goto out;
	}
	for (int i = 0; i < 3; i++) {
		enum casfs_outboard_source src;
		struct casfs_error stored;
		bool good;
		int r = blob_outboard(f.s, t.d[i], t.data[i], tree_sizes[i], &src, &stored, &good);
		if (r < 0 || src != CASFS_OUTBOARD_BUILT || !good) {
			FAILF("read-only: file %d: r %d source %d good %d", i, r, (int)src, good);
			goto out;
		}
	}
	fixture_close(&f);
	if (read_marker(&f, marker, sizeof(marker)) < 0 || strcmp(marker, V1_MARKER) != 0) {
		FAILF("marker changed by a read-only open: \"%s\"", marker);
		goto out;
	}
	if (fixture_open(&f, 0) < 0 || import(&f, &t) < 0) {
		FAILF("writable re-import failed");
		goto out;
	}
	if (read_marker(&f, marker, sizeof(marker)) < 0 || strcmp(marker, V2_MARKER) != 0)
		FAILF("marker after a writable import: \"%s\"", marker);
	if (count_fanouts(&f) != 256)
		FAILF("no complete outboards/ after the upgrade");
	unsigned have = tree_outboards(&f, &t);
	if ((have & TREE_HASHED) != TREE_HASHED)
		FAILF("after the re-import, good outboards for files 0x%x, expected 0x%x at least",
		      have, TREE_HASHED);
out:
	tree_free(&t);
	fixture_done(&f);
}

/* Files of 64 KiB < size <= CASFS_INGEST_SMALL_FILE are stored as one
 * buffer (blob-worker.c run_put): a re-import must fill their missing
 * outboards too (it did not, at first). */
TEST(reimport_fills_outboards_of_files_stored_as_one_buffer)
{
	struct fixture f;
	struct tree t = { 0 };
	if (fixture_tmp(&f) < 0 || tree_make(&t, &f) < 0 || fixture_open(&f, CASFS_STORE_CREATE) < 0 ||
	    import(&f, &t) < 0) {
		FAILF("setup failed");
		goto out;
	}
	fixture_close(&f);
	if (remove_outboards(&f, &t) < 0 || fixture_open(&f, 0) < 0 || import(&f, &t) < 0) {
		FAILF("re-import failed");
		goto out;
	}
	unsigned have = tree_outboards(&f, &t);
	if (have != TREE_WANTED)
		FAILF("after the re-import, good outboards for files 0x%x, expected 0x%x "
		      "(file 1: %zu bytes, file 2: %zu bytes; both stored as one buffer)",
		      have, TREE_WANTED, tree_sizes[1], tree_sizes[2]);
out:
	tree_free(&t);
	fixture_done(&f);
}
