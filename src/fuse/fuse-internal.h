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
};

/* Immutable content: the kernel may cache entries and attributes as long
 * as it likes (a year; libfuse's conversion saturates anyway). */
#define CASFS_FUSE_TIMEOUT (86400.0 * 365)

extern const struct fuse_lowlevel_ops casfs_fuse_ops;
