/* src/nixcache: the .narinfo parser/renderer, fingerprints, Nix keys and
 * signatures.
 *
 * Vectors:
 *  - RESEARCH_WITHREF is the narinfo `nix copy --to file://…?secret-key=…`
 *    (Nix 2.8) wrote in /work/shared/research/binary-cache-s3.md section 1.2,
 *    and its fingerprint the one section 1.6 checked with Python's
 *    `cryptography` against Nix's Sig;
 *  - PINNED_TREE / PINNED_WITHREF and PINNED_SEC / PINNED_PUB were made
 *    here by Nix 2.8 (`nix key generate-secret --key-name casfs-test-1`,
 *    `nix key convert-secret-to-public`, `nix-store --add`, `nix-build`,
 *    `nix copy --to file://…?secret-key=…&compression=none`), so the Sig
 *    lines are Nix's own signatures under PINNED_PUB;
 *  - the oracle test reads a cache Nix has just written
 *    (tests/sh/test-narinfo-oracle.sh sets CASFS_NARINFO_ORACLE_DIR). */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "basic/buf.h"
#include "basic/encoding.h"
#include "basic/util.h"
#include "nixcache/narinfo.h"
#include "nixcache/nixkey.h"
#include "test.h"

#define RESEARCH_WITHREF                                                                   \
	"StorePath: /nix/store/0s21qa6n7vnv1j466wvhp9rcy09wkkfb-withref\n"                 \
	"URL: nar/0rv0qk3mjn61n43l9p23l3p2ipxz8zp2f6354wz616b3xm8qa3k6.nar.xz\n"           \
	"Compression: xz\n"                                                                \
	"FileHash: sha256:0rv0qk3mjn61n43l9p23l3p2ipxz8zp2f6354wz616b3xm8qa3k6\n"          \
	"FileSize: 172\n"                                                                  \
	"NarHash: sha256:024vmjsmlv843jr0y8wyg4l49lw0qfb3lm62ij0br0p62kn4vn8k\n"           \
	"NarSize: 168\n"                                                                   \
	"References: cp8kfaxd9dvmf3djp06a9sr0xrvi06mz-tree\n"                              \
	"Deriver: zn41hrkbfy11y6gi3b1lv5x7kzy0iplh-withref.drv\n"                          \
	"Sig: casfs-test-1:2f6OM2gbBf0pjpH0a5QsQjixjpDV/G5K5XtF3ESFtwkvGlAKe4M1Cbg33hemVuArJ" \
	"ABEU74HdfnEm/umv2f+Cw==\n"

#define RESEARCH_WITHREF_FP                                                                \
	"1;/nix/store/0s21qa6n7vnv1j466wvhp9rcy09wkkfb-withref;"                           \
	"sha256:024vmjsmlv843jr0y8wyg4l49lw0qfb3lm62ij0br0p62kn4vn8k;168;"                 \
	"/nix/store/cp8kfaxd9dvmf3djp06a9sr0xrvi06mz-tree"

#define PINNED_SEC                                                                         \
	"casfs-test-1:wvklymHg88mdku8y+l5aJZq1ei8VxQTJXDUNEA+8qCMqIuHKEvmmmX2Of3ROdgyKdjJtQ" \
	"cR5RpuF8520LVbtXw=="
#define PINNED_PUB "casfs-test-1:KiLhyhL5ppl9jn90TnYMinYybUHEeUabhfOdtC1W7V8="

#define PINNED_TREE                                                                        \
	"StorePath: /nix/store/1hls6pwxi98k1k75x3035f5amyk8w73f-tree\n"                    \
	"URL: nar/1wmwd44y1sfnhgcvcv4gp9bj705zfqqwwhr9fsmjmg9qp20bbrpx.nar\n"              \
	"Compression: none\n"                                                              \
	"FileHash: sha256:1wmwd44y1sfnhgcvcv4gp9bj705zfqqwwhr9fsmjmg9qp20bbrpx\n"          \
	"FileSize: 904\n"                                                                  \
	"NarHash: sha256:1wmwd44y1sfnhgcvcv4gp9bj705zfqqwwhr9fsmjmg9qp20bbrpx\n"           \
	"NarSize: 904\n"                                                                   \
	"References: \n"                                                                   \
	"Sig: casfs-test-1:kXqLBNHcuJzUdh0C1GRX3RG9rDT8aKl8kw8g1wH8gN1etao/MXDHGWyg7c9zG3KzrS" \
	"vSN0TJ6ss5+lYYUe+xCw==\n"                                                         \
	"CA: fixed:r:sha256:1wmwd44y1sfnhgcvcv4gp9bj705zfqqwwhr9fsmjmg9qp20bbrpx\n"

#define PINNED_TREE_FP                                                                     \
	"1;/nix/store/1hls6pwxi98k1k75x3035f5amyk8w73f-tree;"                              \
	"sha256:1wmwd44y1sfnhgcvcv4gp9bj705zfqqwwhr9fsmjmg9qp20bbrpx;904;"

#define PINNED_WITHREF                                                                     \
	"StorePath: /nix/store/x2a3nkg9mng0hza704jkarz095wfg6v6-withref\n"                 \
	"URL: nar/1dyclfb31hl12pncwwrhhpkrb1bvamf7qw3q2dk7rsy4xs2vky60.nar\n"              \
	"Compression: none\n"                                                              \
	"FileHash: sha256:1dyclfb31hl12pncwwrhhpkrb1bvamf7qw3q2dk7rsy4xs2vky60\n"          \
	"FileSize: 168\n"                                                                  \
	"NarHash: sha256:1dyclfb31hl12pncwwrhhpkrb1bvamf7qw3q2dk7rsy4xs2vky60\n"           \
	"NarSize: 168\n"                                                                   \
	"References: 1hls6pwxi98k1k75x3035f5amyk8w73f-tree\n"                              \
	"Deriver: g4cghbpc8c3x3hxbjzf0ajkdqbqnrc6h-withref.drv\n"                          \
	"Sig: casfs-test-1:G6anD/P6SLXs48D4ASw9JXMs9kE6bm7toGOUs0ZGw3/LZqJaDLdBuh+1YS7006nj3Y" \
	"k8BP8bK2g+JZES5cRECA==\n"

/* --- helpers --- */

static int parse_str(const char *s, struct casfs_narinfo *ret, struct casfs_error *err)
{
	return casfs_narinfo_parse(s, strlen(s), ret, err);
}

/* Parse, render, compare with the input; 0 if identical. */
static int roundtrip(const char *text, size_t len)
{
	struct casfs_narinfo ni;
	struct casfs_error err = { 0 };
	int r = casfs_narinfo_parse(text, len, &ni, &err);
	if (r < 0) {
		printf("  parse: %s\n", casfs_error_message(&err, r));
		return -1;
	}
	struct casfs_buf out = CASFS_BUF_INIT;
	r = casfs_narinfo_render(&ni, &out);
	int same = r == 0 && out.len == len && memcmp(out.data, text, len) == 0;
	if (!same)
		printf("  rendered:\n%.*s\n  want:\n%.*s\n", (int)out.len, (const char *)out.data,
		       (int)len, text);
	casfs_buf_release(&out);
	casfs_narinfo_release(&ni);
	return same ? 0 : -1;
}

/* The input with the first line starting with `prefix` replaced by `with`
 * (a whole line, "\n" included, or "" to drop it).  Caller frees. */
static char *replace_line(const char *text, const char *prefix, const char *with)
{
	const char *p = text;
	while (p && strncmp(p, prefix, strlen(prefix)) != 0) {
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	if (!p || !*p) {
		printf("  test bug: no line %s\n", prefix);
		abort();
	}
	const char *end = strchr(p, '\n') + 1;
	size_t n = (size_t)(p - text) + strlen(with) + strlen(end) + 1;
	char *s = malloc(n);
	snprintf(s, n, "%.*s%s%s", (int)(p - text), text, with, end);
	return s;
}

/* Parse must fail with `code` and a message containing `needle`. */
static int expect_fail(const char *text, size_t len, int code, const char *needle)
{
	struct casfs_narinfo ni;
	memset(&ni, 0x5a, sizeof(ni));
	struct casfs_narinfo sentinel = ni;
	struct casfs_error err = { 0 };
	int r = casfs_narinfo_parse(text, len, &ni, &err);
	if (r != code) {
		printf("  parse returned %d (%s), want %d\n", r, casfs_error_message(&err, r), code);
		if (r == 0)
			casfs_narinfo_release(&ni);
		return -1;
	}
	if (memcmp(&ni, &sentinel, sizeof(ni)) != 0) {
		printf("  *ret written on failure\n");
		return -1;
	}
	if (!strstr(casfs_error_message(&err, r), needle)) {
		printf("  message '%s' lacks '%s'\n", casfs_error_message(&err, r), needle);
		return -1;
	}
	return 0;
}

static int expect_fail_str(const char *text, int code, const char *needle)
{
	return expect_fail(text, strlen(text), code, needle);
}

static int fingerprint_is(const char *narinfo, const char *want)
{
	struct casfs_narinfo ni;
	if (parse_str(narinfo, &ni, NULL) < 0)
		return -1;
	struct casfs_buf fp = CASFS_BUF_INIT;
	int r = casfs_narinfo_fingerprint(&ni, &fp);
	int ok = r == 0 && fp.len == strlen(want) && memcmp(fp.data, want, fp.len) == 0;
	if (!ok)
		printf("  fingerprint '%.*s'\n  want        '%s'\n", (int)fp.len, (const char *)fp.data,
		       want);
	casfs_buf_release(&fp);
	casfs_narinfo_release(&ni);
	return ok ? 0 : -1;
}

static int trusted_list(const char *keys, struct casfs_nixkey_list *ret)
{
	struct casfs_error err = { 0 };
	int r = casfs_nixkey_list_parse(keys, strlen(keys), ret, &err);
	if (r < 0)
		printf("  key list: %s\n", casfs_error_message(&err, r));
	return r;
}

/* Good signatures of `text` under `keys`, or a negative value. */
static int verify_text(const char *text, const char *keys)
{
	struct casfs_narinfo ni;
	struct casfs_nixkey_list l = { 0 };
	if (parse_str(text, &ni, NULL) < 0)
		return -1000;
	int r = trusted_list(keys, &l);
	if (r == 0)
		r = casfs_nixkey_verify_narinfo(&l, &ni, NULL);
	casfs_nixkey_list_release(&l);
	casfs_narinfo_release(&ni);
	return r;
}

/* --- the format --- */

TEST(research_example_roundtrip)
{
	CHECK(roundtrip(RESEARCH_WITHREF, strlen(RESEARCH_WITHREF)) == 0);
	struct casfs_narinfo ni;
	struct casfs_error err = { 0 };
	CHECK_EQ_INT(parse_str(RESEARCH_WITHREF, &ni, &err), 0);
	char s[CASFS_STORE_PATH_MAX + 1];
	casfs_store_path_format(&ni.path, s);
	CHECK_EQ_STR(s, "/nix/store/0s21qa6n7vnv1j466wvhp9rcy09wkkfb-withref");
	CHECK_EQ_STR(ni.url, "nar/0rv0qk3mjn61n43l9p23l3p2ipxz8zp2f6354wz616b3xm8qa3k6.nar.xz");
	CHECK_EQ_STR(ni.compression, "xz");
	CHECK(ni.has_file_hash && ni.has_file_size);
	CHECK_EQ_INT(ni.file_size, 172);
	CHECK_EQ_INT(ni.nar_size, 168);
	char h[CASFS_SHA256_NIX_STR_LEN + 1];
	casfs_sha256_format_nix(ni.nar_sha256, h);
	CHECK_EQ_STR(h, "sha256:024vmjsmlv843jr0y8wyg4l49lw0qfb3lm62ij0br0p62kn4vn8k");
	casfs_sha256_format_nix(ni.file_sha256, h);
	CHECK_EQ_STR(h, "sha256:0rv0qk3mjn61n43l9p23l3p2ipxz8zp2f6354wz616b3xm8qa3k6");
	CHECK_EQ_INT(ni.n_references, 1);
	casfs_store_path_format_basename(&ni.references[0], s);
	CHECK_EQ_STR(s, "cp8kfaxd9dvmf3djp06a9sr0xrvi06mz-tree");
	CHECK(ni.has_deriver);
	casfs_store_path_format_basename(&ni.deriver, s);
	CHECK_EQ_STR(s, "zn41hrkbfy11y6gi3b1lv5x7kzy0iplh-withref.drv");
	CHECK(ni.system == NULL && ni.ca == NULL);
	CHECK_EQ_INT(ni.n_sigs, 1);
	CHECK_EQ_STR(ni.sigs[0].name, "casfs-test-1");
	CHECK_EQ_INT(ni.sigs[0].sig[0], 0xd9); /* base64 "2f6O" */
	casfs_narinfo_release(&ni);
	CHECK(ni.url == NULL && ni.sigs == NULL); /* release zeroes */
	casfs_narinfo_release(&ni);               /* and is idempotent */
}

TEST(pinned_nix_roundtrip)
{
	CHECK(roundtrip(PINNED_TREE, strlen(PINNED_TREE)) == 0);
	CHECK(roundtrip(PINNED_WITHREF, strlen(PINNED_WITHREF)) == 0);
	struct casfs_narinfo ni;
	CHECK_EQ_INT(parse_str(PINNED_TREE, &ni, NULL), 0);
	CHECK_EQ_INT(ni.n_references, 0);
	CHECK(!ni.has_deriver);
	CHECK_EQ_STR(ni.ca, "fixed:r:sha256:1wmwd44y1sfnhgcvcv4gp9bj705zfqqwwhr9fsmjmg9qp20bbrpx");
	CHECK_EQ_MEM(ni.nar_sha256, ni.file_sha256, 32);
	casfs_narinfo_release(&ni);
}

TEST(defaults_unknown_fields_and_sets)
{
	/* unknown names ignored, Compression defaults to bzip2, unknown-deriver
	 * is none, References/Sig are sets rendered sorted without duplicates,
	 * empty System/CA are none, hex and SRI hashes read */
	const char *in =
		"StorePath: /nix/store/0s21qa6n7vnv1j466wvhp9rcy09wkkfb-withref\n"
		"X-Casfs-Extension: anything: at all\n"
		"URL: https://example.org/x.nar\n"
		"NarHash: sha256:9b6e56c6d4ab5b4b7a3ee9b15ee0a91e0dfd5fb7cc4d7e8fdb9e7e27ef7e4b63\n"
		"NarSize: 168\n"
		"References: zn41hrkbfy11y6gi3b1lv5x7kzy0iplh-b  cp8kfaxd9dvmf3djp06a9sr0xrvi06mz-tree "
		"cp8kfaxd9dvmf3djp06a9sr0xrvi06mz-tree\n"
		"Deriver: unknown-deriver\n"
		"System: \n"
		"Sig: k1:2f6OM2gbBf0pjpH0a5QsQjixjpDV/G5K5XtF3ESFtwkvGlAKe4M1Cbg33hemVuArJABEU74HdfnEm/umv2f+Cw==\n"
		"Sig: k0:2f6OM2gbBf0pjpH0a5QsQjixjpDV/G5K5XtF3ESFtwkvGlAKe4M1Cbg33hemVuArJABEU74HdfnEm/umv2f+Cw==\n"
		"Sig: k1:2f6OM2gbBf0pjpH0a5QsQjixjpDV/G5K5XtF3ESFtwkvGlAKe4M1Cbg33hemVuArJABEU74HdfnEm/umv2f+Cw==\n"
		"CA: \n";
	const char *want =
		"StorePath: /nix/store/0s21qa6n7vnv1j466wvhp9rcy09wkkfb-withref\n"
		"URL: https://example.org/x.nar\n"
		"Compression: bzip2\n"
		"NarHash: sha256:0qsbgvpjfzlyvf7pwkfcnxgzs38ym7h5xcg97rx4nnxbsk35cvlv\n"
		"NarSize: 168\n"
		"References: cp8kfaxd9dvmf3djp06a9sr0xrvi06mz-tree zn41hrkbfy11y6gi3b1lv5x7kzy0iplh-b\n"
		"Sig: k0:2f6OM2gbBf0pjpH0a5QsQjixjpDV/G5K5XtF3ESFtwkvGlAKe4M1Cbg33hemVuArJABEU74HdfnEm/umv2f+Cw==\n"
		"Sig: k1:2f6OM2gbBf0pjpH0a5QsQjixjpDV/G5K5XtF3ESFtwkvGlAKe4M1Cbg33hemVuArJABEU74HdfnEm/umv2f+Cw==\n";
	struct casfs_narinfo ni;
	struct casfs_error err = { 0 };
	int r = parse_str(in, &ni, &err);
	if (r < 0)
		FAILF("parse: %s", casfs_error_message(&err, r));
	CHECK_EQ_INT(r, 0);
	CHECK_EQ_INT(ni.n_references, 2);
	CHECK_EQ_INT(ni.n_sigs, 2);
	CHECK(!ni.has_deriver && !ni.has_file_hash && !ni.has_file_size);
	CHECK(ni.system == NULL && ni.ca == NULL);
	/* the hex hash is the nixbase32 one in `want` (converted by a few lines
	 * of Python, not by casfs) */
	uint8_t hex[32];
	CHECK_EQ_INT(casfs_hex_decode("9b6e56c6d4ab5b4b7a3ee9b15ee0a91e0dfd5fb7cc4d7e8fdb9e7e27ef7e4b63",
				      64, hex, 32),
		     32);
	CHECK_EQ_MEM(ni.nar_sha256, hex, 32);
	struct casfs_buf out = CASFS_BUF_INIT;
	CHECK_EQ_INT(casfs_narinfo_render(&ni, &out), 0);
	CHECK_EQ_INT(casfs_buf_append_byte(&out, 0), 0);
	CHECK_EQ_STR((const char *)out.data, want);

	/* the renderer sorts whatever order the struct holds */
	struct casfs_store_path t = ni.references[0];
	ni.references[0] = ni.references[1];
	ni.references[1] = t;
	struct casfs_narinfo_sig st = ni.sigs[0];
	ni.sigs[0] = ni.sigs[1];
	ni.sigs[1] = st;
	out.len = 0;
	CHECK_EQ_INT(casfs_narinfo_render(&ni, &out), 0);
	CHECK_EQ_INT(casfs_buf_append_byte(&out, 0), 0);
	CHECK_EQ_STR((const char *)out.data, want);
	casfs_buf_release(&out);
	casfs_narinfo_release(&ni);

	/* SRI NarHash reads the same */
	char nh[CASFS_SHA256_SRI_STR_LEN + 16];
	char sri[CASFS_SHA256_SRI_STR_LEN + 1];
	casfs_sha256_format_sri(hex, sri);
	snprintf(nh, sizeof(nh), "NarHash: %s\n", sri);
	char *s2 = replace_line(in, "NarHash:", nh);
	r = parse_str(s2, &ni, NULL);
	free(s2);
	CHECK_EQ_INT(r, 0);
	CHECK_EQ_MEM(ni.nar_sha256, hex, 32);
	casfs_narinfo_release(&ni);
}

TEST(missing_required_fields)
{
	static const char *fields[] = { "StorePath", "URL", "NarHash", "NarSize" };
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
		char prefix[32];
		snprintf(prefix, sizeof(prefix), "%s:", fields[i]);
		char *s = replace_line(RESEARCH_WITHREF, prefix, "");
		int r = expect_fail_str(s, -EBADMSG, fields[i]);
		free(s);
		if (r < 0)
			FAILF("without %s", fields[i]);
		CHECK(r == 0);
	}
	/* an empty URL counts as none */
	char *s = replace_line(RESEARCH_WITHREF, "URL:", "URL: \n");
	int r = expect_fail_str(s, -EBADMSG, "URL");
	free(s);
	CHECK(r == 0);
	CHECK(expect_fail_str("", -EBADMSG, "StorePath") == 0);
}

TEST(line_syntax)
{
	char *s = replace_line(RESEARCH_WITHREF, "NarSize:", "NarSize:168\n");
	int r = expect_fail_str(s, -EBADMSG, "line 7");
	free(s);
	CHECK(r == 0);
	s = replace_line(RESEARCH_WITHREF, "NarSize:", "NarSize 168\n");
	r = expect_fail_str(s, -EBADMSG, "no ':'");
	free(s);
	CHECK(r == 0);
	s = replace_line(RESEARCH_WITHREF, "NarSize:", ": 168\n");
	r = expect_fail_str(s, -EBADMSG, "empty name");
	free(s);
	CHECK(r == 0);
	s = replace_line(RESEARCH_WITHREF, "NarSize:", "NarSize:\n");
	r = expect_fail_str(s, -EBADMSG, "NarSize");
	free(s);
	CHECK(r == 0);
	/* the last line must end in a newline */
	CHECK(expect_fail(RESEARCH_WITHREF, strlen(RESEARCH_WITHREF) - 1, -EBADMSG,
			  "no final newline") == 0);
	/* a NUL byte */
	char buf[sizeof(RESEARCH_WITHREF)];
	memcpy(buf, RESEARCH_WITHREF, sizeof(buf));
	buf[100] = 0;
	CHECK(expect_fail(buf, sizeof(buf) - 1, -EBADMSG, "NUL") == 0);
	/* a bad store path, reference, deriver, CA */
	s = replace_line(RESEARCH_WITHREF, "StorePath:", "StorePath: /usr/store/0s21qa6n7vnv1j466wvhp9rcy09wkkfb-withref\n");
	r = expect_fail_str(s, -EBADMSG, "StorePath");
	free(s);
	CHECK(r == 0);
	s = replace_line(RESEARCH_WITHREF, "References:", "References: cp8kfaxd9dvmf3djp06a9sr0xrvi06mz-tree /nix/store/cp8kfaxd9dvmf3djp06a9sr0xrvi06mz-tree\n");
	r = expect_fail_str(s, -EBADMSG, "reference 2");
	free(s);
	CHECK(r == 0);
	s = replace_line(RESEARCH_WITHREF, "Deriver:", "Deriver: e-withref.drv\n");
	r = expect_fail_str(s, -EBADMSG, "Deriver");
	free(s);
	CHECK(r == 0);
	s = replace_line(RESEARCH_WITHREF, "Deriver:", "CA: sha256:abc\n");
	r = expect_fail_str(s, -EBADMSG, "CA");
	free(s);
	CHECK(r == 0);
	s = replace_line(RESEARCH_WITHREF, "Sig:", "Sig: casfs-test-1:2f6OM2gbBf0pjpH0a5QsQjixjpDV\n");
	r = expect_fail_str(s, -EBADMSG, "Sig");
	free(s);
	CHECK(r == 0);
	s = replace_line(RESEARCH_WITHREF, "Sig:", "Sig: 2f6OM2gbBf0pjpH0a5QsQjixjpDV/G5K5XtF3ESFtwkvGlAKe4M1Cbg33hemVuArJABEU74HdfnEm/umv2f+Cw==\n");
	r = expect_fail_str(s, -EBADMSG, "Sig");
	free(s);
	CHECK(r == 0);
}

TEST(bad_hashes)
{
	static const char *bad[] = {
		"NarHash: sha256:024vmjsmlv843jr0y8wyg4l49lw0qfb3lm62ij0br0p62kn4vn8\n",  /* 51 */
		"NarHash: sha256:024vmjsmlv843jr0y8wyg4l49lw0qfb3lm62ij0br0p62kn4vn8ke\n", /* 53 */
		"NarHash: sha256:e24vmjsmlv843jr0y8wyg4l49lw0qfb3lm62ij0br0p62kn4vn8k\n",  /* 'e' */
		"NarHash: sha512:024vmjsmlv843jr0y8wyg4l49lw0qfb3lm62ij0br0p62kn4vn8k\n",
		"NarHash: 024vmjsmlv843jr0y8wyg4l49lw0qfb3lm62ij0br0p62kn4vn8k\n",
		"NarHash: sha256:9b6e56c6d4ab5b4b7a3ee9b15ee0a91e0dfd5fb7cc4d7e8fdb9e7e27ef7e4b6g\n",
		"NarHash: sha256-9b6e56c6d4ab5b4b7a3ee9b15ee0a91e0dfd5fb7cc4d7e8fdb9e7e27ef7e4b63\n",
		"NarHash: \n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *s = replace_line(RESEARCH_WITHREF, "NarHash:", bad[i]);
		int r = expect_fail_str(s, -EBADMSG, "NarHash");
		free(s);
		if (r < 0)
			FAILF("accepted %s", bad[i]);
		CHECK(r == 0);
	}
	char *s = replace_line(RESEARCH_WITHREF, "FileHash:", "FileHash: sha256:xyz\n");
	int r = expect_fail_str(s, -EBADMSG, "FileHash");
	free(s);
	CHECK(r == 0);
	/* base16 is accepted and renders as nixbase32 */
	uint8_t d[32];
	char hex[65], line[100];
	CHECK_EQ_INT(casfs_nixbase32_decode("024vmjsmlv843jr0y8wyg4l49lw0qfb3lm62ij0br0p62kn4vn8k", 52,
					    d, 32),
		     32);
	casfs_hex_encode(d, 32, hex);
	snprintf(line, sizeof(line), "NarHash: sha256:%s\n", hex);
	s = replace_line(RESEARCH_WITHREF, "NarHash:", line);
	struct casfs_narinfo ni;
	r = parse_str(s, &ni, NULL);
	free(s);
	CHECK_EQ_INT(r, 0);
	struct casfs_buf out = CASFS_BUF_INIT;
	r = casfs_narinfo_render(&ni, &out);
	int same = r == 0 && out.len == strlen(RESEARCH_WITHREF) &&
		   memcmp(out.data, RESEARCH_WITHREF, out.len) == 0;
	casfs_buf_release(&out);
	casfs_narinfo_release(&ni);
	CHECK(same);
}

TEST(sizes)
{
	char *s = replace_line(RESEARCH_WITHREF, "NarSize:", "NarSize: 0\n");
	int r = expect_fail_str(s, -EBADMSG, "NarSize is 0");
	free(s);
	CHECK(r == 0);
	static const char *bad[] = { "NarSize: -1\n", "NarSize: 18446744073709551616\n",
				     "NarSize: 1x\n", "NarSize:  168\n", "NarSize: 168 \n" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		s = replace_line(RESEARCH_WITHREF, "NarSize:", bad[i]);
		r = expect_fail_str(s, -EBADMSG, "NarSize");
		free(s);
		if (r < 0)
			FAILF("accepted %s", bad[i]);
		CHECK(r == 0);
	}
	s = replace_line(RESEARCH_WITHREF, "NarSize:", "NarSize: 18446744073709551615\n");
	struct casfs_narinfo ni;
	r = parse_str(s, &ni, NULL);
	free(s);
	CHECK_EQ_INT(r, 0);
	CHECK(ni.nar_size == UINT64_MAX);
	casfs_narinfo_release(&ni);
	s = replace_line(RESEARCH_WITHREF, "FileSize:", "FileSize: big\n");
	r = expect_fail_str(s, -EBADMSG, "FileSize");
	free(s);
	CHECK(r == 0);
}

TEST(duplicates)
{
	static const char *dups[] = {
		"References: \n", "StorePath: /nix/store/0s21qa6n7vnv1j466wvhp9rcy09wkkfb-withref\n",
		"NarHash: sha256:024vmjsmlv843jr0y8wyg4l49lw0qfb3lm62ij0br0p62kn4vn8k\n",
		"NarSize: 168\n", "URL: nar/x.nar\n", "CA: text:sha256:abc\n",
		"Deriver: zn41hrkbfy11y6gi3b1lv5x7kzy0iplh-withref.drv\n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(dups); i++) {
		size_t n = strlen(RESEARCH_WITHREF) + strlen(dups[i]) + 1;
		char *s = malloc(n);
		snprintf(s, n, "%s%s", RESEARCH_WITHREF, dups[i]);
		/* CA appears once in the base text only when added, so add it twice */
		char *s2 = NULL;
		if (strncmp(dups[i], "CA:", 3) == 0) {
			size_t n2 = n + strlen(dups[i]);
			s2 = malloc(n2);
			snprintf(s2, n2, "%s%s", s, dups[i]);
		}
		int r = expect_fail_str(s2 ? s2 : s, -EBADMSG, "given twice");
		free(s);
		free(s2);
		if (r < 0)
			FAILF("accepted a second %s", dups[i]);
		CHECK(r == 0);
	}
}

TEST(bounds)
{
	/* over 1 MiB: -EOVERFLOW before anything is read */
	size_t n = CASFS_NARINFO_MAX_SIZE + 1;
	char *big = malloc(n);
	CHECK(big != NULL);
	memset(big, 'a', n);
	memcpy(big, RESEARCH_WITHREF, strlen(RESEARCH_WITHREF));
	int r = expect_fail(big, n, -EOVERFLOW, "limit");
	free(big);
	CHECK(r == 0);
	/* exactly 1 MiB of valid text (a long unknown field) parses */
	n = CASFS_NARINFO_MAX_SIZE;
	big = malloc(n);
	size_t base = strlen(RESEARCH_WITHREF);
	memcpy(big, RESEARCH_WITHREF, base);
	memcpy(big + base, "X: ", 3);
	memset(big + base + 3, 'b', n - base - 4);
	big[n - 1] = '\n';
	struct casfs_narinfo ni;
	r = casfs_narinfo_parse(big, n, &ni, NULL);
	free(big);
	CHECK_EQ_INT(r, 0);
	casfs_narinfo_release(&ni);

	/* more signatures than the bound */
	struct casfs_buf b = CASFS_BUF_INIT;
	CHECK_EQ_INT(casfs_buf_append(&b, RESEARCH_WITHREF, strlen(RESEARCH_WITHREF)), 0);
	for (int i = 0; i < CASFS_NARINFO_MAX_SIGS; i++) {
		char line[160];
		snprintf(line, sizeof(line),
			 "Sig: k%d:2f6OM2gbBf0pjpH0a5QsQjixjpDV/G5K5XtF3ESFtwkvGlAKe4M1Cbg33hemVuArJABE"
			 "U74HdfnEm/umv2f+Cw==\n",
			 i);
		CHECK_EQ_INT(casfs_buf_append(&b, line, strlen(line)), 0);
	}
	r = expect_fail((const char *)b.data, b.len, -EOVERFLOW, "signatures");
	casfs_buf_release(&b);
	CHECK(r == 0);

	/* more references than the bound */
	char *s = replace_line(RESEARCH_WITHREF, "References:", "");
	CHECK_EQ_INT(casfs_buf_append(&b, s, strlen(s)), 0);
	free(s);
	CHECK_EQ_INT(casfs_buf_append(&b, "References:", 11), 0);
	for (int i = 0; i <= CASFS_NARINFO_MAX_REFERENCES; i++)
		CHECK_EQ_INT(casfs_buf_append(&b, " cp8kfaxd9dvmf3djp06a9sr0xrvi06mz-tree", 38), 0);
	CHECK_EQ_INT(casfs_buf_append_byte(&b, '\n'), 0);
	r = expect_fail((const char *)b.data, b.len, -EOVERFLOW, "references");
	casfs_buf_release(&b);
	CHECK(r == 0);
}

TEST(fingerprints)
{
	CHECK(fingerprint_is(RESEARCH_WITHREF, RESEARCH_WITHREF_FP) == 0);
	CHECK(fingerprint_is(PINNED_TREE, PINNED_TREE_FP) == 0);
	/* several references: full paths, sorted, comma-separated */
	char *s = replace_line(RESEARCH_WITHREF, "References:",
			       "References: zn41hrkbfy11y6gi3b1lv5x7kzy0iplh-b "
			       "cp8kfaxd9dvmf3djp06a9sr0xrvi06mz-tree\n");
	int r = fingerprint_is(s, "1;/nix/store/0s21qa6n7vnv1j466wvhp9rcy09wkkfb-withref;"
				  "sha256:024vmjsmlv843jr0y8wyg4l49lw0qfb3lm62ij0br0p62kn4vn8k;168;"
				  "/nix/store/cp8kfaxd9dvmf3djp06a9sr0xrvi06mz-tree,"
				  "/nix/store/zn41hrkbfy11y6gi3b1lv5x7kzy0iplh-b");
	free(s);
	CHECK(r == 0);
	/* NarSize 0 has no fingerprint */
	struct casfs_narinfo ni;
	CHECK_EQ_INT(parse_str(RESEARCH_WITHREF, &ni, NULL), 0);
	ni.nar_size = 0;
	struct casfs_buf fp = CASFS_BUF_INIT;
	r = casfs_narinfo_fingerprint(&ni, &fp);
	casfs_buf_release(&fp);
	casfs_narinfo_release(&ni);
	CHECK_EQ_INT(r, -EINVAL);
}

/* --- keys and signatures --- */

TEST(pinned_nix_signatures)
{
	/* Nix's own signatures verify under Nix's public key */
	CHECK_EQ_INT(verify_text(PINNED_TREE, PINNED_PUB), 1);
	CHECK_EQ_INT(verify_text(PINNED_WITHREF, PINNED_PUB), 1);
	/* the secret key Nix made gives that public key and re-signs to the same Sig */
	struct casfs_nixkey_secret sk;
	struct casfs_nixkey_public pk;
	struct casfs_error err = { 0 };
	CHECK_EQ_INT(casfs_nixkey_secret_parse(PINNED_SEC "\n", strlen(PINNED_SEC) + 1, &sk, &err), 0);
	casfs_nixkey_secret_to_public(&sk, &pk);
	char s[CASFS_NIXKEY_SECRET_STR_MAX];
	casfs_nixkey_public_format(&pk, s);
	CHECK_EQ_STR(s, PINNED_PUB);
	casfs_nixkey_secret_format(&sk, s);
	CHECK_EQ_STR(s, PINNED_SEC);
	const char *texts[] = { PINNED_TREE, PINNED_WITHREF };
	for (size_t i = 0; i < 2; i++) {
		struct casfs_narinfo ni;
		struct casfs_narinfo_sig sig;
		CHECK_EQ_INT(parse_str(texts[i], &ni, NULL), 0);
		int r = casfs_nixkey_sign_narinfo(&sk, &ni, &sig, &err);
		int same = r == 0 && ni.n_sigs == 1 && strcmp(sig.name, ni.sigs[0].name) == 0 &&
			   memcmp(sig.sig, ni.sigs[0].sig, 64) == 0;
		casfs_narinfo_release(&ni);
		CHECK(same);
	}
	casfs_nixkey_secret_clear(&sk);
}

TEST(sign_verify_roundtrip)
{
	struct casfs_nixkey_secret sk, sk2;
	struct casfs_nixkey_public pk;
	struct casfs_error err = { 0 };
	CHECK_EQ_INT(casfs_nixkey_secret_generate("test-key-1", &sk, &err), 0);
	casfs_nixkey_secret_to_public(&sk, &pk);
	/* formatting round trips */
	char ss[CASFS_NIXKEY_SECRET_STR_MAX], ps[CASFS_NIXKEY_PUBLIC_STR_MAX];
	size_t sn = casfs_nixkey_secret_format(&sk, ss);
	CHECK_EQ_INT(sn, strlen("test-key-1:") + 88);
	CHECK_EQ_INT(casfs_nixkey_secret_parse(ss, sn, &sk2, &err), 0);
	CHECK_EQ_MEM(&sk, &sk2, sizeof(sk));
	casfs_nixkey_public_format(&pk, ps);

	struct casfs_narinfo ni;
	CHECK_EQ_INT(parse_str(RESEARCH_WITHREF, &ni, NULL), 0);
	struct casfs_narinfo_sig sig;
	CHECK_EQ_INT(casfs_nixkey_sign_narinfo(&sk, &ni, &sig, &err), 0);
	CHECK_EQ_STR(sig.name, "test-key-1");
	/* deterministic */
	struct casfs_narinfo_sig sig2;
	CHECK_EQ_INT(casfs_nixkey_sign_narinfo(&sk, &ni, &sig2, &err), 0);
	CHECK_EQ_MEM(sig.sig, sig2.sig, 64);
	/* replace the research Sig with ours, render, re-parse, verify */
	ni.sigs[0] = sig;
	struct casfs_buf out = CASFS_BUF_INIT;
	CHECK_EQ_INT(casfs_narinfo_render(&ni, &out), 0);
	CHECK_EQ_INT(casfs_buf_append_byte(&out, 0), 0);
	casfs_narinfo_release(&ni);
	char *text = (char *)casfs_buf_steal(&out, &sn);
	char list[2 * CASFS_NIXKEY_PUBLIC_STR_MAX + 8];
	snprintf(list, sizeof(list), " %s\n%s ", PINNED_PUB, ps);
	int good = verify_text(text, list);
	int only_other = verify_text(text, PINNED_PUB);
	/* one bit of the signature flipped */
	char *p = strstr(text, "Sig: test-key-1:") + 16;
	*p = *p == 'A' ? 'B' : 'A';
	int flipped = verify_text(text, list);
	free(text);
	casfs_nixkey_secret_clear(&sk);
	casfs_nixkey_secret_clear(&sk2);
	CHECK_EQ_INT(good, 1);
	CHECK_EQ_INT(only_other, 0);
	CHECK_EQ_INT(flipped, 0);
}

/* Sign RESEARCH_WITHREF with a fresh key "signer-1", render it with that
 * Sig, replace the line starting with `tamper_prefix` (if not NULL) by
 * `tamper_line`, and count good signatures with the public key trusted
 * under `trust_name` (NULL: its own name). */
static int sign_then_verify(const char *tamper_prefix, const char *tamper_line, const char *trust_name)
{
	struct casfs_nixkey_secret sk;
	struct casfs_nixkey_public pk;
	if (casfs_nixkey_secret_generate("signer-1", &sk, NULL) < 0)
		return -100;
	casfs_nixkey_secret_to_public(&sk, &pk);
	if (trust_name)
		snprintf(pk.name, sizeof(pk.name), "%s", trust_name);
	struct casfs_narinfo ni;
	struct casfs_narinfo_sig sig;
	if (parse_str(RESEARCH_WITHREF, &ni, NULL) < 0 ||
	    casfs_nixkey_sign_narinfo(&sk, &ni, &sig, NULL) < 0)
		return -101;
	casfs_nixkey_secret_clear(&sk);
	ni.sigs[0] = sig;
	struct casfs_buf out = CASFS_BUF_INIT;
	if (casfs_narinfo_render(&ni, &out) < 0 || casfs_buf_append_byte(&out, 0) < 0)
		return -102;
	casfs_narinfo_release(&ni);
	char *text = (char *)out.data;
	if (tamper_prefix) {
		char *t = replace_line(text, tamper_prefix, tamper_line);
		casfs_buf_release(&out);
		text = t;
	}
	struct casfs_nixkey_list l = { 0 };
	int r = casfs_nixkey_list_add(&l, &pk);
	if (r == 0)
		r = parse_str(text, &ni, NULL);
	if (r == 0) {
		r = casfs_nixkey_verify_narinfo(&l, &ni, NULL);
		casfs_narinfo_release(&ni);
	}
	casfs_nixkey_list_release(&l);
	free(text);
	return r;
}

TEST(tampering_breaks_signatures)
{
	CHECK_EQ_INT(sign_then_verify(NULL, NULL, NULL), 1);
	CHECK_EQ_INT(sign_then_verify("NarSize:", "NarSize: 169\n", NULL), 0);
	CHECK_EQ_INT(sign_then_verify("References:", "References: \n", NULL), 0);
	CHECK_EQ_INT(sign_then_verify("References:",
				      "References: cp8kfaxd9dvmf3djp06a9sr0xrvi06mz-tree "
				      "zn41hrkbfy11y6gi3b1lv5x7kzy0iplh-b\n",
				      NULL),
		     0);
	CHECK_EQ_INT(sign_then_verify("NarHash:",
				      "NarHash: sha256:124vmjsmlv843jr0y8wyg4l49lw0qfb3lm62ij0br0p62kn4vn8k\n",
				      NULL),
		     0);
	CHECK_EQ_INT(sign_then_verify("StorePath:",
				      "StorePath: /nix/store/0s21qa6n7vnv1j466wvhp9rcy09wkkfb-withreg\n",
				      NULL),
		     0);
	/* URL, Compression and FileHash are not signed */
	CHECK_EQ_INT(sign_then_verify("URL:", "URL: https://elsewhere.example/x.nar\n", NULL), 1);
	CHECK_EQ_INT(sign_then_verify("Compression:", "Compression: zstd\n", NULL), 1);
}

TEST(untrusted_key_name)
{
	/* the right key bytes under another name do not count */
	CHECK_EQ_INT(sign_then_verify(NULL, NULL, "signer-2"), 0);
	/* the right name with other key bytes does not count either */
	CHECK_EQ_INT(verify_text(RESEARCH_WITHREF, PINNED_PUB), 0);
	/* an empty trust list */
	CHECK_EQ_INT(verify_text(PINNED_TREE, ""), 0);
}

TEST(key_errors)
{
	struct casfs_nixkey_secret sk;
	struct casfs_nixkey_public pk;
	struct casfs_error err = { 0 };
	/* the embedded public key must match the seed */
	char bad[] = PINNED_SEC;
	char *p = bad + strlen(bad) - 4; /* in the public half */
	*p = *p == 'A' ? 'B' : 'A';
	int r = casfs_nixkey_secret_parse(bad, strlen(bad), &sk, &err);
	CHECK_EQ_INT(r, -EBADMSG);
	CHECK(strstr(casfs_error_message(&err, r), "secret key 'casfs-test-1' is inconsistent") != NULL);

	static const struct {
		const char *text, *needle;
	} cases[] = {
		{ "casfs-test-1", "no ':'" },
		{ ":KiLhyhL5ppl9jn90TnYMinYybUHEeUabhfOdtC1W7V8=", "name" },
		{ "a b:KiLhyhL5ppl9jn90TnYMinYybUHEeUabhfOdtC1W7V8=", "name" },
		{ "casfs-test-1:KiLhyhL5ppl9jn90TnYMinYybUHEeUabhfOdtC1W7V8", "base64 of 64" },
		{ PINNED_PUB, "base64 of 64" }, /* a public key is no secret key */
		{ "casfs-test-1:!!!!hL5ppl9jn90TnYMinYybUHEeUabhfOdtC1W7V8=", "base64" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		memset(&err, 0, sizeof(err));
		r = casfs_nixkey_secret_parse(cases[i].text, strlen(cases[i].text), &sk, &err);
		if (r != -EBADMSG || !strstr(casfs_error_message(&err, r), cases[i].needle))
			FAILF("secret '%s': %d %s", cases[i].text, r, casfs_error_message(&err, r));
		CHECK_EQ_INT(r, -EBADMSG);
	}
	memset(&err, 0, sizeof(err));
	r = casfs_nixkey_public_parse(PINNED_SEC, strlen(PINNED_SEC), &pk, &err);
	CHECK_EQ_INT(r, -EBADMSG);
	CHECK(strstr(casfs_error_message(&err, r), "public key 'casfs-test-1' is not base64 of 32") != NULL);
	/* public key files may end in a newline */
	CHECK_EQ_INT(casfs_nixkey_public_parse(PINNED_PUB "\n", strlen(PINNED_PUB) + 1, &pk, &err), 0);
	CHECK_EQ_STR(pk.name, "casfs-test-1");
	/* a list names the bad key */
	struct casfs_nixkey_list l = { 0 };
	const char *list = PINNED_PUB " other:xyz";
	memset(&err, 0, sizeof(err));
	r = casfs_nixkey_list_parse(list, strlen(list), &l, &err);
	CHECK_EQ_INT(r, -EBADMSG);
	CHECK(l.keys == NULL);
	CHECK(strstr(casfs_error_message(&err, r), "key 2") != NULL);
	list = "\t" PINNED_PUB "  cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=\n";
	CHECK_EQ_INT(casfs_nixkey_list_parse(list, strlen(list), &l, &err), 0);
	CHECK_EQ_INT(l.n, 2);
	CHECK_EQ_STR(l.keys[1].name, "cache.nixos.org-1");
	casfs_nixkey_list_release(&l);
	CHECK_EQ_INT(casfs_nixkey_secret_generate("bad:name", &sk, &err), -EINVAL);
}

/* --- against real Nix (tests/sh/test-narinfo-oracle.sh) --- */

static char *read_all(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct casfs_buf b = CASFS_BUF_INIT;
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (casfs_buf_append(&b, chunk, n) < 0)
			break;
	fclose(f);
	casfs_buf_append_byte(&b, 0);
	char *s = (char *)casfs_buf_steal(&b, ret_len);
	if (s)
		(*ret_len)--;
	return s;
}

static int oracle_one(const char *path, const struct casfs_nixkey_list *trusted,
		      const struct casfs_nixkey_secret *sk)
{
	size_t len;
	_cleanup_free_ char *text = read_all(path, &len);
	if (!text) {
		printf("  %s: cannot read\n", path);
		return -1;
	}
	if (roundtrip(text, len) < 0) {
		printf("  %s: no byte-identical round trip\n", path);
		return -1;
	}
	struct casfs_narinfo ni;
	struct casfs_error err = { 0 };
	int r = casfs_narinfo_parse(text, len, &ni, &err);
	if (r < 0)
		return -1;
	int good = casfs_nixkey_verify_narinfo(trusted, &ni, &err);
	struct casfs_narinfo_sig sig;
	r = casfs_nixkey_sign_narinfo(sk, &ni, &sig, &err);
	int same = 0;
	for (size_t i = 0; r == 0 && i < ni.n_sigs; i++)
		if (strcmp(ni.sigs[i].name, sig.name) == 0 && memcmp(ni.sigs[i].sig, sig.sig, 64) == 0)
			same = 1;
	casfs_narinfo_release(&ni);
	if (good != 1 || !same) {
		printf("  %s: %d good signatures (want 1), re-signed Sig %s Nix's\n", path, good,
		       same ? "equals" : "differs from");
		return -1;
	}
	printf("  %s: round trip, Sig verified and reproduced\n", path);
	return 0;
}

TEST(oracle)
{
	const char *dir = getenv("CASFS_NARINFO_ORACLE_DIR");
	if (!dir || !*dir) {
		printf("SKIP test-narinfo:oracle: CASFS_NARINFO_ORACLE_DIR is not set "
		       "(tests/sh/test-narinfo-oracle.sh sets it)\n");
		return;
	}
	char path[4096];
	size_t len;
	struct casfs_error err = { 0 };
	snprintf(path, sizeof(path), "%s/key.pub", dir);
	_cleanup_free_ char *pub = read_all(path, &len);
	CHECK(pub != NULL);
	struct casfs_nixkey_list trusted = { 0 };
	int r = casfs_nixkey_list_parse(pub, len, &trusted, &err);
	if (r < 0)
		FAILF("%s: %s", path, casfs_error_message(&err, r));
	CHECK_EQ_INT(r, 0);
	snprintf(path, sizeof(path), "%s/key.sec", dir);
	_cleanup_free_ char *sec = read_all(path, &len);
	struct casfs_nixkey_secret sk;
	r = sec ? casfs_nixkey_secret_parse(sec, len, &sk, &err) : -ENOENT;
	if (r < 0) {
		casfs_nixkey_list_release(&trusted);
		FAILF("%s: %s", path, casfs_error_message(&err, r));
		return;
	}
	DIR *d = opendir(dir);
	int files = 0, bad = 0;
	struct dirent *de;
	while (d && (de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n < 8 || strcmp(de->d_name + n - 8, ".narinfo") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		files++;
		bad += oracle_one(path, &trusted, &sk) < 0;
	}
	if (d)
		closedir(d);
	casfs_nixkey_secret_clear(&sk);
	casfs_nixkey_list_release(&trusted);
	if (files == 0)
		FAILF("no .narinfo files in %s", dir);
	CHECK(files > 0);
	CHECK_EQ_INT(bad, 0);
}
