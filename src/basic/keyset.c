#include "keyset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void casfs_keyset_init(struct casfs_keyset *s)
{
	memset(s, 0, sizeof(*s));
}

void casfs_keyset_release(struct casfs_keyset *s)
{
	free(s->keys);
	free(s->values);
	free(s->used);
	casfs_keyset_init(s);
}

/* Keys are digests: their first bytes are already uniformly spread. */
static size_t slot_of(const uint8_t *key, size_t cap)
{
	uint64_t h;
	memcpy(&h, key, sizeof(h));
	return (size_t)(h & (cap - 1));
}

static size_t find_slot(const struct casfs_keyset *s, const uint8_t *key)
{
	size_t i = slot_of(key, s->cap);
	while (s->used[i] && memcmp(s->keys[i], key, CASFS_KEYSET_KEY_LEN) != 0)
		i = (i + 1) & (s->cap - 1);
	return i;
}

bool casfs_keyset_get(const struct casfs_keyset *s, const uint8_t key[CASFS_KEYSET_KEY_LEN],
		      size_t *ret_value)
{
	if (!s->cap)
		return false;
	size_t i = find_slot(s, key);
	if (!s->used[i])
		return false;
	if (ret_value)
		*ret_value = s->values[i];
	return true;
}

static int grow(struct casfs_keyset *s)
{
	struct casfs_keyset g = { 0 };
	g.cap = s->cap ? s->cap * 2 : 256;
	g.keys = malloc(g.cap * sizeof(*g.keys));
	g.values = malloc(g.cap * sizeof(*g.values));
	g.used = calloc(g.cap, sizeof(*g.used));
	if (!g.keys || !g.values || !g.used) {
		casfs_keyset_release(&g);
		return -ENOMEM;
	}
	for (size_t i = 0; i < s->cap; i++) {
		if (!s->used[i])
			continue;
		size_t j = find_slot(&g, s->keys[i]);
		memcpy(g.keys[j], s->keys[i], CASFS_KEYSET_KEY_LEN);
		g.values[j] = s->values[i];
		g.used[j] = true;
	}
	g.n = s->n;
	casfs_keyset_release(s);
	*s = g;
	return 0;
}

int casfs_keyset_put(struct casfs_keyset *s, const uint8_t key[CASFS_KEYSET_KEY_LEN], size_t value)
{
	if ((s->n + 1) * 2 > s->cap) {
		int r = grow(s);
		if (r < 0)
			return r;
	}
	size_t i = find_slot(s, key);
	if (!s->used[i]) {
		memcpy(s->keys[i], key, CASFS_KEYSET_KEY_LEN);
		s->used[i] = true;
		s->n++;
	}
	s->values[i] = value;
	return 0;
}
