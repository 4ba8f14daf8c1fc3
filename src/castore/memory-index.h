/* Shared by the memory backends: their entries live in a tsearch(3) tree
 * of nodes that begin with a 32-byte digest. */
#pragma once

#include <pthread.h>
#include <stdint.h>

#include "../digest/digest.h"

/* Snapshot the digests of the tree at *root while holding `lock`, then
 * call cb for each without it (cb may call back into the service).  A
 * negative return from cb stops and is returned; -ENOMEM. */
int casfs_memory_list_digests(void *const *root, pthread_mutex_t *lock,
			      int (*cb)(const uint8_t digest[CASFS_B3_LEN], void *userdata),
			      void *userdata);
