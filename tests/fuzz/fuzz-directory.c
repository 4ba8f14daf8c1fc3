/* Fuzz the castore Directory and Node decoders.
 *
 * For any input: decoding either fails with an error (-EPROTO/-ENOMEM and a
 * message; -EBADMSG never, the directory decoder does not validate) or
 * yields a model whose canonical encoding decodes to the same model and
 * re-encodes to the same bytes.  For valid directories the digest is
 * stable across decode(encode(x)), copy, and equals BLAKE3 of the bytes.
 * The same input is also fed to the Node decoder. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/castore-proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
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

static int list_eq(const struct casfs_node *a, size_t na, const struct casfs_node *b, size_t nb)
{
	if (na != nb)
		return 0;
	for (size_t i = 0; i < na; i++)
		if (!node_eq(&a[i], &b[i]))
			return 0;
	return 1;
}

static int dir_eq(const struct casfs_directory *a, const struct casfs_directory *b)
{
	return list_eq(a->directories, a->n_directories, b->directories, b->n_directories) &&
	       list_eq(a->files, a->n_files, b->files, b->n_files) &&
	       list_eq(a->symlinks, a->n_symlinks, b->symlinks, b->n_symlinks);
}

static void check_failure(int r, const struct casfs_error *err)
{
	if (r != -EPROTO && r != -ENOMEM)
		abort();
	if (r == -EPROTO && err->msg[0] == 0)
		abort();
}

static void fuzz_directory(const uint8_t *data, size_t size)
{
	struct casfs_directory d, back, copy;
	struct casfs_error err = { 0 };
	int r = casfs_directory_decode(data, size, &d, &err);
	if (r < 0) {
		check_failure(r, &err);
		return;
	}
	struct casfs_buf b1 = CASFS_BUF_INIT, b2 = CASFS_BUF_INIT;
	if (casfs_directory_encode(&d, &b1) < 0)
		abort();
	if (casfs_directory_decode(b1.data, b1.len, &back, NULL) < 0)
		abort();
	if (!dir_eq(&d, &back))
		abort();
	if (casfs_directory_encode(&back, &b2) < 0 || !same_bytes(b1.data, b1.len, b2.data, b2.len))
		abort();
	/* a canonical input re-encodes to itself */
	struct casfs_error verr = { 0 };
	int valid = casfs_directory_validate(&d, &verr) == 0;
	if (!valid && verr.msg[0] == 0)
		abort();
	if ((casfs_directory_validate(&back, NULL) == 0) != valid)
		abort();
	if (casfs_directory_copy(&d, &copy) < 0)
		abort();
	if (!dir_eq(&d, &copy))
		abort();
	if (valid) {
		uint8_t d1[CASFS_B3_LEN], d2[CASFS_B3_LEN], d3[CASFS_B3_LEN], d4[CASFS_B3_LEN];
		if (casfs_directory_digest(&d, d1) < 0 || casfs_directory_digest(&back, d2) < 0 ||
		    casfs_directory_digest(&copy, d3) < 0)
			abort();
		casfs_b3(b1.data, b1.len, d4);
		if (memcmp(d1, d2, 32) || memcmp(d1, d3, 32) || memcmp(d1, d4, 32))
			abort();
		uint64_t s1, s2;
		if (casfs_directory_size(&d, &s1) < 0 || casfs_directory_size(&back, &s2) < 0 ||
		    s1 != s2)
			abort();
		/* a valid directory is sorted: sorting changes nothing */
		casfs_directory_sort(&copy);
		if (!dir_eq(&d, &copy))
			abort();
	} else {
		/* sorting never breaks the lists' order invariant */
		casfs_directory_sort(&copy);
		for (size_t i = 1; i < copy.n_files; i++)
			if (casfs_name_cmp(copy.files[i - 1].name, copy.files[i - 1].name_len,
					   copy.files[i].name, copy.files[i].name_len) > 0)
				abort();
	}
	casfs_buf_release(&b1);
	casfs_buf_release(&b2);
	casfs_directory_release(&copy);
	casfs_directory_release(&back);
	casfs_directory_release(&d);
}

static void fuzz_node(const uint8_t *data, size_t size)
{
	struct casfs_node n, back;
	struct casfs_error err = { 0 };
	int r = casfs_node_decode(data, size, &n, &err);
	if (r < 0) {
		check_failure(r, &err);
		return;
	}
	struct casfs_buf b = CASFS_BUF_INIT;
	if (casfs_node_encode(&n, &b) < 0)
		abort();
	if (casfs_node_decode(b.data, b.len, &back, NULL) < 0 || !node_eq(&n, &back))
		abort();
	(void)casfs_node_validate(&n, NULL);
	casfs_buf_release(&b);
	casfs_node_release(&back);
	casfs_node_release(&n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_directory(data, size);
	fuzz_node(data, size);
	return 0;
}
