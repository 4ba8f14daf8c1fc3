/* Private to src/fs: the inode table and the state shared by fs.c,
 * fs-inode.c and fs-file.c.  Everything below `lock` in struct casfs_fs is
 * guarded by it unless said otherwise. */
#pragma once

#include <pthread.h>

#include "basic/keyset.h"
#include "fs.h"

/* The identity of a node (see the design note in fs-inode.c). */
#define FS_KEY_LEN 32

struct fs_inode {
	uint64_t ino;
	struct fs_inode *next;      /* hash chain in fs->buckets */
	uint8_t key[FS_KEY_LEN];
	uint64_t nlookup;           /* kernel references */
	uint64_t pins;              /* open handles and operations in flight */

	enum casfs_node_type type;
	uint8_t digest[CASFS_B3_LEN]; /* file: blob; directory: Directory */
	uint64_t size;                /* file: bytes */
	bool executable;
	char *target;                 /* symlink: owned */
	size_t target_len;
	uint64_t parent_ino;          /* directory: for ".." */

	/* Directory contents, once fetched: the message and its entries merged
	 * into one bytewise-sorted array of pointers into it.  Immutable once
	 * `populated` is set, so readers may use it unlocked while pinned. */
	bool populated;
	struct casfs_directory dir;
	const struct casfs_node **entries;
	size_t n_entries;
};

struct casfs_fs {
	struct casfs_store *store; /* borrowed */
	struct casfs_fs_options opts;

	pthread_mutex_t lock;
	struct fs_inode **buckets;
	size_t n_buckets; /* power of two */
	size_t n_inodes;
	struct fs_inode root;

	/* Blobs verified during this mount (fs-file.c); own lock. */
	pthread_mutex_t verified_lock;
	struct casfs_keyset verified;
};

void fs_log(struct casfs_fs *fs, enum casfs_fs_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Identity keys and the inode numbers derived from them. */
void fs_key_of_node(const uint8_t parent_key[FS_KEY_LEN], const struct casfs_node *n,
		    uint8_t ret[FS_KEY_LEN]);
uint64_t fs_key_ino(const uint8_t key[FS_KEY_LEN]);

/* Attributes of a node or inode. */
void fs_attr_of_node(const struct casfs_node *n, uint64_t ino, struct stat *st);
void fs_attr_of_inode(const struct fs_inode *i, struct stat *st);

/* Table operations; call with fs->lock held. */
int fs_table_init(struct casfs_fs *fs);
void fs_table_release(struct casfs_fs *fs);
struct fs_inode *fs_inode_get(struct casfs_fs *fs, uint64_t ino);
/* The live inode for node `n` under the directory with key `parent_key`
 * and number `parent_ino`, created (with no lookups and no pins) if
 * needed.  NULL on OOM. */
struct fs_inode *fs_inode_for_node(struct casfs_fs *fs, const uint8_t parent_key[FS_KEY_LEN],
				   uint64_t parent_ino, const struct casfs_node *n);
/* Free the inode if nothing references it any more. */
void fs_inode_maybe_free(struct casfs_fs *fs, struct fs_inode *i);

/* Fill a directory inode's contents from the DirectoryService if not done
 * yet.  Call WITHOUT the lock, with the inode pinned. */
int fs_inode_populate(struct casfs_fs *fs, struct fs_inode *i);
/* Binary search in a sorted entry array; NULL if absent. */
const struct casfs_node *fs_entries_find(const struct casfs_node *const *entries, size_t n,
					 const char *name, size_t name_len);
