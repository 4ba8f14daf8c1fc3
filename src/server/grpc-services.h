/* The tvix/snix gRPC services over a casfs store (shared/DESIGN.md section
 * 7), as a method table for grpc-server.h.  Every method is served under
 * both package names, tvix.* and snix.*:
 *
 *   /{tvix,snix}.castore.v1.BlobService/Stat          unary
 *   /{tvix,snix}.castore.v1.BlobService/Read          server stream
 *   /{tvix,snix}.castore.v1.BlobService/Put           client stream
 *   /{tvix,snix}.castore.v1.DirectoryService/Get      server stream
 *   /{tvix,snix}.castore.v1.DirectoryService/Put      client stream
 *   /{tvix,snix}.store.v1.PathInfoService/Get         unary
 *   /{tvix,snix}.store.v1.PathInfoService/Put         unary
 *   /{tvix,snix}.store.v1.PathInfoService/CalculateNAR unary
 *   /{tvix,snix}.store.v1.PathInfoService/List        server stream
 *   /grpc.health.v1.Health/Check                      unary
 *
 * Behaviour (snix's, research PART 1.3, with these differences on purpose):
 *   - Stat lists the blob as its one chunk (casfs stores blobs whole; the
 *     chunk's size is how a client learns the blob's); with send_bao it
 *     sends the blob's checked outboard (outboard.h encoding; none for a
 *     blob of one group or less, nor when it would not fit a message).
 *   - Read sends BlobChunks of CASFS_GRPC_CHUNK bytes, each checked
 *     against the blob's outboard (a blob of one group or less: hashed
 *     whole) before it goes out; damage ends the stream with DATA_LOSS
 *     naming the digest and offset.  An empty blob is an empty stream.
 *   - Directory Put accepts children the store already has (the closure
 *     check of casfs_directory_put_closure); duplicates in the stream are
 *     dropped; validation failures are INVALID_ARGUMENT, not INTERNAL.
 *   - PathInfo Put registers through casfs_store_add_pathinfo: references
 *     and the whole tree must be present (FAILED_PRECONDITION naming what
 *     is missing), the node name must be the store path it claims
 *     (INVALID_ARGUMENT).  It returns the PathInfo as stored.
 *   - List stops at nothing: damaged entries are skipped and the stream
 *     ends with DATA_LOSS naming the first, after every good entry.
 *   - Health: SERVING for "" and every service name above (either
 *     package), NOT_FOUND for any other.
 * Errors from the store map through casfs_grpc_status_from_errno, with the
 * store's message as grpc-message.
 *
 * Thread safety: the context is immutable after new; calls on it may run
 * on many connection threads at once (the store's services are
 * thread-safe). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "../rpc/grpc-server.h"
#include "../store/store.h"

struct casfs_grpc_services;

struct casfs_grpc_services_options {
	bool read_only; /* Put methods answer PERMISSION_DENIED */
};

/* `store` is borrowed and must outlive the context.  -ENOMEM. */
int casfs_grpc_services_new(struct casfs_store *store, const struct casfs_grpc_services_options *o,
			    struct casfs_grpc_services **ret);
void casfs_grpc_services_free(struct casfs_grpc_services *sv);

/* The method table (static; pass `sv` as the server's userdata). */
const struct casfs_grpc_method *casfs_grpc_services_methods(size_t *ret_n);
