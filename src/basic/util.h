/* Small helpers shared by every layer: cleanup attributes, ownership
 * transfer, overflow-checked arithmetic.  Header-only. */
#pragma once

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void casfs_freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(casfs_freep)

static inline void casfs_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}
#define _cleanup_close_ _cleanup_(casfs_closep)

/* Hand ownership of a pointer (or fd) out of a cleanup-managed local. */
#define TAKE_PTR(p) ({ __typeof__(p) _tp = (p); (p) = NULL; _tp; })
#define TAKE_FD(fd) ({ int _tf = (fd); (fd) = -1; _tf; })

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Negative errno of the last failed libc call, never 0. */
static inline int casfs_neg_errno(void)
{
	return errno > 0 ? -errno : -EIO;
}
