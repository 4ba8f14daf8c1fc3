/* The filesystem core: lookups, attributes and directories.  Files and
 * xattrs are in fs-file.c, the inode table in fs-inode.c. */
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdlib.h>
#include <string.h>

#include "basic/util.h"
#include "fs-internal.h"
#include "storepath/storepath.h"

static const uint8_t root_key[FS_KEY_LEN]; /* all zero */

int casfs_fs_new(struct casfs_store *store, const struct casfs_fs_options *opts,
		 struct casfs_fs **ret)
{
	struct casfs_fs *fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->store = store;
	if (opts)
		fs->opts = *opts;
	if (fs_table_init(fs) < 0) {
		free(fs);
		return -ENOMEM;
	}
	if (fs_filecache_init(&fs->files, fs->opts.max_open_files) < 0) {
		fs_table_release(fs);
		free(fs);
		return -ENOMEM;
	}
	pthread_mutex_init(&fs->lock, NULL);
	pthread_mutex_init(&fs->verified_lock, NULL);
	casfs_keyset_init(&fs->verified);
	pthread_mutex_init(&fs->damaged_lock, NULL);
	casfs_keyset_init(&fs->damaged);
	fs->root.ino = CASFS_FS_ROOT_INO;
	fs->root.type = CASFS_NODE_DIRECTORY;
	fs->root.parent_ino = CASFS_FS_ROOT_INO;
	fs->root.pins = 1;
	int r = fs_prefetch_start(fs);
	if (r < 0) {
		casfs_fs_free(fs);
		return r;
	}
	*ret = fs;
	return 0;
}

void casfs_fs_free(struct casfs_fs *fs)
{
	if (!fs)
		return;
	fs_prefetch_stop(fs); /* its threads hold cached files */
	fs_filecache_release(&fs->files);
	fs_table_release(fs);
	casfs_keyset_release(&fs->verified);
	casfs_keyset_release(&fs->damaged);
	pthread_mutex_destroy(&fs->lock);
	pthread_mutex_destroy(&fs->verified_lock);
	pthread_mutex_destroy(&fs->damaged_lock);
	free(fs);
}

int fs_parse_basename(const char *name, uint8_t ret[CASFS_STORE_DIGEST_LEN])
{
	struct casfs_store_path sp;
	size_t len = strnlen(name, CASFS_STORE_PATH_BASENAME_MAX + 1);
	if (len > CASFS_STORE_PATH_BASENAME_MAX ||
	    casfs_store_path_parse_basename(name, len, &sp, NULL) < 0)
		return -ENOENT;
	memcpy(ret, sp.digest, CASFS_STORE_DIGEST_LEN);
	return 0;
}

static int lookup_root(struct casfs_fs *fs, const char *name, struct stat *ret_attr)
{
	uint8_t digest[CASFS_STORE_DIGEST_LEN];
	if (fs_parse_basename(name, digest) < 0)
		return -ENOENT;

	/* Fast path: a store path directory the kernel already holds. */
	struct casfs_node probe = { .type = CASFS_NODE_DIRECTORY, .name = (char *)name,
				    .name_len = strlen(name) };
	uint8_t key[FS_KEY_LEN];
	fs_key_of_node(root_key, &probe, key);
	pthread_mutex_lock(&fs->lock);
	struct fs_inode *i = fs_inode_get(fs, fs_key_ino(key));
	if (i && memcmp(i->key, key, FS_KEY_LEN) == 0) {
		i->nlookup++;
		fs_attr_of_inode(i, ret_attr);
		pthread_mutex_unlock(&fs->lock);
		return 0;
	}
	pthread_mutex_unlock(&fs->lock);

	struct casfs_error err = { 0 };
	struct casfs_pathinfo pi = { 0 };
	int r = casfs_pathinfo_get(fs->store->pathinfos, digest, &pi, &err);
	if (r == -ENOENT)
		return -ENOENT;
	if (r < 0) {
		fs_log(fs, CASFS_FS_LOG_ERROR, "path info of %s: %s", name,
		       casfs_error_message(&err, r));
		return r == -ENOMEM ? r : -EIO;
	}
	if (pi.node.name_len != probe.name_len || memcmp(pi.node.name, name, probe.name_len) != 0) {
		/* Same digest, another name: not this store path. */
		casfs_pathinfo_release(&pi);
		return -ENOENT;
	}
	r = casfs_node_validate(&pi.node, &err);
	if (r < 0) {
		fs_log(fs, CASFS_FS_LOG_ERROR, "path info of %s has an invalid root node: %s", name,
		       casfs_error_message(&err, r));
		casfs_pathinfo_release(&pi);
		return -EIO;
	}
	pthread_mutex_lock(&fs->lock);
	i = fs_inode_for_node(fs, root_key, CASFS_FS_ROOT_INO, FS_NO_INDEX, &pi.node);
	if (i) {
		i->nlookup++;
		fs_attr_of_inode(i, ret_attr);
	}
	pthread_mutex_unlock(&fs->lock);
	casfs_pathinfo_release(&pi);
	return i ? 0 : -ENOMEM;
}

/* Pin directory `ino` and make sure its contents are loaded.  On success
 * the caller unpins with unpin(). */
static int pin_directory(struct casfs_fs *fs, uint64_t ino, struct fs_inode **ret)
{
	pthread_mutex_lock(&fs->lock);
	struct fs_inode *i = fs_inode_get(fs, ino);
	int r = !i ? -ESTALE : i->type != CASFS_NODE_DIRECTORY ? -ENOTDIR : 0;
	if (r == 0)
		i->pins++;
	pthread_mutex_unlock(&fs->lock);
	if (r < 0)
		return r;
	if (i != &fs->root) {
		r = fs_inode_populate(fs, i);
		if (r < 0) {
			pthread_mutex_lock(&fs->lock);
			i->pins--;
			fs_inode_maybe_free(fs, i);
			pthread_mutex_unlock(&fs->lock);
			return r;
		}
	}
	*ret = i;
	return 0;
}

/* Call with fs->lock held. */
static void unpin_locked(struct casfs_fs *fs, struct fs_inode *i)
{
	i->pins--;
	fs_inode_maybe_free(fs, i);
}

int casfs_fs_lookup(struct casfs_fs *fs, uint64_t parent, const char *name, struct stat *ret_attr)
{
	if (parent == CASFS_FS_ROOT_INO)
		return lookup_root(fs, name, ret_attr);

	struct fs_inode *p;
	int r = pin_directory(fs, parent, &p);
	if (r < 0)
		return r;
	size_t k = fs_entries_find(p->entries, p->n_entries, name, strlen(name));
	pthread_mutex_lock(&fs->lock);
	if (k == p->n_entries) {
		r = -ENOENT;
	} else {
		struct fs_inode *c = fs_inode_for_node(fs, p->key, p->ino, k, p->entries[k]);
		if (!c) {
			r = -ENOMEM;
		} else {
			c->nlookup++;
			fs_attr_of_inode(c, ret_attr);
		}
	}
	unpin_locked(fs, p);
	pthread_mutex_unlock(&fs->lock);
	return r;
}

/* Freed inodes and directories go back to malloc's free lists, and glibc
 * returns memory to the system only from the top of a heap, so a daemon
 * whose table shrank (the kernel forgot what it held: memory pressure,
 * drop_caches) would keep its peak size.  Once the table has halved since
 * the last time, by a worthwhile amount, hand free pages back. */
#define TRIM_MIN_HELD 16384 /* about 1.6 MB */

static bool should_trim_locked(struct casfs_fs *fs)
{
	if (fs->held_high < fs->held + TRIM_MIN_HELD || fs->held > fs->held_high / 2)
		return false;
	fs->held_high = fs->held;
	return true;
}

void casfs_fs_forget(struct casfs_fs *fs, uint64_t ino, uint64_t nlookup)
{
	pthread_mutex_lock(&fs->lock);
	struct fs_inode *i = fs_inode_get(fs, ino);
	if (i && i != &fs->root) {
		i->nlookup -= MIN(nlookup, i->nlookup);
		fs_inode_maybe_free(fs, i);
	}
	bool trim = should_trim_locked(fs);
	pthread_mutex_unlock(&fs->lock);
#ifdef __GLIBC__
	if (trim)
		malloc_trim(0);
#else
	(void)trim;
#endif
}

int casfs_fs_getattr(struct casfs_fs *fs, uint64_t ino, struct stat *ret_attr)
{
	pthread_mutex_lock(&fs->lock);
	struct fs_inode *i = fs_inode_get(fs, ino);
	if (i)
		fs_attr_of_inode(i, ret_attr);
	pthread_mutex_unlock(&fs->lock);
	return i ? 0 : -ESTALE;
}

int casfs_fs_readlink(struct casfs_fs *fs, uint64_t ino, char **ret_target)
{
	int r = 0;
	char *t = NULL;
	pthread_mutex_lock(&fs->lock);
	struct fs_inode *i = fs_inode_get(fs, ino);
	if (!i)
		r = -ESTALE;
	else if (i->type != CASFS_NODE_SYMLINK)
		r = -EINVAL;
	else if (!(t = strdup(i->target)))
		r = -ENOMEM;
	pthread_mutex_unlock(&fs->lock);
	if (r == 0)
		*ret_target = t;
	return r;
}

int casfs_fs_statfs(struct casfs_fs *fs, uint64_t ino, struct statvfs *ret)
{
	(void)fs;
	(void)ino;
	memset(ret, 0, sizeof(*ret));
	ret->f_bsize = 4096;
	ret->f_frsize = 4096;
	ret->f_namemax = CASFS_NAME_MAX;
	ret->f_flag = ST_RDONLY | ST_NOSUID | ST_NODEV;
	return 0;
}

/* Directories. */

static void dir_free(struct casfs_fs_dir *d)
{
	fs_root_list_free(d->root);
	free(d);
}

int casfs_fs_opendir(struct casfs_fs *fs, uint64_t ino, struct casfs_fs_dir **ret)
{
	if (ino == CASFS_FS_ROOT_INO && !fs->opts.list_root)
		return -EPERM;
	struct casfs_fs_dir *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->ino = d->parent_ino = CASFS_FS_ROOT_INO;
	if (ino == CASFS_FS_ROOT_INO) {
		int r = fs_root_list_new(fs, &d->root);
		if (r < 0) {
			dir_free(d);
			return r;
		}
	} else {
		struct fs_inode *i;
		int r = pin_directory(fs, ino, &i);
		if (r < 0) {
			free(d);
			return r;
		}
		d->inode = i;
		d->ino = i->ino;
		d->parent_ino = i->parent_ino;
		memcpy(d->key, i->key, FS_KEY_LEN);
		d->entries = i->entries;
		d->n_entries = i->n_entries;
	}
	*ret = d;
	return 0;
}

int fs_dir_emit(struct casfs_fs *fs, const struct casfs_fs_dir *d, size_t index,
		const struct casfs_node *e, bool plus, uint64_t next, casfs_fs_dirent_cb cb,
		void *userdata)
{
	struct stat st;
	if (!plus) {
		/* The entries are immutable while the handle holds them. */
		uint8_t key[FS_KEY_LEN];
		fs_key_of_node(d->key, e, key);
		fs_attr_of_node(e, fs_key_ino(key), &st);
		return cb(userdata, e->name, &st, next) ? 1 : 0;
	}
	pthread_mutex_lock(&fs->lock);
	struct fs_inode *c = fs_inode_for_node(fs, d->key, d->ino, index, e);
	if (!c) {
		pthread_mutex_unlock(&fs->lock);
		return -ENOMEM;
	}
	fs_attr_of_inode(c, &st);
	bool full = cb(userdata, e->name, &st, next) != 0;
	if (full)
		fs_inode_maybe_free(fs, c);
	else
		c->nlookup++;
	pthread_mutex_unlock(&fs->lock);
	return full ? 1 : 0;
}

int casfs_fs_readdir(struct casfs_fs *fs, struct casfs_fs_dir *d, uint64_t offset, bool plus,
		     casfs_fs_dirent_cb cb, void *userdata)
{
	for (uint64_t k = offset;; k++) {
		if (k < 2) {
			struct stat st;
			uint64_t ino = k == 0 ? d->ino : d->parent_ino;
			struct casfs_node dot = { .type = CASFS_NODE_DIRECTORY };
			fs_attr_of_node(&dot, ino, &st);
			if (cb(userdata, k == 0 ? "." : "..", &st, k + 1))
				return 0;
			continue;
		}
		if (d->root)
			return fs_root_readdir(fs, d, k, plus, cb, userdata);
		if (k - 2 >= d->n_entries)
			return 0;
		int r = fs_dir_emit(fs, d, k - 2, d->entries[k - 2], plus, k + 1, cb, userdata);
		if (r != 0)
			return r < 0 ? r : 0;
	}
}

void casfs_fs_releasedir(struct casfs_fs *fs, struct casfs_fs_dir *d)
{
	if (!d)
		return;
	if (d->inode) {
		pthread_mutex_lock(&fs->lock);
		unpin_locked(fs, d->inode);
		pthread_mutex_unlock(&fs->lock);
	}
	dir_free(d);
}
