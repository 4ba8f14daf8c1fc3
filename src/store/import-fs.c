/* casfs_import_path: walk a filesystem tree in NAR order, feeding the NAR
 * hasher and the castore ingest side by side. */
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
#include "import.h"
#include "ingest.h"

#define READ_CHUNK (1u << 20)

struct walk {
	struct casfs_store *store;
	struct casfs_ingest *ingest;
	struct casfs_nar_writer nar; /* hashing only */
	const struct casfs_import_options *opts;
	uint8_t *buf;                /* READ_CHUNK bytes */
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

/* Stream a file's content to the NAR hash and the ingest, chunk by chunk;
 * the ingest stores the blob on its worker thread meanwhile. */
static int import_content(struct walk *w, int fd, uint64_t size, struct casfs_error *err)
{
	if (size > READ_CHUNK)
		posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	for (uint64_t off = 0; off < size;) {
		size_t n = (size_t)MIN((uint64_t)READ_CHUNK, size - off);
		int r = read_full(w, fd, w->buf, n, err);
		if (r < 0)
			return r;
		r = casfs_ingest_file_data(w->ingest, w->buf, n, err);
		if (r < 0)
			return r;
		r = casfs_nar_writer_file_data(&w->nar, w->buf, n);
		if (r < 0)
			return r;
		off += n;
	}
	/* a file that grew while we read it must not go in half-read */
	char extra;
	ssize_t k = read(fd, &extra, 1);
	if (k != 0)
		return k < 0 ? io_error(w, casfs_neg_errno(), "cannot read", err)
			     : casfs_error_set(err, -EIO, "'%s' changed while being imported", w->path);
	return 0;
}

static int import_file(struct walk *w, int dirfd, const char *fsname, const char *name,
		       size_t name_len, const struct stat *st, struct casfs_error *err)
{
	_cleanup_close_ int fd = openat(dirfd, fsname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return io_error(w, casfs_neg_errno(), "cannot open", err);
	struct stat st2;
	if (fstat(fd, &st2) < 0)
		return io_error(w, casfs_neg_errno(), "cannot stat", err);
	if (st2.st_ino != st->st_ino || st2.st_dev != st->st_dev || !S_ISREG(st2.st_mode))
		return casfs_error_set(err, -EIO, "'%s' changed while being imported", w->path);
	bool exec = (st2.st_mode & S_IXUSR) != 0;
	uint64_t size = (uint64_t)st2.st_size;
	int r = casfs_nar_writer_file_begin(&w->nar, exec, size);
	if (r >= 0)
		r = casfs_ingest_file_begin(w->ingest, name, name_len, exec, size, err);
	if (r >= 0)
		r = import_content(w, fd, size, err);
	if (r >= 0)
		r = casfs_ingest_file_end(w->ingest, err);
	if (r >= 0)
		r = casfs_nar_writer_file_end(&w->nar);
	progress(w);
	return r;
}

static int import_symlink(struct walk *w, int dirfd, const char *fsname, const char *name,
			  size_t name_len, const struct stat *st, struct casfs_error *err)
{
	char target[CASFS_SYMLINK_TARGET_MAX + 2];
	ssize_t n = readlinkat(dirfd, fsname, target, sizeof(target));
	if (n < 0)
		return io_error(w, casfs_neg_errno(), "cannot read symlink", err);
	if ((size_t)n > CASFS_SYMLINK_TARGET_MAX || n != st->st_size)
		return casfs_error_set(err, -EINVAL, "symlink '%s': target too long", w->path);
	target[n] = 0;
	int r = casfs_nar_writer_symlink(&w->nar, target, (size_t)n);
	if (r < 0)
		return r;
	return casfs_ingest_symlink(w->ingest, name, name_len, target, (size_t)n, err);
}

static int cmp_names(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	return strcmp(x, y); /* strcmp compares as unsigned char: bytewise */
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Read and sort a directory's entry names.  *ret owned by the caller. */
static int read_names(struct walk *w, int fd, char ***ret, size_t *ret_n, struct casfs_error *err)
{
	int dfd = dup(fd);
	if (dfd < 0)
		return io_error(w, casfs_neg_errno(), "cannot read directory", err);
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return io_error(w, casfs_neg_errno(), "cannot read directory", err);
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	int r = 0;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			char **nn = realloc(names, cap * sizeof(*nn));
			if (!nn) {
				r = -ENOMEM;
				break;
			}
			names = nn;
		}
		if (!(names[n] = strdup(de->d_name))) {
			r = -ENOMEM;
			break;
		}
		n++;
		errno = 0;
	}
	if (r == 0 && errno)
		r = io_error(w, casfs_neg_errno(), "cannot read directory", err);
	closedir(d);
	if (r < 0) {
		free_names(names, n);
		return r;
	}
	if (n)
		qsort(names, n, sizeof(*names), cmp_names);
	*ret = names;
	*ret_n = n;
	return 0;
}

static int import_node(struct walk *w, int dirfd, const char *fsname, const char *name,
		       unsigned depth, struct casfs_error *err);

static int import_directory(struct walk *w, int dirfd, const char *fsname, const char *name,
			    unsigned depth, struct casfs_error *err)
{
	if (depth >= CASFS_NAR_MAX_DEPTH)
		return casfs_error_set(err, -ELOOP, "'%s': nested deeper than %d levels", w->path,
				       CASFS_NAR_MAX_DEPTH);
	_cleanup_close_ int fd = openat(dirfd, fsname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return io_error(w, casfs_neg_errno(), "cannot open directory", err);
	char **names = NULL;
	size_t n = 0;
	int r = read_names(w, fd, &names, &n, err);
	if (r < 0)
		return r;
	r = casfs_nar_writer_directory_begin(&w->nar);
	if (r >= 0)
		r = casfs_ingest_directory_begin(w->ingest, name, name ? strlen(name) : 0, err);
	size_t path_len = strlen(w->path);
	for (size_t i = 0; r >= 0 && i < n; i++) {
		snprintf(w->path + path_len, sizeof(w->path) - path_len, "/%s", names[i]);
		r = casfs_nar_writer_entry_begin(&w->nar, names[i], strlen(names[i]));
		if (r >= 0)
			r = import_node(w, fd, names[i], names[i], depth + 1, err);
		if (r >= 0)
			r = casfs_nar_writer_entry_end(&w->nar);
	}
	free_names(names, n);
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
		       unsigned depth, struct casfs_error *err)
{
	struct stat st;
	if (fstatat(dirfd, fsname, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return io_error(w, casfs_neg_errno(), "cannot stat", err);
	size_t name_len = name ? strlen(name) : 0;
	if (name) {
		int r = casfs_name_validate(name, name_len, err);
		if (r < 0)
			return casfs_error_prefix(err, r, "'%s'", w->path);
	}
	if (S_ISREG(st.st_mode))
		return import_file(w, dirfd, fsname, name, name_len, &st, err);
	if (S_ISLNK(st.st_mode))
		return import_symlink(w, dirfd, fsname, name, name_len, &st, err);
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

	struct walk *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->store = s;
	w->opts = opts;
	w->ingest = casfs_ingest_new(s);
	w->buf = malloc(READ_CHUNK);
	snprintf(w->path, sizeof(w->path), "%s", path);
	if (!w->ingest || !w->buf) {
		r = -ENOMEM;
		goto out;
	}
	r = casfs_nar_writer_init(&w->nar, discard_sink, NULL, 0, true);
	if (r >= 0)
		r = casfs_nar_writer_begin(&w->nar);
	if (r >= 0)
		r = import_node(w, pfd, base, NULL, 0, err);
	if (r < 0)
		goto out;

	uint8_t sha[CASFS_SHA256_LEN];
	uint64_t nar_size;
	r = casfs_nar_writer_finish(&w->nar);
	if (r < 0)
		goto out;
	casfs_nar_writer_result(&w->nar, sha, &nar_size);
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
	casfs_nar_writer_release(&w->nar);
	casfs_ingest_free(w->ingest);
	free(w->buf);
	free(w);
	return r;
}
