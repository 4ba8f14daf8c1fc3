#include "buf.h"

#include <errno.h>
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

uint8_t *casfs_buf_steal(struct casfs_buf *b, size_t *ret_len)
{
	uint8_t *p = b->data;
	if (ret_len)
		*ret_len = b->len;
	casfs_buf_init(b);
	return p;
}
