/* `casfs mount`: serve a store as a read-only FUSE filesystem.
 *
 *   casfs mount MOUNTPOINT [--store URL] [--list-root] [--threads N]
 *               [--allow-other] [--background] [--no-verify] [-o OPTS]
 *               [-v] [--help]
 *
 * argv[0] is the command name ("mount"); options and the mount point may
 * come in any order.  Foreground (default): mounts, serves until
 * SIGINT/SIGTERM/SIGHUP or an external unmount, unmounts, returns.
 * --background: forks; the child mounts and serves, the parent returns 0
 * only once the filesystem is mounted, or 1 with the child's error.
 *
 * Returns the exit status: 0 success, 1 error (one line on stderr,
 * "casfs mount: <problem>"), 2 usage error.  Store damage met while
 * serving (a blob failing verification, a missing directory) is logged to
 * stderr, one line each, naming the digest; -v adds informational lines,
 * -v -v the libfuse debug trace.  The background daemon keeps stderr (so
 * redirect it to a file, not a pipe you wait on) and detaches stdin and
 * stdout. */
#pragma once

int casfs_mount_main(int argc, char **argv);
