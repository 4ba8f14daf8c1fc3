/* The server skeleton (STYLE rule 21): readiness, --background, signals,
 * for any casfs server (serve-cache now; the gRPC daemon later).
 *
 * Sequence in the server's main():
 *
 *   casfs_daemon_begin(&d, background)    before any thread exists:
 *                                         blocks SIGTERM/SIGINT/SIGHUP (threads
 *                                         started later inherit the mask) and
 *                                         ignores SIGPIPE; with `background`
 *                                         forks: the parent waits in here for
 *                                         the child's readiness and never
 *                                         returns (exit 0 once the child is
 *                                         ready, having printed its line;
 *                                         exit 1 with the child's error line
 *                                         or "exited before it was ready");
 *                                         the child returns and goes on
 *   ... open the store, listen ...
 *   casfs_daemon_ready(&d, "http://…")    print the line on stdout (through
 *                                         the parent when backgrounded; the
 *                                         child then detaches: setsid,
 *                                         stdin/stdout to /dev/null; stderr
 *                                         stays, for logs)
 *   or casfs_daemon_failed(&d, msg)       startup failed: the one error line
 *                                         (stderr, or the parent's stderr;
 *                                         NULL when it was printed already)
 *   casfs_daemon_wait(&d)                 until SIGTERM, SIGINT or SIGHUP;
 *                                         returns the signal number
 *
 * Readiness travels on a pipe: "R <line>\n" or "E <message>\n".  Not
 * thread-safe; one per process. */
#pragma once

#include <stdbool.h>

struct casfs_daemon {
	bool background;
	int ready_fd; /* child's end of the readiness pipe, or -1 */
};

/* Returns 0 (foreground, or in the child) or -errno (fork/pipe failed;
 * nothing forked). */
int casfs_daemon_begin(struct casfs_daemon *d, bool background);
void casfs_daemon_ready(struct casfs_daemon *d, const char *line);
void casfs_daemon_failed(struct casfs_daemon *d, const char *message);
int casfs_daemon_wait(struct casfs_daemon *d);
