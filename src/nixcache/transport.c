/* Binary cache transports: path checks, dispatch, and the file:// kind. */
#include "transport-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../basic/io.h"
#include "../basic/util.h"

int casfs_transport_open(const char *base, unsigned stall_timeout, struct casfs_transport **ret,
			 struct casfs_error *err)
{
	bool http = !strncmp(base, "http://", 7) || !strncmp(base, "https://", 8);
	if (!http && strncmp(base, "file://", 7) != 0)
		return casfs_error_set(err, -EINVAL, "'%s' is not a file:// or http(s):// URL", base);
	if (!http && base[7] != '/')
		return casfs_error_set(err, -EINVAL, "'%s': file:// needs an absolute path (file:///DIR)",
				       base);
	if (http) {
		int r = casfs_http_init(err);
		if (r < 0)
			return r;
	}
	struct casfs_transport *t = calloc(1, sizeof(*t));
	if (!t || !(t->base = strdup(base)) || (!http && !(t->dir = strdup(base + 7)))) {
		casfs_transport_free(t);
		return casfs_error_set(err, -ENOMEM, "out of memory");
	}
	/* No trailing slash: paths are joined with one. */
	char *b = http ? t->base : t->dir;
	for (size_t n = strlen(b); n > 1 && b[n - 1] == '/'; n--)
		b[n - 1] = 0;
	t->http = http;
	t->stall_timeout = stall_timeout ? stall_timeout : CASFS_TRANSPORT_DEFAULT_STALL_TIMEOUT;
	pthread_mutex_init(&t->lock, NULL);
	*ret = t;
	return 0;
}

void casfs_transport_free(struct casfs_transport *t)
{
	if (!t)
		return;
	if (t->http)
		casfs_http_release_handles(t);
	pthread_mutex_destroy(&t->lock);
	free(t->idle);
	free(t->base);
	free(t->dir);
	free(t);
}

const char *casfs_transport_base(const struct casfs_transport *t)
{
	return t->base;
}

static bool is_absolute_url(const char *p)
{
	return !strncmp(p, "http://", 7) || !strncmp(p, "https://", 8) || !strncmp(p, "file://", 7);
}

/* A relative cache path: no "..", ".", empty components, NUL-free by
 * construction, nothing that could leave the cache root. */
static int check_path(const char *path, struct casfs_error *err)
{
	const char *p = path;
	if (!*p || *p == '/')
		goto bad;
	for (;;) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			goto bad;
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)p[i] < 0x20 || p[i] == '\\')
				goto bad;
		if (!e)
			return 0;
		p = e + 1;
	}
bad:
	return casfs_error_set(err, -EINVAL, "invalid binary cache path '%.200s'", path);
}

/* The full URL (http) or file name (file) of `path`, malloc'd. */
static int locate(struct casfs_transport *t, const char *path, char **ret, struct casfs_error *err)
{
	if (is_absolute_url(path)) {
		if (!t->http && strncmp(path, "file://", 7) != 0)
			return casfs_error_set(err, -EINVAL, "'%.200s': a file:// cache cannot point to %s",
					       path, "another kind of URL");
		*ret = strdup(t->http ? path : path + 7);
		return *ret ? 0 : -ENOMEM;
	}
	int r = check_path(path, err);
	if (r < 0)
		return r;
	return asprintf(ret, "%s/%s", t->http ? t->base : t->dir, path) < 0 ? -ENOMEM : 0;
}

static int file_get(const char *name, uint64_t max, casfs_transport_sink sink, void *userdata,
		    struct casfs_error *err)
{
	_cleanup_close_ int fd = open(name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return casfs_error_set(err, -errno, errno == ENOENT ? "'%s' does not exist" : "cannot open '%s': %m", name);
	size_t cap = 1 << 20;
	_cleanup_free_ uint8_t *buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	uint64_t total = 0;
	for (;;) {
		ssize_t n = read(fd, buf, cap);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return casfs_error_set(err, -errno, "cannot read '%s': %m", name);
		if (n == 0)
			return 0;
		total += (uint64_t)n;
		if (total > max)
			return casfs_error_set(err, -EOVERFLOW, "'%s' is larger than %llu bytes", name,
					       (unsigned long long)max);
		int r = sink(userdata, buf, (size_t)n, err);
		if (r < 0)
			return r;
	}
}

static int mkdirs_for(const char *name)
{
	_cleanup_free_ char *d = strdup(name);
	if (!d)
		return -ENOMEM;
	for (char *p = d + 1; (p = strchr(p, '/')); p++) {
		*p = 0;
		if (mkdir(d, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return 0;
}

static int copy_fd(int out, int in, uint64_t size)
{
	while (size) {
		ssize_t k = copy_file_range(in, NULL, out, NULL, (size_t)MIN(size, (uint64_t)1 << 30), 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS)) {
			uint8_t buf[1 << 16];
			ssize_t n = read(in, buf, (size_t)MIN(size, sizeof(buf)));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return n < 0 ? -errno : -EIO;
			int r = casfs_write_all(out, buf, (size_t)n);
			if (r < 0)
				return r;
			k = n;
		} else if (k <= 0) {
			return k < 0 ? -errno : -EIO;
		}
		size -= (uint64_t)k;
	}
	return 0;
}

static int file_put(const char *name, const void *data, size_t len, int fd, uint64_t size,
		    struct casfs_error *err)
{
	int r = mkdirs_for(name);
	if (r < 0)
		return casfs_error_set(err, r, "cannot create the directory of '%s': %s", name, strerror(-r));
	_cleanup_free_ char *tmp = NULL;
	if (asprintf(&tmp, "%s.tmp-XXXXXX", name) < 0)
		return -ENOMEM;
	_cleanup_close_ int out = mkostemp(tmp, O_CLOEXEC);
	if (out < 0)
		return casfs_error_set(err, -errno, "cannot create '%s': %m", tmp);
	r = fd >= 0 ? copy_fd(out, fd, size) : casfs_write_all(out, data, len);
	if (r >= 0 && fchmod(out, 0644) < 0)
		r = -errno;
	if (r >= 0 && fsync(out) < 0)
		r = -errno;
	if (r >= 0 && rename(tmp, name) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return casfs_error_set(err, r, "cannot write '%s': %s", name, strerror(-r));
	}
	return 0;
}

int casfs_transport_get(struct casfs_transport *t, const char *path, uint64_t max,
			casfs_transport_sink sink, void *userdata, struct casfs_error *err)
{
	_cleanup_free_ char *where = NULL;
	int r = locate(t, path, &where, err);
	if (r < 0)
		return r;
	return t->http ? casfs_http_get(t, where, max, sink, userdata, err)
		       : file_get(where, max, sink, userdata, err);
}

static int buf_sink(void *userdata, const void *p, size_t n, struct casfs_error *err)
{
	(void)err;
	return casfs_buf_append(userdata, p, n);
}

int casfs_transport_get_buf(struct casfs_transport *t, const char *path, size_t max,
			    struct casfs_buf *out, struct casfs_error *err)
{
	return casfs_transport_get(t, path, max, buf_sink, out, err);
}

int casfs_transport_exists(struct casfs_transport *t, const char *path, struct casfs_error *err)
{
	_cleanup_free_ char *where = NULL;
	int r = locate(t, path, &where, err);
	if (r < 0)
		return r;
	if (t->http)
		return casfs_http_exists(t, where, err);
	struct stat st;
	if (stat(where, &st) == 0)
		return 1;
	return errno == ENOENT ? 0 : casfs_error_set(err, -errno, "cannot stat '%s': %m", where);
}

int casfs_transport_put(struct casfs_transport *t, const char *path, const char *content_type,
			const void *data, size_t len, struct casfs_error *err)
{
	_cleanup_free_ char *where = NULL;
	int r = locate(t, path, &where, err);
	if (r < 0)
		return r;
	return t->http ? casfs_http_put(t, where, content_type, data, len, -1, 0, err)
		       : file_put(where, data, len, -1, 0, err);
}

int casfs_transport_put_fd(struct casfs_transport *t, const char *path, const char *content_type,
			   int fd, uint64_t size, struct casfs_error *err)
{
	_cleanup_free_ char *where = NULL;
	int r = locate(t, path, &where, err);
	if (r < 0)
		return r;
	return t->http ? casfs_http_put(t, where, content_type, NULL, 0, fd, size, err)
		       : file_put(where, NULL, 0, fd, size, err);
}
