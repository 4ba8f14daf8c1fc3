/* Text encodings of binary digests: lowercase hex, standard base64 (with
 * padding, RFC 4648 section 4) and Nix's base32.
 *
 * nixbase32: alphabet "0123456789abcdfghijklmnpqrsvwxyz" (no e o t u); an
 * n-byte input gives ceil(8n/5) characters; the *last* character holds the
 * lowest 5 bits of byte 0, i.e. Nix prints the bit groups from the most
 * significant end of a little-endian number.  Decoding rejects characters
 * outside the alphabet and set bits beyond 8n.
 *
 * Decoders take (text, text_len) and return the number of bytes written or
 * -EBADMSG for malformed input / -ENOBUFS when `out_cap` is too small.
 * Encoders write a NUL-terminated string and return its length; the caller
 * provides the room (see the *_LEN macros). Thread-safe (no state). */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CASFS_HEX_LEN(n) ((n) * 2)
#define CASFS_BASE64_LEN(n) ((((n) + 2) / 3) * 4)
#define CASFS_NIXBASE32_LEN(n) (((n) * 8 + 4) / 5)

size_t casfs_hex_encode(const uint8_t *in, size_t n, char *out);
ssize_t casfs_hex_decode(const char *in, size_t len, uint8_t *out, size_t out_cap);
/* The value of one hex digit (either case), or -1. */
int casfs_hex_digit(char c);

size_t casfs_base64_encode(const uint8_t *in, size_t n, char *out);
ssize_t casfs_base64_decode(const char *in, size_t len, uint8_t *out, size_t out_cap);

size_t casfs_nixbase32_encode(const uint8_t *in, size_t n, char *out);
/* Decodes exactly `out_len` bytes: `len` must equal CASFS_NIXBASE32_LEN(out_len). */
ssize_t casfs_nixbase32_decode(const char *in, size_t len, uint8_t *out, size_t out_len);
/* True if c is in the nixbase32 alphabet. */
int casfs_nixbase32_is_char(char c);
