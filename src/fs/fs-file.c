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

int fs_file_open_blob(struct casfs_fs *fs, const uint8_t digest[CASFS_B3_LEN], uint64_t size,
		      struct casfs_fs_file *f)
{
	char b3[CASFS_B3_STR_LEN + 1];
	casfs_b3_format(digest, b3);
	struct casfs_blob_reader *reader = NULL;
	int r = casfs_blob_open(fs->store->blobs, digest, &reader);
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
	if (!fs->opts.no_verify && !verified_has(fs, digest)) {
		struct casfs_error err = { 0 };
		r = casfs_blob_verify(reader, NULL, &err);
		if (r < 0) {
			/* The message names the digest. */
			fs_log(fs, CASFS_FS_LOG_ERROR, "not serving %s: %s", b3,
			       casfs_error_message(&err, r));
			casfs_blob_reader_close(reader);
			return r == -ENOMEM ? r : -EIO;
		}
		verified_add(fs, digest);
	}
	f->reader = reader;
	f->fd = casfs_blob_reader_fd(reader);
	return 0;
}

void fs_file_free(struct casfs_fs_file *f)
{
	if (!f)
		return;
	if (f->reader)
		casfs_blob_reader_close(f->reader);
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

ssize_t casfs_fs_read(struct casfs_fs *fs, struct casfs_fs_file *f, void *buf, size_t size,
		      uint64_t off)
{
	(void)fs;
	if (off >= f->size)
		return 0;
	size_t want = (size_t)MIN((uint64_t)size, f->size - off);
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
