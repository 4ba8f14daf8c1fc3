/* gRPC framing, status codes, grpc-message and grpc-timeout (grpc.h).
 *
 * Deframer states (see grpc.h):
 *
 *   HEADER: collect 5 bytes; check the flag and the length
 *     -> BODY when length > 0, else hand out an empty message, stay
 *   BODY: collect `length` bytes (zero-copy when a whole message sits in
 *     one fed buffer) -> hand it out -> HEADER
 *   any error -> failed (every later call -EPROTO) */
#include "grpc.h"

#include "../basic/encoding.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const struct {
	int neg_errno;
	enum casfs_grpc_status status;
} errno_table[] = {
	{ -ENOENT, CASFS_GRPC_NOT_FOUND },
	{ -EINVAL, CASFS_GRPC_INVALID_ARGUMENT },
	{ -EPROTO, CASFS_GRPC_INVALID_ARGUMENT },
	{ -EBADMSG, CASFS_GRPC_DATA_LOSS },
	{ -ETIMEDOUT, CASFS_GRPC_DEADLINE_EXCEEDED },
	{ -ENOSYS, CASFS_GRPC_UNIMPLEMENTED },
	{ -EOPNOTSUPP, CASFS_GRPC_UNIMPLEMENTED },
	{ -EMSGSIZE, CASFS_GRPC_RESOURCE_EXHAUSTED },
	{ -ENOMEM, CASFS_GRPC_RESOURCE_EXHAUSTED },
	{ -EACCES, CASFS_GRPC_PERMISSION_DENIED },
	{ -EPERM, CASFS_GRPC_PERMISSION_DENIED },
	{ -ECONNREFUSED, CASFS_GRPC_UNAVAILABLE },
	{ -ECONNRESET, CASFS_GRPC_UNAVAILABLE },
	{ -EPIPE, CASFS_GRPC_UNAVAILABLE },
	{ -ENOTCONN, CASFS_GRPC_UNAVAILABLE },
	{ -ECANCELED, CASFS_GRPC_CANCELLED },
	{ -EROFS, CASFS_GRPC_FAILED_PRECONDITION },
	{ -EEXIST, CASFS_GRPC_ALREADY_EXISTS },
};

/* Status -> errno where the table above has no unique answer. */
static const int status_errno[] = {
	[CASFS_GRPC_OK] = 0,
	[CASFS_GRPC_CANCELLED] = -ECANCELED,
	[CASFS_GRPC_UNKNOWN] = -EIO,
	[CASFS_GRPC_INVALID_ARGUMENT] = -EINVAL,
	[CASFS_GRPC_DEADLINE_EXCEEDED] = -ETIMEDOUT,
	[CASFS_GRPC_NOT_FOUND] = -ENOENT,
	[CASFS_GRPC_ALREADY_EXISTS] = -EEXIST,
	[CASFS_GRPC_PERMISSION_DENIED] = -EACCES,
	[CASFS_GRPC_RESOURCE_EXHAUSTED] = -EMSGSIZE,
	[CASFS_GRPC_FAILED_PRECONDITION] = -EROFS,
	[CASFS_GRPC_ABORTED] = -EAGAIN,
	[CASFS_GRPC_OUT_OF_RANGE] = -ERANGE,
	[CASFS_GRPC_UNIMPLEMENTED] = -EOPNOTSUPP,
	[CASFS_GRPC_INTERNAL] = -EIO,
	[CASFS_GRPC_UNAVAILABLE] = -ECONNRESET,
	[CASFS_GRPC_DATA_LOSS] = -EBADMSG,
	[CASFS_GRPC_UNAUTHENTICATED] = -EACCES,
};

static const char *const status_names[] = {
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED",
};

enum casfs_grpc_status casfs_grpc_status_from_errno(int neg_errno)
{
	if (neg_errno >= 0)
		return CASFS_GRPC_OK;
	for (size_t i = 0; i < sizeof(errno_table) / sizeof(errno_table[0]); i++)
		if (errno_table[i].neg_errno == neg_errno)
			return errno_table[i].status;
	return CASFS_GRPC_INTERNAL;
}

int casfs_grpc_status_to_errno(enum casfs_grpc_status status)
{
	if ((unsigned)status >= sizeof(status_errno) / sizeof(status_errno[0]))
		return -EIO;
	return status_errno[status];
}

const char *casfs_grpc_status_name(enum casfs_grpc_status status)
{
	if ((unsigned)status >= sizeof(status_names) / sizeof(status_names[0]))
		return "?";
	return status_names[status];
}

int casfs_grpc_status_parse(const char *s, size_t len, unsigned *ret)
{
	if (len == 0 || len > 3)
		return -EPROTO;
	unsigned v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EPROTO;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*ret = v;
	return 0;
}

int casfs_grpc_message_encode(const char *msg, struct casfs_buf *out)
{
	static const char hex[] = "0123456789ABCDEF";
	int r = 0;
	for (const unsigned char *p = (const unsigned char *)msg; *p && r >= 0; p++) {
		if (*p >= 0x20 && *p <= 0x7e && *p != '%') {
			r = casfs_buf_append_byte(out, *p);
		} else {
			char esc[3] = { '%', hex[*p >> 4], hex[*p & 15] };
			r = casfs_buf_append(out, esc, 3);
		}
	}
	if (r >= 0)
		r = casfs_buf_reserve(out, 1);
	if (r >= 0)
		out->data[out->len] = 0;
	return r;
}

int casfs_grpc_message_decode(const char *s, size_t len, struct casfs_buf *out)
{
	int r = 0;
	for (size_t i = 0; i < len && r >= 0; i++) {
		int hi, lo;
		if (s[i] == '%' && i + 2 < len &&
		    (hi = casfs_hex_digit(s[i + 1])) >= 0 && (lo = casfs_hex_digit(s[i + 2])) >= 0) {
			r = casfs_buf_append_byte(out, (uint8_t)(hi << 4 | lo));
			i += 2;
		} else {
			r = casfs_buf_append_byte(out, (uint8_t)s[i]);
		}
	}
	if (r >= 0)
		r = casfs_buf_reserve(out, 1);
	if (r >= 0)
		out->data[out->len] = 0;
	return r;
}

int casfs_grpc_timeout_parse(const char *s, size_t len, int64_t *ret_ms)
{
	if (len < 2 || len > 9)
		return -EPROTO;
	int64_t v = 0;
	for (size_t i = 0; i + 1 < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EPROTO;
		v = v * 10 + (s[i] - '0'); /* at most 8 digits: no overflow */
	}
	int64_t ms;
	switch (s[len - 1]) {
	case 'H': ms = v * 3600 * 1000; break;
	case 'M': ms = v * 60 * 1000; break;
	case 'S': ms = v * 1000; break;
	case 'm': ms = v; break;
	case 'u': ms = (v + 999) / 1000; break;
	case 'n': ms = (v + 999999) / 1000000; break;
	default: return -EPROTO;
	}
	*ret_ms = ms;
	return 0;
}

void casfs_grpc_timeout_format(int64_t ms, char out[static 16])
{
	if (ms < 0)
		ms = 0;
	if (ms <= 99999999)
		snprintf(out, 16, "%" PRId64 "m", ms);
	else
		snprintf(out, 16, "%" PRId64 "S", ms / 1000 > 99999999 ? 99999999 : (ms + 999) / 1000);
}

void casfs_grpc_frame_header(uint8_t out[CASFS_GRPC_FRAME_HEADER], uint32_t len)
{
	out[0] = 0;
	out[1] = (uint8_t)(len >> 24);
	out[2] = (uint8_t)(len >> 16);
	out[3] = (uint8_t)(len >> 8);
	out[4] = (uint8_t)len;
}

int casfs_grpc_frame_append(struct casfs_buf *out, const uint8_t *msg, size_t len)
{
	if (len > UINT32_MAX)
		return -EMSGSIZE;
	uint8_t h[CASFS_GRPC_FRAME_HEADER];
	casfs_grpc_frame_header(h, (uint32_t)len);
	int r = casfs_buf_reserve(out, sizeof(h) + len);
	if (r >= 0)
		r = casfs_buf_append(out, h, sizeof(h));
	if (r >= 0 && len)
		r = casfs_buf_append(out, msg, len);
	return r;
}

void casfs_grpc_deframer_init(struct casfs_grpc_deframer *d, size_t max_message)
{
	memset(d, 0, sizeof(*d));
	d->max_message = max_message;
	casfs_buf_init(&d->body);
}

void casfs_grpc_deframer_release(struct casfs_grpc_deframer *d)
{
	casfs_buf_release(&d->body);
}

static int fail(struct casfs_grpc_deframer *d, int code)
{
	d->failed = true;
	return code;
}

/* The 5 header bytes are in: check them and enter BODY (or deliver an empty
 * message). */
static int header_done(struct casfs_grpc_deframer *d, casfs_grpc_message_fn cb, void *userdata,
		       struct casfs_error *err)
{
	d->header_got = 0;
	if (d->header[0] != 0)
		return fail(d, casfs_error_set(err, -EPROTO,
					       "gRPC message with compressed flag %u, but no "
					       "compression was negotiated", d->header[0]));
	uint32_t len = (uint32_t)d->header[1] << 24 | (uint32_t)d->header[2] << 16 |
		       (uint32_t)d->header[3] << 8 | d->header[4];
	if (len > d->max_message)
		return fail(d, casfs_error_set(err, -EMSGSIZE,
					       "gRPC message of %" PRIu32 " bytes, over the limit of %zu",
					       len, d->max_message));
	if (len == 0) {
		int r = cb(userdata, (const uint8_t *)"", 0);
		return r < 0 ? fail(d, r) : 0;
	}
	d->body_len = len;
	d->in_body = true;
	d->body.len = 0;
	return 0;
}

int casfs_grpc_deframer_feed(struct casfs_grpc_deframer *d, const uint8_t *p, size_t n,
			     casfs_grpc_message_fn cb, void *userdata, struct casfs_error *err)
{
	if (d->failed)
		return casfs_error_set(err, -EPROTO, "gRPC stream already failed");
	while (n > 0) {
		int r;
		if (!d->in_body) {
			size_t take = CASFS_GRPC_FRAME_HEADER - d->header_got;
			if (take > n)
				take = n;
			memcpy(d->header + d->header_got, p, take);
			d->header_got += take;
			p += take;
			n -= take;
			if (d->header_got == CASFS_GRPC_FRAME_HEADER &&
			    (r = header_done(d, cb, userdata, err)) < 0)
				return r;
			continue;
		}
		if (d->body.len == 0 && n >= d->body_len) { /* whole message here: no copy */
			d->in_body = false;
			r = cb(userdata, p, d->body_len);
			if (r < 0)
				return fail(d, r);
			p += d->body_len;
			n -= d->body_len;
			continue;
		}
		size_t take = d->body_len - d->body.len;
		if (take > n)
			take = n;
		if ((r = casfs_buf_append(&d->body, p, take)) < 0)
			return fail(d, r);
		p += take;
		n -= take;
		if (d->body.len == d->body_len) {
			d->in_body = false;
			r = cb(userdata, d->body.data, d->body.len);
			d->body.len = 0;
			if (r < 0)
				return fail(d, r);
		}
	}
	return 0;
}

int casfs_grpc_deframer_end(struct casfs_grpc_deframer *d, struct casfs_error *err)
{
	if (d->failed)
		return casfs_error_set(err, -EPROTO, "gRPC stream already failed");
	if (d->in_body || d->header_got)
		return fail(d, casfs_error_set(err, -EPROTO,
					       "gRPC stream ended inside a message (%zu of %u bytes)",
					       d->in_body ? d->body.len : d->header_got,
					       d->in_body ? d->body_len : CASFS_GRPC_FRAME_HEADER));
	return 0;
}
