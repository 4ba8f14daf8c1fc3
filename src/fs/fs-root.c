/* The root listing (--list-root), paged over the PathInfoService.
 *
 * DESIGN NOTE: root readdir offsets.
 *
 * The root lists every PathInfo in store path digest order, and a store
 * may hold millions of them, so an open root handle holds one page (at
 * most opts.root_page entries, fetched with casfs_pathinfo_list_from()) and
 * a cursor, never the whole listing.  Offsets therefore name positions in
 * digest order, not counts of entries:
 *
 *   0        the start ("." next)
 *   1        after "."
 *   2        after "..": the first store path next
 *   3 + p    after the store path whose digest's first 62 bits are p
 *            (its first 8 bytes read big-endian, shifted right by 2)
 *
 * They grow along the listing, stay valid across pages, across handles and
 * while store paths are added (a new one is listed if it sorts after the
 * position), and resuming at any of them needs no walk from the start:
 * offset 3 + p resumes at the first digest whose 62-bit prefix exceeds p.
 * Two digests sharing their first 62 bits (odds about n^2 / 2^63 for n
 * store paths) share an offset; the handle remembers the full digest of the
 * last entry it handed out, so a listing continued from that entry's offset
 * (what the kernel does between getdents calls) is exact, and only a
 * seekdir() to a shared offset would skip the second of the two.  Offsets
 * need 63 bits: 32-bit getdents without large file support cannot use them.
 *
 * Damage.  A record that cannot be decoded, or whose root node a lookup
 * would refuse (not the store path of its digest, an invalid node), is left
 * out and logged once per fs (fs->damaged); the listing goes on with the
 * rest, so one bad record costs one entry, not the listing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/encoding.h"
#include "basic/util.h"
#include "fs-internal.h"

#define DIGEST_LEN CASFS_STORE_DIGEST_LEN
#define DEFAULT_PAGE 64

struct root_entry {
	uint8_t digest[DIGEST_LEN];
	struct casfs_node node; /* owned copy of the PathInfo's root node */
};

struct fs_root_list {
	struct root_entry *page; /* `cap` slots, allocated once */
	size_t n, cap;
	/* The page holds every listable entry whose digest is in (lo, hi],
	 * in order: lo is "before everything" if from_start, and hi (the last
	 * digest the fetch visited, damaged or not) "after everything" if
	 * at_end (the fetch visited fewer than cap records). */
	bool valid, from_start, at_end;
	uint8_t lo[DIGEST_LEN], hi[DIGEST_LEN];
	/* The last entry handed out, and the offset after it. */
	bool have_cursor;
	uint8_t cursor[DIGEST_LEN];
	uint64_t cursor_off;
};

static uint64_t prefix62(const uint8_t digest[DIGEST_LEN])
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | digest[i];
	return v >> 2;
}

static uint64_t offset_after(const uint8_t digest[DIGEST_LEN])
{
	return 3 + prefix62(digest);
}

/* The greatest digest whose 62-bit prefix is p: every digest after it
 * has a greater prefix. */
static void seek_key(uint64_t p, uint8_t ret[DIGEST_LEN])
{
	uint64_t v = (p << 2) | 3;
	for (int i = 7; i >= 0; i--, v >>= 8)
		ret[i] = (uint8_t)v;
	memset(ret + 8, 0xff, DIGEST_LEN - 8);
}

static void page_clear(struct fs_root_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		casfs_node_release(&l->page[i].node);
	l->n = 0;
	l->valid = false;
}

int fs_root_list_new(struct casfs_fs *fs, struct fs_root_list **ret)
{
	struct fs_root_list *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->cap = fs->opts.root_page ? fs->opts.root_page : DEFAULT_PAGE;
	l->page = calloc(l->cap, sizeof(*l->page));
	if (!l->page) {
		free(l);
		return -ENOMEM;
	}
	*ret = l;
	return 0;
}

void fs_root_list_free(struct fs_root_list *l)
{
	if (!l)
		return;
	page_clear(l);
	free(l->page);
	free(l);
}

/* Log a damaged record the first time this fs meets it. */
static void report_damage(struct casfs_fs *fs, const uint8_t digest[DIGEST_LEN], const char *why)
{
	uint8_t key[CASFS_KEYSET_KEY_LEN] = { 0 };
	memcpy(key, digest, DIGEST_LEN);
	pthread_mutex_lock(&fs->damaged_lock);
	bool seen = casfs_keyset_get(&fs->damaged, key, NULL);
	if (!seen)
		(void)casfs_keyset_put(&fs->damaged, key, 0); /* on OOM: logged again later */
	pthread_mutex_unlock(&fs->damaged_lock);
	if (!seen)
		fs_log(fs, CASFS_FS_LOG_ERROR, "root listing skips a damaged path info: %s", why);
}

/* Why a lookup would refuse this root node, or NULL if it would serve it
 * under its name. */
static const char *node_problem(const uint8_t digest[DIGEST_LEN], const struct casfs_node *n,
				struct casfs_error *err)
{
	uint8_t parsed[DIGEST_LEN];
	if (!n->name || strlen(n->name) != n->name_len || fs_parse_basename(n->name, parsed) < 0 ||
	    memcmp(parsed, digest, DIGEST_LEN) != 0)
		return "its root node is not named after its store path";
	int r = casfs_node_validate(n, err);
	return r < 0 ? casfs_error_message(err, r) : NULL;
}

struct fill {
	struct casfs_fs *fs;
	struct fs_root_list *l;
	uint8_t last[DIGEST_LEN];
	size_t visited;
};

static int fill_cb(const uint8_t digest[DIGEST_LEN], const struct casfs_pathinfo *pi,
		   const struct casfs_error *damage, void *userdata)
{
	struct fill *f = userdata;
	struct fs_root_list *l = f->l;
	if (f->visited == l->cap)
		return -EIO; /* the backend broke its contract: more than max */
	memcpy(f->last, digest, DIGEST_LEN);
	f->visited++;
	if (!pi) {
		report_damage(f->fs, digest, casfs_error_message(damage, damage->code));
		return 0;
	}
	struct casfs_error err = { 0 };
	const char *why = node_problem(digest, &pi->node, &err);
	if (why) {
		char name[CASFS_NIXBASE32_LEN(DIGEST_LEN) + 1];
		char line[768];
		casfs_nixbase32_encode(digest, DIGEST_LEN, name);
		snprintf(line, sizeof(line), "path info %s: %s", name, why);
		report_damage(f->fs, digest, line);
		return 0;
	}
	struct root_entry *e = &l->page[l->n];
	int r = casfs_node_copy(&pi->node, &e->node);
	if (r < 0)
		return r;
	memcpy(e->digest, digest, DIGEST_LEN);
	l->n++;
	return 0;
}

/* Replace the page by the entries after `start` (NULL: from the first). */
static int fetch(struct casfs_fs *fs, struct fs_root_list *l, const uint8_t *start)
{
	page_clear(l);
	struct fill f = { .fs = fs, .l = l };
	struct casfs_error err = { 0 };
	int r = casfs_pathinfo_list_from(fs->store->pathinfos, start, l->cap, fill_cb, &f, &err);
	if (r < 0) {
		page_clear(l);
		if (r == -ENOMEM)
			return r;
		fs_log(fs, CASFS_FS_LOG_ERROR, "listing path infos: %s",
		       casfs_error_message(&err, r));
		return -EIO;
	}
	l->valid = true;
	l->from_start = !start;
	if (start)
		memcpy(l->lo, start, DIGEST_LEN);
	l->at_end = f.visited < l->cap;
	memcpy(l->hi, f.last, DIGEST_LEN); /* unused when nothing was visited: at_end */
	return 0;
}

/* Whether the page holds the entries that follow `start`. */
static bool covers(const struct fs_root_list *l, const uint8_t *start)
{
	if (!l->valid)
		return false;
	if (!start)
		return l->from_start;
	if (!l->from_start && memcmp(l->lo, start, DIGEST_LEN) > 0)
		return false;
	return l->at_end || memcmp(start, l->hi, DIGEST_LEN) < 0;
}

/* The index of the first page entry after `start`. */
static size_t first_after(const struct fs_root_list *l, const uint8_t *start)
{
	size_t lo = 0, hi = l->n;
	while (start && lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (memcmp(l->page[mid].digest, start, DIGEST_LEN) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int fs_root_readdir(struct casfs_fs *fs, struct casfs_fs_dir *d, uint64_t offset, bool plus,
		    casfs_fs_dirent_cb cb, void *userdata)
{
	struct fs_root_list *l = d->root;
	uint8_t start_buf[DIGEST_LEN];
	const uint8_t *start = NULL;
	if (offset > 2) {
		if (l->have_cursor && offset == l->cursor_off) {
			memcpy(start_buf, l->cursor, DIGEST_LEN);
		} else {
			uint64_t p = offset - 3;
			if (p >> 62)
				return 0; /* after every digest */
			seek_key(p, start_buf);
		}
		start = start_buf;
	}
	for (;;) {
		if (!covers(l, start)) {
			int r = fetch(fs, l, start);
			if (r < 0)
				return r;
		}
		for (size_t i = first_after(l, start); i < l->n; i++) {
			const struct root_entry *e = &l->page[i];
			uint64_t next = offset_after(e->digest);
			int r = fs_dir_emit(fs, d, FS_NO_INDEX, &e->node, plus, next, cb, userdata);
			if (r != 0)
				return r < 0 ? r : 0;
			l->have_cursor = true;
			memcpy(l->cursor, e->digest, DIGEST_LEN);
			l->cursor_off = next;
		}
		if (l->at_end)
			return 0;
		memcpy(start_buf, l->hi, DIGEST_LEN);
		start = start_buf;
	}
}
