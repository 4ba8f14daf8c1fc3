/* The gRPC server (grpc-server.h): listeners, connection threads, and the
 * per-stream call state machine on top of nghttp2.
 *
 * A call's states (one HTTP/2 stream; `finished` set once the status is
 * known, `submitted` once response HEADERS are queued):
 *
 *   HEADERS ---bad/unknown---------------------------> finished, trailers-only
 *      | start()
 *   RECEIVING --DATA: deframer -> message()----------> (error) finished, trailers-only
 *      | END_STREAM: end()
 *   SENDING (submitted): the data provider drains `out`, calls more()
 *      | more() == 0 or error: finished
 *   TRAILERS (from inside the data provider) -> stream closed: release()
 *
 * The data provider never defers: when nghttp2 asks for bytes and none are
 * queued it calls more() right there, on the connection's thread, so a
 * server stream is produced exactly as fast as the peer's flow-control
 * window lets it go, with at most one message (~1 MiB) buffered per call. */
#include "grpc-server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/uio.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../basic/util.h"

#define HEADER_VALUE_MAX 512
#define TICK_MS 250
#define READ_BUF (64u << 10)

struct listener {
	struct casfs_grpc_server *server;
	int fd;
	char *address;   /* as reported */
	char *unix_path; /* removed at stop, or NULL */
	pthread_t thread;
	bool running;
};

struct casfs_grpc_server {
	struct casfs_grpc_server_options o;
	struct listener *listeners;
	size_t n_listeners;
	int stop_pipe[2]; /* the read end turns readable at stop, for good */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned n_conns; /* under lock */
	atomic_bool stopping;
};

struct conn;

struct casfs_grpc_server_call {
	struct conn *conn;
	struct casfs_grpc_server_call *prev, *next; /* the connection's calls */
	int32_t stream_id;
	const struct casfs_grpc_method *method;
	void *state;
	struct casfs_buf out;
	size_t out_off;
	struct casfs_grpc_deframer deframer;
	struct casfs_error err;
	int64_t deadline_ms; /* monotonic; 0: none */
	unsigned n_messages;
	int hook_rc;          /* the last message hook's failure, to tell it from the deframer's */
	int status_override;  /* -1: none */
	bool started, request_done, finished, submitted, rst_sent;
	enum casfs_grpc_status status;
	char *message;        /* owned: the final grpc-message, or NULL */
	char path[HEADER_VALUE_MAX];
	char http_method[16];
	char content_type[HEADER_VALUE_MAX];
	char timeout[32];
	char encoding[64];
	bool path_too_long;
};

struct conn {
	struct casfs_grpc_server *server;
	int fd;
	nghttp2_session *session;
	struct casfs_grpc_server_call *calls;
	unsigned n_calls;
	int64_t last_activity;
	bool goaway_sent;
	bool failed;
	uint8_t *rbuf;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void logf_(struct casfs_grpc_server *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void logf_(struct casfs_grpc_server *s, const char *fmt, ...)
{
	if (!s->o.log)
		return;
	char line[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	s->o.log(s->o.log_userdata, line);
}

/* ---- hooks' accessors ------------------------------------------------- */

void *casfs_grpc_server_call_userdata(struct casfs_grpc_server_call *call)
{
	return call->conn->server->o.userdata;
}

void **casfs_grpc_server_call_state(struct casfs_grpc_server_call *call)
{
	return &call->state;
}

int casfs_grpc_server_call_send(struct casfs_grpc_server_call *call, const uint8_t *msg, size_t len)
{
	if (len >= call->conn->server->o.max_message)
		return -EMSGSIZE;
	return casfs_grpc_frame_append(&call->out, msg, len);
}

struct casfs_buf *casfs_grpc_server_call_out(struct casfs_grpc_server_call *call)
{
	return &call->out;
}

size_t casfs_grpc_server_call_queued(const struct casfs_grpc_server_call *call)
{
	return call->out.len - call->out_off;
}

void casfs_grpc_server_call_set_status(struct casfs_grpc_server_call *call, enum casfs_grpc_status status)
{
	call->status_override = (int)status;
}

const char *casfs_grpc_server_call_path(const struct casfs_grpc_server_call *call)
{
	return call->path;
}

bool casfs_grpc_server_call_expired(const struct casfs_grpc_server_call *call)
{
	return call->deadline_ms && now_ms() >= call->deadline_ms;
}

/* ---- responses ---------------------------------------------------------- */

#define NV(n, v) { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE }

static ssize_t provider_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
			     size_t length, uint32_t *data_flags, nghttp2_data_source *source,
			     void *user_data);

/* The status trailers (or trailers-only headers with `with_status`). */
static int submit_status(struct casfs_grpc_server_call *call, bool trailers_only)
{
	char code[16];
	snprintf(code, sizeof(code), "%u", (unsigned)call->status);
	struct casfs_buf msg = CASFS_BUF_INIT;
	if (call->message && call->message[0] && casfs_grpc_message_encode(call->message, &msg) < 0)
		msg.len = 0;
	nghttp2_nv nv[5];
	size_t n = 0;
	if (trailers_only) {
		nv[n++] = (nghttp2_nv)NV(":status", "200");
		nv[n++] = (nghttp2_nv)NV("content-type", "application/grpc");
	}
	nv[n++] = (nghttp2_nv)NV("grpc-status", code);
	if (msg.len)
		nv[n++] = (nghttp2_nv){ (uint8_t *)"grpc-message", msg.data, 12, strlen((char *)msg.data),
					NGHTTP2_NV_FLAG_NONE };
	int r = trailers_only
			? nghttp2_submit_response(call->conn->session, call->stream_id, nv, n, NULL)
			: nghttp2_submit_trailer(call->conn->session, call->stream_id, nv, n);
	casfs_buf_release(&msg);
	return r;
}

static void submit_headers(struct casfs_grpc_server_call *call)
{
	nghttp2_nv nv[] = { NV(":status", "200"), NV("content-type", "application/grpc") };
	nghttp2_data_provider dp = { .source.ptr = call, .read_callback = provider_read };
	call->submitted = true;
	if (nghttp2_submit_response(call->conn->session, call->stream_id, nv, ARRAY_SIZE(nv), &dp) < 0)
		call->conn->failed = true;
}

/* Decide the call's final status.  Before any response HEADERS the answer
 * is trailers-only (or, with messages already queued, HEADERS + those +
 * trailers); after them the data provider sends the trailers. */
static void finish(struct casfs_grpc_server_call *call, enum casfs_grpc_status status, const char *message)
{
	if (call->finished)
		return;
	call->finished = true;
	call->status = status;
	free(call->message);
	call->message = message && *message ? strdup(message) : NULL;
	if (call->submitted) {
		if (status != CASFS_GRPC_OK)
			call->out.len = call->out_off = 0; /* what is not sent yet is dropped */
		nghttp2_session_resume_data(call->conn->session, call->stream_id);
		return;
	}
	if (casfs_grpc_server_call_queued(call) && status == CASFS_GRPC_OK)
		submit_headers(call);
	else if (submit_status(call, true) < 0)
		call->conn->failed = true;
}

static void fail(struct casfs_grpc_server_call *call, int r)
{
	enum casfs_grpc_status st = call->status_override >= 0
					    ? (enum casfs_grpc_status)call->status_override
					    : casfs_grpc_status_from_errno(r);
	if (st == CASFS_GRPC_OK)
		st = CASFS_GRPC_INTERNAL;
	finish(call, st, casfs_error_message(&call->err, r));
}

static void failf(struct casfs_grpc_server_call *call, enum casfs_grpc_status st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void failf(struct casfs_grpc_server_call *call, enum casfs_grpc_status st, const char *fmt, ...)
{
	char m[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	finish(call, st, m);
}

static ssize_t provider_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
			     size_t length, uint32_t *data_flags, nghttp2_data_source *source,
			     void *user_data)
{
	(void)session, (void)stream_id, (void)user_data;
	struct casfs_grpc_server_call *call = source->ptr;
	for (unsigned spins = 0;; spins++) {
		size_t queued = casfs_grpc_server_call_queued(call);
		if (queued) {
			/* no copy: send_data writes these bytes from call->out */
			(void)buf;
			*data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
			return (ssize_t)MIN(queued, length);
		}
		if (call->finished) {
			*data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
			if (submit_status(call, false) < 0)
				return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
			return 0;
		}
		if (casfs_grpc_server_call_expired(call)) {
			finish(call, CASFS_GRPC_DEADLINE_EXCEEDED, "deadline exceeded");
			continue;
		}
		if (!call->method->more || spins > 1000) {
			finish(call, CASFS_GRPC_OK, NULL);
			continue;
		}
		int r = call->method->more(call, &call->err);
		if (r < 0)
			fail(call, r);
		else if (r == 0)
			finish(call, CASFS_GRPC_OK, NULL);
		else if (casfs_grpc_server_call_queued(call))
			spins = 0;
	}
}

/* ---- requests ----------------------------------------------------------- */

static bool is_unary_request(const struct casfs_grpc_method *m)
{
	return m->kind != CASFS_GRPC_CLIENT_STREAM;
}

static int on_message(void *userdata, const uint8_t *msg, size_t len)
{
	struct casfs_grpc_server_call *call = userdata;
	call->n_messages++;
	if (is_unary_request(call->method) && call->n_messages > 1) {
		call->status_override = CASFS_GRPC_INTERNAL;
		return call->hook_rc = casfs_error_set(&call->err, -EPROTO,
						       "more than one request message for %s",
						       call->path);
	}
	if (casfs_grpc_server_call_expired(call))
		return call->hook_rc = casfs_error_set(&call->err, -ETIMEDOUT, "deadline exceeded");
	int r = call->method->message(call, msg, len, &call->err);
	if (r < 0)
		call->hook_rc = r;
	return r < 0 ? r : 0;
}

static const struct casfs_grpc_method *lookup(struct casfs_grpc_server *s, const char *path)
{
	for (size_t i = 0; i < s->o.n_methods; i++)
		if (strcmp(s->o.methods[i].path, path) == 0)
			return &s->o.methods[i];
	return NULL;
}

/* Request HEADERS complete: check them, find the method, start the call. */
static void begin_call(struct casfs_grpc_server_call *call)
{
	struct casfs_grpc_server *s = call->conn->server;
	if (strcmp(call->http_method, "POST") != 0) {
		failf(call, CASFS_GRPC_UNIMPLEMENTED, "HTTP method %s: gRPC wants POST",
		      call->http_method[0] ? call->http_method : "(none)");
		return;
	}
	if (strncmp(call->content_type, "application/grpc", 16) != 0 ||
	    (call->content_type[16] && call->content_type[16] != '+' &&
	     call->content_type[16] != ';')) {
		/* Not gRPC at all: HTTP 415, as the gRPC spec asks. */
		call->finished = true;
		call->status = CASFS_GRPC_INTERNAL;
		nghttp2_nv nv[] = { NV(":status", "415"), NV("grpc-status", "13"),
				    NV("grpc-message", "content-type is not application/grpc") };
		if (nghttp2_submit_response(call->conn->session, call->stream_id, nv, ARRAY_SIZE(nv),
					    NULL) < 0)
			call->conn->failed = true;
		return;
	}
	if (call->encoding[0] && strcmp(call->encoding, "identity") != 0) {
		failf(call, CASFS_GRPC_UNIMPLEMENTED, "grpc-encoding %s is not supported",
		      call->encoding);
		return;
	}
	if (call->timeout[0]) {
		int64_t ms;
		if (casfs_grpc_timeout_parse(call->timeout, strlen(call->timeout), &ms) < 0) {
			failf(call, CASFS_GRPC_INTERNAL, "malformed grpc-timeout");
			return;
		}
		int64_t now = now_ms();
		call->deadline_ms = ms > INT64_MAX - now ? 0 : now + (ms ? ms : 1);
	}
	call->method = call->path_too_long ? NULL : lookup(s, call->path);
	if (!call->method) {
		failf(call, CASFS_GRPC_UNIMPLEMENTED, "unknown method %s",
		      call->path_too_long ? "(path too long)" : call->path);
		return;
	}
	casfs_grpc_deframer_init(&call->deframer, s->o.max_message);
	call->started = true;
	if (call->method->start) {
		int r = call->method->start(call, &call->err);
		if (r < 0)
			fail(call, r);
	}
}

static void request_end(struct casfs_grpc_server_call *call)
{
	call->request_done = true;
	if (call->finished || !call->method)
		return;
	int r = casfs_grpc_deframer_end(&call->deframer, &call->err);
	if (r < 0) {
		call->status_override = CASFS_GRPC_INTERNAL;
		fail(call, r);
		return;
	}
	if (is_unary_request(call->method) && call->n_messages != 1) {
		failf(call, CASFS_GRPC_INTERNAL, "no request message for %s", call->path);
		return;
	}
	if (casfs_grpc_server_call_expired(call)) {
		finish(call, CASFS_GRPC_DEADLINE_EXCEEDED, "deadline exceeded");
		return;
	}
	if (call->method->end && (r = call->method->end(call, &call->err)) < 0) {
		fail(call, r);
		return;
	}
	if (!call->finished)
		submit_headers(call);
}

static void call_free(struct conn *c, struct casfs_grpc_server_call *call)
{
	if (call->started) {
		if (call->method->release)
			call->method->release(call);
		casfs_grpc_deframer_release(&call->deframer);
	}
	if (call->prev)
		call->prev->next = call->next;
	else
		c->calls = call->next;
	if (call->next)
		call->next->prev = call->prev;
	c->n_calls--;
	casfs_buf_release(&call->out);
	free(call->message);
	free(call);
}

/* ---- nghttp2 callbacks -------------------------------------------------- */

static ssize_t cb_send(nghttp2_session *session, const uint8_t *data, size_t length, int flags,
		       void *user_data)
{
	(void)session, (void)flags;
	struct conn *c = user_data;
	for (;;) {
		ssize_t n = send(c->fd, data, length, MSG_NOSIGNAL);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return NGHTTP2_ERR_WOULDBLOCK;
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
}

/* Write all of `iov`, waiting (bounded) for the socket when it is full:
 * a DATA frame cannot be left half sent. */
static int write_all_v(struct conn *c, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = writev(c->fd, iov, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd p = { .fd = c->fd, .events = POLLOUT };
			if (poll(&p, 1, (int)c->server->o.idle_timeout * 1000) <= 0)
				return -1;
			continue;
		}
		if (w < 0)
			return -1;
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++, n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* A DATA frame whose payload provider_read left in call->out: header and
 * payload in one writev, without copying the payload into nghttp2. */
static int cb_send_data(nghttp2_session *session, nghttp2_frame *frame, const uint8_t *framehd,
			size_t length, nghttp2_data_source *source, void *user_data)
{
	(void)session, (void)frame;
	struct conn *c = user_data;
	struct casfs_grpc_server_call *call = source->ptr;
	/* the library flushes what it buffered before calling us */
	struct iovec iov[2] = {
		{ (void *)framehd, 9 },
		{ call->out.data + call->out_off, length },
	};
	if (write_all_v(c, iov, 2) < 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	call->out_off += length;
	if (call->out_off == call->out.len)
		call->out.len = call->out_off = 0;
	return 0;
}

/* DATA frames as big as the client allows, up to 1 MiB: fewer frames and
 * writes per byte. */
static ssize_t cb_data_length(nghttp2_session *session, uint8_t frame_type, int32_t stream_id,
			      int32_t session_window, int32_t stream_window, uint32_t remote_max_frame,
			      void *user_data)
{
	(void)session, (void)frame_type, (void)stream_id, (void)user_data;
	int32_t w = MIN(session_window, stream_window);
	return MIN((ssize_t)MIN(remote_max_frame, 1u << 20), (ssize_t)MAX(w, 1));
}

static int cb_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	struct conn *c = user_data;
	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	struct casfs_grpc_server_call *call = calloc(1, sizeof(*call));
	if (!call)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	call->conn = c;
	call->stream_id = frame->hd.stream_id;
	call->status_override = -1;
	casfs_buf_init(&call->out);
	call->next = c->calls;
	if (c->calls)
		c->calls->prev = call;
	c->calls = call;
	c->n_calls++;
	nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, call);
	return 0;
}

static void copy_value(char *dst, size_t cap, const uint8_t *v, size_t vlen, bool *too_long)
{
	if (vlen >= cap) {
		if (too_long)
			*too_long = true;
		vlen = cap - 1;
	}
	memcpy(dst, v, vlen);
	dst[vlen] = 0;
}

static int cb_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
		     void *user_data)
{
	(void)flags, (void)user_data;
	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	struct casfs_grpc_server_call *call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (!call)
		return 0;
#define IS(n) (namelen == sizeof(n) - 1 && memcmp(name, n, namelen) == 0)
	if (IS(":path"))
		copy_value(call->path, sizeof(call->path), value, valuelen, &call->path_too_long);
	else if (IS(":method"))
		copy_value(call->http_method, sizeof(call->http_method), value, valuelen, NULL);
	else if (IS("content-type"))
		copy_value(call->content_type, sizeof(call->content_type), value, valuelen, NULL);
	else if (IS("grpc-timeout"))
		copy_value(call->timeout, sizeof(call->timeout), value, valuelen, NULL);
	else if (IS("grpc-encoding"))
		copy_value(call->encoding, sizeof(call->encoding), value, valuelen, NULL);
#undef IS
	return 0;
}

static int cb_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
			 const uint8_t *data, size_t len, void *user_data)
{
	(void)flags, (void)user_data;
	struct casfs_grpc_server_call *call = nghttp2_session_get_stream_user_data(session, stream_id);
	if (!call || call->finished || !call->method)
		return 0;
	call->hook_rc = 0;
	int r = casfs_grpc_deframer_feed(&call->deframer, data, len, on_message, call, &call->err);
	if (r >= 0)
		return 0;
	if (r != call->hook_rc) /* the deframer's own complaint */
		call->status_override = r == -EPROTO ? CASFS_GRPC_INTERNAL
						     : CASFS_GRPC_RESOURCE_EXHAUSTED;
	fail(call, r);
	return 0;
}

static int cb_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	(void)user_data;
	if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
		return 0;
	struct casfs_grpc_server_call *call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (!call)
		return 0;
	if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
		begin_call(call);
	if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && !call->request_done)
		request_end(call);
	return 0;
}

/* Our final HEADERS went out while the peer is still sending: ask it to
 * stop (RFC 9113 8.1: RST_STREAM NO_ERROR after a complete response). */
static int cb_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	(void)user_data;
	if (frame->hd.type != NGHTTP2_HEADERS || !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	struct casfs_grpc_server_call *call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (call && !call->request_done && !call->rst_sent) {
		call->rst_sent = true;
		nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
					  NGHTTP2_NO_ERROR);
	}
	return 0;
}

static int cb_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
			   void *user_data)
{
	(void)error_code;
	struct conn *c = user_data;
	struct casfs_grpc_server_call *call = nghttp2_session_get_stream_user_data(session, stream_id);
	if (call) {
		nghttp2_session_set_stream_user_data(session, stream_id, NULL);
		call_free(c, call);
	}
	return 0;
}

/* ---- connections -------------------------------------------------------- */

static int conn_setup(struct conn *c)
{
	nghttp2_session_callbacks *cbs;
	if (nghttp2_session_callbacks_new(&cbs) != 0)
		return -ENOMEM;
	nghttp2_session_callbacks_set_send_callback(cbs, cb_send);
	nghttp2_session_callbacks_set_send_data_callback(cbs, cb_send_data);
	nghttp2_session_callbacks_set_data_source_read_length_callback(cbs, cb_data_length);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, cb_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cbs, cb_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cb_data_chunk);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, cb_frame_recv);
	nghttp2_session_callbacks_set_on_frame_send_callback(cbs, cb_frame_send);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cb_stream_close);
	int r = nghttp2_session_server_new(&c->session, cbs, c);
	nghttp2_session_callbacks_del(cbs);
	if (r != 0)
		return -ENOMEM;
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100 },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 8u << 20 },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 64u << 10 },
	};
	if (nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, ARRAY_SIZE(iv)) != 0 ||
	    nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, 64 << 20) != 0)
		return -ENOMEM;
	c->rbuf = malloc(READ_BUF);
	return c->rbuf ? 0 : -ENOMEM;
}

static void conn_goaway(struct conn *c)
{
	if (c->goaway_sent)
		return;
	c->goaway_sent = true;
	nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE,
			      nghttp2_session_get_last_proc_stream_id(c->session), NGHTTP2_NO_ERROR,
			      NULL, 0);
}

/* Calls whose deadline passed while they wait for request bytes or for the
 * peer's window. */
static void conn_deadlines(struct conn *c)
{
	int64_t now = now_ms();
	for (struct casfs_grpc_server_call *call = c->calls; call; call = call->next) {
		if (!call->deadline_ms || now < call->deadline_ms || call->rst_sent)
			continue;
		if (!call->finished) {
			finish(call, CASFS_GRPC_DEADLINE_EXCEEDED, "deadline exceeded");
		} else if (call->submitted && now >= call->deadline_ms + 1000) {
			/* stuck behind the peer's window: give up on the stream */
			call->rst_sent = true;
			nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, call->stream_id,
						  NGHTTP2_CANCEL);
		}
	}
}

/* Run one connection until it ends; closes fd. */
static void conn_run(struct casfs_grpc_server *s, int fd)
{
	struct conn c = { .server = s, .fd = fd, .last_activity = now_ms() };
	int64_t drain_deadline = 0;
	if (conn_setup(&c) < 0)
		goto out;
	while (!c.failed) {
		if (nghttp2_session_send(c.session) != 0)
			break;
		bool want_read = nghttp2_session_want_read(c.session);
		bool want_write = nghttp2_session_want_write(c.session);
		if (!want_read && !want_write)
			break;
		if (c.goaway_sent && c.n_calls == 0 && !want_write)
			break;
		int64_t now = now_ms();
		if (drain_deadline && now >= drain_deadline)
			break;
		if (!c.goaway_sent && atomic_load(&s->stopping)) {
			conn_goaway(&c);
			drain_deadline = now + (int64_t)s->o.drain_timeout * 1000;
			continue;
		}
		if (!c.goaway_sent && c.n_calls == 0 &&
		    now - c.last_activity >= (int64_t)s->o.idle_timeout * 1000) {
			conn_goaway(&c);
			drain_deadline = now + 1000;
			continue;
		}
		struct pollfd p[2] = {
			{ .fd = fd, .events = (short)((want_read ? POLLIN : 0) | (want_write ? POLLOUT : 0)) },
			{ .fd = s->stop_pipe[0], .events = POLLIN },
		};
		int n = poll(p, c.goaway_sent ? 1 : 2, TICK_MS);
		if (n < 0 && errno != EINTR)
			break;
		conn_deadlines(&c);
		if (n <= 0)
			continue;
		if (p[0].revents & (POLLERR | POLLNVAL))
			break;
		if (p[0].revents & (POLLIN | POLLHUP)) {
			ssize_t k = recv(fd, c.rbuf, READ_BUF, 0);
			if (k < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (k <= 0) {
				nghttp2_session_send(c.session); /* what can still go */
				break;
			}
			c.last_activity = now_ms();
			ssize_t used = nghttp2_session_mem_recv(c.session, c.rbuf, (size_t)k);
			if (used < 0) {
				logf_(s, "connection closed: %s", nghttp2_strerror((int)used));
				nghttp2_session_send(c.session); /* the GOAWAY, if any */
				break;
			}
		}
	}
out:
	while (c.calls)
		call_free(&c, c.calls);
	nghttp2_session_del(c.session);
	free(c.rbuf);
	close(fd);
}

struct conn_start {
	struct casfs_grpc_server *s;
	int fd;
};

static void *conn_thread(void *arg)
{
	struct conn_start cs = *(struct conn_start *)arg;
	free(arg);
	conn_run(cs.s, cs.fd);
	pthread_mutex_lock(&cs.s->lock);
	cs.s->n_conns--;
	pthread_cond_broadcast(&cs.s->cond);
	pthread_mutex_unlock(&cs.s->lock);
	return NULL;
}

static void *accept_thread(void *arg)
{
	struct listener *l = arg;
	struct casfs_grpc_server *s = l->server;
	for (;;) {
		struct pollfd p[2] = { { .fd = l->fd, .events = POLLIN },
				       { .fd = s->stop_pipe[0], .events = POLLIN } };
		int n = poll(p, 2, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || (p[1].revents & POLLIN) || atomic_load(&s->stopping))
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				poll(NULL, 0, 100); /* let connections end */
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* fails on unix: fine */
		pthread_mutex_lock(&s->lock);
		bool full = s->n_conns >= s->o.max_connections;
		if (!full)
			s->n_conns++;
		pthread_mutex_unlock(&s->lock);
		if (full) {
			logf_(s, "%s: connection refused, %u connections open", l->address,
			      s->o.max_connections);
			close(fd);
			continue;
		}
		struct conn_start *cs = malloc(sizeof(*cs));
		pthread_t t;
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (cs) {
			cs->s = s;
			cs->fd = fd;
		}
		if (!cs || pthread_create(&t, &attr, conn_thread, cs) != 0) {
			free(cs);
			close(fd);
			pthread_mutex_lock(&s->lock);
			s->n_conns--;
			pthread_cond_broadcast(&s->cond);
			pthread_mutex_unlock(&s->lock);
		}
		pthread_attr_destroy(&attr);
	}
	return NULL;
}

/* ---- listeners ---------------------------------------------------------- */

static int listen_unix(struct listener *l, const char *path, struct casfs_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (!*path || strlen(path) >= sizeof(sa.sun_path))
		return casfs_error_set(err, -ENAMETOOLONG, "unix:%s: bad socket path length", path);
	strcpy(sa.sun_path, path);
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return casfs_error_set(err, -EEXIST, "unix:%s exists and is not a socket", path);
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe < 0)
			return casfs_error_set(err, casfs_neg_errno(), "socket: %s", strerror(errno));
		int rc = connect(probe, (struct sockaddr *)&sa, sizeof(sa));
		close(probe);
		if (rc == 0)
			return casfs_error_set(err, -EADDRINUSE, "unix:%s: a server is listening there",
					       path);
		unlink(path); /* stale */
	}
	l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l->fd < 0)
		return casfs_error_set(err, casfs_neg_errno(), "socket: %s", strerror(errno));
	if (bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return casfs_error_set(err, casfs_neg_errno(), "cannot listen on unix:%s: %s", path,
				       strerror(errno));
	l->unix_path = strdup(path);
	if (listen(l->fd, 128) < 0)
		return casfs_error_set(err, casfs_neg_errno(), "cannot listen on unix:%s: %s", path,
				       strerror(errno));
	if (!l->unix_path || asprintf(&l->address, "unix:%s", path) < 0) {
		l->address = NULL;
		return -ENOMEM;
	}
	return 0;
}

static int listen_tcp(struct listener *l, const char *spec, struct casfs_error *err)
{
	const char *colon = strrchr(spec, ':');
	if (!colon)
		return casfs_error_set(err, -EINVAL, "listen address '%s': want unix:/PATH or HOST:PORT",
				       spec);
	char host[INET6_ADDRSTRLEN + 2];
	size_t hl = (size_t)(colon - spec);
	const char *h = spec;
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
		h++, hl -= 2;
	char *end;
	errno = 0;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (hl == 0 || hl >= sizeof(host) || !colon[1] || *end || errno || port > 65535 ||
	    colon[1] == '-' || colon[1] == '+')
		return casfs_error_set(err, -EINVAL, "listen address '%s': want HOST:PORT", spec);
	memcpy(host, h, hl);
	host[hl] = 0;
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		sl = sizeof(*s4);
	} else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		sl = sizeof(*s6);
	} else {
		return casfs_error_set(err, -EINVAL, "listen address '%s': the host must be numeric",
				       spec);
	}
	l->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l->fd < 0)
		return casfs_error_set(err, casfs_neg_errno(), "cannot listen on %s: %s", spec,
				       strerror(errno));
	int one = 1;
	setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(l->fd, (struct sockaddr *)&ss, sl) < 0 || listen(l->fd, 128) < 0)
		return casfs_error_set(err, casfs_neg_errno(), "cannot listen on %s: %s", spec,
				       strerror(errno));
	sl = sizeof(ss);
	if (getsockname(l->fd, (struct sockaddr *)&ss, &sl) < 0)
		return casfs_error_set(err, casfs_neg_errno(), "getsockname: %s", strerror(errno));
	char txt[INET6_ADDRSTRLEN];
	int r;
	if (ss.ss_family == AF_INET)
		r = asprintf(&l->address, "%s:%u", inet_ntop(AF_INET, &s4->sin_addr, txt, sizeof(txt)),
			     ntohs(s4->sin_port));
	else
		r = asprintf(&l->address, "[%s]:%u",
			     inet_ntop(AF_INET6, &s6->sin6_addr, txt, sizeof(txt)), ntohs(s6->sin6_port));
	if (r < 0) {
		l->address = NULL;
		return -ENOMEM;
	}
	return 0;
}

static void options_defaults(struct casfs_grpc_server *s, const struct casfs_grpc_server_options *o)
{
	s->o = *o;
	if (!s->o.max_message)
		s->o.max_message = CASFS_GRPC_MAX_MESSAGE;
	if (!s->o.max_connections)
		s->o.max_connections = 256;
	if (!s->o.idle_timeout)
		s->o.idle_timeout = 60;
	if (!s->o.drain_timeout)
		s->o.drain_timeout = 10;
}

static struct casfs_grpc_server *server_alloc(const struct casfs_grpc_server_options *o)
{
	struct casfs_grpc_server *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	options_defaults(s, o);
	if (pipe2(s->stop_pipe, O_CLOEXEC) < 0) {
		free(s);
		return NULL;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	atomic_init(&s->stopping, false);
	return s;
}

static void server_free(struct casfs_grpc_server *s)
{
	for (size_t i = 0; i < s->n_listeners; i++) {
		struct listener *l = &s->listeners[i];
		if (l->fd >= 0)
			close(l->fd);
		if (l->unix_path)
			unlink(l->unix_path);
		free(l->unix_path);
		free(l->address);
	}
	free(s->listeners);
	close(s->stop_pipe[0]);
	close(s->stop_pipe[1]);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s);
}

/* Wake every thread for good: the pipe stays readable. */
static void signal_stop(struct casfs_grpc_server *s)
{
	atomic_store(&s->stopping, true);
	ssize_t k;
	do
		k = write(s->stop_pipe[1], "x", 1);
	while (k < 0 && errno == EINTR);
}

int casfs_grpc_server_start(const char *const *listen, size_t n,
			    const struct casfs_grpc_server_options *o,
			    struct casfs_grpc_server **ret, struct casfs_error *err)
{
	struct casfs_grpc_server *s = server_alloc(o);
	if (!s || !(s->listeners = calloc(n ? n : 1, sizeof(*s->listeners)))) {
		if (s)
			server_free(s);
		return casfs_error_set(err, -ENOMEM, "out of memory");
	}
	int r = 0;
	for (size_t i = 0; i < n && r >= 0; i++) {
		struct listener *l = &s->listeners[i];
		l->server = s;
		l->fd = -1;
		s->n_listeners++;
		if (strncmp(listen[i], "unix:", 5) == 0)
			r = listen_unix(l, listen[i] + 5, err);
		else
			r = listen_tcp(l, listen[i], err);
		if (r >= 0 && fcntl(l->fd, F_SETFL, O_NONBLOCK) < 0)
			r = casfs_neg_errno();
	}
	for (size_t i = 0; i < n && r >= 0; i++) {
		struct listener *l = &s->listeners[i];
		if (pthread_create(&l->thread, NULL, accept_thread, l) != 0)
			r = casfs_error_set(err, -EAGAIN, "cannot start a thread");
		else
			l->running = true;
	}
	if (r < 0) {
		signal_stop(s);
		for (size_t i = 0; i < s->n_listeners; i++)
			if (s->listeners[i].running)
				pthread_join(s->listeners[i].thread, NULL);
		server_free(s);
		return r;
	}
	*ret = s;
	return 0;
}

const char *casfs_grpc_server_address(const struct casfs_grpc_server *s, size_t i)
{
	return i < s->n_listeners ? s->listeners[i].address : NULL;
}

int casfs_grpc_server_stop(struct casfs_grpc_server *s)
{
	if (!s)
		return 0;
	signal_stop(s);
	for (size_t i = 0; i < s->n_listeners; i++) {
		struct listener *l = &s->listeners[i];
		if (l->running)
			pthread_join(l->thread, NULL);
		l->running = false;
		close(l->fd); /* no new connections from here on */
		l->fd = -1;
		if (l->unix_path)
			unlink(l->unix_path);
	}
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)s->o.drain_timeout + 5;
	pthread_mutex_lock(&s->lock);
	while (s->n_conns > 0)
		if (pthread_cond_timedwait(&s->cond, &s->lock, &until) == ETIMEDOUT)
			break;
	bool left = s->n_conns > 0;
	pthread_mutex_unlock(&s->lock);
	if (left)
		return -ETIMEDOUT;
	server_free(s);
	return 0;
}

int casfs_grpc_server_new_detached(const struct casfs_grpc_server_options *o,
				   struct casfs_grpc_server **ret)
{
	struct casfs_grpc_server *s = server_alloc(o);
	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}

void casfs_grpc_server_serve_fd(struct casfs_grpc_server *s, int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	conn_run(s, fd);
}

void casfs_grpc_server_free_detached(struct casfs_grpc_server *s)
{
	if (s)
		server_free(s);
}
