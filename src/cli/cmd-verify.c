/* casfs verify: re-hash what store paths are made of, report damage. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../basic/keyset.h"
#include "../basic/util.h"
#include "../storepath/storepath.h"
#include "args.h"

struct verify {
	struct cli *cli;
	struct casfs_keyset dirs_seen, blobs_seen;
	const char *current; /* store path being checked, for messages */
	bool fill;           /* --outboards: store missing outboards, replace damaged ones */
	unsigned long paths, dirs, blobs, damaged, outboards_stored;
};

static void report(struct verify *v, const char *what, const uint8_t digest[CASFS_B3_LEN],
		   int r, const char *msg)
{
	char d[CASFS_B3_STR_LEN + 1];
	casfs_b3_format(digest, d);
	v->damaged++;
	fprintf(stderr, "casfs verify: %s %s: %s%s%s\n", what, d,
		r == -ENOENT ? "missing" : r == -EBADMSG ? "corrupt" : strerror(-r),
		msg && msg[0] ? " - " : "", msg ? msg : "");
	if (v->current)
		fprintf(stderr, "casfs verify:   (in %s)\n", v->current);
}

/* A good blob's stored outboard: a damaged one is damage (the mount
 * would not use it, but rebuild it on every open); a missing one is not
 * (stores made before outboards).  With --outboards both are stored. */
static void verify_outboard(struct verify *v, struct casfs_blob_reader *rd,
			    const struct casfs_outboard *good)
{
	struct casfs_blob_service *blobs = v->cli->store->blobs;
	struct casfs_outboard stored;
	struct casfs_error err = { 0 };
	int r = casfs_blob_stored_outboard(blobs, rd, &stored, &err);
	if (r >= 0) {
		casfs_outboard_release(&stored);
		return;
	}
	if (r != -ENOENT) {
		char msg[600];
		snprintf(msg, sizeof(msg), "its stored outboard: %s%s", casfs_error_message(&err, r),
			 v->fill ? " (replaced)" : " (casfs verify --outboards replaces it)");
		report(v, "blob", rd->digest, r, msg);
	}
	if (v->fill && blobs->ops->outboard_put &&
	    blobs->ops->outboard_put(blobs, rd->digest, good, r != -ENOENT) >= 0)
		v->outboards_stored++;
}

static int verify_blob(struct verify *v, const uint8_t digest[CASFS_B3_LEN], uint64_t size,
		       bool size_known)
{
	if (casfs_keyset_get(&v->blobs_seen, digest, NULL))
		return 0;
	int r = casfs_keyset_put(&v->blobs_seen, digest, 0);
	if (r < 0)
		return r;
	v->blobs++;
	struct casfs_blob_reader *rd;
	r = casfs_blob_open(v->cli->store->blobs, digest, &rd);
	if (r < 0) {
		report(v, "blob", digest, r, NULL);
		return 0;
	}
	struct casfs_error err = { 0 };
	struct casfs_outboard ob = { 0 };
	r = casfs_blob_verify_mapped(rd, &ob, &err);
	if (r >= 0 && size_known && rd->size != size)
		r = casfs_error_set(&err, -EBADMSG, "size %llu, expected %llu",
				    (unsigned long long)rd->size, (unsigned long long)size);
	if (r >= 0 && ob.n > 0)
		verify_outboard(v, rd, &ob);
	casfs_outboard_release(&ob);
	casfs_blob_reader_close(rd);
	if (r < 0)
		report(v, "blob", digest, r, err.msg);
	return 0;
}

static int verify_directory(struct verify *v, const uint8_t digest[CASFS_B3_LEN]);

static int verify_node(struct verify *v, const struct casfs_node *n)
{
	if (n->type == CASFS_NODE_FILE)
		return verify_blob(v, n->digest, n->size, true);
	if (n->type == CASFS_NODE_DIRECTORY)
		return verify_directory(v, n->digest);
	return 0;
}

static int verify_directory(struct verify *v, const uint8_t digest[CASFS_B3_LEN])
{
	if (casfs_keyset_get(&v->dirs_seen, digest, NULL))
		return 0;
	int r = casfs_keyset_put(&v->dirs_seen, digest, 0);
	if (r < 0)
		return r;
	v->dirs++;
	struct casfs_directory d;
	struct casfs_error err = { 0 };
	r = casfs_directory_get(v->cli->store->directories, digest, &d, &err);
	if (r < 0) {
		report(v, "directory", digest, r, err.msg);
		return r == -ENOMEM ? r : 0;
	}
	r = casfs_directory_validate(&d, &err);
	if (r < 0) {
		report(v, "directory", digest, r, err.msg);
		casfs_directory_release(&d);
		return 0;
	}
	for (size_t i = 0; r >= 0 && i < d.n_directories; i++)
		r = verify_node(v, &d.directories[i]);
	for (size_t i = 0; r >= 0 && i < d.n_files; i++)
		r = verify_node(v, &d.files[i]);
	casfs_directory_release(&d);
	return r;
}

static int verify_pathinfo(const uint8_t digest[CASFS_STORE_DIGEST_LEN],
			   const struct casfs_pathinfo *pi, void *userdata)
{
	struct verify *v = userdata;
	struct casfs_store_path sp;
	memcpy(sp.digest, digest, sizeof(sp.digest));
	const char *dash = pi->node.name ? strchr(pi->node.name, '-') : NULL;
	snprintf(sp.name, sizeof(sp.name), "%s", dash ? dash + 1 : "?");
	char path[CASFS_STORE_PATH_MAX + 1];
	casfs_store_path_format(&sp, path);
	v->current = path;
	v->paths++;
	int r = verify_node(v, &pi->node);
	v->current = NULL;
	return r;
}

/* One page of the whole-store listing: the digests to verify (each is
 * read again, so no read transaction lasts while blobs are hashed), and
 * the damaged records reported on the way. */
#define PAGE 256
struct page {
	struct verify *v;
	uint8_t digests[PAGE][CASFS_STORE_DIGEST_LEN];
	size_t n;
};

static int page_entry(const uint8_t digest[CASFS_STORE_DIGEST_LEN], const struct casfs_pathinfo *pi,
		      const struct casfs_error *damage, void *userdata)
{
	struct page *pg = userdata;
	memcpy(pg->digests[pg->n++], digest, CASFS_STORE_DIGEST_LEN);
	if (!pi) { /* the message names the record */
		pg->v->paths++;
		pg->v->damaged++;
		fprintf(stderr, "casfs verify: %s\n", casfs_error_message(damage, -EBADMSG));
	}
	return 0;
}

/* Every store path, a page at a time; a damaged record is counted and
 * the listing goes on. */
static int verify_all_pathinfos(struct verify *v, struct casfs_error *err)
{
	struct casfs_pathinfo_service *pis = v->cli->store->pathinfos;
	struct page pg = { .v = v };
	uint8_t after[CASFS_STORE_DIGEST_LEN];
	for (bool first = true;; first = false) {
		pg.n = 0;
		int n = casfs_pathinfo_list_from(pis, first ? NULL : after, PAGE, page_entry, &pg, err);
		if (n < 0)
			return n;
		for (size_t i = 0; i < pg.n; i++) {
			struct casfs_pathinfo pi;
			casfs_error_clear(err);
			int r = casfs_pathinfo_get(pis, pg.digests[i], &pi, err);
			if (r == -ENOENT || r == -EBADMSG)
				continue; /* removed meanwhile, or reported above */
			if (r < 0)
				return r;
			r = verify_pathinfo(pg.digests[i], &pi, v);
			casfs_pathinfo_release(&pi);
			if (r < 0)
				return r;
		}
		if ((size_t)n < PAGE)
			return 0;
		memcpy(after, pg.digests[pg.n - 1], CASFS_STORE_DIGEST_LEN);
	}
}

static int verify_any_blob(const uint8_t digest[CASFS_B3_LEN], void *userdata)
{
	return verify_blob(userdata, digest, 0, false);
}

static int verify_any_directory(const uint8_t digest[CASFS_B3_LEN], void *userdata)
{
	return verify_directory(userdata, digest);
}

static const char verify_help[] =
	"usage: casfs verify [--outboards] [STORE_PATH...]\n"
	"\n"
	"Re-hash every directory and blob that the given store paths are made of\n"
	"(default: every store path, and every blob and directory in the store)\n"
	"and report what is missing or damaged, naming its digest; a blob's\n"
	"stored outboard (the hashes that let reads check a part of it) is\n"
	"checked too.  Exits 1 if anything is damaged.\n"
	"\n"
	"  --outboards  store the outboard of every good blob that lacks one (a\n"
	"               store made before outboards) and replace damaged ones;\n"
	"               opens the store for writing\n";

int cmd_verify(struct cli *c, int argc, char **argv)
{
	struct cli_args a;
	bool fill = false;
	const struct cli_flag flags[] = { { "--outboards", &fill, NULL }, { 0 } };
	int r = cli_args_parse(c, argc, argv, flags, verify_help, &a);
	_cleanup_free_ char **pos = a.pos;
	if (r < 0)
		return cli_args_exit(r);
	for (int i = 0; i < a.n_pos; i++) {
		struct casfs_store_path sp;
		struct casfs_error err = { 0 };
		if ((r = casfs_store_path_parse(a.pos[i], &sp, &err)) < 0)
			return cli_fail(c, r, &err);
	}
	if ((r = cli_open_store(c, fill ? CLI_STORE_WRITE : CLI_STORE_READ)))
		return r;
	struct verify v = { .cli = c, .fill = fill };
	struct casfs_error err = { 0 };
	for (int i = 0; r >= 0 && i < a.n_pos; i++) {
		struct casfs_store_path sp;
		struct casfs_pathinfo pi;
		casfs_store_path_parse(a.pos[i], &sp, NULL);
		r = casfs_pathinfo_get(c->store->pathinfos, sp.digest, &pi, &err);
		if (r == -ENOENT) {
			r = casfs_error_set(&err, r, "'%s' is not in the store", a.pos[i]);
			break;
		}
		if (r >= 0) {
			r = verify_pathinfo(sp.digest, &pi, &v);
			casfs_pathinfo_release(&pi);
		}
	}
	if (r >= 0 && a.n_pos == 0) {
		r = verify_all_pathinfos(&v, &err);
		if (r >= 0 && c->store->directories->ops->list)
			r = c->store->directories->ops->list(c->store->directories,
							     verify_any_directory, &v);
		if (r >= 0 && c->store->blobs->ops->list)
			r = c->store->blobs->ops->list(c->store->blobs, verify_any_blob, &v);
	}
	casfs_keyset_release(&v.dirs_seen);
	casfs_keyset_release(&v.blobs_seen);
	if (r < 0)
		return cli_fail(c, r, &err);
	printf("checked %lu store paths, %lu directories, %lu blobs: %lu damaged\n", v.paths,
	       v.dirs, v.blobs, v.damaged);
	if (fill)
		printf("stored %lu outboards\n", v.outboards_stored);
	return v.damaged ? CLI_EXIT_ERROR : CLI_EXIT_OK;
}
