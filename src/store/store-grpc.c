/* Opening a remote gRPC store (store-grpc.h). */
#include "store-grpc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../basic/util.h"
#include "../castore/castore-grpc.h"
#include "pathinfo-grpc.h"

bool casfs_store_url_is_grpc(const char *url)
{
	return !strncmp(url, "grpc+unix://", 12) || !strncmp(url, "grpc+http://", 12);
}

static int parse_params(const char *url, const char *q, struct casfs_grpc_client_options *opts,
			struct casfs_error *err)
{
	while (q && *q) {
		const char *end = strchrnul(q, '&');
		size_t len = (size_t)(end - q);
		if (len == 14 && !strncmp(q, "wait-connect=1", 14)) {
			opts->wait_connect = true;
		} else if (len == 14 && !strncmp(q, "wait-connect=0", 14)) {
			opts->wait_connect = false;
		} else if (len > 8 && !strncmp(q, "timeout=", 8)) {
			char *stop;
			long v = strtol(q + 8, &stop, 10);
			if (stop != end || v <= 0 || v > 86400)
				return casfs_error_set(err, -EINVAL,
						       "store URL '%s': timeout wants 1..86400 seconds", url);
			opts->timeout_ms = (int)v * 1000;
		} else if (len) {
			return casfs_error_set(err, -EINVAL, "store URL '%s': unknown parameter '%.*s'",
					       url, (int)len, q);
		}
		q = *end ? end + 1 : end;
	}
	return 0;
}

/* "grpc+unix:///PATH?..." -> "unix:/PATH"; "grpc+http://H:P?..." -> "H:P". */
static int parse_url(const char *url, char **ret_target, struct casfs_grpc_client_options *opts,
		     struct casfs_error *err)
{
	const char *rest = url + 12;
	const char *q = strchr(rest, '?');
	size_t len = q ? (size_t)(q - rest) : strlen(rest);
	char *target = NULL;
	if (!strncmp(url, "grpc+unix://", 12)) {
		if (len == 0 || rest[0] != '/')
			return casfs_error_set(err, -EINVAL,
					       "store URL '%s': a unix socket takes no host: grpc+unix:///ABS/PATH",
					       url);
		if (asprintf(&target, "unix:%.*s", (int)len, rest) < 0)
			return -ENOMEM;
	} else {
		if (len && rest[len - 1] == '/')
			len--;
		if (len == 0 || memchr(rest, '/', len))
			return casfs_error_set(err, -EINVAL,
					       "store URL '%s': want grpc+http://HOST:PORT (no path)", url);
		if (!(target = strndup(rest, len)))
			return -ENOMEM;
	}
	int r = parse_params(url, q ? q + 1 : NULL, opts, err);
	if (r < 0) {
		free(target);
		return r;
	}
	*ret_target = target;
	return 0;
}

/* What the store owns beyond its three service pointers. */
struct grpc_backend {
	struct casfs_grpc_client *client;
	/* with a cache (s->inner): the remote services, and the blob cache
	 * layer that s->blobs points at */
	struct casfs_blob_service *remote_blobs, *cache_blobs;
	struct casfs_directory_service *remote_directories;
};

static void free_backend(void *p)
{
	struct grpc_backend *b = p;
	casfs_blob_service_free(b->cache_blobs);
	casfs_blob_service_free(b->remote_blobs);
	casfs_directory_service_free(b->remote_directories);
	casfs_grpc_client_free(b->client);
	free(b);
}

int casfs_store_open_grpc(struct casfs_store *s, const char *url,
			  const struct casfs_store_options *o, struct casfs_error *err)
{
	struct casfs_grpc_client_options opts = { 0 };
	_cleanup_free_ char *target = NULL;
	int r = parse_url(url, &target, &opts, err);
	if (r < 0)
		return r;
	struct grpc_backend *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	s->backend = b;
	s->free_backend = free_backend;
	r = casfs_grpc_client_new(target, &opts, &b->client, err);
	if (r >= 0)
		r = casfs_pathinfo_service_grpc_new(b->client, &s->pathinfos);
	if (r >= 0 && !(s->url = strdup(url)))
		r = -ENOMEM;
	if (r >= 0 && !o->cache) {
		r = casfs_blob_service_grpc_new(b->client, &s->blobs);
		if (r >= 0)
			r = casfs_directory_service_grpc_new(b->client, &s->directories);
		return r;
	}
	/* --cache DIR: blobs read through a local store there */
	if (r >= 0)
		r = casfs_store_open(o->cache, CASFS_STORE_CREATE |
				     (o->flags & ~(unsigned)CASFS_STORE_READONLY), &s->inner, err);
	if (r >= 0)
		r = casfs_blob_service_grpc_new(b->client, &b->remote_blobs);
	if (r >= 0)
		r = casfs_directory_service_grpc_new(b->client, &b->remote_directories);
	if (r >= 0)
		r = casfs_blob_service_cache_new(s->inner->blobs, b->remote_blobs, &b->cache_blobs);
	s->blobs = b->cache_blobs;
	s->directories = b->remote_directories;
	return r;
}
