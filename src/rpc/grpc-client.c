/* The blocking gRPC client (grpc-client.h).
 *
 * A call owns one pooled connection for its life.  Progress is driven by
 * step(): send what nghttp2 has queued, wait (poll, bounded by the
 * timeout) for the socket, feed what was read to nghttp2, whose callbacks
 * collect the response headers, deframe DATA into the call's message
 * queue and note the stream's close.  The queue only grows by what one
 * read brings in, because recv reads again only when it is empty.
 *
 *   call: IDLE --send/recv--> SUBMITTED --headers--> ANSWERED --close--> CLOSED
 *         a connection failure in SUBMITTED on a reused connection, with
 *         the request bytes still held (at most REPLAY_MAX), reconnects and
 *         submits again, once. */
#include "grpc-client.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../basic/util.h"
#include "grpc.h"

#define READ_BUF (256u << 10)
#define SEND_HIGH_WATER (1u << 20)
#define REPLAY_MAX (1u << 20)
#define POOL_MAX 32
#define STREAM_WINDOW (16 << 20)
#define CONN_WINDOW (1 << 30)
#define SOCKET_BUF (4 << 20)

enum pkg { PKG_UNKNOWN, PKG_SNIX, PKG_TVIX };
static const char *const pkg_names[] = { [PKG_SNIX] = "snix", [PKG_TVIX] = "tvix" };
static const char *const family_names[] = { [CASFS_GRPC_CASTORE] = "castore",
					    [CASFS_GRPC_STORE] = "store" };

struct conn {
	int fd;
	nghttp2_session *session;
	struct casfs_grpc_call *call; /* the call using it, or NULL */
	int io_error;                 /* -errno of the socket, 0 */
	bool want_out;                /* a write would block: wait for POLLOUT */
	bool broken;
	uint8_t *rbuf;
	struct conn *next; /* in the idle pool */
};

struct casfs_grpc_client {
	char *target;
	bool is_unix;
	struct sockaddr_un sun;
	char *host, *port;
	int timeout_ms;
	pthread_mutex_t lock;
	struct conn *idle;
	size_t n_idle;
	enum pkg pkg[2];
};

struct casfs_grpc_call {
	struct casfs_grpc_client *client;
	struct conn *conn;
	bool reused;
	char path[128];
	int32_t stream_id; /* 0: not submitted */
	/* request bytes: out[out_pos..] not yet handed to nghttp2 */
	struct casfs_buf out;
	size_t out_pos;
	bool out_last;
	bool replayable; /* out still holds every byte from the start */
	bool deferred;   /* the data provider is paused */
	/* response */
	struct casfs_grpc_deframer deframer;
	struct casfs_buf queue; /* [u32 len][bytes]... */
	size_t queue_pos;
	bool answered; /* any response header arrived */
	bool closed;
	uint32_t close_code;
	int http_status;
	bool have_status;
	unsigned status;
	struct casfs_buf message;
	int error; /* a deframing or callback error, with err_text */
	struct casfs_error deframe_err;
	/* casfs_grpc_call_recv_each: messages go to `sink`, not the queue */
	casfs_grpc_message_fn sink;
	void *sink_userdata;
	size_t sunk;
	int sink_error;
};

/* ---- connections ----------------------------------------------------------- */

static ssize_t send_cb(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *ud)
{
	(void)s, (void)flags;
	struct conn *cn = ud;
	ssize_t n = send(cn->fd, data, len, MSG_NOSIGNAL);
	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		cn->want_out = true;
		return NGHTTP2_ERR_WOULDBLOCK;
	}
	cn->io_error = -errno;
	return NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int queue_message(void *userdata, const uint8_t *msg, size_t len)
{
	struct casfs_grpc_call *call = userdata;
	uint32_t n = (uint32_t)len;
	int r = casfs_buf_append(&call->queue, &n, sizeof(n));
	if (r >= 0 && len)
		r = casfs_buf_append(&call->queue, msg, len);
	return r;
}

static int sink_message(void *userdata, const uint8_t *msg, size_t len)
{
	struct casfs_grpc_call *call = userdata;
	int r = call->sink(call->sink_userdata, msg, len);
	call->sunk++;
	if (r < 0)
		call->sink_error = r;
	return r;
}

static struct casfs_grpc_call *call_of(struct conn *cn, int32_t stream_id)
{
	return cn->call && cn->call->stream_id == stream_id ? cn->call : NULL;
}

static int data_chunk_cb(nghttp2_session *s, uint8_t flags, int32_t stream_id, const uint8_t *data,
			 size_t len, void *ud)
{
	(void)s, (void)flags;
	struct casfs_grpc_call *call = call_of(ud, stream_id);
	if (!call || call->error < 0)
		return 0;
	call->answered = true;
	int r = casfs_grpc_deframer_feed(&call->deframer, data, len,
					 call->sink ? sink_message : queue_message, call,
					 &call->deframe_err);
	if (r < 0) {
		call->error = r;
		nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
	}
	return 0;
}

static bool name_is(const uint8_t *name, size_t len, const char *want)
{
	return len == strlen(want) && memcmp(name, want, len) == 0;
}

static int header_cb(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
	(void)s, (void)flags;
	struct casfs_grpc_call *call = call_of(ud, frame->hd.stream_id);
	if (!call || frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	call->answered = true;
	if (name_is(name, namelen, ":status")) {
		char v[8] = "";
		memcpy(v, value, MIN(valuelen, sizeof(v) - 1));
		call->http_status = atoi(v);
	} else if (name_is(name, namelen, "grpc-status")) {
		call->have_status = casfs_grpc_status_parse((const char *)value, valuelen,
							    &call->status) == 0;
		if (!call->have_status)
			call->status = CASFS_GRPC_UNKNOWN, call->have_status = true;
	} else if (name_is(name, namelen, "grpc-message")) {
		call->message.len = 0;
		casfs_grpc_message_decode((const char *)value, MIN(valuelen, 400), &call->message);
	}
	return 0;
}

static int stream_close_cb(nghttp2_session *s, int32_t stream_id, uint32_t error_code, void *ud)
{
	(void)s;
	struct casfs_grpc_call *call = call_of(ud, stream_id);
	if (call) {
		call->closed = true;
		call->close_code = error_code;
	}
	return 0;
}

static void conn_close(struct conn *cn)
{
	if (!cn)
		return;
	if (cn->session)
		nghttp2_session_del(cn->session);
	if (cn->fd >= 0)
		close(cn->fd);
	free(cn->rbuf);
	free(cn);
}

/* Connect a socket, bounded by the timeout: fd or -errno. */
static int connect_socket(struct casfs_grpc_client *c, struct casfs_error *err)
{
	int fd = -1, r = 0;
	struct addrinfo *ai = NULL;
	if (c->is_unix) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return casfs_neg_errno();
		if (connect(fd, (struct sockaddr *)&c->sun, sizeof(c->sun)) < 0) {
			/* a missing socket is an unreachable daemon, not an absent blob */
			r = casfs_neg_errno();
			close(fd);
			return casfs_error_set(err, -ECONNREFUSED, "cannot connect to %s: %s", c->target,
					       strerror(-r));
		}
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		return fd;
	}
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	int g = getaddrinfo(c->host, c->port, &hints, &ai);
	if (g != 0)
		return casfs_error_set(err, -EHOSTUNREACH, "cannot resolve %s: %s", c->target,
				       gai_strerror(g));
	r = -ECONNREFUSED;
	for (struct addrinfo *a = ai; a; a = a->ai_next) {
		fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			r = casfs_neg_errno();
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
			r = 0;
			break;
		}
		if (errno == EINPROGRESS) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			int pr = poll(&p, 1, c->timeout_ms);
			int soerr = 0;
			socklen_t sl = sizeof(soerr);
			if (pr == 0)
				r = -ETIMEDOUT;
			else if (pr < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
				r = casfs_neg_errno();
			else
				r = soerr ? -soerr : 0;
			if (r == 0)
				break;
		} else {
			r = casfs_neg_errno();
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (r < 0)
		return casfs_error_set(err, r, "cannot connect to %s: %s", c->target, strerror(-r));
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int conn_new(struct casfs_grpc_client *c, struct conn **ret, struct casfs_error *err)
{
	struct conn *cn = calloc(1, sizeof(*cn));
	if (!cn || !(cn->rbuf = malloc(READ_BUF))) {
		free(cn);
		return -ENOMEM;
	}
	cn->fd = connect_socket(c, err);
	if (cn->fd < 0) {
		int r = cn->fd;
		cn->fd = -1;
		conn_close(cn);
		return r;
	}
	/* room for the server to run ahead while we check and hand out */
	int rcvbuf = SOCKET_BUF;
	setsockopt(cn->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	nghttp2_session_callbacks *cbs;
	if (nghttp2_session_callbacks_new(&cbs) != 0) {
		conn_close(cn);
		return -ENOMEM;
	}
	nghttp2_session_callbacks_set_send_callback(cbs, send_cb);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, data_chunk_cb);
	nghttp2_session_callbacks_set_on_header_callback(cbs, header_cb);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, stream_close_cb);
	int rv = nghttp2_session_client_new(&cn->session, cbs, cn);
	nghttp2_session_callbacks_del(cbs);
	if (rv != 0) {
		cn->session = NULL;
		conn_close(cn);
		return -ENOMEM;
	}
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW },
		{ NGHTTP2_SETTINGS_MAX_FRAME_SIZE, 1 << 20 },
	};
	nghttp2_submit_settings(cn->session, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
	nghttp2_session_set_local_window_size(cn->session, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
	*ret = cn;
	return 0;
}

/* An idle pooled connection is still usable: the peer has not closed it
 * or sent GOAWAY meanwhile (reads what is pending, without blocking). */
static bool conn_alive(struct conn *cn)
{
	for (;;) {
		ssize_t n = recv(cn->fd, cn->rbuf, READ_BUF, MSG_DONTWAIT);
		if (n == 0)
			return false;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK;
		if (nghttp2_session_mem_recv(cn->session, cn->rbuf, (size_t)n) < 0)
			return false;
		if (!nghttp2_session_want_read(cn->session))
			return false;
	}
}

static int conn_get(struct casfs_grpc_client *c, struct conn **ret, bool *reused,
		    struct casfs_error *err)
{
	pthread_mutex_lock(&c->lock);
	while (c->idle) {
		struct conn *cn = c->idle;
		c->idle = cn->next;
		c->n_idle--;
		pthread_mutex_unlock(&c->lock);
		if (conn_alive(cn)) {
			cn->next = NULL;
			*ret = cn;
			*reused = true;
			return 0;
		}
		conn_close(cn);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	*reused = false;
	return conn_new(c, ret, err);
}

static void conn_put(struct casfs_grpc_client *c, struct conn *cn)
{
	cn->call = NULL;
	if (cn->broken || cn->io_error || !nghttp2_session_want_read(cn->session)) {
		conn_close(cn);
		return;
	}
	pthread_mutex_lock(&c->lock);
	if (c->n_idle < POOL_MAX) {
		cn->next = c->idle;
		c->idle = cn;
		c->n_idle++;
		cn = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	conn_close(cn);
}

/* ---- driving a call -------------------------------------------------------- */

static ssize_t body_read_cb(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t length,
			    uint32_t *data_flags, nghttp2_data_source *source, void *ud)
{
	(void)s, (void)stream_id, (void)ud;
	struct casfs_grpc_call *call = source->ptr;
	size_t avail = call->out.len - call->out_pos;
	size_t n = MIN(avail, length);
	if (n)
		memcpy(buf, call->out.data + call->out_pos, n);
	call->out_pos += n;
	if (!call->replayable && call->out_pos == call->out.len)
		call->out.len = call->out_pos = 0;
	if (call->out_pos == call->out.len && call->out_last) {
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
		return (ssize_t)n;
	}
	if (n == 0) {
		call->deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	return (ssize_t)n;
}

static int submit(struct casfs_grpc_call *call)
{
	struct casfs_grpc_client *c = call->client;
	const char *authority = c->is_unix ? "localhost" : c->target;
#define NV(n, v) { (uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE }
	nghttp2_nv nva[] = {
		NV(":method", "POST"), NV(":scheme", "http"), NV(":path", call->path),
		NV(":authority", authority), NV("content-type", "application/grpc"),
		NV("te", "trailers"), NV("user-agent", "casfs"),
	};
#undef NV
	nghttp2_data_provider prd = { .source.ptr = call, .read_callback = body_read_cb };
	call->conn->call = call;
	call->deferred = false;
	int32_t id = nghttp2_submit_request(call->conn->session, NULL, nva,
					    sizeof(nva) / sizeof(nva[0]), &prd, call);
	if (id < 0)
		return -ENOMEM;
	call->stream_id = id;
	return 0;
}

static int conn_failure(struct casfs_grpc_call *call, int code, struct casfs_error *err)
{
	call->conn->broken = true;
	const char *t = call->client->target;
	if (code == -ETIMEDOUT)
		return casfs_error_set(err, code, "no answer from %s in %d s", t,
				       (call->client->timeout_ms + 999) / 1000);
	return casfs_error_set(err, code, "%s: connection failed: %s", t, strerror(-code));
}

/* One round of I/O: 0, or -errno (connection-level failure). */
static int step(struct casfs_grpc_call *call, struct casfs_error *err)
{
	struct conn *cn = call->conn;
	if (call->deferred && (call->out.len > call->out_pos || call->out_last)) {
		call->deferred = false;
		nghttp2_session_resume_data(cn->session, call->stream_id);
	}
	cn->want_out = false;
	if (nghttp2_session_send(cn->session) != 0)
		return conn_failure(call, cn->io_error ? cn->io_error : -ECONNRESET, err);
	if (call->closed)
		return 0;
	if (!nghttp2_session_want_read(cn->session) && !nghttp2_session_want_write(cn->session))
		return conn_failure(call, -ECONNRESET, err);
	struct pollfd p = { .fd = cn->fd, .events = POLLIN | (cn->want_out ? POLLOUT : 0) };
	int pr;
	do
		pr = poll(&p, 1, call->client->timeout_ms);
	while (pr < 0 && errno == EINTR);
	if (pr == 0)
		return conn_failure(call, -ETIMEDOUT, err);
	if (pr < 0)
		return conn_failure(call, casfs_neg_errno(), err);
	if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
		ssize_t n = recv(cn->fd, cn->rbuf, READ_BUF, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (n <= 0)
			return conn_failure(call, n == 0 ? -ECONNRESET : casfs_neg_errno(), err);
		ssize_t used = nghttp2_session_mem_recv(cn->session, cn->rbuf, (size_t)n);
		if (used < 0)
			return conn_failure(call, -EPROTO, err);
	}
	return 0;
}

/* A connection failure before any answer, on a reused connection, with
 * the request still held: connect afresh and submit again (once).
 * 1 when resubmitted, 0 when not eligible, -errno when reconnecting failed. */
static int retry(struct casfs_grpc_call *call, struct casfs_error *err)
{
	if (!call->reused || call->answered || !call->replayable)
		return 0;
	conn_close(call->conn);
	call->conn = NULL;
	call->reused = false;
	casfs_error_clear(err);
	int r = conn_new(call->client, &call->conn, err);
	if (r < 0)
		return r;
	call->out_pos = 0;
	call->closed = false;
	call->close_code = 0;
	r = submit(call);
	return r < 0 ? r : 1;
}

static int drive(struct casfs_grpc_call *call, struct casfs_error *err)
{
	if (call->stream_id == 0) {
		int r = submit(call);
		if (r < 0)
			return r;
	}
	int r = step(call, err);
	if (r < 0) {
		int t = retry(call, err);
		if (t == 0)
			return r;
		if (t < 0)
			return t;
		return step(call, err);
	}
	/* refused before it started (GOAWAY, REFUSED_STREAM): the same */
	if (call->closed && !call->answered && call->close_code == NGHTTP2_REFUSED_STREAM) {
		call->conn->broken = true;
		int t = retry(call, err);
		if (t == 0)
			return casfs_error_set(err, -ECONNRESET, "%s refused the call",
					       call->client->target);
		return t < 0 ? t : 0;
	}
	return 0;
}

/* ---- calls ------------------------------------------------------------------ */

static int probe(struct casfs_grpc_client *c, enum casfs_grpc_family family,
		 struct casfs_error *err);

static int call_new(struct casfs_grpc_client *c, enum pkg pkg, enum casfs_grpc_family family,
		    const char *method, struct casfs_grpc_call **ret, struct casfs_error *err)
{
	struct casfs_grpc_call *call = calloc(1, sizeof(*call));
	if (!call)
		return -ENOMEM;
	call->client = c;
	call->replayable = true;
	int n = snprintf(call->path, sizeof(call->path), "/%s.%s.v1.%s", pkg_names[pkg],
			 family_names[family], method);
	if (n < 0 || (size_t)n >= sizeof(call->path)) {
		free(call);
		return -EINVAL;
	}
	casfs_grpc_deframer_init(&call->deframer, CASFS_GRPC_MAX_MESSAGE);
	casfs_buf_init(&call->out);
	casfs_buf_init(&call->queue);
	casfs_buf_init(&call->message);
	int r = conn_get(c, &call->conn, &call->reused, err);
	if (r < 0) {
		casfs_grpc_call_end(call);
		return r;
	}
	*ret = call;
	return 0;
}

/* The package the server serves `family` under, probed the first time. */
static int package_of(struct casfs_grpc_client *c, enum casfs_grpc_family family, enum pkg *ret,
		      struct casfs_error *err)
{
	int r = probe(c, family, err);
	if (r < 0)
		return r;
	pthread_mutex_lock(&c->lock);
	*ret = c->pkg[family];
	pthread_mutex_unlock(&c->lock);
	return 0;
}

int casfs_grpc_call_start(struct casfs_grpc_client *c, enum casfs_grpc_family family,
			  const char *method, struct casfs_grpc_call **ret, struct casfs_error *err)
{
	enum pkg pkg;
	int r = package_of(c, family, &pkg, err);
	return r < 0 ? r : call_new(c, pkg, family, method, ret, err);
}

int casfs_grpc_call_send(struct casfs_grpc_call *call, const uint8_t *msg, size_t len, bool last,
			 struct casfs_error *err)
{
	if (call->out_last)
		return -EINVAL;
	if (len > CASFS_GRPC_MAX_MESSAGE)
		return casfs_error_set(err, -EMSGSIZE, "request message of %zu bytes, over %u", len,
				       CASFS_GRPC_MAX_MESSAGE);
	if (call->replayable && call->out.len + len > REPLAY_MAX) {
		/* drop what was sent already: no replay from here on */
		if (call->out.len > call->out_pos)
			memmove(call->out.data, call->out.data + call->out_pos,
				call->out.len - call->out_pos);
		call->out.len -= call->out_pos;
		call->out_pos = 0;
		call->replayable = false;
	}
	int r = casfs_grpc_frame_append(&call->out, msg, len);
	if (r < 0)
		return r;
	call->out_last = last;
	while (r >= 0 && !call->closed && call->out.len - call->out_pos > SEND_HIGH_WATER)
		r = drive(call, err);
	return r;
}

static int final_status(struct casfs_grpc_call *call, struct casfs_error *err)
{
	const char *t = call->client->target;
	if (call->error < 0)
		return casfs_error_set(err, call->error == -EMSGSIZE ? -EMSGSIZE : -EPROTO,
				       "%s: %s", t, casfs_error_message(&call->deframe_err, call->error));
	if (!call->have_status) {
		if (call->http_status && call->http_status != 200)
			return casfs_error_set(err, -EPROTO, "%s answered HTTP status %d", t,
					       call->http_status);
		if (call->close_code != NGHTTP2_NO_ERROR)
			return casfs_error_set(err, -ECONNRESET, "%s reset the call (HTTP/2 error %u)",
					       t, call->close_code);
		return casfs_error_set(err, -EPROTO, "%s ended the call without a grpc-status", t);
	}
	if (call->status == CASFS_GRPC_OK) {
		struct casfs_error e2;
		int r = casfs_grpc_deframer_end(&call->deframer, &e2);
		if (r < 0)
			return casfs_error_set(err, r, "%s: %s", t, e2.msg);
		return 0;
	}
	int code = casfs_grpc_status_to_errno((enum casfs_grpc_status)call->status);
	return casfs_error_set(err, code, "%s: %s: %s", t,
			       casfs_grpc_status_name((enum casfs_grpc_status)call->status),
			       call->message.len ? (const char *)call->message.data : "(no message)");
}

int casfs_grpc_call_recv(struct casfs_grpc_call *call, const uint8_t **msg, size_t *len,
			 struct casfs_error *err)
{
	if (!call->out_last) {
		call->out_last = true;
		if (call->stream_id && call->deferred) {
			call->deferred = false;
			nghttp2_session_resume_data(call->conn->session, call->stream_id);
		}
	}
	if (call->queue_pos == call->queue.len)
		call->queue.len = call->queue_pos = 0;
	while (call->queue_pos == call->queue.len && !call->closed) {
		int r = drive(call, err);
		if (r < 0)
			return r;
	}
	if (call->queue_pos < call->queue.len) {
		uint32_t n;
		memcpy(&n, call->queue.data + call->queue_pos, sizeof(n));
		*msg = call->queue.data + call->queue_pos + sizeof(n);
		*len = n;
		call->queue_pos += sizeof(n) + n;
		return 1;
	}
	return final_status(call, err);
}

int casfs_grpc_call_recv_each(struct casfs_grpc_call *call, casfs_grpc_message_fn fn,
			      void *userdata, struct casfs_error *err)
{
	if (call->queue_pos < call->queue.len) /* mixing with recv: drain its queue first */
		return casfs_error_set(err, -EINVAL, "recv_each after recv left messages queued");
	if (!call->out_last) {
		call->out_last = true;
		if (call->stream_id && call->deferred) {
			call->deferred = false;
			nghttp2_session_resume_data(call->conn->session, call->stream_id);
		}
	}
	call->sink = fn;
	call->sink_userdata = userdata;
	call->sunk = 0;
	int r = 0;
	while (r >= 0 && call->sunk == 0 && !call->closed)
		r = drive(call, err);
	call->sink = NULL;
	if (call->sink_error < 0)
		return call->sink_error;
	if (r < 0)
		return r;
	if (call->sunk)
		return 1;
	return final_status(call, err);
}

void casfs_grpc_call_end(struct casfs_grpc_call *call)
{
	if (!call)
		return;
	if (call->conn) {
		if (call->stream_id && !call->closed) {
			/* abandoned: reset the stream, flush that, keep the connection */
			nghttp2_submit_rst_stream(call->conn->session, NGHTTP2_FLAG_NONE,
						  call->stream_id, NGHTTP2_CANCEL);
			if (nghttp2_session_send(call->conn->session) != 0)
				call->conn->broken = true;
		}
		conn_put(call->client, call->conn);
	}
	casfs_grpc_deframer_release(&call->deframer);
	casfs_buf_release(&call->out);
	casfs_buf_release(&call->queue);
	casfs_buf_release(&call->message);
	free(call);
}

static int unary_in(struct casfs_grpc_client *c, enum pkg pkg, enum casfs_grpc_family family,
		    const char *method, const uint8_t *req, size_t req_len, struct casfs_buf *resp,
		    struct casfs_error *err)
{
	struct casfs_grpc_call *call = NULL;
	int r = call_new(c, pkg, family, method, &call, err);
	if (r >= 0)
		r = casfs_grpc_call_send(call, req, req_len, true, err);
	const uint8_t *m;
	size_t n;
	if (r >= 0)
		r = casfs_grpc_call_recv(call, &m, &n, err);
	if (r == 0)
		r = casfs_error_set(err, -EPROTO, "%s sent no response message to %s", c->target,
				    method);
	if (r > 0) {
		resp->len = 0;
		r = casfs_buf_append(resp, m, n);
	}
	if (r >= 0) {
		const uint8_t *extra;
		int e = casfs_grpc_call_recv(call, &extra, &n, err);
		r = e > 0 ? casfs_error_set(err, -EPROTO, "%s sent two responses to the unary %s",
					    c->target, method)
			  : e;
	}
	casfs_grpc_call_end(call);
	return r;
}

/* Which package the server serves this family under (see the header). */
static int probe(struct casfs_grpc_client *c, enum casfs_grpc_family family,
		 struct casfs_error *err)
{
	pthread_mutex_lock(&c->lock);
	enum pkg known = c->pkg[family];
	pthread_mutex_unlock(&c->lock);
	if (known != PKG_UNKNOWN)
		return 0;
	/* Stat/Get of an all-zero digest: field 1, 32 or 20 zero bytes. */
	uint8_t req[2 + 32] = { 0x0a, family == CASFS_GRPC_CASTORE ? 32 : 20 };
	size_t req_len = 2 + req[1];
	const char *method = family == CASFS_GRPC_CASTORE ? "BlobService/Stat" : "PathInfoService/Get";
	struct casfs_buf resp = CASFS_BUF_INIT;
	int r = -EOPNOTSUPP;
	for (enum pkg p = PKG_SNIX; p <= PKG_TVIX; p++) {
		struct casfs_error e;
		casfs_error_clear(&e);
		r = unary_in(c, p, family, method, req, req_len, &resp, &e);
		if (r == -EOPNOTSUPP)
			continue;
		if (r >= 0 || r == -ENOENT) {
			pthread_mutex_lock(&c->lock);
			c->pkg[family] = p;
			pthread_mutex_unlock(&c->lock);
			r = 0;
		} else if (err) {
			*err = e;
		}
		break;
	}
	casfs_buf_release(&resp);
	if (r == -EOPNOTSUPP)
		return casfs_error_set(err, r, "%s serves %s.v1 under neither snix nor tvix", c->target,
				       family_names[family]);
	return r;
}

int casfs_grpc_unary(struct casfs_grpc_client *c, enum casfs_grpc_family family,
		     const char *method, const uint8_t *req, size_t req_len,
		     struct casfs_buf *resp, struct casfs_error *err)
{
	enum pkg pkg;
	int r = package_of(c, family, &pkg, err);
	return r < 0 ? r : unary_in(c, pkg, family, method, req, req_len, resp, err);
}

/* ---- the client ------------------------------------------------------------- */

static int parse_target(struct casfs_grpc_client *c, const char *target, struct casfs_error *err)
{
	if (!strncmp(target, "unix:", 5)) {
		const char *path = target + 5;
		if (path[0] != '/' || strlen(path) >= sizeof(c->sun.sun_path))
			return casfs_error_set(err, -EINVAL,
					       "gRPC target %s: want unix:/ABSOLUTE/PATH (under %zu bytes)",
					       target, sizeof(c->sun.sun_path));
		c->is_unix = true;
		c->sun.sun_family = AF_UNIX;
		strcpy(c->sun.sun_path, path);
		return 0;
	}
	const char *colon = strrchr(target, ':');
	const char *host = target;
	size_t host_len = colon ? (size_t)(colon - target) : 0;
	if (host_len >= 2 && host[0] == '[' && host[host_len - 1] == ']')
		host++, host_len -= 2;
	if (!colon || host_len == 0 || !colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1))
		return casfs_error_set(err, -EINVAL, "gRPC target %s: want HOST:PORT or unix:/PATH",
				       target);
	c->host = strndup(host, host_len);
	c->port = strdup(colon + 1);
	return c->host && c->port ? 0 : -ENOMEM;
}

int casfs_grpc_client_new(const char *target, const struct casfs_grpc_client_options *opts,
			  struct casfs_grpc_client **ret, struct casfs_error *err)
{
	struct casfs_grpc_client *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	c->timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : CASFS_GRPC_DEFAULT_TIMEOUT_MS;
	int r = (c->target = strdup(target)) ? parse_target(c, target, err) : -ENOMEM;
	if (r >= 0 && opts && opts->wait_connect) {
		struct conn *cn = NULL;
		r = conn_new(c, &cn, err);
		if (r >= 0)
			conn_put(c, cn);
	}
	if (r < 0) {
		casfs_grpc_client_free(c);
		return r;
	}
	*ret = c;
	return 0;
}

void casfs_grpc_client_free(struct casfs_grpc_client *c)
{
	if (!c)
		return;
	while (c->idle) {
		struct conn *cn = c->idle;
		c->idle = cn->next;
		conn_close(cn);
	}
	pthread_mutex_destroy(&c->lock);
	free(c->target);
	free(c->host);
	free(c->port);
	free(c);
}

const char *casfs_grpc_client_target(const struct casfs_grpc_client *c)
{
	return c->target;
}
