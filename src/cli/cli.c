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
	struct casfs_store_options o = {
		.flags = write ? CASFS_STORE_CREATE : CASFS_STORE_READONLY,
		.cache = c->cache,
		.trusted_public_keys = c->trusted_public_keys,
		.blob_store = c->blob_store,
		.directory_store = c->directory_store,
		.pathinfo_store = c->pathinfo_store,
	};
	int r = casfs_store_open_with(c->store_url, &o, &c->store, &err);
	if (r < 0)
		return cli_fail(c, r, &err);
	return 0;
}

/* "--name VALUE" or "--name=VALUE": 1 with *ret set, 0 if argv[*i] is
 * not this option, -CLI_EXIT_USAGE when the value is missing. */
static int option_value(struct cli *c, int argc, char **argv, int *i, const char *name,
			const char *what, const char **ret)
{
	const char *a = argv[*i];
	size_t n = strlen(name);
	if (strncmp(a, name, n) != 0)
		return 0;
	if (a[n] == '=') {
		*ret = a + n + 1;
		return 1;
	}
	if (a[n])
		return 0;
	if (*i + 1 >= argc) {
		cli_usage_error(c, "%s needs %s", name, what);
		return -CLI_EXIT_USAGE;
	}
	*ret = argv[++*i];
	return 1;
}

int cli_global_option(struct cli *c, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
		c->verbose++;
		return 1;
	}
	int r = option_value(c, argc, argv, i, "--store", "a URL", &c->store_url);
	if (!r)
		r = option_value(c, argc, argv, i, "--cache", "a directory", &c->cache);
	if (!r)
		r = option_value(c, argc, argv, i, "--trusted-public-keys", "a key list",
				 &c->trusted_public_keys);
	if (!r)
		r = option_value(c, argc, argv, i, "--blob-store", "a URL", &c->blob_store);
	if (!r)
		r = option_value(c, argc, argv, i, "--directory-store", "a URL", &c->directory_store);
	if (!r)
		r = option_value(c, argc, argv, i, "--pathinfo-store", "a URL", &c->pathinfo_store);
	return r;
}
