/* Shared between transport.c (dispatch, file://) and transport-http.c. */
#pragma once

#include <pthread.h>

#include "transport.h"

struct casfs_transport {
	char *base;          /* as given */
	bool http;
	char *dir;           /* file://: the directory */
	unsigned stall_timeout;
	/* http: idle libcurl easy handles (their connections stay open) */
	pthread_mutex_t lock;
	void **idle;
	size_t n_idle, idle_cap;
};

int casfs_http_init(struct casfs_error *err);
void casfs_http_release_handles(struct casfs_transport *t);
int casfs_http_get(struct casfs_transport *t, const char *url, uint64_t max,
		   casfs_transport_sink sink, void *userdata, struct casfs_error *err);
int casfs_http_exists(struct casfs_transport *t, const char *url, struct casfs_error *err);
int casfs_http_put(struct casfs_transport *t, const char *url, const char *content_type,
		   const void *data, size_t len, int fd, uint64_t size, struct casfs_error *err);
