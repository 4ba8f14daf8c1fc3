/* casfs: parse the command name and global options, dispatch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli.h"
#ifdef CASFS_HAVE_FUSE
#include "../fuse/mount.h"
#endif

static const char usage[] =
	"usage: casfs [--store URL] [-v] COMMAND [ARGS...]\n"
	"\n"
	"A content-addressed store for Nix store paths.\n"
	"\n"
	"commands:\n"
	"  import PATH...               add trees or files; print their store paths\n"
	"  import-nar NAME [FILE]       add a NAR (stdin by default, maybe compressed) as NAME\n"
	"  nar STORE_PATH               write the store path's NAR to stdout\n"
	"  path-info [--json] PATH...   show NAR hash and size, references, castore root\n"
	"  ls STORE_PATH[/SUB]          list a directory inside a store path\n"
	"  cat STORE_PATH/SUB           print a file inside a store path\n"
	"  verify [STORE_PATH...]       re-hash blobs and directories, report damage\n"
	"  copy [--from URL] [--to URL] STORE_PATH...\n"
	"                               copy closures between stores and binary caches\n"
	"  mount MOUNTPOINT             mount the store as a read-only filesystem\n"
	"  serve-cache [--listen H:P]   serve the store as a Nix binary cache over HTTP\n"
	"  daemon [--listen ADDR]...    serve the store over tvix/snix gRPC\n"
	"  virtiofs SOCKET              serve the store to a VM (vhost-user-fs)\n"
	"\n"
	"global options:\n"
	"  --store URL   the store: a directory or local:DIR (embedded local store),\n"
	"                or memory:; default $CASFS_STORE, else $XDG_DATA_HOME/casfs,\n"
	"                else ~/.local/share/casfs.  A Nix binary cache (file:///DIR,\n"
	"                http://HOST[:PORT][/PREFIX], https://...) or nix:[ROOT] (the\n"
	"                Nix store) is read through a local cache (--cache).\n"
	"                A casfs, tvix or snix daemon: grpc+unix:///PATH or\n"
	"                grpc+http://HOST:PORT, with ?wait-connect=1 (connect at\n"
	"                once) and ?timeout=SECONDS (default 30)\n"
	"  --cache DIR   the read-through cache; default $XDG_CACHE_HOME/casfs,\n"
	"                else ~/.cache/casfs (for a daemon: only when given)\n"
	"  --blob-store URL, --directory-store URL, --pathinfo-store URL\n"
	"                take that one service from another store\n"
	"  --trusted-public-keys 'NAME:KEY ...'\n"
	"                keys whose signatures make a binary cache's paths\n"
	"                acceptable; default $CASFS_TRUSTED_PUBLIC_KEYS\n"
	"  -v            more output\n"
	"  --help        show help (also after a command)\n";

struct command {
	const char *name;
	int (*run)(struct cli *c, int argc, char **argv);
};

#ifdef CASFS_HAVE_FUSE
/* mount parses its own options; hand it the global ones given before
 * the command name too. */
static int cmd_mount(struct cli *c, int argc, char **argv)
{
	char **args = calloc((size_t)argc + 13 + (size_t)c->verbose, sizeof(*args));
	if (!args)
		return cli_failf(c, "out of memory");
	int n = 0;
	args[n++] = argv[0];
	const char *globals[][2] = { { "--store", c->store_url }, { "--cache", c->cache },
				     { "--trusted-public-keys", c->trusted_public_keys },
				     { "--blob-store", c->blob_store },
				     { "--directory-store", c->directory_store },
				     { "--pathinfo-store", c->pathinfo_store } };
	for (size_t g = 0; g < sizeof(globals) / sizeof(globals[0]); g++)
		if (globals[g][1]) {
			args[n++] = (char *)globals[g][0];
			args[n++] = (char *)globals[g][1];
		}
	for (int v = 0; v < c->verbose; v++) /* -v -v: libfuse's debug trace */
		args[n++] = (char *)"-v";
	for (int i = 1; i < argc; i++)
		args[n++] = argv[i];
	args[n] = NULL;
	int r = casfs_mount_main(n, args);
	free(args);
	return r;
}
#endif

static const struct command commands[] = {
	{ "import", cmd_import },
	{ "import-nar", cmd_import_nar },
	{ "nar", cmd_nar },
	{ "path-info", cmd_path_info },
	{ "ls", cmd_ls },
	{ "cat", cmd_cat },
	{ "verify", cmd_verify },
	{ "serve-cache", cmd_serve_cache },
	{ "copy", cmd_copy },
	{ "daemon", cmd_daemon },
#ifdef CASFS_HAVE_FUSE
	{ "mount", cmd_mount },
	{ "virtiofs", cmd_virtiofs },
#endif
};

int main(int argc, char **argv)
{
	/* Deep trees keep one directory fd per level open while importing. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	struct cli c = { .command = "" };
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(usage, stdout);
			return CLI_EXIT_OK;
		}
		int r = cli_global_option(&c, argc, argv, &i);
		if (r < 0)
			return -r;
		if (r == 0) {
			fprintf(stderr, "casfs: unknown option '%s'\n%s", argv[i], usage);
			return CLI_EXIT_USAGE;
		}
	}
	if (i >= argc) {
		fputs(usage, stderr);
		return CLI_EXIT_USAGE;
	}
	for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++) {
		if (strcmp(argv[i], commands[k].name) != 0)
			continue;
		c.command = commands[k].name;
		int r = commands[k].run(&c, argc - i, argv + i);
		casfs_store_free(c.store);
		return r;
	}
	fprintf(stderr, "casfs: unknown command '%s' (see 'casfs --help')\n", argv[i]);
	return CLI_EXIT_USAGE;
}
