#include "serve-cache.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zstd.h>

#include "../basic/buf.h"
#include "../basic/util.h"
#include "../nixcache/narinfo-pathinfo.h"
#include "../nixcache/narinfo.h"
#include "../store/nar-plan.h"
#include "serve-narmap.h"
#include "serve-route.h"
#include "serve-upload.h"

#define NAR_BLOCK (64u * 1024)
#define ZSTD_LEVEL 3

struct casfs_serve_cache {
	struct casfs_store *s;
	struct casfs_serve_options o;
	bool has_key;
	struct casfs_nixkey_secret key;
	struct MHD_Daemon *mhd;
	int listen_fd;
	char url[128];
	struct casfs_narmap *narmap;
	struct casfs_upload_table *uploads;
	/* *con_cls of a GET/HEAD between its two handler calls */
	char get_marker;
};

static void sv_log(struct casfs_serve_cache *sv, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void sv_log(struct casfs_serve_cache *sv, const char *fmt, ...)
{
	if (!sv->o.log)
		return;
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	sv->o.log(sv->o.log_userdata, line);
}

/* -errno -> HTTP status: the one table (STYLE rule 18). */
static unsigned status_of(int r)
{
	static const struct {
		int err;
		unsigned status;
	} table[] = {
		{ -ENOENT, MHD_HTTP_NOT_FOUND },
		{ -EBADMSG, MHD_HTTP_BAD_REQUEST },
		{ -EINVAL, MHD_HTTP_BAD_REQUEST },
		{ -EPROTO, MHD_HTTP_BAD_REQUEST },
		{ -EACCES, MHD_HTTP_FORBIDDEN },
		{ -EROFS, MHD_HTTP_FORBIDDEN },
		{ -EOVERFLOW, MHD_HTTP_CONTENT_TOO_LARGE },
		{ -ENOTSUP, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE },
		{ -ENOMEM, MHD_HTTP_SERVICE_UNAVAILABLE },
		{ -EAGAIN, MHD_HTTP_SERVICE_UNAVAILABLE },
	};
	for (size_t i = 0; i < ARRAY_SIZE(table); i++)
		if (table[i].err == r)
			return table[i].status;
	return MHD_HTTP_INTERNAL_SERVER_ERROR;
}

static enum MHD_Result reply_buf(struct MHD_Connection *conn, unsigned status, const char *type,
				 const void *p, size_t n)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(n, (void *)p, MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	if (type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	enum MHD_Result ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* A one-line error body. */
static enum MHD_Result reply_error(struct MHD_Connection *conn, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static enum MHD_Result reply_error(struct MHD_Connection *conn, unsigned status, const char *fmt, ...)
{
	char line[640];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	for (int i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n++] = '\n';
	return reply_buf(conn, status, "text/plain; charset=utf-8", line, (size_t)n);
}

static enum MHD_Result reply_errno(struct MHD_Connection *conn, int r, const struct casfs_error *err)
{
	return reply_error(conn, status_of(r), "%s", casfs_error_message(err, r));
}

/* ---- GET/HEAD ---- */

static enum MHD_Result get_cache_info(struct casfs_serve_cache *sv, struct MHD_Connection *conn)
{
	char text[128];
	int n = snprintf(text, sizeof(text), "StoreDir: %s\nWantMassQuery: 1\nPriority: %d\n",
			 CASFS_STORE_DIR, sv->o.priority);
	return reply_buf(conn, MHD_HTTP_OK, "text/x-nix-cache-info", text, (size_t)n);
}

static int get_pathinfo(struct casfs_serve_cache *sv, const uint8_t digest[CASFS_STORE_DIGEST_LEN],
			struct casfs_pathinfo *ret, struct casfs_error *err)
{
	int r = casfs_pathinfo_get(sv->s->pathinfos, digest, ret, err);
	if (r == -ENOENT)
		return casfs_error_set(err, -ENOENT, "no such path");
	if (r >= 0 && !ret->has_narinfo) {
		casfs_pathinfo_release(ret);
		return casfs_error_set(err, -ENOENT, "no such path (no NAR information)");
	}
	return r;
}

static enum MHD_Result get_narinfo(struct casfs_serve_cache *sv, struct MHD_Connection *conn,
				   const struct casfs_route *rt)
{
	struct casfs_error err = { 0 };
	struct casfs_pathinfo pi = { 0 };
	int r = get_pathinfo(sv, rt->path_digest, &pi, &err);
	if (r < 0)
		return reply_errno(conn, r, &err);
	char hash[CASFS_STORE_PATH_HASH_CHARS + 1], nar[CASFS_NIXBASE32_LEN(CASFS_SHA256_LEN) + 1];
	hash[casfs_nixbase32_encode(rt->path_digest, CASFS_STORE_PATH_DIGEST_LEN, hash)] = 0;
	nar[casfs_nixbase32_encode(pi.nar_sha256, CASFS_SHA256_LEN, nar)] = 0;
	char url[160];
	snprintf(url, sizeof(url), "nar/%s.nar?hash=%s", nar, hash);
	struct casfs_narinfo ni = { 0 };
	struct casfs_buf out = CASFS_BUF_INIT;
	r = casfs_narinfo_from_pathinfo(&pi, url, "none", &ni, &err);
	if (r >= 0) {
		ni.has_file_hash = true;
		memcpy(ni.file_sha256, ni.nar_sha256, CASFS_SHA256_LEN);
		ni.has_file_size = true;
		ni.file_size = ni.nar_size;
		casfs_narmap_put(sv->narmap, pi.nar_sha256, rt->path_digest);
		if (sv->has_key)
			r = casfs_nixkey_add_signature(&sv->key, &ni, &err);
	}
	if (r >= 0)
		r = casfs_narinfo_render(&ni, &out);
	enum MHD_Result ret;
	if (r < 0) {
		sv_log(sv, "narinfo of %s: %s", hash, casfs_error_message(&err, r));
		ret = reply_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot render narinfo: %s",
				  casfs_error_message(&err, r));
	} else {
		ret = reply_buf(conn, MHD_HTTP_OK, "text/x-nix-narinfo", out.data, out.len);
	}
	casfs_buf_release(&out);
	casfs_narinfo_release(&ni);
	casfs_pathinfo_release(&pi);
	return ret;
}

static enum MHD_Result get_listing(struct casfs_serve_cache *sv, struct MHD_Connection *conn,
				   const struct casfs_route *rt)
{
	struct casfs_error err = { 0 };
	struct casfs_pathinfo pi = { 0 };
	int r = get_pathinfo(sv, rt->path_digest, &pi, &err);
	if (r < 0)
		return reply_errno(conn, r, &err);
	struct casfs_nar_plan *plan = NULL;
	r = casfs_nar_plan_new(sv->s, &pi.node, true, &plan, &err);
	casfs_pathinfo_release(&pi);
	if (r < 0) {
		sv_log(sv, "listing: %s", casfs_error_message(&err, r));
		return reply_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", casfs_error_message(&err, r));
	}
	size_t len;
	const char *json = casfs_nar_plan_listing(plan, &len);
	enum MHD_Result ret = reply_buf(conn, MHD_HTTP_OK, "application/json", json, len);
	casfs_nar_plan_free(plan);
	return ret;
}

/* A NAR response body: [start, start + len) of the NAR, maybe through zstd. */
struct nar_stream {
	struct casfs_serve_cache *sv;
	struct casfs_nar_plan *plan;
	struct casfs_nar_cursor *cur;
	uint64_t start, len;
	ZSTD_CCtx *zc;
	uint8_t *zin;       /* NAR_BLOCK bytes of input for zstd */
	ZSTD_inBuffer in;
	uint64_t zpos;      /* next NAR offset to compress */
	bool zeof, zdone;
	char label[64];
};

static void nar_stream_free(void *cls)
{
	struct nar_stream *st = cls;
	casfs_nar_cursor_free(st->cur);
	casfs_nar_plan_free(st->plan);
	ZSTD_freeCCtx(st->zc);
	free(st->zin);
	free(st);
}

static ssize_t nar_stream_fail(struct nar_stream *st, ssize_t r, const struct casfs_error *err)
{
	sv_log(st->sv, "NAR %s cut short: %s", st->label, casfs_error_message(err, (int)r));
	return MHD_CONTENT_READER_END_WITH_ERROR;
}

static ssize_t nar_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct nar_stream *st = cls;
	struct casfs_error err = { 0 };
	if (!st->cur)
		return MHD_CONTENT_READER_END_WITH_ERROR; /* HEAD: never read */
	if (!st->zc) {
		if (pos >= st->len)
			return MHD_CONTENT_READER_END_OF_STREAM;
		size_t want = (size_t)MIN((uint64_t)max, st->len - pos);
		ssize_t k = casfs_nar_cursor_read(st->cur, st->start + pos, buf, want, &err);
		if (k < 0)
			return nar_stream_fail(st, k, &err);
		if (k == 0) /* the plan is shorter than its PathInfo says */
			return nar_stream_fail(st, -EBADMSG, &err);
		return k;
	}
	if (st->zdone)
		return MHD_CONTENT_READER_END_OF_STREAM;
	ZSTD_outBuffer out = { buf, max, 0 };
	while (out.pos == 0) {
		if (st->in.pos == st->in.size && !st->zeof) {
			ssize_t k = casfs_nar_cursor_read(st->cur, st->zpos, st->zin, NAR_BLOCK, &err);
			if (k < 0)
				return nar_stream_fail(st, k, &err);
			st->zpos += (uint64_t)k;
			st->in = (ZSTD_inBuffer){ st->zin, (size_t)k, 0 };
			st->zeof = st->zpos >= st->len;
		}
		size_t rem = ZSTD_compressStream2(st->zc, &out, &st->in,
						  st->zeof ? ZSTD_e_end : ZSTD_e_continue);
		if (ZSTD_isError(rem)) {
			casfs_error_set(&err, -EIO, "zstd: %s", ZSTD_getErrorName(rem));
			return nar_stream_fail(st, -EIO, &err);
		}
		if (st->zeof && rem == 0) {
			st->zdone = true;
			break;
		}
	}
	return out.pos ? (ssize_t)out.pos : MHD_CONTENT_READER_END_OF_STREAM;
}

/* "bytes=A-B", "bytes=A-", "bytes=-N": 1 with [*ret_a, *ret_b]; -1
 * unsatisfiable; 0 anything else (several ranges, malformed: the whole
 * body is sent, as RFC 9110 allows). */
static int parse_range(const char *h, uint64_t size, uint64_t *ret_a, uint64_t *ret_b)
{
	if (!h || strncmp(h, "bytes=", 6) != 0)
		return 0;
	const char *p = h + 6;
	if (strchr(p, ','))
		return 0;
	uint64_t a = 0, b = 0;
	bool has_a = false, has_b = false;
	for (; *p >= '0' && *p <= '9'; p++, has_a = true)
		if (__builtin_mul_overflow(a, 10, &a) || __builtin_add_overflow(a, (uint64_t)(*p - '0'), &a))
			return 0;
	if (*p++ != '-')
		return 0;
	for (; *p >= '0' && *p <= '9'; p++, has_b = true)
		if (__builtin_mul_overflow(b, 10, &b) || __builtin_add_overflow(b, (uint64_t)(*p - '0'), &b))
			return 0;
	if (*p || (!has_a && !has_b))
		return 0;
	if (!has_a) { /* suffix */
		if (b == 0)
			return -1;
		*ret_a = b >= size ? 0 : size - b;
		*ret_b = size - 1;
		return 1;
	}
	if (has_b && b < a)
		return 0;
	if (a >= size)
		return -1;
	*ret_a = a;
	*ret_b = has_b && b < size ? b : size - 1;
	return 1;
}

/* Whether Accept-Encoding allows zstd (a "zstd" token without q=0). */
static bool accepts_zstd(const char *h)
{
	while (h && *h) {
		while (*h == ' ' || *h == '\t' || *h == ',')
			h++;
		const char *end = h + strcspn(h, ",");
		size_t name = strcspn(h, ";, \t");
		if (name == 4 && strncasecmp(h, "zstd", 4) == 0) {
			const char *q = strstr(h, "q=");
			if (!q || q >= end)
				return true;
			q += 2;
			while (*q == '0' || *q == '.')
				q++;
			return q < end && *q >= '1' && *q <= '9';
		}
		h = end;
	}
	return false;
}

static enum MHD_Result get_nar(struct casfs_serve_cache *sv, struct MHD_Connection *conn,
			       const struct casfs_route *rt, bool head)
{
	struct casfs_error err = { 0 };
	struct casfs_pathinfo pi = { 0 };
	uint8_t digest[CASFS_STORE_DIGEST_LEN];
	int r;
	if (strcmp(rt->compression, "none") != 0)
		return reply_error(conn, MHD_HTTP_NOT_FOUND, "only uncompressed NARs are served here");
	if (rt->has_path) {
		memcpy(digest, rt->path_digest, sizeof(digest));
		r = get_pathinfo(sv, digest, &pi, &err);
		if (r >= 0 && memcmp(pi.nar_sha256, rt->sha256, CASFS_SHA256_LEN) != 0) {
			casfs_pathinfo_release(&pi);
			r = casfs_error_set(&err, -ENOENT, "that path has another NAR");
		}
	} else {
		r = casfs_narmap_find(sv->narmap, sv->s, rt->sha256, digest, &pi, &err);
		if (r == -ENOENT)
			casfs_error_set(&err, -ENOENT, "no path has that NAR");
	}
	if (r < 0)
		return reply_errno(conn, r, &err);

	uint64_t size = pi.nar_size, a = 0, b = size - 1;
	const char *range = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
	int ranged = parse_range(range, size, &a, &b);
	if (ranged < 0) {
		casfs_pathinfo_release(&pi);
		struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
		if (!resp)
			return MHD_NO;
		char cr[64];
		snprintf(cr, sizeof(cr), "bytes */%llu", (unsigned long long)size);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
		enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_RANGE_NOT_SATISFIABLE, resp);
		MHD_destroy_response(resp);
		return ret;
	}
	bool zstd = ranged == 0 &&
		    accepts_zstd(MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_ACCEPT_ENCODING));

	struct nar_stream *st = calloc(1, sizeof(*st));
	if (!st) {
		casfs_pathinfo_release(&pi);
		return reply_errno(conn, -ENOMEM, NULL);
	}
	st->sv = sv;
	st->start = a;
	st->len = b - a + 1;
	casfs_nixbase32_encode(digest, CASFS_STORE_DIGEST_LEN, st->label);
	if (!head) {
		r = casfs_nar_plan_new(sv->s, &pi.node, false, &st->plan, &err);
		if (r >= 0 && casfs_nar_plan_size(st->plan) != size)
			r = casfs_error_set(&err, -EBADMSG, "the tree's NAR is %llu bytes, its PathInfo says %llu",
					    (unsigned long long)casfs_nar_plan_size(st->plan),
					    (unsigned long long)size);
		if (r >= 0 && !(st->cur = casfs_nar_cursor_new(sv->s, st->plan)))
			r = -ENOMEM;
		if (r >= 0 && zstd) {
			st->zc = ZSTD_createCCtx();
			st->zin = malloc(NAR_BLOCK);
			if (!st->zc || !st->zin ||
			    ZSTD_isError(ZSTD_CCtx_setParameter(st->zc, ZSTD_c_compressionLevel, ZSTD_LEVEL)))
				r = -ENOMEM;
		}
		if (r < 0) {
			casfs_pathinfo_release(&pi);
			sv_log(sv, "NAR %s: %s", st->label, casfs_error_message(&err, r));
			nar_stream_free(st);
			return reply_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", casfs_error_message(&err, r));
		}
	}
	casfs_pathinfo_release(&pi);
	struct MHD_Response *resp = MHD_create_response_from_callback(
		zstd ? MHD_SIZE_UNKNOWN : st->len, NAR_BLOCK, nar_stream_read, st, nar_stream_free);
	if (!resp) {
		nar_stream_free(st);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/x-nix-nar");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
	if (zstd)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING, "zstd");
	unsigned status = MHD_HTTP_OK;
	if (ranged > 0) {
		char cr[96];
		snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu", (unsigned long long)a,
			 (unsigned long long)b, (unsigned long long)size);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
		status = MHD_HTTP_PARTIAL_CONTENT;
	}
	enum MHD_Result ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* ---- PUT ---- */

enum put_kind { PUT_DISCARD, PUT_NAR, PUT_NARINFO };

struct request {
	struct casfs_route route;
	enum put_kind put;
	struct casfs_nar_upload *nar;
	struct casfs_buf body;
	int error; /* first failure; the rest of the body is discarded */
	struct casfs_error err;
};

static void request_free(struct request *rq)
{
	if (!rq)
		return;
	casfs_nar_upload_free(rq->nar);
	casfs_buf_release(&rq->body);
	free(rq);
}

static enum MHD_Result put_begin(struct casfs_serve_cache *sv, struct MHD_Connection *conn,
				 struct request *rq)
{
	(void)conn;
	switch (rq->route.kind) {
	case CASFS_ROUTE_CACHE_INFO:
	case CASFS_ROUTE_LISTING:
		rq->put = PUT_DISCARD;
		break;
	case CASFS_ROUTE_NARINFO:
		rq->put = PUT_NARINFO;
		break;
	case CASFS_ROUTE_NAR:
		rq->put = PUT_NAR;
		rq->nar = casfs_nar_upload_new(sv->s, rq->route.compression, rq->route.sha256, &rq->error);
		break;
	default:
		rq->put = PUT_DISCARD;
		rq->error = casfs_error_set(&rq->err, -ENOENT, "nothing can be uploaded there");
	}
	return MHD_YES;
}

static void put_data(struct request *rq, const char *p, size_t n)
{
	if (rq->error < 0)
		return;
	if (rq->put == PUT_NAR) {
		int r = casfs_nar_upload_feed(rq->nar, p, n, &rq->err);
		if (r < 0)
			rq->error = r;
	} else if (rq->put == PUT_NARINFO) {
		if (rq->body.len + n > CASFS_NARINFO_MAX_SIZE)
			rq->error = casfs_error_set(&rq->err, -EOVERFLOW, "narinfo larger than %u bytes",
						    (unsigned)CASFS_NARINFO_MAX_SIZE);
		else if (casfs_buf_append(&rq->body, p, n) < 0)
			rq->error = -ENOMEM;
	}
}

static enum MHD_Result put_end(struct casfs_serve_cache *sv, struct MHD_Connection *conn,
			       struct request *rq, const char *url)
{
	int r = rq->error;
	if (r >= 0 && rq->put == PUT_NAR)
		r = casfs_nar_upload_finish(rq->nar, sv->uploads, &rq->err);
	else if (r >= 0 && rq->put == PUT_NARINFO)
		r = casfs_narinfo_upload(sv->s, sv->uploads, sv->narmap, rq->route.path_digest,
					 (const char *)rq->body.data, rq->body.len, &rq->err);
	if (r < 0) {
		const char *msg = casfs_error_message(&rq->err, r);
		sv_log(sv, "PUT %.200s refused: %s", url, msg);
		/* a refused upload is the client's fault whatever the errno,
		 * unless the server itself is short of something */
		unsigned status = status_of(r);
		if (status == MHD_HTTP_NOT_FOUND || status == MHD_HTTP_INTERNAL_SERVER_ERROR)
			status = (r == -EIO || r == -ENOSPC) ? MHD_HTTP_INTERNAL_SERVER_ERROR
							    : MHD_HTTP_BAD_REQUEST;
		return reply_error(conn, status, "%s", msg);
	}
	return reply_buf(conn, MHD_HTTP_OK, "text/plain", "", 0);
}

/* ---- dispatch ---- */

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **con_cls)
{
	(void)version;
	struct casfs_serve_cache *sv = cls;
	bool second = *con_cls == &sv->get_marker;
	struct request *rq = second ? NULL : *con_cls;
	if (rq) { /* PUT body */
		if (*upload_data_size) {
			put_data(rq, upload_data, *upload_data_size);
			*upload_data_size = 0;
			return MHD_YES;
		}
		return put_end(sv, conn, rq, url);
	}
	bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
	bool head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	bool put = strcmp(method, MHD_HTTP_METHOD_PUT) == 0;
	/* Answer a GET/HEAD on the second call, once MHD knows the request is
	 * complete: a response queued on the first (headers only) makes MHD
	 * 0.9.75 close the connection after it, i.e. no keep-alive. */
	if ((get || head) && !second) {
		*con_cls = &sv->get_marker;
		return MHD_YES;
	}
	if ((get || head) && *upload_data_size) { /* a body with a GET: ignored */
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (!get && !head && !put) {
		struct MHD_Response *resp = MHD_create_response_from_buffer(
			19, (void *)"method not allowed\n", MHD_RESPMEM_PERSISTENT);
		if (!resp)
			return MHD_NO;
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
					sv->o.allow_upload ? "GET, HEAD, PUT" : "GET, HEAD");
		enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_METHOD_NOT_ALLOWED, resp);
		MHD_destroy_response(resp);
		return ret;
	}
	struct casfs_route rt;
	const char *hash_arg = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "hash");
	enum casfs_route_kind kind = casfs_route_parse(url, strlen(url), hash_arg, &rt);
	if (put) {
		if (!sv->o.allow_upload)
			return reply_error(conn, MHD_HTTP_FORBIDDEN, "uploads are not allowed (serve-cache --allow-upload)");
		if (kind == CASFS_ROUTE_NONE)
			return reply_error(conn, MHD_HTTP_NOT_FOUND, "nothing can be uploaded there");
		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		rq->route = rt;
		casfs_buf_init(&rq->body);
		*con_cls = rq;
		return put_begin(sv, conn, rq);
	}
	switch (kind) {
	case CASFS_ROUTE_CACHE_INFO:
		return get_cache_info(sv, conn);
	case CASFS_ROUTE_NARINFO:
		return get_narinfo(sv, conn, &rt);
	case CASFS_ROUTE_LISTING:
		return get_listing(sv, conn, &rt);
	case CASFS_ROUTE_NAR:
		return get_nar(sv, conn, &rt, head);
	default:
		return reply_error(conn, MHD_HTTP_NOT_FOUND, "not found");
	}
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	(void)conn, (void)toe;
	struct casfs_serve_cache *sv = cls;
	if (*con_cls != &sv->get_marker)
		request_free(*con_cls);
	*con_cls = NULL;
}

/* The target is matched byte for byte (serve-route.h): no decoding. */
static size_t no_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
	(void)cls, (void)conn;
	return strlen(s);
}

/* ---- start/stop ---- */

static int bind_listener(const char *host, uint16_t port, int *ret_fd, int *ret_family,
			 uint16_t *ret_port, struct casfs_error *err)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE };
	char service[8];
	snprintf(service, sizeof(service), "%u", (unsigned)port);
	struct addrinfo *ai = NULL;
	int g = getaddrinfo(host, service, &hints, &ai);
	if (g != 0)
		return casfs_error_set(err, -EINVAL, "cannot listen on '%s': %s", host, gai_strerror(g));
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int r = 0;
	if (fd < 0) {
		r = casfs_neg_errno();
		goto out;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 256) < 0) {
		r = casfs_neg_errno();
		goto out;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		r = casfs_neg_errno();
		goto out;
	}
	*ret_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						   : ((struct sockaddr_in *)&ss)->sin_port);
	*ret_family = ai->ai_family;
	*ret_fd = fd;
	fd = -1;
out:
	if (r < 0)
		casfs_error_set(err, r, "cannot listen on %s port %u: %s", host, (unsigned)port, strerror(-r));
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return r;
}

int casfs_serve_cache_start(struct casfs_store *s, const struct casfs_serve_options *opts,
			    struct casfs_serve_cache **ret, struct casfs_error *err)
{
	struct casfs_serve_cache *sv = calloc(1, sizeof(*sv));
	if (!sv)
		return -ENOMEM;
	sv->s = s;
	sv->o = *opts;
	sv->o.sign_key = NULL;
	sv->listen_fd = -1;
	if (opts->sign_key) {
		sv->key = *opts->sign_key;
		sv->has_key = true;
	}
	if (!sv->o.host)
		sv->o.host = "127.0.0.1";
	if (!sv->o.idle_timeout)
		sv->o.idle_timeout = 30;
	if (!sv->o.max_connections)
		sv->o.max_connections = 256;
	int r = -ENOMEM;
	sv->narmap = casfs_narmap_new();
	sv->uploads = casfs_upload_table_new();
	if (!sv->narmap || !sv->uploads)
		goto fail;
	int family = AF_INET;
	uint16_t port = 0;
	r = bind_listener(sv->o.host, opts->port, &sv->listen_fd, &family, &port, err);
	if (r < 0)
		goto fail;
	snprintf(sv->url, sizeof(sv->url), family == AF_INET6 ? "http://[%s]:%u" : "http://%s:%u",
		 sv->o.host, (unsigned)port);
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
			 MHD_USE_POLL | (family == AF_INET6 ? MHD_USE_IPv6 : 0);
	sv->mhd = MHD_start_daemon(
		flags, 0, NULL, NULL, handle, sv, MHD_OPTION_LISTEN_SOCKET, sv->listen_fd,
		MHD_OPTION_CONNECTION_LIMIT,
		sv->o.max_connections, MHD_OPTION_CONNECTION_TIMEOUT, sv->o.idle_timeout,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024), MHD_OPTION_NOTIFY_COMPLETED,
		completed, sv, MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, sv, MHD_OPTION_END);
	if (!sv->mhd) {
		r = casfs_error_set(err, -EIO, "cannot start the HTTP server (libmicrohttpd)");
		goto fail;
	}
	sv->listen_fd = -1; /* MHD closes it */
	*ret = sv;
	return 0;
fail:
	casfs_serve_cache_stop(sv);
	return r;
}

const char *casfs_serve_cache_url(const struct casfs_serve_cache *sv)
{
	return sv->url;
}

void casfs_serve_cache_stop(struct casfs_serve_cache *sv)
{
	if (!sv)
		return;
	if (sv->mhd)
		MHD_stop_daemon(sv->mhd);
	if (sv->listen_fd >= 0)
		close(sv->listen_fd);
	casfs_narmap_free(sv->narmap);
	casfs_upload_table_free(sv->uploads);
	casfs_nixkey_secret_clear(&sv->key);
	free(sv);
}
