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

struct results {
	struct result *v;
	size_t n, cap;
};

/* An idle worker is woken once a batch is queued, or when the submitter
 * waits for it (drain, the memory bound, stop), not for every job: a
 * wake-up per small file cost more than hashing it (re-import of 20k
 * small files: 4k context switches, 1.2 of 2 cores busy). */
#define BATCH_JOBS 64
#define BATCH_BYTES (256u << 10)

struct casfs_blob_worker {
	struct casfs_blob_service *blobs;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t changed; /* queue, inflight, busy, waiters or stop changed */

	struct job *head, *tail;
	size_t inflight, max_inflight;
	size_t queued, queued_bytes; /* jobs waiting, and their bytes */
	unsigned waiters;	     /* submitter threads waiting on the worker */
	bool busy, stop, idle;

	/* worker-side state */
	struct casfs_blob_writer *writer;
	struct casfs_b3_stream hasher;
	uint64_t hashed;
	int error;
	struct casfs_error err;

	struct results batch_results; /* the worker's, for the batch it runs */
	struct results results;	      /* finished, not yet taken (lock) */
};

static int add_result(struct results *rs, uint64_t tag, const uint8_t *digest, uint64_t size)
{
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 256;
		struct result *r = realloc(rs->v, cap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		rs->v = r;
		rs->cap = cap;
	}
	struct result *r = &rs->v[rs->n++];
	r->tag = tag;
	r->size = size;
	memcpy(r->digest, digest, CASFS_B3_LEN);
	return 0;
}

/* Move the batch's results to the shared list (lock held). */
static int publish_results(struct casfs_blob_worker *w)
{
	int r = 0;
	for (size_t i = 0; r >= 0 && i < w->batch_results.n; i++) {
		const struct result *x = &w->batch_results.v[i];
		r = add_result(&w->results, x->tag, x->digest, x->size);
	}
	w->batch_results.n = 0;
	return r;
}

/* A stored blob with this digest and size whose outboard is missing (a
 * store made before outboards) gets `ob`; true if the blob is stored. */
static bool present_fill(struct casfs_blob_worker *w, const uint8_t digest[CASFS_B3_LEN],
			 uint64_t size, const struct casfs_outboard *ob)
{
	uint64_t have;
	if (w->blobs->ops->blind_puts || casfs_blob_stat(w->blobs, digest, &have) < 0 || have != size)
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
		return present_fill(w, digest, j->n, &ob) ? 0 : casfs_blob_put_known(w->blobs, j->buf, j->n, digest);
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
	return present ? 0 : casfs_blob_put_known(w->blobs, j->buf, j->n, digest);
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
	return add_result(&w->batch_results, j->tag, digest, size);
}

/* With the lock held: whether an idle worker should start on the queue. */
static bool worth_waking(const struct casfs_blob_worker *w)
{
	return w->head && (w->waiters > 0 || w->queued >= BATCH_JOBS || w->queued_bytes >= BATCH_BYTES);
}

/* With the lock held: wait for the worker to change something, waking it
 * first if it is holding back for a batch. */
static void wait_worker(struct casfs_blob_worker *w)
{
	w->waiters++;
	pthread_cond_broadcast(&w->changed);
	pthread_cond_wait(&w->changed, &w->lock);
	w->waiters--;
}

static void *worker_main(void *userdata)
{
	struct casfs_blob_worker *w = userdata;
	pthread_mutex_lock(&w->lock);
	for (;;) {
		/* Once woken, run the queue until it is empty. */
		while (!w->head && !w->stop) {
			w->idle = true;
			do
				pthread_cond_wait(&w->changed, &w->lock);
			while (!w->stop && !worth_waking(w));
			w->idle = false;
		}
		if (!w->head)
			break;
		/* Take a batch: the lock is taken twice per batch, not per job. */
		struct job *batch = w->head, *last = batch;
		size_t jobs = 1, bytes = batch->n;
		while (last->next && jobs < BATCH_JOBS && bytes < BATCH_BYTES) {
			last = last->next;
			jobs++, bytes += last->n;
		}
		w->head = last->next;
		if (!w->head)
			w->tail = NULL;
		last->next = NULL;
		w->queued -= jobs;
		w->queued_bytes -= bytes;
		w->busy = true;
		bool skip = w->error < 0 || w->stop;
		pthread_mutex_unlock(&w->lock);

		int r = 0;
		for (struct job *j = batch, *next; j; j = next) {
			next = j->next;
			if (!skip && r >= 0)
				r = run_job(w, j);
			free(j->buf);
			free(j);
		}

		pthread_mutex_lock(&w->lock);
		if (r >= 0)
			r = publish_results(w);
		if (r < 0 && w->error == 0) {
			w->error = r;
			casfs_error_set(&w->err, r, "storing a blob: %s", strerror(-r));
		}
		w->inflight -= bytes;
		w->busy = false;
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
	free(w->results.v);
	free(w->batch_results.v);
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
		wait_worker(w);
	int r = w->error;
	if (r == 0) {
		w->inflight += n;
		w->queued++;
		w->queued_bytes += n;
		if (w->tail)
			w->tail->next = j;
		else
			w->head = j;
		w->tail = j;
		if (w->idle && worth_waking(w))
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

/* Take the finished results (and the first error) and hand them to cb,
 * after waiting for the worker if `wait`. */
static int take_results(struct casfs_blob_worker *w, bool wait, casfs_blob_worker_result_fn cb,
			void *userdata, struct casfs_error *err)
{
	pthread_mutex_lock(&w->lock);
	while (wait && (w->head || w->busy))
		wait_worker(w);
	int r = w->error;
	if (r < 0)
		casfs_error_set(err, r, "%s", w->err.msg);
	struct results rs = w->results;
	w->results = (struct results){ 0 };
	pthread_mutex_unlock(&w->lock);
	for (size_t i = 0; r >= 0 && i < rs.n; i++)
		r = cb(userdata, rs.v[i].tag, rs.v[i].digest, rs.v[i].size);
	free(rs.v);
	return r;
}

int casfs_blob_worker_drain(struct casfs_blob_worker *w, casfs_blob_worker_result_fn cb,
			    void *userdata, struct casfs_error *err)
{
	return take_results(w, true, cb, userdata, err);
}

int casfs_blob_worker_poll(struct casfs_blob_worker *w, casfs_blob_worker_result_fn cb,
			   void *userdata, struct casfs_error *err)
{
	return take_results(w, false, cb, userdata, err);
}
