/* A read-through PathInfoService: a casfs store (the cache) in front of a
 * substituter (substituter.h).
 *
 * get: the cache's answer if it has the path; else the path is
 * substituted: its narinfo queried, each reference substituted first
 * (recursively, so a path is only ever registered after its closure, as
 * casfs_store_add_pathinfo demands), its content fetched into the cache's
 * blob and directory services and checked (casfs_substitute: trust, NAR
 * hash and size, content address), then registered in the cache and
 * returned.  Concurrent gets of one path fetch it once: the others wait
 * for the first and then read the cache (or get its error).  A failure
 * registers nothing.
 *
 * put goes to the cache; list and list_from list the cache (what has
 * been fetched so far: a binary cache cannot be listed).
 *
 * Thread-safe. */
#pragma once

#include "../nixcache/nixkey.h"
#include "pathinfoservice.h"
#include "store.h"
#include "substituter.h"

/* `cache` is borrowed (must outlive the service); `sub` and `keys` are
 * taken (keys: the struct's contents move; it is left zeroed); on -ENOMEM
 * nothing is taken. */
int casfs_through_pathinfo_new(struct casfs_store *cache, struct casfs_substituter *sub,
			       struct casfs_nixkey_list *keys, struct casfs_pathinfo_service **ret);
