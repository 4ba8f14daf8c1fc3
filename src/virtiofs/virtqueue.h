/* Guest memory and split virtqueues (VIRTIO 1.x, section 2.7), for the
 * vhost-user-fs backend.  Everything the guest wrote is hostile input.
 *
 * Guest memory is a set of regions QEMU hands over (vhost-user
 * SET_MEM_TABLE): each a mapping of a shared memory fd, known by its guest
 * physical address (descriptors use these) and by QEMU's own virtual
 * address (SET_VRING_ADDR uses these).  A translation succeeds only when
 * the whole range lies inside one region.
 *
 * A split ring of `num` entries (a power of two, at most 32768):
 *
 *   desc[num]   { le64 addr (GPA), le32 len, le16 flags (NEXT 1, WRITE 2,
 *                 INDIRECT 4), le16 next }
 *   avail       { le16 flags, le16 idx, le16 ring[num] }      (driver writes)
 *   used        { le16 flags, le16 idx, { le32 id, le32 len } ring[num] }
 *                                                              (device writes)
 *
 * A request is the chain from a head taken off avail->ring: readable
 * descriptors first (the FUSE request), then writable ones (room for the
 * reply).  casfs_vq_pop refuses, with -EBADMSG and a message, a chain that
 * is longer than `num` descriptors (a loop), names a descriptor index >=
 * num, points outside guest memory, has a readable descriptor after a
 * writable one, totals more than CASFS_VQ_MAX_REQUEST readable bytes or
 * more than CASFS_VQ_MAX_OUT writable descriptors, is longer than
 * UINT32_MAX bytes in all, or (INDIRECT is not offered) is indirect; and an
 * avail->idx that runs more than `num` ahead of what was taken.  The
 * readable bytes are copied out of guest memory before anyone parses
 * them; the writable ones stay as host pointers into guest memory, and
 * replies are copied into them bounded by their lengths.
 *
 * Threads: a queue is driven by one thread; guest memory is read-only
 * after setup (a new memory table means new queues). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "../basic/buf.h"
#include "../basic/error.h"

#define CASFS_VQ_MAX_REGIONS 8
#define CASFS_VQ_MAX_NUM 32768
/* A FUSE request with a 1 MiB write payload fits; we serve no writes. */
#define CASFS_VQ_MAX_REQUEST (1u << 20)
#define CASFS_VQ_MAX_OUT 256 /* writable descriptors per request */

struct casfs_guest_region {
	uint64_t gpa;      /* guest physical address of the start */
	uint64_t size;
	uint64_t uva;      /* QEMU's virtual address of the start */
	uint8_t *host;     /* our mapping of the start */
};

struct casfs_guest_mem {
	struct casfs_guest_region r[CASFS_VQ_MAX_REGIONS];
	unsigned n;
};

/* [addr, addr + len) as a host pointer, or NULL if it is not wholly inside
 * one region (or len overflows). */
void *casfs_guest_gpa(const struct casfs_guest_mem *m, uint64_t gpa, uint64_t len);
void *casfs_guest_uva(const struct casfs_guest_mem *m, uint64_t uva, uint64_t len);

struct casfs_vq {
	unsigned num;
	volatile uint8_t *desc, *avail, *used; /* host pointers into guest memory */
	uint16_t last_avail; /* next avail entry to take */
	uint16_t used_idx;   /* next used entry to write */
};

/* Set up a queue of `num` entries whose rings are at QEMU virtual
 * addresses desc/avail/used (SET_VRING_ADDR), starting at avail index
 * `base` (SET_VRING_BASE); used_idx starts at the used->idx in guest
 * memory (what the driver has seen: base on a fresh ring or one stopped
 * with nothing in flight).  -EINVAL (message in err) if num is not a power
 * of two in 1..CASFS_VQ_MAX_NUM or a ring is not wholly in guest memory or
 * not aligned as the spec requires (desc 16, avail 2, used 4 bytes).
 * Writes *q only on success. */
int casfs_vq_init(struct casfs_vq *q, const struct casfs_guest_mem *m, unsigned num,
		  uint64_t desc_uva, uint64_t avail_uva, uint64_t used_uva, uint16_t base,
		  struct casfs_error *err);

struct casfs_vq_req {
	uint16_t head;
	struct casfs_buf in;                  /* the readable bytes, copied out */
	struct iovec out[CASFS_VQ_MAX_OUT];   /* the writable descriptors */
	unsigned n_out;
	size_t out_len;                       /* their total length */
};

void casfs_vq_req_init(struct casfs_vq_req *r);
void casfs_vq_req_release(struct casfs_vq_req *r);

/* Take the next available request: 1 with *req filled (req->in replaced),
 * 0 if none is available, -EBADMSG for a malformed chain or index (the
 * queue is then unusable: the device must be reset; message in err; *req
 * is left empty and last_avail is not advanced), -ENOMEM.  The out
 * iovecs point into guest memory: valid while the memory table is. */
int casfs_vq_pop(struct casfs_vq *q, const struct casfs_guest_mem *m, struct casfs_vq_req *req,
		 struct casfs_error *err);

/* Copy `n` iovecs of reply into the request's writable descriptors, in
 * order: the number of bytes copied (less than the reply's length if it
 * does not fit: the caller then answers with an error instead). */
size_t casfs_vq_req_write(const struct casfs_vq_req *req, const struct iovec *iov, int n);

/* Put {head, len} on the used ring (release ordering: the guest sees the
 * reply bytes before the index).  The caller then signals the call fd. */
void casfs_vq_push(struct casfs_vq *q, uint16_t head, uint32_t len);
