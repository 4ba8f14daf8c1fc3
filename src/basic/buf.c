#include "buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void casfs_buf_init(struct casfs_buf *b)
{
	b->data = NULL;
	b->len = b->cap = 0;
}

void casfs_buf_release(struct casfs_buf *b)
{
	free(b->data);
	casfs_buf_init(b);
}

int casfs_buf_reserve(struct casfs_buf *b, size_t extra)
{
	size_t need;
	if (__builtin_add_overflow(b->len, extra, &need))
		return -EOVERFLOW;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		if (__builtin_mul_overflow(cap, 2, &cap))
			return -EOVERFLOW;
	uint8_t *p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int casfs_buf_append(struct casfs_buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	int r = casfs_buf_reserve(b, n);
	if (r < 0)
		return r;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int casfs_buf_append_byte(struct casfs_buf *b, uint8_t c)
{
	return casfs_buf_append(b, &c, 1);
}

int casfs_buf_append_str(struct casfs_buf *b, const char *s)
{
	return casfs_buf_append(b, s, strlen(s));
}

int casfs_buf_printf(struct casfs_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	/* Room for vsnprintf's NUL, which is not counted in len. */
	int r = casfs_buf_reserve(b, (size_t)n + 1);
	if (r < 0)
		return r;
	va_start(ap, fmt);
	vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

uint8_t *casfs_buf_steal(struct casfs_buf *b, size_t *ret_len)
{
	uint8_t *p = b->data;
	if (ret_len)
		*ret_len = b->len;
	casfs_buf_init(b);
	return p;
}
