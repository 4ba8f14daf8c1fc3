/* Checking what a substituter hands over, and opening one by URL
 * (substituter.h). */
#include "substituter.h"

#include <errno.h>
#include <string.h>

#include "../nixcache/narinfo-pathinfo.h"
#include "binary-cache.h"
#include "export.h"

static int sha_sink(void *userdata, const void *p, size_t n)
{
	casfs_sha256_update(userdata, p, n);
	return 0;
}

/* A flat content address: the root is one regular file with this hash. */
static int check_file_sha256(struct casfs_store *into, const struct casfs_node *root,
			     const char *path, const uint8_t want[CASFS_SHA256_LEN],
			     struct casfs_error *err)
{
	if (root->type != CASFS_NODE_FILE)
		return casfs_error_set(err, -EBADMSG, "'%s': a flat content address needs a regular file",
				       path);
	struct casfs_sha256_hasher h;
	int r = casfs_sha256_init(&h);
	if (r < 0)
		return casfs_error_set(err, r, "cannot set up SHA-256");
	r = casfs_export_file(into, root, sha_sink, &h, err);
	uint8_t got[CASFS_SHA256_LEN];
	casfs_sha256_final(&h, got);
	casfs_sha256_release(&h);
	if (r < 0)
		return r;
	if (memcmp(got, want, CASFS_SHA256_LEN) != 0)
		return casfs_error_set(err, -EBADMSG, "'%s': file content does not match its content address",
				       path);
	return 0;
}

int casfs_substitute(struct casfs_substituter *sub, const struct casfs_nixkey_list *keys,
		     const struct casfs_narinfo *ni, struct casfs_store *into,
		     struct casfs_pathinfo *ret, struct casfs_error *err)
{
	char path[CASFS_STORE_PATH_MAX + 1];
	casfs_store_path_format(&ni->path, path);
	static const struct casfs_nixkey_list no_keys = { 0 };
	uint8_t file_sha[CASFS_SHA256_LEN];
	int trust = CASFS_TRUST_SIGNED;
	if (!sub->trusted) {
		trust = casfs_narinfo_check_trust(ni, keys ? keys : &no_keys, file_sha, err);
		if (trust < 0)
			return casfs_error_prefix(err, trust, "from '%s'", sub->url);
	}
	struct casfs_node root = { 0 };
	uint8_t sha[CASFS_SHA256_LEN];
	uint64_t size;
	int r = sub->ops->fetch(sub, ni, into, &root, sha, &size, err);
	if (r < 0)
		return r;
	if (size != ni->nar_size || memcmp(sha, ni->nar_sha256, CASFS_SHA256_LEN) != 0) {
		char want_s[CASFS_SHA256_NIX_STR_LEN + 1], got_s[CASFS_SHA256_NIX_STR_LEN + 1];
		casfs_sha256_format_nix(ni->nar_sha256, want_s);
		casfs_sha256_format_nix(sha, got_s);
		r = casfs_error_set(err, -EBADMSG,
				    "hash mismatch importing '%s' from '%s': NarHash %s, NarSize %llu; got %s, %llu bytes",
				    path, sub->url, want_s, (unsigned long long)ni->nar_size, got_s,
				    (unsigned long long)size);
	}
	if (r >= 0 && trust == CASFS_TRUST_FILE_SHA256)
		r = check_file_sha256(into, &root, path, file_sha, err);
	if (r >= 0)
		r = casfs_pathinfo_from_narinfo(ni, &root, ret, err);
	casfs_node_release(&root);
	return r;
}

bool casfs_substituter_url_known(const char *url)
{
	return !strncmp(url, "file://", 7) || !strncmp(url, "http://", 7) ||
	       !strncmp(url, "https://", 8) || !strcmp(url, "nix:") || !strncmp(url, "nix:", 4);
}

int casfs_substituter_open(const char *url, struct casfs_substituter **ret,
			   struct casfs_error *err)
{
	if (!strncmp(url, "nix:", 4))
		return casfs_substituter_nix_open(url[4] ? url + 4 : NULL, ret, err);
	if (!casfs_substituter_url_known(url))
		return casfs_error_set(err, -EPROTONOSUPPORT, "unsupported store URL '%s'", url);
	struct casfs_binary_cache *bc;
	int r = casfs_binary_cache_open(url, &bc, err);
	if (r < 0)
		return r;
	*ret = casfs_binary_cache_substituter(bc);
	return 0;
}
