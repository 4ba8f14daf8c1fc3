/* virtiofs glue: virtqueue requests <-> a libfuse session (virtiofs.h).
 *
 * Replies are synchronous: casfs's FUSE operations answer before they
 * return, on the thread that called fuse_session_process_buf, so the
 * custom writev finds its request in a thread-local `current` and answers
 * it.  A request libfuse did not answer (FORGET and friends) is put on the
 * used ring with no bytes. */
#include "virtiofs.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../basic/util.h"
#include "../fuse/fuse-internal.h"
#include "vhost-user.h"
#include "virtiofs-internal.h"

#include <linux/fuse.h>

/* The request being answered on this thread, and how its answer (already
 * in its writable descriptors) is handed back: `len` bytes, 0 for none. */
struct current {
	const struct casfs_vq_req *req;
	void (*complete)(struct current *c, size_t len);
	struct casfs_vu_dev *dev; /* for the virtqueue's complete */
	unsigned queue;
	size_t len;               /* for the tests' complete */
	bool replied;
};

static __thread struct current *current;

/* An error reply in place of one that does not fit the guest's room. */
static void reply_too_big(struct current *c, const struct fuse_out_header *orig)
{
	struct fuse_out_header h = *orig;
	h.len = sizeof(h);
	h.error = -EIO;
	struct iovec e = { &h, sizeof(h) };
	c->complete(c, casfs_vq_req_write(c->req, &e, 1));
}

/* libfuse's reply: into the request's writable descriptors. */
static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	(void)fd, (void)userdata;
	struct current *c = current;
	size_t total = 0;
	for (int i = 0; i < count; i++)
		total += iov[i].iov_len;
	if (!c || c->replied || count < 1 || iov[0].iov_len < sizeof(struct fuse_out_header)) {
		errno = EIO; /* no request waiting for this reply */
		return -1;
	}
	c->replied = true;
	if (total > c->req->out_len) { /* the guest gave too little room */
		struct fuse_out_header h;
		memcpy(&h, iov[0].iov_base, sizeof(h));
		reply_too_big(c, &h);
		return (ssize_t)total;
	}
	c->complete(c, casfs_vq_req_write(c->req, iov, count));
	return (ssize_t)total;
}

/* libfuse's reply by splice (reads from blob files): the header and the
 * data wait in a pipe, `fdin`, which we read straight into the guest's
 * buffers -- one copy, as virtiofsd's preadv into guest memory. */
static ssize_t io_splice_send(int fdin, off_t *offin, int fdout, off_t *offout, size_t len,
			      unsigned flags, void *userdata)
{
	(void)offin, (void)fdout, (void)offout, (void)flags, (void)userdata;
	struct current *c = current;
	if (!c || c->replied || len < sizeof(struct fuse_out_header)) {
		errno = EIO;
		return -1;
	}
	c->replied = true;
	const struct casfs_vq_req *req = c->req;
	if (len > req->out_len) {
		/* take it out of the pipe, answer with an error */
		uint8_t scratch[4096];
		struct fuse_out_header h;
		size_t got = 0;
		while (got < len) {
			ssize_t n = read(fdin, scratch, MIN(sizeof(scratch), len - got));
			if (n <= 0)
				break;
			if (got == 0 && (size_t)n >= sizeof(h))
				memcpy(&h, scratch, sizeof(h));
			got += (size_t)n;
		}
		if (got >= sizeof(h))
			reply_too_big(c, &h);
		else
			c->complete(c, 0);
		return (ssize_t)len;
	}
	struct iovec iov[CASFS_VQ_MAX_OUT];
	int n_iov = 0;
	size_t want = len;
	for (unsigned i = 0; i < req->n_out && want > 0; i++) {
		iov[n_iov] = req->out[i];
		iov[n_iov].iov_len = MIN(iov[n_iov].iov_len, want);
		want -= iov[n_iov].iov_len;
		n_iov++;
	}
	size_t got = 0;
	int at = 0;
	while (got < len) {
		ssize_t n = readv(fdin, iov + at, n_iov - at);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		while (at < n_iov && (size_t)n >= iov[at].iov_len)
			n -= (ssize_t)iov[at++].iov_len;
		if (at < n_iov) {
			iov[at].iov_base = (uint8_t *)iov[at].iov_base + n;
			iov[at].iov_len -= (size_t)n;
		}
	}
	c->complete(c, got);
	return got == len ? (ssize_t)len : -1;
}

/* Never used: requests come from the queues, not from reads. */
static ssize_t io_read(int fd, void *buf, size_t len, void *userdata)
{
	(void)fd, (void)buf, (void)len, (void)userdata;
	errno = ENOSYS;
	return -1;
}

static const struct fuse_custom_io custom_io = {
	.writev = io_writev,
	.read = io_read,
	.splice_send = io_splice_send,
};

/* A libfuse session whose I/O is ours, or NULL. */
static struct fuse_session *session_new(struct casfs_fuse *ctx)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	if (fuse_opt_add_arg(&args, "casfs") < 0)
		return NULL;
	struct fuse_session *se = fuse_session_new(&args, &casfs_fuse_ops, sizeof(casfs_fuse_ops), ctx);
	fuse_opt_free_args(&args);
	if (!se)
		return NULL;
	/* libfuse closes this fd when the session goes: give it one of its own */
	int efd = eventfd(0, EFD_CLOEXEC);
	if (efd < 0 || fuse_session_custom_io(se, &custom_io, efd) < 0) {
		if (efd >= 0)
			close(efd);
		fuse_session_destroy(se);
		return NULL;
	}
	return se;
}

/* The guest's FUSE connection: a session per mount.  A FUSE_INIT after the
 * first (the guest unmounted and mounts again) gets a fresh session, once
 * every other request is answered (the write lock). */
#define MAX_RETIRED 64

struct casfs_virtiofs_conn {
	struct casfs_fuse ctx;
	struct fuse_session *se;
	/* Sessions of earlier mounts, destroyed only once our threads are
	 * gone: libfuse keeps per-thread buffers under a key of the session,
	 * and a key deleted under living threads never frees theirs. */
	struct fuse_session *retired[MAX_RETIRED];
	unsigned n_retired;
	bool inited;
	pthread_rwlock_t lock;
};

/* libfuse takes names in requests to be NUL-terminated, as the kernel
 * sends them; a guest need not.  So it gets the request followed by zeros:
 * any name ends inside our buffer (a missing NUL reads as a shorter name,
 * a second name as an empty one). */
#define NAME_PAD 4096

static uint8_t *padded_copy(const uint8_t *p, size_t len)
{
	uint8_t *copy = malloc(len + NAME_PAD);
	if (copy) {
		memcpy(copy, p, len);
		memset(copy + len, 0, NAME_PAD);
	}
	return copy;
}

/* libfuse also believes BATCH_FORGET's count: the entries must be there. */
static bool counts_fit(const struct casfs_vq_req *req, const struct fuse_in_header *in)
{
	if (in->opcode != FUSE_BATCH_FORGET)
		return true;
	struct fuse_batch_forget_in b;
	if (req->in.len < sizeof(*in) + sizeof(b))
		return false;
	memcpy(&b, req->in.data + sizeof(*in), sizeof(b));
	return b.count <= (req->in.len - sizeof(*in) - sizeof(b)) / sizeof(struct fuse_forget_one);
}

/* Answer one request through libfuse; c->complete gets the answer. */
static void answer(struct casfs_virtiofs_conn *cn, struct current *c)
{
	const struct casfs_vq_req *req = c->req;
	struct fuse_in_header in;
	if (req->in.len >= sizeof(in)) {
		memcpy(&in, req->in.data, sizeof(in));
		/* INTERRUPT needs no answer and our operations are short;
		 * NOTIFY_REPLY answers notifications we never send: both are
		 * dropped here (libfuse keeps one it cannot match for ever, so a
		 * guest could fill memory with them). */
		bool dropped = in.opcode == FUSE_INTERRUPT || in.opcode == FUSE_NOTIFY_REPLY;
		if (in.len == req->in.len && !dropped && counts_fit(req, &in)) {
			bool init = in.opcode == FUSE_INIT;
			if (init)
				pthread_rwlock_wrlock(&cn->lock);
			else
				pthread_rwlock_rdlock(&cn->lock);
			if (init && cn->inited) {
				struct fuse_session *se = cn->n_retired < MAX_RETIRED ? session_new(&cn->ctx) : NULL;
				if (se) {
					cn->retired[cn->n_retired++] = cn->se;
					cn->se = se;
					/* what the last mount left open */
					casfs_fuse_handles_release(&cn->ctx.handles, cn->ctx.fs);
					casfs_fuse_handles_init(&cn->ctx.handles);
				}
			}
			if (init)
				cn->inited = true; /* under the write lock */
			current = c;
			uint8_t *copy = padded_copy(req->in.data, req->in.len);
			if (copy) {
				struct fuse_buf buf = { .size = req->in.len, .mem = copy };
				fuse_session_process_buf(cn->se, &buf);
				free(copy);
			}
			current = NULL;
			pthread_rwlock_unlock(&cn->lock);
		}
	}
	/* malformed (too short, lengths that disagree) or no reply due */
	if (!c->replied)
		c->complete(c, 0);
}

static void complete_on_ring(struct current *c, size_t len)
{
	casfs_vu_complete(c->dev, c->queue, c->req, len);
}

static void process(struct casfs_virtiofs_conn *cn, struct casfs_vu_dev *dev, unsigned queue,
		    const struct casfs_vq_req *req)
{
	struct current c = { .req = req, .complete = complete_on_ring, .dev = dev, .queue = queue };
	answer(cn, &c);
}

static void complete_here(struct current *c, size_t len)
{
	c->len = len;
}

int casfs_virtiofs_conn_new(struct casfs_fs *fs, struct casfs_virtiofs_conn **ret)
{
	struct casfs_virtiofs_conn *cn = calloc(1, sizeof(*cn));
	if (!cn)
		return -ENOMEM;
	cn->ctx.fs = fs;
	casfs_fuse_handles_init(&cn->ctx.handles);
	if (!(cn->se = session_new(&cn->ctx))) {
		casfs_fuse_handles_release(&cn->ctx.handles, fs);
		free(cn);
		return -ENOMEM;
	}
	pthread_rwlock_init(&cn->lock, NULL);
	*ret = cn;
	return 0;
}

void casfs_virtiofs_conn_free(struct casfs_virtiofs_conn *cn)
{
	if (!cn)
		return;
	fuse_session_destroy(cn->se);
	for (unsigned i = 0; i < cn->n_retired; i++)
		fuse_session_destroy(cn->retired[i]);
	casfs_fuse_handles_release(&cn->ctx.handles, cn->ctx.fs);
	pthread_rwlock_destroy(&cn->lock);
	free(cn);
}

size_t casfs_virtiofs_conn_answer(struct casfs_virtiofs_conn *cn, const struct casfs_vq_req *req)
{
	struct current c = { .req = req, .complete = complete_here };
	answer(cn, &c);
	return c.len;
}

/* Workers for the request queues: a queue's thread takes requests off the
 * ring and queues copies here; replies then come in any order (the used
 * ring allows it).  hiprio requests (forgets) are handled on the spot. */
struct job {
	struct job *next;
	struct casfs_vu_dev *dev;
	unsigned queue;
	struct casfs_vq_req req;
};

struct pool {
	struct casfs_virtiofs_conn *cn;
	pthread_mutex_t lock;
	pthread_cond_t work, idle;
	struct job *head, *tail;
	unsigned inflight[CASFS_VU_MAX_QUEUES]; /* queued or being answered */
	bool stop;
	pthread_t threads[CASFS_VIRTIOFS_MAX_THREADS];
	unsigned n;
};

static void *worker(void *p)
{
	struct pool *pl = p;
	pthread_mutex_lock(&pl->lock);
	for (;;) {
		while (!pl->head && !pl->stop)
			pthread_cond_wait(&pl->work, &pl->lock);
		if (!pl->head)
			break;
		struct job *j = pl->head;
		if (!(pl->head = j->next))
			pl->tail = NULL;
		pthread_mutex_unlock(&pl->lock);
		process(pl->cn, j->dev, j->queue, &j->req);
		pthread_mutex_lock(&pl->lock);
		if (--pl->inflight[j->queue] == 0)
			pthread_cond_broadcast(&pl->idle);
		casfs_vq_req_release(&j->req);
		free(j);
	}
	pthread_mutex_unlock(&pl->lock);
	return NULL;
}

static void on_request(void *userdata, struct casfs_vu_dev *dev, unsigned queue,
		       const struct casfs_vq_req *req)
{
	struct pool *pl = userdata;
	struct job *j = queue > 0 && pl->n ? malloc(sizeof(*j)) : NULL;
	if (j) {
		j->dev = dev;
		j->queue = queue;
		j->next = NULL;
		j->req = *req; /* the iovecs; the bytes are copied below */
		casfs_buf_init(&j->req.in);
		if (casfs_buf_append(&j->req.in, req->in.data, req->in.len) < 0) {
			free(j);
			j = NULL;
		}
	}
	if (!j) { /* hiprio, no workers, or no memory: here and now */
		process(pl->cn, dev, queue, req);
		return;
	}
	pthread_mutex_lock(&pl->lock);
	pl->inflight[queue]++;
	if (pl->tail)
		pl->tail->next = j;
	else
		pl->head = j;
	pl->tail = j;
	pthread_cond_signal(&pl->work);
	pthread_mutex_unlock(&pl->lock);
}

static void on_drain(void *userdata, unsigned queue)
{
	struct pool *pl = userdata;
	pthread_mutex_lock(&pl->lock);
	while (pl->inflight[queue])
		pthread_cond_wait(&pl->idle, &pl->lock);
	pthread_mutex_unlock(&pl->lock);
}

static void pool_stop(struct pool *pl)
{
	pthread_mutex_lock(&pl->lock);
	pl->stop = true;
	pthread_cond_broadcast(&pl->work);
	pthread_mutex_unlock(&pl->lock);
	for (unsigned i = 0; i < pl->n; i++)
		pthread_join(pl->threads[i], NULL);
	pthread_cond_destroy(&pl->work);
	pthread_cond_destroy(&pl->idle);
	pthread_mutex_destroy(&pl->lock);
}

int casfs_virtiofs_listen(const struct casfs_virtiofs_options *o, int *ret_fd,
			  struct casfs_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(o->socket_path) >= sizeof(sa.sun_path))
		return casfs_error_set(err, -ENAMETOOLONG, "socket path '%s' is too long", o->socket_path);
	strcpy(sa.sun_path, o->socket_path);
	struct stat st;
	if (lstat(o->socket_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return casfs_error_set(err, -EEXIST, "'%s' exists and is not a socket",
					       o->socket_path);
		unlink(o->socket_path); /* a stale one */
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return casfs_error_set(err, casfs_neg_errno(), "socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
		int r = casfs_neg_errno();
		close(fd);
		return casfs_error_set(err, r, "cannot listen on '%s': %s", o->socket_path, strerror(-r));
	}
	*ret_fd = fd;
	return 0;
}

/* One front-end, on sessions of its own (FUSE_INIT starts each mount). */
static int serve_one(struct casfs_fs *fs, int cfd, const struct casfs_virtiofs_options *o,
		     struct casfs_error *err)
{
	struct casfs_virtiofs_conn *cn = NULL;
	if (casfs_virtiofs_conn_new(fs, &cn) < 0)
		return casfs_error_set(err, -ENOMEM, "cannot set up a FUSE session");
	struct pool pl = { .cn = cn };
	pthread_mutex_init(&pl.lock, NULL);
	pthread_cond_init(&pl.work, NULL);
	pthread_cond_init(&pl.idle, NULL);
	unsigned want = MIN(o->threads ? o->threads : CASFS_VIRTIOFS_DEFAULT_THREADS,
			    (unsigned)CASFS_VIRTIOFS_MAX_THREADS);
	while (pl.n < want && pthread_create(&pl.threads[pl.n], NULL, worker, &pl) == 0)
		pl.n++;
	struct casfs_vu_options vo = {
		.n_queues = 1 + (o->request_queues ? o->request_queues : 1),
		.handler = on_request,
		.drain = on_drain,
		.userdata = &pl,
	};
	int r = casfs_vu_serve(cfd, &vo, err);
	pool_stop(&pl);
	casfs_virtiofs_conn_free(cn);
	return r;
}

int casfs_virtiofs_serve(struct casfs_fs *fs, int lfd, const struct casfs_virtiofs_options *o,
			 struct casfs_error *err)
{
	if (o->ready)
		o->ready(o->userdata, o->socket_path);
	int r;
	do {
		int cfd;
		do
			cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		while (cfd < 0 && errno == EINTR);
		if (cfd < 0)
			return casfs_error_set(err, casfs_neg_errno(), "accept: %s", strerror(errno));
		r = serve_one(fs, cfd, o, err);
		close(cfd);
	} while (r >= 0 && o->keep_listening);
	return r;
}
