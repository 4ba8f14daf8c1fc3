#include "serve-route.h"

#include <string.h>

#include "../basic/encoding.h"

static bool all_base32(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!casfs_nixbase32_is_char(s[i]))
			return false;
	return true;
}

/* `len` chars of nixbase32 exactly filling `out`. */
static bool decode(const char *s, size_t len, uint8_t *out, size_t out_len)
{
	return len == CASFS_NIXBASE32_LEN(out_len) && all_base32(s, len) &&
	       casfs_nixbase32_decode(s, len, out, out_len) == (ssize_t)out_len;
}

static bool ends_with(const char *s, size_t len, const char *suffix, size_t *ret_stem)
{
	size_t n = strlen(suffix);
	if (len < n || memcmp(s + len - n, suffix, n) != 0)
		return false;
	*ret_stem = len - n;
	return true;
}

enum casfs_route_kind casfs_route_parse(const char *path, size_t len, const char *hash_arg,
					struct casfs_route *ret)
{
	struct casfs_route r = { 0 };
	size_t stem;
	if (len == 0 || len > CASFS_SERVE_TARGET_MAX || path[0] != '/' || memchr(path, 0, len))
		return CASFS_ROUTE_NONE;
	path++, len--;
	if (len == 14 && memcmp(path, "nix-cache-info", 14) == 0) {
		r.kind = CASFS_ROUTE_CACHE_INFO;
	} else if (ends_with(path, len, ".narinfo", &stem) &&
		   decode(path, stem, r.path_digest, CASFS_STORE_PATH_DIGEST_LEN)) {
		r.kind = CASFS_ROUTE_NARINFO;
		r.has_path = true;
	} else if (ends_with(path, len, ".ls", &stem) &&
		   decode(path, stem, r.path_digest, CASFS_STORE_PATH_DIGEST_LEN)) {
		r.kind = CASFS_ROUTE_LISTING;
		r.has_path = true;
	} else if (len > 4 && memcmp(path, "nar/", 4) == 0) {
		static const struct {
			const char *ext, *compression;
		} exts[] = {
			{ ".nar", "none" }, { ".nar.xz", "xz" }, { ".nar.zst", "zstd" }, { ".nar.bz2", "bzip2" },
		};
		const char *name = path + 4;
		size_t n = len - 4;
		for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
			if (ends_with(name, n, exts[i].ext, &stem) &&
			    decode(name, stem, r.sha256, CASFS_SHA256_LEN)) {
				r.kind = CASFS_ROUTE_NAR;
				r.compression = exts[i].compression;
				r.has_path = hash_arg && decode(hash_arg, strlen(hash_arg), r.path_digest,
							     CASFS_STORE_PATH_DIGEST_LEN);
				break;
			}
		}
	}
	if (r.kind != CASFS_ROUTE_NONE)
		*ret = r;
	return r.kind;
}
