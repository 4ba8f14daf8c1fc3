/* Closures of directories: the validation every backend relies on before
 * put_many, and the breadth-first walk that hands a closure back. */
#include "directoryservice.h"

#include <errno.h>
#include <search.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../basic/buf.h"
#include "../basic/util.h"

static int digest_cmp(const void *a, const void *b)
{
	return memcmp(a, b, CASFS_B3_LEN);
}

/* One directory of a closure being put; `digest` first so the index tree
 * compares on it. */
struct item {
	uint8_t digest[CASFS_B3_LEN];
	size_t pos;
	uint64_t size;
	bool reachable;
	struct casfs_buf encoded;
};

static void noop_free(void *p)
{
	(void)p;
}

static struct item *find_item(void *index, const uint8_t digest[CASFS_B3_LEN])
{
	struct item **p = tfind(digest, &index, digest_cmp);
	return p ? *p : NULL;
}

/* The size a DirectoryNode pointing at a directory already stored must
 * carry: read it back and count. */
static int stored_size(struct casfs_directory_service *s, const uint8_t digest[CASFS_B3_LEN],
		       uint64_t *ret, struct casfs_error *err)
{
	struct casfs_directory d = { 0 };
	int r = casfs_directory_get(s, digest, &d, err);
	if (r < 0)
		return r;
	r = casfs_directory_size(&d, ret);
	casfs_directory_release(&d);
	return r;
}

/* Every child of dirs[i] is earlier in the list or in the service, with the
 * right size. */
static int check_children(struct casfs_directory_service *s, const struct casfs_directory *d,
			  const char *self, void *index, struct casfs_error *err)
{
	for (size_t k = 0; k < d->n_directories; k++) {
		const struct casfs_node *c = &d->directories[k];
		char child[CASFS_B3_STR_LEN + 1];
		casfs_b3_format(c->digest, child);
		uint64_t want;
		struct item *it = find_item(index, c->digest);
		if (it) {
			want = it->size;
		} else {
			int r = casfs_directory_has(s, c->digest);
			if (r == -ENOENT)
				return casfs_error_set(err, -EBADMSG,
						       "directory %s: entry '%s' points at %s, which is "
						       "neither earlier in the closure nor stored",
						       self, c->name, child);
			if (r < 0)
				return r;
			r = stored_size(s, c->digest, &want, err);
			if (r < 0)
				return r;
		}
		if (c->size != want)
			return casfs_error_set(err, -EBADMSG,
					       "directory %s: entry '%s' has size %llu, but %s has size %llu",
					       self, c->name, (unsigned long long)c->size, child,
					       (unsigned long long)want);
	}
	return 0;
}

int casfs_directory_put_closure(struct casfs_directory_service *s,
				const struct casfs_directory *dirs, size_t n,
				uint8_t ret_root[CASFS_B3_LEN], struct casfs_error *err)
{
	if (n == 0)
		return casfs_error_set(err, -EBADMSG, "empty directory closure");
	_cleanup_free_ struct item *items = calloc(n, sizeof(*items));
	_cleanup_free_ struct casfs_directory_entry *entries = calloc(n, sizeof(*entries));
	void *index = NULL;
	int r = 0;
	if (!items || !entries)
		return -ENOMEM;

	for (size_t i = 0; i < n; i++) {
		struct item *it = &items[i];
		it->pos = i;
		r = casfs_directory_validate(&dirs[i], err);
		if (r < 0) {
			casfs_error_prefix(err, r, "directory %zu of the closure", i);
			goto out;
		}
		r = casfs_directory_encode(&dirs[i], &it->encoded);
		if (r < 0)
			goto out;
		casfs_b3(it->encoded.data, it->encoded.len, it->digest);
		r = casfs_directory_size(&dirs[i], &it->size);
		if (r < 0) {
			r = casfs_error_set(err, -EBADMSG, "directory %zu of the closure: size overflows", i);
			goto out;
		}
		char self[CASFS_B3_STR_LEN + 1];
		casfs_b3_format(it->digest, self);
		/* Children are looked up before `it` joins the index, so "earlier
		 * in the list" holds strictly. */
		r = check_children(s, &dirs[i], self, index, err);
		if (r < 0)
			goto out;
		struct item **p = tsearch(it, &index, digest_cmp);
		if (!p) {
			r = -ENOMEM;
			goto out;
		}
		if (*p != it) {
			r = casfs_error_set(err, -EBADMSG,
					    "directory %s appears twice in the closure (at %zu and %zu)",
					    self, (*p)->pos, i);
			goto out;
		}
	}

	/* Children sit strictly before their parents, so walking from the root
	 * backwards settles each item's reachability before it is visited. */
	items[n - 1].reachable = true;
	for (size_t i = n; i-- > 0;) {
		if (!items[i].reachable) {
			char self[CASFS_B3_STR_LEN + 1];
			casfs_b3_format(items[i].digest, self);
			r = casfs_error_set(err, -EBADMSG,
					    "directory %s (at %zu) is not connected to the closure's root",
					    self, i);
			goto out;
		}
		for (size_t k = 0; k < dirs[i].n_directories; k++) {
			struct item *c = find_item(index, dirs[i].directories[k].digest);
			if (c)
				c->reachable = true;
		}
	}

	for (size_t i = 0; i < n; i++) {
		entries[i].dir = &dirs[i];
		memcpy(entries[i].digest, items[i].digest, CASFS_B3_LEN);
		entries[i].encoded = items[i].encoded.data;
		entries[i].encoded_len = items[i].encoded.len;
	}
	r = s->ops->put_many(s, entries, n, err);
	if (r >= 0 && ret_root)
		memcpy(ret_root, items[n - 1].digest, CASFS_B3_LEN);
out:
	tdestroy(index, noop_free);
	for (size_t i = 0; i < n; i++)
		casfs_buf_release(&items[i].encoded);
	return r < 0 ? r : 0;
}

int casfs_directory_get_closure(struct casfs_directory_service *s,
				const uint8_t root[CASFS_B3_LEN],
				int (*cb)(const uint8_t digest[CASFS_B3_LEN],
					  const struct casfs_directory *d, void *userdata),
				void *userdata, struct casfs_error *err)
{
	/* The queue holds digests to visit; `seen` holds heap copies (the queue
	 * moves when it grows, so the tree cannot point into it). */
	struct casfs_buf queue = CASFS_BUF_INIT;
	void *seen = NULL;
	int r = casfs_buf_append(&queue, root, CASFS_B3_LEN);
	uint8_t *first = r < 0 ? NULL : malloc(CASFS_B3_LEN);
	if (!first || !tsearch(memcpy(first, root, CASFS_B3_LEN), &seen, digest_cmp)) {
		free(first);
		r = -ENOMEM;
	}

	for (size_t off = 0; r >= 0 && off < queue.len; off += CASFS_B3_LEN) {
		uint8_t digest[CASFS_B3_LEN];
		memcpy(digest, queue.data + off, CASFS_B3_LEN);
		struct casfs_directory d = { 0 };
		r = casfs_directory_get(s, digest, &d, err);
		if (r < 0)
			break;
		r = cb(digest, &d, userdata);
		for (size_t k = 0; r >= 0 && k < d.n_directories; k++) {
			const uint8_t *c = d.directories[k].digest;
			if (tfind(c, &seen, digest_cmp))
				continue;
			uint8_t *copy = malloc(CASFS_B3_LEN);
			if (!copy || !tsearch(memcpy(copy, c, CASFS_B3_LEN), &seen, digest_cmp)) {
				free(copy);
				r = -ENOMEM;
				break;
			}
			r = casfs_buf_append(&queue, c, CASFS_B3_LEN);
		}
		casfs_directory_release(&d);
	}
	tdestroy(seen, free);
	casfs_buf_release(&queue);
	return r < 0 ? r : 0;
}
