/* Shared state of the local store's services (local-store.h), private to
 * local-store.c, local-blobs.c and local-db.c. */
#pragma once

#include <lmdb.h>
#include <stdbool.h>

#include "local-store.h"

struct casfs_local_store {
	unsigned refs;  /* atomic; one per service */
	char *path;     /* the store directory, as given */
	int dir_fd;     /* DIR, for syncfs */
	int blobs_fd;   /* DIR/blobs */
	int tmp_fd;     /* DIR/tmp; -1 when read-only */
	int lock_fd;    /* DIR/lock, LOCK_SH held; -1 when read-only */
	bool readonly;
	bool no_tmpfile; /* O_TMPFILE refused once: use named temp files */
	MDB_env *env;
	MDB_dbi dirs_dbi;
	MDB_dbi pathinfo_dbi;
};

void casfs_local_store_ref(struct casfs_local_store *ls);
void casfs_local_store_unref(struct casfs_local_store *ls);

/* Map an LMDB (or errno) result to -errno with a message naming `what`. */
int casfs_local_mdb_error(struct casfs_error *err, int rc, const char *what);

/* Create a uniquely named file in `dir_fd` (O_CREAT|O_EXCL); its name is
 * written to `name` (at least 32 bytes).  Returns the fd or -errno. */
int casfs_local_temp_file(int dir_fd, const char *prefix, char name[static 32]);

/* Service constructors; each takes a reference on `ls`. */
int casfs_local_blob_service_new(struct casfs_local_store *ls, struct casfs_blob_service **ret);
int casfs_local_directory_service_new(struct casfs_local_store *ls,
				      struct casfs_directory_service **ret);
int casfs_local_pathinfo_service_new(struct casfs_local_store *ls,
				     struct casfs_pathinfo_service **ret);
