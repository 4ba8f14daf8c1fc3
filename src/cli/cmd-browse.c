/* casfs ls, casfs cat: browse a store path through the filesystem core
 * (src/fs), without mounting: what they show is what a mount shows. */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../basic/io.h"
#include "../basic/util.h"
#include "../fs/fs.h"
#include "../storepath/storepath.h"
#include "args.h"

struct browse {
	struct cli *cli;
	struct casfs_fs *fs;
	struct casfs_error err; /* the first damage the fs logged */
	const char *path;
};

static void log_damage(void *userdata, enum casfs_fs_log_level level, const char *msg)
{
	struct browse *b = userdata;
	if (level == CASFS_FS_LOG_ERROR)
		casfs_error_set(&b->err, -EIO, "%s", msg);
}

/* Report r about the first `len` bytes of b->path, preferring what the fs
 * logged about damage. */
static int browse_fail(struct browse *b, int r, size_t len)
{
	const char *why = r == -ENOENT ? "no such file or directory" :
			  r == -ENOTDIR ? "not a directory" :
			  r == -EISDIR ? "is a directory" :
			  r == -ELOOP ? "is a symlink" : strerror(-r);
	casfs_error_set(&b->err, r, "%s: '%.*s'", why, (int)len, b->path);
	return cli_fail(b->cli, r, &b->err);
}

/* Walk "/nix/store/<base>[/sub...]" from the fs root; fills *ret_attr. */
static int walk(struct browse *b, struct stat *ret_attr)
{
	struct casfs_store_path sp;
	const char *sub;
	int r = casfs_store_path_parse_prefix(b->path, &sp, &sub, &b->err);
	if (r < 0)
		return cli_fail(b->cli, r, &b->err);
	char base[CASFS_STORE_PATH_BASENAME_MAX + 1];
	casfs_store_path_format_basename(&sp, base);
	r = casfs_fs_lookup(b->fs, CASFS_FS_ROOT_INO, base, ret_attr);
	if (r == -ENOENT) {
		casfs_error_set(&b->err, r, "'%s' is not in the store", b->path);
		return cli_fail(b->cli, r, &b->err);
	}
	while (r >= 0 && *sub) {
		while (*sub == '/')
			sub++;
		const char *end = strchrnul(sub, '/');
		if (end == sub)
			break;
		_cleanup_free_ char *name = strndup(sub, (size_t)(end - sub));
		if (!name)
			return cli_failf(b->cli, "out of memory");
		r = casfs_fs_lookup(b->fs, ret_attr->st_ino, name, ret_attr);
		if (r < 0)
			return browse_fail(b, r, (size_t)(end - b->path));
		sub = end;
	}
	return r < 0 ? browse_fail(b, r, strlen(b->path)) : 0;
}

/* Parse the arguments, open the store and the fs, walk to the path.
 * Returns true with *ret_attr filled to go on; false with *ret_exit set to
 * stop (help shown, or an error reported). */
static bool browse_open(struct cli *c, int argc, char **argv, const char *help, struct browse *b,
			struct stat *ret_attr, int *ret_exit)
{
	b->cli = c;
	if (!cli_args_one_path(c, argc, argv, help, &b->path, ret_exit))
		return false;
	struct casfs_fs_options o = { .log = log_damage, .log_userdata = b };
	int r = casfs_fs_new(c->store, &o, &b->fs);
	*ret_exit = r < 0 ? cli_fail(c, r, NULL) : walk(b, ret_attr);
	return *ret_exit == 0;
}

static void mode_string(mode_t m, char out[11])
{
	out[0] = S_ISDIR(m) ? 'd' : S_ISLNK(m) ? 'l' : '-';
	const char *rwx = "rwxrwxrwx";
	for (int i = 0; i < 9; i++)
		out[1 + i] = (m & (0400 >> i)) ? rwx[i] : '-';
	out[10] = 0;
}

static void print_entry(struct browse *b, const char *name, const struct stat *st)
{
	char mode[11];
	mode_string(st->st_mode, mode);
	if (S_ISREG(st->st_mode)) {
		printf("%s %12llu %s\n", mode, (unsigned long long)st->st_size, name);
	} else if (S_ISLNK(st->st_mode)) {
		_cleanup_free_ char *target = NULL;
		casfs_fs_readlink(b->fs, st->st_ino, &target);
		printf("%s %12s %s -> %s\n", mode, "-", name, target ? target : "?");
	} else {
		printf("%s %12s %s\n", mode, "-", name);
	}
}

struct listing {
	char **names;
	struct stat *attrs;
	size_t n, cap;
	uint64_t next;
};

/* Collect entries: the callback may not call back into the fs. */
static int collect(void *userdata, const char *name, const struct stat *attr, uint64_t next)
{
	struct listing *l = userdata;
	l->next = next;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		char **nn = realloc(l->names, cap * sizeof(*nn));
		if (nn)
			l->names = nn;
		struct stat *na = nn ? realloc(l->attrs, cap * sizeof(*na)) : NULL;
		if (!na)
			return -ENOMEM;
		l->attrs = na;
		l->cap = cap;
	}
	if (!(l->names[l->n] = strdup(name)))
		return -ENOMEM;
	l->attrs[l->n++] = *attr;
	return 0;
}

static const char ls_help[] =
	"usage: casfs ls STORE_PATH[/SUB]\n"
	"\n"
	"List a directory inside a store path as a mount would show it (one entry\n"
	"per line: mode, size, name, symlink target), in bytewise name order.\n";

int cmd_ls(struct cli *c, int argc, char **argv)
{
	struct browse b = { 0 };
	struct stat st;
	int r;
	if (!browse_open(c, argc, argv, ls_help, &b, &st, &r)) {
		casfs_fs_free(b.fs);
		return r;
	}
	if (!S_ISDIR(st.st_mode)) {
		print_entry(&b, strrchr(b.path, '/') + 1, &st);
	} else {
		struct listing l = { 0 };
		struct casfs_fs_dir *d;
		int e = casfs_fs_opendir(b.fs, st.st_ino, &d);
		if (e >= 0) {
			e = casfs_fs_readdir(b.fs, d, 0, true, collect, &l);
			casfs_fs_releasedir(b.fs, d);
		}
		for (size_t i = 0; i < l.n; i++) {
			if (e >= 0)
				print_entry(&b, l.names[i], &l.attrs[i]);
			free(l.names[i]);
		}
		free(l.names);
		free(l.attrs);
		if (e < 0)
			r = browse_fail(&b, e, strlen(b.path));
	}
	casfs_fs_free(b.fs);
	return r;
}

static const char cat_help[] =
	"usage: casfs cat STORE_PATH/SUB\n"
	"\n"
	"Print a file of a store path, read as a mount reads it: the content is\n"
	"verified against its digest before the first byte is written.\n";

int cmd_cat(struct cli *c, int argc, char **argv)
{
	struct browse b = { 0 };
	struct stat st;
	int r;
	if (!browse_open(c, argc, argv, cat_help, &b, &st, &r)) {
		casfs_fs_free(b.fs);
		return r;
	}
	{
		struct casfs_fs_file *f;
		int e = casfs_fs_open(b.fs, st.st_ino, O_RDONLY, &f);
		if (e >= 0) {
			_cleanup_free_ uint8_t *buf = malloc(1 << 20);
			uint64_t off = 0;
			ssize_t n = buf ? 1 : -ENOMEM;
			while (n > 0) {
				n = casfs_fs_read(b.fs, f, buf, 1 << 20, off);
				if (n > 0 && casfs_write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
					n = -errno;
				off += n > 0 ? (uint64_t)n : 0;
			}
			e = (int)n;
			casfs_fs_release(b.fs, f);
		}
		if (e < 0)
			r = browse_fail(&b, e, strlen(b.path));
	}
	casfs_fs_free(b.fs);
	return r;
}
