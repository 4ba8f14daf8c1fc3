#include "encoding.h"

#include <errno.h>
#include <string.h>

static const char hex_chars[] = "0123456789abcdef";
static const char b64_chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char nb32_chars[] = "0123456789abcdfghijklmnpqrsvwxyz";

size_t casfs_hex_encode(const uint8_t *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex_chars[in[i] >> 4];
		out[2 * i + 1] = hex_chars[in[i] & 15];
	}
	out[2 * n] = 0;
	return 2 * n;
}

int casfs_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

ssize_t casfs_hex_decode(const char *in, size_t len, uint8_t *out, size_t out_cap)
{
	if (len % 2)
		return -EBADMSG;
	if (len / 2 > out_cap)
		return -ENOBUFS;
	for (size_t i = 0; i < len / 2; i++) {
		int hi = casfs_hex_digit(in[2 * i]), lo = casfs_hex_digit(in[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EBADMSG;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return (ssize_t)(len / 2);
}

size_t casfs_base64_encode(const uint8_t *in, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = b64_chars[(v >> 18) & 63];
		out[o++] = b64_chars[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64_chars[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? b64_chars[v & 63] : '=';
	}
	out[o] = 0;
	return o;
}

static int b64_value(char c)
{
	const char *p = c ? strchr(b64_chars, c) : NULL;
	return p ? (int)(p - b64_chars) : -1;
}

ssize_t casfs_base64_decode(const char *in, size_t len, uint8_t *out, size_t out_cap)
{
	if (len % 4)
		return -EBADMSG;
	size_t o = 0;
	for (size_t i = 0; i < len; i += 4) {
		int pad = 0;
		uint32_t v = 0;
		for (size_t k = 0; k < 4; k++) {
			int d;
			if (in[i + k] == '=' && i + 4 == len && k >= 2) {
				pad++;
				d = 0;
			} else {
				if (pad)
					return -EBADMSG;
				d = b64_value(in[i + k]);
				if (d < 0)
					return -EBADMSG;
			}
			v = v << 6 | (uint32_t)d;
		}
		size_t bytes = 3 - (size_t)pad;
		if (o + bytes > out_cap)
			return -ENOBUFS;
		out[o++] = (uint8_t)(v >> 16);
		if (bytes > 1)
			out[o++] = (uint8_t)(v >> 8);
		if (bytes > 2)
			out[o++] = (uint8_t)v;
		/* reject non-canonical encodings (bits set in the padding) */
		if ((pad == 1 && (v & 0xff)) || (pad == 2 && (v & 0xffff)))
			return -EBADMSG;
	}
	return (ssize_t)o;
}

int casfs_nixbase32_is_char(char c)
{
	return c && strchr(nb32_chars, c) != NULL;
}

size_t casfs_nixbase32_encode(const uint8_t *in, size_t n, char *out)
{
	size_t len = CASFS_NIXBASE32_LEN(n), o = 0;
	for (size_t k = len; k-- > 0;) {
		size_t b = k * 5, i = b / 8, j = b % 8;
		unsigned c = in[i] >> j;
		if (i + 1 < n)
			c |= (unsigned)in[i + 1] << (8 - j);
		out[o++] = nb32_chars[c & 0x1f];
	}
	out[o] = 0;
	return o;
}

ssize_t casfs_nixbase32_decode(const char *in, size_t len, uint8_t *out, size_t out_len)
{
	if (len != CASFS_NIXBASE32_LEN(out_len))
		return -EBADMSG;
	memset(out, 0, out_len);
	for (size_t k = 0; k < len; k++) {
		const char *p = in[len - k - 1] ? strchr(nb32_chars, in[len - k - 1]) : NULL;
		if (!p)
			return -EBADMSG;
		unsigned d = (unsigned)(p - nb32_chars);
		size_t b = k * 5, i = b / 8, j = b % 8;
		out[i] |= (uint8_t)(d << j);
		unsigned carry = d >> (8 - j);
		if (i + 1 < out_len)
			out[i + 1] |= (uint8_t)carry;
		else if (carry)
			return -EBADMSG;
	}
	return (ssize_t)out_len;
}
