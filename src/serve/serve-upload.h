/* The write half of serve-cache: `nix copy --to http://…` uploads.
 *
 * Nix 2.8 uploads a path as (dependencies first): PUT <hash>.ls, HEAD
 * nar/<filehash>.nar<ext>, PUT nar/<filehash>.nar<ext> unless the HEAD
 * found it, and PUT <hash>.narinfo last: the narinfo is the commit point.
 *
 *   NAR PUT      the body goes through the decompressor its extension
 *                names into the push NAR importer (store/import.h) as it
 *                arrives: blobs and directories land in the store, nothing
 *                refers to them yet.  At its end the body's SHA-256 must
 *                equal the <filehash> of its name, and the NAR must be
 *                complete; its root node is then kept as a pending upload
 *                keyed by the NAR's SHA-256 and size.
 *   narinfo PUT  parsed (nixcache/narinfo.h), StorePath's hash must be the
 *                one in the URL; the NAR is the pending upload with its
 *                NarHash (taken out of the table), else an already
 *                registered path with the same NarHash (the HEAD found its
 *                NAR); NarSize must match.  Registered with
 *                casfs_store_add_ingested, which refuses a path whose
 *                references are not registered (the pending upload is then
 *                put back, for a retry after the references came).
 *
 * The pending table holds at most CASFS_UPLOAD_PENDING_MAX entries; the
 * oldest is dropped (its blobs stay, unreferenced) to make room.
 * Errors are -EBADMSG (malformed, hash or size mismatch), -ENOENT (no such
 * NAR uploaded; missing references), -EOVERFLOW, -ENOMEM, -EIO, each with a
 * one-line message.  The table is thread-safe; one casfs_nar_upload
 * belongs to one request (one thread at a time). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "../basic/error.h"
#include "../digest/digest.h"
#include "../store/store.h"
#include "serve-narmap.h"

#define CASFS_UPLOAD_PENDING_MAX 4096

struct casfs_upload_table;
struct casfs_nar_upload;

struct casfs_upload_table *casfs_upload_table_new(void);
void casfs_upload_table_free(struct casfs_upload_table *t);

/* One NAR body.  `compression` a Nix name (decompress.h); `file_sha256`
 * the hash its URL names (copied).  NULL on OOM or -ENOTSUP compression
 * (*ret_err set). */
struct casfs_nar_upload *casfs_nar_upload_new(struct casfs_store *s, const char *compression,
					      const uint8_t file_sha256[CASFS_SHA256_LEN], int *ret_err);
void casfs_nar_upload_free(struct casfs_nar_upload *u);
/* More body bytes.  After a failure every call returns the same error. */
int casfs_nar_upload_feed(struct casfs_nar_upload *u, const void *p, size_t n,
			  struct casfs_error *err);
/* The body is complete: check it, and keep it as pending in `t`. */
int casfs_nar_upload_finish(struct casfs_nar_upload *u, struct casfs_upload_table *t,
			    struct casfs_error *err);

/* A narinfo body for store path `path_digest` (from the URL).  On success
 * the path is registered and `map` learns its NarHash. */
int casfs_narinfo_upload(struct casfs_store *s, struct casfs_upload_table *t, struct casfs_narmap *map,
			 const uint8_t path_digest[CASFS_STORE_PATH_DIGEST_LEN], const char *text,
			 size_t len, struct casfs_error *err);
