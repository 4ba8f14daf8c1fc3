/* The local store's unsynced records: which blob files may have reached
 * their names before their bytes reached the disk (layout and protocol in
 * local-store.h).
 *
 * Per process, a record's life is one sync cycle:
 *
 *   no record --first link--> record created (durable), links counted
 *       ^                          |
 *       |                          | sync hook: snapshot link_gen, syncfs()
 *       +-- unlink the record <----+ if link_gen is still the snapshot
 *                                    (else the record stays for the next)
 *
 * Why a rwlock: a committer holds the read side from "ensure the record"
 * until its link is made, so the sync hook, taking the write side, sees
 * only links that are complete (and so covered by the syncfs that follows)
 * and never drops the record under a link in flight. */
#include "../basic/io.h"
#include "local-store-internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../basic/encoding.h"
#include "../basic/util.h"
#include "../digest/digest.h"

#define RECORD_HEADER "casfs-unsynced 1\n"
#define BOOT_ID_PATH "/proc/sys/kernel/random/boot_id"
/* A blob file linked while a record was in place has a ctime >= the
 * record's "since", up to the file system's coarse clock and small clock
 * steps.  After a crash, re-hashing one more minute of files costs little. */
#define SINCE_SLACK_NS (60 * 1000000000LL)
#define HASH_CHUNK (256 * 1024)

static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000LL + t->tv_nsec;
}

static void read_boot_id(char out[static 40])
{
	out[0] = 0;
	_cleanup_close_ int fd = open(BOOT_ID_PATH, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	char buf[64];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return;
	buf[n] = 0;
	size_t len = strspn(buf, "0123456789abcdef-");
	if (len == 0 || len >= 40 || (buf[len] != '\n' && buf[len] != 0))
		return;
	memcpy(out, buf, len);
	out[len] = 0;
}

int casfs_local_unsynced_init(struct casfs_local_store *ls)
{
	pthread_rwlockattr_t attr;
	int r = pthread_rwlockattr_init(&attr);
	if (r)
		return -r;
	/* glibc's default prefers readers: a stream of committers could then
	 * keep the sync hook waiting for ever. */
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	r = pthread_rwlock_init(&ls->link_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (r)
		return -r;
	r = pthread_mutex_init(&ls->record_mutex, NULL);
	if (r) {
		pthread_rwlock_destroy(&ls->link_lock);
		return -r;
	}
	ls->record_fd = -1;
	ls->link_gen = 0;
	read_boot_id(ls->boot_id);
	return 0;
}

void casfs_local_unsynced_release(struct casfs_local_store *ls)
{
	/* A record still here covers links not yet synced: leave the file,
	 * the next opener recovers it (cheaply, in the same boot). */
	if (ls->record_fd >= 0)
		close(ls->record_fd);
	ls->record_fd = -1;
	pthread_mutex_destroy(&ls->record_mutex);
	pthread_rwlock_destroy(&ls->link_lock);
}

/* Make a new record: written and fsync'd under a temp name in tmp/ with
 * its flock already held, then linked into unsynced/ and the directory
 * fsync'd, so a recovering opener only ever sees complete, locked
 * records.  Called with link_lock held for reading and record_mutex held. */
static int record_create(struct casfs_local_store *ls)
{
	char name[32];
	_cleanup_close_ int fd = casfs_local_temp_file(ls->tmp_fd, "record", name);
	if (fd < 0)
		return fd;
	int r = 0;
	struct stat st;
	struct timespec now;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0 || fstat(fd, &st) < 0 ||
	    clock_gettime(CLOCK_REALTIME, &now) < 0)
		r = casfs_neg_errno();
	if (r >= 0) {
		/* "since" is the earlier of the system clock and the file
		 * system's own (coarse, or a server's) clock. */
		const struct timespec *since = ts_ns(&st.st_ctim) < ts_ns(&now) ? &st.st_ctim : &now;
		char text[160];
		int len = snprintf(text, sizeof(text), RECORD_HEADER "boot-id %s\nsince %lld.%09ld\n",
				   ls->boot_id[0] ? ls->boot_id : "unknown", (long long)since->tv_sec,
				   (long)since->tv_nsec);
		r = casfs_write_all(fd, text, (size_t)len);
	}
	if (r >= 0 && fsync(fd) < 0)
		r = casfs_neg_errno();
	if (r >= 0 && linkat(ls->tmp_fd, name, ls->unsynced_fd, name, 0) < 0)
		r = casfs_neg_errno();
	unlinkat(ls->tmp_fd, name, 0);
	if (r >= 0 && fsync(ls->unsynced_fd) < 0) {
		r = casfs_neg_errno();
		unlinkat(ls->unsynced_fd, name, 0);
	}
	if (r < 0)
		return r;
	memcpy(ls->record_name, name, sizeof(name));
	__atomic_store_n(&ls->record_fd, TAKE_FD(fd), __ATOMIC_RELEASE);
	return 0;
}

int casfs_local_link_begin(struct casfs_local_store *ls)
{
	int r = pthread_rwlock_rdlock(&ls->link_lock);
	if (r)
		return -r;
	if (__atomic_load_n(&ls->record_fd, __ATOMIC_ACQUIRE) < 0) {
		pthread_mutex_lock(&ls->record_mutex);
		if (__atomic_load_n(&ls->record_fd, __ATOMIC_ACQUIRE) < 0)
			r = record_create(ls);
		pthread_mutex_unlock(&ls->record_mutex);
		if (r < 0) {
			pthread_rwlock_unlock(&ls->link_lock);
			return r;
		}
	}
	__atomic_add_fetch(&ls->link_gen, 1, __ATOMIC_RELAXED);
	return 0;
}

void casfs_local_link_end(struct casfs_local_store *ls)
{
	pthread_rwlock_unlock(&ls->link_lock);
}

int casfs_local_unsynced_sync(struct casfs_local_store *ls)
{
	/* The write side waits for links in flight: every link counted in
	 * `gen` is complete, so the syncfs below covers it. */
	pthread_rwlock_wrlock(&ls->link_lock);
	uint64_t gen = __atomic_load_n(&ls->link_gen, __ATOMIC_RELAXED);
	pthread_rwlock_unlock(&ls->link_lock);
	if (syncfs(ls->dir_fd) < 0)
		return casfs_neg_errno();
	pthread_rwlock_wrlock(&ls->link_lock);
	int fd = __atomic_load_n(&ls->record_fd, __ATOMIC_ACQUIRE);
	if (fd >= 0 && __atomic_load_n(&ls->link_gen, __ATOMIC_RELAXED) == gen) {
		/* No fsync: a lost unlink only costs a re-hash after a crash. */
		unlinkat(ls->unsynced_fd, ls->record_name, 0);
		close(fd);
		__atomic_store_n(&ls->record_fd, -1, __ATOMIC_RELEASE);
	}
	pthread_rwlock_unlock(&ls->link_lock);
	return 0;
}

/* ---- recovery ------------------------------------------------------------ */

/* Parse "since" digits: `n` decimal digits exactly when n > 0, else 1..18. */
static const char *parse_digits(const char *p, int n, long long *ret)
{
	long long v = 0;
	int k = 0;
	while (p[k] >= '0' && p[k] <= '9' && k < (n > 0 ? n : 18))
		v = v * 10 + (p[k++] - '0');
	if (k == 0 || (n > 0 && k != n))
		return NULL;
	*ret = v;
	return p + k;
}

/* Read a record.  Anything malformed reads as "unknown boot, since 0":
 * the caller then re-hashes every blob file, the safe answer. */
static void record_parse(int fd, char boot[static 40], int64_t *since_ns)
{
	boot[0] = 0;
	*since_ns = 0;
	char buf[256];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return;
	buf[n] = 0;
	size_t hl = strlen(RECORD_HEADER);
	if ((size_t)n < hl || memcmp(buf, RECORD_HEADER, hl) != 0 ||
	    strncmp(buf + hl, "boot-id ", 8) != 0)
		return;
	const char *id = buf + hl + 8;
	size_t idlen = strcspn(id, "\n");
	if (idlen == 0 || idlen >= 40 || id[idlen] != '\n' || strncmp(id + idlen + 1, "since ", 6))
		return;
	long long sec, nsec;
	const char *p = parse_digits(id + idlen + 7, 0, &sec);
	if (!p || *p != '.' || !(p = parse_digits(p + 1, 9, &nsec)) || strcmp(p, "\n") != 0)
		return;
	memcpy(boot, id, idlen);
	boot[idlen] = 0;
	*since_ns = (int64_t)sec * 1000000000LL + nsec;
}

/* 0 if the file at `name` in `dir_fd` hashes to `digest`, -EBADMSG if not,
 * -EIO if its bytes cannot be read (both mean: not a good blob), other
 * -errno if it could not be checked. */
static int check_blob(int dir_fd, const char *name, const uint8_t digest[CASFS_B3_LEN],
		      uint8_t *buf)
{
	_cleanup_close_ int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return casfs_neg_errno();
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	struct casfs_b3_hasher h;
	casfs_b3_init(&h);
	for (;;) {
		ssize_t n = read(fd, buf, HASH_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return casfs_neg_errno();
		if (n == 0)
			break;
		casfs_b3_update(&h, buf, (size_t)n);
	}
	uint8_t got[CASFS_B3_LEN];
	casfs_b3_final(&h, got);
	return memcmp(got, digest, CASFS_B3_LEN) == 0 ? 0 : -EBADMSG;
}

struct recheck {
	int64_t since_ns;
	uint8_t *buf;
	int removed;
};

/* Re-hash one blob file if its ctime is at or after `since_ns`; remove it
 * if it does not match its name. */
static int recheck_one(int dir_fd, const char *name, const uint8_t digest[CASFS_B3_LEN],
		       void *userdata)
{
	struct recheck *rc = userdata;
	struct stat st;
	if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : casfs_neg_errno();
	/* not a regular file: the next commit replaces it anyway */
	if (!S_ISREG(st.st_mode) || ts_ns(&st.st_ctim) < rc->since_ns)
		return 0;
	int r = check_blob(dir_fd, name, digest, rc->buf);
	if (r == -EBADMSG || r == -EIO) {
		r = unlinkat(dir_fd, name, 0) < 0 && errno != ENOENT ? casfs_neg_errno() : 0;
		rc->removed += r >= 0;
	} else if (r == -ENOENT) {
		r = 0;
	}
	return r;
}

static int recheck_blobs(struct casfs_local_store *ls, int64_t since_ns, int *removed)
{
	struct recheck rc = { .since_ns = since_ns, .buf = malloc(HASH_CHUNK) };
	if (!rc.buf)
		return -ENOMEM;
	int r = casfs_local_each_blob_file(ls->blobs_fd, recheck_one, &rc);
	free(rc.buf);
	*removed += rc.removed;
	return r;
}

struct found_record {
	int fd; /* LOCK_EX held */
	char name[256];
};

static void found_release(struct found_record *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		close(f[i].fd);
	free(f);
}

/* Collect the records whose owner is gone, with their flocks held;
 * `since_ns` is the earliest "since" of those from another boot (or with
 * an unknown one), INT64_MAX if none. */
static int collect_records(struct casfs_local_store *ls, struct found_record **ret, size_t *ret_n,
			   int64_t *since_ns)
{
	*since_ns = INT64_MAX;
	int dfd = openat(ls->unsynced_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
	if (!d) {
		int r = casfs_neg_errno();
		if (dfd >= 0)
			close(dfd);
		return r;
	}
	struct found_record *f = NULL;
	size_t n = 0, cap = 0;
	int r = 0;
	struct dirent *de;
	while (r >= 0 && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    strlen(de->d_name) >= sizeof(f->name))
			continue;
		_cleanup_close_ int fd = openat(ls->unsynced_fd, de->d_name,
						O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
			continue; /* gone, or a stray that is not ours */
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			if (errno != EWOULDBLOCK)
				r = casfs_neg_errno();
			continue; /* its owner is alive: its record is its business */
		}
		char boot[40];
		int64_t since;
		record_parse(fd, boot, &since);
		if (!boot[0] || !ls->boot_id[0] || strcmp(boot, ls->boot_id) != 0)
			*since_ns = MIN(*since_ns, since);
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			struct found_record *nf = realloc(f, ncap * sizeof(*f));
			if (!nf) {
				r = -ENOMEM;
				continue;
			}
			f = nf;
			cap = ncap;
		}
		f[n].fd = TAKE_FD(fd);
		snprintf(f[n].name, sizeof(f[n].name), "%s", de->d_name);
		n++;
	}
	closedir(d);
	if (r < 0) {
		found_release(f, n);
		return r;
	}
	*ret = f;
	*ret_n = n;
	return 0;
}

int casfs_local_unsynced_recover(struct casfs_local_store *ls)
{
	struct found_record *f = NULL;
	size_t n = 0;
	int64_t since_ns;
	int r = collect_records(ls, &f, &n, &since_ns);
	if (r < 0 || n == 0) {
		free(f);
		return r;
	}
	int removed = 0;
	/* A record from another boot: the machine went down with links not
	 * yet synced, and any file linked since may have a name and a size
	 * but not its bytes.  Re-hash those (link and rename set ctime). */
	if (since_ns != INT64_MAX)
		r = recheck_blobs(ls, since_ns > SINCE_SLACK_NS ? since_ns - SINCE_SLACK_NS : 0,
				  &removed);
	/* One syncfs makes the same boot's dead owners' data (still in the
	 * kernel) durable, and the removals above, before the records go. */
	if (r >= 0 && syncfs(ls->dir_fd) < 0)
		r = casfs_neg_errno();
	for (size_t i = 0; r >= 0 && i < n; i++)
		unlinkat(ls->unsynced_fd, f[i].name, 0);
	found_release(f, n);
	return r < 0 ? r : removed;
}
