#include "digest.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <openssl/evp.h>

#include "../basic/encoding.h"

const uint8_t casfs_b3_empty[CASFS_B3_LEN] = {
	0xaf, 0x13, 0x49, 0xb9, 0xf5, 0xf9, 0xa1, 0xa6, 0xa0, 0x40, 0x4d,
	0xea, 0x36, 0xdc, 0xc9, 0x49, 0x9b, 0xcb, 0x25, 0xc9, 0xad, 0xc1,
	0x12, 0xb7, 0xcc, 0x9a, 0x93, 0xca, 0xe4, 0x1f, 0x32, 0x62,
};

/* The official sources pick their SIMD code on first use and store the
 * choice in a plain global: do that once, under pthread_once, before any
 * two threads can hash at the same time (a data race otherwise, harmless
 * in practice but real to ThreadSanitizer). */
static void detect_cpu(void)
{
	blake3_hasher h;
	uint8_t out[CASFS_B3_LEN];
	blake3_hasher_init(&h);
	blake3_hasher_update(&h, "", 1);
	blake3_hasher_finalize(&h, out, sizeof(out));
}

void casfs_b3_cpu_once(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, detect_cpu);
}

void casfs_b3_init(struct casfs_b3_hasher *h)
{
	casfs_b3_cpu_once();
	blake3_hasher_init(&h->h);
}

void casfs_b3_update(struct casfs_b3_hasher *h, const void *p, size_t n)
{
	blake3_hasher_update(&h->h, p, n);
}

void casfs_b3_final(struct casfs_b3_hasher *h, uint8_t out[CASFS_B3_LEN])
{
	blake3_hasher_finalize(&h->h, out, CASFS_B3_LEN);
}

void casfs_b3(const void *p, size_t n, uint8_t out[CASFS_B3_LEN])
{
	struct casfs_b3_hasher h;
	casfs_b3_init(&h);
	casfs_b3_update(&h, p, n);
	casfs_b3_final(&h, out);
}

int casfs_sha256_init(struct casfs_sha256_hasher *h)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -ENOMEM;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		return -ENOMEM;
	}
	h->ctx = ctx;
	return 0;
}

void casfs_sha256_update(struct casfs_sha256_hasher *h, const void *p, size_t n)
{
	if (n)
		EVP_DigestUpdate(h->ctx, p, n);
}

void casfs_sha256_final(struct casfs_sha256_hasher *h, uint8_t out[CASFS_SHA256_LEN])
{
	unsigned int len = CASFS_SHA256_LEN;
	EVP_DigestFinal_ex(h->ctx, out, &len);
	casfs_sha256_release(h);
}

void casfs_sha256_release(struct casfs_sha256_hasher *h)
{
	EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
}

void casfs_sha256(const void *p, size_t n, uint8_t out[CASFS_SHA256_LEN])
{
	unsigned int len = CASFS_SHA256_LEN;
	EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}

void casfs_b3_format(const uint8_t d[CASFS_B3_LEN], char *out)
{
	memcpy(out, "b3:", 3);
	casfs_base64_encode(d, CASFS_B3_LEN, out + 3);
}

void casfs_sha256_format_nix(const uint8_t d[CASFS_SHA256_LEN], char *out)
{
	memcpy(out, "sha256:", 7);
	casfs_nixbase32_encode(d, CASFS_SHA256_LEN, out + 7);
}

void casfs_sha256_format_sri(const uint8_t d[CASFS_SHA256_LEN], char *out)
{
	memcpy(out, "sha256-", 7);
	casfs_base64_encode(d, CASFS_SHA256_LEN, out + 7);
}

static int decode_32(const char *s, uint8_t ret[32], bool allow_nixbase32)
{
	size_t len = strlen(s);
	uint8_t tmp[32];
	ssize_t n;
	if (len == 64)
		n = casfs_hex_decode(s, len, tmp, sizeof(tmp));
	else if (allow_nixbase32 && len == CASFS_NIXBASE32_LEN(32))
		n = casfs_nixbase32_decode(s, len, tmp, sizeof(tmp));
	else if (len == 44)
		n = casfs_base64_decode(s, len, tmp, sizeof(tmp));
	else
		return -EBADMSG;
	if (n != 32)
		return -EBADMSG;
	memcpy(ret, tmp, 32);
	return 0;
}

int casfs_b3_parse(const char *s, uint8_t ret[CASFS_B3_LEN])
{
	if (strncmp(s, "b3:", 3) == 0)
		return strlen(s + 3) == 44 ? decode_32(s + 3, ret, false) : -EBADMSG;
	return strlen(s) == 64 ? decode_32(s, ret, false) : -EBADMSG;
}

int casfs_sha256_parse(const char *s, uint8_t ret[CASFS_SHA256_LEN])
{
	if (strncmp(s, "sha256:", 7) == 0)
		return strlen(s + 7) == 44 ? -EBADMSG : decode_32(s + 7, ret, true);
	if (strncmp(s, "sha256-", 7) == 0)
		return strlen(s + 7) == 44 ? decode_32(s + 7, ret, false) : -EBADMSG;
	return -EBADMSG;
}
