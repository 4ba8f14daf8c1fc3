/* Backend-independent helpers of the BlobService. */
#include "blobservice.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "../basic/util.h"

static int put(struct casfs_blob_service *s, const void *p, size_t n, const uint8_t *expected,
	       uint8_t ret_digest[CASFS_B3_LEN])
{
	struct casfs_blob_writer *w = NULL;
	bool known = expected && s->ops->create_known && !casfs_outboard_wanted(n);
	int r = known ? s->ops->create_known(s, expected, &w) : casfs_blob_create(s, &w);
	if (r < 0)
		return r;
	r = casfs_blob_writer_write(w, p, n);
	if (r < 0) {
		casfs_blob_writer_abort(w);
		return r;
	}
	return casfs_blob_writer_commit(w, expected, ret_digest, NULL);
}

int casfs_blob_put(struct casfs_blob_service *s, const void *p, size_t n,
		   uint8_t ret_digest[CASFS_B3_LEN])
{
	return put(s, p, n, NULL, ret_digest);
}

int casfs_blob_put_known(struct casfs_blob_service *s, const void *p, size_t n,
			 const uint8_t digest[CASFS_B3_LEN])
{
	return put(s, p, n, digest, NULL);
}

/* Big enough that each hashing thread gets a few MiB per read. */
#define VERIFY_CHUNK (8u << 20)

/* The end of a verify: the stream's digest against the reader's. */
static int verify_finish(struct casfs_blob_reader *r, struct casfs_b3_stream *h,
			 struct casfs_outboard *ret_ob, struct casfs_error *err)
{
	uint8_t got[CASFS_B3_LEN];
	struct casfs_outboard ob;
	int rc = casfs_b3_stream_final(h, got, &ob);
	if (rc < 0)
		return rc;
	if (memcmp(got, r->digest, CASFS_B3_LEN) != 0) {
		casfs_outboard_release(&ob);
		char want[CASFS_B3_STR_LEN + 1], have[CASFS_B3_STR_LEN + 1];
		casfs_b3_format(r->digest, want);
		casfs_b3_format(got, have);
		return casfs_error_set(err, -EBADMSG, "blob %s is damaged: content hashes to %s",
				       want, have);
	}
	if (ret_ob)
		*ret_ob = ob;
	else
		casfs_outboard_release(&ob);
	return 0;
}

/* A reader that ends early or late is as damaged as one with wrong bytes:
 * the size is part of what the node promises. */
static int size_error(struct casfs_blob_reader *r, uint64_t have, struct casfs_error *err)
{
	char want[CASFS_B3_STR_LEN + 1];
	casfs_b3_format(r->digest, want);
	return casfs_error_set(err, -EBADMSG, "blob %s is damaged: %llu bytes, expected %llu", want,
			       (unsigned long long)have, (unsigned long long)r->size);
}

int casfs_blob_verify(struct casfs_blob_reader *r, struct casfs_outboard *ret_ob,
		      struct casfs_error *err)
{
	size_t chunk = (size_t)MIN((uint64_t)VERIFY_CHUNK, r->size + 1);
	_cleanup_free_ uint8_t *buf = malloc(chunk);
	if (!buf)
		return -ENOMEM;

	struct casfs_b3_stream h;
	casfs_b3_stream_init(&h, casfs_b3_threads());
	uint64_t off = 0;
	int rc = 0;
	for (;;) {
		ssize_t n = casfs_blob_reader_pread(r, buf, chunk, off);
		if (n < 0) {
			char want[CASFS_B3_STR_LEN + 1];
			casfs_b3_format(r->digest, want);
			rc = casfs_error_set(err, (int)n, "blob %s: read at offset %llu: %s", want,
					     (unsigned long long)off, strerror((int)-n));
			break;
		}
		if (n == 0)
			break;
		if ((rc = casfs_b3_stream_update(&h, buf, (size_t)n)) < 0)
			break;
		off += (uint64_t)n;
	}
	if (rc >= 0 && off != r->size)
		rc = size_error(r, off, err);
	if (rc < 0) {
		casfs_b3_stream_release(&h);
		return rc;
	}
	return verify_finish(r, &h, ret_ob, err);
}

/* Below this, mapping costs more than the copy it saves. */
#define VERIFY_MAP_MIN (4u << 20)

int casfs_blob_reader_map(struct casfs_blob_reader *r, const uint8_t **ret,
			  uint64_t *ret_file_size)
{
	int fd = casfs_blob_reader_fd(r);
	struct stat st;
	if (fd < 0 || r->size > SIZE_MAX || fstat(fd, &st) < 0)
		return -ENOTSUP;
	if ((uint64_t)st.st_size != r->size) { /* and a mapping past the end would fault */
		if (ret_file_size)
			*ret_file_size = (uint64_t)st.st_size;
		return -EBADMSG;
	}
	void *map = mmap(NULL, (size_t)r->size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return -ENOTSUP;
	madvise(map, (size_t)r->size, MADV_SEQUENTIAL | MADV_WILLNEED);
	*ret = map;
	return 0;
}

int casfs_blob_verify_mapped(struct casfs_blob_reader *r, struct casfs_outboard *ret_ob,
			     struct casfs_error *err)
{
	const uint8_t *map;
	uint64_t file_size = 0;
	int rc = r->size < VERIFY_MAP_MIN ? -ENOTSUP : casfs_blob_reader_map(r, &map, &file_size);
	if (rc == -EBADMSG)
		return size_error(r, file_size, err);
	if (rc < 0)
		return casfs_blob_verify(r, ret_ob, err);
	struct casfs_b3_stream h;
	casfs_b3_stream_init(&h, casfs_b3_threads());
	rc = casfs_b3_stream_update(&h, map, (size_t)r->size);
	munmap((void *)map, (size_t)r->size);
	if (rc < 0) {
		casfs_b3_stream_release(&h);
		return rc;
	}
	return verify_finish(r, &h, ret_ob, err);
}

int casfs_blob_stored_outboard(struct casfs_blob_service *s, struct casfs_blob_reader *r,
			       struct casfs_outboard *ret, struct casfs_error *err)
{
	if (!s->ops->outboard_get)
		return -ENOENT;
	_cleanup_free_ uint8_t *p = NULL;
	size_t len = 0;
	int rc = s->ops->outboard_get(s, r->digest, &p, &len);
	if (rc < 0)
		return rc == -ENOENT ? rc : casfs_error_set(err, rc, "outboard: %s", strerror(-rc));
	return casfs_outboard_decode(p, len, r->digest, r->size, ret, err);
}

int casfs_blob_outboard(struct casfs_blob_service *s, struct casfs_blob_reader *r,
			struct casfs_outboard *ret, enum casfs_outboard_source *ret_source,
			struct casfs_error *stored_err, struct casfs_error *err)
{
	struct casfs_error local = { 0 };
	if (!stored_err)
		stored_err = &local;
	int rc = casfs_blob_stored_outboard(s, r, ret, stored_err);
	if (rc >= 0 || rc == -ENOMEM) {
		if (ret_source)
			*ret_source = CASFS_OUTBOARD_STORED;
		return rc;
	}
	enum casfs_outboard_source source =
		rc == -ENOENT ? CASFS_OUTBOARD_BUILT : CASFS_OUTBOARD_REBUILT;
	if ((rc = casfs_blob_verify(r, ret, err)) < 0)
		return rc;
	if (ret->n == 0) { /* one group or less: nothing to check ranges with */
		casfs_outboard_release(ret);
		return casfs_error_set(err, -EINVAL, "blob of %llu bytes has no outboard",
				       (unsigned long long)r->size);
	}
	if (s->ops->outboard_put)
		(void)s->ops->outboard_put(s, r->digest, ret, source == CASFS_OUTBOARD_REBUILT);
	if (ret_source)
		*ret_source = source;
	return 0;
}

int casfs_blob_reader_pread_full(struct casfs_blob_reader *r, void *buf, size_t n, uint64_t off)
{
	uint8_t *p = buf;
	while (n) {
		ssize_t k = casfs_blob_reader_pread(r, p, n, off);
		if (k < 0)
			return (int)k;
		if (k == 0)
			return -EBADMSG;
		p += k, n -= (size_t)k, off += (uint64_t)k;
	}
	return 0;
}
