/* Fuzz serve-cache's route parser (src/serve/serve-route.h).  The input
 * is a request target "PATH[?hash=ARG]".  Whatever it accepts must be the
 * one canonical spelling of what it parsed: the route rendered back from
 * the parsed digests equals the path byte for byte (so no two targets
 * alias one route, and nothing with "..", "%", "//" or NUL gets through),
 * and a ?hash= value counts only if it is that canonical spelling too. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/encoding.h"
#include "serve/serve-route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 2 * CASFS_SERVE_TARGET_MAX)
		return 0;
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	const char *q = memchr(s, '?', size);
	size_t len = q ? (size_t)(q - s) : size;
	const char *hash_arg = q && !strncmp(q + 1, "hash=", 5) ? q + 6 : NULL;
	struct casfs_route r;
	memset(&r, 0xa5, sizeof(r));
	enum casfs_route_kind k = casfs_route_parse(s, len, hash_arg, &r);
	char want[CASFS_SERVE_TARGET_MAX + 64], b32[128];
	switch (k) {
	case CASFS_ROUTE_NONE:
		free(s);
		return 0;
	case CASFS_ROUTE_CACHE_INFO:
		snprintf(want, sizeof(want), "/nix-cache-info");
		break;
	case CASFS_ROUTE_NARINFO:
	case CASFS_ROUTE_LISTING:
		b32[casfs_nixbase32_encode(r.path_digest, sizeof(r.path_digest), b32)] = 0;
		snprintf(want, sizeof(want), "/%s%s", b32, k == CASFS_ROUTE_NARINFO ? ".narinfo" : ".ls");
		break;
	case CASFS_ROUTE_NAR: {
		const char *ext = !strcmp(r.compression, "none") ? ""
				  : !strcmp(r.compression, "xz")   ? ".xz"
				  : !strcmp(r.compression, "zstd") ? ".zst"
				  : !strcmp(r.compression, "bzip2") ? ".bz2" : NULL;
		if (!ext)
			abort();
		b32[casfs_nixbase32_encode(r.sha256, sizeof(r.sha256), b32)] = 0;
		snprintf(want, sizeof(want), "/nar/%s.nar%s", b32, ext);
		if (r.has_path) {
			char h[64];
			h[casfs_nixbase32_encode(r.path_digest, sizeof(r.path_digest), h)] = 0;
			if (!hash_arg || strcmp(hash_arg, h) != 0)
				abort();
		}
		break;
	}
	default:
		abort();
	}
	if (strlen(want) != len || memcmp(want, s, len) != 0)
		abort();
	free(s);
	return 0;
}
