/* The filesystem core: a read-only view of a store, answering on inode
 * numbers, independent of FUSE (src/fuse/ binds it to libfuse; a virtiofs
 * binding can reuse it; `casfs ls/cat` can drive it directly).
 *
 * Layout.  Inode CASFS_FS_ROOT_INO is the root; it holds store paths by
 * basename (`<32 nixbase32 chars>-<name>`).  A lookup in the root parses the
 * name and asks the PathInfoService every time the name is not already a
 * live inode, so store paths added while mounted appear; nothing negative is
 * remembered.  Below a store path the castore tree is served as is;
 * directories are fetched from the DirectoryService on the first lookup or
 * readdir inside them and kept while their inode lives.
 *
 * Attributes (DESIGN 4): directories 0555, nlink 2, size 0; files 0444 or
 * 0555 (executable), nlink 1, exact size; symlinks 0777, nlink 1, size =
 * target length; uid/gid 0; every timestamp 1 s after the epoch;
 * st_blocks = ceil(size / 512).
 *
 * Inode lifetime follows the FUSE protocol: every successful lookup (and
 * every entry handed out by a readdir with `plus`) adds one to the inode's
 * lookup count; casfs_fs_forget() subtracts; an inode whose count reaches 0
 * and that no open handle pins is freed, together with its directory
 * contents.  Inode numbers are stable for the life of the mount (see the
 * design note in fs-inode.c).
 *
 * Errors are -errno: -ENOENT unknown name (or not a store path basename),
 * -ESTALE unknown inode number, -ENOTDIR/-EISDIR/-EINVAL wrong node type,
 * -EPERM listing the root without list_root, -ENODATA/-ERANGE for xattrs,
 * -EIO when the store is damaged or a blob fails verification (logged
 * through the log callback with the digest), -ENOMEM.
 *
 * Thread safety: every function may be called from many threads at once
 * (FUSE runs multithreaded), except that one file or directory handle is
 * used by one thread at a time for readdir and freed only once.  A
 * casfs_fs_read() on one file handle may run concurrently with others on
 * the same handle. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include "../store/store.h"

#define CASFS_FS_ROOT_INO 1

#define CASFS_FS_XATTR_BLOB "user.castore.blob.digest"
#define CASFS_FS_XATTR_DIRECTORY "user.castore.directory.digest"

enum casfs_fs_log_level {
	CASFS_FS_LOG_ERROR = 0, /* damage in the store: corrupt blob, missing directory */
	CASFS_FS_LOG_INFO = 1,
	CASFS_FS_LOG_DEBUG = 2,
};

struct casfs_fs_options {
	bool list_root;    /* allow readdir of the root: lists every PathInfo */
	/* PathInfos an open root directory holds at once while listing (its
	 * memory, whatever the store's size); 0 means 64. */
	size_t root_page;
	bool no_verify;    /* serve blobs without re-hashing them first */
	/* Open blobs kept by casfs_fs_file_get() once unused (file
	 * descriptors, with the local store); 0 means 256. */
	size_t max_open_files;
	/* Threads that read small files ahead of a reader walking a
	 * directory (fs-prefetch.c): when a file of 64 KiB or less is read,
	 * the small files after it are opened and checked.  0: none. */
	size_t prefetch_threads;
	/* Called with one line (no newline) from any thread; may be NULL. */
	void (*log)(void *userdata, enum casfs_fs_log_level level, const char *msg);
	void *log_userdata;
};

struct casfs_fs;
struct casfs_fs_dir;  /* an open directory (opendir .. releasedir) */
struct casfs_fs_file; /* an open file (open .. release) */

/* `store` is borrowed and must outlive the fs.  `opts` is copied. */
int casfs_fs_new(struct casfs_store *store, const struct casfs_fs_options *opts,
		 struct casfs_fs **ret);
/* Frees every inode (regardless of lookup counts) and every cached open
 * blob.  Handles must be released and cached files put first.  Accepts
 * NULL. */
void casfs_fs_free(struct casfs_fs *fs);

/* Look `name` up in directory `parent`; on success fills *ret_attr (st_ino
 * is the child's inode number) and counts one lookup. */
int casfs_fs_lookup(struct casfs_fs *fs, uint64_t parent, const char *name, struct stat *ret_attr);
/* Drop `nlookup` lookups of `ino` (unknown inodes are ignored).  When the
 * table has shrunk to half its size since the last time, free memory is
 * handed back to the system (malloc_trim), so a daemon's RSS follows what
 * the kernel holds. */
void casfs_fs_forget(struct casfs_fs *fs, uint64_t ino, uint64_t nlookup);
int casfs_fs_getattr(struct casfs_fs *fs, uint64_t ino, struct stat *ret_attr);
/* The symlink target as a malloc'd NUL-terminated string (caller frees);
 * -EINVAL if `ino` is not a symlink. */
int casfs_fs_readlink(struct casfs_fs *fs, uint64_t ino, char **ret_target);
int casfs_fs_statfs(struct casfs_fs *fs, uint64_t ino, struct statvfs *ret);

/* Directories.  opendir of the root is -EPERM unless list_root; the root
 * then lists every PathInfo in store path digest order, paging through the
 * PathInfoService: a handle holds at most root_page entries and a cursor,
 * whatever the store's size.  Root offsets are positions in digest order
 * (design note in fs-root.c), valid across pages and handles and while
 * store paths are added (one appears if it sorts after the position).  A
 * PathInfo record that cannot be decoded, or whose root node a lookup
 * would refuse, is left out and logged once per fs (CASFS_FS_LOG_ERROR);
 * the rest is listed.  Offsets of other directories are positions in the
 * (immutable, bytewise sorted) entry list and are valid across handles.
 * Offset 0 is the start; "." and ".." come first.
 *
 * readdir calls cb for each entry from `offset` on with its attributes and
 * the offset of the entry after it, until the entries run out or cb
 * returns non-zero ("buffer full": that entry was NOT taken).  With `plus`,
 * every taken entry other than "." and ".." counts one lookup of its inode
 * (as FUSE readdirplus requires).  cb runs with an internal lock held and
 * must not call back into the fs.  Returns 0 or -errno. */
typedef int (*casfs_fs_dirent_cb)(void *userdata, const char *name, const struct stat *attr,
				  uint64_t next_offset);
int casfs_fs_opendir(struct casfs_fs *fs, uint64_t ino, struct casfs_fs_dir **ret);
int casfs_fs_readdir(struct casfs_fs *fs, struct casfs_fs_dir *d, uint64_t offset, bool plus,
		     casfs_fs_dirent_cb cb, void *userdata);
void casfs_fs_releasedir(struct casfs_fs *fs, struct casfs_fs_dir *d);

/* Files.  open is -EISDIR for directories, -ELOOP for symlinks, -EROFS if
 * `flags` asks for writing (O_WRONLY/O_RDWR/O_TRUNC).  Unless no_verify,
 * content is checked before it is served:
 *   - a blob of one outboard group (64 KiB) or less is hashed whole before
 *     open succeeds (once per mount and digest);
 *   - a larger one opens with its outboard (digest/outboard.h), itself
 *     checked against the digest (if it is missing or damaged it is built
 *     from the whole blob instead, which then must match); each read then
 *     hashes only the groups it touches that were not checked yet
 *     (casfs_fs_file_check), so a damaged group fails exactly the reads
 *     that touch it (-EIO, logged with the digest and offset) and the rest
 *     of the file is served.
 * A missing or short blob, or one that fails the open's checks, is -EIO
 * and logged with its digest. */
int casfs_fs_open(struct casfs_fs *fs, uint64_t ino, int flags, struct casfs_fs_file **ret);
/* Up to `size` bytes at `off`: fewer only at end of file.  Returns the
 * count (0 at or past the end) or -errno. */
ssize_t casfs_fs_read(struct casfs_fs *fs, struct casfs_fs_file *f, void *buf, size_t size,
		      uint64_t off);
/* Check the groups of [off, off + len) that are not checked yet (see
 * above; a no-op for small blobs and with no_verify): 0, -EIO if some
 * group is damaged or short (logged), -ENOMEM.  casfs_fs_read() does it
 * itself; call it before serving a range from casfs_fs_file_fd(). */
int casfs_fs_file_check(struct casfs_fs *fs, struct casfs_fs_file *f, uint64_t off, size_t len);
/* For zero-copy reads: a file descriptor whose bytes [0, size) are the
 * content, or -1 if the backend has none.  Only ranges that passed
 * casfs_fs_file_check() are verified.  Owned by the handle; use it only
 * with positioned I/O (pread, splice with an offset).  Writes the file
 * size to *ret_size. */
int casfs_fs_file_fd(const struct casfs_fs_file *f, uint64_t *ret_size);
void casfs_fs_release(struct casfs_fs *fs, struct casfs_fs_file *f);

/* Reads without open/release (FUSE "no_open": the kernel then sends
 * neither, and a read names only the inode).  casfs_fs_file_get() returns
 * an open file for file inode `ino` from a cache of open blobs shared by
 * every inode with the same content, opening and verifying it as
 * casfs_fs_open() does on first use (concurrent callers wait for that one
 * open; a failure is returned to each of them and not remembered).  Use
 * it with casfs_fs_read()/casfs_fs_file_fd() until casfs_fs_file_put();
 * never casfs_fs_release() it.  Errors as casfs_fs_open(). */
int casfs_fs_file_get(struct casfs_fs *fs, uint64_t ino, struct casfs_fs_file **ret);
void casfs_fs_file_put(struct casfs_fs *fs, struct casfs_fs_file *f);

/* Extended attributes, with the getxattr(2) size probe: size 0 returns the
 * length needed and writes nothing; a too small buffer is -ERANGE.
 * getxattr: the value ("b3:" + base64, not NUL-terminated) or -ENODATA.
 * listxattr: NUL-terminated names, back to back (0 bytes when none). */
ssize_t casfs_fs_getxattr(struct casfs_fs *fs, uint64_t ino, const char *name, void *buf,
			  size_t size);
ssize_t casfs_fs_listxattr(struct casfs_fs *fs, uint64_t ino, char *buf, size_t size);
