/* Fuzz the store path parsers.
 *
 * The input is parsed as a basename (exactly `size` bytes) and, NUL-
 * terminated, as an absolute path (casfs_store_path_parse and
 * casfs_store_path_parse_prefix).  Acceptance must agree with a small
 * independent model of the rules; an accepted path must format back to the
 * very bytes parsed and re-parse to the same struct; a rejection is -EINVAL
 * with a message and leaves the output untouched.  Accepted names also go
 * through casfs_store_path_make_source, whose result must round-trip. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "digest/digest.h"
#include "storepath/storepath.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                         \
	do {                                                                             \
		if (!(c))                                                                \
			abort();                                                         \
	} while (0)

/* The rules, restated without looking at storepath.c. */
static bool model_basename_ok(const char *s, size_t len)
{
	static const char alphabet[] = "0123456789abcdfghijklmnpqrsvwxyz";
	if (len < 34 || len > 32 + 1 + 211 || s[32] != '-' || s[33] == '.')
		return false;
	for (size_t i = 0; i < 32; i++)
		if (!s[i] || !memchr(alphabet, s[i], 32))
			return false;
	for (size_t i = 33; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      (c && memchr("+-._?=", c, 6))))
			return false;
	}
	return true;
}

static bool same_path(const struct casfs_store_path *a, const struct casfs_store_path *b)
{
	return memcmp(a->digest, b->digest, sizeof(a->digest)) == 0 && strcmp(a->name, b->name) == 0;
}

static bool untouched(const struct casfs_store_path *sp)
{
	const uint8_t *p = (const uint8_t *)sp;
	for (size_t i = 0; i < sizeof(*sp); i++)
		if (p[i] != 0xa5)
			return false;
	return true;
}

/* sp was parsed from `s` (len bytes, a basename): format and re-parse. */
static void check_basename_roundtrip(const struct casfs_store_path *sp, const char *s, size_t len)
{
	char out[CASFS_STORE_PATH_MAX + 1];
	size_t n = casfs_store_path_format_basename(sp, out);
	CHECK(n == len && memcmp(out, s, len) == 0 && out[n] == 0);
	struct casfs_store_path again;
	CHECK(casfs_store_path_parse_basename(out, n, &again, NULL) == 0);
	CHECK(same_path(sp, &again));
	CHECK(strlen(sp->name) == len - 33);
}

static void fuzz_basename(const char *s, size_t len)
{
	struct casfs_store_path sp;
	struct casfs_error err = { 0 };
	memset(&sp, 0xa5, sizeof(sp));
	int r = casfs_store_path_parse_basename(s, len, &sp, &err);
	CHECK((r == 0) == model_basename_ok(s, len));
	if (r < 0) {
		CHECK(r == -EINVAL && err.msg[0] && untouched(&sp));
		return;
	}
	check_basename_roundtrip(&sp, s, len);

	/* The name alone, and the path Nix would give a tree of that name. */
	CHECK(casfs_store_path_name_validate(sp.name, strlen(sp.name), NULL) == 0);
	uint8_t h[CASFS_SHA256_LEN];
	casfs_sha256(s, len, h);
	const char *refs[1] = { "/nix/store/00000000000000000000000000000000-r" };
	struct casfs_store_path made;
	CHECK(casfs_store_path_make_source(h, sp.name, refs, len & 1, &made, NULL) == 0);
	CHECK(strcmp(made.name, sp.name) == 0);
	char out[CASFS_STORE_PATH_MAX + 1];
	size_t n = casfs_store_path_format(&made, out);
	struct casfs_store_path again;
	CHECK(casfs_store_path_parse(out, &again, NULL) == 0 && same_path(&made, &again));
	CHECK(n == strlen(out));
}

static void fuzz_absolute(const char *s)
{
	static const char dir[] = "/nix/store/";
	size_t len = strlen(s);
	const char *base = s + sizeof(dir) - 1;
	bool in_store = len >= sizeof(dir) - 1 && memcmp(s, dir, sizeof(dir) - 1) == 0;
	const char *slash = in_store ? strchr(base, '/') : NULL;
	size_t base_len = in_store ? (slash ? (size_t)(slash - base) : strlen(base)) : 0;
	bool prefix_ok = in_store && model_basename_ok(base, base_len);

	struct casfs_store_path sp;
	struct casfs_error err = { 0 };
	const char *sub = NULL;
	memset(&sp, 0xa5, sizeof(sp));
	int r = casfs_store_path_parse_prefix(s, &sp, &sub, &err);
	CHECK((r == 0) == prefix_ok);
	if (r < 0) {
		CHECK(r == -EINVAL && err.msg[0] && untouched(&sp) && sub == NULL);
	} else {
		CHECK(sub == base + base_len && (*sub == 0 || *sub == '/'));
		check_basename_roundtrip(&sp, base, base_len);
		char out[CASFS_STORE_PATH_MAX + 1];
		size_t n = casfs_store_path_format(&sp, out);
		CHECK(n == (size_t)(sub - s) && memcmp(out, s, n) == 0);
	}

	struct casfs_store_path whole;
	struct casfs_error err2 = { 0 };
	memset(&whole, 0xa5, sizeof(whole));
	int r2 = casfs_store_path_parse(s, &whole, &err2);
	CHECK((r2 == 0) == (prefix_ok && !slash));
	if (r2 < 0) {
		CHECK(r2 == -EINVAL && err2.msg[0] && untouched(&whole));
		return;
	}
	CHECK(same_path(&sp, &whole));
	char out[CASFS_STORE_PATH_MAX + 1];
	size_t n = casfs_store_path_format(&whole, out);
	CHECK(n == len && strcmp(out, s) == 0);
	struct casfs_store_path again;
	CHECK(casfs_store_path_parse(out, &again, NULL) == 0 && same_path(&whole, &again));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	/* Exact-size copy: a read past `size` is an ASan error. */
	char *exact = malloc(size ? size : 1);
	char *cstr = malloc(size + 1);
	if (!exact || !cstr) {
		free(exact);
		free(cstr);
		return 0;
	}
	memcpy(exact, data, size);
	memcpy(cstr, data, size);
	cstr[size] = 0;
	fuzz_basename(exact, size);
	fuzz_absolute(cstr);
	/* Also as a basename inside a store directory. */
	char *abs = malloc(size + 12);
	if (abs) {
		memcpy(abs, "/nix/store/", 11);
		memcpy(abs + 11, data, size);
		abs[size + 11] = 0;
		fuzz_absolute(abs);
		free(abs);
	}
	free(exact);
	free(cstr);
	return 0;
}
