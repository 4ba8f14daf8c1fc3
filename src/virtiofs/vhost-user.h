/* A vhost-user device backend (QEMU docs/interop/vhost-user.rst), the part
 * a vhost-user-fs device needs: QEMU (the front-end) connects to our unix
 * socket and sets the device up with messages
 *
 *   header  u32 request, u32 flags (bits 0-1 version 1, bit 2 reply,
 *           bit 3 need_reply), u32 size; then `size` payload bytes; file
 *           descriptors ride along as SCM_RIGHTS
 *
 * of which we answer
 *
 *   1 GET_FEATURES -> VERSION_1 | PROTOCOL_FEATURES; 2 SET_FEATURES;
 *   3 SET_OWNER; 4 RESET_OWNER; 5 SET_MEM_TABLE (regions and their fds,
 *   mapped here); 8 SET_VRING_NUM; 9 SET_VRING_ADDR; 10 SET_VRING_BASE;
 *   11 GET_VRING_BASE (stops the ring, answers where it stopped);
 *   12/13/14 SET_VRING_KICK/CALL/ERR (an fd, or bit 8 "no fd");
 *   15 GET_PROTOCOL_FEATURES -> MQ | REPLY_ACK; 16 SET_PROTOCOL_FEATURES;
 *   17 GET_QUEUE_NUM; 18 SET_VRING_ENABLE
 *
 * and refuse the rest (a nack when a reply was asked for).  With
 * PROTOCOL_FEATURES negotiated a ring starts disabled; it runs once it is
 * enabled and has its kick fd, each on its own thread, which waits for
 * kicks, takes the requests off the ring (virtqueue.h: malformed chains
 * stop the queue, logged) and hands each to the handler, then signals the
 * call fd.  The handler answers every request exactly once, with
 * casfs_vu_reply (no bytes for requests that get no reply), on its
 * queue's thread or, with a `drain` hook, on any thread.
 *
 * Thread safety: one control thread (casfs_vu_serve), one thread per
 * running queue; the handler runs on its queue's thread. */
#pragma once

#include <stdbool.h>
#include <sys/uio.h>

#include "../basic/error.h"
#include "virtqueue.h"

#define CASFS_VU_MAX_QUEUES 8

struct casfs_vu_dev;

typedef void (*casfs_vu_handler)(void *userdata, struct casfs_vu_dev *dev, unsigned queue,
				 const struct casfs_vq_req *req);

struct casfs_vu_options {
	unsigned n_queues; /* GET_QUEUE_NUM; at most CASFS_VU_MAX_QUEUES */
	casfs_vu_handler handler;
	void *userdata;
	/* one line to log (no newline); NULL: stderr */
	void (*log)(void *userdata, const char *line);
	/* May be NULL.  Called when `queue` stops (its thread is gone), before
	 * the front-end is told where it stopped: a handler that answers on
	 * other threads waits here until every request it took is answered. */
	void (*drain)(void *userdata, unsigned queue);
};

/* Serve one front-end on the connected socket `fd` until it disconnects:
 * 0 then, or -errno (-EPROTO for a message we cannot make sense of, named
 * in err).  Stops every queue before returning; does not close fd. */
int casfs_vu_serve(int fd, const struct casfs_vu_options *o, struct casfs_error *err);

/* Answer `req` of `queue`: copy the reply (`n` iovecs, may be 0) into its
 * writable descriptors and put it on the used ring.  A reply larger than
 * the room the guest gave is cut short (the caller checks the room first:
 * casfs_vq_req.out_len). */
void casfs_vu_reply(struct casfs_vu_dev *dev, unsigned queue, const struct casfs_vq_req *req,
		    const struct iovec *iov, int n);
/* The same for a reply of `len` bytes the caller has already written
 * into the request's writable descriptors itself. */
void casfs_vu_complete(struct casfs_vu_dev *dev, unsigned queue, const struct casfs_vq_req *req,
		       size_t len);
