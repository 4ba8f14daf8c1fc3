/* virtiofs: the store's filesystem (src/fs, through src/fuse's libfuse
 * operations) served to one VM as a vhost-user-fs device (vhost-user.h).
 *
 * FUSE requests come off the virtqueues instead of /dev/fuse: each one is
 * handed to libfuse's fuse_session_process_buf on a session whose I/O is
 * ours (fuse_session_custom_io), and the reply libfuse writes goes into
 * the request's writable descriptors.  Queue 0 (hiprio) carries FORGET,
 * BATCH_FORGET and INTERRUPT, which get no reply; queues 1.. carry
 * everything else.  The guest sees exactly what `casfs mount` shows.
 *
 * casfs_virtiofs_serve listens on a unix socket (made afresh: a stale
 * socket file is replaced, anything else there refused), serves the
 * first front-end to connect until it disconnects, then returns 0 (or,
 * with `keep_listening`, waits for the next one).  Not thread-safe: one
 * per process. */
#pragma once

#include <stdbool.h>

#include "../basic/error.h"
#include "../fs/fs.h"

#define CASFS_VIRTIOFS_DEFAULT_THREADS 4
#define CASFS_VIRTIOFS_MAX_THREADS 64

struct casfs_virtiofs_options {
	const char *socket_path;
	bool keep_listening;
	unsigned request_queues; /* 1 unless the VM asks for more (default 1) */
	/* threads answering requests (0: CASFS_VIRTIOFS_DEFAULT_THREADS) */
	unsigned threads;
	/* called once listening (the readiness line), may be NULL */
	void (*ready)(void *userdata, const char *socket_path);
	void *userdata;
};

/* Create the listening socket: 0 or -errno (message in err). */
int casfs_virtiofs_listen(const struct casfs_virtiofs_options *o, int *ret_fd,
			  struct casfs_error *err);
/* Serve `fs` on listening socket `lfd` as above.  0 when the (last)
 * front-end disconnected cleanly; -errno (message in err) otherwise. */
int casfs_virtiofs_serve(struct casfs_fs *fs, int lfd, const struct casfs_virtiofs_options *o,
			 struct casfs_error *err);
