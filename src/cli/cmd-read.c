/* casfs nar, path-info, ls, cat: reading store paths back. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../basic/encoding.h"
#include "../basic/io.h"
#include "../basic/util.h"
#include "../store/export.h"
#include "../storepath/storepath.h"
#include "args.h"

static int stdout_sink(void *userdata, const void *p, size_t n)
{
	(void)userdata;
	return casfs_write_all(STDOUT_FILENO, p, n);
}

/* Parse args with exactly one positional path, open the store, resolve.
 * Returns true with *ret_node filled to go on; false with *ret_exit set to
 * stop (help shown, or an error reported). */
static bool resolve_one(struct cli *c, int argc, char **argv, const char *help,
			struct casfs_node *ret_node, const char **ret_path, int *ret_exit)
{
	if (!cli_args_one_path(c, argc, argv, help, ret_path, ret_exit))
		return false;
	struct casfs_error err = { 0 };
	int r = casfs_store_resolve(c->store, *ret_path, ret_node, NULL, &err);
	if (r < 0) {
		*ret_exit = cli_fail(c, r, &err);
		return false;
	}
	return true;
}

static const char nar_help[] =
	"usage: casfs nar STORE_PATH[/SUB]\n"
	"\n"
	"Write the NAR of a store path (or of a path inside it) to standard\n"
	"output, byte-identical to `nix-store --dump`.  Every file is verified\n"
	"against its digest before any of its bytes is written.\n";

int cmd_nar(struct cli *c, int argc, char **argv)
{
	struct casfs_node n;
	const char *path;
	int r;
	if (!resolve_one(c, argc, argv, nar_help, &n, &path, &r))
		return r;
	if (isatty(STDOUT_FILENO)) {
		casfs_node_release(&n);
		return cli_failf(c, "refusing to write a NAR to a terminal");
	}
	struct casfs_error err = { 0 };
	r = casfs_export_nar(c->store, &n, stdout_sink, NULL, &err);
	casfs_node_release(&n);
	if (r < 0)
		return cli_fail(c, r, &err);
	return CLI_EXIT_OK;
}

