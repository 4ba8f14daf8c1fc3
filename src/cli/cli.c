#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int cli_fail(struct cli *c, int r, const struct casfs_error *err)
{
	fprintf(stderr, "casfs %s: %s\n", c->command, casfs_error_message(err, r));
	return CLI_EXIT_ERROR;
}

int cli_failf(struct cli *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "casfs %s: ", c->command);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return CLI_EXIT_ERROR;
}

int cli_usage_error(struct cli *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "casfs %s: ", c->command);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, " (see 'casfs %s --help')\n", c->command);
	va_end(ap);
	return CLI_EXIT_USAGE;
}

int cli_open_store(struct cli *c, bool write)
{
	struct casfs_error err = { 0 };
	unsigned flags = write ? CASFS_STORE_CREATE : CASFS_STORE_READONLY;
	int r = casfs_store_open(c->store_url, flags, &c->store, &err);
	if (r < 0)
		return cli_fail(c, r, &err);
	return 0;
}

int cli_global_option(struct cli *c, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
		c->verbose++;
		return 1;
	}
	if (strncmp(a, "--store=", 8) == 0) {
		c->store_url = a + 8;
		return 1;
	}
	if (strcmp(a, "--store") == 0) {
		if (*i + 1 >= argc) {
			cli_usage_error(c, "--store needs a URL");
			return -CLI_EXIT_USAGE;
		}
		c->store_url = argv[++*i];
		return 1;
	}
	return 0;
}
