/* casfs_import_path and casfs_import_tree: walk a filesystem tree in NAR
 * order, feeding the NAR hasher and the castore ingest side by side. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../basic/util.h"
#include "../nar/nar-reader.h"
#include "../nar/nar-writer.h"
#include "../castore/blob-worker.h"
#include "import.h"
#include "ingest.h"

#define READ_CHUNK (1u << 20)
/* import_small() reads a whole small file plus one byte into w->buf. */
_Static_assert(CASFS_INGEST_SMALL_FILE <= READ_CHUNK,
	       "w->buf (READ_CHUNK + 1 bytes) must hold a small file and one more byte");

struct walk {
	struct casfs_store *store;
	struct casfs_ingest *ingest;
	struct casfs_nar_writer nar; /* hashing only */
	struct casfs_blob_worker *worker; /* BLAKE3 and copies of large files */
	const struct casfs_import_options *opts;
	uint8_t *buf;                /* READ_CHUNK + 1 bytes */
	char path[PATH_MAX * 4];     /* for messages */
	uint64_t last_progress;
};

static int discard_sink(void *userdata, const void *p, size_t n)
{
	(void)userdata, (void)p, (void)n;
	return 0;
}

static void progress(struct walk *w)
{
	if (!w->opts || !w->opts->progress)
		return;
	uint64_t files, bytes;
	casfs_ingest_stats(w->ingest, &files, &bytes);
	if (files - w->last_progress < 256)
		return;
	w->last_progress = files;
	w->opts->progress(w->opts->progress_userdata, files, bytes);
}

static int io_error(struct walk *w, int r, const char *what, struct casfs_error *err)
{
	return casfs_error_set(err, r, "%s '%s': %s", what, w->path, strerror(-r));
}

/* Read exactly n bytes at the current offset; short reads mean the file
 * shrank under us. */
static int read_full(struct walk *w, int fd, uint8_t *p, size_t n, struct casfs_error *err)
{
	while (n) {
		ssize_t k = read(fd, p, n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return io_error(w, casfs_neg_errno(), "cannot read", err);
		}
		if (k == 0)
			return casfs_error_set(err, -EIO, "'%s' changed while being imported", w->path);
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int changed_error(struct walk *w, struct casfs_error *err)
{
	return casfs_error_set(err, -EIO, "'%s' changed while being imported", w->path);
}

/* Fail if the file has more bytes than it had when we started. */
static int check_at_end(struct walk *w, int fd, uint64_t off, struct casfs_error *err)
{
	char extra;
	ssize_t k = pread(fd, &extra, 1, (off_t)off);
	if (k < 0)
		return io_error(w, casfs_neg_errno(), "cannot read", err);
	return k ? changed_error(w, err) : 0;
}

/* Small files: the NAR hash here, the blob on the ingest's worker. */
static int import_small(struct walk *w, int fd, uint64_t size, struct casfs_error *err)
{
	/* Ask for one byte more than expected: regular files only return short
	 * at their end, so one read both fills the buffer and shows growth. */
	size_t got = 0;
	while (got < size) {
		ssize_t k = read(fd, w->buf + got, (size_t)size + 1 - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return io_error(w, casfs_neg_errno(), "cannot read", err);
		if (k == 0 || got + (size_t)k > size)
			return changed_error(w, err);
		got += (size_t)k;
	}
	int r = size ? 0 : check_at_end(w, fd, 0, err);
	if (r >= 0)
		r = casfs_ingest_file_data(w->ingest, w->buf, (size_t)size, err);
	if (r >= 0)
		r = casfs_nar_writer_file_data(&w->nar, w->buf, (size_t)size);
	return r;
}

struct digest_result {
	uint8_t digest[CASFS_B3_LEN];
	uint64_t size;
};

static int take_digest(void *userdata, uint64_t tag, const uint8_t digest[CASFS_B3_LEN],
		       uint64_t size)
{
	struct digest_result *res = userdata;
	(void)tag;
	memcpy(res->digest, digest, CASFS_B3_LEN);
	res->size = size;
	return 0;
}

/* Copy a large file into the store; the copy must hash to `digest`. */
static int copy_large(struct walk *w, int fd, uint64_t size, const uint8_t digest[CASFS_B3_LEN],
		      struct casfs_error *err)
{
	int r = casfs_blob_worker_stream_begin(w->worker);
	for (uint64_t off = 0; r >= 0 && off < size;) {
		size_t n = (size_t)MIN((uint64_t)READ_CHUNK, size - off);
		uint8_t *chunk = malloc(n);
		if (!chunk)
			return -ENOMEM;
		ssize_t k = pread(fd, chunk, n, (off_t)off);
		if (k <= 0) {
			free(chunk);
			r = k < 0 ? io_error(w, casfs_neg_errno(), "cannot read", err) : changed_error(w, err);
			break;
		}
		r = casfs_blob_worker_stream_data(w->worker, chunk, (size_t)k);
		off += (uint64_t)k;
	}
	if (r >= 0)
		r = casfs_blob_worker_stream_end(w->worker, 0, digest);
	struct digest_result res;
	struct casfs_error worker_err = { 0 };
	int d = casfs_blob_worker_drain(w->worker, take_digest, &res, &worker_err);
	if (r < 0 && r != d)
		return r; /* our own failure (a read): err says what */
	if (d == -EBADMSG) /* the copy does not hash to what the first read did */
		return changed_error(w, err);
	if (d < 0) /* the worker's failure (e.g. the disk is full), naming the file */
		return casfs_error_prefix(err, casfs_error_set(err, d, "%s", casfs_error_message(&worker_err, d)),
					  "'%s'", w->path);
	return r;
}

/* Large files: BLAKE3 on the worker while the NAR SHA-256 runs here, one
 * read.  The content is copied into the store (a second read) only when
 * the blob is new, and the copy is checked against the first digest, so a
 * file that changes in between is an error, never a corrupt blob.  A
 * re-import of known content thus costs just the hashing. */
static int import_large(struct walk *w, int fd, uint64_t size, struct digest_result *ret,
			struct casfs_error *err)
{
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	int r = casfs_blob_worker_hash_begin(w->worker);
	for (uint64_t off = 0; r >= 0 && off < size;) {
		size_t n = (size_t)MIN((uint64_t)READ_CHUNK, size - off);
		uint8_t *chunk = malloc(n);
		if (!chunk)
			return -ENOMEM;
		r = read_full(w, fd, chunk, n, err);
		if (r >= 0)
			r = casfs_nar_writer_file_data(&w->nar, chunk, n);
		if (r < 0) {
			free(chunk);
			break;
		}
		r = casfs_blob_worker_hash_data(w->worker, chunk, n);
		off += n;
	}
	if (r >= 0)
		r = check_at_end(w, fd, size, err);
	if (r >= 0)
		r = casfs_blob_worker_hash_end(w->worker, 0);
	struct digest_result res = { .size = 0 };
	int d = casfs_blob_worker_drain(w->worker, take_digest, &res, err);
	if (r < 0 || d < 0)
		return r < 0 ? r : d;

	uint64_t have;
	if (casfs_blob_stat(w->store->blobs, res.digest, &have) < 0 || have != size) {
		r = copy_large(w, fd, size, res.digest, err);
		if (r < 0)
			return r;
	}
	*ret = res;
	return 0;
}

static int import_file(struct walk *w, int dirfd, const char *fsname, const char *name,
		       size_t name_len, struct casfs_error *err)
{
	/* O_NONBLOCK: should the entry have become a FIFO, do not hang on it */
	_cleanup_close_ int fd =
		openat(dirfd, fsname, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return io_error(w, casfs_neg_errno(), "cannot open", err);
	struct stat st2;
	if (fstat(fd, &st2) < 0)
		return io_error(w, casfs_neg_errno(), "cannot stat", err);
	if (!S_ISREG(st2.st_mode))
		return changed_error(w, err);
	bool exec = (st2.st_mode & S_IXUSR) != 0;
	uint64_t size = (uint64_t)st2.st_size;
	int r = casfs_nar_writer_file_begin(&w->nar, exec, size);
	if (r < 0)
		return r;
	if (size <= CASFS_INGEST_SMALL_FILE) {
		r = casfs_ingest_file_begin(w->ingest, name, name_len, exec, size, err);
		if (r >= 0)
			r = import_small(w, fd, size, err);
		if (r >= 0)
			r = casfs_ingest_file_end(w->ingest, err);
	} else {
		struct digest_result res;
		r = import_large(w, fd, size, &res, err);
		if (r >= 0)
			r = casfs_ingest_file_known(w->ingest, name, name_len, exec, res.digest, size,
						    err);
	}
	if (r >= 0)
		r = casfs_nar_writer_file_end(&w->nar);
	progress(w);
	return r;
}

static int import_symlink(struct walk *w, int dirfd, const char *fsname, const char *name,
			  size_t name_len, struct casfs_error *err)
{
	char target[CASFS_SYMLINK_TARGET_MAX + 2];
	ssize_t n = readlinkat(dirfd, fsname, target, sizeof(target));
	if (n < 0)
		return io_error(w, casfs_neg_errno(), "cannot read symlink", err);
	if ((size_t)n > CASFS_SYMLINK_TARGET_MAX)
		return casfs_error_set(err, -EINVAL, "symlink '%s': target longer than %d bytes",
				       w->path, CASFS_SYMLINK_TARGET_MAX);
	target[n] = 0;
	int r = casfs_nar_writer_symlink(&w->nar, target, (size_t)n);
	if (r < 0)
		return r;
	return casfs_ingest_symlink(w->ingest, name, name_len, target, (size_t)n, err);
}

/* A directory entry: its name and readdir's d_type (DT_UNKNOWN when the
 * file system does not tell, then we lstat). */
struct entry {
	char *name;
	unsigned char type;
};

static int cmp_entries(const void *a, const void *b)
{
	/* strcmp compares as unsigned char: bytewise, as NAR wants */
	return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

static void free_entries(struct entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(e[i].name);
	free(e);
}

/* Read and sort a directory's entries.  *ret owned by the caller. */
static int read_entries(struct walk *w, int fd, struct entry **ret, size_t *ret_n,
			struct casfs_error *err)
{
	int dfd = dup(fd);
	if (dfd < 0)
		return io_error(w, casfs_neg_errno(), "cannot read directory", err);
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return io_error(w, casfs_neg_errno(), "cannot read directory", err);
	}
	struct entry *e = NULL;
	size_t n = 0, cap = 0;
	int r = 0;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			struct entry *ne = realloc(e, cap * sizeof(*ne));
			if (!ne) {
				r = -ENOMEM;
				break;
			}
			e = ne;
		}
		if (!(e[n].name = strdup(de->d_name))) {
			r = -ENOMEM;
			break;
		}
		e[n++].type = de->d_type;
		errno = 0;
	}
	if (r == 0 && errno)
		r = io_error(w, casfs_neg_errno(), "cannot read directory", err);
	closedir(d);
	if (r < 0) {
		free_entries(e, n);
		return r;
	}
	if (n)
		qsort(e, n, sizeof(*e), cmp_entries);
	*ret = e;
	*ret_n = n;
	return 0;
}

static int import_node(struct walk *w, int dirfd, const char *fsname, const char *name,
		       unsigned char dtype, unsigned depth, struct casfs_error *err);

static int import_directory(struct walk *w, int dirfd, const char *fsname, const char *name,
			    unsigned depth, struct casfs_error *err)
{
	if (depth >= CASFS_NAR_MAX_DEPTH)
		return casfs_error_set(err, -ELOOP, "'%s': nested deeper than %d levels", w->path,
				       CASFS_NAR_MAX_DEPTH);
	_cleanup_close_ int fd = openat(dirfd, fsname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return io_error(w, casfs_neg_errno(), "cannot open directory", err);
	struct entry *entries = NULL;
	size_t n = 0;
	int r = read_entries(w, fd, &entries, &n, err);
	if (r < 0)
		return r;
	r = casfs_nar_writer_directory_begin(&w->nar);
	if (r >= 0)
		r = casfs_ingest_directory_begin(w->ingest, name, name ? strlen(name) : 0, err);
	size_t path_len = strlen(w->path);
	for (size_t i = 0; r >= 0 && i < n; i++) {
		const char *nm = entries[i].name;
		snprintf(w->path + path_len, sizeof(w->path) - path_len, "/%s", nm);
		r = casfs_nar_writer_entry_begin(&w->nar, nm, strlen(nm));
		if (r >= 0)
			r = import_node(w, fd, nm, nm, entries[i].type, depth + 1, err);
		if (r >= 0)
			r = casfs_nar_writer_entry_end(&w->nar);
	}
	free_entries(entries, n);
	if (r < 0)
		return r;
	w->path[path_len] = 0;
	r = casfs_nar_writer_directory_end(&w->nar);
	if (r < 0)
		return r;
	return casfs_ingest_directory_end(w->ingest, err);
}

/* `fsname` names the node for system calls relative to dirfd; `name` is
 * its name in the tree, NULL for the root. */
static int import_node(struct walk *w, int dirfd, const char *fsname, const char *name,
		       unsigned char dtype, unsigned depth, struct casfs_error *err)
{
	size_t name_len = name ? strlen(name) : 0;
	if (name) {
		int r = casfs_name_validate(name, name_len, err);
		if (r < 0)
			return casfs_error_prefix(err, r, "'%s'", w->path);
	}
	/* readdir's type saves an lstat for the common kinds; import_file and
	 * import_symlink still check what they open */
	if (dtype == DT_REG)
		return import_file(w, dirfd, fsname, name, name_len, err);
	if (dtype == DT_LNK)
		return import_symlink(w, dirfd, fsname, name, name_len, err);
	struct stat st;
	if (fstatat(dirfd, fsname, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return io_error(w, casfs_neg_errno(), "cannot stat", err);
	if (S_ISREG(st.st_mode))
		return import_file(w, dirfd, fsname, name, name_len, err);
	if (S_ISLNK(st.st_mode))
		return import_symlink(w, dirfd, fsname, name, name_len, err);
	if (S_ISDIR(st.st_mode))
		return import_directory(w, dirfd, fsname, name, depth, err);
	return casfs_error_set(err, -EINVAL, "'%s' has an unsupported file type (%s)", w->path,
			       S_ISSOCK(st.st_mode) ? "socket" :
			       S_ISFIFO(st.st_mode) ? "fifo" :
			       S_ISCHR(st.st_mode) ? "character device" :
			       S_ISBLK(st.st_mode) ? "block device" : "unknown");
}

/* The basename Nix would use: last component, ignoring trailing slashes. */
static char *default_name(const char *path)
{
	_cleanup_free_ char *p = strdup(path);
	if (!p)
		return NULL;
	size_t n = strlen(p);
	while (n > 1 && p[n - 1] == '/')
		p[--n] = 0;
	if (strcmp(p, ".") == 0 || strcmp(p, "..") == 0 || strcmp(p, "/") == 0) {
		char *abs = realpath(path, NULL);
		if (!abs)
			return NULL;
		free(p);
		p = abs;
	}
	const char *slash = strrchr(p, '/');
	return strdup(slash && slash[1] ? slash + 1 : p);
}

/* The walk's state for one import; NULL on OOM.  `opts` borrowed. */
static struct walk *walk_new(struct casfs_store *s, const char *path,
			     const struct casfs_import_options *opts)
{
	struct walk *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->store = s;
	w->opts = opts;
	w->ingest = casfs_ingest_new(s);
	w->buf = malloc(READ_CHUNK + 1);
	if (casfs_blob_worker_new(s->blobs, 8 * READ_CHUNK, &w->worker) < 0)
		w->worker = NULL;
	snprintf(w->path, sizeof(w->path), "%s", path);
	if (!w->ingest || !w->buf || !w->worker) {
		casfs_blob_worker_free(w->worker);
		casfs_ingest_free(w->ingest);
		free(w->buf);
		free(w);
		return NULL;
	}
	return w;
}

static void walk_free(struct walk *w)
{
	if (!w)
		return;
	casfs_nar_writer_release(&w->nar);
	casfs_blob_worker_free(w->worker);
	casfs_ingest_free(w->ingest);
	free(w->buf);
	free(w);
}

/* Walk the tree at `path` into w's ingest (left unfinished: the caller
 * names the root) and the NAR hasher. */
static int walk_tree(struct walk *w, const char *path, uint8_t ret_sha256[CASFS_SHA256_LEN],
		     uint64_t *ret_nar_size, struct casfs_error *err)
{
	/* The root is opened relative to its parent so that a symlink at the
	 * root is imported as a symlink, as Nix does. */
	_cleanup_free_ char *copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	size_t n = strlen(copy);
	while (n > 1 && copy[n - 1] == '/')
		copy[--n] = 0;
	char *slash = strrchr(copy, '/');
	const char *parent = ".", *base = copy;
	if (slash) {
		*slash = 0;
		parent = slash == copy ? "/" : copy;
		base = slash + 1;
	}
	if (!*base || strcmp(base, "..") == 0) {
		parent = path;
		base = ".";
	}
	_cleanup_close_ int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0)
		return casfs_error_set(err, casfs_neg_errno(), "cannot open '%s': %s", path,
				       strerror(errno));

	int r = casfs_nar_writer_init(&w->nar, discard_sink, NULL, 0, true);
	if (r >= 0)
		r = casfs_nar_writer_begin(&w->nar);
	if (r >= 0)
		r = import_node(w, pfd, base, NULL, DT_UNKNOWN, 0, err);
	if (r >= 0)
		r = casfs_nar_writer_finish(&w->nar);
	if (r < 0)
		return r;
	casfs_nar_writer_result(&w->nar, ret_sha256, ret_nar_size);
	return 0;
}

int casfs_import_tree(struct casfs_store *s, const char *path, const char *root_name,
		      const struct casfs_import_options *opts, struct casfs_node *ret_root,
		      uint8_t ret_nar_sha256[CASFS_SHA256_LEN], uint64_t *ret_nar_size,
		      struct casfs_error *err)
{
	struct walk *w = walk_new(s, path, opts);
	if (!w)
		return -ENOMEM;
	uint8_t sha[CASFS_SHA256_LEN];
	uint64_t nar_size;
	struct casfs_node root;
	int r = walk_tree(w, path, sha, &nar_size, err);
	if (r >= 0)
		r = casfs_ingest_finish(w->ingest, root_name, &root, err);
	walk_free(w);
	if (r < 0)
		return r;
	*ret_root = root;
	memcpy(ret_nar_sha256, sha, sizeof(sha));
	*ret_nar_size = nar_size;
	return 0;
}

int casfs_import_path(struct casfs_store *s, const char *path,
		      const struct casfs_import_options *opts, struct casfs_import_result *ret,
		      struct casfs_error *err)
{
	_cleanup_free_ char *name = opts && opts->name ? strdup(opts->name) : default_name(path);
	if (!name)
		return casfs_error_set(err, casfs_neg_errno(), "'%s': %s", path, strerror(errno));
	int r = casfs_store_path_name_validate(name, strlen(name), err);
	if (r < 0)
		return casfs_error_prefix(err, r, "cannot import '%s'", path);

	struct walk *w = walk_new(s, path, opts);
	if (!w)
		return -ENOMEM;
	uint8_t sha[CASFS_SHA256_LEN];
	uint64_t nar_size;
	r = walk_tree(w, path, sha, &nar_size, err);
	if (r < 0)
		goto out;
	struct casfs_store_path sp;
	r = casfs_store_path_make_source(sha, name, NULL, 0, &sp, err);
	if (r < 0)
		goto out;
	char base_name[CASFS_STORE_PATH_BASENAME_MAX + 1];
	casfs_store_path_format_basename(&sp, base_name);
	struct casfs_node root;
	r = casfs_ingest_finish(w->ingest, base_name, &root, err);
	if (r < 0)
		goto out;
	r = casfs_import_register(s, &root, &sp, sha, nar_size, err);
	if (r < 0)
		goto out;
	ret->path = sp;
	memcpy(ret->nar_sha256, sha, sizeof(sha));
	ret->nar_size = nar_size;
out:
	walk_free(w);
	return r;
}
