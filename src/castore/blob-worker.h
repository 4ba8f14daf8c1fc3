/* Storing blobs on a background thread, so that an importer can read and
 * hash the next file while the previous one is being written.
 *
 * Jobs run in submission order on one worker thread:
 *   put            a whole blob in one buffer (small files): hashed,
 *                  stored only if absent (a present one gets its outboard
 *                  if it has none, as below);
 *   stream_*       a blob in chunks (large files) through a blob writer,
 *                  optionally checked against an expected digest;
 *   hash_*         BLAKE3 of chunks, nothing stored (to learn a large
 *                  file's digest, and whether it is new, before copying),
 *                  except the outboard of a blob already stored without
 *                  one (stores upgraded from version 1 fill in).
 * Every buffer handed in is owned by the worker from then on (freed with
 * free()).  Submitting blocks while more than `max_inflight` bytes are
 * queued, so memory stays bounded.  Each finished blob yields a result
 * (the caller's tag, the digest and size) that casfs_blob_worker_drain()
 * hands back, in submission order, once everything queued is done (or
 * casfs_blob_worker_poll(), as far as they are done).
 * After a failure later jobs are skipped and drain returns the first
 * error, with its message.
 *
 * Thread safety: one submitting thread per worker. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "../basic/error.h"
#include "blobservice.h"

struct casfs_blob_worker;

int casfs_blob_worker_new(struct casfs_blob_service *s, size_t max_inflight,
			  struct casfs_blob_worker **ret);
/* Stops the thread; pending jobs are discarded (streams aborted). */
void casfs_blob_worker_free(struct casfs_blob_worker *w);

int casfs_blob_worker_put(struct casfs_blob_worker *w, uint8_t *buf_taken, size_t n, uint64_t tag);
int casfs_blob_worker_stream_begin(struct casfs_blob_worker *w);
int casfs_blob_worker_stream_data(struct casfs_blob_worker *w, uint8_t *buf_taken, size_t n);
/* `expected` (may be NULL) is copied: a mismatch fails with -EBADMSG. */
int casfs_blob_worker_stream_end(struct casfs_blob_worker *w, uint64_t tag,
				 const uint8_t *expected);
int casfs_blob_worker_hash_begin(struct casfs_blob_worker *w);
int casfs_blob_worker_hash_data(struct casfs_blob_worker *w, uint8_t *buf_taken, size_t n);
int casfs_blob_worker_hash_end(struct casfs_blob_worker *w, uint64_t tag);

typedef int (*casfs_blob_worker_result_fn)(void *userdata, uint64_t tag,
					    const uint8_t digest[CASFS_B3_LEN], uint64_t size);
/* Wait for all queued jobs, then call cb for each result since the last
 * drain.  Returns the first job error (message in err), else cb's first
 * negative return, else 0. */
int casfs_blob_worker_drain(struct casfs_blob_worker *w, casfs_blob_worker_result_fn cb,
			    void *userdata, struct casfs_error *err);
/* The same without waiting: the results finished so far (still in
 * submission order), or the first job error. */
int casfs_blob_worker_poll(struct casfs_blob_worker *w, casfs_blob_worker_result_fn cb,
			   void *userdata, struct casfs_error *err);
