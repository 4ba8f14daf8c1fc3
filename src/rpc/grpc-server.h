/* A gRPC server over HTTP/2 (h2c with prior knowledge, no TLS) on
 * libnghttp2, with the framing of grpc.h.
 *
 * Listeners:  "unix:/PATH" (the socket file is replaced if it is a stale
 * socket, removed at stop), "HOST:PORT", "[V6]:PORT" (numeric hosts; port 0
 * picks a free one; casfs_grpc_server_address() says which).
 *
 * Threads: one accept thread per listener; one thread per connection,
 * which runs its own nghttp2 session in a poll() loop with bounded waits
 * and calls the method hooks of all the connection's streams itself (a
 * hook may block on the store: only its own connection waits).  Hooks of
 * different connections run at once, so the userdata they share must be
 * thread-safe.
 *
 * A call (one HTTP/2 stream) goes through its method's hooks:
 *
 *   request HEADERS --:path in the table?--no--> UNIMPLEMENTED (trailers-only)
 *        | yes: start(call)
 *   each request message: message(call, bytes)   (whole, <= max_message;
 *        |                                         unary and server-streaming
 *        |                                         methods get exactly one)
 *   END_STREAM: end(call)                        (may queue response messages)
 *        |
 *   while the peer can take more and nothing is queued: more(call)
 *        |  (returns 1: call again; 0: done, status OK)
 *   trailers grpc-status / grpc-message; release(call)
 *
 * Any hook returning -errno ends the call with
 * casfs_grpc_status_from_errno(), or the status the hook chose with
 * casfs_grpc_server_call_set_status(), and the message from `err`: trailers-only
 * when no message went out yet, else trailers after the messages queued.
 * release is called exactly once for every call that had start called,
 * whatever happened (peer reset, connection loss, shutdown).
 *
 * Limits: a received message over max_message is RESOURCE_EXHAUSTED; a
 * compressed message (flag 1; we negotiate no grpc-encoding) is INTERNAL,
 * a grpc-encoding other than identity UNIMPLEMENTED; grpc-timeout is a
 * deadline (DEADLINE_EXCEEDED, checked before each hook and while waiting
 * for the request).  A connection with no stream open and no bytes for
 * idle_timeout seconds gets GOAWAY and is closed; connections over
 * max_connections are closed at once.  A connection's protocol errors (bad
 * preface, malformed frames) close that connection only.
 *
 * Stop: listeners closed, GOAWAY on every connection, calls in flight
 * allowed to finish for up to drain_timeout seconds, then connections are
 * closed.  Not thread-safe itself: start/stop from one thread. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../basic/buf.h"
#include "../basic/error.h"
#include "grpc.h"

struct casfs_grpc_server;
struct casfs_grpc_server_call;

enum casfs_grpc_method_kind {
	CASFS_GRPC_UNARY,
	CASFS_GRPC_SERVER_STREAM,
	CASFS_GRPC_CLIENT_STREAM,
};

/* One row of the method table.  Every hook but message/end may be NULL. */
struct casfs_grpc_method {
	const char *path; /* "/tvix.castore.v1.BlobService/Read" */
	enum casfs_grpc_method_kind kind;
	int (*start)(struct casfs_grpc_server_call *call, struct casfs_error *err);
	/* `msg` is valid during the call only. */
	int (*message)(struct casfs_grpc_server_call *call, const uint8_t *msg, size_t len,
		       struct casfs_error *err);
	int (*end)(struct casfs_grpc_server_call *call, struct casfs_error *err);
	/* Queue more response messages: 1 more to come, 0 done, -errno. */
	int (*more)(struct casfs_grpc_server_call *call, struct casfs_error *err);
	void (*release)(struct casfs_grpc_server_call *call);
};

struct casfs_grpc_server_options {
	const struct casfs_grpc_method *methods; /* borrowed, for the server's life */
	size_t n_methods;
	void *userdata;                          /* casfs_grpc_server_call_userdata() */
	size_t max_message;       /* 0: CASFS_GRPC_MAX_MESSAGE */
	unsigned max_connections; /* 0: 256 */
	unsigned idle_timeout;    /* seconds; 0: 60 */
	unsigned drain_timeout;   /* seconds; 0: 10 */
	/* A log line (no newline) for connection-level events, or NULL. */
	void (*log)(void *log_userdata, const char *line);
	void *log_userdata;
};

/* Bind every listener (`n` addresses) and start serving.  Nothing is left
 * bound on failure: -errno with err naming the address.  *ret owned by the
 * caller (casfs_grpc_server_stop). */
int casfs_grpc_server_start(const char *const *listen, size_t n,
			    const struct casfs_grpc_server_options *o,
			    struct casfs_grpc_server **ret, struct casfs_error *err);
/* The bound address of listener i: "unix:/PATH", "127.0.0.1:PORT",
 * "[::1]:PORT" with the real port.  Valid until stop. */
const char *casfs_grpc_server_address(const struct casfs_grpc_server *s, size_t i);
/* Stop as described above and free everything; NULL is accepted.
 * Returns 0, or -ETIMEDOUT when connections were still running after the
 * drain (then the server's memory is left to the process exit). */
int casfs_grpc_server_stop(struct casfs_grpc_server *s);

/* Inside hooks (the connection's thread only). */
void *casfs_grpc_server_call_userdata(struct casfs_grpc_server_call *call);
/* The hook's own per-call pointer (NULL at start; release frees it). */
void **casfs_grpc_server_call_state(struct casfs_grpc_server_call *call);
/* Queue one message (framed here): -EMSGSIZE if it is not below
 * max_message (never sent), -ENOMEM. */
int casfs_grpc_server_call_send(struct casfs_grpc_server_call *call, const uint8_t *msg, size_t len);
/* The queue of framed response bytes, for a hook that frames in place
 * (casfs_blob_chunk_header_append, then the data).  Keep each message
 * below max_message. */
struct casfs_buf *casfs_grpc_server_call_out(struct casfs_grpc_server_call *call);
/* Bytes queued and not yet handed to HTTP/2. */
size_t casfs_grpc_server_call_queued(const struct casfs_grpc_server_call *call);
/* The status a failing hook's -errno becomes, instead of the table's. */
void casfs_grpc_server_call_set_status(struct casfs_grpc_server_call *call, enum casfs_grpc_status status);
/* The path that was called (one of the table's). */
const char *casfs_grpc_server_call_path(const struct casfs_grpc_server_call *call);
/* Whether the call's grpc-timeout has passed. */
bool casfs_grpc_server_call_expired(const struct casfs_grpc_server_call *call);

/* For the fuzz target and tests: serve one already-connected socket (or
 * socketpair end) on the calling thread until the peer closes it or the
 * connection fails; closes `fd`.  Uses a server made by
 * casfs_grpc_server_new_detached (no listeners, never stop()ed: free it
 * with casfs_grpc_server_free_detached). */
int casfs_grpc_server_new_detached(const struct casfs_grpc_server_options *o,
				   struct casfs_grpc_server **ret);
void casfs_grpc_server_serve_fd(struct casfs_grpc_server *s, int fd);
void casfs_grpc_server_free_detached(struct casfs_grpc_server *s);
