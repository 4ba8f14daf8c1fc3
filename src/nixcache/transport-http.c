/* The http(s):// transport on libcurl (transport.h). */
#include "transport-internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../basic/util.h"

#define MAX_TRIES 3
#define ERROR_BODY_MAX 200

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static CURLcode init_result;

static void init_curl(void)
{
	init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int casfs_http_init(struct casfs_error *err)
{
	pthread_once(&init_once, init_curl);
	if (init_result != CURLE_OK)
		return casfs_error_set(err, -EIO, "cannot initialise libcurl: %s",
				       curl_easy_strerror(init_result));
	return 0;
}

static CURL *take_handle(struct casfs_transport *t)
{
	CURL *h = NULL;
	pthread_mutex_lock(&t->lock);
	if (t->n_idle)
		h = t->idle[--t->n_idle];
	pthread_mutex_unlock(&t->lock);
	if (h)
		curl_easy_reset(h); /* keeps its connections open */
	else
		h = curl_easy_init();
	return h;
}

static void give_handle(struct casfs_transport *t, CURL *h)
{
	pthread_mutex_lock(&t->lock);
	if (t->n_idle == t->idle_cap) {
		size_t cap = t->idle_cap ? 2 * t->idle_cap : 8;
		void **p = realloc(t->idle, cap * sizeof(*p));
		if (p) {
			t->idle = p;
			t->idle_cap = cap;
		}
	}
	if (t->n_idle < t->idle_cap) {
		t->idle[t->n_idle++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&t->lock);
	if (h)
		curl_easy_cleanup(h);
}

void casfs_http_release_handles(struct casfs_transport *t)
{
	for (size_t i = 0; i < t->n_idle; i++)
		curl_easy_cleanup(t->idle[i]);
	t->n_idle = 0;
}

/* One request's state, shared by the callbacks. */
struct request {
	CURL *h;
	casfs_transport_sink sink;
	void *userdata;
	struct casfs_error *err;
	uint64_t max, total;
	int sink_r;             /* the sink's (or the bound's) failure */
	long status;            /* 0 until the body starts */
	struct casfs_buf error_body;
	/* upload source: a buffer, or fd read with pread from fd_start */
	const uint8_t *data;
	int fd;
	off_t fd_start;
	uint64_t size, sent;
};

static size_t on_body(char *p, size_t size, size_t nmemb, void *userdata)
{
	struct request *q = userdata;
	size_t n = size * nmemb;
	if (!q->status)
		curl_easy_getinfo(q->h, CURLINFO_RESPONSE_CODE, &q->status);
	if (q->status >= 300) {
		size_t room = ERROR_BODY_MAX - MIN(q->error_body.len, ERROR_BODY_MAX);
		casfs_buf_append(&q->error_body, p, MIN(n, room));
		return n;
	}
	if (!q->sink)
		return n;
	q->total += n;
	if (q->total > q->max) {
		q->sink_r = casfs_error_set(q->err, -EOVERFLOW, "answer is larger than %llu bytes",
					    (unsigned long long)q->max);
		return 0;
	}
	int r = q->sink(q->userdata, p, n, q->err);
	if (r < 0) {
		q->sink_r = r;
		return 0;
	}
	return n;
}

static size_t on_upload(char *p, size_t size, size_t nmemb, void *userdata)
{
	struct request *q = userdata;
	size_t n = (size_t)MIN((uint64_t)size * nmemb, q->size - q->sent);
	if (!n)
		return 0;
	if (q->fd >= 0) {
		ssize_t k = pread(q->fd, p, n, q->fd_start + (off_t)q->sent);
		if (k <= 0)
			return CURL_READFUNC_ABORT;
		n = (size_t)k;
	} else {
		memcpy(p, q->data + q->sent, n);
	}
	q->sent += n;
	return n;
}

static void setup(struct casfs_transport *t, struct request *q, const char *url, char *errbuf)
{
	CURL *h = q->h;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)t->stall_timeout);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)t->stall_timeout);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "casfs");
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, q);
	errbuf[0] = 0;
}

static bool retryable_status(long s)
{
	return s == 408 || s == 429 || (s >= 500 && s != 501 && s != 505 && s != 511);
}

static bool absent_status(long s)
{
	return s == 404 || s == 410 || s == 401 || s == 403;
}

/* Run a set-up request with retries; 0 on a 2xx answer, -ENOENT for an
 * "absent" status, else an error naming the URL. */
static int perform(struct casfs_transport *t, struct request *q, const char *url,
		   const char *what, char *errbuf)
{
	for (int attempt = 1;; attempt++) {
		q->status = 0;
		q->sent = 0;
		q->error_body.len = 0;
		CURLcode c = curl_easy_perform(q->h);
		long status = 0;
		curl_easy_getinfo(q->h, CURLINFO_RESPONSE_CODE, &status);
		if (q->sink_r < 0)
			return casfs_error_prefix(q->err, q->sink_r, "%s '%s'", what, url);
		bool retry = false;
		if (c == CURLE_OK) {
			if (status >= 200 && status < 300)
				return 0;
			if (absent_status(status))
				return casfs_error_set(q->err, -ENOENT, "%s '%s': HTTP %ld", what, url, status);
			retry = retryable_status(status);
		} else {
			retry = c != CURLE_OPERATION_TIMEDOUT && c != CURLE_TOO_MANY_REDIRECTS &&
				c != CURLE_UNSUPPORTED_PROTOCOL && c != CURLE_URL_MALFORMAT;
		}
		/* Retry only while nothing of the body has been handed out. */
		if (retry && q->total == 0 && attempt < MAX_TRIES) {
			struct timespec ts = { 0, 100000000L * attempt * attempt };
			nanosleep(&ts, NULL);
			continue;
		}
		if (c == CURLE_OPERATION_TIMEDOUT)
			return casfs_error_set(q->err, -ETIMEDOUT, "%s '%s': timed out (no progress for %u s)",
					       what, url, t->stall_timeout);
		if (c != CURLE_OK)
			return casfs_error_set(q->err, -EIO, "%s '%s': %s", what, url,
					       errbuf[0] ? errbuf : curl_easy_strerror(c));
		/* The server's own one-line reason, if it gave one. */
		size_t n = 0;
		while (n < q->error_body.len && q->error_body.data[n] >= 0x20 && q->error_body.data[n] < 0x7f)
			n++;
		return casfs_error_set(q->err, -EIO, "%s '%s': HTTP %ld%s%.*s", what, url, status,
				       n ? ": " : "", (int)n, (const char *)q->error_body.data);
	}
}

int casfs_http_get(struct casfs_transport *t, const char *url, uint64_t max,
		   casfs_transport_sink sink, void *userdata, struct casfs_error *err)
{
	char errbuf[CURL_ERROR_SIZE];
	struct request q = { .sink = sink, .userdata = userdata, .err = err, .max = max, .fd = -1 };
	if (!(q.h = take_handle(t)))
		return casfs_error_set(err, -ENOMEM, "out of memory");
	setup(t, &q, url, errbuf);
	int r = perform(t, &q, url, "GET", errbuf);
	casfs_buf_release(&q.error_body);
	give_handle(t, q.h);
	return r;
}

int casfs_http_exists(struct casfs_transport *t, const char *url, struct casfs_error *err)
{
	char errbuf[CURL_ERROR_SIZE];
	struct request q = { .err = err, .fd = -1 };
	if (!(q.h = take_handle(t)))
		return casfs_error_set(err, -ENOMEM, "out of memory");
	setup(t, &q, url, errbuf);
	curl_easy_setopt(q.h, CURLOPT_NOBODY, 1L);
	int r = perform(t, &q, url, "HEAD", errbuf);
	casfs_buf_release(&q.error_body);
	give_handle(t, q.h);
	return r == 0 ? 1 : r == -ENOENT ? 0 : r;
}

int casfs_http_put(struct casfs_transport *t, const char *url, const char *content_type,
		   const void *data, size_t len, int fd, uint64_t size, struct casfs_error *err)
{
	char errbuf[CURL_ERROR_SIZE];
	struct request q = { .err = err, .data = data, .fd = fd, .size = fd >= 0 ? size : len };
	if (fd >= 0 && (q.fd_start = lseek(fd, 0, SEEK_CUR)) < 0)
		return casfs_error_set(err, -errno, "PUT '%s': cannot seek the upload: %m", url);
	if (!(q.h = take_handle(t)))
		return casfs_error_set(err, -ENOMEM, "out of memory");
	setup(t, &q, url, errbuf);
	struct curl_slist *headers = NULL;
	_cleanup_free_ char *ct = NULL;
	if (content_type && asprintf(&ct, "Content-Type: %s", content_type) > 0)
		headers = curl_slist_append(headers, ct);
	curl_easy_setopt(q.h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(q.h, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(q.h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)q.size);
	curl_easy_setopt(q.h, CURLOPT_READFUNCTION, on_upload);
	curl_easy_setopt(q.h, CURLOPT_READDATA, &q);
	int r = perform(t, &q, url, "PUT", errbuf);
	if (r == -ENOENT) /* 403/404 to an upload is a refusal, not absence */
		r = casfs_error_set(err, -EACCES, "PUT '%s': refused by the server", url);
	curl_slist_free_all(headers);
	casfs_buf_release(&q.error_body);
	give_handle(t, q.h);
	return r;
}
