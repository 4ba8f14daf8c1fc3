/* Helpers shared by castore-proto.c and pathinfo-proto.c (private to
 * src/proto/). */
#pragma once

#include <stddef.h>

#include "castore-proto.h"
#include "wire-internal.h"

/* Heap copy of n bytes plus a terminating NUL.  NULL on OOM. */
char *casfs_proto_memdup0(const void *p, size_t n);

/* Make room for element n (0-based) of a malloc'd array of `size`-byte
 * elements holding n, growing geometrically, and zero it.  *cap is the
 * number of elements the array has room for, or any smaller number (0 when
 * unknown, as for a hand-built or exactly sized array: it is then grown);
 * it is updated when the array is reallocated.  Returns the (possibly
 * moved) array, or NULL on OOM/overflow with `arr` and *cap untouched. */
void *casfs_proto_grow(void *arr, size_t n, size_t *cap, size_t size);

/* Merge a tvix.castore.v1.Node message (the oneof wrapper) into *n, as
 * protobuf does: the same member again merges into it, another member
 * replaces it.  On failure *n is still releasable. */
int casfs_node_merge_wire(struct casfs_wire_reader *r, struct casfs_node *n,
			  struct casfs_error *err);
/* Size of the Node wrapper message casfs_node_encode() writes. */
size_t casfs_node_wire_size(const struct casfs_node *n);
