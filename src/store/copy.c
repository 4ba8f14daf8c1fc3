/* casfs_copy (copy.h): walk, order, copy in parallel, commit in order. */
#include "copy.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../basic/util.h"
#include "export.h"
#include "import.h"

#define DEFAULT_JOBS 4

struct node {
	struct casfs_store_path path;
	bool looked_up;           /* the fields below are filled (under lock) */
	int lookup_r;             /* and this is their result, lookup_err its message */
	struct casfs_error lookup_err;
	struct casfs_store_path *ref_paths; /* its references, from the lookup */
	size_t n_ref_paths;
	bool present;             /* the destination has it */
	bool loaded;              /* metadata below is filled */
	struct casfs_narinfo ni;  /* from a substituter */
	struct casfs_pathinfo src; /* from a store */
	size_t *refs, n_refs;     /* nodes it refers to (not itself) */
	size_t *referrers, n_referrers, referrers_cap;
	size_t pending;           /* refs not committed yet */
	bool taken, fetched, committed;
	struct casfs_pathinfo pi; /* to register (store destination) */
	struct casfs_buf narinfo; /* to write (binary cache destination) */
	uint64_t nar_size;
};

struct copy {
	const struct casfs_copy_source *from;
	const struct casfs_copy_dest *to;
	const struct casfs_copy_options *o;
	struct node **nodes; /* each allocated alone: stable while the walk adds more */
	size_t n, cap;
	/* The walk's lookups run on `jobs` threads ahead of it (lookup_next,
	 * under lock); walk_over stops them. */
	size_t lookup_next;
	bool walk_over;
	pthread_cond_t looked_up;
	size_t *index; /* open addressing over nodes, index_cap slots, SIZE_MAX empty */
	size_t index_cap;
	size_t *order; /* topological: references first */
	size_t n_order, next;
	pthread_mutex_t lock;
	bool failed;
	int result;
	struct casfs_error err;
	struct casfs_copy_stats st;
};

/* ---- the node table ----------------------------------------------------- */

static size_t slot_of(const struct copy *c, const uint8_t d[CASFS_STORE_DIGEST_LEN])
{
	uint64_t h;
	memcpy(&h, d, sizeof(h));
	return (size_t)(h & (c->index_cap - 1));
}

static int grow_index(struct copy *c)
{
	size_t cap = c->index_cap ? 2 * c->index_cap : 256;
	size_t *idx = malloc(cap * sizeof(*idx));
	if (!idx)
		return -ENOMEM;
	memset(idx, 0xff, cap * sizeof(*idx));
	free(c->index);
	c->index = idx;
	c->index_cap = cap;
	for (size_t i = 0; i < c->n; i++) {
		size_t s = slot_of(c, c->nodes[i]->path.digest);
		while (c->index[s] != SIZE_MAX)
			s = (s + 1) & (cap - 1);
		c->index[s] = i;
	}
	return 0;
}

/* The node of `sp`, added if new.  *ret its index. */
static int node_get(struct copy *c, const struct casfs_store_path *sp, size_t *ret)
{
	if (2 * (c->n + 1) > c->index_cap && grow_index(c) < 0)
		return -ENOMEM;
	size_t s = slot_of(c, sp->digest);
	for (; c->index[s] != SIZE_MAX; s = (s + 1) & (c->index_cap - 1))
		if (!memcmp(c->nodes[c->index[s]]->path.digest, sp->digest, CASFS_STORE_DIGEST_LEN)) {
			*ret = c->index[s];
			return 0;
		}
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64;
		struct node **p = realloc(c->nodes, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		c->nodes = p;
		c->cap = cap;
	}
	struct node *nd = calloc(1, sizeof(*nd));
	if (!nd)
		return -ENOMEM;
	c->nodes[c->n] = nd;
	nd->path = *sp;
	c->index[s] = c->n;
	*ret = c->n++;
	return 0;
}

static void node_release(struct node *nd)
{
	casfs_narinfo_release(&nd->ni);
	casfs_pathinfo_release(&nd->src);
	casfs_pathinfo_release(&nd->pi);
	casfs_buf_release(&nd->narinfo);
	free(nd->refs);
	free(nd->referrers);
	free(nd->ref_paths);
}

/* ---- the walk ----------------------------------------------------------- */

static int dest_has(struct copy *c, const uint8_t d[CASFS_STORE_DIGEST_LEN], struct casfs_error *err)
{
	if (c->to->cache)
		return casfs_binary_cache_has(c->to->cache, d, err);
	struct casfs_pathinfo pi = { 0 };
	int r = casfs_pathinfo_get(c->to->store->pathinfos, d, &pi, err);
	casfs_pathinfo_release(&pi);
	return r == 0 ? 1 : r == -ENOENT ? 0 : r;
}

/* The path's metadata from the source, and its references as store paths
 * (*ret_refs malloc'd). */
static int load(struct copy *c, struct node *nd, struct casfs_store_path **ret_refs, size_t *ret_n,
		struct casfs_error *err)
{
	char path[CASFS_STORE_PATH_MAX + 1];
	casfs_store_path_format(&nd->path, path);
	int r;
	if (c->from->sub) {
		r = c->from->sub->ops->query(c->from->sub, nd->path.digest, &nd->ni, err);
		if (r < 0)
			return r;
		nd->loaded = true;
		*ret_n = nd->ni.n_references;
		*ret_refs = malloc((*ret_n + 1) * sizeof(**ret_refs));
		if (!*ret_refs)
			return -ENOMEM;
		if (*ret_n)
			memcpy(*ret_refs, nd->ni.references, *ret_n * sizeof(**ret_refs));
		nd->nar_size = nd->ni.nar_size;
		return 0;
	}
	r = casfs_pathinfo_get(c->from->store->pathinfos, nd->path.digest, &nd->src, err);
	if (r == -ENOENT)
		return casfs_error_set(err, r, "'%s' is not in '%s'", path, c->from->store->url);
	if (r < 0)
		return casfs_error_prefix(err, r, "'%s'", path);
	nd->loaded = true;
	nd->nar_size = nd->src.nar_size;
	*ret_n = nd->src.n_references;
	*ret_refs = malloc((*ret_n + 1) * sizeof(**ret_refs));
	if (!*ret_refs)
		return -ENOMEM;
	for (size_t i = 0; i < *ret_n; i++) {
		const char *name = i < nd->src.n_reference_names ? nd->src.reference_names[i] : "";
		r = casfs_store_path_parse_basename(name, strlen(name), &(*ret_refs)[i], err);
		if (r < 0)
			return casfs_error_prefix(err, -EBADMSG, "'%s': reference %zu", path, i);
	}
	return 0;
}

static int add_edge(struct copy *c, size_t from, size_t to)
{
	struct node *t = c->nodes[to];
	if (t->n_referrers == t->referrers_cap) {
		size_t cap = t->referrers_cap ? 2 * t->referrers_cap : 4;
		size_t *p = realloc(t->referrers, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		t->referrers = p;
		t->referrers_cap = cap;
	}
	t->referrers[t->n_referrers++] = from;
	struct node *f = c->nodes[from];
	f->refs[f->n_refs++] = to;
	return 0;
}

/* Whether the destination has the path, and if not its metadata and
 * references from the source.  No lock held. */
static int lookup(struct copy *c, struct node *nd, struct casfs_error *err)
{
	int r = dest_has(c, nd->path.digest, err);
	if (r > 0)
		nd->present = true;
	if (r != 0)
		return r < 0 ? r : 0;
	return load(c, nd, &nd->ref_paths, &nd->n_ref_paths, err);
}

static void *lookup_worker(void *arg)
{
	struct copy *c = arg;
	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (c->lookup_next >= c->n && !c->walk_over)
			pthread_cond_wait(&c->looked_up, &c->lock);
		if (c->walk_over)
			break;
		struct node *nd = c->nodes[c->lookup_next++];
		pthread_mutex_unlock(&c->lock);
		int r = lookup(c, nd, &nd->lookup_err);
		pthread_mutex_lock(&c->lock);
		nd->lookup_r = r;
		nd->looked_up = true;
		pthread_cond_broadcast(&c->looked_up);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* Add node i's references to the walk.  Under c->lock. */
static int add_references(struct copy *c, size_t i, const struct casfs_store_path *roots,
			  size_t n_roots, struct casfs_error *err)
{
	struct node *nd = c->nodes[i];
	if (!(nd->refs = malloc((nd->n_ref_paths + 1) * sizeof(size_t))))
		return -ENOMEM;
	for (size_t k = 0; k < nd->n_ref_paths; k++) {
		const struct casfs_store_path *ref = &nd->ref_paths[k];
		if (!memcmp(ref->digest, nd->path.digest, CASFS_STORE_DIGEST_LEN))
			continue;
		if (c->o->no_recursive) {
			bool is_root = false;
			for (size_t j = 0; j < n_roots; j++)
				is_root |= !memcmp(roots[j].digest, ref->digest, CASFS_STORE_DIGEST_LEN);
			if (!is_root) {
				int r = dest_has(c, ref->digest, err);
				if (r < 0)
					return r;
				if (r == 0) {
					char a[CASFS_STORE_PATH_MAX + 1], b[CASFS_STORE_PATH_MAX + 1];
					casfs_store_path_format(&nd->path, a);
					casfs_store_path_format(ref, b);
					return casfs_error_set(err, -ENOENT,
							       "'%s' refers to '%s', which the destination lacks (copy without --no-recursive)",
							       a, b);
				}
				continue;
			}
		}
		size_t j;
		if (node_get(c, ref, &j) < 0 || add_edge(c, i, j) < 0)
			return -ENOMEM;
		nd = c->nodes[i];
	}
	free(nd->ref_paths);
	nd->ref_paths = NULL;
	nd->n_ref_paths = 0;
	return 0;
}

/* Breadth first from the roots, in node order (c->n grows as references
 * are met), the lookups done by `jobs` threads ahead of the walk so a
 * remote cache's latency is paid in parallel. */
static int walk(struct copy *c, const struct casfs_store_path *paths, size_t n_paths, unsigned jobs,
		struct casfs_error *err)
{
	size_t dummy;
	for (size_t i = 0; i < n_paths; i++)
		if (node_get(c, &paths[i], &dummy) < 0)
			return -ENOMEM;
	pthread_t *threads = calloc(jobs, sizeof(*threads));
	unsigned started = 0;
	for (; threads && started < jobs; started++)
		if (pthread_create(&threads[started], NULL, lookup_worker, c) != 0)
			break;
	int r = started ? 0 : casfs_error_set(err, -EAGAIN, "cannot start lookup threads");
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; r >= 0 && i < c->n; i++) {
		struct node *nd = c->nodes[i];
		while (!nd->looked_up)
			pthread_cond_wait(&c->looked_up, &c->lock);
		if (nd->lookup_r < 0) {
			r = nd->lookup_r;
			*err = nd->lookup_err;
		} else if (!nd->present) {
			size_t n_before = c->n;
			r = add_references(c, i, paths, n_paths, err);
			if (c->n != n_before)
				pthread_cond_broadcast(&c->looked_up);
		}
	}
	c->walk_over = true;
	pthread_cond_broadcast(&c->looked_up);
	pthread_mutex_unlock(&c->lock);
	for (unsigned t = 0; t < started; t++)
		pthread_join(threads[t], NULL);
	free(threads);
	return r;
}

/* Depth-first post-order over the nodes to copy: references first. */
static int topo_order(struct copy *c)
{
	c->order = malloc((c->n + 1) * sizeof(*c->order));
	size_t *stack = malloc((c->n + 1) * sizeof(*stack));
	size_t *next_ref = calloc(c->n + 1, sizeof(*next_ref));
	uint8_t *seen = calloc(c->n + 1, 1);
	int r = (!c->order || !stack || !next_ref || !seen) ? -ENOMEM : 0;
	for (size_t root = 0; r >= 0 && root < c->n; root++) {
		if (seen[root] || c->nodes[root]->present)
			continue;
		size_t sp = 0;
		stack[sp++] = root;
		seen[root] = 1;
		while (sp) {
			size_t i = stack[sp - 1];
			struct node *nd = c->nodes[i];
			if (next_ref[i] < nd->n_refs) {
				size_t j = nd->refs[next_ref[i]++];
				if (!seen[j] && !c->nodes[j]->present) {
					seen[j] = 1;
					stack[sp++] = j;
				}
				continue;
			}
			c->order[c->n_order++] = i;
			sp--;
		}
	}
	for (size_t i = 0; i < c->n; i++) {
		struct node *nd = c->nodes[i];
		for (size_t k = 0; k < nd->n_refs; k++)
			nd->pending += !c->nodes[nd->refs[k]]->present;
	}
	free(stack);
	free(next_ref);
	free(seen);
	return r;
}

/* ---- copying one path's content ----------------------------------------- */

struct pipe {
	struct casfs_nar_import *imp;
	struct casfs_error *err;
};

static int pipe_sink(void *userdata, const void *p, size_t n)
{
	struct pipe *pp = userdata;
	return casfs_nar_import_feed(pp->imp, p, n, pp->err);
}

/* Store to store: the source renders the NAR (verified), the destination
 * ingests it, and what arrives must be what the PathInfo says. */
static int copy_tree(struct copy *c, struct node *nd, struct casfs_error *err)
{
	struct pipe pp = { casfs_nar_import_new(c->to->store, NULL), err };
	if (!pp.imp)
		return casfs_error_set(err, -ENOMEM, "out of memory");
	uint8_t sha[CASFS_SHA256_LEN];
	uint64_t size;
	struct casfs_node root = { 0 };
	int r = casfs_export_nar(c->from->store, &nd->src.node, pipe_sink, &pp, err);
	if (r >= 0)
		r = casfs_nar_import_end(pp.imp, sha, &size, err);
	if (r >= 0 && (size != nd->src.nar_size || memcmp(sha, nd->src.nar_sha256, CASFS_SHA256_LEN)))
		r = casfs_error_set(err, -EBADMSG, "'%s': its NAR does not match its NarHash/NarSize",
				    nd->src.node.name);
	if (r >= 0)
		r = casfs_nar_import_finish(pp.imp, nd->src.node.name, &root, err);
	casfs_nar_import_free(pp.imp);
	if (r >= 0 && (r = casfs_pathinfo_copy(&nd->src, &nd->pi)) >= 0) {
		casfs_node_release(&nd->pi.node);
		nd->pi.node = root;
		memset(&root, 0, sizeof(root));
	}
	casfs_node_release(&root);
	return r == -ENOMEM ? casfs_error_set(err, r, "out of memory") : r;
}

static int copy_content(struct copy *c, struct node *nd, struct casfs_error *err)
{
	if (c->from->sub)
		return casfs_substitute(c->from->sub, c->from->keys, &nd->ni, c->to->store, &nd->pi, err);
	if (c->to->cache) {
		uint64_t written;
		return casfs_binary_cache_upload_nar(c->to->cache, c->from->store, &nd->src, &nd->narinfo,
						     &written, err);
	}
	return copy_tree(c, nd, err);
}

static int commit(struct copy *c, struct node *nd, struct casfs_error *err)
{
	if (c->to->cache)
		return casfs_binary_cache_put_narinfo(c->to->cache, nd->path.digest, &nd->narinfo, err);
	return casfs_store_add_ingested(c->to->store, nd->path.digest, &nd->pi, err);
}

/* Commit `i` and whatever it unblocks.  Under c->lock. */
static void commit_ready(struct copy *c, size_t i)
{
	size_t stack_cap = 16, sp = 0;
	size_t *stack = malloc(stack_cap * sizeof(*stack));
	if (!stack) {
		c->failed = true;
		c->result = casfs_error_set(&c->err, -ENOMEM, "out of memory");
		return;
	}
	stack[sp++] = i;
	while (sp && !c->failed) {
		struct node *nd = c->nodes[stack[--sp]];
		if (nd->committed || !nd->fetched || nd->pending)
			continue;
		struct casfs_error e = { 0 };
		int r = commit(c, nd, &e);
		if (r < 0) {
			c->failed = true;
			c->result = r;
			c->err = e;
			break;
		}
		nd->committed = true;
		c->st.copied++;
		c->st.nar_bytes += nd->nar_size;
		casfs_pathinfo_release(&nd->pi);
		casfs_buf_release(&nd->narinfo);
		if (c->o->progress)
			c->o->progress(c->o->progress_userdata, &c->st);
		for (size_t k = 0; k < nd->n_referrers; k++) {
			struct node *up = c->nodes[nd->referrers[k]];
			if (--up->pending == 0 && up->fetched) {
				if (sp == stack_cap) {
					size_t *p = realloc(stack, 2 * stack_cap * sizeof(*p));
					if (!p) {
						c->failed = true;
						c->result = casfs_error_set(&c->err, -ENOMEM, "out of memory");
						break;
					}
					stack = p;
					stack_cap *= 2;
				}
				stack[sp++] = nd->referrers[k];
			}
		}
	}
	free(stack);
}

static void *worker(void *arg)
{
	struct copy *c = arg;
	pthread_mutex_lock(&c->lock);
	while (!c->failed && c->next < c->n_order) {
		size_t i = c->order[c->next++];
		struct node *nd = c->nodes[i];
		nd->taken = true;
		pthread_mutex_unlock(&c->lock);
		struct casfs_error e = { 0 };
		int r = copy_content(c, nd, &e);
		pthread_mutex_lock(&c->lock);
		if (r < 0) {
			if (!c->failed) {
				c->failed = true;
				c->result = r;
				c->err = e;
			}
			break;
		}
		nd->fetched = true;
		commit_ready(c, i);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

int casfs_copy(const struct casfs_copy_source *from, const struct casfs_copy_dest *to,
	       const struct casfs_store_path *paths, size_t n_paths,
	       const struct casfs_copy_options *o, struct casfs_copy_stats *ret,
	       struct casfs_error *err)
{
	static const struct casfs_copy_options defaults = { 0 };
	struct copy c = { .from = from, .to = to, .o = o ? o : &defaults };
	pthread_mutex_init(&c.lock, NULL);
	pthread_cond_init(&c.looked_up, NULL);
	unsigned jobs = c.o->jobs ? c.o->jobs : DEFAULT_JOBS;
	int r = walk(&c, paths, n_paths, jobs, err);
	if (r >= 0)
		r = topo_order(&c);
	if (r >= 0) {
		c.st.total = c.n;
		for (size_t i = 0; i < c.n; i++)
			c.st.present += c.nodes[i]->present;
		if (c.o->progress)
			c.o->progress(c.o->progress_userdata, &c.st);
		jobs = (unsigned)MIN((size_t)jobs, MAX(c.n_order, (size_t)1));
		pthread_t *threads = calloc(jobs, sizeof(*threads));
		unsigned started = 0;
		if (threads)
			for (; started < jobs; started++)
				if (pthread_create(&threads[started], NULL, worker, &c) != 0)
					break;
		if (!started)
			worker(&c);
		for (unsigned t = 0; t < started; t++)
			pthread_join(threads[t], NULL);
		free(threads);
		r = c.failed ? c.result : 0;
		if (r < 0)
			*err = c.err;
	}
	if (r == -ENOMEM)
		casfs_error_set(err, r, "out of memory");
	if (ret)
		*ret = c.st;
	for (size_t i = 0; i < c.n; i++) {
		node_release(c.nodes[i]);
		free(c.nodes[i]);
	}
	free(c.nodes);
	free(c.index);
	free(c.order);
	pthread_mutex_destroy(&c.lock);
	pthread_cond_destroy(&c.looked_up);
	return r;
}
