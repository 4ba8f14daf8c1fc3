#include "castore-proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../basic/util.h"
#include "castore-proto-internal.h"

/* Field numbers, shared by DirectoryNode/FileNode/SymlinkNode where they
 * coincide. */
enum {
	F_NAME = 1,
	F_DIGEST = 2,  /* DirectoryNode, FileNode */
	F_TARGET = 2,  /* SymlinkNode */
	F_SIZE = 3,    /* DirectoryNode, FileNode */
	F_EXECUTABLE = 4,
};

/* The three lists of a Directory, in field order; the field number equals
 * the node type, as does the Node oneof member number. */
struct list_ref {
	struct casfs_node *const *arr;
	const size_t *n;
	enum casfs_node_type type;
	const char *what;
};

static void directory_lists(const struct casfs_directory *d, struct list_ref out[3])
{
	out[0] = (struct list_ref){ &d->directories, &d->n_directories, CASFS_NODE_DIRECTORY,
				    "directory" };
	out[1] = (struct list_ref){ &d->files, &d->n_files, CASFS_NODE_FILE, "file" };
	out[2] = (struct list_ref){ &d->symlinks, &d->n_symlinks, CASFS_NODE_SYMLINK, "symlink" };
}

char *casfs_proto_memdup0(const void *p, size_t n)
{
	if (n == SIZE_MAX)
		return NULL;
	char *s = malloc(n + 1);
	if (!s)
		return NULL;
	if (n)
		memcpy(s, p, n);
	s[n] = 0;
	return s;
}

void *casfs_proto_grow(void *arr, size_t n, size_t *cap, size_t size)
{
	size_t need, bytes;
	if (__builtin_add_overflow(n, 1, &need) || __builtin_mul_overflow(need, size, &bytes))
		return NULL;
	if (!arr || *cap < need) {
		size_t want, want_bytes;
		if (__builtin_mul_overflow(need, 2, &want) ||
		    __builtin_mul_overflow(want, size, &want_bytes))
			want = need, want_bytes = bytes;
		void *p = realloc(arr, want_bytes);
		if (!p)
			return NULL;
		arr = p;
		*cap = want;
	}
	memset((uint8_t *)arr + n * size, 0, size);
	return arr;
}

/* Names in messages: printable ASCII as is, the rest escaped, long names
 * cut, so one line stays one line. */
#define QUOTE_MAX 64
#define QUOTE_BUF (QUOTE_MAX * 4 + 8)
static const char *quote(char out[QUOTE_BUF], const char *p, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n && i < QUOTE_MAX; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, 5, "\\x%02x", c);
	}
	if (n > QUOTE_MAX) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = 0;
	return out;
}

void casfs_node_release(struct casfs_node *n)
{
	if (!n)
		return;
	free(n->name);
	free(n->target);
	*n = (struct casfs_node){ 0 };
}

static void free_nodes(struct casfs_node *arr, size_t n)
{
	for (size_t i = 0; i < n; i++)
		casfs_node_release(&arr[i]);
	free(arr);
}

void casfs_directory_release(struct casfs_directory *d)
{
	if (!d)
		return;
	free_nodes(d->directories, d->n_directories);
	free_nodes(d->files, d->n_files);
	free_nodes(d->symlinks, d->n_symlinks);
	*d = (struct casfs_directory){ 0 };
}

int casfs_node_copy(const struct casfs_node *src, struct casfs_node *ret)
{
	struct casfs_node n = *src;
	n.name = NULL;
	n.target = NULL;
	if (src->name && !(n.name = casfs_proto_memdup0(src->name, src->name_len)))
		return -ENOMEM;
	if (src->target && !(n.target = casfs_proto_memdup0(src->target, src->target_len))) {
		free(n.name);
		return -ENOMEM;
	}
	*ret = n;
	return 0;
}

static int copy_nodes(const struct casfs_node *src, size_t n, struct casfs_node **ret)
{
	if (n == 0) {
		*ret = NULL;
		return 0;
	}
	struct casfs_node *arr = calloc(n, sizeof(*arr));
	if (!arr)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (casfs_node_copy(&src[i], &arr[i]) < 0) {
			free_nodes(arr, i);
			return -ENOMEM;
		}
	}
	*ret = arr;
	return 0;
}

int casfs_directory_copy(const struct casfs_directory *src, struct casfs_directory *ret)
{
	struct casfs_directory d = {
		.n_directories = src->n_directories,
		.n_files = src->n_files,
		.n_symlinks = src->n_symlinks,
	};
	if (copy_nodes(src->directories, src->n_directories, &d.directories) < 0 ||
	    copy_nodes(src->files, src->n_files, &d.files) < 0 ||
	    copy_nodes(src->symlinks, src->n_symlinks, &d.symlinks) < 0) {
		/* the lists not yet copied are NULL: release skips them */
		if (!d.directories)
			d.n_directories = 0;
		if (!d.files)
			d.n_files = 0;
		if (!d.symlinks)
			d.n_symlinks = 0;
		casfs_directory_release(&d);
		return -ENOMEM;
	}
	*ret = d;
	return 0;
}

/* Append a zeroed node of `type` to a list; NULL on OOM. */
static struct casfs_node *append_node(struct casfs_node **arr, size_t *n, size_t *cap,
				      enum casfs_node_type type)
{
	struct casfs_node *p = casfs_proto_grow(*arr, *n, cap, sizeof(**arr));
	if (!p)
		return NULL;
	*arr = p;
	struct casfs_node *e = &p[(*n)++];
	e->type = type;
	return e;
}

static struct casfs_node *add_named(struct casfs_node **arr, size_t *n, size_t *cap,
				    enum casfs_node_type type, const char *name, size_t name_len)
{
	char *copy = casfs_proto_memdup0(name, name_len);
	if (!copy)
		return NULL;
	struct casfs_node *e = append_node(arr, n, cap, type);
	if (!e) {
		free(copy);
		return NULL;
	}
	e->name = copy;
	e->name_len = name_len;
	return e;
}

int casfs_directory_add_directory(struct casfs_directory *d, const char *name, size_t name_len,
				  const uint8_t digest[CASFS_B3_LEN], uint64_t size)
{
	struct casfs_node *e = add_named(&d->directories, &d->n_directories, &d->directories_cap,
					 CASFS_NODE_DIRECTORY, name, name_len);
	if (!e)
		return -ENOMEM;
	memcpy(e->digest, digest, CASFS_B3_LEN);
	e->digest_set = true;
	e->size = size;
	return 0;
}

int casfs_directory_add_file(struct casfs_directory *d, const char *name, size_t name_len,
			     const uint8_t digest[CASFS_B3_LEN], uint64_t size, bool executable)
{
	struct casfs_node *e = add_named(&d->files, &d->n_files, &d->files_cap, CASFS_NODE_FILE, name, name_len);
	if (!e)
		return -ENOMEM;
	memcpy(e->digest, digest, CASFS_B3_LEN);
	e->digest_set = true;
	e->size = size;
	e->executable = executable;
	return 0;
}

int casfs_directory_add_symlink(struct casfs_directory *d, const char *name, size_t name_len,
				const char *target, size_t target_len)
{
	char *t = casfs_proto_memdup0(target, target_len);
	if (!t)
		return -ENOMEM;
	struct casfs_node *e = add_named(&d->symlinks, &d->n_symlinks, &d->symlinks_cap, CASFS_NODE_SYMLINK, name,
					 name_len);
	if (!e) {
		free(t);
		return -ENOMEM;
	}
	e->target = t;
	e->target_len = target_len;
	return 0;
}

int casfs_name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t n = MIN(alen, blen);
	int c = n ? memcmp(a, b, n) : 0;
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static int node_cmp(const void *x, const void *y)
{
	const struct casfs_node *a = x, *b = y;
	return casfs_name_cmp(a->name, a->name_len, b->name, b->name_len);
}

void casfs_directory_sort(struct casfs_directory *d)
{
	if (d->n_directories > 1)
		qsort(d->directories, d->n_directories, sizeof(*d->directories), node_cmp);
	if (d->n_files > 1)
		qsort(d->files, d->n_files, sizeof(*d->files), node_cmp);
	if (d->n_symlinks > 1)
		qsort(d->symlinks, d->n_symlinks, sizeof(*d->symlinks), node_cmp);
}

size_t casfs_directory_n_entries(const struct casfs_directory *d)
{
	return d->n_directories + d->n_files + d->n_symlinks;
}

int casfs_directory_size(const struct casfs_directory *d, uint64_t *ret_size)
{
	uint64_t s;
	if (__builtin_add_overflow((uint64_t)d->n_directories, (uint64_t)d->n_files, &s) ||
	    __builtin_add_overflow(s, (uint64_t)d->n_symlinks, &s))
		return -EOVERFLOW;
	for (size_t i = 0; i < d->n_directories; i++)
		if (__builtin_add_overflow(s, d->directories[i].size, &s))
			return -EOVERFLOW;
	*ret_size = s;
	return 0;
}

int casfs_name_validate(const char *name, size_t len, struct casfs_error *err)
{
	char q[QUOTE_BUF];
	if (len == 0)
		return casfs_error_set(err, -EBADMSG, "empty name");
	if (len > CASFS_NAME_MAX)
		return casfs_error_set(err, -EBADMSG, "name \"%s\" is %zu bytes, more than %d",
				       quote(q, name, len), len, CASFS_NAME_MAX);
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return casfs_error_set(err, -EBADMSG, "invalid name \"%s\"", quote(q, name, len));
	if (memchr(name, '/', len))
		return casfs_error_set(err, -EBADMSG, "name \"%s\" contains '/'",
				       quote(q, name, len));
	if (memchr(name, 0, len))
		return casfs_error_set(err, -EBADMSG, "name \"%s\" contains NUL",
				       quote(q, name, len));
	return 0;
}

int casfs_symlink_target_validate(const char *target, size_t len, struct casfs_error *err)
{
	char q[QUOTE_BUF];
	if (len == 0)
		return casfs_error_set(err, -EBADMSG, "empty symlink target");
	if (len > CASFS_SYMLINK_TARGET_MAX)
		return casfs_error_set(err, -EBADMSG, "symlink target is %zu bytes, more than %d",
				       len, CASFS_SYMLINK_TARGET_MAX);
	if (memchr(target, 0, len))
		return casfs_error_set(err, -EBADMSG, "symlink target \"%s\" contains NUL",
				       quote(q, target, len));
	return 0;
}

int casfs_node_validate(const struct casfs_node *n, struct casfs_error *err)
{
	char q[QUOTE_BUF];
	int k;
	switch (n->type) {
	case CASFS_NODE_DIRECTORY:
	case CASFS_NODE_FILE:
	case CASFS_NODE_SYMLINK:
		break;
	case CASFS_NODE_NONE:
		return casfs_error_set(err, -EBADMSG, "node \"%s\" has no type",
				       quote(q, n->name, n->name_len));
	default:
		return casfs_error_set(err, -EBADMSG, "node \"%s\" has unknown type %d",
				       quote(q, n->name, n->name_len), (int)n->type);
	}
	k = casfs_name_validate(n->name, n->name_len, err);
	if (k < 0)
		return k;
	if (n->type == CASFS_NODE_SYMLINK) {
		k = casfs_symlink_target_validate(n->target, n->target_len, NULL);
		if (k < 0)
			return casfs_error_set(err, k, "symlink \"%s\": invalid target (%s)",
					       quote(q, n->name, n->name_len),
					       n->target_len == 0 ? "empty" :
					       n->target_len > CASFS_SYMLINK_TARGET_MAX ? "too long" :
					       "contains NUL");
	} else if (!n->digest_set) {
		return casfs_error_set(err, -EBADMSG, "%s \"%s\": digest missing or not %d bytes",
				       n->type == CASFS_NODE_FILE ? "file" : "directory",
				       quote(q, n->name, n->name_len), CASFS_B3_LEN);
	}
	return 0;
}

int casfs_directory_validate(const struct casfs_directory *d, struct casfs_error *err)
{
	char q[QUOTE_BUF];
	struct list_ref lists[3];
	directory_lists(d, lists);

	for (int l = 0; l < 3; l++) {
		const struct casfs_node *arr = *lists[l].arr;
		for (size_t i = 0; i < *lists[l].n; i++) {
			const struct casfs_node *n = &arr[i];
			if (n->type != lists[l].type)
				return casfs_error_set(err, -EBADMSG,
						       "entry \"%s\" of type %d in the %s list",
						       quote(q, n->name, n->name_len), (int)n->type,
						       lists[l].what);
			int k = casfs_node_validate(n, err);
			if (k < 0)
				return k;
			if (i == 0)
				continue;
			int c = node_cmp(&arr[i - 1], n);
			if (c == 0)
				return casfs_error_set(err, -EBADMSG, "duplicate name \"%s\"",
						       quote(q, n->name, n->name_len));
			if (c > 0)
				return casfs_error_set(err, -EBADMSG,
						       "%s \"%s\" is not in sorted order",
						       lists[l].what, quote(q, n->name, n->name_len));
		}
	}

	/* Each list is sorted now: a three-way merge finds a name shared by
	 * two lists in one pass. */
	size_t pos[3] = { 0, 0, 0 };
	const struct casfs_node *prev = NULL;
	for (;;) {
		const struct casfs_node *min = NULL;
		int which = -1;
		for (int l = 0; l < 3; l++) {
			if (pos[l] >= *lists[l].n)
				continue;
			const struct casfs_node *c = &(*lists[l].arr)[pos[l]];
			if (!min || node_cmp(c, min) < 0) {
				min = c;
				which = l;
			}
		}
		if (!min)
			break;
		if (prev && node_cmp(prev, min) == 0)
			return casfs_error_set(err, -EBADMSG, "duplicate name \"%s\"",
					       quote(q, min->name, min->name_len));
		prev = min;
		pos[which]++;
	}

	uint64_t size;
	if (casfs_directory_size(d, &size) < 0)
		return casfs_error_set(err, -EBADMSG, "directory size overflows 64 bits");
	return 0;
}

/* --- encoding --- */

/* The body of a DirectoryNode/FileNode/SymlinkNode message; `type` picks
 * the schema (the list or oneof member it is written as). */
static size_t node_body_size(const struct casfs_node *n, enum casfs_node_type type)
{
	size_t s = casfs_wire_bytes_opt_size(F_NAME, n->name_len);
	switch (type) {
	case CASFS_NODE_DIRECTORY:
	case CASFS_NODE_FILE:
		if (n->digest_set)
			s += casfs_wire_bytes_size(F_DIGEST, CASFS_B3_LEN);
		s += casfs_wire_uint64_opt_size(F_SIZE, n->size);
		if (type == CASFS_NODE_FILE)
			s += casfs_wire_uint64_opt_size(F_EXECUTABLE, n->executable);
		break;
	case CASFS_NODE_SYMLINK:
		s += casfs_wire_bytes_opt_size(F_TARGET, n->target_len);
		break;
	default:
		break;
	}
	return s;
}

static int node_body_put(struct casfs_buf *b, const struct casfs_node *n,
			 enum casfs_node_type type)
{
	int k = casfs_wire_put_bytes_opt(b, F_NAME, n->name, n->name_len);
	switch (type) {
	case CASFS_NODE_DIRECTORY:
	case CASFS_NODE_FILE:
		if (k >= 0 && n->digest_set)
			k = casfs_wire_put_bytes(b, F_DIGEST, n->digest, CASFS_B3_LEN);
		if (k >= 0)
			k = casfs_wire_put_uint64_opt(b, F_SIZE, n->size);
		if (k >= 0 && type == CASFS_NODE_FILE)
			k = casfs_wire_put_uint64_opt(b, F_EXECUTABLE, n->executable);
		break;
	case CASFS_NODE_SYMLINK:
		if (k >= 0)
			k = casfs_wire_put_bytes_opt(b, F_TARGET, n->target, n->target_len);
		break;
	default:
		break;
	}
	return k;
}

/* tag, length, body: a node as an element of `field`. */
static int node_put_as(struct casfs_buf *b, uint32_t field, const struct casfs_node *n,
		       enum casfs_node_type type)
{
	int k = casfs_wire_put_tag(b, field, CASFS_WIRE_LEN);
	if (k >= 0)
		k = casfs_wire_put_varint(b, node_body_size(n, type));
	if (k >= 0)
		k = node_body_put(b, n, type);
	return k;
}

int casfs_directory_encode(const struct casfs_directory *d, struct casfs_buf *out)
{
	struct list_ref lists[3];
	directory_lists(d, lists);
	size_t start = out->len;
	for (int l = 0; l < 3; l++) {
		for (size_t i = 0; i < *lists[l].n; i++) {
			int k = node_put_as(out, (uint32_t)lists[l].type, &(*lists[l].arr)[i],
					    lists[l].type);
			if (k < 0) {
				out->len = start; /* append nothing on failure */
				return k;
			}
		}
	}
	return 0;
}

int casfs_directory_digest(const struct casfs_directory *d, uint8_t ret[CASFS_B3_LEN])
{
	struct casfs_buf b = CASFS_BUF_INIT;
	int k = casfs_directory_encode(d, &b);
	if (k >= 0)
		casfs_b3(b.data, b.len, ret);
	casfs_buf_release(&b);
	return k;
}

static bool node_type_known(enum casfs_node_type t)
{
	return t == CASFS_NODE_DIRECTORY || t == CASFS_NODE_FILE || t == CASFS_NODE_SYMLINK;
}

size_t casfs_node_wire_size(const struct casfs_node *n)
{
	if (!node_type_known(n->type))
		return 0;
	return casfs_wire_bytes_size((uint32_t)n->type, node_body_size(n, n->type));
}

int casfs_node_encode(const struct casfs_node *n, struct casfs_buf *out)
{
	if (!node_type_known(n->type))
		return 0;
	size_t start = out->len;
	int k = node_put_as(out, (uint32_t)n->type, n, n->type);
	if (k < 0)
		out->len = start;
	return k;
}

/* --- decoding --- */

static int replace_bytes(char **dst, size_t *dst_len, const struct casfs_wire_field *f)
{
	char *s = casfs_proto_memdup0(f->data, f->len);
	if (!s)
		return -ENOMEM;
	free(*dst);
	*dst = s;
	*dst_len = f->len;
	return 0;
}

/* Merge a DirectoryNode/FileNode/SymlinkNode body into n (of `type`).
 * Scalars: the last occurrence wins; unknown fields are skipped. */
static int node_body_merge(struct casfs_wire_reader *r, struct casfs_node *n,
			   enum casfs_node_type type, struct casfs_error *err)
{
	static const char *const names[] = { "", "DirectoryNode", "FileNode", "SymlinkNode" };
	struct casfs_wire_field f;
	int k;
	while ((k = casfs_wire_next(r, &f, err)) > 0) {
		bool want_len = f.number == F_NAME || f.number == F_DIGEST;
		bool known = f.number == F_NAME || f.number == F_DIGEST ||
			     (type != CASFS_NODE_SYMLINK && f.number == F_SIZE) ||
			     (type == CASFS_NODE_FILE && f.number == F_EXECUTABLE);
		if (!known)
			continue;
		if (f.type != (want_len ? CASFS_WIRE_LEN : CASFS_WIRE_VARINT))
			return casfs_wire_bad_type(&f, names[type], err);
		if (f.number == F_NAME) {
			k = replace_bytes(&n->name, &n->name_len, &f);
		} else if (f.number == F_DIGEST && type == CASFS_NODE_SYMLINK) {
			k = replace_bytes(&n->target, &n->target_len, &f);
		} else if (f.number == F_DIGEST) {
			/* A wrong length is kept as "no digest": the model
			 * holds 32 bytes only, and validation reports it. */
			n->digest_set = f.len == CASFS_B3_LEN;
			if (n->digest_set)
				memcpy(n->digest, f.data, CASFS_B3_LEN);
			else
				memset(n->digest, 0, CASFS_B3_LEN);
		} else if (f.number == F_SIZE) {
			n->size = f.varint;
		} else {
			n->executable = f.varint != 0;
		}
		if (k < 0)
			return k == -ENOMEM ? casfs_error_set(err, k, "out of memory") : k;
	}
	return k;
}

int casfs_node_merge_wire(struct casfs_wire_reader *r, struct casfs_node *n,
			  struct casfs_error *err)
{
	struct casfs_wire_field f;
	int k;
	while ((k = casfs_wire_next(r, &f, err)) > 0) {
		if (f.number < CASFS_NODE_DIRECTORY || f.number > CASFS_NODE_SYMLINK)
			continue;
		if (f.type != CASFS_WIRE_LEN)
			return casfs_wire_bad_type(&f, "Node", err);
		enum casfs_node_type t = (enum casfs_node_type)f.number;
		if (n->type != t) {
			casfs_node_release(n);
			n->type = t;
		}
		struct casfs_wire_reader sub;
		casfs_wire_reader_sub(&sub, r, &f);
		k = node_body_merge(&sub, n, t, err);
		if (k < 0)
			return k;
	}
	return k;
}

int casfs_node_decode(const uint8_t *p, size_t len, struct casfs_node *ret,
		      struct casfs_error *err)
{
	struct casfs_wire_reader r;
	struct casfs_node n = { 0 };
	casfs_wire_reader_init(&r, p, len);
	int k = casfs_node_merge_wire(&r, &n, err);
	if (k < 0) {
		casfs_node_release(&n);
		return k;
	}
	*ret = n;
	return 0;
}

int casfs_directory_decode(const uint8_t *p, size_t len, struct casfs_directory *ret,
			   struct casfs_error *err)
{
	struct casfs_directory d = { 0 };
	struct casfs_wire_reader r;
	struct casfs_wire_field f;
	int k;
	casfs_wire_reader_init(&r, p, len);
	while ((k = casfs_wire_next(&r, &f, err)) > 0) {
		struct casfs_node **arr;
		size_t *n, *cap;
		switch (f.number) {
		case CASFS_NODE_DIRECTORY:
			arr = &d.directories, n = &d.n_directories, cap = &d.directories_cap;
			break;
		case CASFS_NODE_FILE:
			arr = &d.files, n = &d.n_files, cap = &d.files_cap;
			break;
		case CASFS_NODE_SYMLINK:
			arr = &d.symlinks, n = &d.n_symlinks, cap = &d.symlinks_cap;
			break;
		default:
			continue;
		}
		if (f.type != CASFS_WIRE_LEN) {
			k = casfs_wire_bad_type(&f, "Directory", err);
			break;
		}
		enum casfs_node_type t = (enum casfs_node_type)f.number;
		struct casfs_node *e = append_node(arr, n, cap, t);
		if (!e) {
			k = casfs_error_set(err, -ENOMEM, "out of memory");
			break;
		}
		struct casfs_wire_reader sub;
		casfs_wire_reader_sub(&sub, &r, &f);
		k = node_body_merge(&sub, e, t, err);
		if (k < 0)
			break;
	}
	if (k < 0) {
		casfs_directory_release(&d);
		return k;
	}
	*ret = d;
	return 0;
}
