/* casfs daemon: the store over tvix/snix gRPC (src/server/grpc-services.h
 * on src/rpc/grpc-server.h), on the daemon skeleton (serve-daemon.h). */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../basic/util.h"
#include "../rpc/grpc-server.h"
#include "../serve/serve-daemon.h"
#include "../server/grpc-services.h"
#include "args.h"
#include "cli.h"

static const char help[] =
	"usage: casfs daemon [--listen ADDR]... [--background] [--max-connections N]\n"
	"                    [--idle-timeout SECONDS] [--read-only] [--pid-file FILE]\n"
	"\n"
	"Serve the store (--store) over gRPC as tvix/snix do: BlobService,\n"
	"DirectoryService, PathInfoService (packages tvix.* and snix.*) and\n"
	"grpc.health.v1.Health, h2c without TLS.  Every blob byte sent is verified\n"
	"first.  Prints one line per address it listens on; serves until\n"
	"SIGTERM/SIGINT, then lets calls in flight finish (up to 10 s).\n"
	"\n"
	"  --listen ADDR        unix:/PATH, HOST:PORT or [V6]:PORT (numeric; port 0\n"
	"                       picks one); repeatable.  Default [::1]:8000 and\n"
	"                       127.0.0.1:8000 (where snix's tools look)\n"
	"  --background         return once listening\n"
	"  --max-connections N  connections at once, a thread each (default 256)\n"
	"  --idle-timeout S     close connections idle for S seconds (default 60)\n"
	"  --read-only          refuse Put (PERMISSION_DENIED)\n"
	"  --pid-file FILE      write the serving process's id there once listening\n";

/* Whether this host can bind [::1] at all (IPv6 may be off). */
static bool have_ipv6_loopback(void)
{
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	bool ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

static void log_line(void *userdata, const char *line)
{
	(void)userdata;
	fprintf(stderr, "casfs daemon: %s\n", line);
}

int cmd_daemon(struct cli *c, int argc, char **argv)
{
	const char *idle = NULL, *max_conns = NULL, *pid_file = NULL;
	bool background = false, read_only = false;
	/* --listen repeats: collect by hand before the common scanner. */
	_cleanup_free_ const char **listen = calloc((size_t)argc + 2, sizeof(*listen));
	_cleanup_free_ char **rest = calloc((size_t)argc + 1, sizeof(*rest));
	if (!listen || !rest)
		return cli_failf(c, "out of memory");
	size_t n_listen = 0;
	int n_rest = 0;
	for (int i = 0; i < argc; i++) {
		if (i > 0 && strcmp(argv[i], "--") == 0) {
			while (i < argc)
				rest[n_rest++] = argv[i++];
			break;
		}
		if (i > 0 && strcmp(argv[i], "--listen") == 0) {
			if (i + 1 >= argc)
				return cli_usage_error(c, "--listen needs an address");
			listen[n_listen++] = argv[++i];
		} else if (i > 0 && strncmp(argv[i], "--listen=", 9) == 0) {
			listen[n_listen++] = argv[i] + 9;
		} else {
			rest[n_rest++] = argv[i];
		}
	}
	const struct cli_flag flags[] = {
		{ "--background", &background, NULL },
		{ "--read-only", &read_only, NULL },
		{ "--idle-timeout", NULL, &idle },
		{ "--max-connections", NULL, &max_conns },
		{ "--pid-file", NULL, &pid_file },
		{ NULL, NULL, NULL },
	};
	struct cli_args a;
	int r = cli_args_parse(c, n_rest, rest, flags, help, &a);
	if (r < 0)
		return cli_args_exit(r);
	int n_pos = a.n_pos;
	free(a.pos);
	if (n_pos)
		return cli_usage_error(c, "daemon takes no arguments");

	struct casfs_grpc_server_options o = { .log = log_line };
	unsigned long v;
	if (idle) {
		if (cli_parse_uint(idle, 86400, &v) < 0 || v == 0)
			return cli_usage_error(c, "--idle-timeout wants seconds (1..86400), not '%s'", idle);
		o.idle_timeout = (unsigned)v;
	}
	if (max_conns) {
		if (cli_parse_uint(max_conns, 65536, &v) < 0 || v == 0)
			return cli_usage_error(c, "--max-connections wants 1..65536, not '%s'", max_conns);
		o.max_connections = (unsigned)v;
	}
	if (n_listen == 0) {
		if (have_ipv6_loopback())
			listen[n_listen++] = "[::1]:8000";
		else
			fprintf(stderr, "casfs daemon: no IPv6 loopback here, not listening on [::1]:8000\n");
		listen[n_listen++] = "127.0.0.1:8000";
	}

	struct casfs_daemon d;
	if ((r = casfs_daemon_begin(&d, background)) < 0)
		return cli_failf(c, "cannot start in the background: %s", strerror(-r));
	/* In the server process from here on: LMDB handles do not survive a
	 * fork, so the store is opened after it. */
	r = cli_open_store(c, read_only ? CLI_STORE_READ : CLI_STORE_WRITE);
	if (r == 0)
		c->store->no_map = true; /* a truncated blob file must not SIGBUS the daemon */
	if (r != CLI_EXIT_OK) {
		casfs_daemon_failed(&d, NULL);
		return r;
	}
	struct casfs_grpc_services_options so = { .read_only = read_only };
	struct casfs_grpc_services *sv = NULL;
	if (casfs_grpc_services_new(c->store, &so, &sv) < 0) {
		casfs_daemon_failed(&d, "casfs daemon: out of memory");
		return CLI_EXIT_ERROR;
	}
	o.methods = casfs_grpc_services_methods(&o.n_methods);
	o.userdata = sv;
	struct casfs_error err = { 0 };
	struct casfs_grpc_server *server = NULL;
	r = casfs_grpc_server_start(listen, n_listen, &o, &server, &err);
	if (r < 0) {
		char line[700];
		snprintf(line, sizeof(line), "casfs daemon: %s", casfs_error_message(&err, r));
		casfs_daemon_failed(&d, line);
		casfs_grpc_services_free(sv);
		return CLI_EXIT_ERROR;
	}
	if (pid_file && cli_write_pid_file(pid_file) < 0) {
		char line[700];
		snprintf(line, sizeof(line), "casfs daemon: cannot write %s: %s", pid_file,
			 strerror(errno));
		casfs_daemon_failed(&d, line);
		casfs_grpc_server_stop(server);
		casfs_grpc_services_free(sv);
		return CLI_EXIT_ERROR;
	}
	/* One line per address; the skeleton relays one line, the last, so the
	 * others go out first (stdout is still the caller's in the child). */
	char line[300];
	for (size_t i = 0; i + 1 < n_listen; i++)
		printf("listening on %s\n", casfs_grpc_server_address(server, i));
	fflush(stdout);
	snprintf(line, sizeof(line), "listening on %s", casfs_grpc_server_address(server, n_listen - 1));
	casfs_daemon_ready(&d, line);
	casfs_daemon_wait(&d);
	if (casfs_grpc_server_stop(server) < 0) {
		fprintf(stderr, "casfs daemon: calls still running after the drain; exiting anyway\n");
		fflush(stderr);
		_exit(CLI_EXIT_OK);
	}
	casfs_grpc_services_free(sv);
	return CLI_EXIT_OK;
}
