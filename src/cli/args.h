/* A tiny argument scanner shared by the commands: flags, options with a
 * value, global options anywhere, "--" ending options, positionals. */
#pragma once

#include <stdbool.h>

#include "cli.h"

struct cli_flag {
	const char *name;    /* "--json" */
	bool *set;           /* flag without value, or NULL */
	const char **value;  /* option with value, or NULL */
};

struct cli_args {
	char **pos;          /* positional arguments (points into argv) */
	int n_pos;
};

/* Scan argv[1..].  Prints `help` for --help and returns -CLI_EXIT_OK - 100
 * (i.e. "stop, exit 0"); returns -CLI_EXIT_USAGE on a usage error; 0 on
 * success.  Use cli_args_exit() to turn a negative result into the exit
 * code.  pos is malloc'd on success (free it); on any other return there
 * is nothing to free. */
int cli_args_parse(struct cli *c, int argc, char **argv, const struct cli_flag *flags,
		   const char *help, struct cli_args *ret);
int cli_args_exit(int r);

/* For commands taking exactly one path and no options: parse, then open
 * the store.  True with *ret_path set (pointing into argv) to go on; false
 * with *ret_exit set to stop (help shown, or an error reported). */
bool cli_args_one_path(struct cli *c, int argc, char **argv, const char *help,
		       const char **ret_path, int *ret_exit);

/* A decimal number 0..max, nothing else (no sign, no spaces): 0 with *ret,
 * or -EINVAL. */
int cli_parse_uint(const char *s, unsigned long max, unsigned long *ret);
/* Write this process's id and a newline to `path`: 0, or -1 with errno. */
int cli_write_pid_file(const char *path);
