/* A low-level NAR encoder: the caller walks a tree and calls one function
 * per token group; the writer emits the bytes Nix would (format: see
 * nar-reader.h) to a sink callback, through an internal buffer that
 * coalesces the many small tokens into few sink calls.
 *
 * Call sequence (anything else is -EINVAL):
 *     begin
 *     node                                 -- the root
 *     finish
 *   node = file_begin file_data* file_end  -- file_data totalling `size`
 *        | symlink
 *        | directory_begin (entry_begin node entry_end)* directory_end
 *
 * The writer checks what the NAR format requires so that it can never emit
 * something casfs_nar_reader rejects: entry names (1-255 bytes, not "."
 * or "..", no '/' or NUL) in strictly increasing bytewise order within a
 * directory, symlink targets (1-4095 bytes, no NUL), depth at most
 * CASFS_NAR_MAX_DEPTH, file sizes at most INT64_MAX, exactly `size`
 * content bytes per file.  A violation
 * returns -EINVAL and writes nothing for that call.
 *
 * Errors are sticky: after any failure (sink error, -EINVAL, -ENOMEM)
 * every later call returns the same error.  Bytes may have reached the sink
 * before a failure; the output is then unusable.
 *
 * Embedded struct: casfs_nar_writer_init/_release.  Not thread-safe. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../digest/digest.h"
#include "nar-reader.h"

/* Writes all `n` bytes or fails: >= 0 on success, -errno on failure
 * (returned unchanged by the writer call that flushed). */
typedef int (*casfs_nar_sink_fn)(void *userdata, const void *p, size_t n);

#define CASFS_NAR_WRITER_BUF_SIZE (64 * 1024)

struct casfs_nar_writer_level; /* private */

struct casfs_nar_writer {
	/* all private */
	casfs_nar_sink_fn write;
	void *userdata;
	uint8_t *buf;
	size_t buf_len, buf_cap;
	bool want_sha256;
	struct casfs_sha256_hasher sha;
	uint8_t sha256[CASFS_SHA256_LEN];
	uint64_t size;
	int state;
	unsigned depth;
	uint64_t file_left;
	struct casfs_nar_writer_level *levels;
	size_t levels_cap;
	int error;
};

/* `write`/`userdata`: the sink, borrowed until _release.  `buf_size`: the
 * coalescing buffer (0 for CASFS_NAR_WRITER_BUF_SIZE; tests use tiny
 * ones).  `want_sha256`: also compute the NAR SHA-256 (see _result).
 * 0 or -ENOMEM. */
int casfs_nar_writer_init(struct casfs_nar_writer *w, casfs_nar_sink_fn write, void *userdata,
			  size_t buf_size, bool want_sha256);
/* Frees the buffers; does not flush.  Safe on a zeroed struct. */
void casfs_nar_writer_release(struct casfs_nar_writer *w);

int casfs_nar_writer_begin(struct casfs_nar_writer *w);
int casfs_nar_writer_file_begin(struct casfs_nar_writer *w, bool executable, uint64_t size);
/* Large slices go to the sink directly, bypassing the buffer. */
int casfs_nar_writer_file_data(struct casfs_nar_writer *w, const void *p, size_t n);
int casfs_nar_writer_file_end(struct casfs_nar_writer *w);
int casfs_nar_writer_symlink(struct casfs_nar_writer *w, const char *target, size_t len);
int casfs_nar_writer_directory_begin(struct casfs_nar_writer *w);
int casfs_nar_writer_entry_begin(struct casfs_nar_writer *w, const char *name, size_t len);
int casfs_nar_writer_entry_end(struct casfs_nar_writer *w);
int casfs_nar_writer_directory_end(struct casfs_nar_writer *w);
/* After the root node: flush everything to the sink. */
int casfs_nar_writer_finish(struct casfs_nar_writer *w);

/* Replay one casfs_nar_reader event: the begin (if not yet done), then the
 * calls the event stands for (entry_begin/_end around named nodes; DONE
 * is finish; NEED_DATA does nothing).  Re-encoding what the reader accepts
 * this way reproduces the input byte for byte. */
int casfs_nar_writer_event(struct casfs_nar_writer *w, const struct casfs_nar_event *ev);

/* After a successful finish: the NAR size, and its SHA-256 if requested
 * at init (else zeros). */
void casfs_nar_writer_result(const struct casfs_nar_writer *w, uint8_t ret_sha256[CASFS_SHA256_LEN],
			     uint64_t *ret_size);
