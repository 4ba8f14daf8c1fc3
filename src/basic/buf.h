/* A growable byte buffer.  Embedded struct: casfs_buf_init/_release.
 * Not thread-safe. */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct casfs_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

#define CASFS_BUF_INIT { NULL, 0, 0 }

void casfs_buf_init(struct casfs_buf *b);
void casfs_buf_release(struct casfs_buf *b);

/* Ensure room for `extra` more bytes.  -ENOMEM or -EOVERFLOW on failure. */
int casfs_buf_reserve(struct casfs_buf *b, size_t extra);
int casfs_buf_append(struct casfs_buf *b, const void *p, size_t n);
int casfs_buf_append_byte(struct casfs_buf *b, uint8_t c);
int casfs_buf_append_str(struct casfs_buf *b, const char *s);
/* Append formatted text (no NUL is appended).  -ENOMEM, -EOVERFLOW. */
int casfs_buf_printf(struct casfs_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hand the bytes out (caller frees); the buffer is left empty. */
uint8_t *casfs_buf_steal(struct casfs_buf *b, size_t *ret_len);
