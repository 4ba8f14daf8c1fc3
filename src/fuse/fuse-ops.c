/* The libfuse low-level binding of the fs core: each operation takes the
 * context from the request, calls the core, and replies exactly once.
 * Errors from the core (-errno) become replies in reply_err() only. */
#include "fuse-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "basic/util.h"

static struct casfs_fuse *ctx(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* The one place where an error becomes a reply. */
static void reply_err(fuse_req_t req, int r)
{
	int e = r < 0 ? -r : EIO;
	/* Internal codes the kernel would pass on verbatim but that mean
	 * "the store is damaged" to a reader. */
	if (e == EBADMSG || e == EPROTO || e == EOVERFLOW)
		e = EIO;
	fuse_reply_err(req, e);
}

static void fill_entry(struct fuse_entry_param *e, const struct stat *st)
{
	memset(e, 0, sizeof(*e));
	e->ino = st->st_ino;
	e->generation = 0; /* inode numbers are never reused for other content */
	e->attr = *st;
	e->attr_timeout = CASFS_FUSE_TIMEOUT;
	e->entry_timeout = CASFS_FUSE_TIMEOUT;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct casfs_fuse *c = userdata;
	unsigned want = FUSE_CAP_ASYNC_READ | FUSE_CAP_CACHE_SYMLINKS | FUSE_CAP_READDIRPLUS |
			FUSE_CAP_READDIRPLUS_AUTO | FUSE_CAP_PARALLEL_DIROPS |
			/* Replies built from blob file descriptors go to the
			 * device by splice (that is FUSE's SPLICE_WRITE). */
			FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
	/* SPLICE_READ would only help requests carrying data (writes). */
	conn->want |= want & conn->capable;
	/* Content never changes: nothing to invalidate on attribute checks. */
	conn->want &= ~(unsigned)FUSE_CAP_AUTO_INVAL_DATA;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	/* O_TRUNC as a SETATTR we refuse, not a flag of an open the kernel
	 * skips (below): a virtiofs guest may remount read-write. */
	conn->want &= ~(unsigned)FUSE_CAP_ATOMIC_O_TRUNC;
	/* Zero-message open: an open needs nothing from us (the mount is
	 * read-only, content is verified on first read), so let the kernel
	 * skip open and release: two round trips per file opened.  Reads then
	 * come by inode and keep-cache is implied. */
	if (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT) {
		conn->want |= FUSE_CAP_NO_OPEN_SUPPORT;
		c->no_open = true;
	}
}

/* Reads reach us in requests no larger than the readahead window, which
 * the kernel starts at 128 KiB for a FUSE mount and INIT can only lower.
 * 512 KiB takes a third off cold sequential reads; above that, replies no
 * longer fit libfuse's splice pipe (1 MiB) and are copied.  The knob is in
 * sysfs, writable by root only, and INIT would clamp it again, so the
 * first lookup or getattr after INIT sets it, once; failure is harmless. */
static void raise_readahead(struct casfs_fuse *c)
{
	if (!__atomic_load_n(&c->readahead_pending, __ATOMIC_RELAXED) ||
	    !__atomic_exchange_n(&c->readahead_pending, false, __ATOMIC_RELAXED))
		return;
	int fd = open(c->readahead_knob, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	char v[16];
	int n = snprintf(v, sizeof(v), "%d", CASFS_FUSE_READAHEAD_KB);
	if (write(fd, v, (size_t)n) != n) {
		/* not root, or no such knob: keep the kernel's window */
	}
	close(fd);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	raise_readahead(ctx(req));
	struct stat st;
	struct fuse_entry_param e;
	int r = casfs_fs_lookup(ctx(req)->fs, parent, name, &st);
	if (r == 0) {
		fill_entry(&e, &st);
		fuse_reply_entry(req, &e);
	} else if (r == -ENOENT && parent != CASFS_FS_ROOT_INO) {
		/* Immutable directories: absence is forever, let the kernel
		 * remember it.  Not in the root, where store paths appear. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = CASFS_FUSE_TIMEOUT;
		fuse_reply_entry(req, &e);
	} else {
		reply_err(req, r);
	}
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	casfs_fs_forget(ctx(req)->fs, ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		casfs_fs_forget(ctx(req)->fs, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	raise_readahead(ctx(req));
	struct stat st;
	int r = casfs_fs_getattr(ctx(req)->fs, ino, &st);
	if (r < 0)
		reply_err(req, r);
	else
		fuse_reply_attr(req, &st, CASFS_FUSE_TIMEOUT);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char *target = NULL;
	int r = casfs_fs_readlink(ctx(req)->fs, ino, &target);
	if (r < 0)
		reply_err(req, r);
	else
		fuse_reply_readlink(req, target);
	free(target);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ctx(req)->no_open) {
		/* The first open: ENOSYS tells the kernel to send no more (a
		 * success for the caller).  Writes never get here on a
		 * read-only mount; refuse them anyway rather than allow. */
		if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))
			reply_err(req, -EROFS);
		else
			fuse_reply_err(req, ENOSYS);
		return;
	}
	struct casfs_fs_file *f = NULL;
	int r = casfs_fs_open(ctx(req)->fs, ino, fi->flags, &f);
	if (r < 0) {
		reply_err(req, r);
		return;
	}
	struct casfs_fuse *c = ctx(req);
	if (!(fi->fh = casfs_fuse_handle_put(&c->handles, f, CASFS_FUSE_HANDLE_FILE))) {
		casfs_fs_release(c->fs, f);
		reply_err(req, -ENOMEM);
		return;
	}
	fi->keep_cache = 1;
	fi->noflush = 1;
	if (fuse_reply_open(req, fi) != 0) /* the open was interrupted */
		casfs_fs_release(c->fs, casfs_fuse_handle_take(&c->handles, fi->fh, CASFS_FUSE_HANDLE_FILE));
}

static void reply_read(fuse_req_t req, struct casfs_fs_file *f, size_t size, off_t off)
{
	uint64_t file_size;
	int fd = casfs_fs_file_fd(f, &file_size);
	if ((uint64_t)off >= file_size) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	size_t n = (size_t)MIN((uint64_t)size, file_size - (uint64_t)off);
	if (fd >= 0) {
		int r = casfs_fs_file_check(ctx(req)->fs, f, (uint64_t)off, n);
		if (r < 0) {
			reply_err(req, r);
			return;
		}
		/* Zero-copy: libfuse splices from the blob file to the device. */
		struct fuse_bufvec bv = FUSE_BUFVEC_INIT(n);
		bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		bv.buf[0].fd = fd;
		bv.buf[0].pos = off;
		fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
		return;
	}
	void *buf = malloc(n ? n : 1);
	if (!buf) {
		reply_err(req, -ENOMEM);
		return;
	}
	ssize_t got = casfs_fs_read(ctx(req)->fs, f, buf, n, (uint64_t)off);
	if (got < 0)
		reply_err(req, (int)got);
	else
		fuse_reply_buf(req, buf, (size_t)got);
	free(buf);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	if (off < 0) {
		reply_err(req, -EINVAL);
		return;
	}
	size = MIN(size, (size_t)CASFS_FUSE_MAX_REPLY);
	if (fi->fh) {
		struct casfs_fs_file *f = casfs_fuse_handle_get(&ctx(req)->handles, fi->fh,
								CASFS_FUSE_HANDLE_FILE);
		if (f)
			reply_read(req, f, size, off);
		else
			reply_err(req, -EBADF);
		return;
	}
	/* no_open: the file comes from the core's cache of open blobs. */
	struct casfs_fs *fs = ctx(req)->fs; /* req is gone once replied */
	struct casfs_fs_file *f = NULL;
	int r = casfs_fs_file_get(fs, ino, &f);
	if (r < 0) {
		reply_err(req, r);
		return;
	}
	reply_read(req, f, size, off);
	casfs_fs_file_put(fs, f);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	struct casfs_fuse *c = ctx(req);
	struct casfs_fs_file *f = casfs_fuse_handle_take(&c->handles, fi->fh, CASFS_FUSE_HANDLE_FILE);
	if (f)
		casfs_fs_release(c->fs, f);
	fuse_reply_err(req, f || !fi->fh ? 0 : EBADF);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct casfs_fs_dir *d = NULL;
	int r = casfs_fs_opendir(ctx(req)->fs, ino, &d);
	if (r < 0) {
		reply_err(req, r);
		return;
	}
	struct casfs_fuse *c = ctx(req);
	if (!(fi->fh = casfs_fuse_handle_put(&c->handles, d, CASFS_FUSE_HANDLE_DIR))) {
		casfs_fs_releasedir(c->fs, d);
		reply_err(req, -ENOMEM);
		return;
	}
	/* Directory contents never change, except the root's listing. */
	if (ino != CASFS_FS_ROOT_INO) {
		fi->cache_readdir = 1;
		fi->keep_cache = 1;
	}
	if (fuse_reply_open(req, fi) != 0)
		casfs_fs_releasedir(c->fs, casfs_fuse_handle_take(&c->handles, fi->fh, CASFS_FUSE_HANDLE_DIR));
}

struct dirbuf {
	fuse_req_t req;
	char *buf;
	size_t size, used;
	bool plus;
};

static int add_dirent(void *userdata, const char *name, const struct stat *attr, uint64_t next)
{
	struct dirbuf *b = userdata;
	size_t room = b->size - b->used, need;
	if (b->plus) {
		struct fuse_entry_param e;
		fill_entry(&e, attr);
		need = fuse_add_direntry_plus(b->req, b->buf + b->used, room, name, &e, (off_t)next);
	} else {
		need = fuse_add_direntry(b->req, b->buf + b->used, room, name, attr, (off_t)next);
	}
	if (need > room)
		return 1; /* not added: the core must not count it */
	b->used += need;
	return 0;
}

static void do_readdir(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi,
		       bool plus)
{
	struct casfs_fs_dir *d = casfs_fuse_handle_get(&ctx(req)->handles, fi->fh,
						       CASFS_FUSE_HANDLE_DIR);
	if (!d) {
		reply_err(req, -EBADF);
		return;
	}
	size = MIN(size, (size_t)CASFS_FUSE_MAX_REPLY);
	struct dirbuf b = { .req = req, .size = size, .plus = plus };
	b.buf = malloc(size ? size : 1);
	if (!b.buf) {
		reply_err(req, -ENOMEM);
		return;
	}
	int r = casfs_fs_readdir(ctx(req)->fs, d, off < 0 ? 0 : (uint64_t)off, plus, add_dirent, &b);
	if (r < 0)
		reply_err(req, r);
	else
		fuse_reply_buf(req, b.buf, b.used);
	free(b.buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)ino;
	do_readdir(req, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	(void)ino;
	do_readdir(req, size, off, fi, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	struct casfs_fuse *c = ctx(req);
	struct casfs_fs_dir *d = casfs_fuse_handle_take(&c->handles, fi->fh, CASFS_FUSE_HANDLE_DIR);
	if (d)
		casfs_fs_releasedir(c->fs, d);
	fuse_reply_err(req, d ? 0 : EBADF);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;
	int r = casfs_fs_statfs(ctx(req)->fs, ino, &sv);
	if (r < 0)
		reply_err(req, r);
	else
		fuse_reply_statfs(req, &sv);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	if (size == 0) {
		ssize_t r = casfs_fs_getxattr(ctx(req)->fs, ino, name, NULL, 0);
		if (r < 0)
			reply_err(req, (int)r);
		else
			fuse_reply_xattr(req, (size_t)r);
		return;
	}
	char buf[256]; /* our values are 47 bytes */
	ssize_t r = casfs_fs_getxattr(ctx(req)->fs, ino, name, buf, MIN(size, sizeof(buf)));
	if (r < 0)
		reply_err(req, (int)r);
	else
		fuse_reply_buf(req, buf, (size_t)r);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	if (size == 0) {
		ssize_t r = casfs_fs_listxattr(ctx(req)->fs, ino, NULL, 0);
		if (r < 0)
			reply_err(req, (int)r);
		else
			fuse_reply_xattr(req, (size_t)r);
		return;
	}
	char buf[256];
	ssize_t r = casfs_fs_listxattr(ctx(req)->fs, ino, buf, MIN(size, sizeof(buf)));
	if (r < 0)
		reply_err(req, (int)r);
	else
		fuse_reply_buf(req, buf, (size_t)r);
}

/* Every operation that would change something.  The mount is also "ro",
 * so the kernel normally answers these itself. */
static void erofs(fuse_req_t req)
{
	reply_err(req, -EROFS);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	(void)ino, (void)attr, (void)to_set, (void)fi;
	erofs(req);
}
static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	(void)parent, (void)name, (void)mode, (void)rdev;
	erofs(req);
}
static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	(void)parent, (void)name, (void)mode;
	erofs(req);
}
static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent, (void)name;
	erofs(req);
}
static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	(void)link, (void)parent, (void)name;
	erofs(req);
}
static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	(void)parent, (void)name, (void)newparent, (void)newname, (void)flags;
	erofs(req);
}
static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino, (void)newparent, (void)newname;
	erofs(req);
}
static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	(void)ino, (void)buf, (void)size, (void)off, (void)fi;
	erofs(req);
}
static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	(void)ino, (void)name, (void)value, (void)size, (void)flags;
	erofs(req);
}
static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino, (void)name;
	erofs(req);
}
static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	(void)parent, (void)name, (void)mode, (void)fi;
	erofs(req);
}
static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
			 struct fuse_file_info *fi)
{
	(void)ino, (void)mode, (void)offset, (void)length, (void)fi;
	erofs(req);
}

const struct fuse_lowlevel_ops casfs_fuse_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.readlink = op_readlink,
	.open = op_open,
	.read = op_read,
	.release = op_release,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.statfs = op_statfs,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.setattr = op_setattr,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_unlink,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.write = op_write,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
	.create = op_create,
	.fallocate = op_fallocate,
};
