/* casfs import, casfs import-nar */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../basic/util.h"
#include "../store/import.h"
#include "args.h"

/* Progress on a terminal only: one line rewritten in place. */
static void show_progress(void *userdata, uint64_t files, uint64_t bytes)
{
	(void)userdata;
	fprintf(stderr, "\rimporting: %llu files, %.1f MiB", (unsigned long long)files,
		(double)bytes / (1024.0 * 1024.0));
}

static void set_progress(struct casfs_import_options *o)
{
	if (isatty(STDERR_FILENO))
		o->progress = show_progress;
}

static void end_progress(const struct casfs_import_options *o)
{
	if (o->progress)
		fputs("\r\033[K", stderr);
}

static int print_path(const struct casfs_import_result *res)
{
	char p[CASFS_STORE_PATH_MAX + 1];
	casfs_store_path_format(&res->path, p);
	return printf("%s\n", p) < 0 ? -EIO : 0;
}

static const char import_help[] =
	"usage: casfs import [--name NAME] PATH...\n"
	"\n"
	"Add each PATH (a directory tree, file or symlink) to the store and print\n"
	"its store path, the same one `nix-store --add PATH` prints.\n"
	"\n"
	"  --name NAME   store path name (default: the last component of PATH;\n"
	"                only with a single PATH)\n";

int cmd_import(struct cli *c, int argc, char **argv)
{
	const char *name = NULL;
	struct cli_flag flags[] = { { "--name", NULL, &name }, { NULL, NULL, NULL } };
	struct cli_args a;
	int r = cli_args_parse(c, argc, argv, flags, import_help, &a);
	_cleanup_free_ char **pos = a.pos;
	if (r < 0)
		return cli_args_exit(r);
	if (a.n_pos == 0)
		return cli_usage_error(c, "no PATH given");
	if (name && a.n_pos > 1)
		return cli_usage_error(c, "--name needs exactly one PATH");
	if ((r = cli_open_store(c, CLI_STORE_WRITE)))
		return r;
	struct casfs_import_options o = { .name = name };
	set_progress(&o);
	for (int i = 0; i < a.n_pos; i++) {
		struct casfs_error err = { 0 };
		struct casfs_import_result res;
		r = casfs_import_path(c->store, a.pos[i], &o, &res, &err);
		end_progress(&o);
		if (r < 0)
			return cli_fail(c, r, &err);
		print_path(&res);
		fflush(stdout);
	}
	return CLI_EXIT_OK;
}

static const char import_nar_help[] =
	"usage: casfs import-nar [--compression METHOD] NAME [FILE]\n"
	"\n"
	"Read a NAR from FILE (default: standard input) and add it as store path\n"
	"NAME (a name, or a full /nix/store path whose hash must then match).\n"
	"Prints the store path.\n"
	"\n"
	"  --compression METHOD  the NAR is compressed: none (default), xz, zstd,\n"
	"                        bzip2 (as a binary cache's nar/ files are)\n";

int cmd_import_nar(struct cli *c, int argc, char **argv)
{
	const char *method = NULL;
	const struct cli_flag flags[] = { { "--compression", NULL, &method }, { NULL, NULL, NULL } };
	struct cli_args a;
	int r = cli_args_parse(c, argc, argv, flags, import_nar_help, &a);
	_cleanup_free_ char **pos = a.pos;
	if (r < 0)
		return cli_args_exit(r);
	if (a.n_pos < 1 || a.n_pos > 2)
		return cli_usage_error(c, "expected NAME [FILE]");
	struct casfs_import_options o = { 0 };
	struct casfs_error perr = { 0 };
	if (method && casfs_compression_parse(method, &o.compression, &perr) < 0)
		return cli_usage_error(c, "--compression: %s", perr.msg);
	_cleanup_close_ int fd = -1;
	if (a.n_pos == 2 && strcmp(a.pos[1], "-") != 0) {
		fd = open(a.pos[1], O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return cli_failf(c, "cannot open '%s': %s", a.pos[1], strerror(errno));
	}
	if ((r = cli_open_store(c, CLI_STORE_WRITE)))
		return r;
	set_progress(&o);
	struct casfs_error err = { 0 };
	struct casfs_import_result res;
	r = casfs_import_nar(c->store, fd >= 0 ? fd : STDIN_FILENO, a.pos[0], &o, &res, &err);
	end_progress(&o);
	if (r < 0)
		return cli_fail(c, r, &err);
	print_path(&res);
	return CLI_EXIT_OK;
}
