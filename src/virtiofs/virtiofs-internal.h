/* The FUSE side of virtiofs without the virtqueues, for tests and the
 * fuzz target (private to src/virtiofs and tests/). */
#pragma once

#include <stddef.h>

#include "../fs/fs.h"
#include "virtqueue.h"

/* A guest's FUSE connection over `fs` (borrowed): libfuse sessions with
 * casfs's operations, a fresh one for each FUSE_INIT after the first (up
 * to 64 mounts; later INITs fail).  Free it after the threads that
 * answered through it have exited (libfuse frees their buffers then). */
struct casfs_virtiofs_conn;

int casfs_virtiofs_conn_new(struct casfs_fs *fs, struct casfs_virtiofs_conn **ret);
void casfs_virtiofs_conn_free(struct casfs_virtiofs_conn *cn);
/* Answer one request as the guest sent it (req->in; the reply goes into
 * req->out, at most req->out_len bytes): the reply's length, 0 when none
 * is due (FORGET) or the request is malformed (shorter than its header,
 * or a header length that is not the request's). */
size_t casfs_virtiofs_conn_answer(struct casfs_virtiofs_conn *cn, const struct casfs_vq_req *req);
