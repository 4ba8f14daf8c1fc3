/* `casfs mount`: options, mount point checks, the session and its loop,
 * and the --background readiness handshake.
 *
 * Readiness: with --background the parent forks before anything is opened
 * (LMDB handles must not cross a fork) and waits on a pipe.  The child
 * opens the store, mounts, then writes "OK" and closes its end; on failure
 * it writes its one-line error instead and exits.  The parent returns 0
 * only after "OK", so `casfs mount --background M && ls M` never races. */
#include "fuse-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "basic/util.h"
#include "fuse/mount.h"

#define EXIT_USAGE 2
/* libfuse's max_threads when --threads is not given. */
#define LIBFUSE_DEFAULT_THREADS 10
/* Threads reading small files ahead (--prefetch) when not given. */
#define DEFAULT_PREFETCH_THREADS 8
/* Store reads in flight beyond one per FUSE worker: the CLI and other
 * processes sharing the store (store.h, CASFS_STORE_READERS). */
#define READER_HEADROOM 64

static const char usage[] =
	"usage: casfs mount MOUNTPOINT [--store URL] [--list-root] [--threads N]\n"
	"                   [--prefetch N] [--allow-other] [--background] [--no-verify]\n"
	"                   [-o OPTS] [-v]\n"
	"\n"
	"Mount the store read-only on MOUNTPOINT; store paths appear by basename.\n"
	"\n"
	"  --store URL     the store (default: the embedded default store); a binary\n"
	"                  cache is fetched from path by path as they are looked up\n"
	"  --cache DIR, --trusted-public-keys KEYS   as for every command\n"
	"  --blob-store URL, --directory-store URL, --pathinfo-store URL\n"
	"                        as for every command\n"
	"  --list-root     allow listing the root (lists every store path)\n"
	"  --threads N     serve with at most N threads (default: libfuse's, 10)\n"
	"  --prefetch N    read small files ahead of a reader walking a directory\n"
	"                  with N threads (default 8; 0: off)\n"
	"  --allow-other   let other users access the mount (FUSE allow_other)\n"
	"  --background    return once mounted, keep serving in the background\n"
	"  --no-verify     serve blobs without re-hashing them first\n"
	"  -o OPTS         extra FUSE mount options\n"
	"  -v              log what happens (twice: libfuse debug trace)\n"
	"\n"
	"Unmount with 'fusermount3 -u MOUNTPOINT' or by SIGINT/SIGTERM.\n";

struct mount_opts {
	const char *mountpoint;
	const char *store_url;
	const char *cache, *trusted_public_keys;
	const char *blob_store, *directory_store, *pathinfo_store;
	const char *fuse_opts;
	bool list_root, allow_other, background, no_verify;
	unsigned threads;
	unsigned prefetch; /* threads */
	int verbose;
};

/* The one-line error of a failed step, printed by whoever reports it. */
struct failure {
	char msg[1024];
};

static int fail(struct failure *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct failure *f, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->msg, sizeof(f->msg), fmt, ap);
	va_end(ap);
	return 1;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("casfs mount: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs("\n(see 'casfs mount --help')\n", stderr);
	va_end(ap);
	return EXIT_USAGE;
}

/* A decimal number from lo to hi, nothing else. */
static bool parse_count(const char *s, unsigned long lo, unsigned long hi, unsigned long *ret)
{
	char *end;
	errno = 0;
	unsigned long n = strtoul(s, &end, 10);
	if (errno || *end || end == s || s[0] == '-' || n < lo || n > hi)
		return false;
	*ret = n;
	return true;
}

/* 0 to go on, or an exit status (-1 for "--help printed, exit 0"). */
static int parse_args(int argc, char **argv, struct mount_opts *o)
{
	enum { OPT_STORE = 256, OPT_CACHE, OPT_KEYS, OPT_BLOB_STORE, OPT_DIRECTORY_STORE,
	       OPT_PATHINFO_STORE, OPT_LIST_ROOT, OPT_THREADS, OPT_PREFETCH, OPT_ALLOW_OTHER,
	       OPT_BACKGROUND, OPT_NO_VERIFY };
	static const struct option longopts[] = {
		{ "store", required_argument, NULL, OPT_STORE },
		{ "cache", required_argument, NULL, OPT_CACHE },
		{ "trusted-public-keys", required_argument, NULL, OPT_KEYS },
		{ "blob-store", required_argument, NULL, OPT_BLOB_STORE },
		{ "directory-store", required_argument, NULL, OPT_DIRECTORY_STORE },
		{ "pathinfo-store", required_argument, NULL, OPT_PATHINFO_STORE },
		{ "list-root", no_argument, NULL, OPT_LIST_ROOT },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ "prefetch", required_argument, NULL, OPT_PREFETCH },
		{ "allow-other", no_argument, NULL, OPT_ALLOW_OTHER },
		{ "background", no_argument, NULL, OPT_BACKGROUND },
		{ "no-verify", no_argument, NULL, OPT_NO_VERIFY },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	opterr = 0;
	optind = 0; /* glibc: full re-initialisation */
	for (;;) {
		int c = getopt_long(argc, argv, ":o:vh", longopts, NULL);
		if (c == -1)
			break;
		switch (c) {
		case OPT_STORE:
			o->store_url = optarg;
			break;
		case OPT_CACHE:
			o->cache = optarg;
			break;
		case OPT_KEYS:
			o->trusted_public_keys = optarg;
			break;
		case OPT_BLOB_STORE:
			o->blob_store = optarg;
			break;
		case OPT_DIRECTORY_STORE:
			o->directory_store = optarg;
			break;
		case OPT_PATHINFO_STORE:
			o->pathinfo_store = optarg;
			break;
		case OPT_LIST_ROOT:
			o->list_root = true;
			break;
		case OPT_THREADS: {
			unsigned long n;
			if (!parse_count(optarg, 1, 1024, &n))
				return usage_error("--threads wants a number from 1 to 1024, not '%s'",
						   optarg);
			o->threads = (unsigned)n;
			break;
		}
		case OPT_PREFETCH: {
			unsigned long n;
			if (!parse_count(optarg, 0, 64, &n))
				return usage_error("--prefetch wants a number from 0 to 64, not '%s'",
						   optarg);
			o->prefetch = (unsigned)n;
			break;
		}
		case OPT_ALLOW_OTHER:
			o->allow_other = true;
			break;
		case OPT_BACKGROUND:
			o->background = true;
			break;
		case OPT_NO_VERIFY:
			o->no_verify = true;
			break;
		case 'o':
			if (o->fuse_opts)
				return usage_error("-o given twice; separate options by commas");
			o->fuse_opts = optarg;
			break;
		case 'v':
			o->verbose++;
			break;
		case 'h':
			fputs(usage, stdout);
			return -1;
		case ':':
			return usage_error("option '%s' needs a value", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return usage_error("missing MOUNTPOINT");
	if (optind + 1 < argc)
		return usage_error("one MOUNTPOINT only, got '%s' too", argv[optind + 1]);
	o->mountpoint = argv[optind];
	return 0;
}

/* A mount point must exist, be a directory, and not be a mount already. */
static int check_mountpoint(const char *path, char **ret_abs, struct failure *f)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		if (errno == ENOENT)
			return fail(f, "mount point '%s' does not exist", path);
		if (errno == ENOTCONN)
			return fail(f, "mount point '%s' is a dead FUSE mount; unmount it first "
				    "('fusermount3 -u %s')", path, path);
		return fail(f, "cannot access mount point '%s': %s", path, strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return fail(f, "mount point '%s' is not a directory", path);
	char *abs = realpath(path, NULL);
	if (!abs)
		return fail(f, "cannot resolve mount point '%s': %s", path, strerror(errno));

	bool busy = false;
	struct statx stx;
	if (statx(AT_FDCWD, abs, AT_NO_AUTOMOUNT, STATX_BASIC_STATS, &stx) == 0 &&
	    (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)) {
		busy = stx.stx_attributes & STATX_ATTR_MOUNT_ROOT;
	} else {
		/* Older kernels: a mount root sits on another device than its parent. */
		char parent[PATH_MAX + 4];
		struct stat pst;
		snprintf(parent, sizeof(parent), "%s/..", abs);
		busy = stat(parent, &pst) == 0 && pst.st_dev != st.st_dev;
	}
	if (busy) {
		/* A FUSE mount whose daemon died still answers stat from the
		 * kernel's cache; statfs always asks the daemon. */
		struct statfs sfs;
		if (statfs(abs, &sfs) < 0 && errno == ENOTCONN)
			fail(f, "mount point '%s' is a dead FUSE mount; unmount it first "
			     "('fusermount3 -u %s')", path, path);
		else
			fail(f, "mount point '%s' is busy: something is already mounted there", path);
		free(abs);
		return 1;
	}
	*ret_abs = abs;
	return 0;
}

static void log_line(void *userdata, enum casfs_fs_log_level level, const char *msg)
{
	const struct mount_opts *o = userdata;
	if (level == CASFS_FS_LOG_ERROR || o->verbose > (int)level - 1)
		fprintf(stderr, "casfs mount: %s\n", msg);
}

/* The sysfs readahead knob of the filesystem mounted at `abs`, from
 * /proc/self/mountinfo ("ID PARENT MAJ:MIN ROOT MOUNTPOINT ..."; the mount
 * point has space, tab, newline and backslash escaped as \ooo).  Asking the
 * kernel (stat) would wait for the daemon, which is not serving yet. */
static bool find_readahead_knob(const char *abs, char *ret, size_t size)
{
	FILE *mi = fopen("/proc/self/mountinfo", "re");
	if (!mi)
		return false;
	char *line = NULL, dev[32] = "";
	size_t cap = 0;
	while (getline(&line, &cap, mi) > 0) {
		char d[32], mp[PATH_MAX + 1];
		if (sscanf(line, "%*s %*s %31s %*s %4096s", d, mp) != 2)
			continue;
		/* unescape in place */
		char *w = mp;
		for (const char *r = mp; *r; r++) {
			if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
			    r[3] >= '0' && r[3] <= '7') {
				*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
				r += 3;
			} else {
				*w++ = *r;
			}
		}
		*w = 0;
		if (strcmp(mp, abs) == 0)
			snprintf(dev, sizeof(dev), "%s", d); /* the last one is ours */
	}
	free(line);
	fclose(mi);
	if (!dev[0])
		return false;
	return snprintf(ret, size, "/sys/class/bdi/%s/read_ahead_kb", dev) < (int)size;
}

/* Build the libfuse argument vector.  -1 on OOM. */
static int fuse_argv(const struct mount_opts *o, struct fuse_args *args)
{
	char base[256];
	snprintf(base, sizeof(base), "ro,default_permissions,fsname=casfs,subtype=casfs%s",
		 o->allow_other ? ",allow_other" : "");
	if (fuse_opt_add_arg(args, "casfs") < 0 || fuse_opt_add_arg(args, "-o") < 0 ||
	    fuse_opt_add_arg(args, base) < 0)
		return -1;
	if (o->fuse_opts &&
	    (fuse_opt_add_arg(args, "-o") < 0 || fuse_opt_add_arg(args, o->fuse_opts) < 0))
		return -1;
	if (o->verbose >= 2 && fuse_opt_add_arg(args, "-d") < 0)
		return -1;
	return 0;
}

/* Mount and serve.  `ready_fd` (background) gets "OK" once mounted.
 * Returns an exit status; on status 1 before readiness, f says why. */
static int serve(struct mount_opts *o, int ready_fd, struct failure *f)
{
	_cleanup_free_ char *abs = NULL;
	if (check_mountpoint(o->mountpoint, &abs, f))
		return 1;
	struct stat st;
	if (stat("/dev/fuse", &st) < 0)
		return fail(f, "/dev/fuse is missing (is the fuse kernel module loaded?)");

	struct casfs_error err = { 0 };
	struct casfs_store *store = NULL;
	/* A request runs at most one store read at a time, on its worker
	 * thread, and so does a prefetch thread: they bound the reads in
	 * flight. */
	unsigned readers = (o->threads ? o->threads : LIBFUSE_DEFAULT_THREADS) + o->prefetch +
			   READER_HEADROOM;
	readers = MAX(readers, (unsigned)CASFS_STORE_DEFAULT_READERS);
	struct casfs_store_options so = {
		.flags = CASFS_STORE_READONLY | CASFS_STORE_READERS(readers),
		.cache = o->cache,
		.trusted_public_keys = o->trusted_public_keys,
		.blob_store = o->blob_store,
		.directory_store = o->directory_store,
		.pathinfo_store = o->pathinfo_store,
	};
	int r = casfs_store_open_with(o->store_url, &so, &store, &err);
	if (r < 0)
		return fail(f, "cannot open store: %s", casfs_error_message(&err, r));

	struct casfs_fs_options fo = { .list_root = o->list_root, .no_verify = o->no_verify,
				       .prefetch_threads = o->prefetch,
				       .log = log_line, .log_userdata = o };
	struct casfs_fs *fs = NULL;
	struct fuse_session *se = NULL;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct casfs_fuse ctx = { 0 };
	int status = 1;
	if (casfs_fs_new(store, &fo, &fs) < 0 || fuse_argv(o, &args) < 0) {
		fail(f, "out of memory");
		goto out;
	}
	ctx.fs = fs;
	casfs_fuse_handles_init(&ctx.handles);
	se = fuse_session_new(&args, &casfs_fuse_ops, sizeof(casfs_fuse_ops), &ctx);
	if (!se) {
		fail(f, "invalid FUSE options '%s'", o->fuse_opts ? o->fuse_opts : "");
		goto out;
	}
	if (fuse_set_signal_handlers(se) < 0) {
		fail(f, "cannot install signal handlers");
		goto out;
	}
	if (fuse_session_mount(se, abs) < 0) {
		fail(f, "cannot mount on '%s' (libfuse said why above)", o->mountpoint);
		fuse_remove_signal_handlers(se);
		goto out;
	}
	ctx.readahead_pending =
		find_readahead_knob(abs, ctx.readahead_knob, sizeof(ctx.readahead_knob));
	if (o->verbose)
		fprintf(stderr, "casfs mount: serving %s on %s\n", store->url, abs);
	if (ready_fd >= 0) {
		if (write(ready_fd, "OK", 2) != 2) {
			/* The parent is gone: nobody will know we are mounted. */
			fail(f, "lost the parent process");
			fuse_session_unmount(se);
			fuse_remove_signal_handlers(se);
			goto out;
		}
		close(ready_fd);
		if (chdir("/") < 0) {
			/* not fatal: only keeps a directory busy */
		}
	}

	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	if (!cfg) {
		r = -ENOMEM;
	} else {
		if (o->threads)
			fuse_loop_cfg_set_max_threads(cfg, o->threads);
		r = fuse_session_loop_mt(se, cfg);
		fuse_loop_cfg_destroy(cfg);
	}
	fuse_session_unmount(se);
	fuse_remove_signal_handlers(se);
	/* After readiness, report here: nobody else will. */
	if (r < 0)
		fprintf(stderr, "casfs mount: serving %s stopped: %s\n", abs, strerror(-r));
	else if (o->verbose)
		fprintf(stderr, "casfs mount: unmounted %s\n", abs);
	status = r < 0 ? 1 : 0;
	f->msg[0] = 0;
out:
	if (se)
		fuse_session_destroy(se);
	if (ctx.fs)
		casfs_fuse_handles_release(&ctx.handles, fs);
	fuse_opt_free_args(&args);
	casfs_fs_free(fs);
	casfs_store_free(store);
	return status;
}

static void detach_stdio(void)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return;
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
}

static int run_background(struct mount_opts *o)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		fprintf(stderr, "casfs mount: cannot create a pipe: %s\n", strerror(errno));
		return 1;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "casfs mount: cannot fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		close(p[0]);
		setsid();
		/* A caller capturing our stdout must see it close. */
		detach_stdio();
		struct failure f = { { 0 } };
		int status = serve(o, p[1], &f);
		if (f.msg[0]) {
			/* Not yet ready: the parent reports. */
			size_t n = strlen(f.msg);
			if (write(p[1], f.msg, n) != (ssize_t)n) {
				/* the parent reports a bare failure */
			}
		}
		/* exit, not _exit: stdio was flushed before the fork, and the
		 * sanitizers report at exit. */
		exit(status);
	}

	close(p[1]);
	char buf[1100];
	size_t len = 0;
	for (;;) {
		ssize_t n = read(p[0], buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == sizeof(buf) - 1)
			break;
	}
	close(p[0]);
	buf[len] = 0;
	if (len >= 2 && memcmp(buf, "OK", 2) == 0)
		return 0;
	/* The child failed (and exits, or has exited): reap it. */
	int ws = 0;
	while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
		;
	if (len)
		fprintf(stderr, "casfs mount: %s\n", buf);
	else if (WIFSIGNALED(ws))
		fprintf(stderr, "casfs mount: the daemon died from signal %d before mounting\n",
			WTERMSIG(ws));
	else
		fprintf(stderr, "casfs mount: the daemon exited before mounting\n");
	return 1;
}

int casfs_mount_main(int argc, char **argv)
{
	struct mount_opts o = { .prefetch = DEFAULT_PREFETCH_THREADS };
	int r = parse_args(argc, argv, &o);
	if (r)
		return r < 0 ? 0 : r;
	if (o.background)
		return run_background(&o);
	struct failure f = { { 0 } };
	r = serve(&o, -1, &f);
	if (r && f.msg[0])
		fprintf(stderr, "casfs mount: %s\n", f.msg);
	return r;
}
