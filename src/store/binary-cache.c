/* Nix binary caches: reading as a substituter, writing store paths
 * (binary-cache.h). */
#include "binary-cache.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../basic/chunk-pipe.h"
#include "../basic/encoding.h"
#include "../basic/io.h"
#include "../basic/util.h"
#include "../nixcache/compress.h"
#include "../nixcache/narinfo-pathinfo.h"
#include "../nixcache/transport.h"
#include "export.h"
#include "import.h"
#include "nar-plan.h"

#define CACHE_INFO_MAX (64 * 1024)

struct casfs_binary_cache {
	struct casfs_substituter base; /* first: the substituter view */
	char *url;
	struct casfs_transport *t;
	enum casfs_compression compression;
	bool has_key;
	struct casfs_nixkey_secret key;
	bool listing; /* write-nar-listing: also write <hash>.ls */
	pthread_mutex_t lock;
	bool cache_info_known; /* nix-cache-info seen or written */
};

static const struct casfs_substituter_ops binary_cache_ops;

/* ---- opening: URL parameters and nix-cache-info ------------------------- */

static int unhex(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
		: c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Percent-decode in place; false for a malformed escape or a NUL. */
static bool percent_decode(char *s)
{
	char *o = s;
	for (; *s; s++) {
		if (*s == '%') {
			int h = unhex(s[1]), l = h < 0 ? -1 : unhex(s[2]);
			if (l < 0 || (h == 0 && l == 0))
				return false;
			*o++ = (char)(h * 16 + l);
			s += 2;
		} else {
			*o++ = *s;
		}
	}
	*o = 0;
	return true;
}

static int read_key_file(struct casfs_binary_cache *bc, const char *file, struct casfs_error *err)
{
	_cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return casfs_error_set(err, -errno, "cannot open secret key file '%s': %m", file);
	char buf[CASFS_NIXKEY_SECRET_STR_MAX + 64];
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n < 0)
		return casfs_error_set(err, -errno, "cannot read secret key file '%s': %m", file);
	int r = casfs_nixkey_secret_parse(buf, (size_t)n, &bc->key, err);
	explicit_bzero(buf, sizeof(buf));
	if (r < 0)
		return casfs_error_prefix(err, r, "secret key file '%s'", file);
	bc->has_key = true;
	return 0;
}

static int parse_params(struct casfs_binary_cache *bc, char *q, unsigned *stall,
			struct casfs_error *err)
{
	for (char *save = NULL, *kv = strtok_r(q, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
		char *v = strchr(kv, '=');
		if (!v)
			return casfs_error_set(err, -EINVAL, "'%s': parameter '%s' has no value", bc->url, kv);
		*v++ = 0;
		if (!percent_decode(v))
			return casfs_error_set(err, -EINVAL, "'%s': bad %%-escape in '%s'", bc->url, kv);
		int r = 0;
		if (!strcmp(kv, "secret-key")) {
			r = read_key_file(bc, v, err);
		} else if (!strcmp(kv, "compression")) {
			r = casfs_compression_parse(v, &bc->compression, err);
		} else if (!strcmp(kv, "stalled-download-timeout")) {
			char *end;
			unsigned long s = strtoul(v, &end, 10);
			if (*end || !*v || s == 0 || s > 86400)
				return casfs_error_set(err, -EINVAL, "'%s': bad stalled-download-timeout '%s'",
						       bc->url, v);
			*stall = (unsigned)s;
		} else if (!strcmp(kv, "write-nar-listing")) {
			if (strcmp(v, "1") && strcmp(v, "true") && strcmp(v, "0") && strcmp(v, "false"))
				return casfs_error_set(err, -EINVAL, "'%s': write-nar-listing wants 1 or 0, not '%s'",
						       bc->url, v);
			bc->listing = !strcmp(v, "1") || !strcmp(v, "true");
		} else if (strcmp(kv, "priority") &&
			   strcmp(kv, "want-mass-query")) {
			return casfs_error_set(err, -EINVAL, "'%s': unknown parameter '%s'", bc->url, kv);
		}
		if (r < 0)
			return r == -ENOTSUP ? -EINVAL : r;
	}
	return 0;
}

/* StoreDir, if given, must be ours. */
static int check_cache_info(struct casfs_binary_cache *bc, struct casfs_error *err)
{
	struct casfs_buf b = CASFS_BUF_INIT;
	int r = casfs_transport_get_buf(bc->t, "nix-cache-info", CACHE_INFO_MAX, &b, err);
	if (r == -ENOENT) {
		casfs_error_clear(err);
		return 0;
	}
	if (r < 0)
		goto out;
	bc->cache_info_known = true;
	const char *p = (const char *)b.data, *end = p + b.len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (n >= 10 && !memcmp(p, "StoreDir:", 9)) {
			const char *v = p + 9;
			size_t vn = n - 9;
			while (vn && (*v == ' ' || *v == '\t'))
				v++, vn--;
			while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\r'))
				vn--;
			if (vn != strlen(CASFS_STORE_DIR) || memcmp(v, CASFS_STORE_DIR, vn) != 0) {
				r = casfs_error_set(err, -EBADMSG,
						    "binary cache '%s' is for Nix stores with prefix '%.*s', not '%s'",
						    bc->url, (int)MIN(vn, 200), v, CASFS_STORE_DIR);
				goto out;
			}
		}
		p += n + 1;
	}
out:
	casfs_buf_release(&b);
	return r;
}

int casfs_binary_cache_open(const char *url, struct casfs_binary_cache **ret,
			    struct casfs_error *err)
{
	struct casfs_binary_cache *bc = calloc(1, sizeof(*bc));
	_cleanup_free_ char *base = strdup(url);
	if (!bc || !base || !(bc->url = strdup(url))) {
		free(bc);
		return casfs_error_set(err, -ENOMEM, "out of memory");
	}
	bc->base.ops = &binary_cache_ops;
	bc->base.url = bc->url;
	bc->compression = CASFS_COMPRESSION_ZSTD;
	pthread_mutex_init(&bc->lock, NULL);
	unsigned stall = 0;
	char *q = strchr(base, '?');
	if (q)
		*q++ = 0;
	int r = q ? parse_params(bc, q, &stall, err) : 0;
	if (r >= 0)
		r = casfs_transport_open(base, stall, &bc->t, err);
	if (r >= 0)
		r = check_cache_info(bc, err);
	if (r < 0) {
		binary_cache_ops.free(&bc->base);
		return r;
	}
	*ret = bc;
	return 0;
}

struct casfs_substituter *casfs_binary_cache_substituter(struct casfs_binary_cache *bc)
{
	return &bc->base;
}

static void bc_free(struct casfs_substituter *s)
{
	struct casfs_binary_cache *bc = (struct casfs_binary_cache *)s;
	casfs_transport_free(bc->t);
	casfs_nixkey_secret_clear(&bc->key);
	pthread_mutex_destroy(&bc->lock);
	free(bc->url);
	free(bc);
}

/* ---- reading ------------------------------------------------------------ */

static void narinfo_name(const uint8_t digest[CASFS_STORE_DIGEST_LEN], char *out)
{
	size_t n = casfs_nixbase32_encode(digest, CASFS_STORE_DIGEST_LEN, out);
	strcpy(out + n, ".narinfo");
}

static int bc_query(struct casfs_substituter *s, const uint8_t digest[CASFS_STORE_DIGEST_LEN],
		    struct casfs_narinfo *ret, struct casfs_error *err)
{
	struct casfs_binary_cache *bc = (struct casfs_binary_cache *)s;
	char name[CASFS_STORE_PATH_HASH_CHARS + 16];
	narinfo_name(digest, name);
	struct casfs_buf b = CASFS_BUF_INIT;
	int r = casfs_transport_get_buf(bc->t, name, CASFS_NARINFO_MAX_SIZE, &b, err);
	if (r == -ENOENT) {
		casfs_error_clear(err);
		r = casfs_error_set(err, r, "'%.32s' is not in binary cache '%s'", name, bc->url);
	}
	if (r >= 0) {
		r = casfs_narinfo_parse((const char *)b.data, b.len, ret, err);
		if (r < 0)
			r = casfs_error_prefix(err, r, "'%s' in '%s'", name, bc->url);
	}
	casfs_buf_release(&b);
	if (r >= 0 && memcmp(ret->path.digest, digest, CASFS_STORE_DIGEST_LEN) != 0) {
		char got[CASFS_STORE_PATH_MAX + 1];
		casfs_store_path_format(&ret->path, got);
		casfs_narinfo_release(ret);
		r = casfs_error_set(err, -EBADMSG, "'%s' in '%s' is the narinfo of another path (%s)",
				    name, bc->url, got);
	}
	return r;
}

/* Fetching a NAR runs in two stages on two threads: a producer downloads
 * and decompresses (transport, decompress.h) into a chunk pipe, the
 * calling thread parses and ingests (import.h), so that xz or zstd
 * decoding overlaps with hashing and writing blobs. */
#define PIPE_SLOTS 8

struct producer {
	struct casfs_binary_cache *bc;
	const char *url;
	struct casfs_decompress *dec;
	struct casfs_chunk_pipe *pipe;
	struct casfs_error err;
};

static int push_sink(void *userdata, const void *p, size_t n, struct casfs_error *err)
{
	struct producer *pr = userdata;
	int r = casfs_chunk_pipe_push(pr->pipe, p, n);
	return r < 0 ? casfs_error_set(err, r, "cancelled") : 0;
}

static int body_sink(void *userdata, const void *p, size_t n, struct casfs_error *err)
{
	struct producer *pr = userdata;
	return casfs_decompress_feed(pr->dec, p, n, push_sink, pr, err);
}

static void *produce(void *arg)
{
	struct producer *pr = arg;
	int r = casfs_transport_get(pr->bc->t, pr->url, UINT64_MAX, body_sink, pr, &pr->err);
	if (r >= 0)
		r = casfs_decompress_finish(pr->dec, push_sink, pr, NULL, NULL, &pr->err);
	casfs_chunk_pipe_close(pr->pipe, r < 0 ? r : 0);
	return NULL;
}

/* Feed the NAR popped from the pipe to the importer, at most `nar_size`
 * bytes.  Returns 0, the consumer's error (the pipe cancelled), or the
 * producer's (-ECANCELED is never its own). */
static int consume(struct casfs_chunk_pipe *pipe, struct casfs_nar_import *imp, uint64_t nar_size,
		   bool *ret_producer_failed, struct casfs_error *err)
{
	uint64_t total = 0;
	for (;;) {
		const void *p;
		ssize_t n = casfs_chunk_pipe_pop(pipe, &p);
		*ret_producer_failed = n < 0;
		if (n <= 0)
			return (int)n;
		total += (uint64_t)n;
		int r = total > nar_size
				? casfs_error_set(err, -EBADMSG, "NAR is longer than its NarSize %llu",
						  (unsigned long long)nar_size)
				: casfs_nar_import_feed(imp, p, (size_t)n, err);
		if (r < 0) {
			casfs_chunk_pipe_cancel(pipe);
			return r;
		}
	}
}

static int bc_fetch(struct casfs_substituter *s, const struct casfs_narinfo *ni,
		    struct casfs_store *into, struct casfs_node *ret_root,
		    uint8_t ret_nar_sha256[CASFS_SHA256_LEN], uint64_t *ret_nar_size,
		    struct casfs_error *err)
{
	struct casfs_binary_cache *bc = (struct casfs_binary_cache *)s;
	enum casfs_compression c;
	int r = casfs_compression_parse(ni->compression, &c, err);
	if (r < 0)
		return r;
	struct producer pr = { .bc = bc, .url = ni->url };
	pr.dec = casfs_decompress_new(c);
	pr.pipe = casfs_chunk_pipe_new(PIPE_SLOTS, CASFS_DECOMPRESS_CHUNK);
	struct casfs_nar_import *imp = casfs_nar_import_new(into, NULL);
	pthread_t thread;
	if (!pr.dec || !pr.pipe || !imp)
		r = casfs_error_set(err, -ENOMEM, "out of memory");
	else if ((r = -pthread_create(&thread, NULL, produce, &pr)) < 0)
		r = casfs_error_set(err, r, "cannot start a download thread: %s", strerror(-r));
	if (r >= 0) {
		bool producer_failed;
		r = consume(pr.pipe, imp, ni->nar_size, &producer_failed, err);
		casfs_chunk_pipe_cancel(pr.pipe); /* a producer still pushing stops */
		pthread_join(thread, NULL);
		if (producer_failed)
			*err = pr.err;
	}
	if (r >= 0)
		r = casfs_nar_import_end(imp, ret_nar_sha256, ret_nar_size, err);
	if (r >= 0) {
		char base[CASFS_STORE_PATH_BASENAME_MAX + 1];
		casfs_store_path_format_basename(&ni->path, base);
		r = casfs_nar_import_finish(imp, base, ret_root, err);
	}
	if (r < 0 && r != -ENOMEM)
		r = casfs_error_prefix(err, r, "NAR '%s' of '%s'", ni->url, bc->url);
	casfs_decompress_free(pr.dec);
	casfs_chunk_pipe_free(pr.pipe);
	casfs_nar_import_free(imp);
	return r;
}

static const struct casfs_substituter_ops binary_cache_ops = {
	.query = bc_query,
	.fetch = bc_fetch,
	.free = bc_free,
};

int casfs_binary_cache_has(struct casfs_binary_cache *bc, const uint8_t digest[CASFS_STORE_DIGEST_LEN],
			   struct casfs_error *err)
{
	char name[CASFS_STORE_PATH_HASH_CHARS + 16];
	narinfo_name(digest, name);
	return casfs_transport_exists(bc->t, name, err);
}

/* ---- writing ------------------------------------------------------------ */

static const char *nar_extension(enum casfs_compression c)
{
	switch (c) {
	case CASFS_COMPRESSION_XZ:
		return ".xz";
	case CASFS_COMPRESSION_ZSTD:
		return ".zst";
	case CASFS_COMPRESSION_BZIP2:
		return ".bz2";
	default:
		return "";
	}
}

/* The NAR, rendered and compressed into a temporary file. */
struct nar_file {
	int fd;
	struct casfs_compress *z;
	struct casfs_sha256_hasher nar_hash, file_hash;
	uint64_t nar_size, file_size;
	struct casfs_error *err;
};

static int file_sink(void *userdata, const void *p, size_t n, struct casfs_error *err)
{
	struct nar_file *nf = userdata;
	casfs_sha256_update(&nf->file_hash, p, n);
	nf->file_size += n;
	if (casfs_write_all(nf->fd, p, n) < 0)
		return casfs_error_set(err, -errno, "cannot write the NAR's temporary file: %m");
	return 0;
}

static int render_sink(void *userdata, const void *p, size_t n)
{
	struct nar_file *nf = userdata;
	casfs_sha256_update(&nf->nar_hash, p, n);
	nf->nar_size += n;
	return casfs_compress_feed(nf->z, p, n, file_sink, nf, nf->err);
}

static int open_tmpfile(struct casfs_error *err)
{
	const char *dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/var/tmp";
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return casfs_error_set(err, -errno, "cannot create a temporary file in '%s': %m", dir);
	return fd;
}

/* <hash>.ls: the listing Nix writes with write-nar-listing=true. */
static int write_listing(struct casfs_binary_cache *bc, struct casfs_store *from,
			 const struct casfs_pathinfo *pi, struct casfs_error *err)
{
	struct casfs_nar_plan *plan;
	int r = casfs_nar_plan_new(from, &pi->node, true, &plan, err);
	if (r < 0)
		return r;
	size_t len;
	const char *json = casfs_nar_plan_listing(plan, &len);
	struct casfs_store_path sp;
	r = casfs_store_path_parse_basename(pi->node.name, pi->node.name_len, &sp, err);
	if (r >= 0) {
		char name[CASFS_STORE_PATH_HASH_CHARS + 16];
		size_t n = casfs_nixbase32_encode(sp.digest, CASFS_STORE_DIGEST_LEN, name);
		strcpy(name + n, ".ls");
		r = casfs_transport_put(bc->t, name, "application/json", json, len, err);
	}
	casfs_nar_plan_free(plan);
	return r;
}

static int write_cache_info(struct casfs_binary_cache *bc, struct casfs_error *err)
{
	pthread_mutex_lock(&bc->lock);
	int r = 0;
	if (!bc->cache_info_known) {
		r = casfs_transport_exists(bc->t, "nix-cache-info", err);
		if (r == 0) {
			static const char info[] = "StoreDir: " CASFS_STORE_DIR "\n";
			r = casfs_transport_put(bc->t, "nix-cache-info", "text/x-nix-cache-info", info,
						sizeof(info) - 1, err);
		}
		if (r >= 0)
			bc->cache_info_known = true;
	}
	pthread_mutex_unlock(&bc->lock);
	return r < 0 ? r : 0;
}

static int render_nar(struct casfs_binary_cache *bc, struct casfs_store *from,
		      const struct casfs_pathinfo *pi, struct nar_file *nf, struct casfs_error *err)
{
	nf->err = err;
	int r = casfs_sha256_init(&nf->nar_hash);
	if (r >= 0)
		r = casfs_sha256_init(&nf->file_hash);
	if (r < 0)
		return casfs_error_set(err, r, "cannot set up SHA-256");
	if (!(nf->z = casfs_compress_new(bc->compression)))
		return casfs_error_set(err, -ENOMEM, "out of memory");
	r = casfs_export_nar(from, &pi->node, render_sink, nf, err);
	if (r >= 0)
		r = casfs_compress_finish(nf->z, file_sink, nf, err);
	if (r < 0)
		return r;
	uint8_t got[CASFS_SHA256_LEN];
	casfs_sha256_final(&nf->nar_hash, got);
	if (nf->nar_size != pi->nar_size || memcmp(got, pi->nar_sha256, CASFS_SHA256_LEN) != 0)
		return casfs_error_set(err, -EBADMSG,
				       "'%s': the NAR rendered (%llu bytes) does not match the path's NarHash/NarSize",
				       pi->node.name, (unsigned long long)nf->nar_size);
	return 0;
}

int casfs_binary_cache_upload_nar(struct casfs_binary_cache *bc, struct casfs_store *from,
				  const struct casfs_pathinfo *pi, struct casfs_buf *text,
				  uint64_t *ret_file_size, struct casfs_error *err)
{
	int r = write_cache_info(bc, err);
	if (r < 0)
		return r;
	struct nar_file nf = { .fd = -1 };
	struct casfs_narinfo ni = { 0 };
	_cleanup_free_ char *nar_path = NULL;
	*ret_file_size = 0;
	if (bc->listing && (r = write_listing(bc, from, pi, err)) < 0)
		return r;
	nf.fd = open_tmpfile(err);
	if (nf.fd < 0)
		return nf.fd;
	r = render_nar(bc, from, pi, &nf, err);
	if (r < 0)
		goto out;
	uint8_t file_sha[CASFS_SHA256_LEN];
	casfs_sha256_final(&nf.file_hash, file_sha);
	char b32[CASFS_NIXBASE32_LEN(CASFS_SHA256_LEN) + 1];
	casfs_nixbase32_encode(file_sha, CASFS_SHA256_LEN, b32);
	b32[CASFS_NIXBASE32_LEN(CASFS_SHA256_LEN)] = 0;
	if (asprintf(&nar_path, "nar/%s.nar%s", b32, nar_extension(bc->compression)) < 0) {
		nar_path = NULL;
		r = -ENOMEM;
		goto out;
	}
	r = casfs_transport_exists(bc->t, nar_path, err);
	if (r == 0 && lseek(nf.fd, 0, SEEK_SET) == 0) {
		r = casfs_transport_put_fd(bc->t, nar_path, "application/x-nix-nar", nf.fd,
					   nf.file_size, err);
		*ret_file_size = nf.file_size;
	}
	if (r < 0)
		goto out;

	r = casfs_narinfo_from_pathinfo(pi, nar_path, casfs_compression_name(bc->compression), &ni, err);
	if (r < 0)
		goto out;
	ni.has_file_hash = ni.has_file_size = true;
	memcpy(ni.file_sha256, file_sha, CASFS_SHA256_LEN);
	ni.file_size = nf.file_size;
	if (bc->has_key && (r = casfs_nixkey_add_signature(&bc->key, &ni, err)) < 0)
		goto out;
	r = casfs_narinfo_render(&ni, text);
out:
	if (r == -ENOMEM)
		casfs_error_set(err, r, "out of memory");
	casfs_compress_free(nf.z);
	casfs_sha256_release(&nf.nar_hash);
	casfs_sha256_release(&nf.file_hash);
	if (nf.fd >= 0)
		close(nf.fd);
	casfs_narinfo_release(&ni);
	return r;
}

int casfs_binary_cache_put_narinfo(struct casfs_binary_cache *bc,
				   const uint8_t digest[CASFS_STORE_DIGEST_LEN],
				   const struct casfs_buf *narinfo, struct casfs_error *err)
{
	char name[CASFS_STORE_PATH_HASH_CHARS + 16];
	narinfo_name(digest, name);
	return casfs_transport_put(bc->t, name, "text/x-nix-narinfo", narinfo->data, narinfo->len, err);
}
