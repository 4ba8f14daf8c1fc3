/* The service conformance suite: every CONFORMANCE test runs against each
 * backend (memory:, and a fresh local store in a temp dir), followed by
 * local-store-only tests (layout, damage on disk, markers, persistence).
 *
 * Blob digests are checked against the published BLAKE3 test vectors
 * (BLAKE3-team/BLAKE3 test_vectors.json: input byte i is i % 251). */
#include "test-lmdb.h"
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/buf.h"
#include "basic/encoding.h"
#include "basic/util.h"
#include "store/local-store.h"
#include "store/store.h"

/* ---- fixtures ---------------------------------------------------------- */

static const char vec_1[] = "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213";
static const char vec_102400[] = "bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085";
static const char vec_empty[] = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";

static uint8_t *vector_input(size_t n)
{
	uint8_t *p = malloc(n ? n : 1);
	for (size_t i = 0; p && i < n; i++)
		p[i] = (uint8_t)(i % 251);
	return p;
}

static void hex_digest(const char *hex, uint8_t out[CASFS_B3_LEN])
{
	casfs_hex_decode(hex, 64, out, CASFS_B3_LEN);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static void rm_rf(const char *dir)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A temp dir; the store goes to <tmp>/store. */
struct fixture {
	char tmp[64];
	char dir[96];
	struct casfs_store *s;
};

static int fixture_tmp(struct fixture *f)
{
	snprintf(f->tmp, sizeof(f->tmp), "/tmp/casfs-test-services-XXXXXX");
	if (!mkdtemp(f->tmp))
		return -errno;
	snprintf(f->dir, sizeof(f->dir), "%s/store", f->tmp);
	return 0;
}

static int fixture_open(struct fixture *f, bool local)
{
	memset(f, 0, sizeof(*f));
	struct casfs_error err = { 0 };
	if (!local)
		return casfs_store_open("memory:", 0, &f->s, &err);
	int r = fixture_tmp(f);
	if (r < 0)
		return r;
	char url[128];
	snprintf(url, sizeof(url), "local:%s", f->dir);
	r = casfs_store_open(url, CASFS_STORE_CREATE, &f->s, &err);
	if (r < 0)
		printf("  open %s: %s\n", url, casfs_error_message(&err, r));
	return r;
}

static void fixture_done(struct fixture *f)
{
	casfs_store_free(f->s);
	f->s = NULL;
	if (f->tmp[0])
		rm_rf(f->tmp);
}

typedef void (*conf_fn)(struct casfs_store *s);

static void run_conf(bool local, conf_fn fn)
{
	struct fixture f;
	int r = fixture_open(&f, local);
	if (r < 0) {
		FAILF("cannot open %s store: %d", local ? "local" : "memory", r);
		fixture_done(&f);
		return;
	}
	fn(f.s);
	fixture_done(&f);
}

#define CONFORMANCE(name)                                                          \
	static void conf_##name(struct casfs_store *s);                            \
	TEST(memory_##name) { run_conf(false, conf_##name); }                      \
	TEST(local_##name) { run_conf(true, conf_##name); }                        \
	static void conf_##name(struct casfs_store *s)

/* Store a blob of the given bytes and return its digest, or fail. */
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

/* ---- blobs ------------------------------------------------------------- */

CONFORMANCE(blob_put_stat_read)
{
	_cleanup_free_ uint8_t *data = vector_input(102400);
	uint8_t want[CASFS_B3_LEN], got[CASFS_B3_LEN];
	hex_digest(vec_102400, want);
	CHECK_EQ_INT(put(s, data, 102400, got), 0);
	CHECK_EQ_MEM(got, want, CASFS_B3_LEN);

	uint64_t size = 0;
	CHECK_EQ_INT(casfs_blob_stat(s->blobs, want, &size), 0);
	CHECK_EQ_INT(size, 102400);

	struct casfs_blob_reader *r = NULL;
	CHECK_EQ_INT(casfs_blob_open(s->blobs, want, &r), 0);
	CHECK_EQ_INT(r->size, 102400);
	CHECK_EQ_MEM(r->digest, want, CASFS_B3_LEN);
	uint8_t buf[5000];
	static const uint64_t offsets[] = { 0, 1, 4095, 65536, 100000 };
	for (size_t i = 0; i < ARRAY_SIZE(offsets); i++) {
		ssize_t n = casfs_blob_reader_pread(r, buf, sizeof(buf), offsets[i]);
		size_t expect = MIN(sizeof(buf), 102400 - offsets[i]);
		if (n != (ssize_t)expect || memcmp(buf, data + offsets[i], expect) != 0) {
			FAILF("pread at %llu: %zd bytes", (unsigned long long)offsets[i], n);
			casfs_blob_reader_close(r);
			return;
		}
	}
	/* At and past the end: 0, never an error. */
	CHECK_EQ_INT(casfs_blob_reader_pread(r, buf, sizeof(buf), 102400), 0);
	CHECK_EQ_INT(casfs_blob_reader_pread(r, buf, sizeof(buf), 1 << 30), 0);
	CHECK_EQ_INT(casfs_blob_reader_pread(r, buf, 10, 102399), 1);
	CHECK_EQ_INT(buf[0], data[102399]);

	int fd = casfs_blob_reader_fd(r);
	if (!strcmp(s->blobs->ops->name, "local")) {
		CHECK(fd >= 0);
		CHECK_EQ_INT(pread(fd, buf, 100, 5000), 100);
		CHECK_EQ_MEM(buf, data + 5000, 100);
	} else {
		CHECK_EQ_INT(fd, -1);
	}
	struct casfs_error err = { 0 };
	CHECK_EQ_INT(casfs_blob_verify(r, NULL, &err), 0);
	casfs_blob_reader_close(r);
}

CONFORMANCE(blob_absent)
{
	uint8_t d[CASFS_B3_LEN];
	hex_digest(vec_1, d);
	uint64_t size;
	struct casfs_blob_reader *r = NULL;
	CHECK_EQ_INT(casfs_blob_stat(s->blobs, d, &size), -ENOENT);
	CHECK_EQ_INT(casfs_blob_open(s->blobs, d, &r), -ENOENT);
	CHECK(r == NULL);
	CHECK_EQ_INT(count_blobs(s), 0);
}

CONFORMANCE(blob_empty_and_small)
{
	uint8_t d[CASFS_B3_LEN], want[CASFS_B3_LEN];
	hex_digest(vec_empty, want);
	CHECK_EQ_INT(put(s, "", 0, d), 0);
	CHECK_EQ_MEM(d, want, CASFS_B3_LEN);
	uint64_t size = 99;
	CHECK_EQ_INT(casfs_blob_stat(s->blobs, want, &size), 0);
	CHECK_EQ_INT(size, 0);

	uint8_t zero = 0;
	hex_digest(vec_1, want);
	CHECK_EQ_INT(put(s, &zero, 1, d), 0);
	CHECK_EQ_MEM(d, want, CASFS_B3_LEN);
	CHECK_EQ_INT(count_blobs(s), 2);
}

CONFORMANCE(blob_writer_pieces_and_expected)
{
	_cleanup_free_ uint8_t *data = vector_input(102400);
	uint8_t want[CASFS_B3_LEN], got[CASFS_B3_LEN];
	hex_digest(vec_102400, want);

	/* Commit with a wrong expected digest stores nothing. */
	struct casfs_blob_writer *w = NULL;
	CHECK_EQ_INT(casfs_blob_create(s->blobs, &w), 0);
	CHECK_EQ_INT(casfs_blob_writer_write(w, data, 102400), 0);
	uint8_t wrong[CASFS_B3_LEN];
	hex_digest(vec_1, wrong);
	CHECK_EQ_INT(casfs_blob_writer_commit(w, wrong, got, NULL), -EBADMSG);
	CHECK_EQ_INT(casfs_blob_stat(s->blobs, want, NULL), -ENOENT);
	CHECK_EQ_INT(count_blobs(s), 0);

	/* Odd-sized pieces, right expected digest. */
	CHECK_EQ_INT(casfs_blob_create(s->blobs, &w), 0);
	for (size_t off = 0; off < 102400;) {
		size_t n = MIN((size_t)7919, 102400 - off);
		CHECK_EQ_INT(casfs_blob_writer_write(w, data + off, n), 0);
		off += n;
	}
	uint64_t size = 0;
	CHECK_EQ_INT(casfs_blob_writer_commit(w, want, got, &size), 0);
	CHECK_EQ_MEM(got, want, CASFS_B3_LEN);
	CHECK_EQ_INT(size, 102400);

	/* Putting present content again succeeds and changes nothing. */
	CHECK_EQ_INT(put(s, data, 102400, got), 0);
	CHECK_EQ_MEM(got, want, CASFS_B3_LEN);
	CHECK_EQ_INT(count_blobs(s), 1);
}

CONFORMANCE(blob_abort_leaves_nothing)
{
	struct casfs_blob_writer *w = NULL;
	CHECK_EQ_INT(casfs_blob_create(s->blobs, &w), 0);
	CHECK_EQ_INT(casfs_blob_writer_write(w, "hello", 5), 0);
	casfs_blob_writer_abort(w);
	casfs_blob_writer_abort(NULL);
	uint8_t d[CASFS_B3_LEN];
	casfs_b3("hello", 5, d);
	CHECK_EQ_INT(casfs_blob_stat(s->blobs, d, NULL), -ENOENT);
	CHECK_EQ_INT(count_blobs(s), 0);
}

CONFORMANCE(blob_remove)
{
	uint8_t d[CASFS_B3_LEN];
	CHECK_EQ_INT(put(s, "bye", 3, d), 0);
	CHECK(s->blobs->ops->remove);
	CHECK_EQ_INT(s->blobs->ops->remove(s->blobs, d), 0);
	CHECK_EQ_INT(casfs_blob_stat(s->blobs, d, NULL), -ENOENT);
	CHECK_EQ_INT(s->blobs->ops->remove(s->blobs, d), -ENOENT);
}

#define N_THREADS 8
#define N_PER_THREAD 24

struct writer_arg {
	struct casfs_blob_service *blobs;
	int id;
	int result;
};

/* Content k (of 0..N_PER_THREAD-1) is shared by every thread for even k,
 * unique to the thread for odd k, so commits race on the same digests. */
static void thread_content(int id, int k, uint8_t *buf, size_t *len)
{
	*len = 1000 + (size_t)k * 311;
	for (size_t i = 0; i < *len; i++)
		buf[i] = (uint8_t)(i * 7 + (size_t)k + (k % 2 ? (size_t)id * 13 : 0));
}

static void *writer_thread(void *p)
{
	struct writer_arg *a = p;
	uint8_t buf[1000 + N_PER_THREAD * 311];
	for (int k = 0; k < N_PER_THREAD && a->result == 0; k++) {
		size_t len;
		thread_content(a->id, k, buf, &len);
		struct casfs_blob_writer *w;
		int r = casfs_blob_create(a->blobs, &w);
		/* Two writes so writers interleave mid-blob. */
		if (r >= 0 && (r = casfs_blob_writer_write(w, buf, len / 2)) < 0)
			casfs_blob_writer_abort(w);
		if (r >= 0 && (r = casfs_blob_writer_write(w, buf + len / 2, len - len / 2)) < 0)
			casfs_blob_writer_abort(w);
		uint8_t want[CASFS_B3_LEN], got[CASFS_B3_LEN];
		casfs_b3(buf, len, want);
		if (r >= 0)
			r = casfs_blob_writer_commit(w, want, got, NULL);
		a->result = r < 0 ? r : memcmp(want, got, CASFS_B3_LEN) ? -EBADMSG : 0;
	}
	return NULL;
}

CONFORMANCE(blob_concurrent_writers)
{
	pthread_t t[N_THREADS];
	struct writer_arg args[N_THREADS];
	for (int i = 0; i < N_THREADS; i++) {
		args[i] = (struct writer_arg){ s->blobs, i, 0 };
		CHECK_EQ_INT(pthread_create(&t[i], NULL, writer_thread, &args[i]), 0);
	}
	for (int i = 0; i < N_THREADS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < N_THREADS; i++)
		CHECK_EQ_INT(args[i].result, 0);
	CHECK_EQ_INT(count_blobs(s), N_PER_THREAD / 2 + N_THREADS * (N_PER_THREAD / 2));
	for (int i = 0; i < N_THREADS; i++)
		for (int k = 0; k < N_PER_THREAD; k++) {
			uint8_t buf[1000 + N_PER_THREAD * 311], d[CASFS_B3_LEN];
			size_t len;
			thread_content(i, k, buf, &len);
			casfs_b3(buf, len, d);
			struct casfs_blob_reader *r;
			CHECK_EQ_INT(casfs_blob_open(s->blobs, d, &r), 0);
			CHECK_EQ_INT(r->size, len);
			int v = casfs_blob_verify(r, NULL, NULL);
			casfs_blob_reader_close(r);
			CHECK_EQ_INT(v, 0);
		}
}

/* ---- directories ------------------------------------------------------- */

/* The test tree, leaves first:
 *   A  = { file "a.txt" (blob "aaa"), symlink "l" -> "target" }
 *   E  = {}
 *   M  = { dir "a" -> A, dir "e" -> E, file "m" (blob "mm", executable) }
 *   R  = { dir "m" -> M, dir "x" -> A }   (A is shared)
 */
struct tree {
	struct casfs_directory d[4]; /* A, E, M, R */
	uint8_t digest[4][CASFS_B3_LEN];
	uint8_t blob_a[CASFS_B3_LEN], blob_m[CASFS_B3_LEN];
};

enum { T_A, T_E, T_M, T_R };

static void tree_release(struct tree *t)
{
	for (int i = 0; i < 4; i++)
		casfs_directory_release(&t->d[i]);
}

static int tree_build(struct tree *t, uint64_t m_size_delta)
{
	memset(t, 0, sizeof(*t));
	casfs_b3("aaa", 3, t->blob_a);
	casfs_b3("mm", 2, t->blob_m);
	int r = casfs_directory_add_file(&t->d[T_A], "a.txt", 5, t->blob_a, 3, false);
	if (r >= 0)
		r = casfs_directory_add_symlink(&t->d[T_A], "l", 1, "target", 6);
	if (r >= 0)
		r = casfs_directory_digest(&t->d[T_A], t->digest[T_A]);
	if (r >= 0)
		r = casfs_directory_digest(&t->d[T_E], t->digest[T_E]);
	/* Sizes written out by hand (A has 2 entries, E none), not computed. */
	if (r >= 0)
		r = casfs_directory_add_directory(&t->d[T_M], "a", 1, t->digest[T_A], 2);
	if (r >= 0)
		r = casfs_directory_add_directory(&t->d[T_M], "e", 1, t->digest[T_E], 0);
	if (r >= 0)
		r = casfs_directory_add_file(&t->d[T_M], "m", 1, t->blob_m, 2, true);
	if (r >= 0)
		r = casfs_directory_digest(&t->d[T_M], t->digest[T_M]);
	/* M: 3 entries + 2 + 0 = 5 */
	if (r >= 0)
		r = casfs_directory_add_directory(&t->d[T_R], "m", 1, t->digest[T_M],
						  5 + m_size_delta);
	if (r >= 0)
		r = casfs_directory_add_directory(&t->d[T_R], "x", 1, t->digest[T_A], 2);
	if (r >= 0)
		r = casfs_directory_digest(&t->d[T_R], t->digest[T_R]);
	return r;
}

static bool has(struct casfs_store *s, const uint8_t d[CASFS_B3_LEN])
{
	return casfs_directory_has(s->directories, d) == 0;
}

struct walk {
	uint8_t seen[8][CASFS_B3_LEN];
	size_t n;
};

static int walk_cb(const uint8_t digest[CASFS_B3_LEN], const struct casfs_directory *d,
		   void *userdata)
{
	struct walk *w = userdata;
	uint8_t again[CASFS_B3_LEN];
	/* What we are handed must be what the digest names. */
	if (casfs_directory_digest(d, again) < 0 || memcmp(again, digest, CASFS_B3_LEN))
		return -EBADMSG;
	if (w->n == 8)
		return -E2BIG;
	memcpy(w->seen[w->n++], digest, CASFS_B3_LEN);
	return 0;
}

CONFORMANCE(directory_closure_roundtrip)
{
	struct tree t;
	CHECK_EQ_INT(tree_build(&t, 0), 0);
	struct casfs_error err = { 0 };
	uint8_t root[CASFS_B3_LEN];
	int r = casfs_directory_put_closure(s->directories, t.d, 4, root, &err);
	if (r < 0)
		FAILF("put_closure: %s", casfs_error_message(&err, r));
	CHECK_EQ_INT(r, 0);
	CHECK_EQ_MEM(root, t.digest[T_R], CASFS_B3_LEN);
	uint8_t empty[CASFS_B3_LEN];
	hex_digest(vec_empty, empty);
	CHECK_EQ_MEM(t.digest[T_E], empty, CASFS_B3_LEN);

	struct casfs_directory got = { 0 };
	CHECK_EQ_INT(casfs_directory_get(s->directories, t.digest[T_M], &got, &err), 0);
	CHECK_EQ_INT(got.n_directories, 2);
	CHECK_EQ_INT(got.n_files, 1);
	CHECK_EQ_STR(got.directories[0].name, "a");
	CHECK_EQ_MEM(got.directories[0].digest, t.digest[T_A], CASFS_B3_LEN);
	CHECK_EQ_INT(got.directories[0].size, 2);
	CHECK_EQ_STR(got.files[0].name, "m");
	CHECK(got.files[0].executable);
	casfs_directory_release(&got);

	/* Root first, breadth first, the shared A once: R, M, A, E. */
	struct walk w = { .n = 0 };
	CHECK_EQ_INT(casfs_directory_get_closure(s->directories, root, walk_cb, &w, &err), 0);
	CHECK_EQ_INT(w.n, 4);
	CHECK_EQ_MEM(w.seen[0], t.digest[T_R], CASFS_B3_LEN);
	CHECK_EQ_MEM(w.seen[1], t.digest[T_M], CASFS_B3_LEN);
	CHECK_EQ_MEM(w.seen[2], t.digest[T_A], CASFS_B3_LEN);
	CHECK_EQ_MEM(w.seen[3], t.digest[T_E], CASFS_B3_LEN);

	/* list sees the four. */
	size_t n = 0;
	CHECK_EQ_INT(s->directories->ops->list(s->directories, count_cb, &n), 0);
	CHECK_EQ_INT(n, 4);

	/* Putting the same closure again is fine. */
	CHECK_EQ_INT(casfs_directory_put_closure(s->directories, t.d, 4, root, &err), 0);
	tree_release(&t);
}

CONFORMANCE(directory_absent)
{
	struct tree t;
	CHECK_EQ_INT(tree_build(&t, 0), 0);
	struct casfs_directory got = { 0 };
	struct casfs_error err = { 0 };
	CHECK_EQ_INT(casfs_directory_get(s->directories, t.digest[T_A], &got, &err), -ENOENT);
	CHECK_EQ_INT(casfs_directory_has(s->directories, t.digest[T_A]), -ENOENT);
	struct walk w = { .n = 0 };
	memset(&err, 0, sizeof(err));
	CHECK_EQ_INT(casfs_directory_get_closure(s->directories, t.digest[T_R], walk_cb, &w, &err),
		     -ENOENT);
	char name[CASFS_B3_STR_LEN + 1];
	casfs_b3_format(t.digest[T_R], name);
	CHECK(strstr(err.msg, name) != NULL);
	tree_release(&t);
}

/* Children may already be in the service instead of earlier in the list. */
CONFORMANCE(directory_closure_incremental)
{
	struct tree t;
	CHECK_EQ_INT(tree_build(&t, 0), 0);
	struct casfs_error err = { 0 };
	uint8_t root[CASFS_B3_LEN];
	CHECK_EQ_INT(casfs_directory_put_closure(s->directories, &t.d[T_A], 1, root, &err), 0);
	CHECK_EQ_MEM(root, t.digest[T_A], CASFS_B3_LEN);
	CHECK_EQ_INT(casfs_directory_put_closure(s->directories, &t.d[T_E], 1, root, &err), 0);
	int r = casfs_directory_put_closure(s->directories, &t.d[T_M], 2, root, &err);
	if (r < 0)
		FAILF("put_closure: %s", casfs_error_message(&err, r));
	CHECK_EQ_INT(r, 0);
	CHECK_EQ_MEM(root, t.digest[T_R], CASFS_B3_LEN);
	tree_release(&t);
}

/* Put a closure that must be refused: -EBADMSG, a message, nothing stored. */
static int expect_rejected(struct casfs_store *s, const struct casfs_directory *d, size_t n,
			   const char *msg_part, const struct tree *t)
{
	struct casfs_error err = { 0 };
	uint8_t root[CASFS_B3_LEN];
	int r = casfs_directory_put_closure(s->directories, d, n, root, &err);
	if (r != -EBADMSG) {
		printf("  put_closure returned %d, expected -EBADMSG\n", r);
		return -1;
	}
	if (!strstr(err.msg, msg_part)) {
		printf("  message \"%s\" lacks \"%s\"\n", err.msg, msg_part);
		return -1;
	}
	for (int i = 0; i < 4; i++)
		if (has(s, t->digest[i])) {
			printf("  directory %d stored despite the rejection\n", i);
			return -1;
		}
	return 0;
}

CONFORMANCE(directory_closure_rejections)
{
	struct tree t;
	CHECK_EQ_INT(tree_build(&t, 0), 0);
	char name[CASFS_B3_STR_LEN + 1];

	/* Missing child: M without A and E before it. */
	casfs_b3_format(t.digest[T_A], name);
	CHECK_EQ_INT(expect_rejected(s, &t.d[T_M], 2, name, &t), 0);

	/* Unconnected: an extra leaf nobody points at. */
	struct casfs_directory list[5];
	struct casfs_directory stray = { 0 };
	uint8_t blob[CASFS_B3_LEN], stray_digest[CASFS_B3_LEN];
	casfs_b3("zz", 2, blob);
	CHECK_EQ_INT(casfs_directory_add_file(&stray, "z", 1, blob, 2, false), 0);
	CHECK_EQ_INT(casfs_directory_digest(&stray, stray_digest), 0);
	list[0] = t.d[T_A], list[1] = stray, list[2] = t.d[T_E], list[3] = t.d[T_M];
	list[4] = t.d[T_R];
	casfs_b3_format(stray_digest, name);
	CHECK_EQ_INT(expect_rejected(s, list, 5, name, &t), 0);
	CHECK(!has(s, stray_digest));
	casfs_directory_release(&stray);

	/* Duplicate. */
	list[0] = t.d[T_A], list[1] = t.d[T_A], list[2] = t.d[T_E], list[3] = t.d[T_M];
	list[4] = t.d[T_R];
	CHECK_EQ_INT(expect_rejected(s, list, 5, "twice", &t), 0);

	/* Children after their parent (root-first order) is not leaves-first. */
	list[0] = t.d[T_R], list[1] = t.d[T_M], list[2] = t.d[T_A], list[3] = t.d[T_E];
	CHECK_EQ_INT(expect_rejected(s, list, 4, "neither earlier", &t), 0);

	/* Wrong size: R says M has 6 nodes below it. */
	struct tree bad;
	CHECK_EQ_INT(tree_build(&bad, 1), 0);
	casfs_b3_format(t.digest[T_M], name);
	CHECK_EQ_INT(expect_rejected(s, bad.d, 4, name, &t), 0);
	CHECK(!has(s, bad.digest[T_R]));
	tree_release(&bad);

	/* Invalid directory: names out of order. */
	struct casfs_directory unsorted = { 0 };
	CHECK_EQ_INT(casfs_directory_add_file(&unsorted, "b", 1, blob, 2, false), 0);
	CHECK_EQ_INT(casfs_directory_add_file(&unsorted, "a", 1, blob, 2, false), 0);
	int r = expect_rejected(s, &unsorted, 1, "directory 0 of the closure", &t);
	casfs_directory_release(&unsorted);
	CHECK_EQ_INT(r, 0);

	/* Invalid directory: a ".." entry. */
	struct casfs_directory dotdot = { 0 };
	CHECK_EQ_INT(casfs_directory_add_symlink(&dotdot, "..", 2, "x", 1), 0);
	r = expect_rejected(s, &dotdot, 1, "directory 0 of the closure", &t);
	casfs_directory_release(&dotdot);
	CHECK_EQ_INT(r, 0);

	/* Empty closure. */
	CHECK_EQ_INT(expect_rejected(s, NULL, 0, "empty", &t), 0);

	/* Child already stored, but the parent gives it the wrong size. */
	struct casfs_error err = { 0 };
	uint8_t root[CASFS_B3_LEN];
	CHECK_EQ_INT(casfs_directory_put_closure(s->directories, &t.d[T_A], 1, root, &err), 0);
	struct casfs_directory parent = { 0 };
	CHECK_EQ_INT(casfs_directory_add_directory(&parent, "a", 1, t.digest[T_A], 3), 0);
	r = casfs_directory_put_closure(s->directories, &parent, 1, root, &err);
	casfs_directory_release(&parent);
	CHECK_EQ_INT(r, -EBADMSG);
	CHECK(strstr(err.msg, "size") != NULL);
	tree_release(&t);
}

/* ---- path infos -------------------------------------------------------- */

static int digest_cmp(const void *a, const void *b)
{
	return memcmp(a, b, CASFS_STORE_DIGEST_LEN);
}

static void store_digest(uint8_t d[CASFS_STORE_DIGEST_LEN], uint8_t seed)
{
	for (int i = 0; i < CASFS_STORE_DIGEST_LEN; i++)
		d[i] = (uint8_t)(seed * 31 + i * 7);
}

/* A PathInfo for store path digest `d` named "<nixbase32>-<name>" with the
 * given root node contents and one reference. */
static int make_pathinfo(struct casfs_pathinfo *pi, const uint8_t d[CASFS_STORE_DIGEST_LEN],
			 const char *name, enum casfs_node_type type, const uint8_t *digest,
			 uint64_t size)
{
	memset(pi, 0, sizeof(*pi));
	char b32[CASFS_NIXBASE32_LEN(CASFS_STORE_DIGEST_LEN) + 1];
	casfs_nixbase32_encode(d, CASFS_STORE_DIGEST_LEN, b32);
	pi->node.type = type;
	if (asprintf(&pi->node.name, "%s-%s", b32, name) < 0)
		return -ENOMEM;
	pi->node.name_len = strlen(pi->node.name);
	if (type == CASFS_NODE_SYMLINK) {
		pi->node.target = strdup("/somewhere");
		pi->node.target_len = strlen("/somewhere");
	} else {
		memcpy(pi->node.digest, digest, CASFS_B3_LEN);
		pi->node.digest_set = true;
		pi->node.size = size;
	}
	pi->references = calloc(1, CASFS_STORE_DIGEST_LEN);
	pi->reference_names = calloc(1, sizeof(char *));
	if (!pi->references || !pi->reference_names)
		return -ENOMEM;
	store_digest(pi->references[0], 200);
	pi->n_references = 1;
	pi->reference_names[0] = strdup("0000000000000000000000000000000a-dep");
	pi->n_reference_names = 1;
	pi->has_narinfo = true;
	pi->nar_size = 4242;
	for (int i = 0; i < CASFS_SHA256_LEN; i++)
		pi->nar_sha256[i] = (uint8_t)(i + size);
	return 0;
}

struct pi_list {
	uint8_t digests[8][CASFS_STORE_DIGEST_LEN];
	size_t n;
};

static int pi_list_cb(const uint8_t digest[CASFS_STORE_DIGEST_LEN], const struct casfs_pathinfo *pi,
		      void *userdata)
{
	struct pi_list *l = userdata;
	char b32[CASFS_NIXBASE32_LEN(CASFS_STORE_DIGEST_LEN) + 1];
	casfs_nixbase32_encode(digest, CASFS_STORE_DIGEST_LEN, b32);
	if (l->n == 8 || strncmp(pi->node.name, b32, strlen(b32)) != 0)
		return -EBADMSG;
	memcpy(l->digests[l->n++], digest, CASFS_STORE_DIGEST_LEN);
	return 0;
}

CONFORMANCE(pathinfo_put_get_list)
{
	struct casfs_error err = { 0 };
	struct casfs_pathinfo pi, got = { 0 };
	uint8_t d[3][CASFS_STORE_DIGEST_LEN];
	uint8_t blob[CASFS_B3_LEN];
	casfs_b3("x", 1, blob);
	for (int i = 0; i < 3; i++) {
		store_digest(d[i], (uint8_t)(3 - i)); /* inserted out of order */
		CHECK_EQ_INT(make_pathinfo(&pi, d[i], "hello", CASFS_NODE_FILE, blob, (uint64_t)i), 0);
		int r = casfs_pathinfo_put(s->pathinfos, d[i], &pi, &err);
		casfs_pathinfo_release(&pi);
		CHECK_EQ_INT(r, 0);
	}
	CHECK_EQ_INT(casfs_pathinfo_get(s->pathinfos, d[1], &got, &err), 0);
	CHECK_EQ_INT(got.node.type, CASFS_NODE_FILE);
	CHECK_EQ_INT(got.node.size, 1);
	CHECK_EQ_MEM(got.node.digest, blob, CASFS_B3_LEN);
	CHECK_EQ_INT(got.n_references, 1);
	CHECK_EQ_STR(got.reference_names[0], "0000000000000000000000000000000a-dep");
	CHECK_EQ_INT(got.nar_size, 4242);
	CHECK_EQ_INT(got.nar_sha256[0], 1);
	casfs_pathinfo_release(&got);

	/* Replacing an entry. */
	CHECK_EQ_INT(make_pathinfo(&pi, d[1], "hello", CASFS_NODE_FILE, blob, 77), 0);
	int r = casfs_pathinfo_put(s->pathinfos, d[1], &pi, &err);
	casfs_pathinfo_release(&pi);
	CHECK_EQ_INT(r, 0);
	CHECK_EQ_INT(casfs_pathinfo_get(s->pathinfos, d[1], &got, &err), 0);
	CHECK_EQ_INT(got.node.size, 77);
	casfs_pathinfo_release(&got);

	uint8_t absent[CASFS_STORE_DIGEST_LEN];
	store_digest(absent, 99);
	CHECK_EQ_INT(casfs_pathinfo_get(s->pathinfos, absent, &got, &err), -ENOENT);

	/* list: all three, in digest order. */
	struct pi_list l = { .n = 0 };
	CHECK_EQ_INT(casfs_pathinfo_list(s->pathinfos, pi_list_cb, &l, &err), 0);
	CHECK_EQ_INT(l.n, 3);
	for (size_t i = 1; i < l.n; i++)
		CHECK(memcmp(l.digests[i - 1], l.digests[i], CASFS_STORE_DIGEST_LEN) < 0);
}

/* A paged listing: every digest handed over, and the damaged ones. */
struct pi_pages {
	uint8_t digests[64][CASFS_STORE_DIGEST_LEN];
	size_t n;
	uint8_t damaged[4][CASFS_STORE_DIGEST_LEN];
	char damage_msg[512];
	size_t n_damaged;
	int stop_at; /* return -ECANCELED at this entry (0: never) */
};

static int pi_page_cb(const uint8_t digest[CASFS_STORE_DIGEST_LEN], const struct casfs_pathinfo *pi,
		      const struct casfs_error *damage, void *userdata)
{
	struct pi_pages *p = userdata;
	if (p->stop_at && (int)(p->n + p->n_damaged) + 1 == p->stop_at)
		return -ECANCELED;
	if (!pi) {
		if (!damage || damage->code != -EBADMSG || p->n_damaged == 4)
			return -EPROTO;
		snprintf(p->damage_msg, sizeof(p->damage_msg), "%s", damage->msg);
		memcpy(p->damaged[p->n_damaged++], digest, CASFS_STORE_DIGEST_LEN);
		return 0;
	}
	char b32[CASFS_NIXBASE32_LEN(CASFS_STORE_DIGEST_LEN) + 1];
	casfs_nixbase32_encode(digest, CASFS_STORE_DIGEST_LEN, b32);
	if (damage || p->n == 64 || strncmp(pi->node.name, b32, strlen(b32)) != 0)
		return -EPROTO;
	memcpy(p->digests[p->n++], digest, CASFS_STORE_DIGEST_LEN);
	return 0;
}

/* 40 path infos, stored out of order; their digests, sorted. */
static int put_forty(struct casfs_store *s, uint8_t sorted[40][CASFS_STORE_DIGEST_LEN])
{
	uint8_t blob[CASFS_B3_LEN];
	casfs_b3("x", 1, blob);
	for (int i = 0; i < 40; i++) {
		uint8_t d[CASFS_STORE_DIGEST_LEN];
		store_digest(d, (uint8_t)((i * 17) % 40)); /* seed*31 mod 256: distinct first bytes */
		struct casfs_pathinfo pi;
		struct casfs_error err = { 0 };
		int r = make_pathinfo(&pi, d, "paged", CASFS_NODE_FILE, blob, 1);
		if (r >= 0)
			r = casfs_pathinfo_put(s->pathinfos, d, &pi, &err);
		casfs_pathinfo_release(&pi);
		if (r < 0)
			return r;
		memcpy(sorted[i], d, CASFS_STORE_DIGEST_LEN);
	}
	qsort(sorted, 40, CASFS_STORE_DIGEST_LEN, digest_cmp);
	return 0;
}

CONFORMANCE(pathinfo_list_from_pages)
{
	struct casfs_error err = { 0 };
	uint8_t sorted[40][CASFS_STORE_DIGEST_LEN];
	CHECK_EQ_INT(put_forty(s, sorted), 0);

	/* Pages of 7: 7, 7, 7, 7, 7, 5; each starts after the last digest
	 * of the one before. */
	struct pi_pages p = { .n = 0 };
	const uint8_t *after = NULL;
	uint8_t last[CASFS_STORE_DIGEST_LEN];
	int pages = 0, r;
	do {
		r = casfs_pathinfo_list_from(s->pathinfos, after, 7, pi_page_cb, &p, &err);
		CHECK(r >= 0);
		CHECK_EQ_INT(r, p.n > 35 ? 5 : 7);
		CHECK_EQ_INT(p.n, MIN((size_t)(pages + 1) * 7, (size_t)40));
		memcpy(last, p.digests[p.n - 1], CASFS_STORE_DIGEST_LEN);
		after = last;
		pages++;
	} while (r == 7);
	CHECK_EQ_INT(pages, 6);
	CHECK_EQ_INT(p.n_damaged, 0);
	for (size_t i = 0; i < 40; i++)
		CHECK_EQ_MEM(p.digests[i], sorted[i], CASFS_STORE_DIGEST_LEN);

	/* An exact multiple ends with an empty page. */
	CHECK_EQ_INT(casfs_pathinfo_list_from(s->pathinfos, sorted[39], 7, pi_page_cb, &p, &err), 0);
	CHECK_EQ_INT(casfs_pathinfo_list_from(s->pathinfos, sorted[31], 8, pi_page_cb, &p, &err), 8);
	CHECK_EQ_INT(casfs_pathinfo_list_from(s->pathinfos, sorted[39], 8, pi_page_cb, &p, &err), 0);
	/* `after` need not be stored: the next greater one comes first. */
	uint8_t between[CASFS_STORE_DIGEST_LEN];
	memcpy(between, sorted[9], CASFS_STORE_DIGEST_LEN);
	between[CASFS_STORE_DIGEST_LEN - 1]++; /* sorted[9] < between < sorted[10] */
	CHECK(memcmp(between, sorted[10], CASFS_STORE_DIGEST_LEN) < 0);
	p.n = 0;
	CHECK_EQ_INT(casfs_pathinfo_list_from(s->pathinfos, between, 3, pi_page_cb, &p, &err), 3);
	CHECK_EQ_MEM(p.digests[0], sorted[10], CASFS_STORE_DIGEST_LEN);
	CHECK_EQ_MEM(p.digests[2], sorted[12], CASFS_STORE_DIGEST_LEN);
	/* max 0, and a callback that stops. */
	p.n = 0;
	CHECK_EQ_INT(casfs_pathinfo_list_from(s->pathinfos, NULL, 0, pi_page_cb, &p, &err), 0);
	CHECK_EQ_INT(p.n, 0);
	p.stop_at = 3;
	CHECK_EQ_INT(casfs_pathinfo_list_from(s->pathinfos, NULL, 10, pi_page_cb, &p, &err),
		     -ECANCELED);
	CHECK_EQ_INT(p.n, 2);
	/* Put between pages: listed if after the position. */
	p = (struct pi_pages){ .n = 0 };
	CHECK_EQ_INT(casfs_pathinfo_list_from(s->pathinfos, NULL, 20, pi_page_cb, &p, &err), 20);
	uint8_t late[CASFS_STORE_DIGEST_LEN], early[CASFS_STORE_DIGEST_LEN], blob[CASFS_B3_LEN];
	memset(late, 0xff, sizeof(late));
	memset(early, 0, sizeof(early));
	casfs_b3("x", 1, blob);
	for (int i = 0; i < 2; i++) {
		struct casfs_pathinfo pi;
		CHECK_EQ_INT(make_pathinfo(&pi, i ? late : early, "late", CASFS_NODE_FILE, blob, 1), 0);
		r = casfs_pathinfo_put(s->pathinfos, i ? late : early, &pi, &err);
		casfs_pathinfo_release(&pi);
		CHECK_EQ_INT(r, 0);
	}
	CHECK_EQ_INT(casfs_pathinfo_list_from(s->pathinfos, p.digests[19], 64, pi_page_cb, &p, &err),
		     21);
	CHECK_EQ_INT(p.n, 41);
	CHECK_EQ_MEM(p.digests[40], late, CASFS_STORE_DIGEST_LEN);
	for (size_t i = 0; i < 40; i++)
		CHECK_EQ_MEM(p.digests[i], sorted[i], CASFS_STORE_DIGEST_LEN);
}

/* make_pathinfo's reference, pointed at store path digest `to` (NULL:
 * no references at all). */
static int set_reference(struct casfs_pathinfo *pi, const uint8_t *to)
{
	free(pi->reference_names[0]);
	pi->reference_names[0] = NULL;
	if (!to) {
		pi->n_references = pi->n_reference_names = 0;
		return 0;
	}
	char b32[CASFS_NIXBASE32_LEN(CASFS_STORE_DIGEST_LEN) + 1];
	casfs_nixbase32_encode(to, CASFS_STORE_DIGEST_LEN, b32);
	memcpy(pi->references[0], to, CASFS_STORE_DIGEST_LEN);
	return asprintf(&pi->reference_names[0], "%s-p", b32) < 0 ? -ENOMEM : 0;
}

/* Register a path with no references (`ref` NULL) or one. */
static int add_ref(struct casfs_store *s, const uint8_t d[CASFS_STORE_DIGEST_LEN],
		   enum casfs_node_type type, const uint8_t *digest, uint64_t size,
		   const uint8_t *ref, struct casfs_error *err)
{
	struct casfs_pathinfo pi;
	memset(err, 0, sizeof(*err));
	int r = make_pathinfo(&pi, d, "p", type, digest, size);
	if (r >= 0)
		r = set_reference(&pi, ref);
	if (r >= 0)
		r = casfs_store_add_pathinfo(s, d, &pi, err);
	casfs_pathinfo_release(&pi);
	return r;
}

static int add(struct casfs_store *s, const uint8_t d[CASFS_STORE_DIGEST_LEN],
	       enum casfs_node_type type, const uint8_t *digest, uint64_t size,
	       struct casfs_error *err)
{
	return add_ref(s, d, type, digest, size, NULL, err);
}

CONFORMANCE(add_pathinfo_checks_references)
{
	struct casfs_error err = { 0 };
	uint8_t a[CASFS_STORE_DIGEST_LEN], b[CASFS_STORE_DIGEST_LEN];
	store_digest(a, 10);
	store_digest(b, 11);
	char b_name[CASFS_NIXBASE32_LEN(CASFS_STORE_DIGEST_LEN) + 1];
	casfs_nixbase32_encode(b, CASFS_STORE_DIGEST_LEN, b_name);
	struct casfs_pathinfo got = { 0 };

	/* a -> b, b absent: refused, naming b. */
	CHECK_EQ_INT(add_ref(s, a, CASFS_NODE_SYMLINK, NULL, 0, b, &err), -ENOENT);
	CHECK(strstr(err.msg, b_name) != NULL);
	CHECK(strstr(err.msg, "not in the store") != NULL);
	CHECK_EQ_INT(casfs_pathinfo_get(s->pathinfos, a, &got, &err), -ENOENT);

	/* A reference whose name is another digest's. */
	struct casfs_pathinfo pi;
	CHECK_EQ_INT(make_pathinfo(&pi, a, "p", CASFS_NODE_SYMLINK, NULL, 0), 0);
	CHECK_EQ_INT(set_reference(&pi, b), 0);
	pi.references[0][0] ^= 1;
	CHECK_EQ_INT(casfs_store_add_pathinfo(s, a, &pi, &err), -EBADMSG);
	CHECK(strstr(err.msg, "does not match its digest") != NULL);
	casfs_pathinfo_release(&pi);

	/* A reference to itself needs nothing; then b, then a -> b. */
	CHECK_EQ_INT(add_ref(s, b, CASFS_NODE_SYMLINK, NULL, 0, b, &err), 0);
	CHECK_EQ_INT(add_ref(s, a, CASFS_NODE_SYMLINK, NULL, 0, b, &err), 0);
	CHECK_EQ_INT(casfs_pathinfo_get(s->pathinfos, a, &got, &err), 0);
	CHECK_EQ_INT(got.n_references, 1);
	CHECK_EQ_MEM(got.references[0], b, CASFS_STORE_DIGEST_LEN);
	casfs_pathinfo_release(&got);
}

CONFORMANCE(add_pathinfo_checks_closure)
{
	struct casfs_error err = { 0 };
	uint8_t d[CASFS_STORE_DIGEST_LEN];
	struct casfs_pathinfo got = { 0 };
	char name[CASFS_B3_STR_LEN + 1];

	/* A file: its blob must be there, with the node's size. */
	uint8_t blob[CASFS_B3_LEN];
	casfs_b3("content", 7, blob);
	casfs_b3_format(blob, name);
	store_digest(d, 1);
	CHECK_EQ_INT(add(s, d, CASFS_NODE_FILE, blob, 7, &err), -ENOENT);
	CHECK(strstr(err.msg, name) != NULL);
	CHECK_EQ_INT(casfs_pathinfo_get(s->pathinfos, d, &got, &err), -ENOENT);
	CHECK_EQ_INT(put(s, "content", 7, blob), 0);
	CHECK_EQ_INT(add(s, d, CASFS_NODE_FILE, blob, 8, &err), -EBADMSG);
	CHECK(strstr(err.msg, name) != NULL);
	CHECK_EQ_INT(add(s, d, CASFS_NODE_FILE, blob, 7, &err), 0);
	CHECK_EQ_INT(casfs_pathinfo_get(s->pathinfos, d, &got, &err), 0);
	casfs_pathinfo_release(&got);

	/* A name that is not this digest's store path. */
	uint8_t other[CASFS_STORE_DIGEST_LEN];
	store_digest(other, 2);
	struct casfs_pathinfo pi;
	CHECK_EQ_INT(make_pathinfo(&pi, other, "p", CASFS_NODE_FILE, blob, 7), 0);
	int r = casfs_store_add_pathinfo(s, d, &pi, &err);
	casfs_pathinfo_release(&pi);
	CHECK_EQ_INT(r, -EBADMSG);

	/* A symlink needs nothing. */
	store_digest(d, 3);
	CHECK_EQ_INT(add(s, d, CASFS_NODE_SYMLINK, NULL, 0, &err), 0);

	/* A directory: its closure, then every blob below it. */
	struct tree t;
	CHECK_EQ_INT(tree_build(&t, 0), 0);
	store_digest(d, 4);
	casfs_b3_format(t.digest[T_R], name);
	CHECK_EQ_INT(add(s, d, CASFS_NODE_DIRECTORY, t.digest[T_R], 8, &err), -ENOENT);
	CHECK(strstr(err.msg, name) != NULL);
	uint8_t root[CASFS_B3_LEN];
	CHECK_EQ_INT(casfs_directory_put_closure(s->directories, t.d, 4, root, &err), 0);
	/* Blobs: M's "m" is met first (breadth first), then A's "a.txt". */
	casfs_b3_format(t.blob_m, name);
	CHECK_EQ_INT(add(s, d, CASFS_NODE_DIRECTORY, root, 9, &err), -ENOENT);
	CHECK(strstr(err.msg, name) != NULL);
	uint8_t b[CASFS_B3_LEN];
	CHECK_EQ_INT(put(s, "mm", 2, b), 0);
	casfs_b3_format(t.blob_a, name);
	CHECK_EQ_INT(add(s, d, CASFS_NODE_DIRECTORY, root, 9, &err), -ENOENT);
	CHECK(strstr(err.msg, name) != NULL);
	CHECK(strstr(err.msg, "a.txt") != NULL);
	CHECK_EQ_INT(casfs_pathinfo_get(s->pathinfos, d, &got, &err), -ENOENT);
	CHECK_EQ_INT(put(s, "aaa", 3, b), 0);
	/* R: 2 entries + M's 5 + A's 2 = 9, not 8. */
	CHECK_EQ_INT(add(s, d, CASFS_NODE_DIRECTORY, root, 8, &err), -EBADMSG);
	CHECK(strstr(err.msg, "size 8") != NULL);
	r = add(s, d, CASFS_NODE_DIRECTORY, root, 9, &err);
	if (r < 0)
		FAILF("add_pathinfo: %s", casfs_error_message(&err, r));
	CHECK_EQ_INT(r, 0);
	CHECK_EQ_INT(casfs_pathinfo_get(s->pathinfos, d, &got, &err), 0);
	CHECK_EQ_INT(got.node.type, CASFS_NODE_DIRECTORY);
	casfs_pathinfo_release(&got);
	tree_release(&t);

	/* A file below the root whose blob is shorter than the node says. */
	struct casfs_directory liar = { 0 };
	CHECK_EQ_INT(casfs_directory_add_file(&liar, "f", 1, b, 5, false), 0);
	CHECK_EQ_INT(casfs_directory_put_closure(s->directories, &liar, 1, root, &err), 0);
	casfs_directory_release(&liar);
	store_digest(d, 5);
	casfs_b3_format(b, name);
	CHECK_EQ_INT(add(s, d, CASFS_NODE_DIRECTORY, root, 1, &err), -EBADMSG);
	CHECK(strstr(err.msg, name) != NULL);
	CHECK_EQ_INT(casfs_pathinfo_get(s->pathinfos, d, &got, &err), -ENOENT);
}

/* ---- the local store only ---------------------------------------------- */

static int open_local(struct fixture *f, unsigned flags, struct casfs_error *err)
{
	memset(err, 0, sizeof(*err));
	return casfs_store_open(f->dir, flags, &f->s, err);
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

TEST(local_layout)
{
	struct fixture f = { 0 };
	struct casfs_error err;
	CHECK_EQ_INT(fixture_tmp(&f), 0);
	CHECK_EQ_INT(open_local(&f, CASFS_STORE_CREATE, &err), 0);
	char path[256], buf[64] = { 0 };
	snprintf(path, sizeof(path), "%s/casfs-store", f.dir);
	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0);
	CHECK(read(fd, buf, sizeof(buf) - 1) > 0);
	close(fd);
	CHECK_EQ_STR(buf, "casfs-store-version 2\n");
	struct stat st;
	for (unsigned i = 0; i < 256; i++) {
		snprintf(path, sizeof(path), "%s/blobs/%02x", f.dir, i);
		CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
		snprintf(path, sizeof(path), "%s/outboards/%02x", f.dir, i);
		CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
	}
	uint8_t d[CASFS_B3_LEN];
	_cleanup_free_ uint8_t *data = vector_input(102400);
	CHECK_EQ_INT(put(f.s, data, 102400, d), 0);
	blob_path(&f, d, path, sizeof(path));
	CHECK_EQ_STR(strrchr(path, '/') + 1, vec_102400 + 2);
	CHECK(stat(path, &st) == 0 && st.st_size == 102400);
	char *url = f.s->url;
	CHECK(!strncmp(url, "local:/", 7) && strstr(url, "/store"));
	/* Nothing left in tmp/ after commits and an abort. */
	struct casfs_blob_writer *w;
	CHECK_EQ_INT(casfs_blob_create(f.s->blobs, &w), 0);
	CHECK_EQ_INT(casfs_blob_writer_write(w, "x", 1), 0);
	casfs_blob_writer_abort(w);
	snprintf(path, sizeof(path), "%s/tmp", f.dir);
	DIR *dir = opendir(path);
	CHECK(dir);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(dir)))
		n += de->d_name[0] != '.';
	closedir(dir);
	CHECK_EQ_INT(n, 0);
	fixture_done(&f);
}

TEST(local_corrupt_blob)
{
	struct fixture f = { 0 };
	struct casfs_error err;
	CHECK_EQ_INT(fixture_tmp(&f), 0);
	CHECK_EQ_INT(open_local(&f, CASFS_STORE_CREATE, &err), 0);
	_cleanup_free_ uint8_t *data = vector_input(102400);
	uint8_t d[CASFS_B3_LEN];
	CHECK_EQ_INT(put(f.s, data, 102400, d), 0);
	char path[256], name[CASFS_B3_STR_LEN + 1];
	blob_path(&f, d, path, sizeof(path));
	casfs_b3_format(d, name);

	/* Same size, one byte flipped: only verification can tell. */
	data[50000] ^= 1;
	CHECK_EQ_INT(write_file(path, data, 102400), 0);
	data[50000] ^= 1;
	struct casfs_blob_reader *r;
	CHECK_EQ_INT(casfs_blob_open(f.s->blobs, d, &r), 0);
	memset(&err, 0, sizeof(err));
	int v = casfs_blob_verify(r, NULL, &err);
	casfs_blob_reader_close(r);
	CHECK_EQ_INT(v, -EBADMSG);
	CHECK(strstr(err.msg, name) != NULL);

	/* Truncated (as after a crash): putting the content again repairs. */
	CHECK_EQ_INT(write_file(path, data, 1000), 0);
	CHECK_EQ_INT(put(f.s, data, 102400, d), 0);
	uint64_t size;
	CHECK_EQ_INT(casfs_blob_stat(f.s->blobs, d, &size), 0);
	CHECK_EQ_INT(size, 102400);
	CHECK_EQ_INT(casfs_blob_open(f.s->blobs, d, &r), 0);
	v = casfs_blob_verify(r, NULL, NULL);
	casfs_blob_reader_close(r);
	CHECK_EQ_INT(v, 0);
	fixture_done(&f);
}

/* The record still decodes, but to the wrong digest. */
static void flip_last_byte(MDB_val *v, uint8_t scratch[1024])
{
	if (v->mv_size > 0 && v->mv_size <= 1024) {
		scratch[v->mv_size - 1] ^= 0x01;
		v->mv_data = scratch;
	}
}

/* Overwrite the "directories" record of `digest` behind the store's back
 * (the store must be closed: LMDB forbids two opens in one process). */
static int damage_directory(const char *dir, const uint8_t digest[CASFS_B3_LEN])
{
	return test_lmdb_rewrite(dir, "directories", digest, CASFS_B3_LEN, flip_last_byte);
}

TEST(local_corrupt_directory)
{
	struct fixture f = { 0 };
	struct casfs_error err;
	struct tree t;
	CHECK_EQ_INT(tree_build(&t, 0), 0);
	CHECK_EQ_INT(fixture_tmp(&f), 0);
	CHECK_EQ_INT(open_local(&f, CASFS_STORE_CREATE, &err), 0);
	uint8_t root[CASFS_B3_LEN];
	CHECK_EQ_INT(casfs_directory_put_closure(f.s->directories, t.d, 4, root, &err), 0);
	casfs_store_free(f.s);
	f.s = NULL;
	CHECK_EQ_INT(damage_directory(f.dir, t.digest[T_A]), 0);

	CHECK_EQ_INT(open_local(&f, 0, &err), 0);
	struct casfs_directory got = { 0 };
	char name[CASFS_B3_STR_LEN + 1];
	casfs_b3_format(t.digest[T_A], name);
	CHECK_EQ_INT(casfs_directory_get(f.s->directories, t.digest[T_A], &got, &err), -EBADMSG);
	CHECK(strstr(err.msg, name) != NULL);
	struct walk w = { .n = 0 };
	memset(&err, 0, sizeof(err));
	CHECK_EQ_INT(casfs_directory_get_closure(f.s->directories, root, walk_cb, &w, &err),
		     -EBADMSG);
	CHECK(strstr(err.msg, name) != NULL);
	/* Undamaged neighbours still read fine. */
	CHECK_EQ_INT(casfs_directory_get(f.s->directories, t.digest[T_M], &got, &err), 0);
	casfs_directory_release(&got);
	/* Putting the good bytes again repairs the record. */
	memset(&err, 0, sizeof(err));
	CHECK_EQ_INT(casfs_directory_put_closure(f.s->directories, &t.d[T_A], 1, root, &err), 0);
	CHECK_EQ_INT(casfs_directory_get(f.s->directories, t.digest[T_A], &got, &err), 0);
	casfs_directory_release(&got);
	tree_release(&t);
	fixture_done(&f);
}

TEST(local_marker_checks)
{
	struct fixture f = { 0 };
	struct casfs_error err;
	char path[256];
	CHECK_EQ_INT(fixture_tmp(&f), 0);

	/* Absent, not asked to create. */
	CHECK_EQ_INT(open_local(&f, 0, &err), -ENOENT);
	CHECK(strstr(err.msg, f.dir) != NULL);

	/* A non-empty directory that is not a store. */
	CHECK_EQ_INT(mkdir(f.dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/notes.txt", f.dir);
	CHECK_EQ_INT(write_file(path, "hi", 2), 0);
	CHECK_EQ_INT(open_local(&f, CASFS_STORE_CREATE, &err), -EBADMSG);
	CHECK(strstr(err.msg, "not a casfs store") != NULL);
	CHECK(access(path, F_OK) == 0);
	unlink(path);

	/* An empty directory becomes a store. */
	CHECK_EQ_INT(open_local(&f, CASFS_STORE_CREATE, &err), 0);
	casfs_store_free(f.s);
	f.s = NULL;

	/* Unknown version. */
	snprintf(path, sizeof(path), "%s/casfs-store", f.dir);
	CHECK_EQ_INT(write_file(path, "casfs-store-version 3\n", 22), 0);
	CHECK_EQ_INT(open_local(&f, CASFS_STORE_CREATE, &err), -EBADMSG);
	CHECK(strstr(err.msg, "version 3") != NULL);

	/* Garbage marker. */
	CHECK_EQ_INT(write_file(path, "hello\n", 6), 0);
	CHECK_EQ_INT(open_local(&f, 0, &err), -EBADMSG);
	CHECK(strstr(err.msg, "marker") != NULL);

	/* A file where the store should be. */
	CHECK_EQ_INT(write_file(path, "casfs-store-version 1\n", 22), 0);
	snprintf(f.dir + strlen(f.dir), sizeof(f.dir) - strlen(f.dir), "/casfs-store");
	CHECK_EQ_INT(open_local(&f, 0, &err), -EBADMSG);
	fixture_done(&f);
}

static int find_pi_cb(const uint8_t digest[CASFS_STORE_DIGEST_LEN], const struct casfs_pathinfo *pi,
		      void *userdata)
{
	(void)digest, (void)pi;
	(*(int *)userdata)++;
	return 0;
}

TEST(local_reopen_persists)
{
	struct fixture f = { 0 };
	struct casfs_error err;
	struct tree t;
	CHECK_EQ_INT(tree_build(&t, 0), 0);
	CHECK_EQ_INT(fixture_tmp(&f), 0);
	CHECK_EQ_INT(open_local(&f, CASFS_STORE_CREATE, &err), 0);
	uint8_t root[CASFS_B3_LEN], b[CASFS_B3_LEN], d[CASFS_STORE_DIGEST_LEN];
	CHECK_EQ_INT(casfs_directory_put_closure(f.s->directories, t.d, 4, root, &err), 0);
	CHECK_EQ_INT(put(f.s, "aaa", 3, b), 0);
	CHECK_EQ_INT(put(f.s, "mm", 2, b), 0);
	store_digest(d, 9);
	CHECK_EQ_INT(add(f.s, d, CASFS_NODE_DIRECTORY, root, 9, &err), 0);
	casfs_store_free(f.s);
	f.s = NULL;

	/* Plain path and local: URL, read-only. */
	char url[160];
	snprintf(url, sizeof(url), "local:%s", f.dir);
	CHECK_EQ_INT(casfs_store_open(url, CASFS_STORE_READONLY, &f.s, &err), 0);
	struct casfs_pathinfo got = { 0 };
	CHECK_EQ_INT(casfs_pathinfo_get(f.s->pathinfos, d, &got, &err), 0);
	CHECK_EQ_MEM(got.node.digest, root, CASFS_B3_LEN);
	casfs_pathinfo_release(&got);
	struct walk w = { .n = 0 };
	CHECK_EQ_INT(casfs_directory_get_closure(f.s->directories, root, walk_cb, &w, &err), 0);
	CHECK_EQ_INT(w.n, 4);
	CHECK_EQ_INT(casfs_blob_stat(f.s->blobs, b, NULL), 0);
	int n = 0;
	CHECK_EQ_INT(casfs_pathinfo_list(f.s->pathinfos, find_pi_cb, &n, &err), 0);
	CHECK_EQ_INT(n, 1);
	struct casfs_blob_writer *wr = NULL;
	CHECK_EQ_INT(casfs_blob_create(f.s->blobs, &wr), -EROFS);
	CHECK_EQ_INT(casfs_pathinfo_put(f.s->pathinfos, d, &got, &err), -EROFS);
	tree_release(&t);
	fixture_done(&f);
}

/* Overwrite the "pathinfo" record of `digest` with bytes that do not
 * decode (the store must be closed). */
static int damage_pathinfo(const char *dir, const uint8_t digest[CASFS_STORE_DIGEST_LEN])
{
	return test_lmdb_rewrite(dir, "pathinfo", digest, CASFS_STORE_DIGEST_LEN,
				 test_lmdb_undecodable);
}

/* A record that does not decode: get and list say -EBADMSG; list_from
 * hands it over as damaged, named, and goes on with the rest. */
TEST(local_damaged_pathinfo_is_skipped_by_list_from)
{
	struct fixture f = { 0 };
	struct casfs_error err;
	uint8_t sorted[40][CASFS_STORE_DIGEST_LEN];
	CHECK_EQ_INT(fixture_tmp(&f), 0);
	CHECK_EQ_INT(open_local(&f, CASFS_STORE_CREATE, &err), 0);
	CHECK_EQ_INT(put_forty(f.s, sorted), 0);
	casfs_store_free(f.s);
	f.s = NULL;
	CHECK_EQ_INT(damage_pathinfo(f.dir, sorted[13]), 0);
	CHECK_EQ_INT(damage_pathinfo(f.dir, sorted[14]), 0);
	CHECK_EQ_INT(open_local(&f, CASFS_STORE_READONLY, &err), 0);
	char name[CASFS_NIXBASE32_LEN(CASFS_STORE_DIGEST_LEN) + 1];
	casfs_nixbase32_encode(sorted[14], CASFS_STORE_DIGEST_LEN, name);

	struct casfs_pathinfo got = { 0 };
	CHECK_EQ_INT(casfs_pathinfo_get(f.s->pathinfos, sorted[13], &got, &err), -EBADMSG);
	int n = 0;
	CHECK_EQ_INT(casfs_pathinfo_list(f.s->pathinfos, find_pi_cb, &n, &err), -EBADMSG);

	struct pi_pages p = { .n = 0 };
	CHECK_EQ_INT(casfs_pathinfo_list_from(f.s->pathinfos, sorted[9], 6, pi_page_cb, &p, &err), 6);
	CHECK_EQ_INT(p.n, 4);
	CHECK_EQ_INT(p.n_damaged, 2);
	CHECK_EQ_MEM(p.damaged[0], sorted[13], CASFS_STORE_DIGEST_LEN);
	CHECK_EQ_MEM(p.damaged[1], sorted[14], CASFS_STORE_DIGEST_LEN);
	CHECK(strstr(p.damage_msg, name) != NULL);
	CHECK_EQ_MEM(p.digests[3], sorted[15], CASFS_STORE_DIGEST_LEN);
	/* The whole listing: 38 good, 2 damaged. */
	p = (struct pi_pages){ .n = 0 };
	CHECK_EQ_INT(casfs_pathinfo_list_from(f.s->pathinfos, NULL, 64, pi_page_cb, &p, &err), 40);
	CHECK_EQ_INT(p.n, 38);
	CHECK_EQ_INT(p.n_damaged, 2);
	fixture_done(&f);
}

TEST(local_tmp_cleanup)
{
	struct fixture f = { 0 };
	struct casfs_error err;
	char stale[256], lock[256];
	CHECK_EQ_INT(fixture_tmp(&f), 0);
	CHECK_EQ_INT(open_local(&f, CASFS_STORE_CREATE, &err), 0);
	casfs_store_free(f.s);
	f.s = NULL;
	snprintf(stale, sizeof(stale), "%s/tmp/blob.stale", f.dir);
	snprintf(lock, sizeof(lock), "%s/lock", f.dir);

	/* Another writer holds the lock: its temp files must survive. */
	CHECK_EQ_INT(write_file(stale, "partial", 7), 0);
	int fd = open(lock, O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_EQ_INT(flock(fd, LOCK_SH), 0);
	CHECK_EQ_INT(open_local(&f, 0, &err), 0);
	CHECK_EQ_INT(access(stale, F_OK), 0);
	casfs_store_free(f.s);
	f.s = NULL;
	close(fd);

	/* Nobody else: cleaned. */
	CHECK_EQ_INT(open_local(&f, 0, &err), 0);
	CHECK(access(stale, F_OK) < 0 && errno == ENOENT);
	fixture_done(&f);
}

TEST(store_urls_and_default_path)
{
	struct casfs_store *s = NULL;
	struct casfs_error err = { 0 };
	CHECK_EQ_INT(casfs_store_open("s3://bucket/x", 0, &s, &err), -EPROTONOSUPPORT);
	CHECK(strstr(err.msg, "s3://bucket/x") != NULL);
	casfs_error_clear(&err);
	CHECK_EQ_INT(casfs_store_open("memory:x", 0, &s, &err), -EINVAL);
	CHECK(strstr(err.msg, "memory:x") != NULL);
	casfs_error_clear(&err);
	CHECK_EQ_INT(casfs_store_open("grpc+unix://host/x.sock", 0, &s, &err), -EINVAL);
	CHECK(strstr(err.msg, "no host") != NULL);
	/* a daemon is connected to lazily: opening does not need it there */
	CHECK_EQ_INT(casfs_store_open("grpc+unix:///run/nobody-here.sock", 0, &s, &err), 0);
	CHECK_EQ_STR(s->url, "grpc+unix:///run/nobody-here.sock");
	casfs_store_free(s);
	CHECK_EQ_INT(casfs_store_open("grpc+unix:///run/nobody-here.sock?wait-connect=1", 0, &s, &err),
		     -ECONNREFUSED);
	CHECK(strstr(err.msg, "cannot connect to unix:/run/nobody-here.sock") != NULL);
	CHECK_EQ_INT(casfs_store_open("memory:", 0, &s, &err), 0);
	CHECK_EQ_STR(s->url, "memory:");
	casfs_store_free(s);
	casfs_store_free(NULL);

	char *saved[3];
	const char *names[3] = { "CASFS_STORE", "XDG_DATA_HOME", "HOME" };
	for (int i = 0; i < 3; i++) {
		const char *v = getenv(names[i]);
		saved[i] = v ? strdup(v) : NULL;
	}
	setenv("CASFS_STORE", "/a/store", 1);
	setenv("XDG_DATA_HOME", "/xdg", 1);
	setenv("HOME", "/home/u", 1);
	char *p = casfs_store_default_path();
	int ok = p && !strcmp(p, "/a/store");
	free(p);
	unsetenv("CASFS_STORE");
	p = casfs_store_default_path();
	ok = ok && p && !strcmp(p, "/xdg/casfs");
	free(p);
	setenv("XDG_DATA_HOME", "relative", 1); /* ignored, per XDG */
	p = casfs_store_default_path();
	ok = ok && p && !strcmp(p, "/home/u/.local/share/casfs");
	free(p);
	unsetenv("XDG_DATA_HOME");
	unsetenv("HOME");
	p = casfs_store_default_path();
	ok = ok && !p;

	/* The default is used when url is NULL. */
	struct fixture f = { 0 };
	int r = fixture_tmp(&f);
	setenv("CASFS_STORE", f.dir, 1);
	if (r >= 0)
		r = casfs_store_open(NULL, CASFS_STORE_CREATE, &f.s, &err);
	unsetenv("CASFS_STORE");
	for (int i = 0; i < 3; i++) {
		if (saved[i])
			setenv(names[i], saved[i], 1);
		free(saved[i]);
	}
	CHECK(ok);
	CHECK_EQ_INT(r, 0);
	CHECK(strstr(f.s->url, "/store") != NULL);
	fixture_done(&f);
}
