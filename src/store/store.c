/* Opening a store by URL, and registering store paths once their closure is
 * complete. */
#include "store.h"

#include <errno.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../basic/encoding.h"
#include "../basic/util.h"
#include "../storepath/storepath.h"
#include "local-store.h"
#include "store-grpc.h"
#include "substituter.h"
#include "through.h"

char *casfs_store_default_path(void)
{
	const char *env = getenv("CASFS_STORE");
	if (env && *env)
		return strdup(env);
	char *p = NULL;
	/* The XDG spec says relative values are to be ignored. */
	env = getenv("XDG_DATA_HOME");
	if (env && env[0] == '/')
		return asprintf(&p, "%s/casfs", env) < 0 ? NULL : p;
	env = getenv("HOME");
	if (env && *env)
		return asprintf(&p, "%s/.local/share/casfs", env) < 0 ? NULL : p;
	return NULL;
}

char *casfs_store_default_cache_path(void)
{
	char *p = NULL;
	const char *env = getenv("XDG_CACHE_HOME");
	if (env && env[0] == '/')
		return asprintf(&p, "%s/casfs", env) < 0 ? NULL : p;
	env = getenv("HOME");
	if (env && *env)
		return asprintf(&p, "%s/.cache/casfs", env) < 0 ? NULL : p;
	return NULL;
}

int casfs_store_trusted_keys(const char *text, struct casfs_nixkey_list *ret,
			     struct casfs_error *err)
{
	if (!text)
		text = getenv("CASFS_TRUSTED_PUBLIC_KEYS");
	if (!text)
		text = "";
	int r = casfs_nixkey_list_parse(text, strlen(text), ret, err);
	return r < 0 ? casfs_error_prefix(err, r, "trusted public keys") : r;
}

static int open_through(struct casfs_store *s, const char *url, const struct casfs_store_options *o,
			struct casfs_error *err)
{
	_cleanup_free_ char *def = NULL;
	const char *cache = o->cache;
	if (!cache && !(cache = def = casfs_store_default_cache_path()))
		return casfs_error_set(err, -ENOENT, "no cache directory: pass --cache or set HOME");
	struct casfs_nixkey_list keys = { 0 };
	int r = casfs_store_trusted_keys(o->trusted_public_keys, &keys, err);
	if (r < 0)
		return r;
	struct casfs_substituter *sub = NULL;
	r = casfs_substituter_open(url, &sub, err);
	if (r >= 0)
		r = casfs_store_open(cache, CASFS_STORE_CREATE | (o->flags & ~(unsigned)CASFS_STORE_READONLY),
				     &s->inner, err);
	if (r >= 0)
		r = casfs_through_pathinfo_new(s->inner, sub, &keys, &s->pathinfos);
	if (r < 0) {
		casfs_substituter_free(sub);
		casfs_nixkey_list_release(&keys);
		return r;
	}
	s->blobs = s->inner->blobs;
	s->directories = s->inner->directories;
	s->url = strdup(url);
	return s->url ? 0 : -ENOMEM;
}

static int open_memory(struct casfs_store *s)
{
	int r = casfs_blob_service_memory_new(&s->blobs);
	if (r >= 0)
		r = casfs_directory_service_memory_new(&s->directories);
	if (r >= 0)
		r = casfs_pathinfo_service_memory_new(&s->pathinfos);
	if (r >= 0 && !(s->url = strdup("memory:")))
		r = -ENOMEM;
	return r;
}

static int open_local(struct casfs_store *s, const char *dir, unsigned flags,
		      struct casfs_error *err)
{
	if (!*dir)
		return casfs_error_set(err, -EINVAL, "empty store directory");
	int r = casfs_local_store_open(dir, flags, &s->blobs, &s->directories, &s->pathinfos, err);
	if (r < 0)
		return r;
	/* The directory exists now, so it has a canonical absolute name. */
	_cleanup_free_ char *abs = realpath(dir, NULL);
	if (!abs || asprintf(&s->url, "local:%s", abs) < 0) {
		s->url = NULL;
		return -ENOMEM;
	}
	return 0;
}

int casfs_store_open(const char *url, unsigned flags, struct casfs_store **ret,
		     struct casfs_error *err)
{
	struct casfs_store_options o = { .flags = flags };
	return casfs_store_open_with(url, &o, ret, err);
}

static int open_memory_url(struct casfs_store *s, const char *url,
			   const struct casfs_store_options *o, struct casfs_error *err)
{
	(void)o;
	if (strcmp(url, "memory:"))
		return casfs_error_set(err, -EINVAL, "store URL '%s': memory: takes nothing after it", url);
	return open_memory(s);
}

static int open_local_url(struct casfs_store *s, const char *url,
			  const struct casfs_store_options *o, struct casfs_error *err)
{
	return open_local(s, url + 6, o->flags, err);
}

/* Every store URL scheme, matched by prefix, in this order; anything else
 * with "://" is refused, and a plain path is a local store. */
static const struct {
	const char *prefix;
	int (*open)(struct casfs_store *s, const char *url, const struct casfs_store_options *o,
		    struct casfs_error *err);
} schemes[] = {
	{ "memory:", open_memory_url },
	{ "local:", open_local_url },
	{ "grpc+unix://", casfs_store_open_grpc },
	{ "grpc+http://", casfs_store_open_grpc },
	{ "file://", open_through },
	{ "http://", open_through },
	{ "https://", open_through },
	{ "nix:", open_through },
};

static int open_one(const char *url, const struct casfs_store_options *o, struct casfs_store **ret,
		    struct casfs_error *err)
{
	struct casfs_store *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	int r = 1;
	for (size_t i = 0; r > 0 && i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (!strncmp(url, schemes[i].prefix, strlen(schemes[i].prefix)))
			r = schemes[i].open(s, url, o, err);
	if (r > 0)
		r = strstr(url, "://") ? casfs_error_set(err, -EPROTONOSUPPORT,
							  "unsupported store URL '%s'", url)
				       : open_local(s, url, o->flags, err);
	if (r < 0) {
		casfs_store_free(s);
		return r == -ENOMEM ? casfs_error_set(err, r, "out of memory opening store") : r;
	}
	*ret = s;
	return 0;
}

/* A store made of the main one and per-service overrides. */
static int compose(struct casfs_store *main_store, const struct casfs_store_options *o,
		   struct casfs_store **ret, struct casfs_error *err)
{
	struct casfs_store *c = calloc(1, sizeof(*c));
	if (!c) {
		casfs_store_free(main_store);
		return -ENOMEM;
	}
	c->parts[c->n_parts++] = main_store;
	c->blobs = main_store->blobs;
	c->directories = main_store->directories;
	c->pathinfos = main_store->pathinfos;
	struct casfs_store_options sub = { .flags = o->flags, .cache = o->cache,
					   .trusted_public_keys = o->trusted_public_keys };
	const char *urls[3] = { o->blob_store, o->directory_store, o->pathinfo_store };
	static const char *const what[3] = { "--blob-store", "--directory-store", "--pathinfo-store" };
	int r = 0;
	for (int i = 0; r >= 0 && i < 3; i++) {
		if (!urls[i])
			continue;
		struct casfs_store *p = NULL;
		r = open_one(urls[i], &sub, &p, err);
		if (r < 0) {
			r = casfs_error_prefix(err, r, "%s", what[i]);
			break;
		}
		c->parts[c->n_parts++] = p;
		if (i == 0)
			c->blobs = p->blobs;
		else if (i == 1)
			c->directories = p->directories;
		else
			c->pathinfos = p->pathinfos;
	}
	if (r >= 0 && !(c->url = strdup(main_store->url ? main_store->url : "")))
		r = -ENOMEM;
	if (r < 0) {
		casfs_store_free(c);
		return r;
	}
	*ret = c;
	return 0;
}

int casfs_store_open_with(const char *url, const struct casfs_store_options *o,
			  struct casfs_store **ret, struct casfs_error *err)
{
	_cleanup_free_ char *def = NULL;
	if (!url) {
		url = def = casfs_store_default_path();
		if (!url)
			return casfs_error_set(err, -ENOENT,
					       "no default store: set CASFS_STORE or HOME");
	}
	struct casfs_store *s = NULL;
	int r = open_one(url, o, &s, err);
	if (r < 0)
		return r;
	if (!o->blob_store && !o->directory_store && !o->pathinfo_store) {
		*ret = s;
		return 0;
	}
	return compose(s, o, ret, err);
}

void casfs_store_free(struct casfs_store *s)
{
	if (!s)
		return;
	if (s->n_parts) {
		for (size_t i = s->n_parts; i-- > 0;)
			casfs_store_free(s->parts[i]);
		free(s->url);
		free(s);
		return;
	}
	casfs_pathinfo_service_free(s->pathinfos);
	if (s->inner) {
		casfs_store_free(s->inner);
	} else {
		casfs_directory_service_free(s->directories);
		casfs_blob_service_free(s->blobs);
	}
	if (s->free_backend)
		s->free_backend(s->backend);
	free(s->url);
	free(s);
}

/* The blob of a file node must be present with the node's size. */
static int check_file(struct casfs_blob_service *blobs, const struct casfs_node *f,
		      const char *where, struct casfs_error *err)
{
	char name[CASFS_B3_STR_LEN + 1];
	uint64_t size;
	int r = casfs_blob_stat(blobs, f->digest, &size);
	if (r == -ENOENT) {
		casfs_b3_format(f->digest, name);
		return casfs_error_set(err, r, "%s'%s': blob %s is missing", where, f->name, name);
	}
	if (r < 0)
		return r;
	if (size != f->size) {
		casfs_b3_format(f->digest, name);
		return casfs_error_set(err, -EBADMSG, "%s'%s': blob %s has %llu bytes, expected %llu",
				       where, f->name, name, (unsigned long long)size,
				       (unsigned long long)f->size);
	}
	return 0;
}

struct closure_check {
	struct casfs_blob_service *blobs;
	bool blobs_known;
	struct casfs_error *err;
};

static int check_dir_cb(const uint8_t digest[CASFS_B3_LEN], const struct casfs_directory *d,
			void *userdata)
{
	struct closure_check *c = userdata;
	if (c->blobs_known)
		return 0;
	char where[CASFS_B3_STR_LEN + 32];
	casfs_b3_format(digest, where);
	strcat(where, ": file ");
	for (size_t i = 0; i < d->n_files; i++) {
		int r = check_file(c->blobs, &d->files[i], where, c->err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int check_closure(struct casfs_store *s, const struct casfs_node *root, bool blobs_known,
			 struct casfs_error *err)
{
	if (root->type == CASFS_NODE_FILE)
		return blobs_known ? 0 : check_file(s->blobs, root, "", err);
	if (root->type != CASFS_NODE_DIRECTORY)
		return 0;

	char name[CASFS_B3_STR_LEN + 1];
	casfs_b3_format(root->digest, name);
	struct casfs_directory d = { 0 };
	int r = casfs_directory_get(s->directories, root->digest, &d, err);
	if (r < 0)
		return casfs_error_prefix(err, r, "'%s': root directory", root->name);
	uint64_t size;
	r = casfs_directory_size(&d, &size);
	casfs_directory_release(&d);
	if (r < 0)
		return casfs_error_set(err, -EBADMSG, "'%s': directory %s: size overflows",
				       root->name, name);
	if (size != root->size)
		return casfs_error_set(err, -EBADMSG,
				       "'%s': root node has size %llu, directory %s has size %llu",
				       root->name, (unsigned long long)root->size, name,
				       (unsigned long long)size);
	struct closure_check c = { s->blobs, blobs_known, err };
	r = casfs_directory_get_closure(s->directories, root->digest, check_dir_cb, &c, err);
	if (r < 0)
		return casfs_error_prefix(err, r, "'%s'", root->name);
	return 0;
}

/* The root node's name is the store path basename: it must begin with the
 * nixbase32 of the digest it is registered under. */
static int check_name(const uint8_t digest[CASFS_STORE_DIGEST_LEN], const struct casfs_node *n,
		      struct casfs_error *err)
{
	char want[CASFS_NIXBASE32_LEN(CASFS_STORE_DIGEST_LEN) + 1];
	size_t len = casfs_nixbase32_encode(digest, CASFS_STORE_DIGEST_LEN, want);
	if (n->name_len <= len + 1 || memcmp(n->name, want, len) != 0 || n->name[len] != '-')
		return casfs_error_set(err, -EBADMSG,
				       "path info node name '%s' does not belong to store path digest %s",
				       n->name, want);
	return 0;
}

/* Each reference is named by its basename, and every one but the path
 * itself is registered already: a store path never appears before its
 * closure (Nix's closure property). */
static int check_references(struct casfs_store *s, const uint8_t digest[CASFS_STORE_DIGEST_LEN],
			    const struct casfs_pathinfo *pi, struct casfs_error *err)
{
	for (size_t i = 0; i < pi->n_references; i++) {
		const char *ref = pi->reference_names[i];
		struct casfs_store_path sp;
		int r = casfs_store_path_parse_basename(ref, strlen(ref), &sp, err);
		if (r < 0)
			return casfs_error_prefix(err, -EBADMSG, "'%s': reference %zu", pi->node.name, i);
		if (memcmp(sp.digest, pi->references[i], CASFS_STORE_DIGEST_LEN) != 0)
			return casfs_error_set(err, -EBADMSG,
					       "'%s': reference name '%s' does not match its digest",
					       pi->node.name, ref);
		if (!memcmp(sp.digest, digest, CASFS_STORE_DIGEST_LEN))
			continue;
		struct casfs_pathinfo have = { 0 };
		r = casfs_pathinfo_get(s->pathinfos, sp.digest, &have, err);
		casfs_pathinfo_release(&have);
		if (r == -ENOENT)
			return casfs_error_set(err, r, "'%s': reference '%s' is not in the store",
					       pi->node.name, ref);
		if (r < 0)
			return casfs_error_prefix(err, r, "'%s': reference '%s'", pi->node.name, ref);
	}
	return 0;
}

static int add_pathinfo(struct casfs_store *s, const uint8_t digest[CASFS_STORE_DIGEST_LEN],
			const struct casfs_pathinfo *pi, bool blobs_known, struct casfs_error *err)
{
	int r = casfs_pathinfo_validate(pi, err);
	if (r < 0)
		return r;
	r = check_name(digest, &pi->node, err);
	if (r < 0)
		return r;
	r = check_references(s, digest, pi, err);
	if (r < 0)
		return r;
	r = check_closure(s, &pi->node, blobs_known, err);
	if (r < 0)
		return r;
	/* Blobs were written without fsync; make them durable before the
	 * PathInfo (whose commit is durable) can point at them. */
	r = casfs_blob_sync(s->blobs);
	if (r < 0)
		return casfs_error_set(err, r, "cannot sync blobs: %s", strerror(-r));
	return casfs_pathinfo_put(s->pathinfos, digest, pi, err);
}

int casfs_store_add_pathinfo(struct casfs_store *s, const uint8_t digest[CASFS_STORE_DIGEST_LEN],
			     const struct casfs_pathinfo *pi, struct casfs_error *err)
{
	return add_pathinfo(s, digest, pi, false, err);
}

int casfs_store_add_ingested(struct casfs_store *s, const uint8_t digest[CASFS_STORE_DIGEST_LEN],
			     const struct casfs_pathinfo *pi, struct casfs_error *err)
{
	return add_pathinfo(s, digest, pi, true, err);
}
