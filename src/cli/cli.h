/* Shared pieces of the casfs command line: global options, the store,
 * error reporting.  Exit codes: 0 success, 1 error (one line on stderr
 * naming the problem), 2 usage error. */
#pragma once

#include <stdbool.h>

#include "../basic/error.h"
#include "../store/store.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_ERROR 1
#define CLI_EXIT_USAGE 2

struct cli {
	const char *command;   /* e.g. "import" */
	const char *store_url; /* --store, NULL for the default */
	const char *cache;     /* --cache, NULL for the default */
	const char *trusted_public_keys; /* --trusted-public-keys, NULL: environment */
	/* --blob-store, --directory-store, --pathinfo-store: NULL for --store's */
	const char *blob_store, *directory_store, *pathinfo_store;
	int verbose;
	struct casfs_store *store;
};

/* Print "casfs <command>: <message>" and return CLI_EXIT_ERROR. */
int cli_fail(struct cli *c, int r, const struct casfs_error *err);
int cli_failf(struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print a usage error and return CLI_EXIT_USAGE. */
int cli_usage_error(struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Open c->store: to read only (works on a read-only file system and with
 * read access alone; nothing is created or written), or to write (created
 * when missing).  Returns 0 or an exit code. */
enum { CLI_STORE_READ = false, CLI_STORE_WRITE = true };
int cli_open_store(struct cli *c, bool write);

/* Parse the global options (--store URL, --cache DIR,
 * --trusted-public-keys KEYS, -v) that may appear anywhere;
 * returns 1 if argv[*i] was one (consumed), 0 if not, or -CLI_EXIT_USAGE. */
int cli_global_option(struct cli *c, int argc, char **argv, int *i);


int cmd_import(struct cli *c, int argc, char **argv);
int cmd_import_nar(struct cli *c, int argc, char **argv);
int cmd_nar(struct cli *c, int argc, char **argv);
int cmd_path_info(struct cli *c, int argc, char **argv);
int cmd_ls(struct cli *c, int argc, char **argv);
int cmd_cat(struct cli *c, int argc, char **argv);
int cmd_verify(struct cli *c, int argc, char **argv);
int cmd_serve_cache(struct cli *c, int argc, char **argv);
int cmd_copy(struct cli *c, int argc, char **argv);
int cmd_daemon(struct cli *c, int argc, char **argv);
int cmd_virtiofs(struct cli *c, int argc, char **argv);
