/* casfs copy */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../basic/util.h"
#include "../store/copy.h"
#include "args.h"

static const char copy_help[] =
	"usage: casfs copy [--from URL] [--to URL] [--no-recursive] [--jobs N] STORE_PATH...\n"
	"\n"
	"Copy the closures of the store paths (references first, skipping what the\n"
	"destination has) from one store to another.  Both default to --store.\n"
	"\n"
	"  --from URL      a casfs store (DIR, local:DIR, memory:), a Nix binary cache\n"
	"                  (file:///DIR, http://HOST[:PORT][/PREFIX], https://...) or\n"
	"                  nix:[ROOT] (this machine's Nix store, or a chroot store)\n"
	"  --to URL        a casfs store or a Nix binary cache; a cache URL takes\n"
	"                  Nix's ?secret-key=FILE&compression=zstd|xz|bzip2|none\n"
	"  --no-recursive  copy only the paths given; their references must be in\n"
	"                  the destination already\n"
	"  --jobs N        paths copied at once (default 4)\n"
	"\n"
	"Paths from a binary cache need a signature by a key of --trusted-public-keys\n"
	"(or $CASFS_TRUSTED_PUBLIC_KEYS), unless content-addressed.\n";

static void show_progress(void *userdata, const struct casfs_copy_stats *st)
{
	(void)userdata;
	fprintf(stderr, "\rcopying: %zu of %zu paths (%zu present), %.1f MiB", st->copied,
		st->total - st->present, st->present, (double)st->nar_bytes / (1024.0 * 1024.0));
}

static bool is_cache_url(const char *url)
{
	return url && casfs_substituter_url_known(url) && strncmp(url, "nix:", 4) != 0;
}

struct endpoints {
	struct casfs_store *from_store, *to_store;
	struct casfs_binary_cache *to_cache;
	struct casfs_substituter *sub;
	struct casfs_nixkey_list keys;
};

static void endpoints_release(struct endpoints *e)
{
	if (e->from_store != e->to_store)
		casfs_store_free(e->from_store);
	casfs_store_free(e->to_store);
	if (e->to_cache)
		casfs_substituter_free(casfs_binary_cache_substituter(e->to_cache));
	casfs_substituter_free(e->sub);
	casfs_nixkey_list_release(&e->keys);
}

static int open_endpoints(struct cli *c, const char *from, const char *to, struct endpoints *e,
			  struct casfs_error *err)
{
	struct casfs_store_options wo = { .flags = CASFS_STORE_CREATE, .cache = c->cache,
					  .trusted_public_keys = c->trusted_public_keys };
	int r;
	if (to && !strncmp(to, "nix:", 4))
		return casfs_error_set(err, -EROFS, "'%s': the Nix store is read-only to casfs", to);
	if (is_cache_url(to))
		r = casfs_binary_cache_open(to, &e->to_cache, err);
	else
		r = casfs_store_open_with(to, &wo, &e->to_store, err);
	if (r < 0)
		return r;
	bool same = (!from && !to) || (from && to && !strcmp(from, to));
	if (same && e->to_store) {
		e->from_store = e->to_store;
		return 0;
	}
	/* A substituter feeds a casfs destination directly. */
	if (from && casfs_substituter_url_known(from) && e->to_store) {
		r = casfs_store_trusted_keys(c->trusted_public_keys, &e->keys, err);
		return r < 0 ? r : casfs_substituter_open(from, &e->sub, err);
	}
	struct casfs_store_options ro = wo;
	ro.flags = CASFS_STORE_READONLY;
	return casfs_store_open_with(from, &ro, &e->from_store, err);
}

int cmd_copy(struct cli *c, int argc, char **argv)
{
	const char *from = NULL, *to = NULL, *jobs_s = NULL;
	bool no_recursive = false;
	struct cli_flag flags[] = {
		{ "--from", NULL, &from },
		{ "--to", NULL, &to },
		{ "--no-recursive", &no_recursive, NULL },
		{ "--jobs", NULL, &jobs_s },
		{ NULL, NULL, NULL },
	};
	struct cli_args a;
	int r = cli_args_parse(c, argc, argv, flags, copy_help, &a);
	_cleanup_free_ char **pos = a.pos;
	if (r < 0)
		return cli_args_exit(r);
	if (a.n_pos == 0)
		return cli_usage_error(c, "no STORE_PATH given");
	struct casfs_copy_options o = { .no_recursive = no_recursive };
	if (jobs_s) {
		char *end;
		unsigned long n = strtoul(jobs_s, &end, 10);
		if (*end || end == jobs_s || jobs_s[0] == '-' || n < 1 || n > 256)
			return cli_usage_error(c, "--jobs wants a number from 1 to 256, not '%s'", jobs_s);
		o.jobs = (unsigned)n;
	}
	if (!from)
		from = c->store_url;
	if (!to)
		to = c->store_url;
	struct casfs_error err = { 0 };
	_cleanup_free_ struct casfs_store_path *paths = calloc((size_t)a.n_pos, sizeof(*paths));
	if (!paths)
		return cli_failf(c, "out of memory");
	for (int i = 0; i < a.n_pos; i++)
		if ((r = casfs_store_path_parse(a.pos[i], &paths[i], &err)) < 0)
			return cli_fail(c, r, &err);

	struct endpoints e = { 0 };
	r = open_endpoints(c, from, to, &e, &err);
	if (r < 0) {
		endpoints_release(&e);
		return cli_fail(c, r, &err);
	}
	struct casfs_copy_source src = { .store = e.from_store, .sub = e.sub, .keys = &e.keys };
	struct casfs_copy_dest dst = { .store = e.to_store, .cache = e.to_cache };
	if (isatty(STDERR_FILENO))
		o.progress = show_progress;
	struct casfs_copy_stats st;
	r = casfs_copy(&src, &dst, paths, (size_t)a.n_pos, &o, &st, &err);
	if (o.progress)
		fputs("\r\033[K", stderr);
	endpoints_release(&e);
	if (r < 0)
		return cli_fail(c, r, &err);
	if (c->verbose)
		fprintf(stderr, "casfs copy: %zu paths copied, %zu present, %.1f MiB of NAR\n", st.copied,
			st.present, (double)st.nar_bytes / (1024.0 * 1024.0));
	return CLI_EXIT_OK;
}
