/* The NAR reader: one state per token the grammar expects next.
 *
 *   MAGIC -"nix-archive-1"-> NODE_OPEN -"("-> TYPE_KW -"type"-> TYPE
 *
 *   TYPE -"regular"-> REG_ATTR -"executable"-> REG_EXEC -""-> REG_CONTENTS_KW
 *                     REG_ATTR -"contents"-+              -"contents"-+
 *                                          v                          v
 *        CONTENTS_LEN -u64-> [FILE_BEGIN] CONTENTS_DATA -[FILE_DATA]*->
 *        CONTENTS_PAD -> [FILE_END] NODE_CLOSE
 *   TYPE -"symlink"-> TARGET_KW -"target"-> TARGET -<t>-> [SYMLINK] NODE_CLOSE
 *   TYPE -"directory"-> [DIRECTORY_BEGIN] DIR
 *
 *   DIR -"entry"-> ENTRY_OPEN -"("-> NAME_KW -"name"-> NAME -<n>-> NODE_KW
 *       -"node"-> NODE_OPEN (depth + 1)
 *   DIR -")"-> [DIRECTORY_END] node done     NODE_CLOSE -")"-> node done
 *
 *   node done: depth 0 -> [DONE] END;  else ENTRY_CLOSE -")"-> DIR (depth - 1)
 *   END: any further byte is trailing garbage.   FAILED: dead.
 *
 * Strings are assembled in `str`, bounded by what the state accepts (a
 * keyword, a 255-byte name, a 4095-byte target), so a hostile length is
 * rejected before any byte of it is read.  File contents are never
 * buffered: FILE_DATA points into the caller's buffer.  The only other
 * memory is one 256-byte "last name" slot per open directory, bounded by
 * CASFS_NAR_MAX_DEPTH. */
#include "nar-reader.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../basic/util.h"

#define NAME_MAX_LEN 255
#define TARGET_MAX_LEN 4095
#define KEYWORD_MAX_LEN 13 /* "nix-archive-1", the longest keyword */

enum state {
	ST_MAGIC,
	ST_NODE_OPEN,
	ST_TYPE_KW,
	ST_TYPE,
	ST_REG_ATTR,
	ST_REG_EXEC,
	ST_REG_CONTENTS_KW,
	ST_CONTENTS_LEN,
	ST_CONTENTS_DATA,
	ST_CONTENTS_PAD,
	ST_TARGET_KW,
	ST_TARGET,
	ST_NODE_CLOSE,
	ST_DIR,
	ST_ENTRY_OPEN,
	ST_NAME_KW,
	ST_NAME,
	ST_NODE_KW,
	ST_ENTRY_CLOSE,
	ST_DONE_PENDING, /* root directory closed; DONE not yet returned */
	ST_END,
	ST_FAILED,
};

/* One open directory: the name of its latest entry, for the order check
 * and as the name of the node being read inside it. */
struct level {
	bool has_name;
	uint16_t name_len;
	char name[NAME_MAX_LEN + 1];
};

struct casfs_nar_reader {
	const uint8_t *cur, *end; /* unread part of the fed buffer */
	uint64_t offset;          /* NAR bytes consumed so far */
	enum state state;
	unsigned depth; /* depth of the node being read */

	/* u64 assembly (string lengths, contents size) */
	uint8_t num[8];
	unsigned num_have;
	uint64_t tok_off; /* offset of the current token's length field */

	/* string assembly: payload plus padding */
	bool str_active;
	size_t str_len, str_need, str_have;
	uint8_t str[TARGET_MAX_LEN + 8 + 1];

	bool executable;
	uint64_t file_left;
	unsigned pad_left;

	struct level *levels; /* levels[d]: the open directory at depth d */
	size_t levels_cap;

	struct casfs_sha256_hasher sha;
	uint8_t sha256[CASFS_SHA256_LEN];
	struct casfs_error failure; /* replayed after the reader died */
};

static size_t avail(const struct casfs_nar_reader *r)
{
	return (size_t)(r->end - r->cur);
}

static void consume(struct casfs_nar_reader *r, size_t n)
{
	casfs_sha256_update(&r->sha, r->cur, n);
	r->cur += n;
	r->offset += n;
}

static unsigned padding(uint64_t len)
{
	return (unsigned)((8 - (len & 7)) & 7);
}

static int fail(struct casfs_nar_reader *r, struct casfs_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(struct casfs_nar_reader *r, struct casfs_error *err, int code, const char *fmt, ...)
{
	char msg[sizeof(r->failure.msg) - 8];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(r->failure.msg, sizeof(r->failure.msg), "NAR: %s", msg);
	r->failure.code = code;
	r->state = ST_FAILED;
	return casfs_error_set(err, code, "%s", r->failure.msg);
}

/* Printable rendering of an untrusted string for messages, cut at 40 bytes. */
static const char *quote(const uint8_t *s, size_t n, char out[200])
{
	size_t o = 0;
	out[o++] = '"';
	for (size_t i = 0; i < n && i < 40; i++) {
		if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\')
			out[o++] = (char)s[i];
		else
			o += (size_t)sprintf(out + o, "\\x%02x", s[i]);
	}
	out[o++] = '"';
	if (n > 40) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

/* 1 when the u64 is complete, 0 when more input is needed. */
static int read_u64(struct casfs_nar_reader *r, uint64_t *ret)
{
	if (r->num_have == 0)
		r->tok_off = r->offset;
	size_t n = MIN(8u - r->num_have, avail(r));
	if (n == 0) /* nothing fed yet: cur may be NULL */
		return 0;
	memcpy(r->num + r->num_have, r->cur, n);
	consume(r, n);
	r->num_have += (unsigned)n;
	if (r->num_have < 8)
		return 0;
	r->num_have = 0;
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | r->num[i];
	*ret = v;
	return 1;
}

/* Assemble one string of at most `max` bytes into r->str (NUL-terminated).
 * 1 when complete, 0 when more input is needed, < 0 on error.  `what`
 * names the string for the too-long message. */
static int read_string(struct casfs_nar_reader *r, size_t max, const char *what,
		       struct casfs_error *err)
{
	if (!r->str_active) {
		uint64_t len;
		if (read_u64(r, &len) == 0)
			return 0;
		if (len > max)
			return fail(r, err, -EBADMSG, "%s of %" PRIu64 " bytes at byte %" PRIu64
				    " (at most %zu allowed)", what, len, r->tok_off, max);
		r->str_active = true;
		r->str_len = (size_t)len;
		r->str_need = (size_t)len + padding(len);
		r->str_have = 0;
	}
	size_t n = MIN(r->str_need - r->str_have, avail(r));
	if (n > 0) {
		memcpy(r->str + r->str_have, r->cur, n);
		consume(r, n);
		r->str_have += n;
	}
	if (r->str_have < r->str_need)
		return 0;
	r->str_active = false;
	for (size_t i = r->str_len; i < r->str_need; i++)
		if (r->str[i] != 0)
			return fail(r, err, -EBADMSG, "non-zero padding at byte %" PRIu64,
				    r->tok_off + 8 + i);
	r->str[r->str_len] = '\0';
	return 1;
}

static int read_keyword(struct casfs_nar_reader *r, struct casfs_error *err)
{
	return read_string(r, KEYWORD_MAX_LEN, "unknown token", err);
}

static bool is(const struct casfs_nar_reader *r, const char *kw)
{
	size_t n = strlen(kw);
	return r->str_len == n && memcmp(r->str, kw, n) == 0;
}

static int unexpected(struct casfs_nar_reader *r, struct casfs_error *err, const char *expected)
{
	char q[200];
	return fail(r, err, -EBADMSG, "expected %s at byte %" PRIu64 ", got %s", expected,
		    r->tok_off, quote(r->str, r->str_len, q));
}

/* Entry names and symlink targets: the castore rules (DESIGN.md 1). */
static int check_name(struct casfs_nar_reader *r, struct casfs_error *err)
{
	const uint8_t *s = r->str;
	size_t n = r->str_len;
	char q[200];
	if (n == 0)
		return fail(r, err, -EBADMSG, "empty entry name at byte %" PRIu64, r->tok_off);
	if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return fail(r, err, -EBADMSG, "entry name %s at byte %" PRIu64, quote(s, n, q),
			    r->tok_off);
	if (memchr(s, '/', n) || memchr(s, '\0', n))
		return fail(r, err, -EBADMSG, "entry name %s at byte %" PRIu64
			    " contains '/' or NUL", quote(s, n, q), r->tok_off);
	return 0;
}

static int check_target(struct casfs_nar_reader *r, struct casfs_error *err)
{
	char q[200];
	if (r->str_len == 0)
		return fail(r, err, -EBADMSG, "empty symlink target at byte %" PRIu64, r->tok_off);
	if (memchr(r->str, '\0', r->str_len))
		return fail(r, err, -EBADMSG, "symlink target %s at byte %" PRIu64 " contains NUL",
			    quote(r->str, r->str_len, q), r->tok_off);
	return 0;
}

/* Record the new entry name of the directory at r->depth, which must sort
 * strictly after the previous one (bytewise, shorter prefix first). */
static int push_name(struct casfs_nar_reader *r, struct casfs_error *err)
{
	struct level *l = &r->levels[r->depth];
	char q1[200], q2[200];
	if (l->has_name) {
		int c = memcmp(l->name, r->str, MIN((size_t)l->name_len, r->str_len));
		if (c == 0)
			c = (l->name_len > r->str_len) - (l->name_len < r->str_len);
		if (c >= 0)
			return fail(r, err, -EBADMSG, "%s entry %s at byte %" PRIu64 " (after %s)",
				    c == 0 ? "duplicate" : "unsorted", quote(r->str, r->str_len, q1),
				    r->tok_off, quote((const uint8_t *)l->name, l->name_len, q2));
	}
	memcpy(l->name, r->str, r->str_len + 1);
	l->name_len = (uint16_t)r->str_len;
	l->has_name = true;
	return 0;
}

static int open_directory(struct casfs_nar_reader *r, struct casfs_error *err)
{
	if (r->depth >= r->levels_cap) {
		size_t cap = MAX(r->levels_cap * 2, (size_t)4);
		cap = MIN(cap, (size_t)CASFS_NAR_MAX_DEPTH + 1);
		struct level *l = realloc(r->levels, cap * sizeof(*l));
		if (!l)
			return fail(r, err, -ENOMEM, "out of memory at depth %u", r->depth);
		r->levels = l;
		r->levels_cap = cap;
	}
	r->levels[r->depth].has_name = false;
	return 0;
}

static void node_event(const struct casfs_nar_reader *r, struct casfs_nar_event *ev,
		       enum casfs_nar_event_type type)
{
	*ev = (struct casfs_nar_event){ .type = type, .depth = r->depth };
	if (r->depth > 0) {
		const struct level *l = &r->levels[r->depth - 1];
		ev->name = l->name;
		ev->name_len = l->name_len;
	}
}

/* The node at r->depth is complete (its ")" consumed).  1 with DONE in
 * *ev for the root, else 0 (ev untouched, may be NULL) and on to the
 * parent's entry ")". */
static int node_done(struct casfs_nar_reader *r, struct casfs_nar_event *ev)
{
	if (r->depth == 0) {
		casfs_sha256_final(&r->sha, r->sha256);
		r->state = ST_END;
		*ev = (struct casfs_nar_event){ .type = CASFS_NAR_DONE };
		return 1;
	}
	r->depth--;
	r->state = ST_ENTRY_CLOSE;
	return 0;
}

/* Expect keyword `kw`, then move to `next`.  1 done, 0 need data, < 0 error. */
static int expect(struct casfs_nar_reader *r, const char *kw, const char *desc, enum state next,
		  struct casfs_error *err)
{
	int k = read_keyword(r, err);
	if (k <= 0)
		return k;
	if (!is(r, kw))
		return unexpected(r, err, desc);
	r->state = next;
	return 1;
}

/* Advance by at most one event: 1 with *ev set, 0 to keep going, < 0. */
static int advance(struct casfs_nar_reader *r, struct casfs_nar_event *ev, struct casfs_error *err)
{
	uint64_t size;
	int k;

	switch (r->state) {
	case ST_MAGIC:
		k = read_string(r, KEYWORD_MAX_LEN, "not a NAR: magic", err);
		if (k > 0 && !is(r, "nix-archive-1"))
			return fail(r, err, -EBADMSG, "not a NAR: bad magic at byte 0");
		if (k > 0)
			r->state = ST_NODE_OPEN;
		break;
	case ST_NODE_OPEN:
		k = expect(r, "(", "\"(\"", ST_TYPE_KW, err);
		break;
	case ST_TYPE_KW:
		k = expect(r, "type", "\"type\"", ST_TYPE, err);
		break;
	case ST_TYPE:
		k = read_keyword(r, err);
		if (k <= 0)
			break;
		if (is(r, "regular")) {
			r->executable = false;
			r->state = ST_REG_ATTR;
		} else if (is(r, "symlink")) {
			r->state = ST_TARGET_KW;
		} else if (is(r, "directory")) {
			k = open_directory(r, err);
			if (k < 0)
				return k;
			node_event(r, ev, CASFS_NAR_DIRECTORY_BEGIN);
			r->state = ST_DIR;
			return 1;
		} else {
			return unexpected(r, err, "\"regular\", \"symlink\" or \"directory\"");
		}
		break;
	case ST_REG_ATTR:
		k = read_keyword(r, err);
		if (k <= 0)
			break;
		if (is(r, "executable"))
			r->state = ST_REG_EXEC;
		else if (is(r, "contents"))
			r->state = ST_CONTENTS_LEN;
		else
			return unexpected(r, err, "\"executable\" or \"contents\"");
		break;
	case ST_REG_EXEC:
		k = expect(r, "", "\"\" after \"executable\"", ST_REG_CONTENTS_KW, err);
		r->executable = k > 0;
		break;
	case ST_REG_CONTENTS_KW:
		k = expect(r, "contents", "\"contents\"", ST_CONTENTS_LEN, err);
		break;
	case ST_CONTENTS_LEN:
		k = read_u64(r, &size);
		if (k <= 0)
			break;
		/* No file can be larger than off_t allows; also keeps every
		 * later offset computation far from wrapping. */
		if (size > (uint64_t)INT64_MAX)
			return fail(r, err, -EBADMSG, "file size %" PRIu64 " at byte %" PRIu64
				    " is too large", size, r->tok_off);
		r->file_left = size;
		r->pad_left = padding(size);
		node_event(r, ev, CASFS_NAR_FILE_BEGIN);
		ev->executable = r->executable;
		ev->size = size;
		r->state = ST_CONTENTS_DATA;
		return 1;
	case ST_CONTENTS_DATA:
		if (r->file_left == 0) {
			r->state = ST_CONTENTS_PAD;
			return 0;
		}
		if (avail(r) == 0) {
			k = 0;
			break;
		}
		node_event(r, ev, CASFS_NAR_FILE_DATA);
		ev->data = r->cur;
		ev->len = (size_t)MIN(r->file_left, (uint64_t)avail(r));
		consume(r, ev->len);
		r->file_left -= ev->len;
		return 1;
	case ST_CONTENTS_PAD:
		while (r->pad_left > 0 && avail(r) > 0) {
			if (*r->cur != 0)
				return fail(r, err, -EBADMSG, "non-zero padding at byte %" PRIu64,
					    r->offset);
			consume(r, 1);
			r->pad_left--;
		}
		if (r->pad_left > 0) {
			k = 0;
			break;
		}
		node_event(r, ev, CASFS_NAR_FILE_END);
		r->state = ST_NODE_CLOSE;
		return 1;
	case ST_TARGET_KW:
		k = expect(r, "target", "\"target\"", ST_TARGET, err);
		break;
	case ST_TARGET:
		k = read_string(r, TARGET_MAX_LEN, "symlink target", err);
		if (k <= 0)
			break;
		k = check_target(r, err);
		if (k < 0)
			return k;
		node_event(r, ev, CASFS_NAR_SYMLINK);
		ev->target = (const char *)r->str;
		ev->target_len = r->str_len;
		r->state = ST_NODE_CLOSE;
		return 1;
	case ST_NODE_CLOSE:
		k = expect(r, ")", "\")\"", ST_NODE_CLOSE, err);
		if (k > 0)
			return node_done(r, ev);
		break;
	case ST_DIR:
		k = read_keyword(r, err);
		if (k <= 0)
			break;
		if (is(r, "entry")) {
			if (r->depth >= CASFS_NAR_MAX_DEPTH)
				return fail(r, err, -EBADMSG, "nesting deeper than %d at byte %" PRIu64,
					    CASFS_NAR_MAX_DEPTH, r->tok_off);
			r->state = ST_ENTRY_OPEN;
		} else if (is(r, ")")) {
			node_event(r, ev, CASFS_NAR_DIRECTORY_END);
			/* The END event is due now; DONE (for the root) on the
			 * next step. */
			if (r->depth == 0)
				r->state = ST_DONE_PENDING;
			else
				node_done(r, NULL);
			return 1;
		} else {
			return unexpected(r, err, "\"entry\" or \")\"");
		}
		break;
	case ST_ENTRY_OPEN:
		k = expect(r, "(", "\"(\"", ST_NAME_KW, err);
		break;
	case ST_NAME_KW:
		k = expect(r, "name", "\"name\"", ST_NAME, err);
		break;
	case ST_NAME:
		k = read_string(r, NAME_MAX_LEN, "entry name", err);
		if (k <= 0)
			break;
		k = check_name(r, err);
		if (k >= 0)
			k = push_name(r, err);
		if (k < 0)
			return k;
		r->state = ST_NODE_KW;
		break;
	case ST_NODE_KW:
		k = expect(r, "node", "\"node\"", ST_NODE_OPEN, err);
		if (k > 0)
			r->depth++;
		break;
	case ST_ENTRY_CLOSE:
		k = expect(r, ")", "\")\"", ST_DIR, err);
		break;
	case ST_DONE_PENDING:
		return node_done(r, ev);
	case ST_END:
		if (avail(r) > 0)
			return fail(r, err, -EBADMSG, "trailing garbage at byte %" PRIu64, r->offset);
		k = 0;
		break;
	default:
		return casfs_error_set(err, r->failure.code, "%s", r->failure.msg);
	}
	if (k < 0)
		return k;
	if (k == 0 && avail(r) == 0) {
		*ev = (struct casfs_nar_event){ .type = CASFS_NAR_NEED_DATA };
		return 1;
	}
	return 0;
}

struct casfs_nar_reader *casfs_nar_reader_new(void)
{
	struct casfs_nar_reader *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	if (casfs_sha256_init(&r->sha) < 0) {
		free(r);
		return NULL;
	}
	r->state = ST_MAGIC;
	return r;
}

void casfs_nar_reader_free(struct casfs_nar_reader *r)
{
	if (!r)
		return;
	casfs_sha256_release(&r->sha);
	free(r->levels);
	free(r);
}

void casfs_nar_reader_feed(struct casfs_nar_reader *r, const uint8_t *p, size_t n)
{
	r->cur = p;
	r->end = p + n;
}

int casfs_nar_reader_step(struct casfs_nar_reader *r, struct casfs_nar_event *ret,
			  struct casfs_error *err)
{
	struct casfs_nar_event ev;
	for (;;) {
		int k = advance(r, &ev, err);
		if (k < 0)
			return k;
		if (k > 0) {
			*ret = ev;
			return 0;
		}
	}
}

int casfs_nar_reader_end(struct casfs_nar_reader *r, struct casfs_error *err)
{
	if (r->state == ST_FAILED)
		return casfs_error_set(err, r->failure.code, "%s", r->failure.msg);
	if (r->state != ST_END)
		return fail(r, err, -EBADMSG, "truncated at byte %" PRIu64, r->offset + avail(r));
	if (avail(r) > 0)
		return fail(r, err, -EBADMSG, "trailing garbage at byte %" PRIu64, r->offset);
	return 0;
}

void casfs_nar_reader_result(struct casfs_nar_reader *r, uint8_t ret_sha256[CASFS_SHA256_LEN],
			     uint64_t *ret_size)
{
	memcpy(ret_sha256, r->sha256, CASFS_SHA256_LEN);
	*ret_size = r->offset;
}
