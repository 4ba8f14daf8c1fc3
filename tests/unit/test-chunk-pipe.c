/* The producer/consumer chunk pipe (src/basic/chunk-pipe.h): bytes
 * arrive whole and in order through few small slots, the producer's
 * error reaches the consumer after the bytes before it, and a cancelling
 * consumer stops a producer that is blocked on a full pipe.  Also run
 * under TSan by make check. */
#include <errno.h>
#include <pthread.h>

#include "basic/buf.h"
#include "basic/chunk-pipe.h"
#include "test.h"

#define TOTAL (5u * 1024 * 1024 + 3)

struct prod {
	struct casfs_chunk_pipe *p;
	const uint8_t *data;
	size_t len;
	int close_with;
	int push_result; /* the first failing push, or 0 */
};

static void *producer(void *arg)
{
	struct prod *pr = arg;
	uint32_t x = 99;
	for (size_t off = 0; off < pr->len;) {
		x = x * 1664525 + 1013904223;
		size_t n = 1 + (x >> 8) % 100000;
		if (n > pr->len - off)
			n = pr->len - off;
		int r = casfs_chunk_pipe_push(pr->p, pr->data + off, n);
		if (r < 0) {
			pr->push_result = r;
			break;
		}
		off += n;
	}
	casfs_chunk_pipe_close(pr->p, pr->close_with);
	return NULL;
}

static uint8_t *pattern(void)
{
	uint8_t *d = malloc(TOTAL);
	for (size_t i = 0; d && i < TOTAL; i++)
		d[i] = (uint8_t)(i * 7 + (i >> 13));
	return d;
}

TEST(bytes_arrive_whole_and_in_order)
{
	uint8_t *d = pattern();
	CHECK(d != NULL);
	struct prod pr = { casfs_chunk_pipe_new(3, 4096), d, TOTAL, 0, 0 };
	CHECK(pr.p != NULL);
	pthread_t t;
	CHECK_EQ_INT(pthread_create(&t, NULL, producer, &pr), 0);
	struct casfs_buf got = CASFS_BUF_INIT;
	ssize_t n;
	const void *p;
	while ((n = casfs_chunk_pipe_pop(pr.p, &p)) > 0) {
		if (n > 4096)
			break;
		casfs_buf_append(&got, p, (size_t)n);
	}
	pthread_join(t, NULL);
	CHECK_EQ_INT(n, 0);
	CHECK_EQ_INT(got.len, TOTAL);
	CHECK(memcmp(got.data, d, TOTAL) == 0);
	casfs_buf_release(&got);
	casfs_chunk_pipe_free(pr.p);
	free(d);
}

TEST(producer_error_comes_after_its_bytes)
{
	uint8_t *d = pattern();
	CHECK(d != NULL);
	struct prod pr = { casfs_chunk_pipe_new(2, 1000), d, 10000, -EPROTO, 0 };
	CHECK(pr.p != NULL);
	pthread_t t;
	CHECK_EQ_INT(pthread_create(&t, NULL, producer, &pr), 0);
	size_t total = 0;
	ssize_t n;
	const void *p;
	while ((n = casfs_chunk_pipe_pop(pr.p, &p)) > 0)
		total += (size_t)n;
	pthread_join(t, NULL);
	CHECK_EQ_INT(n, -EPROTO);
	CHECK_EQ_INT(total, 10000);
	casfs_chunk_pipe_free(pr.p);
	free(d);
}

TEST(cancel_stops_a_blocked_producer)
{
	uint8_t *d = pattern();
	CHECK(d != NULL);
	struct prod pr = { casfs_chunk_pipe_new(2, 512), d, TOTAL, 0, 0 };
	CHECK(pr.p != NULL);
	pthread_t t;
	CHECK_EQ_INT(pthread_create(&t, NULL, producer, &pr), 0);
	const void *p;
	CHECK(casfs_chunk_pipe_pop(pr.p, &p) > 0);
	casfs_chunk_pipe_cancel(pr.p);
	pthread_join(t, NULL); /* would hang if the producer stayed blocked */
	CHECK_EQ_INT(pr.push_result, -ECANCELED);
	casfs_chunk_pipe_free(pr.p);
	free(d);
}
