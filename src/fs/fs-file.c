/* Open files, reads, blob verification and extended attributes. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "basic/util.h"
#include "fs-internal.h"

/* The set of blobs verified during this mount: a blob is re-hashed once per
 * mount, before its first byte is served.  Only successes are remembered,
 * so a blob repaired while mounted is served again without a remount.
 * About 40 bytes per distinct blob opened. */

static bool verified_has(struct casfs_fs *fs, const uint8_t d[CASFS_B3_LEN])
{
	pthread_mutex_lock(&fs->verified_lock);
	bool found = casfs_keyset_get(&fs->verified, d, NULL);
	pthread_mutex_unlock(&fs->verified_lock);
	return found;
}

/* On OOM the blob is simply verified again next time. */
static void verified_add(struct casfs_fs *fs, const uint8_t d[CASFS_B3_LEN])
{
	pthread_mutex_lock(&fs->verified_lock);
	(void)casfs_keyset_put(&fs->verified, d, 1);
	pthread_mutex_unlock(&fs->verified_lock);
}

int fs_file_target(struct casfs_fs *fs, uint64_t ino, uint8_t ret_digest[CASFS_B3_LEN],
		   uint64_t *ret_size)
{
	int r = 0;
	pthread_mutex_lock(&fs->lock);
	struct fs_inode *i = fs_inode_get(fs, ino);
	if (!i)
		r = -ESTALE;
	else if (i->type == CASFS_NODE_DIRECTORY)
		r = -EISDIR;
	else if (i->type == CASFS_NODE_SYMLINK)
		r = -ELOOP;
	else {
		memcpy(ret_digest, i->digest, CASFS_B3_LEN);
		*ret_size = i->size;
	}
	pthread_mutex_unlock(&fs->lock);
	return r;
}

/* A blob of more than one group: get its checked outboard (cheap when
 * stored: reading it and hashing its CVs up to the digest; otherwise the
 * whole blob is hashed, once per open) and start with no group checked --
 * or all of them, when building the outboard has just hashed them. */
static int open_outboard(struct casfs_fs *fs, const char *b3, struct casfs_fs_file *f)
{
	enum casfs_outboard_source source;
	struct casfs_error stored_err = { 0 }, err = { 0 };
	int r = casfs_blob_outboard(fs->store->blobs, f->reader, &f->ob, &source, &stored_err, &err);
	if (r < 0) {
		fs_log(fs, CASFS_FS_LOG_ERROR, "not serving %s: %s", b3, casfs_error_message(&err, r));
		return r == -ENOMEM ? r : -EIO;
	}
	if (source == CASFS_OUTBOARD_REBUILT)
		fs_log(fs, CASFS_FS_LOG_ERROR, "blob %s: stored outboard not used (%s): rebuilt from the blob",
		       b3, stored_err.msg);
	size_t words = (f->ob.n + 63) / 64;
	f->checked = calloc(words, sizeof(*f->checked));
	if (!f->checked)
		return -ENOMEM;
	if (source != CASFS_OUTBOARD_STORED)
		memset(f->checked, 0xff, words * sizeof(*f->checked));
	return 0;
}

int fs_file_open_blob(struct casfs_fs *fs, const uint8_t digest[CASFS_B3_LEN], uint64_t size,
		      struct casfs_fs_file *f)
{
	char b3[CASFS_B3_STR_LEN + 1];
	casfs_b3_format(digest, b3);
	struct casfs_blob_reader *reader = NULL;
	int r = casfs_blob_open_sized(fs->store->blobs, digest, size, &reader);
	if (r < 0) {
		fs_log(fs, CASFS_FS_LOG_ERROR, "blob %s: cannot open: %s", b3, strerror(-r));
		return r == -ENOMEM ? r : -EIO;
	}
	if (reader->size != size) {
		fs_log(fs, CASFS_FS_LOG_ERROR, "blob %s: size %llu, but the file node says %llu", b3,
		       (unsigned long long)reader->size, (unsigned long long)size);
		casfs_blob_reader_close(reader);
		return -EIO;
	}
	f->reader = reader; /* fs_file_free closes it on failure */
	f->fd = casfs_blob_reader_fd(reader);
	if (fs->opts.no_verify || reader->verified)
		return 0;
	if (casfs_outboard_wanted(size))
		return open_outboard(fs, b3, f);
	if (!verified_has(fs, digest)) {
		struct casfs_error err = { 0 };
		r = casfs_blob_verify(reader, NULL, &err);
		if (r < 0) {
			/* The message names the digest. */
			fs_log(fs, CASFS_FS_LOG_ERROR, "not serving %s: %s", b3,
			       casfs_error_message(&err, r));
			return r == -ENOMEM ? r : -EIO;
		}
		verified_add(fs, digest);
	}
	return 0;
}

void fs_file_free(struct casfs_fs_file *f)
{
	if (!f)
		return;
	if (f->reader)
		casfs_blob_reader_close(f->reader);
	casfs_outboard_release(&f->ob);
	free(f->checked);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

int casfs_fs_open(struct casfs_fs *fs, uint64_t ino, int flags, struct casfs_fs_file **ret)
{
	if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC))
		return -EROFS;
	uint8_t digest[CASFS_B3_LEN];
	uint64_t size = 0;
	int r = fs_file_target(fs, ino, digest, &size);
	if (r < 0)
		return r;
	fs_prefetch_siblings(fs, ino, size);
	struct casfs_fs_file *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	pthread_mutex_init(&f->lock, NULL);
	f->size = size;
	r = fs_file_open_blob(fs, digest, size, f);
	if (r < 0) {
		fs_file_free(f);
		return r;
	}
	*ret = f;
	return 0;
}

/* Up to `want` bytes at `off` (fewer only if the blob is shorter than
 * its size says), or -errno. */
static ssize_t file_pread(struct casfs_fs_file *f, void *buf, size_t want, uint64_t off)
{
	size_t got = 0;
	ssize_t r = 0;
	/* With an fd, positioned reads need no lock. */
	if (f->fd < 0)
		pthread_mutex_lock(&f->lock);
	while (got < want) {
		ssize_t n;
		if (f->fd >= 0) {
			n = pread(f->fd, (char *)buf + got, want - got, (off_t)(off + got));
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				n = casfs_neg_errno();
		} else {
			n = casfs_blob_reader_pread(f->reader, (char *)buf + got, want - got, off + got);
		}
		if (n < 0) {
			r = n;
			break;
		}
		if (n == 0)
			break; /* shorter than its size: the store changed under us */
		got += (size_t)n;
	}
	if (f->fd < 0)
		pthread_mutex_unlock(&f->lock);
	return r < 0 ? r : (ssize_t)got;
}

static bool group_checked(const struct casfs_fs_file *f, size_t g)
{
	return __atomic_load_n(&f->checked[g / 64], __ATOMIC_ACQUIRE) & (UINT64_C(1) << (g % 64));
}

static void mark_checked(struct casfs_fs_file *f, size_t first, size_t end)
{
	for (size_t g = first; g < end; g++)
		__atomic_fetch_or(&f->checked[g / 64], UINT64_C(1) << (g % 64), __ATOMIC_RELEASE);
}

/* Groups checked by one read: at most 1 MiB of them (FUSE's largest
 * request), read together. */
#define CHECK_RUN_BYTES (1u << 20)

/* Read groups [first, first + count) and check them against the outboard;
 * the good ones are marked. */
static int check_run(struct casfs_fs *fs, struct casfs_fs_file *f, size_t first, size_t count)
{
	uint64_t glen = casfs_outboard_group_len(&f->ob);
	uint64_t off = (uint64_t)first * glen;
	size_t len = (size_t)MIN((uint64_t)count * glen, f->size - off);
	uint8_t *buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	ssize_t got = file_pread(f, buf, len, off);
	size_t bad = first;
	int r = got < 0 ? (int)got : (size_t)got < len ? -EBADMSG
			: casfs_outboard_check(&f->ob, first, count, buf, 1, &bad);
	free(buf);
	if (r >= 0) {
		mark_checked(f, first, first + count);
		return 0;
	}
	char b3[CASFS_B3_STR_LEN + 1];
	casfs_b3_format(f->reader->digest, b3);
	if (r == -EBADMSG && got >= 0 && (size_t)got < len) {
		fs_log(fs, CASFS_FS_LOG_ERROR, "blob %s: ends at offset %llu, before its size %llu",
		       b3, (unsigned long long)(off + (uint64_t)got), (unsigned long long)f->size);
	} else if (r == -EBADMSG) {
		mark_checked(f, first, bad);
		uint64_t at = (uint64_t)bad * glen;
		fs_log(fs, CASFS_FS_LOG_ERROR,
		       "blob %s is damaged at offset %llu (bytes %llu..%llu do not hash to its outboard): not serving them",
		       b3, (unsigned long long)at, (unsigned long long)at,
		       (unsigned long long)(MIN(at + glen, f->size) - 1));
	} else {
		fs_log(fs, CASFS_FS_LOG_ERROR, "blob %s: read at offset %llu: %s", b3,
		       (unsigned long long)off, strerror(-r));
	}
	return r == -ENOMEM ? r : -EIO;
}

int casfs_fs_file_check(struct casfs_fs *fs, struct casfs_fs_file *f, uint64_t off, size_t len)
{
	if (!f->checked || len == 0 || off >= f->size)
		return 0;
	uint64_t glen = casfs_outboard_group_len(&f->ob);
	size_t max_run = (size_t)MAX(1, CHECK_RUN_BYTES / glen);
	size_t g = (size_t)(off / glen);
	size_t last = (size_t)((MIN(off + len, f->size) - 1) / glen);
	while (g <= last) {
		if (group_checked(f, g)) {
			g++;
			continue;
		}
		size_t run = 1;
		while (g + run <= last && run < max_run && !group_checked(f, g + run))
			run++;
		int r = check_run(fs, f, g, run);
		if (r < 0)
			return r;
		g += run;
	}
	return 0;
}

ssize_t casfs_fs_read(struct casfs_fs *fs, struct casfs_fs_file *f, void *buf, size_t size,
		      uint64_t off)
{
	if (off >= f->size)
		return 0;
	size_t want = (size_t)MIN((uint64_t)size, f->size - off);
	int r = casfs_fs_file_check(fs, f, off, want);
	if (r < 0)
		return r;
	return file_pread(f, buf, want, off);
}

int casfs_fs_file_fd(const struct casfs_fs_file *f, uint64_t *ret_size)
{
	*ret_size = f->size;
	return f->fd;
}

void casfs_fs_release(struct casfs_fs *fs, struct casfs_fs_file *f)
{
	(void)fs;
	fs_file_free(f);
}

/* Extended attributes. */

/* The xattr an inode carries (name and value), or NULL name if none. */
static int xattr_of(struct casfs_fs *fs, uint64_t ino, const char **ret_name,
		    char value[CASFS_B3_STR_LEN + 1])
{
	int r = 0;
	*ret_name = NULL;
	pthread_mutex_lock(&fs->lock);
	struct fs_inode *i = fs_inode_get(fs, ino);
	if (!i) {
		r = -ESTALE;
	} else if (i != &fs->root && i->type == CASFS_NODE_FILE) {
		*ret_name = CASFS_FS_XATTR_BLOB;
		casfs_b3_format(i->digest, value);
	} else if (i != &fs->root && i->type == CASFS_NODE_DIRECTORY) {
		*ret_name = CASFS_FS_XATTR_DIRECTORY;
		casfs_b3_format(i->digest, value);
	}
	pthread_mutex_unlock(&fs->lock);
	return r;
}

static ssize_t copy_out(const void *src, size_t len, void *buf, size_t size)
{
	if (size == 0)
		return (ssize_t)len;
	if (size < len)
		return -ERANGE;
	memcpy(buf, src, len);
	return (ssize_t)len;
}

ssize_t casfs_fs_getxattr(struct casfs_fs *fs, uint64_t ino, const char *name, void *buf,
			  size_t size)
{
	const char *have;
	char value[CASFS_B3_STR_LEN + 1];
	int r = xattr_of(fs, ino, &have, value);
	if (r < 0)
		return r;
	if (!have || strcmp(have, name) != 0)
		return -ENODATA;
	return copy_out(value, strlen(value), buf, size);
}

ssize_t casfs_fs_listxattr(struct casfs_fs *fs, uint64_t ino, char *buf, size_t size)
{
	const char *have;
	char value[CASFS_B3_STR_LEN + 1];
	int r = xattr_of(fs, ino, &have, value);
	if (r < 0)
		return r;
	if (!have)
		return 0;
	return copy_out(have, strlen(have) + 1, buf, size);
}
