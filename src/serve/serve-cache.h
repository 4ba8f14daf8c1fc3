/* `casfs serve-cache`: a store served as a Nix binary cache over HTTP/1.1
 * (routes: serve-route.h; uploads: serve-upload.h; NAR rendering:
 * store/nar-plan.h).
 *
 * HTTP library: libmicrohttpd 0.9.75 (Debian 12), a thread per
 * connection.  Chosen by a measurement (2 cores, the client on the same
 * machine; a fixed 500-byte narinfo-like answer; libcurl clients, one
 * keep-alive connection each, requests/s):
 *
 *   server                                   1 conn    8 conns   32 conns
 *   MHD thread per connection                10,633    105,795    82,932
 *   MHD internal epoll, one thread           12,146     71,370    69,442
 *   MHD internal epoll, pool of 2            12,381     62,764    73,078
 *   MHD internal epoll, pool of 4            11,527     66,916    68,472
 *   h2o 2.2.5 (libuv loop, one thread)       10,974     67,576    58,695
 *
 * (A first run had MHD at 17-35k: a response queued in the handler's
 * first call, before MHD has seen the end of the request, makes 0.9.75
 * close the connection; the handler answers on the second call.)  MHD is
 * as fast as h2o here, and h2o is an event loop: our handlers block
 * (LMDB lookups, Ed25519 signing, blob reads and hashing, fsync on
 * upload), so it would need a worker pool and a hand-off around every
 * handler; Debian's libh2o 2.2 is an old branch; MHD was already linked.
 * Thread per connection was fastest, lets a handler block without
 * holding up other connections, and its threads are bounded by
 * max_connections and the idle timeout.
 *
 * Limits: headers within MHD's per-connection memory (32 KiB, larger ones
 * get an error status or the connection closed), at most max_connections
 * connections (more are refused at accept), idle connections closed after
 * idle_timeout seconds, request targets of at most CASFS_SERVE_TARGET_MAX
 * bytes, narinfo bodies of at most CASFS_NARINFO_MAX_SIZE.
 *
 * Errors map to statuses in one table (serve-cache.c): -ENOENT 404,
 * -EBADMSG/-EINVAL 400, -EACCES/-EROFS 403, -EOVERFLOW 413, -ENOTSUP 415,
 * -ENOMEM/-EAGAIN 503, anything else 500; error bodies are one line.
 *
 * Thread safety: start/stop from one thread; the server runs its own. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "../basic/error.h"
#include "../nixcache/nixkey.h"
#include "../store/store.h"

struct casfs_serve_options {
	const char *host;          /* numeric address to bind; NULL: 127.0.0.1 */
	uint16_t port;             /* 0: a free port */
	const struct casfs_nixkey_secret *sign_key; /* NULL: serve signatures as stored; copied */
	bool allow_upload;         /* accept PUTs (the store must be writable) */
	int priority;              /* nix-cache-info Priority */
	unsigned idle_timeout;     /* seconds; 0: 30 */
	unsigned max_connections;  /* 0: 256 */
	/* One line (no newline) per damaged blob, refused upload, etc., from
	 * any thread; may be NULL. */
	void (*log)(void *userdata, const char *line);
	void *log_userdata;
};

struct casfs_serve_cache;

/* Bind, listen and start serving `s` (borrowed: must outlive the server).
 * -EADDRINUSE, -EINVAL (bad host), ... with a message. */
int casfs_serve_cache_start(struct casfs_store *s, const struct casfs_serve_options *opts,
			    struct casfs_serve_cache **ret, struct casfs_error *err);
/* "http://HOST:PORT" (IPv6 hosts in brackets), valid until stop. */
const char *casfs_serve_cache_url(const struct casfs_serve_cache *sc);
/* Close the listener and every connection (responses in flight are cut),
 * join the threads, free.  Accepts NULL. */
void casfs_serve_cache_stop(struct casfs_serve_cache *sc);
