/* The nix: substituter (store/nix-store.h).
 *
 *  - synthetic stores: a database with Nix 2.8's schema (WAL, as Nix
 *    keeps it) and trees under ROOT/nix/store, made here: every field of
 *    a row, hashes in base16 and nixbase32, absent paths and neighbours in
 *    the index, each malformed column, a writer holding a transaction
 *    meanwhile, the database file left untouched, queries from threads,
 *    and a store file changed after registration;
 *  - the oracle: stores Nix itself made (tests/sh/test-nix-substituter.sh
 *    builds paths, copies them to a chroot store, signs them and writes
 *    what `nix path-info --json` and `nix-store --dump` say into the file
 *    named by CASFS_NIX_STORE_ORACLE); query and fetch must agree. */
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/buf.h"
#include "basic/encoding.h"
#include "basic/util.h"
#include "digest/digest.h"
#include "store/export.h"
#include "store/import.h"
#include "store/nix-store.h"
#include "store/store.h"

/* Nix 2.8's libstore/schema.sql, the tables read. */
static const char schema[] =
	"CREATE TABLE ValidPaths (id integer primary key autoincrement not null,"
	" path text unique not null, hash text not null, registrationTime integer not null,"
	" deriver text, narSize integer, ultimate integer, sigs text, ca text);"
	"CREATE TABLE Refs (referrer integer not null, reference integer not null,"
	" primary key (referrer, reference),"
	" foreign key (referrer) references ValidPaths(id) on delete cascade,"
	" foreign key (reference) references ValidPaths(id) on delete restrict);"
	"CREATE INDEX IndexReferrer on Refs(referrer);"
	"CREATE INDEX IndexReference on Refs(reference);";

struct fx {
	char root[64];
	char db_path[128];
	sqlite3 *db; /* read-write, as Nix would hold it */
	struct casfs_substituter *sub;
	struct casfs_store *s;
	struct casfs_error err;
};

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	chmod(p, 0700);
	return remove(p);
}

static void fx_close(struct fx *f)
{
	casfs_substituter_free(f->sub);
	casfs_store_free(f->s);
	sqlite3_close(f->db);
	if (f->root[0])
		nftw(f->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	memset(f, 0, sizeof(*f));
}

static int sql(struct fx *f, const char *q)
{
	char *msg = NULL;
	int rc = sqlite3_exec(f->db, q, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		printf("  sql: %s: %s\n", q, msg ? msg : "?");
	sqlite3_free(msg);
	return rc == SQLITE_OK ? 0 : -1;
}

static int fx_open(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	strcpy(f->root, "/tmp/casfs-nixstore.XXXXXX");
	if (!mkdtemp(f->root))
		return -1;
	char p[256];
	snprintf(p, sizeof(p), "%s/nix/store", f->root);
	if (mkdir(f->root, 0755) < 0 && errno != EEXIST)
		return -1;
	const char *dirs[] = { "/nix", "/nix/store", "/nix/var", "/nix/var/nix", "/nix/var/nix/db" };
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		snprintf(p, sizeof(p), "%s%s", f->root, dirs[i]);
		if (mkdir(p, 0755) < 0)
			return -1;
	}
	snprintf(f->db_path, sizeof(f->db_path), "%s/nix/var/nix/db/db.sqlite", f->root);
	if (sqlite3_open(f->db_path, &f->db) != SQLITE_OK)
		return -1;
	if (sql(f, "PRAGMA journal_mode=WAL") < 0 || sql(f, schema) < 0)
		return -1;
	if (casfs_store_open("memory:", 0, &f->s, &f->err) < 0)
		return -1;
	return 0;
}

static int fx_sub(struct fx *f)
{
	casfs_substituter_free(f->sub);
	f->sub = NULL;
	return casfs_substituter_nix_open(f->root, &f->sub, &f->err);
}

static int write_file(const char *path, const char *content, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd < 0)
		return -1;
	size_t n = strlen(content);
	int r = write(fd, content, n) == (ssize_t)n ? 0 : -1;
	close(fd);
	return r;
}

/* A tree with every kind of node at ROOT/nix/store/<base>. */
static int make_tree(struct fx *f, const char *base)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/nix/store/%s", f->root, base);
	if (mkdir(p, 0755) < 0)
		return -1;
	snprintf(p, sizeof(p), "%s/nix/store/%s/bin", f->root, base);
	if (mkdir(p, 0755) < 0)
		return -1;
	snprintf(p, sizeof(p), "%s/nix/store/%s/bin/run", f->root, base);
	if (write_file(p, "#!/bin/sh\necho hi\n", 0755) < 0)
		return -1;
	snprintf(p, sizeof(p), "%s/nix/store/%s/data", f->root, base);
	if (write_file(p, "some data\n", 0644) < 0)
		return -1;
	snprintf(p, sizeof(p), "%s/nix/store/%s/link", f->root, base);
	return symlink("bin/run", p);
}

static void digest_of(const char *path, uint8_t d[CASFS_STORE_DIGEST_LEN])
{
	struct casfs_store_path sp;
	if (casfs_store_path_parse(path, &sp, NULL) < 0)
		memset(d, 0xff, CASFS_STORE_DIGEST_LEN);
	else
		memcpy(d, sp.digest, CASFS_STORE_DIGEST_LEN);
}

static int sink_buf(void *userdata, const void *p, size_t n)
{
	return casfs_buf_append(userdata, p, n);
}

#define P_A "/nix/store/0c6kzph7l0dcbfmjap64f0czdafn3b7x-a"
#define P_B "/nix/store/1z8hbd2y1s6ajp8v4hrhks0k8ffx1dsv-b"
#define P_C "/nix/store/2i9ljgcbksl4zpwdmdp5jns6b1ldj5h7-c.drv"
/* sorts between P_A's "<hash>-" and "<hash>.", but with another hash */
#define P_A_NEIGHBOUR "/nix/store/0c6kzph7l0dcbfmjap64f0czdafn3b7y-a"
#define SIG1 "cache.example.org-1:" \
	"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw=="
#define SIG0 "another-key:" \
	"QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl9gYWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+fw=="
#define HEX_A "sha256:85aab196f32ce3d8169fcddf7e3896874213330ad6b879bd3d3104a676e0b3dd"
#define CA_B "fixed:r:sha256:1pdkw1vac11i7nypkf6n18ri6hl7jqw7xpydkwbdiqrcyfbb3al5"

/* A (base16 hash, deriver, two sigs unsorted with a duplicate and extra
 * spaces) refers to B, itself and C (ids 3, 1, 2: the index gives them as
 * A, C, B); B has a nixbase32 hash and a CA and refers to C. */
static int fill_db(struct fx *f)
{
	return sql(f, "INSERT INTO ValidPaths(id, path, hash, registrationTime, deriver, narSize, sigs, ca) VALUES"
		   " (1, '" P_A "', '" HEX_A "', 1, '" P_C "', 1234, '  " SIG1 "  " SIG0 " " SIG1 "', NULL),"
		   " (3, '" P_B "', 'sha256:1pdkw1vac11i7nypkf6n18ri6hl7jqw7xpydkwbdiqrcyfbb3al5', 1, NULL, 56, '', '" CA_B "'),"
		   " (2, '" P_C "', '" HEX_A "', 1, '', 7, NULL, ''),"
		   " (4, '" P_A_NEIGHBOUR "', '" HEX_A "', 1, NULL, 9, NULL, NULL);"
		   "INSERT INTO Refs VALUES (1, 3), (1, 1), (1, 2), (3, 2);");
}

TEST(query_fields)
{
	struct fx f;
	int ok = fx_open(&f) == 0 && fill_db(&f) == 0 && fx_sub(&f) == 0;
	if (!ok) {
		FAILF("setup: %s", f.err.msg);
		fx_close(&f);
		return;
	}
	CHECK_EQ_INT(f.sub->trusted, 1);
	struct casfs_narinfo ni = { 0 };
	uint8_t d[CASFS_STORE_DIGEST_LEN];
	digest_of(P_A, d);
	int r = f.sub->ops->query(f.sub, d, &ni, &f.err);
	char s[CASFS_STORE_PATH_MAX + 1];
	char sha[CASFS_SHA256_NIX_STR_LEN + 1];
	if (r < 0) {
		FAILF("query: %d %s", r, f.err.msg);
		goto out;
	}
	casfs_store_path_format(&ni.path, s);
	if (strcmp(s, P_A) != 0)
		FAILF("path %s", s);
	casfs_sha256_format_nix(ni.nar_sha256, sha);
	/* the same digest as B's nixbase32 text */
	if (strcmp(sha, "sha256:1pdkw1vac11i7nypkf6n18ri6hl7jqw7xpydkwbdiqrcyfbb3al5") != 0)
		FAILF("nar hash %s", sha);
	if (ni.nar_size != 1234)
		FAILF("nar size %llu", (unsigned long long)ni.nar_size);
	char want_url[256];
	snprintf(want_url, sizeof(want_url), "%s/nix/store/%s", f.root, P_A + 11);
	if (!ni.url || strcmp(ni.url, want_url) != 0 || !ni.compression ||
	    strcmp(ni.compression, "none") != 0)
		FAILF("url %s compression %s", ni.url, ni.compression);
	casfs_store_path_format(&ni.deriver, s);
	if (!ni.has_deriver || strcmp(s, P_C) != 0)
		FAILF("deriver %d %s", ni.has_deriver, s);
	if (ni.n_references != 3) {
		FAILF("%zu references", ni.n_references);
		goto out;
	}
	const char *want_refs[] = { P_A, P_B, P_C };
	for (size_t i = 0; i < 3; i++) {
		casfs_store_path_format(&ni.references[i], s);
		if (strcmp(s, want_refs[i]) != 0)
			FAILF("reference %zu: %s", i, s);
	}
	if (ni.n_sigs != 2) {
		FAILF("%zu sigs", ni.n_sigs);
		goto out;
	}
	char sig[CASFS_NIXSIG_STR_MAX];
	casfs_narinfo_sig_format(&ni.sigs[0], sig);
	if (strcmp(sig, SIG0) != 0)
		FAILF("sig 0: %s", sig);
	casfs_narinfo_sig_format(&ni.sigs[1], sig);
	if (strcmp(sig, SIG1) != 0)
		FAILF("sig 1: %s", sig);
	if (ni.ca)
		FAILF("ca %s", ni.ca);
	casfs_narinfo_release(&ni);

	digest_of(P_B, d);
	r = f.sub->ops->query(f.sub, d, &ni, &f.err);
	if (r < 0) {
		FAILF("query B: %d %s", r, f.err.msg);
		goto out;
	}
	casfs_sha256_format_nix(ni.nar_sha256, sha);
	if (strcmp(sha, "sha256:1pdkw1vac11i7nypkf6n18ri6hl7jqw7xpydkwbdiqrcyfbb3al5") != 0)
		FAILF("B nar hash %s", sha);
	if (ni.has_deriver || ni.n_references != 1 || ni.n_sigs || !ni.ca || strcmp(ni.ca, CA_B) != 0)
		FAILF("B: deriver %d refs %zu sigs %zu ca %s", ni.has_deriver, ni.n_references,
		      ni.n_sigs, ni.ca);
	casfs_narinfo_release(&ni);

	/* "" deriver and ca are none */
	digest_of(P_C, d);
	r = f.sub->ops->query(f.sub, d, &ni, &f.err);
	if (r < 0 || ni.has_deriver || ni.ca || ni.n_sigs)
		FAILF("C: %d deriver %d ca %s", r, ni.has_deriver, ni.ca);
out:
	casfs_narinfo_release(&ni);
	fx_close(&f);
}

TEST(absent)
{
	struct fx f;
	if (fx_open(&f) < 0 || fill_db(&f) < 0 || fx_sub(&f) < 0) {
		FAILF("setup: %s", f.err.msg);
		fx_close(&f);
		return;
	}
	/* absent, and a hash that sorts right before a present one */
	const char *absent[] = { "/nix/store/0c6kzph7l0dcbfmjap64f0czdafn3b7w-a",
				 "/nix/store/zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-z",
				 "/nix/store/00000000000000000000000000000000-0" };
	for (size_t i = 0; i < ARRAY_SIZE(absent); i++) {
		uint8_t d[CASFS_STORE_DIGEST_LEN];
		digest_of(absent[i], d);
		struct casfs_narinfo ni = { 0 };
		struct casfs_error err = { 0 };
		int r = f.sub->ops->query(f.sub, d, &ni, &err);
		char want[256];
		snprintf(want, sizeof(want), "%.43s is not in the Nix store at %s", absent[i], f.root);
		if (r != -ENOENT || strcmp(casfs_error_message(&err, r), want) != 0)
			FAILF("%s: %d '%s', want '%s'", absent[i], r, casfs_error_message(&err, r), want);
		casfs_narinfo_release(&ni);
	}
	/* no store at all */
	struct casfs_substituter *sub = NULL;
	struct casfs_error err = { 0 };
	char p[128];
	snprintf(p, sizeof(p), "%s/nix/store", f.root);
	int r = casfs_substituter_nix_open(p, &sub, &err);
	if (r != -ENOENT || !strstr(err.msg, "no Nix store at"))
		FAILF("open %s: %d %s", p, r, err.msg);
	casfs_substituter_free(sub);
	fx_close(&f);
}

struct damage {
	const char *what;
	const char *sql;
	const char *msg; /* in the message */
};

TEST(damaged_rows)
{
	static const struct damage cases[] = {
		{ "hash", "UPDATE ValidPaths SET hash = 'sha256:xyz' WHERE id = 1", "hash 'sha256:xyz'" },
		{ "hash-algo", "UPDATE ValidPaths SET hash = 'md5:0123456789abcdef0123456789abcdef' WHERE id = 1", "hash 'md5:" },
		{ "hash-null-byte", "UPDATE ValidPaths SET hash = CAST(X'736861323536003030' AS TEXT) WHERE id = 1", "hash" },
		{ "narsize-null", "UPDATE ValidPaths SET narSize = NULL WHERE id = 1", "narSize 'NULL'" },
		{ "narsize-text", "UPDATE ValidPaths SET narSize = 'big' WHERE id = 1", "narSize 'big'" },
		{ "narsize-zero", "UPDATE ValidPaths SET narSize = 0 WHERE id = 1", "narSize '0'" },
		{ "narsize-negative", "UPDATE ValidPaths SET narSize = -5 WHERE id = 1", "narSize '-5'" },
		{ "deriver", "UPDATE ValidPaths SET deriver = 'foo.drv' WHERE id = 1", "deriver" },
		{ "sig", "UPDATE ValidPaths SET sigs = '" SIG0 " nocolon' WHERE id = 1", "sigs" },
		{ "sig-short", "UPDATE ValidPaths SET sigs = 'k:AAAA' WHERE id = 1", "sigs" },
		{ "ca", "UPDATE ValidPaths SET ca = 'fixed:bogus' WHERE id = 1", "ca" },
		{ "reference", "INSERT INTO ValidPaths(id, path, hash, registrationTime, narSize)"
		  " VALUES (9, '/nix/store/bad', '" HEX_A "', 1, 1); INSERT INTO Refs VALUES (1, 9)",
		  "reference '/nix/store/bad'" },
		{ "path", "UPDATE ValidPaths SET path = '" P_A "/sub' WHERE id = 1", "path" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct fx f;
		if (fx_open(&f) < 0 || fill_db(&f) < 0 || sql(&f, cases[i].sql) < 0 || fx_sub(&f) < 0) {
			FAILF("%s: setup: %s", cases[i].what, f.err.msg);
			fx_close(&f);
			return;
		}
		uint8_t d[CASFS_STORE_DIGEST_LEN];
		digest_of(P_A, d);
		struct casfs_narinfo ni = { 0 };
		struct casfs_error err = { 0 };
		int r = f.sub->ops->query(f.sub, d, &ni, &err);
		const char *m = casfs_error_message(&err, r);
		if (r != -EBADMSG || !strstr(m, P_A + 11) || !strstr(m, cases[i].msg) || strchr(m, '\n'))
			FAILF("%s: %d '%s'", cases[i].what, r, m);
		else
			printf("  %s: %s\n", cases[i].what, m);
		casfs_narinfo_release(&ni);
		/* the other paths are still fine */
		digest_of(P_B, d);
		r = f.sub->ops->query(f.sub, d, &ni, &err);
		if (r < 0)
			FAILF("%s: B: %d %s", cases[i].what, r, err.msg);
		casfs_narinfo_release(&ni);
		fx_close(&f);
	}
}

static long long file_fingerprint(const char *path, uint8_t sha[CASFS_SHA256_LEN])
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	struct casfs_buf b = CASFS_BUF_INIT;
	char chunk[65536];
	ssize_t k;
	while ((k = read(fd, chunk, sizeof(chunk))) > 0)
		casfs_buf_append(&b, chunk, (size_t)k);
	close(fd);
	casfs_sha256(b.data, b.len, sha);
	long long n = (long long)b.len;
	casfs_buf_release(&b);
	return n;
}

/* Nix holds a write transaction: queries neither block nor see it, and
 * see the commit afterwards; the database file itself is not written by
 * any of it (the writer's changes stay in the WAL until it checkpoints,
 * which it does not here). */
TEST(concurrent_writer_and_read_only)
{
	struct fx f;
	if (fx_open(&f) < 0 || fill_db(&f) < 0 || sql(&f, "PRAGMA wal_checkpoint(TRUNCATE)") < 0 ||
	    sql(&f, "PRAGMA wal_autocheckpoint=0") < 0 || fx_sub(&f) < 0) {
		FAILF("setup: %s", f.err.msg);
		fx_close(&f);
		return;
	}
	uint8_t before[CASFS_SHA256_LEN], after[CASFS_SHA256_LEN];
	long long n_before = file_fingerprint(f.db_path, before);
	const char *p_new = "/nix/store/3i9ljgcbksl4zpwdmdp5jns6b1ldj5h7-new";
	CHECK(sql(&f, "BEGIN IMMEDIATE") == 0);
	CHECK(sql(&f, "INSERT INTO ValidPaths(path, hash, registrationTime, narSize) VALUES"
		  " ('/nix/store/3i9ljgcbksl4zpwdmdp5jns6b1ldj5h7-new', '" HEX_A "', 1, 5)") == 0);
	uint8_t d[CASFS_STORE_DIGEST_LEN];
	struct casfs_narinfo ni = { 0 };
	digest_of(P_A, d);
	int r = f.sub->ops->query(f.sub, d, &ni, &f.err);
	casfs_narinfo_release(&ni);
	if (r < 0)
		FAILF("query during a write: %d %s", r, f.err.msg);
	digest_of(p_new, d);
	struct casfs_error err = { 0 };
	r = f.sub->ops->query(f.sub, d, &ni, &err);
	casfs_narinfo_release(&ni);
	if (r != -ENOENT)
		FAILF("uncommitted path: %d %s", r, err.msg);
	CHECK(sql(&f, "COMMIT") == 0);
	r = f.sub->ops->query(f.sub, d, &ni, &f.err);
	if (r < 0 || ni.nar_size != 5)
		FAILF("committed path: %d %s", r, f.err.msg);
	casfs_narinfo_release(&ni);
	casfs_substituter_free(f.sub);
	f.sub = NULL;
	long long n_after = file_fingerprint(f.db_path, after);
	if (n_before < 0 || n_before != n_after || memcmp(before, after, sizeof(before)) != 0)
		FAILF("the database file changed: %lld -> %lld bytes", n_before, n_after);
	fx_close(&f);
}

struct thread_arg {
	struct casfs_substituter *sub;
	int failures;
};

static void *query_thread(void *p)
{
	struct thread_arg *a = p;
	const char *paths[] = { P_A, P_B, P_C, P_A_NEIGHBOUR };
	for (int i = 0; i < 400; i++) {
		uint8_t d[CASFS_STORE_DIGEST_LEN];
		digest_of(paths[i % 4], d);
		struct casfs_narinfo ni = { 0 };
		struct casfs_error err = { 0 };
		int r = a->sub->ops->query(a->sub, d, &ni, &err);
		char s[CASFS_STORE_PATH_MAX + 1];
		casfs_store_path_format(&ni.path, s);
		if (r < 0 || strcmp(s, paths[i % 4]) != 0)
			a->failures++;
		casfs_narinfo_release(&ni);
	}
	return NULL;
}

TEST(threads)
{
	struct fx f;
	if (fx_open(&f) < 0 || fill_db(&f) < 0 || fx_sub(&f) < 0) {
		FAILF("setup: %s", f.err.msg);
		fx_close(&f);
		return;
	}
	pthread_t t[4];
	struct thread_arg a[4];
	for (int i = 0; i < 4; i++) {
		a[i] = (struct thread_arg){ f.sub, 0 };
		pthread_create(&t[i], NULL, query_thread, &a[i]);
	}
	int failures = 0;
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		failures += a[i].failures;
	}
	CHECK_EQ_INT(failures, 0);
	fx_close(&f);
}

/* fetch ingests the tree on disk, names the root by the basename, and
 * reports the NAR it read: the same bytes casfs_export_nar renders from
 * what was ingested; a file changed afterwards changes the NAR hash
 * (casfs_substitute then refuses it, test-nix-substituter.sh). */
TEST(fetch_and_tamper)
{
	struct fx f;
	if (fx_open(&f) < 0 || fill_db(&f) < 0 || make_tree(&f, P_A + 11) < 0 || fx_sub(&f) < 0) {
		FAILF("setup: %s", f.err.msg);
		fx_close(&f);
		return;
	}
	uint8_t d[CASFS_STORE_DIGEST_LEN];
	digest_of(P_A, d);
	struct casfs_narinfo ni = { 0 };
	struct casfs_node root = { 0 };
	struct casfs_buf nar = CASFS_BUF_INIT;
	uint8_t sha1[CASFS_SHA256_LEN], sha2[CASFS_SHA256_LEN], got[CASFS_SHA256_LEN];
	uint64_t size1 = 0, size2 = 0;
	int r = f.sub->ops->query(f.sub, d, &ni, &f.err);
	if (r >= 0)
		r = f.sub->ops->fetch(f.sub, &ni, f.s, &root, sha1, &size1, &f.err);
	if (r < 0) {
		FAILF("fetch: %d %s", r, f.err.msg);
		goto out;
	}
	if (root.type != CASFS_NODE_DIRECTORY || strcmp(root.name, P_A + 11) != 0)
		FAILF("root %d '%s'", root.type, root.name);
	r = casfs_export_nar(f.s, &root, sink_buf, &nar, &f.err);
	if (r < 0) {
		FAILF("export: %s", f.err.msg);
		goto out;
	}
	casfs_sha256(nar.data, nar.len, got);
	if (nar.len != size1 || memcmp(got, sha1, sizeof(got)) != 0)
		FAILF("fetch says %llu bytes, the export has %zu (or another hash)",
		      (unsigned long long)size1, nar.len);
	/* the executable bit and the symlink made it */
	static const char exec_tag[] = "\x0a\x00\x00\x00\x00\x00\x00\x00" "executable";
	if (!memmem(nar.data, nar.len, exec_tag, sizeof(exec_tag) - 1) ||
	    !memmem(nar.data, nar.len, "bin/run", 7))
		FAILF("NAR lacks the executable or the symlink");
	casfs_node_release(&root);

	char p[512];
	snprintf(p, sizeof(p), "%s/nix/store/%s/data", f.root, P_A + 11);
	CHECK(write_file(p, "some date\n", 0644) == 0);
	r = f.sub->ops->fetch(f.sub, &ni, f.s, &root, sha2, &size2, &f.err);
	if (r < 0 || size2 != size1 || memcmp(sha1, sha2, sizeof(sha1)) == 0)
		FAILF("after tampering: %d, size %llu, hash %s", r, (unsigned long long)size2,
		      memcmp(sha1, sha2, sizeof(sha1)) ? "differs" : "the same");
	casfs_node_release(&root);

	/* registered but gone from disk */
	digest_of(P_B, d);
	casfs_narinfo_release(&ni);
	struct casfs_error err = { 0 };
	r = f.sub->ops->query(f.sub, d, &ni, &err);
	if (r >= 0)
		r = f.sub->ops->fetch(f.sub, &ni, f.s, &root, sha2, &size2, &err);
	if (r != -ENOENT || !strstr(err.msg, "missing on disk"))
		FAILF("missing tree: %d %s", r, err.msg);
out:
	casfs_node_release(&root);
	casfs_buf_release(&nar);
	casfs_narinfo_release(&ni);
	fx_close(&f);
}

/* ---- the oracle ----------------------------------------------------------- */

/* A line: root ("/" for this machine's store), path, narHash (SRI),
 * narSize, deriver ("" if none), references, signatures (both
 * space-separated, as Nix sorts them), ca, and a file holding
 * `nix-store --dump` of the path, tab-separated. */
#define BAD(...) do { FAILF(__VA_ARGS__); bad = 1; } while (0)

enum { F_ROOT, F_PATH, F_HASH, F_SIZE, F_DERIVER, F_REFS, F_SIGS, F_CA, F_DUMP, F_N };

static int oracle_line(char *line, struct casfs_store *into)
{
	char *fld[F_N];
	int n = 0;
	for (char *t; n < F_N && (t = strsep(&line, "\t"));)
		fld[n++] = t;
	if (n != F_N) {
		FAILF("oracle line with %d fields", n);
		return -1;
	}
	struct casfs_substituter *sub = NULL;
	struct casfs_error err = { 0 };
	int r = casfs_substituter_nix_open(strcmp(fld[F_ROOT], "/") ? fld[F_ROOT] : NULL, &sub, &err);
	if (r < 0) {
		FAILF("open %s: %s", fld[F_ROOT], err.msg);
		return -1;
	}
	int bad = 0;
	uint8_t d[CASFS_STORE_DIGEST_LEN];
	digest_of(fld[F_PATH], d);
	struct casfs_narinfo ni = { 0 };
	struct casfs_node root = { 0 };
	struct casfs_buf nar = CASFS_BUF_INIT, refs = CASFS_BUF_INIT, sigs = CASFS_BUF_INIT;
	r = sub->ops->query(sub, d, &ni, &err);
	if (r < 0) {
		FAILF("%s: query: %s", fld[F_PATH], err.msg);
		bad = 1;
		goto out;
	}
	char s[CASFS_STORE_PATH_MAX + 1];
	char sri[CASFS_SHA256_SRI_STR_LEN + 1];
	casfs_store_path_format(&ni.path, s);
	if (strcmp(s, fld[F_PATH]) != 0)
		BAD("%s: path %s", fld[F_PATH], s);
	casfs_sha256_format_sri(ni.nar_sha256, sri);
	if (strcmp(sri, fld[F_HASH]) != 0)
		BAD("%s: narHash %s, Nix says %s", fld[F_PATH], sri, fld[F_HASH]);
	if (ni.nar_size != strtoull(fld[F_SIZE], NULL, 10))
		BAD("%s: narSize %llu, Nix says %s", fld[F_PATH], (unsigned long long)ni.nar_size,
		      fld[F_SIZE]);
	s[0] = 0;
	if (ni.has_deriver)
		casfs_store_path_format(&ni.deriver, s);
	if (strcmp(s, fld[F_DERIVER]) != 0)
		BAD("%s: deriver '%s', Nix says '%s'", fld[F_PATH], s, fld[F_DERIVER]);
	for (size_t i = 0; i < ni.n_references; i++) {
		casfs_store_path_format(&ni.references[i], s);
		casfs_buf_printf(&refs, "%s%s", i ? " " : "", s);
	}
	casfs_buf_append_byte(&refs, 0);
	if (strcmp((char *)refs.data, fld[F_REFS]) != 0)
		BAD("%s: references '%s', Nix says '%s'", fld[F_PATH], refs.data, fld[F_REFS]);
	for (size_t i = 0; i < ni.n_sigs; i++) {
		char sig[CASFS_NIXSIG_STR_MAX];
		casfs_narinfo_sig_format(&ni.sigs[i], sig);
		casfs_buf_printf(&sigs, "%s%s", i ? " " : "", sig);
	}
	casfs_buf_append_byte(&sigs, 0);
	if (strcmp((char *)sigs.data, fld[F_SIGS]) != 0)
		BAD("%s: signatures '%s', Nix says '%s'", fld[F_PATH], sigs.data, fld[F_SIGS]);
	if (strcmp(ni.ca ? ni.ca : "", fld[F_CA]) != 0)
		BAD("%s: ca '%s', Nix says '%s'", fld[F_PATH], ni.ca, fld[F_CA]);

	uint8_t sha[CASFS_SHA256_LEN];
	uint64_t size;
	r = sub->ops->fetch(sub, &ni, into, &root, sha, &size, &err);
	if (r >= 0)
		r = casfs_export_nar(into, &root, sink_buf, &nar, &err);
	if (r < 0) {
		FAILF("%s: fetch: %s", fld[F_PATH], err.msg);
		bad = 1;
		goto out;
	}
	if (size != ni.nar_size || memcmp(sha, ni.nar_sha256, sizeof(sha)) != 0)
		BAD("%s: fetch read a NAR of %llu bytes, other than the database's", fld[F_PATH],
		      (unsigned long long)size);
	int fd = open(fld[F_DUMP], O_RDONLY);
	struct casfs_buf dump = CASFS_BUF_INIT;
	char chunk[65536];
	ssize_t k;
	while (fd >= 0 && (k = read(fd, chunk, sizeof(chunk))) > 0)
		casfs_buf_append(&dump, chunk, (size_t)k);
	if (fd < 0)
		BAD("%s: %s: %s", fld[F_PATH], fld[F_DUMP], strerror(errno));
	else if (dump.len != nar.len || memcmp(dump.data, nar.data, nar.len) != 0)
		BAD("%s: the NAR of what fetch ingested (%zu bytes) differs from nix-store --dump (%zu)",
		      fld[F_PATH], nar.len, dump.len);
	if (fd >= 0)
		close(fd);
	casfs_buf_release(&dump);
out:
	casfs_node_release(&root);
	casfs_buf_release(&nar);
	casfs_buf_release(&refs);
	casfs_buf_release(&sigs);
	casfs_narinfo_release(&ni);
	casfs_substituter_free(sub);
	return bad ? -1 : 0;
}

TEST(oracle)
{
	const char *file = getenv("CASFS_NIX_STORE_ORACLE");
	if (!file) {
		printf("SKIP test-nix-store:oracle: CASFS_NIX_STORE_ORACLE is not set "
		       "(tests/sh/test-nix-substituter.sh sets it)\n");
		return;
	}
	FILE *in = fopen(file, "r");
	CHECK(in != NULL);
	struct casfs_store *s = NULL;
	struct casfs_error err = { 0 };
	if (casfs_store_open("memory:", 0, &s, &err) < 0) {
		FAILF("memory store: %s", err.msg);
		fclose(in);
		return;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int lines = 0, bad = 0;
	while ((len = getline(&line, &cap, in)) > 0) {
		if (line[len - 1] == '\n')
			line[--len] = 0;
		lines++;
		if (oracle_line(line, s) < 0)
			bad++;
	}
	free(line);
	fclose(in);
	casfs_store_free(s);
	if (lines == 0)
		FAILF("no paths in %s", file);
	else
		printf("  %d paths compared with nix path-info --json and nix-store --dump, %d differ\n",
		       lines, bad);
}
