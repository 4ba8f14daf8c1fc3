/* Nix keys and signatures over libcrypto's Ed25519 (contract in nixkey.h).
 * libcrypto holds Ed25519 private keys as the 32-byte seed (RFC 8032),
 * which is the first half of the libsodium secret key Nix stores. */
#include "nixkey.h"

#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "../basic/encoding.h"
#include "../basic/util.h"

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void trim(const char **s, size_t *len)
{
	while (*len && is_space(**s))
		(*s)++, (*len)--;
	while (*len && is_space((*s)[*len - 1]))
		(*len)--;
}

/* "name:base64(n bytes)" -> name, bytes.  `what` names the kind of key. */
static int parse_named(const char *s, size_t len, const char *what, char name[CASFS_NIXKEY_NAME_MAX + 1],
		       uint8_t *out, size_t n, struct casfs_error *err)
{
	trim(&s, &len);
	const char *colon = memchr(s, ':', len);
	if (!colon)
		return casfs_error_set(err, -EBADMSG, "%s is not '<name>:<base64>' (no ':')", what);
	size_t nlen = (size_t)(colon - s);
	if (!casfs_nixkey_name_valid(s, nlen))
		return casfs_error_set(err, -EBADMSG,
				       "%s has an empty or bad name (1..%d bytes, no space, "
				       "control character or ':')",
				       what, CASFS_NIXKEY_NAME_MAX);
	size_t blen = len - nlen - 1;
	uint8_t tmp[64];
	ssize_t r = blen == CASFS_BASE64_LEN(n) ? casfs_base64_decode(colon + 1, blen, tmp, sizeof(tmp))
					       : -EBADMSG;
	if (r != (ssize_t)n) {
		OPENSSL_cleanse(tmp, sizeof(tmp));
		return casfs_error_set(err, -EBADMSG, "%s '%.*s' is not base64 of %zu bytes", what,
				       (int)nlen, s, n);
	}
	memcpy(name, s, nlen);
	name[nlen] = 0;
	memcpy(out, tmp, n);
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return 0;
}

/* The public key of a seed.  -EIO. */
static int seed_to_public(const uint8_t seed[CASFS_NIXKEY_SEED_LEN],
			  uint8_t ret[CASFS_NIXKEY_PUBLIC_LEN])
{
	EVP_PKEY *pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed,
						      CASFS_NIXKEY_SEED_LEN);
	if (!pkey)
		return -EIO;
	size_t n = CASFS_NIXKEY_PUBLIC_LEN;
	int ok = EVP_PKEY_get_raw_public_key(pkey, ret, &n) == 1 && n == CASFS_NIXKEY_PUBLIC_LEN;
	EVP_PKEY_free(pkey);
	return ok ? 0 : -EIO;
}

int casfs_nixkey_secret_parse(const char *text, size_t len, struct casfs_nixkey_secret *ret,
			      struct casfs_error *err)
{
	struct casfs_nixkey_secret sk = { 0 };
	uint8_t raw[64];
	int r = parse_named(text, len, "secret key", sk.name, raw, sizeof(raw), err);
	if (r < 0)
		return r;
	memcpy(sk.seed, raw, 32);
	memcpy(sk.pub, raw + 32, 32);
	OPENSSL_cleanse(raw, sizeof(raw));
	uint8_t derived[CASFS_NIXKEY_PUBLIC_LEN];
	r = seed_to_public(sk.seed, derived);
	if (r < 0) {
		casfs_nixkey_secret_clear(&sk);
		return casfs_error_set(err, r, "secret key '%s': libcrypto refused the seed", sk.name);
	}
	if (memcmp(derived, sk.pub, sizeof(derived)) != 0) {
		r = casfs_error_set(err, -EBADMSG,
				    "secret key '%s' is inconsistent: its public half is not the "
				    "key its seed gives",
				    sk.name);
		casfs_nixkey_secret_clear(&sk);
		return r;
	}
	*ret = sk;
	casfs_nixkey_secret_clear(&sk);
	return 0;
}

void casfs_nixkey_secret_clear(struct casfs_nixkey_secret *sk)
{
	if (sk)
		OPENSSL_cleanse(sk, sizeof(*sk));
}

int casfs_nixkey_secret_generate(const char *name, struct casfs_nixkey_secret *ret,
				 struct casfs_error *err)
{
	size_t nlen = strlen(name);
	if (!casfs_nixkey_name_valid(name, nlen))
		return casfs_error_set(err, -EINVAL, "bad key name '%s'", name);
	struct casfs_nixkey_secret sk = { 0 };
	memcpy(sk.name, name, nlen);
	if (RAND_bytes(sk.seed, sizeof(sk.seed)) != 1 || seed_to_public(sk.seed, sk.pub) < 0) {
		casfs_nixkey_secret_clear(&sk);
		return casfs_error_set(err, -EIO, "libcrypto could not make an Ed25519 key");
	}
	*ret = sk;
	casfs_nixkey_secret_clear(&sk);
	return 0;
}

void casfs_nixkey_secret_to_public(const struct casfs_nixkey_secret *sk,
				   struct casfs_nixkey_public *ret)
{
	struct casfs_nixkey_public pk = { 0 };
	memcpy(pk.name, sk->name, sizeof(pk.name));
	memcpy(pk.key, sk->pub, sizeof(pk.key));
	*ret = pk;
}

static size_t format_named(const char *name, const uint8_t *p, size_t n, char *out)
{
	size_t l = strnlen(name, CASFS_NIXKEY_NAME_MAX);
	memcpy(out, name, l);
	out[l++] = ':';
	return l + casfs_base64_encode(p, n, out + l);
}

size_t casfs_nixkey_secret_format(const struct casfs_nixkey_secret *sk, char *out)
{
	uint8_t raw[64];
	memcpy(raw, sk->seed, 32);
	memcpy(raw + 32, sk->pub, 32);
	size_t n = format_named(sk->name, raw, sizeof(raw), out);
	OPENSSL_cleanse(raw, sizeof(raw));
	return n;
}

size_t casfs_nixkey_public_format(const struct casfs_nixkey_public *pk, char *out)
{
	return format_named(pk->name, pk->key, sizeof(pk->key), out);
}

int casfs_nixkey_public_parse(const char *text, size_t len, struct casfs_nixkey_public *ret,
			      struct casfs_error *err)
{
	struct casfs_nixkey_public pk = { 0 };
	int r = parse_named(text, len, "public key", pk.name, pk.key, sizeof(pk.key), err);
	if (r < 0)
		return r;
	*ret = pk;
	return 0;
}

int casfs_nixkey_list_add(struct casfs_nixkey_list *l, const struct casfs_nixkey_public *pk)
{
	if (l->n >= CASFS_NIXKEY_LIST_MAX)
		return -EOVERFLOW;
	struct casfs_nixkey_public *k = realloc(l->keys, (l->n + 1) * sizeof(*k));
	if (!k)
		return -ENOMEM;
	k[l->n++] = *pk;
	l->keys = k;
	return 0;
}

void casfs_nixkey_list_release(struct casfs_nixkey_list *l)
{
	if (!l)
		return;
	free(l->keys);
	l->keys = NULL;
	l->n = 0;
}

int casfs_nixkey_list_parse(const char *text, size_t len, struct casfs_nixkey_list *ret,
			    struct casfs_error *err)
{
	struct casfs_nixkey_list l = { 0 };
	size_t i = 0;
	unsigned idx = 0;
	while (i < len) {
		if (is_space(text[i])) {
			i++;
			continue;
		}
		size_t j = i;
		while (j < len && !is_space(text[j]))
			j++;
		idx++;
		struct casfs_nixkey_public pk;
		struct casfs_error e = { 0 };
		int r = casfs_nixkey_public_parse(text + i, j - i, &pk, &e);
		if (r == 0 && (r = casfs_nixkey_list_add(&l, &pk)) == -EOVERFLOW)
			casfs_error_set(&e, r, "more than %d keys", CASFS_NIXKEY_LIST_MAX);
		if (r < 0) {
			casfs_nixkey_list_release(&l);
			return r == -ENOMEM ? r
					    : casfs_error_set(err, r, "key list, key %u: %s", idx,
							      e.msg);
		}
		i = j;
	}
	*ret = l;
	return 0;
}

int casfs_nixkey_sign(const struct casfs_nixkey_secret *sk, const void *msg, size_t len,
		      struct casfs_narinfo_sig *ret, struct casfs_error *err)
{
	struct casfs_narinfo_sig sig = { 0 };
	memcpy(sig.name, sk->name, sizeof(sig.name));
	EVP_PKEY *pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, sk->seed,
						      sizeof(sk->seed));
	EVP_MD_CTX *ctx = pkey ? EVP_MD_CTX_new() : NULL;
	size_t n = sizeof(sig.sig);
	int ok = ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
		 EVP_DigestSign(ctx, sig.sig, &n, msg, len) == 1 && n == sizeof(sig.sig);
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pkey);
	if (!ok)
		return casfs_error_set(err, -EIO, "libcrypto could not sign with key '%s'", sk->name);
	*ret = sig;
	return 0;
}

int casfs_nixkey_sign_narinfo(const struct casfs_nixkey_secret *sk, const struct casfs_narinfo *ni,
			      struct casfs_narinfo_sig *ret, struct casfs_error *err)
{
	struct casfs_buf fp = CASFS_BUF_INIT;
	int r = casfs_narinfo_fingerprint(ni, &fp);
	if (r == -EINVAL)
		r = casfs_error_set(err, r, "cannot sign a narinfo whose NarSize is 0");
	if (r == 0)
		r = casfs_nixkey_sign(sk, fp.data, fp.len, ret, err);
	casfs_buf_release(&fp);
	return r;
}

int casfs_nixkey_verify(const struct casfs_nixkey_public *pk, const void *msg, size_t len,
			const struct casfs_narinfo_sig *sig)
{
	EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pk->key,
						     sizeof(pk->key));
	if (!pkey)
		return 0; /* not a key libcrypto accepts: nothing verifies under it */
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int r = -EIO;
	if (ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) == 1)
		/* 1 good; 0 or a negative value for a bad or malformed signature */
		r = EVP_DigestVerify(ctx, sig->sig, sizeof(sig->sig), msg, len) == 1;
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pkey);
	return r;
}

int casfs_nixkey_verify_narinfo(const struct casfs_nixkey_list *trusted,
				const struct casfs_narinfo *ni, struct casfs_error *err)
{
	struct casfs_buf fp = CASFS_BUF_INIT;
	int r = casfs_narinfo_fingerprint(ni, &fp);
	if (r < 0) {
		casfs_buf_release(&fp);
		return r == -EINVAL ? casfs_error_set(err, r, "cannot verify a narinfo whose NarSize is 0")
				    : r;
	}
	int good = 0;
	for (size_t i = 0; i < ni->n_sigs && r >= 0; i++)
		for (size_t k = 0; k < trusted->n; k++) {
			if (strcmp(trusted->keys[k].name, ni->sigs[i].name) != 0)
				continue;
			r = casfs_nixkey_verify(&trusted->keys[k], fp.data, fp.len, &ni->sigs[i]);
			if (r < 0)
				break;
			if (r == 1) {
				good++;
				break;
			}
		}
	casfs_buf_release(&fp);
	if (r < 0)
		return casfs_error_set(err, r, "libcrypto could not verify a signature");
	return good;
}

int casfs_nixkey_add_signature(const struct casfs_nixkey_secret *sk, struct casfs_narinfo *ni,
			       struct casfs_error *err)
{
	struct casfs_narinfo_sig sig;
	int r = casfs_nixkey_sign_narinfo(sk, ni, &sig, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < ni->n_sigs; i++)
		if (!strcmp(ni->sigs[i].name, sig.name) && !memcmp(ni->sigs[i].sig, sig.sig, sizeof(sig.sig)))
			return 0;
	struct casfs_narinfo_sig *v = realloc(ni->sigs, (ni->n_sigs + 1) * sizeof(*v));
	if (!v)
		return casfs_error_set(err, -ENOMEM, "out of memory");
	ni->sigs = v;
	ni->sigs[ni->n_sigs++] = sig;
	return 0;
}
