/* gRPC framing, status table, grpc-message and grpc-timeout (rpc/grpc.h). */
#include "test.h"

#include <errno.h>

#include "basic/buf.h"
#include "rpc/grpc.h"

struct got {
	struct casfs_buf all; /* [len:u8][bytes]... of each message */
	int n;
	int stop_at; /* return -ECANCELED on this message (1-based), 0: never */
};

static int on_message(void *userdata, const uint8_t *msg, size_t len)
{
	struct got *g = userdata;
	g->n++;
	if (g->stop_at == g->n)
		return -ECANCELED;
	casfs_buf_append_byte(&g->all, (uint8_t)len);
	return casfs_buf_append(&g->all, msg, len);
}

TEST(frames_split_anywhere_deframe_the_same)
{
	/* three messages: "abc", "", 300 bytes of 'x' */
	struct casfs_buf in = CASFS_BUF_INIT;
	uint8_t big[300];
	memset(big, 'x', sizeof(big));
	CHECK_EQ_INT(casfs_grpc_frame_append(&in, (const uint8_t *)"abc", 3), 0);
	CHECK_EQ_INT(casfs_grpc_frame_append(&in, NULL, 0), 0);
	CHECK_EQ_INT(casfs_grpc_frame_append(&in, big, sizeof(big)), 0);
	CHECK_EQ_INT(in.len, 5 + 3 + 5 + 5 + 300);
	CHECK(!memcmp(in.data, "\0\0\0\0\3abc\0\0\0\0\0\0\0\0\1\x2c", 18));
	for (size_t step = 1; step <= in.len; step++) {
		struct casfs_grpc_deframer d;
		struct got g = { CASFS_BUF_INIT, 0, 0 };
		casfs_grpc_deframer_init(&d, 1000);
		for (size_t off = 0; off < in.len; off += step) {
			size_t n = off + step > in.len ? in.len - off : step;
			CHECK_EQ_INT(casfs_grpc_deframer_feed(&d, in.data + off, n, on_message, &g, NULL), 0);
		}
		CHECK_EQ_INT(casfs_grpc_deframer_end(&d, NULL), 0);
		CHECK_EQ_INT(g.n, 3);
		CHECK_EQ_INT(g.all.len, 1 + 3 + 1 + 1 + 300);
		CHECK(!memcmp(g.all.data, "\3abc\0", 5));
		CHECK_EQ_INT(g.all.data[5], 300 & 0xff);
		CHECK(!memcmp(g.all.data + 6, big, 300));
		casfs_buf_release(&g.all);
		casfs_grpc_deframer_release(&d);
	}
	casfs_buf_release(&in);
}

TEST(oversized_compressed_truncated_and_stopped)
{
	struct casfs_grpc_deframer d;
	struct casfs_error err;
	struct got g = { CASFS_BUF_INIT, 0, 0 };
	/* one byte over the limit: refused before any body byte is buffered */
	casfs_grpc_deframer_init(&d, 16);
	CHECK_EQ_INT(casfs_grpc_deframer_feed(&d, (const uint8_t *)"\0\0\0\0\x11", 5, on_message, &g, &err),
		     -EMSGSIZE);
	CHECK(strstr(err.msg, "17 bytes"));
	CHECK_EQ_INT(d.body.cap, 0);
	CHECK_EQ_INT(casfs_grpc_deframer_feed(&d, (const uint8_t *)"x", 1, on_message, &g, NULL), -EPROTO);
	casfs_grpc_deframer_release(&d);
	/* exactly the limit is fine */
	casfs_grpc_deframer_init(&d, 3);
	CHECK_EQ_INT(casfs_grpc_deframer_feed(&d, (const uint8_t *)"\0\0\0\0\3abc", 8, on_message, &g, NULL), 0);
	CHECK_EQ_INT(g.n, 1);
	casfs_grpc_deframer_release(&d);
	/* compressed flag */
	casfs_grpc_deframer_init(&d, 100);
	CHECK_EQ_INT(casfs_grpc_deframer_feed(&d, (const uint8_t *)"\1\0\0\0\1a", 6, on_message, &g, &err),
		     -EPROTO);
	CHECK(strstr(err.msg, "compressed"));
	casfs_grpc_deframer_release(&d);
	/* truncated in the header and in the body */
	casfs_grpc_deframer_init(&d, 100);
	CHECK_EQ_INT(casfs_grpc_deframer_feed(&d, (const uint8_t *)"\0\0\0", 3, on_message, &g, NULL), 0);
	CHECK_EQ_INT(casfs_grpc_deframer_end(&d, &err), -EPROTO);
	casfs_grpc_deframer_release(&d);
	casfs_grpc_deframer_init(&d, 100);
	CHECK_EQ_INT(casfs_grpc_deframer_feed(&d, (const uint8_t *)"\0\0\0\0\4ab", 7, on_message, &g, NULL), 0);
	casfs_error_clear(&err);
	CHECK_EQ_INT(casfs_grpc_deframer_end(&d, &err), -EPROTO);
	CHECK(strstr(err.msg, "2 of 4"));
	casfs_grpc_deframer_release(&d);
	/* the callback's error stops the feed and is returned */
	struct got h = { CASFS_BUF_INIT, 0, 2 };
	casfs_grpc_deframer_init(&d, 100);
	CHECK_EQ_INT(casfs_grpc_deframer_feed(&d, (const uint8_t *)"\0\0\0\0\1a\0\0\0\0\1b\0\0\0\0\1c", 18,
					      on_message, &h, NULL), -ECANCELED);
	CHECK_EQ_INT(h.n, 2);
	casfs_grpc_deframer_release(&d);
	casfs_buf_release(&g.all);
	casfs_buf_release(&h.all);
}

TEST(status_table_both_ways)
{
	CHECK_EQ_INT(casfs_grpc_status_from_errno(-ENOENT), CASFS_GRPC_NOT_FOUND);
	CHECK_EQ_INT(casfs_grpc_status_from_errno(-EBADMSG), CASFS_GRPC_DATA_LOSS);
	CHECK_EQ_INT(casfs_grpc_status_from_errno(-EINVAL), CASFS_GRPC_INVALID_ARGUMENT);
	CHECK_EQ_INT(casfs_grpc_status_from_errno(-EMSGSIZE), CASFS_GRPC_RESOURCE_EXHAUSTED);
	CHECK_EQ_INT(casfs_grpc_status_from_errno(-EXDEV), CASFS_GRPC_INTERNAL);
	CHECK_EQ_INT(casfs_grpc_status_from_errno(0), CASFS_GRPC_OK);
	CHECK_EQ_INT(casfs_grpc_status_to_errno(CASFS_GRPC_NOT_FOUND), -ENOENT);
	CHECK_EQ_INT(casfs_grpc_status_to_errno(CASFS_GRPC_UNIMPLEMENTED), -EOPNOTSUPP);
	CHECK_EQ_INT(casfs_grpc_status_to_errno(CASFS_GRPC_DATA_LOSS), -EBADMSG);
	CHECK_EQ_INT(casfs_grpc_status_to_errno((enum casfs_grpc_status)99), -EIO);
	CHECK_EQ_STR(casfs_grpc_status_name(CASFS_GRPC_DEADLINE_EXCEEDED), "DEADLINE_EXCEEDED");
	CHECK_EQ_STR(casfs_grpc_status_name((enum casfs_grpc_status)17), "?");
	unsigned v;
	CHECK_EQ_INT(casfs_grpc_status_parse("14", 2, &v), 0);
	CHECK_EQ_INT(v, 14);
	CHECK_EQ_INT(casfs_grpc_status_parse("", 0, &v), -EPROTO);
	CHECK_EQ_INT(casfs_grpc_status_parse("1x", 2, &v), -EPROTO);
	CHECK_EQ_INT(casfs_grpc_status_parse("1234", 4, &v), -EPROTO);
	CHECK_EQ_INT(casfs_grpc_status_parse("-1", 2, &v), -EPROTO);
}

TEST(grpc_message_percent_encoding)
{
	struct casfs_buf b = CASFS_BUF_INIT;
	CHECK_EQ_INT(casfs_grpc_message_encode("blob 50% \xc3\xa9\n", &b), 0);
	CHECK_EQ_STR((char *)b.data, "blob 50%25 %C3%A9%0A");
	struct casfs_buf d = CASFS_BUF_INIT;
	CHECK_EQ_INT(casfs_grpc_message_decode((char *)b.data, b.len, &d), 0);
	CHECK_EQ_STR((char *)d.data, "blob 50% \xc3\xa9\n");
	/* malformed escapes stay as they are */
	d.len = 0;
	CHECK_EQ_INT(casfs_grpc_message_decode("a%zz%4", 6, &d), 0);
	CHECK_EQ_STR((char *)d.data, "a%zz%4");
	d.len = 0;
	CHECK_EQ_INT(casfs_grpc_message_decode("%41%", 4, &d), 0);
	CHECK_EQ_STR((char *)d.data, "A%");
	casfs_buf_release(&b);
	casfs_buf_release(&d);
}

TEST(grpc_timeout_units)
{
	int64_t ms;
	CHECK_EQ_INT(casfs_grpc_timeout_parse("30S", 3, &ms), 0);
	CHECK_EQ_INT(ms, 30000);
	CHECK_EQ_INT(casfs_grpc_timeout_parse("2H", 2, &ms), 0);
	CHECK_EQ_INT(ms, 7200000);
	CHECK_EQ_INT(casfs_grpc_timeout_parse("1500u", 5, &ms), 0);
	CHECK_EQ_INT(ms, 2);
	CHECK_EQ_INT(casfs_grpc_timeout_parse("1n", 2, &ms), 0);
	CHECK_EQ_INT(ms, 1);
	CHECK_EQ_INT(casfs_grpc_timeout_parse("99999999M", 9, &ms), 0);
	CHECK_EQ_INT(ms, 99999999LL * 60000);
	CHECK_EQ_INT(casfs_grpc_timeout_parse("123456789m", 10, &ms), -EPROTO);
	CHECK_EQ_INT(casfs_grpc_timeout_parse("S", 1, &ms), -EPROTO);
	CHECK_EQ_INT(casfs_grpc_timeout_parse("10x", 3, &ms), -EPROTO);
	CHECK_EQ_INT(casfs_grpc_timeout_parse("1 S", 3, &ms), -EPROTO);
	char out[16];
	casfs_grpc_timeout_format(30000, out);
	CHECK_EQ_STR(out, "30000m");
	casfs_grpc_timeout_format(123456789012LL, out);
	CHECK_EQ_STR(out, "99999999S");
	casfs_grpc_timeout_format(100000000, out);
	CHECK_EQ_STR(out, "100000S");
}
