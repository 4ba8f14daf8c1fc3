/* BlobService and DirectoryService of a remote tvix/snix/casfs daemon, over
 * gRPC (rpc/grpc-client.h).  Both borrow the client, which must outlive
 * them.
 *
 * Stricter than snix's clients: nothing the server sends is used unchecked.
 *
 * Blobs
 *   stat   Stat(send_chunks): NOT_FOUND is -ENOENT; the size is the sum of
 *          the chunk sizes (a casfs daemon lists a whole blob as one chunk);
 *          a server that lists no chunks makes stat read the blob (below)
 *          to learn it.
 *   open   Read streams the whole blob into a spool (memory up to
 *          SPOOL_MEMORY_MAX, else an unlinked temp file under $TMPDIR,
 *          whose descriptor the reader then offers for splice), hashing it
 *          as it comes; the reader hands out bytes only once the BLAKE3 of
 *          all of them equals the digest.  A mismatch is -EBADMSG
 *          "<target> sent blob D with digest E", a size other than Stat's
 *          the same.  The fetch happens at open, so open's errors are the
 *          remote's (-ECONNRESET, -ETIMEDOUT, ... see grpc-client.h).
 *   create a client-streaming Put of BlobChunks of CASFS_GRPC_CHUNK bytes,
 *          hashed locally; commit compares the server's digest with ours
 *          (-EBADMSG if it differs) and with `expected`.
 *   outboard_get  Stat(send_bao): the bao bytes, -ENOENT when none.
 *   list, remove, outboard_put, sync: none (NULL).
 *
 * Directories
 *   get    Get(non-recursive): the Directory must decode, validate and hash
 *          to the digest asked for, else -EBADMSG naming both digests.
 *   has    a get.
 *   put_many  a client-streaming Put of the closure, leaves first; children
 *          that the entries reference but do not contain (present remotely
 *          already, which the generic wrapper allows) are fetched back
 *          recursively and sent first, because snix accepts only
 *          self-contained streams.  The returned root digest must be the
 *          last entry's.
 *   list   NULL.
 *
 * Thread-safe as the client is. */
#pragma once

#include "../rpc/grpc-client.h"
#include "blobservice.h"
#include "directoryservice.h"

int casfs_blob_service_grpc_new(struct casfs_grpc_client *c, struct casfs_blob_service **ret);
int casfs_directory_service_grpc_new(struct casfs_grpc_client *c,
				     struct casfs_directory_service **ret);
