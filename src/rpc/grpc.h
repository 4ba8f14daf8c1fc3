/* gRPC over HTTP/2: the parts both the daemon and the client need
 * (grpc/grpc doc/PROTOCOL-HTTP2.md).
 *
 * A call is one HTTP/2 stream:
 *
 *   request   HEADERS  :method POST, :scheme http, :path /<package>.<Service>/<Method>,
 *                      :authority, content-type application/grpc[+proto],
 *                      te trailers, [grpc-timeout <1..8 digits><H|M|S|m|u|n>]
 *             DATA     messages (client streams: many; unary: one), END_STREAM
 *   response  HEADERS  :status 200, content-type application/grpc
 *             DATA     messages
 *             HEADERS  (trailers) grpc-status <decimal>, [grpc-message <percent-encoded>]
 *   or, for an error before any message, one HEADERS frame with END_STREAM
 *   carrying :status 200, content-type and grpc-status/grpc-message
 *   ("trailers-only").
 *
 * Message framing, inside the DATA bytes of a stream (messages may span DATA
 * frames, several may share one):
 *
 *   message  = compressed:u8 (0; 1 is refused, no grpc-encoding is ever
 *              negotiated) length:u32 big-endian  protobuf[length]
 *
 * The deframer is a push parser: feed it DATA bytes as they arrive, it
 * hands out whole messages.  Every length is checked against `max_message`
 * before anything is buffered.
 *
 *   HEADER (5 bytes collected) --length <= max--> BODY (length bytes) --> HEADER ...
 *          \--compressed != 0: -EPROTO          \--length > max: -EMSGSIZE
 *   end of stream in the middle of HEADER or BODY: -EPROTO (truncated)
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../basic/buf.h"
#include "../basic/error.h"

/* tonic's and grpcio's default receive limit; what we send stays below it. */
#define CASFS_GRPC_MAX_MESSAGE (4u << 20)
/* Blob bytes per BlobChunk we send. */
#define CASFS_GRPC_CHUNK (1u << 20)
#define CASFS_GRPC_FRAME_HEADER 5

enum casfs_grpc_status {
	CASFS_GRPC_OK = 0,
	CASFS_GRPC_CANCELLED = 1,
	CASFS_GRPC_UNKNOWN = 2,
	CASFS_GRPC_INVALID_ARGUMENT = 3,
	CASFS_GRPC_DEADLINE_EXCEEDED = 4,
	CASFS_GRPC_NOT_FOUND = 5,
	CASFS_GRPC_ALREADY_EXISTS = 6,
	CASFS_GRPC_PERMISSION_DENIED = 7,
	CASFS_GRPC_RESOURCE_EXHAUSTED = 8,
	CASFS_GRPC_FAILED_PRECONDITION = 9,
	CASFS_GRPC_ABORTED = 10,
	CASFS_GRPC_OUT_OF_RANGE = 11,
	CASFS_GRPC_UNIMPLEMENTED = 12,
	CASFS_GRPC_INTERNAL = 13,
	CASFS_GRPC_UNAVAILABLE = 14,
	CASFS_GRPC_DATA_LOSS = 15,
	CASFS_GRPC_UNAUTHENTICATED = 16,
};

/* The one table between -errno and gRPC status (STYLE rule 18), both ways:
 *   -ENOENT NOT_FOUND, -EINVAL/-EPROTO INVALID_ARGUMENT, -EBADMSG DATA_LOSS,
 *   -ETIMEDOUT DEADLINE_EXCEEDED, -ENOSYS/-EOPNOTSUPP UNIMPLEMENTED,
 *   -EMSGSIZE/-ENOMEM RESOURCE_EXHAUSTED, -EACCES/-EPERM PERMISSION_DENIED,
 *   -ECONNREFUSED/-ECONNRESET/-EPIPE/-ENOTCONN UNAVAILABLE, -ECANCELED
 *   CANCELLED, -EROFS FAILED_PRECONDITION, -EEXIST ALREADY_EXISTS, other
 *   INTERNAL; and back: OK 0, UNKNOWN/INTERNAL -EIO, ABORTED -EAGAIN,
 *   OUT_OF_RANGE -ERANGE, UNAUTHENTICATED -EACCES, unknown codes -EIO. */
enum casfs_grpc_status casfs_grpc_status_from_errno(int neg_errno);
int casfs_grpc_status_to_errno(enum casfs_grpc_status status);
/* "NOT_FOUND" etc.; "UNKNOWN(<n>)" is not produced: unknown codes give "?" */
const char *casfs_grpc_status_name(enum casfs_grpc_status status);

/* Parse a grpc-status value ("0".."16" and beyond; decimal, no sign, at most
 * 3 digits): 0 with *ret, or -EPROTO. */
int casfs_grpc_status_parse(const char *s, size_t len, unsigned *ret);

/* grpc-message: percent-encode `msg` (bytes outside 0x20..0x7e and '%'
 * become %XX) into out (appended, NUL-terminated); decode the reverse,
 * leaving malformed escapes as they are (the spec's advice). */
int casfs_grpc_message_encode(const char *msg, struct casfs_buf *out);
int casfs_grpc_message_decode(const char *s, size_t len, struct casfs_buf *out);

/* grpc-timeout: "<1..8 digits><unit>", unit H M S m u n.  0 with the
 * timeout in milliseconds (rounded up, saturating at INT64_MAX), or -EPROTO. */
int casfs_grpc_timeout_parse(const char *s, size_t len, int64_t *ret_ms);
/* Format milliseconds as a grpc-timeout value ("<n>m", or "<n>S" when n would
 * need more than 8 digits) into out[16]. */
void casfs_grpc_timeout_format(int64_t ms, char out[static 16]);

/* Append one framed message: the 5-byte header, then `len` bytes of `msg`. */
int casfs_grpc_frame_append(struct casfs_buf *out, const uint8_t *msg, size_t len);
/* Write the 5-byte header of a message of `len` bytes. */
void casfs_grpc_frame_header(uint8_t out[CASFS_GRPC_FRAME_HEADER], uint32_t len);

/* Called once per whole message; `msg` is valid during the call only.  A
 * negative return stops casfs_grpc_deframer_feed, which returns it. */
typedef int (*casfs_grpc_message_fn)(void *userdata, const uint8_t *msg, size_t len);

struct casfs_grpc_deframer {
	size_t max_message;
	uint8_t header[CASFS_GRPC_FRAME_HEADER];
	size_t header_got;
	uint32_t body_len;
	struct casfs_buf body;
	bool in_body;
	bool failed;
};

void casfs_grpc_deframer_init(struct casfs_grpc_deframer *d, size_t max_message);
void casfs_grpc_deframer_release(struct casfs_grpc_deframer *d);
/* Feed DATA bytes; cb for each message completed.  0, -EPROTO (compressed
 * flag set), -EMSGSIZE (longer than max_message; message in err says how
 * long), -ENOMEM, or cb's negative return.  After an error, every later
 * feed returns -EPROTO. */
int casfs_grpc_deframer_feed(struct casfs_grpc_deframer *d, const uint8_t *p, size_t n,
			     casfs_grpc_message_fn cb, void *userdata, struct casfs_error *err);
/* At END_STREAM: 0 if no message is half received, else -EPROTO. */
int casfs_grpc_deframer_end(struct casfs_grpc_deframer *d, struct casfs_error *err);
