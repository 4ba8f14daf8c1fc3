/* The local store's BlobService: one file per blob (layout in
 * local-store.h). */
#include "../basic/io.h"
#include "local-store-internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../basic/encoding.h"
#include "../basic/util.h"

/* "XX/" + 62 hex + NUL */
#define BLOB_NAME_LEN (2 + 1 + 62 + 1)

struct local_blob_service {
	struct casfs_blob_service base;
	struct casfs_local_store *ls;
};

struct local_blob_reader {
	struct casfs_blob_reader base;
	int fd;
};

struct local_blob_writer {
	struct casfs_blob_writer base;
	struct casfs_local_store *ls;
	int fd;
	int tmp_at;        /* directory fd tmp_name is relative to */
	char tmp_name[32]; /* "" for an O_TMPFILE file */
	struct casfs_b3_stream hasher; /* digest and outboard */
	bool known;                    /* create_known: digest given, not re-hashed */
	uint8_t known_digest[CASFS_B3_LEN];
	uint64_t size;
	uint64_t flushed; /* bytes already handed to writeback */
	bool zero_tail;   /* the file ends in a hole: ftruncate before commit */
	int error; /* a failed write poisons the writer */
};

/* Large blobs start their writeback while they are still being written,
 * so the disk works in parallel with hashing and the final syncfs() has
 * little left to wait for. */
#define WRITEBACK_STEP (16u << 20)

static struct casfs_local_store *store_of(struct casfs_blob_service *s)
{
	return ((struct local_blob_service *)s)->ls;
}

static void blob_name(const uint8_t digest[CASFS_B3_LEN], char name[BLOB_NAME_LEN])
{
	char hex[CASFS_HEX_LEN(CASFS_B3_LEN) + 1];
	casfs_hex_encode(digest, CASFS_B3_LEN, hex);
	snprintf(name, BLOB_NAME_LEN, "%.2s/%s", hex, hex + 2);
}

static int local_stat(struct casfs_blob_service *s, const uint8_t digest[CASFS_B3_LEN],
		      uint64_t *ret_size)
{
	char name[BLOB_NAME_LEN];
	blob_name(digest, name);
	struct stat st;
	if (fstatat(store_of(s)->blobs_fd, name, &st, 0) < 0)
		return casfs_neg_errno();
	if (!S_ISREG(st.st_mode))
		return -EBADMSG;
	if (ret_size)
		*ret_size = (uint64_t)st.st_size;
	return 0;
}

static ssize_t local_reader_pread(struct casfs_blob_reader *r, void *buf, size_t len, uint64_t off)
{
	struct local_blob_reader *lr = (struct local_blob_reader *)r;
	if (off >= r->size)
		return 0;
	len = (size_t)MIN((uint64_t)len, r->size - off);
	len = MIN(len, (size_t)SSIZE_MAX);
	for (;;) {
		ssize_t n = pread(lr->fd, buf, len, (off_t)off);
		if (n >= 0 || errno != EINTR)
			return n >= 0 ? n : casfs_neg_errno();
	}
}

static int local_reader_fd(struct casfs_blob_reader *r)
{
	return ((struct local_blob_reader *)r)->fd;
}

static void local_reader_close(struct casfs_blob_reader *r)
{
	struct local_blob_reader *lr = (struct local_blob_reader *)r;
	close(lr->fd);
	free(lr);
}

static const struct casfs_blob_reader_ops local_reader_ops = {
	.pread = local_reader_pread,
	.fd = local_reader_fd,
	.close = local_reader_close,
};

static int local_open(struct casfs_blob_service *s, const uint8_t digest[CASFS_B3_LEN],
		      struct casfs_blob_reader **ret)
{
	char name[BLOB_NAME_LEN];
	blob_name(digest, name);
	_cleanup_close_ int fd = openat(store_of(s)->blobs_fd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return casfs_neg_errno();
	struct stat st;
	if (fstat(fd, &st) < 0)
		return casfs_neg_errno();
	if (!S_ISREG(st.st_mode))
		return -EBADMSG;
	struct local_blob_reader *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->base.ops = &local_reader_ops;
	r->base.size = (uint64_t)st.st_size;
	memcpy(r->base.digest, digest, CASFS_B3_LEN);
	r->fd = TAKE_FD(fd);
	*ret = &r->base;
	return 0;
}

/* Whole chunks of zeros (sparse files, disk images) are not written. */
static bool is_zero(const uint8_t *p, size_t n)
{
	return n >= 4096 && p[0] == 0 && memcmp(p, p + 1, n - 1) == 0;
}

static int local_writer_write(struct casfs_blob_writer *w, const void *p, size_t n)
{
	struct local_blob_writer *lw = (struct local_blob_writer *)w;
	if (lw->error < 0)
		return lw->error;
	const uint8_t *q = p;
	int r;
	if (is_zero(q, n)) {
		/* keep runs of zeros sparse; commit sets the final length */
		if (lseek(lw->fd, (off_t)n, SEEK_CUR) < 0)
			return lw->error = casfs_neg_errno();
		lw->zero_tail = true;
	} else {
		if ((r = casfs_write_all(lw->fd, q, n)) < 0)
			return lw->error = r;
		lw->zero_tail = false;
	}
	r = lw->known ? 0 : casfs_b3_stream_update(&lw->hasher, p, n);
	if (r < 0)
		return lw->error = r;
	lw->size += n;
	if (lw->size - lw->flushed >= WRITEBACK_STEP) {
		sync_file_range(lw->fd, (off_t)lw->flushed, (off_t)(lw->size - lw->flushed),
				SYNC_FILE_RANGE_WRITE);
		lw->flushed = lw->size;
	}
	return 0;
}

static void local_writer_abort(struct casfs_blob_writer *w)
{
	struct local_blob_writer *lw = (struct local_blob_writer *)w;
	if (lw->tmp_name[0])
		unlinkat(lw->tmp_at, lw->tmp_name, 0);
	if (lw->fd >= 0)
		close(lw->fd);
	casfs_b3_stream_release(&lw->hasher);
	free(lw);
}

/* Make the fan-out directory of "XX/REST" `name` under dir_fd again (it
 * went missing): 0, or -1 with errno set. */
static int mkdir_fanout(int dir_fd, const char *name)
{
	char fan[3] = { name[0], name[1], 0 };
	return mkdirat(dir_fd, fan, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

/* Give the temp file the name `name` under blobs_fd without replacing
 * anything (-EEXIST if taken).  A named temp file is renamed with
 * RENAME_NOREPLACE, one operation where link + unlink are two. */
static int link_new(struct local_blob_writer *lw, const char *name)
{
	struct casfs_local_store *ls = lw->ls;
	for (int attempt = 0; attempt < 2; attempt++) {
		int r = -1;
		errno = EINVAL;
		if (lw->tmp_name[0] && !__atomic_load_n(&ls->no_renameat2, __ATOMIC_RELAXED)) {
			r = renameat2(lw->tmp_at, lw->tmp_name, ls->blobs_fd, name, RENAME_NOREPLACE);
			if (r == 0)
				lw->tmp_name[0] = 0;
			else if (errno == EINVAL || errno == ENOSYS)
				__atomic_store_n(&ls->no_renameat2, true, __ATOMIC_RELAXED);
		}
		if (r < 0 && (errno == EINVAL || errno == ENOSYS)) {
			if (lw->tmp_name[0]) {
				r = linkat(lw->tmp_at, lw->tmp_name, ls->blobs_fd, name, 0);
			} else {
				char proc[64];
				snprintf(proc, sizeof(proc), "/proc/self/fd/%d", lw->fd);
				r = linkat(AT_FDCWD, proc, ls->blobs_fd, name, AT_SYMLINK_FOLLOW);
				/* No /proc: AT_EMPTY_PATH works where we have the capability. */
				if (r < 0 && errno == ENOENT && access("/proc/self/fd", F_OK) < 0)
					r = linkat(lw->fd, "", ls->blobs_fd, name, AT_EMPTY_PATH);
			}
		}
		if (r == 0)
			return 0;
		if (errno != ENOENT || attempt > 0)
			return casfs_neg_errno();
		/* A fan-out directory went missing: make it and retry. */
		if (mkdir_fanout(ls->blobs_fd, name) < 0)
			return casfs_neg_errno();
	}
	return -ENOENT;
}

/* Put the temp file in place of a damaged blob file.  rename() replaces
 * atomically, so it needs the temp file to have a name. */
static int replace(struct local_blob_writer *lw, const char *name)
{
	struct casfs_local_store *ls = lw->ls;
	if (!lw->tmp_name[0]) {
		char proc[64];
		char tmp[32];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", lw->fd);
		_cleanup_close_ int fd = casfs_local_temp_file(ls->tmp_fd, "blob", tmp);
		if (fd < 0)
			return fd;
		/* linkat cannot replace: drop the placeholder name, link over it. */
		unlinkat(ls->tmp_fd, tmp, 0);
		if (linkat(AT_FDCWD, proc, ls->tmp_fd, tmp, AT_SYMLINK_FOLLOW) < 0)
			return casfs_neg_errno();
		memcpy(lw->tmp_name, tmp, sizeof(tmp));
		lw->tmp_at = ls->tmp_fd;
	}
	if (renameat(lw->tmp_at, lw->tmp_name, ls->blobs_fd, name) < 0)
		return casfs_neg_errno();
	lw->tmp_name[0] = 0;
	return 0;
}

/* Outboards: DIR/outboards/XX/REST, named as the blob. */

static int put_outboard(struct casfs_local_store *ls, const uint8_t digest[CASFS_B3_LEN],
			const struct casfs_outboard *ob, bool replace)
{
	if (ls->readonly || ls->outboards_fd < 0)
		return -EROFS;
	char name[BLOB_NAME_LEN];
	blob_name(digest, name);
	if (!replace && faccessat(ls->outboards_fd, name, F_OK, 0) == 0)
		return 0;
	_cleanup_free_ uint8_t *p = NULL;
	size_t len;
	int r = casfs_outboard_encode(ob, &p, &len);
	if (r < 0)
		return r;
	char tmp[32];
	_cleanup_close_ int fd = casfs_local_temp_file(ls->tmp_fd, "outboard", tmp);
	if (fd < 0)
		return fd;
	r = casfs_write_all(fd, p, len);
	if (r >= 0 && fchmod(fd, 0444) < 0)
		r = casfs_neg_errno();
	for (int attempt = 0; r >= 0; attempt++) {
		if (renameat(ls->tmp_fd, tmp, ls->outboards_fd, name) == 0)
			return 0;
		r = casfs_neg_errno();
		if (r != -ENOENT || attempt > 0)
			break;
		/* a fan-out directory went missing: make it and retry */
		if (mkdir_fanout(ls->outboards_fd, name) < 0)
			break;
		r = 0;
	}
	unlinkat(ls->tmp_fd, tmp, 0);
	return r;
}

static int local_outboard_put(struct casfs_blob_service *s, const uint8_t digest[CASFS_B3_LEN],
			      const struct casfs_outboard *ob, bool replace)
{
	return put_outboard(store_of(s), digest, ob, replace);
}

/* Bigger than any outboard of a blob casfs_outboard_decode accepts. */
#define OUTBOARD_MAX_FILE (CASFS_OUTBOARD_HEADER_LEN + (CASFS_OUTBOARD_MAX_SIZE >> 10) * CASFS_B3_LEN)

static int local_outboard_get(struct casfs_blob_service *s, const uint8_t digest[CASFS_B3_LEN],
			      uint8_t **ret, size_t *ret_len)
{
	struct casfs_local_store *ls = store_of(s);
	if (ls->outboards_fd < 0)
		return -ENOENT;
	char name[BLOB_NAME_LEN];
	blob_name(digest, name);
	_cleanup_close_ int fd = openat(ls->outboards_fd, name, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return casfs_neg_errno();
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > OUTBOARD_MAX_FILE)
		return -EBADMSG;
	size_t len = (size_t)st.st_size;
	uint8_t *p = malloc(len ? len : 1);
	if (!p)
		return -ENOMEM;
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, p + got, len - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int r = n < 0 ? casfs_neg_errno() : -EBADMSG;
			free(p);
			return r;
		}
		got += (size_t)n;
	}
	*ret = p;
	*ret_len = len;
	return 0;
}

static int local_writer_commit(struct casfs_blob_writer *w, const uint8_t *expected,
			       uint8_t ret_digest[CASFS_B3_LEN], uint64_t *ret_size)
{
	struct local_blob_writer *lw = (struct local_blob_writer *)w;
	uint8_t digest[CASFS_B3_LEN];
	struct casfs_outboard ob = { 0 };
	int r = lw->error;
	if (r >= 0 && lw->known) /* a blob that would need an outboard: misuse */
		r = casfs_outboard_wanted(lw->size) ? -EINVAL : 0;
	if (r >= 0 && lw->known)
		memcpy(digest, lw->known_digest, CASFS_B3_LEN);
	else if (r >= 0)
		r = casfs_b3_stream_final(&lw->hasher, digest, &ob);
	if (r >= 0 && expected && memcmp(expected, digest, CASFS_B3_LEN) != 0)
		r = -EBADMSG;
	if (r >= 0 && lw->zero_tail && ftruncate(lw->fd, (off_t)lw->size) < 0)
		r = casfs_neg_errno();

	char name[BLOB_NAME_LEN];
	blob_name(digest, name);
	struct stat st;
	bool present = false;
	for (int attempt = 0; r >= 0 && !present && attempt < 3; attempt++) {
		if (fstatat(lw->ls->blobs_fd, name, &st, 0) == 0) {
			/* Present with our size: the same bytes (a file whose
			 * bytes a crash lost was removed by the recovery at open,
			 * see local-store.h; other damage verification catches);
			 * keep it, linking nothing.  Another size is a
			 * crash-truncated file: replace it. */
			if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != lw->size) {
				r = casfs_local_link_begin(lw->ls);
				if (r >= 0) {
					r = replace(lw, name);
					casfs_local_link_end(lw->ls);
				}
			}
			present = r >= 0;
		} else if (errno != ENOENT) {
			r = casfs_neg_errno();
		} else {
			r = casfs_local_link_begin(lw->ls);
			if (r >= 0) {
				r = link_new(lw, name);
				casfs_local_link_end(lw->ls);
			}
			present = r >= 0;
			if (r == -EEXIST) /* a racing writer won: look again */
				r = 0;
		}
	}
	if (r >= 0 && !present)
		r = -EAGAIN;
	/* The blob is in place: now its outboard, unless one is there (a
	 * failure only means it is built again when needed). */
	if (r >= 0 && ob.n > 0)
		(void)put_outboard(lw->ls, digest, &ob, false);
	casfs_outboard_release(&ob);
	uint64_t size = lw->size;
	local_writer_abort(w); /* drops the temp file's name and fd */
	if (r < 0)
		return r;
	if (ret_digest)
		memcpy(ret_digest, digest, CASFS_B3_LEN);
	if (ret_size)
		*ret_size = size;
	return 0;
}

static const struct casfs_blob_writer_ops local_writer_ops = {
	.write = local_writer_write,
	.commit = local_writer_commit,
	.abort = local_writer_abort,
};

/* Open the temp file of a new blob in directory `dir` under `at`: an
 * O_TMPFILE file if `tmpfile` and the file system has them, else one
 * named "<dir>/<prefix>.<16 hex>".  0 or -errno. */
static int open_temp(struct local_blob_writer *w, int at, const char *dir, const char *prefix,
		     bool tmpfile)
{
	struct casfs_local_store *ls = w->ls;
	w->tmp_at = at;
	if (tmpfile && !__atomic_load_n(&ls->no_o_tmpfile, __ATOMIC_RELAXED)) {
		w->fd = openat(at, dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0444);
		if (w->fd >= 0)
			return 0;
		if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
			return casfs_neg_errno();
		__atomic_store_n(&ls->no_o_tmpfile, true, __ATOMIC_RELAXED);
	}
	char named[16];
	snprintf(named, sizeof(named), "%s/%s", dir, prefix);
	w->fd = casfs_local_temp_file(at, named, w->tmp_name);
	if (w->fd >= 0)
		return 0;
	w->tmp_name[0] = 0;
	return w->fd;
}

static int writer_new(struct casfs_blob_service *s, const uint8_t *digest,
		      struct casfs_blob_writer **ret)
{
	struct casfs_local_store *ls = store_of(s);
	if (ls->readonly)
		return -EROFS;
	struct local_blob_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->base.ops = &local_writer_ops;
	w->ls = ls;
	int r;
	if (digest) {
		/* In the blob's own fan-out directory: its link stays within
		 * one directory (no file-system-wide cross-directory rename
		 * lock), and inodes spread over the fan-out directories as
		 * names do.  An O_TMPFILE file, so that a writer killed
		 * halfway leaves nothing there (tmp/ is emptied at open). */
		char hex[3];
		casfs_hex_encode(digest, 1, hex);
		r = open_temp(w, ls->blobs_fd, hex, ".blob", true);
		if (r == -ENOENT && mkdir_fanout(ls->blobs_fd, hex) == 0)
			r = open_temp(w, ls->blobs_fd, hex, ".blob", true);
	} else {
		r = open_temp(w, ls->tmp_fd, ".", "blob", !ls->prefer_named_temp);
	}
	if (r < 0) {
		free(w);
		return r;
	}
	if (digest) {
		w->known = true;
		memcpy(w->known_digest, digest, CASFS_B3_LEN);
	}
	casfs_b3_stream_init(&w->hasher, casfs_b3_threads());
	*ret = &w->base;
	return 0;
}

static int local_create(struct casfs_blob_service *s, struct casfs_blob_writer **ret)
{
	return writer_new(s, NULL, ret);
}

static int local_create_known(struct casfs_blob_service *s, const uint8_t digest[CASFS_B3_LEN],
			      struct casfs_blob_writer **ret)
{
	return writer_new(s, digest, ret);
}

static int local_sync(struct casfs_blob_service *s)
{
	return casfs_local_unsynced_sync(store_of(s));
}

static int each_in_fanout(int blobs_fd, unsigned fan, casfs_local_blob_file_fn cb, void *userdata)
{
	char dname[3];
	snprintf(dname, sizeof(dname), "%02x", fan);
	int fd = openat(blobs_fd, dname, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : casfs_neg_errno();
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return casfs_neg_errno();
	}
	int r = 0;
	struct dirent *de;
	while (r >= 0 && (de = readdir(d))) {
		char hex[CASFS_HEX_LEN(CASFS_B3_LEN)];
		if (strlen(de->d_name) != sizeof(hex) - 2)
			continue; /* ".", "..", strays */
		memcpy(hex, dname, 2);
		memcpy(hex + 2, de->d_name, sizeof(hex) - 2);
		uint8_t digest[CASFS_B3_LEN];
		if (casfs_hex_decode(hex, sizeof(hex), digest, sizeof(digest)) != CASFS_B3_LEN)
			continue;
		r = cb(fd, de->d_name, digest, userdata);
	}
	closedir(d);
	return r;
}

int casfs_local_each_blob_file(int blobs_fd, casfs_local_blob_file_fn cb, void *userdata)
{
	for (unsigned fan = 0; fan < 256; fan++) {
		int r = each_in_fanout(blobs_fd, fan, cb, userdata);
		if (r < 0)
			return r;
	}
	return 0;
}

struct list_adapter {
	int (*cb)(const uint8_t digest[CASFS_B3_LEN], void *userdata);
	void *userdata;
};

static int list_one(int dir_fd, const char *name, const uint8_t digest[CASFS_B3_LEN], void *userdata)
{
	(void)dir_fd, (void)name;
	struct list_adapter *a = userdata;
	return a->cb(digest, a->userdata);
}

static int local_list(struct casfs_blob_service *s,
		      int (*cb)(const uint8_t digest[CASFS_B3_LEN], void *userdata), void *userdata)
{
	struct list_adapter a = { cb, userdata };
	return casfs_local_each_blob_file(store_of(s)->blobs_fd, list_one, &a);
}

static int local_remove(struct casfs_blob_service *s, const uint8_t digest[CASFS_B3_LEN])
{
	if (store_of(s)->readonly)
		return -EROFS;
	char name[BLOB_NAME_LEN];
	blob_name(digest, name);
	if (store_of(s)->outboards_fd >= 0)
		unlinkat(store_of(s)->outboards_fd, name, 0);
	return unlinkat(store_of(s)->blobs_fd, name, 0) < 0 ? casfs_neg_errno() : 0;
}

static void local_free(struct casfs_blob_service *s)
{
	casfs_local_store_unref(store_of(s));
	free(s);
}

static const struct casfs_blob_service_ops local_ops = {
	.name = "local",
	.stat = local_stat,
	.open = local_open,
	.create = local_create,
	.create_known = local_create_known,
	.sync = local_sync,
	.list = local_list,
	.outboard_get = local_outboard_get,
	.outboard_put = local_outboard_put,
	.remove = local_remove,
	.free = local_free,
};

int casfs_local_blob_service_new(struct casfs_local_store *ls, struct casfs_blob_service **ret)
{
	struct local_blob_service *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->base.ops = &local_ops;
	s->ls = ls;
	casfs_local_store_ref(ls);
	*ret = &s->base;
	return 0;
}
