/* Private to src/fuse: the session context and the operation table. */
#pragma once

#ifndef FUSE_USE_VERSION
/* 3.12: the loop configuration that can bound the number of threads. */
#define FUSE_USE_VERSION 312
#endif
#include <fuse_lowlevel.h>

#include <pthread.h>
#include <stdint.h>

#include "fs/fs.h"

/* Open files and directories as the kernel (or a virtiofs guest, which
 * may send anything) names them: fh values checked against a table, never
 * trusted as pointers (fuse-handles.c).  Thread-safe. */
enum { CASFS_FUSE_HANDLE_FILE = 1, CASFS_FUSE_HANDLE_DIR = 2 };

struct casfs_fuse_handle_slot {
	void *ptr; /* a struct casfs_fs_file or casfs_fs_dir, NULL when free */
	uint32_t gen;
	int kind;
};

struct casfs_fuse_handles {
	pthread_mutex_t lock;
	struct casfs_fuse_handle_slot *slots;
	uint32_t *free_slots;
	uint32_t n, cap, n_free;
};

void casfs_fuse_handles_init(struct casfs_fuse_handles *h);
/* Releases what is still open (a guest that went away). */
void casfs_fuse_handles_release(struct casfs_fuse_handles *h, struct casfs_fs *fs);
/* A new fh for `ptr`, never 0; 0 when out of memory. */
uint64_t casfs_fuse_handle_put(struct casfs_fuse_handles *h, void *ptr, int kind);
/* The object of a live fh of that kind, else NULL. */
void *casfs_fuse_handle_get(struct casfs_fuse_handles *h, uint64_t fh, int kind);
/* The same, and the fh is dead from now on. */
void *casfs_fuse_handle_take(struct casfs_fuse_handles *h, uint64_t fh, int kind);

/* The userdata of the FUSE session: everything an operation needs. */
struct casfs_fuse {
	struct casfs_fs *fs; /* borrowed */
	struct casfs_fuse_handles handles; /* casfs_fuse_handles_init before use */
	/* Set once in init, before any other request: the kernel skips
	 * open/release ("no_open") and reads carry no file handle. */
	bool no_open;
	/* /sys/class/bdi/MAJ:MIN/read_ahead_kb of the mount, to be raised by
	 * the first request after INIT while `readahead_pending` (atomic). */
	char readahead_knob[96];
	bool readahead_pending;
};

/* The most a READ or READDIR request may ask for (a guest may ask for
 * more than the kernel's own max_read): bigger ones are cut to this. */
#define CASFS_FUSE_MAX_REPLY (1u << 20)

/* The readahead window casfs asks for, in KiB (see fuse-ops.c). */
#define CASFS_FUSE_READAHEAD_KB 512

/* Immutable content: the kernel may cache entries and attributes as long
 * as it likes (a year; libfuse's conversion saturates anyway). */
#define CASFS_FUSE_TIMEOUT (86400.0 * 365)

extern const struct fuse_lowlevel_ops casfs_fuse_ops;
