#include "nar-plan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../basic/buf.h"
#include "../basic/util.h"
#include "../digest/outboard.h"
#include "../nar/nar-reader.h"
#include "export.h"

struct plan_file {
	uint64_t nar_off;    /* first content byte in the NAR */
	uint64_t lit_before; /* literal bytes before it */
	uint64_t size;
	uint8_t digest[CASFS_B3_LEN];
};

struct casfs_nar_plan {
	struct casfs_buf lit;
	struct plan_file *files;
	size_t n_files, cap_files;
	uint64_t file_bytes; /* contents so far (while walking) */
	bool want_ls;
	struct casfs_buf ls;
};

struct walk {
	struct casfs_store *s;
	struct casfs_nar_plan *p;
	struct casfs_error *err;
	unsigned depth;
	int r;
};

static const uint8_t zeros[8];

static int put_u64(struct casfs_buf *b, uint64_t v)
{
	uint8_t le[8];
	for (int i = 0; i < 8; i++)
		le[i] = (uint8_t)(v >> (8 * i));
	return casfs_buf_append(b, le, 8);
}

/* A NAR string: length, bytes, zero padding to 8. */
static int put_str(struct casfs_buf *b, const void *p, size_t n)
{
	int r = put_u64(b, n);
	if (r >= 0 && n)
		r = casfs_buf_append(b, p, n);
	if (r >= 0 && n % 8)
		r = casfs_buf_append(b, zeros, 8 - n % 8);
	return r;
}

static int put_kws(struct casfs_buf *b, const char *const *kws)
{
	for (; *kws; kws++) {
		int r = put_str(b, *kws, strlen(*kws));
		if (r < 0)
			return r;
	}
	return 0;
}

/* A JSON string as Nix 2.8's json.cc writes it (see the header). */
static int json_str(struct casfs_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	int r = casfs_buf_append_byte(b, '"');
	for (size_t i = 0; r >= 0 && i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '"' || ch == '\\') {
			char e[2] = { '\\', (char)ch };
			r = casfs_buf_append(b, e, 2);
		} else if (ch == '\n') {
			r = casfs_buf_append(b, "\\n", 2);
		} else if (ch == '\r') {
			r = casfs_buf_append(b, "\\r", 2);
		} else if (ch == '\t') {
			r = casfs_buf_append(b, "\\t", 2);
		} else if (ch < 0x20) {
			char e[6] = { '\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15] };
			r = casfs_buf_append(b, e, 6);
		} else {
			r = casfs_buf_append_byte(b, ch);
		}
	}
	if (r >= 0)
		r = casfs_buf_append_byte(b, '"');
	return r;
}

static uint64_t nar_pos(const struct casfs_nar_plan *p)
{
	return p->lit.len + p->file_bytes;
}

static int add_file(struct casfs_nar_plan *p, const struct casfs_node *n)
{
	if (n->size == 0)
		return 0;
	if (p->n_files == p->cap_files) {
		size_t cap = p->cap_files ? p->cap_files * 2 : 16;
		struct plan_file *f = realloc(p->files, cap * sizeof(*f));
		if (!f)
			return -ENOMEM;
		p->files = f, p->cap_files = cap;
	}
	struct plan_file *f = &p->files[p->n_files++];
	f->nar_off = nar_pos(p);
	f->lit_before = p->lit.len;
	f->size = n->size;
	memcpy(f->digest, n->digest, CASFS_B3_LEN);
	if (__builtin_add_overflow(p->file_bytes, n->size, &p->file_bytes))
		return -EOVERFLOW;
	return 0;
}

static int walk_node(struct walk *w, const struct casfs_node *n);

static int walk_entry(const struct casfs_node *n, void *userdata)
{
	struct walk *w = userdata;
	struct casfs_nar_plan *p = w->p;
	static const char *const entry[] = { "entry", "(", "name", NULL };
	int r = put_kws(&p->lit, entry);
	if (r >= 0)
		r = put_str(&p->lit, n->name, n->name_len);
	if (r >= 0)
		r = put_str(&p->lit, "node", 4);
	if (r >= 0 && p->want_ls) {
		r = json_str(&p->ls, n->name, n->name_len);
		if (r >= 0)
			r = casfs_buf_append_byte(&p->ls, ':');
	}
	if (r >= 0)
		r = walk_node(w, n);
	if (r >= 0)
		r = put_str(&p->lit, ")", 1);
	return r;
}

static int walk_directory(struct walk *w, const struct casfs_node *n)
{
	struct casfs_nar_plan *p = w->p;
	if (w->depth >= CASFS_NAR_MAX_DEPTH)
		return casfs_error_set(w->err, -EBADMSG, "tree deeper than %u levels",
				       CASFS_NAR_MAX_DEPTH);
	struct casfs_directory d = { 0 };
	int r = casfs_directory_get(w->s->directories, n->digest, &d, w->err);
	if (r < 0) {
		char hex[CASFS_B3_STR_LEN + 1];
		casfs_b3_format(n->digest, hex);
		return casfs_error_prefix(w->err, r, "directory %s", hex);
	}
	if (p->want_ls && (r = casfs_buf_append_str(&p->ls, "{\"type\":\"directory\",\"entries\":{")) < 0)
		goto out;
	w->depth++;
	/* Entries in bytewise name order (the NAR's), merging the three
	 * lists; JSON wants a comma before every entry but the first. */
	r = 0;
	{
		const struct casfs_node *lists[3] = { d.directories, d.files, d.symlinks };
		size_t lens[3] = { d.n_directories, d.n_files, d.n_symlinks }, pos[3] = { 0, 0, 0 };
		bool first = true;
		for (;;) {
			int best = -1;
			for (int k = 0; k < 3; k++) {
				if (pos[k] == lens[k])
					continue;
				const struct casfs_node *c = &lists[k][pos[k]];
				if (best < 0 ||
				    casfs_name_cmp(c->name, c->name_len, lists[best][pos[best]].name,
						   lists[best][pos[best]].name_len) < 0)
					best = k;
			}
			if (best < 0)
				break;
			if (!first && p->want_ls && (r = casfs_buf_append_byte(&p->ls, ',')) < 0)
				break;
			first = false;
			if ((r = walk_entry(&lists[best][pos[best]++], w)) < 0)
				break;
		}
	}
	w->depth--;
	if (r >= 0 && p->want_ls)
		r = casfs_buf_append_str(&p->ls, "}}");
out:
	casfs_directory_release(&d);
	return r;
}

static int walk_node(struct walk *w, const struct casfs_node *n)
{
	struct casfs_nar_plan *p = w->p;
	static const char *const open[] = { "(", "type", NULL };
	int r = put_kws(&p->lit, open);
	if (r < 0)
		return r;
	switch (n->type) {
	case CASFS_NODE_FILE: {
		static const char *const reg[] = { "regular", NULL };
		static const char *const exe[] = { "executable", "", NULL };
		static const char *const contents[] = { "contents", NULL };
		if ((r = put_kws(&p->lit, reg)) < 0 ||
		    (n->executable && (r = put_kws(&p->lit, exe)) < 0) ||
		    (r = put_kws(&p->lit, contents)) < 0 || (r = put_u64(&p->lit, n->size)) < 0)
			return r;
		if (p->want_ls &&
		    (r = casfs_buf_printf(&p->ls, "{\"type\":\"regular\",\"size\":%llu%s,\"narOffset\":%llu}",
					  (unsigned long long)n->size,
					  n->executable ? ",\"executable\":true" : "",
					  (unsigned long long)nar_pos(p))) < 0)
			return r;
		if ((r = add_file(p, n)) < 0)
			return r;
		if (n->size % 8 && (r = casfs_buf_append(&p->lit, zeros, 8 - n->size % 8)) < 0)
			return r;
		break;
	}
	case CASFS_NODE_SYMLINK: {
		static const char *const sym[] = { "symlink", "target", NULL };
		if ((r = put_kws(&p->lit, sym)) < 0 ||
		    (r = put_str(&p->lit, n->target, n->target_len)) < 0)
			return r;
		if (p->want_ls && ((r = casfs_buf_append_str(&p->ls, "{\"type\":\"symlink\",\"target\":")) < 0 ||
				   (r = json_str(&p->ls, n->target, n->target_len)) < 0 ||
				   (r = casfs_buf_append_byte(&p->ls, '}')) < 0))
			return r;
		break;
	}
	case CASFS_NODE_DIRECTORY: {
		static const char *const dir[] = { "directory", NULL };
		if ((r = put_kws(&p->lit, dir)) < 0 || (r = walk_directory(w, n)) < 0)
			return r;
		break;
	}
	default:
		return casfs_error_set(w->err, -EBADMSG, "node of unknown type %d", (int)n->type);
	}
	return put_str(&p->lit, ")", 1);
}

int casfs_nar_plan_new(struct casfs_store *s, const struct casfs_node *root, bool want_listing,
		       struct casfs_nar_plan **ret, struct casfs_error *err)
{
	struct casfs_nar_plan *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	casfs_buf_init(&p->lit);
	casfs_buf_init(&p->ls);
	p->want_ls = want_listing;
	struct walk w = { .s = s, .p = p, .err = err };
	int r = put_str(&p->lit, "nix-archive-1", 13);
	if (r >= 0 && want_listing)
		r = casfs_buf_append_str(&p->ls, "{\"version\":1,\"root\":");
	if (r >= 0)
		r = walk_node(&w, root);
	if (r >= 0 && want_listing)
		r = casfs_buf_append_byte(&p->ls, '}');
	if (r < 0) {
		casfs_nar_plan_free(p);
		return r;
	}
	*ret = p;
	return 0;
}

void casfs_nar_plan_free(struct casfs_nar_plan *p)
{
	if (!p)
		return;
	casfs_buf_release(&p->lit);
	casfs_buf_release(&p->ls);
	free(p->files);
	free(p);
}

uint64_t casfs_nar_plan_size(const struct casfs_nar_plan *p)
{
	return nar_pos(p);
}

const char *casfs_nar_plan_listing(const struct casfs_nar_plan *p, size_t *ret_len)
{
	if (!p->want_ls)
		return NULL;
	*ret_len = p->ls.len;
	return (const char *)p->ls.data;
}

/* ---- cursors ---- */

struct casfs_nar_cursor {
	struct casfs_store *s;
	const struct casfs_nar_plan *p;
	size_t cur;                  /* file index whose blob is open, or SIZE_MAX */
	struct casfs_blob_reader *rd;
	struct casfs_outboard ob;    /* n == 0: the blob is checked whole */
	uint8_t *buf;                /* one verified group (or the whole small blob) */
	size_t buf_cap;
	uint64_t buf_group;          /* group held in buf, or UINT64_MAX */
	size_t buf_len;
};

struct casfs_nar_cursor *casfs_nar_cursor_new(struct casfs_store *s, const struct casfs_nar_plan *p)
{
	struct casfs_nar_cursor *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->s = s;
	c->p = p;
	c->cur = SIZE_MAX;
	c->buf_group = UINT64_MAX;
	return c;
}

static void cursor_close_blob(struct casfs_nar_cursor *c)
{
	casfs_blob_reader_close(c->rd);
	c->rd = NULL;
	casfs_outboard_release(&c->ob);
	memset(&c->ob, 0, sizeof(c->ob));
	c->cur = SIZE_MAX;
	c->buf_group = UINT64_MAX;
}

void casfs_nar_cursor_free(struct casfs_nar_cursor *c)
{
	if (!c)
		return;
	cursor_close_blob(c);
	free(c->buf);
	free(c);
}

static int blob_fail(int r, const uint8_t digest[CASFS_B3_LEN], struct casfs_error *err,
		     const char *what)
{
	char d[CASFS_B3_STR_LEN + 1];
	casfs_b3_format(digest, d);
	if (r == -ENOENT)
		return casfs_error_set(err, r, "blob %s is missing", d);
	return casfs_error_prefix(err, r, "blob %s %s", d, what);
}

static int ensure_buf(struct casfs_nar_cursor *c, size_t n)
{
	if (c->buf_cap >= n)
		return 0;
	uint8_t *b = realloc(c->buf, n);
	if (!b)
		return -ENOMEM;
	c->buf = b, c->buf_cap = n;
	return 0;
}

static int open_file(struct casfs_nar_cursor *c, size_t i, struct casfs_error *err)
{
	const struct plan_file *f = &c->p->files[i];
	cursor_close_blob(c);
	int r = casfs_blob_open_sized(c->s->blobs, f->digest, f->size, &c->rd);
	if (r < 0) {
		c->rd = NULL;
		return blob_fail(r, f->digest, err, "cannot be opened");
	}
	if (c->rd->size != f->size) {
		r = blob_fail(-EBADMSG, f->digest, err, "has the wrong size");
		goto fail;
	}
	if (casfs_outboard_wanted(f->size)) {
		r = casfs_blob_outboard(c->s->blobs, c->rd, &c->ob, NULL, NULL, err);
		if (r < 0) {
			r = blob_fail(r, f->digest, err, "has no usable outboard");
			goto fail;
		}
	}
	c->cur = i;
	return 0;
fail:
	cursor_close_blob(c);
	return r;
}

/* Make group `g` of the current file the verified content of buf. */
static int load_group(struct casfs_nar_cursor *c, uint64_t g, struct casfs_error *err)
{
	const struct plan_file *f = &c->p->files[c->cur];
	uint64_t glen = c->ob.n ? casfs_outboard_group_len(&c->ob) : f->size;
	uint64_t start = g * glen;
	size_t n = (size_t)MIN(glen, f->size - start);
	int r = ensure_buf(c, (size_t)glen);
	if (r < 0)
		return r;
	c->buf_group = UINT64_MAX;
	r = casfs_blob_reader_pread_full(c->rd, c->buf, n, start);
	if (r < 0)
		return blob_fail(r == -EBADMSG ? -EBADMSG : r, f->digest, err,
				 r == -EBADMSG ? "is shorter than its node says" : "cannot be read");
	if (c->ob.n) {
		size_t bad;
		r = casfs_outboard_check(&c->ob, (size_t)g, 1, c->buf, 1, &bad);
		if (r < 0) {
			char d[CASFS_B3_STR_LEN + 1];
			casfs_b3_format(f->digest, d);
			return casfs_error_set(err, r == -EBADMSG ? -EBADMSG : r,
					       "blob %s is corrupt: bytes at offset %llu do not match its digest",
					       d, (unsigned long long)start);
		}
	} else {
		uint8_t d[CASFS_B3_LEN];
		casfs_b3(c->buf, n, d);
		if (memcmp(d, f->digest, CASFS_B3_LEN) != 0) {
			char hex[CASFS_B3_STR_LEN + 1];
			casfs_b3_format(f->digest, hex);
			return casfs_error_set(err, -EBADMSG,
					       "blob %s is corrupt (content does not match digest)", hex);
		}
	}
	c->buf_group = g;
	c->buf_len = n;
	return 0;
}

/* Copy verified bytes of file i at file offset `foff`; returns the count. */
static ssize_t read_file(struct casfs_nar_cursor *c, size_t i, uint64_t foff, uint8_t *out,
			 size_t n, struct casfs_error *err)
{
	int r;
	if (c->cur != i && (r = open_file(c, i, err)) < 0)
		return r;
	uint64_t glen = c->ob.n ? casfs_outboard_group_len(&c->ob) : c->p->files[i].size;
	uint64_t g = foff / glen;
	if (c->buf_group != g && (r = load_group(c, g, err)) < 0)
		return r;
	size_t in = (size_t)(foff - g * glen);
	size_t k = MIN(n, c->buf_len - in);
	memcpy(out, c->buf + in, k);
	return (ssize_t)k;
}

/* The last file starting at or before `off`, or SIZE_MAX. */
static size_t file_at(const struct casfs_nar_plan *p, uint64_t off)
{
	size_t lo = 0, hi = p->n_files;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (p->files[mid].nar_off <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == 0 ? SIZE_MAX : lo - 1;
}

ssize_t casfs_nar_cursor_read(struct casfs_nar_cursor *c, uint64_t off, void *buf, size_t len,
			      struct casfs_error *err)
{
	const struct casfs_nar_plan *p = c->p;
	uint64_t size = casfs_nar_plan_size(p);
	uint8_t *out = buf;
	size_t done = 0;
	while (done < len && off < size) {
		size_t i = file_at(p, off);
		size_t want = len - done;
		if (i != SIZE_MAX && off < p->files[i].nar_off + p->files[i].size) {
			ssize_t k = read_file(c, i, off - p->files[i].nar_off, out + done,
					      (size_t)MIN((uint64_t)want,
							  p->files[i].nar_off + p->files[i].size - off),
					      err);
			if (k < 0)
				return k;
			done += (size_t)k, off += (uint64_t)k;
			continue;
		}
		uint64_t lit_pos, lit_end;
		if (i == SIZE_MAX) {
			lit_pos = off;
		} else {
			const struct plan_file *f = &p->files[i];
			lit_pos = f->lit_before + (off - f->nar_off - f->size);
		}
		size_t next = i == SIZE_MAX ? 0 : i + 1;
		lit_end = next < p->n_files ? p->files[next].lit_before : p->lit.len;
		size_t k = (size_t)MIN((uint64_t)want, lit_end - lit_pos);
		memcpy(out + done, p->lit.data + lit_pos, k);
		done += k, off += k;
	}
	return (ssize_t)done;
}
