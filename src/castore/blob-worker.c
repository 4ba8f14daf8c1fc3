#include "blob-worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

enum job_kind {
	JOB_PUT,
	JOB_STREAM_BEGIN,
	JOB_STREAM_DATA,
	JOB_STREAM_END,
	JOB_HASH_BEGIN,
	JOB_HASH_DATA,
	JOB_HASH_END,
};

struct job {
	enum job_kind kind;
	uint8_t *buf;
	size_t n;
	uint64_t tag;
	bool has_expected;
	uint8_t expected[CASFS_B3_LEN];
	struct job *next;
};

struct result {
	uint64_t tag;
	uint64_t size;
	uint8_t digest[CASFS_B3_LEN];
};

struct casfs_blob_worker {
	struct casfs_blob_service *blobs;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t changed; /* queue, inflight, busy or stop changed */

	struct job *head, *tail;
	size_t inflight, max_inflight;
	bool busy, stop;

	/* worker-side state */
	struct casfs_blob_writer *writer;
	struct casfs_b3_stream hasher;
	uint64_t hashed;
	int error;
	struct casfs_error err;

	struct result *results;
	size_t n_results, results_cap;
};

static int add_result(struct casfs_blob_worker *w, uint64_t tag, const uint8_t *digest,
		      uint64_t size)
{
	if (w->n_results == w->results_cap) {
		size_t cap = w->results_cap ? w->results_cap * 2 : 256;
		struct result *r = realloc(w->results, cap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		w->results = r;
		w->results_cap = cap;
	}
	struct result *r = &w->results[w->n_results++];
	r->tag = tag;
	r->size = size;
	memcpy(r->digest, digest, CASFS_B3_LEN);
	return 0;
}

/* A stored blob with this digest and size whose outboard is missing (a
 * store made before outboards) gets `ob`; true if the blob is stored. */
static bool present_fill(struct casfs_blob_worker *w, const uint8_t digest[CASFS_B3_LEN],
			 uint64_t size, const struct casfs_outboard *ob)
{
	uint64_t have;
	if (casfs_blob_stat(w->blobs, digest, &have) < 0 || have != size)
		return false;
	if (ob->n > 0 && w->blobs->ops->outboard_put)
		(void)w->blobs->ops->outboard_put(w->blobs, digest, ob, false);
	return true;
}

static int run_put(struct casfs_blob_worker *w, const struct job *j, uint8_t digest[CASFS_B3_LEN])
{
	struct casfs_b3_stream h;
	struct casfs_outboard ob = { 0 };
	if (!casfs_outboard_wanted(j->n)) { /* most files: no outboard, no copy */
		casfs_b3(j->buf, j->n, digest);
		return present_fill(w, digest, j->n, &ob) ? 0 : casfs_blob_put(w->blobs, j->buf, j->n, digest);
	}
	casfs_b3_stream_init(&h, 1);
	int r = casfs_b3_stream_update(&h, j->buf, j->n);
	if (r < 0) {
		casfs_b3_stream_release(&h);
		return r;
	}
	if ((r = casfs_b3_stream_final(&h, digest, &ob)) < 0)
		return r;
	bool present = present_fill(w, digest, j->n, &ob);
	casfs_outboard_release(&ob);
	return present ? 0 : casfs_blob_put(w->blobs, j->buf, j->n, digest);
}

/* The digest of a hashed stream (and the outboard of a stored blob with
 * that digest, if missing). */
static int run_hash_end(struct casfs_blob_worker *w, uint8_t digest[CASFS_B3_LEN])
{
	struct casfs_outboard ob;
	int r = casfs_b3_stream_final(&w->hasher, digest, &ob);
	if (r < 0)
		return r;
	if (ob.n > 0)
		present_fill(w, digest, w->hashed, &ob);
	casfs_outboard_release(&ob);
	return 0;
}

/* Runs on the worker thread, without the lock. */
static int run_job(struct casfs_blob_worker *w, struct job *j)
{
	uint8_t digest[CASFS_B3_LEN];
	uint64_t size = j->n;
	int r;
	switch (j->kind) {
	case JOB_PUT:
		r = run_put(w, j, digest);
		break;
	case JOB_STREAM_BEGIN:
		return casfs_blob_create(w->blobs, &w->writer);
	case JOB_STREAM_DATA:
		return casfs_blob_writer_write(w->writer, j->buf, j->n);
	case JOB_STREAM_END: {
		struct casfs_blob_writer *bw = w->writer;
		w->writer = NULL;
		r = casfs_blob_writer_commit(bw, j->has_expected ? j->expected : NULL, digest, &size);
		break;
	}
	case JOB_HASH_BEGIN:
		casfs_b3_stream_release(&w->hasher); /* a stream cut short by an error */
		casfs_b3_stream_init(&w->hasher, 1);
		w->hashed = 0;
		return 0;
	case JOB_HASH_DATA:
		w->hashed += j->n;
		return casfs_b3_stream_update(&w->hasher, j->buf, j->n);
	case JOB_HASH_END:
		size = w->hashed;
		r = run_hash_end(w, digest);
		break;
	default:
		return -EINVAL;
	}
	if (r < 0)
		return r;
	pthread_mutex_lock(&w->lock);
	r = add_result(w, j->tag, digest, size);
	pthread_mutex_unlock(&w->lock);
	return r;
}

static void *worker_main(void *userdata)
{
	struct casfs_blob_worker *w = userdata;
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->head && !w->stop)
			pthread_cond_wait(&w->changed, &w->lock);
		if (!w->head)
			break;
		struct job *j = w->head;
		w->head = j->next;
		if (!w->head)
			w->tail = NULL;
		w->busy = true;
		bool skip = w->error < 0 || w->stop;
		pthread_mutex_unlock(&w->lock);

		int r = skip ? 0 : run_job(w, j);

		pthread_mutex_lock(&w->lock);
		if (r < 0 && w->error == 0) {
			w->error = r;
			casfs_error_set(&w->err, r, "storing a blob: %s", strerror(-r));
		}
		w->inflight -= j->n;
		w->busy = false;
		free(j->buf);
		free(j);
		pthread_cond_broadcast(&w->changed);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int casfs_blob_worker_new(struct casfs_blob_service *s, size_t max_inflight,
			  struct casfs_blob_worker **ret)
{
	struct casfs_blob_worker *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->blobs = s;
	w->max_inflight = max_inflight;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->changed, NULL);
	int r = pthread_create(&w->thread, NULL, worker_main, w);
	if (r != 0) {
		pthread_mutex_destroy(&w->lock);
		pthread_cond_destroy(&w->changed);
		free(w);
		return -r;
	}
	*ret = w;
	return 0;
}

void casfs_blob_worker_free(struct casfs_blob_worker *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_broadcast(&w->changed);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	casfs_blob_writer_abort(w->writer);
	casfs_b3_stream_release(&w->hasher);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->changed);
	free(w->results);
	free(w);
}

static int submit(struct casfs_blob_worker *w, enum job_kind kind, uint8_t *buf, size_t n,
		  uint64_t tag, const uint8_t *expected)
{
	struct job *j = calloc(1, sizeof(*j));
	if (!j) {
		free(buf);
		return -ENOMEM;
	}
	*j = (struct job){ .kind = kind, .buf = buf, .n = n, .tag = tag };
	if (expected) {
		j->has_expected = true;
		memcpy(j->expected, expected, CASFS_B3_LEN);
	}
	pthread_mutex_lock(&w->lock);
	/* bound memory; a single job larger than the bound still goes */
	while (w->inflight && w->inflight + n > w->max_inflight && w->error == 0)
		pthread_cond_wait(&w->changed, &w->lock);
	int r = w->error;
	if (r == 0) {
		w->inflight += n;
		if (w->tail)
			w->tail->next = j;
		else
			w->head = j;
		w->tail = j;
		pthread_cond_broadcast(&w->changed);
	}
	pthread_mutex_unlock(&w->lock);
	if (r < 0) {
		free(buf);
		free(j);
	}
	return r;
}

int casfs_blob_worker_put(struct casfs_blob_worker *w, uint8_t *buf_taken, size_t n, uint64_t tag)
{
	return submit(w, JOB_PUT, buf_taken, n, tag, NULL);
}

int casfs_blob_worker_stream_begin(struct casfs_blob_worker *w)
{
	return submit(w, JOB_STREAM_BEGIN, NULL, 0, 0, NULL);
}

int casfs_blob_worker_stream_data(struct casfs_blob_worker *w, uint8_t *buf_taken, size_t n)
{
	return submit(w, JOB_STREAM_DATA, buf_taken, n, 0, NULL);
}

int casfs_blob_worker_stream_end(struct casfs_blob_worker *w, uint64_t tag,
				 const uint8_t *expected)
{
	return submit(w, JOB_STREAM_END, NULL, 0, tag, expected);
}

int casfs_blob_worker_hash_begin(struct casfs_blob_worker *w)
{
	return submit(w, JOB_HASH_BEGIN, NULL, 0, 0, NULL);
}

int casfs_blob_worker_hash_data(struct casfs_blob_worker *w, uint8_t *buf_taken, size_t n)
{
	return submit(w, JOB_HASH_DATA, buf_taken, n, 0, NULL);
}

int casfs_blob_worker_hash_end(struct casfs_blob_worker *w, uint64_t tag)
{
	return submit(w, JOB_HASH_END, NULL, 0, tag, NULL);
}

int casfs_blob_worker_drain(struct casfs_blob_worker *w, casfs_blob_worker_result_fn cb,
			    void *userdata, struct casfs_error *err)
{
	pthread_mutex_lock(&w->lock);
	while (w->head || w->busy)
		pthread_cond_wait(&w->changed, &w->lock);
	int r = w->error;
	if (r < 0)
		casfs_error_set(err, r, "%s", w->err.msg);
	struct result *results = w->results;
	size_t n = w->n_results;
	w->results = NULL;
	w->n_results = w->results_cap = 0;
	pthread_mutex_unlock(&w->lock);
	for (size_t i = 0; r >= 0 && i < n; i++)
		r = cb(userdata, results[i].tag, results[i].digest, results[i].size);
	free(results);
	return r;
}
