#include "serve-upload.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../basic/encoding.h"
#include "../nixcache/decompress.h"
#include "../nixcache/narinfo-pathinfo.h"
#include "../nixcache/narinfo.h"
#include "../store/import.h"

struct pending {
	uint8_t sha[CASFS_SHA256_LEN];
	uint64_t size;
	struct casfs_node root; /* named "pending" until registered */
	uint64_t seq;           /* age: lower is older */
};

struct casfs_upload_table {
	pthread_mutex_t lock;
	struct pending *v;
	size_t n, cap;
	uint64_t seq;
};

struct casfs_upload_table *casfs_upload_table_new(void)
{
	struct casfs_upload_table *t = calloc(1, sizeof(*t));
	if (t)
		pthread_mutex_init(&t->lock, NULL);
	return t;
}

void casfs_upload_table_free(struct casfs_upload_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		casfs_node_release(&t->v[i].root);
	free(t->v);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/* Add (taking `root`), replacing one with the same hash, evicting the
 * oldest when full. */
static int table_put(struct casfs_upload_table *t, const uint8_t sha[CASFS_SHA256_LEN],
		     uint64_t size, struct casfs_node *root)
{
	int r = 0;
	pthread_mutex_lock(&t->lock);
	size_t at = t->n;
	for (size_t i = 0; i < t->n; i++)
		if (memcmp(t->v[i].sha, sha, CASFS_SHA256_LEN) == 0)
			at = i;
	if (at == t->n && t->n == CASFS_UPLOAD_PENDING_MAX) {
		at = 0;
		for (size_t i = 1; i < t->n; i++)
			if (t->v[i].seq < t->v[at].seq)
				at = i;
	}
	if (at == t->n && t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct pending *v = realloc(t->v, cap * sizeof(*v));
		if (!v) {
			r = -ENOMEM;
			goto out;
		}
		t->v = v, t->cap = cap;
	}
	if (at == t->n)
		t->n++;
	else
		casfs_node_release(&t->v[at].root);
	struct pending *p = &t->v[at];
	memcpy(p->sha, sha, CASFS_SHA256_LEN);
	p->size = size;
	p->root = *root;
	memset(root, 0, sizeof(*root));
	p->seq = ++t->seq;
out:
	pthread_mutex_unlock(&t->lock);
	if (r < 0)
		casfs_node_release(root);
	return r;
}

/* Take the pending upload with this hash out: true if there was one. */
static bool table_take(struct casfs_upload_table *t, const uint8_t sha[CASFS_SHA256_LEN],
		       uint64_t *ret_size, struct casfs_node *ret_root)
{
	bool found = false;
	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < t->n; i++) {
		if (memcmp(t->v[i].sha, sha, CASFS_SHA256_LEN) != 0)
			continue;
		*ret_size = t->v[i].size;
		*ret_root = t->v[i].root;
		t->v[i] = t->v[--t->n];
		found = true;
		break;
	}
	pthread_mutex_unlock(&t->lock);
	return found;
}

struct casfs_nar_upload {
	struct casfs_store *s;
	struct casfs_decompress *dec;
	struct casfs_nar_import *imp;
	struct casfs_sha256_hasher file_sha;
	uint8_t want_file_sha[CASFS_SHA256_LEN];
	int failed;
};

struct casfs_nar_upload *casfs_nar_upload_new(struct casfs_store *s, const char *compression,
					      const uint8_t file_sha256[CASFS_SHA256_LEN], int *ret_err)
{
	enum casfs_compression c;
	int r = casfs_compression_parse(compression, &c, NULL);
	if (r < 0) {
		*ret_err = r;
		return NULL;
	}
	*ret_err = -ENOMEM;
	struct casfs_nar_upload *u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->s = s;
	memcpy(u->want_file_sha, file_sha256, CASFS_SHA256_LEN);
	u->dec = casfs_decompress_new(c);
	u->imp = casfs_nar_import_new(s, NULL);
	if (!u->dec || !u->imp || casfs_sha256_init(&u->file_sha) < 0) {
		casfs_decompress_free(u->dec);
		casfs_nar_import_free(u->imp);
		free(u);
		return NULL;
	}
	*ret_err = 0;
	return u;
}

void casfs_nar_upload_free(struct casfs_nar_upload *u)
{
	if (!u)
		return;
	casfs_decompress_free(u->dec);
	casfs_nar_import_free(u->imp);
	casfs_sha256_release(&u->file_sha);
	free(u);
}

static int import_sink(void *userdata, const void *p, size_t n, struct casfs_error *err)
{
	struct casfs_nar_upload *u = userdata;
	return casfs_nar_import_feed(u->imp, p, n, err);
}

int casfs_nar_upload_feed(struct casfs_nar_upload *u, const void *p, size_t n,
			  struct casfs_error *err)
{
	if (u->failed)
		return u->failed;
	casfs_sha256_update(&u->file_sha, p, n);
	int r = casfs_decompress_feed(u->dec, p, n, import_sink, u, err);
	if (r < 0)
		u->failed = r;
	return r;
}

int casfs_nar_upload_finish(struct casfs_nar_upload *u, struct casfs_upload_table *t,
			    struct casfs_error *err)
{
	if (u->failed)
		return u->failed;
	int r = casfs_decompress_finish(u->dec, import_sink, u, NULL, NULL, err);
	uint8_t sha[CASFS_SHA256_LEN], file_sha[CASFS_SHA256_LEN];
	uint64_t size;
	if (r >= 0)
		r = casfs_nar_import_end(u->imp, sha, &size, err);
	if (r < 0)
		return u->failed = r;
	casfs_sha256_final(&u->file_sha, file_sha);
	if (memcmp(file_sha, u->want_file_sha, CASFS_SHA256_LEN) != 0) {
		char got[CASFS_SHA256_NIX_STR_LEN + 1];
		casfs_sha256_format_nix(file_sha, got);
		return u->failed = casfs_error_set(err, -EBADMSG,
						   "uploaded file does not match the hash in its name (it is %s)", got);
	}
	struct casfs_node root = { 0 };
	r = casfs_nar_import_finish(u->imp, "pending", &root, err);
	if (r < 0)
		return u->failed = r;
	r = table_put(t, sha, size, &root);
	return r < 0 ? (u->failed = r) : 0;
}

int casfs_narinfo_upload(struct casfs_store *s, struct casfs_upload_table *t, struct casfs_narmap *map,
			 const uint8_t path_digest[CASFS_STORE_PATH_DIGEST_LEN], const char *text,
			 size_t len, struct casfs_error *err)
{
	struct casfs_narinfo ni = { 0 };
	int r = casfs_narinfo_parse(text, len, &ni, err);
	if (r < 0)
		return casfs_error_prefix(err, r, "narinfo");
	char base[CASFS_STORE_PATH_BASENAME_MAX + 1];
	casfs_store_path_format_basename(&ni.path, base);
	char nar[CASFS_SHA256_NIX_STR_LEN + 1];
	casfs_sha256_format_nix(ni.nar_sha256, nar);
	struct casfs_node root = { 0 };
	uint64_t size = 0;
	bool pending = false;
	if (memcmp(ni.path.digest, path_digest, CASFS_STORE_PATH_DIGEST_LEN) != 0) {
		r = casfs_error_set(err, -EBADMSG, "narinfo is for %s, not the path its URL names", base);
		goto out;
	}
	pending = table_take(t, ni.nar_sha256, &size, &root);
	if (!pending) {
		/* The client's HEAD found the NAR: a registered path has it. */
		uint8_t other[CASFS_STORE_DIGEST_LEN];
		struct casfs_pathinfo opi = { 0 };
		struct casfs_error ignored = { 0 };
		r = casfs_narmap_find(map, s, ni.nar_sha256, other, &opi, &ignored);
		if (r < 0) {
			r = casfs_error_set(err, -ENOENT, "no NAR with NarHash %s was uploaded for %s", nar, base);
			goto out;
		}
		size = opi.nar_size;
		r = casfs_node_copy(&opi.node, &root);
		casfs_pathinfo_release(&opi);
		if (r < 0)
			goto out;
	}
	if (size != ni.nar_size) {
		r = casfs_error_set(err, -EBADMSG, "NarSize %llu of %s does not match the uploaded NAR (%llu bytes)",
				    (unsigned long long)ni.nar_size, base, (unsigned long long)size);
		goto out;
	}
	char *name = strdup(base);
	if (!name) {
		r = -ENOMEM;
		goto out;
	}
	free(root.name);
	root.name = name;
	root.name_len = strlen(name);
	/* from_narinfo takes the node; keep `root` to put it back on failure */
	struct casfs_node copy = { 0 };
	if ((r = casfs_node_copy(&root, &copy)) < 0)
		goto out;
	struct casfs_pathinfo pi = { 0 };
	r = casfs_pathinfo_from_narinfo(&ni, &copy, &pi, err);
	if (r >= 0) {
		r = casfs_store_add_ingested(s, ni.path.digest, &pi, err);
		if (r >= 0)
			casfs_narmap_put(map, ni.nar_sha256, ni.path.digest);
	}
	casfs_pathinfo_release(&pi);
	casfs_node_release(&copy);
	if (r < 0)
		r = casfs_error_prefix(err, r, "cannot register %s", base);
out:
	if (r < 0 && pending) {
		/* put it back: the client may send the references and retry */
		free(root.name);
		root.name = strdup("pending");
		root.name_len = root.name ? 7 : 0;
		if (root.name)
			table_put(t, ni.nar_sha256, size, &root);
	}
	casfs_node_release(&root);
	casfs_narinfo_release(&ni);
	return r;
}
