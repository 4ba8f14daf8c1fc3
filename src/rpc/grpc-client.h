/* A blocking gRPC client over HTTP/2 (h2c, prior knowledge) on libnghttp2,
 * for the remote blob, directory and PathInfo services.
 *
 * A client is one target, `unix:/PATH` or `HOST:PORT` (`[v6]:PORT`), with a
 * pool of connections.  A call takes a connection for itself (one stream
 * at a time per connection, so no locking inside a call) and gives it back
 * when it ends cleanly; a connection that failed is closed, and the next
 * call connects afresh: a daemon restarted on the same address is picked
 * up without anything else to do.  A call that fails on a reused
 * connection before any response byte arrived is retried once on a new
 * connection (the server may have closed an idle one).
 *
 * Package names: tvix and snix daemons serve the same messages under
 * `tvix.*` or `snix.*` paths; some serve only one.  The first call of each
 * family (castore, store) probes with a Stat/Get of an all-zero digest:
 * snix first, tvix on UNIMPLEMENTED; the answer is kept for the client's
 * life.
 *
 * Deadlines: every wait for progress (connect, send, the next response
 * bytes) is bounded by `timeout_ms`; none passing is -ETIMEDOUT "no answer
 * from <target> in N s".  A stream may run longer as long as it moves.
 *
 * Errors: -errno from casfs_grpc_status_to_errno() for a non-OK grpc-status
 * (the message, "<target>: <STATUS>: <grpc-message>", in err); -EPROTO for
 * a server that breaks the protocol (no grpc-status, a truncated message,
 * a message over CASFS_GRPC_MAX_MESSAGE, HTTP status not 200);
 * -ECONNREFUSED (a missing socket too) / -ECONNRESET when the target cannot be reached
 * or drops the connection; -ETIMEDOUT.
 *
 * Thread safety: a client may be used from many threads at once (the pool
 * is locked); a call belongs to one thread. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../basic/buf.h"
#include "../basic/error.h"
#include "grpc.h"

#define CASFS_GRPC_DEFAULT_TIMEOUT_MS 30000

enum casfs_grpc_family {
	CASFS_GRPC_CASTORE, /* <pkg>.castore.v1.{BlobService,DirectoryService} */
	CASFS_GRPC_STORE,   /* <pkg>.store.v1.PathInfoService */
};

struct casfs_grpc_client_options {
	int timeout_ms;    /* <= 0: CASFS_GRPC_DEFAULT_TIMEOUT_MS */
	bool wait_connect; /* connect in _new and fail there if unreachable */
};

struct casfs_grpc_client;
struct casfs_grpc_call;

/* `target`: "unix:/PATH" or "HOST:PORT".  -EINVAL for a malformed target
 * (message in err); with wait_connect, connection errors as above. */
int casfs_grpc_client_new(const char *target, const struct casfs_grpc_client_options *opts,
			  struct casfs_grpc_client **ret, struct casfs_error *err);
void casfs_grpc_client_free(struct casfs_grpc_client *c);
/* The target as given (for messages). */
const char *casfs_grpc_client_target(const struct casfs_grpc_client *c);

/* Start a call of `method` ("BlobService/Read") in `family`.  Nothing is
 * sent before the first send or recv. */
int casfs_grpc_call_start(struct casfs_grpc_client *c, enum casfs_grpc_family family,
			  const char *method, struct casfs_grpc_call **ret, struct casfs_error *err);
/* Queue one request message (framed and copied); blocks while more than
 * about 1 MiB is waiting to be sent.  `last` ends the request stream. */
int casfs_grpc_call_send(struct casfs_grpc_call *call, const uint8_t *msg, size_t len, bool last,
			 struct casfs_error *err);
/* The next response message: 1 with *msg and *len (valid until the next recv
 * or end), 0 at the end of the stream with status OK, or -errno (above).
 * Ends the request stream first if the caller has not. */
int casfs_grpc_call_recv(struct casfs_grpc_call *call, const uint8_t **msg, size_t *len,
			 struct casfs_error *err);
/* The same without the copy into a queue: every response message that
 * arrives in the next read goes to `fn` (valid during the call only),
 * at least one of them.  1 when fn was given some, 0 at the end (status
 * OK), -errno as recv, or fn's negative return (the call is then spent:
 * end it). */
int casfs_grpc_call_recv_each(struct casfs_grpc_call *call, casfs_grpc_message_fn fn,
			      void *userdata, struct casfs_error *err);
/* Finish (or abandon: the stream is reset) and free the call. */
void casfs_grpc_call_end(struct casfs_grpc_call *call);

/* One request message, one response message into `resp` (replaced). */
int casfs_grpc_unary(struct casfs_grpc_client *c, enum casfs_grpc_family family,
		     const char *method, const uint8_t *req, size_t req_len,
		     struct casfs_buf *resp, struct casfs_error *err);
