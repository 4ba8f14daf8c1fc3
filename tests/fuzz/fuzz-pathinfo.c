/* Fuzz the PathInfo decoder: decoding fails cleanly (a -errno and a
 * message) or gives a model whose canonical encoding decodes to the same
 * model and re-encodes to the same bytes; copy is equal; validation never
 * crashes and is stable across the round trip. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/pathinfo-proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static int same_str(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

static int node_eq(const struct casfs_node *a, const struct casfs_node *b)
{
	if (a->type != b->type || !same_bytes(a->name, a->name_len, b->name, b->name_len))
		return 0;
	if (a->type == CASFS_NODE_SYMLINK)
		return same_bytes(a->target, a->target_len, b->target, b->target_len);
	if (a->type == CASFS_NODE_NONE)
		return 1;
	if (a->digest_set != b->digest_set || a->size != b->size ||
	    (a->digest_set && memcmp(a->digest, b->digest, CASFS_B3_LEN) != 0))
		return 0;
	return a->type != CASFS_NODE_FILE || a->executable == b->executable;
}

static int pathinfo_eq(const struct casfs_pathinfo *a, const struct casfs_pathinfo *b)
{
	if (!node_eq(&a->node, &b->node) ||
	    !same_bytes(a->references, a->n_references * CASFS_STORE_DIGEST_LEN, b->references,
			b->n_references * CASFS_STORE_DIGEST_LEN) ||
	    a->has_narinfo != b->has_narinfo || a->has_deriver != b->has_deriver ||
	    a->has_ca != b->has_ca || a->n_signatures != b->n_signatures ||
	    a->n_reference_names != b->n_reference_names)
		return 0;
	if (a->has_narinfo &&
	    (a->nar_size != b->nar_size || memcmp(a->nar_sha256, b->nar_sha256, 32) != 0))
		return 0;
	for (size_t i = 0; i < a->n_signatures; i++)
		if (!same_str(a->signatures[i].name, b->signatures[i].name) ||
		    !same_bytes(a->signatures[i].data, a->signatures[i].data_len,
				b->signatures[i].data, b->signatures[i].data_len))
			return 0;
	for (size_t i = 0; i < a->n_reference_names; i++)
		if (!same_str(a->reference_names[i], b->reference_names[i]))
			return 0;
	if (a->has_deriver && (!same_str(a->deriver_name, b->deriver_name) ||
			       memcmp(a->deriver_digest, b->deriver_digest, 20) != 0))
		return 0;
	if (a->has_ca && (a->ca_type != b->ca_type ||
			  !same_bytes(a->ca_digest, a->ca_digest_len, b->ca_digest, b->ca_digest_len)))
		return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct casfs_pathinfo pi, back, copy;
	struct casfs_error err = { 0 };
	int r = casfs_pathinfo_decode(data, size, &pi, &err);
	if (r < 0) {
		if (r != -EPROTO && r != -EBADMSG && r != -ENOMEM)
			abort();
		if (r != -ENOMEM && err.msg[0] == 0)
			abort();
		return 0;
	}
	struct casfs_buf b1 = CASFS_BUF_INIT, b2 = CASFS_BUF_INIT;
	if (casfs_pathinfo_encode(&pi, &b1) < 0)
		abort();
	if (casfs_pathinfo_decode(b1.data, b1.len, &back, NULL) < 0 || !pathinfo_eq(&pi, &back))
		abort();
	if (casfs_pathinfo_encode(&back, &b2) < 0 || !same_bytes(b1.data, b1.len, b2.data, b2.len))
		abort();
	if (casfs_pathinfo_copy(&pi, &copy) < 0 || !pathinfo_eq(&pi, &copy))
		abort();
	struct casfs_error verr = { 0 };
	int valid = casfs_pathinfo_validate(&pi, &verr) == 0;
	if (!valid && verr.msg[0] == 0)
		abort();
	if ((casfs_pathinfo_validate(&back, NULL) == 0) != valid)
		abort();
	casfs_buf_release(&b1);
	casfs_buf_release(&b2);
	casfs_pathinfo_release(&copy);
	casfs_pathinfo_release(&back);
	casfs_pathinfo_release(&pi);
	return 0;
}
