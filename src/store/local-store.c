/* Opening, creating and closing the local store (layout in local-store.h). */
#include "local-store-internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../basic/util.h"
#include "store.h"

#define MARKER_FORMAT "casfs-store-version %d\n"
/* Virtual only: LMDB maps this much address space but the file grows with
 * the data.  1 TiB leaves room for any realistic set of directories. */
#define MAP_SIZE ((size_t)1 << 40)

/* Entries a half-created store may hold before its marker appears. */
static const char *const layout_names[] = { "blobs", "outboards", "tmp", "unsynced", "db", "lock" };

int casfs_local_mdb_error(struct casfs_error *err, int rc, const char *what)
{
	if (rc == MDB_MAP_FULL)
		return casfs_error_set(err, -ENOSPC, "%s: store database is full (LMDB map size)",
				       what);
	if (rc == ENOSPC)
		return casfs_error_set(err, -ENOSPC, "%s: no space left on device", what);
	if (rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_INVALID ||
	    rc == MDB_VERSION_MISMATCH)
		return casfs_error_set(err, -EBADMSG, "%s: store database damaged: %s", what,
				       mdb_strerror(rc));
	if (rc > 0)
		return casfs_error_set(err, -rc, "%s: %s", what, strerror(rc));
	return casfs_error_set(err, -EIO, "%s: %s", what, mdb_strerror(rc));
}

int casfs_local_temp_file(int dir_fd, const char *prefix, char name[static 32])
{
	for (int attempt = 0; attempt < 100; attempt++) {
		uint64_t rnd;
		if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
			return casfs_neg_errno();
		snprintf(name, 32, "%.8s.%016llx", prefix, (unsigned long long)rnd);
		int fd = openat(dir_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
		if (fd >= 0 || errno != EEXIST)
			return fd >= 0 ? fd : casfs_neg_errno();
	}
	return -EEXIST;
}

void casfs_local_store_ref(struct casfs_local_store *ls)
{
	__atomic_add_fetch(&ls->refs, 1, __ATOMIC_RELAXED);
}

void casfs_local_store_unref(struct casfs_local_store *ls)
{
	if (!ls || __atomic_sub_fetch(&ls->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	if (ls->env)
		mdb_env_close(ls->env);
	casfs_local_unsynced_release(ls);
	int fds[] = { ls->dir_fd, ls->blobs_fd, ls->outboards_fd, ls->tmp_fd, ls->unsynced_fd,
		      ls->lock_fd };
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		if (fds[i] >= 0)
			close(fds[i]); /* lock_fd: also releases the flock */
	free(ls->path);
	free(ls);
}

static int mkdir_p(const char *path)
{
	_cleanup_free_ char *p = strdup(path);
	if (!p)
		return -ENOMEM;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return casfs_neg_errno();
		*s = '/';
	}
	if (mkdir(p, 0755) < 0 && errno != EEXIST)
		return casfs_neg_errno();
	return 0;
}

static int mkdirat_ok(int dir_fd, const char *name)
{
	return mkdirat(dir_fd, name, 0755) < 0 && errno != EEXIST ? casfs_neg_errno() : 0;
}

/* 1 if the directory holds only what a store being created may hold (so a
 * crash during creation can be resumed), 0 if it holds anything else. */
static int only_layout_entries(int dir_fd)
{
	int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		int r = casfs_neg_errno();
		if (fd >= 0)
			close(fd);
		return r;
	}
	int r = 1;
	struct dirent *de;
	while (r == 1 && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		r = 0;
		for (size_t i = 0; i < ARRAY_SIZE(layout_names); i++)
			if (!strcmp(de->d_name, layout_names[i]))
				r = 1;
	}
	closedir(d);
	return r;
}

/* The version the marker states (1 or 2), -ENOENT if there is none,
 * -EBADMSG otherwise. */
static int check_marker(struct casfs_local_store *ls, struct casfs_error *err)
{
	_cleanup_close_ int fd = openat(ls->dir_fd, CASFS_LOCAL_STORE_MARKER, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ENOENT
				       : casfs_error_set(err, casfs_neg_errno(), "%s/%s: %s", ls->path,
							 CASFS_LOCAL_STORE_MARKER, strerror(errno));
	char buf[64];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0)
		return casfs_error_set(err, casfs_neg_errno(), "%s/%s: %s", ls->path,
				       CASFS_LOCAL_STORE_MARKER, strerror(errno));
	buf[n] = 0;
	for (int v = 1; v <= CASFS_LOCAL_STORE_VERSION; v++) {
		char text[32];
		int len = snprintf(text, sizeof(text), MARKER_FORMAT, v);
		if (n == len && !memcmp(buf, text, (size_t)n))
			return v;
	}
	unsigned long version;
	char nl;
	if (sscanf(buf, "casfs-store-version %lu%c", &version, &nl) == 2 && nl == '\n')
		return casfs_error_set(err, -EBADMSG,
				       "%s: unsupported casfs store version %lu (this casfs knows 1 to %d)",
				       ls->path, version, CASFS_LOCAL_STORE_VERSION);
	return casfs_error_set(err, -EBADMSG, "%s: malformed store marker %s", ls->path,
			       CASFS_LOCAL_STORE_MARKER);
}

/* Write the marker for the current version: a new file renamed over any
 * old one, both made durable first. */
static int write_marker(struct casfs_local_store *ls)
{
	char name[32];
	int fd = casfs_local_temp_file(ls->tmp_fd, "marker", name);
	if (fd < 0)
		return fd;
	int r = 0;
	char text[32];
	int len = snprintf(text, sizeof(text), MARKER_FORMAT, CASFS_LOCAL_STORE_VERSION);
	if (write(fd, text, (size_t)len) != len || fsync(fd) < 0)
		r = errno ? casfs_neg_errno() : -EIO;
	close(fd);
	if (r >= 0 && renameat(ls->tmp_fd, name, ls->dir_fd, CASFS_LOCAL_STORE_MARKER) < 0)
		r = casfs_neg_errno();
	if (r < 0)
		unlinkat(ls->tmp_fd, name, 0);
	if (r >= 0 && fsync(ls->dir_fd) < 0)
		r = casfs_neg_errno();
	return r;
}

/* DIR/NAME and its 256 fan-out directories. */
static int make_fanout(int dir_fd, const char *name)
{
	int r = mkdirat_ok(dir_fd, name);
	if (r < 0)
		return r;
	_cleanup_close_ int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return casfs_neg_errno();
	for (unsigned i = 0; i < 256; i++) {
		char fan[3];
		snprintf(fan, sizeof(fan), "%02x", i);
		if ((r = mkdirat_ok(fd, fan)) < 0)
			return r;
	}
	return 0;
}

static int create_layout(struct casfs_local_store *ls)
{
	int r = make_fanout(ls->dir_fd, "blobs");
	if (r >= 0)
		r = make_fanout(ls->dir_fd, "outboards");
	if (r >= 0)
		r = mkdirat_ok(ls->dir_fd, "tmp");
	if (r >= 0)
		r = mkdirat_ok(ls->dir_fd, "unsynced");
	if (r >= 0)
		r = mkdirat_ok(ls->dir_fd, "db");
	return r;
}

static void clean_tmp(int tmp_fd)
{
	int fd = openat(tmp_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			unlinkat(tmp_fd, de->d_name, 0);
	closedir(d);
}

/* DIR/unsynced, which stores made by older versions lack: made durably
 * before any record can go in it. */
static int open_unsynced(struct casfs_local_store *ls)
{
	if (mkdirat(ls->dir_fd, "unsynced", 0755) == 0) {
		if (fsync(ls->dir_fd) < 0)
			return casfs_neg_errno();
	} else if (errno != EEXIST) {
		return casfs_neg_errno();
	}
	ls->unsynced_fd = openat(ls->dir_fd, "unsynced", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return ls->unsynced_fd < 0 ? casfs_neg_errno() : 0;
}

/* Hold LOCK_SH for the life of a writable store; first, if nobody else
 * holds the lock at all, no temp file in tmp/ can be live: remove them,
 * and recover the unsynced records of writers that are gone (other
 * openers wait for LOCK_SH meanwhile, so none trusts a blob file that
 * recovery has not checked yet). */
static int take_writer_lock(struct casfs_local_store *ls)
{
	ls->lock_fd = openat(ls->dir_fd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (ls->lock_fd < 0)
		return casfs_neg_errno();
	if (flock(ls->lock_fd, LOCK_EX | LOCK_NB) == 0) {
		clean_tmp(ls->tmp_fd);
		int r = casfs_local_unsynced_recover(ls);
		if (r < 0)
			return r;
	} else if (errno != EWOULDBLOCK) {
		return casfs_neg_errno();
	}
	while (flock(ls->lock_fd, LOCK_SH) < 0)
		if (errno != EINTR)
			return casfs_neg_errno();
	return 0;
}

/* Create and open ls->env; on failure it is closed again (LMDB wants a
 * failed environment discarded) and an LMDB or errno code returned. */
static int env_open(struct casfs_local_store *ls, const char *dbpath, unsigned flags)
{
	int rc = mdb_env_create(&ls->env);
	if (rc != 0)
		return rc;
	rc = mdb_env_set_maxdbs(ls->env, 4);
	if (rc == 0)
		rc = mdb_env_set_mapsize(ls->env, MAP_SIZE);
	/* Each read transaction in flight holds a slot (MDB_NOTLS: a slot
	 * belongs to the transaction, released when it ends). */
	if (rc == 0)
		rc = mdb_env_set_maxreaders(ls->env, ls->max_readers);
	if (rc == 0)
		rc = mdb_env_open(ls->env, dbpath, flags, 0644);
	if (rc != 0) {
		mdb_env_close(ls->env);
		ls->env = NULL;
	}
	return rc;
}

static int open_db(struct casfs_local_store *ls, struct casfs_error *err)
{
	char dbpath[4096];
	if (snprintf(dbpath, sizeof(dbpath), "%s/db", ls->path) >= (int)sizeof(dbpath))
		return casfs_error_set(err, -ENAMETOOLONG, "%s: path too long", ls->path);
	unsigned flags = MDB_NOTLS | (ls->readonly ? MDB_RDONLY : 0);
	int rc = env_open(ls, dbpath, flags);
	/* Read access alone: lock.mdb cannot be opened for writing, so no
	 * reader slot can be taken.  (On a read-only file system LMDB itself
	 * goes without the lock file.)  Either way a writer elsewhere, if any,
	 * could recycle pages under a read; a shared read-only store has none. */
	if (rc == EACCES && ls->readonly)
		rc = env_open(ls, dbpath, flags | MDB_NOLOCK);
	if (rc != 0)
		return casfs_local_mdb_error(err, rc, dbpath);

	MDB_txn *txn;
	rc = mdb_txn_begin(ls->env, NULL, ls->readonly ? MDB_RDONLY : 0, &txn);
	if (rc != 0)
		return casfs_local_mdb_error(err, rc, dbpath);
	unsigned dbflags = ls->readonly ? 0 : MDB_CREATE;
	rc = mdb_dbi_open(txn, "directories", dbflags, &ls->dirs_dbi);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "pathinfo", dbflags, &ls->pathinfo_dbi);
	if (rc != 0) {
		mdb_txn_abort(txn);
		if (rc == MDB_NOTFOUND)
			return casfs_error_set(err, -EBADMSG, "%s: store database lacks its tables",
					       dbpath);
		return casfs_local_mdb_error(err, rc, dbpath);
	}
	rc = mdb_txn_commit(txn);
	return rc ? casfs_local_mdb_error(err, rc, dbpath) : 0;
}

/* Open DIR itself, making it if asked; then establish that it is a store. */
static int open_dir(struct casfs_local_store *ls, unsigned flags, struct casfs_error *err)
{
	bool create = (flags & CASFS_STORE_CREATE) && !ls->readonly;
	ls->dir_fd = open(ls->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ls->dir_fd < 0 && errno == ENOENT && create) {
		int r = mkdir_p(ls->path);
		if (r < 0)
			return casfs_error_set(err, r, "cannot create store %s: %s", ls->path,
					       strerror(-r));
		ls->dir_fd = open(ls->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (ls->dir_fd < 0) {
		if (errno == ENOENT)
			return casfs_error_set(err, -ENOENT, "no casfs store at %s", ls->path);
		if (errno == ENOTDIR)
			return casfs_error_set(err, -EBADMSG, "%s is not a casfs store (not a directory)",
					       ls->path);
		return casfs_error_set(err, casfs_neg_errno(), "%s: %s", ls->path, strerror(errno));
	}

	int r = check_marker(ls, err);
	if (r != -ENOENT)
		return r;
	r = only_layout_entries(ls->dir_fd);
	if (r < 0)
		return casfs_error_set(err, r, "%s: %s", ls->path, strerror(-r));
	/* another process may have just finished creating the store: its
	 * marker appeared between our two looks */
	if (r == 0 && (r = check_marker(ls, err)) != -ENOENT)
		return r;
	if (r == -ENOENT)
		return casfs_error_set(err, -EBADMSG,
				       "%s is not a casfs store (no %s marker, and not empty)",
				       ls->path, CASFS_LOCAL_STORE_MARKER);
	if (!create)
		return casfs_error_set(err, -ENOENT, "no casfs store at %s (no %s marker)",
				       ls->path, CASFS_LOCAL_STORE_MARKER);
	r = create_layout(ls);
	if (r < 0)
		return casfs_error_set(err, r, "cannot create store %s: %s", ls->path, strerror(-r));
	return 0; /* created: the marker is written once the database exists */
}

/* Version 1 to 2: add outboards/ (filled lazily: see local-store.h), then
 * the new marker. */
static int upgrade_v1(struct casfs_local_store *ls)
{
	int r = make_fanout(ls->dir_fd, "outboards");
	if (r >= 0 && fsync(ls->dir_fd) < 0)
		r = casfs_neg_errno();
	return r < 0 ? r : write_marker(ls);
}

static int open_store(struct casfs_local_store *ls, unsigned flags, struct casfs_error *err)
{
	int version = open_dir(ls, flags, err); /* 0: being created */
	if (version < 0)
		return version;
	ls->blobs_fd = openat(ls->dir_fd, "blobs", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ls->blobs_fd < 0)
		return casfs_error_set(err, casfs_neg_errno(), "%s/blobs: %s", ls->path,
				       strerror(errno));
	if (!ls->readonly) {
		int r = mkdirat_ok(ls->dir_fd, "tmp");
		if (r >= 0)
			ls->tmp_fd = openat(ls->dir_fd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (r >= 0 && ls->tmp_fd < 0)
			r = casfs_neg_errno();
		if (r >= 0)
			r = open_unsynced(ls);
		if (r >= 0)
			r = take_writer_lock(ls);
		if (r < 0)
			return casfs_error_set(err, r, "%s: cannot prepare for writing: %s", ls->path,
					       strerror(-r));
	}
	int r = open_db(ls, err);
	if (r < 0)
		return r;
	if (version == 0 || (version == 1 && !ls->readonly)) {
		r = version == 0 ? write_marker(ls) : upgrade_v1(ls);
		if (r < 0)
			return casfs_error_set(err, r, "%s: cannot %s: %s", ls->path,
					       version ? "upgrade the store to version 2"
						       : "write store marker",
					       strerror(-r));
		version = CASFS_LOCAL_STORE_VERSION;
	}
	/* A version 1 store opened read-only has no outboards yet. */
	if (version >= 2) {
		ls->outboards_fd = openat(ls->dir_fd, "outboards", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (ls->outboards_fd < 0)
			return casfs_error_set(err, casfs_neg_errno(), "%s/outboards: %s", ls->path,
					       strerror(errno));
	}
	return 0;
}

int casfs_local_store_open(const char *dir, unsigned flags,
			   struct casfs_blob_service **ret_blobs,
			   struct casfs_directory_service **ret_directories,
			   struct casfs_pathinfo_service **ret_pathinfos, struct casfs_error *err)
{
	struct casfs_local_store *ls = calloc(1, sizeof(*ls));
	if (!ls || !(ls->path = strdup(dir))) {
		free(ls);
		return -ENOMEM;
	}
	ls->refs = 1;
	ls->dir_fd = ls->blobs_fd = ls->outboards_fd = ls->tmp_fd = ls->unsynced_fd = ls->lock_fd = -1;
	ls->readonly = flags & CASFS_STORE_READONLY;
	ls->max_readers = CASFS_STORE_READERS_OF(flags);
	if (!ls->max_readers)
		ls->max_readers = CASFS_STORE_DEFAULT_READERS;
	int r = casfs_local_unsynced_init(ls);
	if (r < 0) {
		free(ls->path);
		free(ls);
		return r;
	}
	/* For blobs written before their digest is known: named temp files
	 * in tmp/ (create, then rename) measured faster on ext4 than O_TMPFILE
	 * + linkat through /proc; O_TMPFILE stays available (and tested)
	 * behind a knob.  Blobs of known digest always try O_TMPFILE in
	 * their fan-out directory (local-blobs.c). */
	ls->prefer_named_temp = getenv("CASFS_LOCAL_O_TMPFILE") == NULL;

	struct casfs_blob_service *blobs = NULL;
	struct casfs_directory_service *dirs = NULL;
	struct casfs_pathinfo_service *pis = NULL;
	r = open_store(ls, flags, err);
	if (r >= 0)
		r = casfs_local_blob_service_new(ls, &blobs);
	if (r >= 0)
		r = casfs_local_directory_service_new(ls, &dirs);
	if (r >= 0)
		r = casfs_local_pathinfo_service_new(ls, &pis);
	casfs_local_store_unref(ls); /* the services hold their own references */
	if (r < 0) {
		casfs_blob_service_free(blobs);
		casfs_directory_service_free(dirs);
		casfs_pathinfo_service_free(pis);
		return r;
	}
	*ret_blobs = blobs;
	*ret_directories = dirs;
	*ret_pathinfos = pis;
	return 0;
}
