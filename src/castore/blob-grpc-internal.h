/* Shared by blob-grpc.c and blob-grpc-stream.c (private to castore/). */
#pragma once

#include <stdint.h>

#include "../basic/buf.h"
#include "../digest/outboard.h"
#include "castore-grpc.h"

struct grpc_blob_service {
	struct casfs_blob_service base;
	struct casfs_grpc_client *client;
};

/* A whole blob: in memory, or in an unlinked temp file (fd >= 0). */
struct spool {
	struct casfs_buf mem;
	int fd;
	uint64_t size;
};

void grpc_spool_release(struct spool *sp);
ssize_t grpc_spool_pread(const struct spool *sp, void *buf, size_t len, uint64_t off);

/* Read the whole blob into `sp` and check it against its digest: 0, or
 * -errno with err set (-EBADMSG naming the server and both digests). */
int grpc_blob_fetch(struct grpc_blob_service *gs, const uint8_t digest[CASFS_B3_LEN],
		    struct spool *sp, struct casfs_error *err);

/* A reader that streams a blob of more than one group from the start and
 * hands out each group once it matches its CV in `ob` (decoded against
 * the digest; taken over); it falls back to grpc_blob_fetch for a read
 * behind what it still holds. */
int grpc_blob_stream_open(struct grpc_blob_service *gs, const uint8_t digest[CASFS_B3_LEN],
			  struct casfs_outboard *ob, struct casfs_blob_reader **ret);
