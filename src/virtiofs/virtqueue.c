/* Split virtqueues over guest memory (see virtqueue.h for the layout).
 *
 * Shared memory with a hostile writer: every ring field and descriptor is
 * read exactly once, through a volatile pointer, into a local; only the
 * local is checked and used, so a guest changing an entry after we looked
 * at it cannot make us use a value we did not check.
 *
 * Ordering (VIRTIO 1.x 2.7.13 and 2.7.14): the driver fills descriptors
 * and avail->ring, then publishes avail->idx with a release barrier; we
 * load avail->idx with acquire so what it covers is visible.  We write the
 * reply bytes and the used element, then publish used->idx with release,
 * so the driver never sees an index ahead of its element.
 *
 * A pop:
 *
 *   avail->idx ──(more than num ahead: -EBADMSG)──┐
 *      │ == last_avail: 0                          │
 *      ▼                                           ▼
 *   head = avail->ring[last_avail % num] ──(>= num)── -EBADMSG
 *      │
 *      ▼
 *   descriptor i ── count > num, INDIRECT, outside memory, readable after
 *      │            writable, totals too large ── -EBADMSG
 *      │ NEXT: i = next (>= num: -EBADMSG)
 *      ▼ no NEXT
 *   1, last_avail++ */
#include "virtqueue.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/virtio_ring.h>
#include <string.h>

#include "../basic/util.h"

/* Ring layout offsets, from struct vring_desc / vring_avail / vring_used. */
#define DESC_SIZE sizeof(struct vring_desc)            /* 16 */
#define AVAIL_RING_OFF offsetof(struct vring_avail, ring) /* 4 */
#define USED_RING_OFF offsetof(struct vring_used, ring)   /* 4 */
#define USED_ELEM_SIZE sizeof(struct vring_used_elem)  /* 8 */

_Static_assert(sizeof(struct vring_desc) == 16, "vring_desc layout");
_Static_assert(sizeof(struct vring_used_elem) == 8, "vring_used_elem layout");
_Static_assert(offsetof(struct vring_avail, idx) == 2, "vring_avail layout");
_Static_assert(offsetof(struct vring_used, idx) == 2, "vring_used layout");

static void *guest_lookup(const struct casfs_guest_mem *m, uint64_t addr, uint64_t len, bool uva)
{
	/* [addr, addr + len) must not wrap past 2^64 (ending exactly at 2^64
	 * is fine); addr + len itself is never computed. */
	if (len > 0 && addr > UINT64_MAX - (len - 1))
		return NULL;
	unsigned n = MIN(m->n, (unsigned)CASFS_VQ_MAX_REGIONS);
	for (unsigned i = 0; i < n; i++) {
		const struct casfs_guest_region *r = &m->r[i];
		uint64_t start = uva ? r->uva : r->gpa;
		if (!r->host || addr < start)
			continue;
		uint64_t off = addr - start;
		if (off <= r->size && len <= r->size - off)
			return r->host + off;
	}
	return NULL;
}

void *casfs_guest_gpa(const struct casfs_guest_mem *m, uint64_t gpa, uint64_t len)
{
	return guest_lookup(m, gpa, len, false);
}

void *casfs_guest_uva(const struct casfs_guest_mem *m, uint64_t uva, uint64_t len)
{
	return guest_lookup(m, uva, len, true);
}

static uint16_t load16(volatile const uint8_t *p)
{
	return le16toh(*(volatile const uint16_t *)p);
}

static volatile uint8_t *map_ring(const struct casfs_guest_mem *m, const char *what, uint64_t uva,
				  uint64_t size, uint64_t align, struct casfs_error *err, int *ret)
{
	void *p = casfs_guest_uva(m, uva, size);
	if (!p) {
		*ret = casfs_error_set(err, -EINVAL,
				       "virtqueue: %s ring at 0x%" PRIx64 " (%" PRIu64
				       " bytes) is not inside one guest memory region",
				       what, uva, size);
		return NULL;
	}
	/* The spec's alignments (2.7); they also make our 16/32-bit loads
	 * aligned, which matters for the C abstract machine (and UBSan). */
	if ((uva | (uintptr_t)p) & (align - 1)) {
		*ret = casfs_error_set(err, -EINVAL,
				       "virtqueue: %s ring at 0x%" PRIx64 " is not %" PRIu64
				       "-byte aligned",
				       what, uva, align);
		return NULL;
	}
	return p;
}

int casfs_vq_init(struct casfs_vq *q, const struct casfs_guest_mem *m, unsigned num,
		  uint64_t desc_uva, uint64_t avail_uva, uint64_t used_uva, uint16_t base,
		  struct casfs_error *err)
{
	if (num == 0 || num > CASFS_VQ_MAX_NUM || (num & (num - 1)) != 0)
		return casfs_error_set(err, -EINVAL,
				       "virtqueue: %u entries is not a power of two in 1..%u", num,
				       CASFS_VQ_MAX_NUM);
	int r = 0;
	/* desc: 16 * num; avail: flags, idx, ring[num], used_event;
	 * used: flags, idx, ring[num] of 8 bytes, avail_event. */
	volatile uint8_t *desc = map_ring(m, "descriptor", desc_uva, (uint64_t)DESC_SIZE * num, 16,
					  err, &r);
	if (!desc)
		return r;
	volatile uint8_t *avail = map_ring(m, "available", avail_uva, 6 + 2 * (uint64_t)num, 2, err, &r);
	if (!avail)
		return r;
	volatile uint8_t *used = map_ring(m, "used", used_uva, 6 + 8 * (uint64_t)num, 4, err, &r);
	if (!used)
		return r;
	*q = (struct casfs_vq){
		.num = num,
		.desc = desc,
		.avail = avail,
		.used = used,
		.last_avail = base,
		/* Continue from the index the driver has seen: equal to base on a
		 * fresh ring or one stopped with nothing in flight. */
		.used_idx = load16(used + offsetof(struct vring_used, idx)),
	};
	return 0;
}

void casfs_vq_req_init(struct casfs_vq_req *r)
{
	r->head = 0;
	casfs_buf_init(&r->in);
	r->n_out = 0;
	r->out_len = 0;
}

void casfs_vq_req_release(struct casfs_vq_req *r)
{
	casfs_buf_release(&r->in);
	r->n_out = 0;
	r->out_len = 0;
}

struct desc_copy {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

/* One read of each field of descriptor i (i < num, checked by the caller). */
static struct desc_copy desc_read(const struct casfs_vq *q, unsigned i)
{
	volatile const uint8_t *d = q->desc + (size_t)i * DESC_SIZE;
	return (struct desc_copy){
		.addr = le64toh(*(volatile const uint64_t *)(d + offsetof(struct vring_desc, addr))),
		.len = le32toh(*(volatile const uint32_t *)(d + offsetof(struct vring_desc, len))),
		.flags = le16toh(*(volatile const uint16_t *)(d + offsetof(struct vring_desc, flags))),
		.next = le16toh(*(volatile const uint16_t *)(d + offsetof(struct vring_desc, next))),
	};
}

static int walk_chain(const struct casfs_vq *q, const struct casfs_guest_mem *m, uint16_t head,
		      struct casfs_vq_req *req, struct casfs_error *err)
{
	uint64_t total = 0;
	bool writable = false;
	unsigned i = head;
	for (unsigned count = 1;; count++) {
		if (count > q->num)
			return casfs_error_set(err, -EBADMSG,
					       "virtqueue: chain from head %u is longer than the "
					       "ring's %u descriptors (a loop)",
					       head, q->num);
		struct desc_copy d = desc_read(q, i);
		if (d.flags & VRING_DESC_F_INDIRECT)
			return casfs_error_set(err, -EBADMSG,
					       "virtqueue: descriptor %u is indirect (not offered)", i);
		total += d.len;
		if (total > UINT32_MAX)
			return casfs_error_set(err, -EBADMSG,
					       "virtqueue: chain from head %u is longer than 4 GiB",
					       head);
		void *p = casfs_guest_gpa(m, d.addr, d.len);
		if (!p)
			return casfs_error_set(err, -EBADMSG,
					       "virtqueue: descriptor %u (0x%" PRIx64 ", %" PRIu32
					       " bytes) is not inside one guest memory region",
					       i, d.addr, d.len);
		if (d.flags & VRING_DESC_F_WRITE) {
			writable = true;
			if (req->n_out >= CASFS_VQ_MAX_OUT)
				return casfs_error_set(err, -EBADMSG,
						       "virtqueue: chain from head %u has more than "
						       "%u writable descriptors",
						       head, CASFS_VQ_MAX_OUT);
			req->out[req->n_out++] = (struct iovec){ p, d.len };
			req->out_len += d.len;
		} else {
			if (writable)
				return casfs_error_set(err, -EBADMSG,
						       "virtqueue: readable descriptor %u after a "
						       "writable one",
						       i);
			if (d.len > CASFS_VQ_MAX_REQUEST - req->in.len)
				return casfs_error_set(err, -EBADMSG,
						       "virtqueue: request from head %u has more than "
						       "%u readable bytes",
						       head, CASFS_VQ_MAX_REQUEST);
			/* The copy is what gets parsed; the guest may keep
			 * writing to its own buffer. */
			int r = casfs_buf_append(&req->in, p, d.len);
			if (r < 0)
				return r;
		}
		if (!(d.flags & VRING_DESC_F_NEXT))
			return 0;
		if (d.next >= q->num)
			return casfs_error_set(err, -EBADMSG,
					       "virtqueue: descriptor %u names next %u, not below %u",
					       i, d.next, q->num);
		i = d.next;
	}
}

static int pop(struct casfs_vq *q, const struct casfs_guest_mem *m, struct casfs_vq_req *req,
	       struct casfs_error *err)
{
	uint16_t avail_idx = le16toh(__atomic_load_n(
		(volatile uint16_t *)(q->avail + offsetof(struct vring_avail, idx)), __ATOMIC_ACQUIRE));
	uint16_t pending = (uint16_t)(avail_idx - q->last_avail);
	if (pending > q->num)
		return casfs_error_set(err, -EBADMSG,
				       "virtqueue: avail idx %u is %u ahead of %u, more than the "
				       "ring's %u entries",
				       avail_idx, pending, q->last_avail, q->num);
	if (pending == 0)
		return 0;
	uint16_t head = load16(q->avail + AVAIL_RING_OFF + 2 * (size_t)(q->last_avail & (q->num - 1)));
	if (head >= q->num)
		return casfs_error_set(err, -EBADMSG,
				       "virtqueue: avail entry %u names head %u, not below %u",
				       q->last_avail, head, q->num);
	req->in.len = 0;
	req->n_out = 0;
	req->out_len = 0;
	int r = walk_chain(q, m, head, req, err);
	if (r < 0)
		return r;
	req->head = head;
	q->last_avail++;
	return 1;
}

int casfs_vq_pop(struct casfs_vq *q, const struct casfs_guest_mem *m, struct casfs_vq_req *req,
		 struct casfs_error *err)
{
	int r = pop(q, m, req, err);
	if (r < 0) {
		/* Nothing half-filled is left for a caller to act on. */
		req->in.len = 0;
		req->n_out = 0;
		req->out_len = 0;
	}
	return r;
}

size_t casfs_vq_req_write(const struct casfs_vq_req *req, const struct iovec *iov, int n)
{
	size_t done = 0;
	unsigned o = 0;   /* current writable descriptor */
	size_t o_off = 0; /* bytes already written into it */
	for (int k = 0; k < n; k++) {
		const uint8_t *src = iov[k].iov_base;
		size_t left = iov[k].iov_len;
		while (left > 0) {
			while (o < req->n_out && o_off == req->out[o].iov_len) {
				o++;
				o_off = 0;
			}
			if (o >= req->n_out)
				return done;
			size_t c = MIN(left, req->out[o].iov_len - o_off);
			memcpy((uint8_t *)req->out[o].iov_base + o_off, src, c);
			src += c;
			left -= c;
			o_off += c;
			done += c;
		}
	}
	return done;
}

void casfs_vq_push(struct casfs_vq *q, uint16_t head, uint32_t len)
{
	volatile uint8_t *e = q->used + USED_RING_OFF + USED_ELEM_SIZE * (size_t)(q->used_idx & (q->num - 1));
	*(volatile uint32_t *)(e + offsetof(struct vring_used_elem, id)) = htole32(head);
	*(volatile uint32_t *)(e + offsetof(struct vring_used_elem, len)) = htole32(len);
	q->used_idx++;
	/* Release: the reply bytes and the element above are visible before
	 * the index that hands them to the driver. */
	__atomic_store_n((volatile uint16_t *)(q->used + offsetof(struct vring_used, idx)),
			 htole16(q->used_idx), __ATOMIC_RELEASE);
}
