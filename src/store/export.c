#include "export.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../basic/util.h"
#include "../nar/nar-reader.h"
#include "../nar/nar-writer.h"
#include "../storepath/storepath.h"

#define EXPORT_CHUNK (1u << 20)
/* Large blobs are checked in slices (a multiple of any group length) by
 * worker threads, a whole slice each, while the exporting thread hands
 * the checked slices out in order.  Up to EXPORT_WINDOW slices are in
 * flight (each needs a buffer when the blob is read, not mapped).  The
 * workers live as long as the export: starting and joining threads per
 * slice, or splitting one slice across threads, left cores idle waiting
 * to be woken (nar of 1 GiB on 2 cores: 180 ms, 1.25 cores busy; with
 * workers: 114 ms at 8 MiB slices, 125 ms at 4 MiB, 112 ms at 16 MiB). */
#define EXPORT_SLICE (8u << 20)
#define EXPORT_WINDOW (EXPORT_MAX_WORKERS + 2)
#define EXPORT_MAX_WORKERS 8

int casfs_directory_foreach_sorted(const struct casfs_directory *d,
				   int (*cb)(const struct casfs_node *n, void *userdata),
				   void *userdata)
{
	const struct casfs_node *lists[3] = { d->directories, d->files, d->symlinks };
	size_t lens[3] = { d->n_directories, d->n_files, d->n_symlinks }, pos[3] = { 0, 0, 0 };
	for (;;) {
		int best = -1;
		for (int k = 0; k < 3; k++) {
			if (pos[k] == lens[k])
				continue;
			const struct casfs_node *n = &lists[k][pos[k]];
			if (best < 0 || casfs_name_cmp(n->name, n->name_len, lists[best][pos[best]].name,
						       lists[best][pos[best]].name_len) < 0)
				best = k;
		}
		if (best < 0)
			return 0;
		int r = cb(&lists[best][pos[best]++], userdata);
		if (r < 0)
			return r;
	}
}

static int blob_error(int r, const uint8_t digest[CASFS_B3_LEN], struct casfs_error *err)
{
	char d[CASFS_B3_STR_LEN + 1];
	casfs_b3_format(digest, d);
	if (r == -ENOENT)
		return casfs_error_set(err, r, "blob %s is missing", d);
	if (r == -EBADMSG)
		return casfs_error_set(err, r, "blob %s is corrupt (content does not match digest)", d);
	return casfs_error_set(err, r, "blob %s: %s", d, strerror(-r));
}

struct slice {
	uint8_t *buf; /* EXPORT_SLICE bytes, when the blob is read */
	int r;	      /* the check's result: 0, -EBADMSG at group `bad`, -errno */
	size_t bad;
	bool ready;
};

struct slice_checker {
	struct casfs_blob_reader *rd;
	const struct casfs_outboard *ob;
	const uint8_t *map; /* the blob's bytes, or NULL: read them */
	uint64_t n_slices;
	pthread_mutex_t mu; /* guards what follows */
	pthread_cond_t cv;  /* a slice got ready, consumed, or stop */
	uint64_t claimed, consumed;
	bool stop;
	unsigned window;
	struct slice win[EXPORT_WINDOW];
};

static size_t slice_len(const struct slice_checker *c, uint64_t k)
{
	return (size_t)MIN((uint64_t)EXPORT_SLICE, c->rd->size - k * EXPORT_SLICE);
}

static const uint8_t *slice_bytes(const struct slice_checker *c, uint64_t k)
{
	return c->map ? c->map + k * EXPORT_SLICE : c->win[k % c->window].buf;
}

static int check_slice(struct slice_checker *c, uint64_t k, struct slice *sl)
{
	size_t n = slice_len(c, k);
	if (!c->map) {
		if (!sl->buf && !(sl->buf = malloc(EXPORT_SLICE)))
			return -ENOMEM;
		int r = casfs_blob_reader_pread_full(c->rd, sl->buf, n, k * EXPORT_SLICE);
		if (r < 0)
			return r;
	}
	uint64_t glen = casfs_outboard_group_len(c->ob);
	return casfs_outboard_check(c->ob, (size_t)(k * EXPORT_SLICE / glen),
				    (size_t)((n + glen - 1) / glen), slice_bytes(c, k), 1, &sl->bad);
}

/* A worker: claim the next slice while the window has room, check it. */
static void *slice_worker(void *arg)
{
	struct slice_checker *c = arg;
	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (!c->stop && c->claimed < c->n_slices && c->claimed - c->consumed >= c->window)
			pthread_cond_wait(&c->cv, &c->mu);
		if (c->stop || c->claimed == c->n_slices)
			break;
		uint64_t k = c->claimed++;
		struct slice *sl = &c->win[k % c->window];
		pthread_mutex_unlock(&c->mu);
		int r = check_slice(c, k, sl);
		pthread_mutex_lock(&c->mu);
		sl->r = r;
		sl->ready = true;
		pthread_cond_broadcast(&c->cv);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* Hand out slice after slice once checked; stop at the first that is not
 * (*ret_bad: its damaged group) or a sink error. */
static int hand_out_slices(struct slice_checker *c, casfs_sink_fn sink, void *userdata,
			   size_t *ret_bad)
{
	int r = 0;
	for (uint64_t k = 0; r >= 0 && k < c->n_slices; k++) {
		struct slice *sl = &c->win[k % c->window];
		pthread_mutex_lock(&c->mu);
		while (!sl->ready)
			pthread_cond_wait(&c->cv, &c->mu);
		sl->ready = false;
		r = sl->r;
		*ret_bad = sl->bad;
		pthread_mutex_unlock(&c->mu);
		if (r >= 0)
			r = sink(userdata, slice_bytes(c, k), slice_len(c, k));
		pthread_mutex_lock(&c->mu);
		c->consumed++;
		pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mu);
	}
	return r;
}

/* A reader that checks its bytes itself (a remote one): pass them on. */
static int export_read(struct casfs_blob_reader *rd, casfs_sink_fn sink, void *userdata)
{
	_cleanup_free_ uint8_t *buf = malloc(EXPORT_CHUNK);
	if (!buf)
		return -ENOMEM;
	int r = 0;
	for (uint64_t off = 0; r >= 0 && off < rd->size;) {
		size_t n = (size_t)MIN((uint64_t)EXPORT_CHUNK, rd->size - off);
		r = casfs_blob_reader_pread_full(rd, buf, n, off);
		if (r >= 0)
			r = sink(userdata, buf, n);
		off += n;
	}
	return r;
}

/* Check a large blob's slices against its outboard on every core and hand
 * out the very bytes checked, in order.  The bytes come from a mapping of
 * the blob file (hashed and written without a copy) or are read.  No
 * whole-blob hash first (unless the outboard has to be built).  A damaged
 * group stops the export at its slice, before any of its bytes go out. */
static int export_checked(struct casfs_store *s, struct casfs_blob_reader *rd,
			  casfs_sink_fn sink, void *userdata, struct casfs_error *err)
{
	struct casfs_outboard ob;
	int r = casfs_blob_outboard(s->blobs, rd, &ob, NULL, NULL, err);
	if (r < 0)
		return r;
	struct slice_checker c = { .rd = rd, .ob = &ob, .n_slices = (rd->size + EXPORT_SLICE - 1) / EXPORT_SLICE };
	/* The export is a command, so a file truncated meanwhile (SIGBUS) is
	 * acceptable; the mount never maps blobs.  No mapping: read. */
	if (s->no_map || casfs_blob_reader_map(rd, &c.map, NULL) < 0)
		c.map = NULL;
	unsigned workers = MIN(casfs_b3_threads(), (unsigned)EXPORT_MAX_WORKERS);
	c.window = workers + 2;
	pthread_mutex_init(&c.mu, NULL);
	pthread_cond_init(&c.cv, NULL);
	pthread_t tids[EXPORT_MAX_WORKERS];
	unsigned started = 0;
	while (started < workers && pthread_create(&tids[started], NULL, slice_worker, &c) == 0)
		started++;
	size_t bad = 0;
	if (started == 0)
		r = -EAGAIN;
	else
		r = hand_out_slices(&c, sink, userdata, &bad);
	pthread_mutex_lock(&c.mu);
	c.stop = true;
	pthread_cond_broadcast(&c.cv);
	pthread_mutex_unlock(&c.mu);
	for (unsigned t = 0; t < started; t++)
		pthread_join(tids[t], NULL);
	pthread_cond_destroy(&c.cv);
	pthread_mutex_destroy(&c.mu);
	for (unsigned i = 0; i < c.window; i++)
		free(c.win[i].buf);
	if (c.map)
		munmap((void *)c.map, (size_t)rd->size);
	if (r == -EBADMSG) {
		char d[CASFS_B3_STR_LEN + 1];
		casfs_b3_format(rd->digest, d);
		r = casfs_error_set(err, -EBADMSG,
				    "blob %s is corrupt: bytes at offset %llu do not match its digest", d,
				    (unsigned long long)bad * casfs_outboard_group_len(&ob));
	}
	casfs_outboard_release(&ob);
	return r;
}

int casfs_export_file(struct casfs_store *s, const struct casfs_node *file, casfs_sink_fn sink,
		      void *userdata, struct casfs_error *err)
{
	struct casfs_blob_reader *rd;
	int r = casfs_blob_open_sized(s->blobs, file->digest, file->size, &rd);
	if (r < 0)
		return blob_error(r, file->digest, err);
	bool small = file->size <= EXPORT_CHUNK;
	_cleanup_free_ uint8_t *buf = small ? malloc(EXPORT_CHUNK) : NULL;
	if (small && !buf) {
		casfs_blob_reader_close(rd);
		return -ENOMEM;
	}
	if (rd->size != file->size) {
		r = -EBADMSG;
	} else if (small) {
		/* one read: hash what we hold, then hand out the same bytes */
		uint8_t d[CASFS_B3_LEN];
		r = casfs_blob_reader_pread_full(rd, buf, (size_t)file->size, 0);
		if (r >= 0) {
			casfs_b3(buf, (size_t)file->size, d);
			if (memcmp(d, file->digest, CASFS_B3_LEN) != 0)
				r = -EBADMSG;
			else
				r = sink(userdata, buf, (size_t)file->size);
		}
	} else if (rd->verified) {
		r = export_read(rd, sink, userdata);
	} else {
		r = export_checked(s, rd, sink, userdata, err);
		if (r < 0 && (r == -ENOENT || r == -EBADMSG) && err && err->code == r) {
			casfs_blob_reader_close(rd);
			return r; /* err names the blob (and the offset) */
		}
	}
	casfs_blob_reader_close(rd);
	if (r == -EBADMSG || r == -ENOENT)
		return blob_error(r, file->digest, err);
	return r;
}

struct nar_ctx {
	struct casfs_store *store;
	struct casfs_nar_writer w;
	struct casfs_error *err;
	unsigned depth;
};

static int writer_sink(void *userdata, const void *p, size_t n)
{
	struct nar_ctx *c = userdata;
	return casfs_nar_writer_file_data(&c->w, p, n);
}

static int render_node(struct nar_ctx *c, const struct casfs_node *n);

static int render_entry(const struct casfs_node *n, void *userdata)
{
	struct nar_ctx *c = userdata;
	int r = casfs_nar_writer_entry_begin(&c->w, n->name, n->name_len);
	if (r >= 0)
		r = render_node(c, n);
	if (r >= 0)
		r = casfs_nar_writer_entry_end(&c->w);
	return r;
}

static int render_node(struct nar_ctx *c, const struct casfs_node *n)
{
	int r;
	switch (n->type) {
	case CASFS_NODE_FILE:
		r = casfs_nar_writer_file_begin(&c->w, n->executable, n->size);
		if (r >= 0)
			r = casfs_export_file(c->store, n, writer_sink, c, c->err);
		if (r >= 0)
			r = casfs_nar_writer_file_end(&c->w);
		return r;
	case CASFS_NODE_SYMLINK:
		return casfs_nar_writer_symlink(&c->w, n->target, n->target_len);
	case CASFS_NODE_DIRECTORY: {
		if (c->depth >= CASFS_NAR_MAX_DEPTH)
			return casfs_error_set(c->err, -ELOOP, "directory nesting too deep");
		struct casfs_directory d;
		r = casfs_directory_get(c->store->directories, n->digest, &d, c->err);
		if (r < 0) {
			char ds[CASFS_B3_STR_LEN + 1];
			casfs_b3_format(n->digest, ds);
			return casfs_error_set(c->err, r, "directory %s is %s", ds,
					       r == -ENOENT ? "missing" : "damaged");
		}
		c->depth++;
		r = casfs_nar_writer_directory_begin(&c->w);
		if (r >= 0)
			r = casfs_directory_foreach_sorted(&d, render_entry, c);
		if (r >= 0)
			r = casfs_nar_writer_directory_end(&c->w);
		c->depth--;
		casfs_directory_release(&d);
		return r;
	}
	default:
		return casfs_error_set(c->err, -EBADMSG, "node of unknown type");
	}
}

int casfs_export_nar(struct casfs_store *s, const struct casfs_node *root, casfs_sink_fn sink,
		     void *userdata, struct casfs_error *err)
{
	struct nar_ctx *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->store = s;
	c->err = err;
	int r = casfs_nar_writer_init(&c->w, sink, userdata, 0, false);
	if (r >= 0)
		r = casfs_nar_writer_begin(&c->w);
	if (r >= 0)
		r = render_node(c, root);
	if (r >= 0)
		r = casfs_nar_writer_finish(&c->w);
	casfs_nar_writer_release(&c->w);
	free(c);
	return r;
}

struct find_ctx {
	const char *name;
	size_t len;
	const struct casfs_node *found;
};

static int find_cb(const struct casfs_node *n, void *userdata)
{
	struct find_ctx *f = userdata;
	if (casfs_name_cmp(n->name, n->name_len, f->name, f->len) == 0) {
		f->found = n;
		return -ECANCELED; /* stop */
	}
	return 0;
}

int casfs_store_resolve(struct casfs_store *s, const char *path, struct casfs_node *ret_node,
			struct casfs_pathinfo *ret_info, struct casfs_error *err)
{
	struct casfs_store_path sp;
	const char *sub;
	int r = casfs_store_path_parse_prefix(path, &sp, &sub, err);
	if (r < 0)
		return r;
	struct casfs_pathinfo pi;
	r = casfs_pathinfo_get(s->pathinfos, sp.digest, &pi, err);
	if (r == -ENOENT)
		return casfs_error_set(err, r, "'%.*s' is not in the store",
				       (int)(sub - path), path);
	if (r < 0)
		return r;
	struct casfs_node cur = { 0 };
	r = casfs_node_copy(&pi.node, &cur);
	while (r >= 0 && *sub) {
		while (*sub == '/')
			sub++;
		const char *end = strchrnul(sub, '/');
		if (end == sub)
			break;
		if (cur.type != CASFS_NODE_DIRECTORY) {
			r = casfs_error_set(err, -ENOTDIR, "'%s': '%.*s' is not a directory", path,
					    (int)(sub - path - 1), path);
			break;
		}
		struct casfs_directory d;
		r = casfs_directory_get(s->directories, cur.digest, &d, err);
		if (r < 0)
			break;
		struct find_ctx f = { sub, (size_t)(end - sub), NULL };
		casfs_directory_foreach_sorted(&d, find_cb, &f);
		casfs_node_release(&cur);
		memset(&cur, 0, sizeof(cur));
		if (!f.found)
			r = casfs_error_set(err, -ENOENT, "'%s': no such file or directory ('%.*s')",
					    path, (int)(end - path), path);
		else
			r = casfs_node_copy(f.found, &cur);
		casfs_directory_release(&d);
		sub = end;
	}
	if (r < 0) {
		casfs_node_release(&cur);
		casfs_pathinfo_release(&pi);
		return r;
	}
	*ret_node = cur;
	if (ret_info)
		*ret_info = pi;
	else
		casfs_pathinfo_release(&pi);
	return 0;
}
