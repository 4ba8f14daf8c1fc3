/* Fuzz the virtiofs request path: what a guest sends on a request queue,
 * answered by libfuse and casfs's FUSE operations over a small store (the
 * decoder of virtiofs.c's answer path, libfuse's request parsing, and the
 * fs core behind them).
 *
 * Every run gets a fresh connection, which first receives a well-formed
 * FUSE_INIT (so that the fuzzed requests reach the operations) and then
 * the input, cut into requests: each starts with a fuse_in_header whose
 * `len` says how long it is (clamped to what is left); its unique is
 * forced to a known value.  The reply room comes from the input's first
 * byte (16 .. 64 KiB).  Checked: every reply fits the room, is at least a
 * fuse_out_header, says its own length and the request's unique; nothing
 * is written outside the room (ASan).  The store holds one store path
 * with a file, a nested directory and a symlink. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/fuse.h>

#include "fs/fs.h"
#include "store/import.h"
#include "store/store.h"
#include "virtiofs/virtiofs-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                         \
	do {                                                                             \
		if (!(c))                                                                \
			abort();                                                         \
	} while (0)

#define UNIQUE 0x5eed
#define MAX_ROOM (64u << 10)

static struct casfs_store *store;
static struct casfs_fs *fs;

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	CHECK(f);
	fputs(text, f);
	CHECK(fclose(f) == 0);
}

/* Once per process: the store and the fs (never freed: the fuzzer's life). */
static void setup(void)
{
	if (fs)
		return;
	char dir[] = "/tmp/casfs-fuzz-fuse.XXXXXX";
	CHECK(mkdtemp(dir));
	char p[256];
	snprintf(p, sizeof(p), "%s/tree", dir);
	CHECK(mkdir(p, 0755) == 0);
	snprintf(p, sizeof(p), "%s/tree/hello.txt", dir);
	write_file(p, "hello\n");
	snprintf(p, sizeof(p), "%s/tree/sub", dir);
	CHECK(mkdir(p, 0755) == 0);
	snprintf(p, sizeof(p), "%s/tree/sub/deep", dir);
	write_file(p, "deep down\n");
	snprintf(p, sizeof(p), "%s/tree/link", dir);
	CHECK(symlink("hello.txt", p) == 0);
	struct casfs_error err = { 0 };
	CHECK(casfs_store_open("memory:", 0, &store, &err) == 0);
	struct casfs_import_result res;
	snprintf(p, sizeof(p), "%s/tree", dir);
	CHECK(casfs_import_path(store, p, NULL, &res, &err) == 0);
	struct casfs_fs_options fo = { .list_root = true };
	CHECK(casfs_fs_new(store, &fo, &fs) == 0);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
}

/* Send `len` request bytes with `room` bytes for the reply; check it. */
static void send_request(struct casfs_virtiofs_conn *cn, const uint8_t *p, size_t len,
			 size_t room, uint8_t *out)
{
	struct casfs_vq_req req;
	casfs_vq_req_init(&req);
	CHECK(casfs_buf_append(&req.in, p, len) == 0);
	if (len >= sizeof(struct fuse_in_header)) {
		struct fuse_in_header h;
		memcpy(&h, req.in.data, sizeof(h));
		h.unique = UNIQUE;
		memcpy(req.in.data, &h, sizeof(h));
	}
	/* the room in two pieces, as descriptors often come */
	size_t first = room / 3;
	req.out[0] = (struct iovec){ out, first };
	req.out[1] = (struct iovec){ out + first, room - first };
	req.n_out = 2;
	req.out_len = room;
	size_t n = casfs_virtiofs_conn_answer(cn, &req);
	CHECK(n <= room);
	if (n) {
		struct fuse_out_header o;
		CHECK(n >= sizeof(o));
		memcpy(&o, out, sizeof(o));
		CHECK(o.len == n);
		CHECK(o.unique == UNIQUE);
		CHECK(o.error <= 0);
	}
	casfs_vq_req_release(&req);
}

static void init(struct casfs_virtiofs_conn *cn, uint8_t *out)
{
	struct {
		struct fuse_in_header h;
		struct fuse_init_in i;
	} m = { 0 };
	m.h.len = sizeof(m);
	m.h.opcode = FUSE_INIT;
	m.h.nodeid = 0;
	m.i.major = FUSE_KERNEL_VERSION;
	m.i.minor = 36;
	m.i.max_readahead = 128 << 10;
	m.i.flags = FUSE_ASYNC_READ | FUSE_DO_READDIRPLUS | FUSE_PARALLEL_DIROPS;
	send_request(cn, (const uint8_t *)&m, sizeof(m), MAX_ROOM, out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();
	if (size < 1)
		return 0;
	size_t room = 16 + (size_t)data[0] * 256;
	data++, size--;
	static uint8_t *out;
	if (!out)
		CHECK((out = malloc(MAX_ROOM)));
	struct casfs_virtiofs_conn *cn = NULL;
	CHECK(casfs_virtiofs_conn_new(fs, &cn) == 0);
	init(cn, out);
	for (int k = 0; k < 64 && size > 0; k++) {
		size_t len = size;
		if (size >= sizeof(struct fuse_in_header)) {
			uint32_t l;
			memcpy(&l, data, sizeof(l));
			if (l >= sizeof(struct fuse_in_header) && l < size)
				len = l;
		}
		uint8_t *room_buf = malloc(room); /* exact size: ASan sees any overrun */
		CHECK(room_buf);
		send_request(cn, data, len, room, room_buf);
		free(room_buf);
		data += len;
		size -= len;
	}
	casfs_virtiofs_conn_free(cn);
	return 0;
}
