/* Fuzz the split virtqueue (virtiofs/virtqueue.h) as a hostile guest.
 *
 * Input: a 16-byte header, then the guest memory's contents.
 *
 *   0      num: 1 << (b & 7), or b itself when bit 7 is set (refusals)
 *   1      bit 0: two regions; bit 1: region 1 right after region 0 in
 *          GPA space (else a gap); bits 4..7: pops to try, 1..16
 *   2..3   le16 base (SET_VRING_BASE; also avail->idx/used->idx as given)
 *   4..9   le16 offsets of desc, avail, used from region 0's UVA
 *   10     reply length seed
 *   11..15 unused
 *   16..   region 0's bytes (REGION_SIZE), then region 1's; zero-filled
 *
 * Each region is its own exact-size heap buffer, so ASan catches any
 * access outside guest memory.  Every pop is checked against a model
 * written here from the spec (one pass over the same memory, before the
 * reply changes it): same verdict, same head, same readable bytes, same
 * writable iovecs; the request is bounded (in.len <= CASFS_VQ_MAX_REQUEST,
 * out_len the sum of its iovecs, every iovec inside one region).  Each
 * popped request gets a reply written into it and pushed. */
#include <endian.h>
#include <errno.h>
#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "basic/error.h"
#include "virtiofs/virtqueue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                         \
	do {                                                                             \
		if (!(c))                                                                \
			abort();                                                         \
	} while (0)

#define REGION_SIZE 4096u
#define HDR 16u
#define GPA0 0x10000ull
#define UVA0 0x7f0000010000ull
#define UVA1 0x7f0000200000ull

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The model's translation: 128-bit ends, no shared code. */
static uint8_t *model_gpa(const struct casfs_guest_mem *m, uint64_t addr, uint64_t len)
{
	for (unsigned i = 0; i < m->n; i++) {
		const struct casfs_guest_region *r = &m->r[i];
		if (addr >= r->gpa &&
		    (unsigned __int128)addr + len <= (unsigned __int128)r->gpa + r->size)
			return r->host + (addr - r->gpa);
	}
	return NULL;
}

static bool inside_a_region(const struct casfs_guest_mem *m, const struct iovec *v)
{
	for (unsigned i = 0; i < m->n; i++) {
		uintptr_t p = (uintptr_t)v->iov_base, h = (uintptr_t)m->r[i].host;
		if (p >= h && p - h <= m->r[i].size && v->iov_len <= m->r[i].size - (p - h))
			return true;
	}
	return false;
}

#define MAX_NUM 128 /* 1 << 7, or 0x7f: a chain has at most this many */

struct model {
	uint16_t head;
	struct iovec rd[MAX_NUM]; /* the readable descriptors, in order */
	unsigned n_rd;
	size_t in_len;
	struct iovec out[CASFS_VQ_MAX_OUT];
	unsigned n_out;
};

/* 1 with *mo filled, 0 if nothing is available, -1 if malformed. */
static int model_pop(const struct casfs_vq *q, const struct casfs_guest_mem *m,
		     const uint8_t *desc, const uint8_t *avail, struct model *mo)
{
	uint16_t idx = rd16(avail + 2);
	unsigned pending = (uint16_t)(idx - q->last_avail);
	if (pending > q->num)
		return -1;
	if (pending == 0)
		return 0;
	unsigned head = rd16(avail + 4 + 2 * (q->last_avail % q->num));
	if (head >= q->num)
		return -1;
	mo->head = (uint16_t)head;
	mo->in_len = 0;
	mo->n_rd = 0;
	mo->n_out = 0;
	uint64_t total = 0;
	bool seen_w = false;
	unsigned i = head;
	for (unsigned count = 0;; count++) {
		if (count == q->num)
			return -1;
		const uint8_t *d = desc + 16 * i;
		uint64_t addr = rd64(d);
		uint32_t len = rd32(d + 8);
		uint16_t flags = rd16(d + 12), next = rd16(d + 14);
		if (flags & VRING_DESC_F_INDIRECT)
			return -1;
		total += len;
		if (total > UINT32_MAX)
			return -1;
		uint8_t *p = model_gpa(m, addr, len);
		if (!p)
			return -1;
		if (flags & VRING_DESC_F_WRITE) {
			seen_w = true;
			if (mo->n_out == CASFS_VQ_MAX_OUT)
				return -1;
			mo->out[mo->n_out++] = (struct iovec){ p, len };
		} else {
			if (seen_w)
				return -1;
			if (mo->in_len + len > CASFS_VQ_MAX_REQUEST)
				return -1;
			mo->rd[mo->n_rd++] = (struct iovec){ p, len };
			mo->in_len += len;
		}
		if (!(flags & VRING_DESC_F_NEXT))
			return 1;
		if (next >= q->num)
			return -1;
		i = next;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < HDR || size > HDR + 2 * REGION_SIZE + 64)
		return 0;
	unsigned num = data[0] & 0x80 ? data[0] & 0x7f : 1u << (data[0] & 7);
	bool two = data[1] & 1, adjacent = data[1] & 2;
	unsigned max_pops = 1 + (data[1] >> 4);
	uint16_t base = rd16(data + 2);
	uint64_t desc_uva = UVA0 + rd16(data + 4), avail_uva = UVA0 + rd16(data + 6),
		 used_uva = UVA0 + rd16(data + 8);
	unsigned reply_seed = data[10];

	struct casfs_guest_mem m = { 0 };
	uint8_t *host[2] = { NULL, NULL };
	struct model mo;
	struct casfs_vq_req req;
	casfs_vq_req_init(&req);
	for (unsigned i = 0; i < (two ? 2u : 1u); i++) {
		/* 16-aligned like a page mapping; exact size for ASan */
		host[i] = aligned_alloc(16, REGION_SIZE);
		if (!host[i])
			goto out;
		size_t off = HDR + i * REGION_SIZE, n = 0;
		if (size > off)
			n = size - off < REGION_SIZE ? size - off : REGION_SIZE;
		memset(host[i], 0, REGION_SIZE);
		if (n)
			memcpy(host[i], data + off, n);
		m.r[i] = (struct casfs_guest_region){
			.gpa = i == 0 ? GPA0 : GPA0 + REGION_SIZE + (adjacent ? 0 : 0x10000),
			.size = REGION_SIZE,
			.uva = i == 0 ? UVA0 : UVA1,
			.host = host[i],
		};
		m.n = i + 1;
	}

	struct casfs_vq q;
	struct casfs_error err = { 0 };
	memset(&q, 0xa5, sizeof(q));
	int r = casfs_vq_init(&q, &m, num, desc_uva, avail_uva, used_uva, base, &err);
	if (r < 0) {
		CHECK(r == -EINVAL && err.msg[0]);
		goto out;
	}
	CHECK(q.num == num && q.last_avail == base);
	const uint8_t *desc = casfs_guest_uva(&m, desc_uva, 16 * (uint64_t)num);
	const uint8_t *avail = casfs_guest_uva(&m, avail_uva, 6 + 2 * (uint64_t)num);
	CHECK(desc && avail && casfs_guest_uva(&m, used_uva, 6 + 8 * (uint64_t)num));

	for (unsigned k = 0; k < max_pops; k++) {
		int want = model_pop(&q, &m, desc, avail, &mo);
		uint16_t before = q.last_avail;
		casfs_error_clear(&err);
		r = casfs_vq_pop(&q, &m, &req, &err);
		if (r <= 0) {
			CHECK(r == 0 ? want == 0 : r == -EBADMSG && want == -1 && err.msg[0]);
			CHECK(q.last_avail == before);
			if (r < 0)
				CHECK(req.in.len == 0 && req.n_out == 0 && req.out_len == 0);
			break;
		}
		CHECK(r == 1 && want == 1);
		CHECK(q.last_avail == (uint16_t)(before + 1));
		CHECK(req.head == mo.head && req.head < num);
		CHECK(req.in.len <= CASFS_VQ_MAX_REQUEST && req.in.len == mo.in_len);
		/* the same bytes (memory has not changed since the model read it) */
		size_t at = 0;
		for (unsigned j = 0; j < mo.n_rd; j++) {
			if (mo.rd[j].iov_len)
				CHECK(memcmp(req.in.data + at, mo.rd[j].iov_base, mo.rd[j].iov_len) == 0);
			at += mo.rd[j].iov_len;
		}
		CHECK(req.n_out <= CASFS_VQ_MAX_OUT && req.n_out == mo.n_out);
		size_t sum = 0;
		for (unsigned j = 0; j < req.n_out; j++) {
			CHECK(req.out[j].iov_base == mo.out[j].iov_base);
			CHECK(req.out[j].iov_len == mo.out[j].iov_len);
			CHECK(inside_a_region(&m, &req.out[j]));
			sum += req.out[j].iov_len;
		}
		CHECK(req.out_len == sum);

		/* a reply in two pieces, sometimes longer than the room */
		uint8_t reply[600];
		size_t reply_len = (reply_seed * (k + 1) * 7) % sizeof(reply);
		for (size_t j = 0; j < reply_len; j++)
			reply[j] = (uint8_t)(j * 13 + k);
		struct iovec iov[2] = { { reply, reply_len / 3 },
					{ reply + reply_len / 3, reply_len - reply_len / 3 } };
		size_t wrote = casfs_vq_req_write(&req, iov, 2);
		CHECK(wrote == (reply_len < req.out_len ? reply_len : req.out_len));
		uint16_t used_before = q.used_idx;
		casfs_vq_push(&q, req.head, (uint32_t)wrote);
		CHECK(q.used_idx == (uint16_t)(used_before + 1));
	}
out:
	casfs_vq_req_release(&req);
	free(host[0]);
	free(host[1]);
	return 0;
}
