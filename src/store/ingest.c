#include "ingest.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../basic/keyset.h"
#include "../basic/util.h"
#include "../castore/blob-worker.h"

/* Bytes of file content queued for the blob worker at most. */
#define INGEST_MAX_INFLIGHT (32u << 20)

/* A directory from its begin until its digest is known: open while its
 * entries arrive (in NAR, i.e. sorted, order), then ended (its size is
 * known) and waiting for the digests of its files (from the worker) and
 * of its subdirectories.  Directories are numbered from 1 in begin order;
 * a worker tag holds the number (0: the root node) and the file index. */
struct dir_node {
	struct casfs_directory dir;
	char *name; /* NULL for the root */
	size_t name_len;
	size_t seq;
	struct dir_node *parent;
	size_t index_in_parent; /* in parent->dir.directories */
	size_t unresolved;      /* entries still without their digest */
	struct dir_node *next_ended;
};

struct casfs_ingest {
	struct casfs_store *store;

	/* Directories not yet resolved, by number - 1 (NULL once resolved). */
	struct dir_node **nodes;
	size_t n_nodes, nodes_cap;
	/* The open ones, innermost last. */
	struct dir_node **stack;
	size_t depth, stack_cap;
	/* The ended ones, in end order (children before parents). */
	struct dir_node *ended_head, *ended_tail;

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
	 * a placeholder digest and patched as the worker's results come in.
	 * A directory's digest is computed once all its entries have theirs,
	 * so the caller goes on reading while the worker catches up. */
	struct casfs_blob_worker *worker;

	uint64_t n_files, n_bytes;
};

static const uint8_t pending_digest[CASFS_B3_LEN];

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

static void dir_node_free(struct dir_node *n)
{
	casfs_directory_release(&n->dir);
	free(n->name);
	free(n);
}

void casfs_ingest_free(struct casfs_ingest *in)
{
	if (!in)
		return;
	casfs_blob_worker_free(in->worker);
	for (size_t i = 0; i < in->n_nodes; i++)
		if (in->nodes[i])
			dir_node_free(in->nodes[i]);
	free(in->nodes);
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

/* Make room for `need` elements in the array *v of *cap. */
static int grow(void **v, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap * 2 : 16;
	void *p = realloc(*v, c * elem);
	if (!p)
		return -ENOMEM;
	*v = p;
	*cap = c;
	return 0;
}

/* Take ownership of *d (left zeroed) unless an identical one is known. */
static int closure_add(struct casfs_ingest *in, struct casfs_directory *d,
		       const uint8_t digest[CASFS_B3_LEN])
{
	if (casfs_keyset_get(&in->seen, digest, NULL)) {
		casfs_directory_release(d);
		return 0;
	}
	if (grow((void **)&in->closure, &in->closure_cap, in->n_closure + 1, sizeof(*in->closure)) < 0)
		return -ENOMEM;
	int r = casfs_keyset_put(&in->seen, digest, in->n_closure);
	if (r < 0)
		return r;
	in->closure[in->n_closure++] = *d;
	memset(d, 0, sizeof(*d));
	return 0;
}

static int drain(struct casfs_ingest *in, struct casfs_error *err);
static int poll_worker(struct casfs_ingest *in, struct casfs_error *err);

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

static struct dir_node *top(struct casfs_ingest *in)
{
	return in->stack[in->depth - 1];
}

int casfs_ingest_directory_begin(struct casfs_ingest *in, const char *name, size_t name_len,
				 struct casfs_error *err)
{
	int r = check_can_add(in, name, err);
	if (r < 0)
		return r;
	if (grow((void **)&in->stack, &in->stack_cap, in->depth + 1, sizeof(*in->stack)) < 0 ||
	    grow((void **)&in->nodes, &in->nodes_cap, in->n_nodes + 1, sizeof(*in->nodes)) < 0)
		return -ENOMEM;
	struct dir_node *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	if (name) {
		if (!(n->name = strndup(name, name_len))) {
			free(n);
			return -ENOMEM;
		}
		n->name_len = name_len;
	}
	n->parent = in->depth ? top(in) : NULL;
	in->nodes[in->n_nodes++] = n;
	n->seq = in->n_nodes;
	in->stack[in->depth++] = n;
	return 0;
}

/* Compute the digests of ended directories whose entries all have theirs,
 * in end order, and hand each to its parent (or the root node). */
static int resolve_ready(struct casfs_ingest *in, struct casfs_error *err)
{
	struct dir_node *n;
	while ((n = in->ended_head) && n->unresolved == 0) {
		uint8_t digest[CASFS_B3_LEN];
		int r = casfs_directory_digest(&n->dir, digest);
		if (r >= 0)
			r = closure_add(in, &n->dir, digest);
		if (r < 0)
			return casfs_error_set(err, r, "directory '%s': too large",
					       n->name ? n->name : "/");
		if (n->parent) {
			memcpy(n->parent->dir.directories[n->index_in_parent].digest, digest,
			       CASFS_B3_LEN);
			n->parent->unresolved--;
		} else {
			memcpy(in->root.digest, digest, CASFS_B3_LEN);
		}
		in->ended_head = n->next_ended;
		if (!in->ended_head)
			in->ended_tail = NULL;
		in->nodes[n->seq - 1] = NULL;
		dir_node_free(n);
	}
	return 0;
}

int casfs_ingest_directory_end(struct casfs_ingest *in, struct casfs_error *err)
{
	if (in->depth == 0 || in->in_file)
		return casfs_error_set(err, -EINVAL, "ingest: directory_end without an open directory");
	struct dir_node *n = in->stack[--in->depth];
	/* NAR order is one sorted list; castore wants each kind sorted, which
	 * a filtered sorted list already is.  The size needs no digests. */
	uint64_t size;
	int r = casfs_directory_size(&n->dir, &size);
	if (r < 0)
		return casfs_error_set(err, r, "directory '%s': too large", n->name ? n->name : "/");
	if (n->parent) {
		r = casfs_directory_add_directory(&n->parent->dir, n->name, n->name_len,
						  pending_digest, size);
		if (r < 0)
			return r;
		n->index_in_parent = n->parent->dir.n_directories - 1;
		n->parent->unresolved++;
	} else {
		struct casfs_node root = { .type = CASFS_NODE_DIRECTORY, .size = size,
					   .digest_set = true };
		set_root(in, &root);
	}
	if (in->ended_tail)
		in->ended_tail->next_ended = n;
	else
		in->ended_head = n;
	in->ended_tail = n;
	r = poll_worker(in, err);
	return r < 0 ? r : resolve_ready(in, err);
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
	return casfs_directory_add_symlink(&top(in)->dir, name, name_len, target, target_len);
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
	return casfs_directory_add_file(&top(in)->dir, name, name_len, digest, size, executable);
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

/* Worker results carry where the file node sits: its directory's number
 * (0 for the root node) and the index in that directory's file list. */
static uint64_t make_tag(size_t seq, size_t index)
{
	return (uint64_t)seq << 32 | (uint64_t)index;
}

static int patch_digest(void *userdata, uint64_t tag, const uint8_t digest[CASFS_B3_LEN],
			uint64_t size)
{
	struct casfs_ingest *in = userdata;
	size_t seq = (size_t)(tag >> 32), index = (size_t)(tag & 0xffffffffu);
	struct dir_node *dn = NULL;
	struct casfs_node *n;
	if (seq == 0)
		n = &in->root;
	else if (seq <= in->n_nodes && (dn = in->nodes[seq - 1]) && index < dn->dir.n_files)
		n = &dn->dir.files[index];
	else
		return -EINVAL;
	if (n->size != size)
		return -EBADMSG;
	memcpy(n->digest, digest, CASFS_B3_LEN);
	if (dn)
		dn->unresolved--;
	return 0;
}

static int drain(struct casfs_ingest *in, struct casfs_error *err)
{
	return casfs_blob_worker_drain(in->worker, patch_digest, in, err);
}

static int poll_worker(struct casfs_ingest *in, struct casfs_error *err)
{
	return casfs_blob_worker_poll(in->worker, patch_digest, in, err);
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
	struct dir_node *dn = in->depth ? top(in) : NULL;
	uint64_t tag = make_tag(dn ? dn->seq : 0, dn ? dn->dir.n_files : 0);
	int r;
	if (in->small)
		r = casfs_blob_worker_put(in->worker, TAKE_PTR(in->small), (size_t)in->file_size, tag);
	else
		r = casfs_blob_worker_stream_end(in->worker, tag, NULL);
	if (r < 0)
		return drain(in, err) < 0 ? r : casfs_error_set(err, r, "storing '%s': %s", shown,
								 strerror(-r));
	/* placeholder digest, patched with the worker's result */
	_cleanup_free_ char *name = TAKE_PTR(in->file_name);
	r = casfs_ingest_file_known(in, name, in->file_name_len, in->file_exec, pending_digest,
				    in->file_size, err);
	if (r >= 0 && dn)
		dn->unresolved++;
	return r;
}

int casfs_ingest_finish(struct casfs_ingest *in, const char *root_name, struct casfs_node *ret,
			struct casfs_error *err)
{
	if (!in->have_root || in->depth || in->in_file)
		return casfs_error_set(err, -EBADMSG, "ingest: incomplete tree");
	int r = drain(in, err);
	if (r >= 0)
		r = resolve_ready(in, err);
	if (r < 0)
		return r;
	if (in->ended_head)
		return casfs_error_set(err, -EBADMSG, "ingest: a directory is missing digests");
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
