/* Test helper: damage a record of the local store's LMDB behind the
 * store's back (layout in src/store/local-store.h).  Nobody may have the
 * store open. */
#pragma once

#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Replace the value of the existing record `key` in table `table`
 * ("directories", "pathinfo") of the store in `dir` with what `edit`
 * makes of it: edit gets the stored value and may point it at `scratch`
 * (1024 bytes, holding a copy of the old value when it fits).  Returns 0
 * or an LMDB/errno code (MDB_NOTFOUND if there is no such record). */
static inline int test_lmdb_rewrite(const char *dir, const char *table, const void *key,
				    size_t key_len, void (*edit)(MDB_val *v, uint8_t scratch[1024]))
{
	char db[256];
	snprintf(db, sizeof(db), "%s/db", dir);
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	int rc = mdb_env_create(&env);
	if (rc)
		return rc;
	mdb_env_set_maxdbs(env, 4);
	rc = mdb_env_open(env, db, 0, 0644);
	if (!rc)
		rc = mdb_txn_begin(env, NULL, 0, &txn);
	if (!rc) {
		uint8_t scratch[1024];
		MDB_val k = { key_len, (void *)key }, v;
		rc = mdb_dbi_open(txn, table, 0, &dbi);
		if (!rc)
			rc = mdb_get(txn, dbi, &k, &v);
		if (!rc) {
			if (v.mv_size <= sizeof(scratch))
				memcpy(scratch, v.mv_data, v.mv_size);
			edit(&v, scratch);
			rc = mdb_put(txn, dbi, &k, &v, 0);
		}
		rc = rc ? (mdb_txn_abort(txn), rc) : mdb_txn_commit(txn);
	}
	mdb_env_close(env);
	return rc;
}

/* An edit for test_lmdb_rewrite: a PathInfo that cannot be decoded
 * (field 1, the node, claims 255 bytes; the record ends after 2). */
static inline void test_lmdb_undecodable(MDB_val *v, uint8_t scratch[1024])
{
	static const uint8_t bad[] = { 0x0a, 0xff, 0x01, 0x12 };
	memcpy(scratch, bad, sizeof(bad));
	v->mv_data = scratch;
	v->mv_size = sizeof(bad);
}
