/* Shared state of the local store's services (local-store.h), private to
 * local-store.c, local-blobs.c and local-db.c. */
#pragma once

#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>

#include "local-store.h"

struct casfs_local_store {
	unsigned refs;  /* atomic; one per service */
	char *path;     /* the store directory, as given */
	int dir_fd;     /* DIR, for syncfs */
	int blobs_fd;   /* DIR/blobs */
	int outboards_fd; /* DIR/outboards; -1 for a version 1 store opened read-only */
	int tmp_fd;     /* DIR/tmp; -1 when read-only */
	int lock_fd;    /* DIR/lock, LOCK_SH held; -1 when read-only */
	int unsynced_fd; /* DIR/unsynced; -1 when read-only */
	bool readonly;
	bool prefer_named_temp; /* blobs of unknown digest: named temp files in tmp/ */
	bool no_o_tmpfile;      /* O_TMPFILE refused once: named temp files only */
	bool no_renameat2; /* renameat2(RENAME_NOREPLACE) refused once: link + unlink */
	MDB_env *env;
	MDB_dbi dirs_dbi;
	MDB_dbi pathinfo_dbi;
	unsigned max_readers; /* LMDB reader slots asked for (store.h) */

	/* This process's unsynced record (local-store.h, local-unsynced.c).
	 * Blob links hold link_lock for reading across "ensure the record,
	 * count, link"; the sync hook holds it for writing only to read
	 * link_gen and to drop the record.  Writer-preferring. */
	pthread_rwlock_t link_lock;
	pthread_mutex_t record_mutex; /* one creator of the record at a time */
	int record_fd;                /* the record, LOCK_EX held; -1 if none */
	char record_name[32];         /* its name in DIR/unsynced */
	uint64_t link_gen;            /* blob links so far (atomic) */
	char boot_id[40];             /* this boot's id, "" if unknown */
};

void casfs_local_store_ref(struct casfs_local_store *ls);
void casfs_local_store_unref(struct casfs_local_store *ls);

/* Map an LMDB (or errno) result to -errno with a message naming `what`. */
int casfs_local_mdb_error(struct casfs_error *err, int rc, const char *what);

/* Create a uniquely named file in `dir_fd` (O_CREAT|O_EXCL); its name is
 * written to `name` (at least 32 bytes).  Returns the fd or -errno. */
int casfs_local_temp_file(int dir_fd, const char *prefix, char name[static 32]);

/* The unsynced records (local-unsynced.c; protocol in local-store.h).
 *
 * casfs_local_unsynced_init() sets up the locks and reads the boot id; it
 * is called once on a fresh struct and casfs_local_unsynced_release() undoes
 * it (closing the record, which releases its flock but leaves the file for
 * the next recovery).  Returns 0 or -errno. */
int casfs_local_unsynced_init(struct casfs_local_store *ls);
void casfs_local_unsynced_release(struct casfs_local_store *ls);

/* Bracket every link or rename of a file into DIR/blobs: begin takes
 * link_lock for reading, makes sure a durable record is in place (creating
 * one costs an fsync of the record and of DIR/unsynced) and counts the
 * link; end releases the lock.  On error (-errno from creating the record)
 * nothing is held and the link must not be made.  Thread-safe. */
int casfs_local_link_begin(struct casfs_local_store *ls);
void casfs_local_link_end(struct casfs_local_store *ls);

/* The blob service's sync hook: syncfs(2) of the store, then drop the
 * record if no link happened since the sync began.  0 or -errno (the
 * record then stays).  Thread-safe. */
int casfs_local_unsynced_sync(struct casfs_local_store *ls);

/* Recovery, for an opener that holds LOCK_EX on DIR/lock (so no other
 * writer is live): handle every record whose flock can be had.  Returns
 * the number of damaged blob files removed, or -errno (records whose
 * recovery failed are left for the next opener). */
int casfs_local_unsynced_recover(struct casfs_local_store *ls);

/* Call cb for every blob file under blobs/ (fan-out order): `dir_fd` is
 * its fan-out directory, `name` its name there, `digest` what the name
 * says.  A negative return from cb stops and is returned. */
typedef int (*casfs_local_blob_file_fn)(int dir_fd, const char *name,
					const uint8_t digest[CASFS_B3_LEN], void *userdata);
int casfs_local_each_blob_file(int blobs_fd, casfs_local_blob_file_fn cb, void *userdata);

/* Service constructors; each takes a reference on `ls`. */
int casfs_local_blob_service_new(struct casfs_local_store *ls, struct casfs_blob_service **ret);
int casfs_local_directory_service_new(struct casfs_local_store *ls,
				      struct casfs_directory_service **ret);
int casfs_local_pathinfo_service_new(struct casfs_local_store *ls,
				     struct casfs_pathinfo_service **ret);
