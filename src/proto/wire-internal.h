/* The protobuf wire format, as much as casfs needs of it (private to
 * src/proto/).
 *
 * A message is a sequence of fields; each field is a tag varint
 * (field_number << 3 | wire_type) followed by its value:
 *
 *   wire type 0 VARINT   base-128 varint, least significant group first,
 *                        at most 10 bytes (the 10th may only carry bit 63)
 *   wire type 1 I64      8 bytes
 *   wire type 2 LEN      varint length, then that many bytes
 *   wire type 3 SGROUP   fields up to the matching EGROUP (deprecated groups;
 *   wire type 4 EGROUP   only ever skipped here)
 *   wire type 5 I32      4 bytes
 *
 * Field numbers are 1 .. 2^29-1.  Wire types 6 and 7 do not exist.
 *
 * The reader is a bounded cursor over (p, len): every read checks the end,
 * every violation is -EPROTO with the absolute byte offset in `err`.  The
 * writer appends to a casfs_buf; the *_size helpers let encoders compute
 * the length prefix of a sub-message before writing it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../basic/buf.h"
#include "../basic/error.h"

enum casfs_wire_type {
	CASFS_WIRE_VARINT = 0,
	CASFS_WIRE_I64 = 1,
	CASFS_WIRE_LEN = 2,
	CASFS_WIRE_SGROUP = 3,
	CASFS_WIRE_EGROUP = 4,
	CASFS_WIRE_I32 = 5,
};

#define CASFS_WIRE_FIELD_MAX ((1u << 29) - 1)
#define CASFS_WIRE_VARINT_MAX 10
/* Nesting bound for skipped groups: untrusted input must not recurse
 * without limit. */
#define CASFS_WIRE_GROUP_DEPTH_MAX 64

struct casfs_wire_reader {
	const uint8_t *p;
	size_t len;
	size_t pos;
	size_t base; /* offset of p[0] in the outermost message, for messages */
};

/* One decoded field.  For LEN (and I64/I32, SGROUP) `data`/`len` point into
 * the reader's input: borrowed, valid as long as the input is. */
struct casfs_wire_field {
	uint32_t number;
	enum casfs_wire_type type;
	uint64_t varint;     /* VARINT */
	const uint8_t *data; /* LEN, I64, I32: the payload; SGROUP: the body */
	size_t len;
	size_t offset;       /* absolute offset of the tag */
};

void casfs_wire_reader_init(struct casfs_wire_reader *r, const uint8_t *p, size_t len);
/* A reader over the payload of a LEN field read from `parent`. */
void casfs_wire_reader_sub(struct casfs_wire_reader *sub, const struct casfs_wire_reader *parent,
			   const struct casfs_wire_field *f);

/* Read one varint.  0 or -EPROTO (truncated, over 10 bytes, over 64 bits). */
int casfs_wire_read_varint(struct casfs_wire_reader *r, uint64_t *ret, struct casfs_error *err);

/* Read the next field, value included (groups are skipped whole).
 * Returns 1 with *ret filled, 0 at the end of the input, -EPROTO on a wire
 * violation (bad tag, field number 0 or too large, wire type 6/7, stray
 * EGROUP, truncated value, length past the end, groups nested too deep or
 * unterminated). */
int casfs_wire_next(struct casfs_wire_reader *r, struct casfs_wire_field *ret,
		    struct casfs_error *err);

/* -EPROTO naming the field whose wire type is not the one its schema
 * declares (message is the schema's message name). */
int casfs_wire_bad_type(const struct casfs_wire_field *f, const char *message,
			struct casfs_error *err);

/* Writers: -ENOMEM/-EOVERFLOW from the buffer. */
int casfs_wire_put_varint(struct casfs_buf *b, uint64_t v);
int casfs_wire_put_tag(struct casfs_buf *b, uint32_t number, enum casfs_wire_type type);
/* tag + varint, always written. */
int casfs_wire_put_uint64(struct casfs_buf *b, uint32_t number, uint64_t v);
/* tag + length + bytes, always written (repeated elements, sub-messages). */
int casfs_wire_put_bytes(struct casfs_buf *b, uint32_t number, const void *p, size_t n);
/* The proto3 canonical forms: nothing when the value is the default. */
int casfs_wire_put_uint64_opt(struct casfs_buf *b, uint32_t number, uint64_t v);
int casfs_wire_put_bytes_opt(struct casfs_buf *b, uint32_t number, const void *p, size_t n);

/* Encoded sizes, matching the writers above. */
size_t casfs_wire_varint_size(uint64_t v);
size_t casfs_wire_tag_size(uint32_t number);
size_t casfs_wire_uint64_size(uint32_t number, uint64_t v);
size_t casfs_wire_bytes_size(uint32_t number, size_t n);
size_t casfs_wire_uint64_opt_size(uint32_t number, uint64_t v);
size_t casfs_wire_bytes_opt_size(uint32_t number, size_t n);

/* UTF-8 validity (proto3 `string` fields must be valid UTF-8): no overlong
 * forms, no surrogates, nothing above U+10FFFF. */
bool casfs_wire_utf8_valid(const uint8_t *p, size_t n);
