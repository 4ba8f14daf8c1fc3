#include "error.h"

#include <stdio.h>
#include <string.h>

int casfs_error_set(struct casfs_error *err, int code, const char *fmt, ...)
{
	if (!err || err->msg[0])
		return code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	err->code = code;
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
	if (err->msg[0])
		memcpy(old, err->msg, sizeof(old));
	else
		snprintf(old, sizeof(old), "%s", strerror(-code));
	snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
	err->code = code;
	return code;
}

const char *casfs_error_message(const struct casfs_error *err, int code)
{
	if (err && err->msg[0])
		return err->msg;
	return strerror(code < 0 ? -code : code);
}
