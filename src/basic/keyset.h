/* A set of 32-byte keys (digests) mapping each to a size_t value: open
 * addressing, linear probing, grows at half load.  Keys are copied.
 * Embedded struct (casfs_keyset_init/_release).  Not thread-safe. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CASFS_KEYSET_KEY_LEN 32

struct casfs_keyset {
	uint8_t (*keys)[CASFS_KEYSET_KEY_LEN];
	size_t *values;
	bool *used;
	size_t n, cap;
};

void casfs_keyset_init(struct casfs_keyset *s);
void casfs_keyset_release(struct casfs_keyset *s);
/* True and *ret_value (if not NULL) set if present. */
bool casfs_keyset_get(const struct casfs_keyset *s, const uint8_t key[CASFS_KEYSET_KEY_LEN],
		      size_t *ret_value);
/* Insert or overwrite.  -ENOMEM. */
int casfs_keyset_put(struct casfs_keyset *s, const uint8_t key[CASFS_KEYSET_KEY_LEN], size_t value);
