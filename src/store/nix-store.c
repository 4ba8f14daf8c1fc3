/* The "nix:" substituter: a Nix store's SQLite database and its files,
 * read-only (nix-store.h). */
#include "nix-store.h"

#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../basic/encoding.h"
#include "../basic/util.h"
#include "../storepath/ca.h"
#include "import.h"

#define DB_REL "/nix/var/nix/db/db.sqlite"
#define BUSY_TIMEOUT_MS 10000

struct nix_store {
	struct casfs_substituter base; /* first: the substituter view */
	char *url;                     /* "nix:" or "nix:ROOT" */
	char *root;                    /* "/" or the absolute ROOT, for messages */
	char *store_dir;               /* ROOT/nix/store on disk */
	char *db_path;
	pthread_mutex_t lock;          /* guards db and the statements */
	sqlite3 *db;
	sqlite3_stmt *begin, *commit, *rollback, *path, *refs;
};

static const struct casfs_substituter_ops nix_store_ops;

/* ---- the database --------------------------------------------------------- */

static int db_error(struct nix_store *ns, int rc, const char *what, struct casfs_error *err)
{
	return casfs_error_set(err, -EIO, "Nix database %s: %s: %s", ns->db_path, what,
			       ns->db ? sqlite3_errmsg(ns->db) : sqlite3_errstr(rc));
}

static void close_db(struct nix_store *ns)
{
	sqlite3_finalize(ns->begin);
	sqlite3_finalize(ns->commit);
	sqlite3_finalize(ns->rollback);
	sqlite3_finalize(ns->path);
	sqlite3_finalize(ns->refs);
	ns->begin = ns->commit = ns->rollback = ns->path = ns->refs = NULL;
	sqlite3_close(ns->db);
	ns->db = NULL;
}

/* "file:" URI for `path` with ?immutable=1: %, ? and # escaped. */
static char *immutable_uri(const char *path)
{
	size_t n = strlen(path);
	char *u = malloc(5 + 3 * n + sizeof("?immutable=1"));
	if (!u)
		return NULL;
	char *o = u + sprintf(u, "file:");
	for (const char *p = path; *p; p++) {
		if (*p == '%' || *p == '?' || *p == '#')
			o += sprintf(o, "%%%02X", (unsigned char)*p);
		else
			*o++ = *p;
	}
	strcpy(o, "?immutable=1");
	return u;
}

static int prepare_all(struct nix_store *ns)
{
	static const char *const sql[] = {
		"BEGIN",
		"COMMIT",
		"ROLLBACK",
		/* by hash part alone, on the unique index of path */
		"SELECT id, path, hash, deriver, narSize, sigs, ca FROM ValidPaths"
		" WHERE path >= ?1 AND path < ?2 ORDER BY path LIMIT 1",
		"SELECT v.path FROM Refs r JOIN ValidPaths v ON r.reference = v.id"
		" WHERE r.referrer = ?1",
	};
	sqlite3_stmt **out[] = { &ns->begin, &ns->commit, &ns->rollback, &ns->path, &ns->refs };
	for (size_t i = 0; i < ARRAY_SIZE(sql); i++) {
		int rc = sqlite3_prepare_v3(ns->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, out[i], NULL);
		if (rc != SQLITE_OK)
			return rc;
	}
	return SQLITE_OK;
}

static int open_db(struct nix_store *ns, bool immutable, struct casfs_error *err)
{
	_cleanup_free_ char *uri = immutable ? immutable_uri(ns->db_path) : NULL;
	if (immutable && !uri)
		return -ENOMEM;
	int flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | (immutable ? SQLITE_OPEN_URI : 0);
	int rc = sqlite3_open_v2(immutable ? uri : ns->db_path, &ns->db, flags, NULL);
	if (rc == SQLITE_NOMEM || (rc != SQLITE_OK && !ns->db))
		return -ENOMEM;
	if (rc == SQLITE_OK) {
		sqlite3_extended_result_codes(ns->db, 1);
		sqlite3_busy_timeout(ns->db, BUSY_TIMEOUT_MS);
		/* a read-only connection cannot checkpoint anyway; say so */
		sqlite3_db_config(ns->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
		rc = prepare_all(ns);
	}
	if (rc == SQLITE_OK)
		return 0;
	if (!immutable && ((rc & 0xff) == SQLITE_CANTOPEN || (rc & 0xff) == SQLITE_READONLY)) {
		/* WAL without its -wal/-shm files and no right to create them:
		 * no Nix process has the database open, read it immutable */
		_cleanup_free_ char *wal = malloc(strlen(ns->db_path) + 5);
		if (!wal)
			return -ENOMEM;
		sprintf(wal, "%s-wal", ns->db_path);
		struct stat st;
		if (stat(wal, &st) < 0 && errno == ENOENT) {
			close_db(ns);
			return open_db(ns, true, err);
		}
	}
	int r = db_error(ns, rc, "cannot open", err);
	close_db(ns);
	return r;
}

/* ---- query -------------------------------------------------------------- */

/* A row that does not parse: one line naming the path and the field. */
static int bad_row(struct nix_store *ns, const char *path, struct casfs_error *err,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int bad_row(struct nix_store *ns, const char *path, struct casfs_error *err,
		   const char *fmt, ...)
{
	char what[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	for (char *p = what; *p; p++) /* database bytes quoted: one line */
		if ((unsigned char)*p < 0x20)
			*p = '?';
	return casfs_error_set(err, -EBADMSG, "Nix database %s: '%.*s': %s", ns->db_path, 200,
			       path, what);
}

static const char *column_text(sqlite3_stmt *st, int col, size_t *ret_len)
{
	const char *t = (const char *)sqlite3_column_text(st, col);
	*ret_len = t ? (size_t)sqlite3_column_bytes(st, col) : 0;
	return t;
}

static int cmp_ref(const void *a, const void *b)
{
	char sa[CASFS_STORE_PATH_BASENAME_MAX + 1], sb[CASFS_STORE_PATH_BASENAME_MAX + 1];
	casfs_store_path_format_basename(a, sa);
	casfs_store_path_format_basename(b, sb);
	return strcmp(sa, sb);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sigs: tokens separated by spaces (as Nix's tokenizeString), sorted by
 * their text, exact duplicates dropped. */
static int parse_sigs(struct nix_store *ns, const char *path, const char *v, size_t len,
		      struct casfs_narinfo *ni, struct casfs_error *err)
{
	if (memchr(v, 0, len))
		return bad_row(ns, path, err, "sigs: NUL byte");
	_cleanup_free_ char *copy = strndup(v, len);
	size_t max = len / 2 + 1;
	_cleanup_free_ char **tok = calloc(max, sizeof(*tok));
	if (!copy || !tok)
		return -ENOMEM;
	size_t n = 0;
	char *save = NULL;
	for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save))
		tok[n++] = t;
	if (n > CASFS_NARINFO_MAX_SIGS)
		return casfs_error_set(err, -EOVERFLOW, "Nix database %s: '%s': more than %d sigs",
				       ns->db_path, path, CASFS_NARINFO_MAX_SIGS);
	if (n == 0)
		return 0;
	qsort(tok, n, sizeof(*tok), cmp_str);
	struct casfs_narinfo_sig *sigs = calloc(n, sizeof(*sigs));
	if (!sigs)
		return -ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (i && strcmp(tok[i], tok[i - 1]) == 0)
			continue;
		struct casfs_error e = { 0 };
		int r = casfs_narinfo_sig_parse(tok[i], strlen(tok[i]), &sigs[k], &e);
		if (r < 0) {
			free(sigs);
			return bad_row(ns, path, err, "sigs: %s", casfs_error_message(&e, r));
		}
		k++;
	}
	ni->sigs = sigs;
	ni->n_sigs = k;
	return 0;
}

/* The ValidPaths row under ns->path, into `ni` (released by the caller on
 * failure too). */
static int read_row(struct nix_store *ns, const char *path, struct casfs_narinfo *ni,
		    struct casfs_error *err)
{
	sqlite3_stmt *st = ns->path;
	struct casfs_error e = { 0 };
	int r = casfs_store_path_parse(path, &ni->path, &e);
	if (r < 0)
		return bad_row(ns, path, err, "path: %s", casfs_error_message(&e, r));

	size_t len;
	const char *v = column_text(st, 2, &len);
	char hash[80];
	if (!v || len >= sizeof(hash) || memchr(v, 0, len) || strncmp(v, "sha256:", 7) != 0)
		return bad_row(ns, path, err, "hash '%.80s' is not sha256:<base16|nixbase32>",
			       v ? v : "(null)");
	memcpy(hash, v, len);
	hash[len] = 0;
	if (casfs_sha256_parse(hash, ni->nar_sha256) < 0)
		return bad_row(ns, path, err, "hash '%s' is not sha256:<base16|nixbase32>", hash);

	if (sqlite3_column_type(st, 4) != SQLITE_INTEGER || sqlite3_column_int64(st, 4) <= 0) {
		const char *t = sqlite3_column_type(st, 4) == SQLITE_NULL ? "NULL"
				: (const char *)sqlite3_column_text(st, 4);
		return bad_row(ns, path, err, "narSize '%.40s' is not a positive integer",
			       t ? t : "");
	}
	ni->nar_size = (uint64_t)sqlite3_column_int64(st, 4);

	v = column_text(st, 3, &len);
	if (v && len) {
		if (memchr(v, 0, len))
			return bad_row(ns, path, err, "deriver: NUL byte");
		r = casfs_store_path_parse(v, &ni->deriver, &e);
		if (r < 0)
			return bad_row(ns, path, err, "deriver: %s", casfs_error_message(&e, r));
		ni->has_deriver = true;
	}

	v = column_text(st, 5, &len);
	if (v && len && (r = parse_sigs(ns, path, v, len, ni, err)) < 0)
		return r;

	v = column_text(st, 6, &len);
	if (v && len) {
		struct casfs_ca ca;
		if (memchr(v, 0, len))
			return bad_row(ns, path, err, "ca: NUL byte");
		r = casfs_ca_parse(v, len, &ca, &e);
		if (r < 0)
			return bad_row(ns, path, err, "ca: %s", casfs_error_message(&e, r));
		if (!(ni->ca = strndup(v, len)))
			return -ENOMEM;
	}
	return 0;
}

static int read_refs(struct nix_store *ns, const char *path, sqlite3_int64 id,
		     struct casfs_narinfo *ni, struct casfs_error *err)
{
	sqlite3_stmt *st = ns->refs;
	int rc = sqlite3_bind_int64(st, 1, id);
	if (rc != SQLITE_OK)
		return db_error(ns, rc, "bind", err);
	size_t cap = 0;
	int r = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		size_t len;
		const char *v = column_text(st, 0, &len);
		if (ni->n_references == CASFS_NARINFO_MAX_REFERENCES) {
			r = casfs_error_set(err, -EOVERFLOW, "Nix database %s: '%s': more than %d references",
					    ns->db_path, path, CASFS_NARINFO_MAX_REFERENCES);
			break;
		}
		if (ni->n_references == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			struct casfs_store_path *nr = realloc(ni->references, ncap * sizeof(*nr));
			if (!nr) {
				r = -ENOMEM;
				break;
			}
			ni->references = nr;
			cap = ncap;
		}
		struct casfs_error e = { 0 };
		if (!v || memchr(v, 0, len)) {
			r = bad_row(ns, path, err, "reference: not text");
			break;
		}
		r = casfs_store_path_parse(v, &ni->references[ni->n_references], &e);
		if (r < 0) {
			r = bad_row(ns, path, err, "reference '%.220s': %s", v, casfs_error_message(&e, r));
			break;
		}
		ni->n_references++;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = db_error(ns, rc, "reading references", err);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (r < 0)
		return r;
	if (ni->n_references > 1) {
		qsort(ni->references, ni->n_references, sizeof(*ni->references), cmp_ref);
		size_t k = 1;
		for (size_t i = 1; i < ni->n_references; i++)
			if (cmp_ref(&ni->references[i], &ni->references[k - 1]) != 0)
				ni->references[k++] = ni->references[i];
		ni->n_references = k;
	}
	return 0;
}

/* The lookup itself, inside the read transaction; ns->lock held. */
static int query_locked(struct nix_store *ns, const uint8_t digest[CASFS_STORE_DIGEST_LEN],
			struct casfs_narinfo *ni, struct casfs_error *err)
{
	char hash[CASFS_STORE_PATH_HASH_CHARS + 1];
	casfs_nixbase32_encode(digest, CASFS_STORE_PATH_DIGEST_LEN, hash);
	hash[CASFS_STORE_PATH_HASH_CHARS] = 0;
	char lo[sizeof(CASFS_STORE_DIR) + CASFS_STORE_PATH_HASH_CHARS + 2];
	char hi[sizeof(lo)];
	snprintf(lo, sizeof(lo), CASFS_STORE_DIR "/%s-", hash);
	snprintf(hi, sizeof(hi), CASFS_STORE_DIR "/%s.", hash);

	sqlite3_stmt *st = ns->path;
	int rc = sqlite3_bind_text(st, 1, lo, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 2, hi, -1, SQLITE_STATIC);
	if (rc != SQLITE_OK)
		return db_error(ns, rc, "bind", err);
	int r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = casfs_error_set(err, -ENOENT, CASFS_STORE_DIR "/%s is not in the Nix store at %s",
				    hash, ns->root);
	} else if (rc != SQLITE_ROW) {
		r = db_error(ns, rc, "looking up a path", err);
	} else {
		size_t len;
		const char *p = column_text(st, 1, &len);
		char path[CASFS_STORE_PATH_MAX + 1];
		if (!p || len >= sizeof(path) || memchr(p, 0, len)) {
			r = bad_row(ns, lo, err, "path is not a store path");
		} else {
			memcpy(path, p, len);
			path[len] = 0;
			sqlite3_int64 id = sqlite3_column_int64(st, 0);
			r = read_row(ns, path, ni, err);
			if (r >= 0) {
				sqlite3_reset(st);
				r = read_refs(ns, path, id, ni, err);
			}
		}
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return r;
}

static int nix_store_query(struct casfs_substituter *s, const uint8_t digest[CASFS_STORE_DIGEST_LEN],
			   struct casfs_narinfo *ret, struct casfs_error *err)
{
	struct nix_store *ns = (struct nix_store *)s;
	struct casfs_narinfo ni = { 0 };
	pthread_mutex_lock(&ns->lock);
	int rc = sqlite3_step(ns->begin);
	sqlite3_reset(ns->begin);
	int r = rc == SQLITE_DONE ? query_locked(ns, digest, &ni, err)
				  : db_error(ns, rc, "cannot begin a read", err);
	if (rc == SQLITE_DONE) {
		rc = sqlite3_step(ns->commit);
		sqlite3_reset(ns->commit);
		if (rc != SQLITE_DONE) {
			sqlite3_step(ns->rollback);
			sqlite3_reset(ns->rollback);
		}
	}
	pthread_mutex_unlock(&ns->lock);
	if (r < 0) {
		casfs_narinfo_release(&ni);
		return r;
	}

	char base[CASFS_STORE_PATH_BASENAME_MAX + 1];
	casfs_store_path_format_basename(&ni.path, base);
	size_t n = strlen(ns->store_dir) + 1 + strlen(base) + 1;
	ni.url = malloc(n);
	ni.compression = strdup("none");
	if (!ni.url || !ni.compression) {
		casfs_narinfo_release(&ni);
		return -ENOMEM;
	}
	snprintf(ni.url, n, "%s/%s", ns->store_dir, base);
	*ret = ni;
	return 0;
}

/* ---- fetch -------------------------------------------------------------- */

static int nix_store_fetch(struct casfs_substituter *s, const struct casfs_narinfo *ni,
			   struct casfs_store *into, struct casfs_node *ret_root,
			   uint8_t ret_nar_sha256[CASFS_SHA256_LEN], uint64_t *ret_nar_size,
			   struct casfs_error *err)
{
	struct nix_store *ns = (struct nix_store *)s;
	char base[CASFS_STORE_PATH_BASENAME_MAX + 1];
	casfs_store_path_format_basename(&ni->path, base);
	size_t n = strlen(ns->store_dir) + 1 + strlen(base) + 1;
	_cleanup_free_ char *disk = malloc(n);
	if (!disk)
		return -ENOMEM;
	snprintf(disk, n, "%s/%s", ns->store_dir, base);
	struct stat st;
	if (lstat(disk, &st) < 0) {
		int r = casfs_neg_errno();
		if (r == -ENOENT)
			return casfs_error_set(err, r, "'%s' is registered in the Nix store at %s but missing on disk",
					       disk, ns->root);
		return casfs_error_set(err, r, "cannot stat '%s': %s", disk, strerror(-r));
	}
	return casfs_import_tree(into, disk, base, NULL, ret_root, ret_nar_sha256, ret_nar_size,
				 err);
}

/* ---- open and free -------------------------------------------------------- */

static void nix_store_free(struct casfs_substituter *s)
{
	struct nix_store *ns = (struct nix_store *)s;
	if (!ns)
		return;
	close_db(ns);
	pthread_mutex_destroy(&ns->lock);
	free(ns->url);
	free(ns->root);
	free(ns->store_dir);
	free(ns->db_path);
	free(ns);
}

static const struct casfs_substituter_ops nix_store_ops = {
	.query = nix_store_query,
	.fetch = nix_store_fetch,
	.free = nix_store_free,
};

static char *concat(const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 1;
	char *s = malloc(n);
	if (s)
		snprintf(s, n, "%s%s", a, b);
	return s;
}

int casfs_substituter_nix_open(const char *root, struct casfs_substituter **ret,
			       struct casfs_error *err)
{
	bool real = !root || !*root || strcmp(root, "/") == 0;
	_cleanup_free_ char *abs = NULL;
	if (!real) {
		abs = realpath(root, NULL);
		if (!abs)
			return casfs_error_set(err, casfs_neg_errno(), "nix:%s: %s", root, strerror(errno));
		if (strcmp(abs, "/") == 0)
			real = true;
	}
	struct nix_store *ns = calloc(1, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	pthread_mutex_init(&ns->lock, NULL);
	const char *prefix = real ? "" : abs;
	ns->url = concat("nix:", real ? "" : abs);
	ns->root = strdup(real ? "/" : abs);
	ns->store_dir = concat(prefix, CASFS_STORE_DIR);
	ns->db_path = concat(prefix, DB_REL);
	if (!ns->url || !ns->root || !ns->store_dir || !ns->db_path) {
		nix_store_free(&ns->base);
		return -ENOMEM;
	}
	ns->base.ops = &nix_store_ops;
	ns->base.url = ns->url;
	ns->base.trusted = true;

	struct stat st;
	if (stat(ns->db_path, &st) < 0) {
		int r = casfs_neg_errno();
		r = casfs_error_set(err, r, "%s: no Nix store at %s (%s: %s)", ns->url, ns->root,
				    ns->db_path, strerror(-r));
		nix_store_free(&ns->base);
		return r;
	}
	int r = open_db(ns, false, err);
	if (r < 0) {
		nix_store_free(&ns->base);
		return r;
	}
	*ret = &ns->base;
	return 0;
}
