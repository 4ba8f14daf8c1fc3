/* The ingest layer (store/ingest.h) driven by hand against a memory: store,
 * and casfs_import_path (store/import.h) against `nix-store --add`.
 *
 * Expected castore nodes are built independently: Directory structs put
 * together with casfs_directory_add_* and hashed with
 * casfs_directory_digest, blob digests with casfs_b3 over the content. */
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "basic/encoding.h"
#include "basic/util.h"
#include "store/import.h"
#include "store/ingest.h"
#include "store/store.h"

/* ---- fixtures ---------------------------------------------------------- */

struct fx {
	struct casfs_store *s;
	struct casfs_ingest *in;
	struct casfs_error err;
};

static void fx_close(struct fx *f)
{
	casfs_ingest_free(f->in);
	casfs_store_free(f->s);
	memset(f, 0, sizeof(*f));
}
#define _cleanup_fx_ _cleanup_(fx_close)

static int fx_open(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	int r = casfs_store_open("memory:", 0, &f->s, &f->err);
	if (r < 0)
		return r;
	f->in = casfs_ingest_new(f->s);
	return f->in ? 0 : -ENOMEM;
}

/* A fresh ingest on the same store. */
static int fx_renew(struct fx *f)
{
	casfs_ingest_free(f->in);
	f->in = casfs_ingest_new(f->s);
	f->err = (struct casfs_error){ 0 };
	return f->in ? 0 : -ENOMEM;
}

static void node_cleanup(struct casfs_node *n)
{
	casfs_node_release(n);
}
#define _cleanup_node_ _cleanup_(node_cleanup)

static void dir_cleanup(struct casfs_directory *d)
{
	casfs_directory_release(d);
}
#define _cleanup_dir_ _cleanup_(dir_cleanup)

static int ing_file(struct fx *f, const char *name, const char *content, bool exec)
{
	size_t len = strlen(content);
	int r = casfs_ingest_file_begin(f->in, name, name ? strlen(name) : 0, exec, len, &f->err);
	/* two chunks, to exercise the small-file buffer */
	if (r >= 0)
		r = casfs_ingest_file_data(f->in, content, len / 2, &f->err);
	if (r >= 0)
		r = casfs_ingest_file_data(f->in, content + len / 2, len - len / 2, &f->err);
	if (r >= 0)
		r = casfs_ingest_file_end(f->in, &f->err);
	return r;
}

static int ing_dir(struct fx *f, const char *name)
{
	return casfs_ingest_directory_begin(f->in, name, name ? strlen(name) : 0, &f->err);
}

static int ing_end(struct fx *f)
{
	return casfs_ingest_directory_end(f->in, &f->err);
}

static int ing_link(struct fx *f, const char *name, const char *target)
{
	return casfs_ingest_symlink(f->in, name, name ? strlen(name) : 0, target, strlen(target),
				    &f->err);
}

/* The blob is in the service with exactly these bytes (read back in odd
 * pieces) and verifies. */
static int blob_present(struct casfs_store *s, const uint8_t d[CASFS_B3_LEN], const void *data,
			uint64_t len)
{
	uint64_t size;
	if (casfs_blob_stat(s->blobs, d, &size) < 0 || size != len)
		return 0;
	struct casfs_blob_reader *r;
	if (casfs_blob_open(s->blobs, d, &r) < 0)
		return 0;
	int ok = r->size == len && casfs_blob_verify(r, NULL, NULL) == 0;
	uint8_t buf[70001];
	for (uint64_t off = 0; ok && off < len;) {
		ssize_t n = casfs_blob_reader_pread(r, buf, sizeof(buf), off);
		if (n <= 0 || memcmp(buf, (const uint8_t *)data + off, (size_t)n) != 0)
			ok = 0;
		off += n > 0 ? (uint64_t)n : 0;
	}
	casfs_blob_reader_close(r);
	return ok;
}

static int add_file(struct casfs_directory *d, const char *name, const char *content, bool exec)
{
	uint8_t h[CASFS_B3_LEN];
	casfs_b3(content, strlen(content), h);
	return casfs_directory_add_file(d, name, strlen(name), h, strlen(content), exec);
}

static int add_link(struct casfs_directory *d, const char *name, const char *target)
{
	return casfs_directory_add_symlink(d, name, strlen(name), target, strlen(target));
}

/* The test tree, shared by the ingest and import tests:
 *
 *   a/   f = "x", l -> "t"
 *   b/   identical to a/
 *   c    "ccc", executable
 *   d/   a2/ identical to a/, e/ empty
 *   z -> "../a"
 *
 * Expected digests, computed by hand.  Sizes: a = 2 entries; e = 0;
 * d = 2 entries + 2 + 0 = 4; root = 5 entries + 2 + 2 + 4 = 13. */
struct expected_tree {
	uint8_t a[CASFS_B3_LEN], d[CASFS_B3_LEN], root[CASFS_B3_LEN];
};

static int expected_tree(struct expected_tree *t)
{
	_cleanup_dir_ struct casfs_directory a = { 0 }, d = { 0 }, root = { 0 };
	int r = add_file(&a, "f", "x", false);
	if (r >= 0)
		r = add_link(&a, "l", "t");
	if (r >= 0)
		r = casfs_directory_digest(&a, t->a);
	if (r >= 0)
		r = casfs_directory_add_directory(&d, "a2", 2, t->a, 2);
	if (r >= 0)
		r = casfs_directory_add_directory(&d, "e", 1, casfs_b3_empty, 0);
	if (r >= 0)
		r = casfs_directory_digest(&d, t->d);
	if (r >= 0)
		r = casfs_directory_add_directory(&root, "a", 1, t->a, 2);
	if (r >= 0)
		r = casfs_directory_add_directory(&root, "b", 1, t->a, 2);
	if (r >= 0)
		r = casfs_directory_add_directory(&root, "d", 1, t->d, 4);
	if (r >= 0)
		r = add_file(&root, "c", "ccc", true);
	if (r >= 0)
		r = add_link(&root, "z", "../a");
	if (r >= 0)
		r = casfs_directory_digest(&root, t->root);
	return r;
}

/* The tree, as the root (name NULL) or as a subdirectory. */
static int ingest_tree_named(struct fx *f, const char *name)
{
	int r = ing_dir(f, name);
	for (int i = 0; r >= 0 && i < 2; i++) {
		r = ing_dir(f, i ? "b" : "a");
		if (r >= 0)
			r = ing_file(f, "f", "x", false);
		if (r >= 0)
			r = ing_link(f, "l", "t");
		if (r >= 0)
			r = ing_end(f);
	}
	if (r >= 0)
		r = ing_file(f, "c", "ccc", true);
	if (r >= 0)
		r = ing_dir(f, "d");
	if (r >= 0)
		r = ing_dir(f, "a2");
	if (r >= 0)
		r = ing_file(f, "f", "x", false);
	if (r >= 0)
		r = ing_link(f, "l", "t");
	if (r >= 0)
		r = ing_end(f);
	if (r >= 0)
		r = ing_dir(f, "e");
	if (r >= 0)
		r = ing_end(f);
	if (r >= 0)
		r = ing_end(f);
	if (r >= 0)
		r = ing_link(f, "z", "../a");
	if (r >= 0)
		r = ing_end(f);
	return r;
}

static int ingest_tree(struct fx *f)
{
	return ingest_tree_named(f, NULL);
}

static int count_cb(const uint8_t d[CASFS_B3_LEN], const struct casfs_directory *dir, void *u)
{
	(void)d, (void)dir;
	(*(int *)u)++;
	return 0;
}

static int list_count_cb(const uint8_t d[CASFS_B3_LEN], void *u)
{
	(void)d;
	(*(int *)u)++;
	return 0;
}

static int n_directories(struct casfs_store *s)
{
	int n = 0;
	if (s->directories->ops->list(s->directories, list_count_cb, &n) < 0)
		return -1;
	return n;
}

static int n_blobs(struct casfs_store *s)
{
	int n = 0;
	if (s->blobs->ops->list(s->blobs, list_count_cb, &n) < 0)
		return -1;
	return n;
}

/* The stored directory re-encodes to the expected digest. */
static int dir_present(struct casfs_store *s, const uint8_t d[CASFS_B3_LEN])
{
	_cleanup_dir_ struct casfs_directory got = { 0 };
	uint8_t again[CASFS_B3_LEN];
	return casfs_directory_get(s->directories, d, &got, NULL) == 0 &&
	       casfs_directory_digest(&got, again) == 0 && memcmp(again, d, CASFS_B3_LEN) == 0;
}

/* ---- ingest: roots ----------------------------------------------------- */

TEST(root_file)
{
	_cleanup_fx_ struct fx f = { 0 };
	CHECK_EQ_INT(fx_open(&f), 0);
	CHECK_EQ_INT(ing_file(&f, NULL, "hello world", true), 0);
	_cleanup_node_ struct casfs_node n = { 0 };
	CHECK_EQ_INT(casfs_ingest_finish(f.in, "root-name", &n, &f.err), 0);
	uint8_t want[CASFS_B3_LEN];
	casfs_b3("hello world", 11, want);
	CHECK_EQ_INT(n.type, CASFS_NODE_FILE);
	CHECK_EQ_STR(n.name, "root-name");
	CHECK_EQ_INT(n.name_len, 9);
	CHECK(n.digest_set);
	CHECK_EQ_MEM(n.digest, want, CASFS_B3_LEN);
	CHECK_EQ_INT(n.size, 11);
	CHECK(n.executable);
	CHECK(blob_present(f.s, want, "hello world", 11));
	CHECK_EQ_INT(n_directories(f.s), 0);
	uint64_t files, bytes;
	casfs_ingest_stats(f.in, &files, &bytes);
	CHECK_EQ_INT(files, 1);
	CHECK_EQ_INT(bytes, 11);

	/* The same content again (blob already present), not executable; and
	 * an empty file. */
	CHECK_EQ_INT(fx_renew(&f), 0);
	CHECK_EQ_INT(ing_file(&f, NULL, "hello world", false), 0);
	_cleanup_node_ struct casfs_node n2 = { 0 };
	CHECK_EQ_INT(casfs_ingest_finish(f.in, "again", &n2, &f.err), 0);
	CHECK_EQ_MEM(n2.digest, want, CASFS_B3_LEN);
	CHECK(!n2.executable);
	CHECK_EQ_INT(n_blobs(f.s), 1);

	CHECK_EQ_INT(fx_renew(&f), 0);
	CHECK_EQ_INT(casfs_ingest_file_begin(f.in, NULL, 0, false, 0, &f.err), 0);
	CHECK_EQ_INT(casfs_ingest_file_end(f.in, &f.err), 0);
	_cleanup_node_ struct casfs_node n3 = { 0 };
	CHECK_EQ_INT(casfs_ingest_finish(f.in, "empty", &n3, &f.err), 0);
	CHECK_EQ_MEM(n3.digest, casfs_b3_empty, CASFS_B3_LEN);
	CHECK_EQ_INT(n3.size, 0);
	CHECK(blob_present(f.s, casfs_b3_empty, "", 0));
}

TEST(root_symlink)
{
	_cleanup_fx_ struct fx f = { 0 };
	CHECK_EQ_INT(fx_open(&f), 0);
	CHECK_EQ_INT(ing_link(&f, NULL, "/nix/store/somewhere/else"), 0);
	_cleanup_node_ struct casfs_node n = { 0 };
	CHECK_EQ_INT(casfs_ingest_finish(f.in, "lnk", &n, &f.err), 0);
	CHECK_EQ_INT(n.type, CASFS_NODE_SYMLINK);
	CHECK_EQ_STR(n.name, "lnk");
	CHECK_EQ_STR(n.target, "/nix/store/somewhere/else");
	CHECK_EQ_INT(n.target_len, strlen("/nix/store/somewhere/else"));
	CHECK_EQ_INT(casfs_node_validate(&n, NULL), 0);
	CHECK_EQ_INT(n_directories(f.s), 0);
	CHECK_EQ_INT(n_blobs(f.s), 0);

	/* Invalid targets are refused at once. */
	CHECK_EQ_INT(fx_renew(&f), 0);
	CHECK_EQ_INT(casfs_ingest_symlink(f.in, NULL, 0, "", 0, &f.err), -EBADMSG);
	CHECK_EQ_INT(casfs_ingest_symlink(f.in, NULL, 0, "a\0b", 3, NULL), -EBADMSG);
}

TEST(root_empty_directory)
{
	_cleanup_fx_ struct fx f = { 0 };
	CHECK_EQ_INT(fx_open(&f), 0);
	CHECK_EQ_INT(ing_dir(&f, NULL), 0);
	CHECK_EQ_INT(ing_end(&f), 0);
	_cleanup_node_ struct casfs_node n = { 0 };
	CHECK_EQ_INT(casfs_ingest_finish(f.in, "e", &n, &f.err), 0);
	CHECK_EQ_INT(n.type, CASFS_NODE_DIRECTORY);
	CHECK_EQ_MEM(n.digest, casfs_b3_empty, CASFS_B3_LEN);
	CHECK_EQ_INT(n.size, 0);
	CHECK(dir_present(f.s, casfs_b3_empty));
}

/* ---- ingest: a nested tree with identical subdirectories --------------- */

TEST(nested_tree_dedup)
{
	struct expected_tree t;
	CHECK_EQ_INT(expected_tree(&t), 0);
	_cleanup_fx_ struct fx f = { 0 };
	CHECK_EQ_INT(fx_open(&f), 0);
	if (ingest_tree(&f) < 0) {
		FAILF("ingest: %s", f.err.msg);
		return;
	}
	_cleanup_node_ struct casfs_node n = { 0 };
	if (casfs_ingest_finish(f.in, "tree", &n, &f.err) < 0) {
		FAILF("finish: %s", f.err.msg);
		return;
	}
	CHECK_EQ_INT(n.type, CASFS_NODE_DIRECTORY);
	CHECK_EQ_STR(n.name, "tree");
	CHECK_EQ_MEM(n.digest, t.root, CASFS_B3_LEN);
	CHECK_EQ_INT(n.size, 13);

	/* Four distinct directories (a = b = d/a2, e, d, root), each stored. */
	CHECK(dir_present(f.s, t.root));
	CHECK(dir_present(f.s, t.a));
	CHECK(dir_present(f.s, t.d));
	CHECK(dir_present(f.s, casfs_b3_empty));
	CHECK_EQ_INT(n_directories(f.s), 4);
	int visited = 0;
	CHECK_EQ_INT(casfs_directory_get_closure(f.s->directories, t.root, count_cb, &visited, NULL), 0);
	CHECK_EQ_INT(visited, 4);

	/* Blobs "x" and "ccc" (the symlinks carry no blob). */
	uint8_t bx[CASFS_B3_LEN], bc[CASFS_B3_LEN];
	casfs_b3("x", 1, bx);
	casfs_b3("ccc", 3, bc);
	CHECK(blob_present(f.s, bx, "x", 1));
	CHECK(blob_present(f.s, bc, "ccc", 3));
	CHECK_EQ_INT(n_blobs(f.s), 2);
	uint64_t files, bytes;
	casfs_ingest_stats(f.in, &files, &bytes);
	CHECK_EQ_INT(files, 4);
	CHECK_EQ_INT(bytes, 6);

	/* Ingesting the same tree into the same store again changes nothing. */
	CHECK_EQ_INT(fx_renew(&f), 0);
	CHECK_EQ_INT(ingest_tree(&f), 0);
	_cleanup_node_ struct casfs_node n2 = { 0 };
	CHECK_EQ_INT(casfs_ingest_finish(f.in, "tree", &n2, &f.err), 0);
	CHECK_EQ_MEM(n2.digest, t.root, CASFS_B3_LEN);
	CHECK_EQ_INT(n_directories(f.s), 4);
}

/* ---- ingest: large files ----------------------------------------------- */

static uint8_t *pattern(size_t n, uint32_t seed)
{
	uint8_t *p = malloc(n ? n : 1);
	uint32_t x = seed;
	for (size_t i = 0; p && i < n; i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5; /* xorshift32 */
		p[i] = (uint8_t)x;
	}
	return p;
}

/* Stream `len` bytes in chunks of `chunk` as a file named `name`. */
static int ing_stream(struct fx *f, const char *name, const uint8_t *p, size_t len, size_t chunk)
{
	int r = casfs_ingest_file_begin(f->in, name, name ? strlen(name) : 0, false, len, &f->err);
	for (size_t off = 0; r >= 0 && off < len; off += chunk)
		r = casfs_ingest_file_data(f->in, p + off, MIN(chunk, len - off), &f->err);
	if (r >= 0)
		r = casfs_ingest_file_end(f->in, &f->err);
	return r;
}

TEST(large_files)
{
	const uint32_t seed = 0x5eed1234;
	printf("  seed %#x\n", seed);
	const size_t sizes[] = { CASFS_INGEST_SMALL_FILE, CASFS_INGEST_SMALL_FILE + 1,
				 2 * CASFS_INGEST_SMALL_FILE + 12345 };
	const size_t big = sizes[2];
	_cleanup_free_ uint8_t *data = pattern(big, seed);
	CHECK(data != NULL);

	_cleanup_fx_ struct fx f = { 0 };
	CHECK_EQ_INT(fx_open(&f), 0);

	/* As the root, in odd chunks. */
	CHECK_EQ_INT(ing_stream(&f, NULL, data, big, 65537), 0);
	_cleanup_node_ struct casfs_node n = { 0 };
	CHECK_EQ_INT(casfs_ingest_finish(f.in, "big", &n, &f.err), 0);
	uint8_t want[CASFS_B3_LEN];
	casfs_b3(data, big, want);
	CHECK_EQ_INT(n.type, CASFS_NODE_FILE);
	CHECK_EQ_MEM(n.digest, want, CASFS_B3_LEN);
	CHECK_EQ_INT(n.size, big);
	CHECK(blob_present(f.s, want, data, big));

	/* In a directory: the boundary sizes around CASFS_INGEST_SMALL_FILE,
	 * each a prefix of the pattern, next to a small file. */
	CHECK_EQ_INT(fx_renew(&f), 0);
	_cleanup_dir_ struct casfs_directory exp = { 0 };
	CHECK_EQ_INT(ing_dir(&f, NULL), 0);
	const char *names[] = { "f0", "f1", "f2" };
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_INT(ing_stream(&f, names[i], data, sizes[i], i == 1 ? sizes[i] : 4096), 0);
		casfs_b3(data, sizes[i], want);
		CHECK_EQ_INT(casfs_directory_add_file(&exp, names[i], 2, want, sizes[i], false), 0);
	}
	CHECK_EQ_INT(ing_file(&f, "small", "tiny", true), 0);
	CHECK_EQ_INT(add_file(&exp, "small", "tiny", true), 0);
	CHECK_EQ_INT(ing_end(&f), 0);
	_cleanup_node_ struct casfs_node n2 = { 0 };
	CHECK_EQ_INT(casfs_ingest_finish(f.in, "dir", &n2, &f.err), 0);
	CHECK_EQ_INT(casfs_directory_digest(&exp, want), 0);
	CHECK_EQ_MEM(n2.digest, want, CASFS_B3_LEN);
	CHECK_EQ_INT(n2.size, 4);
	for (int i = 0; i < 3; i++) {
		casfs_b3(data, sizes[i], want);
		CHECK(blob_present(f.s, want, data, sizes[i]));
	}
	uint64_t files, bytes;
	casfs_ingest_stats(f.in, &files, &bytes);
	CHECK_EQ_INT(files, 4);
	CHECK_EQ_INT(bytes, sizes[0] + sizes[1] + sizes[2] + 4);
}

/* More content than the ingest keeps in flight (its blob worker blocks the
 * submitter), small and streamed files mixed, a duplicate blob. */
TEST(many_files)
{
	enum { N = 40 };
	_cleanup_fx_ struct fx f = { 0 };
	CHECK_EQ_INT(fx_open(&f), 0);
	_cleanup_dir_ struct casfs_directory exp = { 0 }, exp_sub = { 0 };
	uint8_t d[CASFS_B3_LEN], first[CASFS_B3_LEN];
	CHECK_EQ_INT(ing_dir(&f, NULL), 0);
	for (int i = 0; i < N; i++) {
		char name[8];
		snprintf(name, sizeof(name), "f%02d", i);
		size_t len = CASFS_INGEST_SMALL_FILE - (size_t)i;
		_cleanup_free_ uint8_t *p = pattern(len, (uint32_t)i + 1);
		CHECK(p != NULL);
		CHECK_EQ_INT(ing_stream(&f, name, p, len, len / 3 + 1), 0);
		casfs_b3(p, len, d);
		if (i == 0)
			memcpy(first, d, CASFS_B3_LEN);
		CHECK_EQ_INT(casfs_directory_add_file(&exp, name, 3, d, len, false), 0);
	}
	CHECK_EQ_INT(ing_dir(&f, "sub"), 0);
	size_t big = 2 * CASFS_INGEST_SMALL_FILE + 3;
	_cleanup_free_ uint8_t *p = pattern(big, 1000);
	CHECK(p != NULL);
	CHECK_EQ_INT(ing_stream(&f, "big", p, big, CASFS_INGEST_SMALL_FILE / 2), 0);
	casfs_b3(p, big, d);
	CHECK_EQ_INT(casfs_directory_add_file(&exp_sub, "big", 3, d, big, false), 0);
	/* same content as f00 */
	_cleanup_free_ uint8_t *p0 = pattern(CASFS_INGEST_SMALL_FILE, 1);
	CHECK(p0 != NULL);
	CHECK_EQ_INT(ing_stream(&f, "dup", p0, CASFS_INGEST_SMALL_FILE, 100000), 0);
	CHECK_EQ_INT(casfs_directory_add_file(&exp_sub, "dup", 3, first, CASFS_INGEST_SMALL_FILE,
					      false),
		     0);
	CHECK_EQ_INT(ing_file(&f, "x", "x", true), 0);
	CHECK_EQ_INT(add_file(&exp_sub, "x", "x", true), 0);
	CHECK_EQ_INT(ing_end(&f), 0);
	CHECK_EQ_INT(ing_end(&f), 0);
	CHECK_EQ_INT(casfs_directory_digest(&exp_sub, d), 0);
	CHECK_EQ_INT(casfs_directory_add_directory(&exp, "sub", 3, d, 3), 0);

	_cleanup_node_ struct casfs_node n = { 0 };
	if (casfs_ingest_finish(f.in, "many", &n, &f.err) < 0) {
		FAILF("finish: %s", f.err.msg);
		return;
	}
	CHECK_EQ_INT(casfs_directory_digest(&exp, d), 0);
	CHECK_EQ_MEM(n.digest, d, CASFS_B3_LEN);
	CHECK_EQ_INT(n.size, N + 1 + 3);
	CHECK_EQ_INT(n_blobs(f.s), N + 2);
	CHECK(blob_present(f.s, first, p0, CASFS_INGEST_SMALL_FILE));
	casfs_b3(p, big, d);
	CHECK(blob_present(f.s, d, p, big));
}

/* ---- ingest: size mismatches and misuse --------------------------------- */

TEST(file_larger_than_announced)
{
	_cleanup_free_ uint8_t *data = pattern(CASFS_INGEST_SMALL_FILE + 10, 7);
	CHECK(data != NULL);
	const uint64_t announced[] = { 3, CASFS_INGEST_SMALL_FILE, CASFS_INGEST_SMALL_FILE + 5 };
	for (int i = 0; i < 3; i++) {
		_cleanup_fx_ struct fx f = { 0 };
		CHECK_EQ_INT(fx_open(&f), 0);
		CHECK_EQ_INT(ing_dir(&f, NULL), 0);
		CHECK_EQ_INT(casfs_ingest_file_begin(f.in, "f", 1, false, announced[i], &f.err), 0);
		/* exactly the announced size is fine, one more byte is not */
		CHECK_EQ_INT(casfs_ingest_file_data(f.in, data, announced[i] - 1, &f.err), 0);
		CHECK_EQ_INT(casfs_ingest_file_data(f.in, data, 2, &f.err), -EBADMSG);
		CHECK(strstr(f.err.msg, "announced") != NULL);
		/* in one go, on a fresh file */
		CHECK_EQ_INT(fx_renew(&f), 0);
		CHECK_EQ_INT(casfs_ingest_file_begin(f.in, NULL, 0, false, announced[i], &f.err), 0);
		CHECK_EQ_INT(casfs_ingest_file_data(f.in, data, announced[i] + 1, &f.err), -EBADMSG);
		/* nothing was stored */
		CHECK_EQ_INT(n_blobs(f.s), 0);
	}
}

TEST(file_shorter_than_announced)
{
	const uint64_t announced[] = { 1, 100, CASFS_INGEST_SMALL_FILE, CASFS_INGEST_SMALL_FILE + 1,
				       UINT64_MAX };
	for (int i = 0; i < 5; i++) {
		_cleanup_fx_ struct fx f = { 0 };
		CHECK_EQ_INT(fx_open(&f), 0);
		CHECK_EQ_INT(casfs_ingest_file_begin(f.in, NULL, 0, false, announced[i], &f.err), 0);
		CHECK_EQ_INT(casfs_ingest_file_data(f.in, "ab", announced[i] > 1 ? 1 : 0, &f.err), 0);
		CHECK_EQ_INT(casfs_ingest_file_end(f.in, &f.err), -EBADMSG);
		CHECK(f.err.msg[0] != 0);
		/* the tree is incomplete */
		_cleanup_node_ struct casfs_node n = { 0 };
		CHECK(casfs_ingest_finish(f.in, "x", &n, NULL) < 0);
		CHECK_EQ_INT(n_blobs(f.s), 0);
	}
}

TEST(misuse_order)
{
	_cleanup_fx_ struct fx f = { 0 };
	CHECK_EQ_INT(fx_open(&f), 0);
	_cleanup_node_ struct casfs_node n = { 0 };
	/* nothing yet */
	CHECK_EQ_INT(casfs_ingest_finish(f.in, "x", &n, NULL), -EBADMSG);
	CHECK_EQ_INT(casfs_ingest_directory_end(f.in, &f.err), -EINVAL);
	CHECK_EQ_INT(casfs_ingest_file_data(f.in, "a", 1, NULL), -EINVAL);
	CHECK_EQ_INT(casfs_ingest_file_end(f.in, NULL), -EINVAL);
	/* a named root */
	CHECK_EQ_INT(casfs_ingest_directory_begin(f.in, "a", 1, NULL), -EINVAL);
	CHECK_EQ_INT(casfs_ingest_file_begin(f.in, "a", 1, false, 0, NULL), -EINVAL);
	CHECK_EQ_INT(casfs_ingest_symlink(f.in, "a", 1, "t", 1, NULL), -EINVAL);
	uint8_t d[CASFS_B3_LEN] = { 0 };
	CHECK_EQ_INT(casfs_ingest_file_known(f.in, "a", 1, false, d, 0, NULL), -EINVAL);

	/* unnamed nodes inside a directory; an open directory is incomplete */
	CHECK_EQ_INT(ing_dir(&f, NULL), 0);
	CHECK_EQ_INT(casfs_ingest_directory_begin(f.in, NULL, 0, NULL), -EINVAL);
	CHECK_EQ_INT(casfs_ingest_file_begin(f.in, NULL, 0, false, 0, NULL), -EINVAL);
	CHECK_EQ_INT(casfs_ingest_symlink(f.in, NULL, 0, "t", 1, NULL), -EINVAL);
	CHECK_EQ_INT(casfs_ingest_finish(f.in, "x", &n, NULL), -EBADMSG);

	/* nodes while a file is open */
	CHECK_EQ_INT(casfs_ingest_file_begin(f.in, "f", 1, false, 1, NULL), 0);
	CHECK_EQ_INT(casfs_ingest_directory_begin(f.in, "g", 1, NULL), -EINVAL);
	CHECK_EQ_INT(casfs_ingest_file_begin(f.in, "g", 1, false, 0, NULL), -EINVAL);
	CHECK_EQ_INT(casfs_ingest_symlink(f.in, "g", 1, "t", 1, NULL), -EINVAL);
	CHECK_EQ_INT(casfs_ingest_file_known(f.in, "g", 1, false, d, 0, NULL), -EINVAL);
	CHECK_EQ_INT(casfs_ingest_directory_end(f.in, NULL), -EINVAL);
	CHECK_EQ_INT(casfs_ingest_finish(f.in, "x", &n, NULL), -EBADMSG);
	CHECK_EQ_INT(casfs_ingest_file_data(f.in, "z", 1, NULL), 0);
	CHECK_EQ_INT(casfs_ingest_file_end(f.in, NULL), 0);
	CHECK_EQ_INT(casfs_ingest_file_end(f.in, NULL), -EINVAL);
	CHECK_EQ_INT(ing_end(&f), 0);

	/* a second root, and a directory_end too many */
	CHECK_EQ_INT(casfs_ingest_directory_begin(f.in, NULL, 0, NULL), -EINVAL);
	CHECK_EQ_INT(casfs_ingest_file_begin(f.in, NULL, 0, false, 0, NULL), -EINVAL);
	CHECK_EQ_INT(casfs_ingest_symlink(f.in, NULL, 0, "t", 1, NULL), -EINVAL);
	CHECK_EQ_INT(casfs_ingest_file_known(f.in, NULL, 0, false, d, 0, NULL), -EINVAL);
	CHECK_EQ_INT(casfs_ingest_directory_end(f.in, NULL), -EINVAL);
	/* the one root is still intact */
	CHECK_EQ_INT(casfs_ingest_finish(f.in, "x", &n, &f.err), 0);
	CHECK_EQ_INT(n.size, 1);

	/* a second root after a root file */
	CHECK_EQ_INT(fx_renew(&f), 0);
	CHECK_EQ_INT(ing_file(&f, NULL, "abc", false), 0);
	CHECK_EQ_INT(ing_file(&f, NULL, "abc", false), -EINVAL);
	CHECK_EQ_INT(ing_link(&f, NULL, "t"), -EINVAL);
}

/* Entries the castore rules refuse: nothing reaches the directory service. */
TEST(invalid_entries_refused)
{
	enum { UNSORTED, DUPLICATE, SLASH, DOTDOT, EMPTY_NAME, N_CASES };
	for (int c = 0; c < N_CASES; c++) {
		_cleanup_fx_ struct fx f = { 0 };
		CHECK_EQ_INT(fx_open(&f), 0);
		int r = ing_dir(&f, NULL);
		if (r >= 0 && c == UNSORTED) {
			r = ing_file(&f, "b", "1", false);
			if (r >= 0)
				r = ing_file(&f, "a", "2", false);
		} else if (r >= 0 && c == DUPLICATE) {
			r = ing_file(&f, "a", "1", false);
			if (r >= 0)
				r = ing_link(&f, "a", "t");
		} else if (r >= 0 && c == SLASH) {
			r = ing_file(&f, "a/b", "1", false);
		} else if (r >= 0 && c == DOTDOT) {
			r = ing_dir(&f, "..");
			if (r >= 0)
				r = ing_end(&f);
		} else if (r >= 0 && c == EMPTY_NAME) {
			r = casfs_ingest_symlink(f.in, "", 0, "t", 1, &f.err);
		}
		if (r >= 0)
			r = ing_end(&f);
		_cleanup_node_ struct casfs_node n = { 0 };
		if (r >= 0)
			r = casfs_ingest_finish(f.in, "x", &n, &f.err);
		if (r != -EBADMSG && r != -EINVAL) {
			FAILF("case %d: got %d, expected a rejection", c, r);
			return;
		}
		CHECK(f.err.msg[0] != 0);
		CHECK_EQ_INT(n_directories(f.s), 0);
	}
}

TEST(file_known)
{
	_cleanup_fx_ struct fx f = { 0 };
	CHECK_EQ_INT(fx_open(&f), 0);
	uint8_t d[CASFS_B3_LEN];
	CHECK_EQ_INT(casfs_blob_put(f.s->blobs, "known", 5, d), 0);
	CHECK_EQ_INT(ing_dir(&f, NULL), 0);
	CHECK_EQ_INT(casfs_ingest_file_known(f.in, "k", 1, true, d, 5, &f.err), 0);
	CHECK_EQ_INT(ing_end(&f), 0);
	_cleanup_node_ struct casfs_node n = { 0 };
	CHECK_EQ_INT(casfs_ingest_finish(f.in, "x", &n, &f.err), 0);
	_cleanup_dir_ struct casfs_directory exp = { 0 };
	CHECK_EQ_INT(add_file(&exp, "k", "known", true), 0);
	uint8_t want[CASFS_B3_LEN];
	CHECK_EQ_INT(casfs_directory_digest(&exp, want), 0);
	CHECK_EQ_MEM(n.digest, want, CASFS_B3_LEN);
}

/* ---- casfs_import_path vs nix-store --add ------------------------------- */

static int run(const char *cmd, char *out, size_t cap)
{
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	size_t len = fread(out, 1, cap - 1, p);
	out[len] = 0;
	while (len && out[len - 1] == '\n')
		out[--len] = 0;
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool have_nix(void)
{
	char buf[16];
	return run("command -v nix-store >/dev/null && command -v nix >/dev/null && echo y", buf,
		   sizeof(buf)) == 0 &&
	       strcmp(buf, "y") == 0;
}

#define NIX "nix --extra-experimental-features nix-command --option build-users-group '' "

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static int write_file(const char *dir, const char *rel, const void *p, size_t n, mode_t mode)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	int ok = fwrite(p, 1, n, f) == n;
	ok &= fclose(f) == 0;
	return ok && chmod(path, mode) == 0 ? 0 : -1;
}

static int make(const char *dir, const char *rel, const char *link_target)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	return link_target ? symlink(link_target, path) : mkdir(path, 0755);
}

/* The expected_tree() layout on disk. */
static int make_tree(const char *dir)
{
	int r = make(dir, "", NULL);
	r |= make(dir, "a", NULL) | make(dir, "b", NULL) | make(dir, "d", NULL);
	r |= make(dir, "d/a2", NULL) | make(dir, "d/e", NULL);
	r |= write_file(dir, "a/f", "x", 1, 0644) | write_file(dir, "b/f", "x", 1, 0600);
	r |= write_file(dir, "d/a2/f", "x", 1, 0444) | write_file(dir, "c", "ccc", 3, 0744);
	r |= make(dir, "a/l", "t") | make(dir, "b/l", "t") | make(dir, "d/a2/l", "t");
	r |= make(dir, "z", "../a");
	return r;
}

/* Import `path` (as `name` if not NULL) and compare with Nix: store path,
 * NAR hash, NAR size; the PathInfo is in the store, named by the path's
 * basename. */
static int import_vs_nix(struct casfs_store *s, const char *path, const char *name,
			 struct casfs_pathinfo *ret_pi)
{
	char cmd[1024], want[512], hex[128], size[64];
	if (name)
		snprintf(cmd, sizeof(cmd), NIX "store add-path --name '%s' '%s'", name, path);
	else
		snprintf(cmd, sizeof(cmd), "nix-store --option build-users-group '' --add '%s'", path);
	if (run(cmd, want, sizeof(want)) != 0)
		return printf("  %s failed\n", cmd), -1;
	snprintf(cmd, sizeof(cmd), NIX "hash path --type sha256 --base16 '%s'", path);
	if (run(cmd, hex, sizeof(hex)) != 0)
		return printf("  %s failed\n", cmd), -1;
	snprintf(cmd, sizeof(cmd), "nix-store -q --size '%s'", want);
	if (run(cmd, size, sizeof(size)) != 0)
		return printf("  %s failed\n", cmd), -1;

	struct casfs_import_options opts = { .name = name };
	struct casfs_import_result res;
	struct casfs_error err = { 0 };
	if (casfs_import_path(s, path, &opts, &res, &err) < 0)
		return printf("  import %s: %s\n", path, err.msg), -1;
	char got[CASFS_STORE_PATH_MAX + 1], got_hex[65];
	casfs_store_path_format(&res.path, got);
	casfs_hex_encode(res.nar_sha256, 32, got_hex);
	if (strcmp(got, want) || strcmp(got_hex, hex) || res.nar_size != strtoull(size, NULL, 10))
		return printf("  %s: casfs %s %s %llu, nix %s %s %s\n", path, got, got_hex,
			      (unsigned long long)res.nar_size, want, hex, size),
		       -1;

	struct casfs_pathinfo pi = { 0 };
	if (casfs_pathinfo_get(s->pathinfos, res.path.digest, &pi, &err) < 0)
		return printf("  pathinfo of %s: %s\n", got, err.msg), -1;
	int ok = strcmp(pi.node.name, strrchr(want, '/') + 1) == 0 && pi.has_narinfo &&
		 pi.nar_size == res.nar_size && !memcmp(pi.nar_sha256, res.nar_sha256, 32) &&
		 pi.n_references == 0;
	if (!ok) {
		casfs_pathinfo_release(&pi);
		return printf("  pathinfo of %s does not match\n", got), -1;
	}
	*ret_pi = pi;
	return 0;
}

static void pathinfo_cleanup(struct casfs_pathinfo *pi)
{
	casfs_pathinfo_release(pi);
}
#define _cleanup_pathinfo_ _cleanup_(pathinfo_cleanup)

TEST(import_path_vs_nix)
{
	if (!have_nix()) {
		printf("SKIP test-ingest:import_path_vs_nix: nix is not installed\n");
		return;
	}
	char tmp[] = "/tmp/casfs-test-ingest-XXXXXX";
	CHECK(mkdtemp(tmp) != NULL);
	char tree[128], file[128], link[128], bigdir[128];
	snprintf(tree, sizeof(tree), "%s/tree", tmp);
	snprintf(file, sizeof(file), "%s/hello.txt", tmp);
	snprintf(link, sizeof(link), "%s/lnk", tmp);
	snprintf(bigdir, sizeof(bigdir), "%s/big", tmp);
	const size_t big = 3 * CASFS_INGEST_SMALL_FILE + 7;
	_cleanup_free_ uint8_t *data = pattern(big, 42);
	int r = make_tree(tree) | write_file(tmp, "hello.txt", "hello\n", 6, 0644) |
		make(tmp, "lnk", "hello.txt") | make(tmp, "big", NULL) |
		(data ? write_file(tmp, "big/blob", data, big, 0755) : -1) |
		write_file(tmp, "big/s", "s", 1, 0644);

	_cleanup_fx_ struct fx f = { 0 };
	int ok = r == 0 && fx_open(&f) == 0;
	struct expected_tree t;
	ok = ok && expected_tree(&t) == 0;
	_cleanup_pathinfo_ struct casfs_pathinfo p1 = { 0 }, p2 = { 0 }, p3 = { 0 }, p4 = { 0 },
						 p5 = { 0 };
	ok = ok && import_vs_nix(f.s, tree, NULL, &p1) == 0;
	ok = ok && import_vs_nix(f.s, file, NULL, &p2) == 0;
	ok = ok && import_vs_nix(f.s, link, NULL, &p3) == 0;
	ok = ok && import_vs_nix(f.s, bigdir, NULL, &p4) == 0;
	ok = ok && import_vs_nix(f.s, tree, "renamed-1.0", &p5) == 0;
	nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	CHECK(ok);

	/* The castore side, against the hand-built expectations. */
	CHECK_EQ_INT(p1.node.type, CASFS_NODE_DIRECTORY);
	CHECK_EQ_MEM(p1.node.digest, t.root, CASFS_B3_LEN);
	CHECK_EQ_INT(p1.node.size, 13);
	CHECK(dir_present(f.s, t.root) && dir_present(f.s, t.a) && dir_present(f.s, t.d));
	CHECK_EQ_MEM(p5.node.digest, t.root, CASFS_B3_LEN);
	uint8_t want[CASFS_B3_LEN];
	casfs_b3("hello\n", 6, want);
	CHECK_EQ_INT(p2.node.type, CASFS_NODE_FILE);
	CHECK_EQ_MEM(p2.node.digest, want, CASFS_B3_LEN);
	CHECK(!p2.node.executable);
	CHECK_EQ_INT(p3.node.type, CASFS_NODE_SYMLINK);
	CHECK_EQ_STR(p3.node.target, "hello.txt");
	_cleanup_dir_ struct casfs_directory exp = { 0 };
	casfs_b3(data, big, want);
	CHECK(blob_present(f.s, want, data, big));
	CHECK_EQ_INT(casfs_directory_add_file(&exp, "blob", 4, want, big, true), 0);
	CHECK_EQ_INT(add_file(&exp, "s", "s", false), 0);
	CHECK_EQ_INT(casfs_directory_digest(&exp, want), 0);
	CHECK_EQ_MEM(p4.node.digest, want, CASFS_B3_LEN);
}

/* ---- a large file that changes between hashing and copying -------------- */

/* A blob service that forwards to another one, but whose first stat (the
 * importer's "is this large blob new?" between its hash pass and its copy
 * pass) rewrites one byte of `victim` in place: the file changes exactly
 * in the window a racing writer would hit. */
struct racing_blobs {
	struct casfs_blob_service base;
	struct casfs_blob_service *inner;
	const char *victim;
	bool changed;
};

static int racing_stat(struct casfs_blob_service *s, const uint8_t d[CASFS_B3_LEN], uint64_t *size)
{
	struct racing_blobs *rb = (struct racing_blobs *)s;
	if (!rb->changed) {
		rb->changed = true;
		int fd = open(rb->victim, O_WRONLY);
		if (fd < 0 || pwrite(fd, "!", 1, 1 << 20) != 1)
			printf("  cannot change %s\n", rb->victim);
		if (fd >= 0)
			close(fd);
	}
	return casfs_blob_stat(rb->inner, d, size);
}
static int racing_open(struct casfs_blob_service *s, const uint8_t d[CASFS_B3_LEN],
		       struct casfs_blob_reader **ret)
{
	return casfs_blob_open(((struct racing_blobs *)s)->inner, d, ret);
}
static int racing_create(struct casfs_blob_service *s, struct casfs_blob_writer **ret)
{
	return casfs_blob_create(((struct racing_blobs *)s)->inner, ret);
}
static int racing_sync(struct casfs_blob_service *s)
{
	return casfs_blob_sync(((struct racing_blobs *)s)->inner);
}
static void racing_free(struct casfs_blob_service *s)
{
	casfs_blob_service_free(((struct racing_blobs *)s)->inner);
}
static const struct casfs_blob_service_ops racing_ops = {
	.name = "racing",
	.stat = racing_stat,
	.open = racing_open,
	.create = racing_create,
	.sync = racing_sync,
	.free = racing_free,
};

static int any_blob(const uint8_t digest[CASFS_B3_LEN], void *userdata)
{
	(void)digest;
	*(bool *)userdata = true;
	return 0;
}

TEST(large_file_changed_while_imported)
{
	char tmp[] = "/tmp/casfs-test-ingest-XXXXXX";
	CHECK(mkdtemp(tmp) != NULL);
	char big[128];
	snprintf(big, sizeof(big), "%s/big", tmp);
	size_t n = 3u << 20;
	uint8_t *data = malloc(n);
	CHECK(data != NULL);
	for (size_t i = 0; i < n; i++)
		data[i] = (uint8_t)(i * 2654435761u >> 13);
	int wr = write_file(tmp, "big", data, n, 0644);
	free(data);

	_cleanup_fx_ struct fx f;
	CHECK(fx_open(&f) == 0);
	struct racing_blobs rb = { .base.ops = &racing_ops, .inner = f.s->blobs, .victim = big };
	f.s->blobs = &rb.base;
	struct casfs_import_result res;
	int r = wr == 0 ? casfs_import_path(f.s, big, NULL, &res, &f.err) : -1;
	bool listed_any = false;
	if (rb.inner->ops->list)
		rb.inner->ops->list(rb.inner, any_blob, &listed_any);
	f.s->blobs = rb.inner;
	nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);

	CHECK(wr == 0 && rb.changed);
	CHECK_EQ_INT(r, -EIO);
	CHECK_EQ_INT(f.err.code, r);
	const char *msg = casfs_error_message(&f.err, r);
	if (!strstr(msg, "changed while being imported") || !strstr(msg, big))
		FAILF("message: '%s'", msg);
	CHECK(!listed_any); /* the changed copy was never committed */
}


/* ---- ingest: directories end without waiting for the worker ------------- */

/* A blob service whose `stat` (the worker's "is this blob present?")
 * waits until the test opens the gate, or gives up after 5 s (noting it):
 * an ingest that waited for the worker at a directory's end would hang
 * there until then. */
struct gated_blobs {
	struct casfs_blob_service base;
	struct casfs_blob_service *inner;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool open, timed_out;
	int passed; /* stats let through */
};

static struct gated_blobs *gated(struct casfs_blob_service *s)
{
	return (struct gated_blobs *)s;
}
static int gated_stat(struct casfs_blob_service *s, const uint8_t d[CASFS_B3_LEN], uint64_t *size)
{
	struct gated_blobs *g = gated(s);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&g->mu);
	while (!g->open && !g->timed_out)
		if (pthread_cond_timedwait(&g->cv, &g->mu, &until) == ETIMEDOUT)
			g->timed_out = true;
	g->passed++;
	pthread_mutex_unlock(&g->mu);
	return casfs_blob_stat(g->inner, d, size);
}
static int gated_open(struct casfs_blob_service *s, const uint8_t d[CASFS_B3_LEN],
		      struct casfs_blob_reader **ret)
{
	return casfs_blob_open(gated(s)->inner, d, ret);
}
static int gated_create(struct casfs_blob_service *s, struct casfs_blob_writer **ret)
{
	return casfs_blob_create(gated(s)->inner, ret);
}
static const struct casfs_blob_service_ops gated_ops = {
	.name = "gated", .stat = gated_stat, .open = gated_open, .create = gated_create,
};

#define MANY_DIRS 3
#define MANY_FILES 100

/* root/ 0many0..2/ (100 files each), t/ (the tree above) */
static int ingest_many_then_tree(struct fx *f)
{
	int r = ing_dir(f, NULL);
	for (int d = 0; r >= 0 && d < MANY_DIRS; d++) {
		char name[16];
		snprintf(name, sizeof(name), "0many%d", d);
		r = ing_dir(f, name);
		for (int i = 0; r >= 0 && i < MANY_FILES; i++) {
			char fname[16], content[16];
			snprintf(fname, sizeof(fname), "f%03d", i);
			snprintf(content, sizeof(content), "%d-%d", d, i);
			r = ing_file(f, fname, content, false);
		}
		if (r >= 0)
			r = ing_end(f);
	}
	if (r >= 0)
		r = ingest_tree_named(f, "t");
	return r >= 0 ? ing_end(f) : r;
}

static int expected_many_then_tree(uint8_t root_digest[CASFS_B3_LEN])
{
	struct expected_tree t;
	_cleanup_dir_ struct casfs_directory root = { 0 };
	int r = expected_tree(&t);
	for (int d = 0; r >= 0 && d < MANY_DIRS; d++) {
		_cleanup_dir_ struct casfs_directory many = { 0 };
		for (int i = 0; r >= 0 && i < MANY_FILES; i++) {
			char fname[16], content[16];
			snprintf(fname, sizeof(fname), "f%03d", i);
			snprintf(content, sizeof(content), "%d-%d", d, i);
			r = add_file(&many, fname, content, false);
		}
		uint8_t md[CASFS_B3_LEN];
		char name[16];
		snprintf(name, sizeof(name), "0many%d", d);
		if (r >= 0)
			r = casfs_directory_digest(&many, md);
		if (r >= 0)
			r = casfs_directory_add_directory(&root, name, strlen(name), md, MANY_FILES);
	}
	if (r >= 0)
		r = casfs_directory_add_directory(&root, "t", 1, t.root, 13);
	return r >= 0 ? casfs_directory_digest(&root, root_digest) : r;
}

TEST(directories_end_while_the_worker_is_held)
{
	uint8_t want[CASFS_B3_LEN];
	CHECK_EQ_INT(expected_many_then_tree(want), 0);
	_cleanup_fx_ struct fx f = { 0 };
	CHECK_EQ_INT(fx_open(&f), 0);
	struct gated_blobs g = { .base.ops = &gated_ops, .inner = f.s->blobs };
	pthread_mutex_init(&g.mu, NULL);
	pthread_cond_init(&g.cv, NULL);
	f.s->blobs = &g.base;
	CHECK_EQ_INT(fx_renew(&f), 0); /* an ingest whose worker sees the gate */

	/* The whole tree goes in while not one blob got past the gate. */
	int r = ingest_many_then_tree(&f);
	pthread_mutex_lock(&g.mu);
	bool waited = g.timed_out;
	int passed = g.passed;
	g.open = true;
	pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.mu);

	/* Then the digests come in, and every directory gets the right one. */
	_cleanup_node_ struct casfs_node n = { 0 };
	int fin = r < 0 ? r : casfs_ingest_finish(f.in, "root", &n, &f.err);
	bool stored = fin >= 0 && dir_present(f.s, want);
	casfs_ingest_free(TAKE_PTR(f.in)); /* its worker uses g */
	f.s->blobs = g.inner;
	pthread_cond_destroy(&g.cv);
	pthread_mutex_destroy(&g.mu);
	CHECK(!waited);
	CHECK_EQ_INT(passed, 0);
	if (r < 0 || fin < 0) {
		FAILF("%s: %s", r < 0 ? "ingest" : "finish", f.err.msg);
		return;
	}
	CHECK_EQ_MEM(n.digest, want, CASFS_B3_LEN);
	CHECK_EQ_INT(n.size, MANY_DIRS * (1 + MANY_FILES) + 1 + 13);
	CHECK(stored);
}
