#include "ca.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../basic/encoding.h"
#include "../basic/util.h"

struct ca_kind {
	enum casfs_ca_type type;
	const char *prefix; /* up to and including the algorithm's colon */
	const char *algo;
	size_t len;
	bool recursive;
};

static const struct ca_kind kinds[] = {
	{ CASFS_CA_NAR_SHA256, "fixed:r:sha256:", "sha256", 32, true },
	{ CASFS_CA_NAR_SHA1, "fixed:r:sha1:", "sha1", 20, true },
	{ CASFS_CA_NAR_SHA512, "fixed:r:sha512:", "sha512", 64, true },
	{ CASFS_CA_NAR_MD5, "fixed:r:md5:", "md5", 16, true },
	{ CASFS_CA_TEXT_SHA256, "text:sha256:", "sha256", 32, false },
	{ CASFS_CA_FLAT_SHA1, "fixed:sha1:", "sha1", 20, false },
	{ CASFS_CA_FLAT_MD5, "fixed:md5:", "md5", 16, false },
	{ CASFS_CA_FLAT_SHA256, "fixed:sha256:", "sha256", 32, false },
	{ CASFS_CA_FLAT_SHA512, "fixed:sha512:", "sha512", 64, false },
};

static const struct ca_kind *kind_of(enum casfs_ca_type t)
{
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
		if (kinds[i].type == t)
			return &kinds[i];
	return NULL;
}

int casfs_ca_parse(const char *s, size_t len, struct casfs_ca *ret, struct casfs_error *err)
{
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
		const struct ca_kind *k = &kinds[i];
		size_t pl = strlen(k->prefix);
		if (len < pl || memcmp(s, k->prefix, pl) != 0)
			continue;
		const char *h = s + pl;
		size_t hl = len - pl;
		struct casfs_ca ca = { .type = k->type, .len = k->len };
		ssize_t n = -1;
		if (hl == CASFS_NIXBASE32_LEN(k->len))
			n = casfs_nixbase32_decode(h, hl, ca.digest, k->len);
		else if (hl == 2 * k->len)
			n = casfs_hex_decode(h, hl, ca.digest, k->len);
		if (n != (ssize_t)k->len)
			return casfs_error_set(err, -EBADMSG, "invalid %s hash in content address '%.*s'",
					       k->algo, (int)MIN(len, 200), s);
		*ret = ca;
		return 0;
	}
	return casfs_error_set(err, -EBADMSG, "unknown content address '%.*s'", (int)MIN(len, 200), s);
}

int casfs_ca_format(const struct casfs_ca *ca, struct casfs_buf *out)
{
	const struct ca_kind *k = kind_of(ca->type);
	if (!k || ca->len != k->len)
		return -EINVAL;
	char b32[CASFS_NIXBASE32_LEN(CASFS_CA_DIGEST_MAX) + 1];
	size_t n = casfs_nixbase32_encode(ca->digest, ca->len, b32);
	int r = casfs_buf_append_str(out, k->prefix);
	return r < 0 ? r : casfs_buf_append(out, b32, n);
}

int casfs_ca_from_pathinfo(enum casfs_ca_type type, const uint8_t *digest, size_t len,
			   struct casfs_ca *ret, struct casfs_error *err)
{
	const struct ca_kind *k = kind_of(type);
	if (!k)
		return casfs_error_set(err, -EBADMSG, "unknown content address type %d", (int)type);
	if (len != k->len)
		return casfs_error_set(err, -EBADMSG, "content address %s: %zu-byte digest, expected %zu",
				       k->prefix, len, k->len);
	ret->type = type;
	ret->len = len;
	memcpy(ret->digest, digest, len);
	return 0;
}

/* The path the CA gives, for the references other than the path itself. */
static int ca_path(const struct ca_kind *k, const struct casfs_ca *ca, const char *name,
		   const char *const *refs, size_t n_refs, bool self_ref,
		   struct casfs_store_path *ret, struct casfs_error *err)
{
	struct casfs_buf type = CASFS_BUF_INIT;
	uint8_t inner[CASFS_SHA256_LEN];
	const uint8_t *hash = ca->digest;
	int r;
	if (ca->type == CASFS_CA_NAR_SHA256 || ca->type == CASFS_CA_TEXT_SHA256) {
		if (ca->type == CASFS_CA_TEXT_SHA256 && self_ref) {
			return casfs_error_set(err, -EBADMSG,
					       "text content-addressed path '%s' refers to itself", name);
		}
		r = casfs_store_path_make_type(&type, ca->type == CASFS_CA_TEXT_SHA256 ? "text" : "source",
					       refs, n_refs, self_ref);
	} else {
		if (n_refs || self_ref)
			return casfs_error_set(err, -EBADMSG,
					       "content address %s allows no references, path '%s' has some",
					       k->prefix, name);
		char hex[2 * CASFS_CA_DIGEST_MAX + 1];
		casfs_hex_encode(ca->digest, ca->len, hex);
		r = casfs_buf_printf(&type, "fixed:out:%s%s:%s:", k->recursive ? "r:" : "", k->algo, hex);
		if (r >= 0)
			casfs_sha256(type.data, type.len, inner);
		hash = inner;
		type.len = 0;
		if (r >= 0)
			r = casfs_buf_append(&type, "output:out", sizeof("output:out"));
	}
	if (r >= 0)
		r = casfs_store_path_make((const char *)type.data, hash, name, ret, err);
	casfs_buf_release(&type);
	return r;
}

int casfs_ca_check(const struct casfs_ca *ca, const struct casfs_store_path *path,
		   const struct casfs_store_path *refs, size_t n_refs,
		   const uint8_t nar_sha256[CASFS_SHA256_LEN], struct casfs_error *err)
{
	const struct ca_kind *k = kind_of(ca->type);
	if (!k || ca->len != k->len)
		return casfs_error_set(err, -EBADMSG, "invalid content address");
	char(*strs)[CASFS_STORE_PATH_MAX + 1] = n_refs ? calloc(n_refs, sizeof(*strs)) : NULL;
	const char **ptrs = n_refs ? calloc(n_refs, sizeof(*ptrs)) : NULL;
	int r = 0;
	if (n_refs && (!strs || !ptrs))
		r = -ENOMEM;
	size_t n_other = 0;
	bool self_ref = false;
	for (size_t i = 0; r >= 0 && i < n_refs; i++) {
		if (!memcmp(refs[i].digest, path->digest, sizeof(path->digest)) &&
		    !strcmp(refs[i].name, path->name)) {
			self_ref = true;
			continue;
		}
		casfs_store_path_format(&refs[i], strs[n_other]);
		ptrs[n_other] = strs[n_other];
		n_other++;
	}
	struct casfs_store_path want;
	if (r >= 0)
		r = ca_path(k, ca, path->name, ptrs, n_other, self_ref, &want, err);
	free(ptrs);
	free(strs);
	if (r < 0)
		return r;
	char got_s[CASFS_STORE_PATH_MAX + 1];
	casfs_store_path_format(path, got_s);
	if (memcmp(want.digest, path->digest, sizeof(want.digest)) != 0) {
		char want_s[CASFS_STORE_PATH_MAX + 1];
		casfs_store_path_format(&want, want_s);
		return casfs_error_set(err, -EBADMSG,
				       "store path '%s' does not match its content address (it gives '%s')",
				       got_s, want_s);
	}
	if (ca->type == CASFS_CA_NAR_SHA256) {
		if (memcmp(ca->digest, nar_sha256, CASFS_SHA256_LEN) != 0)
			return casfs_error_set(err, -EBADMSG,
					       "'%s': NAR hash differs from its content address", got_s);
		return CASFS_CA_VERIFIED;
	}
	if (ca->type == CASFS_CA_TEXT_SHA256 || ca->type == CASFS_CA_FLAT_SHA256)
		return CASFS_CA_CHECK_FILE_SHA256;
	return CASFS_CA_UNCHECKED;
}
