/* One-line error messages that travel beside the -errno convention.
 *
 * Library functions return >= 0 on success and -errno on failure (see
 * STYLE rule 3).  Where the caller deserves to know *what* was wrong (which
 * name, which digest, which byte offset) the function also takes a
 * `struct casfs_error *err` (may be NULL) and fills it with one line.
 * Only the binaries print it.  Not thread-safe per object: one per caller.
 *
 * The message belongs to a code: `code` is always the -errno that `msg`
 * describes, and a message is only ever reported for that code.  A
 * function that fails returns the code it recorded (the setters return it),
 * so a caller (a CLI, a server mapping the code to a protocol status) reads
 * the return value and casfs_error_message(err, return value): a stale
 * message left by an earlier failure the callee recovered from, or one for
 * another code, is never shown in place of the real one. */
#pragma once

#include <stdarg.h>

struct casfs_error {
	int code;        /* the -errno that msg describes, 0 if none */
	char msg[512];   /* one line, no trailing newline; "" if none */
};

/* Record a message (printf format) for `code` and return `code`, so that
 * `return casfs_error_set(err, -EBADMSG, "...")` reads naturally.  If a
 * message for the same code is already there it is kept: an outer layer
 * does not overwrite the inner, more precise one (use casfs_error_prefix()
 * to add context).  A message for another code is replaced. */
int casfs_error_set(struct casfs_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prepend "prefix: " to the message for `code` (or to strerror(code) when
 * there is none for that code) and return `code`. */
int casfs_error_prefix(struct casfs_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Forget any message: for a caller that recovers from a failure it was
 * told about (say, -ENOENT meaning "absent") and goes on. */
void casfs_error_clear(struct casfs_error *err);

/* The message recorded for `code`, or strerror(-code) when there is none
 * for that code (none at all, or one for another code). */
const char *casfs_error_message(const struct casfs_error *err, int code);

/* For a layer whose hooks return only -errno (the service tables): print
 * the message for `code` once, as "casfs: <message>", on stderr, so that a
 * remote's own words (which server, which status) are not lost. */
void casfs_log_error(const struct casfs_error *err, int code);
