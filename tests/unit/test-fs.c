/* The filesystem core over a hand-built memory: store.
 *
 * Store paths:
 *   <h1>-tree    directory:
 *                  big        1500 bytes, 0444
 *                  bin/hello  executable script
 *                  data.txt   "hello world\n"
 *                  empty      0 bytes
 *                  exe.txt    "hello world\n", executable
 *                  link       -> data.txt
 *                  same.txt   "hello world\n" (same blob as data.txt)
 *                  sub/       empty directory
 *   <h2>-single  file "hello world\n"
 *   <h3>-lnk     symlink -> /nix/store/elsewhere
 *   <h4>-bad     file whose blob is served corrupted (fault injection)
 *   <h5>-gone    file whose blob is missing (PathInfo put directly)
 *
 * Expected digests come from b3sum, not from our BLAKE3. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>

#include "basic/encoding.h"
#include "basic/util.h"
#include "castore/blobservice.h"
#include "castore/directoryservice.h"
#include "fs/fs.h"
#include "store/store.h"
#include "test-lmdb.h"
#include "test-spy-blobs.h"
#include "test.h"

#define HELLO "hello world\n"
#define HELLO_B3 "b3:3FpO24JAsBgSQFLDMCcGlvlncaY7RSUKXBfTAA6CM1U=" /* b3sum | base64 */
#define EMPTY_B3 "b3:rxNJufX5oaagQE3qNtzJSZvLJcmtwRK3zJqTyuQfMmI="
#define SCRIPT "#!/bin/sh\necho hi\n"

/* Fault injection: blob `bad` is served with its first byte flipped by a
 * spy (test-spy-blobs.h), which also counts the bytes read and the opens. */

/* The fixture. */
struct fixture {
	struct casfs_store *store;
	char name[6][64];   /* basenames of h1..h5 (index 1..5) */
	uint8_t digest[6][CASFS_STORE_DIGEST_LEN];
	uint8_t tree_digest[CASFS_B3_LEN], bin_digest[CASFS_B3_LEN], hello_blob[CASFS_B3_LEN];
	uint8_t big[1500];
	char log[1024];
	int n_log;
	struct spy_blobs *spy;
};

static void basename_for(struct fixture *f, int k, const char *name)
{
	for (size_t i = 0; i < CASFS_STORE_DIGEST_LEN; i++)
		f->digest[k][i] = (uint8_t)(k * 37 + i);
	casfs_nixbase32_encode(f->digest[k], CASFS_STORE_DIGEST_LEN, f->name[k]);
	strcat(f->name[k], "-");
	strcat(f->name[k], name);
}

static int add_path(struct fixture *f, int k, struct casfs_node node, bool checked)
{
	struct casfs_pathinfo pi = { 0 };
	pi.node = node;
	pi.node.name = f->name[k];
	pi.node.name_len = strlen(f->name[k]);
	pi.has_narinfo = true;
	struct casfs_error err = { 0 };
	int r = checked ? casfs_store_add_pathinfo(f->store, f->digest[k], &pi, &err)
			: casfs_pathinfo_put(f->store->pathinfos, f->digest[k], &pi, &err);
	if (r < 0)
		printf("  add_path %d: %s\n", k, casfs_error_message(&err, r));
	return r;
}

static void fixture_log(void *userdata, enum casfs_fs_log_level level, const char *msg)
{
	struct fixture *f = userdata;
	(void)level;
	snprintf(f->log, sizeof(f->log), "%s", msg);
	__atomic_add_fetch(&f->n_log, 1, __ATOMIC_RELAXED);
}

static int fixture_init(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	struct casfs_error err = { 0 };
	int r = casfs_store_open("memory:", CASFS_STORE_CREATE, &f->store, &err);
	if (r < 0)
		return r;
	struct casfs_blob_service *b = f->store->blobs;
	uint8_t empty_blob[CASFS_B3_LEN], script_blob[CASFS_B3_LEN], big_blob[CASFS_B3_LEN],
		bad_blob[CASFS_B3_LEN];
	for (size_t i = 0; i < sizeof(f->big); i++)
		f->big[i] = (uint8_t)(i * 7 + i / 256);
	if ((r = casfs_blob_put(b, HELLO, strlen(HELLO), f->hello_blob)) < 0 ||
	    (r = casfs_blob_put(b, "", 0, empty_blob)) < 0 ||
	    (r = casfs_blob_put(b, SCRIPT, strlen(SCRIPT), script_blob)) < 0 ||
	    (r = casfs_blob_put(b, f->big, sizeof(f->big), big_blob)) < 0 ||
	    (r = casfs_blob_put(b, "bad content", 11, bad_blob)) < 0)
		return r;

	struct casfs_directory dirs[3] = { { 0 } };
	struct casfs_directory *bin = &dirs[0], *sub = &dirs[1], *top = &dirs[2];
	uint8_t sub_digest[CASFS_B3_LEN];
	uint64_t bin_size, sub_size;
	if ((r = casfs_directory_add_file(bin, "hello", 5, script_blob, strlen(SCRIPT), true)) < 0 ||
	    (r = casfs_directory_digest(bin, f->bin_digest)) < 0 ||
	    (r = casfs_directory_size(bin, &bin_size)) < 0 ||
	    (r = casfs_directory_digest(sub, sub_digest)) < 0 ||
	    (r = casfs_directory_size(sub, &sub_size)) < 0 ||
	    (r = casfs_directory_add_directory(top, "bin", 3, f->bin_digest, bin_size)) < 0 ||
	    (r = casfs_directory_add_directory(top, "sub", 3, sub_digest, sub_size)) < 0 ||
	    (r = casfs_directory_add_file(top, "big", 3, big_blob, sizeof(f->big), false)) < 0 ||
	    (r = casfs_directory_add_file(top, "data.txt", 8, f->hello_blob, 12, false)) < 0 ||
	    (r = casfs_directory_add_file(top, "empty", 5, empty_blob, 0, false)) < 0 ||
	    (r = casfs_directory_add_file(top, "exe.txt", 7, f->hello_blob, 12, true)) < 0 ||
	    (r = casfs_directory_add_file(top, "same.txt", 8, f->hello_blob, 12, false)) < 0 ||
	    (r = casfs_directory_add_symlink(top, "link", 4, "data.txt", 8)) < 0)
		return r;
	casfs_directory_sort(top);
	uint64_t top_size;
	if ((r = casfs_directory_size(top, &top_size)) < 0 ||
	    (r = casfs_directory_put_closure(f->store->directories, dirs, 3, f->tree_digest,
					     &err)) < 0) {
		printf("  closure: %s\n", casfs_error_message(&err, r));
		return r;
	}
	for (int k = 0; k < 3; k++)
		casfs_directory_release(&dirs[k]);

	basename_for(f, 1, "tree");
	basename_for(f, 2, "single");
	basename_for(f, 3, "lnk");
	basename_for(f, 4, "bad");
	basename_for(f, 5, "gone");
	struct casfs_node n = { .type = CASFS_NODE_DIRECTORY, .size = top_size, .digest_set = true };
	memcpy(n.digest, f->tree_digest, CASFS_B3_LEN);
	if ((r = add_path(f, 1, n, true)) < 0)
		return r;
	n = (struct casfs_node){ .type = CASFS_NODE_FILE, .size = 12, .digest_set = true };
	memcpy(n.digest, f->hello_blob, CASFS_B3_LEN);
	if ((r = add_path(f, 2, n, true)) < 0)
		return r;
	n = (struct casfs_node){ .type = CASFS_NODE_SYMLINK, .target = "/nix/store/elsewhere",
				 .target_len = 20 };
	if ((r = add_path(f, 3, n, true)) < 0)
		return r;
	n = (struct casfs_node){ .type = CASFS_NODE_FILE, .size = 11, .digest_set = true };
	memcpy(n.digest, bad_blob, CASFS_B3_LEN);
	if ((r = add_path(f, 4, n, true)) < 0)
		return r;
	n = (struct casfs_node){ .type = CASFS_NODE_FILE, .size = 5, .digest_set = true };
	memset(n.digest, 0x55, CASFS_B3_LEN);
	if ((r = add_path(f, 5, n, false)) < 0)
		return r;

	/* From now on, blob `bad` is served corrupted. */
	if (!(f->spy = spy_wrap(f->store)))
		return -ENOMEM;
	spy_set_victim(f->spy, bad_blob);
	return 0;
}

static struct casfs_fs *fixture_fs(struct fixture *f, bool list_root, bool no_verify)
{
	struct casfs_fs_options o = { .list_root = list_root, .no_verify = no_verify,
				      .log = fixture_log, .log_userdata = f };
	struct casfs_fs *fs = NULL;
	if (casfs_fs_new(f->store, &o, &fs) < 0)
		return NULL;
	return fs;
}

#define SETUP(list_root, no_verify)                                                  \
	struct fixture F;                                                            \
	int setup_r = fixture_init(&F);                                              \
	if (setup_r < 0)                                                             \
		casfs_store_free(F.store);                                           \
	CHECK_EQ_INT(setup_r, 0);                                                    \
	struct casfs_fs *fs = fixture_fs(&F, list_root, no_verify);                  \
	CHECK(fs != NULL)

#define TEARDOWN() do { casfs_fs_free(fs); casfs_store_free(F.store); } while (0)

/* Lookup a path relative to the root ("a/b/c"), counting one lookup on each
 * component.  Returns the inode or -errno. */
static long long walk(struct casfs_fs *fs, const char *path, struct stat *st)
{
	char buf[512];
	snprintf(buf, sizeof(buf), "%s", path);
	uint64_t ino = CASFS_FS_ROOT_INO;
	char *save = NULL;
	for (char *c = strtok_r(buf, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		int r = casfs_fs_lookup(fs, ino, c, st);
		if (r < 0)
			return r;
		ino = st->st_ino;
	}
	return (long long)ino;
}

static char *path_in(struct fixture *f, int k, const char *sub)
{
	static __thread char buf[512];
	snprintf(buf, sizeof(buf), "%s%s%s", f->name[k], sub ? "/" : "", sub ? sub : "");
	return buf;
}

TEST(root_lookup_rejects_invalid_names)
{
	SETUP(false, false);
	struct stat st;
	const char *bad[] = {
		"", "x", "foo-bar", ".", "..",
		"00000000000000000000000000000000", /* no name */
		"00000000000000000000000000000000-",
		"0000000000000000000000000000000e-x", /* 'e' not in the alphabet */
		"0000000000000000000000000000000-x",  /* 31 chars */
		"00000000000000000000000000000000-.hidden",
		"00000000000000000000000000000000-a/b",
		"00000000000000000000000000000000-a b",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		CHECK_EQ_INT(casfs_fs_lookup(fs, CASFS_FS_ROOT_INO, bad[i], &st), -ENOENT);
	/* Valid basename, unknown digest. */
	CHECK_EQ_INT(casfs_fs_lookup(fs, CASFS_FS_ROOT_INO, "00000000000000000000000000000000-x", &st),
		     -ENOENT);
	/* Known digest, other name. */
	char other[64];
	memcpy(other, F.name[2], 33);
	strcpy(other + 33, "other");
	CHECK_EQ_INT(casfs_fs_lookup(fs, CASFS_FS_ROOT_INO, other, &st), -ENOENT);
	TEARDOWN();
}

TEST(attributes)
{
	SETUP(false, false);
	struct stat st;
	CHECK_EQ_INT(casfs_fs_getattr(fs, CASFS_FS_ROOT_INO, &st), 0);
	CHECK_EQ_INT(st.st_mode, S_IFDIR | 0555);
	CHECK_EQ_INT(st.st_ino, CASFS_FS_ROOT_INO);

	long long tree = walk(fs, path_in(&F, 1, NULL), &st);
	CHECK(tree > 1);
	CHECK_EQ_INT(st.st_mode, S_IFDIR | 0555);
	CHECK_EQ_INT(st.st_nlink, 2);
	CHECK_EQ_INT(st.st_uid, 0);
	CHECK_EQ_INT(st.st_gid, 0);
	CHECK_EQ_INT(st.st_mtim.tv_sec, 1);
	CHECK_EQ_INT(st.st_atim.tv_sec, 1);
	CHECK_EQ_INT(st.st_ctim.tv_sec, 1);
	CHECK_EQ_INT(st.st_mtim.tv_nsec, 0);

	CHECK(walk(fs, path_in(&F, 1, "big"), &st) > 1);
	CHECK_EQ_INT(st.st_mode, S_IFREG | 0444);
	CHECK_EQ_INT(st.st_size, 1500);
	CHECK_EQ_INT(st.st_blocks, 3);
	CHECK_EQ_INT(st.st_nlink, 1);
	CHECK_EQ_INT(st.st_mtim.tv_sec, 1);

	CHECK(walk(fs, path_in(&F, 1, "bin/hello"), &st) > 1);
	CHECK_EQ_INT(st.st_mode, S_IFREG | 0555);
	CHECK_EQ_INT(st.st_size, strlen(SCRIPT));
	CHECK_EQ_INT(st.st_blocks, 1);

	CHECK(walk(fs, path_in(&F, 1, "empty"), &st) > 1);
	CHECK_EQ_INT(st.st_size, 0);
	CHECK_EQ_INT(st.st_blocks, 0);

	long long link = walk(fs, path_in(&F, 1, "link"), &st);
	CHECK(link > 1);
	CHECK_EQ_INT(st.st_mode, S_IFLNK | 0777);
	CHECK_EQ_INT(st.st_size, 8);
	CHECK_EQ_INT(st.st_nlink, 1);

	/* getattr agrees with lookup. */
	struct stat st2;
	CHECK_EQ_INT(casfs_fs_getattr(fs, (uint64_t)link, &st2), 0);
	CHECK_EQ_MEM(&st, &st2, sizeof(st));

	CHECK(walk(fs, path_in(&F, 2, NULL), &st) > 1);
	CHECK_EQ_INT(st.st_mode, S_IFREG | 0444);
	CHECK_EQ_INT(st.st_size, 12);
	CHECK(walk(fs, path_in(&F, 3, NULL), &st) > 1);
	CHECK_EQ_INT(st.st_mode, S_IFLNK | 0777);
	CHECK_EQ_INT(st.st_size, 20);

	CHECK_EQ_INT(casfs_fs_getattr(fs, 12345, &st), -ESTALE);
	TEARDOWN();
}

TEST(lookup_errors)
{
	SETUP(false, false);
	struct stat st;
	CHECK_EQ_INT(walk(fs, path_in(&F, 1, "nope"), &st), -ENOENT);
	CHECK_EQ_INT(walk(fs, path_in(&F, 1, "bin/nope"), &st), -ENOENT);
	CHECK_EQ_INT(walk(fs, path_in(&F, 1, "data.txt/x"), &st), -ENOTDIR);
	CHECK_EQ_INT(walk(fs, path_in(&F, 2, "x"), &st), -ENOTDIR);
	CHECK_EQ_INT(walk(fs, path_in(&F, 1, "Data.txt"), &st), -ENOENT);
	CHECK_EQ_INT(casfs_fs_lookup(fs, 999, "x", &st), -ESTALE);
	TEARDOWN();
}

TEST(sharing_and_stable_inode_numbers)
{
	SETUP(false, false);
	struct stat st;
	long long data = walk(fs, path_in(&F, 1, "data.txt"), &st);
	long long same = walk(fs, path_in(&F, 1, "same.txt"), &st);
	long long single = walk(fs, path_in(&F, 2, NULL), &st);
	long long exe = walk(fs, path_in(&F, 1, "exe.txt"), &st);
	long long bin = walk(fs, path_in(&F, 1, "bin"), &st);
	long long sub = walk(fs, path_in(&F, 1, "sub"), &st);
	CHECK(data > 1);
	/* Same content and flag: one inode, still nlink 1. */
	CHECK_EQ_INT(same, data);
	CHECK_EQ_INT(single, data);
	CHECK_EQ_INT(st.st_nlink, 2);
	CHECK(exe != data);
	CHECK(bin != sub);

	/* Forget everything; the numbers come back the same. */
	long long tree = walk(fs, path_in(&F, 1, NULL), &st);
	casfs_fs_forget(fs, (uint64_t)tree, 6); /* 5 walks through it + this one */
	casfs_fs_forget(fs, (uint64_t)data, 3);
	casfs_fs_forget(fs, (uint64_t)exe, 1);
	casfs_fs_forget(fs, (uint64_t)bin, 1);
	casfs_fs_forget(fs, (uint64_t)sub, 1);
	CHECK_EQ_INT(casfs_fs_getattr(fs, (uint64_t)tree, &st), -ESTALE);
	CHECK_EQ_INT(casfs_fs_getattr(fs, (uint64_t)data, &st), -ESTALE);
	CHECK_EQ_INT(casfs_fs_getattr(fs, (uint64_t)bin, &st), -ESTALE);

	struct fixture *fp = &F;
	struct casfs_fs *fs2 = fixture_fs(fp, false, false); /* a second mount, too */
	CHECK(fs2 != NULL);
	CHECK_EQ_INT(walk(fs, path_in(&F, 1, "data.txt"), &st), data);
	CHECK_EQ_INT(walk(fs, path_in(&F, 1, "bin"), &st), bin);
	CHECK_EQ_INT(walk(fs, path_in(&F, 1, NULL), &st), tree);
	CHECK_EQ_INT(walk(fs2, path_in(&F, 1, "sub"), &st), sub);
	casfs_fs_free(fs2);
	TEARDOWN();
}

TEST(forget_counts_lookups)
{
	SETUP(false, false);
	struct stat st;
	long long tree = walk(fs, path_in(&F, 1, NULL), &st);
	CHECK_EQ_INT(walk(fs, path_in(&F, 1, NULL), &st), tree);
	casfs_fs_forget(fs, (uint64_t)tree, 1);
	CHECK_EQ_INT(casfs_fs_getattr(fs, (uint64_t)tree, &st), 0);
	casfs_fs_forget(fs, (uint64_t)tree, 1);
	CHECK_EQ_INT(casfs_fs_getattr(fs, (uint64_t)tree, &st), -ESTALE);
	/* Over-forgetting, unknown inodes and the root are harmless. */
	casfs_fs_forget(fs, (uint64_t)tree, 5);
	casfs_fs_forget(fs, 77777, 1);
	casfs_fs_forget(fs, CASFS_FS_ROOT_INO, 100);
	CHECK_EQ_INT(casfs_fs_getattr(fs, CASFS_FS_ROOT_INO, &st), 0);

	/* A child outlives its forgotten parent. */
	long long bin = walk(fs, path_in(&F, 1, "bin"), &st);
	casfs_fs_forget(fs, (uint64_t)tree, 1);
	CHECK_EQ_INT(casfs_fs_getattr(fs, (uint64_t)tree, &st), -ESTALE);
	CHECK_EQ_INT(casfs_fs_lookup(fs, (uint64_t)bin, "hello", &st), 0);
	CHECK_EQ_INT(st.st_mode, S_IFREG | 0555);

	/* An open directory handle pins its inode. */
	struct casfs_fs_dir *d;
	CHECK_EQ_INT(casfs_fs_opendir(fs, (uint64_t)bin, &d), 0);
	casfs_fs_forget(fs, (uint64_t)bin, 1);
	CHECK_EQ_INT(casfs_fs_getattr(fs, (uint64_t)bin, &st), 0);
	casfs_fs_releasedir(fs, d);
	CHECK_EQ_INT(casfs_fs_getattr(fs, (uint64_t)bin, &st), -ESTALE);
	TEARDOWN();
}

struct listing {
	char names[32][300];
	struct stat attrs[32];
	uint64_t next[32];
	int n, limit;
};

static int collect(void *userdata, const char *name, const struct stat *attr, uint64_t next)
{
	struct listing *l = userdata;
	if (l->n >= l->limit)
		return 1;
	snprintf(l->names[l->n], sizeof(l->names[0]), "%s", name);
	l->attrs[l->n] = *attr;
	l->next[l->n] = next;
	l->n++;
	return 0;
}

TEST(readdir_order_offsets_and_plus)
{
	SETUP(false, false);
	struct stat st;
	long long tree = walk(fs, path_in(&F, 1, NULL), &st);
	struct casfs_fs_dir *d;
	CHECK_EQ_INT(casfs_fs_opendir(fs, (uint64_t)tree, &d), 0);
	struct listing l = { .limit = 32 };
	CHECK_EQ_INT(casfs_fs_readdir(fs, d, 0, false, collect, &l), 0);
	const char *want[] = { ".", "..", "big", "bin", "data.txt", "empty", "exe.txt",
			       "link", "same.txt", "sub" };
	CHECK_EQ_INT(l.n, ARRAY_SIZE(want));
	for (int i = 0; i < l.n; i++) {
		CHECK_EQ_STR(l.names[i], want[i]);
		CHECK_EQ_INT(l.next[i], i + 1);
	}
	CHECK_EQ_INT(l.attrs[0].st_ino, tree);
	CHECK_EQ_INT(l.attrs[1].st_ino, CASFS_FS_ROOT_INO);
	CHECK_EQ_INT(l.attrs[3].st_mode, S_IFDIR | 0555);
	CHECK_EQ_INT(l.attrs[6].st_mode, S_IFREG | 0555);
	CHECK_EQ_INT(l.attrs[7].st_mode, S_IFLNK | 0777);
	/* d_ino equals what lookup gives. */
	CHECK_EQ_INT(walk(fs, path_in(&F, 1, "link"), &st), l.attrs[7].st_ino);

	/* Resume in the middle, with a small "buffer". */
	struct listing l2 = { .limit = 3 };
	CHECK_EQ_INT(casfs_fs_readdir(fs, d, 4, false, collect, &l2), 0);
	CHECK_EQ_INT(l2.n, 3);
	CHECK_EQ_STR(l2.names[0], "data.txt");
	CHECK_EQ_STR(l2.names[2], "exe.txt");
	CHECK_EQ_INT(l2.next[2], 7);
	struct listing l3 = { .limit = 32 };
	CHECK_EQ_INT(casfs_fs_readdir(fs, d, 100, false, collect, &l3), 0);
	CHECK_EQ_INT(l3.n, 0);
	casfs_fs_releasedir(fs, d);

	/* readdirplus: every taken entry counts one lookup, refused ones none. */
	CHECK_EQ_INT(casfs_fs_opendir(fs, (uint64_t)tree, &d), 0);
	struct listing p = { .limit = 5 }; /* ., .., big, bin, data.txt */
	CHECK_EQ_INT(casfs_fs_readdir(fs, d, 0, true, collect, &p), 0);
	CHECK_EQ_INT(p.n, 5);
	casfs_fs_releasedir(fs, d);
	uint64_t bin = p.attrs[3].st_ino, big = p.attrs[2].st_ino;
	CHECK_EQ_INT(casfs_fs_getattr(fs, bin, &st), 0);
	CHECK_EQ_INT(st.st_mode, S_IFDIR | 0555);
	CHECK_EQ_INT(casfs_fs_getattr(fs, big, &st), 0);
	CHECK_EQ_INT(st.st_size, 1500);
	casfs_fs_forget(fs, bin, 1);
	CHECK_EQ_INT(casfs_fs_getattr(fs, bin, &st), -ESTALE);
	/* exe.txt was refused, so it has no inode. */
	CHECK_EQ_INT(casfs_fs_getattr(fs, l.attrs[6].st_ino, &st), -ESTALE);

	/* Empty directory; readdir of a file. */
	long long sub = walk(fs, path_in(&F, 1, "sub"), &st);
	CHECK_EQ_INT(casfs_fs_opendir(fs, (uint64_t)sub, &d), 0);
	struct listing e = { .limit = 32 };
	CHECK_EQ_INT(casfs_fs_readdir(fs, d, 0, true, collect, &e), 0);
	CHECK_EQ_INT(e.n, 2);
	CHECK_EQ_INT(e.attrs[1].st_ino, tree);
	casfs_fs_releasedir(fs, d);
	CHECK_EQ_INT(casfs_fs_opendir(fs, (uint64_t)big, &d), -ENOTDIR);
	TEARDOWN();
}

TEST(root_listing)
{
	struct stat st;
	{
		SETUP(false, false);
		struct casfs_fs_dir *d = NULL;
		CHECK_EQ_INT(casfs_fs_opendir(fs, CASFS_FS_ROOT_INO, &d), -EPERM);
		TEARDOWN();
	}
	SETUP(true, false);
	struct casfs_fs_dir *d = NULL;
	CHECK_EQ_INT(casfs_fs_opendir(fs, CASFS_FS_ROOT_INO, &d), 0);
	struct listing l = { .limit = 32 };
	CHECK_EQ_INT(casfs_fs_readdir(fs, d, 0, true, collect, &l), 0);
	casfs_fs_releasedir(fs, d);
	CHECK_EQ_INT(l.n, 2 + 5);
	int seen = 0;
	for (int i = 2; i < l.n; i++)
		for (int k = 1; k <= 5; k++)
			if (!strcmp(l.names[i], F.name[k])) {
				seen |= 1 << k;
				/* Same inode as a lookup would give. */
				CHECK_EQ_INT(casfs_fs_lookup(fs, CASFS_FS_ROOT_INO, F.name[k], &st), 0);
				CHECK_EQ_INT(st.st_ino, l.attrs[i].st_ino);
			}
	CHECK_EQ_INT(seen, 0x3e);
	TEARDOWN();
}

TEST(store_paths_added_while_mounted)
{
	SETUP(false, false);
	struct stat st;
	char name[64];
	uint8_t digest[CASFS_STORE_DIGEST_LEN];
	memset(digest, 0xab, sizeof(digest));
	casfs_nixbase32_encode(digest, sizeof(digest), name);
	strcat(name, "-late");
	CHECK_EQ_INT(casfs_fs_lookup(fs, CASFS_FS_ROOT_INO, name, &st), -ENOENT);
	struct casfs_pathinfo pi = { 0 };
	pi.node = (struct casfs_node){ .type = CASFS_NODE_SYMLINK, .name = name,
				       .name_len = strlen(name), .target = "t", .target_len = 1 };
	pi.has_narinfo = true;
	CHECK_EQ_INT(casfs_store_add_pathinfo(F.store, digest, &pi, NULL), 0);
	CHECK_EQ_INT(casfs_fs_lookup(fs, CASFS_FS_ROOT_INO, name, &st), 0);
	CHECK_EQ_INT(st.st_mode, S_IFLNK | 0777);
	TEARDOWN();
}

TEST(read_and_readlink)
{
	SETUP(false, false);
	struct stat st;
	long long big = walk(fs, path_in(&F, 1, "big"), &st);
	struct casfs_fs_file *f;
	CHECK_EQ_INT(casfs_fs_open(fs, (uint64_t)big, O_RDONLY, &f), 0);
	uint8_t buf[4096];
	CHECK_EQ_INT(casfs_fs_read(fs, f, buf, sizeof(buf), 0), 1500);
	CHECK_EQ_MEM(buf, F.big, 1500);
	CHECK_EQ_INT(casfs_fs_read(fs, f, buf, 100, 1000), 100);
	CHECK_EQ_MEM(buf, F.big + 1000, 100);
	CHECK_EQ_INT(casfs_fs_read(fs, f, buf, 1000, 1000), 500);
	CHECK_EQ_MEM(buf, F.big + 1000, 500);
	CHECK_EQ_INT(casfs_fs_read(fs, f, buf, 10, 1500), 0);
	CHECK_EQ_INT(casfs_fs_read(fs, f, buf, 10, UINT64_MAX), 0);
	uint64_t size;
	CHECK_EQ_INT(casfs_fs_file_fd(f, &size), -1); /* memory backend */
	CHECK_EQ_INT(size, 1500);
	casfs_fs_release(fs, f);

	long long empty = walk(fs, path_in(&F, 1, "empty"), &st);
	CHECK_EQ_INT(casfs_fs_open(fs, (uint64_t)empty, O_RDONLY, &f), 0);
	CHECK_EQ_INT(casfs_fs_read(fs, f, buf, 10, 0), 0);
	casfs_fs_release(fs, f);

	long long root_file = walk(fs, path_in(&F, 2, NULL), &st);
	CHECK_EQ_INT(casfs_fs_open(fs, (uint64_t)root_file, O_RDONLY | O_NOFOLLOW, &f), 0);
	CHECK_EQ_INT(casfs_fs_read(fs, f, buf, sizeof(buf), 0), 12);
	CHECK_EQ_MEM(buf, HELLO, 12);
	casfs_fs_release(fs, f);

	CHECK_EQ_INT(casfs_fs_open(fs, (uint64_t)root_file, O_WRONLY, &f), -EROFS);
	CHECK_EQ_INT(casfs_fs_open(fs, (uint64_t)root_file, O_RDWR, &f), -EROFS);
	CHECK_EQ_INT(casfs_fs_open(fs, (uint64_t)root_file, O_RDONLY | O_TRUNC, &f), -EROFS);
	long long tree = walk(fs, path_in(&F, 1, NULL), &st);
	CHECK_EQ_INT(casfs_fs_open(fs, (uint64_t)tree, O_RDONLY, &f), -EISDIR);

	char *t = NULL;
	long long link = walk(fs, path_in(&F, 1, "link"), &st);
	CHECK_EQ_INT(casfs_fs_open(fs, (uint64_t)link, O_RDONLY, &f), -ELOOP);
	CHECK_EQ_INT(casfs_fs_readlink(fs, (uint64_t)link, &t), 0);
	CHECK_EQ_STR(t, "data.txt");
	free(t);
	long long lnk = walk(fs, path_in(&F, 3, NULL), &st);
	CHECK_EQ_INT(casfs_fs_readlink(fs, (uint64_t)lnk, &t), 0);
	CHECK_EQ_STR(t, "/nix/store/elsewhere");
	free(t);
	CHECK_EQ_INT(casfs_fs_readlink(fs, (uint64_t)root_file, &t), -EINVAL);
	CHECK_EQ_INT(casfs_fs_readlink(fs, (uint64_t)tree, &t), -EINVAL);
	CHECK_EQ_INT(F.n_log, 0);
	TEARDOWN();
}

TEST(corrupt_blob_is_eio_and_logged)
{
	SETUP(false, false);
	struct stat st;
	long long bad = walk(fs, path_in(&F, 4, NULL), &st);
	CHECK(bad > 1);
	struct casfs_fs_file *f = NULL;
	CHECK_EQ_INT(casfs_fs_open(fs, (uint64_t)bad, O_RDONLY, &f), -EIO);
	CHECK_EQ_INT(F.n_log, 1);
	char b3[CASFS_B3_STR_LEN + 1];
	uint8_t d[CASFS_B3_LEN];
	casfs_b3("bad content", 11, d);
	casfs_b3_format(d, b3);
	CHECK(strstr(F.log, b3) != NULL);
	/* Every attempt fails (failures are not cached as successes)... */
	CHECK_EQ_INT(casfs_fs_open(fs, (uint64_t)bad, O_RDONLY, &f), -EIO);
	CHECK_EQ_INT(F.n_log, 2);
	/* ...while the rest keeps working. */
	long long good = walk(fs, path_in(&F, 2, NULL), &st);
	CHECK_EQ_INT(casfs_fs_open(fs, (uint64_t)good, O_RDONLY, &f), 0);
	casfs_fs_release(fs, f);

	/* A missing blob is EIO too, naming the digest. */
	long long gone = walk(fs, path_in(&F, 5, NULL), &st);
	CHECK(gone > 1);
	CHECK_EQ_INT(casfs_fs_open(fs, (uint64_t)gone, O_RDONLY, &f), -EIO);
	memset(d, 0x55, sizeof(d));
	casfs_b3_format(d, b3);
	CHECK(strstr(F.log, b3) != NULL);
	TEARDOWN();
}

TEST(no_verify_serves_unverified)
{
	SETUP(false, true);
	struct stat st;
	long long bad = walk(fs, path_in(&F, 4, NULL), &st);
	struct casfs_fs_file *f = NULL;
	CHECK_EQ_INT(casfs_fs_open(fs, (uint64_t)bad, O_RDONLY, &f), 0);
	char buf[32];
	CHECK_EQ_INT(casfs_fs_read(fs, f, buf, sizeof(buf), 0), 11);
	CHECK_EQ_MEM(buf, "Bad content", 11);
	casfs_fs_release(fs, f);
	TEARDOWN();
}

static uint64_t bytes_read(struct fixture *f)
{
	return spy_bytes(f->spy);
}

TEST(verified_once_per_mount)
{
	SETUP(false, false);
	struct stat st;
	struct casfs_fs_file *f;
	char buf[64];
	long long big = walk(fs, path_in(&F, 1, "big"), &st);
	CHECK_EQ_INT(bytes_read(&F), 0); /* lookups read no content */
	CHECK_EQ_INT(casfs_fs_open(fs, (uint64_t)big, O_RDONLY, &f), 0);
	CHECK_EQ_INT(bytes_read(&F), 1500); /* hashed before serving */
	casfs_fs_release(fs, f);
	CHECK_EQ_INT(casfs_fs_open(fs, (uint64_t)big, O_RDONLY, &f), 0);
	CHECK_EQ_INT(bytes_read(&F), 1500); /* not again */
	CHECK_EQ_INT(casfs_fs_read(fs, f, buf, 10, 5), 10);
	CHECK_EQ_INT(bytes_read(&F), 1510);
	casfs_fs_release(fs, f);
	/* Same blob under another name and inode: still verified. */
	long long a = walk(fs, path_in(&F, 1, "data.txt"), &st);
	long long e = walk(fs, path_in(&F, 1, "exe.txt"), &st);
	CHECK_EQ_INT(casfs_fs_open(fs, (uint64_t)a, O_RDONLY, &f), 0);
	casfs_fs_release(fs, f);
	CHECK_EQ_INT(bytes_read(&F), 1522);
	CHECK_EQ_INT(casfs_fs_open(fs, (uint64_t)e, O_RDONLY, &f), 0);
	casfs_fs_release(fs, f);
	CHECK_EQ_INT(bytes_read(&F), 1522);

	/* A new mount verifies again; with no_verify nothing is hashed. */
	struct fixture *fp = &F;
	struct casfs_fs *fs2 = fixture_fs(fp, false, false);
	CHECK(walk(fs2, path_in(&F, 1, "big"), &st) == big);
	CHECK_EQ_INT(casfs_fs_open(fs2, (uint64_t)big, O_RDONLY, &f), 0);
	casfs_fs_release(fs2, f);
	casfs_fs_free(fs2);
	CHECK_EQ_INT(bytes_read(&F), 3022);
	struct casfs_fs *fs3 = fixture_fs(fp, false, true);
	CHECK(walk(fs3, path_in(&F, 1, "big"), &st) == big);
	CHECK_EQ_INT(casfs_fs_open(fs3, (uint64_t)big, O_RDONLY, &f), 0);
	casfs_fs_release(fs3, f);
	casfs_fs_free(fs3);
	CHECK_EQ_INT(bytes_read(&F), 3022);
	TEARDOWN();
}

TEST(xattrs)
{
	SETUP(false, false);
	struct stat st;
	char buf[128];
	long long data = walk(fs, path_in(&F, 1, "data.txt"), &st);
	CHECK_EQ_INT(casfs_fs_getxattr(fs, (uint64_t)data, CASFS_FS_XATTR_BLOB, NULL, 0), 47);
	CHECK_EQ_INT(casfs_fs_getxattr(fs, (uint64_t)data, CASFS_FS_XATTR_BLOB, buf, 46), -ERANGE);
	memset(buf, 0, sizeof(buf));
	CHECK_EQ_INT(casfs_fs_getxattr(fs, (uint64_t)data, CASFS_FS_XATTR_BLOB, buf, sizeof(buf)),
		     47);
	CHECK_EQ_STR(buf, HELLO_B3);
	CHECK_EQ_INT(casfs_fs_getxattr(fs, (uint64_t)data, CASFS_FS_XATTR_DIRECTORY, buf, 128),
		     -ENODATA);
	CHECK_EQ_INT(casfs_fs_getxattr(fs, (uint64_t)data, "user.other", buf, 128), -ENODATA);

	long long empty = walk(fs, path_in(&F, 1, "empty"), &st);
	memset(buf, 0, sizeof(buf));
	CHECK_EQ_INT(casfs_fs_getxattr(fs, (uint64_t)empty, CASFS_FS_XATTR_BLOB, buf, 47), 47);
	CHECK_EQ_STR(buf, EMPTY_B3);

	/* sub is the empty Directory: its digest is BLAKE3 of nothing. */
	long long sub = walk(fs, path_in(&F, 1, "sub"), &st);
	memset(buf, 0, sizeof(buf));
	CHECK_EQ_INT(casfs_fs_getxattr(fs, (uint64_t)sub, CASFS_FS_XATTR_DIRECTORY, buf, 128), 47);
	CHECK_EQ_STR(buf, EMPTY_B3);
	CHECK_EQ_INT(casfs_fs_getxattr(fs, (uint64_t)sub, CASFS_FS_XATTR_BLOB, buf, 128), -ENODATA);
	long long tree = walk(fs, path_in(&F, 1, NULL), &st);
	char want[CASFS_B3_STR_LEN + 1];
	casfs_b3_format(F.tree_digest, want);
	memset(buf, 0, sizeof(buf));
	CHECK_EQ_INT(casfs_fs_getxattr(fs, (uint64_t)tree, CASFS_FS_XATTR_DIRECTORY, buf, 128), 47);
	CHECK_EQ_STR(buf, want);

	/* listxattr with its size probe. */
	CHECK_EQ_INT(casfs_fs_listxattr(fs, (uint64_t)data, NULL, 0),
		     sizeof(CASFS_FS_XATTR_BLOB));
	CHECK_EQ_INT(casfs_fs_listxattr(fs, (uint64_t)data, buf, 5), -ERANGE);
	CHECK_EQ_INT(casfs_fs_listxattr(fs, (uint64_t)data, buf, sizeof(buf)),
		     sizeof(CASFS_FS_XATTR_BLOB));
	CHECK_EQ_MEM(buf, CASFS_FS_XATTR_BLOB, sizeof(CASFS_FS_XATTR_BLOB));
	CHECK_EQ_INT(casfs_fs_listxattr(fs, (uint64_t)tree, buf, sizeof(buf)),
		     sizeof(CASFS_FS_XATTR_DIRECTORY));
	CHECK_EQ_MEM(buf, CASFS_FS_XATTR_DIRECTORY, sizeof(CASFS_FS_XATTR_DIRECTORY));

	/* Symlinks and the root carry none. */
	long long link = walk(fs, path_in(&F, 1, "link"), &st);
	CHECK_EQ_INT(casfs_fs_listxattr(fs, (uint64_t)link, buf, sizeof(buf)), 0);
	CHECK_EQ_INT(casfs_fs_getxattr(fs, (uint64_t)link, CASFS_FS_XATTR_BLOB, buf, 128), -ENODATA);
	CHECK_EQ_INT(casfs_fs_listxattr(fs, CASFS_FS_ROOT_INO, buf, sizeof(buf)), 0);
	CHECK_EQ_INT(casfs_fs_getxattr(fs, CASFS_FS_ROOT_INO, CASFS_FS_XATTR_DIRECTORY, buf, 128),
		     -ENODATA);
	CHECK_EQ_INT(casfs_fs_getxattr(fs, 4242, CASFS_FS_XATTR_BLOB, buf, 128), -ESTALE);

	struct statvfs sv;
	CHECK_EQ_INT(casfs_fs_statfs(fs, CASFS_FS_ROOT_INO, &sv), 0);
	CHECK_EQ_INT(sv.f_namemax, 255);
	TEARDOWN();
}

/* Many threads looking up, listing, reading and forgetting at once; run
 * under ASan this catches use-after-free in the inode lifetime. */
struct worker {
	struct casfs_fs *fs;
	struct fixture *f;
	int failures;
};

/* Like walk(), recording every inode looked up so it can be forgotten. */
static int walk_all(struct casfs_fs *fs, const char *path, uint64_t inos[8], int *n,
		    struct stat *st)
{
	char buf[512];
	snprintf(buf, sizeof(buf), "%s", path);
	uint64_t ino = CASFS_FS_ROOT_INO;
	char *save = NULL;
	*n = 0;
	for (char *c = strtok_r(buf, "/", &save); c && *n < 8; c = strtok_r(NULL, "/", &save)) {
		int r = casfs_fs_lookup(fs, ino, c, st);
		if (r < 0)
			return r;
		ino = inos[(*n)++] = st->st_ino;
	}
	return 0;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	const char *paths[] = { "big", "bin/hello", "data.txt", "same.txt", "exe.txt", "sub" };
	for (int iter = 0; iter < 300; iter++) {
		struct stat st;
		uint64_t inos[8];
		int n = 0;
		const char *p = paths[iter % ARRAY_SIZE(paths)];
		if (walk_all(w->fs, path_in(w->f, 1, p), inos, &n, &st) < 0) {
			w->failures++;
			continue;
		}
		uint64_t ino = inos[n - 1], tree = inos[0];
		if (S_ISREG(st.st_mode)) {
			struct casfs_fs_file *f;
			char buf[2048];
			if (casfs_fs_open(w->fs, ino, O_RDONLY, &f) < 0) {
				w->failures++;
			} else {
				if (casfs_fs_read(w->fs, f, buf, sizeof(buf), 0) != st.st_size)
					w->failures++;
				casfs_fs_release(w->fs, f);
			}
		} else {
			struct casfs_fs_dir *d;
			struct listing l = { .limit = 32 };
			if (casfs_fs_opendir(w->fs, tree, &d) < 0) {
				w->failures++;
			} else {
				if (casfs_fs_readdir(w->fs, d, 0, true, collect, &l) < 0 || l.n != 10)
					w->failures++;
				casfs_fs_releasedir(w->fs, d);
				for (int i = 2; i < l.n; i++)
					casfs_fs_forget(w->fs, l.attrs[i].st_ino, 1);
			}
		}
		for (int i = 0; i < n; i++)
			casfs_fs_forget(w->fs, inos[i], 1);
	}
	return NULL;
}

TEST(concurrent_use)
{
	SETUP(false, false);
	pthread_t t[8];
	struct worker w[8];
	for (int i = 0; i < 8; i++) {
		w[i] = (struct worker){ fs, &F, 0 };
		CHECK_EQ_INT(pthread_create(&t[i], NULL, work, &w[i]), 0);
	}
	int failures = 0;
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		failures += w[i].failures;
	}
	CHECK_EQ_INT(failures, 0);
	/* Everything was forgotten: the tree is gone from the table. */
	struct stat st;
	uint64_t tree_ino;
	{
		long long tree = walk(fs, path_in(&F, 1, NULL), &st);
		tree_ino = (uint64_t)tree;
		casfs_fs_forget(fs, tree_ino, 1);
	}
	CHECK_EQ_INT(casfs_fs_getattr(fs, tree_ino, &st), -ESTALE);
	TEARDOWN();
}

/* Reads without open: casfs_fs_file_get()/_put() and the open-blob cache. */

static uint64_t opens(struct fixture *f)
{
	return spy_opens(f->spy);
}

static struct casfs_fs *fixture_fs_cap(struct fixture *f, size_t max_open_files)
{
	struct casfs_fs_options o = { .log = fixture_log, .log_userdata = f,
				      .max_open_files = max_open_files };
	struct casfs_fs *fs = NULL;
	return casfs_fs_new(f->store, &o, &fs) < 0 ? NULL : fs;
}

TEST(file_get_shares_open_blobs)
{
	SETUP(false, false);
	struct stat st;
	long long a = walk(fs, path_in(&F, 1, "data.txt"), &st);
	long long b = walk(fs, path_in(&F, 1, "exe.txt"), &st); /* same blob, other inode */
	long long big = walk(fs, path_in(&F, 1, "big"), &st);
	CHECK(a > 1 && b > 1 && a != b);
	struct casfs_fs_file *f1, *f2, *f3;
	CHECK_EQ_INT(casfs_fs_file_get(fs, (uint64_t)a, &f1), 0);
	CHECK_EQ_INT(opens(&F), 1);
	CHECK_EQ_INT(bytes_read(&F), 12); /* verified before the first byte */
	CHECK_EQ_INT(casfs_fs_file_get(fs, (uint64_t)b, &f2), 0);
	CHECK(f1 == f2);
	CHECK_EQ_INT(opens(&F), 1);
	char buf[64];
	CHECK_EQ_INT(casfs_fs_read(fs, f2, buf, sizeof(buf), 0), 12);
	CHECK_EQ_MEM(buf, HELLO, 12);
	casfs_fs_file_put(fs, f1);
	casfs_fs_file_put(fs, f2);
	/* Unused but kept: no new open. */
	CHECK_EQ_INT(casfs_fs_file_get(fs, (uint64_t)a, &f1), 0);
	CHECK_EQ_INT(opens(&F), 1);
	CHECK_EQ_INT(casfs_fs_file_get(fs, (uint64_t)big, &f3), 0);
	CHECK(f3 != f1);
	uint64_t size;
	CHECK_EQ_INT(casfs_fs_file_fd(f3, &size), -1);
	CHECK_EQ_INT(size, 1500);
	CHECK_EQ_INT(casfs_fs_read(fs, f3, buf, 10, 1495), 5);
	CHECK_EQ_MEM(buf, F.big + 1495, 5);
	casfs_fs_file_put(fs, f1);
	casfs_fs_file_put(fs, f3);
	CHECK_EQ_INT(opens(&F), 2);
	CHECK_EQ_INT(F.n_log, 0);
	TEARDOWN(); /* frees the cached files (ASan: no leak) */
}

TEST(file_get_errors_are_not_cached)
{
	SETUP(false, false);
	struct stat st;
	struct casfs_fs_file *f = NULL;
	long long bad = walk(fs, path_in(&F, 4, NULL), &st);
	CHECK_EQ_INT(casfs_fs_file_get(fs, (uint64_t)bad, &f), -EIO);
	CHECK_EQ_INT(F.n_log, 1);
	CHECK_EQ_INT(casfs_fs_file_get(fs, (uint64_t)bad, &f), -EIO);
	CHECK_EQ_INT(F.n_log, 2); /* tried (and logged) again */
	CHECK_EQ_INT(opens(&F), 2);
	long long gone = walk(fs, path_in(&F, 5, NULL), &st);
	CHECK_EQ_INT(casfs_fs_file_get(fs, (uint64_t)gone, &f), -EIO);
	long long tree = walk(fs, path_in(&F, 1, NULL), &st);
	CHECK_EQ_INT(casfs_fs_file_get(fs, (uint64_t)tree, &f), -EISDIR);
	long long link = walk(fs, path_in(&F, 1, "link"), &st);
	CHECK_EQ_INT(casfs_fs_file_get(fs, (uint64_t)link, &f), -ELOOP);
	CHECK_EQ_INT(casfs_fs_file_get(fs, 123456789, &f), -ESTALE);
	TEARDOWN();
}

TEST(file_cache_is_bounded)
{
	SETUP(false, false);
	struct casfs_fs *small = fixture_fs_cap(&F, 1);
	CHECK(small != NULL);
	struct stat st;
	long long a = walk(small, path_in(&F, 1, "data.txt"), &st);
	long long big = walk(small, path_in(&F, 1, "big"), &st);
	long long empty = walk(small, path_in(&F, 1, "empty"), &st);
	struct casfs_fs_file *f1, *f2, *f3;
	CHECK_EQ_INT(casfs_fs_file_get(small, (uint64_t)a, &f1), 0);
	CHECK_EQ_INT(casfs_fs_file_get(small, (uint64_t)big, &f2), 0);
	/* Held files stay open beyond the bound... */
	CHECK_EQ_INT(casfs_fs_file_get(small, (uint64_t)empty, &f3), 0);
	CHECK_EQ_INT(casfs_fs_read(small, f1, &st, 1, 0), 1);
	casfs_fs_file_put(small, f1);
	casfs_fs_file_put(small, f2);
	casfs_fs_file_put(small, f3);
	CHECK_EQ_INT(opens(&F), 3);
	/* ...and once unused only the most recent one is kept. */
	CHECK_EQ_INT(casfs_fs_file_get(small, (uint64_t)empty, &f3), 0);
	casfs_fs_file_put(small, f3);
	CHECK_EQ_INT(opens(&F), 3);
	CHECK_EQ_INT(casfs_fs_file_get(small, (uint64_t)a, &f1), 0);
	casfs_fs_file_put(small, f1);
	CHECK_EQ_INT(opens(&F), 4);
	CHECK_EQ_INT(bytes_read(&F), 1500 + 12 + 1); /* each verified once */
	casfs_fs_free(small);
	TEARDOWN();
}

struct getter {
	struct casfs_fs *fs;
	uint64_t ino;
	int failures;
};

static void *get_many(void *arg)
{
	struct getter *g = arg;
	for (int i = 0; i < 200; i++) {
		struct casfs_fs_file *f;
		char buf[2048];
		if (casfs_fs_file_get(g->fs, g->ino, &f) < 0) {
			g->failures++;
			continue;
		}
		if (casfs_fs_read(g->fs, f, buf, sizeof(buf), (uint64_t)i % 3) != 1500 - i % 3)
			g->failures++;
		casfs_fs_file_put(g->fs, f);
	}
	return NULL;
}

TEST(file_get_concurrent_opens_once)
{
	SETUP(false, false);
	struct stat st;
	long long big = walk(fs, path_in(&F, 1, "big"), &st);
	pthread_t t[8];
	struct getter g[8];
	for (int i = 0; i < 8; i++) {
		g[i] = (struct getter){ fs, (uint64_t)big, 0 };
		CHECK_EQ_INT(pthread_create(&t[i], NULL, get_many, &g[i]), 0);
	}
	int failures = 0;
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		failures += g[i].failures;
	}
	CHECK_EQ_INT(failures, 0);
	CHECK_EQ_INT(opens(&F), 1);
	TEARDOWN();
}

/* Two file nodes name the same blob but one claims another size: the open
 * blob cache must not hand the liar the other node's open file (a short or
 * long file); it gets EIO as it would uncached, in either order. */
TEST(file_get_size_lie_is_eio_even_when_cached)
{
	SETUP(false, false);
	struct casfs_node liar = { .type = CASFS_NODE_FILE, .size = 5, .digest_set = true };
	memcpy(liar.digest, F.hello_blob, CASFS_B3_LEN);
	CHECK_EQ_INT(add_path(&F, 5, liar, false), 0);
	struct stat st;
	long long good = walk(fs, path_in(&F, 1, "data.txt"), &st);
	long long bad = walk(fs, path_in(&F, 5, NULL), &st);
	CHECK(good > 1 && bad > 1 && good != bad); /* not one inode: their sizes differ */
	CHECK_EQ_INT(st.st_size, 5);
	struct casfs_fs_file *f1 = NULL, *f2 = NULL;
	CHECK_EQ_INT(casfs_fs_file_get(fs, (uint64_t)good, &f1), 0);
	int r = casfs_fs_file_get(fs, (uint64_t)bad, &f2); /* the good one is cached and held */
	casfs_fs_file_put(fs, f1);
	if (r == 0)
		casfs_fs_file_put(fs, f2);
	CHECK_EQ_INT(r, -EIO);
	CHECK(strstr(F.log, "size 12, but the file node says 5") != NULL);
	/* cached but unheld */
	CHECK_EQ_INT(casfs_fs_file_get(fs, (uint64_t)bad, &f2), -EIO);
	casfs_fs_free(fs);

	/* the liar first: the good one still opens */
	fs = fixture_fs(&F, false, false);
	CHECK(fs != NULL);
	good = walk(fs, path_in(&F, 1, "data.txt"), &st);
	bad = walk(fs, path_in(&F, 5, NULL), &st);
	CHECK_EQ_INT(casfs_fs_file_get(fs, (uint64_t)bad, &f2), -EIO);
	CHECK_EQ_INT(casfs_fs_file_get(fs, (uint64_t)good, &f1), 0);
	char buf[32];
	CHECK_EQ_INT(casfs_fs_read(fs, f1, buf, sizeof(buf), 0), 12);
	CHECK_EQ_MEM(buf, HELLO, 12);
	casfs_fs_file_put(fs, f1);
	TEARDOWN();
}

/* ---- the root listing, paged ---------------------------------------------
 *
 * MANY symlink store paths (their digests a BLAKE3 of their number, so put
 * order is not digest order), listed through small pages.  Two records are
 * damaged: one cannot be decoded (on the local store, bad bytes written
 * into LMDB; on memory, where stored bytes are always our own encoding,
 * handed over as damaged by the PathInfoService decorator below), and one
 * decodes but is named after another record's store path (put directly,
 * past casfs_store_add_pathinfo's checks: listing it would show that name
 * twice). */

#define MANY 300
#define MANY_UNDECODABLE 120 /* indices in digest order */
#define MANY_MISNAMED 121

/* A PathInfoService decorator: counts the listing calls and the page size
 * asked for, and hands record `victim` to list_from callers as damaged. */
struct counting_pis {
	struct casfs_pathinfo_service base;
	struct casfs_pathinfo_service *inner;
	bool has_victim;
	uint8_t victim[CASFS_STORE_DIGEST_LEN];
	size_t list_calls, list_from_calls, max_seen;
};

static struct counting_pis *counting(struct casfs_pathinfo_service *s)
{
	return (struct counting_pis *)s;
}
static int cnt_get(struct casfs_pathinfo_service *s, const uint8_t d[CASFS_STORE_DIGEST_LEN],
		   struct casfs_pathinfo *ret, struct casfs_error *err)
{
	return casfs_pathinfo_get(counting(s)->inner, d, ret, err);
}
static int cnt_put(struct casfs_pathinfo_service *s, const uint8_t d[CASFS_STORE_DIGEST_LEN],
		   const struct casfs_pathinfo *pi, struct casfs_error *err)
{
	return casfs_pathinfo_put(counting(s)->inner, d, pi, err);
}
struct cnt_shim {
	struct counting_pis *c;
	casfs_pathinfo_entry_cb cb;
	int (*list_cb)(const uint8_t digest[CASFS_STORE_DIGEST_LEN],
		       const struct casfs_pathinfo *pi, void *userdata);
	void *userdata;
	struct casfs_error *err;
};
/* list: the victim stops the listing with -EBADMSG, as a damaged record
 * does in the real backends. */
static int cnt_list_shim_cb(const uint8_t digest[CASFS_STORE_DIGEST_LEN],
			    const struct casfs_pathinfo *pi, void *userdata)
{
	struct cnt_shim *sh = userdata;
	if (sh->c->has_victim && memcmp(digest, sh->c->victim, CASFS_STORE_DIGEST_LEN) == 0)
		return casfs_error_set(sh->err, -EBADMSG, "path info is damaged: injected");
	return sh->list_cb(digest, pi, sh->userdata);
}
static int cnt_list(struct casfs_pathinfo_service *s,
		    int (*cb)(const uint8_t digest[CASFS_STORE_DIGEST_LEN],
			      const struct casfs_pathinfo *pi, void *userdata),
		    void *userdata, struct casfs_error *err)
{
	counting(s)->list_calls++;
	struct cnt_shim sh = { .c = counting(s), .list_cb = cb, .userdata = userdata, .err = err };
	return casfs_pathinfo_list(counting(s)->inner, cnt_list_shim_cb, &sh, err);
}
static int cnt_shim_cb(const uint8_t digest[CASFS_STORE_DIGEST_LEN], const struct casfs_pathinfo *pi,
		       const struct casfs_error *damage, void *userdata)
{
	struct cnt_shim *sh = userdata;
	if (sh->c->has_victim && memcmp(digest, sh->c->victim, CASFS_STORE_DIGEST_LEN) == 0) {
		struct casfs_error e = { 0 };
		char name[40];
		casfs_nixbase32_encode(digest, CASFS_STORE_DIGEST_LEN, name);
		casfs_error_set(&e, -EBADMSG, "path info %s is damaged: injected", name);
		return sh->cb(digest, NULL, &e, sh->userdata);
	}
	return sh->cb(digest, pi, damage, sh->userdata);
}
static int cnt_list_from(struct casfs_pathinfo_service *s,
			 const uint8_t after[CASFS_STORE_DIGEST_LEN], size_t max,
			 casfs_pathinfo_entry_cb cb, void *userdata, struct casfs_error *err)
{
	struct counting_pis *c = counting(s);
	c->list_from_calls++;
	c->max_seen = MAX(c->max_seen, max);
	struct cnt_shim sh = { .c = c, .cb = cb, .userdata = userdata };
	return casfs_pathinfo_list_from(c->inner, after, max, cnt_shim_cb, &sh, err);
}
static void cnt_free(struct casfs_pathinfo_service *s)
{
	casfs_pathinfo_service_free(counting(s)->inner);
	free(s);
}
static const struct casfs_pathinfo_service_ops counting_ops = {
	.name = "counting", .get = cnt_get, .put = cnt_put, .list = cnt_list,
	.list_from = cnt_list_from, .free = cnt_free,
};

struct many {
	bool local;
	char tmp[64], dir[96];
	struct casfs_store *store;
	struct counting_pis *pis;
	uint8_t digest[MANY][CASFS_STORE_DIGEST_LEN]; /* sorted */
	char name[MANY][64];
	char log[8192];
	int n_log;
};

static int digest_cmp(const void *a, const void *b)
{
	return memcmp(a, b, CASFS_STORE_DIGEST_LEN);
}

static void many_log(void *userdata, enum casfs_fs_log_level level, const char *msg)
{
	struct many *m = userdata;
	(void)level;
	size_t len = strlen(m->log);
	snprintf(m->log + len, sizeof(m->log) - len, "%s\n", msg);
	m->n_log++;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static int many_open(struct many *m, unsigned flags)
{
	struct casfs_error err = { 0 };
	char url[128];
	snprintf(url, sizeof(url), "local:%s", m->dir);
	int r = casfs_store_open(m->local ? url : "memory:", flags, &m->store, &err);
	if (r < 0)
		printf("  open: %s\n", casfs_error_message(&err, r));
	return r;
}

/* Overwrite the "pathinfo" record of `digest` with bytes that do not
 * decode (the store must be closed: one LMDB open per process). */
static int damage_pathinfo_record(const char *dir, const uint8_t digest[CASFS_STORE_DIGEST_LEN])
{
	return test_lmdb_rewrite(dir, "pathinfo", digest, CASFS_STORE_DIGEST_LEN,
				 test_lmdb_undecodable);
}

static int many_put(struct many *m, int k, const char *name, bool checked)
{
	struct casfs_pathinfo pi = { 0 };
	char target[32];
	snprintf(target, sizeof(target), "/target/%d", k);
	pi.node = (struct casfs_node){ .type = CASFS_NODE_SYMLINK, .name = (char *)name,
				       .name_len = strlen(name), .target = target,
				       .target_len = strlen(target) };
	pi.has_narinfo = true;
	struct casfs_error err = { 0 };
	int r = checked ? casfs_store_add_pathinfo(m->store, m->digest[k], &pi, &err)
			: casfs_pathinfo_put(m->store->pathinfos, m->digest[k], &pi, &err);
	if (r < 0)
		printf("  put %d: %s\n", k, casfs_error_message(&err, r));
	return r;
}

static int many_init(struct many *m, bool local)
{
	memset(m, 0, sizeof(*m));
	m->local = local;
	if (local) {
		snprintf(m->tmp, sizeof(m->tmp), "/tmp/casfs-test-fs-XXXXXX");
		if (!mkdtemp(m->tmp))
			return -errno;
		snprintf(m->dir, sizeof(m->dir), "%s/store", m->tmp);
	}
	int r = many_open(m, CASFS_STORE_CREATE);
	if (r < 0)
		return r;
	for (int k = 0; k < MANY; k++) {
		char seed[32];
		uint8_t h[CASFS_B3_LEN];
		snprintf(seed, sizeof(seed), "root entry %d", k);
		casfs_b3(seed, strlen(seed), h);
		memcpy(m->digest[k], h, CASFS_STORE_DIGEST_LEN);
	}
	qsort(m->digest, MANY, CASFS_STORE_DIGEST_LEN, digest_cmp);
	/* Put in another order than the digests'. */
	for (int j = 0; j < MANY; j++) {
		int k = (j * 7) % MANY; /* 7 is prime to 300 */
		casfs_nixbase32_encode(m->digest[k], CASFS_STORE_DIGEST_LEN, m->name[k]);
		snprintf(m->name[k] + 32, sizeof(m->name[k]) - 32, "-p%d", k);
	}
	for (int j = 0; j < MANY; j++) {
		int k = (j * 7) % MANY;
		if (k == MANY_MISNAMED)
			r = many_put(m, k, m->name[k - 1], false); /* its neighbour's name */
		else
			r = many_put(m, k, m->name[k], true);
		if (r < 0)
			return r;
	}
	if (local) {
		casfs_store_free(m->store);
		m->store = NULL;
		if ((r = damage_pathinfo_record(m->dir, m->digest[MANY_UNDECODABLE])) != 0) {
			printf("  damaging LMDB: %s\n", mdb_strerror(r));
			return -EIO;
		}
		if ((r = many_open(m, 0)) < 0)
			return r;
	}
	struct counting_pis *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->base.ops = &counting_ops;
	c->inner = m->store->pathinfos;
	if (!local) {
		c->has_victim = true;
		memcpy(c->victim, m->digest[MANY_UNDECODABLE], CASFS_STORE_DIGEST_LEN);
	}
	m->store->pathinfos = &c->base;
	m->pis = c;
	return 0;
}

static void many_done(struct many *m)
{
	casfs_store_free(m->store);
	if (m->tmp[0])
		nftw(m->tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static struct casfs_fs *many_fs(struct many *m, size_t root_page)
{
	struct casfs_fs_options o = { .list_root = true, .root_page = root_page,
				      .log = many_log, .log_userdata = m };
	struct casfs_fs *fs = NULL;
	return casfs_fs_new(m->store, &o, &fs) < 0 ? NULL : fs;
}

/* A whole listing, taken `chunk` entries per readdir call (a small
 * getdents buffer), each call resuming at the offset after the last entry
 * taken, as the kernel does. */
struct big_listing {
	char (*names)[64];
	uint64_t *next, *ino;
	int n, cap;
	int chunk, in_call;
};

static int collect_big(void *userdata, const char *name, const struct stat *attr, uint64_t next)
{
	struct big_listing *l = userdata;
	if (l->in_call == l->chunk || l->n == l->cap)
		return 1;
	snprintf(l->names[l->n], 64, "%s", name);
	l->next[l->n] = next;
	l->ino[l->n] = attr->st_ino;
	l->n++;
	l->in_call++;
	return 0;
}

static int big_init(struct big_listing *l, int cap, int chunk)
{
	*l = (struct big_listing){ .cap = cap, .chunk = chunk };
	l->names = calloc((size_t)cap, sizeof(*l->names));
	l->next = calloc((size_t)cap, sizeof(*l->next));
	l->ino = calloc((size_t)cap, sizeof(*l->ino));
	return l->names && l->next && l->ino ? 0 : -ENOMEM;
}

static void big_free(struct big_listing *l)
{
	free(l->names);
	free(l->next);
	free(l->ino);
}

/* Read from `offset` to the end (a call that takes nothing), or fail. */
static int list_all(struct casfs_fs *fs, struct casfs_fs_dir *d, uint64_t offset, bool plus,
		    struct big_listing *l)
{
	for (int calls = 0; calls < 10 * MANY; calls++) {
		l->in_call = 0;
		int r = casfs_fs_readdir(fs, d, offset, plus, collect_big, l);
		if (r < 0)
			return r;
		if (l->in_call == 0)
			return 0;
		offset = l->next[l->n - 1];
	}
	return -ELOOP;
}

/* Listing entries [from, l->n) must be exactly the store paths from
 * index `first` on, in digest order, without the two damaged ones. */
static int check_names(const struct many *m, const struct big_listing *l, int from, int first)
{
	int k = first;
	for (int i = from; i < l->n; i++, k++) {
		while (k == MANY_UNDECODABLE || k == MANY_MISNAMED)
			k++;
		if (k >= MANY || strcmp(l->names[i], m->name[k]) != 0) {
			printf("  entry %d is '%s', expected '%s'\n", i, l->names[i],
			       k < MANY ? m->name[k] : "(the end)");
			return -1;
		}
	}
	while (k == MANY_UNDECODABLE || k == MANY_MISNAMED)
		k++;
	if (k != MANY) {
		printf("  listing ends before '%s'\n", m->name[k]);
		return -1;
	}
	return 0;
}

static void root_listing_pages(bool local)
{
	struct many m;
	int r = many_init(&m, local);
	if (r < 0)
		many_done(&m);
	CHECK_EQ_INT(r, 0);
	struct casfs_fs *fs = many_fs(&m, 16);
	CHECK(fs != NULL);
	char undecodable[40], misnamed[40];
	casfs_nixbase32_encode(m.digest[MANY_UNDECODABLE], CASFS_STORE_DIGEST_LEN, undecodable);
	casfs_nixbase32_encode(m.digest[MANY_MISNAMED], CASFS_STORE_DIGEST_LEN, misnamed);

	/* Seven entries per call: calls and pages (16) end at other places. */
	struct casfs_fs_dir *d = NULL;
	struct big_listing l;
	CHECK_EQ_INT(big_init(&l, MANY + 10, 7), 0);
	CHECK_EQ_INT(casfs_fs_opendir(fs, CASFS_FS_ROOT_INO, &d), 0);
	CHECK_EQ_INT(list_all(fs, d, 0, false, &l), 0);
	CHECK_EQ_INT(l.n, 2 + MANY - 2);
	CHECK_EQ_STR(l.names[0], ".");
	CHECK_EQ_STR(l.names[1], "..");
	CHECK_EQ_INT(check_names(&m, &l, 2, 0), 0);
	for (int i = 1; i < l.n; i++)
		CHECK(l.next[i] > l.next[i - 1]);
	/* Each damaged record logged once, by digest. */
	CHECK_EQ_INT(m.n_log, 2);
	CHECK(strstr(m.log, undecodable) != NULL);
	CHECK(strstr(m.log, misnamed) != NULL);

	/* Bounded: the handle asked for pages of 16, never the whole list. */
	CHECK_EQ_INT(m.pis->list_calls, 0);
	CHECK_EQ_INT(m.pis->max_seen, 16);
	CHECK(m.pis->list_from_calls >= MANY / 16);

	/* Offsets are valid on another handle, and a second listing does not
	 * log the damage again.  Resume after the entry before the damaged
	 * ones (listing index 2 + 119), with readdirplus. */
	uint64_t resume = l.next[2 + MANY_UNDECODABLE - 1];
	struct casfs_fs_dir *d2 = NULL;
	struct big_listing l2;
	CHECK_EQ_INT(big_init(&l2, MANY + 10, 5), 0);
	CHECK_EQ_INT(casfs_fs_opendir(fs, CASFS_FS_ROOT_INO, &d2), 0);
	CHECK_EQ_INT(list_all(fs, d2, resume, true, &l2), 0);
	CHECK_EQ_INT(check_names(&m, &l2, 0, MANY_UNDECODABLE), 0);
	CHECK_EQ_INT(m.n_log, 2);
	/* readdirplus counted a lookup: the inode lives, with lookup's number. */
	struct stat st;
	CHECK_EQ_INT(casfs_fs_getattr(fs, l2.ino[0], &st), 0);
	CHECK_EQ_INT(casfs_fs_lookup(fs, CASFS_FS_ROOT_INO, l2.names[0], &st), 0);
	CHECK_EQ_INT(st.st_ino, l2.ino[0]);
	CHECK_EQ_INT(st.st_mode, S_IFLNK | 0777);
	casfs_fs_releasedir(fs, d2);

	/* Store paths added while listing: one that sorts after the position
	 * is listed, one before it is not; the rest is unchanged. */
	struct big_listing l3;
	CHECK_EQ_INT(big_init(&l3, MANY + 10, 9), 0);
	uint64_t mid = l.next[2 + 150];
	l3.in_call = 0;
	CHECK_EQ_INT(casfs_fs_readdir(fs, d, mid, false, collect_big, &l3), 0);
	CHECK_EQ_INT(l3.n, 9);
	CHECK_EQ_STR(l3.names[0], l.names[2 + 151]);
	uint8_t low[CASFS_STORE_DIGEST_LEN], high[CASFS_STORE_DIGEST_LEN];
	memset(low, 0, sizeof(low));
	memset(high, 0xff, sizeof(high));
	char low_name[64], high_name[64];
	casfs_nixbase32_encode(low, sizeof(low), low_name);
	strcat(low_name, "-low");
	casfs_nixbase32_encode(high, sizeof(high), high_name);
	strcat(high_name, "-high");
	struct casfs_pathinfo pi = { .has_narinfo = true };
	pi.node = (struct casfs_node){ .type = CASFS_NODE_SYMLINK, .target = "t", .target_len = 1 };
	pi.node.name = low_name;
	pi.node.name_len = strlen(low_name);
	CHECK_EQ_INT(casfs_store_add_pathinfo(m.store, low, &pi, NULL), 0);
	pi.node.name = high_name;
	pi.node.name_len = strlen(high_name);
	CHECK_EQ_INT(casfs_store_add_pathinfo(m.store, high, &pi, NULL), 0);
	CHECK_EQ_INT(list_all(fs, d, l3.next[l3.n - 1], false, &l3), 0);
	CHECK_EQ_INT(l3.n, (l.n - (2 + 151)) + 1);
	for (int i = 0; i + 1 < l3.n; i++)
		CHECK_EQ_STR(l3.names[i], l.names[2 + 151 + i]);
	CHECK_EQ_STR(l3.names[l3.n - 1], high_name);
	casfs_fs_releasedir(fs, d);

	/* Past every digest, and the default page. */
	CHECK_EQ_INT(casfs_fs_opendir(fs, CASFS_FS_ROOT_INO, &d), 0);
	l3.n = 0;
	CHECK_EQ_INT(list_all(fs, d, UINT64_MAX, false, &l3), 0);
	CHECK_EQ_INT(l3.n, 0);
	casfs_fs_releasedir(fs, d);
	casfs_fs_free(fs);
	fs = many_fs(&m, 0);
	CHECK(fs != NULL);
	m.pis->max_seen = 0;
	CHECK_EQ_INT(casfs_fs_opendir(fs, CASFS_FS_ROOT_INO, &d), 0);
	l.n = 0;
	l.chunk = 1000;
	CHECK_EQ_INT(list_all(fs, d, 0, false, &l), 0);
	casfs_fs_releasedir(fs, d);
	CHECK_EQ_INT(l.n, 2 + MANY - 2 + 2);
	CHECK_EQ_INT(m.pis->max_seen, 64);
	CHECK_EQ_INT(m.pis->list_calls, 0);
	casfs_fs_free(fs);
	big_free(&l);
	big_free(&l2);
	big_free(&l3);
	many_done(&m);
}

TEST(root_listing_pages_memory)
{
	root_listing_pages(false);
}

TEST(root_listing_pages_local)
{
	root_listing_pages(true);
}
