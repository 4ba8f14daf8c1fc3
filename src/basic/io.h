/* Small file-descriptor helpers. */
#pragma once

#include <stddef.h>

/* Write all `n` bytes (retrying short writes and EINTR).  0 or -errno
 * (-EIO if write returned 0). */
int casfs_write_all(int fd, const void *data, size_t n);
