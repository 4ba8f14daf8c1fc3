/* Private to src/fs: the inode table and the state shared by fs.c,
 * fs-inode.c and fs-file.c.  Everything below `lock` in struct casfs_fs is
 * guarded by it unless said otherwise. */
#pragma once

#include <pthread.h>

#include "basic/keyset.h"
#include "fs.h"

/* The identity of a node (see the design note in fs-inode.c). */
#define FS_KEY_LEN 32
/* fs_inode.index of a node met outside a directory's entries (the root's
 * store paths). */
#define FS_NO_INDEX UINT32_MAX

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
	uint64_t parent_ino;          /* directory: for ".."; others: a hint */
	/* Files and symlinks: the position in parent_ino's entries where this
	 * inode was first met (FS_NO_INDEX if none): for prefetching. */
	uint32_t index;
	/* Directories: the entries before this one were handed to the
	 * prefetcher already (fs-prefetch.c). */
	uint32_t prefetch_next;

	/* Directory contents, once fetched: the message and its entries merged
	 * into one bytewise-sorted array of pointers into it.  Immutable once
	 * `populated` is set, so readers may use it unlocked while pinned. */
	bool populated;
	struct casfs_directory dir;
	const struct casfs_node **entries;
	size_t n_entries;
};

/* An open blob: from casfs_fs_open() (owned by its handle) or from the
 * file cache (fs-filecache.c, shared, refcounted). */
struct casfs_fs_file {
	struct casfs_blob_reader *reader;
	pthread_mutex_t lock; /* a reader belongs to one thread at a time */
	uint64_t size;
	int fd;               /* owned by the reader, -1 if none */
	/* Blobs of more than one group (unless no_verify): the checked
	 * outboard, and one bit per group set once its bytes were checked
	 * (atomic; see casfs_fs_file_check).  n == 0 otherwise: the blob was
	 * checked whole before the open succeeded. */
	struct casfs_outboard ob;
	uint64_t *checked;

	/* Cache bookkeeping (cached files only), guarded by fs->files.lock. */
	int state;            /* FS_FILE_OPENING, _READY or _FAILED */
	int error;            /* FAILED: the -errno of the open */
	uint64_t refs;
	uint8_t digest[CASFS_B3_LEN];
	struct casfs_fs_file *hnext;            /* hash chain */
	struct casfs_fs_file *lru_prev, *lru_next; /* unreferenced READY files */
};

enum { FS_FILE_OPENING, FS_FILE_READY, FS_FILE_FAILED };

/* The cache of open blobs behind casfs_fs_file_get(): at most `cap`
 * files (file descriptors) are kept open once no caller holds them. */
struct fs_filecache {
	pthread_mutex_t lock;
	pthread_cond_t opened; /* a file left FS_FILE_OPENING */
	struct casfs_fs_file **buckets;
	size_t n_buckets;      /* power of two */
	size_t n, cap;
	struct casfs_fs_file *lru_head, *lru_tail; /* most recently used first */
};

/* The prefetcher (fs-prefetch.c): blobs waiting to be opened and checked
 * in a ring, and the threads that do it. */
struct fs_prefetch_job {
	uint8_t digest[CASFS_B3_LEN];
	uint64_t size;
};

struct fs_prefetch {
	pthread_mutex_t lock;
	pthread_cond_t work;   /* a job was queued, or stop */
	pthread_cond_t idle;   /* nothing queued or running any more */
	pthread_t *threads;
	size_t n_threads;      /* 0: prefetching is off */
	struct fs_prefetch_job *ring;
	size_t head, len;      /* jobs ring[head .. head + len) modulo the size */
	size_t running;        /* jobs taken and not finished */
	bool stop;
};

struct casfs_fs {
	struct casfs_store *store; /* borrowed */
	struct casfs_fs_options opts;

	pthread_mutex_t lock;
	struct fs_inode **buckets;
	size_t n_buckets; /* power of two */
	size_t n_inodes;
	/* What the table holds, in inodes plus entries of loaded directories
	 * (about 100 bytes each), and the most since memory was last trimmed
	 * (see casfs_fs_forget()). */
	size_t held, held_high;
	struct fs_inode root;

	/* Blobs verified during this mount (fs-file.c); own lock. */
	pthread_mutex_t verified_lock;
	struct casfs_keyset verified;

	/* Open blobs for reads by inode (fs-filecache.c); own lock. */
	struct fs_filecache files;

	/* Small files read ahead of the reader (fs-prefetch.c); own lock. */
	struct fs_prefetch prefetch;

	/* PathInfo records the root listing found damaged and logged, by
	 * digest (zero-padded), so each is logged once (fs-root.c); own lock. */
	pthread_mutex_t damaged_lock;
	struct casfs_keyset damaged;
};

/* An open directory (opendir .. releasedir). */
struct casfs_fs_dir {
	struct fs_inode *inode; /* pinned; NULL for the root */
	uint64_t ino, parent_ino;
	uint8_t key[FS_KEY_LEN];
	const struct casfs_node *const *entries; /* not for the root */
	size_t n_entries;
	struct fs_root_list *root; /* the root's listing, owned (fs-root.c) */
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
/* Count `n` more units in fs->held. */
void fs_held_add(struct casfs_fs *fs, size_t n);
/* The live inode for node `n`, entry `index` (or FS_NO_INDEX) of the
 * directory with key `parent_key` and number `parent_ino`, created (with
 * no lookups and no pins) if needed.  NULL on OOM. */
struct fs_inode *fs_inode_for_node(struct casfs_fs *fs, const uint8_t parent_key[FS_KEY_LEN],
				   uint64_t parent_ino, size_t index, const struct casfs_node *n);
/* Free the inode if nothing references it any more. */
void fs_inode_maybe_free(struct casfs_fs *fs, struct fs_inode *i);

/* Fill a directory inode's contents from the DirectoryService if not done
 * yet.  Call WITHOUT the lock, with the inode pinned. */
int fs_inode_populate(struct casfs_fs *fs, struct fs_inode *i);
/* Binary search in a sorted entry array: the index, or n if absent. */
size_t fs_entries_find(const struct casfs_node *const *entries, size_t n, const char *name,
		       size_t name_len);

/* A root entry name must be a store path basename: its digest, or
 * -ENOENT. */
int fs_parse_basename(const char *name, uint8_t ret[CASFS_STORE_DIGEST_LEN]);

/* Hand directory entry `e` of `d` (its entry `index`, or FS_NO_INDEX for
 * the root) to cb with `next` as the offset after it (counting one lookup
 * with `plus`, as casfs_fs_readdir() says).  0 if cb took it, 1 if it
 * refused it ("buffer full"), -ENOMEM. */
int fs_dir_emit(struct casfs_fs *fs, const struct casfs_fs_dir *d, size_t index,
		const struct casfs_node *e, bool plus, uint64_t next, casfs_fs_dirent_cb cb,
		void *userdata);

/* The root listing (fs-root.c): a cursor and one page of at most
 * opts.root_page entries.  new: -ENOMEM.  readdir: entries from `offset`
 * (>= 2, see the design note in fs-root.c), as casfs_fs_readdir(). */
struct fs_root_list;
int fs_root_list_new(struct casfs_fs *fs, struct fs_root_list **ret);
void fs_root_list_free(struct fs_root_list *l);
int fs_root_readdir(struct casfs_fs *fs, struct casfs_fs_dir *d, uint64_t offset, bool plus,
		    casfs_fs_dirent_cb cb, void *userdata);

/* Files (fs-file.c).  The digest and size of file inode `ino`, or -ESTALE,
 * -EISDIR, -ELOOP. */
int fs_file_target(struct casfs_fs *fs, uint64_t ino, uint8_t ret_digest[CASFS_B3_LEN],
		   uint64_t *ret_size);
/* Open (and verify, unless no_verify) blob `digest` of `size` bytes into
 * the zeroed, mutex-initialised `f` whose size the caller has set (the
 * open-blob cache reads it under its lock): sets reader and fd. */
int fs_file_open_blob(struct casfs_fs *fs, const uint8_t digest[CASFS_B3_LEN], uint64_t size,
		      struct casfs_fs_file *f);
/* Close the reader and free `f`. */
void fs_file_free(struct casfs_fs_file *f);

/* The file cache (fs-filecache.c).  `cap` 0 means the default. */
int fs_filecache_init(struct fs_filecache *c, size_t cap);
void fs_filecache_release(struct fs_filecache *c);
/* casfs_fs_file_get() by content: blob `digest` of `size` bytes. */
int fs_filecache_get(struct casfs_fs *fs, const uint8_t digest[CASFS_B3_LEN], uint64_t size,
		     struct casfs_fs_file **ret);

/* The prefetcher (fs-prefetch.c).  start: opts.prefetch_threads threads
 * (none if 0), -ENOMEM or -errno (then with none, still to be stopped).
 * stop: joins them, dropping what is queued; call before the file cache
 * is released.  siblings: file inode
 * `ino` of `size` bytes is being read; if it is small, queue the small
 * files after it in the directory it was met in, unless queued already
 * (never blocks on I/O). */
int fs_prefetch_start(struct casfs_fs *fs);
void fs_prefetch_stop(struct casfs_fs *fs);
void fs_prefetch_siblings(struct casfs_fs *fs, uint64_t ino, uint64_t size);
/* Wait until nothing is queued or running (for tests). */
void fs_prefetch_wait_idle(struct casfs_fs *fs);
