/* The vhost-user back-end (vhost-user.h).
 *
 * Control: one message at a time off the socket, bounded (payload at most
 * MAX_PAYLOAD, at most MAX_FDS descriptors), checked for its size before
 * its payload is read as a struct.
 *
 * A queue:  configured (NUM, ADDR, BASE, CALL) --KICK + enabled--> running
 *           (its thread) --GET_VRING_BASE / RESET_OWNER / new memory table /
 *           disconnect--> stopped (thread joined, kick fd dropped). */
#include "vhost-user.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../basic/util.h"

enum {
	VU_GET_FEATURES = 1,
	VU_SET_FEATURES = 2,
	VU_SET_OWNER = 3,
	VU_RESET_OWNER = 4,
	VU_SET_MEM_TABLE = 5,
	VU_SET_VRING_NUM = 8,
	VU_SET_VRING_ADDR = 9,
	VU_SET_VRING_BASE = 10,
	VU_GET_VRING_BASE = 11,
	VU_SET_VRING_KICK = 12,
	VU_SET_VRING_CALL = 13,
	VU_SET_VRING_ERR = 14,
	VU_GET_PROTOCOL_FEATURES = 15,
	VU_SET_PROTOCOL_FEATURES = 16,
	VU_GET_QUEUE_NUM = 17,
	VU_SET_VRING_ENABLE = 18,
};

#define FLAG_VERSION 0x1u
#define FLAG_REPLY 0x4u
#define FLAG_NEED_REPLY 0x8u
#define F_VERSION_1 (UINT64_C(1) << 32)
#define F_PROTOCOL_FEATURES (UINT64_C(1) << 30)
#define PF_MQ (UINT64_C(1) << 0)
#define PF_REPLY_ACK (UINT64_C(1) << 3)
#define VRING_NOFD 0x100u
#define VRING_IDX_MASK 0xffu
#define MAX_PAYLOAD 4096
#define MAX_FDS 8

struct msg {
	uint32_t request, flags, size;
	uint8_t payload[MAX_PAYLOAD];
	int fds[MAX_FDS];
	unsigned n_fds;
};

struct queue {
	struct casfs_vu_dev *dev;
	unsigned index;
	unsigned num;
	uint64_t desc, used, avail;
	uint16_t base;
	int kick_fd, call_fd, stop_fd;
	bool enabled, running, broken;
	pthread_t thread;
	pthread_mutex_t push_lock;
	struct casfs_vq vq;
};

struct casfs_vu_dev {
	const struct casfs_vu_options *o;
	uint64_t features, protocol_features;
	struct casfs_guest_mem mem;
	void *maps[CASFS_VQ_MAX_REGIONS];
	size_t map_len[CASFS_VQ_MAX_REGIONS];
	struct queue q[CASFS_VU_MAX_QUEUES];
};

static void logf_(struct casfs_vu_dev *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(struct casfs_vu_dev *d, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (d->o->log)
		d->o->log(d->o->userdata, line);
	else
		fprintf(stderr, "casfs virtiofs: %s\n", line);
}

/* ---- queues ------------------------------------------------------------------- */

void casfs_vu_reply(struct casfs_vu_dev *dev, unsigned queue, const struct casfs_vq_req *req,
		    const struct iovec *iov, int n)
{
	casfs_vu_complete(dev, queue, req, n > 0 ? casfs_vq_req_write(req, iov, n) : 0);
}

void casfs_vu_complete(struct casfs_vu_dev *dev, unsigned queue, const struct casfs_vq_req *req,
		       size_t len)
{
	struct queue *q = &dev->q[queue];
	pthread_mutex_lock(&q->push_lock);
	casfs_vq_push(&q->vq, req->head, (uint32_t)len);
	pthread_mutex_unlock(&q->push_lock);
	if (q->call_fd >= 0)
		eventfd_write(q->call_fd, 1);
}

static void *queue_thread(void *p)
{
	struct queue *q = p;
	struct casfs_vu_dev *d = q->dev;
	struct casfs_vq_req req;
	casfs_vq_req_init(&req);
	for (;;) {
		struct pollfd pf[2] = { { .fd = q->kick_fd, .events = POLLIN },
					{ .fd = q->stop_fd, .events = POLLIN } };
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[1].revents)
			break;
		eventfd_t v;
		if (eventfd_read(q->kick_fd, &v) < 0 && errno != EAGAIN)
			break;
		while (!q->broken) {
			struct casfs_error err = { 0 };
			/* Taken under the lock replies are pushed under: a request
			 * the guest sent after seeing a reply is handled after that
			 * reply's writes (which ThreadSanitizer then sees too). */
			pthread_mutex_lock(&q->push_lock);
			int r = casfs_vq_pop(&q->vq, &d->mem, &req, &err);
			pthread_mutex_unlock(&q->push_lock);
			if (r == 0)
				break;
			if (r < 0) {
				/* no way to trust this ring again: stop serving it */
				logf_(d, "queue %u: %s; the queue is stopped", q->index,
				      casfs_error_message(&err, r));
				q->broken = true;
				break;
			}
			d->o->handler(d->o->userdata, d, q->index, &req);
		}
	}
	casfs_vq_req_release(&req);
	return NULL;
}

/* Stop the queue's thread (if it runs), remembering where it got to. */
static void queue_pause(struct queue *q)
{
	if (!q->running)
		return;
	eventfd_write(q->stop_fd, 1);
	pthread_join(q->thread, NULL);
	eventfd_t v;
	eventfd_read(q->stop_fd, &v);
	q->running = false;
	if (q->dev->o->drain)
		q->dev->o->drain(q->dev->o->userdata, q->index);
	q->base = q->vq.last_avail;
}

/* Stop it for good: it starts again only with a new kick fd. */
static void queue_stop(struct queue *q)
{
	queue_pause(q);
	if (q->kick_fd >= 0)
		close(q->kick_fd);
	q->kick_fd = -1;
}

/* Start the queue's thread if it has everything it needs. */
static int queue_maybe_start(struct casfs_vu_dev *d, struct queue *q, struct casfs_error *err)
{
	bool enabled = q->enabled || !(d->features & F_PROTOCOL_FEATURES);
	if (q->running || q->kick_fd < 0 || !enabled || !q->num || !d->mem.n)
		return 0;
	int r = casfs_vq_init(&q->vq, &d->mem, q->num, q->desc, q->avail, q->used, q->base, err);
	if (r < 0)
		return r;
	q->broken = false;
	if ((r = pthread_create(&q->thread, NULL, queue_thread, q)) != 0)
		return casfs_error_set(err, -r, "cannot start queue %u: %s", q->index, strerror(r));
	q->running = true;
	return 0;
}

static void stop_all(struct casfs_vu_dev *d, bool for_good)
{
	for (unsigned i = 0; i < d->o->n_queues; i++)
		for_good ? queue_stop(&d->q[i]) : queue_pause(&d->q[i]);
}

static void unmap_all(struct casfs_vu_dev *d)
{
	for (unsigned i = 0; i < d->mem.n; i++)
		munmap(d->maps[i], d->map_len[i]);
	d->mem.n = 0;
}

/* ---- messages ------------------------------------------------------------------- */

static void close_fds(struct msg *m)
{
	for (unsigned i = 0; i < m->n_fds; i++)
		if (m->fds[i] >= 0)
			close(m->fds[i]);
	m->n_fds = 0;
}

/* 1 with a message, 0 at a clean end of the connection, -errno. */
static int read_msg(int fd, struct msg *m, struct casfs_error *err)
{
	struct iovec iov = { m, 12 };
	union {
		char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
		struct cmsghdr align;
	} c;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf,
			     .msg_controllen = sizeof(c.buf) };
	m->n_fds = 0;
	ssize_t n;
	do
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_WAITALL);
	while (n < 0 && errno == EINTR);
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k && m->n_fds < MAX_FDS; i++)
				memcpy(&m->fds[m->n_fds++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
		}
	if (n == 0)
		return 0;
	if (n < 0)
		return casfs_error_set(err, casfs_neg_errno(), "reading from the front-end: %s",
				       strerror(errno));
	if (n != 12 || (mh.msg_flags & MSG_CTRUNC)) {
		close_fds(m);
		return casfs_error_set(err, -EPROTO, "truncated vhost-user message header");
	}
	if (m->size > MAX_PAYLOAD) {
		close_fds(m);
		return casfs_error_set(err, -EPROTO, "vhost-user message %" PRIu32 " of %" PRIu32
				       " bytes, over %d", m->request, m->size, MAX_PAYLOAD);
	}
	size_t got = 0;
	while (got < m->size) {
		n = recv(fd, m->payload + got, m->size - got, MSG_WAITALL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close_fds(m);
			return casfs_error_set(err, -EPROTO, "vhost-user message %" PRIu32 " cut short",
					       m->request);
		}
		got += (size_t)n;
	}
	return 1;
}

static int send_reply(int fd, const struct msg *m, const void *payload, uint32_t size)
{
	struct {
		uint32_t request, flags, size;
		uint8_t payload[64];
	} r = { m->request, FLAG_VERSION | FLAG_REPLY, size, { 0 } };
	memcpy(r.payload, payload, size);
	size_t len = 12 + size;
	ssize_t n = send(fd, &r, len, MSG_NOSIGNAL);
	return n == (ssize_t)len ? 0 : -EPIPE;
}

static int reply_u64(int fd, const struct msg *m, uint64_t v)
{
	return send_reply(fd, m, &v, sizeof(v));
}

struct vring_state {
	uint32_t index, num;
};

struct vring_addr {
	uint32_t index, flags;
	uint64_t desc, used, avail, log;
};

struct mem_region {
	uint64_t gpa, size, uva, mmap_offset;
};

static int need(const struct msg *m, uint32_t size, struct casfs_error *err)
{
	if (m->size < size)
		return casfs_error_set(err, -EPROTO, "vhost-user message %" PRIu32 " of %" PRIu32
				       " bytes, want %" PRIu32, m->request, m->size, size);
	return 0;
}

static struct queue *queue_of(struct casfs_vu_dev *d, uint32_t index, struct casfs_error *err)
{
	if (index >= d->o->n_queues) {
		casfs_error_set(err, -EPROTO, "vhost-user names queue %" PRIu32 " of %u", index,
				d->o->n_queues);
		return NULL;
	}
	return &d->q[index];
}

static int set_mem_table(struct casfs_vu_dev *d, struct msg *m, struct casfs_error *err)
{
	int r = need(m, 8, err);
	uint32_t n = 0;
	if (r >= 0)
		memcpy(&n, m->payload, 4);
	if (r >= 0 && (n > CASFS_VQ_MAX_REGIONS || n != m->n_fds))
		r = casfs_error_set(err, -EPROTO, "memory table of %" PRIu32 " regions with %u fds", n,
				    m->n_fds);
	if (r >= 0)
		r = need(m, 8 + n * (uint32_t)sizeof(struct mem_region), err);
	if (r < 0)
		return r;
	stop_all(d, false);
	unmap_all(d);
	for (uint32_t i = 0; i < n; i++) {
		struct mem_region mr;
		memcpy(&mr, m->payload + 8 + i * sizeof(mr), sizeof(mr));
		size_t len = (size_t)(mr.size + mr.mmap_offset);
		if (mr.size == 0 || len < mr.size) {
			unmap_all(d);
			return casfs_error_set(err, -EPROTO, "memory region %" PRIu32 " has a bad size", i);
		}
		void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, m->fds[i], 0);
		if (p == MAP_FAILED) {
			r = casfs_neg_errno();
			unmap_all(d);
			return casfs_error_set(err, r, "cannot map guest memory region %" PRIu32 ": %s", i,
					       strerror(-r));
		}
		d->maps[i] = p;
		d->map_len[i] = len;
		d->mem.r[i] = (struct casfs_guest_region){ .gpa = mr.gpa, .size = mr.size, .uva = mr.uva,
							  .host = (uint8_t *)p + mr.mmap_offset };
		d->mem.n = i + 1;
	}
	close_fds(m);
	for (unsigned i = 0; i < d->o->n_queues; i++)
		if ((r = queue_maybe_start(d, &d->q[i], err)) < 0)
			return r;
	return 0;
}

/* KICK/CALL/ERR: u64 index | VRING_NOFD, and maybe an fd. */
static int set_vring_fd(struct casfs_vu_dev *d, struct msg *m, struct casfs_error *err)
{
	int r = need(m, 8, err);
	uint64_t v = 0;
	if (r >= 0)
		memcpy(&v, m->payload, 8);
	struct queue *q = r >= 0 ? queue_of(d, (uint32_t)(v & VRING_IDX_MASK), err) : NULL;
	if (!q)
		return r < 0 ? r : -EPROTO;
	int fd = -1;
	if (!(v & VRING_NOFD)) {
		if (m->n_fds != 1)
			return casfs_error_set(err, -EPROTO, "vring fd message without an fd");
		fd = m->fds[0];
		m->n_fds = 0;
	}
	if (m->request == VU_SET_VRING_KICK) {
		queue_stop(q);
		q->kick_fd = fd;
		return queue_maybe_start(d, q, err);
	}
	if (m->request == VU_SET_VRING_CALL) {
		queue_pause(q); /* its thread signals through call_fd */
		if (q->call_fd >= 0)
			close(q->call_fd);
		q->call_fd = fd;
		return queue_maybe_start(d, q, err);
	}
	if (fd >= 0)
		close(fd); /* ERR: we report nothing through it */
	return 0;
}

/* Handle one message: 0 (reply sent if one was due), or -errno. */
static int handle(struct casfs_vu_dev *d, int fd, struct msg *m, struct casfs_error *err)
{
	struct vring_state vs = { 0 };
	struct vring_addr va;
	struct queue *q;
	bool replied = false;
	int r = 0;
	switch (m->request) {
	case VU_GET_FEATURES:
		r = reply_u64(fd, m, F_VERSION_1 | F_PROTOCOL_FEATURES);
		replied = true;
		break;
	case VU_SET_FEATURES:
		if ((r = need(m, 8, err)) >= 0)
			memcpy(&d->features, m->payload, 8);
		break;
	case VU_GET_PROTOCOL_FEATURES:
		r = reply_u64(fd, m, PF_MQ | PF_REPLY_ACK);
		replied = true;
		break;
	case VU_SET_PROTOCOL_FEATURES:
		if ((r = need(m, 8, err)) >= 0)
			memcpy(&d->protocol_features, m->payload, 8);
		break;
	case VU_GET_QUEUE_NUM:
		r = reply_u64(fd, m, d->o->n_queues);
		replied = true;
		break;
	case VU_SET_OWNER:
		break;
	case VU_RESET_OWNER:
		stop_all(d, true);
		break;
	case VU_SET_MEM_TABLE:
		r = set_mem_table(d, m, err);
		break;
	case VU_SET_VRING_NUM:
	case VU_SET_VRING_BASE:
	case VU_SET_VRING_ENABLE:
	case VU_GET_VRING_BASE:
		if ((r = need(m, sizeof(vs), err)) < 0)
			break;
		memcpy(&vs, m->payload, sizeof(vs));
		if (!(q = queue_of(d, vs.index, err))) {
			r = -EPROTO;
			break;
		}
		if (m->request == VU_SET_VRING_NUM) {
			if (vs.num == 0 || vs.num > CASFS_VQ_MAX_NUM || (vs.num & (vs.num - 1)))
				r = casfs_error_set(err, -EPROTO, "queue size %" PRIu32, vs.num);
			else
				q->num = vs.num;
		} else if (m->request == VU_SET_VRING_BASE) {
			q->base = (uint16_t)vs.num;
		} else if (m->request == VU_SET_VRING_ENABLE) {
			q->enabled = vs.num != 0;
			if (q->enabled)
				r = queue_maybe_start(d, q, err);
			else
				queue_pause(q);
		} else {
			queue_stop(q);
			vs.num = q->base;
			r = send_reply(fd, m, &vs, sizeof(vs));
			replied = true;
		}
		break;
	case VU_SET_VRING_ADDR:
		if ((r = need(m, sizeof(va), err)) < 0)
			break;
		memcpy(&va, m->payload, sizeof(va));
		if (!(q = queue_of(d, va.index, err))) {
			r = -EPROTO;
			break;
		}
		q->desc = va.desc;
		q->used = va.used;
		q->avail = va.avail;
		break;
	case VU_SET_VRING_KICK:
	case VU_SET_VRING_CALL:
	case VU_SET_VRING_ERR:
		r = set_vring_fd(d, m, err);
		break;
	default:
		logf_(d, "vhost-user request %" PRIu32 " not supported", m->request);
		r = -EOPNOTSUPP;
		break;
	}
	close_fds(m);
	if (!replied && (m->flags & FLAG_NEED_REPLY) && (d->protocol_features & PF_REPLY_ACK)) {
		int s = reply_u64(fd, m, r < 0 ? 1 : 0);
		if (s < 0)
			return s;
		if (r == -EOPNOTSUPP)
			r = 0; /* nacked: the front-end knows */
	}
	if (r == -EOPNOTSUPP)
		r = 0; /* unknown and no reply asked: ignored, logged */
	return r;
}

int casfs_vu_serve(int fd, const struct casfs_vu_options *o, struct casfs_error *err)
{
	if (o->n_queues == 0 || o->n_queues > CASFS_VU_MAX_QUEUES)
		return casfs_error_set(err, -EINVAL, "%u queues", o->n_queues);
	struct casfs_vu_dev *d = calloc(1, sizeof(*d));
	struct msg *m = malloc(sizeof(*m));
	int r = d && m ? 0 : -ENOMEM;
	if (d) {
		d->o = o;
		for (unsigned i = 0; i < o->n_queues; i++) {
			struct queue *q = &d->q[i];
			q->dev = d;
			q->index = i;
			q->kick_fd = q->call_fd = -1;
			pthread_mutex_init(&q->push_lock, NULL);
			q->stop_fd = eventfd(0, EFD_CLOEXEC);
			if (q->stop_fd < 0)
				r = casfs_neg_errno();
		}
	}
	while (r >= 0) {
		r = read_msg(fd, m, err);
		if (r <= 0)
			break;
		r = handle(d, fd, m, err);
	}
	if (d) {
		stop_all(d, true);
		unmap_all(d);
		for (unsigned i = 0; i < o->n_queues; i++) {
			if (d->q[i].call_fd >= 0)
				close(d->q[i].call_fd);
			if (d->q[i].stop_fd >= 0)
				close(d->q[i].stop_fd);
			pthread_mutex_destroy(&d->q[i].push_lock);
		}
	}
	free(m);
	free(d);
	return r;
}
