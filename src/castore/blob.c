/* Backend-independent helpers of the BlobService. */
#include "blobservice.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../basic/util.h"

int casfs_blob_put(struct casfs_blob_service *s, const void *p, size_t n,
		   uint8_t ret_digest[CASFS_B3_LEN])
{
	struct casfs_blob_writer *w = NULL;
	int r = casfs_blob_create(s, &w);
	if (r < 0)
		return r;
	r = casfs_blob_writer_write(w, p, n);
	if (r < 0) {
		casfs_blob_writer_abort(w);
		return r;
	}
	return casfs_blob_writer_commit(w, NULL, ret_digest, NULL);
}

#define VERIFY_CHUNK (256 * 1024)

int casfs_blob_verify(struct casfs_blob_reader *r, struct casfs_error *err)
{
	char want[CASFS_B3_STR_LEN + 1];
	casfs_b3_format(r->digest, want);
	_cleanup_free_ uint8_t *buf = malloc(VERIFY_CHUNK);
	if (!buf)
		return -ENOMEM;

	struct casfs_b3_hasher h;
	casfs_b3_init(&h);
	uint64_t off = 0;
	for (;;) {
		ssize_t n = casfs_blob_reader_pread(r, buf, VERIFY_CHUNK, off);
		if (n < 0)
			return casfs_error_set(err, (int)n, "blob %s: read at offset %llu: %s",
					       want, (unsigned long long)off, strerror((int)-n));
		if (n == 0)
			break;
		casfs_b3_update(&h, buf, (size_t)n);
		off += (uint64_t)n;
	}
	/* A reader that ends early or late is as damaged as one with wrong bytes:
	 * the size is part of what the node promises. */
	if (off != r->size)
		return casfs_error_set(err, -EBADMSG, "blob %s is damaged: %llu bytes, expected %llu",
				       want, (unsigned long long)off, (unsigned long long)r->size);
	uint8_t got[CASFS_B3_LEN];
	casfs_b3_final(&h, got);
	if (memcmp(got, r->digest, CASFS_B3_LEN) != 0) {
		char have[CASFS_B3_STR_LEN + 1];
		casfs_b3_format(got, have);
		return casfs_error_set(err, -EBADMSG, "blob %s is damaged: content hashes to %s",
				       want, have);
	}
	return 0;
}
