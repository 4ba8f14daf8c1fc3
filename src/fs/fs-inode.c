/* The inode table.
 *
 * DESIGN NOTE: inode numbers.
 *
 * An inode number is derived from the identity of what it shows, not from
 * the order things were looked up in, so a path keeps its number for the
 * whole mount even after the kernel forgot it and looked it up again (and,
 * as a bonus, across remounts of the same store):
 *
 *   key(file)      = BLAKE3("file" 0 || blob digest || executable byte ||
 *                           size, 8 bytes little-endian)
 *   key(symlink)   = BLAKE3("symlink" 0 || target)
 *   key(directory) = BLAKE3("dir" 0 || key(parent directory) || name)
 *   key(root)      = 32 zero bytes
 *   ino            = the first 8 key bytes, little-endian, shifted right by
 *                    one (63 bits), 0 and 1 moved to 2 and 3.
 *
 * Sharing.  Files with the same content, size and executable flag, and symlinks
 * with the same target, get the same key and so the same inode: everything
 * the kernel sees of them (type, mode, size, target, content) is identical,
 * and the page cache holds shared content once.  (The size is in the key
 * so that a damaged or lying directory that claims another size for a
 * digest gets an inode of its own, whose reads fail with EIO, instead of
 * changing the size every other node of that digest shows.)  They still report
 * st_nlink 1, which is the truth as far as tools are concerned: tar, cp -a,
 * rsync -H and du only treat a (dev, ino) pair as a hard link when
 * st_nlink > 1, so an archive of the mount stores every copy in full, just
 * like one of the source tree.  (`find -samefile` does report the copies;
 * they are the same bytes.)  Directories never share: their key includes
 * their path, because Linux allows one dentry per directory inode and would
 * move a shared directory from one name to the other; directory inodes are
 * therefore also the only ones that truly know their parent.  (A file or
 * symlink inode remembers the directory, and the position in it, it was
 * first met in: only a hint, for prefetching its neighbours.)
 *
 * Collisions.  Two live inodes whose 63-bit numbers collide (odds about
 * n^2 / 2^64 for n live inodes) are separated by linear probing to the next
 * free number; only then can a number differ between two lookups of the
 * same path.  readdir reports the unprobed number as d_ino.
 *
 * Lifetime.  An inode lives while the kernel holds lookups on it
 * (`nlookup`) or an open handle or an operation in flight pins it
 * (`pins`); then it is freed with its directory contents.  Children are
 * not referenced by their parent: a directory's contents are node
 * descriptions, and an inode object exists only for what the kernel or a
 * handle holds.  Memory is therefore one struct per live inode plus the
 * Directory message of each live, populated directory. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/util.h"
#include "castore/directoryservice.h"
#include "fs-internal.h"

void fs_log(struct casfs_fs *fs, enum casfs_fs_log_level level, const char *fmt, ...)
{
	if (!fs->opts.log)
		return;
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fs->opts.log(fs->opts.log_userdata, level, line);
}

void fs_key_of_node(const uint8_t parent_key[FS_KEY_LEN], const struct casfs_node *n,
		    uint8_t ret[FS_KEY_LEN])
{
	struct casfs_b3_hasher h;
	casfs_b3_init(&h);
	switch (n->type) {
	case CASFS_NODE_FILE: {
		uint8_t x = n->executable ? 1 : 0, size[8];
		for (int i = 0; i < 8; i++)
			size[i] = (uint8_t)(n->size >> (8 * i));
		casfs_b3_update(&h, "file", 5);
		casfs_b3_update(&h, n->digest, CASFS_B3_LEN);
		casfs_b3_update(&h, &x, 1);
		casfs_b3_update(&h, size, sizeof(size));
		break;
	}
	case CASFS_NODE_SYMLINK:
		casfs_b3_update(&h, "symlink", 8);
		casfs_b3_update(&h, n->target, n->target_len);
		break;
	default:
		casfs_b3_update(&h, "dir", 4);
		casfs_b3_update(&h, parent_key, FS_KEY_LEN);
		casfs_b3_update(&h, n->name, n->name_len);
		break;
	}
	casfs_b3_final(&h, ret);
}

uint64_t fs_key_ino(const uint8_t key[FS_KEY_LEN])
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | key[i];
	v >>= 1;
	return v < 2 ? v + 2 : v;
}

static void attr_fill(struct stat *st, uint64_t ino, enum casfs_node_type type, uint64_t size,
		      bool executable)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = 0;
	st->st_gid = 0;
	st->st_blksize = 4096;
	/* Nix canonicalises store timestamps to 1. */
	st->st_atim.tv_sec = st->st_mtim.tv_sec = st->st_ctim.tv_sec = 1;
	switch (type) {
	case CASFS_NODE_FILE:
		st->st_mode = S_IFREG | (executable ? 0555 : 0444);
		st->st_nlink = 1;
		break;
	case CASFS_NODE_SYMLINK:
		st->st_mode = S_IFLNK | 0777;
		st->st_nlink = 1;
		break;
	default:
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		size = 0;
		break;
	}
	/* off_t is signed; a castore size above INT64_MAX cannot be shown. */
	if (size > INT64_MAX)
		size = INT64_MAX;
	st->st_size = (off_t)size;
	st->st_blocks = (blkcnt_t)(size / 512 + (size % 512 != 0));
}

void fs_attr_of_node(const struct casfs_node *n, uint64_t ino, struct stat *st)
{
	uint64_t size = n->type == CASFS_NODE_SYMLINK ? n->target_len : n->size;
	attr_fill(st, ino, n->type, size, n->executable);
}

void fs_attr_of_inode(const struct fs_inode *i, struct stat *st)
{
	uint64_t size = i->type == CASFS_NODE_SYMLINK ? i->target_len : i->size;
	attr_fill(st, i->ino, i->type, size, i->executable);
}

int fs_table_init(struct casfs_fs *fs)
{
	fs->n_buckets = 1024;
	fs->buckets = calloc(fs->n_buckets, sizeof(*fs->buckets));
	if (!fs->buckets)
		return -ENOMEM;
	fs->n_inodes = 0;
	return 0;
}

static void inode_destroy(struct fs_inode *i)
{
	free(i->target);
	free(i->entries);
	casfs_directory_release(&i->dir);
	free(i);
}

void fs_table_release(struct casfs_fs *fs)
{
	for (size_t b = 0; b < fs->n_buckets; b++) {
		struct fs_inode *i = fs->buckets[b];
		while (i) {
			struct fs_inode *next = i->next;
			inode_destroy(i);
			i = next;
		}
	}
	free(fs->buckets);
	fs->buckets = NULL;
	fs->n_inodes = 0;
}

static size_t bucket_of(const struct casfs_fs *fs, uint64_t ino)
{
	/* Inode numbers are hash output already; mix anyway for probed ones. */
	return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 20) & (fs->n_buckets - 1);
}

void fs_held_add(struct casfs_fs *fs, size_t n)
{
	fs->held += n;
	if (fs->held > fs->held_high)
		fs->held_high = fs->held;
}

struct fs_inode *fs_inode_get(struct casfs_fs *fs, uint64_t ino)
{
	if (ino == CASFS_FS_ROOT_INO)
		return &fs->root;
	for (struct fs_inode *i = fs->buckets[bucket_of(fs, ino)]; i; i = i->next)
		if (i->ino == ino)
			return i;
	return NULL;
}

/* Grow when the load factor passes 1; on OOM keep the old (slower) table. */
static void table_maybe_grow(struct casfs_fs *fs)
{
	if (fs->n_inodes < fs->n_buckets || fs->n_buckets > SIZE_MAX / 2 / sizeof(void *))
		return;
	size_t old_n = fs->n_buckets;
	struct fs_inode **old = fs->buckets;
	struct fs_inode **nb = calloc(old_n * 2, sizeof(*nb));
	if (!nb)
		return;
	fs->buckets = nb;
	fs->n_buckets = old_n * 2;
	for (size_t b = 0; b < old_n; b++) {
		struct fs_inode *i = old[b];
		while (i) {
			struct fs_inode *next = i->next;
			size_t nbkt = bucket_of(fs, i->ino);
			i->next = nb[nbkt];
			nb[nbkt] = i;
			i = next;
		}
	}
	free(old);
}

struct fs_inode *fs_inode_for_node(struct casfs_fs *fs, const uint8_t parent_key[FS_KEY_LEN],
				   uint64_t parent_ino, size_t index, const struct casfs_node *n)
{
	uint8_t key[FS_KEY_LEN];
	fs_key_of_node(parent_key, n, key);
	uint64_t ino = fs_key_ino(key);
	for (;;) {
		struct fs_inode *i = fs_inode_get(fs, ino);
		if (!i)
			break;
		if (memcmp(i->key, key, FS_KEY_LEN) == 0)
			return i;
		ino = ino == UINT64_MAX >> 1 ? 2 : ino + 1; /* collision: probe */
	}

	struct fs_inode *i = calloc(1, sizeof(*i));
	if (!i)
		return NULL;
	i->ino = ino;
	memcpy(i->key, key, FS_KEY_LEN);
	i->type = n->type;
	i->parent_ino = parent_ino;
	i->index = index < FS_NO_INDEX ? (uint32_t)index : FS_NO_INDEX;
	if (n->type == CASFS_NODE_SYMLINK) {
		i->target = malloc(n->target_len + 1);
		if (!i->target) {
			free(i);
			return NULL;
		}
		memcpy(i->target, n->target, n->target_len);
		i->target[n->target_len] = 0;
		i->target_len = n->target_len;
	} else {
		memcpy(i->digest, n->digest, CASFS_B3_LEN);
		i->size = n->size;
		i->executable = n->type == CASFS_NODE_FILE && n->executable;
	}
	size_t b = bucket_of(fs, ino);
	i->next = fs->buckets[b];
	fs->buckets[b] = i;
	fs->n_inodes++;
	fs_held_add(fs, 1);
	table_maybe_grow(fs);
	return i;
}

void fs_inode_maybe_free(struct casfs_fs *fs, struct fs_inode *i)
{
	if (i == &fs->root || i->nlookup > 0 || i->pins > 0)
		return;
	struct fs_inode **p = &fs->buckets[bucket_of(fs, i->ino)];
	while (*p && *p != i)
		p = &(*p)->next;
	if (*p) {
		*p = i->next;
		fs->n_inodes--;
		fs->held -= 1 + (i->populated ? i->n_entries : 0);
	}
	inode_destroy(i);
}

size_t fs_entries_find(const struct casfs_node *const *entries, size_t n, const char *name,
		       size_t name_len)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct casfs_node *e = entries[mid];
		int c = casfs_name_cmp(e->name, e->name_len, name, name_len);
		if (c == 0)
			return mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return n;
}

/* Merge the three sorted lists of a Directory into one sorted array. */
static int merge_entries(const struct casfs_directory *d, const struct casfs_node ***ret,
			 size_t *ret_n)
{
	size_t n = casfs_directory_n_entries(d);
	const struct casfs_node **out = calloc(n ? n : 1, sizeof(*out));
	if (!out)
		return -ENOMEM;
	const struct casfs_node *lists[3] = { d->directories, d->files, d->symlinks };
	size_t lens[3] = { d->n_directories, d->n_files, d->n_symlinks };
	size_t pos[3] = { 0, 0, 0 };
	for (size_t k = 0; k < n; k++) {
		int best = -1;
		for (int l = 0; l < 3; l++) {
			if (pos[l] >= lens[l])
				continue;
			const struct casfs_node *c = &lists[l][pos[l]];
			const struct casfs_node *b = best < 0 ? NULL : &lists[best][pos[best]];
			if (!b || casfs_name_cmp(c->name, c->name_len, b->name, b->name_len) < 0)
				best = l;
		}
		out[k] = &lists[best][pos[best]++];
	}
	*ret = out;
	*ret_n = n;
	return 0;
}

int fs_inode_populate(struct casfs_fs *fs, struct fs_inode *i)
{
	pthread_mutex_lock(&fs->lock);
	bool done = i->populated;
	pthread_mutex_unlock(&fs->lock);
	if (done)
		return 0;

	/* Fetch without the lock; a concurrent populate of the same inode
	 * does the same work and the loser's copy is dropped. */
	char b3[CASFS_B3_STR_LEN + 1];
	casfs_b3_format(i->digest, b3);
	struct casfs_error err = { 0 };
	struct casfs_directory dir = { 0 };
	int r = casfs_directory_get(fs->store->directories, i->digest, &dir, &err);
	if (r < 0) {
		fs_log(fs, CASFS_FS_LOG_ERROR, "directory %s: %s", b3,
		       casfs_error_message(&err, r));
		return r == -ENOMEM ? r : -EIO;
	}
	/* The service checked the digest; check the semantic rules too, as
	 * names go to the kernel (a remote service is not trusted). */
	r = casfs_directory_validate(&dir, &err);
	if (r < 0) {
		fs_log(fs, CASFS_FS_LOG_ERROR, "directory %s is invalid: %s", b3,
		       casfs_error_message(&err, r));
		casfs_directory_release(&dir);
		return -EIO;
	}
	const struct casfs_node **entries = NULL;
	size_t n = 0;
	r = merge_entries(&dir, &entries, &n);
	if (r < 0) {
		casfs_directory_release(&dir);
		return r;
	}

	pthread_mutex_lock(&fs->lock);
	if (!i->populated) {
		i->dir = dir;
		i->entries = entries;
		i->n_entries = n;
		i->populated = true;
		fs_held_add(fs, n);
		memset(&dir, 0, sizeof(dir));
		entries = NULL;
	}
	pthread_mutex_unlock(&fs->lock);
	free(entries);
	casfs_directory_release(&dir);
	return 0;
}
