/* A streaming, step-driven NAR reader (STYLE rule 6).  Knows nothing about
 * I/O: the caller feeds bytes and pulls events.
 *
 * NAR format (Nix's archive): every token is a "string": u64 little-endian
 * length, the bytes, zero padding to a multiple of 8 (the padding must be
 * zero).
 *
 *   nar        = str("nix-archive-1") node
 *   node       = str("(") str("type") body str(")")
 *   body       = str("regular") [str("executable") str("")] str("contents") contents
 *              | str("symlink") str("target") str(<target>)
 *              | str("directory") entry*
 *   entry      = str("entry") str("(") str("name") str(<name>) str("node") node str(")")
 *   contents   = u64 size, size bytes, zero padding to 8
 *
 * The reader accepts exactly what Nix writes and rejects everything else
 * with -EBADMSG and a one-line message: wrong magic, unknown or misplaced
 * tokens, non-zero padding, entry names that are empty, ".", "..", contain
 * '/' or NUL or exceed 255 bytes, entries not in strictly increasing
 * bytewise order (so no duplicates), symlink targets empty, over 4095
 * bytes or containing NUL, token strings longer than needed (bounded),
 * nesting deeper than CASFS_NAR_MAX_DEPTH, bytes after the end
 * (trailing garbage) and truncated input (reported by casfs_nar_reader_end).
 * Memory is bounded whatever the input: file contents are handed out as
 * slices of the fed buffer, never copied; only names/targets are buffered.
 *
 * The reader also computes the SHA-256 and the size of the NAR bytes it
 * consumed (the NAR hash Nix reports).
 *
 * Usage:
 *     for (;;) {
 *         r = casfs_nar_reader_step(rd, &ev, &err);
 *         if (r < 0) fail;
 *         if (ev.type == CASFS_NAR_NEED_DATA) {
 *             n = read(...);
 *             if (n == 0) { r = casfs_nar_reader_end(rd, &err); ...; break; }
 *             casfs_nar_reader_feed(rd, buf, n);   // buf must stay valid
 *             continue;                             // until the next NEED_DATA
 *         }
 *         if (ev.type == CASFS_NAR_DONE) ...        // more input is an error:
 *     }                                             // keep feeding until EOF
 *
 * Not thread-safe; one reader per stream. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../basic/error.h"
#include "../digest/digest.h"

#define CASFS_NAR_MAX_DEPTH 1024

enum casfs_nar_event_type {
	CASFS_NAR_NEED_DATA,       /* feed more bytes (or call _end at EOF) */
	CASFS_NAR_FILE_BEGIN,      /* regular file: executable, size */
	CASFS_NAR_FILE_DATA,       /* a slice of the contents: data, len */
	CASFS_NAR_FILE_END,
	CASFS_NAR_SYMLINK,         /* target, target_len */
	CASFS_NAR_DIRECTORY_BEGIN,
	CASFS_NAR_DIRECTORY_END,
	CASFS_NAR_DONE,            /* the root node is complete */
};

struct casfs_nar_event {
	enum casfs_nar_event_type type;
	/* Name of the node within its parent directory, for *_BEGIN and
	 * SYMLINK events; NULL (len 0) for the root node.  Valid until the
	 * next call to step.  NUL-terminated. */
	const char *name;
	size_t name_len;
	unsigned depth;            /* 0 for the root node */
	bool executable;           /* FILE_BEGIN */
	uint64_t size;             /* FILE_BEGIN: content size */
	const uint8_t *data;       /* FILE_DATA: points into the fed buffer */
	size_t len;
	const char *target;        /* SYMLINK: NUL-terminated, valid until next step */
	size_t target_len;
};

struct casfs_nar_reader;

/* NULL on OOM. */
struct casfs_nar_reader *casfs_nar_reader_new(void);
void casfs_nar_reader_free(struct casfs_nar_reader *r);

/* Give the reader the next bytes of the stream.  Only valid right after
 * step returned NEED_DATA (or before the first step).  The reader keeps
 * pointing into `p` until it asks for data again. */
void casfs_nar_reader_feed(struct casfs_nar_reader *r, const uint8_t *p, size_t n);

/* Produce the next event.  0 on success (event in *ret), -EBADMSG for
 * malformed input (message in err, including the byte offset), -ENOMEM.
 * After an error the reader is dead: every later call fails. */
int casfs_nar_reader_step(struct casfs_nar_reader *r, struct casfs_nar_event *ret,
			  struct casfs_error *err);

/* Signal end of input.  0 if the NAR is complete and nothing trails it,
 * -EBADMSG ("truncated") otherwise. */
int casfs_nar_reader_end(struct casfs_nar_reader *r, struct casfs_error *err);

/* After DONE: the SHA-256 and length of the NAR bytes consumed. */
void casfs_nar_reader_result(struct casfs_nar_reader *r, uint8_t ret_sha256[CASFS_SHA256_LEN],
			     uint64_t *ret_size);
