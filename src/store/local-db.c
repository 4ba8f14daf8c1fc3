/* The local store's DirectoryService and PathInfoService: two named LMDB
 * databases (layout in local-store.h).  The environment is opened with
 * MDB_NOTLS, so every call simply runs its own short transaction from
 * whatever thread it is on. */
#include "local-store-internal.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "../basic/encoding.h"
#include "../basic/util.h"

struct local_dir_service {
	struct casfs_directory_service base;
	struct casfs_local_store *ls;
};

struct local_pi_service {
	struct casfs_pathinfo_service base;
	struct casfs_local_store *ls;
};

/* LMDB turns a short write (the disk filled up mid-commit) into EIO.  When
 * a write transaction fails so and the store's file system is now all but
 * full, say what happened. */
static int write_error(struct casfs_local_store *ls, int rc, const char *what,
		       struct casfs_error *err)
{
	struct statvfs sv;
	if (rc == EIO && fstatvfs(ls->dir_fd, &sv) == 0) {
		uint64_t avail = geteuid() == 0 ? sv.f_bfree : sv.f_bavail;
		if (avail * sv.f_frsize < (256u << 10))
			return casfs_error_set(err, -ENOSPC, "%s: no space left on device for %s/db",
					       what, ls->path);
	}
	return casfs_local_mdb_error(err, rc, what);
}

static struct casfs_local_store *dir_store(struct casfs_directory_service *s)
{
	return ((struct local_dir_service *)s)->ls;
}

static struct casfs_local_store *pi_store(struct casfs_pathinfo_service *s)
{
	return ((struct local_pi_service *)s)->ls;
}

/* Look `key` up in `dbi`; on success `val` points into the map and is valid
 * until *ret_txn is aborted. */
static int db_get(struct casfs_local_store *ls, MDB_dbi dbi, const void *key, size_t key_len,
		  MDB_txn **ret_txn, MDB_val *val, struct casfs_error *err)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(ls->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0)
		return casfs_local_mdb_error(err, rc, "store database");
	MDB_val k = { key_len, (void *)key };
	rc = mdb_get(txn, dbi, &k, val);
	if (rc != 0) {
		mdb_txn_abort(txn);
		return rc == MDB_NOTFOUND ? -ENOENT : casfs_local_mdb_error(err, rc, "store database");
	}
	*ret_txn = txn;
	return 0;
}

static int dir_get(struct casfs_directory_service *s, const uint8_t digest[CASFS_B3_LEN],
		   struct casfs_directory *ret, struct casfs_error *err)
{
	char name[CASFS_B3_STR_LEN + 1];
	casfs_b3_format(digest, name);
	MDB_txn *txn;
	MDB_val val;
	int r = db_get(dir_store(s), dir_store(s)->dirs_dbi, digest, CASFS_B3_LEN, &txn, &val, err);
	if (r == -ENOENT)
		return casfs_error_set(err, r, "directory %s not found", name);
	if (r < 0)
		return r;
	uint8_t got[CASFS_B3_LEN];
	casfs_b3(val.mv_data, val.mv_size, got);
	if (memcmp(got, digest, CASFS_B3_LEN) != 0)
		r = casfs_error_set(err, -EBADMSG, "directory %s is damaged in the store", name);
	else
		r = casfs_directory_decode(val.mv_data, val.mv_size, ret, err);
	mdb_txn_abort(txn);
	if (r < 0 && r != -ENOMEM && r != -EBADMSG)
		return casfs_error_prefix(err, -EBADMSG, "directory %s", name);
	return r;
}

static int dir_has(struct casfs_directory_service *s, const uint8_t digest[CASFS_B3_LEN])
{
	MDB_txn *txn;
	MDB_val val;
	int r = db_get(dir_store(s), dir_store(s)->dirs_dbi, digest, CASFS_B3_LEN, &txn, &val, NULL);
	if (r >= 0)
		mdb_txn_abort(txn);
	return r;
}

/* One write transaction: all of them or none.  A record already present
 * with the same bytes is left alone; one with other bytes (damage) is
 * overwritten with the good ones. */
static int dir_put_many(struct casfs_directory_service *s, const struct casfs_directory_entry *e,
			size_t n, struct casfs_error *err)
{
	struct casfs_local_store *ls = dir_store(s);
	if (ls->readonly)
		return casfs_error_set(err, -EROFS, "store %s is open read-only", ls->path);
	MDB_txn *txn;
	int rc = mdb_txn_begin(ls->env, NULL, 0, &txn);
	if (rc != 0)
		return casfs_local_mdb_error(err, rc, "storing directories");
	for (size_t i = 0; rc == 0 && i < n; i++) {
		MDB_val k = { CASFS_B3_LEN, (void *)e[i].digest };
		MDB_val v = { e[i].encoded_len, (void *)e[i].encoded };
		rc = mdb_put(txn, ls->dirs_dbi, &k, &v, MDB_NOOVERWRITE);
		if (rc == MDB_KEYEXIST) {
			/* v now holds the stored record. */
			if (v.mv_size == e[i].encoded_len &&
			    (!v.mv_size || !memcmp(v.mv_data, e[i].encoded, v.mv_size)))
				rc = 0;
			else
				rc = mdb_put(txn, ls->dirs_dbi, &k,
					     &(MDB_val){ e[i].encoded_len, (void *)e[i].encoded }, 0);
		}
	}
	if (rc != 0) {
		mdb_txn_abort(txn);
		return write_error(ls, rc, "storing directories", err);
	}
	rc = mdb_txn_commit(txn);
	return rc ? write_error(ls, rc, "storing directories", err) : 0;
}

static int dir_list(struct casfs_directory_service *s,
		    int (*cb)(const uint8_t digest[CASFS_B3_LEN], void *userdata), void *userdata)
{
	struct casfs_local_store *ls = dir_store(s);
	MDB_txn *txn;
	MDB_cursor *cur;
	int rc = mdb_txn_begin(ls->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0)
		return casfs_local_mdb_error(NULL, rc, "");
	rc = mdb_cursor_open(txn, ls->dirs_dbi, &cur);
	if (rc != 0) {
		mdb_txn_abort(txn);
		return casfs_local_mdb_error(NULL, rc, "");
	}
	int r = 0;
	MDB_val k, v;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && r >= 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint8_t digest[CASFS_B3_LEN];
		if (k.mv_size != CASFS_B3_LEN)
			continue;
		memcpy(digest, k.mv_data, CASFS_B3_LEN);
		r = cb(digest, userdata);
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (r < 0)
		return r;
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : casfs_local_mdb_error(NULL, rc, "");
}

static void dir_free(struct casfs_directory_service *s)
{
	casfs_local_store_unref(dir_store(s));
	free(s);
}

static const struct casfs_directory_service_ops dir_ops = {
	.name = "local",
	.get = dir_get,
	.has = dir_has,
	.put_many = dir_put_many,
	.list = dir_list,
	.free = dir_free,
};

int casfs_local_directory_service_new(struct casfs_local_store *ls,
				      struct casfs_directory_service **ret)
{
	struct local_dir_service *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->base.ops = &dir_ops;
	s->ls = ls;
	casfs_local_store_ref(ls);
	*ret = &s->base;
	return 0;
}

static int pi_decode(const uint8_t digest[CASFS_STORE_DIGEST_LEN], const MDB_val *v,
		     struct casfs_pathinfo *ret, struct casfs_error *err)
{
	int r = casfs_pathinfo_decode(v->mv_data, v->mv_size, ret, err);
	if (r < 0 && r != -ENOMEM) {
		char name[CASFS_NIXBASE32_LEN(CASFS_STORE_DIGEST_LEN) + 1];
		casfs_nixbase32_encode(digest, CASFS_STORE_DIGEST_LEN, name);
		return casfs_error_prefix(err, -EBADMSG, "path info %s is damaged", name);
	}
	return r;
}

static int pi_get(struct casfs_pathinfo_service *s, const uint8_t digest[CASFS_STORE_DIGEST_LEN],
		  struct casfs_pathinfo *ret, struct casfs_error *err)
{
	MDB_txn *txn;
	MDB_val val;
	int r = db_get(pi_store(s), pi_store(s)->pathinfo_dbi, digest, CASFS_STORE_DIGEST_LEN, &txn,
		       &val, err);
	if (r < 0)
		return r;
	r = pi_decode(digest, &val, ret, err);
	mdb_txn_abort(txn);
	return r;
}

static int pi_put(struct casfs_pathinfo_service *s, const uint8_t digest[CASFS_STORE_DIGEST_LEN],
		  const struct casfs_pathinfo *pi, struct casfs_error *err)
{
	struct casfs_local_store *ls = pi_store(s);
	if (ls->readonly)
		return casfs_error_set(err, -EROFS, "store %s is open read-only", ls->path);
	struct casfs_buf b = CASFS_BUF_INIT;
	int r = casfs_pathinfo_encode(pi, &b);
	if (r < 0) {
		casfs_buf_release(&b);
		return casfs_error_set(err, r, "cannot encode path info");
	}
	MDB_txn *txn;
	int rc = mdb_txn_begin(ls->env, NULL, 0, &txn);
	if (rc == 0) {
		MDB_val k = { CASFS_STORE_DIGEST_LEN, (void *)digest };
		MDB_val v = { b.len, b.data };
		rc = mdb_put(txn, ls->pathinfo_dbi, &k, &v, 0);
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
	}
	casfs_buf_release(&b);
	return rc ? write_error(ls, rc, "storing path info", err) : 0;
}

static int pi_list(struct casfs_pathinfo_service *s,
		   int (*cb)(const uint8_t digest[CASFS_STORE_DIGEST_LEN],
			     const struct casfs_pathinfo *pi, void *userdata),
		   void *userdata, struct casfs_error *err)
{
	struct casfs_local_store *ls = pi_store(s);
	MDB_txn *txn;
	MDB_cursor *cur;
	int rc = mdb_txn_begin(ls->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0)
		return casfs_local_mdb_error(err, rc, "listing path infos");
	rc = mdb_cursor_open(txn, ls->pathinfo_dbi, &cur);
	if (rc != 0) {
		mdb_txn_abort(txn);
		return casfs_local_mdb_error(err, rc, "listing path infos");
	}
	int r = 0;
	MDB_val k, v;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && r >= 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != CASFS_STORE_DIGEST_LEN)
			continue;
		uint8_t digest[CASFS_STORE_DIGEST_LEN];
		memcpy(digest, k.mv_data, sizeof(digest));
		struct casfs_pathinfo pi = { 0 };
		r = pi_decode(digest, &v, &pi, err);
		if (r >= 0)
			r = cb(digest, &pi, userdata);
		casfs_pathinfo_release(&pi);
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (r < 0)
		return r;
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : casfs_local_mdb_error(err, rc, "listing path infos");
}

/* One short read transaction per page: a reader slot is held only for
 * the call, and the position between pages is the caller's digest. */
static int pi_list_from(struct casfs_pathinfo_service *s,
			const uint8_t after[CASFS_STORE_DIGEST_LEN], size_t max,
			casfs_pathinfo_entry_cb cb, void *userdata, struct casfs_error *err)
{
	struct casfs_local_store *ls = pi_store(s);
	max = MIN(max, (size_t)INT_MAX);
	if (max == 0)
		return 0;
	MDB_txn *txn;
	MDB_cursor *cur;
	int rc = mdb_txn_begin(ls->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0)
		return casfs_local_mdb_error(err, rc, "listing path infos");
	rc = mdb_cursor_open(txn, ls->pathinfo_dbi, &cur);
	if (rc != 0) {
		mdb_txn_abort(txn);
		return casfs_local_mdb_error(err, rc, "listing path infos");
	}
	MDB_val k = { CASFS_STORE_DIGEST_LEN, (void *)after }, v;
	/* Keys compare bytewise (memcmp, then length): SET_RANGE finds the
	 * first key >= after, which is skipped if it is `after` itself. */
	rc = mdb_cursor_get(cur, &k, &v, after ? MDB_SET_RANGE : MDB_FIRST);
	if (rc == 0 && after && k.mv_size == CASFS_STORE_DIGEST_LEN &&
	    memcmp(k.mv_data, after, CASFS_STORE_DIGEST_LEN) == 0)
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	int r = 0;
	size_t given = 0;
	while (rc == 0 && r >= 0 && given < max) {
		if (k.mv_size == CASFS_STORE_DIGEST_LEN) {
			uint8_t digest[CASFS_STORE_DIGEST_LEN];
			memcpy(digest, k.mv_data, sizeof(digest));
			struct casfs_pathinfo pi = { 0 };
			struct casfs_error damage = { 0 };
			r = pi_decode(digest, &v, &pi, &damage);
			if (r == -ENOMEM)
				break;
			r = r < 0 ? cb(digest, NULL, &damage, userdata) : cb(digest, &pi, NULL, userdata);
			casfs_pathinfo_release(&pi);
			given++;
		}
		if (r >= 0 && given < max)
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (r < 0)
		return r;
	if (rc != 0 && rc != MDB_NOTFOUND)
		return casfs_local_mdb_error(err, rc, "listing path infos");
	return (int)given;
}

static void pi_free(struct casfs_pathinfo_service *s)
{
	casfs_local_store_unref(pi_store(s));
	free(s);
}

static const struct casfs_pathinfo_service_ops pi_ops = {
	.name = "local",
	.get = pi_get,
	.put = pi_put,
	.list = pi_list,
	.list_from = pi_list_from,
	.free = pi_free,
};

int casfs_local_pathinfo_service_new(struct casfs_local_store *ls,
				     struct casfs_pathinfo_service **ret)
{
	struct local_pi_service *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->base.ops = &pi_ops;
	s->ls = ls;
	casfs_local_store_ref(ls);
	*ret = &s->base;
	return 0;
}
