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

struct nar_import {
	struct casfs_nar_reader *reader;
	struct casfs_ingest *ingest;
	uint8_t *buf;
	const struct casfs_import_options *opts;
};

static int feed_event(struct nar_import *ni, const struct casfs_nar_event *ev,
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

/* Pull events until DONE and EOF; the NAR must end exactly at EOF. */
static int read_nar(struct nar_import *ni, int fd, struct casfs_error *err)
{
	for (;;) {
		struct casfs_nar_event ev;
		int r = casfs_nar_reader_step(ni->reader, &ev, err);
		if (r < 0)
			return r;
		if (ev.type == CASFS_NAR_NEED_DATA || ev.type == CASFS_NAR_DONE) {
			ssize_t n;
			do
				n = read(fd, ni->buf, NAR_READ_CHUNK);
			while (n < 0 && errno == EINTR);
			if (n < 0)
				return casfs_error_set(err, casfs_neg_errno(), "reading NAR: %s",
						       strerror(errno));
			if (n == 0)
				return casfs_nar_reader_end(ni->reader, err);
			casfs_nar_reader_feed(ni->reader, ni->buf, (size_t)n);
			continue;
		}
		r = feed_event(ni, &ev, err);
		if (r < 0)
			return r;
	}
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

	struct nar_import ni = { .opts = opts };
	ni.reader = casfs_nar_reader_new();
	ni.ingest = casfs_ingest_new(s);
	ni.buf = malloc(NAR_READ_CHUNK);
	if (!ni.reader || !ni.ingest || !ni.buf) {
		r = -ENOMEM;
		goto out;
	}
	r = read_nar(&ni, fd, err);
	if (r < 0) {
		casfs_error_prefix(err, r, "invalid NAR");
		goto out;
	}
	uint8_t sha[CASFS_SHA256_LEN];
	uint64_t size;
	casfs_nar_reader_result(ni.reader, sha, &size);
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
	r = casfs_ingest_finish(ni.ingest, base, &root, err);
	if (r >= 0)
		r = casfs_import_register(s, &root, &sp, sha, size, err);
	if (r >= 0) {
		ret->path = sp;
		memcpy(ret->nar_sha256, sha, sizeof(sha));
		ret->nar_size = size;
	}
out:
	casfs_nar_reader_free(ni.reader);
	casfs_ingest_free(ni.ingest);
	free(ni.buf);
	return r;
}
