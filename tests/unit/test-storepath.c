/* Store paths: parsing, formatting and the `nix-store --add` path.
 *
 * Parse vectors come from tvix (tvlfyi/tvix nix-compat/src/store_path/mod.rs
 * tests); make_source is checked against the Nix on this machine
 * (`nix-store --add`, `nix hash path`, `nix store make-content-addressed`)
 * and against a published vector with a reference (tvix
 * nix-compat/src/store_path/utils.rs). */
#include "test.h"

#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "basic/encoding.h"
#include "storepath/storepath.h"

#define NET_TOOLS "00bgd045z0d4icpbc2yyz4gx48ak44la-net-tools-1.60_p20170221182432"
#define HASH32 "00bgd045z0d4icpbc2yyz4gx48ak44la"

/* ---- helpers ----------------------------------------------------------- */

/* Run a shell command, capture stdout (trailing newlines stripped).
 * Returns the exit status, -1 if it could not run. */
static int run(const char *cmd, char *out, size_t cap)
{
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	size_t len = fread(out, 1, cap - 1, p);
	out[len] = 0;
	while (len && (out[len - 1] == '\n' || out[len - 1] == '\r'))
		out[--len] = 0;
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool have_nix(void)
{
	char buf[64];
	return run("command -v nix-store >/dev/null && command -v nix >/dev/null && echo y", buf,
		   sizeof(buf)) == 0 &&
	       strcmp(buf, "y") == 0;
}

#define SKIP_IF_NO_NIX(name)                                                              \
	do {                                                                              \
		if (!have_nix()) {                                                        \
			printf("SKIP test-storepath:%s: nix is not installed\n", name); \
			return;                                                           \
		}                                                                         \
	} while (0)

#define NIX "nix --extra-experimental-features nix-command --option build-users-group '' "

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static void write_file(const char *path, const char *content, mode_t mode)
{
	FILE *f = fopen(path, "w");
	if (f) {
		fputs(content, f);
		fclose(f);
	}
	chmod(path, mode);
}

/* Parse one accepted basename; check that it formats back byte for byte,
 * also as an absolute path through both absolute parsers. */
static int roundtrip(const char *base, struct casfs_store_path *ret)
{
	struct casfs_error err = { 0 };
	struct casfs_store_path sp, sp2, sp3;
	if (casfs_store_path_parse_basename(base, strlen(base), &sp, &err) < 0) {
		printf("  '%s' rejected: %s\n", base, err.msg);
		return -1;
	}
	char out[CASFS_STORE_PATH_MAX + 1];
	size_t n = casfs_store_path_format_basename(&sp, out);
	if (n != strlen(base) || strcmp(out, base) != 0)
		return -1;
	char abs[CASFS_STORE_PATH_MAX + 1];
	snprintf(abs, sizeof(abs), "/nix/store/%s", base);
	n = casfs_store_path_format(&sp, out);
	if (n != strlen(abs) || strcmp(out, abs) != 0)
		return -1;
	const char *sub = NULL;
	if (casfs_store_path_parse(abs, &sp2, &err) < 0 ||
	    casfs_store_path_parse_prefix(abs, &sp3, &sub, &err) < 0)
		return -1;
	if (memcmp(&sp, &sp2, sizeof(sp.digest)) || strcmp(sp.name, sp2.name) ||
	    memcmp(&sp, &sp3, sizeof(sp.digest)) || strcmp(sp.name, sp3.name) ||
	    sub != abs + strlen(abs))
		return -1;
	*ret = sp;
	return 0;
}

/* ---- parse / format ---------------------------------------------------- */

TEST(parse_published_vector)
{
	/* tvix nix-compat store_path tests: digest of the net-tools path. */
	uint8_t want[20];
	CHECK_EQ_INT(casfs_hex_decode("8a12321522fd91efbd60ebb2481af88580f61600", 40, want, 20), 20);
	struct casfs_store_path sp;
	CHECK_EQ_INT(roundtrip(NET_TOOLS, &sp), 0);
	CHECK_EQ_MEM(sp.digest, want, 20);
	CHECK_EQ_STR(sp.name, "net-tools-1.60_p20170221182432");
}

TEST(parse_roundtrips)
{
	char longname[CASFS_STORE_PATH_BASENAME_MAX + 1];
	memcpy(longname, HASH32 "-", 33);
	memset(longname + 33, 'a', CASFS_STORE_PATH_NAME_MAX);
	longname[33 + CASFS_STORE_PATH_NAME_MAX] = 0;
	const char *ok[] = {
		NET_TOOLS,
		HASH32 "-x",
		HASH32 "-+-._?=",      /* every punctuation allowed */
		HASH32 "-AZaz09",
		HASH32 "--starts-with-dash",
		HASH32 "-a..b",
		"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-top", /* all bits set */
		"00000000000000000000000000000000-zero",
		longname,                             /* exactly 211 chars of name */
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++) {
		struct casfs_store_path sp;
		if (roundtrip(ok[i], &sp) < 0) {
			FAILF("round trip of '%s' failed", ok[i]);
			return;
		}
	}
	struct casfs_store_path sp;
	CHECK_EQ_INT(roundtrip("00000000000000000000000000000000-zero", &sp), 0);
	static const uint8_t zero[20];
	CHECK_EQ_MEM(sp.digest, zero, 20);
	CHECK_EQ_INT(roundtrip("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-top", &sp), 0);
	for (int i = 0; i < 20; i++)
		CHECK_EQ_INT(sp.digest[i], 0xff);
	/* Nix puts the lowest 5 bits of byte 0 in the last character. */
	CHECK_EQ_INT(roundtrip("0000000000000000000000000000000z-a", &sp), 0);
	CHECK_EQ_INT(sp.digest[0], 0x1f);
	CHECK_EQ_INT(roundtrip("z0000000000000000000000000000000-a", &sp), 0);
	CHECK_EQ_INT(sp.digest[19], 0xf8);
}

/* Expect rejection from the basename parser; *ret must stay untouched. */
static int rejected_base(const char *s, size_t len)
{
	struct casfs_error err = { 0 };
	struct casfs_store_path sp;
	memset(&sp, 0xa5, sizeof(sp));
	int r = casfs_store_path_parse_basename(s, len, &sp, &err);
	for (size_t i = 0; i < sizeof(sp); i++)
		if (((uint8_t *)&sp)[i] != 0xa5)
			return 0;
	return r == -EINVAL && err.msg[0] != 0;
}

TEST(parse_basename_rejects)
{
	char name212[CASFS_STORE_PATH_BASENAME_MAX + 2];
	memcpy(name212, HASH32 "-", 33);
	memset(name212 + 33, 'a', CASFS_STORE_PATH_NAME_MAX + 1);
	name212[33 + CASFS_STORE_PATH_NAME_MAX + 1] = 0;
	const char *bad[] = {
		"",
		HASH32,                          /* no '-', no name */
		HASH32 "-",                      /* empty name */
		name212,                         /* name of 212 chars */
		HASH32 "-.gitignore",            /* leading '.' (tvix starts_with_dot) */
		HASH32 "-.",
		HASH32 "-..",
		"00bgd045z0d4icpbc2yy-net-tools-1.60_p20170221182432", /* 20-char hash */
		"00bgd045z0d4icpbc2yyz4gx48ak44l-net-tools",             /* 31-char hash */
		"00bgd045z0d4icpbc2yyz4gx48ak44la0-net-tools",           /* 33-char hash */
		"00bgd045z0d4icpbc2yyz4gx48ak44lanet-tools-1.60_p20170221182432", /* no '-' */
		"00bgd045z0d4icpbc2yyz4gx48aku4la-net-tools",            /* 'u' in hash */
		"e0bgd045z0d4icpbc2yyz4gx48ak44la-x",                    /* 'e' */
		"00bgd045z0d4icpbc2yyz4gx48ak44lo-x",                    /* 'o' */
		"00bgd045z0d4ictbc2yyz4gx48ak44la-x",                    /* 't' */
		"00BGD045Z0D4ICPBC2YYZ4GX48AK44LA-x",                    /* uppercase */
		"00bgd045z0d4icpbc2yyz4gx48ak44l!-x",
		"00bgd045z0d4icpbc2yy-4gx48ak44la-x",                    /* '-' in hash */
		HASH32 "-net-tools/bin/arp",     /* '/' */
		HASH32 "-a b",                   /* space */
		HASH32 "-a@b", HASH32 "-a~b", HASH32 "-a!b", HASH32 "-a%b", HASH32 "-a:b",
		HASH32 "-a,b", HASH32 "-a*b", HASH32 "-a\"b", HASH32 "-a'b", HASH32 "-a\\b",
		HASH32 "-a\nb", HASH32 "-a\tb", HASH32 "-a\x7f", HASH32 "-\xc3\xa9t\xc3\xa9",
		HASH32 "-a\xff", HASH32 "-a[b]", HASH32 "-a{b}", HASH32 "-a$b", HASH32 "-a#b",
		HASH32 "-a&b", HASH32 "-a|b", HASH32 "-a;b", HASH32 "-a<b>", HASH32 "-a^b",
		HASH32 "-a`b", HASH32 "-(a)",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		if (!rejected_base(bad[i], strlen(bad[i]))) {
			FAILF("basename '%s' not rejected with -EINVAL and a message", bad[i]);
			return;
		}
	/* An embedded NUL inside the given length. */
	static const char nul[] = HASH32 "-ab\0cd";
	CHECK(rejected_base(nul, sizeof(nul) - 1));
	/* The length bounds the parse: a valid prefix of a longer buffer is
	 * accepted, a truncated one rejected. */
	struct casfs_store_path sp;
	CHECK_EQ_INT(casfs_store_path_parse_basename(NET_TOOLS "/bin", strlen(NET_TOOLS), &sp, NULL), 0);
	CHECK_EQ_STR(sp.name, "net-tools-1.60_p20170221182432");
	CHECK(rejected_base(NET_TOOLS, 33));
	CHECK(rejected_base(NET_TOOLS, 20));
}

TEST(name_validate)
{
	struct casfs_error err = { 0 };
	CHECK_EQ_INT(casfs_store_path_name_validate("hello-2.12.1", 12, &err), 0);
	CHECK_EQ_INT(casfs_store_path_name_validate("source", 6, &err), 0);
	CHECK_EQ_INT(casfs_store_path_name_validate("", 0, &err), -EINVAL);
	CHECK(strstr(err.msg, "empty") != NULL);
	err = (struct casfs_error){ 0 };
	CHECK_EQ_INT(casfs_store_path_name_validate(".x", 2, &err), -EINVAL);
	CHECK(strstr(err.msg, "'.'") != NULL);
	err = (struct casfs_error){ 0 };
	CHECK_EQ_INT(casfs_store_path_name_validate("a/b", 3, &err), -EINVAL);
	CHECK(strstr(err.msg, "0x2f") != NULL);
	char big[CASFS_STORE_PATH_NAME_MAX + 1];
	memset(big, 'b', sizeof(big));
	CHECK_EQ_INT(casfs_store_path_name_validate(big, CASFS_STORE_PATH_NAME_MAX, NULL), 0);
	err = (struct casfs_error){ 0 };
	CHECK_EQ_INT(casfs_store_path_name_validate(big, sizeof(big), &err), -EINVAL);
	CHECK(strstr(err.msg, "212") != NULL);
	/* Every byte value: exactly [A-Za-z0-9+-._?=] is accepted (after a
	 * leading 'x', so '.' is tested too). */
	for (int c = 0; c < 256; c++) {
		char s[2] = { 'x', (char)c };
		bool want = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || (c && strchr("+-._?=", c));
		bool got = casfs_store_path_name_validate(s, 2, NULL) == 0;
		if (got != want) {
			FAILF("byte 0x%02x: accepted=%d, expected %d", c, got, want);
			return;
		}
	}
}

static int rejected_abs(const char *s)
{
	struct casfs_error err = { 0 };
	struct casfs_store_path sp;
	memset(&sp, 0xa5, sizeof(sp));
	int r = casfs_store_path_parse(s, &sp, &err);
	for (size_t i = 0; i < sizeof(sp); i++)
		if (((uint8_t *)&sp)[i] != 0xa5)
			return 0;
	return r == -EINVAL && err.msg[0] != 0;
}

TEST(parse_absolute)
{
	struct casfs_store_path sp;
	struct casfs_error err = { 0 };
	CHECK_EQ_INT(casfs_store_path_parse("/nix/store/" NET_TOOLS, &sp, &err), 0);
	CHECK_EQ_STR(sp.name, "net-tools-1.60_p20170221182432");
	const char *bad[] = {
		"",
		NET_TOOLS,                        /* tvix absolute_path_missing_prefix */
		"foobar-123",
		"/nix/store",
		"/nix/store/",                    /* tvix from_absolute_path_errors */
		"/nix/store/foo",
		"/nix/store//" NET_TOOLS,
		"nix/store/" NET_TOOLS,
		"/nix/stor/" NET_TOOLS,
		"/nix/storex/" NET_TOOLS,
		"/gnu/store/" NET_TOOLS,
		"//nix/store/" NET_TOOLS,
		"/nix/store/" NET_TOOLS "/",      /* trailing components */
		"/nix/store/" NET_TOOLS "/bin/arp",
		"/nix/store/" NET_TOOLS "/bin/arp/",
		"/nix/store/" HASH32 "-.dot",
		"/nix/store/" HASH32 "-",
		"/nix/store/00bgd045z0d4icpbc2yyz4gx48aku4la-net-tools",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		if (!rejected_abs(bad[i])) {
			FAILF("absolute path '%s' not rejected with -EINVAL and a message", bad[i]);
			return;
		}
}

TEST(parse_prefix)
{
	static const char *const ok[][2] = {
		{ "/nix/store/" NET_TOOLS, "" },
		{ "/nix/store/" NET_TOOLS "/", "/" },
		{ "/nix/store/" NET_TOOLS "/bin/arp", "/bin/arp" },
		{ "/nix/store/" NET_TOOLS "/bin/arp/", "/bin/arp/" },
		{ "/nix/store/" NET_TOOLS "//x", "//x" },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++) {
		struct casfs_store_path sp;
		const char *sub = NULL;
		struct casfs_error err = { 0 };
		CHECK_EQ_INT(casfs_store_path_parse_prefix(ok[i][0], &sp, &sub, &err), 0);
		CHECK_EQ_STR(sp.name, "net-tools-1.60_p20170221182432");
		/* sub points into the input, right after the basename */
		CHECK(sub == ok[i][0] + strlen("/nix/store/" NET_TOOLS));
		CHECK_EQ_STR(sub, ok[i][1]);
		/* ret_sub may be NULL */
		CHECK_EQ_INT(casfs_store_path_parse_prefix(ok[i][0], &sp, NULL, NULL), 0);
	}
	const char *bad[] = {
		"/nix/store/", "/nix/store//" NET_TOOLS, "/nix/store/" HASH32 "-/x",
		"/nix/store/" HASH32 "-.a/x", "/tmp/" NET_TOOLS, NET_TOOLS "/bin",
		"/nix/store/" HASH32 "/x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct casfs_store_path sp;
		const char *sub = (const char *)&sp; /* must stay untouched */
		struct casfs_error err = { 0 };
		if (casfs_store_path_parse_prefix(bad[i], &sp, &sub, &err) != -EINVAL || !err.msg[0] ||
		    sub != (const char *)&sp) {
			FAILF("prefix '%s' not rejected cleanly", bad[i]);
			return;
		}
	}
}

/* ---- make_source ------------------------------------------------------- */

/* make_source(nar hash from `nix hash path`, basename) == `nix-store --add`. */
static int check_against_nix(const char *path, const char *name)
{
	char cmd[1024], hex[256], want[512];
	snprintf(cmd, sizeof(cmd), NIX "hash path --type sha256 --base16 '%s'", path);
	if (run(cmd, hex, sizeof(hex)) != 0 || strlen(hex) != 64) {
		printf("  nix hash path %s: '%s'\n", path, hex);
		return -1;
	}
	snprintf(cmd, sizeof(cmd), "nix-store --option build-users-group '' --add '%s'", path);
	if (run(cmd, want, sizeof(want)) != 0) {
		printf("  nix-store --add %s failed\n", path);
		return -1;
	}
	uint8_t h[32];
	if (casfs_hex_decode(hex, 64, h, 32) != 32)
		return -1;
	struct casfs_store_path sp;
	struct casfs_error err = { 0 };
	if (casfs_store_path_make_source(h, name, NULL, 0, &sp, &err) < 0) {
		printf("  make_source(%s): %s\n", name, err.msg);
		return -1;
	}
	char got[CASFS_STORE_PATH_MAX + 1];
	casfs_store_path_format(&sp, got);
	if (strcmp(got, want) != 0) {
		printf("  %s: casfs %s, nix %s\n", path, got, want);
		return -1;
	}
	return 0;
}

TEST(make_source_vs_nix)
{
	SKIP_IF_NO_NIX("make_source_vs_nix");
	char tmp[] = "/tmp/casfs-test-storepath-XXXXXX";
	CHECK(mkdtemp(tmp) != NULL);
	char p[256], q[256];
	int failed = 0;
	const char *names[] = { "hello.txt", "run.sh", "empty", "tree", "lnk", "x+y=z?_-1.0",
				"emptydir" };

	snprintf(p, sizeof(p), "%s/hello.txt", tmp);
	write_file(p, "hello\n", 0644);
	snprintf(p, sizeof(p), "%s/run.sh", tmp);
	write_file(p, "#!/bin/sh\necho hi\n", 0755);
	snprintf(p, sizeof(p), "%s/empty", tmp);
	write_file(p, "", 0644);
	snprintf(p, sizeof(p), "%s/tree", tmp);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/tree/sub", tmp);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/tree/sub/deeper", tmp);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/tree/a", tmp);
	write_file(p, "aaa", 0644);
	snprintf(p, sizeof(p), "%s/tree/sub/x", tmp);
	write_file(p, "x", 0755);
	snprintf(p, sizeof(p), "%s/tree/sub/deeper/l", tmp);
	failed |= symlink("../../a", p);
	snprintf(p, sizeof(p), "%s/lnk", tmp);
	failed |= symlink("/nowhere/at/all", p);
	snprintf(p, sizeof(p), "%s/x+y=z?_-1.0", tmp);
	write_file(p, "odd name", 0600);
	snprintf(p, sizeof(p), "%s/emptydir", tmp);
	mkdir(p, 0700);

	for (size_t i = 0; !failed && i < sizeof(names) / sizeof(*names); i++) {
		snprintf(q, sizeof(q), "%s/%s", tmp, names[i]);
		if (check_against_nix(q, names[i]) < 0) {
			FAILF("store path of %s differs from nix-store --add", names[i]);
			failed = 2;
		}
	}
	nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	CHECK_EQ_INT(failed, 0);
}

TEST(make_source_published_reference)
{
	/* tvlfyi/tvix nix-compat/src/store_path/utils.rs,
	 * build_store_path_with_non_zero_references: the content-addressed
	 * rewrite of builtins.toFile "baz" "${builtins.toFile "foo" "bar"}". */
	uint8_t h[32];
	CHECK_EQ_INT(casfs_nixbase32_decode("1xqkzcb3909fp07qngljr4wcdnrh1gdam1m2n29i6hhrxlmkgkv1", 52,
					    h, 32),
		     32);
	const char *refs[] = { "/nix/store/dxwkwjzdaq7ka55pkk252gh32bgpmql4-foo" };
	struct casfs_store_path sp;
	CHECK_EQ_INT(casfs_store_path_make_source(h, "baz", refs, 1, &sp, NULL), 0);
	char got[CASFS_STORE_PATH_MAX + 1];
	casfs_store_path_format(&sp, got);
	CHECK_EQ_STR(got, "/nix/store/s89y431zzhmdn3k8r96rvakryddkpv2v-baz");
	/* Without the reference the path differs. */
	CHECK_EQ_INT(casfs_store_path_make_source(h, "baz", NULL, 0, &sp, NULL), 0);
	casfs_store_path_format(&sp, got);
	CHECK(strcmp(got, "/nix/store/s89y431zzhmdn3k8r96rvakryddkpv2v-baz") != 0);
}

TEST(make_source_two_references_vs_nix)
{
	SKIP_IF_NO_NIX("make_source_two_references_vs_nix");
	/* A text file referencing two others, rewritten by Nix into a
	 * content-addressed (source, recursive sha256) path with references. */
	char orig[512], ca[512], hash[256], refs_txt[1024];
	CHECK_EQ_INT(run(NIX "eval --raw --expr 'let f = builtins.toFile \"foo\" \"bar\"; "
			     "g = builtins.toFile \"qux\" \"zzz\"; in "
			     "builtins.toFile \"baz\" \"${f} ${g}\"'",
			 orig, sizeof(orig)),
		     0);
	char cmd[1024];
	snprintf(cmd, sizeof(cmd),
		 NIX "store make-content-addressed --json '%s' 2>/dev/null | "
		     "sed 's/.*\":\"\\([^\"]*\\)\"}}.*/\\1/'",
		 orig);
	CHECK_EQ_INT(run(cmd, ca, sizeof(ca)), 0);
	snprintf(cmd, sizeof(cmd), "nix-store -q --hash '%s'", ca);
	CHECK_EQ_INT(run(cmd, hash, sizeof(hash)), 0);
	snprintf(cmd, sizeof(cmd), "nix-store -q --references '%s'", ca);
	CHECK_EQ_INT(run(cmd, refs_txt, sizeof(refs_txt)), 0);

	/* Hand the references over in reverse of Nix's order: make_source
	 * must sort them itself. */
	const char *refs[8];
	size_t n = 0;
	for (char *save = NULL, *t = strtok_r(refs_txt, "\n", &save); t && n < 8;
	     t = strtok_r(NULL, "\n", &save))
		refs[n++] = t;
	CHECK_EQ_INT(n, 2);
	bool asc = strcmp(refs[0], refs[1]) < 0;
	const char *rev[2] = { refs[asc ? 1 : 0], refs[asc ? 0 : 1] };
	CHECK(strcmp(rev[0], rev[1]) > 0);

	uint8_t h[32];
	CHECK_EQ_INT(casfs_sha256_parse(hash, h), 0);
	struct casfs_store_path sp, want;
	CHECK_EQ_INT(casfs_store_path_parse(ca, &want, NULL), 0);
	CHECK_EQ_INT(casfs_store_path_make_source(h, want.name, rev, 2, &sp, NULL), 0);
	char got[CASFS_STORE_PATH_MAX + 1];
	casfs_store_path_format(&sp, got);
	CHECK_EQ_STR(got, ca);
}

TEST(make_source_rejects_bad_names)
{
	static const uint8_t h[32];
	const char *bad[] = { "", ".hidden", "a b", "a/b", "ünï" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct casfs_store_path sp;
		memset(&sp, 0x5a, sizeof(sp));
		struct casfs_error err = { 0 };
		CHECK_EQ_INT(casfs_store_path_make_source(h, bad[i], NULL, 0, &sp, &err), -EINVAL);
		CHECK(err.msg[0] != 0);
		CHECK(sp.name[0] == 0x5a);
	}
	char big[CASFS_STORE_PATH_NAME_MAX + 2];
	memset(big, 'n', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	struct casfs_store_path sp;
	CHECK_EQ_INT(casfs_store_path_make_source(h, big, NULL, 0, &sp, NULL), -EINVAL);
	big[CASFS_STORE_PATH_NAME_MAX] = 0;
	CHECK_EQ_INT(casfs_store_path_make_source(h, big, NULL, 0, &sp, NULL), 0);
	CHECK_EQ_INT(strlen(sp.name), CASFS_STORE_PATH_NAME_MAX);
}
