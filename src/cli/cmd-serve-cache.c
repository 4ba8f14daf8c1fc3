/* casfs serve-cache: the store as a Nix binary cache over HTTP
 * (src/serve/serve-cache.h), on the daemon skeleton (serve-daemon.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../basic/util.h"
#include "../nixcache/nixkey.h"
#include "../serve/serve-cache.h"
#include "../serve/serve-daemon.h"
#include "args.h"
#include "cli.h"

static const char help[] =
	"usage: casfs serve-cache [--listen HOST:PORT] [--sign-key FILE] [--allow-upload]\n"
	"                         [--priority N] [--background] [--idle-timeout SECONDS]\n"
	"                         [--max-connections N]\n"
	"\n"
	"Serve the store (--store) as a Nix binary cache over HTTP/1.1: nix-cache-info,\n"
	"<hash>.narinfo, <hash>.ls and uncompressed NARs rendered from the store, every\n"
	"byte verified before it is sent.  Once listening, print the URL on stdout.\n"
	"\n"
	"  --listen HOST:PORT   numeric address (default 127.0.0.1:5000; port 0 picks a\n"
	"                       free one; IPv6 as [::1]:PORT)\n"
	"  --sign-key FILE      a Nix secret key (`nix key generate-secret`): sign every\n"
	"                       narinfo with it, besides the signatures stored\n"
	"  --allow-upload       accept `nix copy --to http://...` (PUT)\n"
	"  --priority N         the Priority in nix-cache-info (default 40)\n"
	"  --background         return once listening; serve until SIGTERM/SIGINT\n"
	"  --idle-timeout S     close connections idle for S seconds (default 30)\n"
	"  --max-connections N  connections at once, a thread each (default 256)\n";

/* "HOST:PORT", "[V6]:PORT" into host (malloc'd) and port. */
static int parse_listen(const char *s, char **ret_host, uint16_t *ret_port)
{
	const char *colon = strrchr(s, ':');
	if (!colon)
		return -EINVAL;
	const char *h = s;
	size_t hl = (size_t)(colon - s);
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
		h++, hl -= 2;
	unsigned long port;
	if (hl == 0 || cli_parse_uint(colon + 1, 65535, &port) < 0)
		return -EINVAL;
	*ret_host = strndup(h, hl);
	if (!*ret_host)
		return -ENOMEM;
	*ret_port = (uint16_t)port;
	return 0;
}

static int read_key(struct cli *c, const char *path, struct casfs_nixkey_secret *ret)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cli_failf(c, "cannot read key file %s: %s", path, strerror(errno));
	char buf[CASFS_NIXKEY_SECRET_STR_MAX + 64];
	size_t len = 0;
	for (;;) {
		ssize_t k = read(fd, buf + len, sizeof(buf) - len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return cli_failf(c, "cannot read key file %s: %s", path, strerror(errno));
		if (k == 0)
			break;
		len += (size_t)k;
		if (len == sizeof(buf))
			return cli_failf(c, "key file %s is too large for a Nix secret key", path);
	}
	struct casfs_error err = { 0 };
	int r = casfs_nixkey_secret_parse(buf, len, ret, &err);
	memset(buf, 0, sizeof(buf));
	if (r < 0)
		return cli_failf(c, "key file %s: %s", path, casfs_error_message(&err, r));
	return CLI_EXIT_OK;
}

static void log_line(void *userdata, const char *line)
{
	(void)userdata;
	fprintf(stderr, "casfs serve-cache: %s\n", line);
}

int cmd_serve_cache(struct cli *c, int argc, char **argv)
{
	const char *listen = NULL, *key_file = NULL, *priority = NULL, *idle = NULL,
		   *max_conns = NULL;
	bool allow_upload = false, background = false;
	const struct cli_flag flags[] = {
		{ "--listen", NULL, &listen },
		{ "--sign-key", NULL, &key_file },
		{ "--allow-upload", &allow_upload, NULL },
		{ "--priority", NULL, &priority },
		{ "--background", &background, NULL },
		{ "--idle-timeout", NULL, &idle },
		{ "--max-connections", NULL, &max_conns },
		{ NULL, NULL, NULL },
	};
	struct cli_args a;
	int r = cli_args_parse(c, argc, argv, flags, help, &a);
	if (r < 0)
		return cli_args_exit(r);
	int n_pos = a.n_pos;
	free(a.pos);
	if (n_pos)
		return cli_usage_error(c, "serve-cache takes no arguments");

	struct casfs_serve_options o = { .priority = 40, .port = 5000 };
	_cleanup_free_ char *host = NULL;
	if (listen && parse_listen(listen, &host, &o.port) < 0)
		return cli_usage_error(c, "--listen wants HOST:PORT (numeric), not '%s'", listen);
	o.host = host;
	unsigned long v;
	if (priority) {
		if (cli_parse_uint(priority, 1000000, &v) < 0)
			return cli_usage_error(c, "--priority wants a number, not '%s'", priority);
		o.priority = (int)v;
	}
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
	struct casfs_nixkey_secret key;
	if (key_file) {
		if ((r = read_key(c, key_file, &key)) != CLI_EXIT_OK)
			return r;
		o.sign_key = &key;
	}
	o.allow_upload = allow_upload;
	o.log = log_line;

	struct casfs_daemon d;
	if ((r = casfs_daemon_begin(&d, background)) < 0)
		return cli_failf(c, "cannot start in the background: %s", strerror(-r));
	/* From here on, in the server process: the store is opened after the
	 * fork (LMDB handles do not survive one). */
	r = cli_open_store(c, allow_upload ? CLI_STORE_WRITE : CLI_STORE_READ);
	if (r != CLI_EXIT_OK) {
		casfs_daemon_failed(&d, NULL); /* cli_open_store said why */
		return r;
	}
	c->store->no_map = true; /* a truncated blob file must not SIGBUS the server */
	struct casfs_error err = { 0 };
	struct casfs_serve_cache *sv = NULL;
	r = casfs_serve_cache_start(c->store, &o, &sv, &err);
	if (key_file)
		casfs_nixkey_secret_clear(&key);
	if (r < 0) {
		char line[700];
		snprintf(line, sizeof(line), "casfs serve-cache: %s", casfs_error_message(&err, r));
		casfs_daemon_failed(&d, line);
		return CLI_EXIT_ERROR;
	}
	casfs_daemon_ready(&d, casfs_serve_cache_url(sv));
	casfs_daemon_wait(&d);
	casfs_serve_cache_stop(sv);
	return CLI_EXIT_OK;
}
