#include "pathinfo-proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "castore-proto-internal.h"

enum {
	PI_NODE = 1,
	PI_REFERENCES = 2,
	PI_NARINFO = 3,

	NI_NAR_SIZE = 1,
	NI_NAR_SHA256 = 2,
	NI_SIGNATURES = 3,
	NI_REFERENCE_NAMES = 4,
	NI_DERIVER = 5,
	NI_CA = 6,

	SIG_NAME = 1,
	SIG_DATA = 2,
	SP_NAME = 1,
	SP_DIGEST = 2,
	CA_TYPE = 1,
	CA_DIGEST = 2,
};

#define SIGNATURE_LEN 64 /* ed25519 */

void casfs_pathinfo_release(struct casfs_pathinfo *pi)
{
	if (!pi)
		return;
	casfs_node_release(&pi->node);
	free(pi->references);
	for (size_t i = 0; i < pi->n_signatures; i++) {
		free(pi->signatures[i].name);
		free(pi->signatures[i].data);
	}
	free(pi->signatures);
	for (size_t i = 0; i < pi->n_reference_names; i++)
		free(pi->reference_names[i]);
	free(pi->reference_names);
	free(pi->deriver_name);
	free(pi->ca_digest);
	*pi = (struct casfs_pathinfo){ 0 };
}

static size_t str_len(const char *s)
{
	return s ? strlen(s) : 0;
}

/* Copy a possibly-NULL string; false only on OOM. */
static bool copy_str(const char *s, char **ret)
{
	*ret = s ? casfs_proto_memdup0(s, strlen(s)) : NULL;
	return !s || *ret;
}

int casfs_pathinfo_copy(const struct casfs_pathinfo *src, struct casfs_pathinfo *ret)
{
	/* Built up field by field with counts kept consistent, so that one
	 * release undoes a partial copy. */
	struct casfs_pathinfo c = *src;
	c.node = (struct casfs_node){ 0 };
	c.references = NULL;
	c.references_cap = 0;
	c.signatures = NULL;
	c.n_signatures = c.signatures_cap = 0;
	c.reference_names = NULL;
	c.n_reference_names = c.reference_names_cap = 0;
	c.deriver_name = NULL;
	c.ca_digest = NULL;

	if (casfs_node_copy(&src->node, &c.node) < 0)
		goto oom;
	if (src->n_references) {
		c.references = malloc(src->n_references * sizeof(*c.references));
		if (!c.references)
			goto oom;
		memcpy(c.references, src->references, src->n_references * sizeof(*c.references));
	}
	if (src->n_signatures) {
		c.signatures = calloc(src->n_signatures, sizeof(*c.signatures));
		if (!c.signatures)
			goto oom;
		for (; c.n_signatures < src->n_signatures; c.n_signatures++) {
			const struct casfs_signature *s = &src->signatures[c.n_signatures];
			struct casfs_signature *d = &c.signatures[c.n_signatures];
			if (!copy_str(s->name, &d->name))
				goto oom;
			d->data_len = s->data_len;
			if (s->data_len && !(d->data = malloc(s->data_len)))
				goto oom_sig;
			if (s->data_len)
				memcpy(d->data, s->data, s->data_len);
		}
	}
	if (src->n_reference_names) {
		c.reference_names = calloc(src->n_reference_names, sizeof(*c.reference_names));
		if (!c.reference_names)
			goto oom;
		for (; c.n_reference_names < src->n_reference_names; c.n_reference_names++)
			if (!copy_str(src->reference_names[c.n_reference_names],
				      &c.reference_names[c.n_reference_names]))
				goto oom;
	}
	if (!copy_str(src->deriver_name, &c.deriver_name))
		goto oom;
	if (src->ca_digest_len) {
		c.ca_digest = malloc(src->ca_digest_len);
		if (!c.ca_digest)
			goto oom;
		memcpy(c.ca_digest, src->ca_digest, src->ca_digest_len);
	}
	*ret = c;
	return 0;

oom_sig:
	c.n_signatures++; /* the half-copied signature has its name to free */
oom:
	casfs_pathinfo_release(&c);
	return -ENOMEM;
}

/* --- encoding --- */

static uint64_t ca_type_wire(enum casfs_ca_type t)
{
	/* proto3 enums are int32 on the wire, negative ones sign-extended */
	return (uint64_t)(int64_t)(int32_t)t;
}

static size_t signature_size(const struct casfs_signature *s)
{
	return casfs_wire_bytes_opt_size(SIG_NAME, str_len(s->name)) +
	       casfs_wire_bytes_opt_size(SIG_DATA, s->data_len);
}

static size_t deriver_size(const struct casfs_pathinfo *pi)
{
	return casfs_wire_bytes_opt_size(SP_NAME, str_len(pi->deriver_name)) +
	       casfs_wire_bytes_size(SP_DIGEST, CASFS_STORE_DIGEST_LEN);
}

static size_t ca_size(const struct casfs_pathinfo *pi)
{
	return casfs_wire_uint64_opt_size(CA_TYPE, ca_type_wire(pi->ca_type)) +
	       casfs_wire_bytes_opt_size(CA_DIGEST, pi->ca_digest_len);
}

static size_t narinfo_size(const struct casfs_pathinfo *pi)
{
	size_t s = casfs_wire_uint64_opt_size(NI_NAR_SIZE, pi->nar_size) +
		   casfs_wire_bytes_size(NI_NAR_SHA256, CASFS_SHA256_LEN);
	for (size_t i = 0; i < pi->n_signatures; i++)
		s += casfs_wire_bytes_size(NI_SIGNATURES, signature_size(&pi->signatures[i]));
	for (size_t i = 0; i < pi->n_reference_names; i++)
		s += casfs_wire_bytes_size(NI_REFERENCE_NAMES, str_len(pi->reference_names[i]));
	if (pi->has_deriver)
		s += casfs_wire_bytes_size(NI_DERIVER, deriver_size(pi));
	if (pi->has_ca)
		s += casfs_wire_bytes_size(NI_CA, ca_size(pi));
	return s;
}

static int put_header(struct casfs_buf *b, uint32_t field, size_t len)
{
	int k = casfs_wire_put_tag(b, field, CASFS_WIRE_LEN);
	return k < 0 ? k : casfs_wire_put_varint(b, len);
}

static int narinfo_put(struct casfs_buf *b, const struct casfs_pathinfo *pi)
{
	int k = put_header(b, PI_NARINFO, narinfo_size(pi));
	if (k >= 0)
		k = casfs_wire_put_uint64_opt(b, NI_NAR_SIZE, pi->nar_size);
	if (k >= 0)
		k = casfs_wire_put_bytes(b, NI_NAR_SHA256, pi->nar_sha256, CASFS_SHA256_LEN);
	for (size_t i = 0; k >= 0 && i < pi->n_signatures; i++) {
		const struct casfs_signature *s = &pi->signatures[i];
		k = put_header(b, NI_SIGNATURES, signature_size(s));
		if (k >= 0)
			k = casfs_wire_put_bytes_opt(b, SIG_NAME, s->name, str_len(s->name));
		if (k >= 0)
			k = casfs_wire_put_bytes_opt(b, SIG_DATA, s->data, s->data_len);
	}
	for (size_t i = 0; k >= 0 && i < pi->n_reference_names; i++)
		k = casfs_wire_put_bytes(b, NI_REFERENCE_NAMES, pi->reference_names[i],
					 str_len(pi->reference_names[i]));
	if (k >= 0 && pi->has_deriver) {
		k = put_header(b, NI_DERIVER, deriver_size(pi));
		if (k >= 0)
			k = casfs_wire_put_bytes_opt(b, SP_NAME, pi->deriver_name,
						     str_len(pi->deriver_name));
		if (k >= 0)
			k = casfs_wire_put_bytes(b, SP_DIGEST, pi->deriver_digest,
						 CASFS_STORE_DIGEST_LEN);
	}
	if (k >= 0 && pi->has_ca) {
		k = put_header(b, NI_CA, ca_size(pi));
		if (k >= 0)
			k = casfs_wire_put_uint64_opt(b, CA_TYPE, ca_type_wire(pi->ca_type));
		if (k >= 0)
			k = casfs_wire_put_bytes_opt(b, CA_DIGEST, pi->ca_digest, pi->ca_digest_len);
	}
	return k;
}

int casfs_pathinfo_encode(const struct casfs_pathinfo *pi, struct casfs_buf *out)
{
	size_t start = out->len;
	int k = 0;
	size_t node_size = casfs_node_wire_size(&pi->node);
	if (node_size) {
		k = put_header(out, PI_NODE, node_size);
		if (k >= 0)
			k = casfs_node_encode(&pi->node, out);
	}
	for (size_t i = 0; k >= 0 && i < pi->n_references; i++)
		k = casfs_wire_put_bytes(out, PI_REFERENCES, pi->references[i],
					 CASFS_STORE_DIGEST_LEN);
	if (k >= 0 && pi->has_narinfo)
		k = narinfo_put(out, pi);
	if (k < 0)
		out->len = start; /* append nothing on failure */
	return k;
}

/* --- decoding --- */

struct decode_state {
	bool nar_sha256_seen;
	bool deriver_digest_seen;
};

/* A proto3 `string`: valid UTF-8 (else a wire violation, as protobuf
 * runtimes treat it); NUL cannot live in our C strings, so it is refused
 * as a malformed value. */
static int replace_string(char **dst, const struct casfs_wire_field *f, const char *what,
			  struct casfs_error *err)
{
	if (!casfs_wire_utf8_valid(f->data, f->len))
		return casfs_error_set(err, -EPROTO, "%s: invalid UTF-8 at offset %zu", what,
				       f->offset);
	if (memchr(f->data, 0, f->len))
		return casfs_error_set(err, -EBADMSG, "%s contains NUL at offset %zu", what,
				       f->offset);
	char *s = casfs_proto_memdup0(f->data, f->len);
	if (!s)
		return casfs_error_set(err, -ENOMEM, "out of memory");
	free(*dst);
	*dst = s;
	return 0;
}

static int expect(const struct casfs_wire_field *f, enum casfs_wire_type t, const char *msg,
		  struct casfs_error *err)
{
	return f->type == t ? 0 : casfs_wire_bad_type(f, msg, err);
}

static int signature_merge(struct casfs_wire_reader *r, struct casfs_signature *s,
			   struct casfs_error *err)
{
	struct casfs_wire_field f;
	int k;
	while ((k = casfs_wire_next(r, &f, err)) > 0) {
		if (f.number != SIG_NAME && f.number != SIG_DATA)
			continue;
		k = expect(&f, CASFS_WIRE_LEN, "Signature", err);
		if (k < 0)
			return k;
		if (f.number == SIG_NAME) {
			k = replace_string(&s->name, &f, "signature name", err);
			if (k < 0)
				return k;
		} else {
			uint8_t *d = f.len ? malloc(f.len) : NULL;
			if (f.len && !d)
				return casfs_error_set(err, -ENOMEM, "out of memory");
			if (f.len)
				memcpy(d, f.data, f.len);
			free(s->data);
			s->data = d;
			s->data_len = f.len;
		}
	}
	return k;
}

static int deriver_merge(struct casfs_wire_reader *r, struct casfs_pathinfo *pi,
			 struct decode_state *st, struct casfs_error *err)
{
	struct casfs_wire_field f;
	int k;
	while ((k = casfs_wire_next(r, &f, err)) > 0) {
		if (f.number != SP_NAME && f.number != SP_DIGEST)
			continue;
		k = expect(&f, CASFS_WIRE_LEN, "StorePath", err);
		if (k < 0)
			return k;
		if (f.number == SP_NAME) {
			k = replace_string(&pi->deriver_name, &f, "deriver name", err);
			if (k < 0)
				return k;
		} else {
			if (f.len != CASFS_STORE_DIGEST_LEN)
				return casfs_error_set(err, -EBADMSG,
						       "deriver digest is %zu bytes, not %d", f.len,
						       CASFS_STORE_DIGEST_LEN);
			memcpy(pi->deriver_digest, f.data, CASFS_STORE_DIGEST_LEN);
			st->deriver_digest_seen = true;
		}
	}
	return k;
}

static int ca_merge(struct casfs_wire_reader *r, struct casfs_pathinfo *pi,
		    struct casfs_error *err)
{
	struct casfs_wire_field f;
	int k;
	while ((k = casfs_wire_next(r, &f, err)) > 0) {
		if (f.number == CA_TYPE) {
			k = expect(&f, CASFS_WIRE_VARINT, "CA", err);
			if (k < 0)
				return k;
			/* int32 on the wire: the low 32 bits, as protobuf reads it */
			pi->ca_type = (enum casfs_ca_type)(int32_t)(uint32_t)f.varint;
		} else if (f.number == CA_DIGEST) {
			k = expect(&f, CASFS_WIRE_LEN, "CA", err);
			if (k < 0)
				return k;
			uint8_t *d = f.len ? malloc(f.len) : NULL;
			if (f.len && !d)
				return casfs_error_set(err, -ENOMEM, "out of memory");
			if (f.len)
				memcpy(d, f.data, f.len);
			free(pi->ca_digest);
			pi->ca_digest = d;
			pi->ca_digest_len = f.len;
		}
	}
	return k;
}

static int narinfo_merge(struct casfs_wire_reader *r, struct casfs_pathinfo *pi,
			 struct decode_state *st, struct casfs_error *err)
{
	struct casfs_wire_field f;
	struct casfs_wire_reader sub;
	int k;
	while ((k = casfs_wire_next(r, &f, err)) > 0) {
		if (f.number < NI_NAR_SIZE || f.number > NI_CA)
			continue;
		k = expect(&f, f.number == NI_NAR_SIZE ? CASFS_WIRE_VARINT : CASFS_WIRE_LEN,
			   "NARInfo", err);
		if (k < 0)
			return k;
		if (f.type == CASFS_WIRE_LEN)
			casfs_wire_reader_sub(&sub, r, &f);
		switch (f.number) {
		case NI_NAR_SIZE:
			pi->nar_size = f.varint;
			break;
		case NI_NAR_SHA256:
			if (f.len != CASFS_SHA256_LEN)
				return casfs_error_set(err, -EBADMSG, "nar_sha256 is %zu bytes, not %d",
						       f.len, CASFS_SHA256_LEN);
			memcpy(pi->nar_sha256, f.data, CASFS_SHA256_LEN);
			st->nar_sha256_seen = true;
			break;
		case NI_SIGNATURES: {
			struct casfs_signature *s =
				casfs_proto_grow(pi->signatures, pi->n_signatures,
						 &pi->signatures_cap, sizeof(*s));
			if (!s)
				return casfs_error_set(err, -ENOMEM, "out of memory");
			pi->signatures = s;
			k = signature_merge(&sub, &pi->signatures[pi->n_signatures++], err);
			break;
		}
		case NI_REFERENCE_NAMES: {
			char **names = casfs_proto_grow(pi->reference_names, pi->n_reference_names,
							&pi->reference_names_cap, sizeof(*names));
			if (!names)
				return casfs_error_set(err, -ENOMEM, "out of memory");
			pi->reference_names = names;
			k = replace_string(&names[pi->n_reference_names++], &f, "reference name",
					   err);
			break;
		}
		case NI_DERIVER:
			pi->has_deriver = true;
			k = deriver_merge(&sub, pi, st, err);
			break;
		case NI_CA:
			pi->has_ca = true;
			k = ca_merge(&sub, pi, err);
			break;
		}
		if (k < 0)
			return k;
	}
	return k;
}

int casfs_pathinfo_decode(const uint8_t *p, size_t len, struct casfs_pathinfo *ret,
			  struct casfs_error *err)
{
	struct casfs_pathinfo pi = { 0 };
	struct decode_state st = { 0 };
	struct casfs_wire_reader r, sub;
	struct casfs_wire_field f;
	int k;
	casfs_wire_reader_init(&r, p, len);
	while ((k = casfs_wire_next(&r, &f, err)) > 0) {
		if (f.number < PI_NODE || f.number > PI_NARINFO)
			continue;
		k = expect(&f, CASFS_WIRE_LEN, "PathInfo", err);
		if (k < 0)
			break;
		casfs_wire_reader_sub(&sub, &r, &f);
		if (f.number == PI_NODE) {
			k = casfs_node_merge_wire(&sub, &pi.node, err);
		} else if (f.number == PI_REFERENCES) {
			if (f.len != CASFS_STORE_DIGEST_LEN) {
				k = casfs_error_set(err, -EBADMSG,
						    "reference %zu is %zu bytes, not %d",
						    pi.n_references, f.len, CASFS_STORE_DIGEST_LEN);
				break;
			}
			uint8_t(*refs)[CASFS_STORE_DIGEST_LEN] =
				casfs_proto_grow(pi.references, pi.n_references,
						 &pi.references_cap, sizeof(*refs));
			if (!refs) {
				k = casfs_error_set(err, -ENOMEM, "out of memory");
				break;
			}
			pi.references = refs;
			memcpy(refs[pi.n_references++], f.data, CASFS_STORE_DIGEST_LEN);
		} else {
			pi.has_narinfo = true;
			k = narinfo_merge(&sub, &pi, &st, err);
		}
		if (k < 0)
			break;
	}
	/* The model has room for exactly-sized digests only; a message that
	 * leaves them out cannot be represented, so it is refused here. */
	if (k >= 0 && pi.has_narinfo && !st.nar_sha256_seen)
		k = casfs_error_set(err, -EBADMSG, "narinfo without nar_sha256");
	if (k >= 0 && pi.has_deriver && !st.deriver_digest_seen)
		k = casfs_error_set(err, -EBADMSG, "deriver without digest");
	if (k < 0) {
		casfs_pathinfo_release(&pi);
		return k;
	}
	*ret = pi;
	return 0;
}

/* --- validation --- */

static size_t ca_digest_len_for(enum casfs_ca_type t)
{
	switch (t) {
	case CASFS_CA_NAR_SHA256:
	case CASFS_CA_TEXT_SHA256:
	case CASFS_CA_FLAT_SHA256:
		return 32;
	case CASFS_CA_NAR_SHA1:
	case CASFS_CA_FLAT_SHA1:
		return 20;
	case CASFS_CA_NAR_SHA512:
	case CASFS_CA_FLAT_SHA512:
		return 64;
	case CASFS_CA_NAR_MD5:
	case CASFS_CA_FLAT_MD5:
		return 16;
	}
	return 0;
}

int casfs_pathinfo_validate(const struct casfs_pathinfo *pi, struct casfs_error *err)
{
	if (pi->node.type == CASFS_NODE_NONE)
		return casfs_error_set(err, -EBADMSG, "PathInfo has no root node");
	int k = casfs_node_validate(&pi->node, err);
	if (k < 0)
		return casfs_error_prefix(err, k, "root node");
	if (!pi->has_narinfo)
		return casfs_error_set(err, -EBADMSG, "PathInfo has no narinfo");
	if (pi->n_reference_names != pi->n_references)
		return casfs_error_set(err, -EBADMSG, "%zu references but %zu reference names",
				       pi->n_references, pi->n_reference_names);
	for (size_t i = 0; i < pi->n_reference_names; i++)
		if (str_len(pi->reference_names[i]) == 0)
			return casfs_error_set(err, -EBADMSG, "reference name %zu is empty", i);
	for (size_t i = 0; i < pi->n_signatures; i++) {
		const struct casfs_signature *s = &pi->signatures[i];
		if (str_len(s->name) == 0)
			return casfs_error_set(err, -EBADMSG, "signature %zu has no key name", i);
		if (s->data_len != SIGNATURE_LEN)
			return casfs_error_set(err, -EBADMSG, "signature %zu is %zu bytes, not %d",
					       i, s->data_len, SIGNATURE_LEN);
	}
	if (pi->has_deriver && str_len(pi->deriver_name) == 0)
		return casfs_error_set(err, -EBADMSG, "deriver has no name");
	if (pi->has_ca) {
		size_t want = ca_digest_len_for(pi->ca_type);
		if (want == 0)
			return casfs_error_set(err, -EBADMSG, "unknown content address type %d",
					       (int)pi->ca_type);
		if (pi->ca_digest_len != want)
			return casfs_error_set(err, -EBADMSG,
					       "content address digest is %zu bytes, not %zu",
					       pi->ca_digest_len, want);
	}
	return 0;
}
