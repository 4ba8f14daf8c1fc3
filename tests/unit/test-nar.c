/* NAR writer and reader, against real Nix: trees are created on disk,
 * `nix-store --dump` and `nix hash path` are the oracles for bytes and
 * hashes; crafted NARs exercise every rejection rule.  Random chunkings
 * print their seed (set NAR_SEED to replay). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "basic/buf.h"
#include "basic/encoding.h"
#include "basic/util.h"
#include "nar/nar-reader.h"
#include "nar/nar-writer.h"
#include "test.h"

/* ---- helpers ---------------------------------------------------------- */

static int buf_sink(void *userdata, const void *p, size_t n)
{
	return casfs_buf_append(userdata, p, n);
}

static char tmp_root[64];

static void cleanup_tmp(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_root);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmp_root);
}

/* A fresh directory under one per-process temp dir. */
static const char *tmp_path(const char *name)
{
	static char path[256];
	if (!tmp_root[0]) {
		snprintf(tmp_root, sizeof(tmp_root), "/tmp/casfs-test-nar.XXXXXX");
		if (!mkdtemp(tmp_root))
			abort();
		atexit(cleanup_tmp);
	}
	snprintf(path, sizeof(path), "%s/%s", tmp_root, name);
	return path;
}

static void put_file(const char *dir, const char *name, const char *content, size_t n, int mode)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd < 0 || write(fd, content, n) != (ssize_t)n || close(fd) != 0)
		abort();
	chmod(path, mode);
}

static void put_dir(const char *dir, const char *name)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (mkdir(path, 0755) != 0)
		abort();
}

static void put_link(const char *dir, const char *name, const char *target)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (symlink(target, path) != 0)
		abort();
}

/* Run a shell command, capture its stdout. */
static int capture(const char *cmd, struct casfs_buf *out)
{
	FILE *f = popen(cmd, "r");
	if (!f)
		return -1;
	uint8_t b[65536];
	size_t n;
	while ((n = fread(b, 1, sizeof(b), f)) > 0)
		casfs_buf_append(out, b, n);
	return pclose(f) == 0 ? 0 : -1;
}

static int nix_dump(const char *path, struct casfs_buf *out)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "nix-store --dump '%s'", path);
	return capture(cmd, out);
}

/* `nix hash path --type sha256 --base16`, as 64 hex chars. */
static int nix_hash_path(const char *path, char hex[65])
{
	char cmd[700];
	snprintf(cmd, sizeof(cmd),
		 "nix --extra-experimental-features nix-command hash path --type sha256 --base16 '%s'",
		 path);
	struct casfs_buf out = CASFS_BUF_INIT;
	int r = capture(cmd, &out);
	if (r == 0 && out.len >= 64) {
		memcpy(hex, out.data, 64);
		hex[64] = '\0';
	} else {
		r = -1;
	}
	casfs_buf_release(&out);
	return r;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b); /* bytewise */
}

/* Encode the tree at `path` with the writer, as nix-store --dump does. */
static int write_tree(struct casfs_nar_writer *w, const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return -errno;
	if (S_ISLNK(st.st_mode)) {
		char t[4096];
		ssize_t n = readlink(path, t, sizeof(t));
		return n < 0 ? -errno : casfs_nar_writer_symlink(w, t, (size_t)n);
	}
	if (S_ISREG(st.st_mode)) {
		int r = casfs_nar_writer_file_begin(w, st.st_mode & S_IXUSR, (uint64_t)st.st_size);
		int fd = open(path, O_RDONLY);
		char b[1000]; /* odd size: exercises the coalescing */
		ssize_t n;
		while (r >= 0 && (n = read(fd, b, sizeof(b))) > 0)
			r = casfs_nar_writer_file_data(w, b, (size_t)n);
		close(fd);
		return r < 0 ? r : casfs_nar_writer_file_end(w);
	}
	int r = casfs_nar_writer_directory_begin(w);
	DIR *d = opendir(path);
	char *names[256];
	size_t n = 0;
	struct dirent *de;
	while (d && (de = readdir(d)) && n < ARRAY_SIZE(names))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			names[n++] = strdup(de->d_name);
	closedir(d);
	qsort(names, n, sizeof(names[0]), cmp_names);
	for (size_t i = 0; i < n; i++) {
		char sub[4096];
		snprintf(sub, sizeof(sub), "%s/%s", path, names[i]);
		if (r >= 0)
			r = casfs_nar_writer_entry_begin(w, names[i], strlen(names[i]));
		if (r >= 0)
			r = write_tree(w, sub);
		if (r >= 0)
			r = casfs_nar_writer_entry_end(w);
		free(names[i]);
	}
	return r < 0 ? r : casfs_nar_writer_directory_end(w);
}

static int encode_path(const char *path, size_t buf_size, struct casfs_buf *out,
		       uint8_t sha[32], uint64_t *size)
{
	struct casfs_nar_writer w;
	int r = casfs_nar_writer_init(&w, buf_sink, out, buf_size, true);
	if (r >= 0)
		r = casfs_nar_writer_begin(&w);
	if (r >= 0)
		r = write_tree(&w, path);
	if (r >= 0)
		r = casfs_nar_writer_finish(&w);
	if (r >= 0)
		casfs_nar_writer_result(&w, sha, size);
	casfs_nar_writer_release(&w);
	return r;
}

static uint64_t rng_state;
static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void seed_rng(void)
{
	if (rng_state)
		return;
	const char *s = getenv("NAR_SEED");
	rng_state = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) * 2654435761u + (uint64_t)getpid();
	if (!rng_state)
		rng_state = 1;
	printf("  test-nar: NAR_SEED=%" PRIu64 "\n", rng_state);
}

enum { WHOLE = 0, BYTEWISE = 1, RANDOM = -1 };

struct parse {
	int r;
	struct casfs_error err;
	struct casfs_buf listing;   /* one line per event */
	struct casfs_buf reencoded; /* the events through the writer */
	uint8_t sha[32];
	uint64_t size;
	bool done;
};

static void parse_release(struct parse *p)
{
	casfs_buf_release(&p->listing);
	casfs_buf_release(&p->reencoded);
}

static void listf(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void listf(struct parse *p, const char *fmt, ...)
{
	char line[8192];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	casfs_buf_append(&p->listing, line, (size_t)MIN(n, (int)sizeof(line) - 1));
}

/* Parse `nar` fed in chunks (WHOLE, BYTEWISE, RANDOM or a fixed size),
 * listing the events and re-encoding them. */
static void parse(const uint8_t *nar, size_t len, int chunk, struct parse *p)
{
	*p = (struct parse){ 0 };
	struct casfs_nar_reader *rd = casfs_nar_reader_new();
	struct casfs_nar_writer w;
	casfs_nar_writer_init(&w, buf_sink, &p->reencoded, 0, false);
	struct casfs_buf content = CASFS_BUF_INIT;
	uint64_t file_size = 0;
	size_t off = 0;
	for (;;) {
		struct casfs_nar_event ev;
		p->r = casfs_nar_reader_step(rd, &ev, &p->err);
		if (p->r < 0)
			break;
		if (ev.type == CASFS_NAR_NEED_DATA) {
			if (off == len) {
				p->r = casfs_nar_reader_end(rd, &p->err);
				break;
			}
			size_t n = chunk == WHOLE ? len - off
				 : chunk == RANDOM ? 1 + rng() % 64
						   : (size_t)chunk;
			n = MIN(n, len - off);
			casfs_nar_reader_feed(rd, nar + off, n);
			off += n;
			continue;
		}
		int wr = casfs_nar_writer_event(&w, &ev);
		if (wr < 0)
			listf(p, "WRITER %d\n", wr);
		const char *name = ev.name ? ev.name : "";
		switch (ev.type) {
		case CASFS_NAR_FILE_BEGIN:
			listf(p, "%u F %s %s %" PRIu64 "\n", ev.depth, name, ev.executable ? "x" : "-",
			      ev.size);
			content.len = 0;
			file_size = ev.size;
			break;
		case CASFS_NAR_FILE_DATA:
			casfs_buf_append(&content, ev.data, ev.len);
			break;
		case CASFS_NAR_FILE_END:
			if (content.len != file_size)
				listf(p, "BAD SIZE\n");
			listf(p, "%u C %.*s\n", ev.depth, (int)MIN(content.len, (size_t)40),
			      content.data ? (char *)content.data : "");
			break;
		case CASFS_NAR_SYMLINK:
			listf(p, "%u L %s %s %zu\n", ev.depth, name, ev.target, ev.target_len);
			break;
		case CASFS_NAR_DIRECTORY_BEGIN:
			listf(p, "%u D %s\n", ev.depth, name);
			break;
		case CASFS_NAR_DIRECTORY_END:
			listf(p, "%u E %s\n", ev.depth, name);
			break;
		case CASFS_NAR_DONE:
			listf(p, "DONE\n");
			p->done = true;
			casfs_nar_reader_result(rd, p->sha, &p->size);
			break;
		default:
			listf(p, "?\n");
		}
	}
	casfs_buf_append_byte(&p->listing, 0);
	casfs_buf_release(&content);
	casfs_nar_writer_release(&w);
	casfs_nar_reader_free(rd);
}

static void hex(const uint8_t sha[32], char out[65])
{
	casfs_hex_encode(sha, 32, out);
}

/* ---- the trees -------------------------------------------------------- */

static const char *make_big_tree(void)
{
	static char root[256];
	if (root[0])
		return root;
	snprintf(root, sizeof(root), "%s", tmp_path("big"));
	put_dir(tmp_root, "big");
	put_file(root, "a", "hello\n", 6, 0644);
	put_file(root, "Z", "zz", 2, 0644);       /* uppercase sorts first */
	put_file(root, "a.b", "12345678", 8, 0644); /* no padding */
	put_file(root, "ab", "", 0, 0600);         /* empty, odd mode */
	put_dir(root, "bin");
	put_file(root, "bin/tool", "#!/bin/sh\necho hi\n", 18, 0755);
	put_file(root, "bin/x-only-owner", "x", 1, 0700);
	put_link(root, "link", "a");
	put_link(root, "dangling", "/nonexistent/target with spaces");
	put_dir(root, "nested");
	put_dir(root, "nested/deep");
	put_dir(root, "nested/deep/er");
	put_file(root, "nested/deep/er/file", "x", 1, 0644);
	put_dir(root, "nested/empty");
	char longname[256];
	memset(longname, 'n', 255);
	longname[255] = '\0';
	put_file(root, longname, "long", 4, 0644);
	put_file(root, "\xc3\xa9t\xc3\xa9", "utf8", 4, 0644);
	return root;
}

/* What the reader must report for make_big_tree(), written by hand from
 * the tree above in bytewise order (independent of the writer). */
static char *big_listing(void)
{
	static char out[2048];
	char longname[256];
	memset(longname, 'n', 255);
	longname[255] = '\0';
	snprintf(out, sizeof(out), "%s1 F %s - 4\n1 C long\n%s",
		 "0 D \n"
		 "1 F Z - 2\n1 C zz\n"
		 "1 F a - 6\n1 C hello\n\n"
		 "1 F a.b - 8\n1 C 12345678\n"
		 "1 F ab - 0\n1 C \n"
		 "1 D bin\n"
		 "2 F tool x 18\n2 C #!/bin/sh\necho hi\n\n"
		 "2 F x-only-owner x 1\n2 C x\n"
		 "1 E bin\n"
		 "1 L dangling /nonexistent/target with spaces 31\n"
		 "1 L link a 1\n"
		 "1 D nested\n"
		 "2 D deep\n3 D er\n4 F file - 1\n4 C x\n3 E er\n2 E deep\n"
		 "2 D empty\n2 E empty\n"
		 "1 E nested\n",
		 longname,
		 "1 F \xc3\xa9t\xc3\xa9 - 4\n1 C utf8\n"
		 "0 E \n"
		 "DONE\n");
	return out;
}

/* Small trees, each a root of its own kind. */
static const char *make_small(int i)
{
	static char path[256];
	char name[16];
	snprintf(name, sizeof(name), "small%d", i);
	snprintf(path, sizeof(path), "%s", tmp_path(name));
	switch (i) {
	case 0: put_file(tmp_root, name, "contents\n", 9, 0644); break;
	case 1: put_file(tmp_root, name, "#!/bin/sh\n", 10, 0755); break;
	case 2: put_file(tmp_root, name, "", 0, 0644); break;
	case 3: put_link(tmp_root, name, "some/target"); break;
	case 4: put_dir(tmp_root, name); break; /* empty directory */
	case 5:
		put_dir(tmp_root, name);
		put_file(path, "f", "1234567890abcdefg", 17, 0644);
		put_file(path, "e", "", 0, 0755);
		put_link(path, "s", "f");
		break;
	case 6:
		put_dir(tmp_root, name);
		put_dir(path, "a");
		put_dir(path, "a/b");
		put_dir(path, "a/b/c");
		put_file(path, "a/b/c/d", "deep", 4, 0644);
		put_dir(path, "b");
		break;
	default: return NULL;
	}
	return path;
}

static const char *small_paths[8];
static const char *big_path;

static void ensure_trees(void)
{
	if (big_path)
		return;
	for (int i = 0; i < 7; i++) {
		const char *p = make_small(i);
		small_paths[i] = strdup(p);
	}
	big_path = make_big_tree();
}

#define N_TREES 8
static const char *tree(int i)
{
	ensure_trees();
	return i < 7 ? small_paths[i] : big_path;
}

/* ---- writer vs. Nix ----------------------------------------------------- */

TEST(writer_matches_nix_store_dump)
{
	for (int i = 0; i < N_TREES; i++) {
		struct casfs_buf nix = CASFS_BUF_INIT, ours = CASFS_BUF_INIT;
		uint8_t sha[32];
		uint64_t size;
		CHECK(nix_dump(tree(i), &nix) == 0);
		CHECK(nix.len > 0);
		CHECK_EQ_INT(encode_path(tree(i), 0, &ours, sha, &size), 0);
		CHECK_EQ_INT(ours.len, nix.len);
		CHECK_EQ_MEM(ours.data, nix.data, nix.len);
		CHECK_EQ_INT(size, nix.len);
		/* tiny coalescing buffers give the same bytes */
		size_t sizes[] = { 1, 7, 8, 100 };
		for (size_t k = 0; k < ARRAY_SIZE(sizes); k++) {
			struct casfs_buf tiny = CASFS_BUF_INIT;
			uint8_t sha2[32];
			CHECK_EQ_INT(encode_path(tree(i), sizes[k], &tiny, sha2, &size), 0);
			CHECK_EQ_INT(tiny.len, nix.len);
			CHECK_EQ_MEM(tiny.data, nix.data, nix.len);
			CHECK_EQ_MEM(sha2, sha, 32);
			casfs_buf_release(&tiny);
		}
		casfs_buf_release(&nix);
		casfs_buf_release(&ours);
	}
}

TEST(writer_and_reader_hash_matches_nix_hash_path)
{
	for (int i = 0; i < N_TREES; i++) {
		char want[65], got[65];
		struct casfs_buf ours = CASFS_BUF_INIT;
		uint8_t sha[32];
		uint64_t size;
		CHECK(nix_hash_path(tree(i), want) == 0);
		CHECK_EQ_INT(encode_path(tree(i), 0, &ours, sha, &size), 0);
		hex(sha, got);
		CHECK_EQ_STR(got, want);

		struct parse p;
		parse(ours.data, ours.len, WHOLE, &p);
		CHECK_EQ_INT(p.r, 0);
		CHECK(p.done);
		hex(p.sha, got);
		CHECK_EQ_STR(got, want);
		CHECK_EQ_INT(p.size, ours.len);
		parse_release(&p);
		casfs_buf_release(&ours);
	}
}

/* ---- reader ------------------------------------------------------------- */

TEST(reader_lists_nix_dump)
{
	struct casfs_buf nix = CASFS_BUF_INIT;
	CHECK(nix_dump(tree(7), &nix) == 0);
	struct parse p;
	parse(nix.data, nix.len, WHOLE, &p);
	CHECK_EQ_INT(p.r, 0);
	CHECK_EQ_STR((char *)p.listing.data, big_listing());
	parse_release(&p);

	struct casfs_buf small = CASFS_BUF_INIT;
	CHECK(nix_dump(tree(1), &small) == 0);
	parse(small.data, small.len, WHOLE, &p);
	CHECK_EQ_INT(p.r, 0);
	CHECK_EQ_STR((char *)p.listing.data, "0 F  x 10\n0 C #!/bin/sh\n\nDONE\n");
	parse_release(&p);
	casfs_buf_release(&small);

	CHECK(nix_dump(tree(3), &small) == 0);
	parse(small.data, small.len, WHOLE, &p);
	CHECK_EQ_INT(p.r, 0);
	CHECK_EQ_STR((char *)p.listing.data, "0 L  some/target 11\nDONE\n");
	parse_release(&p);
	casfs_buf_release(&small);
	casfs_buf_release(&nix);
}

TEST(reader_round_trip_any_chunking)
{
	seed_rng();
	for (int i = 0; i < N_TREES; i++) {
		struct casfs_buf nix = CASFS_BUF_INIT;
		CHECK(nix_dump(tree(i), &nix) == 0);
		struct parse whole;
		parse(nix.data, nix.len, WHOLE, &whole);
		CHECK_EQ_INT(whole.r, 0);
		CHECK(whole.done);
		CHECK_EQ_INT(whole.reencoded.len, nix.len);
		CHECK_EQ_MEM(whole.reencoded.data, nix.data, nix.len);
		int chunks[] = { BYTEWISE, 3, 8, 13, RANDOM, RANDOM, RANDOM };
		for (size_t k = 0; k < ARRAY_SIZE(chunks); k++) {
			struct parse p;
			parse(nix.data, nix.len, chunks[k], &p);
			CHECK_EQ_INT(p.r, 0);
			CHECK_EQ_STR((char *)p.listing.data, (char *)whole.listing.data);
			CHECK_EQ_INT(p.reencoded.len, nix.len);
			CHECK_EQ_MEM(p.reencoded.data, nix.data, nix.len);
			CHECK_EQ_MEM(p.sha, whole.sha, 32);
			CHECK_EQ_INT(p.size, nix.len);
			parse_release(&p);
		}
		parse_release(&whole);
		casfs_buf_release(&nix);
	}
}

TEST(reader_truncated_at_every_offset)
{
	struct casfs_buf nix = CASFS_BUF_INIT;
	CHECK(nix_dump(tree(7), &nix) == 0);
	for (size_t cut = 0; cut < nix.len; cut++) {
		struct parse p;
		/* an exact-size copy so ASan sees any read past the cut */
		uint8_t *copy = malloc(cut ? cut : 1);
		memcpy(copy, nix.data, cut);
		parse(copy, cut, WHOLE, &p);
		free(copy);
		if (p.r != -EBADMSG || p.done || !strstr(p.err.msg, "truncated at byte")) {
			FAILF("cut at %zu: r=%d done=%d msg=%s", cut, p.r, p.done, p.err.msg);
			parse_release(&p);
			break;
		}
		parse_release(&p);
	}
	casfs_buf_release(&nix);
}

/* A big file streams through without the reader holding its contents:
 * the same 1 MiB buffer is fed again and again. */
TEST(reader_streams_large_file)
{
	const uint64_t size = 64ull << 20;
	struct casfs_buf head = CASFS_BUF_INIT;
	/* hand-made header: magic ( type regular executable "" contents <size> */
	static const char *kws[] = { "nix-archive-1", "(", "type", "regular", "executable", "", "contents" };
	for (size_t i = 0; i < ARRAY_SIZE(kws); i++) {
		uint8_t l[8] = { (uint8_t)strlen(kws[i]) };
		casfs_buf_append(&head, l, 8);
		casfs_buf_append(&head, kws[i], strlen(kws[i]));
		casfs_buf_append(&head, "\0\0\0\0\0\0\0", (8 - strlen(kws[i]) % 8) % 8);
	}
	uint8_t sz[8];
	for (int i = 0; i < 8; i++)
		sz[i] = (uint8_t)(size >> (8 * i));
	casfs_buf_append(&head, sz, 8);
	static const uint8_t tail[] = { 1, 0, 0, 0, 0, 0, 0, 0, ')', 0, 0, 0, 0, 0, 0, 0 };
	uint8_t *chunk = calloc(1, 1 << 20);
	CHECK(chunk);
	memset(chunk, 'z', 1 << 20);

	struct casfs_nar_reader *rd = casfs_nar_reader_new();
	struct casfs_error err = { 0 };
	uint64_t fed = 0, seen = 0;
	int phase = 0, r;
	bool done = false;
	for (;;) {
		struct casfs_nar_event ev;
		r = casfs_nar_reader_step(rd, &ev, &err);
		if (r < 0)
			break;
		if (ev.type == CASFS_NAR_NEED_DATA) {
			if (phase == 0) {
				casfs_nar_reader_feed(rd, head.data, head.len);
				phase = 1;
			} else if (fed < size) {
				casfs_nar_reader_feed(rd, chunk, 1 << 20);
				fed += 1 << 20;
			} else if (phase == 1) {
				casfs_nar_reader_feed(rd, tail, sizeof(tail));
				phase = 2;
			} else {
				r = casfs_nar_reader_end(rd, &err);
				break;
			}
		} else if (ev.type == CASFS_NAR_FILE_DATA) {
			CHECK(ev.data >= chunk && ev.data + ev.len <= chunk + (1 << 20)); /* no copy */
			seen += ev.len;
		} else if (ev.type == CASFS_NAR_FILE_BEGIN) {
			CHECK_EQ_INT(ev.size, size);
			CHECK(ev.executable);
		} else if (ev.type == CASFS_NAR_DONE) {
			done = true;
		}
	}
	CHECK_EQ_INT(r, 0);
	CHECK(done);
	CHECK_EQ_INT(seen, size);
	uint8_t sha[32];
	uint64_t nsize;
	casfs_nar_reader_result(rd, sha, &nsize);
	CHECK_EQ_INT(nsize, head.len + size + 8 + 8);
	/* the NAR hash, computed independently over the same bytes */
	struct casfs_sha256_hasher h;
	uint8_t want[32];
	CHECK_EQ_INT(casfs_sha256_init(&h), 0);
	casfs_sha256_update(&h, head.data, head.len);
	for (uint64_t i = 0; i < size; i += 1 << 20)
		casfs_sha256_update(&h, chunk, 1 << 20);
	casfs_sha256_update(&h, tail, sizeof(tail));
	casfs_sha256_final(&h, want);
	CHECK_EQ_MEM(sha, want, 32);
	casfs_nar_reader_free(rd);
	free(chunk);
	casfs_buf_release(&head);
}

/* ---- rejections ------------------------------------------------------- */

struct tok {
	const char *p;
	size_t n;
};
#define T(s) { s, sizeof(s) - 1 }
#define END_TOKS { NULL, 0 }

static void craft(struct casfs_buf *b, const struct tok *t)
{
	for (; t->p; t++) {
		uint8_t l[8];
		for (int i = 0; i < 8; i++)
			l[i] = (uint8_t)((uint64_t)t->n >> (8 * i));
		casfs_buf_append(b, l, 8);
		casfs_buf_append(b, t->p, t->n);
		casfs_buf_append(b, "\0\0\0\0\0\0\0", (8 - t->n % 8) % 8);
	}
}

/* A directory with entries n1 (regular "x") and n2 (symlink to tgt). */
#define DIR2(n1, n2, tgt)                                                                 \
	T("nix-archive-1"), T("("), T("type"), T("directory"),                            \
	T("entry"), T("("), T("name"), T(n1), T("node"),                                  \
	T("("), T("type"), T("regular"), T("contents"), T("x"), T(")"), T(")"),           \
	T("entry"), T("("), T("name"), T(n2), T("node"),                                  \
	T("("), T("type"), T("symlink"), T("target"), T(tgt), T(")"), T(")"), T(")")

struct bad_case {
	const char *what;   /* substring of the message */
	struct tok toks[40];
};

static const struct bad_case bad_cases[] = {
	{ "bad magic", { T("nix-archive-2"), T("("), T("type"), T("directory"), T(")"), END_TOKS } },
	{ "bad magic", { T("nix"), END_TOKS } },
	{ "unsorted entry \"a\"", { DIR2("b", "a", "t"), END_TOKS } },
	{ "unsorted entry \"A\"", { DIR2("a", "A", "t"), END_TOKS } },
	{ "unsorted entry \"a\"", { DIR2("ab", "a", "t"), END_TOKS } },
	{ "duplicate entry \"a\"", { DIR2("a", "a", "t"), END_TOKS } },
	{ "entry name \".\"", { DIR2(".", "a", "t"), END_TOKS } },
	{ "entry name \"..\"", { DIR2("a", "..", "t"), END_TOKS } },
	{ "contains '/'", { DIR2("a", "b/c", "t"), END_TOKS } },
	{ "contains '/'", { DIR2("a", "/", "t"), END_TOKS } },
	{ "contains '/' or NUL", { DIR2("a", "b\0c", "t"), END_TOKS } },
	{ "empty entry name", { DIR2("", "a", "t"), END_TOKS } },
	{ "empty symlink target", { DIR2("a", "b", ""), END_TOKS } },
	{ "contains NUL", { DIR2("a", "b", "t\0u"), END_TOKS } },
	{ "expected \"regular\", \"symlink\" or \"directory\"",
	  { T("nix-archive-1"), T("("), T("type"), T("fifo"), T(")"), END_TOKS } },
	{ "expected \"(\"", { T("nix-archive-1"), T("type"), T("regular"), END_TOKS } },
	{ "expected \"type\"", { T("nix-archive-1"), T("("), T("kind"), END_TOKS } },
	{ "expected \"executable\" or \"contents\"",
	  { T("nix-archive-1"), T("("), T("type"), T("regular"), T(")"), END_TOKS } },
	{ "expected \"\" after \"executable\"",
	  { T("nix-archive-1"), T("("), T("type"), T("regular"), T("executable"), T("1"),
	    T("contents"), T(""), T(")"), END_TOKS } },
	{ "expected \"contents\"",
	  { T("nix-archive-1"), T("("), T("type"), T("regular"), T("executable"), T(""),
	    T("executable"), T(""), T("contents"), T(""), T(")"), END_TOKS } },
	{ "expected \")\"",
	  { T("nix-archive-1"), T("("), T("type"), T("regular"), T("contents"), T(""),
	    T("executable"), T(""), T(")"), END_TOKS } },
	{ "expected \"target\"",
	  { T("nix-archive-1"), T("("), T("type"), T("symlink"), T("contents"), T("x"), T(")"), END_TOKS } },
	{ "expected \"entry\" or \")\"",
	  { T("nix-archive-1"), T("("), T("type"), T("directory"), T("name"), END_TOKS } },
	{ "expected \"name\"",
	  { T("nix-archive-1"), T("("), T("type"), T("directory"), T("entry"), T("("), T("node"), END_TOKS } },
	{ "expected \"node\"",
	  { T("nix-archive-1"), T("("), T("type"), T("directory"), T("entry"), T("("), T("name"),
	    T("a"), T("("), END_TOKS } },
	{ "unknown token of 14 bytes",
	  { T("nix-archive-1"), T("("), T("type"), T("directoryyyyyy"), END_TOKS } },
	{ "trailing garbage at byte 120",
	  { T("nix-archive-1"), T("("), T("type"), T("symlink"), T("target"), T("t"), T(")"), T(")"), END_TOKS } },
};

/* Parse whole and bytewise; both must fail with -EBADMSG naming `what` and
 * a byte offset (and before DONE, unless the complaint is what trails it). */
static bool rejects(const uint8_t *nar, size_t len, const char *what)
{
	int chunks[] = { WHOLE, BYTEWISE };
	for (size_t k = 0; k < ARRAY_SIZE(chunks); k++) {
		struct parse p;
		parse(nar, len, chunks[k], &p);
		bool ok = p.r == -EBADMSG && (!p.done || strstr(what, "trailing")) && strstr(p.err.msg, what) &&
			  strstr(p.err.msg, "at byte") && !strchr(p.err.msg, '\n');
		if (!ok)
			printf("  expected rejection \"%s\", got r=%d done=%d msg=%s\n", what, p.r,
			       p.done, p.err.msg);
		parse_release(&p);
		if (!ok)
			return false;
	}
	return true;
}

TEST(reader_accepts_crafted_baseline)
{
	static const struct tok ok[] = { DIR2("a", "b", "t"), END_TOKS };
	struct casfs_buf b = CASFS_BUF_INIT;
	craft(&b, ok);
	struct parse p;
	parse(b.data, b.len, WHOLE, &p);
	CHECK_EQ_INT(p.r, 0);
	CHECK_EQ_STR((char *)p.listing.data,
		     "0 D \n1 F a - 1\n1 C x\n1 L b t 1\n0 E \nDONE\n");
	CHECK_EQ_INT(p.reencoded.len, b.len);
	CHECK_EQ_MEM(p.reencoded.data, b.data, b.len);
	parse_release(&p);
	casfs_buf_release(&b);
}

TEST(reader_rejects_crafted)
{
	for (size_t i = 0; i < ARRAY_SIZE(bad_cases); i++) {
		struct casfs_buf b = CASFS_BUF_INIT;
		craft(&b, bad_cases[i].toks);
		CHECK(rejects(b.data, b.len, bad_cases[i].what));
		casfs_buf_release(&b);
	}
}

TEST(reader_rejects_bad_padding)
{
	struct casfs_buf nix = CASFS_BUF_INIT;
	CHECK(nix_dump(tree(5), &nix) == 0);
	/* byte 52 pads "type" (length at 40, 4 bytes at 48) */
	CHECK_EQ_MEM(nix.data + 48, "type\0\0\0\0", 8);
	nix.data[52] = 1;
	CHECK(rejects(nix.data, nix.len, "non-zero padding at byte 52"));
	nix.data[52] = 0;
	/* the last byte of the magic's padding */
	nix.data[23] = 0x80;
	CHECK(rejects(nix.data, nix.len, "non-zero padding at byte 23"));
	nix.data[23] = 0;
	/* padding of file contents: "1234567890abcdefg" is 17 bytes */
	uint8_t *f = memmem(nix.data, nix.len, "1234567890abcdefg", 17);
	CHECK(f);
	size_t at = (size_t)(f - nix.data) + 17 + 3;
	f[17 + 3] = 'p';
	char what[64];
	snprintf(what, sizeof(what), "non-zero padding at byte %zu", at);
	CHECK(rejects(nix.data, nix.len, what));
	f[17 + 3] = 0;
	struct parse p;
	parse(nix.data, nix.len, WHOLE, &p);
	CHECK_EQ_INT(p.r, 0);
	parse_release(&p);
	casfs_buf_release(&nix);
}

TEST(reader_rejects_trailing_and_truncated)
{
	struct casfs_buf nix = CASFS_BUF_INIT;
	CHECK(nix_dump(tree(6), &nix) == 0);
	size_t len = nix.len;
	casfs_buf_append(&nix, "\0\0\0\0\0\0\0\0", 8);
	char what[64];
	snprintf(what, sizeof(what), "trailing garbage at byte %zu", len);
	CHECK(rejects(nix.data, len + 1, what));
	CHECK(rejects(nix.data, len + 8, what));
	snprintf(what, sizeof(what), "truncated at byte %zu", len - 1);
	CHECK(rejects(nix.data, len - 1, what));
	CHECK(rejects(nix.data, 0, "truncated at byte 0"));
	casfs_buf_release(&nix);
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

TEST(reader_rejects_absurd_lengths)
{
	static const struct tok base[] = { DIR2("a", "b", "t"), END_TOKS };
	struct casfs_buf b = CASFS_BUF_INIT;
	craft(&b, base);
	/* layout: magic 24, "(" 16, "type" 16, "directory" 24, "entry" 16,
	 * "(" 16, "name" 16, then the name's length at 128 */
	CHECK_EQ_MEM(b.data + 136, "a\0\0\0\0\0\0\0", 8);
	put_u64(b.data + 128, 1ull << 63);
	CHECK(rejects(b.data, b.len, "entry name of 9223372036854775808 bytes at byte 128"));
	put_u64(b.data + 128, 256);
	CHECK(rejects(b.data, b.len, "entry name of 256 bytes at byte 128 (at most 255"));
	put_u64(b.data + 128, 1);
	/* the magic's length */
	put_u64(b.data, UINT64_MAX);
	CHECK(rejects(b.data, b.len, "at byte 0"));
	put_u64(b.data, 13);
	/* the "type" keyword's length */
	put_u64(b.data + 40, 1ull << 63);
	CHECK(rejects(b.data, b.len, "unknown token of 9223372036854775808 bytes at byte 40"));
	put_u64(b.data + 40, 4);
	/* the file contents' length: "contents" is followed by it */
	uint8_t *c = memmem(b.data, b.len, "contents", 8);
	CHECK(c);
	size_t at = (size_t)(c - b.data) + 8;
	put_u64(c + 8, 1ull << 63);
	char what[80];
	snprintf(what, sizeof(what), "file size 9223372036854775808 at byte %zu is too large", at);
	CHECK(rejects(b.data, b.len, what));
	put_u64(c + 8, (1ull << 63) - 1); /* representable: it is only truncated */
	CHECK(rejects(b.data, b.len, "truncated at byte"));
	put_u64(c + 8, 1);
	struct parse p;
	parse(b.data, b.len, WHOLE, &p);
	CHECK_EQ_INT(p.r, 0);
	parse_release(&p);
	casfs_buf_release(&b);

	/* 256-byte name and 4096-byte target, built by hand */
	static char longname[256], longtarget[4096];
	memset(longname, 'n', sizeof(longname));
	memset(longtarget, 't', sizeof(longtarget));
	struct tok toks[] = { DIR2("a", "b", "t"), END_TOKS };
	toks[19] = (struct tok){ longname, 256 };
	struct casfs_buf b2 = CASFS_BUF_INIT;
	craft(&b2, toks);
	CHECK(rejects(b2.data, b2.len, "entry name of 256 bytes"));
	casfs_buf_release(&b2);
	toks[19] = (struct tok){ longname, 255 };
	toks[25] = (struct tok){ longtarget, 4096 };
	craft(&b2, toks);
	CHECK(rejects(b2.data, b2.len, "symlink target of 4096 bytes"));
	casfs_buf_release(&b2);
	toks[25] = (struct tok){ longtarget, 4095 };
	craft(&b2, toks);
	parse(b2.data, b2.len, BYTEWISE, &p);
	CHECK_EQ_INT(p.r, 0);
	CHECK_EQ_INT(p.reencoded.len, b2.len);
	CHECK_EQ_MEM(p.reencoded.data, b2.data, b2.len);
	parse_release(&p);
	casfs_buf_release(&b2);
}

/* Directories nested `n` deep: root -> d -> d ... -> empty dir at depth n. */
static void craft_deep(struct casfs_buf *b, unsigned n)
{
	static const struct tok magic[] = { T("nix-archive-1"), END_TOKS };
	static const struct tok open[] = { T("("), T("type"), T("directory"), T("entry"), T("("),
					   T("name"), T("d"), T("node"), END_TOKS };
	static const struct tok leaf[] = { T("("), T("type"), T("directory"), T(")"), END_TOKS };
	static const struct tok close[] = { T(")"), T(")"), END_TOKS };
	craft(b, magic);
	for (unsigned i = 0; i < n; i++)
		craft(b, open);
	craft(b, leaf);
	for (unsigned i = 0; i < n; i++)
		craft(b, close);
}

TEST(reader_depth_bound)
{
	struct casfs_buf b = CASFS_BUF_INIT;
	craft_deep(&b, CASFS_NAR_MAX_DEPTH);
	struct parse p;
	parse(b.data, b.len, 5, &p);
	CHECK_EQ_INT(p.r, 0);
	CHECK(p.done);
	CHECK_EQ_INT(p.reencoded.len, b.len); /* the writer takes that depth too */
	CHECK_EQ_MEM(p.reencoded.data, b.data, b.len);
	parse_release(&p);
	casfs_buf_release(&b);

	craft_deep(&b, CASFS_NAR_MAX_DEPTH + 1);
	char what[64];
	snprintf(what, sizeof(what), "nesting deeper than %d at byte", CASFS_NAR_MAX_DEPTH);
	CHECK(rejects(b.data, b.len, what));
	casfs_buf_release(&b);
}

TEST(reader_dead_after_error)
{
	static const struct tok toks[] = { DIR2("b", "a", "t"), END_TOKS };
	struct casfs_buf b = CASFS_BUF_INIT;
	craft(&b, toks);
	struct casfs_nar_reader *rd = casfs_nar_reader_new();
	struct casfs_nar_event ev;
	struct casfs_error e1 = { 0 }, e2 = { 0 }, e3 = { 0 };
	casfs_nar_reader_feed(rd, b.data, b.len);
	int r;
	while ((r = casfs_nar_reader_step(rd, &ev, &e1)) == 0)
		CHECK(ev.type != CASFS_NAR_NEED_DATA && ev.type != CASFS_NAR_DONE);
	CHECK_EQ_INT(r, -EBADMSG);
	CHECK_EQ_INT(casfs_nar_reader_step(rd, &ev, &e2), -EBADMSG);
	CHECK_EQ_STR(e2.msg, e1.msg);
	CHECK_EQ_INT(casfs_nar_reader_end(rd, &e3), -EBADMSG);
	CHECK_EQ_STR(e3.msg, e1.msg);
	CHECK(strstr(e1.msg, "unsorted entry \"a\" at byte 320 (after \"b\")"));
	casfs_nar_reader_free(rd);
	casfs_buf_release(&b);
}

/* ---- writer misuse and sink errors ------------------------------------- */

struct failing_sink {
	int calls_left;
	struct casfs_buf out;
};

static int failing_write(void *userdata, const void *p, size_t n)
{
	struct failing_sink *s = userdata;
	if (s->calls_left-- <= 0)
		return -ENOSPC;
	return casfs_buf_append(&s->out, p, n);
}

TEST(writer_propagates_sink_errors)
{
	struct failing_sink s = { .calls_left = 1 };
	struct casfs_nar_writer w;
	CHECK_EQ_INT(casfs_nar_writer_init(&w, failing_write, &s, 16, true), 0);
	int r = casfs_nar_writer_begin(&w); /* 24 bytes > 16: first flush succeeds */
	CHECK_EQ_INT(r, 0);
	r = casfs_nar_writer_file_begin(&w, false, 3);
	CHECK_EQ_INT(r, -ENOSPC);
	CHECK_EQ_INT(casfs_nar_writer_file_data(&w, "abc", 3), -ENOSPC); /* sticky */
	CHECK_EQ_INT(casfs_nar_writer_finish(&w), -ENOSPC);
	casfs_nar_writer_release(&w);
	casfs_buf_release(&s.out);

	/* the error also surfaces from finish's flush */
	s = (struct failing_sink){ .calls_left = 0 };
	CHECK_EQ_INT(casfs_nar_writer_init(&w, failing_write, &s, 0, false), 0);
	CHECK_EQ_INT(casfs_nar_writer_begin(&w), 0);
	CHECK_EQ_INT(casfs_nar_writer_symlink(&w, "t", 1), 0);
	CHECK_EQ_INT(casfs_nar_writer_finish(&w), -ENOSPC);
	casfs_nar_writer_release(&w);
}

static int write_calls(int (*fn)(struct casfs_nar_writer *w))
{
	struct casfs_buf out = CASFS_BUF_INIT;
	struct casfs_nar_writer w;
	casfs_nar_writer_init(&w, buf_sink, &out, 0, false);
	int r = casfs_nar_writer_begin(&w);
	if (r >= 0)
		r = fn(&w);
	casfs_nar_writer_release(&w);
	casfs_buf_release(&out);
	return r;
}

static int unsorted(struct casfs_nar_writer *w)
{
	casfs_nar_writer_directory_begin(w);
	casfs_nar_writer_entry_begin(w, "b", 1);
	casfs_nar_writer_symlink(w, "t", 1);
	casfs_nar_writer_entry_end(w);
	return casfs_nar_writer_entry_begin(w, "a", 1);
}
static int duplicate(struct casfs_nar_writer *w)
{
	casfs_nar_writer_directory_begin(w);
	casfs_nar_writer_entry_begin(w, "a", 1);
	casfs_nar_writer_symlink(w, "t", 1);
	casfs_nar_writer_entry_end(w);
	return casfs_nar_writer_entry_begin(w, "a", 1);
}
static int prefix_sorted(struct casfs_nar_writer *w)
{
	casfs_nar_writer_directory_begin(w);
	casfs_nar_writer_entry_begin(w, "a", 1);
	casfs_nar_writer_directory_begin(w);
	casfs_nar_writer_entry_begin(w, "z", 1); /* per level: "z" does not count above */
	casfs_nar_writer_symlink(w, "t", 1);
	casfs_nar_writer_entry_end(w);
	casfs_nar_writer_directory_end(w);
	casfs_nar_writer_entry_end(w);
	int r = casfs_nar_writer_entry_begin(w, "ab", 2);
	if (r >= 0)
		r = casfs_nar_writer_symlink(w, "t", 1);
	if (r >= 0)
		r = casfs_nar_writer_entry_end(w);
	if (r >= 0)
		r = casfs_nar_writer_directory_end(w);
	return r < 0 ? r : casfs_nar_writer_finish(w);
}
static int short_file(struct casfs_nar_writer *w)
{
	casfs_nar_writer_file_begin(w, false, 4);
	casfs_nar_writer_file_data(w, "abc", 3);
	return casfs_nar_writer_file_end(w);
}
static int long_file(struct casfs_nar_writer *w)
{
	casfs_nar_writer_file_begin(w, false, 2);
	return casfs_nar_writer_file_data(w, "abc", 3);
}
static int bad_name(struct casfs_nar_writer *w)
{
	casfs_nar_writer_directory_begin(w);
	return casfs_nar_writer_entry_begin(w, "..", 2);
}
static int slash_name(struct casfs_nar_writer *w)
{
	casfs_nar_writer_directory_begin(w);
	return casfs_nar_writer_entry_begin(w, "a/b", 3);
}
static int empty_target(struct casfs_nar_writer *w)
{
	return casfs_nar_writer_symlink(w, "", 0);
}
static int two_roots(struct casfs_nar_writer *w)
{
	casfs_nar_writer_symlink(w, "t", 1);
	return casfs_nar_writer_symlink(w, "t", 1);
}
static int early_finish(struct casfs_nar_writer *w)
{
	casfs_nar_writer_directory_begin(w);
	return casfs_nar_writer_finish(w);
}
static int node_without_entry(struct casfs_nar_writer *w)
{
	casfs_nar_writer_directory_begin(w);
	return casfs_nar_writer_symlink(w, "t", 1);
}

TEST(writer_rejects_misuse)
{
	CHECK_EQ_INT(write_calls(unsorted), -EINVAL);
	CHECK_EQ_INT(write_calls(duplicate), -EINVAL);
	CHECK_EQ_INT(write_calls(prefix_sorted), 0);
	CHECK_EQ_INT(write_calls(short_file), -EINVAL);
	CHECK_EQ_INT(write_calls(long_file), -EINVAL);
	CHECK_EQ_INT(write_calls(bad_name), -EINVAL);
	CHECK_EQ_INT(write_calls(slash_name), -EINVAL);
	CHECK_EQ_INT(write_calls(empty_target), -EINVAL);
	CHECK_EQ_INT(write_calls(two_roots), -EINVAL);
	CHECK_EQ_INT(write_calls(early_finish), -EINVAL);
	CHECK_EQ_INT(write_calls(node_without_entry), -EINVAL);
}
