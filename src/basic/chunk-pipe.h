/* A bounded queue of byte chunks from one producer thread to one consumer
 * thread, so that two stages of a stream (say, download and decompress,
 * then parse and store) run on two cores at once.
 *
 * The producer pushes bytes (copied into one of `slots` buffers of
 * `slot_size` bytes, waiting while all are full) and closes the pipe with
 * its result; the consumer pops chunks in order (each valid until its next
 * pop) until the end, or cancels, after which pushes fail with -ECANCELED
 * so the producer stops.  Memory: slots x slot_size, fixed. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

struct casfs_chunk_pipe;

/* NULL on OOM. */
struct casfs_chunk_pipe *casfs_chunk_pipe_new(size_t slots, size_t slot_size);
void casfs_chunk_pipe_free(struct casfs_chunk_pipe *p);

/* Producer.  push: 0, or -ECANCELED once the consumer cancelled.  close:
 * `result` 0 for a complete stream, or the producer's negative error,
 * which the consumer's pop then returns after the chunks before it. */
int casfs_chunk_pipe_push(struct casfs_chunk_pipe *p, const void *data, size_t n);
void casfs_chunk_pipe_close(struct casfs_chunk_pipe *p, int result);

/* Consumer.  pop: the next chunk's length (> 0) with *ret_data set, 0 at
 * the end of a complete stream, or the producer's error. */
ssize_t casfs_chunk_pipe_pop(struct casfs_chunk_pipe *p, const void **ret_data);
void casfs_chunk_pipe_cancel(struct casfs_chunk_pipe *p);
