#include "narinfo-pathinfo.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../basic/util.h"

static int copy_references(const struct casfs_narinfo *ni, struct casfs_pathinfo *pi)
{
	if (!ni->n_references)
		return 0;
	pi->references = calloc(ni->n_references, sizeof(*pi->references));
	pi->reference_names = calloc(ni->n_references, sizeof(*pi->reference_names));
	if (!pi->references || !pi->reference_names)
		return -ENOMEM;
	pi->references_cap = pi->reference_names_cap = ni->n_references;
	for (size_t i = 0; i < ni->n_references; i++) {
		char base[CASFS_STORE_PATH_BASENAME_MAX + 1];
		casfs_store_path_format_basename(&ni->references[i], base);
		if (!(pi->reference_names[i] = strdup(base)))
			return -ENOMEM;
		memcpy(pi->references[i], ni->references[i].digest, CASFS_STORE_DIGEST_LEN);
		pi->n_references = pi->n_reference_names = i + 1;
	}
	return 0;
}

static int copy_signatures(const struct casfs_narinfo *ni, struct casfs_pathinfo *pi)
{
	if (!ni->n_sigs)
		return 0;
	pi->signatures = calloc(ni->n_sigs, sizeof(*pi->signatures));
	if (!pi->signatures)
		return -ENOMEM;
	pi->signatures_cap = ni->n_sigs;
	for (size_t i = 0; i < ni->n_sigs; i++) {
		struct casfs_signature *s = &pi->signatures[i];
		s->name = strdup(ni->sigs[i].name);
		s->data = malloc(CASFS_NIXSIG_LEN);
		pi->n_signatures = i + 1;
		if (!s->name || !s->data)
			return -ENOMEM;
		memcpy(s->data, ni->sigs[i].sig, CASFS_NIXSIG_LEN);
		s->data_len = CASFS_NIXSIG_LEN;
	}
	return 0;
}

int casfs_pathinfo_from_narinfo(const struct casfs_narinfo *ni, struct casfs_node *root,
				struct casfs_pathinfo *ret, struct casfs_error *err)
{
	struct casfs_pathinfo pi = { 0 };
	pi.node = *root;
	memset(root, 0, sizeof(*root));
	pi.has_narinfo = true;
	pi.nar_size = ni->nar_size;
	memcpy(pi.nar_sha256, ni->nar_sha256, CASFS_SHA256_LEN);
	int r = copy_references(ni, &pi);
	if (r >= 0)
		r = copy_signatures(ni, &pi);
	if (r >= 0 && ni->has_deriver) {
		pi.has_deriver = true;
		memcpy(pi.deriver_digest, ni->deriver.digest, CASFS_STORE_DIGEST_LEN);
		if (!(pi.deriver_name = strdup(ni->deriver.name)))
			r = -ENOMEM;
	}
	if (r >= 0 && ni->ca) {
		struct casfs_ca ca;
		r = casfs_ca_parse(ni->ca, strlen(ni->ca), &ca, err);
		if (r >= 0 && !(pi.ca_digest = malloc(ca.len)))
			r = -ENOMEM;
		if (r >= 0) {
			pi.has_ca = true;
			pi.ca_type = ca.type;
			memcpy(pi.ca_digest, ca.digest, ca.len);
			pi.ca_digest_len = ca.len;
		}
	}
	if (r < 0) {
		casfs_pathinfo_release(&pi);
		return r == -ENOMEM ? casfs_error_set(err, r, "out of memory") : r;
	}
	*ret = pi;
	return 0;
}

static int narinfo_fill(const struct casfs_pathinfo *pi, struct casfs_narinfo *ni,
			struct casfs_error *err)
{
	int r = casfs_store_path_parse_basename(pi->node.name, pi->node.name_len, &ni->path, err);
	if (r < 0)
		return -EBADMSG;
	ni->nar_size = pi->nar_size;
	memcpy(ni->nar_sha256, pi->nar_sha256, CASFS_SHA256_LEN);
	if (pi->n_references && !(ni->references = calloc(pi->n_references, sizeof(*ni->references))))
		return -ENOMEM;
	for (size_t i = 0; i < pi->n_references; i++) {
		const char *name = pi->reference_names[i];
		r = casfs_store_path_parse_basename(name, strlen(name), &ni->references[i], err);
		if (r < 0)
			return -EBADMSG;
		ni->n_references = i + 1;
	}
	if (pi->has_deriver) {
		ni->has_deriver = true;
		memcpy(ni->deriver.digest, pi->deriver_digest, CASFS_STORE_DIGEST_LEN);
		if (strlen(pi->deriver_name) > CASFS_STORE_PATH_NAME_MAX)
			return casfs_error_set(err, -EBADMSG, "deriver name is too long");
		strcpy(ni->deriver.name, pi->deriver_name);
	}
	if (pi->n_signatures && !(ni->sigs = calloc(pi->n_signatures, sizeof(*ni->sigs))))
		return -ENOMEM;
	for (size_t i = 0; i < pi->n_signatures; i++) {
		const struct casfs_signature *s = &pi->signatures[i];
		if (s->data_len != CASFS_NIXSIG_LEN || !casfs_nixkey_name_valid(s->name, strlen(s->name)))
			return casfs_error_set(err, -EBADMSG, "signature %zu is not a Nix signature", i);
		strcpy(ni->sigs[ni->n_sigs].name, s->name);
		memcpy(ni->sigs[ni->n_sigs].sig, s->data, CASFS_NIXSIG_LEN);
		ni->n_sigs++;
	}
	if (pi->has_ca) {
		struct casfs_ca ca;
		r = casfs_ca_from_pathinfo(pi->ca_type, pi->ca_digest, pi->ca_digest_len, &ca, err);
		if (r < 0)
			return r;
		struct casfs_buf b = CASFS_BUF_INIT;
		r = casfs_ca_format(&ca, &b);
		if (r >= 0)
			r = casfs_buf_append_byte(&b, 0);
		if (r < 0) {
			casfs_buf_release(&b);
			return r;
		}
		ni->ca = (char *)casfs_buf_steal(&b, NULL);
	}
	return 0;
}

int casfs_narinfo_from_pathinfo(const struct casfs_pathinfo *pi, const char *url,
				const char *compression, struct casfs_narinfo *ret,
				struct casfs_error *err)
{
	struct casfs_narinfo ni = { 0 };
	int r = narinfo_fill(pi, &ni, err);
	if (r >= 0 && (!(ni.url = strdup(url)) || !(ni.compression = strdup(compression))))
		r = -ENOMEM;
	if (r < 0) {
		casfs_narinfo_release(&ni);
		return r == -ENOMEM ? casfs_error_set(err, r, "out of memory") : r;
	}
	*ret = ni;
	return 0;
}

int casfs_narinfo_check_trust(const struct casfs_narinfo *ni, const struct casfs_nixkey_list *trusted,
			      uint8_t ret_file_sha256[CASFS_SHA256_LEN], struct casfs_error *err)
{
	char path[CASFS_STORE_PATH_MAX + 1];
	casfs_store_path_format(&ni->path, path);
	int r = casfs_nixkey_verify_narinfo(trusted, ni, err);
	if (r < 0)
		return r;
	if (r > 0)
		return CASFS_TRUST_SIGNED;
	if (ni->ca) {
		struct casfs_ca ca;
		r = casfs_ca_parse(ni->ca, strlen(ni->ca), &ca, err);
		if (r >= 0)
			r = casfs_ca_check(&ca, &ni->path, ni->references, ni->n_references,
					   ni->nar_sha256, err);
		if (r < 0)
			return casfs_error_prefix(err, r, "'%s'", path);
		if (r == CASFS_CA_VERIFIED)
			return CASFS_TRUST_CONTENT;
		if (r == CASFS_CA_CHECK_FILE_SHA256) {
			memcpy(ret_file_sha256, ca.digest, CASFS_SHA256_LEN);
			return CASFS_TRUST_FILE_SHA256;
		}
	}
	return casfs_error_set(err, -EACCES,
			       "'%s' lacks a valid signature by a trusted key (%zu key%s trusted, "
			       "%zu signature%s)",
			       path, trusted->n, trusted->n == 1 ? "" : "s", ni->n_sigs,
			       ni->n_sigs == 1 ? "" : "s");
}
