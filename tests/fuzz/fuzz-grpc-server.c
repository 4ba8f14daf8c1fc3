/* Fuzz the daemon's request path: the input is what a client sends on one
 * connection (HTTP/2 preface, frames, HPACK, gRPC messages), served by the
 * real connection loop (src/rpc/grpc-server.c) with the real services
 * (src/server/grpc-services.c) over a memory store holding a small tree.
 * Whatever comes in, the server must neither crash nor leak, and must end
 * the connection once the input is over.  The corpus is captured from the
 * python grpcio client (tests/fuzz/corpus/grpc-server/: one connection per
 * RPC kind, both package names). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rpc/grpc-server.h"
#include "server/grpc-services.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INPUT_MAX (96u << 10)

static struct casfs_store *store;
static struct casfs_grpc_services *services;
static struct casfs_grpc_server *server;

/* hello.txt ("hello\n"), a blob of several outboard groups, a directory
 * holding both and a subdirectory: what the corpus's requests name. */
static void setup(void)
{
	struct casfs_error err = { 0 };
	if (casfs_store_open("memory:", CASFS_STORE_CREATE, &store, &err) < 0)
		abort();
	uint8_t hello[CASFS_B3_LEN], big[CASFS_B3_LEN], sub[CASFS_B3_LEN], root[CASFS_B3_LEN];
	size_t big_len = 200000;
	uint8_t *b = malloc(big_len);
	for (size_t i = 0; i < big_len; i++)
		b[i] = (uint8_t)(i * 2654435761u >> 13);
	if (casfs_blob_put(store->blobs, "hello\n", 6, hello) < 0 ||
	    casfs_blob_put(store->blobs, b, big_len, big) < 0)
		abort();
	free(b);
	struct casfs_directory dirs[2] = { { 0 }, { 0 } };
	casfs_directory_add_file(&dirs[0], "deep.txt", 8, hello, 6, false);
	if (casfs_directory_digest(&dirs[0], sub) < 0)
		abort();
	casfs_directory_add_file(&dirs[1], "big.bin", 7, big, big_len, false);
	casfs_directory_add_file(&dirs[1], "hello.txt", 9, hello, 6, false);
	casfs_directory_add_directory(&dirs[1], "sub", 3, sub, 1);
	casfs_directory_add_symlink(&dirs[1], "z", 1, "hello.txt", 9);
	casfs_directory_sort(&dirs[1]);
	if (casfs_directory_put_closure(store->directories, dirs, 2, root, &err) < 0)
		abort();
	casfs_directory_release(&dirs[0]);
	casfs_directory_release(&dirs[1]);
	if (casfs_grpc_services_new(store, NULL, &services) < 0)
		abort();
	struct casfs_grpc_server_options o = { .userdata = services, .idle_timeout = 5 };
	o.methods = casfs_grpc_services_methods(&o.n_methods);
	if (casfs_grpc_server_new_detached(&o, &server) < 0)
		abort();
}

/* The client's side: takes whatever the server answers, until it closes. */
static void *drain(void *arg)
{
	int fd = *(int *)arg;
	char buf[65536];
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, setup);
	if (size > INPUT_MAX)
		return 0;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	int sndbuf = 4 * INPUT_MAX;
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	size_t off = 0;
	while (off < size) {
		ssize_t k = write(sv[1], data + off, size - off);
		if (k <= 0)
			break;
		off += (size_t)k;
	}
	shutdown(sv[1], SHUT_WR);
	pthread_t t;
	if (pthread_create(&t, NULL, drain, &sv[1]) != 0) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	casfs_grpc_server_serve_fd(server, sv[0]); /* closes sv[0] */
	pthread_join(t, NULL);
	close(sv[1]);
	return 0;
}
