/* Fuzz the .narinfo parser: parsing fails cleanly (-EBADMSG/-EOVERFLOW
 * with a message, or -ENOMEM) or gives a narinfo that renders, whose
 * rendering parses and renders to the same bytes (the sets already sorted
 * and deduplicated), whose fingerprint exists (NarSize != 0), and whose
 * signatures verify against no key of an empty list and never crash the
 * verifier under a fixed key of the first signature's name.  Then the
 * trust check (content addresses, ca.h) and the mapping to a PathInfo and
 * back: a narinfo is trusted unsigned only through a CA that parses, and
 * the PathInfo it gives maps back to the same signed fields. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nixcache/narinfo-pathinfo.h"
#include "nixcache/narinfo.h"
#include "nixcache/nixkey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct casfs_narinfo ni, back;
	struct casfs_error err = { 0 };
	int r = casfs_narinfo_parse((const char *)data, size, &ni, &err);
	if (r < 0) {
		if (r != -EBADMSG && r != -EOVERFLOW && r != -ENOMEM)
			abort();
		if (r != -ENOMEM && err.msg[0] == 0)
			abort();
		return 0;
	}
	if (ni.nar_size == 0 || !ni.url || !ni.url[0] || !ni.compression || !ni.compression[0])
		abort();
	struct casfs_buf b1 = CASFS_BUF_INIT, b2 = CASFS_BUF_INIT, fp = CASFS_BUF_INIT;
	if (casfs_narinfo_render(&ni, &b1) < 0)
		abort();
	if (casfs_narinfo_parse((const char *)b1.data, b1.len, &back, NULL) < 0)
		abort();
	if (casfs_narinfo_render(&back, &b2) < 0 || b1.len != b2.len ||
	    memcmp(b1.data, b2.data, b1.len) != 0)
		abort();
	if (back.n_references != ni.n_references || back.n_sigs != ni.n_sigs ||
	    memcmp(back.nar_sha256, ni.nar_sha256, sizeof(ni.nar_sha256)) != 0 ||
	    back.nar_size != ni.nar_size)
		abort();
	if (casfs_narinfo_fingerprint(&ni, &fp) < 0)
		abort();
	struct casfs_nixkey_list none = { 0 };
	if (casfs_nixkey_verify_narinfo(&none, &ni, NULL) != 0)
		abort();
	if (ni.n_sigs > 0) {
		struct casfs_nixkey_public pk = { 0 };
		memcpy(pk.name, ni.sigs[0].name, sizeof(pk.name));
		memset(pk.key, 0x42, sizeof(pk.key));
		struct casfs_nixkey_list one = { .keys = &pk, .n = 1 };
		r = casfs_nixkey_verify_narinfo(&one, &ni, NULL);
		if (r < 0 && r != -EIO && r != -ENOMEM)
			abort();
	}
	uint8_t file_sha[CASFS_SHA256_LEN];
	r = casfs_narinfo_check_trust(&ni, &none, file_sha, &err);
	if (r == CASFS_TRUST_SIGNED)
		abort(); /* no key, so no signature can be valid */
	if (r >= 0 && !ni.ca)
		abort();
	if (r < 0 && r != -EACCES && r != -EBADMSG && r != -ENOMEM)
		abort();
	struct casfs_node root = { .type = CASFS_NODE_SYMLINK };
	char base[CASFS_STORE_PATH_BASENAME_MAX + 1];
	casfs_store_path_format_basename(&ni.path, base);
	root.name = strdup(base);
	root.name_len = strlen(base);
	root.target = strdup("t");
	root.target_len = 1;
	struct casfs_pathinfo pi;
	if (root.name && root.target && casfs_pathinfo_from_narinfo(&ni, &root, &pi, NULL) >= 0) {
		struct casfs_narinfo again;
		if (casfs_narinfo_from_pathinfo(&pi, "nar/x.nar", "none", &again, NULL) < 0)
			abort();
		struct casfs_buf f1 = CASFS_BUF_INIT, f2 = CASFS_BUF_INIT;
		if (casfs_narinfo_fingerprint(&ni, &f1) < 0 || casfs_narinfo_fingerprint(&again, &f2) < 0 ||
		    f1.len != f2.len || memcmp(f1.data, f2.data, f1.len) != 0 ||
		    again.n_sigs != ni.n_sigs || !again.ca != !ni.ca)
			abort();
		casfs_buf_release(&f1);
		casfs_buf_release(&f2);
		casfs_narinfo_release(&again);
		casfs_pathinfo_release(&pi);
	}
	casfs_node_release(&root);
	casfs_buf_release(&fp);
	casfs_buf_release(&b1);
	casfs_buf_release(&b2);
	casfs_narinfo_release(&back);
	casfs_narinfo_release(&ni);
	return 0;
}
