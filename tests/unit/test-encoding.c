/* src/basic/encoding.c, src/basic/error.c and src/digest/digest.c.
 *
 * Oracles: RFC 4648 section 10 (base64), Nix 2.8 itself
 * (`nix hash to-base32`, `nix hash to-sri`, `nix-hash --to-base32`, run on
 * the values below), the BLAKE3 team's published vectors (test_vectors.json:
 * input i % 251 of length n) cross-checked with `b3sum`, FIPS 180-2 for
 * SHA-256("abc"), and `sha256sum`. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "basic/encoding.h"
#include "basic/error.h"
#include "basic/util.h"
#include "digest/digest.h"
#include "test.h"

static void unhex(const char *s, uint8_t *out, size_t n)
{
	if (casfs_hex_decode(s, strlen(s), out, n) != (ssize_t)n)
		abort();
}

TEST(hex)
{
	uint8_t in[] = { 0x00, 0x01, 0xab, 0xff, 0x7f };
	char out[CASFS_HEX_LEN(5) + 1];
	CHECK_EQ_INT(casfs_hex_encode(in, 5, out), 10);
	CHECK_EQ_STR(out, "0001abff7f");
	CHECK_EQ_INT(casfs_hex_encode(in, 0, out), 0);
	CHECK_EQ_STR(out, "");

	uint8_t back[8];
	CHECK_EQ_INT(casfs_hex_decode("0001ABff7F", 10, back, sizeof(back)), 5);
	CHECK_EQ_MEM(back, in, 5);
	CHECK_EQ_INT(casfs_hex_decode("", 0, back, 0), 0);
	CHECK_EQ_INT(casfs_hex_decode("abc", 3, back, sizeof(back)), -EBADMSG);
	CHECK_EQ_INT(casfs_hex_decode("0g", 2, back, sizeof(back)), -EBADMSG);
	CHECK_EQ_INT(casfs_hex_decode("g0", 2, back, sizeof(back)), -EBADMSG);
	CHECK_EQ_INT(casfs_hex_decode("0 ", 2, back, sizeof(back)), -EBADMSG);
	CHECK_EQ_INT(casfs_hex_decode("0102", 4, back, 1), -ENOBUFS);
}

TEST(base64_rfc4648)
{
	static const char *vec[][2] = {
		{ "", "" },          { "f", "Zg==" },         { "fo", "Zm8=" },
		{ "foo", "Zm9v" },   { "foob", "Zm9vYg==" },  { "fooba", "Zm9vYmE=" },
		{ "foobar", "Zm9vYmFy" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(vec); i++) {
		size_t n = strlen(vec[i][0]);
		char out[16];
		CHECK_EQ_INT(casfs_base64_encode((const uint8_t *)vec[i][0], n, out),
			     CASFS_BASE64_LEN(n));
		CHECK_EQ_STR(out, vec[i][1]);
		uint8_t back[8];
		CHECK_EQ_INT(casfs_base64_decode(out, strlen(out), back, sizeof(back)), n);
		CHECK(memcmp(back, vec[i][0], n) == 0);
	}
	/* every alphabet character, both non-alphanumerics */
	uint8_t all[] = { 0xfb, 0xff, 0xbf };
	char out[8];
	casfs_base64_encode(all, 3, out);
	CHECK_EQ_STR(out, "+/+/");
}

TEST(base64_rejects)
{
	uint8_t b[16];
	CHECK_EQ_INT(casfs_base64_decode("Zg=", 3, b, sizeof(b)), -EBADMSG);    /* length */
	CHECK_EQ_INT(casfs_base64_decode("Zg", 2, b, sizeof(b)), -EBADMSG);     /* unpadded */
	CHECK_EQ_INT(casfs_base64_decode("Z===", 4, b, sizeof(b)), -EBADMSG);   /* 3 pads */
	CHECK_EQ_INT(casfs_base64_decode("Zg=a", 4, b, sizeof(b)), -EBADMSG);   /* pad inside */
	CHECK_EQ_INT(casfs_base64_decode("Zg==Zg==", 8, b, sizeof(b)), -EBADMSG); /* pad mid */
	CHECK_EQ_INT(casfs_base64_decode("Zh==", 4, b, sizeof(b)), -EBADMSG);   /* stray bits */
	CHECK_EQ_INT(casfs_base64_decode("Zm9=", 4, b, sizeof(b)), -EBADMSG);   /* stray bits */
	CHECK_EQ_INT(casfs_base64_decode("Zm9v!A==", 8, b, sizeof(b)), -EBADMSG);
	CHECK_EQ_INT(casfs_base64_decode("Zm-_", 4, b, sizeof(b)), -EBADMSG);   /* url alphabet */
	CHECK_EQ_INT(casfs_base64_decode("Zm\0v", 4, b, sizeof(b)), -EBADMSG);
	CHECK_EQ_INT(casfs_base64_decode("Zm9vYmFy", 8, b, 5), -ENOBUFS);
	CHECK_EQ_INT(casfs_base64_decode("Zm9vYg==", 8, b, 4), 4);
}

/* `nix hash to-base32 --type sha256|sha1 HEX`, `nix-hash --type md5
 * --to-base32 HEX` (Nix 2.8.0). */
static const struct {
	const char *hex;
	const char *nb32;
} nix_vectors[] = {
	{ "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	  "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s" },
	{ "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	  "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73" },
	{ "0000000000000000000000000000000000000000000000000000000000000000",
	  "0000000000000000000000000000000000000000000000000000" },
	{ "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
	  "1zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz" },
	{ "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
	  "07qy3lf1n6hr30bic58l2c91240g1q6hq2qa1440f1h50h1h4080" },
	{ "a9993e364706816aba3e25717850c26c9cd0d89d", "kpcd173cq987hw957sx6m0868wv3x6d9" },
	{ "0102030405060708090a0b0c0d0e0f1011121314", "2h9i448h1w70s30b184hh1q60l2060h1" },
	{ "ffffffffffffffffffffffffffffffffffffffff", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz" },
	{ "900150983cd24fb0d6963f7d28e17f72", "3jgzhjhz9zjvbb0kyj7jc500ch" },
};

TEST(nixbase32_nix_vectors)
{
	for (size_t i = 0; i < ARRAY_SIZE(nix_vectors); i++) {
		uint8_t raw[32], back[32];
		size_t n = strlen(nix_vectors[i].hex) / 2;
		unhex(nix_vectors[i].hex, raw, n);
		char out[CASFS_NIXBASE32_LEN(32) + 1];
		CHECK_EQ_INT(casfs_nixbase32_encode(raw, n, out), CASFS_NIXBASE32_LEN(n));
		CHECK_EQ_STR(out, nix_vectors[i].nb32);
		CHECK_EQ_INT(casfs_nixbase32_decode(out, strlen(out), back, n), n);
		CHECK_EQ_MEM(back, raw, n);
	}
	CHECK_EQ_INT(CASFS_NIXBASE32_LEN(20), 32);
	CHECK_EQ_INT(CASFS_NIXBASE32_LEN(32), 52);
	CHECK_EQ_INT(CASFS_NIXBASE32_LEN(16), 26);
	CHECK_EQ_INT(CASFS_NIXBASE32_LEN(64), 103);
}

TEST(nixbase32_rejects)
{
	uint8_t b[32];
	const char *ok20 = "2h9i448h1w70s30b184hh1q60l2060h1";
	char s[64];
	/* e, o, t, u are not in the alphabet, nor are upper case letters */
	const char *bad_chars = "eotuA-_ .";
	for (const char *c = bad_chars; *c; c++) {
		strcpy(s, ok20);
		s[7] = *c;
		CHECK_EQ_INT(casfs_nixbase32_decode(s, 32, b, 20), -EBADMSG);
		CHECK(!casfs_nixbase32_is_char(*c));
	}
	for (const char *c = "0123456789abcdfghijklmnpqrsvwxyz"; *c; c++)
		CHECK(casfs_nixbase32_is_char(*c));
	CHECK(!casfs_nixbase32_is_char(0));
	/* wrong length */
	CHECK_EQ_INT(casfs_nixbase32_decode(ok20, 31, b, 20), -EBADMSG);
	CHECK_EQ_INT(casfs_nixbase32_decode(ok20, 32, b, 19), -EBADMSG);
	/* bits beyond 8n: 52 chars carry 260 bits for 256, so the first
	 * character is at most '1' (`nix-hash --to-base16` refuses 2zzz..);
	 * 26 chars carry 130 bits for md5's 128 */
	strcpy(s, "1zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz");
	CHECK_EQ_INT(casfs_nixbase32_decode(s, 52, b, 32), 32);
	s[0] = '2';
	CHECK_EQ_INT(casfs_nixbase32_decode(s, 52, b, 32), -EBADMSG);
	/* `nix-hash --type md5 --to-base16`: 3zzz.. is ff..7f, 7zzz.. is ff..ff,
	 * 8zzz.. is refused (digit 8 reaches bit 128) */
	uint8_t want[16];
	unhex("ffffffffffffffffffffffffffffff7f", want, 16);
	CHECK_EQ_INT(casfs_nixbase32_decode("3zzzzzzzzzzzzzzzzzzzzzzzzz", 26, b, 16), 16);
	CHECK_EQ_MEM(b, want, 16);
	want[15] = 0xff;
	CHECK_EQ_INT(casfs_nixbase32_decode("7zzzzzzzzzzzzzzzzzzzzzzzzz", 26, b, 16), 16);
	CHECK_EQ_MEM(b, want, 16);
	CHECK_EQ_INT(casfs_nixbase32_decode("8zzzzzzzzzzzzzzzzzzzzzzzzz", 26, b, 16), -EBADMSG);
}

/* BLAKE3 published vectors (input byte i is i % 251), first 32 bytes */
static const struct {
	size_t len;
	const char *hex;
} b3_vectors[] = {
	{ 0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262" },
	{ 1, "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213" },
	{ 1025, "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444" },
	/* b3sum of the same pattern, 100 KiB (many chunks, SIMD paths) */
	{ 102400, "bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085" },
};

TEST(blake3_vectors)
{
	static uint8_t input[102400];
	for (size_t i = 0; i < sizeof(input); i++)
		input[i] = (uint8_t)(i % 251);
	for (size_t v = 0; v < ARRAY_SIZE(b3_vectors); v++) {
		uint8_t want[32], got[32];
		unhex(b3_vectors[v].hex, want, 32);
		casfs_b3(input, b3_vectors[v].len, got);
		CHECK_EQ_MEM(got, want, 32);
		/* the same in uneven pieces */
		struct casfs_b3_hasher h;
		casfs_b3_init(&h);
		for (size_t off = 0, step = 1; off < b3_vectors[v].len; off += step, step = step * 3 + 1)
			casfs_b3_update(&h, input + off, MIN(step, b3_vectors[v].len - off));
		casfs_b3_final(&h, got);
		CHECK_EQ_MEM(got, want, 32);
	}
	uint8_t e[32];
	casfs_b3("", 0, e);
	CHECK_EQ_MEM(e, casfs_b3_empty, 32);
}

TEST(b3_format_parse)
{
	/* b3sum("abc") = 6437b3ac...; base64 by coreutils */
	uint8_t d[32], back[32];
	unhex("6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85", d, 32);
	uint8_t got[32];
	casfs_b3("abc", 3, got);
	CHECK_EQ_MEM(got, d, 32);
	char s[CASFS_B3_STR_LEN + 1];
	casfs_b3_format(d, s);
	CHECK_EQ_STR(s, "b3:ZDezrDhGUTP/tjt1JzqNtUjFWEZdedsD/TWcbNW9nYU=");
	CHECK_EQ_INT(strlen(s), CASFS_B3_STR_LEN);
	memset(back, 0, 32);
	CHECK_EQ_INT(casfs_b3_parse(s, back), 0);
	CHECK_EQ_MEM(back, d, 32);
	memset(back, 0, 32);
	CHECK_EQ_INT(casfs_b3_parse("6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85",
				    back), 0);
	CHECK_EQ_MEM(back, d, 32);
	CHECK_EQ_INT(casfs_b3_parse("b3:ZDezrDhGUTP/tjt1JzqNtUjFWEZdedsD/TWcbNW9nY=", back), -EBADMSG);
	CHECK_EQ_INT(casfs_b3_parse("b3:ZDezrDhGUTP/tjt1JzqNtUjFWEZdedsD/TWcbNW9nYU", back), -EBADMSG);
	CHECK_EQ_INT(casfs_b3_parse("b3:6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85",
				    back), -EBADMSG);
	CHECK_EQ_INT(casfs_b3_parse("ZDezrDhGUTP/tjt1JzqNtUjFWEZdedsD/TWcbNW9nYU=", back), -EBADMSG);
	CHECK_EQ_INT(casfs_b3_parse("", back), -EBADMSG);
	CHECK_EQ_INT(casfs_b3_parse("b3:", back), -EBADMSG);
}

TEST(sha256_vectors)
{
	uint8_t want[32], got[32];
	/* FIPS 180-2 appendix B.1 */
	unhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", want, 32);
	casfs_sha256("abc", 3, got);
	CHECK_EQ_MEM(got, want, 32);
	unhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", want, 32);
	casfs_sha256("", 0, got);
	CHECK_EQ_MEM(got, want, 32);

	/* streaming: sha256sum of the 100 KiB i % 251 pattern */
	static uint8_t input[102400];
	for (size_t i = 0; i < sizeof(input); i++)
		input[i] = (uint8_t)(i % 251);
	unhex("74588b7f0bcc354ac14d9cf199fa3a20c05f0c7293b9075b2f2e146e718de800", want, 32);
	struct casfs_sha256_hasher h = { 0 };
	CHECK(casfs_sha256_init(&h) == 0);
	for (size_t off = 0, step = 1; off < sizeof(input); off += step, step = step * 2 + 1)
		casfs_sha256_update(&h, input + off, MIN(step, sizeof(input) - off));
	casfs_sha256_update(&h, input, 0);
	casfs_sha256_final(&h, got);
	CHECK_EQ_MEM(got, want, 32);
	CHECK(h.ctx == NULL);
	casfs_sha256_release(&h); /* after final: a no-op */
	struct casfs_sha256_hasher z = { 0 };
	casfs_sha256_release(&z);
	CHECK(casfs_sha256_init(&h) == 0);
	casfs_sha256_release(&h); /* abandoned without a result */
}

TEST(sha256_format_parse)
{
	uint8_t d[32], back[32];
	unhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", d, 32);
	char nix[CASFS_SHA256_NIX_STR_LEN + 1], sri[CASFS_SHA256_SRI_STR_LEN + 1];
	casfs_sha256_format_nix(d, nix);
	/* `nix hash to-base32` / `nix hash to-sri` of the same */
	CHECK_EQ_STR(nix, "sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s");
	casfs_sha256_format_sri(d, sri);
	CHECK_EQ_STR(sri, "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");

	static const char *good[] = {
		"sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s",
		"sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		"sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=",
	};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		memset(back, 0, 32);
		CHECK_EQ_INT(casfs_sha256_parse(good[i], back), 0);
		CHECK_EQ_MEM(back, d, 32);
	}
	static const char *bad[] = {
		"sha256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=", /* base64 after ':' */
		"sha256-1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s",
		"sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5",
		"sha256:eb8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s",
		"sha256:2zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
		"sha1:kpcd173cq987hw957sx6m0868wv3x6d9",
		"1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s",
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		"sha256:",
		"",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (casfs_sha256_parse(bad[i], back) != -EBADMSG)
			FAILF("accepted %s", bad[i]);
		CHECK_EQ_INT(casfs_sha256_parse(bad[i], back), -EBADMSG);
	}
}

/* error.h: the message always belongs to the code it is reported for. */
TEST(error_code_and_message_agree)
{
	struct casfs_error err = { 0 };
	/* an inner, precise message survives an outer set for the same code */
	CHECK_EQ_INT(casfs_error_set(&err, -EBADMSG, "blob %s damaged", "ab"), -EBADMSG);
	CHECK_EQ_INT(casfs_error_set(&err, -EBADMSG, "reading"), -EBADMSG);
	CHECK_EQ_STR(casfs_error_message(&err, -EBADMSG), "blob ab damaged");
	CHECK_EQ_INT(err.code, -EBADMSG);

	/* a failure with another code replaces it: code and message agree */
	CHECK_EQ_INT(casfs_error_set(&err, -ENOSPC, "disk full"), -ENOSPC);
	CHECK_EQ_INT(err.code, -ENOSPC);
	CHECK_EQ_STR(casfs_error_message(&err, -ENOSPC), "disk full");

	/* a stale message is never shown for another code */
	CHECK_EQ_STR(casfs_error_message(&err, -EIO), strerror(EIO));

	/* prefix over a stale message of another code: context + strerror */
	CHECK_EQ_INT(casfs_error_prefix(&err, -EIO, "storing %d", 7), -EIO);
	CHECK_EQ_INT(err.code, -EIO);
	CHECK_EQ_STR(casfs_error_message(&err, -EIO), "storing 7: Input/output error");
	/* prefix over a message of the same code keeps it */
	casfs_error_prefix(&err, -EIO, "outer");
	CHECK_EQ_STR(casfs_error_message(&err, -EIO), "outer: storing 7: Input/output error");

	/* a caller that recovers clears it */
	casfs_error_clear(&err);
	CHECK_EQ_INT(err.code, 0);
	CHECK_EQ_STR(casfs_error_message(&err, -ENOENT), strerror(ENOENT));
	CHECK_EQ_INT(casfs_error_set(NULL, -EPROTO, "x"), -EPROTO);
	CHECK_EQ_STR(casfs_error_message(NULL, -EPROTO), strerror(EPROTO));
}
