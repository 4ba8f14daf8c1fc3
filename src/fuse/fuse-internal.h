/* Private to src/fuse: the session context and the operation table. */
#pragma once

#ifndef FUSE_USE_VERSION
/* 3.12: the loop configuration that can bound the number of threads. */
#define FUSE_USE_VERSION 312
#endif
#include <fuse_lowlevel.h>

#include "fs/fs.h"

/* The userdata of the FUSE session: everything an operation needs. */
struct casfs_fuse {
	struct casfs_fs *fs; /* borrowed */
	/* Set once in init, before any other request: the kernel skips
	 * open/release ("no_open") and reads carry no file handle. */
	bool no_open;
	/* /sys/class/bdi/MAJ:MIN/read_ahead_kb of the mount, to be raised by
	 * the first request after INIT while `readahead_pending` (atomic). */
	char readahead_knob[96];
	bool readahead_pending;
};

/* The readahead window casfs asks for, in KiB (see fuse-ops.c). */
#define CASFS_FUSE_READAHEAD_KB 512

/* Immutable content: the kernel may cache entries and attributes as long
 * as it likes (a year; libfuse's conversion saturates anyway). */
#define CASFS_FUSE_TIMEOUT (86400.0 * 365)

extern const struct fuse_lowlevel_ops casfs_fuse_ops;
