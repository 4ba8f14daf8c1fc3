/* The NAR writer.  Its state says what the grammar (nar-writer.h) allows
 * next; `depth` is the depth of the node being written, and levels[d]
 * remembers the last entry name of the open directory at depth d, for the
 * order check.
 *
 *   W_INIT -begin-> W_NODE
 *   W_NODE -file_begin-> W_FILE -file_end-> node done
 *   W_NODE -symlink-> node done
 *   W_NODE -directory_begin-> W_DIR -entry_begin-> W_NODE (depth + 1)
 *                             W_DIR -directory_end-> node done
 *   node done: depth 0 -> W_ROOT_DONE -finish-> W_FINISHED
 *              else depth - 1, W_ENTRY_DONE -entry_end-> W_DIR */
#include "nar-writer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../basic/util.h"
#include "nar-reader.h"

#define NAME_MAX_LEN 255
#define TARGET_MAX_LEN 4095

enum {
	W_INIT,
	W_NODE,
	W_FILE,
	W_DIR,
	W_ENTRY_DONE,
	W_ROOT_DONE,
	W_FINISHED,
};

struct casfs_nar_writer_level {
	bool has_name;
	uint16_t name_len;
	char name[NAME_MAX_LEN];
};

static const uint8_t zeros[8];

/* Bytes are hashed as they leave, in the buffer's large pieces rather
 * than token by token. */
static int flush(struct casfs_nar_writer *w)
{
	if (w->buf_len == 0)
		return 0;
	int r = w->write(w->userdata, w->buf, w->buf_len);
	if (r < 0)
		return r;
	if (w->want_sha256)
		casfs_sha256_update(&w->sha, w->buf, w->buf_len);
	w->buf_len = 0;
	return 0;
}

/* Bytes too large for the buffer, after it was flushed. */
static int write_direct(struct casfs_nar_writer *w, const void *p, size_t n)
{
	if (w->want_sha256)
		casfs_sha256_update(&w->sha, p, n);
	return w->write(w->userdata, p, n);
}

static int emit(struct casfs_nar_writer *w, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	w->size += n;
	if (n > w->buf_cap - w->buf_len) {
		int r = flush(w);
		if (r < 0)
			return r;
		if (n >= w->buf_cap)
			return write_direct(w, p, n);
	}
	memcpy(w->buf + w->buf_len, p, n);
	w->buf_len += n;
	return 0;
}

static int emit_u64(struct casfs_nar_writer *w, uint64_t v)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	return emit(w, b, 8);
}

static int emit_str(struct casfs_nar_writer *w, const void *p, size_t n)
{
	int r = emit_u64(w, n);
	if (r >= 0)
		r = emit(w, p, n);
	if (r >= 0)
		r = emit(w, zeros, (8 - (n & 7)) & 7);
	return r;
}

/* Emit keywords given as a NULL-terminated list. */
static int emit_kws(struct casfs_nar_writer *w, const char *const *kws)
{
	for (; *kws; kws++) {
		int r = emit_str(w, *kws, strlen(*kws));
		if (r < 0)
			return r;
	}
	return 0;
}
#define EMIT_KWS(w, ...) emit_kws(w, (const char *const[]){ __VA_ARGS__, NULL })

/* Every public call funnels its result through here: errors stick. */
static int done(struct casfs_nar_writer *w, int r)
{
	if (r < 0 && w->error == 0)
		w->error = r;
	return r;
}

/* Check that the writer is alive and in `state`. */
static int enter(struct casfs_nar_writer *w, int state)
{
	if (w->error < 0)
		return w->error;
	return done(w, w->state == state ? 0 : -EINVAL);
}

static void node_done(struct casfs_nar_writer *w)
{
	if (w->depth == 0) {
		w->state = W_ROOT_DONE;
	} else {
		w->depth--;
		w->state = W_ENTRY_DONE;
	}
}

int casfs_nar_writer_init(struct casfs_nar_writer *w, casfs_nar_sink_fn write, void *userdata,
			  size_t buf_size, bool want_sha256)
{
	*w = (struct casfs_nar_writer){
		.write = write,
		.userdata = userdata,
		.buf_cap = buf_size ? buf_size : CASFS_NAR_WRITER_BUF_SIZE,
		.want_sha256 = want_sha256,
		.state = W_INIT,
	};
	w->buf = malloc(w->buf_cap);
	if (!w->buf)
		return -ENOMEM;
	if (want_sha256) {
		int r = casfs_sha256_init(&w->sha);
		if (r < 0) {
			free(TAKE_PTR(w->buf));
			return r;
		}
	}
	return 0;
}

void casfs_nar_writer_release(struct casfs_nar_writer *w)
{
	if (w->want_sha256)
		casfs_sha256_release(&w->sha);
	free(TAKE_PTR(w->buf));
	free(TAKE_PTR(w->levels));
	w->levels_cap = 0;
}

int casfs_nar_writer_begin(struct casfs_nar_writer *w)
{
	int r = enter(w, W_INIT);
	if (r < 0)
		return r;
	w->state = W_NODE;
	return done(w, EMIT_KWS(w, "nix-archive-1"));
}

int casfs_nar_writer_file_begin(struct casfs_nar_writer *w, bool executable, uint64_t size)
{
	int r = enter(w, W_NODE);
	if (r < 0)
		return r;
	if (size > (uint64_t)INT64_MAX) /* the reader's bound */
		return done(w, -EINVAL);
	r = executable ? EMIT_KWS(w, "(", "type", "regular", "executable", "", "contents")
		       : EMIT_KWS(w, "(", "type", "regular", "contents");
	if (r >= 0)
		r = emit_u64(w, size);
	w->file_left = size;
	w->state = W_FILE;
	return done(w, r);
}

int casfs_nar_writer_file_data(struct casfs_nar_writer *w, const void *p, size_t n)
{
	int r = enter(w, W_FILE);
	if (r < 0)
		return r;
	if (n > w->file_left)
		return done(w, -EINVAL);
	w->file_left -= n;
	return done(w, emit(w, p, n));
}

int casfs_nar_writer_file_end(struct casfs_nar_writer *w)
{
	int r = enter(w, W_FILE);
	if (r < 0)
		return r;
	if (w->file_left != 0)
		return done(w, -EINVAL);
	/* The size was emitted, so its padding follows from it: recompute
	 * it from the bytes written so far (8-aligned before the contents). */
	r = emit(w, zeros, (8 - (w->size & 7)) & 7);
	if (r >= 0)
		r = EMIT_KWS(w, ")");
	node_done(w);
	return done(w, r);
}

int casfs_nar_writer_symlink(struct casfs_nar_writer *w, const char *target, size_t len)
{
	int r = enter(w, W_NODE);
	if (r < 0)
		return r;
	if (len == 0 || len > TARGET_MAX_LEN || memchr(target, '\0', len))
		return done(w, -EINVAL);
	r = EMIT_KWS(w, "(", "type", "symlink", "target");
	if (r >= 0)
		r = emit_str(w, target, len);
	if (r >= 0)
		r = EMIT_KWS(w, ")");
	node_done(w);
	return done(w, r);
}

int casfs_nar_writer_directory_begin(struct casfs_nar_writer *w)
{
	int r = enter(w, W_NODE);
	if (r < 0)
		return r;
	if (w->depth >= w->levels_cap) {
		size_t cap = MIN(MAX(w->levels_cap * 2, (size_t)4), (size_t)CASFS_NAR_MAX_DEPTH + 1);
		struct casfs_nar_writer_level *l = realloc(w->levels, cap * sizeof(*l));
		if (!l)
			return done(w, -ENOMEM);
		w->levels = l;
		w->levels_cap = cap;
	}
	w->levels[w->depth].has_name = false;
	w->state = W_DIR;
	return done(w, EMIT_KWS(w, "(", "type", "directory"));
}

static bool name_valid(const char *name, size_t len)
{
	if (len == 0 || len > NAME_MAX_LEN)
		return false;
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return false;
	return !memchr(name, '/', len) && !memchr(name, '\0', len);
}

int casfs_nar_writer_entry_begin(struct casfs_nar_writer *w, const char *name, size_t len)
{
	int r = enter(w, W_DIR);
	if (r < 0)
		return r;
	if (!name_valid(name, len) || w->depth >= CASFS_NAR_MAX_DEPTH)
		return done(w, -EINVAL);
	struct casfs_nar_writer_level *l = &w->levels[w->depth];
	if (l->has_name) {
		int c = memcmp(l->name, name, MIN((size_t)l->name_len, len));
		if (c > 0 || (c == 0 && l->name_len >= len))
			return done(w, -EINVAL);
	}
	memcpy(l->name, name, len);
	l->name_len = (uint16_t)len;
	l->has_name = true;
	r = EMIT_KWS(w, "entry", "(", "name");
	if (r >= 0)
		r = emit_str(w, name, len);
	if (r >= 0)
		r = EMIT_KWS(w, "node");
	w->depth++;
	w->state = W_NODE;
	return done(w, r);
}

int casfs_nar_writer_entry_end(struct casfs_nar_writer *w)
{
	int r = enter(w, W_ENTRY_DONE);
	if (r < 0)
		return r;
	w->state = W_DIR;
	return done(w, EMIT_KWS(w, ")"));
}

int casfs_nar_writer_directory_end(struct casfs_nar_writer *w)
{
	int r = enter(w, W_DIR);
	if (r < 0)
		return r;
	node_done(w);
	return done(w, EMIT_KWS(w, ")"));
}

int casfs_nar_writer_finish(struct casfs_nar_writer *w)
{
	int r = enter(w, W_ROOT_DONE);
	if (r < 0)
		return r;
	r = flush(w);
	if (r < 0)
		return done(w, r);
	if (w->want_sha256)
		casfs_sha256_final(&w->sha, w->sha256);
	w->state = W_FINISHED;
	return 0;
}

int casfs_nar_writer_event(struct casfs_nar_writer *w, const struct casfs_nar_event *ev)
{
	int r = 0;
	if (w->state == W_INIT && w->error == 0 && ev->type != CASFS_NAR_NEED_DATA)
		r = casfs_nar_writer_begin(w);
	if (r < 0)
		return r;
	bool opens = ev->type == CASFS_NAR_FILE_BEGIN || ev->type == CASFS_NAR_SYMLINK ||
		     ev->type == CASFS_NAR_DIRECTORY_BEGIN;
	bool closes = ev->type == CASFS_NAR_FILE_END || ev->type == CASFS_NAR_SYMLINK ||
		      ev->type == CASFS_NAR_DIRECTORY_END;
	if (opens && ev->depth > 0)
		r = casfs_nar_writer_entry_begin(w, ev->name, ev->name_len);
	if (r < 0)
		return r;
	switch (ev->type) {
	case CASFS_NAR_NEED_DATA:
		break;
	case CASFS_NAR_FILE_BEGIN:
		r = casfs_nar_writer_file_begin(w, ev->executable, ev->size);
		break;
	case CASFS_NAR_FILE_DATA:
		r = casfs_nar_writer_file_data(w, ev->data, ev->len);
		break;
	case CASFS_NAR_FILE_END:
		r = casfs_nar_writer_file_end(w);
		break;
	case CASFS_NAR_SYMLINK:
		r = casfs_nar_writer_symlink(w, ev->target, ev->target_len);
		break;
	case CASFS_NAR_DIRECTORY_BEGIN:
		r = casfs_nar_writer_directory_begin(w);
		break;
	case CASFS_NAR_DIRECTORY_END:
		r = casfs_nar_writer_directory_end(w);
		break;
	case CASFS_NAR_DONE:
		r = casfs_nar_writer_finish(w);
		break;
	default:
		r = done(w, -EINVAL);
	}
	if (r >= 0 && closes && ev->depth > 0)
		r = casfs_nar_writer_entry_end(w);
	return r;
}

void casfs_nar_writer_result(const struct casfs_nar_writer *w, uint8_t ret_sha256[CASFS_SHA256_LEN],
			     uint64_t *ret_size)
{
	memcpy(ret_sha256, w->sha256, CASFS_SHA256_LEN);
	*ret_size = w->size;
}
