#include "args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARGS_HELP (-(CLI_EXIT_OK + 100))

int cli_args_exit(int r)
{
	return r == ARGS_HELP ? CLI_EXIT_OK : -r;
}

static const struct cli_flag *find_flag(const struct cli_flag *flags, const char *a, size_t len)
{
	for (; flags && flags->name; flags++)
		if (strlen(flags->name) == len && strncmp(flags->name, a, len) == 0)
			return flags;
	return NULL;
}

static int parse(struct cli *c, int argc, char **argv, const struct cli_flag *flags,
		 const char *help, struct cli_args *ret)
{
	ret->pos = calloc((size_t)argc + 1, sizeof(char *));
	ret->n_pos = 0;
	if (!ret->pos)
		return -CLI_EXIT_ERROR;
	bool options_done = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (options_done || a[0] != '-' || strcmp(a, "-") == 0) {
			ret->pos[ret->n_pos++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			options_done = true;
			continue;
		}
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			fputs(help, stdout);
			return ARGS_HELP;
		}
		int g = cli_global_option(c, argc, argv, &i);
		if (g < 0)
			return g;
		if (g > 0)
			continue;
		const char *eq = strchr(a, '=');
		const struct cli_flag *f = find_flag(flags, a, eq ? (size_t)(eq - a) : strlen(a));
		if (!f) {
			cli_usage_error(c, "unknown option '%s'", a);
			return -CLI_EXIT_USAGE;
		}
		if (f->set) {
			if (eq) {
				cli_usage_error(c, "option '%s' takes no value", f->name);
				return -CLI_EXIT_USAGE;
			}
			*f->set = true;
		} else if (eq) {
			*f->value = eq + 1;
		} else if (i + 1 < argc) {
			*f->value = argv[++i];
		} else {
			cli_usage_error(c, "option '%s' needs a value", f->name);
			return -CLI_EXIT_USAGE;
		}
	}
	return 0;
}

int cli_args_parse(struct cli *c, int argc, char **argv, const struct cli_flag *flags,
		   const char *help, struct cli_args *ret)
{
	int r = parse(c, argc, argv, flags, help, ret);
	if (r != 0) { /* help shown or an error: nothing for the caller to free */
		free(ret->pos);
		ret->pos = NULL;
	}
	return r;
}

bool cli_args_one_path(struct cli *c, int argc, char **argv, const char *help,
		       const char **ret_path, int *ret_exit)
{
	struct cli_args a;
	int r = cli_args_parse(c, argc, argv, NULL, help, &a);
	if (r < 0)
		*ret_exit = cli_args_exit(r);
	else if (a.n_pos != 1)
		*ret_exit = cli_usage_error(c, "expected exactly one store path");
	else
		*ret_exit = cli_open_store(c, CLI_STORE_READ);
	if (r >= 0 && *ret_exit == 0)
		*ret_path = a.pos[0];
	free(a.pos);
	return r >= 0 && *ret_exit == 0;
}

int cli_parse_uint(const char *s, unsigned long max, unsigned long *ret)
{
	if (!s || !*s || s[0] == '-' || s[0] == '+')
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

int cli_write_pid_file(const char *path)
{
	FILE *f = fopen(path, "we");
	if (!f)
		return -1;
	fprintf(f, "%ld\n", (long)getpid());
	return fclose(f) == 0 ? 0 : -1;
}
