#include "ingest.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../basic/keyset.h"
#include "../basic/util.h"
#include "../castore/blob-worker.h"

/* Bytes of file content queued for the blob worker at most. */
#define INGEST_MAX_INFLIGHT (32u << 20)

/* A directory being filled: its entries arrive in NAR (= sorted) order. */
struct open_dir {
	struct casfs_directory dir;
	char *name; /* NULL for the root */
	size_t name_len;
};

struct casfs_ingest {
	struct casfs_store *store;

	struct open_dir *stack;
	size_t depth, stack_cap;

	/* Finished distinct directories, leaves first, and their digests. */
	struct casfs_directory *closure;
	size_t n_closure, closure_cap;
	struct casfs_keyset seen;

	/* The root node once complete. */
	bool have_root;
	struct casfs_node root;

	/* The file being streamed. */
	bool in_file;
	char *file_name;
	size_t file_name_len;
	bool file_exec;
	uint64_t file_size, file_seen;
	uint8_t *small;             /* content of a small file, handed to the worker */

	/* Blobs are hashed and stored on this thread; file nodes are added with
	 * a placeholder digest and patched when the worker is drained (before
	 * any directory digest is computed). */
	struct casfs_blob_worker *worker;

	uint64_t n_files, n_bytes;
};

struct casfs_ingest *casfs_ingest_new(struct casfs_store *store)
{
	struct casfs_ingest *in = calloc(1, sizeof(*in));
	if (!in)
		return NULL;
	in->store = store;
	if (casfs_blob_worker_new(store->blobs, INGEST_MAX_INFLIGHT, &in->worker) < 0) {
		free(in);
		return NULL;
	}
	return in;
}

void casfs_ingest_free(struct casfs_ingest *in)
{
	if (!in)
		return;
	casfs_blob_worker_free(in->worker);
	for (size_t i = 0; i < in->depth; i++) {
		casfs_directory_release(&in->stack[i].dir);
		free(in->stack[i].name);
	}
	free(in->stack);
	for (size_t i = 0; i < in->n_closure; i++)
		casfs_directory_release(&in->closure[i]);
	free(in->closure);
	casfs_keyset_release(&in->seen);
	casfs_node_release(&in->root);
	free(in->file_name);
	free(in->small);
	free(in);
}

/* Take ownership of *d (left zeroed) unless an identical one is known. */
static int closure_add(struct casfs_ingest *in, struct casfs_directory *d,
		       const uint8_t digest[CASFS_B3_LEN])
{
	if (casfs_keyset_get(&in->seen, digest, NULL)) {
		casfs_directory_release(d);
		return 0;
	}
	if (in->n_closure == in->closure_cap) {
		size_t cap = in->closure_cap ? in->closure_cap * 2 : 64;
		struct casfs_directory *c = realloc(in->closure, cap * sizeof(*c));
		if (!c)
			return -ENOMEM;
		in->closure = c;
		in->closure_cap = cap;
	}
	int r = casfs_keyset_put(&in->seen, digest, in->n_closure);
	if (r < 0)
		return r;
	in->closure[in->n_closure++] = *d;
	memset(d, 0, sizeof(*d));
	return 0;
}

static int drain(struct casfs_ingest *in, struct casfs_error *err);

static int check_can_add(struct casfs_ingest *in, const char *name, struct casfs_error *err)
{
	if (in->in_file)
		return casfs_error_set(err, -EINVAL, "ingest: node added while a file is open");
	if (in->have_root)
		return casfs_error_set(err, -EINVAL, "ingest: more than one root node");
	if (in->depth == 0 && name)
		return casfs_error_set(err, -EINVAL, "ingest: named node outside any directory");
	if (in->depth > 0 && !name)
		return casfs_error_set(err, -EINVAL, "ingest: unnamed node inside a directory");
	return 0;
}

/* Set the root node from a finished node (takes ownership of *n). */
static void set_root(struct casfs_ingest *in, struct casfs_node *n)
{
	in->root = *n;
	memset(n, 0, sizeof(*n));
	in->have_root = true;
}

int casfs_ingest_directory_begin(struct casfs_ingest *in, const char *name, size_t name_len,
				 struct casfs_error *err)
{
	int r = check_can_add(in, name, err);
	if (r < 0)
		return r;
	if (in->depth == in->stack_cap) {
		size_t cap = in->stack_cap ? in->stack_cap * 2 : 16;
		struct open_dir *s = realloc(in->stack, cap * sizeof(*s));
		if (!s)
			return -ENOMEM;
		in->stack = s;
		in->stack_cap = cap;
	}
	struct open_dir *od = &in->stack[in->depth];
	memset(od, 0, sizeof(*od));
	if (name) {
		od->name = strndup(name, name_len);
		if (!od->name)
			return -ENOMEM;
		od->name_len = name_len;
	}
	in->depth++;
	return 0;
}

int casfs_ingest_directory_end(struct casfs_ingest *in, struct casfs_error *err)
{
	if (in->depth == 0 || in->in_file)
		return casfs_error_set(err, -EINVAL, "ingest: directory_end without an open directory");
	int r = drain(in, err);
	if (r < 0)
		return r;
	struct open_dir *od = &in->stack[--in->depth];
	_cleanup_free_ char *name = od->name;
	size_t name_len = od->name_len;
	struct casfs_directory dir = od->dir;
	memset(od, 0, sizeof(*od));

	/* NAR order is one sorted list; castore wants each kind sorted, which
	 * a filtered sorted list already is. */
	uint64_t size;
	uint8_t digest[CASFS_B3_LEN];
	r = casfs_directory_size(&dir, &size);
	if (r >= 0)
		r = casfs_directory_digest(&dir, digest);
	if (r >= 0)
		r = closure_add(in, &dir, digest);
	casfs_directory_release(&dir);
	if (r < 0)
		return casfs_error_set(err, r, "directory '%s': too large", name ? name : "/");

	if (in->depth == 0) {
		struct casfs_node n = { .type = CASFS_NODE_DIRECTORY, .size = size, .digest_set = true };
		memcpy(n.digest, digest, CASFS_B3_LEN);
		set_root(in, &n);
		return 0;
	}
	return casfs_directory_add_directory(&in->stack[in->depth - 1].dir, name, name_len, digest,
					     size);
}

int casfs_ingest_symlink(struct casfs_ingest *in, const char *name, size_t name_len,
			 const char *target, size_t target_len, struct casfs_error *err)
{
	int r = check_can_add(in, name, err);
	if (r < 0)
		return r;
	r = casfs_symlink_target_validate(target, target_len, err);
	if (r < 0)
		return r;
	if (in->depth == 0) {
		struct casfs_node n = { .type = CASFS_NODE_SYMLINK };
		n.target = strndup(target, target_len);
		if (!n.target)
			return -ENOMEM;
		n.target_len = target_len;
		set_root(in, &n);
		return 0;
	}
	return casfs_directory_add_symlink(&in->stack[in->depth - 1].dir, name, name_len, target,
					   target_len);
}

int casfs_ingest_file_known(struct casfs_ingest *in, const char *name, size_t name_len,
			    bool executable, const uint8_t digest[CASFS_B3_LEN], uint64_t size,
			    struct casfs_error *err)
{
	int r = check_can_add(in, name, err);
	if (r < 0)
		return r;
	in->n_files++;
	in->n_bytes += size;
	if (in->depth == 0) {
		struct casfs_node n = { .type = CASFS_NODE_FILE, .size = size,
					.executable = executable, .digest_set = true };
		memcpy(n.digest, digest, CASFS_B3_LEN);
		set_root(in, &n);
		return 0;
	}
	return casfs_directory_add_file(&in->stack[in->depth - 1].dir, name, name_len, digest, size,
					executable);
}

int casfs_ingest_file_begin(struct casfs_ingest *in, const char *name, size_t name_len,
			    bool executable, uint64_t size, struct casfs_error *err)
{
	int r = check_can_add(in, name, err);
	if (r < 0)
		return r;
	free(in->file_name);
	in->file_name = NULL;
	if (name && !(in->file_name = strndup(name, name_len)))
		return -ENOMEM;
	in->file_name_len = name_len;
	in->file_exec = executable;
	in->file_size = size;
	in->file_seen = 0;
	if (size <= CASFS_INGEST_SMALL_FILE) {
		if (!(in->small = malloc(size ? (size_t)size : 1)))
			return -ENOMEM;
	} else {
		r = casfs_blob_worker_stream_begin(in->worker);
		if (r < 0)
			return drain(in, err) < 0 ? r : casfs_error_set(err, r, "storing a blob: %s",
									 strerror(-r));
	}
	in->in_file = true;
	return 0;
}

int casfs_ingest_file_data(struct casfs_ingest *in, const void *p, size_t n, struct casfs_error *err)
{
	if (!in->in_file)
		return casfs_error_set(err, -EINVAL, "ingest: file data outside a file");
	if (n > in->file_size - in->file_seen)
		return casfs_error_set(err, -EBADMSG, "file '%s': more than the announced %llu bytes",
				       in->file_name ? in->file_name : "/",
				       (unsigned long long)in->file_size);
	if (in->small) {
		memcpy(in->small + in->file_seen, p, n);
	} else if (n) {
		uint8_t *chunk = malloc(n);
		if (!chunk)
			return -ENOMEM;
		memcpy(chunk, p, n);
		int r = casfs_blob_worker_stream_data(in->worker, chunk, n);
		if (r < 0)
			return drain(in, err) < 0 ? r : casfs_error_set(err, r, "storing a blob: %s",
									 strerror(-r));
	}
	in->file_seen += n;
	return 0;
}

/* Worker results carry where the file node sits: the stack level (0 for
 * the root node) and the index in that directory's file list. */
static uint64_t make_tag(size_t level, size_t index)
{
	return (uint64_t)level << 32 | (uint64_t)index;
}

static int patch_digest(void *userdata, uint64_t tag, const uint8_t digest[CASFS_B3_LEN],
			uint64_t size)
{
	struct casfs_ingest *in = userdata;
	size_t level = (size_t)(tag >> 32), index = (size_t)(tag & 0xffffffffu);
	struct casfs_node *n;
	if (level == 0)
		n = &in->root;
	else if (level <= in->depth && index < in->stack[level - 1].dir.n_files)
		n = &in->stack[level - 1].dir.files[index];
	else
		return -EINVAL;
	if (n->size != size)
		return -EBADMSG;
	memcpy(n->digest, digest, CASFS_B3_LEN);
	return 0;
}

static int drain(struct casfs_ingest *in, struct casfs_error *err)
{
	return casfs_blob_worker_drain(in->worker, patch_digest, in, err);
}

int casfs_ingest_file_end(struct casfs_ingest *in, struct casfs_error *err)
{
	if (!in->in_file)
		return casfs_error_set(err, -EINVAL, "ingest: file_end outside a file");
	const char *shown = in->file_name ? in->file_name : "/";
	if (in->file_seen != in->file_size)
		return casfs_error_set(err, -EBADMSG, "file '%s': %llu bytes, announced %llu", shown,
				       (unsigned long long)in->file_seen,
				       (unsigned long long)in->file_size);
	in->in_file = false;
	uint64_t tag = make_tag(in->depth, in->depth ? in->stack[in->depth - 1].dir.n_files : 0);
	int r;
	if (in->small)
		r = casfs_blob_worker_put(in->worker, TAKE_PTR(in->small), (size_t)in->file_size, tag);
	else
		r = casfs_blob_worker_stream_end(in->worker, tag, NULL);
	if (r < 0)
		return drain(in, err) < 0 ? r : casfs_error_set(err, r, "storing '%s': %s", shown,
								 strerror(-r));
	/* placeholder digest, patched by drain() */
	static const uint8_t pending[CASFS_B3_LEN];
	_cleanup_free_ char *name = TAKE_PTR(in->file_name);
	return casfs_ingest_file_known(in, name, in->file_name_len, in->file_exec, pending,
				       in->file_size, err);
}

int casfs_ingest_finish(struct casfs_ingest *in, const char *root_name, struct casfs_node *ret,
			struct casfs_error *err)
{
	if (!in->have_root || in->depth || in->in_file)
		return casfs_error_set(err, -EBADMSG, "ingest: incomplete tree");
	int r = drain(in, err);
	if (r < 0)
		return r;
	if (in->root.type == CASFS_NODE_DIRECTORY) {
		uint8_t root[CASFS_B3_LEN];
		r = casfs_directory_put_closure(in->store->directories, in->closure, in->n_closure,
						    root, err);
		if (r < 0)
			return r;
		if (memcmp(root, in->root.digest, CASFS_B3_LEN) != 0)
			return casfs_error_set(err, -EBADMSG, "ingest: closure root mismatch");
	}
	struct casfs_node n;
	r = casfs_node_copy(&in->root, &n);
	if (r < 0)
		return r;
	free(n.name);
	n.name = strdup(root_name);
	if (!n.name) {
		casfs_node_release(&n);
		return -ENOMEM;
	}
	n.name_len = strlen(root_name);
	*ret = n;
	return 0;
}

void casfs_ingest_stats(const struct casfs_ingest *in, uint64_t *ret_files, uint64_t *ret_bytes)
{
	*ret_files = in->n_files;
	*ret_bytes = in->n_bytes;
}
