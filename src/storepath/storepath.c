#include "storepath.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../basic/buf.h"
#include "../basic/encoding.h"
#include "../basic/util.h"

static bool name_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr("+-._?=", c) != NULL;
}

int casfs_store_path_name_validate(const char *name, size_t len, struct casfs_error *err)
{
	if (len == 0)
		return casfs_error_set(err, -EINVAL, "store path name is empty");
	if (len > CASFS_STORE_PATH_NAME_MAX)
		return casfs_error_set(err, -EINVAL, "store path name is %zu characters long (at most %d)",
				       len, CASFS_STORE_PATH_NAME_MAX);
	if (name[0] == '.')
		return casfs_error_set(err, -EINVAL, "store path name '%.*s' starts with '.'", (int)len,
				       name);
	for (size_t i = 0; i < len; i++)
		if (!name[i] || !name_char_ok(name[i]))
			return casfs_error_set(err, -EINVAL,
					       "store path name '%.*s' contains invalid character 0x%02x",
					       (int)len, name, (unsigned char)name[i]);
	return 0;
}

int casfs_store_path_parse_basename(const char *s, size_t len, struct casfs_store_path *ret,
				    struct casfs_error *err)
{
	struct casfs_store_path sp;
	if (len < CASFS_STORE_PATH_HASH_CHARS + 2 || s[CASFS_STORE_PATH_HASH_CHARS] != '-')
		return casfs_error_set(err, -EINVAL, "'%.*s' is not a store path basename (<hash>-<name>)",
				       (int)MIN(len, 300), s);
	if (casfs_nixbase32_decode(s, CASFS_STORE_PATH_HASH_CHARS, sp.digest, sizeof(sp.digest)) < 0)
		return casfs_error_set(err, -EINVAL, "'%.*s': invalid nixbase32 hash part '%.32s'",
				       (int)MIN(len, 300), s, s);
	const char *name = s + CASFS_STORE_PATH_HASH_CHARS + 1;
	size_t name_len = len - CASFS_STORE_PATH_HASH_CHARS - 1;
	int r = casfs_store_path_name_validate(name, name_len, err);
	if (r < 0)
		return r;
	memcpy(sp.name, name, name_len);
	sp.name[name_len] = 0;
	*ret = sp;
	return 0;
}

int casfs_store_path_parse_prefix(const char *s, struct casfs_store_path *ret, const char **ret_sub,
				  struct casfs_error *err)
{
	static const char prefix[] = CASFS_STORE_DIR "/";
	if (strncmp(s, prefix, sizeof(prefix) - 1) != 0)
		return casfs_error_set(err, -EINVAL, "'%s' is not in the store (%s)", s, CASFS_STORE_DIR);
	const char *base = s + sizeof(prefix) - 1;
	const char *end = strchr(base, '/');
	if (!end)
		end = base + strlen(base);
	int r = casfs_store_path_parse_basename(base, (size_t)(end - base), ret, err);
	if (r < 0)
		return casfs_error_prefix(err, r, "invalid store path '%s'", s);
	if (ret_sub)
		*ret_sub = end;
	return 0;
}

int casfs_store_path_parse(const char *s, struct casfs_store_path *ret, struct casfs_error *err)
{
	struct casfs_store_path sp;
	const char *sub;
	int r = casfs_store_path_parse_prefix(s, &sp, &sub, err);
	if (r < 0)
		return r;
	if (*sub)
		return casfs_error_set(err, -EINVAL, "'%s' is not a store path (trailing '%s')", s, sub);
	*ret = sp;
	return 0;
}

size_t casfs_store_path_format_basename(const struct casfs_store_path *sp, char *out)
{
	casfs_nixbase32_encode(sp->digest, sizeof(sp->digest), out);
	out[CASFS_STORE_PATH_HASH_CHARS] = '-';
	size_t n = strlen(sp->name);
	memcpy(out + CASFS_STORE_PATH_HASH_CHARS + 1, sp->name, n + 1);
	return CASFS_STORE_PATH_HASH_CHARS + 1 + n;
}

size_t casfs_store_path_format(const struct casfs_store_path *sp, char *out)
{
	memcpy(out, CASFS_STORE_DIR "/", sizeof(CASFS_STORE_DIR));
	return sizeof(CASFS_STORE_DIR) + casfs_store_path_format_basename(sp, out + sizeof(CASFS_STORE_DIR));
}

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int casfs_store_path_make(const char *type, const uint8_t sha256[CASFS_SHA256_LEN],
			  const char *name, struct casfs_store_path *ret, struct casfs_error *err)
{
	size_t name_len = strlen(name);
	int r = casfs_store_path_name_validate(name, name_len, err);
	if (r < 0)
		return r;
	char hex[CASFS_HEX_LEN(CASFS_SHA256_LEN) + 1];
	casfs_hex_encode(sha256, CASFS_SHA256_LEN, hex);
	struct casfs_buf fp = CASFS_BUF_INIT;
	r = casfs_buf_printf(&fp, "%s:sha256:%s:" CASFS_STORE_DIR ":%s", type, hex, name);
	if (r < 0) {
		casfs_buf_release(&fp);
		return r;
	}
	uint8_t h[CASFS_SHA256_LEN];
	casfs_sha256(fp.data, fp.len, h);
	casfs_buf_release(&fp);

	struct casfs_store_path sp;
	memset(sp.digest, 0, sizeof(sp.digest));
	for (size_t i = 0; i < sizeof(h); i++)
		sp.digest[i % CASFS_STORE_PATH_DIGEST_LEN] ^= h[i];
	memcpy(sp.name, name, name_len + 1);
	*ret = sp;
	return 0;
}

int casfs_store_path_make_type(struct casfs_buf *out, const char *base, const char *const *refs,
			       size_t n_refs, bool self_ref)
{
	_cleanup_free_ const char **sorted = NULL;
	if (n_refs) {
		sorted = calloc(n_refs, sizeof(*sorted));
		if (!sorted)
			return -ENOMEM;
		memcpy(sorted, refs, n_refs * sizeof(*sorted));
		qsort(sorted, n_refs, sizeof(*sorted), cmp_strp);
	}
	int r = casfs_buf_append(out, base, strlen(base));
	for (size_t i = 0; r >= 0 && i < n_refs; i++) {
		r = casfs_buf_append_byte(out, ':');
		if (r >= 0)
			r = casfs_buf_append(out, sorted[i], strlen(sorted[i]));
	}
	if (r >= 0 && self_ref)
		r = casfs_buf_append(out, ":self", 5);
	if (r >= 0)
		r = casfs_buf_append_byte(out, 0);
	return r;
}

int casfs_store_path_make_source(const uint8_t nar_sha256[CASFS_SHA256_LEN], const char *name,
				 const char *const *refs, size_t n_refs,
				 struct casfs_store_path *ret, struct casfs_error *err)
{
	struct casfs_buf type = CASFS_BUF_INIT;
	int r = casfs_store_path_make_type(&type, "source", refs, n_refs, false);
	if (r >= 0)
		r = casfs_store_path_make((const char *)type.data, nar_sha256, name, ret, err);
	casfs_buf_release(&type);
	return r;
}
