#include "error.h"

#include <stdio.h>
#include <string.h>

static void set_message(struct casfs_error *err, int code, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void set_message(struct casfs_error *err, int code, const char *fmt, va_list ap)
{
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	err->code = code;
}

int casfs_error_set(struct casfs_error *err, int code, const char *fmt, ...)
{
	if (!err || (err->msg[0] && err->code == code))
		return code;
	va_list ap;
	va_start(ap, fmt);
	set_message(err, code, fmt, ap);
	va_end(ap);
	return code;
}

int casfs_error_prefix(struct casfs_error *err, int code, const char *fmt, ...)
{
	if (!err)
		return code;
	char prefix[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	char old[sizeof(err->msg)];
	snprintf(old, sizeof(old), "%s", casfs_error_message(err, code));
	/* "prefix: old", cut at the buffer's end */
	size_t n = (size_t)snprintf(err->msg, sizeof(err->msg), "%s: ", prefix);
	if (n < sizeof(err->msg)) {
		size_t len = strnlen(old, sizeof(err->msg) - 1 - n);
		memcpy(err->msg + n, old, len);
		err->msg[n + len] = 0;
	}
	err->code = code;
	return code;
}

void casfs_error_clear(struct casfs_error *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = 0;
	}
}

const char *casfs_error_message(const struct casfs_error *err, int code)
{
	if (err && err->msg[0] && err->code == code)
		return err->msg;
	return strerror(code < 0 ? -code : code);
}

void casfs_log_error(const struct casfs_error *err, int code)
{
	fprintf(stderr, "casfs: %s\n", casfs_error_message(err, code));
}
