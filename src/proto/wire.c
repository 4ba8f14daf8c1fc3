#include "wire-internal.h"

#include <errno.h>

void casfs_wire_reader_init(struct casfs_wire_reader *r, const uint8_t *p, size_t len)
{
	*r = (struct casfs_wire_reader){ .p = p, .len = len, .pos = 0, .base = 0 };
}

void casfs_wire_reader_sub(struct casfs_wire_reader *sub, const struct casfs_wire_reader *parent,
			   const struct casfs_wire_field *f)
{
	*sub = (struct casfs_wire_reader){
		.p = f->data,
		.len = f->len,
		.pos = 0,
		.base = parent->base + (size_t)(f->data - parent->p),
	};
}

int casfs_wire_read_varint(struct casfs_wire_reader *r, uint64_t *ret, struct casfs_error *err)
{
	size_t start = r->pos;
	uint64_t v = 0;
	for (unsigned i = 0; i < CASFS_WIRE_VARINT_MAX; i++) {
		if (r->pos >= r->len)
			return casfs_error_set(err, -EPROTO, "truncated varint at offset %zu",
					       r->base + start);
		uint8_t c = r->p[r->pos++];
		/* The 10th byte holds bit 63 only; anything more would be
		 * silently lost, so it is a violation rather than a wrap. */
		if (i == CASFS_WIRE_VARINT_MAX - 1 && c > 1)
			return casfs_error_set(err, -EPROTO, "varint over 64 bits at offset %zu",
					       r->base + start);
		v |= (uint64_t)(c & 0x7f) << (7 * i);
		if (!(c & 0x80)) {
			*ret = v;
			return 0;
		}
	}
	return casfs_error_set(err, -EPROTO, "varint longer than 10 bytes at offset %zu",
			       r->base + start);
}

static int read_fixed(struct casfs_wire_reader *r, size_t n, struct casfs_wire_field *f,
		      struct casfs_error *err)
{
	if (r->len - r->pos < n)
		return casfs_error_set(err, -EPROTO, "field %u: truncated value at offset %zu",
				       f->number, r->base + r->pos);
	f->data = r->p + r->pos;
	f->len = n;
	r->pos += n;
	return 0;
}

static int read_tag(struct casfs_wire_reader *r, struct casfs_wire_field *f,
		    struct casfs_error *err)
{
	uint64_t tag;
	f->offset = r->base + r->pos;
	int k = casfs_wire_read_varint(r, &tag, err);
	if (k < 0)
		return k;
	uint64_t number = tag >> 3;
	if (number == 0 || number > CASFS_WIRE_FIELD_MAX)
		return casfs_error_set(err, -EPROTO, "invalid field number %llu at offset %zu",
				       (unsigned long long)number, f->offset);
	f->number = (uint32_t)number;
	f->type = (enum casfs_wire_type)(tag & 7);
	if ((tag & 7) > CASFS_WIRE_I32)
		return casfs_error_set(err, -EPROTO, "field %u: invalid wire type %u at offset %zu",
				       f->number, (unsigned)(tag & 7), f->offset);
	return 0;
}

static int read_value(struct casfs_wire_reader *r, struct casfs_wire_field *f, unsigned depth,
		      struct casfs_error *err);

/* Skip a group body up to its EGROUP; f->data/len become the body. */
static int skip_group(struct casfs_wire_reader *r, struct casfs_wire_field *f, unsigned depth,
		      struct casfs_error *err)
{
	if (depth >= CASFS_WIRE_GROUP_DEPTH_MAX)
		return casfs_error_set(err, -EPROTO, "groups nested too deep at offset %zu",
				       f->offset);
	size_t body = r->pos;
	for (;;) {
		if (r->pos >= r->len)
			return casfs_error_set(err, -EPROTO,
					       "field %u: unterminated group at offset %zu",
					       f->number, f->offset);
		size_t end = r->pos;
		struct casfs_wire_field inner;
		int k = read_tag(r, &inner, err);
		if (k < 0)
			return k;
		if (inner.type == CASFS_WIRE_EGROUP) {
			if (inner.number != f->number)
				return casfs_error_set(err, -EPROTO,
						       "field %u: group closed by field %u at offset %zu",
						       f->number, inner.number, inner.offset);
			f->data = r->p + body;
			f->len = end - body;
			return 0;
		}
		k = read_value(r, &inner, depth + 1, err);
		if (k < 0)
			return k;
	}
}

static int read_value(struct casfs_wire_reader *r, struct casfs_wire_field *f, unsigned depth,
		      struct casfs_error *err)
{
	uint64_t n;
	int k;
	f->varint = 0;
	f->data = NULL;
	f->len = 0;
	switch (f->type) {
	case CASFS_WIRE_VARINT:
		return casfs_wire_read_varint(r, &f->varint, err);
	case CASFS_WIRE_I64:
		return read_fixed(r, 8, f, err);
	case CASFS_WIRE_I32:
		return read_fixed(r, 4, f, err);
	case CASFS_WIRE_LEN:
		k = casfs_wire_read_varint(r, &n, err);
		if (k < 0)
			return k;
		if (n > r->len - r->pos)
			return casfs_error_set(err, -EPROTO,
					       "field %u: length %llu past the end at offset %zu",
					       f->number, (unsigned long long)n, f->offset);
		return read_fixed(r, (size_t)n, f, err);
	case CASFS_WIRE_SGROUP:
		return skip_group(r, f, depth, err);
	case CASFS_WIRE_EGROUP:
	default:
		return casfs_error_set(err, -EPROTO, "field %u: unmatched end of group at offset %zu",
				       f->number, f->offset);
	}
}

int casfs_wire_next(struct casfs_wire_reader *r, struct casfs_wire_field *ret,
		    struct casfs_error *err)
{
	if (r->pos >= r->len)
		return 0;
	struct casfs_wire_field f;
	int k = read_tag(r, &f, err);
	if (k < 0)
		return k;
	k = read_value(r, &f, 0, err);
	if (k < 0)
		return k;
	*ret = f;
	return 1;
}

int casfs_wire_bad_type(const struct casfs_wire_field *f, const char *message,
			struct casfs_error *err)
{
	return casfs_error_set(err, -EPROTO, "%s field %u: unexpected wire type %u at offset %zu",
			       message, f->number, (unsigned)f->type, f->offset);
}

int casfs_wire_put_varint(struct casfs_buf *b, uint64_t v)
{
	uint8_t tmp[CASFS_WIRE_VARINT_MAX];
	size_t n = 0;
	do {
		uint8_t c = v & 0x7f;
		v >>= 7;
		tmp[n++] = v ? (c | 0x80) : c;
	} while (v);
	return casfs_buf_append(b, tmp, n);
}

int casfs_wire_put_tag(struct casfs_buf *b, uint32_t number, enum casfs_wire_type type)
{
	return casfs_wire_put_varint(b, (uint64_t)number << 3 | (uint64_t)type);
}

int casfs_wire_put_uint64(struct casfs_buf *b, uint32_t number, uint64_t v)
{
	int k = casfs_wire_put_tag(b, number, CASFS_WIRE_VARINT);
	return k < 0 ? k : casfs_wire_put_varint(b, v);
}

int casfs_wire_put_bytes(struct casfs_buf *b, uint32_t number, const void *p, size_t n)
{
	int k = casfs_wire_put_tag(b, number, CASFS_WIRE_LEN);
	if (k >= 0)
		k = casfs_wire_put_varint(b, n);
	if (k >= 0)
		k = casfs_buf_append(b, p, n);
	return k;
}

int casfs_wire_put_uint64_opt(struct casfs_buf *b, uint32_t number, uint64_t v)
{
	return v ? casfs_wire_put_uint64(b, number, v) : 0;
}

int casfs_wire_put_bytes_opt(struct casfs_buf *b, uint32_t number, const void *p, size_t n)
{
	return n ? casfs_wire_put_bytes(b, number, p, n) : 0;
}

size_t casfs_wire_varint_size(uint64_t v)
{
	size_t n = 1;
	while (v >>= 7)
		n++;
	return n;
}

size_t casfs_wire_tag_size(uint32_t number)
{
	return casfs_wire_varint_size((uint64_t)number << 3);
}

size_t casfs_wire_uint64_size(uint32_t number, uint64_t v)
{
	return casfs_wire_tag_size(number) + casfs_wire_varint_size(v);
}

/* Sizes of in-memory messages: they cannot exceed the address space the
 * message already occupies, so plain addition cannot wrap here. */
size_t casfs_wire_bytes_size(uint32_t number, size_t n)
{
	return casfs_wire_tag_size(number) + casfs_wire_varint_size(n) + n;
}

size_t casfs_wire_uint64_opt_size(uint32_t number, uint64_t v)
{
	return v ? casfs_wire_uint64_size(number, v) : 0;
}

size_t casfs_wire_bytes_opt_size(uint32_t number, size_t n)
{
	return n ? casfs_wire_bytes_size(number, n) : 0;
}

bool casfs_wire_utf8_valid(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = p[i];
		size_t more;
		uint32_t cp, min;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			more = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			more = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			more = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (n - i - 1 < more)
			return false;
		for (size_t k = 1; k <= more; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += more + 1;
	}
	return true;
}
