/* casfs virtiofs: the store handed to one VM as a vhost-user-fs device
 * (src/virtiofs/virtiofs.h), on the daemon skeleton (serve-daemon.h). */
#ifdef CASFS_HAVE_FUSE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../fs/fs.h"
#include "../serve/serve-daemon.h"
#include "../virtiofs/virtiofs.h"
#include "args.h"
#include "cli.h"

static const char help[] =
	"usage: casfs virtiofs SOCKET [--list-root] [--threads N] [--background]\n"
	"                      [--keep-listening] [--pid-file FILE]\n"
	"\n"
	"Serve the store (--store, any URL) to a virtual machine as a vhost-user-fs\n"
	"device on the unix socket SOCKET, for QEMU's\n"
	"  -chardev socket,id=c0,path=SOCKET -device vhost-user-fs-pci,chardev=c0,tag=TAG\n"
	"(guest RAM must be shared: -object memory-backend-memfd,...,share=on).  The\n"
	"guest mounts it with `mount -t virtiofs TAG /nix/store` and sees what\n"
	"`casfs mount` shows; every byte is checked on the host.  Exits 0 when the\n"
	"VM disconnects.\n"
	"\n"
	"  --list-root        let the guest list the root (every store path)\n"
	"  --threads N        threads answering requests (1..64, default 4)\n"
	"  --background       return once listening\n"
	"  --keep-listening   after a VM disconnects, wait for the next one\n"
	"  --pid-file FILE    write the serving process's id there once listening\n";

static void fs_log(void *userdata, enum casfs_fs_log_level level, const char *msg)
{
	(void)userdata;
	if (level <= CASFS_FS_LOG_ERROR)
		fprintf(stderr, "casfs virtiofs: %s\n", msg);
}

struct run {
	struct casfs_daemon *d;
	struct casfs_fs *fs;
	int lfd;
	struct casfs_virtiofs_options o;
	const char *pid_file;
	int result;
	bool done; /* atomic: serving has ended (the VM went away) */
	struct casfs_error err;
};

static void on_ready(void *userdata, const char *socket_path)
{
	struct run *run = userdata;
	char line[4200];
	if (run->pid_file)
		(void)cli_write_pid_file(run->pid_file);
	snprintf(line, sizeof(line), "listening on %s", socket_path);
	casfs_daemon_ready(run->d, line);
}

/* Serving runs here; the main thread waits for signals (the skeleton
 * blocks them in every thread), and is woken by SIGTERM to itself once the
 * VM is gone. */
static void *serve_thread(void *p)
{
	struct run *run = p;
	run->result = casfs_virtiofs_serve(run->fs, run->lfd, &run->o, &run->err);
	__atomic_store_n(&run->done, true, __ATOMIC_RELEASE);
	kill(getpid(), SIGTERM);
	return NULL;
}

int cmd_virtiofs(struct cli *c, int argc, char **argv)
{
	bool list_root = false, background = false, keep = false;
	const char *pid_file = NULL, *threads = NULL;
	const struct cli_flag flags[] = {
		{ "--threads", NULL, &threads },
		{ "--list-root", &list_root, NULL },
		{ "--background", &background, NULL },
		{ "--keep-listening", &keep, NULL },
		{ "--pid-file", NULL, &pid_file },
		{ NULL, NULL, NULL },
	};
	struct cli_args a;
	int r = cli_args_parse(c, argc, argv, flags, help, &a);
	if (r < 0)
		return cli_args_exit(r);
	int n_pos = a.n_pos;
	const char *socket_path = n_pos == 1 ? a.pos[0] : NULL;
	free(a.pos);
	if (n_pos != 1)
		return cli_usage_error(c, "virtiofs takes one SOCKET path");

	unsigned long n_threads = CASFS_VIRTIOFS_DEFAULT_THREADS;
	if (threads) {
		if (cli_parse_uint(threads, CASFS_VIRTIOFS_MAX_THREADS, &n_threads) < 0 || n_threads < 1)
			return cli_usage_error(c, "--threads wants 1..%d, not '%s'",
					       CASFS_VIRTIOFS_MAX_THREADS, threads);
	}
	struct run run = { .lfd = -1, .pid_file = pid_file };
	run.o = (struct casfs_virtiofs_options){ .socket_path = socket_path, .keep_listening = keep,
						 .threads = (unsigned)n_threads,
						 .ready = on_ready, .userdata = &run };
	struct casfs_error err = { 0 };
	/* the socket before the fork: its errors go to the caller */
	if ((r = casfs_virtiofs_listen(&run.o, &run.lfd, &err)) < 0)
		return cli_fail(c, r, &err);
	struct casfs_daemon d;
	if ((r = casfs_daemon_begin(&d, background)) < 0)
		return cli_failf(c, "cannot start in the background: %s", strerror(-r));
	run.d = &d;
	r = cli_open_store(c, CLI_STORE_READ);
	if (r != CLI_EXIT_OK) {
		casfs_daemon_failed(&d, NULL);
		return r;
	}
	c->store->no_map = true;
	struct casfs_fs_options fo = { .list_root = list_root, .log = fs_log };
	if (casfs_fs_new(c->store, &fo, &run.fs) < 0) {
		casfs_daemon_failed(&d, "casfs virtiofs: out of memory");
		return CLI_EXIT_ERROR;
	}
	pthread_t t;
	if (pthread_create(&t, NULL, serve_thread, &run) != 0) {
		casfs_daemon_failed(&d, "casfs virtiofs: cannot start a thread");
		return CLI_EXIT_ERROR;
	}
	casfs_daemon_wait(&d);
	/* a signal from outside while the VM is still there: leave now (the
	 * queues' threads go with the process) */
	if (!__atomic_load_n(&run.done, __ATOMIC_ACQUIRE)) {
		unlink(socket_path);
		_exit(CLI_EXIT_OK);
	}
	pthread_join(t, NULL);
	close(run.lfd);
	unlink(socket_path);
	casfs_fs_free(run.fs);
	if (run.result < 0) {
		fprintf(stderr, "casfs virtiofs: %s\n", casfs_error_message(&run.err, run.result));
		return CLI_EXIT_ERROR;
	}
	return CLI_EXIT_OK;
}
#endif
