/* One-line error messages that travel beside the -errno convention.
 *
 * Library functions return >= 0 on success and -errno on failure (see
 * STYLE rule 3).  Where the caller deserves to know *what* was wrong (which
 * name, which digest, which byte offset) the function also takes a
 * `struct casfs_error *err` (may be NULL) and fills it with one line.
 * Only the binaries print it.  Not thread-safe per object: one per caller. */
#pragma once

#include <stdarg.h>

struct casfs_error {
	int code;        /* the -errno that was returned, 0 if none */
	char msg[512];   /* one line, no trailing newline; "" if none */
};

/* Record a message (printf format) and return `code` unchanged, so that
 * `return casfs_error_set(err, -EBADMSG, "...")` reads naturally.  The
 * first message set wins: an outer layer does not overwrite the inner,
 * more precise one; use casfs_error_prefix() to add context. */
int casfs_error_set(struct casfs_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prepend "prefix: " to an existing message (or set it if empty). */
int casfs_error_prefix(struct casfs_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The message, or strerror(-code) when no message was recorded. */
const char *casfs_error_message(const struct casfs_error *err, int code);
