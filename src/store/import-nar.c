/* casfs_import_nar and the registration step shared with import-fs.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../basic/util.h"
#include "../nar/nar-reader.h"
#include "import.h"
#include "ingest.h"

#define NAR_READ_CHUNK (1u << 20)

int casfs_import_register(struct casfs_store *s, struct casfs_node *root_taken,
			  const struct casfs_store_path *sp,
			  const uint8_t nar_sha256[CASFS_SHA256_LEN], uint64_t nar_size,
			  struct casfs_error *err)
{
	struct casfs_pathinfo pi = { 0 };
	pi.node = *root_taken;
	memset(root_taken, 0, sizeof(*root_taken));
	pi.has_narinfo = true;
	pi.nar_size = nar_size;
	memcpy(pi.nar_sha256, nar_sha256, CASFS_SHA256_LEN);
	pi.has_ca = true;
	pi.ca_type = CASFS_CA_NAR_SHA256;
	pi.ca_digest = malloc(CASFS_SHA256_LEN);
	int r = -ENOMEM;
	if (pi.ca_digest) {
		memcpy(pi.ca_digest, nar_sha256, CASFS_SHA256_LEN);
		pi.ca_digest_len = CASFS_SHA256_LEN;
		r = casfs_store_add_ingested(s, sp->digest, &pi, err);
	}
	casfs_pathinfo_release(&pi);
	return r;
}

struct casfs_nar_import {
	struct casfs_nar_reader *reader;
	struct casfs_ingest *ingest;
	const struct casfs_import_options *opts;
	bool failed;
};

struct casfs_nar_import *casfs_nar_import_new(struct casfs_store *s,
					      const struct casfs_import_options *opts)
{
	struct casfs_nar_import *ni = calloc(1, sizeof(*ni));
	if (!ni)
		return NULL;
	ni->opts = opts;
	ni->reader = casfs_nar_reader_new();
	ni->ingest = casfs_ingest_new(s);
	if (!ni->reader || !ni->ingest) {
		casfs_nar_import_free(ni);
		return NULL;
	}
	return ni;
}

void casfs_nar_import_free(struct casfs_nar_import *ni)
{
	if (!ni)
		return;
	casfs_nar_reader_free(ni->reader);
	casfs_ingest_free(ni->ingest);
	free(ni);
}

static int feed_event(struct casfs_nar_import *ni, const struct casfs_nar_event *ev,
		      struct casfs_error *err)
{
	const char *name = ev->depth ? ev->name : NULL;
	switch (ev->type) {
	case CASFS_NAR_FILE_BEGIN:
		return casfs_ingest_file_begin(ni->ingest, name, ev->name_len, ev->executable,
					       ev->size, err);
	case CASFS_NAR_FILE_DATA:
		return casfs_ingest_file_data(ni->ingest, ev->data, ev->len, err);
	case CASFS_NAR_FILE_END: {
		int r = casfs_ingest_file_end(ni->ingest, err);
		if (r >= 0 && ni->opts && ni->opts->progress) {
			uint64_t files, bytes;
			casfs_ingest_stats(ni->ingest, &files, &bytes);
			if (files % 256 == 0)
				ni->opts->progress(ni->opts->progress_userdata, files, bytes);
		}
		return r;
	}
	case CASFS_NAR_SYMLINK:
		return casfs_ingest_symlink(ni->ingest, name, ev->name_len, ev->target,
					    ev->target_len, err);
	case CASFS_NAR_DIRECTORY_BEGIN:
		return casfs_ingest_directory_begin(ni->ingest, name, ev->name_len, err);
	case CASFS_NAR_DIRECTORY_END:
		return casfs_ingest_directory_end(ni->ingest, err);
	default:
		return 0;
	}
}

static int import_failed(struct casfs_nar_import *ni, int r, struct casfs_error *err)
{
	ni->failed = true;
	return r == -EBADMSG ? casfs_error_prefix(err, r, "invalid NAR") : r;
}

int casfs_nar_import_feed(struct casfs_nar_import *ni, const void *p, size_t n,
			  struct casfs_error *err)
{
	if (ni->failed)
		return casfs_error_set(err, -EINVAL, "NAR import already failed");
	if (n == 0)
		return 0;
	casfs_nar_reader_feed(ni->reader, p, n);
	for (;;) {
		struct casfs_nar_event ev;
		int r = casfs_nar_reader_step(ni->reader, &ev, err);
		if (r < 0)
			return import_failed(ni, r, err);
		/* DONE: the rest of this buffer is checked by the next step
		 * (trailing bytes are an error); otherwise it is consumed. */
		if (ev.type == CASFS_NAR_NEED_DATA)
			return 0;
		if (ev.type == CASFS_NAR_DONE)
			continue;
		r = feed_event(ni, &ev, err);
		if (r < 0)
			return import_failed(ni, r, err);
	}
}

int casfs_nar_import_end(struct casfs_nar_import *ni, uint8_t ret_sha256[CASFS_SHA256_LEN],
			 uint64_t *ret_size, struct casfs_error *err)
{
	if (ni->failed)
		return casfs_error_set(err, -EINVAL, "NAR import already failed");
	int r = casfs_nar_reader_end(ni->reader, err);
	if (r < 0)
		return import_failed(ni, r, err);
	casfs_nar_reader_result(ni->reader, ret_sha256, ret_size);
	return 0;
}

int casfs_nar_import_finish(struct casfs_nar_import *ni, const char *root_name,
			    struct casfs_node *ret, struct casfs_error *err)
{
	if (ni->failed)
		return casfs_error_set(err, -EINVAL, "NAR import already failed");
	return casfs_ingest_finish(ni->ingest, root_name, ret, err);
}

static int feed_sink(void *userdata, const void *p, size_t n, struct casfs_error *err)
{
	return casfs_nar_import_feed(userdata, p, n, err);
}

/* Read `fd` to EOF through a decompressor into the importer. */
static int read_nar(struct casfs_nar_import *ni, int fd, enum casfs_compression c,
		    uint8_t *buf, struct casfs_error *err)
{
	struct casfs_decompress *d = casfs_decompress_new(c);
	if (!d)
		return -ENOMEM;
	int r;
	for (;;) {
		ssize_t n;
		do
			n = read(fd, buf, NAR_READ_CHUNK);
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			r = casfs_error_set(err, casfs_neg_errno(), "reading NAR: %s", strerror(errno));
			break;
		}
		if (n == 0) {
			r = casfs_decompress_finish(d, feed_sink, ni, NULL, NULL, err);
			break;
		}
		r = casfs_decompress_feed(d, buf, (size_t)n, feed_sink, ni, err);
		if (r < 0)
			break;
	}
	casfs_decompress_free(d);
	return r;
}

int casfs_import_nar(struct casfs_store *s, int fd, const char *name,
		     const struct casfs_import_options *opts, struct casfs_import_result *ret,
		     struct casfs_error *err)
{
	/* A full store path pins the expected hash; a bare name does not. */
	struct casfs_store_path want;
	bool pinned = strchr(name, '/') != NULL;
	int r = pinned ? casfs_store_path_parse(name, &want, err)
		       : casfs_store_path_name_validate(name, strlen(name), err);
	if (r < 0)
		return r;
	const char *plain = pinned ? want.name : name;

	_cleanup_free_ uint8_t *buf = malloc(NAR_READ_CHUNK);
	struct casfs_nar_import *ni = casfs_nar_import_new(s, opts);
	uint8_t sha[CASFS_SHA256_LEN];
	uint64_t size;
	if (!ni || !buf)
		r = -ENOMEM;
	else
		r = read_nar(ni, fd, opts ? opts->compression : CASFS_COMPRESSION_NONE, buf, err);
	if (r >= 0)
		r = casfs_nar_import_end(ni, sha, &size, err);
	if (r < 0)
		goto out;
	struct casfs_store_path sp;
	r = casfs_store_path_make_source(sha, plain, NULL, 0, &sp, err);
	if (r < 0)
		goto out;
	if (pinned && memcmp(sp.digest, want.digest, sizeof(sp.digest)) != 0) {
		char got[CASFS_STORE_PATH_MAX + 1];
		casfs_store_path_format(&sp, got);
		r = casfs_error_set(err, -EBADMSG, "NAR content gives store path %s, not %s", got,
				    name);
		goto out;
	}
	char base[CASFS_STORE_PATH_BASENAME_MAX + 1];
	casfs_store_path_format_basename(&sp, base);
	struct casfs_node root;
	r = casfs_nar_import_finish(ni, base, &root, err);
	if (r >= 0)
		r = casfs_import_register(s, &root, &sp, sha, size, err);
	if (r >= 0) {
		ret->path = sp;
		memcpy(ret->nar_sha256, sha, sizeof(sha));
		ret->nar_size = size;
	}
out:
	casfs_nar_import_free(ni);
	return r;
}
