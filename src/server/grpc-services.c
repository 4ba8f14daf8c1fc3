/* The tvix/snix services over a casfs store (grpc-services.h).
 *
 * Each RPC is a handful of grpc-server.h hooks: unary methods do their
 * work in `message` and queue the one response; server streams set up in
 * `message` and produce in `more` (a Read: one verified 1 MiB BlobChunk
 * per call; a recursive directory Get: breadth-first, up to ~256 KiB of
 * directories per call; List: a page of 64 PathInfos per call); client
 * streams collect in `message` and answer in `end`. */
#include "grpc-services.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <search.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../basic/encoding.h"
#include "../basic/util.h"
#include "../digest/outboard.h"
#include "../proto/rpc-proto.h"
#include "../store/export.h"
#include "../storepath/storepath.h"

#define DIR_PUT_MAX_BYTES (512u << 20)
#define DIR_PUT_MAX_COUNT (1u << 20)
#define DIR_GET_BATCH (256u << 10)
#define LIST_PAGE 64

struct casfs_grpc_services {
	struct casfs_store *store;
	struct casfs_grpc_services_options o;
};

int casfs_grpc_services_new(struct casfs_store *store, const struct casfs_grpc_services_options *o,
			    struct casfs_grpc_services **ret)
{
	struct casfs_grpc_services *sv = calloc(1, sizeof(*sv));
	if (!sv)
		return -ENOMEM;
	sv->store = store;
	if (o)
		sv->o = *o;
	*ret = sv;
	return 0;
}

void casfs_grpc_services_free(struct casfs_grpc_services *sv)
{
	free(sv);
}

static struct casfs_grpc_services *SV(struct casfs_grpc_server_call *call)
{
	return casfs_grpc_server_call_userdata(call);
}

/* Fail with a status of our choosing. */
static int status_error(struct casfs_grpc_server_call *call, enum casfs_grpc_status st, int code,
			struct casfs_error *err, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static int status_error(struct casfs_grpc_server_call *call, enum casfs_grpc_status st, int code,
			struct casfs_error *err, const char *fmt, ...)
{
	char m[sizeof(err->msg)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	casfs_grpc_server_call_set_status(call, st);
	casfs_error_clear(err);
	return casfs_error_set(err, code, "%s", m);
}

static int check_writable(struct casfs_grpc_server_call *call, struct casfs_error *err)
{
	if (SV(call)->o.read_only)
		return status_error(call, CASFS_GRPC_PERMISSION_DENIED, -EROFS, err,
				    "this daemon is read-only");
	return 0;
}

static int send_buf(struct casfs_grpc_server_call *call, struct casfs_buf *b, const char *what,
		    struct casfs_error *err)
{
	int r = casfs_grpc_server_call_send(call, b->data, b->len);
	if (r == -EMSGSIZE)
		return casfs_error_set(err, r, "%s of %zu bytes does not fit a gRPC message", what,
				       b->len);
	return r;
}

static int digest_cmp(const void *a, const void *b)
{
	return memcmp(a, b, CASFS_B3_LEN);
}

/* Add a digest to a tsearch set: 1 added, 0 already there, -ENOMEM. */
static int seen_add(void **set, const uint8_t d[CASFS_B3_LEN])
{
	if (tfind(d, set, digest_cmp))
		return 0;
	uint8_t *copy = malloc(CASFS_B3_LEN);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, d, CASFS_B3_LEN);
	if (!tsearch(copy, set, digest_cmp)) {
		free(copy);
		return -ENOMEM;
	}
	return 1;
}

/* ---- BlobService ---------------------------------------------------------- */

static int blob_digest(struct casfs_grpc_server_call *call, const struct casfs_rpc_bytes *d,
		       struct casfs_error *err)
{
	if (d->len != CASFS_B3_LEN)
		return status_error(call, CASFS_GRPC_INVALID_ARGUMENT, -EINVAL, err,
				    "invalid digest length %zu", d->len);
	return 0;
}

static int blob_absent(int r, const uint8_t d[CASFS_B3_LEN], struct casfs_error *err)
{
	if (r != -ENOENT)
		return r;
	char s[CASFS_B3_STR_LEN + 1];
	casfs_b3_format(d, s);
	casfs_error_clear(err);
	return casfs_error_set(err, -ENOENT, "blob %s not found", s);
}

static int stat_message(struct casfs_grpc_server_call *call, const uint8_t *msg, size_t len,
			struct casfs_error *err)
{
	struct casfs_grpc_services *sv = SV(call);
	struct casfs_stat_blob_request q;
	int r = casfs_stat_blob_request_decode(msg, len, &q, err);
	if (r < 0 || (r = blob_digest(call, &q.digest, err)) < 0)
		return r;
	uint64_t size;
	if ((r = casfs_blob_stat(sv->store->blobs, q.digest.p, &size)) < 0)
		return blob_absent(r, q.digest.p, err);
	/* The blob as its one chunk: StatBlobResponse has no size field, and
	 * this is how a client learns the size without reading the blob
	 * (snix's clients read a blob of 0 or 1 chunks whole). */
	struct casfs_chunk_meta whole = { .size = size };
	memcpy(whole.digest, q.digest.p, CASFS_B3_LEN);
	struct casfs_stat_blob_response resp = { .chunks = &whole, .n_chunks = 1 };
	_cleanup_free_ uint8_t *bao = NULL;
	size_t bao_len = 0;
	if (q.send_bao && casfs_outboard_wanted(size)) {
		struct casfs_blob_reader *rd = NULL;
		if ((r = casfs_blob_open(sv->store->blobs, q.digest.p, &rd)) < 0)
			return blob_absent(r, q.digest.p, err);
		struct casfs_outboard ob = { 0 };
		enum casfs_outboard_source src;
		r = casfs_blob_outboard(sv->store->blobs, rd, &ob, &src, NULL, err);
		casfs_blob_reader_close(rd);
		if (r >= 0)
			r = casfs_outboard_encode(&ob, &bao, &bao_len);
		casfs_outboard_release(&ob);
		if (r < 0)
			return r;
		/* A blob of over 8 GiB has an outboard too large for one
		 * message: none is sent, the client checks the blob whole. */
		if (bao_len + 64 < CASFS_GRPC_MAX_MESSAGE)
			resp.bao = (struct casfs_rpc_bytes){ .p = bao, .len = bao_len, .present = true };
	}
	struct casfs_buf b = CASFS_BUF_INIT;
	r = casfs_stat_blob_response_encode(&resp, &b);
	if (r >= 0)
		r = send_buf(call, &b, "StatBlobResponse", err);
	casfs_buf_release(&b);
	return r;
}

#define READ_AHEAD (16 << 20)
#define READ_AHEAD_STEP (4u << 20)

struct blob_read {
	struct casfs_blob_reader *r;
	struct casfs_outboard ob; /* n == 0: a blob of one group or less */
	uint64_t off;
};

static void read_release(struct casfs_grpc_server_call *call)
{
	struct blob_read *st = *casfs_grpc_server_call_state(call);
	if (!st)
		return;
	casfs_blob_reader_close(st->r);
	casfs_outboard_release(&st->ob);
	free(st);
}

static int damaged(const uint8_t d[CASFS_B3_LEN], uint64_t off, struct casfs_error *err)
{
	char s[CASFS_B3_STR_LEN + 1];
	casfs_b3_format(d, s);
	casfs_error_clear(err);
	return casfs_error_set(err, -EBADMSG, "blob %s is damaged at offset %" PRIu64, s, off);
}

static int read_message(struct casfs_grpc_server_call *call, const uint8_t *msg, size_t len,
			struct casfs_error *err)
{
	struct casfs_grpc_services *sv = SV(call);
	struct casfs_rpc_bytes d;
	int r = casfs_rpc_bytes1_decode(msg, len, &d, err);
	if (r < 0 || (r = blob_digest(call, &d, err)) < 0)
		return r;
	struct blob_read *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	*casfs_grpc_server_call_state(call) = st;
	if ((r = casfs_blob_open(sv->store->blobs, d.p, &st->r)) < 0)
		return blob_absent(r, d.p, err);
	if (casfs_outboard_wanted(st->r->size)) {
		enum casfs_outboard_source src;
		r = casfs_blob_outboard(sv->store->blobs, st->r, &st->ob, &src, NULL, err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* One BlobChunk, framed straight into the output queue, checked before it
 * counts as queued. */
static int read_more(struct casfs_grpc_server_call *call, struct casfs_error *err)
{
	struct blob_read *st = *casfs_grpc_server_call_state(call);
	uint64_t size = st->r->size;
	if (st->off >= size)
		return 0;
	size_t n = (size_t)MIN((uint64_t)CASFS_GRPC_CHUNK, size - st->off);
	struct casfs_buf *out = casfs_grpc_server_call_out(call);
	size_t mark = out->len;
	int r = casfs_blob_chunk_header_append(n, out);
	if (r >= 0)
		r = casfs_buf_reserve(out, n);
	if (r < 0) {
		out->len = mark;
		return r;
	}
	uint8_t *data = out->data + out->len;
	/* Keep the disk READ_AHEAD ahead of us: one thread reads, checks and
	 * sends in turn, so without it every chunk waits for the disk. */
	int fd = casfs_blob_reader_fd(st->r);
	if (fd >= 0 && st->off % READ_AHEAD_STEP == 0)
		(void)posix_fadvise(fd, (off_t)st->off, READ_AHEAD, POSIX_FADV_WILLNEED);
	r = casfs_blob_reader_pread_full(st->r, data, n, st->off);
	if (r == -EBADMSG)
		r = damaged(st->r->digest, size, err); /* shorter than it says */
	if (r >= 0) {
		if (st->ob.n) {
			uint64_t glen = casfs_outboard_group_len(&st->ob);
			size_t bad;
			r = casfs_outboard_check(&st->ob, (size_t)(st->off / glen),
						 (size_t)((n + glen - 1) / glen), data, 1, &bad);
			if (r == -EBADMSG)
				r = damaged(st->r->digest, (uint64_t)bad * glen, err);
		} else {
			uint8_t got[CASFS_B3_LEN];
			casfs_b3(data, n, got);
			if (memcmp(got, st->r->digest, CASFS_B3_LEN) != 0)
				r = damaged(st->r->digest, 0, err);
		}
	}
	if (r < 0) {
		out->len = mark;
		return r;
	}
	out->len += n;
	st->off += n;
	return st->off < size ? 1 : 0;
}

static int bput_start(struct casfs_grpc_server_call *call, struct casfs_error *err)
{
	int r = check_writable(call, err);
	if (r < 0)
		return r;
	struct casfs_blob_writer *w = NULL;
	if ((r = casfs_blob_create(SV(call)->store->blobs, &w)) < 0)
		return casfs_error_set(err, r, "cannot create a blob: %s", strerror(-r));
	*casfs_grpc_server_call_state(call) = w;
	return 0;
}

static int bput_message(struct casfs_grpc_server_call *call, const uint8_t *msg, size_t len,
			struct casfs_error *err)
{
	struct casfs_rpc_bytes data;
	int r = casfs_rpc_bytes1_decode(msg, len, &data, err);
	if (r < 0 || !data.len)
		return r;
	if ((r = casfs_blob_writer_write(*casfs_grpc_server_call_state(call), data.p, data.len)) < 0)
		return casfs_error_set(err, r, "cannot write the blob: %s", strerror(-r));
	return 0;
}

static int bput_end(struct casfs_grpc_server_call *call, struct casfs_error *err)
{
	struct casfs_blob_writer *w = TAKE_PTR(*casfs_grpc_server_call_state(call));
	uint8_t d[CASFS_B3_LEN];
	uint64_t size;
	int r = casfs_blob_writer_commit(w, NULL, d, &size);
	if (r < 0)
		return casfs_error_set(err, r, "cannot store the blob: %s", strerror(-r));
	struct casfs_buf b = CASFS_BUF_INIT;
	r = casfs_rpc_bytes1_encode(d, sizeof(d), &b);
	if (r >= 0)
		r = send_buf(call, &b, "PutBlobResponse", err);
	casfs_buf_release(&b);
	return r;
}

static void bput_release(struct casfs_grpc_server_call *call)
{
	casfs_blob_writer_abort(*casfs_grpc_server_call_state(call));
}

/* ---- DirectoryService ------------------------------------------------------- */

static int send_directory(struct casfs_grpc_server_call *call, const struct casfs_directory *d,
			  struct casfs_error *err)
{
	struct casfs_buf b = CASFS_BUF_INIT;
	int r = casfs_directory_encode(d, &b);
	if (r >= 0)
		r = send_buf(call, &b, "Directory", err);
	casfs_buf_release(&b);
	return r;
}

struct dir_get {
	struct casfs_buf queue; /* digests to send, in order */
	size_t off;
	void *seen;
};

static void dget_release(struct casfs_grpc_server_call *call)
{
	struct dir_get *st = *casfs_grpc_server_call_state(call);
	if (!st)
		return;
	casfs_buf_release(&st->queue);
	tdestroy(st->seen, free);
	free(st);
}

static int dget_message(struct casfs_grpc_server_call *call, const uint8_t *msg, size_t len,
			struct casfs_error *err)
{
	struct casfs_grpc_services *sv = SV(call);
	struct casfs_get_directory_request q;
	int r = casfs_get_directory_request_decode(msg, len, &q, err);
	if (r < 0)
		return r;
	if (!q.digest.present)
		return status_error(call, CASFS_GRPC_INVALID_ARGUMENT, -EINVAL, err,
				    "by_what needs to be specified");
	if (q.digest.len != CASFS_B3_LEN)
		return status_error(call, CASFS_GRPC_INVALID_ARGUMENT, -EINVAL, err,
				    "invalid digest length %zu", q.digest.len);
	if (!q.recursive) {
		struct casfs_directory d = { 0 };
		r = casfs_directory_get(sv->store->directories, q.digest.p, &d, err);
		if (r == -ENOENT) {
			char s[CASFS_B3_STR_LEN + 1];
			casfs_b3_format(q.digest.p, s);
			casfs_error_clear(err);
			return casfs_error_set(err, -ENOENT, "directory %s not found", s);
		}
		if (r >= 0)
			r = send_directory(call, &d, err);
		casfs_directory_release(&d);
		return r;
	}
	struct dir_get *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	*casfs_grpc_server_call_state(call) = st;
	casfs_buf_init(&st->queue);
	if ((r = casfs_buf_append(&st->queue, q.digest.p, CASFS_B3_LEN)) < 0 ||
	    (r = seen_add(&st->seen, q.digest.p)) < 0)
		return r;
	return 0;
}

/* Breadth-first from the root, each directory once.  An absent root is an
 * empty stream (snix); an absent child is an error naming it. */
static int dget_more(struct casfs_grpc_server_call *call, struct casfs_error *err)
{
	struct dir_get *st = *casfs_grpc_server_call_state(call);
	if (!st)
		return 0; /* not recursive: sent already */
	struct casfs_directory_service *ds = SV(call)->store->directories;
	while (st->off < st->queue.len && casfs_grpc_server_call_queued(call) < DIR_GET_BATCH) {
		uint8_t digest[CASFS_B3_LEN];
		memcpy(digest, st->queue.data + st->off, CASFS_B3_LEN);
		bool root = st->off == 0;
		st->off += CASFS_B3_LEN;
		struct casfs_directory d = { 0 };
		int r = casfs_directory_get(ds, digest, &d, err);
		if (r == -ENOENT && root) {
			casfs_error_clear(err);
			return 0;
		}
		if (r == -ENOENT) {
			char s[CASFS_B3_STR_LEN + 1];
			casfs_b3_format(digest, s);
			return status_error(call, CASFS_GRPC_INTERNAL, -ENOENT, err,
					    "directory %s does not exist", s);
		}
		if (r >= 0)
			r = send_directory(call, &d, err);
		for (size_t k = 0; r >= 0 && k < d.n_directories; k++) {
			r = seen_add(&st->seen, d.directories[k].digest);
			if (r > 0)
				r = casfs_buf_append(&st->queue, d.directories[k].digest, CASFS_B3_LEN);
		}
		casfs_directory_release(&d);
		if (r < 0)
			return r;
	}
	return st->off < st->queue.len ? 1 : 0;
}

struct dir_put {
	struct casfs_directory *dirs;
	size_t n, cap;
	size_t bytes;
	void *seen;
};

static void dput_release(struct casfs_grpc_server_call *call)
{
	struct dir_put *st = *casfs_grpc_server_call_state(call);
	if (!st)
		return;
	for (size_t i = 0; i < st->n; i++)
		casfs_directory_release(&st->dirs[i]);
	free(st->dirs);
	tdestroy(st->seen, free);
	free(st);
}

static int dput_start(struct casfs_grpc_server_call *call, struct casfs_error *err)
{
	int r = check_writable(call, err);
	if (r < 0)
		return r;
	struct dir_put *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	*casfs_grpc_server_call_state(call) = st;
	return 0;
}

static int dput_message(struct casfs_grpc_server_call *call, const uint8_t *msg, size_t len,
			struct casfs_error *err)
{
	struct dir_put *st = *casfs_grpc_server_call_state(call);
	if (st->n >= DIR_PUT_MAX_COUNT || st->bytes + len > DIR_PUT_MAX_BYTES)
		return status_error(call, CASFS_GRPC_RESOURCE_EXHAUSTED, -EMSGSIZE, err,
				    "more than %u directories or %u MiB in one Put",
				    DIR_PUT_MAX_COUNT, DIR_PUT_MAX_BYTES >> 20);
	struct casfs_directory d = { 0 };
	int r = casfs_directory_decode(msg, len, &d, err);
	if (r < 0)
		return r;
	uint8_t digest[CASFS_B3_LEN];
	if ((r = casfs_directory_digest(&d, digest)) < 0 || (r = seen_add(&st->seen, digest)) <= 0) {
		casfs_directory_release(&d);
		return r; /* 0: a duplicate, dropped */
	}
	if (st->n == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 16;
		struct casfs_directory *nd = realloc(st->dirs, cap * sizeof(*nd));
		if (!nd) {
			casfs_directory_release(&d);
			return -ENOMEM;
		}
		st->dirs = nd;
		st->cap = cap;
	}
	st->dirs[st->n++] = d;
	st->bytes += len;
	return 0;
}

static int dput_end(struct casfs_grpc_server_call *call, struct casfs_error *err)
{
	struct dir_put *st = *casfs_grpc_server_call_state(call);
	if (!st->n)
		return status_error(call, CASFS_GRPC_INVALID_ARGUMENT, -EINVAL, err,
				    "no directories were sent");
	uint8_t root[CASFS_B3_LEN];
	int r = casfs_directory_put_closure(SV(call)->store->directories, st->dirs, st->n, root, err);
	if (r == -EBADMSG || r == -ENOENT)
		casfs_grpc_server_call_set_status(call, CASFS_GRPC_INVALID_ARGUMENT);
	if (r < 0)
		return r;
	struct casfs_buf b = CASFS_BUF_INIT;
	r = casfs_rpc_bytes1_encode(root, sizeof(root), &b);
	if (r >= 0)
		r = send_buf(call, &b, "PutDirectoryResponse", err);
	casfs_buf_release(&b);
	return r;
}

/* ---- PathInfoService ---------------------------------------------------------- */

static int send_pathinfo(struct casfs_grpc_server_call *call, const struct casfs_pathinfo *pi,
			 struct casfs_error *err)
{
	struct casfs_buf b = CASFS_BUF_INIT;
	int r = casfs_pathinfo_encode(pi, &b);
	if (r >= 0)
		r = send_buf(call, &b, "PathInfo", err);
	casfs_buf_release(&b);
	return r;
}

static int pget_message(struct casfs_grpc_server_call *call, const uint8_t *msg, size_t len,
			struct casfs_error *err)
{
	struct casfs_rpc_bytes d;
	int r = casfs_rpc_bytes1_decode(msg, len, &d, err);
	if (r < 0)
		return r;
	if (!d.present)
		return status_error(call, CASFS_GRPC_UNIMPLEMENTED, -EOPNOTSUPP, err,
				    "by_what needs to be specified");
	if (d.len != CASFS_STORE_DIGEST_LEN)
		return status_error(call, CASFS_GRPC_INVALID_ARGUMENT, -EINVAL, err,
				    "invalid output hash length %zu", d.len);
	struct casfs_pathinfo pi = { 0 };
	r = casfs_pathinfo_get(SV(call)->store->pathinfos, d.p, &pi, err);
	if (r == -ENOENT) {
		casfs_error_clear(err);
		return casfs_error_set(err, -ENOENT, "PathInfo not found");
	}
	if (r >= 0)
		r = send_pathinfo(call, &pi, err);
	casfs_pathinfo_release(&pi);
	return r;
}

static int pput_message(struct casfs_grpc_server_call *call, const uint8_t *msg, size_t len,
			struct casfs_error *err)
{
	int r = check_writable(call, err);
	if (r < 0)
		return r;
	struct casfs_pathinfo pi = { 0 };
	struct casfs_store_path sp;
	struct casfs_store *store = SV(call)->store;
	if ((r = casfs_pathinfo_decode(msg, len, &pi, err)) < 0 ||
	    (r = casfs_pathinfo_validate(&pi, err)) < 0 ||
	    (r = casfs_store_path_parse_basename(pi.node.name, pi.node.name_len, &sp, err)) < 0) {
		casfs_grpc_server_call_set_status(call, CASFS_GRPC_INVALID_ARGUMENT);
		casfs_error_prefix(err, r, "invalid path info");
		goto out;
	}
	r = casfs_store_add_pathinfo(store, sp.digest, &pi, err);
	if (r == -ENOENT)
		casfs_grpc_server_call_set_status(call, CASFS_GRPC_FAILED_PRECONDITION);
	else if (r == -EBADMSG || r == -EINVAL)
		casfs_grpc_server_call_set_status(call, CASFS_GRPC_INVALID_ARGUMENT);
	if (r < 0)
		goto out;
	struct casfs_pathinfo stored = { 0 };
	r = casfs_pathinfo_get(store->pathinfos, sp.digest, &stored, err);
	if (r >= 0)
		r = send_pathinfo(call, &stored, err);
	casfs_pathinfo_release(&stored);
out:
	casfs_pathinfo_release(&pi);
	return r;
}

struct nar_hash {
	struct casfs_sha256_hasher h;
	uint64_t size;
};

static int nar_sink(void *userdata, const void *p, size_t n)
{
	struct nar_hash *nh = userdata;
	casfs_sha256_update(&nh->h, p, n);
	nh->size += n;
	return 0;
}

static int nar_message(struct casfs_grpc_server_call *call, const uint8_t *msg, size_t len,
		       struct casfs_error *err)
{
	struct casfs_node node = { 0 };
	int r = casfs_node_decode(msg, len, &node, err);
	if (r < 0)
		return r;
	if (node.type == CASFS_NODE_NONE ||
	    (node.type != CASFS_NODE_SYMLINK && !node.digest_set) ||
	    (node.type == CASFS_NODE_SYMLINK &&
	     casfs_symlink_target_validate(node.target, node.target_len, err) < 0)) {
		casfs_node_release(&node);
		return status_error(call, CASFS_GRPC_INVALID_ARGUMENT, -EINVAL, err,
				    "invalid node");
	}
	struct nar_hash nh = { 0 };
	if ((r = casfs_sha256_init(&nh.h)) < 0) {
		casfs_node_release(&node);
		return r;
	}
	r = casfs_export_nar(SV(call)->store, &node, nar_sink, &nh, err);
	casfs_node_release(&node);
	if (r < 0) {
		casfs_sha256_release(&nh.h);
		return r;
	}
	uint8_t sha[CASFS_SHA256_LEN];
	casfs_sha256_final(&nh.h, sha);
	struct casfs_calculate_nar_response resp = {
		.nar_size = nh.size,
		.nar_sha256 = { .p = sha, .len = sizeof(sha), .present = true },
	};
	struct casfs_buf b = CASFS_BUF_INIT;
	r = casfs_calculate_nar_response_encode(&resp, &b);
	if (r >= 0)
		r = send_buf(call, &b, "CalculateNARResponse", err);
	casfs_buf_release(&b);
	return r;
}

struct list_state {
	uint8_t after[CASFS_STORE_DIGEST_LEN];
	bool have_after;
	size_t n_damaged;
	char first_damage[256];
	struct casfs_grpc_server_call *call;
	struct casfs_error *err;
};

static void list_release(struct casfs_grpc_server_call *call)
{
	free(*casfs_grpc_server_call_state(call));
}

static int list_message(struct casfs_grpc_server_call *call, const uint8_t *msg, size_t len,
			struct casfs_error *err)
{
	(void)msg, (void)len, (void)err; /* ListPathInfoRequest has no fields */
	struct list_state *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	*casfs_grpc_server_call_state(call) = st;
	return 0;
}

static int list_entry(const uint8_t digest[CASFS_STORE_DIGEST_LEN], const struct casfs_pathinfo *pi,
		      const struct casfs_error *damage, void *userdata)
{
	struct list_state *st = userdata;
	memcpy(st->after, digest, CASFS_STORE_DIGEST_LEN);
	st->have_after = true;
	int r = -EBADMSG;
	struct casfs_error e = { 0 };
	if (pi) {
		r = send_pathinfo(st->call, pi, &e);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			damage = &e;
	}
	if (r < 0 && st->n_damaged++ == 0) {
		char h[CASFS_NIXBASE32_LEN(CASFS_STORE_DIGEST_LEN) + 1];
		casfs_nixbase32_encode(digest, CASFS_STORE_DIGEST_LEN, h);
		snprintf(st->first_damage, sizeof(st->first_damage), "%s: %s", h,
			 damage ? casfs_error_message(damage, damage->code) : "unreadable");
	}
	return 0;
}

static int list_more(struct casfs_grpc_server_call *call, struct casfs_error *err)
{
	struct list_state *st = *casfs_grpc_server_call_state(call);
	st->call = call;
	int r = casfs_pathinfo_list_from(SV(call)->store->pathinfos, st->have_after ? st->after : NULL,
					 LIST_PAGE, list_entry, st, err);
	if (r < 0)
		return r;
	if (r == LIST_PAGE)
		return 1;
	if (st->n_damaged)
		return status_error(call, CASFS_GRPC_DATA_LOSS, -EBADMSG, err,
				    "%zu PathInfo entries could not be sent, the first %s",
				    st->n_damaged, st->first_damage);
	return 0;
}

/* ---- Health --------------------------------------------------------------------- */

static const char *const service_names[] = {
	"tvix.castore.v1.BlobService", "tvix.castore.v1.DirectoryService",
	"tvix.store.v1.PathInfoService", "snix.castore.v1.BlobService",
	"snix.castore.v1.DirectoryService", "snix.store.v1.PathInfoService",
	"grpc.health.v1.Health",
};

static int health_message(struct casfs_grpc_server_call *call, const uint8_t *msg, size_t len,
			  struct casfs_error *err)
{
	struct casfs_rpc_bytes name;
	int r = casfs_health_check_request_decode(msg, len, &name, err);
	if (r < 0)
		return r;
	bool known = name.len == 0;
	for (size_t i = 0; !known && i < ARRAY_SIZE(service_names); i++)
		known = strlen(service_names[i]) == name.len &&
			memcmp(service_names[i], name.p, name.len) == 0;
	if (!known)
		return status_error(call, CASFS_GRPC_NOT_FOUND, -ENOENT, err, "unknown service");
	struct casfs_buf b = CASFS_BUF_INIT;
	r = casfs_health_check_response_encode(CASFS_HEALTH_SERVING, &b);
	if (r >= 0)
		r = send_buf(call, &b, "HealthCheckResponse", err);
	casfs_buf_release(&b);
	return r;
}

/* ---- the table ---------------------------------------------------------------------- */

#define BOTH(svc, meth, kind, ...)                                                        \
	{ "/tvix." svc "/" meth, kind, __VA_ARGS__ },                                       \
	{ "/snix." svc "/" meth, kind, __VA_ARGS__ }

static const struct casfs_grpc_method methods[] = {
	BOTH("castore.v1.BlobService", "Stat", CASFS_GRPC_UNARY,
	     .message = stat_message),
	BOTH("castore.v1.BlobService", "Read", CASFS_GRPC_SERVER_STREAM,
	     .message = read_message, .more = read_more, .release = read_release),
	BOTH("castore.v1.BlobService", "Put", CASFS_GRPC_CLIENT_STREAM,
	     .start = bput_start, .message = bput_message, .end = bput_end,
	     .release = bput_release),
	BOTH("castore.v1.DirectoryService", "Get", CASFS_GRPC_SERVER_STREAM,
	     .message = dget_message, .more = dget_more, .release = dget_release),
	BOTH("castore.v1.DirectoryService", "Put", CASFS_GRPC_CLIENT_STREAM,
	     .start = dput_start, .message = dput_message, .end = dput_end,
	     .release = dput_release),
	BOTH("store.v1.PathInfoService", "Get", CASFS_GRPC_UNARY,
	     .message = pget_message),
	BOTH("store.v1.PathInfoService", "Put", CASFS_GRPC_UNARY,
	     .message = pput_message),
	BOTH("store.v1.PathInfoService", "CalculateNAR", CASFS_GRPC_UNARY,
	     .message = nar_message),
	BOTH("store.v1.PathInfoService", "List", CASFS_GRPC_SERVER_STREAM,
	     .message = list_message, .more = list_more, .release = list_release),
	{ "/grpc.health.v1.Health/Check", CASFS_GRPC_UNARY, .message = health_message },
};

const struct casfs_grpc_method *casfs_grpc_services_methods(size_t *ret_n)
{
	*ret_n = ARRAY_SIZE(methods);
	return methods;
}
