/* src/virtiofs/virtqueue.c: guest memory translation and split virtqueues,
 * over a fake guest memory.
 *
 * The fake guest has three regions, each its own heap buffer, with guest
 * physical addresses (GPAs) and QEMU virtual addresses (UVAs) that differ:
 *
 *   region 0: GPA 0x10000..0x20000, UVA 0x7f0000010000   rings + data
 *   (gap)
 *   region 1: GPA 0x40000..0x50000, UVA 0x7f1000000000   data
 *   region 2: GPA 0x50000..0x60000, UVA 0x7f2000000000   data, adjacent
 *             to region 1 in GPA but not in our address space
 *
 * The tests play the driver: they write descriptors and avail entries in
 * little-endian as the guest would, pop, reply, push, and read the used
 * ring back.  Every malformed chain must be refused with -EBADMSG and a
 * message naming what was wrong, without advancing the queue. */
#include <endian.h>
#include <errno.h>
#include <linux/virtio_ring.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "basic/error.h"
#include "basic/util.h"
#include "virtiofs/virtqueue.h"
#include "test.h"

#define REGION_SIZE 0x10000u
#define R0_GPA 0x10000u
#define R1_GPA 0x40000u
#define R2_GPA 0x50000u
static const uint64_t region_uva[3] = { 0x7f0000010000ull, 0x7f1000000000ull, 0x7f2000000000ull };
static const uint64_t region_gpa[3] = { R0_GPA, R1_GPA, R2_GPA };

/* Ring placement inside region 0 (room for num up to 512). */
#define DESC_OFF 0x0000u
#define AVAIL_OFF 0x2000u
#define USED_OFF 0x3000u
#define DATA0 (R0_GPA + 0x8000u) /* 32 KiB of data in region 0 */
#define DATA1 (R1_GPA + 0x100u)
#define DATA2 (R2_GPA + 0x100u)

struct fake {
	struct casfs_guest_mem m;
	uint8_t *host[3];
	struct casfs_vq q;
	struct casfs_vq_req req;
	struct casfs_error err;
	uint16_t avail_idx; /* the driver's shadow of avail->idx */
};

static void fake_free(struct fake *f)
{
	for (int i = 0; i < 3; i++)
		free(f->host[i]);
	casfs_vq_req_release(&f->req);
}
#define _cleanup_fake_ _cleanup_(fake_free)

static uint8_t *host_of(struct fake *f, uint64_t gpa)
{
	uint8_t *p = casfs_guest_gpa(&f->m, gpa, 1);
	if (!p)
		abort(); /* a bug in the test itself */
	return p;
}

static void put16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, 2);
}

static uint16_t get16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return le16toh(v);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return le32toh(v);
}

/* Memory only, no queue: for the translation tests. */
static int fake_mem(struct fake *f)
{
	memset(f, 0, sizeof(*f));
	casfs_vq_req_init(&f->req);
	for (int i = 0; i < 3; i++) {
		f->host[i] = calloc(1, REGION_SIZE);
		if (!f->host[i])
			return -ENOMEM;
		f->m.r[i] = (struct casfs_guest_region){ region_gpa[i], REGION_SIZE, region_uva[i],
							 f->host[i] };
	}
	f->m.n = 3;
	return 0;
}

/* Memory and a queue of `num` entries starting at avail/used index `base`. */
static int fake_setup(struct fake *f, unsigned num, uint16_t base)
{
	int r = fake_mem(f);
	if (r < 0)
		return r;
	put16(f->host[0] + AVAIL_OFF + 2, base);
	put16(f->host[0] + USED_OFF + 2, base);
	f->avail_idx = base;
	return casfs_vq_init(&f->q, &f->m, num, region_uva[0] + DESC_OFF, region_uva[0] + AVAIL_OFF,
			     region_uva[0] + USED_OFF, base, &f->err);
}

static void set_desc(struct fake *f, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	uint8_t *d = f->host[0] + DESC_OFF + 16 * i;
	uint64_t a = htole64(addr);
	uint32_t l = htole32(len);
	memcpy(d, &a, 8);
	memcpy(d + 8, &l, 4);
	put16(d + 12, flags);
	put16(d + 14, next);
}

/* Make the chain at `head` available (avail->ring, then avail->idx). */
static void offer(struct fake *f, uint16_t head)
{
	put16(f->host[0] + AVAIL_OFF + 4 + 2 * (f->avail_idx % f->q.num), head);
	f->avail_idx++;
	put16(f->host[0] + AVAIL_OFF + 2, f->avail_idx);
}

static uint16_t used_idx(struct fake *f)
{
	return get16(f->host[0] + USED_OFF + 2);
}

static uint32_t used_id(struct fake *f, uint16_t slot)
{
	return get32(f->host[0] + USED_OFF + 4 + 8 * (slot % f->q.num));
}

static uint32_t used_len(struct fake *f, uint16_t slot)
{
	return get32(f->host[0] + USED_OFF + 4 + 8 * (slot % f->q.num) + 4);
}

enum { N = VRING_DESC_F_NEXT, W = VRING_DESC_F_WRITE, IND = VRING_DESC_F_INDIRECT };

/* Pop must refuse with -EBADMSG, a message containing `what`, nothing
 * left in the request and the queue not advanced. */
#define CHECK_REFUSED(f, what)                                                           \
	do {                                                                             \
		uint16_t before_ = (f)->q.last_avail;                                    \
		casfs_error_clear(&(f)->err);                                            \
		int r_ = casfs_vq_pop(&(f)->q, &(f)->m, &(f)->req, &(f)->err);           \
		CHECK_EQ_INT(r_, -EBADMSG);                                              \
		if (!strstr(casfs_error_message(&(f)->err, r_), (what))) {               \
			FAILF("message \"%s\" does not say \"%s\"",                      \
			      casfs_error_message(&(f)->err, r_), (what));               \
			return;                                                          \
		}                                                                        \
		CHECK_EQ_INT((f)->q.last_avail, before_);                                \
		CHECK_EQ_INT((f)->req.in.len, 0);                                        \
		CHECK_EQ_INT((f)->req.n_out, 0);                                         \
		CHECK_EQ_INT((f)->req.out_len, 0);                                       \
	} while (0)

/* --- guest memory --- */

TEST(translate_gpa_and_uva)
{
	_cleanup_fake_ struct fake f = { 0 };
	CHECK_EQ_INT(fake_mem(&f), 0);
	/* the same bytes by GPA and by UVA, in each region */
	for (int i = 0; i < 3; i++) {
		CHECK(casfs_guest_gpa(&f.m, region_gpa[i] + 5, 10) == f.host[i] + 5);
		CHECK(casfs_guest_uva(&f.m, region_uva[i] + 5, 10) == f.host[i] + 5);
		/* a GPA is not a UVA and vice versa */
		CHECK(casfs_guest_uva(&f.m, region_gpa[i] + 5, 10) == NULL);
		CHECK(casfs_guest_gpa(&f.m, region_uva[i] + 5, 10) == NULL);
		/* the whole region, and exactly up to its end */
		CHECK(casfs_guest_gpa(&f.m, region_gpa[i], REGION_SIZE) == f.host[i]);
		CHECK(casfs_guest_gpa(&f.m, region_gpa[i] + REGION_SIZE - 1, 1) ==
		      f.host[i] + REGION_SIZE - 1);
		CHECK(casfs_guest_uva(&f.m, region_uva[i] + 1, REGION_SIZE - 1) == f.host[i] + 1);
		/* one byte too many */
		CHECK(casfs_guest_gpa(&f.m, region_gpa[i], REGION_SIZE + 1) == NULL);
		/* region 1's end is region 2's start */
		CHECK(casfs_guest_gpa(&f.m, region_gpa[i] + REGION_SIZE, 1) ==
		      (i == 1 ? f.host[2] : NULL));
		CHECK(casfs_guest_uva(&f.m, region_uva[i] + 1, REGION_SIZE) == NULL);
		/* before the start */
		CHECK(casfs_guest_gpa(&f.m, region_gpa[i] - 1, 2) == NULL);
	}
	/* the gap, and ranges across it or across adjacent regions */
	CHECK(casfs_guest_gpa(&f.m, 0x30000, 1) == NULL);
	CHECK(casfs_guest_gpa(&f.m, R0_GPA + REGION_SIZE - 8, 16) == NULL);
	CHECK(casfs_guest_gpa(&f.m, R1_GPA + REGION_SIZE - 8, 16) == NULL);
	CHECK(casfs_guest_gpa(&f.m, R1_GPA, 2 * REGION_SIZE) == NULL);
	/* addr + len wrapping around 2^64 lands "inside" region 0 if the
	 * sum is not checked */
	CHECK(casfs_guest_gpa(&f.m, UINT64_MAX - 0xf, 0x20 + R0_GPA) == NULL);
	CHECK(casfs_guest_gpa(&f.m, R0_GPA + 1, UINT64_MAX) == NULL);
	CHECK(casfs_guest_uva(&f.m, region_uva[0] + 1, UINT64_MAX) == NULL);
	/* no regions at all */
	f.m.n = 0;
	CHECK(casfs_guest_gpa(&f.m, R0_GPA, 1) == NULL);
}

TEST(translate_region_at_top_of_address_space)
{
	_cleanup_fake_ struct fake f = { 0 };
	CHECK_EQ_INT(fake_mem(&f), 0);
	/* region 2 moved so that gpa + size == 2^64 (start + size wraps) */
	f.m.r[2].gpa = UINT64_MAX - REGION_SIZE + 1;
	CHECK(casfs_guest_gpa(&f.m, UINT64_MAX, 1) == f.host[2] + REGION_SIZE - 1);
	CHECK(casfs_guest_gpa(&f.m, f.m.r[2].gpa, REGION_SIZE) == f.host[2]);
	CHECK(casfs_guest_gpa(&f.m, UINT64_MAX, 2) == NULL);
	CHECK(casfs_guest_gpa(&f.m, UINT64_MAX, 0) == f.host[2] + REGION_SIZE - 1);
	CHECK(casfs_guest_gpa(&f.m, f.m.r[2].gpa + 1, REGION_SIZE) == NULL);
	CHECK(casfs_guest_gpa(&f.m, f.m.r[2].gpa - 1, 1) == NULL);
	/* a region that would run past 2^64 (nonsense, but the check must
	 * not depend on the regions being sane): a wrapping range is refused
	 * even though it stays within the region's size */
	f.m.r[2].gpa = UINT64_MAX - 0xfff;
	CHECK(casfs_guest_gpa(&f.m, UINT64_MAX - 0xf, 0x10) == f.host[2] + 0xff0);
	CHECK(casfs_guest_gpa(&f.m, UINT64_MAX - 0xf, 0x11) == NULL);
	CHECK(casfs_guest_gpa(&f.m, UINT64_MAX - 0xf, 0x20) == NULL);
}

/* --- init --- */

TEST(init_refuses_bad_num)
{
	_cleanup_fake_ struct fake f = { 0 };
	static const unsigned bad[] = { 0, 3, 6, 100, 129, 65536, 1u << 31 };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		casfs_error_clear(&f.err);
		fake_free(&f);
		int r = fake_setup(&f, bad[i], 0);
		CHECK_EQ_INT(r, -EINVAL);
		if (!strstr(f.err.msg, "power of two")) {
			FAILF("num %u: message \"%s\"", bad[i], f.err.msg);
			return;
		}
	}
	static const unsigned good[] = { 1, 2, 64, 128, 512 };
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		fake_free(&f);
		CHECK_EQ_INT(fake_setup(&f, good[i], 0), 0);
		CHECK_EQ_INT(f.q.num, good[i]);
	}
	/* 32768 entries need more room than region 0 has: only the rings'
	 * placement refuses it, not the count */
	fake_free(&f);
	CHECK_EQ_INT(fake_setup(&f, CASFS_VQ_MAX_NUM, 0), -EINVAL);
	CHECK(strstr(f.err.msg, "descriptor ring") != NULL);
}

TEST(init_refuses_rings_outside_memory)
{
	_cleanup_fake_ struct fake f = { 0 };
	CHECK_EQ_INT(fake_mem(&f), 0);
	uint64_t u0 = region_uva[0], end0 = region_uva[0] + REGION_SIZE;
	struct {
		uint64_t desc, avail, used;
		const char *what;
	} cases[] = {
		/* the rings given by GPA instead of UVA */
		{ R0_GPA, u0 + AVAIL_OFF, u0 + USED_OFF, "descriptor ring" },
		{ u0, R0_GPA + AVAIL_OFF, u0 + USED_OFF, "available ring" },
		{ u0, u0 + AVAIL_OFF, R0_GPA + USED_OFF, "used ring" },
		/* each running past the region's end by a little */
		{ end0 - 16 * 64 + 16, u0 + AVAIL_OFF, u0 + USED_OFF, "descriptor ring" },
		/* avail needs 6 + 2 * 64 = 134 bytes (used_event included) */
		{ u0, end0 - 132, u0 + USED_OFF, "available ring" },
		/* used needs 6 + 8 * 64 = 518 bytes (avail_event included) */
		{ u0, u0 + AVAIL_OFF, end0 - 516, "used ring" },
		/* in the gap between regions 0 and 1 */
		{ end0 + 0x1000, u0 + AVAIL_OFF, u0 + USED_OFF, "descriptor ring" },
		/* misaligned */
		{ u0 + 8, u0 + AVAIL_OFF, u0 + USED_OFF, "aligned" },
		{ u0, u0 + AVAIL_OFF + 1, u0 + USED_OFF, "aligned" },
		{ u0, u0 + AVAIL_OFF, u0 + USED_OFF + 2, "aligned" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		casfs_error_clear(&f.err);
		memset(&f.q, 0x5a, sizeof(f.q));
		int r = casfs_vq_init(&f.q, &f.m, 64, cases[i].desc, cases[i].avail, cases[i].used, 0,
				      &f.err);
		if (r != -EINVAL || !strstr(f.err.msg, cases[i].what)) {
			FAILF("case %zu: %d \"%s\", expected -EINVAL \"%s\"", i, r, f.err.msg,
			      cases[i].what);
			return;
		}
		CHECK_EQ_INT(f.q.num, 0x5a5a5a5a); /* *q left alone */
	}
	/* the exact fits are accepted */
	CHECK_EQ_INT(casfs_vq_init(&f.q, &f.m, 64, end0 - 16 * 64, end0 - 134, end0 - 520, 0, &f.err),
		     0);
	CHECK_EQ_INT(casfs_vq_init(&f.q, &f.m, 64, end0 - 16 * 64, end0 - 134, end0 - 518 + 2, 0,
				   &f.err),
		     -EINVAL);
}

/* --- good chains --- */

TEST(good_chain_across_regions)
{
	_cleanup_fake_ struct fake f = { 0 };
	CHECK_EQ_INT(fake_setup(&f, 8, 0), 0);
	CHECK_EQ_INT(casfs_vq_pop(&f.q, &f.m, &f.req, &f.err), 0); /* nothing yet */

	memcpy(host_of(&f, DATA0), "hello, ", 7);
	memcpy(host_of(&f, DATA1), "virtio", 6);
	memcpy(host_of(&f, DATA2), "fs!", 3);
	/* head 5: readable in regions 0, 1, 2, then writable in 2 and 0 */
	set_desc(&f, 5, DATA0, 7, N, 2);
	set_desc(&f, 2, DATA1, 6, N, 7);
	set_desc(&f, 7, DATA2, 3, N, 0);
	set_desc(&f, 0, DATA2 + 0x1000, 16, N | W, 3);
	set_desc(&f, 3, DATA0 + 0x1000, 8, W, 6); /* next ignored without NEXT */
	offer(&f, 5);

	CHECK_EQ_INT(casfs_vq_pop(&f.q, &f.m, &f.req, &f.err), 1);
	CHECK_EQ_INT(f.req.head, 5);
	CHECK_EQ_INT(f.req.in.len, 16);
	CHECK_EQ_MEM(f.req.in.data, "hello, virtiofs!", 16);
	/* a copy, not a view: the guest changing its buffer changes nothing */
	CHECK(f.req.in.data != host_of(&f, DATA0));
	memcpy(host_of(&f, DATA0), "HELLO", 5);
	CHECK_EQ_MEM(f.req.in.data, "hello", 5);
	CHECK_EQ_INT(f.req.n_out, 2);
	CHECK(f.req.out[0].iov_base == host_of(&f, DATA2 + 0x1000));
	CHECK_EQ_INT(f.req.out[0].iov_len, 16);
	CHECK(f.req.out[1].iov_base == host_of(&f, DATA0 + 0x1000));
	CHECK_EQ_INT(f.req.out[1].iov_len, 8);
	CHECK_EQ_INT(f.req.out_len, 24);
	CHECK_EQ_INT(f.q.last_avail, 1);
	CHECK_EQ_INT(casfs_vq_pop(&f.q, &f.m, &f.req, &f.err), 0);
}

TEST(single_descriptor_chains)
{
	_cleanup_fake_ struct fake f = { 0 };
	CHECK_EQ_INT(fake_setup(&f, 1, 0), 0);
	/* num 1: one readable-only descriptor, then one writable-only */
	set_desc(&f, 0, DATA0, 4, 0, 0);
	offer(&f, 0);
	CHECK_EQ_INT(casfs_vq_pop(&f.q, &f.m, &f.req, &f.err), 1);
	CHECK_EQ_INT(f.req.in.len, 4);
	CHECK_EQ_INT(f.req.n_out, 0);
	casfs_vq_push(&f.q, 0, 0);
	set_desc(&f, 0, DATA1, 32, W, 0);
	offer(&f, 0);
	CHECK_EQ_INT(casfs_vq_pop(&f.q, &f.m, &f.req, &f.err), 1);
	CHECK_EQ_INT(f.req.in.len, 0); /* replaced, not appended */
	CHECK_EQ_INT(f.req.n_out, 1);
	CHECK_EQ_INT(f.req.out_len, 32);
	casfs_vq_push(&f.q, 0, 32);
	CHECK_EQ_INT(used_idx(&f), 2);
}

TEST(reply_written_and_bounded)
{
	_cleanup_fake_ struct fake f = { 0 };
	CHECK_EQ_INT(fake_setup(&f, 8, 0), 0);
	uint8_t *g1 = host_of(&f, DATA1), *g2 = host_of(&f, DATA2);
	memset(g1, 0xee, 64);
	memset(g2, 0xee, 64);
	set_desc(&f, 0, DATA0, 8, N, 1);
	set_desc(&f, 1, DATA1, 5, N | W, 2);
	set_desc(&f, 2, DATA1 + 16, 0, N | W, 3); /* an empty one is skipped */
	set_desc(&f, 3, DATA2, 7, W, 0);
	offer(&f, 0);
	CHECK_EQ_INT(casfs_vq_pop(&f.q, &f.m, &f.req, &f.err), 1);
	CHECK_EQ_INT(f.req.n_out, 3);
	CHECK_EQ_INT(f.req.out_len, 12);

	/* fits: two source pieces split over the descriptors */
	struct iovec iov[] = { { "abc", 3 }, { "defghij", 7 } };
	CHECK_EQ_INT(casfs_vq_req_write(&f.req, iov, 2), 10);
	CHECK_EQ_MEM(g1, "abcde", 5);
	CHECK_EQ_INT(g1[5], 0xee);
	CHECK_EQ_INT(g1[16], 0xee);
	CHECK_EQ_MEM(g2, "fghij", 5);
	CHECK_EQ_INT(g2[5], 0xee);

	/* too long: cut at the descriptors' 12 bytes, nothing beyond */
	struct iovec big[] = { { "0123456789", 10 }, { "ABCDEFGHIJ", 10 } };
	CHECK_EQ_INT(casfs_vq_req_write(&f.req, big, 2), 12);
	CHECK_EQ_MEM(g1, "01234", 5);
	CHECK_EQ_INT(g1[5], 0xee);
	CHECK_EQ_MEM(g2, "56789AB", 7);
	CHECK_EQ_INT(g2[7], 0xee);

	/* nothing to write, or no room */
	CHECK_EQ_INT(casfs_vq_req_write(&f.req, big, 0), 0);
	struct casfs_vq_req none;
	casfs_vq_req_init(&none);
	CHECK_EQ_INT(casfs_vq_req_write(&none, big, 2), 0);
	casfs_vq_req_release(&none);

	casfs_vq_push(&f.q, f.req.head, 12);
	CHECK_EQ_INT(used_idx(&f), 1);
	CHECK_EQ_INT(used_id(&f, 0), 0);
	CHECK_EQ_INT(used_len(&f, 0), 12);
}

TEST(multiple_requests)
{
	_cleanup_fake_ struct fake f = { 0 };
	CHECK_EQ_INT(fake_setup(&f, 8, 0), 0);
	/* three two-descriptor chains: heads 6, 0, 3 */
	static const uint16_t heads[] = { 6, 0, 3 };
	for (int k = 0; k < 3; k++) {
		uint16_t h = heads[k];
		uint8_t *p = host_of(&f, DATA0 + 0x100 * k);
		memset(p, 'a' + k, 4);
		set_desc(&f, h, DATA0 + 0x100 * k, 4, N, h + 1);
		set_desc(&f, h + 1, DATA1 + 0x100 * k, 40 + k, W, 0);
		offer(&f, h);
	}
	struct casfs_vq_req got[3];
	for (int k = 0; k < 3; k++) {
		casfs_vq_req_init(&got[k]);
		int r = casfs_vq_pop(&f.q, &f.m, &got[k], &f.err);
		CHECK_EQ_INT(r, 1);
		CHECK_EQ_INT(got[k].head, heads[k]);
		CHECK_EQ_INT(got[k].in.len, 4);
		CHECK_EQ_INT(got[k].in.data[3], 'a' + k);
		CHECK_EQ_INT(got[k].out_len, 40 + k);
	}
	CHECK_EQ_INT(casfs_vq_pop(&f.q, &f.m, &f.req, &f.err), 0);
	/* answered out of order */
	static const int order[] = { 2, 0, 1 };
	for (int j = 0; j < 3; j++) {
		int k = order[j];
		char reply[8];
		snprintf(reply, sizeof(reply), "reply%d", k);
		struct iovec iov = { reply, 6 };
		CHECK_EQ_INT(casfs_vq_req_write(&got[k], &iov, 1), 6);
		casfs_vq_push(&f.q, got[k].head, 6 + k);
		CHECK_EQ_INT(used_idx(&f), j + 1);
		CHECK_EQ_INT(used_id(&f, j), heads[k]);
		CHECK_EQ_INT(used_len(&f, j), 6 + k);
		CHECK_EQ_MEM(host_of(&f, DATA1 + 0x100 * k), reply, 6);
	}
	for (int k = 0; k < 3; k++)
		casfs_vq_req_release(&got[k]);
	/* the ring's slots are reused past num */
	for (int k = 0; k < 20; k++) {
		set_desc(&f, 1, DATA0, 1, N, 2);
		set_desc(&f, 2, DATA1, 1, W, 0);
		offer(&f, 1);
		CHECK_EQ_INT(casfs_vq_pop(&f.q, &f.m, &f.req, &f.err), 1);
		CHECK_EQ_INT(f.req.head, 1);
		casfs_vq_push(&f.q, 1, k);
		CHECK_EQ_INT(used_len(&f, f.q.used_idx - 1), k);
	}
	CHECK_EQ_INT(used_idx(&f), 23);
	CHECK_EQ_INT(f.q.last_avail, 23);
}

TEST(avail_wraps_past_65535)
{
	_cleanup_fake_ struct fake f = { 0 };
	CHECK_EQ_INT(fake_setup(&f, 4, 65533), 0);
	CHECK_EQ_INT(f.q.last_avail, 65533);
	CHECK_EQ_INT(f.q.used_idx, 65533);
	for (int round = 0; round < 3; round++) {
		/* a full ring: 4 entries, the idx crossing 65535 -> 0 in round 0 */
		for (uint16_t h = 0; h < 4; h++) {
			set_desc(&f, h, DATA0 + 16 * h, 2, 0, 0);
			offer(&f, 3 - h);
		}
		for (uint16_t k = 0; k < 4; k++) {
			uint16_t slot = f.q.last_avail;
			CHECK_EQ_INT(casfs_vq_pop(&f.q, &f.m, &f.req, &f.err), 1);
			CHECK_EQ_INT(f.req.head, 3 - k);
			CHECK_EQ_INT(f.q.last_avail, (uint16_t)(slot + 1));
			casfs_vq_push(&f.q, f.req.head, 100 + k);
			CHECK_EQ_INT(used_id(&f, f.q.used_idx - 1), 3 - k);
			CHECK_EQ_INT(used_len(&f, f.q.used_idx - 1), 100 + k);
		}
		CHECK_EQ_INT(casfs_vq_pop(&f.q, &f.m, &f.req, &f.err), 0);
	}
	CHECK_EQ_INT(f.q.last_avail, (uint16_t)(65533 + 12));
	CHECK_EQ_INT(used_idx(&f), (uint16_t)(65533 + 12));
	CHECK_EQ_INT(used_idx(&f), 9);
}

TEST(avail_idx_bounds)
{
	_cleanup_fake_ struct fake f = { 0 };
	CHECK_EQ_INT(fake_setup(&f, 8, 65530), 0);
	for (uint16_t h = 0; h < 8; h++)
		set_desc(&f, h, DATA0, 1, 0, 0);
	/* exactly num ahead (a full ring, across the wrap) is fine */
	for (uint16_t h = 0; h < 8; h++)
		offer(&f, h);
	CHECK_EQ_INT(f.avail_idx, 2);
	CHECK_EQ_INT(casfs_vq_pop(&f.q, &f.m, &f.req, &f.err), 1);
	/* now 7 pending: idx jumping to 9 ahead, and far behind, are refused */
	put16(f.host[0] + AVAIL_OFF + 2, (uint16_t)(f.q.last_avail + 9));
	CHECK_REFUSED(&f, "ahead");
	put16(f.host[0] + AVAIL_OFF + 2, (uint16_t)(f.q.last_avail - 1));
	CHECK_REFUSED(&f, "ahead");
	put16(f.host[0] + AVAIL_OFF + 2, (uint16_t)(f.q.last_avail + 0x8000));
	CHECK_REFUSED(&f, "ahead");
	put16(f.host[0] + AVAIL_OFF + 2, (uint16_t)(f.q.last_avail + 8));
	CHECK_EQ_INT(casfs_vq_pop(&f.q, &f.m, &f.req, &f.err), 1);
}

/* --- malformed chains --- */

TEST(refuses_loop)
{
	_cleanup_fake_ struct fake f = { 0 };
	CHECK_EQ_INT(fake_setup(&f, 8, 0), 0);
	set_desc(&f, 0, DATA0, 1, N, 1);
	set_desc(&f, 1, DATA0, 1, N, 2);
	set_desc(&f, 2, DATA0, 1, N, 0); /* back to the head */
	offer(&f, 0);
	CHECK_REFUSED(&f, "loop");
	/* a descriptor pointing at itself, writable */
	set_desc(&f, 0, DATA0, 1, N | W, 0);
	CHECK_REFUSED(&f, "loop");
	/* a chain using all num descriptors once is not a loop */
	for (uint16_t i = 0; i < 8; i++)
		set_desc(&f, i, DATA0 + i, 1, i < 7 ? N : 0, i + 1);
	CHECK_EQ_INT(casfs_vq_pop(&f.q, &f.m, &f.req, &f.err), 1);
	CHECK_EQ_INT(f.req.in.len, 8);
}

TEST(refuses_index_out_of_range)
{
	_cleanup_fake_ struct fake f = { 0 };
	CHECK_EQ_INT(fake_setup(&f, 8, 0), 0);
	/* a next of num */
	set_desc(&f, 0, DATA0, 1, N, 8);
	offer(&f, 0);
	CHECK_REFUSED(&f, "next 8");
	set_desc(&f, 0, DATA0, 1, N, 0xffff);
	CHECK_REFUSED(&f, "next 65535");
	/* a head of num, in the avail ring */
	set_desc(&f, 0, DATA0, 1, 0, 0);
	put16(f.host[0] + AVAIL_OFF + 4, 8);
	CHECK_REFUSED(&f, "head 8");
	put16(f.host[0] + AVAIL_OFF + 4, 0);
	CHECK_EQ_INT(casfs_vq_pop(&f.q, &f.m, &f.req, &f.err), 1);
}

TEST(refuses_address_outside_memory)
{
	_cleanup_fake_ struct fake f = { 0 };
	CHECK_EQ_INT(fake_setup(&f, 8, 0), 0);
	const struct {
		uint64_t addr;
		uint32_t len;
	} bad[] = {
		{ 0x30000, 4 },                         /* the gap */
		{ 0, 1 },                               /* below everything */
		{ R2_GPA + REGION_SIZE, 1 },            /* just past the last region */
		{ region_uva[0] + 0x8000, 4 },          /* a UVA is not a GPA */
		{ R0_GPA + REGION_SIZE - 4, 8 },        /* region 0 into the gap */
		{ R1_GPA + REGION_SIZE - 4, 8 },        /* crossing regions 1 and 2 */
		{ R1_GPA, 2 * REGION_SIZE },            /* spanning both */
		{ UINT64_MAX - 0xf, 0x20 + R0_GPA },    /* addr + len wraps into region 0 */
		{ UINT64_MAX, 2 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		for (int w = 0; w < 2; w++) {
			/* as the first (readable or writable) and as a later one */
			set_desc(&f, 0, bad[i].addr, bad[i].len, w ? W : 0, 0);
			if (i == 0 && w == 0)
				offer(&f, 0);
			CHECK_REFUSED(&f, "not inside one guest memory region");
			set_desc(&f, 0, DATA0, 4, N, 1);
			set_desc(&f, 1, bad[i].addr, bad[i].len, w ? W : 0, 0);
			CHECK_REFUSED(&f, "descriptor 1 ");
		}
	}
	/* the same chain with a good address goes through */
	set_desc(&f, 1, R1_GPA + REGION_SIZE - 4, 4, W, 0);
	CHECK_EQ_INT(casfs_vq_pop(&f.q, &f.m, &f.req, &f.err), 1);
}

TEST(refuses_readable_after_writable)
{
	_cleanup_fake_ struct fake f = { 0 };
	CHECK_EQ_INT(fake_setup(&f, 8, 0), 0);
	set_desc(&f, 0, DATA0, 4, N, 1);
	set_desc(&f, 1, DATA1, 4, N | W, 2);
	set_desc(&f, 2, DATA0 + 8, 4, 0, 0);
	offer(&f, 0);
	CHECK_REFUSED(&f, "readable descriptor 2 after a writable");
}

TEST(refuses_indirect)
{
	_cleanup_fake_ struct fake f = { 0 };
	CHECK_EQ_INT(fake_setup(&f, 8, 0), 0);
	/* a well-formed indirect table of 2 descriptors at DATA1 */
	set_desc(&f, 0, DATA1, 32, IND, 0);
	offer(&f, 0);
	CHECK_REFUSED(&f, "indirect");
	/* indirect later in the chain */
	set_desc(&f, 0, DATA0, 4, N, 4);
	set_desc(&f, 4, DATA1, 32, IND | W, 0);
	CHECK_REFUSED(&f, "descriptor 4 is indirect");
}

TEST(refuses_too_long_request)
{
	_cleanup_fake_ struct fake f = { 0 };
	CHECK_EQ_INT(fake_setup(&f, 32, 0), 0);
	/* 16 readable descriptors of a whole region each: exactly 1 MiB */
	_Static_assert(16 * REGION_SIZE == CASFS_VQ_MAX_REQUEST, "test layout");
	for (uint16_t i = 0; i < 16; i++)
		set_desc(&f, i, R1_GPA, REGION_SIZE, i < 15 ? N : 0, i + 1);
	offer(&f, 0);
	CHECK_EQ_INT(casfs_vq_pop(&f.q, &f.m, &f.req, &f.err), 1);
	CHECK_EQ_INT(f.req.in.len, CASFS_VQ_MAX_REQUEST);
	/* one byte more */
	set_desc(&f, 15, R1_GPA, REGION_SIZE, N, 16);
	set_desc(&f, 16, R2_GPA, 1, 0, 0);
	offer(&f, 0);
	CHECK_REFUSED(&f, "readable bytes");
	/* a single descriptor claiming 4 GiB - 1 */
	set_desc(&f, 0, R1_GPA, UINT32_MAX, 0, 0);
	CHECK_REFUSED(&f, "not inside");
}

TEST(refuses_chain_over_4gib)
{
	_cleanup_fake_ struct fake f = { 0 };
	CHECK_EQ_INT(fake_setup(&f, 8, 0), 0);
	/* a fourth region of 4 GiB of address space nobody may touch: pop
	 * never touches writable memory */
	uint64_t big = 1ull << 32;
	void *res = mmap(NULL, big, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	CHECK(res != MAP_FAILED);
	f.m.r[3] = (struct casfs_guest_region){ 1ull << 40, big, 1ull << 44, res };
	f.m.n = 4;
	set_desc(&f, 0, DATA0, 4, N, 1);
	set_desc(&f, 1, 1ull << 40, 0x80000000u, N | W, 2);
	set_desc(&f, 2, 1ull << 40, 0x7ffffffbu, W, 0); /* total 2^32 - 1: fits */
	offer(&f, 0);
	int r = casfs_vq_pop(&f.q, &f.m, &f.req, &f.err);
	size_t out_len = f.req.out_len;
	set_desc(&f, 2, 1ull << 40, 0x7ffffffcu, W, 0); /* total 2^32 */
	offer(&f, 0);
	uint16_t before = f.q.last_avail;
	int r2 = casfs_vq_pop(&f.q, &f.m, &f.req, &f.err);
	munmap(res, big);
	CHECK_EQ_INT(r, 1);
	CHECK_EQ_INT(out_len, 0xfffffffbu); /* the 4 readable bytes are not out */
	CHECK_EQ_INT(r2, -EBADMSG);
	CHECK(strstr(f.err.msg, "4 GiB") != NULL);
	CHECK_EQ_INT(f.q.last_avail, before);
}

TEST(refuses_too_many_writable)
{
	_cleanup_fake_ struct fake f = { 0 };
	CHECK_EQ_INT(fake_setup(&f, 512, 0), 0);
	/* one readable, then CASFS_VQ_MAX_OUT writable: fine */
	set_desc(&f, 0, DATA0, 4, N, 1);
	for (uint16_t i = 1; i <= CASFS_VQ_MAX_OUT; i++)
		set_desc(&f, i, DATA1 + 8 * i, 8, W | (i < CASFS_VQ_MAX_OUT ? N : 0), i + 1);
	offer(&f, 0);
	CHECK_EQ_INT(casfs_vq_pop(&f.q, &f.m, &f.req, &f.err), 1);
	CHECK_EQ_INT(f.req.n_out, CASFS_VQ_MAX_OUT);
	CHECK_EQ_INT(f.req.out_len, 8 * CASFS_VQ_MAX_OUT);
	/* one more */
	set_desc(&f, CASFS_VQ_MAX_OUT, DATA1, 8, W | N, CASFS_VQ_MAX_OUT + 1);
	set_desc(&f, CASFS_VQ_MAX_OUT + 1, DATA1, 8, W, 0);
	offer(&f, 0);
	CHECK_REFUSED(&f, "writable descriptors");
}
