/* The PathInfoService of a remote tvix/snix/casfs daemon, over gRPC
 * (rpc/grpc-client.h).  Borrows the client, which must outlive it.
 *
 *   get        Get(by_output_hash): NOT_FOUND is -ENOENT.  The PathInfo must
 *              decode, validate (casfs_pathinfo_validate) and be for the
 *              digest asked (its node's name starts with that digest's
 *              nixbase32), else -EBADMSG naming the server.
 *   put        Put; the PathInfo the server answers must validate and name
 *              the same store path.
 *   list       List: every entry validated the same way; a bad one stops
 *              the listing with -EBADMSG.  The order is the server's.
 *   list_from  List, keeping the entries after `after`, sorted: memory is
 *              O(entries after `after`), not O(max), since the protocol has
 *              no paging.
 *
 * Thread-safe as the client is. */
#pragma once

#include "../rpc/grpc-client.h"
#include "pathinfoservice.h"

int casfs_pathinfo_service_grpc_new(struct casfs_grpc_client *c,
				    struct casfs_pathinfo_service **ret);
