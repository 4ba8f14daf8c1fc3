/* The .narinfo parser and renderer (grammar in narinfo.h).
 *
 * The parser is one pass over lines:
 *
 *   start --NUL anywhere--> error
 *   start --> LINE: find '\n' (none: error "no final newline")
 *               find ':' in the line (none or at 0: error)
 *               require ' ' after it, value = rest of the line
 *               known name? seen before: error; else decode into the draft
 *             --> LINE while bytes remain
 *   end: required fields present, NarSize != 0, defaults, sort the sets
 *        --> move the draft into *ret
 *
 * Everything goes into a draft struct that is released on any error, so
 * *ret is only written on success. */
#include "narinfo.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../basic/util.h"

enum field {
	F_STORE_PATH,
	F_URL,
	F_COMPRESSION,
	F_FILE_HASH,
	F_FILE_SIZE,
	F_NAR_HASH,
	F_NAR_SIZE,
	F_REFERENCES,
	F_DERIVER,
	F_SYSTEM,
	F_SIG,
	F_CA,
	F_UNKNOWN,
};

static const struct {
	const char *name;
	enum field field;
	bool repeatable;
} fields[] = {
	{ "StorePath", F_STORE_PATH, false }, { "URL", F_URL, false },
	{ "Compression", F_COMPRESSION, false }, { "FileHash", F_FILE_HASH, false },
	{ "FileSize", F_FILE_SIZE, false }, { "NarHash", F_NAR_HASH, false },
	{ "NarSize", F_NAR_SIZE, false }, { "References", F_REFERENCES, false },
	{ "Deriver", F_DERIVER, false }, { "System", F_SYSTEM, false },
	{ "Sig", F_SIG, true }, { "CA", F_CA, false },
};

bool casfs_nixkey_name_valid(const char *name, size_t len)
{
	if (len == 0 || len > CASFS_NIXKEY_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c <= 0x20 || c == 0x7f || c == ':')
			return false;
	}
	return true;
}

int casfs_narinfo_sig_parse(const char *s, size_t len, struct casfs_narinfo_sig *ret,
			    struct casfs_error *err)
{
	const char *colon = memchr(s, ':', len);
	if (!colon)
		return casfs_error_set(err, -EBADMSG, "signature has no ':' after the key name");
	size_t nlen = (size_t)(colon - s);
	if (!casfs_nixkey_name_valid(s, nlen))
		return casfs_error_set(err, -EBADMSG,
				       "signature key name is empty, too long or has a space, "
				       "control character or ':'");
	struct casfs_narinfo_sig sig = { 0 };
	size_t blen = len - nlen - 1;
	if (blen != CASFS_BASE64_LEN(CASFS_NIXSIG_LEN) ||
	    casfs_base64_decode(colon + 1, blen, sig.sig, sizeof(sig.sig)) != CASFS_NIXSIG_LEN)
		return casfs_error_set(err, -EBADMSG,
				       "signature of key '%.*s' is not base64 of %d bytes", (int)nlen,
				       s, CASFS_NIXSIG_LEN);
	memcpy(sig.name, s, nlen);
	*ret = sig;
	return 0;
}

size_t casfs_narinfo_sig_format(const struct casfs_narinfo_sig *sig, char *out)
{
	size_t n = strnlen(sig->name, CASFS_NIXKEY_NAME_MAX);
	memcpy(out, sig->name, n);
	out[n++] = ':';
	return n + casfs_base64_encode(sig->sig, CASFS_NIXSIG_LEN, out + n);
}

void casfs_narinfo_release(struct casfs_narinfo *ni)
{
	if (!ni)
		return;
	free(ni->url);
	free(ni->compression);
	free(ni->references);
	free(ni->system);
	free(ni->sigs);
	free(ni->ca);
	memset(ni, 0, sizeof(*ni));
}


/* ---- sets: the orders Nix's std::set gives ----------------------------- */

static int cmp_ref(const void *a, const void *b)
{
	char sa[CASFS_STORE_PATH_BASENAME_MAX + 1], sb[CASFS_STORE_PATH_BASENAME_MAX + 1];
	casfs_store_path_format_basename(a, sa);
	casfs_store_path_format_basename(b, sb);
	return strcmp(sa, sb);
}

static int cmp_ref_ptr(const void *a, const void *b)
{
	return cmp_ref(*(const struct casfs_store_path *const *)a,
		       *(const struct casfs_store_path *const *)b);
}

static int cmp_sig(const void *a, const void *b)
{
	char sa[CASFS_NIXSIG_STR_MAX], sb[CASFS_NIXSIG_STR_MAX];
	casfs_narinfo_sig_format(a, sa);
	casfs_narinfo_sig_format(b, sb);
	return strcmp(sa, sb);
}

static int cmp_sig_ptr(const void *a, const void *b)
{
	return cmp_sig(*(const struct casfs_narinfo_sig *const *)a,
		       *(const struct casfs_narinfo_sig *const *)b);
}

/* Sort and drop duplicates in place; returns the new count. */
static size_t sort_unique(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
	if (n < 2)
		return n;
	qsort(base, n, size, cmp);
	uint8_t *p = base;
	size_t out = 1;
	for (size_t i = 1; i < n; i++) {
		if (cmp(p + (out - 1) * size, p + i * size) == 0)
			continue;
		if (out != i)
			memcpy(p + out * size, p + i * size, size);
		out++;
	}
	return out;
}

/* ---- field decoders ----------------------------------------------------- */

/* "sha256:" + nixbase32 (52) | hex (64) | base64 (44), or "sha256-" + base64. */
static int parse_sha256(const char *v, size_t len, uint8_t ret[CASFS_SHA256_LEN])
{
	if (len < 7 || memcmp(v, "sha256", 6) != 0 || (v[6] != ':' && v[6] != '-'))
		return -EBADMSG;
	bool sri = v[6] == '-';
	const char *h = v + 7;
	size_t hlen = len - 7;
	ssize_t r;
	if (!sri && hlen == CASFS_NIXBASE32_LEN(CASFS_SHA256_LEN))
		r = casfs_nixbase32_decode(h, hlen, ret, CASFS_SHA256_LEN);
	else if (!sri && hlen == CASFS_HEX_LEN(CASFS_SHA256_LEN))
		r = casfs_hex_decode(h, hlen, ret, CASFS_SHA256_LEN);
	else if (hlen == CASFS_BASE64_LEN(CASFS_SHA256_LEN))
		r = casfs_base64_decode(h, hlen, ret, CASFS_SHA256_LEN);
	else
		return -EBADMSG;
	return r == CASFS_SHA256_LEN ? 0 : -EBADMSG;
}

static int parse_u64(const char *v, size_t len, uint64_t *ret)
{
	if (len == 0 || len > 20)
		return -EBADMSG;
	uint64_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -EBADMSG;
		if (__builtin_mul_overflow(n, 10, &n) ||
		    __builtin_add_overflow(n, (uint64_t)(v[i] - '0'), &n))
			return -EBADMSG;
	}
	*ret = n;
	return 0;
}

static char *dup_value(const char *v, size_t len)
{
	char *s = malloc(len + 1);
	if (s) {
		memcpy(s, v, len);
		s[len] = 0;
	}
	return s;
}

/* Grow an array of `size`-byte items to hold n + 1. */
static int grow(void **arr, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return 0;
	size_t ncap = *cap ? *cap * 2 : 4, bytes;
	if (__builtin_mul_overflow(ncap, size, &bytes))
		return -ENOMEM;
	void *p = realloc(*arr, bytes);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

/* A field name fit for a one-line message. */
static void printable_name(const char *s, size_t len, char out[40])
{
	size_t n = MIN(len, 32);
	for (size_t i = 0; i < n; i++)
		out[i] = (s[i] > 0x20 && s[i] < 0x7f) ? s[i] : '?';
	strcpy(out + n, len > n ? "..." : "");
}

struct parser {
	struct casfs_narinfo ni;
	size_t ref_cap, sig_cap;
	unsigned line;
	const char *name; /* current field, for messages */
	struct casfs_error *err;
};

static void parser_release(struct parser *p)
{
	casfs_narinfo_release(&p->ni);
}

#define BAD(p, ...) bad_field(p, __VA_ARGS__)

static int bad_field(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad_field(struct parser *p, const char *fmt, ...)
{
	char why[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return casfs_error_set(p->err, -EBADMSG, "narinfo line %u (%s): %s", p->line, p->name, why);
}

static int parse_references(struct parser *p, const char *v, size_t len)
{
	size_t i = 0;
	while (i < len) {
		if (v[i] == ' ') { /* Nix's tokenizeString skips empty tokens */
			i++;
			continue;
		}
		const char *end = memchr(v + i, ' ', len - i);
		size_t tlen = end ? (size_t)(end - (v + i)) : len - i;
		if (p->ni.n_references >= CASFS_NARINFO_MAX_REFERENCES)
			return casfs_error_set(p->err, -EOVERFLOW,
					       "narinfo line %u (References): more than %d references",
					       p->line, CASFS_NARINFO_MAX_REFERENCES);
		if (grow((void **)&p->ni.references, &p->ref_cap, p->ni.n_references,
			 sizeof(*p->ni.references)) < 0)
			return -ENOMEM;
		struct casfs_error e = { 0 };
		if (casfs_store_path_parse_basename(v + i, tlen,
						    &p->ni.references[p->ni.n_references], &e) < 0)
			return BAD(p, "reference %zu: %s", p->ni.n_references + 1, e.msg);
		p->ni.n_references++;
		i += tlen;
	}
	return 0;
}

static int parse_field(struct parser *p, enum field f, const char *v, size_t len)
{
	struct casfs_narinfo *ni = &p->ni;
	struct casfs_error e = { 0 };
	switch (f) {
	case F_STORE_PATH: {
		char path[CASFS_STORE_PATH_MAX + 1];
		if (len > CASFS_STORE_PATH_MAX)
			return BAD(p, "store path longer than %zu bytes", CASFS_STORE_PATH_MAX);
		memcpy(path, v, len);
		path[len] = 0;
		if (casfs_store_path_parse(path, &ni->path, &e) < 0)
			return BAD(p, "%s", e.msg);
		return 0;
	}
	case F_URL:
		if (len == 0)
			return BAD(p, "empty URL");
		return (ni->url = dup_value(v, len)) ? 0 : -ENOMEM;
	case F_COMPRESSION:
		if (len == 0) /* Nix: empty means the default */
			return 0;
		return (ni->compression = dup_value(v, len)) ? 0 : -ENOMEM;
	case F_FILE_HASH:
		if (parse_sha256(v, len, ni->file_sha256) < 0)
			return BAD(p, "not a sha256 hash (sha256:<nixbase32|hex|base64>)");
		ni->has_file_hash = true;
		return 0;
	case F_FILE_SIZE:
		if (parse_u64(v, len, &ni->file_size) < 0)
			return BAD(p, "not a decimal 64-bit size");
		ni->has_file_size = true;
		return 0;
	case F_NAR_HASH:
		if (parse_sha256(v, len, ni->nar_sha256) < 0)
			return BAD(p, "not a sha256 hash (sha256:<nixbase32|hex|base64>)");
		return 0;
	case F_NAR_SIZE:
		if (parse_u64(v, len, &ni->nar_size) < 0)
			return BAD(p, "not a decimal 64-bit size");
		if (ni->nar_size == 0)
			return BAD(p, "NarSize is 0");
		return 0;
	case F_REFERENCES:
		return parse_references(p, v, len);
	case F_DERIVER:
		if (len == 15 && memcmp(v, "unknown-deriver", 15) == 0)
			return 0;
		if (casfs_store_path_parse_basename(v, len, &ni->deriver, &e) < 0)
			return BAD(p, "%s", e.msg);
		ni->has_deriver = true;
		return 0;
	case F_SYSTEM:
		if (len == 0)
			return 0;
		return (ni->system = dup_value(v, len)) ? 0 : -ENOMEM;
	case F_SIG:
		if (ni->n_sigs >= CASFS_NARINFO_MAX_SIGS)
			return casfs_error_set(p->err, -EOVERFLOW,
					       "narinfo line %u (Sig): more than %d signatures",
					       p->line, CASFS_NARINFO_MAX_SIGS);
		if (grow((void **)&ni->sigs, &p->sig_cap, ni->n_sigs, sizeof(*ni->sigs)) < 0)
			return -ENOMEM;
		if (casfs_narinfo_sig_parse(v, len, &ni->sigs[ni->n_sigs], &e) < 0)
			return BAD(p, "%s", e.msg);
		ni->n_sigs++;
		return 0;
	case F_CA:
		if (len == 0) /* Nix: a blank CA is no CA */
			return 0;
		if (!(len > 6 && memcmp(v, "fixed:", 6) == 0) &&
		    !(len > 5 && memcmp(v, "text:", 5) == 0))
			return BAD(p, "content address does not start with 'fixed:' or 'text:'");
		return (ni->ca = dup_value(v, len)) ? 0 : -ENOMEM;
	case F_UNKNOWN:
		return 0;
	}
	return 0;
}

int casfs_narinfo_parse(const char *text, size_t len, struct casfs_narinfo *ret,
			struct casfs_error *err)
{
	if (len > CASFS_NARINFO_MAX_SIZE)
		return casfs_error_set(err, -EOVERFLOW, "narinfo of %zu bytes is over the %d-byte limit",
				       len, CASFS_NARINFO_MAX_SIZE);
	const char *nul = memchr(text, 0, len);
	if (nul)
		return casfs_error_set(err, -EBADMSG, "narinfo has a NUL byte at offset %zu",
				       (size_t)(nul - text));

	_cleanup_(parser_release) struct parser p = { .err = err };
	uint32_t seen = 0;
	size_t pos = 0;
	while (pos < len) {
		p.line++;
		p.name = "?";
		const char *line = text + pos;
		const char *eol = memchr(line, '\n', len - pos);
		if (!eol)
			return casfs_error_set(err, -EBADMSG,
					       "narinfo line %u: no final newline (the narinfo is "
					       "truncated)",
					       p.line);
		size_t llen = (size_t)(eol - line);
		const char *colon = memchr(line, ':', llen);
		if (!colon || colon == line)
			return casfs_error_set(err, -EBADMSG,
					       "narinfo line %u: not 'Name: value' (%s)", p.line,
					       colon ? "empty name" : "no ':'");
		size_t nlen = (size_t)(colon - line);
		char shown[40];
		printable_name(line, nlen, shown);
		p.name = shown;
		if (nlen + 1 >= llen || colon[1] != ' ')
			return BAD(&p, "the ':' is not followed by a space");
		enum field f = F_UNKNOWN;
		bool repeatable = true;
		for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
			if (strlen(fields[i].name) == nlen && memcmp(fields[i].name, line, nlen) == 0) {
				f = fields[i].field;
				repeatable = fields[i].repeatable;
			}
		if (f != F_UNKNOWN) {
			if (!repeatable && (seen & (1u << f)))
				return BAD(&p, "field given twice");
			seen |= 1u << f;
		}
		int r = parse_field(&p, f, colon + 2, llen - nlen - 2);
		if (r < 0)
			return r;
		pos += llen + 1;
	}

	p.line = 0;
	static const enum field required[] = { F_STORE_PATH, F_URL, F_NAR_HASH, F_NAR_SIZE };
	for (size_t i = 0; i < ARRAY_SIZE(required); i++)
		if (!(seen & (1u << required[i])))
			return casfs_error_set(err, -EBADMSG, "narinfo has no %s field",
					       fields[required[i]].name);
	if (!p.ni.compression && !(p.ni.compression = strdup("bzip2")))
		return -ENOMEM;
	p.ni.n_references = sort_unique(p.ni.references, p.ni.n_references,
					sizeof(*p.ni.references), cmp_ref);
	p.ni.n_sigs = sort_unique(p.ni.sigs, p.ni.n_sigs, sizeof(*p.ni.sigs), cmp_sig);
	*ret = p.ni;
	memset(&p.ni, 0, sizeof(p.ni));
	return 0;
}

/* ---- rendering ---------------------------------------------------------- */

static int put(struct casfs_buf *out, const char *s)
{
	return casfs_buf_append(out, s, strlen(s));
}

static int put_line(struct casfs_buf *out, const char *name, const char *value)
{
	int r;
	if ((r = put(out, name)) < 0 || (r = put(out, ": ")) < 0 || (r = put(out, value)) < 0)
		return r;
	return casfs_buf_append_byte(out, '\n');
}

static int put_hash_line(struct casfs_buf *out, const char *name, const uint8_t h[CASFS_SHA256_LEN])
{
	char s[CASFS_SHA256_NIX_STR_LEN + 1];
	casfs_sha256_format_nix(h, s);
	return put_line(out, name, s);
}

static int put_u64_line(struct casfs_buf *out, const char *name, uint64_t n)
{
	char s[24];
	snprintf(s, sizeof(s), "%" PRIu64, n);
	return put_line(out, name, s);
}

/* Pointers to the items of a set, in the order Nix writes them (caller
 * frees).  NULL on OOM (n == 0 gives a valid 1-element allocation). */
static const void **sorted_ptrs(const void *base, size_t n, size_t size,
				int (*cmp)(const void *, const void *))
{
	const void **v = malloc((n ? n : 1) * sizeof(*v));
	if (!v)
		return NULL;
	for (size_t i = 0; i < n; i++)
		v[i] = (const uint8_t *)base + i * size;
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp);
	return v;
}

int casfs_narinfo_render(const struct casfs_narinfo *ni, struct casfs_buf *out)
{
	if (!ni->url || !ni->url[0] || !ni->compression || !ni->compression[0] || ni->nar_size == 0)
		return -EINVAL;
	char path[CASFS_STORE_PATH_MAX + 1];
	int r;
	casfs_store_path_format(&ni->path, path);
	if ((r = put_line(out, "StorePath", path)) < 0 || (r = put_line(out, "URL", ni->url)) < 0 ||
	    (r = put_line(out, "Compression", ni->compression)) < 0)
		return r;
	if (ni->has_file_hash && (r = put_hash_line(out, "FileHash", ni->file_sha256)) < 0)
		return r;
	if (ni->has_file_size && (r = put_u64_line(out, "FileSize", ni->file_size)) < 0)
		return r;
	if ((r = put_hash_line(out, "NarHash", ni->nar_sha256)) < 0 ||
	    (r = put_u64_line(out, "NarSize", ni->nar_size)) < 0 || (r = put(out, "References: ")) < 0)
		return r;

	_cleanup_free_ const void **refs = sorted_ptrs(ni->references, ni->n_references,
						       sizeof(*ni->references), cmp_ref_ptr);
	if (!refs)
		return -ENOMEM;
	for (size_t i = 0; i < ni->n_references; i++) {
		if (i > 0 && cmp_ref(refs[i - 1], refs[i]) == 0)
			continue; /* a set: a duplicate is written once */
		char base[CASFS_STORE_PATH_BASENAME_MAX + 1];
		casfs_store_path_format_basename(refs[i], base);
		if ((i > 0 && (r = put(out, " ")) < 0) || (r = put(out, base)) < 0)
			return r;
	}
	if ((r = put(out, "\n")) < 0)
		return r;

	if (ni->has_deriver) {
		char base[CASFS_STORE_PATH_BASENAME_MAX + 1];
		casfs_store_path_format_basename(&ni->deriver, base);
		if ((r = put_line(out, "Deriver", base)) < 0)
			return r;
	}
	if (ni->system && ni->system[0] && (r = put_line(out, "System", ni->system)) < 0)
		return r;

	_cleanup_free_ const void **sigs = sorted_ptrs(ni->sigs, ni->n_sigs, sizeof(*ni->sigs),
						       cmp_sig_ptr);
	if (!sigs)
		return -ENOMEM;
	for (size_t i = 0; i < ni->n_sigs; i++) {
		/* a set: a duplicate is written once */
		if (i > 0 && cmp_sig(sigs[i - 1], sigs[i]) == 0)
			continue;
		char s[CASFS_NIXSIG_STR_MAX];
		casfs_narinfo_sig_format(sigs[i], s);
		if ((r = put_line(out, "Sig", s)) < 0)
			return r;
	}
	if (ni->ca && ni->ca[0] && (r = put_line(out, "CA", ni->ca)) < 0)
		return r;
	return 0;
}

/* ---- fingerprint -------------------------------------------------------- */

int casfs_nix_fingerprint(const struct casfs_store_path *path,
			  const uint8_t nar_sha256[CASFS_SHA256_LEN], uint64_t nar_size,
			  const struct casfs_store_path *refs, size_t n_refs, struct casfs_buf *out)
{
	if (nar_size == 0)
		return -EINVAL;
	char s[CASFS_STORE_PATH_MAX + 1];
	char h[CASFS_SHA256_NIX_STR_LEN + 1];
	char n[24];
	int r;
	casfs_store_path_format(path, s);
	casfs_sha256_format_nix(nar_sha256, h);
	snprintf(n, sizeof(n), "%" PRIu64, nar_size);
	if ((r = put(out, "1;")) < 0 || (r = put(out, s)) < 0 || (r = put(out, ";")) < 0 ||
	    (r = put(out, h)) < 0 || (r = put(out, ";")) < 0 || (r = put(out, n)) < 0 ||
	    (r = put(out, ";")) < 0)
		return r;
	_cleanup_free_ const void **v = sorted_ptrs(refs, n_refs, sizeof(*refs), cmp_ref_ptr);
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n_refs; i++) {
		if (i > 0 && cmp_ref(v[i - 1], v[i]) == 0)
			continue;
		casfs_store_path_format(v[i], s);
		if ((i > 0 && (r = put(out, ",")) < 0) || (r = put(out, s)) < 0)
			return r;
	}
	return 0;
}

int casfs_narinfo_fingerprint(const struct casfs_narinfo *ni, struct casfs_buf *out)
{
	return casfs_nix_fingerprint(&ni->path, ni->nar_sha256, ni->nar_size, ni->references,
				     ni->n_references, out);
}
